//! The journal's records and the typed states they carry (docs/journal-format.md): why a server
//! ended as it did, how a step ended, what a temporary change is and how it was undone, how a
//! run ended. One JSON object per line, tagged by `type`. Records never hold secrets: hosts are
//! named, credentials are not. Pure data: rendering into words is [`Reason::describe`] and the
//! report's business, and no decision anywhere depends on those words.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use super::plan::{Plan, PlanPath};

/// Version of the journal format written by this release.
pub const JOURNAL_FORMAT_VERSION: u32 = 2;
/// The oldest journal format this release still reads (format 1 carried reasons as words).
pub const OLDEST_READABLE_FORMAT: u32 = 1;

/// What kind of temporary change an obligation undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObligationKind {
    /// A replica held autonomous.
    ReplicaHold,
    /// The culture switched to the install language.
    LocaleSwitch,
}

impl ObligationKind {
    /// The kind in words.
    pub fn describe(self) -> &'static str {
        match self {
            ObligationKind::ReplicaHold => "replica hold",
            ObligationKind::LocaleSwitch => "locale switch",
        }
    }
}

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

    /// Its kind.
    pub fn kind(&self) -> ObligationKind {
        match self {
            Obligation::ReplicaHold { .. } => ObligationKind::ReplicaHold,
            Obligation::LocaleSwitch { .. } => ObligationKind::LocaleSwitch,
        }
    }
}

/// How an obligation was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Closure {
    /// The way back was taken and confirmed.
    Restored,
    /// The change turned out not to have happened (or was already undone).
    NotNeeded,
}

impl Closure {
    /// In words.
    pub fn describe(self) -> &'static str {
        match self {
            Closure::Restored => "restored",
            Closure::NotNeeded => "not-needed",
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

impl StepOutcome {
    /// True when the step ended well (the turn may go past it).
    pub fn succeeded(self) -> bool {
        !matches!(self, StepOutcome::Failed)
    }
}

/// How a server's turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerResult {
    /// Every step succeeded and the fix was proved.
    Done,
    /// Something failed (a step, a restore, the proof, the journal).
    Failed,
    /// Its upstream did not let it go ahead; it was not touched.
    Blocked,
    /// Left alone: on purpose (the playbook, nothing to do) or because its facts contradict
    /// the inventory (see the reason).
    Skipped,
    /// Stopped by an interruption (before or after changes, see the reason).
    Interrupted,
}

impl ServerResult {
    /// The result in one word.
    pub fn word(self) -> &'static str {
        match self {
            ServerResult::Done => "done",
            ServerResult::Failed => "failed",
            ServerResult::Blocked => "blocked",
            ServerResult::Skipped => "skipped",
            ServerResult::Interrupted => "interrupted",
        }
    }
}

/// A canary client that did not prove the fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFailure {
    /// The client.
    pub client: String,
    /// What its detection showed.
    pub detail: String,
}

/// Where in its turn a server was when something stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TurnPhase {
    /// Reading the server's facts.
    Facts,
    /// Holding it and fixing it.
    Steps,
    /// Undoing temporary changes.
    Restores,
    /// Proving the fix on canary clients.
    Verification,
}

/// Why a server ended as it did. Stored in the journal as it is; the words are rendered from
/// it ([`Reason::describe`]), and decisions (does it unblock its children, is the run partial)
/// are made on the variant, never on the words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// Its upstream did not let it go ahead.
    Blocked {
        /// The upstream it waited for.
        upstream: String,
        /// How that upstream ended.
        upstream_result: ServerResult,
    },
    /// The plan leaves it alone (the playbook's skip reason, or live facts at planning time).
    PlanSkip {
        /// The plan's reason.
        why: String,
    },
    /// Its path was decided at run time, and the playbook has no path (or skips) that version.
    NoPath {
        /// The version found.
        version: String,
        /// The playbook's skip reason, if it gives one.
        why: Option<String>,
    },
    /// The update never synchronised to this server: nothing to reset.
    NotSynced,
    /// The live facts contradict the inventory: not touched.
    Contradicted {
        /// Each difference.
        contradictions: Vec<String>,
    },
    /// The server could not be reached or read.
    Unreachable {
        /// The error.
        error: String,
    },
    /// The server reports a version this tool does not know.
    UnknownVersion {
        /// What it reported.
        version_string: String,
    },
    /// A step failed.
    StepFailed {
        /// The step's index.
        step: usize,
        /// Its action.
        action: String,
        /// The error.
        error: String,
    },
    /// A restore failed: its obligation stays open.
    RestoreFailed {
        /// The obligation.
        obligation: String,
        /// The error.
        error: String,
        /// What had already stopped the turn, if anything.
        after: Option<Box<Reason>>,
    },
    /// Canary clients still fail detection after the fix.
    VerificationFailed {
        /// Each failing client.
        clients: Vec<ClientFailure>,
    },
    /// The journal could not take a record: no further change was made on the server.
    JournalFailed {
        /// The write error.
        error: String,
        /// The step whose record failed, if any.
        step: Option<usize>,
    },
    /// Interrupted before anything changed on the server.
    InterruptedBeforeChanges {
        /// The steps that did not run.
        not_run: Vec<String>,
    },
    /// Interrupted after something changed on the server.
    InterruptedAfterChanges {
        /// Where the turn was.
        phase: TurnPhase,
        /// The steps that changed the server.
        changed: Vec<String>,
        /// The steps that did not run.
        not_run: Vec<String>,
    },
    /// A reason in words, from a format 1 journal.
    Legacy {
        /// The words.
        text: String,
    },
}

