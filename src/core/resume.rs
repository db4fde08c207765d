//! What a run does with each server, decided from its replayed journal: a pure function, so
//! that `apply` (an empty journal), `resume` and `restore` are the same decision and a table of
//! cases tests it.
//!
//! The rules, per server of the plan:
//! - done in an earlier attempt: stays done (its children may go ahead);
//! - its hold and main steps all ended well: the temporary changes it still holds are restored
//!   first, and its turn goes on from the first restore or verification step that did not end
//!   (a server interrupted before its proof is proved now);
//! - otherwise its turn runs from the start, every step re-checking live state, and adopts the
//!   temporary changes it still holds (a held replica is not switched back only to be switched
//!   out again);
//! - `restore` leaves every server alone and restores every open obligation.
//!
//! Obligations of servers outside the plan are restored first.

use std::collections::BTreeSet;

use super::plan::{Phase, Plan};
use super::record::Obligation;
use super::replay::{Progress, main_steps_done, steps_of};

/// The command the decision is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Work the servers (apply, resume).
    Run,
    /// Only close open obligations.
    RestoreOnly,
}

/// What a server's turn does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// Done in an earlier attempt: not run again; its children may go ahead.
    Done,
    /// Run the turn, skipping the steps before `from` (each step re-checks live state), inside
    /// the `adopt`ed temporary changes an earlier attempt left.
    Run {
        /// The first step to run (0: the whole turn).
        from: usize,
        /// Obligations the turn takes over and closes.
        adopt: Vec<Obligation>,
    },
    /// Not worked on by this command.
    LeaveAlone,
}

/// The decision for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The server.
    pub server: String,
    /// Obligations of it to close before any turn starts.
    pub restore_first: Vec<Obligation>,
    /// Its turn.
    pub turn: Turn,
}

/// The decisions of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePlan {
    /// Per server, in plan order.
    pub servers: Vec<Decision>,
    /// Obligations of servers outside the plan, closed first.
    pub orphans: Vec<Obligation>,
}

impl ResumePlan {
    /// Every obligation to close before any turn starts.
    pub fn restore_first(&self) -> Vec<Obligation> {
        self.servers
            .iter()
            .flat_map(|d| d.restore_first.iter().cloned())
            .chain(self.orphans.iter().cloned())
            .collect()
    }

    /// The decision for `server`.
    pub fn get(&self, server: &str) -> Option<&Decision> {
        self.servers.iter().find(|d| d.server == server)
    }
}

/// Decides, per server of `plan`, what to do given the replayed `progress` (empty for a fresh
/// run).
pub fn decide(plan: &Plan, progress: &Progress, mode: Mode) -> ResumePlan {
    let open = progress.open_obligations();
    let of = |server: &str| -> Vec<Obligation> {
        open.iter()
            .filter(|o| o.server() == server)
            .map(|o| (*o).clone())
            .collect()
    };
    let mut servers = Vec::with_capacity(plan.servers.len());
    for s in &plan.servers {
        let held = of(&s.name);
        let p = progress.servers.get(&s.name);
        let decision = match (mode, p) {
            (Mode::RestoreOnly, _) => Decision {
                server: s.name.clone(),
                restore_first: held,
                turn: Turn::LeaveAlone,
            },
            (Mode::Run, Some(p))
                if p.end
                    .as_ref()
                    .is_some_and(|e| e.result == super::record::ServerResult::Done) =>
            {
                Decision {
                    server: s.name.clone(),
                    restore_first: held,
                    turn: Turn::Done,
                }
            }
            (Mode::Run, Some(p)) => {
                let steps = steps_of(s, Some(p));
                if main_steps_done(&steps, p) {
                    let from = steps
                        .iter()
                        .enumerate()
                        .find(|(i, st)| {
                            !matches!(st.phase, Phase::Hold | Phase::Main)
                                && !p.steps.get(i).is_some_and(|x| x.succeeded())
                        })
                        .map_or(steps.len(), |(i, _)| i);
                    Decision {
                        server: s.name.clone(),
                        restore_first: held,
                        turn: Turn::Run {
                            from,
                            adopt: Vec::new(),
                        },
                    }
                } else {
                    Decision {
                        server: s.name.clone(),
                        restore_first: Vec::new(),
                        turn: Turn::Run {
                            from: 0,
                            adopt: held,
                        },
                    }
                }
            }
            (Mode::Run, None) => Decision {
                server: s.name.clone(),
                restore_first: Vec::new(),
                turn: Turn::Run {
                    from: 0,
                    adopt: held,
                },
            },
        };
        servers.push(decision);
    }
    let planned: BTreeSet<&str> = plan.servers.iter().map(|s| s.name.as_str()).collect();
    let orphans = open
        .into_iter()
        .filter(|o| !planned.contains(o.server()))
        .cloned()
        .collect();
    ResumePlan { servers, orphans }
}
