//! Replaying journal records into where a run stands: each server's steps and how its turn
//! ended, the ledger of temporary changes, how the run ended. Pure: the records come from the
//! journal reader. [`Progress`] needs no header, so the obligations of a journal whose header is
//! lost can still be found; [`RunState`] adds what the header says (the plan, the inputs).

use std::collections::BTreeMap;

use super::plan::{Phase, Plan, PlanPath, PlannedStep};
use super::record::{
    Closure, Obligation, ObligationKind, Reason, Record, RunResult, ServerEnd, ServerResult,
    StepOutcome,
};

/// Where one step of a server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Started, no outcome recorded: its effect is unknown (re-check live state).
    Unknown,
    /// Ended.
    Ended(StepOutcome),
}

impl StepState {
    /// True when the step ended well.
    pub fn succeeded(self) -> bool {
        matches!(self, StepState::Ended(o) if o.succeeded())
    }
}

/// Where one server stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerProgress {
    /// Each step's state, by index (steps never started are absent).
    pub steps: BTreeMap<usize, StepState>,
    /// How its latest turn ended, once it did.
    pub end: Option<ServerEnd>,
    /// The path it took, once known.
    pub path: Option<PlanPath>,
    /// The last action of each step index that started (for naming steps of runtime paths).
    pub actions: BTreeMap<usize, String>,
}

impl ServerProgress {
    /// The steps that changed the server, in order.
    pub fn changed(&self) -> Vec<usize> {
        self.steps
            .iter()
            .filter(|(_, s)| **s == StepState::Ended(StepOutcome::Changed))
            .map(|(i, _)| *i)
            .collect()
    }
}

/// Where an obligation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerState {
    /// The temporary change may still be in place.
    Open,
    /// Undone (or found not to have happened).
    Closed(Closure),
}

/// An obligation and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// What to undo.
    pub obligation: Obligation,
    /// Open or closed.
    pub state: LedgerState,
    /// The last restore error while still open, if any.
    pub last_error: Option<String>,
}

/// What the records after the header say, with or without a header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Per server.
    pub servers: BTreeMap<String, ServerProgress>,
    /// Every obligation ever opened, by ID, in the order opened.
    pub ledger: Vec<(String, Ledger)>,
    /// How the run ended, if it did (and was not picked up again since).
    pub finished: Option<RunResult>,
    /// Signals received.
    pub interrupted: u32,
}

impl Progress {
    /// Replays records (a header among them is ignored).
    pub fn replay(records: &[Record]) -> Progress {
        let mut p = Progress::default();
        for r in records {
            p.apply(r);
        }
        p
    }

    /// Applies one record.
    pub fn apply(&mut self, r: &Record) {
        match r {
            Record::StepStarted {
                server,
                step,
                action,
                ..
            } => {
                let s = self.server(server);
                s.end = None;
                s.steps.insert(*step, StepState::Unknown);
                s.actions.insert(*step, action.clone());
            }
            Record::StepFinished {
                server,
                step,
                outcome,
                action,
                ..
            } => {
                let s = self.server(server);
                s.steps.insert(*step, StepState::Ended(*outcome));
                s.actions.insert(*step, action.clone());
            }
            Record::ServerFinished {
                server,
                result,
                reason,
                path,
                ..
            } => {
                let s = self.server(server);
                s.end = Some(ServerEnd {
                    result: *result,
                    reason: reason.clone(),
                });
                if let Some(p) = path.filter(|p| *p != PlanPath::Runtime) {
                    s.path = Some(p);
                }
            }
            Record::ObligationOpened { obligation, .. } => {
                let id = obligation.id();
                let entry = Ledger {
                    obligation: obligation.clone(),
                    state: LedgerState::Open,
                    last_error: None,
                };
                match self.ledger.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, l)) => *l = entry,
                    None => self.ledger.push((id, entry)),
                }
            }
            Record::ObligationClosed { id, how, .. } => {
                if let Some((_, l)) = self.ledger.iter_mut().find(|(i, _)| i == id) {
                    l.state = LedgerState::Closed(*how);
                    l.last_error = None;
                }
            }
            Record::RestoreFailed { id, error, .. } => {
                if let Some((_, l)) = self.ledger.iter_mut().find(|(i, _)| i == id)
                    && l.state == LedgerState::Open
                {
                    l.last_error = Some(error.clone());
                }
            }
            Record::RunFinished { result, .. } => self.finished = Some(*result),
            Record::Interrupted { .. } => self.interrupted += 1,
            Record::Resumed { .. } => self.finished = None,
            Record::Facts {
                server, version, ..
            } => {
                // A new turn of this server begins.
                let s = self.server(server);
                s.end = None;
                if let Some(p) = version.as_deref().and_then(PlanPath::parse) {
                    s.path = Some(p);
                }
            }
            Record::Header { .. } | Record::Verification { .. } => {}
        }
    }

    fn server(&mut self, server: &str) -> &mut ServerProgress {
        self.servers.entry(server.to_string()).or_default()
    }

    /// Obligations not yet closed.
    pub fn open_obligations(&self) -> Vec<&Obligation> {
        self.ledger
            .iter()
            .filter(|(_, l)| l.state == LedgerState::Open)
            .map(|(_, l)| &l.obligation)
            .collect()
    }

    /// Replicas still held autonomous.
    pub fn held_replicas(&self) -> Vec<&str> {
        self.open_obligations()
            .into_iter()
            .filter(|o| o.kind() == ObligationKind::ReplicaHold)
            .map(Obligation::server)
            .collect()
    }
}

