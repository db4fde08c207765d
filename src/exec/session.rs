//! A run's whole life, in one place, for `apply`, `resume`, `restore`, `demo` and `bench`: take
//! the inventory's lock (a stale one only after draining what the run that left it still held),
//! restore what earlier runs left open, write the header (or reopen the journal), replay it,
//! decide what each server does ([`crate::core::resume`]), execute, then end the run and build
//! its recap. The commands load inputs, call [`Session::run`] and print; the exit code is
//! [`Outcome::exit_code`], and nowhere else.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::connect::Connector;
use super::events::Event;
use super::recorder::Recorder;
use super::run::{self, Executed, Job, RunConfig, Signals};
use crate::core::inventory::Inventory;
use crate::core::plan::{self, Plan};
use crate::core::playbook::Playbook;
use crate::core::replay::{Progress, RunInfo, settled};
use crate::core::resume::{self, Mode, Turn};
use crate::exit;
use crate::journal::lock::{self, LockError, RunLock, StaleHolder};
use crate::journal::paths::{self, RunDir};
use crate::journal::reader::{self, HeaderState, Journal};
use crate::journal::record::{JOURNAL_FORMAT_VERSION, Record, RunResult, Signal, now};
use crate::journal::writer::JournalWriter;
use crate::report::Sink;
use crate::report::recap::{Recap, RecapInput};
use crate::winrm::TransportStats;

/// What a command asks of a run.
#[derive(Debug, Clone)]
pub enum Start {
    /// A new run of this plan (`apply`), with its ID ([`paths::new_run_id`]).
    Fresh(Box<Plan>, String),
    /// Pick an interrupted run up and finish it (`resume`).
    Resume(String),
    /// Close the open obligations of a run, nothing else (`restore`).
    Restore(String),
    /// Without a journal: a new run that records these temporary changes, found in live facts,
    /// and undoes them (`restore --from-facts`).
    FromFacts(Vec<crate::journal::record::Obligation>, String),
}

impl Start {
    fn command(&self) -> &'static str {
        match self {
            Start::Fresh(..) => "apply",
            Start::Resume(_) => "resume",
            Start::Restore(_) | Start::FromFacts(..) => "restore",
        }
    }
}

/// The inputs a run is made of.
#[derive(Debug, Clone, Copy)]
pub struct RunInputs<'a> {
    /// The inventory.
    pub inventory: &'a Inventory,
    /// The playbook.
    pub playbook: &'a Playbook,
    /// The inventory file (recorded in the header as an absolute path).
    pub inventory_path: &'a Path,
    /// The playbook file (none: the built-in one).
    pub playbook_path: Option<&'a Path>,
}

/// Why a run did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another live run holds the inventory's lock.
    Locked {
        /// In words.
        message: String,
    },
    /// The run folder cannot be written.
    Unwritable {
        /// In words.
        message: String,
    },
    /// An earlier run still holds temporary changes that could not be restored.
    EarlierRestoresPending {
        /// That run.
        run_id: String,
        /// Its servers still held.
        servers: Vec<String>,
        /// The restore error.
        message: String,
    },
    /// The journal could not be created or reopened.
    Journal {
        /// In words.
        message: String,
    },
    /// The run to pick up was made from other inputs.
    Stale {
        /// In words.
        message: String,
    },
    /// The run cannot be resumed as asked (its header is lost, a newer format).
    CannotResume {
        /// In words.
        message: String,
    },
}

impl Refusal {
    /// The message, with a help line where one helps.
    pub fn message(&self) -> String {
        match self {
            Refusal::Locked { message } => format!(
                "{message}\n  = help: wait for it to finish, or stop it (Ctrl-C or SIGTERM lets it restore)"
            ),
            Refusal::Unwritable { message } => format!(
                "{message}\n  = help: choose a folder you can write with --state-dir or WSUSFIX_STATE_DIR"
            ),
            Refusal::EarlierRestoresPending {
                run_id,
                servers,
                message,
            } => format!(
                "run {run_id} still holds temporary changes on {} ({message}); nothing new was started\n  = help: run `wsusfix restore {run_id}` once the servers are reachable; without a usable journal, `wsusfix restore -i INV --from-facts` switches back every replica the inventory names",
                servers.join(", ")
            ),
            Refusal::Journal { message }
            | Refusal::Stale { message }
            | Refusal::CannotResume { message } => message.clone(),
        }
    }
}

