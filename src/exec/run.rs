//! The dispatcher: one loop owns the run. It first closes what the decisions say to restore
//! first, then starts a server as soon as its own upstream has finished well (no barrier between
//! waves), siblings in parallel up to `parallel`; a failed server blocks only its own subtree,
//! and restores run whatever happens. It is the only writer of output; turns send it events.
//! What the run as a whole means (its result, its exit code) is [`super::session`]'s.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use super::connect::{Connector, Pool, Target};
use super::events::{EVENTS_SCHEMA_VERSION, Event};
use super::ready::Readiness;
use super::recorder::Recorder;
use super::retry::RetryPolicy;
use super::unit::{self, Shared, Stop, UnitOutcome, UnitSpec};
use crate::core::inventory::{Inventory, Role};
use crate::core::plan::{Plan, PlannedServer};
use crate::core::playbook::{Action, Playbook};
use crate::core::resume::{ResumePlan, Turn};
use crate::journal::record::{Obligation, Reason, Record, ServerEnd, ServerResult, Signal, now};
use crate::report::Sink;
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

/// Signals received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signals {
    /// How many.
    pub count: u32,
    /// The last one.
    pub last: Signal,
}

/// The whole job of the dispatcher.
pub struct Job<'a, C: Connector> {
    /// `apply`, `resume` or `restore`.
    pub command: &'a str,
    /// The plan executed.
    pub plan: &'a Plan,
    /// The inventory.
    pub inventory: &'a Inventory,
    /// The playbook.
    pub playbook: &'a Playbook,
    /// What to do with each server.
    pub decisions: &'a ResumePlan,
    /// The journal, the replayed progress and the events.
    pub recorder: Arc<Recorder>,
    /// Connections.
    pub connector: Arc<C>,
    /// Signals so far.
    pub signals: watch::Receiver<Signals>,
}

/// What the dispatcher did.
#[derive(Debug)]
pub struct Executed {
    /// Signals received.
    pub signals: Signals,
    /// A second signal stopped the run at once.
    pub stopped_now: bool,
    /// Each server's turn, in milliseconds.
    pub durations: HashMap<String, u64>,
    /// Traffic per host.
    pub stats: Vec<(String, TransportStats)>,
    /// Servers whose obligations could not be restored first (they did not run).
    pub restore_first_failed: BTreeSet<String>,
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
        recorder: job.recorder.clone(),
        stop,
        holds,
        retry: cfg.retry,
        seed: cfg.seed,
        update: update_of(job.playbook),
    })
}

