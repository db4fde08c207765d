//! Which servers may start: a server waits in an index under the server it depends on, and a
//! finish wakes only those (no rescan of every pending server, so scheduling stays linear in the
//! hierarchy's size). Top-down, a server depends on its upstream and is blocked, with its whole
//! subtree, when the upstream does not unblock its children; bottom-up (tests only) a server
//! waits for all its children.
//!
//! When more servers are ready than may run, the one heading the costliest chain of work starts
//! first (then plan order): the makespan is bounded by that chain, so starting it late costs the
//! whole run. The cost comes from the plan alone (a hotfix install outweighs a decline).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::run::Order;
use crate::core::plan::{Plan, PlannedServer, StepKind};
use crate::core::playbook::Action;
use crate::journal::record::{Reason, ServerResult};

/// The scheduling state of a plan's servers.
#[derive(Debug)]
pub struct Readiness<'a> {
    order: Order,
    /// Top-down: pending servers by the upstream they wait for.
    waiting: HashMap<&'a str, Vec<&'a str>>,
    /// Bottom-up: children not finished yet, and each server's upstream.
    open_children: HashMap<&'a str, usize>,
    upstream: HashMap<&'a str, &'a str>,
    /// Ready servers by (height of the chain below, earliest in plan order).
    ready: BinaryHeap<(usize, Reverse<usize>, &'a str)>,
    /// Each server's height (1 for a leaf) and plan position.
    rank: HashMap<&'a str, (usize, usize)>,
}

/// A server blocked because the server it waited for did not unblock it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked<'a> {
    /// The blocked server.
    pub server: &'a str,
    /// Why.
    pub reason: Reason,
}

/// A rough cost of a step, in units of an ordinary remote operation: what a plan can tell about
/// durations before anything runs (a hotfix install takes minutes, a synchronisation a while).
fn step_cost(k: &StepKind) -> usize {
    match k {
        StepKind::Do(Action::InstallHotfix { .. }) => 20,
        StepKind::SyncFromUpstream | StepKind::Do(Action::Sync { .. }) => 6,
        StepKind::Do(Action::DetectNow { attempts, .. }) => 2 * (*attempts as usize).max(1),
        _ => 1,
    }
}

/// A server's own expected work: its steps' costs plus its facts (the most costly alternative
/// when its path is decided at run time).
fn own_cost(s: &PlannedServer) -> usize {
    let cost = |steps: &[crate::core::plan::PlannedStep]| {
        steps.iter().map(|st| step_cost(&st.kind)).sum::<usize>()
    };
    1 + cost(&s.steps).max(s.alternatives.values().map(|a| cost(a)).max().unwrap_or(0))
}

/// Each server's weight (the expected work of the costliest chain from it down, itself
/// included) and its position in the plan.
fn heights(plan: &Plan) -> HashMap<&str, (usize, usize)> {
    let mut rank: HashMap<&str, (usize, usize)> = plan
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), (own_cost(s), i)))
        .collect();
    // The plan lists servers wave by wave: walking it backwards sees every child before its
    // upstream.
    for s in plan.servers.iter().rev() {
        let below = rank[s.name.as_str()].0;
        if let Some(up) = s.waits_for.as_deref()
            && let Some(own) = plan.server(up).map(own_cost)
            && let Some(r) = rank.get_mut(up)
        {
            r.0 = r.0.max(own + below);
        }
    }
    rank
}

fn block_reason(upstream: &str, result: ServerResult) -> Reason {
    Reason::Blocked {
        upstream: upstream.to_string(),
        upstream_result: result,
    }
}

