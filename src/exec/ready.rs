//! Which servers may start: a server waits in an index under the server it depends on, and a
//! finish wakes only those (no rescan of every pending server, so scheduling stays linear in the
//! hierarchy's size). Top-down, a server depends on its upstream and is blocked, with its whole
//! subtree, when the upstream does not unblock its children; bottom-up (tests only) a server
//! waits for all its children.

use std::collections::{HashMap, VecDeque};

use super::run::Order;
use crate::core::plan::Plan;
use crate::journal::record::ServerResult;

/// The scheduling state of a plan's servers.
#[derive(Debug)]
pub struct Readiness<'a> {
    order: Order,
    /// Top-down: pending servers by the upstream they wait for.
    waiting: HashMap<&'a str, Vec<&'a str>>,
    /// Bottom-up: children not finished yet, and each server's upstream.
    open_children: HashMap<&'a str, usize>,
    upstream: HashMap<&'a str, &'a str>,
    ready: VecDeque<&'a str>,
}

/// A server blocked because the server it waited for did not unblock it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked<'a> {
    /// The blocked server.
    pub server: &'a str,
    /// Why, in words.
    pub reason: String,
}

fn block_reason(upstream: &str, result: ServerResult) -> String {
    format!(
        "its upstream {upstream} {}",
        match result {
            ServerResult::Blocked => "is blocked",
            ServerResult::Skipped => "was not touched",
            _ => "failed",
        }
    )
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
            ready: VecDeque::new(),
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
                        None => r.ready.push_back(&s.name),
                        Some(u) => match finished.get(u) {
                            Some((_, true)) => r.ready.push_back(&s.name),
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
                        r.ready.push_back(&s.name);
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
                    if let Some(children) = self.waiting.remove(name) {
                        self.ready.extend(children);
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
                        self.ready.push_back(up);
                    }
                }
                Vec::new()
            }
        }
    }

    /// The next server that may start.
    pub fn take_ready(&mut self) -> Option<&'a str> {
        self.ready.pop_front()
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
    fn a_finish_wakes_only_its_children() {
        let p = plan();
        let (mut r, blocked) = Readiness::new(&p, Order::TopDown, &HashMap::new());
        assert!(blocked.is_empty());
        assert_eq!(r.take_ready(), Some("hq"));
        assert_eq!(r.take_ready(), None, "nothing else until hq is done");
        assert!(r.finished("hq", ServerResult::Done, true).is_empty());
        assert_eq!(
            (r.take_ready(), r.take_ready(), r.take_ready()),
            (Some("eu"), Some("us"), None)
        );
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
                    reason: "its upstream eu failed".into()
                },
                Blocked {
                    server: "eu-a-1",
                    reason: "its upstream eu-a is blocked".into()
                },
            ]
        );
        assert_eq!(r.take_ready(), Some("eu"));
        assert_eq!(r.take_ready(), Some("us"), "the sibling still runs");
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
        assert_eq!(blocked[0].reason, "its upstream eu was not touched");
        assert_eq!((r.take_ready(), r.take_ready()), (Some("us"), None));
    }

    #[test]
    fn bottom_up_waits_for_every_child() {
        let p = plan();
        let (mut r, _) = Readiness::new(&p, Order::BottomUp, &HashMap::new());
        let first: Vec<&str> = std::iter::from_fn(|| r.take_ready()).collect();
        assert_eq!(first, ["us", "eu-a-1"], "leaves, in plan order");
        r.finished("eu-a-1", ServerResult::Done, true);
        assert_eq!(r.take_ready(), Some("eu-a"));
        r.finished("us", ServerResult::Done, true);
        assert_eq!(r.take_ready(), None, "hq still waits for eu");
        r.finished("eu-a", ServerResult::Done, true);
        assert_eq!(r.take_ready(), Some("eu"));
        r.finished("eu", ServerResult::Done, true);
        assert_eq!(r.take_ready(), Some("hq"), "the top comes last");
    }
}
