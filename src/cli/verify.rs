//! `wsusfix verify`: prove (or disprove) the fix where KB 954960 measures it, on the canary
//! clients' detection: `wuauclt /detectnow` on each one, its WindowsUpdate.log lines read, a
//! second detection when the first fails. Changes nothing on the servers.

use std::io::Write;
use std::sync::Arc;

use serde::Serialize;

use super::InputArgs;
use super::inputs::Inputs;
use crate::core::diag::did_you_mean;
use crate::core::playbook::Action;
use crate::exec::connect::{Target, WinrmConnector};
use crate::exec::detect::{self, Canary, ClientCheck, DetectRequest};
use crate::exit;
use crate::util::credentials::Resolver;

/// Output format of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyFormat {
    /// One block per client and a result line.
    Text,
    /// One JSON document (docs/verify.md).
    Json,
}

/// Arguments of `verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Only the canary clients of a server's subtree (repeatable).
    #[arg(long, value_name = "NAME")]
    pub limit: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Text)]
    pub format: VerifyFormat,
}

/// Clients checked at once.
const PARALLEL: usize = 16;

/// The JSON document.
#[derive(Debug, Serialize)]
struct Report<'a> {
    command: &'static str,
    inventory: String,
    playbook: &'a str,
    limit: &'a [String],
    max_attempts: u32,
    clients: &'a [ClientCheck],
    summary: Summary,
    exit_code: i32,
}

#[derive(Debug, Serialize)]
struct Summary {
    clients: usize,
    succeeded: usize,
    failed: usize,
}

/// The canary clients to check, top-down: servers by wave and name, clients as listed.
fn canaries(inputs: &Inputs, limit: &[String], err: &mut dyn Write) -> Result<Vec<Canary>, i32> {
    let h = &inputs.hierarchy;
    let mut in_scope = std::collections::BTreeSet::new();
    for root in limit {
        if !h.contains(root) {
            let names = inputs.inventory.servers().iter().map(|s| s.name.as_str());
            let _ = writeln!(err, "error: --limit names an unknown server `{root}`");
            if let Some(m) = did_you_mean(root, names) {
                let _ = writeln!(err, "  = help: did you mean `{m}`?");
            }
            return Err(exit::INVALID);
        }
        in_scope.extend(h.subtree(root).into_iter().map(str::to_string));
    }
    let targets = Target::all(&inputs.inventory);
    let mut out = Vec::new();
    for wave in h.waves() {
        let mut names: Vec<&str> = wave;
        names.sort_unstable();
        for name in names {
            if !limit.is_empty() && !in_scope.contains(name) {
                continue;
            }
            let Some(s) = inputs.inventory.get(name) else {
                continue;
            };
            for c in &s.clients {
                if let Some(t) = targets.get(&c.name) {
                    out.push(Canary {
                        target: t.clone(),
                        server: s.name.clone(),
                    });
                }
            }
        }
    }
    if out.is_empty() {
        let _ = writeln!(
            err,
            "error: {} no canary clients: there is nothing to verify on\n  = help: add client computers under a server's `clients:` (docs/inventory.md)",
            if limit.is_empty() {
                format!("{} has", inputs.inventory_path.display())
            } else {
                format!("the subtrees of {} have", limit.join(", "))
            }
        );
        return Err(exit::INVALID);
    }
    Ok(out)
}

/// The playbook's `detect-now` verification: attempts and timeout (2 and 600 s by default).
fn detection_settings(inputs: &Inputs) -> (u32, u32) {
    inputs
        .playbook
        .verify
        .iter()
        .find_map(|a| match a {
            Action::DetectNow { attempts, timeout } => Some((*attempts, *timeout)),
            _ => None,
        })
        .unwrap_or((2, 600))
}

/// The text report: one block per client, then the result.
pub fn text(checks: &[ClientCheck], max_attempts: u32, code: i32) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let width = checks.iter().map(|c| c.client.len()).max().unwrap_or(0);
    let swidth = checks.iter().map(|c| c.server.len()).max().unwrap_or(0) + 2;
    for c in checks {
        let verdict = if c.succeeded {
            format!("succeeded  detection {} of {}", c.attempts, c.max_attempts)
        } else if c.error.is_some() {
            format!(
                "FAILED     {} detection{} run",
                c.attempts,
                if c.attempts == 1 { "" } else { "s" }
            )
        } else {
            format!("FAILED     {} of {} detections", c.attempts, c.max_attempts)
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<swidth$}  {verdict}: {}",
            c.client,
            format!("({})", c.server),
            c.outcome
        );
        for e in &c.evidence {
            let _ = writeln!(out, "    | {e}");
        }
    }
    let ok = checks.iter().filter(|c| c.succeeded).count();
    let failed = checks.len() - ok;
    out.push('\n');
    let _ = writeln!(
        out,
        "Result: {ok} of {} canary client{} detect{}{} (up to {max_attempts} detection{} each; exit {code})",
        checks.len(),
        if checks.len() == 1 { "" } else { "s" },
        if checks.len() == 1 && ok == 1 {
            "s"
        } else {
            ""
        },
        if failed > 0 {
            format!(", {failed} fail{}", if failed == 1 { "s" } else { "" })
        } else {
            String::new()
        },
        if max_attempts == 1 { "" } else { "s" }
    );
    out
}