/// How a run command ended.
#[derive(Debug)]
pub enum Outcome {
    /// The run ran (fully or not).
    Ran(Box<Ran>),
    /// It did not start.
    Refused(Refusal),
}

/// A run that ran.
#[derive(Debug)]
pub struct Ran {
    /// The run's ID.
    pub run_id: String,
    /// How it ended.
    pub result: RunResult,
    /// The signal that stopped it, if one did.
    pub signal: Option<Signal>,
    /// The recap.
    pub recap: Recap,
    /// Traffic per host.
    pub stats: Vec<(String, TransportStats)>,
    /// The journal's path.
    pub journal: PathBuf,
}

impl Outcome {
    /// The process exit code (docs/exit-codes.md): chosen here and nowhere else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Ran(r) => result_code(r.result, r.signal),
            Outcome::Refused(r) => match r {
                Refusal::Locked { .. } => exit::LOCKED,
                Refusal::EarlierRestoresPending { .. } => exit::RESTORES_PENDING,
                Refusal::Stale { .. } => exit::STALE,
                Refusal::CannotResume { .. } => exit::INVALID,
                Refusal::Unwritable { .. } | Refusal::Journal { .. } => exit::ERROR,
            },
        }
    }
}

fn result_code(result: RunResult, signal: Option<Signal>) -> i32 {
    match result {
        RunResult::RestoresPending => exit::RESTORES_PENDING,
        RunResult::JournalFailed => exit::ERROR,
        RunResult::Interrupted => 128 + signal.unwrap_or_default().number(),
        RunResult::Partial => exit::FINDINGS,
        RunResult::Done | RunResult::Restored => exit::OK,
    }
}

/// A run of one inventory's run folder.
pub struct Session<C: Connector> {
    /// The run folder (lock and journals).
    pub run_dir: RunDir,
    /// Connections.
    pub connector: Arc<C>,
    /// How to run.
    pub config: RunConfig,
}

fn run_finished(result: RunResult) -> Record {
    Record::RunFinished { result, at: now() }
}

