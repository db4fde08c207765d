//! Schedules of a hierarchy computed from known per-server durations. Pure.
//!
//! - The **critical path**: a server can start only when its upstream has finished, and its own
//!   operations run one after another, so no schedule finishes before the longest root-to-leaf
//!   chain of summed server durations. It is the physical limit of a run, reached by a scheduler
//!   that starts every server the moment its upstream is done, with unlimited parallelism and no
//!   overhead of its own.
//! - **Tier by tier**: each tier starts when the whole tier above it is done (one play per tier,
//!   as an Ansible playbook would run it), so the makespan is the sum over tiers of the longest
//!   server duration in each, also with unlimited parallelism inside a tier.

/// The longest root-to-leaf chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Its summed duration.
    pub ms: u64,
    /// Its servers (indices), root first.
    pub servers: Vec<usize>,
}

/// The tier-by-tier schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers {
    /// Its makespan: the sum of `longest`.
    pub ms: u64,
    /// The longest server duration in each tier, top tier first.
    pub longest: Vec<u64>,
}

/// Depth of each server (0 for servers without a parent). Parents outside the slice, and
/// cycles, count as roots.
pub fn depths(parents: &[Option<usize>]) -> Vec<usize> {
    let n = parents.len();
    let mut depth: Vec<Option<usize>> = vec![None; n];
    for start in 0..n {
        // Walk up to a server of known depth (or a root), then come back down.
        let mut path = Vec::new();
        let mut at = start;
        let base = loop {
            if let Some(d) = depth[at] {
                break Some(d);
            }
            if path.contains(&at) || path.len() > n {
                break None;
            }
            path.push(at);
            match parents[at] {
                Some(p) if p < n => at = p,
                _ => break None,
            }
        };
        for (d, &s) in (base.map_or(0, |b| b + 1)..).zip(path.iter().rev()) {
            depth[s] = Some(d);
        }
    }
    depth.into_iter().map(|d| d.unwrap_or(0)).collect()
}

/// The critical path of servers with durations `ms` under `parents`.
pub fn critical_path(parents: &[Option<usize>], ms: &[u64]) -> Chain {
    assert_eq!(parents.len(), ms.len(), "one duration per server");
    let depth = depths(parents);
    let mut order: Vec<usize> = (0..parents.len()).collect();
    order.sort_by_key(|&i| depth[i]);
    // Finish time of each server when it starts right as its parent finishes.
    let mut finish = vec![0u64; parents.len()];
    for &i in &order {
        let start = parents[i]
            .filter(|&p| p < parents.len() && depth[p] < depth[i])
            .map_or(0, |p| finish[p]);
        finish[i] = start + ms[i];
    }
    let Some(last) = (0..parents.len()).max_by_key(|&i| (finish[i], std::cmp::Reverse(i))) else {
        return Chain {
            ms: 0,
            servers: Vec::new(),
        };
    };
    let mut servers = vec![last];
    let mut at = last;
    while let Some(p) = parents[at].filter(|&p| p < parents.len() && depth[p] < depth[at]) {
        servers.push(p);
        at = p;
    }
    servers.reverse();
    Chain {
        ms: finish[last],
        servers,
    }
}

/// The tier-by-tier makespan of servers with durations `ms` under `parents`.
pub fn tier_by_tier(parents: &[Option<usize>], ms: &[u64]) -> Tiers {
    assert_eq!(parents.len(), ms.len(), "one duration per server");
    let depth = depths(parents);
    let tiers = depth.iter().max().map_or(0, |d| d + 1);
    let mut longest = vec![0u64; tiers];
    for (i, &d) in depth.iter().enumerate() {
        longest[d] = longest[d].max(ms[i]);
    }
    Tiers {
        ms: longest.iter().sum(),
        longest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    //         0 (10)
    //        /      \
    //     1 (50)    2 (5)
    //     /   \        \
    //  3 (1)  4 (2)    5 (100)
    //                    |
    //                  6 (1)
    fn tree() -> (Vec<Option<usize>>, Vec<u64>) {
        (
            vec![None, Some(0), Some(0), Some(1), Some(1), Some(2), Some(5)],
            vec![10, 50, 5, 1, 2, 100, 1],
        )
    }

    #[test]
    fn depths_follow_the_parents_in_any_order() {
        let (p, _) = tree();
        assert_eq!(depths(&p), vec![0, 1, 1, 2, 2, 2, 3]);
        // Children listed before their parents.
        assert_eq!(depths(&[Some(2), Some(2), None]), vec![1, 1, 0]);
        // A cycle or a parent outside the slice counts as a root rather than looping.
        assert_eq!(depths(&[Some(1), Some(0)]).len(), 2);
        assert_eq!(depths(&[Some(7)]), vec![0]);
    }

    #[test]
    fn critical_path_of_a_hand_checked_tree() {
        let (p, d) = tree();
        // Chains: 0-1-3 = 61, 0-1-4 = 62, 0-2-5-6 = 116.
        assert_eq!(
            critical_path(&p, &d),
            Chain {
                ms: 116,
                servers: vec![0, 2, 5, 6]
            }
        );
        // Make the left branch heavier: 0-1-4 = 10 + 50 + 200.
        let mut d2 = d.clone();
        d2[4] = 200;
        assert_eq!(
            critical_path(&p, &d2),
            Chain {
                ms: 260,
                servers: vec![0, 1, 4]
            }
        );
    }

    #[test]
    fn tier_by_tier_of_a_hand_checked_tree() {
        let (p, d) = tree();
        // Tiers: {0} max 10, {1, 2} max 50, {3, 4, 5} max 100, {6} max 1.
        assert_eq!(
            tier_by_tier(&p, &d),
            Tiers {
                ms: 161,
                longest: vec![10, 50, 100, 1]
            }
        );
    }

    #[test]
    fn tier_by_tier_is_never_shorter_than_the_critical_path() {
        use crate::util::prng::Prng;
        for seed in 0..50 {
            let p = crate::core::synthetic::parents(200, 4, seed);
            let mut rng = Prng::new(seed);
            let d: Vec<u64> = (0..p.len()).map(|_| rng.range(1, 1000)).collect();
            let c = critical_path(&p, &d);
            let t = tier_by_tier(&p, &d);
            assert!(t.ms >= c.ms, "seed {seed}");
            // The chain is a real chain whose durations add up.
            assert_eq!(c.servers.iter().map(|&i| d[i]).sum::<u64>(), c.ms);
            assert_eq!(p[c.servers[0]], None);
            for w in c.servers.windows(2) {
                assert_eq!(p[w[1]], Some(w[0]));
            }
        }
    }

    #[test]
    fn flat_and_empty_hierarchies() {
        assert_eq!(critical_path(&[], &[]).ms, 0);
        assert_eq!(tier_by_tier(&[], &[]).ms, 0);
        let p = vec![None, None, None];
        let d = vec![3, 9, 4];
        assert_eq!(critical_path(&p, &d).servers, vec![1]);
        assert_eq!(tier_by_tier(&p, &d).ms, 9);
    }
}
