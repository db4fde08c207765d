//! The end-of-run recap and the restore ledger: built from the replayed journal (pure), and
//! rendered as text (snapshot-tested). It tells the truth: a server stopped after changes says
//! what changed and what did not run, with the command that finishes it; a blocked server says
//! which upstream stopped it and why.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use crate::core::plan::{Plan, PlanPath};
use crate::core::replay::{LedgerState, Progress, StepState, account, steps_of};
use crate::journal::record::{Closure, Reason, RunResult, ServerResult, StepOutcome};

/// One server in the recap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecapRow {
    /// Server.
    pub server: String,
    /// Path taken.
    pub path: PlanPath,
    /// Result (None: not reached, or stopped mid-step).
    pub result: Option<ServerResult>,
    /// Steps that changed something.
    pub changed: u32,
    /// Steps with nothing to do or passed checks.
    pub ok: u32,
    /// Failed steps.
    pub failed: u32,
    /// Milliseconds (None when it did not run in this command).
    pub duration_ms: Option<u64>,
    /// Why, as stored in the journal.
    pub why: Option<Reason>,
    /// Why, in words (also for a server stopped mid-step).
    pub reason: Option<String>,
    /// Some step started (a server without a result was stopped, not left out).
    pub started: bool,
    /// The actions that changed the server, in step order.
    pub changed_steps: Vec<String>,
    /// The actions of its path that did not run or did not end well (for servers not done).
    pub not_run: Vec<String>,
}

/// Where a temporary change stands at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LedgerRowState {
    /// Undone.
    Restored,
    /// It had not happened (or was already undone).
    NotNeeded,
    /// Not undone yet.
    RestorePending,
    /// Undoing it failed.
    RestoreFailed,
    /// Undone on the server, but the journal could not record it (`restore` confirms it).
    RestoredNotJournaled,
}

impl LedgerRowState {
    /// In words.
    pub fn word(self) -> &'static str {
        match self {
            LedgerRowState::Restored => "restored",
            LedgerRowState::NotNeeded => "not-needed",
            LedgerRowState::RestorePending => "restore-pending",
            LedgerRowState::RestoreFailed => "restore-failed",
            LedgerRowState::RestoredNotJournaled => "restored-not-journaled",
        }
    }

    /// True when the change may still be in place as far as the journal knows.
    pub fn open(self) -> bool {
        !matches!(self, LedgerRowState::Restored | LedgerRowState::NotNeeded)
    }
}

/// One temporary change in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerRow {
    /// Obligation ID.
    pub id: String,
    /// `replica hold` or `locale switch`.
    pub kind: String,
    /// Server.
    pub server: String,
    /// Where it stands.
    pub state: LedgerRowState,
    /// The last error, for a failed restore.
    pub error: Option<String>,
}

/// The recap of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recap {
    /// The run.
    pub run_id: String,
    /// Per server, in plan order.
    pub rows: Vec<RecapRow>,
    /// Every temporary change and its final state.
    pub ledger: Vec<LedgerRow>,
    /// How the run ended.
    pub result: RunResult,
    /// The exit code.
    pub exit_code: i32,
    /// Milliseconds.
    pub duration_ms: u64,
    /// The journal's failure, if it stopped taking records.
    pub journal_failure: Option<String>,
}

/// What the recap is built from.
#[derive(Debug, Clone, Copy)]
pub struct RecapInput<'a> {
    /// The run.
    pub run_id: &'a str,
    /// Its plan.
    pub plan: &'a Plan,
    /// The replayed journal.
    pub progress: &'a Progress,
    /// Each server's turn in this command, in milliseconds.
    pub durations: &'a HashMap<String, u64>,
    /// Obligations restored on their server whose closing record the journal could not take.
    pub unjournaled: &'a BTreeSet<String>,
    /// How the run ended.
    pub result: RunResult,
    /// The exit code.
    pub exit_code: i32,
    /// Milliseconds.
    pub duration_ms: u64,
    /// The journal's failure, if any.
    pub journal_failure: Option<&'a str>,
}