impl<C: Connector> Session<C> {
    /// Runs what `start` asks, reporting to `sink`.
    pub async fn run(
        &self,
        start: Start,
        inputs: RunInputs<'_>,
        signals: watch::Receiver<Signals>,
        sink: &mut dyn Sink,
    ) -> Outcome {
        let t0 = Instant::now();
        let command = start.command();
        let (run_id, mode) = match &start {
            Start::Fresh(_, id) => (id.clone(), Mode::Run),
            Start::Resume(id) => (id.clone(), Mode::Run),
            Start::Restore(id) => (id.clone(), Mode::RestoreOnly),
            Start::FromFacts(_, id) => (id.clone(), Mode::RestoreOnly),
        };
        // The journal to pick up, read before the lock (a refusal should not take it).
        let opened = match start {
            Start::Fresh(plan, _) => Opened::Fresh(plan, Vec::new()),
            Start::FromFacts(found, _) => {
                let mut plan = Plan::empty();
                plan.fingerprint = plan::fingerprint(inputs.inventory, inputs.playbook);
                Opened::Fresh(Box::new(plan), found)
            }
            Start::Resume(id) | Start::Restore(id) => match self.pick_up(&id, mode, inputs) {
                Ok(p) => Opened::Picked(Box::new(p)),
                Err(r) => return Outcome::Refused(r),
            },
        };
        let _lock = match self.lock(&run_id, inputs, sink).await {
            Ok(l) => l,
            Err(r) => return Outcome::Refused(r),
        };
        // Temporary changes earlier runs could not undo come first.
        if let Err(r) = self.drain_others(&run_id, inputs, sink).await {
            return Outcome::Refused(r);
        }
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (plan, recorder) = match opened {
            Opened::Fresh(plan, found) => {
                let header = Record::Header {
                    format_version: JOURNAL_FORMAT_VERSION,
                    run_id: run_id.clone(),
                    fingerprint: plan.fingerprint.clone(),
                    tool_version: plan::TOOL_VERSION.to_string(),
                    inventory: paths::absolute(inputs.inventory_path).display().to_string(),
                    playbook: inputs
                        .playbook_path
                        .map(|p| paths::absolute(p).display().to_string()),
                    at: now(),
                    plan: plan.clone(),
                };
                let path = self.run_dir.journal(&run_id);
                let writer = match JournalWriter::create(&path, &header) {
                    Ok(w) => w,
                    Err(e) => {
                        return Outcome::Refused(Refusal::Journal {
                            message: format!(
                                "cannot create the journal {}: {e}; nothing was started",
                                path.display()
                            ),
                        });
                    }
                };
                let recorder = Recorder::new(writer, Progress::default(), events_tx);
                for ob in found {
                    // What the facts show is recorded as the obligation it is, then undone.
                    if let Err(e) = recorder
                        .record(
                            Record::ObligationOpened {
                                obligation: ob,
                                at: now(),
                            },
                            None,
                        )
                        .await
                    {
                        return Outcome::Refused(Refusal::Journal {
                            message: format!("{e}; nothing was restored"),
                        });
                    }
                }
                (*plan, recorder)
            }
            Opened::Picked(p) => {
                let p = *p;
                let writer = match JournalWriter::reopen(&p.path, p.journal.append_at) {
                    Ok(w) => w,
                    Err(e) => {
                        return Outcome::Refused(Refusal::Journal {
                            message: format!("cannot reopen the journal {}: {e}", p.path.display()),
                        });
                    }
                };
                let recorder = Recorder::new(writer, p.journal.progress(), events_tx);
                for d in p.journal.damage_report() {
                    sink.event(&Event::Warning { message: d });
                }
                if let Err(e) = recorder
                    .record(
                        Record::Resumed {
                            by: command.into(),
                            pid: std::process::id(),
                            at: now(),
                        },
                        None,
                    )
                    .await
                {
                    return Outcome::Refused(Refusal::Journal {
                        message: format!("{e}; nothing was started"),
                    });
                }
                (p.plan, recorder)
            }
        };
        let recorder = Arc::new(recorder);
        let decisions = resume::decide(&plan, &recorder.progress(), mode);
        let executed = run::execute(
            Job {
                command,
                plan: &plan,
                inventory: inputs.inventory,
                playbook: inputs.playbook,
                decisions: &decisions,
                recorder: recorder.clone(),
                connector: self.connector.clone(),
                signals,
            },
            self.config.clone(),
            events_rx,
            sink,
        )
        .await;
        self.conclude(
            &run_id, mode, &plan, &decisions, &recorder, executed, t0, sink,
        )
        .await
    }

    /// Ends the run: its result, its closing record, its recap.
    #[allow(clippy::too_many_arguments)]
    async fn conclude(
        &self,
        run_id: &str,
        mode: Mode,
        plan: &Plan,
        decisions: &resume::ResumePlan,
        recorder: &Recorder,
        executed: Executed,
        t0: Instant,
        sink: &mut dyn Sink,
    ) -> Outcome {
        let progress = recorder.progress();
        let unjournaled = recorder.unjournaled();
        let pending = !progress.open_obligations().is_empty();
        let worked: BTreeSet<&str> = decisions
            .servers
            .iter()
            .filter(|d| !matches!(d.turn, Turn::LeaveAlone))
            .map(|d| d.server.as_str())
            .collect();
        let unsettled = plan
            .servers
            .iter()
            .filter(|s| worked.contains(s.name.as_str()))
            .any(|s| !settled(progress.servers.get(&s.name).and_then(|p| p.end.as_ref())));
        let signal = (executed.signals.count > 0).then_some(executed.signals.last);
        let result = if pending {
            RunResult::RestoresPending
        } else if recorder.failure().is_some() {
            RunResult::JournalFailed
        } else if signal.is_some() {
            RunResult::Interrupted
        } else if mode == Mode::RestoreOnly {
            RunResult::Restored
        } else if unsettled {
            RunResult::Partial
        } else {
            RunResult::Done
        };
        // Nothing more happens after the closing record; a journal that cannot take it has
        // already been reported.
        let _ = recorder.record(run_finished(result), None).await;
        let code = result_code(result, signal);
        let duration_ms = t0.elapsed().as_millis() as u64;
        sink.event(&Event::RunFinished {
            result,
            exit_code: code,
            duration_ms,
        });
        let failure = recorder.failure().map(|f| f.to_string());
        let recap = Recap::build(RecapInput {
            run_id,
            plan,
            progress: &progress,
            durations: &executed.durations,
            unjournaled: &unjournaled,
            result,
            exit_code: code,
            duration_ms,
            journal_failure: failure.as_deref(),
        });
        sink.recap(&recap);
        Outcome::Ran(Box::new(Ran {
            run_id: run_id.to_string(),
            result,
            signal,
            recap,
            stats: executed.stats,
            journal: recorder.path_buf(),
        }))
    }

