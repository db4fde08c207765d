//! How long a simulated operation takes. Pure.
//!
//! Two ways to draw durations (the scenario's `timing`):
//! - `stream` (the default): one seeded stream in the order operations arrive, so a run is
//!   reproducible for a given order of operations;
//! - `keyed`: each operation's duration is a function of the seed, the host, the operation's name
//!   and its number among that host's operations of that name. It does not depend on what other
//!   hosts do or when, so a benchmark can compute, before a run, exactly how long every server's
//!   operations will take, and from that the physical limit of the run (docs/performance.md).
//!
//! An operation takes its base latency (`latency_ms`, drawn before the world changes) plus, for a
//! hotfix install, a synchronisation or a detection, its work (`install_ms`, `sync_ms`,
//! `detect_ms`, drawn after).

use serde::Deserialize;

use crate::util::prng::Prng;

/// How operation durations are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timing {
    /// One seeded stream, drawn in the order operations arrive.
    #[default]
    Stream,
    /// Each duration drawn from (seed, host, operation, its number on that host).
    Keyed,
}

/// Which part of an operation a draw is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The base latency every operation has.
    Latency,
    /// The work of an install, a synchronisation or a detection.
    Work,
}

impl Part {
    fn label(self) -> &'static str {
        match self {
            Part::Latency => "latency",
            Part::Work => "work",
        }
    }
}

/// The duration ranges of one host, milliseconds `[min, max]` (either order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranges {
    /// Every operation.
    pub latency_ms: [u64; 2],
    /// `install_hotfix`.
    pub install_ms: [u64; 2],
    /// `sync_now`.
    pub sync_ms: [u64; 2],
    /// `detect_now`.
    pub detect_ms: [u64; 2],
}

impl Ranges {
    /// The work range of an operation, for the operations that have work beyond their latency.
    pub fn work(&self, op: &str) -> Option<[u64; 2]> {
        match op {
            "install_hotfix" => Some(self.install_ms),
            "sync_now" => Some(self.sync_ms),
            "detect_now" => Some(self.detect_ms),
            _ => None,
        }
    }
}

/// A value uniformly drawn from `r` by `rng`.
pub fn draw(rng: &mut Prng, r: [u64; 2]) -> u64 {
    let (lo, hi) = (r[0].min(r[1]), r[0].max(r[1]));
    rng.range(lo, hi)
}

/// The keyed draw: milliseconds of `part` of the `nth` call (1-based) of `op` on `host`.
pub fn keyed_ms(seed: u64, host: &str, op: &str, nth: u32, part: Part, r: [u64; 2]) -> u64 {
    let mut rng = Prng::derive(seed, &format!("timing/{host}/{op}/{nth}/{}", part.label()));
    draw(&mut rng, r)
}

/// Milliseconds the `nth` successful call of `op` on `host` takes under keyed timing: its
/// latency plus its work.
pub fn keyed_op_ms(seed: u64, host: &str, op: &str, nth: u32, ranges: &Ranges) -> u64 {
    let latency = keyed_ms(seed, host, op, nth, Part::Latency, ranges.latency_ms);
    let work = ranges
        .work(op)
        .map_or(0, |r| keyed_ms(seed, host, op, nth, Part::Work, r));
    latency + work
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Ranges = Ranges {
        latency_ms: [30, 300],
        install_ms: [2000, 6000],
        sync_ms: [500, 2000],
        detect_ms: [20, 60],
    };

    #[test]
    fn keyed_draws_are_stable_for_a_seed() {
        // Pinned: a change here changes every published benchmark figure
        // (docs/performance.md).
        let got = [
            keyed_op_ms(1, "wsus-000001", "facts", 1, &R),
            keyed_op_ms(1, "wsus-000001", "facts", 2, &R),
            keyed_op_ms(1, "wsus-000001", "install_hotfix", 1, &R),
            keyed_op_ms(1, "wsus-000002", "sync_now", 1, &R),
        ];
        assert_eq!(got, [228, 95, 3591, 988]);
        // The same call always draws the same.
        assert_eq!(got[0], keyed_op_ms(1, "wsus-000001", "facts", 1, &R));
    }

    #[test]
    fn keyed_draws_differ_across_seeds_hosts_operations_and_calls() {
        let draws = |f: &dyn Fn(u32) -> u64| (0..50).map(f).collect::<Vec<u64>>();
        let base =
            draws(&|i| keyed_ms(1, &format!("h{i}"), "facts", 1, Part::Latency, [0, 1 << 40]));
        let other_seed =
            draws(&|i| keyed_ms(2, &format!("h{i}"), "facts", 1, Part::Latency, [0, 1 << 40]));
        let other_op = draws(&|i| {
            keyed_ms(
                1,
                &format!("h{i}"),
                "decline",
                1,
                Part::Latency,
                [0, 1 << 40],
            )
        });
        let other_nth =
            draws(&|i| keyed_ms(1, &format!("h{i}"), "facts", 2, Part::Latency, [0, 1 << 40]));
        let other_part =
            draws(&|i| keyed_ms(1, &format!("h{i}"), "facts", 1, Part::Work, [0, 1 << 40]));
        for other in [&other_seed, &other_op, &other_nth, &other_part] {
            assert!(base.iter().zip(other).all(|(a, b)| a != b));
        }
        // Hosts differ from one another.
        let mut sorted = base.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), base.len());
    }

    #[test]
    fn keyed_draws_cover_the_range() {
        let v: Vec<u64> = (0..2000)
            .map(|i| keyed_ms(7, &format!("h{i}"), "facts", 1, Part::Latency, [300, 30]))
            .collect();
        assert!(v.iter().all(|x| (30..=300).contains(x)));
        let mean = v.iter().sum::<u64>() as f64 / v.len() as f64;
        assert!((150.0..180.0).contains(&mean), "{mean}");
        assert!(v.contains(&30) || v.iter().min() < Some(&35));
        assert!(v.iter().max() > Some(&295));
    }

    #[test]
    fn only_installs_syncs_and_detections_have_work() {
        assert_eq!(R.work("install_hotfix"), Some([2000, 6000]));
        assert_eq!(R.work("sync_now"), Some([500, 2000]));
        assert_eq!(R.work("detect_now"), Some([20, 60]));
        assert_eq!(R.work("facts"), None);
        assert_eq!(
            keyed_op_ms(3, "h", "decline", 1, &R),
            keyed_ms(3, "h", "decline", 1, Part::Latency, R.latency_ms)
        );
    }
}
