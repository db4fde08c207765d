//! The dispatcher: one loop owns the run. A server starts as soon as its own upstream has
//! finished successfully (no barrier between waves), siblings run in parallel up to `parallel`,
//! a failed server blocks only its own subtree, and restores run whatever happens. The journal is
//! the source of truth: the recap and the restore ledger are replayed from it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::connect::{Connector, Pool, Target};
use super::events::{EVENTS_SCHEMA_VERSION, Event};
use super::ready::Readiness;
use super::retry::RetryPolicy;
use super::unit::{self, Shared, Stop, UnitOutcome, UnitSpec};
use crate::core::inventory::{Inventory, Role};
use crate::core::plan::{Plan, PlannedServer};
use crate::core::playbook::{Action, Playbook};
use crate::exit;
use crate::journal::reader::{self, RunState};
use crate::journal::record::{Obligation, Record, ServerResult, now};
use crate::journal::writer::JournalWriter;
use crate::report::Sink;
use crate::report::recap::{LedgerRow, Recap, RecapRow};
use crate::winrm::TransportStats;

/// The order servers are taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Upstream before downstream (the only safe order).
    #[default]
    TopDown,
    /// Downstream before upstream. Wrong on purpose: tests use it to prove that the order
    /// matters; the command line accepts it only with `WSUSFIX_ALLOW_UNSAFE_ORDER=1`.
    BottomUp,
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Servers in flight at once.
    pub parallel: usize,
    /// Replicas of one upstream held autonomous at once.
    pub max_held_per_upstream: usize,
    /// Stop scheduling after the first failure.
    pub fail_fast: bool,
    /// Stop scheduling after this many failures.
    pub max_failures: Option<usize>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Seed of retry jitter.
    pub seed: u64,
    /// The order.
    pub order: Order,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            parallel: 16,
            max_held_per_upstream: 4,
            fail_fast: false,
            max_failures: None,
            retry: RetryPolicy::default(),
            seed: 0x5eed,
            order: Order::TopDown,
        }
    }
}

/// What a run (or a resume, or a restore) produced.
#[derive(Debug)]
pub struct RunReport {
    /// The recap, replayed from the journal.
    pub recap: Recap,
    /// The exit code.
    pub exit_code: i32,
    /// Traffic per host.
    pub stats: Vec<(String, TransportStats)>,
}

/// The whole job.
pub struct Job<'a, C: Connector> {
    /// `apply`, `resume` or `restore`.
    pub command: &'a str,
    /// The plan executed.
    pub plan: &'a Plan,
    /// The inventory.
    pub inventory: &'a Inventory,
    /// The playbook.
    pub playbook: &'a Playbook,
    /// The journal, open for appending.
    pub journal: JournalWriter,
    /// The state replayed from the journal when resuming.
    pub resumed: Option<RunState>,
    /// Connections.
    pub connector: Arc<C>,
    /// Ctrl-C presses so far.
    pub interrupts: watch::Receiver<u32>,
}