    /// Reads the journal of a run to pick up and checks it may be.
    fn pick_up(
        &self,
        run_id: &str,
        mode: Mode,
        inputs: RunInputs<'_>,
    ) -> Result<PickedUp, Refusal> {
        let path = self.run_dir.journal(run_id);
        let journal = reader::read(&path).map_err(|e| Refusal::Journal {
            message: e.to_string(),
        })?;
        if let HeaderState::Unsupported { found } = journal.header {
            return Err(Refusal::CannotResume {
                message: format!(
                    "{} has journal format {found}, written by a newer wsusfix; this one reads formats {}..={JOURNAL_FORMAT_VERSION}",
                    path.display(),
                    crate::journal::record::OLDEST_READABLE_FORMAT
                ),
            });
        }
        let info = journal.info();
        let plan = match (&info, mode) {
            (Some(i), Mode::Run) => {
                let fresh = plan::fingerprint(inputs.inventory, inputs.playbook);
                if fresh != i.fingerprint {
                    return Err(Refusal::Stale {
                        message: format!(
                            "run {} was made for fingerprint {}, and {} with its playbook now gives {}: the inputs changed since\n  = help: `wsusfix restore {}` still closes its open obligations; start a new run with `wsusfix apply`",
                            i.run_id,
                            &i.fingerprint[..12.min(i.fingerprint.len())],
                            i.inventory,
                            &fresh[..12],
                            i.run_id
                        ),
                    });
                }
                i.plan.clone()
            }
            (Some(i), Mode::RestoreOnly) => i.plan.clone(),
            (None, Mode::Run) => {
                return Err(Refusal::CannotResume {
                    message: format!(
                        "{}: the journal's header is {}, so its plan is unknown and the run cannot be resumed\n  = help: `wsusfix restore {run_id} -i INV` still closes the obligations its records show; then start a new run with `wsusfix apply`",
                        path.display(),
                        if journal.is_refused_start() {
                            "missing (the run never started)"
                        } else {
                            "damaged"
                        }
                    ),
                });
            }
            (None, Mode::RestoreOnly) => Plan::empty(),
        };
        Ok(PickedUp {
            path,
            journal,
            plan,
        })
    }

    /// Takes the inventory's lock for `run_id`. A stale lock is taken over only after the open
    /// obligations of every run of this folder are drained.
    async fn lock(
        &self,
        run_id: &str,
        inputs: RunInputs<'_>,
        sink: &mut dyn Sink,
    ) -> Result<RunLock, Refusal> {
        let path = self.run_dir.lock();
        match lock::acquire(&path, run_id) {
            Ok(l) => Ok(l),
            Err(e @ (LockError::Held { .. } | LockError::TakingOver { .. })) => {
                Err(Refusal::Locked {
                    message: e.to_string(),
                })
            }
            Err(LockError::Stale { holder, path }) => {
                sink.event(&Event::Warning {
                    message: match &holder {
                        StaleHolder::Run(i) => format!(
                            "run {} (pid {} on {}) is gone but left its lock; taking it over",
                            i.run_id, i.pid, i.host
                        ),
                        StaleHolder::Unknown { why } => format!(
                            "the lock {} is damaged ({why}); taking it over",
                            path.display()
                        ),
                    },
                });
                if holder.run_id() != Some(run_id) {
                    self.drain_others(run_id, inputs, sink).await?;
                }
                lock::take_over(&path, &holder, run_id).map_err(|e| match e {
                    LockError::Unwritable { .. } => Refusal::Unwritable {
                        message: e.to_string(),
                    },
                    other => Refusal::Locked {
                        message: other.to_string(),
                    },
                })
            }
            Err(e @ LockError::Unwritable { .. }) => Err(Refusal::Unwritable {
                message: e.to_string(),
            }),
            Err(e @ LockError::Io { .. }) => Err(Refusal::Unwritable {
                message: e.to_string(),
            }),
        }
    }