/// Reads a server's reason: format 1 wrote it as plain words, format 2 writes the tagged object.
fn reason_of_either_format<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Reason>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Words(String),
        Tagged(Reason),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
        Either::Words(text) => Reason::Legacy { text },
        Either::Tagged(r) => r,
    }))
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

impl Reason {
    /// The reason in words (one line).
    pub fn describe(&self) -> String {
        match self {
            Reason::Blocked {
                upstream,
                upstream_result,
            } => format!(
                "its upstream {upstream} {}",
                match upstream_result {
                    ServerResult::Blocked => "is blocked",
                    ServerResult::Skipped => "was not touched",
                    ServerResult::Interrupted => "was interrupted",
                    ServerResult::Done => "is done",
                    ServerResult::Failed => "failed",
                }
            ),
            Reason::PlanSkip { why } => why.clone(),
            Reason::NoPath { version, why } => why
                .clone()
                .unwrap_or_else(|| format!("the playbook has no path for WSUS {version}")),
            Reason::NotSynced => {
                "the Office 2003 SP1 update never synchronised to this server: nothing to reset"
                    .into()
            }
            Reason::Contradicted { contradictions } => {
                format!("not touched: {}", contradictions.join("; "))
            }
            Reason::Unreachable { error } => error.clone(),
            Reason::UnknownVersion { version_string } => {
                format!("unknown WSUS version {version_string}")
            }
            Reason::StepFailed { action, error, .. } => format!("{action}: {error}"),
            Reason::RestoreFailed {
                obligation,
                error,
                after,
            } => match after {
                Some(first) => format!("{}; restore of {obligation}: {error}", first.describe()),
                None => format!("restore of {obligation}: {error}"),
            },
            Reason::VerificationFailed { clients } => clients
                .iter()
                .map(|c| format!("client {} still fails detection: {}", c.client, c.detail))
                .collect::<Vec<_>>()
                .join("; "),
            Reason::JournalFailed { error, .. } => format!(
                "the journal could not record the next step ({error}): nothing more was changed on this server"
            ),
            Reason::InterruptedBeforeChanges { not_run } if not_run.is_empty() => {
                "interrupted before any change".into()
            }
            Reason::InterruptedBeforeChanges { not_run } => {
                format!("interrupted before any change; not run: {}", list(not_run))
            }
            Reason::InterruptedAfterChanges {
                phase,
                changed,
                not_run,
            } => {
                let mut s = format!(
                    "interrupted {} after changes: {} changed",
                    match phase {
                        TurnPhase::Facts | TurnPhase::Steps => "during its steps",
                        TurnPhase::Restores => "during its restores",
                        TurnPhase::Verification => "before its proof",
                    },
                    list(changed)
                );
                if !not_run.is_empty() {
                    s.push_str(&format!("; not run: {}", list(not_run)));
                }
                s
            }
            Reason::Legacy { text } => text.clone(),
        }
    }

    /// True when the server was left alone on purpose, so that its children may go ahead:
    /// the plan or the playbook skips it, or there is nothing to do on it.
    pub fn on_purpose(&self) -> bool {
        matches!(
            self,
            Reason::PlanSkip { .. } | Reason::NoPath { .. } | Reason::NotSynced
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How a server's turn ended: its result and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEnd {
    /// The result.
    pub result: ServerResult,
    /// Why (none for done).
    pub reason: Option<Reason>,
}

impl ServerEnd {
    /// True when the server's children may go ahead: it is done, or it was left alone on
    /// purpose. A server whose facts contradict the inventory, a failure, a block or an
    /// interruption keeps its subtree back.
    pub fn unblocks_children(&self) -> bool {
        match self.result {
            ServerResult::Done => true,
            ServerResult::Skipped => self.reason.as_ref().is_none_or(Reason::on_purpose),
            ServerResult::Failed | ServerResult::Blocked | ServerResult::Interrupted => false,
        }
    }

    /// True when the server needs nothing more from this run (done, or left alone on purpose).
    pub fn settled(&self) -> bool {
        self.unblocks_children()
    }
}

/// How a run (or a resume, or a restore) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunResult {
    /// Every server is done or left alone on purpose; every restore done.
    Done,
    /// Some servers failed, were blocked, contradicted or were interrupted; every restore done.
    Partial,
    /// A temporary change may still be in place: run `wsusfix restore`.
    RestoresPending,
    /// Stopped by a signal after every restore was done.
    Interrupted,
    /// `restore` closed every obligation.
    Restored,
    /// The journal could not take records: the run stopped making changes.
    JournalFailed,
}

impl RunResult {
    /// In one word.
    pub fn word(self) -> &'static str {
        match self {
            RunResult::Done => "done",
            RunResult::Partial => "partial",
            RunResult::RestoresPending => "restores-pending",
            RunResult::Interrupted => "interrupted",
            RunResult::Restored => "restored",
            RunResult::JournalFailed => "journal-failed",
        }
    }
}

