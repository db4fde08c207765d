//! Synthetic hierarchies for benchmarks and tests: `n` servers over `tiers` tiers with a fan-out
//! that fills the tiers geometrically, seeded mixes of versions and roles. Pure.

use std::fmt::Write as _;

use crate::util::prng::Prng;

/// The parent of each server (`None` for top-level ones), tier by tier: a few top-level servers,
/// then each tier several times wider than the one above.
pub fn parents(n: usize, tiers: usize, seed: u64) -> Vec<Option<usize>> {
    let tiers = tiers.max(1);
    let mut rng = Prng::derive(seed, "synthetic-parents");
    // Tier sizes grow geometrically: solve r for 1 + r + ... + r^(t-1) ~= n with 2 roots.
    let roots = if n >= 2 { 2.min(n) } else { n };
    let mut sizes = vec![roots];
    if tiers > 1 && n > roots {
        let mut r = 2.0f64;
        for _ in 0..60 {
            let total: f64 = (0..tiers).map(|k| roots as f64 * r.powi(k as i32)).sum();
            if total < n as f64 {
                r *= 1.05
            } else {
                r /= 1.01
            }
        }
        let mut left = n - roots;
        for k in 1..tiers {
            let want = if k == tiers - 1 {
                left
            } else {
                ((roots as f64 * r.powi(k as i32)).round() as usize).clamp(1, left)
            };
            sizes.push(want);
            left -= want;
            if left == 0 {
                break;
            }
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut prev_start = 0;
    let mut prev_len = 0;
    for (k, &size) in sizes.iter().enumerate() {
        let start = out.len();
        for _ in 0..size {
            if k == 0 {
                out.push(None);
            } else {
                out.push(Some(
                    prev_start + rng.range(0, prev_len as u64 - 1) as usize,
                ));
            }
        }
        prev_start = start;
        prev_len = size;
    }
    out
}

/// An inventory text for `parents`: roles, versions and architectures drawn from `seed`,
/// addresses `10.x.y.z` (or on 127.0.0.0/8 when `loopback`).
pub fn inventory_text(parents: &[Option<usize>], seed: u64, loopback: bool) -> String {
    let mut rng = Prng::derive(seed, "synthetic-inventory");
    let mut s = String::with_capacity(parents.len() * 120);
    s.push_str("defaults:\n  username: CONTOSO\\wsusfix\n  password: env:WSUSFIX_PASSWORD\n  winrm: { scheme: http, port: 5985, auth: negotiate }\nservers:\n");
    for (i, p) in parents.iter().enumerate() {
        let a = i + 1;
        let addr = if loopback {
            format!("127.{}.{}.{}", 1 + a / 65536, (a / 256) % 256, a % 256)
        } else {
            format!("10.{}.{}.{}", a / 65536, (a / 256) % 256, a % 256)
        };
        let version = if rng.chance(0.6) {
            "3.0-rtm"
        } else {
            "3.0-sp1"
        };
        let arch = if rng.chance(0.5) { "x64" } else { "x86" };
        let _ = writeln!(s, "  wsus-{i:06}:");
        match p {
            None => s.push_str("    role: upstream\n"),
            Some(up) => {
                let role = if rng.chance(0.7) {
                    "replica"
                } else {
                    "autonomous"
                };
                let _ = write!(s, "    role: {role}\n    upstream: wsus-{up:06}\n");
            }
        }
        let _ = write!(
            s,
            "    address: {addr}\n    version: {version}\n    arch: {arch}\n"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_and_counts() {
        for n in [1, 2, 10, 1000] {
            let p = parents(n, 4, 1);
            assert_eq!(p.len(), n);
            // Parents always come earlier, so the result is acyclic.
            for (i, up) in p.iter().enumerate() {
                if let Some(u) = up {
                    assert!(*u < i);
                }
            }
        }
        let text = inventory_text(&parents(50, 4, 7), 7, true);
        let loaded = crate::core::inventory::load(&text);
        let inv = loaded.inventory.expect("valid");
        let h = crate::core::hierarchy::Hierarchy::new(&inv);
        assert_eq!(h.tiers(), 4);
        assert_eq!(inv.servers().len(), 50);
    }
}