    /// Closes the open obligations of every other run of this folder.
    async fn drain_others(
        &self,
        run_id: &str,
        inputs: RunInputs<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), Refusal> {
        for old in self.run_dir.runs() {
            if old == run_id {
                continue;
            }
            let path = self.run_dir.journal(&old);
            let Ok(journal) = reader::read(&path) else {
                continue;
            };
            let progress = journal.progress();
            let open: Vec<_> = progress.open_obligations().into_iter().cloned().collect();
            if open.is_empty() || journal.is_refused_start() {
                continue;
            }
            if matches!(journal.header, HeaderState::Unsupported { .. }) {
                return Err(Refusal::EarlierRestoresPending {
                    run_id: old.clone(),
                    servers: open.iter().map(|o| o.server().to_string()).collect(),
                    message: "its journal was written by a newer wsusfix".into(),
                });
            }
            sink.event(&Event::Warning {
                message: format!(
                    "run {old} left {} temporary change(s) open: restoring them first",
                    open.len()
                ),
            });
            let plan = journal.info().map_or_else(Plan::empty, |i: RunInfo| i.plan);
            let refuse = |message: String| Refusal::EarlierRestoresPending {
                run_id: old.clone(),
                servers: open.iter().map(|o| o.server().to_string()).collect(),
                message,
            };
            let writer = JournalWriter::reopen(&path, journal.append_at)
                .map_err(|e| refuse(format!("cannot reopen its journal: {e}")))?;
            let (tx, rx) = mpsc::unbounded_channel();
            let recorder = Arc::new(Recorder::new(writer, progress, tx));
            recorder
                .record(
                    Record::Resumed {
                        by: "restore".into(),
                        pid: std::process::id(),
                        at: now(),
                    },
                    None,
                )
                .await
                .map_err(|e| refuse(e.to_string()))?;
            let decisions = resume::decide(&plan, &recorder.progress(), Mode::RestoreOnly);
            let mut quiet = Quiet(sink);
            let _ = run::execute(
                Job {
                    command: "restore",
                    plan: &plan,
                    inventory: inputs.inventory,
                    playbook: inputs.playbook,
                    decisions: &decisions,
                    recorder: recorder.clone(),
                    connector: self.connector.clone(),
                    signals: super::signals::none(),
                },
                self.config.clone(),
                rx,
                &mut quiet,
            )
            .await;
            let left = recorder.progress();
            let still: Vec<String> = left
                .open_obligations()
                .iter()
                .map(|o| o.server().to_string())
                .collect();
            let _ = recorder
                .record(
                    run_finished(if still.is_empty() {
                        RunResult::Restored
                    } else {
                        RunResult::RestoresPending
                    }),
                    None,
                )
                .await;
            if !still.is_empty() {
                let error = left
                    .ledger
                    .iter()
                    .find_map(|(_, l)| l.last_error.clone())
                    .unwrap_or_else(|| "they could not be restored".into());
                return Err(Refusal::EarlierRestoresPending {
                    run_id: old,
                    servers: still,
                    message: error,
                });
            }
        }
        Ok(())
    }
}

/// The journal a run writes to: new, or picked up.
enum Opened {
    Fresh(Box<Plan>, Vec<crate::journal::record::Obligation>),
    Picked(Box<PickedUp>),
}

/// A journal picked up by `resume` or `restore`.
struct PickedUp {
    path: PathBuf,
    journal: Journal,
    plan: Plan,
}

/// Passes on a drain's events, except its run boundaries (they belong to the drained run).
struct Quiet<'a>(&'a mut dyn Sink);

impl Sink for Quiet<'_> {
    fn event(&mut self, e: &Event) {
        if !matches!(e, Event::RunStarted { .. } | Event::RunFinished { .. }) {
            self.0.event(e);
        }
    }
    fn recap(&mut self, _r: &Recap) {}
    fn note(&mut self, text: &str) {
        self.0.note(text);
    }
}

