//! The inventory lock: one run at a time per inventory. The lock file names its run, process,
//! host and a heartbeat. A lock whose process is gone (same host) or whose heartbeat stopped
//! (another host) is stale; so is a lock file that is empty or unreadable (wsusfix writes a
//! lock whole, never in two steps, so such a file is damage, not a lock being written). A stale
//! lock may be taken over only after the caller has drained the open obligations of the runs it
//! may have held ([`take_over`] checks that it replaces exactly that lock), and a take-over
//! marker left behind by a taker that died is cleared.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::util::platform::{hostname, open_owner_only, pid_alive, same_host};

/// A heartbeat older than this marks a lock of another host stale.
pub const STALE_AFTER: Duration = Duration::from_secs(60);
/// How often a held lock's heartbeat is refreshed.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// What a lock file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// The run holding it.
    pub run_id: String,
    /// Its process.
    pub pid: u32,
    /// Its host.
    pub host: String,
    /// When it was taken (RFC 3339).
    pub started: String,
    /// Last heartbeat (RFC 3339).
    pub heartbeat: String,
}

/// What is found at a lock's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No lock.
    Free,
    /// A lock naming its holder.
    Lock(LockInfo),
    /// A file that is no lock wsusfix wrote (empty, garbage): stale by definition.
    Damaged {
        /// What is wrong with it.
        why: String,
    },
}

/// The holder of a stale lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StaleHolder {
    /// A run that is gone.
    Run(Box<LockInfo>),
    /// Unknown: the lock file was damaged.
    Unknown {
        /// What was wrong with the file.
        why: String,
    },
}

