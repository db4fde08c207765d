//! `wsusfix plan`: the dry run. Shows the waves, each server's path and steps, the replica holds
//! and their guaranteed restores; touches nothing. With `--facts` it first reads every server of
//! the plan (read-only) and marks each one affected, not affected or unknown, with the evidence.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::InputArgs;
use super::inputs::Inputs;
use crate::core::assess::FIXED_CLIENT_DLL;
use crate::core::plan::{self, Affected, FactSummary, Plan, PlanOptions};
use crate::core::playbook::Action;
use crate::core::render;
use crate::exec::connect::{Target, WinrmConnector};
use crate::exec::facts::{self, FactsRequest};
use crate::exit;
use crate::util::credentials::Resolver;
use crate::util::terminal;

/// Output format of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    /// Waves, a tree of servers with their steps, legend and summary.
    Text,
    /// Versioned JSON (docs/plan-format.md); what `apply --plan` reads.
    Json,
    /// Graphviz DOT of the hierarchy, colored by path.
    Dot,
}

/// Arguments of `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Write the plan to FILE (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Restrict the plan to a server's subtree (repeatable); its ancestors become preconditions.
    #[arg(long, value_name = "NAME")]
    pub limit: Vec<String>,
    /// Exit 0 when there is nothing to do, 2 when changes are planned, 3 when the input is invalid.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Read every server of the plan first (read-only) and mark each one affected, not affected
    /// or unknown, with the evidence; contradictions with the inventory skip a server.
    #[arg(long)]
    pub facts: bool,
    /// With --facts: how far back SoftwareDistribution.log is searched (e.g. 7d, 24h, 90m, 2w).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_duration, requires = "facts")]
    pub since: Duration,
    /// With --facts: where runs are journaled, to recognise replicas an interrupted run still
    /// holds autonomous (default: $WSUSFIX_STATE_DIR, else ~/.local/state/wsusfix;
    /// %LOCALAPPDATA%\wsusfix on Windows).
    #[arg(long, value_name = "DIR", requires = "facts")]
    pub state_dir: Option<std::path::PathBuf>,
}

/// Parses a duration such as `7d`, `36h`, `90m`, `2w` or `1d12h` (units s, m, h, d, w).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty duration; write e.g. 7d, 24h or 90m".into());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "`{t}`: unknown unit `{c}`; use s, m, h, d or w (e.g. 7d)"
                ));
            }
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{t}`: a number must come before `{c}` (e.g. 7d)"))?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{t}` is too long"))?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "`{t}`: the number {digits} needs a unit (s, m, h, d or w)"
        ));
    }
    if total == 0 {
        return Err(format!("`{t}` is no time at all"));
    }
    if total > 10 * 365 * 86_400 {
        return Err(format!("`{t}` reaches back more than ten years"));
    }
    Ok(Duration::from_secs(total))
}

