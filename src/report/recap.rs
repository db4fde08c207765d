//! The end-of-run recap and the restore ledger, as text. Pure; snapshot-tested.

use std::fmt::Write as _;

use serde::Serialize;

use crate::journal::record::ServerResult;

/// One server in the recap.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecapRow {
    /// Server.
    pub server: String,
    /// Path taken.
    pub path: String,
    /// Result (None: not reached, e.g. after an interruption).
    pub result: Option<ServerResult>,
    /// Steps that changed something.
    pub changed: u32,
    /// Steps with nothing to do or passed checks.
    pub ok: u32,
    /// Failed steps.
    pub failed: u32,
    /// Milliseconds (None when it did not run).
    pub duration_ms: Option<u64>,
    /// Why, for failed, blocked, skipped.
    pub reason: Option<String>,
    /// Some step started (a server without a result was stopped, not left out).
    #[serde(default)]
    pub started: bool,
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
    /// `restored`, `not-needed`, `restore-pending`, `restore-failed`.
    pub state: String,
    /// The last error, for a failed restore.
    pub error: Option<String>,
}

/// The recap of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recap {
    /// Per server, in plan order.
    pub rows: Vec<RecapRow>,
    /// Every temporary change and its final state.
    pub ledger: Vec<LedgerRow>,
    /// `done`, `partial`, `restores-pending`, `interrupted`.
    pub result: String,
    /// The exit code.
    pub exit_code: i32,
    /// Milliseconds.
    pub duration_ms: u64,
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
        Some(ServerResult::Done) => "done",
        Some(ServerResult::Failed) => "failed",
        Some(ServerResult::Blocked) => "blocked",
        Some(ServerResult::Skipped) => "skipped",
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
        "  {:<w$}  {:<8}  {:<8}  {:>7}  {:>3}  {:>6}  {:>7}",
        "server", "path", "result", "changed", "ok", "failed", "time"
    );
    for row in &r.rows {
        let time = match (durations, row.duration_ms) {
            (true, Some(ms)) => human_duration(ms),
            (false, Some(_)) => "*".into(),
            (_, None) => "-".into(),
        };
        let mut line = format!(
            "  {:<w$}  {:<8}  {:<8}  {:>7}  {:>3}  {:>6}  {:>7}",
            row.server,
            row.path,
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
    let _ = writeln!(out);
    let _ = writeln!(out, "RESTORE LEDGER");
    if r.ledger.is_empty() {
        let _ = writeln!(out, "  (no temporary changes were made)");
    }
    let lw = r.ledger.iter().map(|l| l.server.len()).max().unwrap_or(6);
    for l in &r.ledger {
        let mut line = format!("  {:<13}  {:<lw$}  {}", l.kind, l.server, l.state);
        if let Some(e) = &l.error {
            let _ = write!(line, "  ({e})");
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
    let count = |res: ServerResult| r.rows.iter().filter(|x| x.result == Some(res)).count();
    let mut parts = vec![format!("{} done", count(ServerResult::Done))];
    for (res, name) in [
        (ServerResult::Failed, "failed"),
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
    let pending = r
        .ledger
        .iter()
        .filter(|l| l.state != "restored" && l.state != "not-needed")
        .count();
    let restores = if pending > 0 {
        format!(
            "{pending} restore{} PENDING: run `wsusfix restore`",
            if pending == 1 { "" } else { "s" }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recap_reads_well() {
        let r = Recap {
            rows: vec![
                RecapRow {
                    server: "wsus-hq".into(),
                    path: "3.0-sp1".into(),
                    result: Some(ServerResult::Done),
                    changed: 1,
                    ok: 4,
                    failed: 0,
                    duration_ms: Some(1234),
                    reason: None,
                    started: true,
                },
                RecapRow {
                    server: "wsus-eu".into(),
                    path: "3.0-rtm".into(),
                    result: Some(ServerResult::Failed),
                    changed: 2,
                    ok: 0,
                    failed: 1,
                    duration_ms: Some(80),
                    reason: Some("approve-unchanged: replica-mode".into()),
                    started: true,
                },
                RecapRow {
                    server: "wsus-eu-paris".into(),
                    path: "3.0-rtm".into(),
                    result: Some(ServerResult::Blocked),
                    changed: 0,
                    ok: 0,
                    failed: 0,
                    duration_ms: None,
                    reason: Some("its upstream wsus-eu failed".into()),
                    started: false,
                },
            ],
            ledger: vec![LedgerRow {
                id: "replica-hold:wsus-eu".into(),
                kind: "replica hold".into(),
                server: "wsus-eu".into(),
                state: "restored".into(),
                error: None,
            }],
            result: "partial".into(),
            exit_code: 2,
            duration_ms: 65_000,
        };
        let t = text(&r, true);
        assert!(t.contains("  wsus-eu-paris  3.0-rtm   blocked         0    0       0        -  its upstream wsus-eu failed\n"), "{t}");
        assert!(t.contains("  replica hold   wsus-eu  restored\n"), "{t}");
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