/// Restores a list of obligations (each on its server), journaling each outcome. Returns the
/// servers whose obligations are still open.
pub async fn drain<C: Connector>(
    sh: &Shared<C>,
    obligations: &[Obligation],
    policy: RetryPolicy,
) -> BTreeSet<String> {
    let mut still_open = BTreeSet::new();
    for ob in obligations {
        let restored = match sh.pool.get(ob.server()) {
            Ok(ops) => unit::restore_with(sh, &ops, ob, policy).await,
            Err(e) => Err(e),
        };
        match restored {
            Ok(how) => {
                let closed = sh
                    .recorder
                    .record(
                        Record::ObligationClosed {
                            id: ob.id(),
                            how,
                            at: now(),
                        },
                        Some(Event::ObligationClosed {
                            id: ob.id(),
                            server: ob.server().into(),
                            how,
                        }),
                    )
                    .await;
                if closed.is_err() {
                    sh.recorder.restored_unjournaled(&ob.id());
                }
            }
            Err(error) => {
                still_open.insert(ob.server().to_string());
                // A failed record changes nothing: the obligation stays open either way.
                let _ = sh
                    .recorder
                    .record(
                        Record::RestoreFailed {
                            id: ob.id(),
                            error: error.clone(),
                            at: now(),
                        },
                        Some(Event::RestoreFailed {
                            id: ob.id(),
                            server: ob.server().into(),
                            error,
                        }),
                    )
                    .await;
            }
        }
    }
    still_open
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

/// Journals and reports how a server ended (its turn, a block, a failed restore-first).
async fn finish_server(recorder: &Recorder, server: &str, o: &UnitOutcome, duration_ms: u64) {
    let event = Event::ServerFinished {
        server: server.to_string(),
        result: o.end.result,
        reason: o.end.reason.clone(),
        detail: o.end.reason.as_ref().map(Reason::describe),
        changed_steps: o.changed_steps.clone(),
        not_run: o.not_run.clone(),
        changed: o.changed,
        ok: o.ok,
        failed: o.failed,
        duration_ms,
    };
    let rec = Record::ServerFinished {
        server: server.to_string(),
        result: o.end.result,
        reason: o.end.reason.clone(),
        path: Some(o.path),
        at: now(),
    };
    if recorder.record(rec, Some(event.clone())).await.is_err() {
        // The journal failed: the operator still sees how the server ended.
        recorder.emit(event);
    }
}

fn untouched(s: &PlannedServer, result: ServerResult, reason: Reason) -> UnitOutcome {
    UnitOutcome {
        end: ServerEnd {
            result,
            reason: Some(reason),
        },
        path: s.path,
        changed: 0,
        ok: 0,
        failed: 0,
        changed_steps: Vec::new(),
        not_run: Vec::new(),
    }
}

/// Runs the decisions of a plan: restores first, then the turns.
pub async fn execute<C: Connector>(
    mut job: Job<'_, C>,
    cfg: RunConfig,
    events: mpsc::UnboundedReceiver<Event>,
    sink: &mut dyn Sink,
) -> Executed {
    let mut rx = events;
    let (stop_tx, stop_rx) = watch::channel(Stop::No);
    let sh = shared(&job, &cfg, stop_rx);
    let recorder = job.recorder.clone();
    let mut journal_failed = recorder.watch_failure();
    sink.event(&Event::RunStarted {
        schema_version: EVENTS_SCHEMA_VERSION,
        command: job.command.to_string(),
        servers: job.plan.servers.len(),
        fingerprint: job.plan.fingerprint.clone(),
        journal: recorder.path().display().to_string(),
    });
    let mut signals = *job.signals.borrow();

    // What earlier attempts left in a temporary state, except the holds of servers whose turn
    // continues inside them (core::resume decides which).
    let first = job.decisions.restore_first();
    let mut restore_first_failed = BTreeSet::new();
    if !first.is_empty() && signals.count < 2 {
        sink.event(&Event::RestoringFromJournal {
            obligations: first.len(),
        });
        restore_first_failed = drain(&sh, &first, cfg.retry).await;
        forward(&mut rx, sink);
    }

    let plan = job.plan;
    let by_name: HashMap<&str, &PlannedServer> =
        plan.servers.iter().map(|s| (s.name.as_str(), s)).collect();
    let runtime_skip: BTreeMap<_, String> = job
        .playbook
        .paths
        .iter()
        .filter_map(|(v, p)| p.skip.clone().map(|r| (*v, r)))
        .collect();
    let mut already: HashMap<String, (ServerResult, bool)> = HashMap::new();
    let mut starts: HashMap<&str, (usize, Vec<Obligation>)> = HashMap::new();
    let mut leave_alone = false;
    for d in &job.decisions.servers {
        match &d.turn {
            Turn::Done => {
                already.insert(d.server.clone(), (ServerResult::Done, true));
            }
            Turn::Run { from, adopt } => {
                starts.insert(d.server.as_str(), (*from, adopt.clone()));
            }
            Turn::LeaveAlone => leave_alone = true,
        }
    }
    // A server whose earlier obligations could not be restored does not run: it failed.
    let mut pre_failed = Vec::new();
    for name in &restore_first_failed {
        if let Some(s) = by_name.get(name.as_str())
            && starts.remove(name.as_str()).is_some()
        {
            already.insert(name.clone(), (ServerResult::Failed, false));
            pre_failed.push(*s);
        }
    }
    for s in pre_failed {
        let open = recorder.with_progress(|p| {
            p.open_obligations()
                .into_iter()
                .find(|o| o.server() == s.name)
                .map(|o| {
                    (
                        o.id(),
                        p.ledger
                            .iter()
                            .find(|(i, _)| *i == o.id())
                            .and_then(|(_, l)| l.last_error.clone()),
                    )
                })
        });
        let (obligation, error) = open.unwrap_or_default();
        let o = untouched(
            s,
            ServerResult::Failed,
            Reason::RestoreFailed {
                obligation,
                error: error.unwrap_or_else(|| {
                    "the earlier attempt's temporary change could not be undone".into()
                }),
                after: None,
            },
        );
        finish_server(&recorder, &s.name, &o, 0).await;
        forward(&mut rx, sink);
    }

    let mut durations: HashMap<String, u64> = HashMap::new();
    let mut stopped_now = false;
    if !leave_alone {
        let (mut readiness, mut blocked) = Readiness::new(plan, cfg.order, &already);
        let mut running: JoinSet<(String, UnitOutcome, u64)> = JoinSet::new();
        let mut in_flight = 0usize;
        let mut failures = 0usize;
        let mut stopping = signals.count > 0 || recorder.failure().is_some();
        if stopping {
            let _ = stop_tx.send(Stop::Graceful);
        }
        loop {
            // Servers whose upstream did not unblock them, with their subtrees.
            for b in blocked.drain(..) {
                let s = by_name[b.server];
                let o = untouched(s, ServerResult::Blocked, b.reason);
                finish_server(&recorder, b.server, &o, 0).await;
                forward(&mut rx, sink);
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
                let Some((from, adopted)) = starts.remove(name) else {
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
                    adopted,
                    from,
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
                    finish_server(&recorder, &name, &o, ms).await;
                    forward(&mut rx, sink);
                    durations.insert(name.clone(), ms);
                    if let Some(s) = by_name.get(name.as_str()) {
                        blocked.extend(readiness.finished(&s.name, o.end.result, o.end.unblocks_children()));
                    }
                    if o.end.result == ServerResult::Failed {
                        failures += 1;
                        if cfg.fail_fast || cfg.max_failures.is_some_and(|m| failures >= m) {
                            if !stopping {
                                sink.event(&Event::Warning { message: format!("{failures} failure{}: no new servers are started (restores still run)", if failures == 1 { "" } else { "s" }) });
                            }
                            stopping = true;
                        }
                    }
                }
                Ok(()) = journal_failed.changed() => {
                    if !stopping {
                        sink.event(&Event::Warning { message: "the journal cannot take records: no new servers are started and no further change is made; restores still run".into() });
                    }
                    stopping = true;
                    let _ = stop_tx.send(Stop::Graceful);
                }
                Ok(()) = job.signals.changed() => {
                    signals = *job.signals.borrow();
                    let _ = recorder.record(Record::Interrupted { count: signals.count, signal: signals.last, at: now() }, Some(Event::Interrupted { count: signals.count, signal: signals.last })).await;
                    forward(&mut rx, sink);
                    stopping = true;
                    if signals.count >= 2 {
                        let _ = stop_tx.send(Stop::Now);
                        running.abort_all();
                        while running.join_next().await.is_some() {}
                        stopped_now = true;
                        break;
                    }
                    let _ = stop_tx.send(Stop::Graceful);
                }
            }
        }
    }
    forward(&mut rx, sink);

    // Anything still open (a restore that failed, a turn cut short, `restore`'s whole job)
    // gets one more try, unless the operator asked to stop at once.
    if !stopped_now {
        let open: Vec<Obligation> = recorder.with_progress(|p| {
            p.open_obligations()
                .into_iter()
                .filter(|o| !recorder.unjournaled().contains(&o.id()))
                .cloned()
                .collect()
        });
        if !open.is_empty() {
            if leave_alone && first.is_empty() {
                sink.event(&Event::RestoringFromJournal {
                    obligations: open.len(),
                });
            }
            // A restore that already failed in this run gets one last attempt; the restores of
            // `restore` itself get the whole policy.
            let policy = if leave_alone && first.is_empty() {
                cfg.retry
            } else {
                cfg.retry.once()
            };
            drain(&sh, &open, policy).await;
            forward(&mut rx, sink);
        }
    }
    let stats = sh.pool.stats().await;
    close_all(&sh).await;
    forward(&mut rx, sink);
    Executed {
        signals,
        stopped_now,
        durations,
        stats,
        restore_first_failed,
    }
}
