//! The journal writer: append-only, one JSON line per record, and every record on disk (fsync)
//! before `append` returns. Appends from many tasks are group-committed by one writer thread: the
//! records that arrive while a sync is in flight share the next one, so durability costs one
//! fsync per batch, not per record, without ever acknowledging a record early.
//!
//! A failed write never leaves a torn record behind a good one: the file is cut back to the end
//! of the last durable record before anything else is written. When even that fails, or a sync
//! fails (the kernel may have dropped the data), the writer takes no more records: every later
//! append fails, and the caller makes no more changes.
//!
//! A new journal appears whole: its header is written to a temporary file, synced and renamed
//! into place, so a start refused by a full disk leaves no headerless journal behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::record::Record;
use crate::util::platform::{cut_back, open_owner_only, rename_durable};

struct Req {
    line: Vec<u8>,
    done: oneshot::Sender<io::Result<()>>,
}

impl std::fmt::Debug for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Req")
    }
}

/// An open journal.
#[derive(Debug, Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Req>,
    path: PathBuf,
}

fn encode(rec: &Record) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(rec).map_err(io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

impl JournalWriter {
    /// Creates a new journal whose first line is `header`: written to a temporary file (owner
    /// only), synced, and renamed into place durably (the folder synced on Unix, a
    /// write-through move on Windows). On failure nothing is left behind.
    pub fn create(path: &Path, header: &Record) -> io::Result<JournalWriter> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.new"));
        let written = (|| {
            let mut f = open_owner_only(OpenOptions::new().create_new(true).write(true), &tmp)?;
            f.write_all(&encode(header)?)?;
            f.sync_data()?;
            drop(f);
            if path.exists() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} already exists", path.display()),
                ));
            }
            rename_durable(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        faults::after_durable(1);
        let f = OpenOptions::new().append(true).open(path)?;
        let len = f.metadata()?.len();
        Ok(Self::spawn(f, path, len))
    }

    /// Opens an existing journal for appending. `append_at` is where its readable records end
    /// (from the reader): a torn last line beyond it is cut off first.
    pub fn reopen(path: &Path, append_at: u64) -> io::Result<JournalWriter> {
        let f = OpenOptions::new().append(true).open(path)?;
        if f.metadata()?.len() > append_at {
            cut_back(&f, path, append_at)?;
        }
        Ok(Self::spawn(f, path, append_at))
    }

    fn spawn(mut file: File, path: &Path, len: u64) -> JournalWriter {
        let (tx, rx) = mpsc::channel::<Req>();
        let name = format!("journal:{}", path.display());
        let cut_path = path.to_path_buf();
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let mut good_len = len;
            let mut dead: Option<String> = None;
            let one_at_a_time = faults::active();
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while !one_at_a_time && let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let res = match &dead {
                    Some(why) => Err(io::Error::other(why.clone())),
                    None => {
                        let mut buf = Vec::new();
                        for r in &batch {
                            buf.extend_from_slice(&r.line);
                        }
                        match write_batch(&mut file, &buf, batch.len()) {
                            Ok(()) => {
                                good_len += buf.len() as u64;
                                faults::after_durable(batch.len());
                                Ok(())
                            }
                            Err(Failure::Write(e)) => {
                                // Cut back to the last durable record, so that nothing later
                                // lands behind half a record.
                                if let Err(t) = cut_back(&file, &cut_path, good_len) {
                                    dead = Some(format!(
                                        "the journal takes no more records: a write failed ({e}) and the file could not be cut back ({t})"
                                    ));
                                }
                                Err(e)
                            }
                            Err(Failure::Sync(e)) => {
                                dead = Some(format!(
                                    "the journal takes no more records: a sync failed ({e})"
                                ));
                                Err(e)
                            }
                        }
                    }
                };
                for r in batch {
                    let _ = r.done.send(match &res {
                        Ok(()) => Ok(()),
                        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    });
                }
            }
        });
        if let Err(e) = spawned {
            // Without a writer thread every append fails with this error.
            tracing::error!("cannot start the journal writer: {e}");
        }
        JournalWriter {
            tx,
            path: path.to_path_buf(),
        }
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn submit(&self, rec: &Record) -> io::Result<oneshot::Receiver<io::Result<()>>> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Req {
                line: encode(rec)?,
                done,
            })
            .map_err(|_| io::Error::other("the journal writer has stopped"))?;
        Ok(rx)
    }

    /// Appends a record; returns once it is on disk.
    pub async fn append(&self, rec: &Record) -> io::Result<()> {
        self.submit(rec)?
            .await
            .map_err(|_| io::Error::other("the journal writer has stopped"))?
    }

    /// Appends a record from synchronous code; returns once it is on disk.
    pub fn append_blocking(&self, rec: &Record) -> io::Result<()> {
        self.submit(rec)?
            .blocking_recv()
            .map_err(|_| io::Error::other("the journal writer has stopped"))?
    }
}

