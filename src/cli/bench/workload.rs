//! The benchmark's workload: a generated hierarchy on loopback, its simulated world with keyed
//! per-operation durations, and the operations each planned server costs. Pure.

use std::collections::HashMap;

use crate::core::plan::{PlannedServer, StepKind};
use crate::core::playbook::Action;
use crate::core::synthetic;
use crate::sim::scenario::{Scenario, ServerScenario};
use crate::sim::timing::{self, Ranges, Timing};

/// The WinRM port every benchmark host listens on (away from 5985 so that a benchmark does not
/// meet a simulator or a test serving the same loopback addresses).
pub const DEFAULT_PORT: u16 = 25985;

/// The environment variable the generated inventory takes its password from.
pub const PASSWORD_VAR: &str = "WSUSFIX_PASSWORD";

/// The password of the benchmark's simulated hosts.
pub const PASSWORD: &str = "bench-only-Passw0rd";

/// Durations of the simulated operations: tens to hundreds of milliseconds per operation,
/// seconds for a hotfix install, a second or so for a synchronisation.
pub const RANGES: Ranges = Ranges {
    latency_ms: [30, 300],
    install_ms: [2000, 6000],
    sync_ms: [500, 2000],
    detect_ms: [20, 60],
};

/// A generated hierarchy served on loopback.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The parent of each server (`wsus-NNNNNN` is server `NNNNNN`).
    pub parents: Vec<Option<usize>>,
    /// The inventory text.
    pub inventory: String,
    /// The seed of the hierarchy and of the world.
    pub seed: u64,
}

impl Workload {
    /// `servers` servers over `tiers` tiers, every host listening on `port`.
    pub fn new(servers: usize, tiers: usize, seed: u64, port: u16) -> Workload {
        let parents = synthetic::parents(servers, tiers, seed);
        let inventory = synthetic::inventory_text(&parents, seed, true)
            .replace("port: 5985", &format!("port: {port}"));
        Workload {
            parents,
            inventory,
            seed,
        }
    }

