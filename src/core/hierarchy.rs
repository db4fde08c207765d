//! The hierarchy: a petgraph graph with an edge from each upstream server to each of its
//! downstream servers. Waves group servers by depth (wave 0 = top-level servers); within a wave,
//! servers are ordered by name, so every listing is deterministic.

use std::collections::{HashMap, VecDeque};

use petgraph::Direction;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use super::inventory::Inventory;

/// The upstream -> downstream graph of an inventory.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    graph: DiGraph<String, ()>,
    index: HashMap<String, NodeIndex>,
    depth: Vec<usize>,
    waves: Vec<Vec<NodeIndex>>,
}

impl Hierarchy {
    /// Builds the graph of a validated (acyclic) inventory.
    pub fn new(inv: &Inventory) -> Hierarchy {
        let nodes = inv.servers().iter().map(|s| s.name.as_str());
        let edges = inv
            .servers()
            .iter()
            .filter_map(|s| s.upstream.as_deref().map(|u| (u, s.name.as_str())));
        Hierarchy::from_edges(nodes, edges)
    }

    /// Builds the graph from names and `(upstream, downstream)` edges. Nodes on a cycle (which a
    /// validated inventory never has) get no wave.
    pub fn from_edges<'a>(
        names: impl IntoIterator<Item = &'a str>,
        edges: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Hierarchy {
        let mut graph = DiGraph::new();
        let mut index = HashMap::new();
        let mut sorted: Vec<&str> = names.into_iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        for name in sorted {
            let ix = graph.add_node(name.to_string());
            index.insert(name.to_string(), ix);
        }
        for (up, down) in edges {
            if let (Some(&u), Some(&d)) = (index.get(up), index.get(down)) {
                graph.add_edge(u, d, ());
            }
        }
        let n = graph.node_count();
        let mut depth = vec![usize::MAX; n];
        let mut queue: VecDeque<NodeIndex> = VecDeque::new();
        // Roots in name order (node indices follow name order).
        for ix in graph.node_indices() {
            if graph
                .neighbors_directed(ix, Direction::Incoming)
                .next()
                .is_none()
            {
                depth[ix.index()] = 0;
                queue.push_back(ix);
            }
        }
        let mut waves: Vec<Vec<NodeIndex>> = Vec::new();
        while let Some(ix) = queue.pop_front() {
            let d = depth[ix.index()];
            if waves.len() <= d {
                waves.resize_with(d + 1, Vec::new);
            }
            waves[d].push(ix);
            for child in graph.neighbors_directed(ix, Direction::Outgoing) {
                if depth[child.index()] == usize::MAX {
                    depth[child.index()] = d + 1;
                    queue.push_back(child);
                }
            }
        }
        for wave in &mut waves {
            wave.sort_unstable();
        }
        Hierarchy {
            graph,
            index,
            depth,
            waves,
        }
    }