enum Failure {
    Write(io::Error),
    Sync(io::Error),
}

fn write_batch(file: &mut File, buf: &[u8], records: usize) -> Result<(), Failure> {
    if let Some(part) = faults::failing_write(records) {
        // An injected failure writes part of the batch first, as a full disk does.
        let _ = file.write_all(&buf[..part.min(buf.len())]);
        return Err(Failure::Write(io::Error::new(
            io::ErrorKind::StorageFull,
            "No space left on device (injected)",
        )));
    }
    file.write_all(buf).map_err(Failure::Write)?;
    file.sync_data().map_err(Failure::Sync)
}

/// Fault injection for the crash and full-disk tests, in debug builds only (release builds
/// compile it to nothing). `WSUSFIX_TEST_CRASH_AFTER_RECORD=N` kills the process (SIGKILL)
/// right after its Nth durable record; `WSUSFIX_TEST_JOURNAL_FULL=N:K` makes the writes of this
/// process's records N+1 to N+K fail half-way with "no space left on device".
mod faults {
    #[cfg(debug_assertions)]
    mod imp {
        use std::sync::OnceLock;
        use std::sync::atomic::{AtomicU64, Ordering};

        struct Plan {
            crash_after: Option<u64>,
            full: Option<(u64, u64)>,
        }

        static DURABLE: AtomicU64 = AtomicU64::new(0);
        static ATTEMPTED: AtomicU64 = AtomicU64::new(0);

        fn plan() -> &'static Plan {
            static PLAN: OnceLock<Plan> = OnceLock::new();
            PLAN.get_or_init(|| Plan {
                crash_after: std::env::var("WSUSFIX_TEST_CRASH_AFTER_RECORD")
                    .ok()
                    .and_then(|v| v.parse().ok()),
                full: std::env::var("WSUSFIX_TEST_JOURNAL_FULL")
                    .ok()
                    .and_then(|v| {
                        let (n, k) = v.split_once(':')?;
                        Some((n.parse().ok()?, k.parse().ok()?))
                    }),
            })
        }

        pub fn active() -> bool {
            let p = plan();
            p.crash_after.is_some() || p.full.is_some()
        }

        pub fn after_durable(records: usize) {
            let n = DURABLE.fetch_add(records as u64, Ordering::SeqCst) + records as u64;
            if plan().crash_after.is_some_and(|c| n >= c) {
                crash();
            }
        }

        pub fn failing_write(records: usize) -> Option<usize> {
            let (after, count) = plan().full?;
            let first = ATTEMPTED.fetch_add(records as u64, Ordering::SeqCst) + 1;
            // The header of a new journal is record 1 and is not written by the thread.
            let first = first + 1;
            (first > after && first <= after + count).then_some(37)
        }

        fn crash() -> ! {
            #[cfg(unix)]
            // SAFETY: sends SIGKILL to this very process, as `kill -9` would.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            std::process::abort()
        }
    }

    #[cfg(not(debug_assertions))]
    mod imp {
        pub fn active() -> bool {
            false
        }
        pub fn after_durable(_records: usize) {}
        pub fn failing_write(_records: usize) -> Option<usize> {
            None
        }
    }

    pub use imp::{active, after_durable, failing_write};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::reader;
    use crate::journal::record::{Closure, Obligation, now};

    fn hold() -> Record {
        Record::ObligationOpened {
            obligation: Obligation::ReplicaHold { server: "b".into() },
            at: now(),
        }
    }

    #[test]
    fn the_writer_appends_durably_and_reopens_after_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs").join("r1.jsonl");
        let w = JournalWriter::create(&path, &reader::tests_header()).unwrap();
        w.append_blocking(&hold()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        drop(w);
        // A crash in the middle of a write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"obligation-clo").unwrap();
        let j = reader::read(&path).unwrap();
        assert!(!j.damage.is_empty() && j.only_torn_tail());
        let w = JournalWriter::reopen(&path, j.append_at).unwrap();
        w.append_blocking(&Record::ObligationClosed {
            id: "replica-hold:b".into(),
            how: Closure::Restored,
            at: now(),
        })
        .unwrap();
        let j = reader::read(&path).unwrap();
        assert!(j.damage.is_empty());
        assert_eq!(j.records.len(), 3);
        assert!(j.progress().open_obligations().is_empty());
        // No temporary file is left beside it.
        let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["r1.jsonl"]);
    }

    #[test]
    fn a_journal_that_exists_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r1.jsonl");
        std::fs::write(&path, "keep").unwrap();
        assert!(JournalWriter::create(&path, &reader::tests_header()).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