impl<'a> Readiness<'a> {
    /// The state of `plan` given the servers already finished (`name -> (result, unblocks)`,
    /// from a resumed journal). Returns it with the servers blocked from the start.
    pub fn new(
        plan: &'a Plan,
        order: Order,
        finished: &HashMap<String, (ServerResult, bool)>,
    ) -> (Readiness<'a>, Vec<Blocked<'a>>) {
        let mut r = Readiness {
            order,
            waiting: HashMap::new(),
            open_children: HashMap::new(),
            upstream: HashMap::new(),
            ready: BinaryHeap::new(),
            rank: heights(plan),
        };
        let mut blocked = Vec::new();
        match order {
            Order::TopDown => {
                let mut failed_roots = Vec::new();
                for s in &plan.servers {
                    if finished.contains_key(&s.name) {
                        continue;
                    }
                    match s.waits_for.as_deref() {
                        None => r.push_ready(&s.name),
                        Some(u) => match finished.get(u) {
                            Some((_, true)) => r.push_ready(&s.name),
                            Some((result, false)) => {
                                failed_roots.push((u, *result));
                                r.waiting.entry(u).or_default().push(&s.name);
                            }
                            None => r.waiting.entry(u).or_default().push(&s.name),
                        },
                    }
                }
                for (u, result) in failed_roots {
                    blocked.extend(r.block_below(u, result));
                }
            }
            Order::BottomUp => {
                for s in &plan.servers {
                    if let Some(u) = s.waits_for.as_deref() {
                        r.upstream.insert(&s.name, u);
                        if !finished.contains_key(&s.name) {
                            *r.open_children.entry(u).or_default() += 1;
                        }
                    }
                }
                for s in &plan.servers {
                    if !finished.contains_key(&s.name)
                        && !r.open_children.contains_key(s.name.as_str())
                    {
                        r.push_ready(&s.name);
                    }
                }
            }
        }
        (r, blocked)
    }

    /// Everything waiting (transitively) on `name`, blocked.
    fn block_below(&mut self, name: &'a str, result: ServerResult) -> Vec<Blocked<'a>> {
        let mut out = Vec::new();
        let mut stack = vec![(name, result)];
        while let Some((up, result)) = stack.pop() {
            for child in self.waiting.remove(up).unwrap_or_default() {
                out.push(Blocked {
                    server: child,
                    reason: block_reason(up, result),
                });
                stack.push((child, ServerResult::Blocked));
            }
        }
        out
    }

    /// Records that `name` finished. Its waiting children become ready when it `unblocks`
    /// them; otherwise they and their subtrees are blocked (returned).
    pub fn finished(
        &mut self,
        name: &'a str,
        result: ServerResult,
        unblocks: bool,
    ) -> Vec<Blocked<'a>> {
        match self.order {
            Order::TopDown => {
                if unblocks {
                    for child in self.waiting.remove(name).unwrap_or_default() {
                        self.push_ready(child);
                    }
                    Vec::new()
                } else {
                    self.block_below(name, result)
                }
            }
            Order::BottomUp => {
                if let Some(&up) = self.upstream.get(name)
                    && let Some(n) = self.open_children.get_mut(up)
                {
                    *n -= 1;
                    if *n == 0 {
                        self.open_children.remove(up);
                        self.push_ready(up);
                    }
                }
                Vec::new()
            }
        }
    }

    fn push_ready(&mut self, name: &'a str) {
        let (height, position) = self.rank.get(name).copied().unwrap_or((1, usize::MAX));
        // Bottom-up (tests only) keeps plan order.
        let height = if self.order == Order::BottomUp {
            0
        } else {
            height
        };
        self.ready.push((height, Reverse(position), name));
    }