/// Finds a run: `run` under `inventory`'s run folder (or under any), else the latest one that
/// is not a refused start. The error names where it looked.
pub fn find_run(
    state_dir: &Path,
    inventory: Option<&Path>,
    run: Option<&str>,
) -> Result<(RunDir, String), String> {
    let dirs: Vec<RunDir> = match inventory {
        Some(inv) => vec![RunDir::new(state_dir, inv)],
        None => std::fs::read_dir(state_dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| RunDir::at(&e.path()))
            .collect(),
    };
    let mut best: Option<(RunDir, String)> = None;
    for d in dirs {
        for id in d.runs() {
            let wanted = match run {
                Some(r) => id == r,
                None => {
                    best.as_ref().is_none_or(|(_, b)| &id > b)
                        && !reader::read(&d.journal(&id)).is_ok_and(|j| j.is_refused_start())
                }
            };
            if wanted {
                best = Some((d.clone(), id));
            }
        }
    }
    best.ok_or_else(|| {
        let what = match run {
            Some(r) => format!("no run {r}"),
            None => "no run".to_string(),
        };
        format!(
            "{what} under {}\n  = help: runs are kept in the state folder (--state-dir, $WSUSFIX_STATE_DIR, else {}); without a journal, `wsusfix status -i INV --from-facts` finds replicas left autonomous",
            state_dir.display(),
            crate::journal::paths::DEFAULT_STATE_DIR
        )
    })
}

/// The header of a run's journal, when readable.
pub fn header_of(run_dir: &RunDir, run_id: &str) -> Option<RunInfo> {
    reader::read(&run_dir.journal(run_id)).ok()?.info()
}

/// Where a run stands, from its journal and its lock (`status`).
#[derive(Debug)]
pub struct Inspection {
    /// The run.
    pub run_id: String,
    /// The journal as read.
    pub journal: Journal,
    /// What its records say.
    pub progress: Progress,
    /// Its header.
    pub info: Option<RunInfo>,
    /// A live process of this run holds the lock.
    pub running: bool,
}

/// Reads where a run stands.
pub fn inspect(run_dir: &RunDir, run_id: &str) -> Result<Inspection, String> {
    let journal = reader::read(&run_dir.journal(run_id)).map_err(|e| e.to_string())?;
    let running = matches!(lock::read(&run_dir.lock()), Ok(lock::Found::Lock(l)) if l.run_id == run_id && !l.is_stale());
    Ok(Inspection {
        run_id: run_id.to_string(),
        progress: journal.progress(),
        info: journal.info(),
        journal,
        running,
    })
}