impl StaleHolder {
    /// The run that held it, if known.
    pub fn run_id(&self) -> Option<&str> {
        match self {
            StaleHolder::Run(i) => Some(&i.run_id),
            StaleHolder::Unknown { .. } => None,
        }
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live run holds it.
    #[error("run {} (pid {} on {}, heartbeat {}) holds the lock {}", .info.run_id, .info.pid, .info.host, .info.heartbeat, .path.display())]
    Held {
        /// The holder.
        info: Box<LockInfo>,
        /// The lock file.
        path: PathBuf,
    },
    /// Another process is taking the stale lock over right now.
    #[error("run {} (pid {} on {}) is taking over the lock {} right now", .info.run_id, .info.pid, .info.host, .path.display())]
    TakingOver {
        /// The taker.
        info: Box<LockInfo>,
        /// The lock file.
        path: PathBuf,
    },
    /// The holder is gone (or unknown); its obligations must be drained before taking over.
    #[error("{} left a stale lock {}", match .holder { StaleHolder::Run(i) => format!("run {} (pid {} on {})", i.run_id, i.pid, i.host), StaleHolder::Unknown { why } => format!("a damaged lock file ({why})") }, .path.display())]
    Stale {
        /// The former holder.
        holder: StaleHolder,
        /// The lock file.
        path: PathBuf,
    },
    /// The run folder cannot be written.
    #[error("cannot write the lock in {}: {source}", .dir.display())]
    Unwritable {
        /// The folder.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another I/O failure.
    #[error("lock {}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn age_of(rfc3339: &str) -> Option<Duration> {
    let t = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .to_std()
        .ok()
}

impl LockInfo {
    /// The lock of `run_id` in this process, taken now.
    pub fn ours(run_id: &str) -> LockInfo {
        let now = super::record::now();
        LockInfo {
            run_id: run_id.to_string(),
            pid: std::process::id(),
            host: hostname(),
            started: now.clone(),
            heartbeat: now,
        }
    }

    /// True when its holder is gone: its process died (this host), or its heartbeat stopped.
    pub fn is_stale(&self) -> bool {
        if same_host(&self.host, &hostname()) {
            return self.pid != std::process::id() && !pid_alive(self.pid);
        }
        age_of(&self.heartbeat).is_none_or(|age| age > STALE_AFTER)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LockError + '_ {
    move |source| {
        if source.kind() == io::ErrorKind::PermissionDenied
            || source.kind() == io::ErrorKind::ReadOnlyFilesystem
        {
            LockError::Unwritable {
                dir: path.parent().unwrap_or(path).to_path_buf(),
                source,
            }
        } else {
            LockError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.new", std::process::id()))
}

fn write_temp(path: &Path, info: &LockInfo) -> io::Result<PathBuf> {
    let tmp = temp_beside(path);
    let mut f = open_owner_only(
        OpenOptions::new().create(true).write(true).truncate(true),
        &tmp,
    )?;
    f.write_all(&serde_json::to_vec(info).map_err(io::Error::other)?)?;
    f.sync_data()?;
    Ok(tmp)
}

/// Creates `path` holding `info`, whole, only if nothing is there (a hard link never replaces).
fn create_whole(path: &Path, info: &LockInfo) -> io::Result<()> {
    let tmp = write_temp(path, info)?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Replaces `path` with `info`, whole.
fn replace_whole(path: &Path, info: &LockInfo) -> io::Result<()> {
    let tmp = write_temp(path, info)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Reads what is at a lock's path.
pub fn read(path: &Path) -> Result<Found, LockError> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Found::Damaged {
            why: "it is empty".into(),
        }),
        Ok(b) => Ok(match serde_json::from_slice::<LockInfo>(&b) {
            Ok(info) => Found::Lock(info),
            Err(e) => Found::Damaged {
                why: format!("it is not a wsusfix lock: {e}"),
            },
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Free),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// A held lock; released (the file removed) when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    info: LockInfo,
    stop: Arc<AtomicBool>,
}

impl RunLock {
    /// The lock's content.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    fn start(path: PathBuf, info: LockInfo) -> RunLock {
        let stop = Arc::new(AtomicBool::new(false));
        let (p, i, s) = (path.clone(), info.clone(), stop.clone());
        let _ = std::thread::Builder::new()
            .name("lock-heartbeat".into())
            .spawn(move || {
                let mut info = i;
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let due = age_of(&info.heartbeat).is_none_or(|a| a >= HEARTBEAT_EVERY);
                    if due && !s.load(Ordering::Relaxed) {
                        info.heartbeat = super::record::now();
                        // Only refresh a lock that is still ours.
                        if matches!(read(&p), Ok(Found::Lock(cur)) if cur.run_id == info.run_id && cur.pid == info.pid)
                        {
                            let _ = replace_whole(&p, &info);
                        }
                    }
                }
            });
        RunLock { path, info, stop }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if matches!(read(&self.path), Ok(Found::Lock(cur)) if cur.run_id == self.info.run_id && cur.pid == self.info.pid)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn marker_path(path: &Path) -> PathBuf {
    path.with_extension("takeover")
}

/// Clears a take-over marker whose taker is gone; reports a live one.
fn check_marker(path: &Path) -> Result<(), LockError> {
    let marker = marker_path(path);
    match read(&marker)? {
        Found::Free => Ok(()),
        Found::Lock(taker) if !taker.is_stale() => Err(LockError::TakingOver {
            info: Box::new(taker),
            path: path.to_path_buf(),
        }),
        // A taker that died, or a marker that is no lock at all (an earlier release wrote it
        // empty): nobody is taking over.
        Found::Lock(_) | Found::Damaged { .. } => {
            tracing::info!(marker = %marker.display(), "clearing a take-over marker left by a run that is gone");
            std::fs::remove_file(&marker).map_err(io_err(&marker))
        }
    }
}

/// Takes the lock at `path` for `run_id`.
pub fn acquire(path: &Path, run_id: &str) -> Result<RunLock, LockError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(path))?;
    }
    for _ in 0..3 {
        check_marker(path)?;
        let info = LockInfo::ours(run_id);
        match create_whole(path, &info) {
            Ok(()) => return Ok(RunLock::start(path.to_path_buf(), info)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read(path)? {
                // Removed between our attempt and the read: try again.
                Found::Free => continue,
                Found::Lock(held) if held.is_stale() => {
                    return Err(LockError::Stale {
                        holder: StaleHolder::Run(Box::new(held)),
                        path: path.to_path_buf(),
                    });
                }
                Found::Lock(held) => {
                    return Err(LockError::Held {
                        info: Box::new(held),
                        path: path.to_path_buf(),
                    });
                }
                Found::Damaged { why } => {
                    return Err(LockError::Stale {
                        holder: StaleHolder::Unknown { why },
                        path: path.to_path_buf(),
                    });
                }
            },
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    Err(LockError::Io {
        path: path.to_path_buf(),
        source: io::Error::other("the lock kept changing while it was being taken"),
    })
}

/// Replaces the stale lock left by `holder` (whose obligations the caller has drained) with one
/// for `run_id`. Fails if the lock changed meanwhile (someone else took over).
pub fn take_over(path: &Path, holder: &StaleHolder, run_id: &str) -> Result<RunLock, LockError> {
    check_marker(path)?;
    let marker = marker_path(path);
    let info = LockInfo::ours(run_id);
    if let Err(e) = create_whole(&marker, &info) {
        if e.kind() == io::ErrorKind::AlreadyExists {
            return match read(&marker)? {
                Found::Lock(taker) => Err(LockError::TakingOver {
                    info: Box::new(taker),
                    path: path.to_path_buf(),
                }),
                _ => Err(LockError::Io {
                    path: path.to_path_buf(),
                    source: io::Error::other("another process is taking over the lock"),
                }),
            };
        }
        return Err(io_err(&marker)(e));
    }
    let result = (|| {
        let current = read(path)?;
        let same = match (&current, holder) {
            (Found::Lock(cur), StaleHolder::Run(expected)) => cur == expected.as_ref(),
            (Found::Damaged { .. }, StaleHolder::Unknown { .. }) => true,
            _ => false,
        };
        match current {
            _ if same => {
                replace_whole(path, &info).map_err(io_err(path))?;
                Ok(RunLock::start(path.to_path_buf(), info.clone()))
            }
            Found::Lock(cur) => Err(LockError::Held {
                info: Box::new(cur),
                path: path.to_path_buf(),
            }),
            Found::Free => match create_whole(path, &info) {
                Ok(()) => Ok(RunLock::start(path.to_path_buf(), info.clone())),
                Err(e) => Err(io_err(path)(e)),
            },
            Found::Damaged { why } => Err(LockError::Stale {
                holder: StaleHolder::Unknown { why },
                path: path.to_path_buf(),
            }),
        }
    })();
    let _ = std::fs::remove_file(&marker);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = acquire(&path, "r1").unwrap();
        match acquire(&path, "r2") {
            Err(LockError::Held { info, .. }) => assert_eq!(info.run_id, "r1"),
            other => panic!("{other:?}"),
        }
        drop(held);
        assert!(!path.exists());
        let _again = acquire(&path, "r3").unwrap();
        // Only the lock is left in the folder: no temporary files.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_dead_holder_leaves_a_stale_lock_that_can_be_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let stale = LockInfo {
            pid: dead_pid(),
            ..LockInfo::ours("dead")
        };
        std::fs::write(&path, serde_json::to_vec(&stale).unwrap()).unwrap();
        let holder = match acquire(&path, "r2") {
            Err(LockError::Stale { holder, .. }) => holder,
            other => panic!("{other:?}"),
        };
        assert_eq!(holder.run_id(), Some("dead"));
        let lock = take_over(&path, &holder, "r2").unwrap();
        assert!(matches!(read(&path).unwrap(), Found::Lock(i) if i.run_id == "r2"));
        assert_eq!(lock.info().run_id, "r2");
        // Taking over a lock that changed meanwhile is refused.
        assert!(matches!(
            take_over(&path, &holder, "r3"),
            Err(LockError::Held { .. })
        ));
    }

    #[test]
    fn an_empty_or_garbage_lock_is_stale_and_can_be_taken_over() {
        for content in ["", "{\"run_id\":", "garbage"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("lock");
            std::fs::write(&path, content).unwrap();
            let holder = match acquire(&path, "r2") {
                Err(LockError::Stale { holder, .. }) => holder,
                other => panic!("{content:?}: {other:?}"),
            };
            assert_eq!(holder.run_id(), None);
            let e = acquire(&path, "r2").unwrap_err();
            assert!(e.to_string().contains("a damaged lock file"), "{e}");
            let _lock = take_over(&path, &holder, "r2").unwrap();
            assert!(matches!(read(&path).unwrap(), Found::Lock(i) if i.run_id == "r2"));
        }
    }

    #[test]
    fn a_take_over_marker_of_a_dead_taker_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        // An earlier release left an empty marker; a dead taker left one naming itself.
        std::fs::write(marker_path(&path), "").unwrap();
        let _a = acquire(&path, "r1").unwrap();
        drop(_a);
        let dead = LockInfo {
            pid: dead_pid(),
            ..LockInfo::ours("gone")
        };
        std::fs::write(marker_path(&path), serde_json::to_vec(&dead).unwrap()).unwrap();
        let _b = acquire(&path, "r2").unwrap();
        assert!(!marker_path(&path).exists());
        drop(_b);
        // A live taker's marker is respected.
        std::fs::write(
            marker_path(&path),
            serde_json::to_vec(&LockInfo::ours("live")).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            acquire(&path, "r3"),
            Err(LockError::TakingOver { .. })
        ));
    }

    #[test]
    fn a_lock_of_this_host_is_judged_by_its_process_whatever_the_case_of_its_name() {
        let dead = LockInfo {
            host: hostname().to_uppercase(),
            pid: dead_pid(),
            ..LockInfo::ours("dead")
        };
        assert!(
            dead.is_stale(),
            "a fresh heartbeat keeps no dead holder's lock"
        );
        let live = LockInfo {
            host: hostname().to_lowercase(),
            heartbeat: "2020-01-01T00:00:00.000Z".into(),
            ..LockInfo::ours("live")
        };
        assert!(!live.is_stale(), "a live holder's lock needs no heartbeat");
    }

    #[test]
    fn another_hosts_lock_is_stale_only_when_its_heartbeat_stopped() {
        let fresh = LockInfo {
            host: "elsewhere".into(),
            ..LockInfo::ours("x")
        };
        assert!(!fresh.is_stale());
        let old = LockInfo {
            heartbeat: "2020-01-01T00:00:00.000Z".into(),
            ..fresh
        };
        assert!(old.is_stale());
    }

    #[cfg(unix)]
    #[test]
    fn an_unwritable_folder_is_reported_as_such() {
        use std::os::unix::fs::PermissionsExt;
        if unsafe { libc::geteuid() } == 0 {
            // root writes anywhere: use a read-only bind of nothing instead.
            let e = acquire(Path::new("/proc/wsusfix-test/lock"), "r1").unwrap_err();
            assert!(!matches!(e, LockError::Held { .. }), "{e}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
        let e = acquire(&dir.path().join("lock"), "r1").unwrap_err();
        assert!(matches!(e, LockError::Unwritable { .. }), "{e}");
        assert!(e.to_string().starts_with("cannot write the lock in"), "{e}");
    }
}
