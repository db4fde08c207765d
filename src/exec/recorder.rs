//! The one write path of a run: [`Recorder::record`] appends a record to the journal, applies it
//! to the run's replayed [`Progress`] once it is durable, then emits the event that goes with
//! it. Its error is never dropped: the first failed append marks the journal failed, which stops
//! the run from making further changes (docs/journal-format.md, "When the journal fails").
//!
//! Because the progress only ever sees durable records, it is exactly what a replay of the
//! journal would give, and the recap can be drawn from it even when the file can no longer be
//! read back.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::{mpsc, watch};

use super::events::Event;
use crate::core::replay::Progress;
use crate::journal::record::Record;
use crate::journal::writer::JournalWriter;

/// A journal append that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write the journal {path}: {error}")]
pub struct JournalFailure {
    /// The journal.
    pub path: String,
    /// The write error.
    pub error: String,
}

/// The journal, the replayed progress and the event channel of a run.
#[derive(Debug)]
pub struct Recorder {
    journal: JournalWriter,
    events: mpsc::UnboundedSender<Event>,
    progress: Mutex<Progress>,
    failed: watch::Sender<Option<JournalFailure>>,
    /// Obligations restored on their server whose closing record the journal could not take.
    unjournaled: Mutex<BTreeSet<String>>,
}

impl Recorder {
    /// A recorder over `journal` whose records so far replay to `progress`.
    pub fn new(
        journal: JournalWriter,
        progress: Progress,
        events: mpsc::UnboundedSender<Event>,
    ) -> Recorder {
        Recorder {
            journal,
            events,
            progress: Mutex::new(progress),
            failed: watch::channel(None).0,
            unjournaled: Mutex::new(BTreeSet::new()),
        }
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        self.journal.path()
    }

    /// The journal's path, owned.
    pub fn path_buf(&self) -> PathBuf {
        self.journal.path().to_path_buf()
    }

    /// Appends `rec`, then emits `event`. On failure the event is not emitted, the journal is
    /// marked failed and the error is returned.
    pub async fn record(&self, rec: Record, event: Option<Event>) -> Result<(), JournalFailure> {
        match self.journal.append(&rec).await {
            Ok(()) => {
                if let Ok(mut p) = self.progress.lock() {
                    p.apply(&rec);
                }
                if let Some(e) = event {
                    self.emit(e);
                }
                Ok(())
            }
            Err(e) => {
                let failure = JournalFailure {
                    path: self.journal.path().display().to_string(),
                    error: e.to_string(),
                };
                let first = self.failed.borrow().is_none();
                if first {
                    self.failed.send_replace(Some(failure.clone()));
                    self.emit(Event::JournalFailed {
                        journal: failure.path.clone(),
                        error: failure.error.clone(),
                    });
                }
                Err(failure)
            }
        }
    }

    /// Emits an event that has no record.
    pub fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// The first failed append, if any.
    pub fn failure(&self) -> Option<JournalFailure> {
        self.failed.borrow().clone()
    }

    /// Watches for the first failed append.
    pub fn watch_failure(&self) -> watch::Receiver<Option<JournalFailure>> {
        self.failed.subscribe()
    }

    /// A copy of the progress replayed from every durable record.
    pub fn progress(&self) -> Progress {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Reads the progress without copying it.
    pub fn with_progress<T>(&self, f: impl FnOnce(&Progress) -> T) -> T {
        match self.progress.lock() {
            Ok(p) => f(&p),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Notes that `id` was restored on its server but its closing record could not be written.
    pub fn restored_unjournaled(&self, id: &str) {
        if let Ok(mut s) = self.unjournaled.lock() {
            s.insert(id.to_string());
        }
    }

    /// Obligations restored on their server whose closing record the journal could not take.
    pub fn unjournaled(&self) -> BTreeSet<String> {
        self.unjournaled
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }
}
