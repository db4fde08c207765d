//! Command-line definitions and one file per command. Arguments are parsed purely (clap), then
//! each command combines them with the environment once.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit;

pub mod apply;
pub mod bench;
pub mod demo;
pub mod diagnose;
pub mod discover;
pub mod exec;
pub mod held;
pub mod inputs;
pub mod plan;
pub mod remote;
pub mod sim;
pub mod validate;
pub mod verify;

/// Apply Microsoft KB 954960 to every server of a WSUS 3.0 hierarchy, top-down, over WinRM.
#[derive(Debug, Parser)]
#[command(name = "wsusfix", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an inventory (and a playbook) and report every problem with its line and column.
    Validate(validate::ValidateArgs),
    /// Print what `apply` would do, in which order and why, without touching any server.
    Plan(plan::PlanArgs),
    /// The whole story on the built-in simulator: symptom, plan, repair, proof. No setup.
    Demo(demo::DemoArgs),
    /// Run the plan against the servers: top-down, siblings in parallel, every step journaled.
    Apply(apply::ApplyArgs),
    /// Pick up an interrupted run: restore what it left, then finish its servers.
    Resume(apply::ResumeArgs),
    /// Show where a run stands and its restore ledger.
    Status(apply::StatusArgs),
    /// Close every open obligation of a run (switch held replicas back), nothing else.
    Restore(apply::RestoreArgs),
    /// Run a PowerShell snippet on inventory hosts and show each host's output and exit code.
    Exec(exec::ExecArgs),
    /// Prove the fix: detect now on every canary client and read its WindowsUpdate.log.
    ///
    /// Exit 0 when every client detects, 2 when some fail, 3 for invalid input.
    Verify(verify::VerifyArgs),
    /// Walk a hierarchy from its top server through the WSUS API and write its inventory.
    Discover(discover::DiscoverArgs),
    /// Say whether logs show the KB 954960 symptom, quoting the evidence lines.
    ///
    /// Reads any mix of WindowsUpdate.log and SoftwareDistribution.log files (also gzip'd or
    /// UTF-16). Exit 0 when there is no symptom, 2 when it is found, 3 for unreadable input.
    Diagnose(diagnose::DiagnoseArgs),
    /// The simulated WSUS fleet: serve an inventory over WinRM on loopback, or print its state.
    Sim(sim::SimArgs),
    /// Measure: plan (planning time and memory), makespan (a run against its critical-path
    /// bound), footprint (memory, CPU and traffic of a run).
    Bench(bench::BenchArgs),
}

/// The inventory and playbook options shared by most commands.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// Inventory file (YAML; docs/inventory.md).
    #[arg(short = 'i', long = "inventory", value_name = "INV")]
    pub inventory: PathBuf,
    /// Playbook file (YAML; docs/playbook.md). Default: the built-in KB 954960 playbook.
    #[arg(short = 'p', long = "playbook", value_name = "PLAYBOOK")]
    pub playbook: Option<PathBuf>,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    crate::report::log::init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => exit::OK,
                _ => exit::INVALID,
            };
        }
    };
    run(cli)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> i32 {
    // Unlocked handles: worker threads log to stderr while a command runs, and holding the
    // process-wide lock here would block them forever.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    match cli.command {
        Command::Validate(a) => validate::run(&a, &mut out, &mut err),
        Command::Plan(a) => plan::run(&a, &mut out, &mut err),
        Command::Demo(a) => demo::run(&a, &mut out, &mut err),
        Command::Apply(a) => apply::apply(&a, &mut out, &mut err),
        Command::Resume(a) => apply::resume(&a, &mut out, &mut err),
        Command::Status(a) => apply::status(&a, &mut out, &mut err),
        Command::Restore(a) => apply::restore(&a, &mut out, &mut err),
        Command::Exec(a) => exec::run(&a, &mut out, &mut err),
        Command::Verify(a) => verify::run(&a, &mut out, &mut err),
        Command::Discover(a) => discover::run(&a, &mut out, &mut err),
        Command::Diagnose(a) => diagnose::run(&a, &mut out, &mut err),
        Command::Sim(a) => sim::run(&a, &mut out, &mut err),
        Command::Bench(a) => bench::run(&a, &mut out, &mut err),
    }
}
