//! The journal's records (docs/journal-format.md). One JSON object per line, tagged by `type`.
//! Records never hold secrets: hosts are named, credentials are not.

use serde::{Deserialize, Serialize};

use crate::core::plan::Plan;

/// Version of the journal format.
pub const JOURNAL_FORMAT_VERSION: u32 = 1;

/// What a temporary change is, and so how to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Obligation {
    /// A replica switched to autonomous: switch it back to replica, then sync it.
    ReplicaHold {
        /// The server.
        server: String,
    },
    /// The culture switched to the install language: set it back.
    LocaleSwitch {
        /// The server.
        server: String,
        /// The culture to restore.
        previous: String,
    },
}

impl Obligation {
    /// The obligation's stable ID (one per kind and server).
    pub fn id(&self) -> String {
        match self {
            Obligation::ReplicaHold { server } => format!("replica-hold:{server}"),
            Obligation::LocaleSwitch { server, .. } => format!("locale-switch:{server}"),
        }
    }

    /// The server concerned.
    pub fn server(&self) -> &str {
        match self {
            Obligation::ReplicaHold { server } | Obligation::LocaleSwitch { server, .. } => server,
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    /// It changed the server.
    Changed,
    /// Nothing needed changing (live state was already right) or a check passed.
    Ok,
    /// It failed.
    Failed,
    /// It did not run (not needed on this path).
    Skipped,
}

/// How a server's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerResult {
    /// Every step succeeded.
    Done,
    /// A step failed.
    Failed,
    /// Its upstream failed or was blocked; it was not touched.
    Blocked,
    /// Not touched on purpose (skip reason, contradiction, interruption).
    Skipped,
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Record {
    /// The first line.
    Header {
        /// Journal format version.
        format_version: u32,
        /// The run's ID.
        run_id: String,
        /// The plan's fingerprint.
        fingerprint: String,
        /// The tool version.
        tool_version: String,
        /// The inventory file as given.
        inventory: String,
        /// The playbook file, or none for the built-in one.
        #[serde(default)]
        playbook: Option<String>,
        /// When the run started (RFC 3339).
        at: String,
        /// The plan being executed (resume executes exactly this plan).
        plan: Box<Plan>,
    },
    /// A step is about to run.
    StepStarted {
        /// Server.
        server: String,
        /// Index in the server's steps.
        step: usize,
        /// Its action name.
        action: String,
        /// Attempt number (1-based).
        attempt: u32,
        /// When.
        at: String,
    },
    /// A step ended.
    StepFinished {
        /// Server.
        server: String,
        /// Index.
        step: usize,
        /// Action name.
        action: String,
        /// Outcome.
        outcome: StepOutcome,
        /// One line saying what happened.
        detail: String,
        /// When.
        at: String,
    },
    /// A temporary change is about to be made; it must be undone. Written and synced before
    /// the change is requested.
    ObligationOpened {
        /// What to undo.
        obligation: Obligation,
        /// When.
        at: String,
    },
    /// The undo is confirmed.
    ObligationClosed {
        /// The obligation's ID.
        id: String,
        /// `restored`, or `not-needed` when the change turned out not to have happened.
        how: String,
        /// When.
        at: String,
    },
    /// The undo was tried and failed; the obligation stays open.
    RestoreFailed {
        /// The obligation's ID.
        id: String,
        /// Why.
        error: String,
        /// When.
        at: String,
    },
    /// The facts gathered from a server before touching it.
    Facts {
        /// Server.
        server: String,
        /// The version found.
        version: Option<String>,
        /// Differences from the inventory.
        contradictions: Vec<String>,
        /// When.
        at: String,
    },
    /// A canary client's verification.
    Verification {
        /// Server whose fix it proves.
        server: String,
        /// Client.
        client: String,
        /// Succeeded or not.
        succeeded: bool,
        /// Attempts made.
        attempts: u32,
        /// The outcome in words.
        detail: String,
        /// The WindowsUpdate.log lines that show it.
        evidence: Vec<String>,
        /// When.
        at: String,
    },
    /// A server's run ended.
    ServerFinished {
        /// Server.
        server: String,
        /// Result.
        result: ServerResult,
        /// Why (for failed, blocked, skipped).
        reason: Option<String>,
        /// The path it took (`3.0-rtm`, ...), once known.
        #[serde(default)]
        path: Option<String>,
        /// When.
        at: String,
    },
    /// A `resume` or `restore` picked this run up.
    Resumed {
        /// The command.
        by: String,
        /// Process ID.
        pid: u32,
        /// When.
        at: String,
    },
    /// Ctrl-C was pressed.
    Interrupted {
        /// First or second.
        count: u32,
        /// When.
        at: String,
    },
    /// The run ended.
    RunFinished {
        /// `done`, `partial`, `restores-pending` or `interrupted`.
        result: String,
        /// When.
        at: String,
    },
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