    /// The inventory text of the servers `keep` (by index) only.
    pub fn subset(&self, keep: &[bool]) -> String {
        let mut out = String::with_capacity(self.inventory.len());
        let mut keeping = true;
        for line in self.inventory.lines() {
            if let Some(name) = line
                .strip_prefix("  wsus-")
                .and_then(|l| l.strip_suffix(':'))
            {
                keeping = name
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| keep.get(i).copied())
                    .unwrap_or(false);
            }
            if keeping {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Splits the servers into at most `max_shards` groups of whole top-level subtrees (a
    /// replica's synchronisation reads its upstream's state, so a subtree must live in one
    /// world), each of at most `max_hosts` servers, the largest subtrees first.
    pub fn shards(&self, max_hosts: usize) -> Result<Vec<Vec<bool>>, String> {
        let n = self.parents.len();
        let mut root = vec![0usize; n];
        for i in 0..n {
            root[i] = match self.parents[i] {
                Some(p) => root[p],
                None => i,
            };
        }
        let mut sizes: HashMap<usize, usize> = HashMap::new();
        for &r in &root {
            *sizes.entry(r).or_default() += 1;
        }
        let mut subtrees: Vec<(usize, usize)> = sizes.into_iter().collect();
        subtrees.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut shards: Vec<(usize, Vec<usize>)> = Vec::new();
        for (r, size) in subtrees {
            if size > max_hosts {
                return Err(format!(
                    "the subtree of wsus-{r:06} has {size} servers, more than the {max_hosts} one simulator process can serve"
                ));
            }
            match shards.iter_mut().find(|(used, _)| used + size <= max_hosts) {
                Some((used, roots)) => {
                    *used += size;
                    roots.push(r);
                }
                None => shards.push((size, vec![r])),
            }
        }
        Ok(shards
            .into_iter()
            .map(|(_, roots)| root.iter().map(|r| roots.contains(r)).collect())
            .collect())
    }
}

/// The simulated world of the benchmark: every server affected, keyed durations from `RANGES`.
pub fn scenario(seed: u64) -> Scenario {
    Scenario {
        seed: Some(seed),
        timing: Timing::Keyed,
        defaults: ServerScenario {
            latency_ms: Some(RANGES.latency_ms),
            install_ms: Some(RANGES.install_ms),
            sync_ms: Some(RANGES.sync_ms),
            ..ServerScenario::default()
        },
        ..Scenario::default()
    }
}

/// The operations (host, operation name) the executor asks for during a server's turn, in
/// order, when every step succeeds at its first attempt, no culture needs switching and no
/// hotfix is installed yet (the benchmark's world): the facts, then each step's operations,
/// then one detection per canary client.
pub fn operations(s: &PlannedServer) -> Vec<(String, &'static str)> {
    let on = |op: &'static str| (s.name.clone(), op);
    let mut out = vec![on("facts")];
    for st in &s.steps {
        match &st.kind {
            StepKind::SwitchToAutonomous | StepKind::SwitchToReplica => out.push(on("set_replica")),
            StepKind::SyncFromUpstream => out.push(on("sync_now")),
            // Only when the locale guard switched the culture.
            StepKind::RestoreLocale => {}
            StepKind::Do(a) => match a {
                // Reads the culture (its facts); switches only on a mismatch.
                Action::LocaleGuard { .. } => out.push(on("facts")),
                // Reads the DLL's version first, installs when it is not the fixed one.
                Action::InstallHotfix { .. } => {
                    out.push(on("file_version"));
                    out.push(on("install_hotfix"));
                }
                Action::VerifyFileVersion { .. } => out.push(on("file_version")),
                Action::CheckServices { .. } => out.push(on("services")),
                Action::EnsureDeclined { .. } => out.push(on("ensure_declined")),
                Action::ApproveUnchanged { .. } => out.push(on("approve_unchanged")),
                Action::Decline { .. } => out.push(on("decline")),
                Action::Sync { .. } => out.push(on("sync_now")),
                Action::DetectNow { .. } => {
                    for c in &s.clients {
                        out.push((c.clone(), "detect_now"));
                    }
                }
            },
        }
    }
    out
}

/// Milliseconds a server's turn spends in simulated operations under keyed timing, every host
/// with `ranges`: the sum of its operations' keyed durations, each numbered on its host.
pub fn server_ms(seed: u64, s: &PlannedServer, ranges: &Ranges) -> u64 {
    let mut nth: HashMap<(String, &str), u32> = HashMap::new();
    operations(s)
        .into_iter()
        .map(|(host, op)| {
            let n = nth.entry((host.clone(), op)).or_insert(0);
            *n += 1;
            timing::keyed_op_ms(seed, &host, op, *n, ranges)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hierarchy::Hierarchy;
    use crate::core::plan::{self, PlanOptions};
    use crate::core::{inventory, playbook};

    fn planned(w: &Workload) -> crate::core::plan::Plan {
        let inv = inventory::load(&w.inventory).inventory.expect("valid");
        let h = Hierarchy::new(&inv);
        let pb = playbook::load(playbook::DEFAULT_PLAYBOOK).playbook.unwrap();
        plan::plan(&inv, &h, &pb, &PlanOptions::default()).unwrap()
    }

    #[test]
    fn the_workload_is_valid_and_on_its_port() {
        let w = Workload::new(60, 4, 3, 25999);
        assert!(w.inventory.contains("port: 25999"));
        assert!(!w.inventory.contains("5985"));
        assert_eq!(planned(&w).servers.len(), 60);
    }

    #[test]
    fn operations_of_each_path() {
        let w = Workload::new(200, 4, 5, DEFAULT_PORT);
        let p = planned(&w);
        let ops =
            |s: &PlannedServer| -> Vec<&str> { operations(s).into_iter().map(|o| o.1).collect() };
        let sp1 = p
            .servers
            .iter()
            .find(|s| s.path.as_str() == "3.0-sp1")
            .unwrap();
        assert_eq!(
            ops(sp1),
            [
                "facts",
                "facts",
                "file_version",
                "install_hotfix",
                "file_version",
                "services"
            ]
        );
        let replica = p
            .servers
            .iter()
            .find(|s| {
                s.path.as_str() == "3.0-rtm" && s.role == crate::core::inventory::Role::Replica
            })
            .unwrap();
        assert_eq!(
            ops(replica),
            [
                "facts",
                "set_replica",
                "ensure_declined",
                "approve_unchanged",
                "decline",
                "set_replica",
                "sync_now"
            ]
        );
        let autonomous = p
            .servers
            .iter()
            .find(|s| {
                s.path.as_str() == "3.0-rtm" && s.role != crate::core::inventory::Role::Replica
            })
            .unwrap();
        assert_eq!(
            ops(autonomous),
            ["facts", "ensure_declined", "approve_unchanged", "decline"]
        );
        // Repeated operations are numbered: the two facts of an SP1 server differ.
        let a = timing::keyed_op_ms(5, &sp1.name, "facts", 1, &RANGES);
        let b = timing::keyed_op_ms(5, &sp1.name, "facts", 2, &RANGES);
        let rest: u64 = [
            ("file_version", 1),
            ("install_hotfix", 1),
            ("file_version", 2),
            ("services", 1),
        ]
        .iter()
        .map(|(op, n)| timing::keyed_op_ms(5, &sp1.name, op, *n, &RANGES))
        .sum();
        assert_eq!(server_ms(5, sp1, &RANGES), a + b + rest);
    }

    #[test]
    fn subsets_and_shards_keep_whole_subtrees() {
        let w = Workload::new(300, 4, 9, DEFAULT_PORT);
        let shards = w.shards(250).unwrap();
        assert_eq!(
            shards.len(),
            2,
            "two top-level subtrees, neither fits with the other"
        );
        for keep in &shards {
            let text = w.subset(keep);
            let inv = inventory::load(&text)
                .inventory
                .expect("a shard is a valid inventory");
            assert_eq!(inv.servers().len(), keep.iter().filter(|k| **k).count());
        }
        // Every server in exactly one shard.
        for i in 0..300 {
            assert_eq!(shards.iter().filter(|k| k[i]).count(), 1);
        }
        assert_eq!(w.shards(1000).unwrap().len(), 1);
        assert!(w.shards(10).unwrap_err().contains("more than the 10"));
    }
}
