//! The inventory lock: one run at a time per inventory. The lock file names its run, process,
//! host and a heartbeat. A lock whose process is gone (same host) or whose heartbeat stopped
//! (another host) is stale; it may be taken over only after the caller has drained the open
//! obligations of the run that held it (`take_over` checks that it replaces exactly that lock).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// The holder is gone; its obligations must be drained before taking over.
    #[error("run {} (pid {} on {}) left a stale lock {}", .info.run_id, .info.pid, .info.host, .path.display())]
    Stale {
        /// The former holder.
        info: Box<LockInfo>,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be read or written.
    #[error("lock {}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl LockInfo {
    /// The lock of `run_id` in this process, taken now.
    fn ours(run_id: &str) -> LockInfo {
        let now = super::record::now();
        LockInfo {
            run_id: run_id.to_string(),
            pid: std::process::id(),
            host: hostname(),
            started: now.clone(),
            heartbeat: now,
        }
    }

    /// True when its holder is gone.
    pub fn is_stale(&self) -> bool {
        if self.host == hostname() {
            return self.pid != std::process::id() && !pid_alive(self.pid);
        }
        match chrono::DateTime::parse_from_rfc3339(&self.heartbeat) {
            Ok(t) => (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .to_std()
                .is_ok_and(|age| age > STALE_AFTER),
            Err(_) => true,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_replace(path: &Path, info: &LockInfo) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec(info).map_err(io::Error::other)?)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads a lock file, if there is one.
pub fn read(path: &Path) -> Result<Option<LockInfo>, LockError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| io_err(path)(io::Error::new(io::ErrorKind::InvalidData, e))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
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
        let _ = std::thread::Builder::new().name("lock-heartbeat".into()).spawn(move || {
            let mut info = i;
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(250));
                let due = chrono::DateTime::parse_from_rfc3339(&info.heartbeat)
                    .map(|t| chrono::Utc::now() - t.with_timezone(&chrono::Utc) > chrono::Duration::from_std(HEARTBEAT_EVERY).unwrap_or_default())
                    .unwrap_or(true);
                if due && !s.load(Ordering::Relaxed) {
                    info.heartbeat = super::record::now();
                    // Only refresh a lock that is still ours.
                    if matches!(read(&p), Ok(Some(cur)) if cur.run_id == info.run_id && cur.pid == info.pid) {
                        let _ = write_replace(&p, &info);
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
        if matches!(read(&self.path), Ok(Some(cur)) if cur.run_id == self.info.run_id && cur.pid == self.info.pid)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Takes the lock at `path` for `run_id`.
pub fn acquire(path: &Path, run_id: &str) -> Result<RunLock, LockError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(path))?;
    }
    let info = LockInfo::ours(run_id);
    let created = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(mut f) => {
            f.write_all(&serde_json::to_vec(&info).map_err(|e| io_err(path)(io::Error::other(e)))?)
                .and_then(|()| f.sync_data())
                .map_err(io_err(path))?;
            Ok(RunLock::start(path.to_path_buf(), info))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read(path)? {
            // Removed between our attempt and the read: try once more.
            None => acquire(path, run_id),
            Some(held) if held.is_stale() => Err(LockError::Stale {
                info: Box::new(held),
                path: path.to_path_buf(),
            }),
            Some(held) => Err(LockError::Held {
                info: Box::new(held),
                path: path.to_path_buf(),
            }),
        },
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Replaces the stale lock `expected` (whose obligations the caller has drained) with one for
/// `run_id`. Fails if the lock changed meanwhile (someone else took over).
pub fn take_over(path: &Path, expected: &LockInfo, run_id: &str) -> Result<RunLock, LockError> {
    let guard_path = path.with_extension("takeover");
    let guard = OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&guard_path);
    if guard.is_err() {
        return match read(path)? {
            Some(info) => Err(LockError::Held {
                info: Box::new(info),
                path: path.to_path_buf(),
            }),
            None => acquire(path, run_id),
        };
    }
    let result = (|| match read(path)? {
        Some(cur) if &cur == expected => {
            let info = LockInfo::ours(run_id);
            write_replace(path, &info).map_err(io_err(path))?;
            Ok(RunLock::start(path.to_path_buf(), info))
        }
        Some(cur) => Err(LockError::Held {
            info: Box::new(cur),
            path: path.to_path_buf(),
        }),
        None => acquire(path, run_id),
    })();
    let _ = std::fs::remove_file(&guard_path);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = acquire(&path, "r1").unwrap();
        // Our own pid is alive: the lock is held, not stale.
        let mut other = read(&path).unwrap().unwrap();
        assert_eq!(other.run_id, "r1");
        other.pid = std::process::id();
        match acquire(&path, "r2") {
            Err(LockError::Held { info, .. }) => assert_eq!(info.run_id, "r1"),
            other => panic!("{other:?}"),
        }
        drop(held);
        assert!(!path.exists());
        let _again = acquire(&path, "r3").unwrap();
    }

    #[test]
    fn a_dead_holder_leaves_a_stale_lock_that_can_be_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        // A process that has exited: its pid is free.
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let mut child = child;
        child.wait().unwrap();
        let stale = LockInfo {
            run_id: "dead".into(),
            pid,
            host: hostname(),
            started: super::super::record::now(),
            heartbeat: super::super::record::now(),
        };
        std::fs::write(&path, serde_json::to_vec(&stale).unwrap()).unwrap();
        let info = match acquire(&path, "r2") {
            Err(LockError::Stale { info, .. }) => info,
            other => panic!("{other:?}"),
        };
        assert_eq!(info.run_id, "dead");
        let lock = take_over(&path, &info, "r2").unwrap();
        assert_eq!(read(&path).unwrap().unwrap().run_id, "r2");
        assert_eq!(lock.info().run_id, "r2");
        // Taking over a lock that changed meanwhile is refused.
        assert!(matches!(
            take_over(&path, &info, "r3"),
            Err(LockError::Held { .. })
        ));
    }

    #[test]
    fn another_hosts_lock_is_stale_only_when_its_heartbeat_stopped() {
        let fresh = LockInfo {
            run_id: "x".into(),
            pid: 1,
            host: "elsewhere".into(),
            started: super::super::record::now(),
            heartbeat: super::super::record::now(),
        };
        assert!(!fresh.is_stale());
        let old = LockInfo {
            heartbeat: "2020-01-01T00:00:00.000Z".into(),
            ..fresh
        };
        assert!(old.is_stale());
    }
}
