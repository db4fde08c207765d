//! `wsusfix bench makespan`: how close a real run comes to the physical limit of its hierarchy.
//!
//! The simulator draws every operation's duration from (seed, host, operation, its number), so
//! the parent knows, before the run, how long each server's turn spends in simulated operations.
//! From those it computes the critical-path lower bound and the tier-by-tier makespan
//! ([`super::bounds`]), then compares them with the makespan the executor achieves over real
//! WinRM against that simulator.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde_json::Value;

use super::bounds;
use super::harness::{self, RunSpec};
use super::workload::{self, Workload};
use crate::core::hierarchy::Hierarchy;
use crate::core::inventory::{self, Inventory};
use crate::core::plan::{self, Plan, PlanOptions};
use crate::core::playbook::{self, Playbook};
use crate::exit;

/// Options of the makespan benchmark.
#[derive(Debug, Clone, clap::Args)]
pub struct MakespanBench {
    /// Servers of the generated hierarchy.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub servers: usize,
    /// Seed of the hierarchy and of every simulated duration.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// Tiers of the generated hierarchy.
    #[arg(long, default_value_t = 4)]
    pub tiers: usize,
    /// Servers worked on at once (default: all of them).
    #[arg(long, value_name = "P")]
    pub parallel: Option<usize>,
    /// Replicas of one upstream held autonomous at once (default: no cap, as the bound assumes;
    /// `apply` holds at most 4).
    #[arg(long, value_name = "N")]
    pub max_held: Option<usize>,
    /// WinRM port of every simulated host.
    #[arg(long, default_value_t = workload::DEFAULT_PORT, hide = true)]
    pub port: u16,
}

/// A workload's inventory, the built-in playbook, and their plan (the parent and the run child
/// make the same one).
pub fn planned(w: &Workload) -> Result<(Inventory, Playbook, Plan), String> {
    let inv = inventory::load(&w.inventory)
        .inventory
        .ok_or("the generated inventory is invalid")?;
    let h = Hierarchy::new(&inv);
    let pb = playbook::load(playbook::DEFAULT_PLAYBOOK)
        .playbook
        .ok_or("the built-in playbook is invalid")?;
    let plan = plan::plan(&inv, &h, &pb, &PlanOptions::default()).map_err(|e| e.message)?;
    Ok((inv, pb, plan))
}

/// The plan of a workload.
pub fn plan_of(w: &Workload) -> Result<Plan, String> {
    planned(w).map(|(_, _, plan)| plan)
}

/// Index of a generated server name (`wsus-000042` is 42).
pub fn index_of(name: &str) -> Option<usize> {
    name.strip_prefix("wsus-")?.parse().ok()
}

/// Each server's simulated duration (ms), by index.
pub fn simulated_ms(w: &Workload, plan: &Plan) -> Result<Vec<u64>, String> {
    let mut d = vec![0u64; w.parents.len()];
    for s in &plan.servers {
        let i = index_of(&s.name)
            .filter(|&i| i < d.len())
            .ok_or_else(|| format!("unexpected server {} in the plan", s.name))?;
        d[i] = workload::server_ms(w.seed, s, &workload::RANGES);
    }
    Ok(d)
}

