//! The two processes of a run benchmark, each measuring itself: the simulator serving (a shard
//! of) the generated fleet, and wsusfix running the plan against it with the real executor over
//! real WinRM. Each prints JSON lines on stdout for the parent (`bench makespan`, `bench
//! footprint`) to read.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::makespan;
use super::workload::{self, Workload};
use crate::core::inventory;
use crate::exec::connect::WinrmConnector;
use crate::exec::events::Event;
use crate::exec::run::RunConfig;
use crate::exec::session::{Outcome, RunInputs, Session, Start};
use crate::exec::signals;
use crate::exit;
use crate::journal::paths::RunDir;
use crate::journal::record::ServerResult;
use crate::report::Sink;
use crate::report::recap::Recap;
use crate::sim::fleet::{Fleet, FleetConfig};
use crate::util::credentials::Resolver;
use crate::util::platform;

/// What a process has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU seconds in user mode.
    pub user_s: f64,
    /// CPU seconds in the kernel.
    pub system_s: f64,
    /// Peak memory, KiB (Linux `VmHWM`, the peak working set on Windows).
    pub peak_rss_kib: u64,
}

/// This process's usage (`getrusage(RUSAGE_SELF)` and `VmHWM` on Linux, `GetProcessTimes` and
/// the peak working set on Windows; zeros where the system does not say).
pub fn usage() -> Usage {
    let cpu = platform::cpu_times().unwrap_or_default();
    Usage {
        user_s: cpu.user_s,
        system_s: cpu.system_s,
        peak_rss_kib: super::peak_rss_kib().unwrap_or(0),
    }
}

/// The most files and sockets this process may hold open.
pub fn open_files_limit() -> u64 {
    platform::open_files_limit()
}

/// Where a child's workload comes from (the parent passes the same to every child).
#[derive(Debug, Clone, clap::Args)]
pub struct ChildArgs {
    /// Servers of the generated hierarchy.
    #[arg(long, default_value_t = 1000)]
    pub servers: usize,
    /// Its tiers.
    #[arg(long, default_value_t = 4)]
    pub tiers: usize,
    /// Seed of the hierarchy and of the simulated durations.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// WinRM port of every host.
    #[arg(long, default_value_t = workload::DEFAULT_PORT)]
    pub port: u16,
    /// Simulator: which shard of the fleet to serve.
    #[arg(long, default_value_t = 0)]
    pub shard: usize,
    /// Simulator: the most servers one process serves (the shards are computed from it).
    #[arg(long, default_value_t = usize::MAX)]
    pub max_hosts: usize,
    /// Run: servers worked on at once.
    #[arg(long, default_value_t = 1000)]
    pub parallel: usize,
    /// Run: replicas of one upstream held autonomous at once (default: no cap).
    #[arg(long)]
    pub max_held: Option<usize>,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// `bench sim-child`: serves one shard of the fleet over HTTP until stdin closes; prints a
/// `ready` line once listening, then the operations it served and its own usage.
pub fn sim_child(a: &ChildArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match serve_shard(a, out) {
        Ok(()) => exit::OK,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            exit::ERROR
        }
    }
}

fn serve_shard(a: &ChildArgs, out: &mut dyn Write) -> Result<(), String> {
    let w = Workload::new(a.servers, a.tiers, a.seed, a.port);
    let shards = w.shards(a.max_hosts)?;
    let keep = shards
        .get(a.shard)
        .ok_or_else(|| format!("there are only {} shards", shards.len()))?;
    let text = w.subset(keep);
    let inv = inventory::load(&text)
        .inventory
        .ok_or("the generated inventory is invalid")?;
    let rt = runtime()?;
    let resolver = Resolver::new(Path::new("."));
    let fleet = rt.block_on(Fleet::start(
        &inv,
        &workload::scenario(a.seed),
        &resolver,
        FleetConfig {
            http_port: a.port,
            https_port: None,
            state_file: None,
            keytab: None,
        },
    ))?;
    let _ = writeln!(
        out,
        "{}",
        json!({ "ready": true, "hosts": inv.servers().len() })
    );
    let _ = out.flush();
    // Serve until the parent closes our stdin.
    let mut sink = Vec::new();
    let mut stdin = std::io::stdin().lock();
    while stdin
        .read_until(b'\n', &mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {
        sink.clear();
    }
    let served: BTreeMap<String, HashMap<String, u32>> = match fleet.world().lock() {
        Ok(w) => w
            .served_counts()
            .iter()
            .map(|(h, m)| (h.clone(), m.clone()))
            .collect(),
        Err(_) => return Err("the simulated world is unavailable".into()),
    };
    let u = usage();
    let _ = writeln!(
        out,
        "{}",
        json!({
            "served": served,
            "user_s": u.user_s,
            "system_s": u.system_s,
            "peak_rss_kib": u.peak_rss_kib,
        })
    );
    let _ = out.flush();
    drop(fleet);
    drop(rt);
    Ok(())
}

/// Records when each server started and finished, and counts the events; prints nothing.
#[derive(Debug)]
struct Timeline {
    t0: Instant,
    started: HashMap<String, f64>,
    finished: HashMap<String, (f64, ServerResult)>,
    events: u64,
    retries: u64,
}

impl Timeline {
    fn ms(&self) -> f64 {
        self.t0.elapsed().as_secs_f64() * 1000.0
    }
}

impl Sink for Timeline {
    fn event(&mut self, e: &Event) {
        self.events += 1;
        match e {
            Event::ServerStarted { server, .. } => {
                let t = self.ms();
                self.started.insert(server.clone(), t);
            }
            Event::ServerFinished { server, result, .. } => {
                let t = self.ms();
                self.finished.insert(server.clone(), (t, *result));
            }
            Event::Retrying { .. } => self.retries += 1,
            _ => {}
        }
    }

    fn recap(&mut self, _r: &Recap) {}

    fn note(&mut self, _text: &str) {}
}

/// `bench run-child`: plans the generated hierarchy and runs it against the simulator with the
/// real executor, journal and WinRM client; prints one JSON line with the makespan, the traffic,
/// each server's start and finish, and its own usage.
pub fn run_child(a: &ChildArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match run_plan(a) {
        Ok(v) => {
            let _ = writeln!(out, "{v}");
            exit::OK
        }
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            exit::ERROR
        }
    }
}

