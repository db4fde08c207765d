//! `wsusfix apply`, `resume`, `status` and `restore`: running a plan against the servers,
//! picking up an interrupted run, showing where a run stands, and closing its open obligations.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use super::InputArgs;
use super::inputs::{self, Inputs};
use super::remote::{base_dir, check_credentials, runtime};
use crate::core::plan::{self, Plan, PlanOptions};
use crate::core::render;
use crate::exec::connect::{Target, WinrmConnector};
use crate::exec::run::{self, Job, Order, RunConfig, RunReport};
use crate::exit;
use crate::journal::lock::{self, LockError, RunLock};
use crate::journal::paths::{self, RunDir};
use crate::journal::reader::{self, RunState};
use crate::journal::record::{JOURNAL_FORMAT_VERSION, Record, now};
use crate::journal::writer::JournalWriter;
use crate::report::{self, Format, Sink};
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
    /// Where runs are journaled (default: $WSUSFIX_STATE_DIR, else .wsusfix).
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

/// Arguments of `resume` and `restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    pub select: RunSelect,
    #[command(flatten)]
    pub run: RunOpts,
}

/// Arguments of `status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub select: RunSelect,
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
    if o.parallel == 0 || o.max_held == 0 {
        let _ = writeln!(err, "error: --parallel and --max-held must be at least 1");
        return Err(exit::INVALID);
    }
    Ok(RunConfig {
        parallel: o.parallel,
        max_held_per_upstream: o.max_held,
        fail_fast: o.fail_fast,
        max_failures: o.max_failures,
        seed: o.seed,
        order,
        ..RunConfig::default()
    })
}

/// Counts Ctrl-C presses (the dispatcher decides what each one means).
fn interrupts() -> watch::Receiver<u32> {
    let (tx, rx) = watch::channel(0u32);
    tokio::spawn(async move {
        let mut n = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            n += 1;
            if tx.send(n).is_err() {
                break;
            }
        }
    });
    rx
}

