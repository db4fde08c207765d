//! `wsusfix apply`, `resume`, `status` and `restore`: load the inputs, call the run's session
//! ([`crate::exec::session`]) and print. The run's life (lock, journal, decisions, recap, exit
//! code) is the session's.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::InputArgs;
use super::inputs::{self, Inputs};
use super::remote::{base_dir, check_credentials, runtime};
use crate::core::plan::{self, Plan, PlanOptions};
use crate::core::render;
use crate::exec::connect::{Target, WinrmConnector};
use crate::exec::run::{Order, RunConfig};
use crate::exec::session::{self, Outcome, RunInputs, Session, Start};
use crate::exit;
use crate::journal::paths::{self, RunDir};
use crate::report::{self, Format};
use crate::util::credentials::Resolver;

/// The order option (hidden: only tests use a wrong order, to prove it matters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OrderArg {
    /// Upstream first.
    TopDown,
    /// Downstream first (refused unless WSUSFIX_ALLOW_UNSAFE_ORDER=1).
    BottomUp,
}

/// Options of commands that run steps.
#[derive(Debug, Clone, clap::Args)]
pub struct RunOpts {
    /// Where runs are journaled (default: $WSUSFIX_STATE_DIR, else ~/.local/state/wsusfix;
    /// %LOCALAPPDATA%\wsusfix on Windows).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Output: text (progress and recap) or NDJSON events on stdout (docs/events.md).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Servers worked on at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub parallel: usize,
    /// Replicas of one upstream held autonomous at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub max_held: usize,
    /// Start no new server after the first failure (restores still run).
    #[arg(long)]
    pub fail_fast: bool,
    /// Start no new server after N failures (restores still run).
    #[arg(long, value_name = "N")]
    pub max_failures: Option<usize>,
    /// Tries of a remote call that fails in a way that may pass: a refused connection, an HTTP
    /// 5xx, a busy WSUS configuration (1: no retry).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub attempts: u32,
    /// Tries of a remote call while the host does not answer at all (each costs a request
    /// timeout; docs/exit-codes.md says how long a silent host can hold a run).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub stall_attempts: u32,
    /// Seconds a host may take to answer a WinRM request, for every host (1-60; default: each
    /// host's winrm.operation_timeout, else 20).
    #[arg(long, value_name = "SECONDS")]
    pub op_timeout: Option<u64>,
    /// Seed of retry jitter.
    #[arg(long, default_value_t = 0x5eed, hide = true)]
    pub seed: u64,
    /// The order servers are taken in (tests only).
    #[arg(long, value_enum, hide = true)]
    pub order: Option<OrderArg>,
}

/// Arguments of `apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Execute exactly this plan (JSON from `plan --format json --out`); refused if the inputs changed.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Restrict the run to a server's subtree (repeatable).
    #[arg(long, value_name = "NAME")]
    pub limit: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub run: RunOpts,
}

/// Selecting a run.
#[derive(Debug, Clone, clap::Args)]
pub struct RunSelect {
    /// The run ID (default: the latest run of the inventory, or of any inventory).
    #[arg(value_name = "RUN")]
    pub run: Option<String>,
    /// The inventory whose runs to look at.
    #[arg(short = 'i', long = "inventory", value_name = "INV")]
    pub inventory: Option<PathBuf>,
}

/// Arguments of `resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub select: RunSelect,
    #[command(flatten)]
    pub run: RunOpts,
}

/// Arguments of `restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub select: RunSelect,
    /// Without a journal: switch back to replica every server the inventory (-i) calls a
    /// replica whose live facts show it autonomous.
    #[arg(long, requires = "inventory")]
    pub from_facts: bool,
    /// Do not ask for confirmation (--from-facts).
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub run: RunOpts,
}

/// Arguments of `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub select: RunSelect,
    /// Without a journal: list the servers the inventory (-i) calls replicas whose live facts
    /// show them autonomous.
    #[arg(long, requires = "inventory")]
    pub from_facts: bool,
    /// Where runs are journaled.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn config(o: &RunOpts, err: &mut dyn Write) -> Result<RunConfig, i32> {
    let order = match o.order {
        Some(OrderArg::BottomUp) => {
            if std::env::var("WSUSFIX_ALLOW_UNSAFE_ORDER").as_deref() != Ok("1") {
                let _ = writeln!(
                    err,
                    "error: --order bottom-up exists for tests only (set WSUSFIX_ALLOW_UNSAFE_ORDER=1)"
                );
                return Err(exit::INVALID);
            }
            Order::BottomUp
        }
        _ => Order::TopDown,
    };
    if o.parallel == 0 || o.max_held == 0 || o.attempts == 0 || o.stall_attempts == 0 {
        let _ = writeln!(
            err,
            "error: --parallel, --max-held, --attempts and --stall-attempts must be at least 1"
        );
        return Err(exit::INVALID);
    }
    if o.op_timeout.is_some_and(|t| !(1..=60).contains(&t)) {
        let _ = writeln!(
            err,
            "error: --op-timeout must be from 1 to 60 seconds (a WinRM operation timeout)"
        );
        return Err(exit::INVALID);
    }
    Ok(RunConfig {
        parallel: o.parallel,
        max_held_per_upstream: o.max_held,
        fail_fast: o.fail_fast,
        max_failures: o.max_failures,
        seed: o.seed,
        order,
        retry: crate::exec::retry::RetryPolicy {
            attempts: o.attempts,
            stall_attempts: o.stall_attempts,
            ..Default::default()
        },
    })
}