    /// The next server that may start: the one with the longest chain below it.
    pub fn take_ready(&mut self) -> Option<&'a str> {
        self.ready.pop().map(|(_, _, name)| name)
    }

    /// True when some server may start now.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hierarchy::Hierarchy;
    use crate::core::{inventory, plan, playbook};

    fn plan() -> Plan {
        let inv = inventory::load(
            "defaults: { username: u, password: prompt }
servers:
  hq: { role: upstream, address: 10.0.0.1, version: 3.0-rtm }
  ap: { role: autonomous, upstream: hq, address: 10.0.0.6, version: 3.0-rtm }
  eu: { role: replica, upstream: hq, address: 10.0.0.2, version: 3.0-rtm }
  eu-a: { role: replica, upstream: eu, address: 10.0.0.3, version: 3.0-rtm }
  eu-a-1: { role: replica, upstream: eu-a, address: 10.0.0.5, version: 3.0-rtm }
  us: { role: autonomous, upstream: hq, address: 10.0.0.4, version: 3.0-rtm }
",
        )
        .inventory
        .unwrap();
        let pb = playbook::load(playbook::DEFAULT_PLAYBOOK).playbook.unwrap();
        plan::plan(&inv, &Hierarchy::new(&inv), &pb, &Default::default()).unwrap()
    }

    #[test]
    fn the_longest_chain_below_starts_first() {
        let p = plan();
        let (mut r, _) = Readiness::new(&p, Order::TopDown, &HashMap::new());
        r.take_ready();
        r.finished("hq", ServerResult::Done, true);
        // eu heads a chain of three (eu, eu-a, eu-a-1); ap and us are leaves. Plan order would
        // start ap first; the longest chain goes first.
        assert_eq!(r.take_ready(), Some("eu"));
        assert_eq!(r.take_ready(), Some("ap"), "then plan order");
        assert_eq!(r.take_ready(), Some("us"));
        let h = heights(&p);
        assert!(h["hq"].0 > h["eu"].0 && h["eu"].0 > h["eu-a"].0 && h["eu-a"].0 > h["eu-a-1"].0);
        assert!(
            h["eu-a-1"].0 > h["us"].0,
            "a replica's hold, restore and sync outweigh an autonomous reset"
        );
        assert_eq!(h["us"].0, h["ap"].0, "the same steps weigh the same");
    }

    #[test]
    fn a_finish_wakes_only_its_children() {
        let p = plan();
        let (mut r, blocked) = Readiness::new(&p, Order::TopDown, &HashMap::new());
        assert!(blocked.is_empty());
        assert_eq!(r.take_ready(), Some("hq"));
        assert_eq!(r.take_ready(), None, "nothing else until hq is done");
        assert!(r.finished("hq", ServerResult::Done, true).is_empty());
        let woken: Vec<&str> = std::iter::from_fn(|| r.take_ready()).collect();
        assert_eq!(woken, ["eu", "ap", "us"]);
        r.finished("us", ServerResult::Done, true);
        assert!(!r.has_ready(), "us has no children");
    }

    #[test]
    fn a_failure_blocks_the_whole_subtree_only() {
        let p = plan();
        let (mut r, _) = Readiness::new(&p, Order::TopDown, &HashMap::new());
        r.take_ready();
        r.finished("hq", ServerResult::Done, true);
        let blocked = r.finished("eu", ServerResult::Failed, false);
        assert_eq!(
            blocked,
            vec![
                Blocked {
                    server: "eu-a",
                    reason: block_reason("eu", ServerResult::Failed)
                },
                Blocked {
                    server: "eu-a-1",
                    reason: block_reason("eu-a", ServerResult::Blocked)
                },
            ]
        );
        let rest: Vec<&str> = std::iter::from_fn(|| r.take_ready()).collect();
        assert_eq!(rest, ["eu", "ap", "us"], "the siblings still run");
    }

    #[test]
    fn resuming_starts_below_what_is_done_and_blocks_below_what_is_not() {
        let p = plan();
        let done = HashMap::from([
            ("hq".to_string(), (ServerResult::Done, true)),
            ("eu".to_string(), (ServerResult::Skipped, false)),
        ]);
        let (mut r, blocked) = Readiness::new(&p, Order::TopDown, &done);
        assert_eq!(blocked.len(), 2);
        assert_eq!(
            blocked[0].reason.describe(),
            "its upstream eu was not touched"
        );
        let rest: Vec<&str> = std::iter::from_fn(|| r.take_ready()).collect();
        assert_eq!(rest, ["ap", "us"]);
    }

    #[test]
    fn bottom_up_waits_for_every_child() {
        let p = plan();
        let (mut r, _) = Readiness::new(&p, Order::BottomUp, &HashMap::new());
        let first: Vec<&str> = std::iter::from_fn(|| r.take_ready()).collect();
        assert_eq!(first, ["ap", "us", "eu-a-1"], "leaves, in plan order");
        r.finished("eu-a-1", ServerResult::Done, true);
        assert_eq!(r.take_ready(), Some("eu-a"));
        r.finished("us", ServerResult::Done, true);
        r.finished("ap", ServerResult::Done, true);
        assert_eq!(r.take_ready(), None, "hq still waits for eu");
        r.finished("eu-a", ServerResult::Done, true);
        assert_eq!(r.take_ready(), Some("eu"));
        r.finished("eu", ServerResult::Done, true);
        assert_eq!(r.take_ready(), Some("hq"), "the top comes last");
    }
}