fn confirm(plan: &Plan, out: &mut dyn Write, err: &mut dyn Write) -> Result<bool, i32> {
    if !std::io::stdin().is_terminal() {
        let _ = writeln!(
            err,
            "error: apply asks for confirmation, and there is no terminal to ask on\n  = help: review the plan with `wsusfix plan` and run apply with --yes"
        );
        return Err(exit::INVALID);
    }
    let _ = write!(
        out,
        "Apply this plan to {} servers? Only 'yes' goes ahead: ",
        plan.summary.servers
    );
    let _ = out.flush();
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

/// Closes the open obligations of `run_id` (a run that ended or died without restoring).
fn drain_run(
    rt: &tokio::runtime::Runtime,
    rd: &RunDir,
    run_id: &str,
    inputs: &Inputs,
    connector: &Arc<WinrmConnector>,
    sink: &mut dyn Sink,
) -> Result<(), String> {
    let path = rd.journal(run_id);
    let j = reader::read(&path).map_err(|e| e.to_string())?;
    let state = RunState::replay(&j.records);
    if state.open_obligations().is_empty() {
        return Ok(());
    }
    sink.event(&crate::exec::events::Event::Warning {
        message: format!(
            "run {run_id} left {} temporary change(s) open: restoring them first",
            state.open_obligations().len()
        ),
    });
    let writer = JournalWriter::reopen(&path, j.valid_len)
        .map_err(|e| format!("cannot reopen {}: {e}", path.display()))?;
    writer
        .append_blocking(&Record::Resumed {
            by: "restore".into(),
            pid: std::process::id(),
            at: now(),
        })
        .map_err(|e| e.to_string())?;
    let (_tx, rx) = watch::channel(0u32);
    let job = Job {
        command: "restore",
        plan: &state.plan,
        inventory: &inputs.inventory,
        playbook: &inputs.playbook,
        journal: writer,
        resumed: Some(state.clone()),
        connector: connector.clone(),
        interrupts: rx,
    };
    let report = rt.block_on(run::restore(job, RunConfig::default(), sink));
    if report.exit_code == exit::OK {
        Ok(())
    } else {
        Err(format!(
            "run {run_id} still has temporary changes that could not be restored"
        ))
    }
}

/// Takes the inventory's lock for `run_id`. A stale lock of another run is taken over only after
/// that run's open obligations are drained.
fn take_lock(
    rt: &tokio::runtime::Runtime,
    rd: &RunDir,
    run_id: &str,
    inputs: &Inputs,
    connector: &Arc<WinrmConnector>,
    sink: &mut dyn Sink,
    err: &mut dyn Write,
) -> Result<RunLock, i32> {
    match lock::acquire(&rd.lock(), run_id) {
        Ok(l) => Ok(l),
        Err(e @ LockError::Held { .. }) => {
            let _ = writeln!(
                err,
                "error: {e}\n  = help: wait for it to finish, or stop it (Ctrl-C lets it restore)"
            );
            Err(exit::LOCKED)
        }
        Err(LockError::Stale { info, path }) => {
            if info.run_id != run_id
                && let Err(e) = drain_run(rt, rd, &info.run_id, inputs, connector, sink)
            {
                let _ = writeln!(
                    err,
                    "error: the lock {} is stale (run {} is gone) but {e}\n  = help: run `wsusfix restore {}` once the servers are reachable",
                    path.display(),
                    info.run_id,
                    info.run_id
                );
                return Err(exit::RESTORES_PENDING);
            }
            lock::take_over(&path, &info, run_id).map_err(|e| {
                let _ = writeln!(err, "error: {e}");
                exit::LOCKED
            })
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            Err(exit::ERROR)
        }
    }
}

fn finish(report: RunReport) -> i32 {
    report.exit_code
}

/// Runs `apply`.
pub fn apply(a: &ApplyArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
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
        match confirm(&plan, out, err) {
            Ok(true) => {}
            Ok(false) => {
                let _ = writeln!(out, "Nothing was done.");
                return exit::OK;
            }
            Err(code) => return code,
        }
    }
    let rt = match runtime(err) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let state_dir = paths::state_dir(a.run.state_dir.as_deref());
    let rd = RunDir::new(&state_dir, &a.input.inventory);
    let connector = Arc::new(WinrmConnector::new(resolver, &base));
    let _lock = match take_lock(&rt, &rd, &run_id, &inputs, &connector, sink.as_mut(), err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // Temporary changes an earlier run could not undo come first.
    for old in rd.runs() {
        if let Err(e) = drain_run(&rt, &rd, &old, &inputs, &connector, sink.as_mut()) {
            let _ = writeln!(
                err,
                "error: {e}; nothing new was started\n  = help: run `wsusfix restore {old} -i {}` once the servers are reachable",
                a.input.inventory.display()
            );
            return exit::RESTORES_PENDING;
        }
    }
    let header = Record::Header {
        format_version: JOURNAL_FORMAT_VERSION,
        run_id: run_id.clone(),
        fingerprint: plan.fingerprint.clone(),
        tool_version: plan::TOOL_VERSION.to_string(),
        inventory: a.input.inventory.display().to_string(),
        playbook: a.input.playbook.as_ref().map(|p| p.display().to_string()),
        at: now(),
        plan: Box::new(plan.clone()),
    };
    let journal = match JournalWriter::create(&rd.journal(&run_id), &header) {
        Ok(j) => j,
        Err(e) => {
            let _ = writeln!(
                err,
                "error: cannot create the journal {}: {e}",
                rd.journal(&run_id).display()
            );
            return exit::ERROR;
        }
    };
    rt.block_on(async {
        let job = Job {
            command: "apply",
            plan: &plan,
            inventory: &inputs.inventory,
            playbook: &inputs.playbook,
            journal,
            resumed: None,
            connector,
            interrupts: interrupts(),
        };
        finish(run::execute(job, cfg, sink.as_mut()).await)
    })
}

/// Finds the run to resume, restore or show.
fn locate(
    state_dir: &Path,
    select: &RunSelect,
    err: &mut dyn Write,
) -> Result<(RunDir, String), i32> {
    let dirs: Vec<RunDir> = match &select.inventory {
        Some(inv) => vec![RunDir::new(state_dir, inv)],
        None => std::fs::read_dir(state_dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| RunDir::at(&e.path()))
            .collect(),
    };
    let mut best: Option<(RunDir, String)> = None;
    for d in dirs {
        for id in d.runs() {
            let wanted = match &select.run {
                Some(r) => &id == r,
                None => best.as_ref().is_none_or(|(_, b)| &id > b),
            };
            if wanted {
                best = Some((d.clone(), id));
            }
        }
    }
    best.ok_or_else(|| {
        let what = match &select.run {
            Some(r) => format!("no run {r}"),
            None => "no run".to_string(),
        };
        let _ = writeln!(err, "error: {what} under {}\n  = help: runs are kept where `apply` ran (--state-dir or $WSUSFIX_STATE_DIR)", state_dir.display());
        exit::INVALID
    })
}

fn load_run(
    rd: &RunDir,
    run_id: &str,
    err: &mut dyn Write,
) -> Result<(reader::Journal, RunState), i32> {
    match reader::read(&rd.journal(run_id)) {
        Ok(j) => {
            let st = RunState::replay(&j.records);
            Ok((j, st))
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            Err(exit::INVALID)
        }
    }
}

/// Loads the inputs a run was made from and checks they have not changed.
fn run_inputs(st: &RunState, err: &mut dyn Write) -> Result<Inputs, i32> {
    let inv = PathBuf::from(&st.inventory);
    let pb = st.playbook.as_ref().map(PathBuf::from);
    let inputs = inputs::load(err, &inv, pb.as_deref())?;
    let fresh = plan::fingerprint(&inputs.inventory, &inputs.playbook);
    if fresh != st.fingerprint {
        let _ = writeln!(
            err,
            "error: run {} was made for fingerprint {}, and {} with its playbook now gives {}: the inputs changed since\n  = help: `wsusfix restore {}` still closes its open obligations; start a new run with `wsusfix apply`",
            st.run_id,
            &st.fingerprint[..12.min(st.fingerprint.len())],
            st.inventory,
            &fresh[..12],
            st.run_id
        );
        return Err(exit::STALE);
    }
    Ok(inputs)
}

/// Runs `resume` (`restore_only`: false) or `restore` (true).
pub fn resume(
    a: &ResumeArgs,
    restore_only: bool,
    _out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let cfg = match config(&a.run, err) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let state_dir = paths::state_dir(a.run.state_dir.as_deref());
    let (rd, run_id) = match locate(&state_dir, &a.select, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (j, st) = match load_run(&rd, &run_id, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let inputs = match run_inputs(&st, err) {
        Ok(i) => i,
        // restore does not need matching inputs to undo mode switches; resume does.
        Err(code) if restore_only && code == exit::STALE => {
            let inv = PathBuf::from(&st.inventory);
            match inputs::load(
                err,
                &inv,
                st.playbook.as_ref().map(PathBuf::from).as_deref(),
            ) {
                Ok(i) => i,
                Err(code) => return code,
            }
        }
        Err(code) => return code,
    };
    let base = base_dir(Path::new(&st.inventory)).to_path_buf();
    let resolver = Arc::new(Resolver::new(&base));
    if let Err(code) = check_credentials(Target::all(&inputs.inventory).values(), &resolver, err) {
        return code;
    }
    let rt = match runtime(err) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let mut sink = report::choose(a.run.format, &run_id);
    let connector = Arc::new(WinrmConnector::new(resolver, &base));
    let _lock = match take_lock(&rt, &rd, &run_id, &inputs, &connector, sink.as_mut(), err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let writer = match JournalWriter::reopen(&rd.journal(&run_id), j.valid_len) {
        Ok(w) => w,
        Err(e) => {
            let _ = writeln!(err, "error: cannot reopen the journal: {e}");
            return exit::ERROR;
        }
    };
    let by = if restore_only { "restore" } else { "resume" };
    if let Err(e) = writer.append_blocking(&Record::Resumed {
        by: by.into(),
        pid: std::process::id(),
        at: now(),
    }) {
        let _ = writeln!(err, "error: cannot write the journal: {e}");
        return exit::ERROR;
    }
    rt.block_on(async {
        let job = Job {
            command: by,
            plan: &st.plan,
            inventory: &inputs.inventory,
            playbook: &inputs.playbook,
            journal: writer,
            resumed: Some(st.clone()),
            connector,
            interrupts: interrupts(),
        };
        if restore_only {
            finish(run::restore(job, cfg, sink.as_mut()).await)
        } else {
            finish(run::execute(job, cfg, sink.as_mut()).await)
        }
    })
}

/// Runs `status`.
pub fn status(a: &StatusArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let state_dir = paths::state_dir(a.state_dir.as_deref());
    let (rd, run_id) = match locate(&state_dir, &a.select, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (j, st) = match load_run(&rd, &run_id, err) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let lock = lock::read(&rd.lock()).ok().flatten();
    let running = lock
        .as_ref()
        .is_some_and(|l| l.run_id == run_id && !l.is_stale());
    let result = st.finished.clone().unwrap_or_else(|| {
        if running {
            "running".into()
        } else {
            "interrupted".into()
        }
    });
    let code = if st.open_obligations().is_empty() {
        exit::OK
    } else {
        exit::RESTORES_PENDING
    };
    let recap = run::recap_of(&st, &Default::default(), &result, code, 0);
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "run_id": run_id,
                "inventory": st.inventory,
                "started": st.started,
                "state": result,
                "torn_tail": j.torn_tail,
                "servers": recap.rows,
                "ledger": recap.ledger,
                "held_autonomous": st.open_obligations().iter().filter(|o| o.id().starts_with("replica-hold:")).map(|o| o.server()).collect::<Vec<_>>(),
            });
            let _ = writeln!(out, "{v}");
        }
        Format::Text => {
            let _ = writeln!(
                out,
                "run {run_id} of {} (started {}): {result}",
                st.inventory, st.started
            );
            for (name, p) in &st.servers {
                if p.result.is_none()
                    && let Some((i, _)) = p
                        .steps
                        .iter()
                        .rev()
                        .find(|(_, s)| matches!(s, reader::StepState::Unknown))
                {
                    let _ = writeln!(
                        out,
                        "  {name}: step {} in progress when the run stopped (outcome unknown; resume re-checks it)",
                        i + 1
                    );
                }
            }
            let held: Vec<&str> = st
                .open_obligations()
                .iter()
                .filter(|o| o.id().starts_with("replica-hold:"))
                .map(|o| o.server())
                .collect();
            if !held.is_empty() {
                let _ = writeln!(
                    out,
                    "  HELD AUTONOMOUS by this run: {} (run `wsusfix restore {run_id}`)",
                    held.join(", ")
                );
            }
            let _ = writeln!(out, "\n{}", crate::report::recap::text(&recap, false));
        }
    }
    code
}