/// The connector of a run's options.
fn connector(o: &RunOpts, resolver: Arc<Resolver>, base: &Path) -> WinrmConnector {
    WinrmConnector::new(resolver, base)
        .with_operation_timeout(o.op_timeout.map(std::time::Duration::from_secs))
}

/// Asks `question` on the terminal (on stderr, so that `--format json` output stays clean);
/// only `yes` goes ahead. Without a terminal to ask on, an input error naming `--yes`.
pub fn confirm(question: &str, command: &str, err: &mut dyn Write) -> Result<bool, i32> {
    if !std::io::stdin().is_terminal() {
        let _ = writeln!(
            err,
            "error: {command} asks for confirmation, and there is no terminal to ask on\n  = help: review what it will do first, then run it with --yes"
        );
        return Err(exit::INVALID);
    }
    let _ = write!(err, "{question} Only 'yes' goes ahead: ");
    let _ = err.flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    Ok(line.trim() == "yes")
}

/// Reads a plan file and checks it still matches the inputs.
fn stored_plan(path: &Path, inputs: &Inputs, err: &mut dyn Write) -> Result<Plan, i32> {
    let text = inputs::read_text(path, "plan").map_err(|m| {
        let _ = writeln!(err, "error: {m}");
        exit::INVALID
    })?;
    let stored: Plan = serde_json::from_str(&text).map_err(|e| {
        let _ = writeln!(err, "error: {} is not a wsusfix JSON plan: {e}\n  = help: write one with `wsusfix plan --format json --out FILE`", path.display());
        exit::INVALID
    })?;
    if stored.format_version != plan::PLAN_FORMAT_VERSION {
        let _ = writeln!(
            err,
            "error: {} has plan format {}; this wsusfix reads {}",
            path.display(),
            stored.format_version,
            plan::PLAN_FORMAT_VERSION
        );
        return Err(exit::INVALID);
    }
    let fresh = plan::fingerprint(&inputs.inventory, &inputs.playbook);
    let again = plan::plan(
        &inputs.inventory,
        &inputs.hierarchy,
        &inputs.playbook,
        &PlanOptions {
            limit: stored.limit.clone(),
            // A plan made with --facts chose paths and skips from the facts it carries.
            facts: stored
                .servers
                .iter()
                .filter_map(|s| Some((s.name.clone(), s.facts.clone()?)))
                .collect(),
        },
    );
    let same = matches!(&again, Ok(p) if p.servers.iter().map(|s| (&s.name, &s.steps, &s.alternatives)).eq(stored.servers.iter().map(|s| (&s.name, &s.steps, &s.alternatives))));
    if stored.fingerprint != fresh || !same {
        let _ = writeln!(
            err,
            "error: the plan {} is stale: it was made for fingerprint {}, and the inventory, the playbook or wsusfix now give {}\n  = help: review a new plan: wsusfix plan -i {} --format json --out {}",
            path.display(),
            &stored.fingerprint[..12.min(stored.fingerprint.len())],
            &fresh[..12],
            inputs.inventory_path.display(),
            path.display()
        );
        return Err(exit::STALE);
    }
    Ok(stored)
}

fn refused(outcome: &Outcome, err: &mut dyn Write) -> i32 {
    if let Outcome::Refused(r) = outcome {
        let _ = writeln!(err, "error: {}", r.message());
    }
    outcome.exit_code()
}

/// Runs `apply`.
pub fn apply(a: &ApplyArgs, _out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let inputs = match inputs::load(err, &a.input.inventory, a.input.playbook.as_deref()) {
        Ok(i) => i,
        Err(code) => return code,
    };
    let cfg = match config(&a.run, err) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let plan = match &a.plan {
        Some(p) => {
            if !a.limit.is_empty() {
                let _ = writeln!(
                    err,
                    "error: --plan executes a plan as written; its --limit was fixed when it was made"
                );
                return exit::INVALID;
            }
            match stored_plan(p, &inputs, err) {
                Ok(p) => p,
                Err(code) => return code,
            }
        }
        None => match plan::plan(
            &inputs.inventory,
            &inputs.hierarchy,
            &inputs.playbook,
            &PlanOptions {
                limit: a.limit.clone(),
                ..PlanOptions::default()
            },
        ) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(err, "error: {}", e.message);
                return exit::INVALID;
            }
        },
    };
    let base = base_dir(&a.input.inventory).to_path_buf();
    let resolver = Arc::new(Resolver::new(&base));
    if let Err(code) = check_credentials(Target::all(&inputs.inventory).values(), &resolver, err) {
        return code;
    }
    let run_id = paths::new_run_id();
    let mut sink = report::choose(a.run.format, &run_id);
    if a.run.format == Format::Text {
        sink.note(&render::text(&plan));
    }
    if !a.yes {
        let question = format!("Apply this plan to {} servers?", plan.summary.servers);
        match confirm(&question, "apply", err) {
            Ok(true) => {}
            Ok(false) => {
                let _ = writeln!(err, "Nothing was done: the plan was not confirmed.");
                return exit::DECLINED;
            }
            Err(code) => return code,
        }
    }
    let rt = match runtime(err) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let state_dir = paths::state_dir(a.run.state_dir.as_deref());
    let session = Session {
        run_dir: RunDir::new(&state_dir, &a.input.inventory),
        connector: Arc::new(connector(&a.run, resolver, &base)),
        config: cfg,
    };
    let run_inputs = RunInputs {
        inventory: &inputs.inventory,
        playbook: &inputs.playbook,
        inventory_path: &a.input.inventory,
        playbook_path: a.input.playbook.as_deref(),
    };
    let outcome = rt.block_on(async {
        let signals = crate::exec::signals::listen();
        session
            .run(
                Start::Fresh(Box::new(plan), run_id),
                run_inputs,
                signals,
                sink.as_mut(),
            )
            .await
    });
    refused(&outcome, err)
}