fn run_plan(a: &ChildArgs) -> Result<serde_json::Value, String> {
    let t_setup = Instant::now();
    let w = Workload::new(a.servers, a.tiers, a.seed, a.port);
    let (inv, pb, plan) = makespan::planned(&w)?;
    let dir = std::env::temp_dir().join(format!("wsusfix-bench-{}", std::process::id()));
    let connector = Arc::new(WinrmConnector::new(
        Arc::new(Resolver::new(Path::new("."))),
        Path::new("."),
    ));
    let cfg = RunConfig {
        parallel: a.parallel.max(1),
        // By default every replica of an upstream may be held at once: the bound assumes no cap.
        max_held_per_upstream: a.max_held.unwrap_or(a.parallel).max(1),
        ..RunConfig::default()
    };
    let rt = runtime()?;
    let inventory_path = dir.join("generated.yaml");
    let session = Session {
        run_dir: RunDir::new(&dir, &inventory_path),
        connector,
        config: cfg,
    };
    let setup_ms = t_setup.elapsed().as_secs_f64() * 1000.0;
    let mut timeline = Timeline {
        t0: Instant::now(),
        started: HashMap::new(),
        finished: HashMap::new(),
        events: 0,
        retries: 0,
    };
    let t0 = timeline.t0;
    let outcome = rt.block_on(session.run(
        Start::Fresh(Box::new(plan), crate::journal::paths::new_run_id()),
        RunInputs {
            inventory: &inv,
            playbook: &pb,
            inventory_path: &inventory_path,
            playbook_path: None,
        },
        signals::none(),
        &mut timeline,
    ));
    let wall_ms = t0.elapsed().as_secs_f64() * 1000.0;
    drop(rt);
    let exit_code = outcome.exit_code();
    let report = match outcome {
        Outcome::Ran(r) => r,
        Outcome::Refused(r) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(r.message());
        }
    };
    let journal_bytes = std::fs::metadata(&report.journal).map_or(0, |m| m.len());
    let _ = std::fs::remove_dir_all(&dir);
    let u = usage();
    let mut results: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, r) in timeline.finished.values() {
        *results.entry(r.word()).or_default() += 1;
    }
    let total = |f: fn(&crate::winrm::TransportStats) -> u64| -> u64 {
        report.stats.iter().map(|(_, s)| f(s)).sum()
    };
    let servers: BTreeMap<&String, [f64; 2]> = timeline
        .finished
        .iter()
        .map(|(name, (end, _))| {
            (
                name,
                [timeline.started.get(name).copied().unwrap_or(0.0), *end],
            )
        })
        .collect();
    Ok(json!({
        "exit_code": exit_code,
        "makespan_ms": report.recap.duration_ms,
        "wall_ms": wall_ms,
        "setup_ms": setup_ms,
        "results": results,
        "events": timeline.events,
        "retries": timeline.retries,
        "hosts": report.stats.len(),
        "requests": total(|s| s.requests),
        "bytes_sent": total(|s| s.bytes_sent),
        "bytes_received": total(|s| s.bytes_received),
        "authentications": total(|s| s.authentications),
        "journal_bytes": journal_bytes,
        "user_s": u.user_s,
        "system_s": u.system_s,
        "peak_rss_kib": u.peak_rss_kib,
        "servers": servers,
    }))
}