/// The signal that interrupted a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Signal {
    /// Ctrl-C.
    #[default]
    Sigint,
    /// `kill`, `timeout`, systemd, a cancelled CI job.
    Sigterm,
    /// The terminal or SSH session closed.
    Sighup,
}

impl Signal {
    /// Its number on Linux (the exit code is 128 + this).
    pub fn number(self) -> i32 {
        match self {
            Signal::Sigint => 2,
            Signal::Sigterm => 15,
            Signal::Sighup => 1,
        }
    }
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
        /// The inventory file (absolute path when written by format 2).
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
        /// How.
        how: Closure,
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
        /// Why (for everything but done).
        #[serde(default, deserialize_with = "reason_of_either_format")]
        reason: Option<Reason>,
        /// The path it took, once known.
        #[serde(default)]
        path: Option<PlanPath>,
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
    /// A signal asked the run to stop.
    Interrupted {
        /// First or second.
        count: u32,
        /// Which signal (format 1: always Ctrl-C).
        #[serde(default)]
        signal: Signal,
        /// When.
        at: String,
    },
    /// The run ended.
    RunFinished {
        /// How.
        result: RunResult,
        /// When.
        at: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_from_both_formats() {
        let legacy = reason_of_either_format(&mut serde_json::Deserializer::from_str(
            "\"its upstream wsus-us was not touched\"",
        ))
        .unwrap();
        assert_eq!(
            legacy,
            Some(Reason::Legacy {
                text: "its upstream wsus-us was not touched".into()
            })
        );
        let finished: Record = serde_json::from_str(
            r#"{"type":"server-finished","server":"b","result":"skipped","reason":"not touched: x","path":"3.0-rtm","at":"t"}"#,
        )
        .unwrap();
        assert!(matches!(
            finished,
            Record::ServerFinished {
                reason: Some(Reason::Legacy { .. }),
                ..
            }
        ));
        let done: Record = serde_json::from_str(
            r#"{"type":"server-finished","server":"b","result":"done","reason":null,"at":"t"}"#,
        )
        .unwrap();
        assert!(matches!(done, Record::ServerFinished { reason: None, .. }));
        let typed = Reason::Blocked {
            upstream: "wsus-us".into(),
            upstream_result: ServerResult::Interrupted,
        };
        let json = serde_json::to_string(&typed).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"blocked","upstream":"wsus-us","upstream_result":"interrupted"}"#
        );
        assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), typed);
        let nested = Reason::RestoreFailed {
            obligation: "replica-hold:b".into(),
            error: "refused".into(),
            after: Some(Box::new(Reason::NotSynced)),
        };
        let back: Reason = serde_json::from_str(&serde_json::to_string(&nested).unwrap()).unwrap();
        assert_eq!(back, nested);
    }

    #[test]
    fn only_done_and_skips_on_purpose_unblock_children() {
        let end = |result, reason| ServerEnd { result, reason };
        assert!(end(ServerResult::Done, None).unblocks_children());
        assert!(end(ServerResult::Skipped, Some(Reason::NotSynced)).unblocks_children());
        assert!(
            end(
                ServerResult::Skipped,
                Some(Reason::PlanSkip {
                    why: "SP2 contains the fix".into()
                })
            )
            .unblocks_children()
        );
        assert!(
            !end(
                ServerResult::Skipped,
                Some(Reason::Contradicted {
                    contradictions: vec!["x".into()]
                })
            )
            .unblocks_children()
        );
        // Words never decide: a legacy reason that reads like a contradiction is just words.
        assert!(
            !end(
                ServerResult::Interrupted,
                Some(Reason::InterruptedBeforeChanges { not_run: vec![] })
            )
            .unblocks_children()
        );
        assert!(!end(ServerResult::Failed, None).unblocks_children());
    }

    #[test]
    fn an_interruption_after_changes_says_what_changed_and_what_did_not_run() {
        let r = Reason::InterruptedAfterChanges {
            phase: TurnPhase::Steps,
            changed: vec!["install-hotfix".into()],
            not_run: vec!["verify-file-version".into(), "check-services".into()],
        };
        assert_eq!(
            r.describe(),
            "interrupted during its steps after changes: install-hotfix changed; not run: verify-file-version, check-services"
        );
    }
}
