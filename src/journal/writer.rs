//! The journal writer: append-only, one JSON line per record, and every record on disk (fsync)
//! before `append` returns. Appends from many tasks are group-committed by one writer thread: the
//! records that arrive while a sync is in flight share the next one, so durability costs one
//! fsync per batch, not per record, without ever acknowledging a record early.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::oneshot;

use super::record::Record;

struct Req {
    line: Vec<u8>,
    done: oneshot::Sender<io::Result<()>>,
}

/// An open journal.
#[derive(Debug, Clone)]
pub struct JournalWriter {
    tx: mpsc::Sender<Req>,
    path: PathBuf,
}

impl std::fmt::Debug for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Req")
    }
}

fn sync_dir(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn encode(rec: &Record) -> io::Result<Vec<u8>> {
    let mut line = serde_json::to_vec(rec).map_err(io::Error::other)?;
    line.push(b'\n');
    Ok(line)
}

impl JournalWriter {
    /// Creates a new journal (mode 0600) whose first line is `header`, synced with its folder.
    pub fn create(path: &Path, header: &Record) -> io::Result<JournalWriter> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(&encode(header)?)?;
        f.sync_data()?;
        sync_dir(path)?;
        Ok(Self::spawn(f, path))
    }

    /// Opens an existing journal for appending. `valid_len` is the length of its valid prefix
    /// (from the reader): a torn last line beyond it is cut off first.
    pub fn reopen(path: &Path, valid_len: u64) -> io::Result<JournalWriter> {
        let f = OpenOptions::new().append(true).open(path)?;
        if f.metadata()?.len() > valid_len {
            f.set_len(valid_len)?;
            f.sync_data()?;
        }
        Ok(Self::spawn(f, path))
    }

    fn spawn(mut file: File, path: &Path) -> JournalWriter {
        let (tx, rx) = mpsc::channel::<Req>();
        let name = format!("journal:{}", path.display());
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let mut buf = Vec::new();
                for r in &batch {
                    buf.extend_from_slice(&r.line);
                }
                let res = file.write_all(&buf).and_then(|()| file.sync_data());
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
