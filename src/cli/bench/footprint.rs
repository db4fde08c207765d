//! `wsusfix bench footprint`: what a run costs the machine wsusfix runs on — peak memory and CPU
//! seconds of the wsusfix process doing the run (the simulator runs in processes of its own and
//! is reported apart), and the WinRM traffic per server.

use std::io::Write;

use serde_json::Value;

use super::harness::{self, RunSpec};
use super::workload;
use crate::exit;

/// Options of the footprint benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct FootprintBench {
    /// Hierarchy sizes to run (repeatable; default 1,000 and 10,000).
    #[arg(long = "servers", value_name = "N")]
    pub servers: Vec<usize>,
    /// Seed of the hierarchy and of every simulated duration.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// Tiers of the generated hierarchies.
    #[arg(long, default_value_t = 4)]
    pub tiers: usize,
    /// Servers worked on at once (default: all of them).
    #[arg(long, value_name = "P")]
    pub parallel: Option<usize>,
    /// WinRM port of every simulated host.
    #[arg(long, default_value_t = workload::DEFAULT_PORT, hide = true)]
    pub port: u16,
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

/// Runs `bench footprint`.
pub fn run(b: &FootprintBench, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let sizes = if b.servers.is_empty() {
        vec![1_000, 10_000]
    } else {
        b.servers.clone()
    };
    let _ = writeln!(
        out,
        "footprint benchmark: the wsusfix process running the plan (the simulator measured apart), {} tiers, seed {}, {} cores{}",
        b.tiers,
        b.seed,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        super::debug_build_note()
    );
    let _ = writeln!(
        out,
        "{:>8} {:>9} {:>10} {:>9} {:>9} {:>10} {:>9} {:>8} {:>9} {:>9} {:>13}",
        "servers",
        "makespan",
        "cpu u+s",
        "cpu/srv",
        "peak MiB",
        "KiB/srv",
        "req/srv",
        "logons",
        "KiB out",
        "KiB in",
        "simulator"
    );
    let _ = out.flush();
    let mut rows: Vec<(usize, f64, f64)> = Vec::new();
    let mut failed = false;
    for n in sizes {
        let m = match harness::measure(&RunSpec {
            servers: n,
            tiers: b.tiers,
            seed: b.seed,
            port: b.port,
            parallel: b.parallel.unwrap_or(n).max(1),
            max_held: None,
        }) {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(out, "{n:>8} not measured: {e}");
                let _ = writeln!(err, "error: {n} servers: {e}");
                failed = true;
                continue;
            }
        };
        let r = &m.run;
        let cpu = f(r, "user_s") + f(r, "system_s");
        let peak = f(r, "peak_rss_kib");
        let per = |k: &str| f(r, k) / n as f64;
        let sim_cpu: f64 = m
            .sims
            .iter()
            .map(|s| f(s, "user_s") + f(s, "system_s"))
            .sum();
        let sim_peak: f64 = m.sims.iter().map(|s| f(s, "peak_rss_kib")).sum();
        let done = r["results"]["done"].as_u64().unwrap_or(0);
        let _ = writeln!(
            out,
            "{n:>8} {:>7.1} s {:>5.1}+{:<4.1} {:>6.2} ms {:>9.1} {:>10.1} {:>9.1} {:>8} {:>9.1} {:>9.1}   {:.1} s, {:.0} MiB in {} process{}{}",
            f(r, "makespan_ms") / 1000.0,
            f(r, "user_s"),
            f(r, "system_s"),
            cpu * 1000.0 / n as f64,
            peak / 1024.0,
            peak / n as f64,
            per("requests"),
            r["authentications"],
            per("bytes_sent") / 1024.0,
            per("bytes_received") / 1024.0,
            sim_cpu,
            sim_peak / 1024.0,
            m.sims.len(),
            if m.sims.len() == 1 { "" } else { "es" },
            if done == n as u64 {
                String::new()
            } else {
                format!("  (only {done} of {n} servers done)")
            }
        );
        let _ = out.flush();
        rows.push((n, cpu / n as f64, peak / n as f64));
    }
    if let (Some(&(n0, c0, m0)), Some(&(n1, c1, m1))) = (rows.first(), rows.last())
        && n1 > n0
        && c0 > 0.0
        && m0 > 0.0
    {
        let _ = writeln!(
            out,
            "per server {n0} -> {n1}: CPU x{:.2}, peak memory x{:.2} (1.00 is linear growth of the total)",
            c1 / c0,
            m1 / m0
        );
    }
    if failed { exit::ERROR } else { exit::OK }
}
