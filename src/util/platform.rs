//! What the operating system answers differently on Unix and on Windows, in one place: this
//! machine's host name, whether a process of this host is alive, files that only their owner
//! may read, a rename that is durable once it returns, cutting back a file open for appending,
//! and the figures the benchmarks read about their own process. Everything else in the crate is
//! the same on both.
//!
//! Windows: the host name is `GetComputerNameExW` (DNS host name); a process is alive while
//! `OpenProcess` finds it and its handle is not signalled; an owner-only file gets a protected
//! DACL granting its creator's SID alone (the equivalent of mode 0600); a durable rename is
//! `MoveFileExW` with `MOVEFILE_WRITE_THROUGH`, since a folder cannot be synced there; CPU
//! times come from `GetProcessTimes`, the peak memory is the peak working set.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// CPU time a process has used, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    /// In user mode.
    pub user_s: f64,
    /// In the kernel.
    pub system_s: f64,
}

/// This machine's host name ("localhost" when the system gives none).
pub fn hostname() -> String {
    imp::hostname()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// True when host names name the same machine (host names are case-insensitive).
pub fn same_host(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// True when process `pid` of this host exists (including one of another user).
pub fn pid_alive(pid: u32) -> bool {
    imp::pid_alive(pid)
}

/// Opens (creates) a file with `options` that only its owner may read or write: mode 0600 on
/// Unix, a protected DACL granting the current user alone on Windows. Meant for new files: an
/// existing file opened this way keeps its mode on Unix.
pub fn open_owner_only(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    imp::open_owner_only(options, path)
}

/// Renames `from` to `to` (replacing it) and returns once the new name is durable: on Unix the
/// rename, then an fsync of the folder; on Windows a write-through move.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    imp::rename_durable(from, to)
}

/// Cuts `file` (open for appending at `path`) back to `len` bytes and syncs it. Windows refuses
/// to change a file's length through an append-only handle (std's `append`), so there it is
/// done through a second handle that may write; the appending handle goes on at the new end.
pub fn cut_back(file: &File, path: &Path, len: u64) -> io::Result<()> {
    imp::cut_back(file, path, len)
}

/// The CPU time this process has used, if the system says.
pub fn cpu_times() -> Option<CpuTimes> {
    imp::cpu_times()
}

/// The peak memory of this process in KiB, if known: the peak resident set size on Linux
/// (`VmHWM`), the peak working set on Windows.
pub fn peak_rss_kib() -> Option<u64> {
    imp::peak_rss_kib()
}

/// How many files and sockets this process may hold open: the soft `RLIMIT_NOFILE` on Unix;
/// on Windows sockets are handles, and a process may hold 2^24 of them.
pub fn open_files_limit() -> u64 {
    imp::open_files_limit()
}

#[cfg(unix)]
mod imp {
    use super::*;

    pub fn hostname() -> Option<String> {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
        let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if r != 0 {
            return None;
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Some(String::from_utf8_lossy(&buf[..end]).into_owned())
    }

    pub fn pid_alive(pid: u32) -> bool {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }

    pub fn open_owner_only(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).open(path)
    }

    pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)?;
        let dir = to
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    }

    pub fn cut_back(file: &File, _path: &Path, len: u64) -> io::Result<()> {
        file.set_len(len)?;
        file.sync_data()
    }

    pub fn cpu_times() -> Option<CpuTimes> {
        // SAFETY: getrusage writes into the zeroed struct we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return None;
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Some(CpuTimes {
            user_s: secs(ru.ru_utime),
            system_s: secs(ru.ru_stime),
        })
    }

    pub fn peak_rss_kib() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn open_files_limit() -> u64 {
        // SAFETY: getrlimit writes into the zeroed struct we own.
        let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 {
            r.rlim_cur
        } else {
            1024
        }
    }
}

#[cfg(windows)]
mod imp {
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::fs::OpenOptionsExt;
    use std::os::windows::io::AsRawHandle;