/// What the header of a journal says.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The run's ID.
    pub run_id: String,
    /// The plan it executes.
    pub plan: Plan,
    /// The fingerprint in the header.
    pub fingerprint: String,
    /// The inventory file.
    pub inventory: String,
    /// The playbook file (none: built in).
    pub playbook: Option<String>,
    /// When it started.
    pub started: String,
    /// The journal format it was written in.
    pub format_version: u32,
}

impl RunInfo {
    /// Reads a header record.
    pub fn from_header(r: &Record) -> Option<RunInfo> {
        match r {
            Record::Header {
                format_version,
                run_id,
                fingerprint,
                inventory,
                playbook,
                at,
                plan,
                ..
            } => Some(RunInfo {
                run_id: run_id.clone(),
                plan: (**plan).clone(),
                fingerprint: fingerprint.clone(),
                inventory: inventory.clone(),
                playbook: playbook.clone(),
                started: at.clone(),
                format_version: *format_version,
            }),
            _ => None,
        }
    }
}

/// The state of a run, replayed from its journal.
#[derive(Debug, Clone)]
pub struct RunState {
    /// What its header says.
    pub info: RunInfo,
    /// What the records after it say.
    pub progress: Progress,
}

impl RunState {
    /// Replays records whose first is the header; `None` without one.
    pub fn replay(records: &[Record]) -> Option<RunState> {
        let info = RunInfo::from_header(records.first()?)?;
        Some(RunState {
            info,
            progress: Progress::replay(&records[1..]),
        })
    }

    /// The steps of a server's path: its planned steps, or for a path decided at run time the
    /// alternative its facts chose (none while unknown).
    pub fn steps_of(&self, server: &str) -> Vec<PlannedStep> {
        let Some(s) = self.info.plan.server(server) else {
            return Vec::new();
        };
        steps_of(s, self.progress.servers.get(server))
    }
}

/// The steps a planned server runs, given its progress (which tells the path of a server whose
/// path was decided at run time).
pub fn steps_of(s: &super::plan::PlannedServer, p: Option<&ServerProgress>) -> Vec<PlannedStep> {
    match s.path {
        PlanPath::Runtime => p
            .and_then(|p| p.path)
            .and_then(PlanPath::version)
            .and_then(|v| s.alternatives.get(&v).cloned())
            .unwrap_or_default(),
        PlanPath::Version(_) => s.steps.clone(),
    }
}

/// True when every hold and main step of `steps` ended well in `p`.
pub fn main_steps_done(steps: &[PlannedStep], p: &ServerProgress) -> bool {
    !steps.is_empty()
        && steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.phase, Phase::Hold | Phase::Main))
            .all(|(i, _)| p.steps.get(&i).is_some_and(|s| s.succeeded()))
}

/// The words of a server's end, for reports.
pub fn describe_end(end: &ServerEnd) -> Option<String> {
    end.reason.as_ref().map(Reason::describe)
}

/// True when the result is one a run counts as settled: done, or left alone on purpose.
pub fn settled(end: Option<&ServerEnd>) -> bool {
    end.is_some_and(ServerEnd::settled)
}

/// The result of a server in the replay (none: not finished).
pub fn result_of(p: Option<&ServerProgress>) -> Option<ServerResult> {
    p.and_then(|p| p.end.as_ref()).map(|e| e.result)
}

/// The actions of `steps` that changed the server, and those that did not end well (or never
/// ran), given the server's progress.
pub fn account(steps: &[PlannedStep], p: &ServerProgress) -> (Vec<String>, Vec<String>) {
    let changed = p
        .changed()
        .into_iter()
        .map(|i| {
            steps
                .get(i)
                .map(|s| s.kind.name().to_string())
                .or_else(|| p.actions.get(&i).cloned())
                .unwrap_or_else(|| format!("step {}", i + 1))
        })
        .collect();
    let not_run = steps
        .iter()
        .enumerate()
        .filter(|(i, _)| !p.steps.get(i).is_some_and(|s| s.succeeded()))
        .map(|(_, s)| s.kind.name().to_string())
        .collect();
    (changed, not_run)
}