/// The client web service version the playbook's SP1 path expects after the hotfix.
fn fixed_dll(pb: &crate::core::playbook::Playbook) -> String {
    pb.paths
        .values()
        .flat_map(|p| p.steps.iter())
        .find_map(|a| match a {
            Action::VerifyFileVersion { path, expect, .. }
                if path
                    .to_ascii_lowercase()
                    .ends_with("webservices.client.dll") =>
            {
                Some(expect.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| FIXED_CLIENT_DLL.to_string())
}

/// Reads the facts of `names` for `plan --facts`.
fn gather_facts(
    inputs: &Inputs,
    names: &[String],
    since: Duration,
    state_dir: Option<&std::path::Path>,
    err: &mut dyn Write,
) -> Result<BTreeMap<String, FactSummary>, i32> {
    let base = super::remote::base_dir(&inputs.inventory_path).to_path_buf();
    let resolver = Arc::new(Resolver::new(&base));
    let targets = Target::all(&inputs.inventory);
    super::remote::check_credentials(names.iter().filter_map(|n| targets.get(n)), &resolver, err)?;
    let rt = super::remote::runtime(err)?;
    let since =
        chrono::Utc::now() - chrono::Duration::from_std(since).unwrap_or(chrono::Duration::days(7));
    let req = FactsRequest {
        update: crate::exec::run::update_of(&inputs.playbook),
        since,
        fixed_dll: fixed_dll(&inputs.playbook),
        parallel: FACTS_PARALLEL,
        retry: facts::read_retry(),
        held: crate::exec::session::held_replicas(&crate::journal::paths::RunDir::new(
            &crate::journal::paths::state_dir(state_dir),
            &inputs.inventory_path,
        )),
    };
    let connector = Arc::new(WinrmConnector::new(resolver, &base));
    let found = rt.block_on(facts::gather(&inputs.inventory, names, connector, &req));
    let count = |a: Affected| found.values().filter(|f| f.affected == a).count();
    let contradicting = found
        .values()
        .filter(|f| !f.contradictions.is_empty())
        .count();
    let _ = writeln!(
        err,
        "facts of {} server{} (SoftwareDistribution.log since {}): {} affected, {} not affected, {} unknown{}",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        since.format("%Y-%m-%d %H:%M UTC"),
        count(Affected::Affected),
        count(Affected::NotAffected),
        count(Affected::Unknown),
        if contradicting > 0 {
            format!(", {contradicting} contradicting the inventory")
        } else {
            String::new()
        }
    );
    Ok(found)
}

/// Servers whose facts are read at once.
const FACTS_PARALLEL: usize = 16;

/// Writes `text` to `path` safely (a new file in its folder, renamed over it; no link is
/// followed), so a reader never sees half a plan.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    crate::util::outfile::write_replacing(path, text.as_bytes())
}

/// Runs `plan`.
/// Plans `inputs` with `opts`; a refusal is reported on `err` (with its hint) as exit 3.
fn plan_or_report(inputs: &Inputs, opts: &PlanOptions, err: &mut dyn Write) -> Result<Plan, i32> {
    plan::plan(&inputs.inventory, &inputs.hierarchy, &inputs.playbook, opts).map_err(|e| {
        let _ = writeln!(err, "error: {}", e.message);
        if let Some(h) = e.help {
            let _ = writeln!(err, "  = help: {h}");
        }
        exit::INVALID
    })
}

pub fn run(args: &PlanArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let inputs =
        match super::inputs::load(err, &args.input.inventory, args.input.playbook.as_deref()) {
            Ok(i) => i,
            Err(code) => return code,
        };
    let mut opts = PlanOptions {
        limit: args.limit.clone(),
        ..PlanOptions::default()
    };
    let mut plan = match plan_or_report(&inputs, &opts, err) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if args.facts {
        let names: Vec<String> = plan.servers.iter().map(|s| s.name.clone()).collect();
        opts.facts = match gather_facts(&inputs, &names, args.since, args.state_dir.as_deref(), err)
        {
            Ok(f) => f,
            Err(code) => return code,
        };
        plan = match plan_or_report(&inputs, &opts, err) {
            Ok(p) => p,
            Err(code) => return code,
        };
    }
    // Facts carry server text (errors, versions): escaped, except in JSON, which escapes itself.
    let rendered = match args.format {
        PlanFormat::Text => terminal::server_text(&render::text(&plan)),
        PlanFormat::Json => render::json(&plan),
        PlanFormat::Dot => terminal::server_text(&render::dot(&plan)),
    };
    match &args.out {
        Some(path) => {
            if let Err(e) = write_atomically(path, &rendered) {
                let _ = writeln!(
                    err,
                    "error: cannot write the plan to {}: {e}",
                    path.display()
                );
                return exit::ERROR;
            }
            let _ = writeln!(
                err,
                "wrote the plan to {} (fingerprint {})",
                path.display(),
                &plan.fingerprint[..12]
            );
        }
        None => {
            let _ = out.write_all(rendered.as_bytes());
        }
    }
    if args.detailed_exitcode && plan.has_changes() {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| parse_duration(s).map(|d| d.as_secs());
        assert_eq!(d("7d"), Ok(7 * 86_400));
        assert_eq!(d("24h"), Ok(86_400));
        assert_eq!(d("90m"), Ok(5_400));
        assert_eq!(d("2w"), Ok(2 * 604_800));
        assert_eq!(d("1d12h"), Ok(36 * 3600));
        assert_eq!(d("45s"), Ok(45));
        assert!(d("7").unwrap_err().contains("needs a unit"));
        assert!(d("7x").unwrap_err().contains("unknown unit `x`"));
        assert!(d("d").unwrap_err().contains("a number must come before"));
        assert!(d("0h").unwrap_err().contains("no time at all"));
        assert!(d("").is_err());
        assert!(d("99999w").unwrap_err().contains("ten years"));
    }
}
