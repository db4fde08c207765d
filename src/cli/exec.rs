//! `wsusfix exec`: run a PowerShell snippet on inventory hosts and show each host's output and
//! exit code, as admins expect from an ad-hoc runner. Hosts run in parallel (one connection each);
//! output is printed per host, in the order given.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::exec::connect::{Connector, Target, WinrmConnector};
use crate::exit;
use crate::util::credentials::Resolver;
use crate::util::terminal;

/// Arguments of `exec`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Inventory (YAML).
    #[arg(short = 'i', long = "inventory", value_name = "INV")]
    pub inventory: std::path::PathBuf,
    /// A server or client of the inventory (repeatable; `all` for every server).
    #[arg(long = "host", value_name = "NAME", required = true)]
    pub hosts: Vec<String>,
    /// Seconds to wait for each host.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// The PowerShell script (after `--`).
    #[arg(last = true, required = true, value_name = "SCRIPT")]
    pub script: Vec<String>,
}

/// Runs `exec`: exit 0 when every host ran the script with exit code 0, 2 when any did not
/// (a non-zero exit code or a connection failure), 3 for invalid input.
pub fn run(a: &ExecArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let inputs = match super::inputs::load(err, &a.inventory, None) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let targets = Target::all(&inputs.inventory);
    let mut names: Vec<String> = Vec::new();
    for h in &a.hosts {
        if h == "all" {
            names.extend(inputs.inventory.servers().iter().map(|s| s.name.clone()));
        } else if targets.contains_key(h) {
            names.push(h.clone());
        } else {
            let known = targets.keys().map(String::as_str);
            let _ = writeln!(
                err,
                "error: `{h}` is not a server or client of {}",
                a.inventory.display()
            );
            if let Some(m) = crate::core::diag::did_you_mean(h, known) {
                let _ = writeln!(err, "  = help: did you mean `{m}`?");
            }
            return exit::INVALID;
        }
    }
    names.dedup();
    let script = a.script.join(" ");
    if script.trim().is_empty() {
        let _ = writeln!(err, "error: the script is empty");
        return exit::INVALID;
    }
    let base = a
        .inventory
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let connector = Arc::new(WinrmConnector::new(Arc::new(Resolver::new(base)), base));
    let rt = match super::remote::runtime(err) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let deadline = Duration::from_secs(a.timeout.max(1));
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for n in &names {
            let target = targets[n].clone();
            let connector = connector.clone();
            let script = script.clone();
            tasks.push(tokio::spawn(async move {
                let mut session = connector.connect(&target)?;
                let r = session
                    .run_ps(&script, deadline)
                    .await
                    .map_err(|e| e.to_string());
                let mechanism = session.mechanism();
                WinrmConnector::close(&mut session).await;
                r.map(|o| (o, mechanism))
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap_or_else(|e| Err(e.to_string())));
        }
        results
    });
    let mut failed = 0;
    for (name, r) in names.iter().zip(results) {
        // What the hosts print is theirs: shown with control characters escaped, long lines cut.
        match r {
            Ok((o, mechanism)) => {
                let via = mechanism.map(|m| format!(", {m}")).unwrap_or_default();
                let _ = writeln!(out, "== {name} (exit {}{via})", o.exit_code);
                if !o.stdout.is_empty() {
                    let stdout = terminal::server_text(&o.stdout);
                    let _ = write!(out, "{stdout}");
                    if !stdout.ends_with('\n') {
                        let _ = writeln!(out);
                    }
                }
                if !o.stderr.trim().is_empty() {
                    let stderr = terminal::server_text(o.stderr.trim_end());
                    let _ = writeln!(out, "-- stderr\n{stderr}");
                }
                if o.exit_code != 0 {
                    failed += 1;
                }
            }
            Err(e) => {
                let _ = writeln!(out, "== {name} (not run)\n{}", terminal::server_text(&e));
                failed += 1;
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{} host{}: {} ok, {failed} failed",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.len() - failed
    );
    if failed == 0 {
        exit::OK
    } else {
        exit::FINDINGS
    }
}