/// The simulator's operation counts against those the plan predicts: (served, predicted, hosts
/// whose counts differ).
pub fn check_operations(plan: &Plan, sims: &[Value]) -> (u64, u64, Vec<String>) {
    let mut predicted: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for s in &plan.servers {
        for (host, op) in workload::operations(s) {
            *predicted
                .entry(host)
                .or_default()
                .entry(op.to_string())
                .or_default() += 1;
        }
    }
    let mut served: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for sim in sims {
        if let Some(m) = sim["served"].as_object() {
            for (host, ops) in m {
                let e = served.entry(host.clone()).or_default();
                for (op, n) in ops.as_object().into_iter().flatten() {
                    *e.entry(op.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
            }
        }
    }
    let sum = |m: &BTreeMap<String, BTreeMap<String, u64>>| -> u64 {
        m.values().flat_map(|o| o.values()).sum()
    };
    let mut differ: Vec<String> = predicted
        .keys()
        .chain(served.keys())
        .filter(|h| predicted.get(*h) != served.get(*h))
        .cloned()
        .collect();
    differ.dedup();
    (sum(&served), sum(&predicted), differ)
}

fn secs(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

fn path_label(plan: &Plan, name: &str) -> String {
    plan.server(name)
        .map(|s| {
            let role = match s.role {
                crate::core::inventory::Role::Upstream => "upstream",
                crate::core::inventory::Role::Replica => "replica",
                crate::core::inventory::Role::Autonomous => "autonomous",
            };
            format!(
                "{} {role}",
                s.path.as_str().trim_start_matches("3.0-").to_uppercase()
            )
        })
        .unwrap_or_default()
}

/// Runs `bench makespan`.
pub fn run(b: &MakespanBench, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match makespan(b, out) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            exit::ERROR
        }
    }
}

fn makespan(b: &MakespanBench, out: &mut dyn Write) -> Result<i32, String> {
    let parallel = b.parallel.unwrap_or(b.servers).max(1);
    let w = Workload::new(b.servers, b.tiers, b.seed, b.port);
    let plan = plan_of(&w)?;
    let d = simulated_ms(&w, &plan)?;
    let chain = bounds::critical_path(&w.parents, &d);
    let tiers = bounds::tier_by_tier(&w.parents, &d);
    let r = workload::RANGES;
    let _ = writeln!(
        out,
        "makespan benchmark: {} servers over {} tiers (seed {}), the executor over WinRM/HTTP with NTLM to the simulator on loopback, parallel {parallel}, {}, {} cores{}",
        b.servers,
        b.tiers,
        b.seed,
        b.max_held.map_or("no hold cap".to_string(), |m| format!(
            "at most {m} replicas held per upstream"
        )),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        super::debug_build_note()
    );
    let _ = writeln!(
        out,
        "  simulated durations (keyed by seed, host, operation, call): {}-{} ms per operation, plus {}-{} ms per hotfix install and {}-{} ms per synchronisation",
        r.latency_ms[0],
        r.latency_ms[1],
        r.install_ms[0],
        r.install_ms[1],
        r.sync_ms[0],
        r.sync_ms[1]
    );
    let _ = out.flush();
    let m = harness::measure(&RunSpec {
        servers: b.servers,
        tiers: b.tiers,
        seed: b.seed,
        port: b.port,
        parallel,
        max_held: b.max_held,
    })?;
    let run = &m.run;
    let measured = run["makespan_ms"].as_f64().unwrap_or(0.0);
    let (served, predicted, differ) = check_operations(&plan, &m.sims);
    let results: Vec<String> = run["results"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    let _ = writeln!(
        out,
        "  servers: {}; operations served {served} (the plan predicts {predicted}{}); retries {}; simulator processes {}",
        results.join(", "),
        if differ.is_empty() {
            String::new()
        } else {
            format!(
                "; {} hosts differ, e.g. {}",
                differ.len(),
                differ
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        run["retries"],
        m.sims.len()
    );

    // Where the measured time went along the critical chain.
    let times: HashMap<usize, [f64; 2]> = run["servers"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, t)| {
            Some((
                index_of(name)?,
                [t[0].as_f64().unwrap_or(0.0), t[1].as_f64().unwrap_or(0.0)],
            ))
        })
        .collect();
    let _ = writeln!(
        out,
        "  critical chain ({} servers): simulated / measured turn, and the wait after its upstream finished",
        chain.servers.len()
    );
    let mut prev_end = 0.0;
    for &i in &chain.servers {
        let name = format!("wsus-{i:06}");
        let t = times.get(&i).copied().unwrap_or([0.0, 0.0]);
        let _ = writeln!(
            out,
            "    {name}  {:<16} {:>9} / {:>9}   wait {:>7.1} ms",
            path_label(&plan, &name),
            secs(d[i] as f64),
            secs(t[1] - t[0]),
            t[0] - prev_end
        );
        prev_end = t[1];
    }
    let overheads: Vec<f64> = times
        .iter()
        .map(|(i, t)| (t[1] - t[0]) - d[*i] as f64)
        .collect();
    if !overheads.is_empty() {
        let mut sorted = overheads.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
        let _ = writeln!(
            out,
            "  every server: measured turn minus simulated operations: mean {mean:.0} ms, p99 {p99:.0} ms, max {:.0} ms",
            sorted[sorted.len() - 1]
        );
    }
    let cpu =
        |v: &Value| v["user_s"].as_f64().unwrap_or(0.0) + v["system_s"].as_f64().unwrap_or(0.0);
    let sim_cpu: f64 = m.sims.iter().map(cpu).sum();
    let _ = writeln!(
        out,
        "  CPU: wsusfix {:.1} s, simulator {:.1} s over {} of wall time; requests {} ({:.1} per server), {} NTLM logons",
        cpu(run),
        sim_cpu,
        secs(run["wall_ms"].as_f64().unwrap_or(0.0)),
        run["requests"],
        run["requests"].as_f64().unwrap_or(0.0) / b.servers.max(1) as f64,
        run["authentications"]
    );
    let last_done = times.values().map(|t| t[1]).fold(0.0, f64::max);
    let _ = writeln!(
        out,
        "  measured makespan           {:>9}   (the last server done at {}; then the journal is replayed for the recap)",
        secs(measured),
        secs(last_done)
    );
    let _ = writeln!(
        out,
        "  critical-path lower bound   {:>9}   (the longest chain of summed simulated operations)",
        secs(chain.ms as f64)
    );
    let _ = writeln!(
        out,
        "  tier-by-tier schedule       {:>9}   (each tier after the whole tier above, unlimited parallelism; tiers {})",
        secs(tiers.ms as f64),
        tiers
            .longest
            .iter()
            .map(|t| format!("{:.2}", *t as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    if parallel < b.servers {
        // With fewer slots than servers, the slots' capacity is a second limit.
        let work: u64 = d.iter().sum();
        let _ = writeln!(
            out,
            "  capacity bound              {:>9}   (all simulated work / {parallel} slots; both bounds assume no overhead)",
            secs(work as f64 / parallel as f64)
        );
    }
    let ratio = measured / chain.ms.max(1) as f64;
    let tier_ratio = tiers.ms as f64 / measured.max(1.0);
    let _ = writeln!(
        out,
        "measured / critical-path bound = {ratio:.3} (target at most 1.10); tier-by-tier / measured = {tier_ratio:.2}"
    );
    Ok(if run["exit_code"].as_i64() == Some(0) {
        exit::OK
    } else {
        exit::FINDINGS
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generated_names_map_to_indices() {
        assert_eq!(index_of("wsus-000042"), Some(42));
        assert_eq!(index_of("wsus-hq"), None);
        assert_eq!(index_of("pc-000001"), None);
    }

    #[test]
    fn served_operations_are_checked_against_the_plan() {
        let w = Workload::new(20, 3, 4, workload::DEFAULT_PORT);
        let plan = plan_of(&w).unwrap();
        let mut served = serde_json::Map::new();
        for s in &plan.servers {
            let mut ops = serde_json::Map::new();
            for (_, op) in workload::operations(s) {
                let n = ops.get(op).and_then(Value::as_u64).unwrap_or(0);
                ops.insert(op.to_string(), json!(n + 1));
            }
            served.insert(s.name.clone(), Value::Object(ops));
        }
        // Split over two simulator processes.
        let (a, b): (Vec<_>, Vec<_>) = served
            .into_iter()
            .partition(|(k, _)| k < &"wsus-000010".to_string());
        let sims = vec![
            json!({ "served": serde_json::Map::from_iter(a) }),
            json!({ "served": serde_json::Map::from_iter(b) }),
        ];
        let (got, predicted, differ) = check_operations(&plan, &sims);
        assert_eq!(got, predicted);
        assert!(differ.is_empty(), "{differ:?}");
        // One extra operation on one host shows.
        let mut more = sims.clone();
        more[1]["served"]["wsus-000012"]["facts"] = json!(5);
        let (got, predicted, differ) = check_operations(&plan, &more);
        assert!(got > predicted);
        assert_eq!(differ, vec!["wsus-000012".to_string()]);
    }

    #[test]
    fn simulated_durations_follow_the_plan() {
        let w = Workload::new(50, 4, 8, workload::DEFAULT_PORT);
        let plan = plan_of(&w).unwrap();
        let d = simulated_ms(&w, &plan).unwrap();
        assert_eq!(d.len(), 50);
        for s in &plan.servers {
            let i = index_of(&s.name).unwrap();
            // At least the facts; an SP1 server also an install of two seconds or more.
            assert!(d[i] >= 30, "{}", s.name);
            if s.path.as_str() == "3.0-sp1" {
                assert!(d[i] >= 2000 + 6 * 30, "{}: {}", s.name, d[i]);
            }
        }
        let chain = bounds::critical_path(&w.parents, &d);
        assert!(chain.ms >= *d.iter().max().unwrap());
    }
}