impl Recap {
    /// Builds the recap and ledger from the replayed journal.
    pub fn build(i: RecapInput<'_>) -> Recap {
        let rows = i
            .plan
            .servers
            .iter()
            .map(|s| {
                let p = i.progress.servers.get(&s.name);
                let end = p.and_then(|p| p.end.clone());
                let count = |want: StepOutcome| {
                    p.map(|p| {
                        p.steps
                            .values()
                            .filter(|st| **st == StepState::Ended(want))
                            .count() as u32
                    })
                    .unwrap_or(0)
                };
                let steps = steps_of(s, p);
                let (changed_steps, not_run) = match p {
                    Some(p) => account(&steps, p),
                    None => (Vec::new(), Vec::new()),
                };
                let started = p.is_some_and(|p| !p.steps.is_empty());
                let reason = match (&end, p) {
                    (Some(e), _) => e.reason.as_ref().map(Reason::describe),
                    (None, Some(p)) if started => Some(format!(
                        "stopped during step {} ({}): its outcome is unknown; resume re-checks it",
                        p.steps.keys().max().map(|i| i + 1).unwrap_or(1),
                        p.steps
                            .keys()
                            .max()
                            .and_then(|i| p.actions.get(i))
                            .map_or("?", String::as_str)
                    )),
                    _ => None,
                };
                let done = end.as_ref().is_some_and(|e| e.result == ServerResult::Done);
                RecapRow {
                    server: s.name.clone(),
                    path: p.and_then(|p| p.path).unwrap_or(s.path),
                    result: end.as_ref().map(|e| e.result),
                    changed: count(StepOutcome::Changed),
                    ok: count(StepOutcome::Ok),
                    failed: count(StepOutcome::Failed),
                    duration_ms: i.durations.get(&s.name).copied(),
                    why: end.and_then(|e| e.reason),
                    reason,
                    started,
                    changed_steps,
                    not_run: if done || !started {
                        Vec::new()
                    } else {
                        not_run
                    },
                }
            })
            .collect();
        let ledger = i
            .progress
            .ledger
            .iter()
            .map(|(id, l)| {
                let state = match (l.state, &l.last_error) {
                    (LedgerState::Closed(Closure::Restored), _) => LedgerRowState::Restored,
                    (LedgerState::Closed(Closure::NotNeeded), _) => LedgerRowState::NotNeeded,
                    (LedgerState::Open, _) if i.unjournaled.contains(id) => {
                        LedgerRowState::RestoredNotJournaled
                    }
                    (LedgerState::Open, Some(_)) => LedgerRowState::RestoreFailed,
                    (LedgerState::Open, None) => LedgerRowState::RestorePending,
                };
                LedgerRow {
                    id: id.clone(),
                    kind: l.obligation.kind().describe().to_string(),
                    server: l.obligation.server().to_string(),
                    state,
                    error: if state == LedgerRowState::RestoreFailed {
                        l.last_error.clone()
                    } else {
                        None
                    },
                }
            })
            .collect();
        Recap {
            run_id: i.run_id.to_string(),
            rows,
            ledger,
            result: i.result,
            exit_code: i.exit_code,
            duration_ms: i.duration_ms,
            journal_failure: i.journal_failure.map(str::to_string),
        }
    }
}

/// Milliseconds as `1.2s`, `950ms` or `2m05s`.
pub fn human_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}

fn result_name(r: Option<ServerResult>, started: bool) -> &'static str {
    match r {
        Some(r) => r.word(),
        None if started => "stopped",
        None => "not run",
    }
}