impl Inspection {
    /// The run's state in one word.
    pub fn state(&self) -> &'static str {
        if self.journal.is_refused_start() {
            "never-started"
        } else if self.running {
            "running"
        } else {
            match self.progress.finished {
                Some(r) => r.word(),
                None => "interrupted",
            }
        }
    }

    /// `status`'s exit code (docs/exit-codes.md): 4 while a temporary change may be in place,
    /// 2 while the run is not done (partial, interrupted, running, damaged), 0 when done.
    pub fn exit_code(&self) -> i32 {
        if !self.progress.open_obligations().is_empty() {
            return exit::RESTORES_PENDING;
        }
        let all_settled = self.info.as_ref().is_some_and(|i| {
            i.plan.servers.iter().all(|s| {
                settled(
                    self.progress
                        .servers
                        .get(&s.name)
                        .and_then(|p| p.end.as_ref()),
                )
            })
        });
        let damaged = !self.journal.damage_report().is_empty();
        match (self.running, self.progress.finished) {
            _ if damaged => exit::FINDINGS,
            (false, Some(RunResult::Done)) if all_settled => exit::OK,
            (false, Some(RunResult::Restored)) => exit::OK,
            _ if self.journal.is_refused_start() => exit::OK,
            _ => exit::FINDINGS,
        }
    }

    fn recap(&self) -> Option<Recap> {
        let info = self.info.as_ref()?;
        let result =
            self.progress
                .finished
                .unwrap_or(if self.progress.open_obligations().is_empty() {
                    RunResult::Partial
                } else {
                    RunResult::RestoresPending
                });
        Some(Recap::build(RecapInput {
            run_id: &self.run_id,
            plan: &info.plan,
            progress: &self.progress,
            durations: &Default::default(),
            unjournaled: &Default::default(),
            result,
            exit_code: self.exit_code(),
            duration_ms: 0,
            journal_failure: None,
        }))
    }

    /// The JSON form (docs/journal-format.md, "status --format json").
    pub fn to_json(&self) -> serde_json::Value {
        let recap = self.recap();
        serde_json::json!({
            "run_id": self.run_id,
            "inventory": self.info.as_ref().map(|i| i.inventory.clone()),
            "started": self.info.as_ref().map(|i| i.started.clone()),
            "state": self.state(),
            "exit_code": self.exit_code(),
            "torn_tail": self.journal.damage.iter().any(|d| matches!(d, reader::Damage::TornTail { .. })),
            "damage": self.journal.damage_report(),
            "header": match self.journal.header { HeaderState::Ok => "ok", HeaderState::Empty => "empty", HeaderState::Damaged => "damaged", HeaderState::Unsupported { .. } => "unsupported" },
            "servers": recap.as_ref().map(|r| r.rows.clone()).unwrap_or_default(),
            "ledger": recap.as_ref().map(|r| serde_json::to_value(&r.ledger).unwrap_or_default()).unwrap_or_else(|| {
                serde_json::Value::Array(self.progress.ledger.iter().map(|(id, l)| serde_json::json!({"id": id, "server": l.obligation.server(), "kind": l.obligation.kind().describe(), "state": if l.state == crate::core::replay::LedgerState::Open { "restore-pending" } else { "closed" }})).collect())
            }),
            "held_autonomous": self.progress.held_replicas(),
            "open_obligations": self.progress.open_obligations().iter().map(|o| o.id()).collect::<Vec<_>>(),
        })
    }

    /// The text form.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        match &self.info {
            Some(i) => {
                let _ = writeln!(
                    out,
                    "run {} of {} (started {}): {}",
                    self.run_id,
                    i.inventory,
                    i.started,
                    self.state()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "run {}: {} (its header is {})",
                    self.run_id,
                    self.state(),
                    match self.journal.header {
                        HeaderState::Empty => "missing: the run never started",
                        _ => "damaged",
                    }
                );
            }
        }
        for d in self.journal.damage_report() {
            let _ = writeln!(out, "  warning: {d}");
        }
        for (name, p) in &self.progress.servers {
            if p.end.is_none()
                && let Some((i, _)) = p
                    .steps
                    .iter()
                    .rev()
                    .find(|(_, s)| matches!(s, crate::core::replay::StepState::Unknown))
            {
                let _ = writeln!(
                    out,
                    "  {name}: step {} in progress when the run stopped (outcome unknown; resume re-checks it)",
                    i + 1
                );
            }
        }
        let held = self.progress.held_replicas();
        if !held.is_empty() {
            let _ = writeln!(
                out,
                "  HELD AUTONOMOUS by this run: {} (run `wsusfix restore {}`)",
                held.join(", "),
                self.run_id
            );
        }
        let others: Vec<String> = self
            .progress
            .open_obligations()
            .into_iter()
            .filter(|o| o.kind() != crate::journal::record::ObligationKind::ReplicaHold)
            .map(|o| o.id())
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                out,
                "  still open: {} (run `wsusfix restore {}`)",
                others.join(", "),
                self.run_id
            );
        }
        match self.recap() {
            Some(r) => {
                let _ = writeln!(out, "\n{}", crate::report::recap::text(&r, false));
            }
            None => {
                let _ = writeln!(
                    out,
                    "\nRESTORE LEDGER (from the records that could be read)"
                );
                for (id, l) in &self.progress.ledger {
                    let _ = writeln!(
                        out,
                        "  {id}  {}",
                        if l.state == crate::core::replay::LedgerState::Open {
                            "restore-pending"
                        } else {
                            "closed"
                        }
                    );
                }
            }
        }
        out
    }
}

/// Replicas that runs of this folder still hold autonomous, with the run holding each (damaged
/// journals included: every record that can be read counts).
pub fn held_replicas(run_dir: &RunDir) -> std::collections::BTreeMap<String, String> {
    let mut held = std::collections::BTreeMap::new();
    for run in run_dir.runs() {
        if let Ok(j) = reader::read(&run_dir.journal(&run)) {
            for server in j.progress().held_replicas() {
                held.insert(server.to_string(), run.clone());
            }
        }
    }
    held
}