/// The UpdateID the facts report on: the first one the playbook's steps name, else the Office 2003 SP1
/// update of KB 954960.
pub fn update_of(pb: &Playbook) -> String {
    pb.paths
        .values()
        .flat_map(|p| p.steps.iter())
        .find_map(|a| match a {
            Action::EnsureDeclined { update }
            | Action::Decline { update }
            | Action::ApproveUnchanged { update, .. } => Some(update.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "D359F493-0AAD-43FA-AF5C-6763326CD98F".to_string())
}

fn shared<C: Connector>(
    job: &Job<'_, C>,
    cfg: &RunConfig,
    events: mpsc::UnboundedSender<Event>,
    stop: watch::Receiver<Stop>,
) -> Arc<Shared<C>> {
    let mut holds = BTreeMap::new();
    for s in job.inventory.servers() {
        if s.role == Role::Replica
            && let Some(u) = &s.upstream
        {
            holds
                .entry(u.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(cfg.max_held_per_upstream.max(1))));
        }
    }
    Arc::new(Shared {
        pool: Pool::new(job.connector.clone(), Target::all(job.inventory)),
        journal: job.journal.clone(),
        events,
        stop,
        holds,
        retry: cfg.retry,
        seed: cfg.seed,
        update: update_of(job.playbook),
    })
}

fn replay(journal: &JournalWriter) -> Result<RunState, String> {
    let j = reader::read(journal.path()).map_err(|e| e.to_string())?;
    Ok(RunState::replay(&j.records))
}

/// Restores a list of obligations (each on its server), journaling each outcome. Returns the
/// IDs still open.
pub async fn drain<C: Connector>(sh: &Shared<C>, obligations: &[Obligation]) -> Vec<String> {
    let mut still_open = Vec::new();
    for ob in obligations {
        let restored = match sh.pool.get(ob.server()) {
            Ok(ops) => unit::restore_one(sh, &ops, ob).await,
            Err(e) => Err(e),
        };
        let closed = match restored {
            Ok(how) => sh
                .journal
                .append(&Record::ObligationClosed {
                    id: ob.id(),
                    how: how.clone(),
                    at: now(),
                })
                .await
                .map(|()| how)
                .map_err(|e| format!("cannot journal the restore: {e}")),
            Err(e) => Err(e),
        };
        match closed {
            Ok(how) => {
                let _ = sh.events.send(Event::ObligationClosed {
                    id: ob.id(),
                    server: ob.server().into(),
                    how,
                });
            }
            Err(error) => {
                still_open.push(ob.id());
                let _ = sh
                    .journal
                    .append(&Record::RestoreFailed {
                        id: ob.id(),
                        error: error.clone(),
                        at: now(),
                    })
                    .await;
                let _ = sh.events.send(Event::RestoreFailed {
                    id: ob.id(),
                    server: ob.server().into(),
                    error,
                });
            }
        }
    }
    still_open
}

fn run_started<C: Connector>(job: &Job<'_, C>) -> Event {
    Event::RunStarted {
        schema_version: EVENTS_SCHEMA_VERSION,
        command: job.command.to_string(),
        servers: job.plan.servers.len(),
        fingerprint: job.plan.fingerprint.clone(),
        journal: job.journal.path().display().to_string(),
    }
}

/// Ends every session of the run (deletes its shells).
async fn close_all<C: Connector>(sh: &Shared<C>) {
    for (_, h) in sh.pool.handles() {
        let mut ops = h.lock().await;
        C::close(ops.remote_mut()).await;
    }
}

fn forward(rx: &mut mpsc::UnboundedReceiver<Event>, sink: &mut dyn Sink) {
    while let Ok(e) = rx.try_recv() {
        sink.event(&e);
    }
}

/// Builds the recap and ledger from the journal.
pub fn recap_of(
    state: &RunState,
    durations: &HashMap<String, u64>,
    result: &str,
    exit_code: i32,
    duration_ms: u64,
) -> Recap {
    let rows = state
        .plan
        .servers
        .iter()
        .map(|s| {
            let p = state.servers.get(&s.name);
            let (result, reason) = match p.and_then(|p| p.result.clone()) {
                Some((r, why)) => (Some(r), why),
                None => (None, None),
            };
            let count = |want: &[crate::journal::record::StepOutcome]| {
                p.map(|p| {
                    p.steps
                        .values()
                        .filter(|st| matches!(st, reader::StepState::Ended(o) if want.contains(o)))
                        .count() as u32
                })
                .unwrap_or(0)
            };
            use crate::journal::record::StepOutcome as O;
            RecapRow {
                server: s.name.clone(),
                path: p
                    .and_then(|p| p.path.clone())
                    .unwrap_or_else(|| s.path.clone()),
                result,
                changed: count(&[O::Changed]),
                ok: count(&[O::Ok]),
                failed: count(&[O::Failed]),
                duration_ms: durations.get(&s.name).copied(),
                started: p.is_some_and(|p| !p.steps.is_empty()),
                reason: match (&result, p) {
                    (None, Some(p)) if !p.steps.is_empty() => Some(format!(
                        "stopped during step {} (its outcome is unknown; resume re-checks it)",
                        p.steps.keys().max().map(|i| i + 1).unwrap_or(1)
                    )),
                    _ => reason,
                },
            }
        })
        .collect();
    let ledger = state
        .ledger
        .iter()
        .map(|(id, l)| LedgerRow {
            id: id.clone(),
            kind: match l.obligation {
                Obligation::ReplicaHold { .. } => "replica hold".into(),
                Obligation::LocaleSwitch { .. } => "locale switch".into(),
            },
            server: l.obligation.server().to_string(),
            state: match (l.state.as_str(), &l.last_error) {
                ("open", Some(_)) => "restore-failed".into(),
                ("open", None) => "restore-pending".into(),
                (other, _) => other.to_string(),
            },
            error: if l.state == "open" {
                l.last_error.clone()
            } else {
                None
            },
        })
        .collect();
    Recap {
        rows,
        ledger,
        result: result.to_string(),
        exit_code,
        duration_ms,
    }
}

/// Runs (or resumes) a plan.
pub async fn execute<C: Connector>(
    mut job: Job<'_, C>,
    cfg: RunConfig,
    sink: &mut dyn Sink,
) -> RunReport {
    let t0 = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(Stop::No);
    let sh = shared(&job, &cfg, tx.clone(), stop_rx);
    sink.event(&run_started(&job));

    // Resuming: first restore what the interrupted run left in a temporary state, except the
    // holds of servers whose steps did not all end: their turn continues inside the hold and
    // restores it (so no replica is switched twice).
    let mut adopted: HashMap<String, Vec<Obligation>> = HashMap::new();
    let mut done: HashMap<String, UnitOutcome> = HashMap::new();
    if let Some(st) = &job.resumed {
        let mut first = Vec::new();
        for ob in st.open_obligations() {
            let server = ob.server();
            let finished = st
                .servers
                .get(server)
                .and_then(|p| p.result.clone())
                .is_some();
            let main_done = main_steps_done(job.plan, st, server);
            if finished || main_done {
                first.push(ob.clone());
            } else {
                adopted
                    .entry(server.to_string())
                    .or_default()
                    .push(ob.clone());
            }
        }
        if !first.is_empty() {
            sink.event(&Event::RestoringFromJournal {
                obligations: first.len(),
            });
            let _left = drain(&sh, &first).await;
            forward(&mut rx, sink);
        }
        for (name, p) in &st.servers {
            if let Some((ServerResult::Done, _)) = &p.result {
                done.insert(
                    name.clone(),
                    UnitOutcome {
                        result: ServerResult::Done,
                        reason: None,
                        unblocks: true,
                        path: p.path.clone().unwrap_or_default(),
                        changed: 0,
                        ok: 0,
                        failed: 0,
                    },
                );
            }
        }
    }

    let plan = job.plan;
    let by_name: HashMap<&str, &PlannedServer> =
        plan.servers.iter().map(|s| (s.name.as_str(), s)).collect();
    let runtime_skip: BTreeMap<String, String> = job
        .playbook
        .paths
        .iter()
        .filter_map(|(v, p)| p.skip.clone().map(|r| (v.as_str().to_string(), r)))
        .collect();
    let already: HashMap<String, (ServerResult, bool)> = done
        .iter()
        .map(|(k, o)| (k.clone(), (o.result, o.unblocks)))
        .collect();
    let (mut readiness, mut blocked) = Readiness::new(plan, cfg.order, &already);
    let mut finished: HashMap<String, UnitOutcome> = done;
    let mut durations: HashMap<String, u64> = HashMap::new();
    let mut running: JoinSet<(String, UnitOutcome, u64)> = JoinSet::new();
    let mut in_flight = 0usize;
    let mut failures = 0usize;
    let mut stopping = false;
    let mut interrupted = 0u32;
    loop {
        // Servers whose upstream did not unblock them, with their subtrees.
        for b in blocked.drain(..) {
            let s = by_name[b.server];
            let _ = job
                .journal
                .append(&Record::ServerFinished {
                    server: b.server.to_string(),
                    result: ServerResult::Blocked,
                    reason: Some(b.reason.clone()),
                    path: Some(s.path.clone()),
                    at: now(),
                })
                .await;
            sink.event(&Event::ServerFinished {
                server: b.server.to_string(),
                result: ServerResult::Blocked,
                reason: Some(b.reason.clone()),
                changed: 0,
                ok: 0,
                failed: 0,
                duration_ms: 0,
            });
            finished.insert(
                b.server.to_string(),
                UnitOutcome {
                    result: ServerResult::Blocked,
                    reason: Some(b.reason),
                    unblocks: false,
                    path: s.path.clone(),
                    changed: 0,
                    ok: 0,
                    failed: 0,
                },
            );
        }
        // Start what is ready.
        while !stopping && in_flight < cfg.parallel.max(1) {
            let Some(name) = readiness.take_ready() else {
                break;
            };
            let s = by_name[name];
            let Some(server) = job.inventory.get(name).cloned() else {
                continue;
            };
            let upstream = server
                .upstream
                .as_ref()
                .and_then(|u| job.inventory.get(u))
                .map(|u| (u.name.clone(), u.address.clone()));
            let spec = UnitSpec {
                planned: s.clone(),
                server,
                upstream,
                adopted: adopted.remove(name).unwrap_or_default(),
                progress: job
                    .resumed
                    .as_ref()
                    .and_then(|st| st.servers.get(name).cloned()),
                runtime_skip: runtime_skip.clone(),
            };
            let sh = sh.clone();
            let n = name.to_string();
            running.spawn(async move {
                let t = Instant::now();
                let o = unit::run(&sh, spec).await;
                (n, o, t.elapsed().as_millis() as u64)
            });
            in_flight += 1;
        }
        if in_flight == 0 && (!readiness.has_ready() || stopping) {
            break;
        }
        tokio::select! {
            Some(e) = rx.recv() => sink.event(&e),
            Some(joined) = running.join_next(), if in_flight > 0 => {
                in_flight -= 1;
                forward(&mut rx, sink);
                let Ok((name, o, ms)) = joined else { continue };
                let _ = job.journal.append(&Record::ServerFinished { server: name.clone(), result: o.result, reason: o.reason.clone(), path: Some(o.path.clone()), at: now() }).await;
                sink.event(&Event::ServerFinished { server: name.clone(), result: o.result, reason: o.reason.clone(), changed: o.changed, ok: o.ok, failed: o.failed, duration_ms: ms });
                durations.insert(name.clone(), ms);
                if let Some(s) = by_name.get(name.as_str()) {
                    blocked.extend(readiness.finished(&s.name, o.result, o.unblocks));
                }
                if o.result == ServerResult::Failed {
                    failures += 1;
                    if cfg.fail_fast || cfg.max_failures.is_some_and(|m| failures >= m) {
                        if !stopping {
                            sink.event(&Event::Warning { message: format!("{failures} failure{}: no new servers are started (restores still run)", if failures == 1 { "" } else { "s" }) });
                        }
                        stopping = true;
                    }
                }
                finished.insert(name, o);
            }
            Ok(()) = job.interrupts.changed() => {
                interrupted = *job.interrupts.borrow();
                let _ = job.journal.append(&Record::Interrupted { count: interrupted, at: now() }).await;
                sink.event(&Event::Interrupted { count: interrupted });
                stopping = true;
                if interrupted >= 2 {
                    let _ = stop_tx.send(Stop::Now);
                    running.abort_all();
                    while running.join_next().await.is_some() {}
                    break;
                }
                let _ = stop_tx.send(Stop::Graceful);
            }
        }
    }
    forward(&mut rx, sink);

    // Anything still open in this run's journal (a restore that failed, a unit cut short) gets
    // one more try, unless the operator asked to stop at once.
    let mut state =
        replay(&job.journal).unwrap_or_else(|_| job.resumed.clone().expect("a journal"));
    if interrupted < 2 {
        let open: Vec<Obligation> = state.open_obligations().into_iter().cloned().collect();
        if !open.is_empty() {
            drain(&sh, &open).await;
            forward(&mut rx, sink);
            state = replay(&job.journal).unwrap_or(state);
        }
    }
    let pending_restores = !state.open_obligations().is_empty();
    let any_bad = plan.servers.iter().any(|s| {
        !matches!(
            state.servers.get(&s.name).and_then(|p| p.result.clone()),
            Some((ServerResult::Done | ServerResult::Skipped, _))
        )
    }) || plan.servers.iter().any(|s| {
        matches!(state.servers.get(&s.name).and_then(|p| p.result.clone()), Some((ServerResult::Skipped, Some(r))) if r.starts_with("not touched"))
    });
    let (result, code) = if pending_restores {
        ("restores-pending", exit::RESTORES_PENDING)
    } else if interrupted > 0 {
        ("interrupted", exit::INTERRUPTED)
    } else if any_bad {
        ("partial", exit::FINDINGS)
    } else {
        ("done", exit::OK)
    };
    let _ = job
        .journal
        .append(&Record::RunFinished {
            result: result.into(),
            at: now(),
        })
        .await;
    let duration_ms = t0.elapsed().as_millis() as u64;
    sink.event(&Event::RunFinished {
        result: result.into(),
        exit_code: code,
        duration_ms,
    });
    let stats = sh.pool.stats().await;
    close_all(&sh).await;
    let recap = recap_of(&state, &durations, result, code, duration_ms);
    sink.recap(&recap);
    RunReport {
        recap,
        exit_code: code,
        stats,
    }
}

fn main_steps_done(plan: &Plan, st: &RunState, server: &str) -> bool {
    let Some(s) = plan.server(server) else {
        return false;
    };
    let Some(p) = st.servers.get(server) else {
        return false;
    };
    let path = p.path.clone().unwrap_or_else(|| s.path.clone());
    let steps = if s.path == "runtime" {
        s.alternatives.get(&path).cloned().unwrap_or_default()
    } else {
        s.steps.clone()
    };
    !steps.is_empty()
        && steps
            .iter()
            .enumerate()
            .filter(|(_, x)| {
                matches!(
                    x.phase,
                    crate::core::plan::Phase::Hold | crate::core::plan::Phase::Main
                )
            })
            .all(|(i, _)| {
                matches!(
                    p.steps.get(&i),
                    Some(reader::StepState::Ended(
                        crate::journal::record::StepOutcome::Ok
                            | crate::journal::record::StepOutcome::Changed
                            | crate::journal::record::StepOutcome::Skipped
                    ))
                )
            })
}

/// `restore`: closes every open obligation of a run, nothing else.
pub async fn restore<C: Connector>(
    mut job: Job<'_, C>,
    cfg: RunConfig,
    sink: &mut dyn Sink,
) -> RunReport {
    let t0 = Instant::now();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_stop_tx, stop_rx) = watch::channel(Stop::No);
    let sh = shared(&job, &cfg, tx, stop_rx);
    let state = job.resumed.take().or_else(|| replay(&job.journal).ok());
    let open: Vec<Obligation> = state
        .as_ref()
        .map(|s| s.open_obligations().into_iter().cloned().collect())
        .unwrap_or_default();
    sink.event(&run_started(&job));
    if !open.is_empty() {
        sink.event(&Event::RestoringFromJournal {
            obligations: open.len(),
        });
    }
    drain(&sh, &open).await;
    forward(&mut rx, sink);
    let state = replay(&job.journal).ok().or(state).expect("a journal");
    let pending = !state.open_obligations().is_empty();
    let (result, code) = if pending {
        ("restores-pending", exit::RESTORES_PENDING)
    } else {
        ("restored", exit::OK)
    };
    let duration_ms = t0.elapsed().as_millis() as u64;
    sink.event(&Event::RunFinished {
        result: result.into(),
        exit_code: code,
        duration_ms,
    });
    close_all(&sh).await;
    let recap = recap_of(&state, &HashMap::new(), result, code, duration_ms);
    sink.recap(&recap);
    RunReport {
        recap,
        exit_code: code,
        stats: Vec::new(),
    }
}