    use windows_sys::Win32::Foundation::{
        CloseHandle, ERROR_ACCESS_DENIED, FILETIME, GetLastError, HANDLE, WAIT_TIMEOUT,
    };
    use windows_sys::Win32::Security::Authorization::{SE_FILE_OBJECT, SetSecurityInfo};
    use windows_sys::Win32::Security::{
        ACCESS_ALLOWED_ACE, ACL, ACL_REVISION, AddAccessAllowedAce, DACL_SECURITY_INFORMATION,
        GetLengthSid, GetTokenInformation, InitializeAcl, IsValidSid,
        PROTECTED_DACL_SECURITY_INFORMATION, TOKEN_QUERY, TOKEN_USER, TokenUser,
    };
    use windows_sys::Win32::Storage::FileSystem::{
        FILE_ALL_ACCESS, FILE_GENERIC_WRITE, MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH,
        MoveFileExW, WRITE_DAC,
    };
    use windows_sys::Win32::System::ProcessStatus::{
        K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS,
    };
    use windows_sys::Win32::System::SystemInformation::{
        ComputerNameDnsHostname, GetComputerNameExW,
    };
    use windows_sys::Win32::System::Threading::{
        GetCurrentProcess, GetProcessTimes, OpenProcess, OpenProcessToken,
        PROCESS_QUERY_LIMITED_INFORMATION, PROCESS_SYNCHRONIZE, WaitForSingleObject,
    };

    use super::*;

    /// A handle closed when dropped.
    struct Owned(HANDLE);

    impl Drop for Owned {
        fn drop(&mut self) {
            // SAFETY: the handle was opened by us and is closed once.
            unsafe { CloseHandle(self.0) };
        }
    }

    fn wide(p: &Path) -> Vec<u16> {
        p.as_os_str().encode_wide().chain([0]).collect()
    }

    pub fn hostname() -> Option<String> {
        let mut len = 0u32;
        // SAFETY: a first call with no buffer only reports the length needed.
        unsafe { GetComputerNameExW(ComputerNameDnsHostname, std::ptr::null_mut(), &mut len) };
        if len > 0 {
            let mut buf = vec![0u16; len as usize];
            // SAFETY: the buffer holds `len` UTF-16 units, as the call was told.
            if unsafe { GetComputerNameExW(ComputerNameDnsHostname, buf.as_mut_ptr(), &mut len) }
                != 0
            {
                return Some(String::from_utf16_lossy(&buf[..len as usize]));
            }
        }
        std::env::var("COMPUTERNAME").ok()
    }

    pub fn pid_alive(pid: u32) -> bool {
        // SAFETY: OpenProcess returns a handle we own or null.
        let h = unsafe {
            OpenProcess(
                PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_SYNCHRONIZE,
                0,
                pid,
            )
        };
        if h.is_null() {
            // A process of another user (or a protected one) exists but cannot be opened; a
            // pid that names no process is an invalid parameter.
            // SAFETY: reads this thread's last error.
            return unsafe { GetLastError() } == ERROR_ACCESS_DENIED;
        }
        let h = Owned(h);
        // A process handle is signalled once the process has ended, even while other handles
        // keep its object (and its pid) around.
        // SAFETY: waits zero milliseconds on a handle we own.
        unsafe { WaitForSingleObject(h.0, 0) == WAIT_TIMEOUT }
    }

    /// The current user's SID, in a buffer that keeps it (TOKEN_USER's layout).
    pub fn current_user() -> io::Result<Vec<u64>> {
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: GetCurrentProcess is a pseudo-handle; the token handle is ours to close.
        if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let token = Owned(token);
        let mut len = 0u32;
        // SAFETY: a first call with no buffer only reports the length needed.
        unsafe { GetTokenInformation(token.0, TokenUser, std::ptr::null_mut(), 0, &mut len) };
        if len == 0 {
            return Err(io::Error::last_os_error());
        }
        // u64s keep TOKEN_USER aligned.
        let mut buf = vec![0u64; (len as usize).div_ceil(8)];
        // SAFETY: the buffer is at least `len` bytes.
        if unsafe {
            GetTokenInformation(token.0, TokenUser, buf.as_mut_ptr().cast(), len, &mut len)
        } == 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(buf)
    }