    /// The underlying graph (upstream -> downstream).
    pub fn graph(&self) -> &DiGraph<String, ()> {
        &self.graph
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// True when there is no server.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Number of tiers (waves).
    pub fn tiers(&self) -> usize {
        self.waves.len()
    }

    /// The waves, each sorted by name.
    pub fn waves(&self) -> Vec<Vec<&str>> {
        self.waves
            .iter()
            .map(|w| w.iter().map(|&ix| self.graph[ix].as_str()).collect())
            .collect()
    }

    /// The 0-based wave of a server.
    pub fn wave_of(&self, name: &str) -> Option<usize> {
        let ix = *self.index.get(name)?;
        let d = self.depth[ix.index()];
        (d != usize::MAX).then_some(d)
    }

    /// The server a server syncs from.
    pub fn upstream_of(&self, name: &str) -> Option<&str> {
        let ix = *self.index.get(name)?;
        self.graph
            .neighbors_directed(ix, Direction::Incoming)
            .next()
            .map(|u| self.graph[u].as_str())
    }

    /// The servers that sync directly from `name`, by name.
    pub fn children(&self, name: &str) -> Vec<&str> {
        let Some(&ix) = self.index.get(name) else {
            return Vec::new();
        };
        let mut c: Vec<&str> = self
            .graph
            .neighbors_directed(ix, Direction::Outgoing)
            .map(|c| self.graph[c].as_str())
            .collect();
        c.sort_unstable();
        c
    }

    /// The chain of upstream servers of `name`, nearest first.
    pub fn ancestors(&self, name: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut cur = name;
        while let Some(up) = self.upstream_of(cur) {
            if up == name || out.contains(&up) {
                break; // defensive: cycles are rejected before a Hierarchy is built
            }
            out.push(up);
            cur = up;
        }
        out
    }

    /// `name` and every server below it, in wave order then by name.
    pub fn subtree(&self, name: &str) -> Vec<&str> {
        let Some(&root) = self.index.get(name) else {
            return Vec::new();
        };
        let mut members = vec![root];
        let mut i = 0;
        while i < members.len() {
            let ix = members[i];
            members.extend(self.graph.neighbors_directed(ix, Direction::Outgoing));
            i += 1;
        }
        members.sort_unstable_by_key(|ix| (self.depth[ix.index()], *ix));
        members.dedup();
        members
            .into_iter()
            .map(|ix| self.graph[ix].as_str())
            .collect()
    }

    /// True when `name` is a server of this hierarchy.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// Finds upstream cycles among `(server, its upstream)` pairs. Each cycle is listed from its
/// alphabetically first server, following "syncs from" links: `["a", "b"]` means a syncs from b
/// and b syncs from a.
pub fn find_cycles(links: &[(&str, &str)]) -> Vec<Vec<String>> {
    let mut graph: DiGraph<&str, ()> = DiGraph::new();
    let mut index: HashMap<&str, NodeIndex> = HashMap::new();
    let mut upstream: HashMap<&str, &str> = HashMap::new();
    for &(s, u) in links {
        for n in [s, u] {
            if !index.contains_key(n) {
                index.insert(n, graph.add_node(n));
            }
        }
        graph.add_edge(index[s], index[u], ());
        upstream.insert(s, u);
    }
    let mut cycles = Vec::new();
    for scc in tarjan_scc(&graph) {
        let looped = scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
        if !looped {
            continue;
        }
        let start = scc.iter().map(|&ix| graph[ix]).min().unwrap_or_default();
        let mut cycle = vec![start.to_string()];
        let mut cur = upstream.get(start).copied();
        while let Some(n) = cur {
            if n == start || cycle.len() > scc.len() {
                break;
            }
            cycle.push(n.to_string());
            cur = upstream.get(n).copied();
        }
        cycles.push(cycle);
    }
    cycles.sort();
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Hierarchy {
        // hq -> eu -> eu-b ; hq -> us ; lab (separate root)
        Hierarchy::from_edges(
            ["us", "hq", "eu", "eu-b", "lab"],
            [("hq", "eu"), ("eu", "eu-b"), ("hq", "us")],
        )
    }

    #[test]
    fn waves_by_depth_sorted_by_name() {
        let h = sample();
        assert_eq!(
            h.waves(),
            vec![vec!["hq", "lab"], vec!["eu", "us"], vec!["eu-b"]]
        );
        assert_eq!(h.wave_of("eu-b"), Some(2));
        assert_eq!(h.tiers(), 3);
    }

    #[test]
    fn queries() {
        let h = sample();
        assert_eq!(h.upstream_of("eu-b"), Some("eu"));
        assert_eq!(h.upstream_of("hq"), None);
        assert_eq!(h.children("hq"), vec!["eu", "us"]);
        assert_eq!(h.ancestors("eu-b"), vec!["eu", "hq"]);
        assert_eq!(h.subtree("hq"), vec!["hq", "eu", "us", "eu-b"]);
        assert_eq!(h.subtree("eu"), vec!["eu", "eu-b"]);
        assert!(h.subtree("nope").is_empty());
    }

    #[test]
    fn cycles_found_from_the_first_name() {
        assert_eq!(
            find_cycles(&[("b", "c"), ("c", "a"), ("a", "b"), ("d", "a")]),
            vec![vec!["a".to_string(), "b".into(), "c".into()]]
        );
        assert_eq!(find_cycles(&[("x", "x")]), vec![vec!["x".to_string()]]);
        assert!(find_cycles(&[("b", "a"), ("c", "a")]).is_empty());
    }
}
