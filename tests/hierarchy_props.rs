//! Properties of the planner over random hierarchies: a server is always in a later wave than
//! its upstream; waves partition the servers; a cycle is reported exactly when one exists; the
//! same input gives the same plan, byte for byte, whatever the order of the servers in the file.

use proptest::prelude::*;

use wsusfix::core::hierarchy::Hierarchy;
use wsusfix::core::plan::{self, PlanOptions};
use wsusfix::core::{inventory, playbook, render};

/// An inventory text from parent links (`parents[i]` < i, or None for a top-level server).
fn inventory_text(parents: &[Option<usize>], versions: &[u8], order: &[usize]) -> String {
    let mut s = String::from("defaults: { username: u, password: env:PW }\nservers:\n");
    for &i in order {
        let version = ["3.0-rtm", "3.0-sp1", ""][versions[i] as usize % 3];
        let role = match parents[i] {
            None => "upstream".to_string(),
            Some(p) => format!(
                "{}, upstream: s{p}",
                if i % 2 == 0 { "replica" } else { "autonomous" }
            ),
        };
        s.push_str(&format!(
            "  s{i}: {{ role: {role}, address: 10.{}.{}.{}{} }}\n",
            i / 65536,
            (i / 256) % 256,
            i % 256,
            if version.is_empty() {
                String::new()
            } else {
                format!(", version: {version}")
            }
        ));
    }
    s
}

fn tree() -> impl Strategy<Value = (Vec<Option<usize>>, Vec<u8>)> {
    (1usize..60).prop_flat_map(|n| {
        let parents = (0..n)
            .map(|i| {
                if i == 0 {
                    Just(None).boxed()
                } else {
                    prop_oneof![1 => Just(None), 6 => (0..i).prop_map(Some)].boxed()
                }
            })
            .collect::<Vec<_>>();
        (parents, proptest::collection::vec(0u8..3, n))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn waves_respect_upstreams_and_partition_the_servers((parents, versions) in tree()) {
        let order: Vec<usize> = (0..parents.len()).collect();
        let text = inventory_text(&parents, &versions, &order);
        let loaded = inventory::load(&text);
        let inv = loaded.inventory.expect("valid");
        let h = Hierarchy::new(&inv);
        let waves = h.waves();
        let mut seen = std::collections::BTreeSet::new();
        for (w, names) in waves.iter().enumerate() {
            let mut sorted = names.clone();
            sorted.sort();
            prop_assert_eq!(&sorted, names, "sorted by name within a wave");
            for n in names {
                prop_assert!(seen.insert(n.to_string()), "{} in two waves", n);
                if let Some(up) = h.upstream_of(n) {
                    prop_assert!(h.wave_of(up).unwrap() < w);
                    prop_assert_eq!(h.wave_of(up).unwrap() + 1, w);
                }
            }
        }
        prop_assert_eq!(seen.len(), parents.len());
    }

    #[test]
    fn same_input_same_plan_whatever_the_order((parents, versions) in tree(), seed in any::<u64>()) {
        let pb = playbook::load(playbook::DEFAULT_PLAYBOOK).playbook.unwrap();
        let order: Vec<usize> = (0..parents.len()).collect();
        let mut shuffled = order.clone();
        let mut rng = wsusfix::util::prng::Prng::new(seed);
        for i in (1..shuffled.len()).rev() {
            let j = rng.range(0, i as u64) as usize;
            shuffled.swap(i, j);
        }
        let render_all = |order: &[usize]| {
            let inv = inventory::load(&inventory_text(&parents, &versions, order)).inventory.unwrap();
            let h = Hierarchy::new(&inv);
            let p = plan::plan(&inv, &h, &pb, &PlanOptions::default()).unwrap();
            (render::text(&p), render::json(&p), render::dot(&p))
        };
        let a = render_all(&order);
        let b = render_all(&order);
        let c = render_all(&shuffled);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(&a, &c);
    }

    #[test]
    fn a_cycle_is_reported_exactly_when_one_exists(links in (2usize..12).prop_flat_map(|n| proptest::collection::vec(proptest::option::weighted(0.8, 0..n), n))) {
        // links[i] = Some(j): server i syncs from j (possibly itself); None: top-level.
        let mut s = String::from("defaults: { username: u, password: prompt }\nservers:\n");
        for (i, l) in links.iter().enumerate() {
            match l {
                None => s.push_str(&format!("  s{i}: {{ role: upstream, address: 10.0.0.{} }}\n", i + 1)),
                Some(j) => s.push_str(&format!("  s{i}: {{ role: replica, upstream: s{j}, address: 10.0.0.{} }}\n", i + 1)),
            }
        }
        // Brute force: follow links from every server; a cycle exists if a walk revisits a server.
        let has_cycle = (0..links.len()).any(|start| {
            let mut cur = start;
            for _ in 0..=links.len() {
                match links[cur] {
                    None => return false,
                    Some(n) => cur = n,
                }
            }
            true
        });
        let loaded = inventory::load(&s);
        let cycles: Vec<_> = loaded.diagnostics.iter().filter(|d| d.message.starts_with("upstream cycle: ")).collect();
        prop_assert_eq!(has_cycle, !cycles.is_empty(), "{:?}", loaded.diagnostics);
        prop_assert_eq!(has_cycle, loaded.inventory.is_none());
        for c in cycles {
            // Printed as a closed path: first == last.
            let path: Vec<&str> = c.message.trim_start_matches("upstream cycle: ").split(" -> ").collect();
            prop_assert_eq!(path.first(), path.last());
        }
    }
}