/// Finds the run to pick up and loads the inputs it was made from (or `-i`'s).
fn picked_run(
    state_dir: &Path,
    select: &RunSelect,
    err: &mut dyn Write,
) -> Result<(RunDir, String, Inputs, Option<PathBuf>), i32> {
    let (rd, run_id) = session::find_run(
        state_dir,
        select.inventory.as_deref(),
        select.run.as_deref(),
    )
    .map_err(|m| {
        let _ = writeln!(err, "error: {m}");
        exit::INVALID
    })?;
    let info = session::header_of(&rd, &run_id);
    let (inv, pb) = match (&select.inventory, &info) {
        (Some(i), info) => (
            i.clone(),
            info.as_ref()
                .and_then(|h| h.playbook.clone())
                .map(PathBuf::from),
        ),
        (None, Some(h)) => (
            PathBuf::from(&h.inventory),
            h.playbook.clone().map(PathBuf::from),
        ),
        (None, None) => {
            let _ = writeln!(
                err,
                "error: the journal of run {run_id} has no readable header, so its inventory is unknown\n  = help: name it: `wsusfix restore {run_id} -i INVENTORY`"
            );
            return Err(exit::INVALID);
        }
    };
    let inputs = inputs::load(err, &inv, pb.as_deref())?;
    Ok((rd, run_id, inputs, pb))
}

/// Runs `resume` (`restore_only`: false) or `restore` (true) of a journaled run.
fn pick_up(select: &RunSelect, run: &RunOpts, restore_only: bool, err: &mut dyn Write) -> i32 {
    let cfg = match config(run, err) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let state_dir = paths::state_dir(run.state_dir.as_deref());
    let (rd, run_id, inputs, pb) = match picked_run(&state_dir, select, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let base = base_dir(&inputs.inventory_path).to_path_buf();
    let resolver = Arc::new(Resolver::new(&base));
    if let Err(code) = check_credentials(Target::all(&inputs.inventory).values(), &resolver, err) {
        return code;
    }
    let rt = match runtime(err) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut sink = report::choose(run.format, &run_id);
    let session = Session {
        run_dir: rd,
        connector: Arc::new(connector(run, resolver, &base)),
        config: cfg,
    };
    let run_inputs = RunInputs {
        inventory: &inputs.inventory,
        playbook: &inputs.playbook,
        inventory_path: &inputs.inventory_path,
        playbook_path: pb.as_deref(),
    };
    let start = if restore_only {
        Start::Restore(run_id)
    } else {
        Start::Resume(run_id)
    };
    let outcome = rt.block_on(async {
        let signals = crate::exec::signals::listen();
        session.run(start, run_inputs, signals, sink.as_mut()).await
    });
    refused(&outcome, err)
}

/// Runs `resume`.
pub fn resume(a: &ResumeArgs, _out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    pick_up(&a.select, &a.run, false, err)
}

/// Runs `restore`.
pub fn restore(a: &RestoreArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if a.from_facts {
        return super::held::restore_from_facts(a, out, err);
    }
    pick_up(&a.select, &a.run, true, err)
}

/// Runs `status`.
pub fn status(a: &StatusArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if a.from_facts {
        return super::held::status_from_facts(a, out, err);
    }
    let state_dir = paths::state_dir(a.state_dir.as_deref());
    let (rd, run_id) = match session::find_run(
        &state_dir,
        a.select.inventory.as_deref(),
        a.select.run.as_deref(),
    ) {
        Ok(x) => x,
        Err(m) => {
            let _ = writeln!(err, "error: {m}");
            return exit::INVALID;
        }
    };
    let st = match session::inspect(&rd, &run_id) {
        Ok(s) => s,
        Err(m) => {
            let _ = writeln!(err, "error: {m}");
            return exit::ERROR;
        }
    };
    match a.format {
        Format::Json => {
            let _ = writeln!(out, "{}", st.to_json());
        }
        Format::Text => {
            let _ = write!(out, "{}", st.text());
        }
    }
    st.exit_code()
}
