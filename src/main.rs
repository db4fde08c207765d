fn main() {
    #[cfg(unix)]
    raise_open_files_limit();
    std::process::exit(wsusfix::cli::main());
}

/// A run keeps one WinRM connection per server, and the simulator a listener and a connection
/// per host: lift the soft limit on open files to the hard one (the soft default is often 1024).
/// Windows has no such limit on sockets.
#[cfg(unix)]
fn raise_open_files_limit() {
    // SAFETY: getrlimit and setrlimit read and write a struct we own.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}