    /// Gives `file` a DACL that grants its owner's account everything and nobody else
    /// anything, protected from the folder's inherited entries.
    fn restrict_to_owner(file: &File) -> io::Result<()> {
        let user = current_user()?;
        // SAFETY: `user` holds a TOKEN_USER written by GetTokenInformation; its SID points
        // into the same buffer, which lives to the end of this function.
        unsafe {
            let sid = (*user.as_ptr().cast::<TOKEN_USER>()).User.Sid;
            if IsValidSid(sid) == 0 {
                return Err(io::Error::other("the process token has no valid user SID"));
            }
            let size = std::mem::size_of::<ACL>() + std::mem::size_of::<ACCESS_ALLOWED_ACE>()
                - std::mem::size_of::<u32>()
                + GetLengthSid(sid) as usize;
            let size = size.div_ceil(4) * 4;
            let mut acl = vec![0u32; size / 4];
            let acl_ptr = acl.as_mut_ptr().cast::<ACL>();
            if InitializeAcl(acl_ptr, size as u32, ACL_REVISION) == 0
                || AddAccessAllowedAce(acl_ptr, ACL_REVISION, FILE_ALL_ACCESS, sid) == 0
            {
                return Err(io::Error::last_os_error());
            }
            let r = SetSecurityInfo(
                file.as_raw_handle(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                acl_ptr,
                std::ptr::null(),
            );
            if r != 0 {
                return Err(io::Error::from_raw_os_error(r as i32));
            }
        }
        Ok(())
    }

    pub fn open_owner_only(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
        // WRITE_DAC on the handle: the DACL is set through it before anything is written.
        let f = options
            .access_mode(FILE_GENERIC_WRITE | WRITE_DAC)
            .open(path)?;
        restrict_to_owner(&f)?;
        Ok(f)
    }

    pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (wide(from), wide(to));
        // SAFETY: both names are NUL-terminated UTF-16 strings we own.
        let ok = unsafe {
            MoveFileExW(
                from.as_ptr(),
                to.as_ptr(),
                MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH,
            )
        };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn cut_back(_file: &File, path: &Path, len: u64) -> io::Result<()> {
        let w = OpenOptions::new().write(true).open(path)?;
        w.set_len(len)?;
        w.sync_data()
    }

    pub fn cpu_times() -> Option<CpuTimes> {
        let zero = FILETIME {
            dwLowDateTime: 0,
            dwHighDateTime: 0,
        };
        let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
        // SAFETY: writes four FILETIMEs we own, for this process's pseudo-handle.
        let ok = unsafe {
            GetProcessTimes(
                GetCurrentProcess(),
                &mut created,
                &mut exited,
                &mut kernel,
                &mut user,
            )
        };
        // FILETIME durations count 100 ns units.
        let secs = |t: FILETIME| {
            ((u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime)) as f64 / 1e7
        };
        (ok != 0).then(|| CpuTimes {
            user_s: secs(user),
            system_s: secs(kernel),
        })
    }

    pub fn peak_rss_kib() -> Option<u64> {
        // SAFETY: a zeroed PROCESS_MEMORY_COUNTERS is valid; the call fills it.
        let mut c: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
        c.cb = size;
        // SAFETY: writes `size` bytes into the struct we own.
        let ok = unsafe { K32GetProcessMemoryInfo(GetCurrentProcess(), &mut c, size) };
        (ok != 0).then_some(c.PeakWorkingSetSize as u64 / 1024)
    }

    pub fn open_files_limit() -> u64 {
        1 << 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn dead_pid() -> u32 {
        // The test binary itself, asked only to list its tests: it exits at once.
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--list", "--exact", "no-such-test"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn this_process_is_alive_and_a_finished_child_is_not() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(dead_pid()));
        // A pid no process can have.
        assert!(!pid_alive(u32::MAX - 2));
    }

    #[test]
    fn the_host_has_a_name_and_names_compare_without_case() {
        let h = hostname();
        assert!(!h.is_empty() && h.trim() == h, "{h:?}");
        assert!(same_host(&h, &h.to_uppercase()));
        assert!(!same_host("ws01", "ws02"));
    }

    #[test]
    fn an_owner_only_file_is_readable_by_its_owner_and_nobody_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f =
            open_owner_only(OpenOptions::new().create_new(true).write(true), &path).unwrap();
        f.write_all(b"x").unwrap();
        f.sync_data().unwrap();
        #[cfg(windows)]
        windows_tests::assert_owner_only(&f);
        drop(f);
        let mut back = String::new();
        File::open(&path)
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_durable_rename_replaces_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "new").unwrap();
        std::fs::write(&b, "old").unwrap();
        rename_durable(&a, &b).unwrap();
        assert!(!a.exists());
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new");
        // A missing source is an error, not a silent success.
        assert_eq!(
            rename_durable(&a, &b).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_file_open_for_appending_is_cut_back_and_appended_to_at_its_new_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, "one\ntwo\nhalf a rec").unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        cut_back(&f, &path, 8).unwrap();
        f.write_all(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
    }

    #[test]
    fn the_process_figures_are_measured() {
        // Burn a little CPU so that a coarse clock sees it.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let t = cpu_times().expect("cpu times");
        assert!(t.user_s + t.system_s > 0.0, "{t:?}");
        if cfg!(any(target_os = "linux", windows)) {
            assert!(peak_rss_kib().expect("peak memory") > 0);
        }
        assert!(open_files_limit() >= 64);
    }

    #[cfg(windows)]
    mod windows_tests {
        use std::os::windows::io::AsRawHandle;

        use windows_sys::Win32::Foundation::LocalFree;
        use windows_sys::Win32::Security::Authorization::{GetSecurityInfo, SE_FILE_OBJECT};
        use windows_sys::Win32::Security::{
            ACCESS_ALLOWED_ACE, ACL, DACL_SECURITY_INFORMATION, EqualSid, GetAce,
            GetSecurityDescriptorControl, PSECURITY_DESCRIPTOR, SE_DACL_PROTECTED, TOKEN_USER,
        };
        use windows_sys::Win32::Storage::FileSystem::FILE_ALL_ACCESS;
        use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleW, GetProcAddress};

        /// ACCESS_ALLOWED_ACE_TYPE (winnt.h).
        const ACCESS_ALLOWED_ACE_TYPE: u8 = 0;

        /// True under Wine, whose ntdll exports `wine_get_version`.
        fn under_wine() -> bool {
            let ntdll: Vec<u16> = "ntdll.dll".encode_utf16().chain([0]).collect();
            // SAFETY: looks up an export of a module every process has loaded.
            unsafe {
                let m = GetModuleHandleW(ntdll.as_ptr());
                !m.is_null() && GetProcAddress(m, c"wine_get_version".as_ptr().cast()).is_some()
            }
        }

        pub fn assert_owner_only(file: &std::fs::File) {
            let mut dacl: *mut ACL = std::ptr::null_mut();
            let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
            // SAFETY: reads the file's DACL into a descriptor we free below.
            unsafe {
                let r = GetSecurityInfo(
                    file.as_raw_handle(),
                    SE_FILE_OBJECT,
                    DACL_SECURITY_INFORMATION,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    &mut dacl,
                    std::ptr::null_mut(),
                    &mut sd,
                );
                assert_eq!(r, 0, "GetSecurityInfo");
                let (mut control, mut rev) = (0u16, 0u32);
                GetSecurityDescriptorControl(sd, &mut control, &mut rev);
                let user = super::super::imp::current_user().unwrap();
                let me = (*user.as_ptr().cast::<TOKEN_USER>()).User.Sid;
                let mut aces = Vec::new();
                for i in 0..(*dacl).AceCount {
                    let mut ace: *mut core::ffi::c_void = std::ptr::null_mut();
                    assert_ne!(GetAce(dacl, u32::from(i), &mut ace), 0);
                    let ace = ace.cast::<ACCESS_ALLOWED_ACE>();
                    let sid = std::ptr::addr_of_mut!((*ace).SidStart).cast();
                    aces.push(((*ace).Header.AceType, (*ace).Mask, EqualSid(sid, me) != 0));
                }
                LocalFree(sd);
                let protected = control & SE_DACL_PROTECTED != 0;
                if under_wine() {
                    // Wine accepts a file's DACL and keeps none: it reports one made from the
                    // Unix mode. What it can show is that the owner may do everything.
                    assert!(
                        aces.contains(&(ACCESS_ALLOWED_ACE_TYPE, FILE_ALL_ACCESS, true)),
                        "{aces:?}"
                    );
                    return;
                }
                // One entry: the current user, allowed everything; nothing inherited.
                assert_eq!(
                    (protected, aces),
                    (true, vec![(ACCESS_ALLOWED_ACE_TYPE, FILE_ALL_ACCESS, true)])
                );
            }
        }
    }
}
