//! `wsusfix bench`: benchmarks run as a command, never as timed tests. Each measurement runs in a
//! child process so that its peak memory is its own. Figures and commands: docs/performance.md.
//!
//! - `plan`: parsing, validating and planning generated hierarchies (this file);
//! - `makespan`: a run against a simulated fleet with seeded per-operation durations, against
//!   the critical-path bound and a tier-by-tier schedule of the same durations;
//! - `footprint`: peak memory and CPU of the wsusfix process doing a run, and its traffic.

pub mod bounds;
pub mod children;
pub mod footprint;
pub mod harness;
pub mod makespan;
pub mod workload;

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use crate::core::hierarchy::Hierarchy;
use crate::core::plan::{self, PlanOptions};
use crate::core::{inventory, playbook, render, synthetic};
use crate::exit;

/// Appended to a benchmark's heading: figures from a debug build are not the ones to record.
fn debug_build_note() -> &'static str {
    if cfg!(debug_assertions) {
        ", DEBUG BUILD: use --release for figures"
    } else {
        ""
    }
}

/// Arguments of `bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub what: BenchKind,
}

/// The benchmarks.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchKind {
    /// Parse, validate and plan generated hierarchies (default sizes 1,000, 10,000, 100,000).
    Plan(PlanBench),
    /// Run a generated hierarchy against the simulator with seeded per-operation durations and
    /// compare the makespan with the critical-path bound and a tier-by-tier schedule.
    Makespan(makespan::MakespanBench),
    /// Peak memory, CPU and traffic of the wsusfix process running a generated hierarchy
    /// (default sizes 1,000 and 10,000).
    Footprint(footprint::FootprintBench),
    /// Internal: serve one shard of a benchmark's simulated fleet until stdin closes.
    #[command(hide = true)]
    SimChild(children::ChildArgs),
    /// Internal: run a benchmark's plan against its simulated fleet.
    #[command(hide = true)]
    RunChild(children::ChildArgs),
}

/// Options of the plan benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanBench {
    /// Hierarchy sizes to plan (repeatable).
    #[arg(long = "servers", value_name = "N")]
    pub servers: Vec<usize>,
    /// Tiers of the generated hierarchies.
    #[arg(long, default_value_t = 4)]
    pub tiers: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Internal: measure one size in this process and print one JSON line.
    #[arg(long, hide = true)]
    pub child: bool,
}

/// Peak memory of this process in KiB (Linux `VmHWM`, the peak working set on Windows), if
/// known.
pub fn peak_rss_kib() -> Option<u64> {
    crate::util::platform::peak_rss_kib()
}

/// Runs `bench`.
pub fn run(args: &BenchArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match &args.what {
        BenchKind::Plan(p) if p.child => plan_child(p, out, err),
        BenchKind::Plan(p) => plan_parent(p, out, err),
        BenchKind::Makespan(b) => makespan::run(b, out, err),
        BenchKind::Footprint(b) => footprint::run(b, out, err),
        BenchKind::SimChild(a) => children::sim_child(a, out, err),
        BenchKind::RunChild(a) => children::run_child(a, out, err),
    }
}

fn plan_child(p: &PlanBench, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let n = p.servers.first().copied().unwrap_or(1000);
    let parents = synthetic::parents(n, p.tiers, p.seed);
    let text = synthetic::inventory_text(&parents, p.seed, false);
    let base_rss = peak_rss_kib().unwrap_or(0);
    let t0 = Instant::now();
    let loaded = inventory::load(&text);
    let Some(inv) = loaded.inventory else {
        let _ = writeln!(err, "error: the generated inventory is invalid");
        return exit::ERROR;
    };
    let t1 = Instant::now();
    let h = Hierarchy::new(&inv);
    let t2 = Instant::now();
    let pb = playbook::load(playbook::DEFAULT_PLAYBOOK)
        .playbook
        .expect("built-in playbook");
    let plan = match plan::plan(&inv, &h, &pb, &PlanOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "error: {}", e.message);
            return exit::ERROR;
        }
    };
    let t3 = Instant::now();
    let text_out = render::text(&plan);
    let json_out = render::json(&plan);
    let t4 = Instant::now();
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
    let line = serde_json::json!({
        "servers": n,
        "yaml_kib": text.len() / 1024,
        "load_ms": ms(t0, t1),
        "hierarchy_ms": ms(t1, t2),
        "plan_ms": ms(t2, t3),
        "render_ms": ms(t3, t4),
        "total_ms": ms(t0, t4),
        "text_kib": text_out.len() / 1024,
        "json_kib": json_out.len() / 1024,
        "peak_rss_kib": peak_rss_kib().unwrap_or(0),
        "rss_before_kib": base_rss,
    });
    let _ = writeln!(out, "{line}");
    exit::OK
}

fn plan_parent(p: &PlanBench, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let sizes = if p.servers.is_empty() {
        vec![1_000, 10_000, 100_000]
    } else {
        p.servers.clone()
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            let _ = writeln!(err, "error: cannot find the wsusfix executable: {e}");
            return exit::ERROR;
        }
    };
    let _ = writeln!(
        out,
        "plan benchmark: generated inventory text -> validate -> hierarchy -> plan -> text + JSON ({} tiers, seed {}{})",
        p.tiers,
        p.seed,
        debug_build_note()
    );
    let _ = writeln!(
        out,
        "{:>9} {:>9} {:>10} {:>10} {:>9} {:>9} {:>10} {:>11} {:>9}",
        "servers",
        "yaml KiB",
        "validate",
        "hierarchy",
        "plan",
        "render",
        "total",
        "us/server",
        "peak MiB"
    );
    let mut rows = Vec::new();
    for n in sizes {
        let o = Command::new(&exe)
            .args([
                "bench",
                "plan",
                "--child",
                "--servers",
                &n.to_string(),
                "--tiers",
                &p.tiers.to_string(),
                "--seed",
                &p.seed.to_string(),
            ])
            .output();
        let o = match o {
            Ok(o) if o.status.success() => o,
            Ok(o) => {
                let _ = writeln!(
                    err,
                    "error: the {n}-server run failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                return exit::ERROR;
            }
            Err(e) => {
                let _ = writeln!(err, "error: cannot run the {n}-server measurement: {e}");
                return exit::ERROR;
            }
        };
        let v: serde_json::Value = match serde_json::from_slice(&o.stdout) {
            Ok(v) => v,
            Err(e) => {
                let _ = writeln!(err, "error: unreadable measurement: {e}");
                return exit::ERROR;
            }
        };
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "{:>9} {:>9} {:>8.1}ms {:>8.1}ms {:>7.1}ms {:>7.1}ms {:>8.1}ms {:>11.2} {:>9.1}",
            n,
            f("yaml_kib"),
            f("load_ms"),
            f("hierarchy_ms"),
            f("plan_ms"),
            f("render_ms"),
            f("total_ms"),
            f("total_ms") * 1000.0 / n as f64,
            f("peak_rss_kib") / 1024.0
        );
        rows.push((n, f("total_ms")));
    }
    if let (Some(&(n0, t0)), Some(&(n1, t1))) = (rows.first(), rows.last())
        && n1 > n0
        && t0 > 0.0
    {
        let _ = writeln!(
            out,
            "scaling {n0} -> {n1} servers: time x{:.1} for x{:.0} servers (per-server cost ratio {:.2}; 1.00 is linear)",
            t1 / t0,
            n1 as f64 / n0 as f64,
            (t1 / n1 as f64) / (t0 / n0 as f64)
        );
    }
    exit::OK
}