/// The recap as text. `durations: false` hides timings (for snapshots).
pub fn text(r: &Recap, durations: bool) -> String {
    let mut out = String::new();
    let w = r
        .rows
        .iter()
        .map(|x| x.server.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let _ = writeln!(out, "RECAP");
    let _ = writeln!(
        out,
        "  {:<w$}  {:<8}  {:<11}  {:>7}  {:>3}  {:>6}  {:>7}",
        "server", "path", "result", "changed", "ok", "failed", "time"
    );
    for row in &r.rows {
        let time = match (durations, row.duration_ms) {
            (true, Some(ms)) => human_duration(ms),
            (false, Some(_)) => "*".into(),
            (_, None) => "-".into(),
        };
        let mut line = format!(
            "  {:<w$}  {:<8}  {:<11}  {:>7}  {:>3}  {:>6}  {:>7}",
            row.server,
            row.path.as_str(),
            result_name(row.result, row.started),
            row.changed,
            row.ok,
            row.failed,
            time
        );
        if let Some(reason) = &row.reason {
            line.push_str("  ");
            line.push_str(reason);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let left: Vec<&RecapRow> = r
        .rows
        .iter()
        .filter(|x| {
            x.started
                && !matches!(x.result, Some(ServerResult::Done | ServerResult::Skipped))
                && (!x.changed_steps.is_empty() || !x.not_run.is_empty())
        })
        .collect();
    if !left.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "LEFT UNFINISHED");
        for x in &left {
            let changed = if x.changed_steps.is_empty() {
                "nothing changed".to_string()
            } else {
                format!("changed: {}", x.changed_steps.join(", "))
            };
            let _ = writeln!(out, "  {}: {changed}", x.server);
            if !x.not_run.is_empty() {
                let _ = writeln!(out, "    not run: {}", x.not_run.join(", "));
            }
            for n in &x.not_run {
                if let Some(what) = unchecked(n) {
                    let _ = writeln!(out, "    {what}");
                }
            }
        }
        let _ = writeln!(
            out,
            "  finish them with `wsusfix resume {}` (each step re-checks the server first)",
            r.run_id
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "RESTORE LEDGER");
    if r.ledger.is_empty() {
        let _ = writeln!(out, "  (no temporary changes were made)");
    }
    let lw = r.ledger.iter().map(|l| l.server.len()).max().unwrap_or(6);
    for l in &r.ledger {
        let mut line = format!("  {:<13}  {:<lw$}  {}", l.kind, l.server, l.state.word());
        if let Some(e) = &l.error {
            let _ = write!(line, "  ({e})");
        }
        let _ = writeln!(out, "{line}");
    }
    if let Some(j) = &r.journal_failure {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "THE JOURNAL FAILED: {j}\n  no change was made after that; restores ran. What the journal still shows open is listed above;\n  `wsusfix restore {}` confirms it, and if the journal cannot be read at all, `wsusfix restore -i INV --from-facts`\n  switches back every replica the inventory names that is still autonomous.",
            r.run_id
        );
    }
    let _ = writeln!(out);
    let count = |res: ServerResult| r.rows.iter().filter(|x| x.result == Some(res)).count();
    let mut parts = vec![format!("{} done", count(ServerResult::Done))];
    for (res, name) in [
        (ServerResult::Failed, "failed"),
        (ServerResult::Interrupted, "interrupted"),
        (ServerResult::Blocked, "blocked"),
        (ServerResult::Skipped, "skipped"),
    ] {
        let n = count(res);
        if n > 0 {
            parts.push(format!("{n} {name}"));
        }
    }
    let stopped = r
        .rows
        .iter()
        .filter(|x| x.result.is_none() && x.started)
        .count();
    if stopped > 0 {
        parts.push(format!("{stopped} stopped mid-way"));
    }
    let not_run = r
        .rows
        .iter()
        .filter(|x| x.result.is_none() && !x.started)
        .count();
    if not_run > 0 {
        parts.push(format!("{not_run} not run"));
    }
    let pending = r.ledger.iter().filter(|l| l.state.open()).count();
    let restores = if pending > 0 {
        format!(
            "{pending} restore{} PENDING: run `wsusfix restore {}`",
            if pending == 1 { "" } else { "s" },
            r.run_id
        )
    } else {
        "every restore done".to_string()
    };
    let _ = writeln!(
        out,
        "Result: {}; {restores} (exit {}{})",
        parts.join(", "),
        r.exit_code,
        if durations {
            format!(", {}", human_duration(r.duration_ms))
        } else {
            String::new()
        }
    );
    out
}

/// What a step that did not run leaves unchecked, when that matters to an admin.
fn unchecked(action: &str) -> Option<&'static str> {
    Some(match action {
        "verify-file-version" => {
            "the client web service DLL's version was not checked (the hotfix may not have taken)"
        }
        "check-services" => "the IIS services were not checked (they may still be stopped)",
        "detect-now" => "the fix was not proved on a canary client",
        "switch-to-replica" => "the replica was not switched back by its own step",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::inventory::WsusVersion;

    fn row(server: &str, path: WsusVersion, result: Option<ServerResult>) -> RecapRow {
        RecapRow {
            server: server.into(),
            path: PlanPath::Version(path),
            result,
            changed: 0,
            ok: 0,
            failed: 0,
            duration_ms: None,
            why: None,
            reason: None,
            started: result.is_some(),
            changed_steps: Vec::new(),
            not_run: Vec::new(),
        }
    }

    #[test]
    fn the_recap_reads_well() {
        let r = Recap {
            run_id: "r1".into(),
            rows: vec![
                RecapRow {
                    changed: 1,
                    ok: 4,
                    duration_ms: Some(1234),
                    changed_steps: vec!["install-hotfix".into()],
                    ..row("wsus-hq", WsusVersion::Sp1, Some(ServerResult::Done))
                },
                RecapRow {
                    changed: 2,
                    failed: 1,
                    duration_ms: Some(80),
                    reason: Some("approve-unchanged: replica-mode".into()),
                    changed_steps: vec!["switch-to-autonomous".into(), "ensure-declined".into()],
                    not_run: vec!["decline".into(), "detect-now".into()],
                    ..row("wsus-eu", WsusVersion::Rtm, Some(ServerResult::Failed))
                },
                RecapRow {
                    reason: Some("its upstream wsus-eu failed".into()),
                    started: false,
                    ..row(
                        "wsus-eu-paris",
                        WsusVersion::Rtm,
                        Some(ServerResult::Blocked),
                    )
                },
            ],
            ledger: vec![LedgerRow {
                id: "replica-hold:wsus-eu".into(),
                kind: "replica hold".into(),
                server: "wsus-eu".into(),
                state: LedgerRowState::Restored,
                error: None,
            }],
            result: RunResult::Partial,
            exit_code: 2,
            duration_ms: 65_000,
            journal_failure: None,
        };
        let t = text(&r, true);
        assert!(t.contains("  wsus-eu-paris  3.0-rtm   blocked            0    0       0        -  its upstream wsus-eu failed\n"), "{t}");
        assert!(t.contains("  replica hold   wsus-eu  restored\n"), "{t}");
        assert!(
            t.contains("LEFT UNFINISHED\n  wsus-eu: changed: switch-to-autonomous, ensure-declined\n    not run: decline, detect-now\n    the fix was not proved on a canary client\n  finish them with `wsusfix resume r1`"),
            "{t}"
        );
        assert!(
            t.ends_with(
                "Result: 1 done, 1 failed, 1 blocked; every restore done (exit 2, 1m05s)\n"
            ),
            "{t}"
        );
        assert_eq!(human_duration(950), "950ms");
        assert_eq!(human_duration(1500), "1.5s");
    }
}