/// Runs `verify`.
pub fn run(args: &VerifyArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let inputs =
        match super::inputs::load(err, &args.input.inventory, args.input.playbook.as_deref()) {
            Ok(i) => i,
            Err(code) => return code,
        };
    let canaries = match canaries(&inputs, &args.limit, err) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let base = super::remote::base_dir(&inputs.inventory_path).to_path_buf();
    let resolver = Arc::new(Resolver::new(&base));
    if let Err(code) =
        super::remote::check_credentials(canaries.iter().map(|c| &c.target), &resolver, err)
    {
        return code;
    }
    let rt = match super::remote::runtime(err) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let (attempts, timeout) = detection_settings(&inputs);
    let req = DetectRequest {
        attempts,
        timeout,
        parallel: PARALLEL,
        retry: crate::exec::facts::read_retry(),
    };
    if args.format == VerifyFormat::Text {
        let _ = writeln!(
            err,
            "verify: wuauclt /detectnow on {} canary client{}, up to {attempts} detection{} each",
            canaries.len(),
            if canaries.len() == 1 { "" } else { "s" },
            if attempts == 1 { "" } else { "s" }
        );
    }
    let connector = Arc::new(WinrmConnector::new(resolver, &base));
    let checks = rt.block_on(detect::check_all(connector, canaries, &req));
    let failed = checks.iter().filter(|c| !c.succeeded).count();
    let code = if failed == 0 {
        exit::OK
    } else {
        exit::FINDINGS
    };
    match args.format {
        VerifyFormat::Text => {
            let text = text(&checks, attempts.max(1), code);
            let _ = out.write_all(crate::util::terminal::server_text(&text).as_bytes());
        }
        VerifyFormat::Json => {
            let report = Report {
                command: "verify",
                inventory: inputs.inventory_path.display().to_string(),
                playbook: &inputs.playbook.name,
                limit: &args.limit,
                max_attempts: attempts.max(1),
                clients: &checks,
                summary: Summary {
                    clients: checks.len(),
                    succeeded: checks.len() - failed,
                    failed,
                },
                exit_code: code,
            };
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_else(|_| "{}".into())
            );
        }
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::logs::detection::DetectionOutcome;

    fn check(client: &str, succeeded: bool, attempts: u32, error: Option<&str>) -> ClientCheck {
        ClientCheck {
            client: client.into(),
            server: "wsus-eu".into(),
            succeeded,
            attempts,
            max_attempts: 2,
            outcome: match (succeeded, error) {
                (true, _) => "found 2 updates and 68 categories".into(),
                (false, Some(e)) => format!("not reached: {e}"),
                (false, None) => {
                    "0x8024400E SyncUpdates failure of KB 954960 (fault ID c0a7445f)".into()
                }
            },
            detection: succeeded.then_some(DetectionOutcome::Succeeded {
                updates: 2,
                categories: 68,
            }),
            evidence: if error.is_none() {
                vec!["2026-11-24 09:31:02:123  788 ee4 Agent   * Found 2 updates and 68 categories in search".into()]
            } else {
                Vec::new()
            },
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn the_text_report_says_what_each_client_did() {
        let t = text(
            &[
                check("pc-eu-1", true, 2, None),
                check("pc-paris-1", false, 2, None),
                check("pc-x", false, 0, Some("127.0.2.9:5985: connection refused")),
            ],
            2,
            2,
        );
        assert_eq!(
            t,
            "\
pc-eu-1     (wsus-eu)  succeeded  detection 2 of 2: found 2 updates and 68 categories
    | 2026-11-24 09:31:02:123  788 ee4 Agent   * Found 2 updates and 68 categories in search
pc-paris-1  (wsus-eu)  FAILED     2 of 2 detections: 0x8024400E SyncUpdates failure of KB 954960 (fault ID c0a7445f)
    | 2026-11-24 09:31:02:123  788 ee4 Agent   * Found 2 updates and 68 categories in search
pc-x        (wsus-eu)  FAILED     0 detections run: not reached: 127.0.2.9:5985: connection refused

Result: 1 of 3 canary clients detect, 2 fail (up to 2 detections each; exit 2)
"
        );
    }

    #[test]
    fn one_client_reads_in_the_singular() {
        let t = text(&[check("pc-1", true, 1, None)], 1, 0);
        assert!(
            t.ends_with("Result: 1 of 1 canary client detects (up to 1 detection each; exit 0)\n"),
            "{t}"
        );
    }
}
