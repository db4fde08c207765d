//! The event vocabulary of a run. The dispatcher emits these; every sink (progress bars, plain
//! lines, NDJSON) renders the same events. JSON form: docs/events.md.

use serde::Serialize;

use crate::core::plan::PlanPath;
use crate::journal::record::{Closure, Reason, RunResult, ServerResult, Signal, StepOutcome};

/// Version of the NDJSON event format (2: typed reasons, interrupted results, journal failures).
pub const EVENTS_SCHEMA_VERSION: u32 = 2;

/// Something that happened during a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// The run starts (first event).
    RunStarted {
        /// Schema of these events.
        schema_version: u32,
        /// `apply`, `resume` or `restore`.
        command: String,
        /// Servers in the plan.
        servers: usize,
        /// The plan's fingerprint.
        fingerprint: String,
        /// Where the journal is.
        journal: String,
    },
    /// An obligation left open by an earlier run is being honoured first.
    RestoringFromJournal {
        /// How many.
        obligations: usize,
    },
    /// A server's turn starts.
    ServerStarted {
        /// Server.
        server: String,
        /// The path it takes.
        path: PlanPath,
    },
    /// A step starts.
    StepStarted {
        /// Server.
        server: String,
        /// Step index.
        step: usize,
        /// Action.
        action: String,
        /// Attempt (1-based).
        attempt: u32,
    },
    /// A step ended.
    StepFinished {
        /// Server.
        server: String,
        /// Step index.
        step: usize,
        /// Action.
        action: String,
        /// Outcome.
        outcome: StepOutcome,
        /// What happened.
        detail: String,
        /// Milliseconds.
        duration_ms: u64,
    },
    /// A transient error; the step is tried again after a delay.
    Retrying {
        /// Server or client.
        host: String,
        /// Action.
        action: String,
        /// The attempt that failed.
        attempt: u32,
        /// Milliseconds until the next one.
        delay_ms: u64,
        /// The error.
        error: String,
    },
    /// A temporary change was recorded as an obligation.
    ObligationOpened {
        /// Its ID.
        id: String,
        /// Server.
        server: String,
    },
    /// An obligation was closed (restored or found not needed).
    ObligationClosed {
        /// Its ID.
        id: String,
        /// Server.
        server: String,
        /// `restored` or `not-needed`.
        how: Closure,
    },
    /// Restoring failed; the obligation stays open.
    RestoreFailed {
        /// Its ID.
        id: String,
        /// Server.
        server: String,
        /// Why.
        error: String,
    },
    /// A canary client was verified.
    Verification {
        /// Server.
        server: String,
        /// Client.
        client: String,
        /// Detection succeeded.
        succeeded: bool,
        /// Attempts made.
        attempts: u32,
        /// The outcome in words.
        detail: String,
    },
    /// A server's turn ended.
    ServerFinished {
        /// Server.
        server: String,
        /// Result.
        result: ServerResult,
        /// Why (everything but done), as stored in the journal.
        reason: Option<Reason>,
        /// The reason in words.
        detail: Option<String>,
        /// The actions that changed the server during this run, in step order.
        changed_steps: Vec<String>,
        /// The actions of its path that did not run (or did not end well).
        not_run: Vec<String>,
        /// Steps that changed something.
        changed: u32,
        /// Steps that found nothing to do or checks that passed.
        ok: u32,
        /// Steps that failed.
        failed: u32,
        /// Milliseconds.
        duration_ms: u64,
    },
    /// A signal (Ctrl-C, SIGTERM, SIGHUP).
    Interrupted {
        /// 1: stop scheduling, finish running steps, restore; 2: stop now.
        count: u32,
        /// Which signal.
        signal: Signal,
    },
    /// The journal could not take a record: no further change is made; restores still run.
    JournalFailed {
        /// The journal.
        journal: String,
        /// The write error.
        error: String,
    },
    /// Something the operator should know.
    Warning {
        /// The message.
        message: String,
    },
    /// The run ended (last event).
    RunFinished {
        /// `done`, `partial`, `restores-pending`, `interrupted`, `restored`, `journal-failed`.
        result: RunResult,
        /// The process exit code.
        exit_code: i32,
        /// Milliseconds.
        duration_ms: u64,
    },
}
