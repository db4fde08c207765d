//! One server's turn, as explicit phases: facts (read the server), check (its facts against
//! the inventory, and the path), steps (hold and main), restores (always), verification (the
//! canary clients). Each phase ends the turn or hands over to the next; an interruption is
//! looked at between steps; a journal that cannot take a record ends the changes at once.
//!
//! Every step reads live state before acting, so running it again after an unknown outcome
//! (a crash, a lost connection) is safe: declining is skipped when already declined, the hotfix
//! when the DLL already has the fixed version, a mode switch when the server is already in that
//! mode. A temporary change (replica hold, culture switch) is journaled as an obligation, and on
//! disk, before it is requested; it is closed only after the way back is confirmed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::connect::{Connector, Handle, Pool};
use super::events::Event;
use super::recorder::{JournalFailure, Recorder};
use super::retry::{RetryPolicy, Transient, retried};
use crate::core::inventory::{Role, Server, WsusVersion};
use crate::core::logs::detection::{DetectionOutcome, summarize_detection};
use crate::core::plan::{Phase, PlanPath, PlannedServer, PlannedStep, StepKind};
use crate::core::playbook::{Action, OnMismatch};
use crate::core::replay::account;
use crate::journal::record::{
    ClientFailure, Closure, Obligation, ObligationKind, Reason, Record, ServerEnd, ServerResult,
    StepOutcome, TurnPhase, now,
};
use crate::wsus::{ErrorKind, Facts, OpError, ServiceState, UpdateState};

/// How hard a stop was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Keep going.
    No,
    /// No new steps: finish the running one, then restore.
    Graceful,
    /// Stop at once (second signal); obligations stay open in the journal.
    Now,
}

/// What every turn shares.
pub struct Shared<C: Connector> {
    /// Connections.
    pub pool: Pool<C>,
    /// The journal, the replayed progress and the events.
    pub recorder: Arc<Recorder>,
    /// Stop requests.
    pub stop: watch::Receiver<Stop>,
    /// At most this many replicas of one upstream held autonomous at once.
    pub holds: BTreeMap<String, Arc<Semaphore>>,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Seed of retry jitter.
    pub seed: u64,
    /// The UpdateID the facts report on.
    pub update: String,
}

/// What the turn is given.
#[derive(Debug, Clone)]
pub struct UnitSpec {
    /// The planned server.
    pub planned: PlannedServer,
    /// The inventory's view of it.
    pub server: Server,
    /// Its upstream in the inventory (name, address).
    pub upstream: Option<(String, String)>,
    /// Obligations of this server still open from an earlier attempt (adopted by this turn).
    pub adopted: Vec<Obligation>,
    /// The first step to run: the steps before it ended well in an earlier attempt (0 for a
    /// whole turn; the decision is `core::resume`'s).
    pub from: usize,
    /// The playbook's skip reasons of versions, for paths decided at run time.
    pub runtime_skip: BTreeMap<WsusVersion, String>,
}

/// How the turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOutcome {
    /// The result and why.
    pub end: ServerEnd,
    /// The path taken.
    pub path: PlanPath,
    /// Steps that changed something in this turn.
    pub changed: u32,
    /// Steps with nothing to do in this turn.
    pub ok: u32,
    /// Failed steps in this turn.
    pub failed: u32,
    /// The actions that changed the server during this run (this turn and earlier attempts).
    pub changed_steps: Vec<String>,
    /// The actions of its path that did not run or did not end well.
    pub not_run: Vec<String>,
}

/// Why a step did not succeed.
#[derive(Debug, Clone)]
enum StepErr {
    /// The operation failed.
    Op {
        /// In words.
        message: String,
        /// Worth another try.
        transient: bool,
        /// The host did not answer at all.
        stalled: bool,
    },
    /// The journal could not take the step's record: nothing more is changed.
    Journal(JournalFailure),
}

impl StepErr {
    fn message(&self) -> String {
        match self {
            StepErr::Op { message, .. } => message.clone(),
            StepErr::Journal(j) => j.to_string(),
        }
    }
}

impl Transient for StepErr {
    fn is_transient_failure(&self) -> bool {
        matches!(
            self,
            StepErr::Op {
                transient: true,
                ..
            }
        )
    }

    fn is_stall(&self) -> bool {
        matches!(self, StepErr::Op { stalled: true, .. })
    }
}

impl From<OpError> for StepErr {
    fn from(e: OpError) -> Self {
        StepErr::Op {
            transient: e.is_transient_failure(),
            stalled: Transient::is_stall(&e),
            message: e.to_string(),
        }
    }
}

impl From<JournalFailure> for StepErr {
    fn from(e: JournalFailure) -> Self {
        StepErr::Journal(e)
    }
}

fn fail(message: impl Into<String>) -> StepErr {
    StepErr::Op {
        message: message.into(),
        transient: false,
        stalled: false,
    }
}

type StepResult = Result<(StepOutcome, String), StepErr>;

/// The client web service DLL, relative to the WSUS install folder.
const CLIENT_DLL: &str =
    "WebServices\\ClientWebService\\bin\\Microsoft.UpdateServices.WebServices.Client.dll";

struct Unit<'a, C: Connector> {
    sh: &'a Shared<C>,
    spec: UnitSpec,
    ops: Handle<C::Remote>,
    facts: Option<Facts>,
    hold: Option<OwnedSemaphorePermit>,
    /// Obligations this turn must close: adopted ones plus those it opens.
    open: Vec<Obligation>,
    counts: (u32, u32, u32),
}

/// Why the steps phase ended early.
enum Halt {
    /// A stop was asked for before a step.
    Interrupted,
    /// A step failed, or the journal could not take its record.
    Failed(Reason),
}

fn host_part(name: &str) -> String {
    name.split('.').next().unwrap_or(name).to_ascii_lowercase()
}

/// Differences between what the inventory says of a server and what its facts show.
pub fn contradictions(
    s: &Server,
    upstream: Option<&(String, String)>,
    f: &Facts,
    held: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    match s.role {
        Role::Replica if !f.replica && !held => out.push(
            "the inventory says replica, but the server is not in replica mode (IsReplicaServer is false)".into(),
        ),
        Role::Autonomous if f.replica => out.push("the inventory says autonomous, but the server is a replica".into()),
        Role::Upstream if f.replica || !f.sync_from_mu => out.push(format!(
            "the inventory says upstream, but the server syncs from {}",
            if f.upstream.name.is_empty() { "another WSUS server".to_string() } else { f.upstream.name.clone() }
        )),
        Role::Autonomous | Role::Replica if f.sync_from_mu => out.push(format!(
            "the inventory says {}, but the server syncs from Microsoft Update",
            s.role
        )),
        _ => {}
    }
    if let Some((name, address)) = upstream
        && !f.sync_from_mu
        && !f.upstream.name.is_empty()
    {
        let actual = host_part(&f.upstream.name);
        let matches = actual == host_part(name)
            || f.upstream.name.eq_ignore_ascii_case(address)
            || f.upstream.name.eq_ignore_ascii_case(name);
        if !matches {
            out.push(format!(
                "the inventory says its upstream is {name}, but the server syncs from {}",
                f.upstream.name
            ));
        }
    }
    if let Some(want) = s.version {
        match f.version {
            Some(v) if v == want => {}
            Some(v) => out.push(format!(
                "the inventory says WSUS {}, but the server runs {} ({})",
                want.display(),
                v.display(),
                f.version_string
            )),
            None => out.push(format!(
                "the inventory says WSUS {}, but the server reports version {}",
                want.display(),
                f.version_string
            )),
        }
    }
    out
}

/// A detection's outcome in words, as the recap and `verify` print it.
pub fn describe_detection(o: &DetectionOutcome) -> String {
    match o {
        DetectionOutcome::Succeeded {
            updates,
            categories,
        } => {
            format!("found {updates} updates and {categories} categories")
        }
        DetectionOutcome::FailedThisBug { fault_id } => format!(
            "0x8024400E SyncUpdates failure of KB 954960{}",
            fault_id
                .as_ref()
                .map(|f| format!(" (fault ID {f})"))
                .unwrap_or_default()
        ),
        DetectionOutcome::FailedOther { code } => {
            format!("detection failed with {code} (not KB 954960)")
        }
        DetectionOutcome::NotRun { reason } => format!("no detection ran ({reason:?})"),
        DetectionOutcome::Inconclusive { reason } => {
            format!("no result in the log yet ({reason:?})")
        }
    }
}

impl<'a, C: Connector> Unit<'a, C> {
    fn name(&self) -> &str {
        &self.spec.planned.name
    }

    fn emit(&self, e: Event) {
        self.sh.recorder.emit(e);
    }

    fn stop(&self) -> Stop {
        *self.sh.stop.borrow()
    }

    /// True when no new step may start: a stop was asked for, or the journal failed.
    fn halted(&self) -> bool {
        self.stop() != Stop::No || self.sh.recorder.failure().is_some()
    }

    async fn record(&self, r: Record, e: Option<Event>) -> Result<(), JournalFailure> {
        self.sh.recorder.record(r, e).await
    }

    async fn gather_facts(&mut self) -> Result<Facts, StepErr> {
        let services: Vec<String> = self
            .spec
            .planned
            .all_steps()
            .filter_map(|s| match &s.kind {
                StepKind::Do(Action::CheckServices { services, .. }) => Some(services.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let ops = self.ops.clone();
        let update = self.sh.update.clone();
        let name = self.name().to_string();
        let sh = self.sh;
        retried(
            &sh.retry,
            sh.seed,
            &format!("{name}/facts"),
            || *sh.stop.borrow() == Stop::Now,
            |attempt, d, e: &StepErr| {
                sh.recorder.emit(Event::Retrying {
                    host: name.clone(),
                    action: "facts".into(),
                    attempt,
                    delay_ms: d.as_millis() as u64,
                    error: e.message(),
                })
            },
            |_| {
                let ops = ops.clone();
                let update = update.clone();
                let services = services.clone();
                async move {
                    let mut o = ops.lock().await;
                    o.facts(&update, None, &services)
                        .await
                        .map_err(StepErr::from)
                }
            },
        )
        .await
    }

    async fn open_obligation(&mut self, ob: Obligation) -> Result<(), StepErr> {
        if self.open.iter().any(|o| o.id() == ob.id()) {
            return Ok(());
        }
        let event = Event::ObligationOpened {
            id: ob.id(),
            server: self.name().to_string(),
        };
        self.record(
            Record::ObligationOpened {
                obligation: ob.clone(),
                at: now(),
            },
            Some(event),
        )
        .await?;
        self.open.push(ob);
        Ok(())
    }

    async fn close_obligation(&mut self, id: &str, how: Closure) -> Result<(), StepErr> {
        self.open.retain(|o| o.id() != id);
        let event = Event::ObligationClosed {
            id: id.to_string(),
            server: self.name().to_string(),
            how,
        };
        let r = self
            .record(
                Record::ObligationClosed {
                    id: id.to_string(),
                    how,
                    at: now(),
                },
                Some(event),
            )
            .await;
        if r.is_err() {
            self.sh.recorder.restored_unjournaled(id);
        }
        r.map_err(StepErr::from)
    }

    fn has_open(&self, kind: ObligationKind) -> Option<Obligation> {
        self.open.iter().find(|o| o.kind() == kind).cloned()
    }

    async fn run_step(&mut self, steps: &[PlannedStep], i: usize, attempt: u32) -> StepResult {
        let st = &steps[i];
        let ops = self.ops.clone();
        match &st.kind {
            StepKind::SwitchToAutonomous => {
                if self.hold.is_none()
                    && let Some(sem) = self
                        .spec
                        .server
                        .upstream
                        .as_ref()
                        .and_then(|u| self.sh.holds.get(u))
                {
                    self.hold = sem.clone().acquire_owned().await.ok();
                }
                let ob = Obligation::ReplicaHold {
                    server: self.name().to_string(),
                };
                self.open_obligation(ob).await?;
                let r = ops.lock().await.set_replica(false, 180).await?;
                Ok(if r.changed {
                    (StepOutcome::Changed, "now autonomous".into())
                } else {
                    (StepOutcome::Ok, "already autonomous".into())
                })
            }
            StepKind::SwitchToReplica => {
                let Some(ob) = self.has_open(ObligationKind::ReplicaHold) else {
                    return Ok((StepOutcome::Skipped, "no replica hold to restore".into()));
                };
                let r = ops.lock().await.set_replica(true, 180).await?;
                if !r.replica {
                    return Err(fail("the server did not confirm replica mode"));
                }
                self.close_obligation(&ob.id(), Closure::Restored).await?;
                self.hold = None;
                Ok((
                    if r.changed {
                        StepOutcome::Changed
                    } else {
                        StepOutcome::Ok
                    },
                    "replica again".into(),
                ))
            }
            StepKind::SyncFromUpstream => {
                // Only a replica that was held has anything to inherit again; a turn stopped
                // before its hold leaves the server as it was.
                let hold = steps
                    .iter()
                    .position(|s| s.kind == StepKind::SwitchToAutonomous);
                let name = self.name().to_string();
                let held = hold.is_some_and(|h| {
                    self.sh.recorder.with_progress(|p| {
                        p.servers
                            .get(&name)
                            .is_some_and(|s| s.steps.contains_key(&h))
                    })
                });
                if !held {
                    return Ok((
                        StepOutcome::Skipped,
                        "the replica was not held: nothing to inherit again".into(),
                    ));
                }
                let r = ops.lock().await.sync_now(3600).await?;
                Ok((
                    StepOutcome::Changed,
                    format!("synchronised ({:?})", r.result),
                ))
            }
            StepKind::RestoreLocale => {
                let Some(ob) = self.has_open(ObligationKind::LocaleSwitch) else {
                    return Ok((StepOutcome::Skipped, "the culture was not switched".into()));
                };
                let Obligation::LocaleSwitch { previous, .. } = &ob else {
                    return Ok((StepOutcome::Skipped, String::new()));
                };
                let r = ops.lock().await.set_culture(previous).await?;
                self.close_obligation(&ob.id(), Closure::Restored).await?;
                Ok((
                    StepOutcome::Changed,
                    format!("culture back to {}", r.current),
                ))
            }
            StepKind::Do(a) => self.run_action(a, steps, attempt).await,
        }
    }

    async fn run_action(&mut self, a: &Action, steps: &[PlannedStep], attempt: u32) -> StepResult {
        let ops = self.ops.clone();
        match a {
            Action::LocaleGuard { on_mismatch } => {
                let f = ops
                    .lock()
                    .await
                    .facts(&self.sh.update, None, &[] as &[&str])
                    .await?;
                if !f.locale_mismatch() {
                    return Ok((
                        StepOutcome::Ok,
                        format!("culture {} equals the install language", f.current_culture),
                    ));
                }
                match on_mismatch {
                    OnMismatch::Fail => Err(fail(format!(
                        "the current culture {} differs from the install language {}: switch it back before the hotfix (KB 954960)",
                        f.current_culture, f.install_language
                    ))),
                    OnMismatch::Switch => {
                        let ob = Obligation::LocaleSwitch {
                            server: self.name().to_string(),
                            previous: f.current_culture.clone(),
                        };
                        // An adopted switch keeps the culture to restore from the first run.
                        if self.has_open(ObligationKind::LocaleSwitch).is_none() {
                            self.open_obligation(ob).await?;
                        }
                        let r = ops.lock().await.set_culture(&f.install_language).await?;
                        Ok((
                            StepOutcome::Changed,
                            format!(
                                "culture switched from {} to {} for the install",
                                r.previous, r.current
                            ),
                        ))
                    }
                }
            }
            Action::InstallHotfix {
                kb,
                packages,
                args,
                timeout,
            } => {
                let expect = steps.iter().find_map(|s| match &s.kind {
                    StepKind::Do(Action::VerifyFileVersion { expect, .. }) => Some(expect.clone()),
                    _ => None,
                });
                let fv = ops.lock().await.file_version(CLIENT_DLL).await?;
                let current = fv.version.map(|v| v.to_string());
                if let (Some(e), Some(c)) = (&expect, &current)
                    && e == c
                {
                    return Ok((StepOutcome::Ok, format!("already installed (DLL {c})")));
                }
                let arch = self
                    .facts
                    .as_ref()
                    .map(|f| f.arch)
                    .or(self.spec.server.arch)
                    .ok_or_else(|| fail("the server's architecture is unknown"))?;
                let pkg = packages.get(&arch).ok_or_else(|| {
                    fail(format!("the playbook has no {} package", arch.as_str()))
                })?;
                let r = ops
                    .lock()
                    .await
                    .install_hotfix(*kb, &pkg.path, &pkg.sha256, args, *timeout)
                    .await?;
                let mut detail = format!(
                    "KB{kb} installed ({} package, exit code {})",
                    arch.as_str(),
                    r.exit_code
                );
                if r.reboot_required {
                    detail.push_str("; a reboot is required");
                    self.emit(Event::Warning {
                        message: format!(
                            "{}: KB{kb} asks for a reboot (exit code {})",
                            self.name(),
                            r.exit_code
                        ),
                    });
                }
                Ok((StepOutcome::Changed, detail))
            }
            Action::VerifyFileVersion {
                path,
                expect,
                wrong,
            } => {
                let fv = ops.lock().await.file_version(path).await?;
                let file = path.rsplit('\\').next().unwrap_or(path);
                match fv.version.map(|v| v.to_string()) {
                    None => Err(fail(format!("{file} is missing"))),
                    Some(v) if &v == expect => Ok((StepOutcome::Ok, format!("{file} is {v}"))),
                    Some(v) if wrong.contains(&v) => Err(fail(format!(
                        "{file} is {v}: the hotfix installed wrongly (the culture did not match the install language). \
                         It cannot be uninstalled: uninstall WSUS keeping its database, reinstall it, set the culture to \
                         the install language and run wsusfix again"
                    ))),
                    Some(v) => Err(fail(format!("{file} is {v}, expected {expect}"))),
                }
            }
            Action::CheckServices { services, timeout } => {
                let before: Vec<String> = self
                    .facts
                    .as_ref()
                    .map(|f| {
                        services
                            .iter()
                            .filter(|s| {
                                matches!(f.services.get(s.as_str()), Some(ServiceState::Running))
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                let r = ops.lock().await.services(services, &before, *timeout).await;
                match r {
                    Ok(_) if before.is_empty() => {
                        Ok((StepOutcome::Ok, "none of them ran before".into()))
                    }
                    Ok(_) => Ok((
                        StepOutcome::Ok,
                        format!("{} running again", before.join(", ")),
                    )),
                    Err(OpError::Known {
                        kind: ErrorKind::Timeout,
                        message,
                        ..
                    }) => Err(fail(format!(
                        "{message}: a service that ran before the hotfix did not come back; start it by hand and check its event log"
                    ))),
                    Err(e) => Err(e.into()),
                }
            }
            Action::EnsureDeclined { update } => {
                let r = ops.lock().await.ensure_declined(update).await?;
                Ok(if r.changed {
                    (StepOutcome::Changed, "declined".into())
                } else {
                    (StepOutcome::Ok, "already declined".into())
                })
            }
            Action::ApproveUnchanged { update, group } => {
                let mut o = ops.lock().await;
                if attempt > 1 {
                    // The last attempt's outcome is unknown: the reset must start from a
                    // declined update, so decline first (a no-op if it still is).
                    o.ensure_declined(update).await?;
                }
                o.approve_unchanged(update, group).await?;
                Ok((
                    StepOutcome::Changed,
                    "approved for All Computers without changes (NotApproved)".into(),
                ))
            }
            Action::Decline { update } => {
                let r = ops.lock().await.decline(update).await?;
                Ok((
                    if r.changed {
                        StepOutcome::Changed
                    } else {
                        StepOutcome::Ok
                    },
                    "declined again".into(),
                ))
            }
            Action::Sync { timeout } => {
                let r = ops.lock().await.sync_now(*timeout).await?;
                Ok((
                    StepOutcome::Changed,
                    format!("synchronised ({:?})", r.result),
                ))
            }
            Action::DetectNow { .. } => Ok((StepOutcome::Skipped, String::new())),
        }
    }

    /// Runs step `i` with retries, journaled before (each attempt) and after.
    async fn step(&mut self, steps: &[PlannedStep], i: usize) -> Result<(), StepErr> {
        let action = steps[i].kind.name().to_string();
        let name = self.name().to_string();
        let started = Instant::now();
        let sh = self.sh;
        let mut delays = sh.retry.delays(sh.seed, &format!("{name}/{i}"));
        let mut attempt = 1;
        let mut stalls = 0;
        let result = loop {
            // The step's record is durable before the step: no record, no change.
            self.record(
                Record::StepStarted {
                    server: name.clone(),
                    step: i,
                    action: action.clone(),
                    attempt,
                    at: now(),
                },
                Some(Event::StepStarted {
                    server: name.clone(),
                    step: i,
                    action: action.clone(),
                    attempt,
                }),
            )
            .await?;
            match self.run_step(steps, i, attempt).await {
                Ok(v) => break Ok(v),
                Err(e @ StepErr::Journal(_)) => break Err(e),
                Err(e)
                    if e.is_transient_failure()
                        && self.stop() != Stop::Now
                        && sh.retry.again_after(&e, &mut stalls) =>
                {
                    match delays.next() {
                        Some(d) => {
                            self.emit(Event::Retrying {
                                host: name.clone(),
                                action: action.clone(),
                                attempt,
                                delay_ms: d.as_millis() as u64,
                                error: e.message(),
                            });
                            tokio::time::sleep(d).await;
                            attempt += 1;
                        }
                        None => break Err(e),
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let (outcome, detail) = match &result {
            Ok((o, d)) => (*o, d.clone()),
            Err(e) => (StepOutcome::Failed, e.message()),
        };
        match outcome {
            StepOutcome::Changed => self.counts.0 += 1,
            StepOutcome::Ok => self.counts.1 += 1,
            StepOutcome::Failed => self.counts.2 += 1,
            StepOutcome::Skipped => {}
        }
        let finished = self
            .record(
                Record::StepFinished {
                    server: name.clone(),
                    step: i,
                    action: action.clone(),
                    outcome,
                    detail: detail.clone(),
                    at: now(),
                },
                Some(Event::StepFinished {
                    server: name,
                    step: i,
                    action,
                    outcome,
                    detail,
                    duration_ms: started.elapsed().as_millis() as u64,
                }),
            )
            .await;
        result?;
        finished.map_err(StepErr::from)
    }

    /// Runs detection on every canary client: the clients that did not prove the fix, or
    /// `Halt` when a stop (or a journal failure) came before every client was checked.
    async fn verify(&mut self, attempts: u32, timeout: u32) -> Result<Vec<ClientFailure>, Halt> {
        let clients = self.spec.server.clients.clone();
        let mut failures = Vec::new();
        let sh = self.sh;
        for c in clients {
            if self.halted() {
                return Err(Halt::Interrupted);
            }
            let mut last = String::new();
            let mut ok = false;
            let mut evidence = Vec::new();
            let mut made = 0;
            match sh.pool.get(&c.name) {
                Err(e) => last = e,
                Ok(handle) => {
                    for attempt in 1..=attempts.max(1) {
                        made = attempt;
                        let client = c.name.clone();
                        let out = retried(
                            &sh.retry,
                            sh.seed,
                            &format!("{client}/detect-now"),
                            || *sh.stop.borrow() == Stop::Now,
                            |n, d, e: &StepErr| {
                                sh.recorder.emit(Event::Retrying {
                                    host: client.clone(),
                                    action: "detect-now".into(),
                                    attempt: n,
                                    delay_ms: d.as_millis() as u64,
                                    error: e.message(),
                                })
                            },
                            |_| {
                                let h = handle.clone();
                                async move {
                                    h.lock()
                                        .await
                                        .detect_now(timeout)
                                        .await
                                        .map_err(StepErr::from)
                                }
                            },
                        )
                        .await;
                        match out {
                            Ok(d) => {
                                let text = d.lines.join("\r\n");
                                let s = summarize_detection(&text);
                                evidence = s
                                    .evidence
                                    .iter()
                                    .filter_map(|n| d.lines.get(n.saturating_sub(1)).cloned())
                                    .collect();
                                last = describe_detection(&s.outcome);
                                if matches!(s.outcome, DetectionOutcome::Succeeded { .. }) {
                                    ok = true;
                                    break;
                                }
                            }
                            Err(e) => last = e.message(),
                        }
                    }
                }
            }
            let event = Event::Verification {
                server: self.name().to_string(),
                client: c.name.clone(),
                succeeded: ok,
                attempts: made,
                detail: last.clone(),
            };
            self.record(
                Record::Verification {
                    server: self.name().to_string(),
                    client: c.name.clone(),
                    succeeded: ok,
                    attempts: made,
                    detail: last.clone(),
                    evidence,
                    at: now(),
                },
                Some(event),
            )
            .await
            .map_err(|j| {
                Halt::Failed(Reason::JournalFailed {
                    error: j.error,
                    step: None,
                })
            })?;
            if ok {
                self.counts.1 += 1;
            } else {
                self.counts.2 += 1;
                failures.push(ClientFailure {
                    client: c.name.clone(),
                    detail: last,
                });
            }
        }
        Ok(failures)
    }
}

/// Runs one server's turn. Nothing here returns an error: every way a turn can end is a
/// [`UnitOutcome`].
pub async fn run<C: Connector>(sh: &Shared<C>, spec: UnitSpec) -> UnitOutcome {
    let path = spec.planned.path;
    let ops = match sh.pool.get(&spec.planned.name) {
        Ok(o) => o,
        Err(error) => {
            return UnitOutcome {
                end: ServerEnd {
                    result: ServerResult::Failed,
                    reason: Some(Reason::Unreachable { error }),
                },
                path,
                changed: 0,
                ok: 0,
                failed: 1,
                changed_steps: Vec::new(),
                not_run: Vec::new(),
            };
        }
    };
    let mut u = Unit {
        sh,
        open: spec.adopted.clone(),
        spec,
        ops,
        facts: None,
        hold: None,
        counts: (0, 0, 0),
    };
    u.turn().await
}

impl<C: Connector> Unit<'_, C> {
    fn outcome(
        &self,
        result: ServerResult,
        reason: Option<Reason>,
        path: PlanPath,
        steps: &[PlannedStep],
    ) -> UnitOutcome {
        let (changed_steps, not_run) = self.account(steps);
        UnitOutcome {
            end: ServerEnd { result, reason },
            path,
            changed: self.counts.0,
            ok: self.counts.1,
            failed: self.counts.2,
            changed_steps,
            not_run,
        }
    }

    /// What the journal says this server's steps did: the actions that changed it, and those
    /// of its path that did not end well.
    fn account(&self, steps: &[PlannedStep]) -> (Vec<String>, Vec<String>) {
        let name = self.name().to_string();
        self.sh.recorder.with_progress(|p| {
            let progress = p.servers.get(&name).cloned().unwrap_or_default();
            account(steps, &progress)
        })
    }

    /// The whole turn: facts, check, steps, restores, verification.
    async fn turn(&mut self) -> UnitOutcome {
        let planned_path = self.spec.planned.path;
        self.emit(Event::ServerStarted {
            server: self.name().to_string(),
            path: planned_path,
        });
        // Phase 1: facts.
        let facts = match self.gather_facts().await {
            Ok(f) => f,
            Err(e) => {
                let reason = match e {
                    StepErr::Journal(j) => Reason::JournalFailed {
                        error: j.error,
                        step: None,
                    },
                    other => Reason::Unreachable {
                        error: other.message(),
                    },
                };
                return self
                    .end_with_restores(ServerResult::Failed, Some(reason), planned_path, &[])
                    .await;
            }
        };
        // Phase 2: the facts against the inventory, and the path.
        let (path, steps) = match self.check(facts).await {
            Ok(x) => x,
            Err((result, reason, path)) => {
                return self
                    .end_with_restores(result, Some(reason), path, &[])
                    .await;
            }
        };
        // Phase 3: hold and main steps (those an earlier attempt did not end).
        let halted = self.steps(&steps).await;
        // Phase 4: restores, always (unless told to stop at once).
        let restore_failure = self.restores(&steps).await;
        if self.stop() == Stop::Now {
            return self.interrupted(TurnPhase::Restores, path, &steps);
        }
        match (halted, restore_failure) {
            (halt, Some((obligation, error))) => {
                let after = match halt {
                    Some(Halt::Failed(r)) => Some(Box::new(r)),
                    Some(Halt::Interrupted) | None => None,
                };
                return self.outcome(
                    ServerResult::Failed,
                    Some(Reason::RestoreFailed {
                        obligation,
                        error,
                        after,
                    }),
                    path,
                    &steps,
                );
            }
            (Some(Halt::Failed(r)), None) => {
                return self.outcome(ServerResult::Failed, Some(r), path, &steps);
            }
            (Some(Halt::Interrupted), None) => {
                return self.interrupted(TurnPhase::Steps, path, &steps);
            }
            (None, None) => {}
        }
        // Phase 5: verification on the canary clients.
        let verify = steps
            .iter()
            .enumerate()
            .find(|(i, s)| s.phase == Phase::Verify && *i >= self.spec.from);
        if let Some((i, st)) = verify
            && let StepKind::Do(Action::DetectNow { attempts, timeout }) = &st.kind
        {
            if self.halted() {
                return self.interrupted(TurnPhase::Verification, path, &steps);
            }
            if let Err(j) = self.verify_step_started(i).await {
                return self.outcome(
                    ServerResult::Failed,
                    Some(Reason::JournalFailed {
                        error: j.error,
                        step: Some(i),
                    }),
                    path,
                    &steps,
                );
            }
            let result = self.verify(*attempts, *timeout).await;
            let (outcome, detail) = match &result {
                Ok(f) if f.is_empty() => {
                    (StepOutcome::Ok, "every canary client detects".to_string())
                }
                Ok(f) => (
                    StepOutcome::Failed,
                    format!("{} canary client(s) still fail", f.len()),
                ),
                Err(_) => (
                    StepOutcome::Failed,
                    "not every client was checked".to_string(),
                ),
            };
            if !matches!(result, Err(Halt::Interrupted)) {
                let _ = self.verify_step_finished(i, outcome, detail).await;
            }
            match result {
                Ok(f) if f.is_empty() => {}
                Ok(clients) => {
                    return self.outcome(
                        ServerResult::Failed,
                        Some(Reason::VerificationFailed { clients }),
                        path,
                        &steps,
                    );
                }
                Err(Halt::Interrupted) => {
                    return self.interrupted(TurnPhase::Verification, path, &steps);
                }
                Err(Halt::Failed(r)) => {
                    return self.outcome(ServerResult::Failed, Some(r), path, &steps);
                }
            }
        }
        self.outcome(ServerResult::Done, None, path, &steps)
    }

    async fn verify_step_started(&self, i: usize) -> Result<(), JournalFailure> {
        let name = self.name().to_string();
        self.record(
            Record::StepStarted {
                server: name.clone(),
                step: i,
                action: "detect-now".into(),
                attempt: 1,
                at: now(),
            },
            Some(Event::StepStarted {
                server: name,
                step: i,
                action: "detect-now".into(),
                attempt: 1,
            }),
        )
        .await
    }

    async fn verify_step_finished(
        &self,
        i: usize,
        outcome: StepOutcome,
        detail: String,
    ) -> Result<(), JournalFailure> {
        let name = self.name().to_string();
        self.record(
            Record::StepFinished {
                server: name.clone(),
                step: i,
                action: "detect-now".into(),
                outcome,
                detail: detail.clone(),
                at: now(),
            },
            Some(Event::StepFinished {
                server: name,
                step: i,
                action: "detect-now".into(),
                outcome,
                detail,
                duration_ms: 0,
            }),
        )
        .await
    }

    /// An interrupted turn: before or after changes, with what did not run.
    fn interrupted(&self, phase: TurnPhase, path: PlanPath, steps: &[PlannedStep]) -> UnitOutcome {
        let (changed, not_run) = self.account(steps);
        let reason = if changed.is_empty() {
            Reason::InterruptedBeforeChanges { not_run }
        } else {
            Reason::InterruptedAfterChanges {
                phase,
                changed,
                not_run,
            }
        };
        self.outcome(ServerResult::Interrupted, Some(reason), path, steps)
    }

    /// Phase 2: records the facts, compares them with the inventory, picks the path. `Err`:
    /// the turn ends here, with that result and reason.
    async fn check(
        &mut self,
        facts: Facts,
    ) -> Result<(PlanPath, Vec<PlannedStep>), (ServerResult, Reason, PlanPath)> {
        let planned_path = self.spec.planned.path;
        let held = self.has_open(ObligationKind::ReplicaHold).is_some();
        let found = contradictions(&self.spec.server, self.spec.upstream.as_ref(), &facts, held);
        if let Err(j) = self
            .record(
                Record::Facts {
                    server: self.name().to_string(),
                    version: facts.version.map(|v| v.as_str().to_string()),
                    contradictions: found.clone(),
                    at: now(),
                },
                None,
            )
            .await
        {
            return Err((
                ServerResult::Failed,
                Reason::JournalFailed {
                    error: j.error,
                    step: None,
                },
                planned_path,
            ));
        }
        if !found.is_empty() {
            return Err((
                ServerResult::Skipped,
                Reason::Contradicted {
                    contradictions: found,
                },
                planned_path,
            ));
        }
        let synced = !matches!(facts.update, UpdateState::NotSynced);
        let version = facts.version;
        let version_string = facts.version_string.clone();
        self.facts = Some(facts);
        let (path, steps) = match planned_path {
            PlanPath::Runtime => {
                let Some(v) = version else {
                    return Err((
                        ServerResult::Failed,
                        Reason::UnknownVersion { version_string },
                        PlanPath::Runtime,
                    ));
                };
                match self.spec.planned.alternatives.get(&v) {
                    Some(steps) => (PlanPath::Version(v), steps.clone()),
                    None => {
                        return Err((
                            ServerResult::Skipped,
                            Reason::NoPath {
                                version: v.as_str().to_string(),
                                why: self.spec.runtime_skip.get(&v).cloned(),
                            },
                            PlanPath::Version(v),
                        ));
                    }
                }
            }
            PlanPath::Version(_) => (planned_path, self.spec.planned.steps.clone()),
        };
        if let Some(why) = &self.spec.planned.skip {
            return Err((
                ServerResult::Skipped,
                Reason::PlanSkip { why: why.clone() },
                path,
            ));
        }
        if path == PlanPath::Version(WsusVersion::Rtm) && !synced {
            // Nothing to reset on this server; its clients cannot be affected by this update.
            return Err((ServerResult::Skipped, Reason::NotSynced, path));
        }
        Ok((path, steps))
    }

    /// Phase 3: the hold and main steps from `spec.from` on. `None` when all ended well.
    async fn steps(&mut self, steps: &[PlannedStep]) -> Option<Halt> {
        for (i, st) in steps.iter().enumerate() {
            if !matches!(st.phase, Phase::Hold | Phase::Main) || i < self.spec.from {
                continue;
            }
            if self.halted() {
                return Some(Halt::Interrupted);
            }
            match self.step(steps, i).await {
                Ok(()) => {}
                Err(StepErr::Journal(j)) => {
                    return Some(Halt::Failed(Reason::JournalFailed {
                        error: j.error,
                        step: Some(i),
                    }));
                }
                Err(e) => {
                    return Some(Halt::Failed(Reason::StepFailed {
                        step: i,
                        action: st.kind.name().to_string(),
                        error: e.message(),
                    }));
                }
            }
        }
        None
    }

    /// Phase 4: the restore steps, then whatever this turn still holds (a path without its
    /// restore step, a failure above). The first restore that fails, if any, with its error.
    async fn restores(&mut self, steps: &[PlannedStep]) -> Option<(String, String)> {
        for (i, st) in steps.iter().enumerate() {
            if st.phase != Phase::Restore || i < self.spec.from || self.stop() == Stop::Now {
                continue;
            }
            match self.step(steps, i).await {
                Ok(()) => {}
                // The restore itself is done on the server or not; a journal failure after
                // it is the recorder's to report. Go on restoring.
                Err(StepErr::Journal(_)) => {}
                Err(e) => {
                    let message = e.message();
                    let id = match &st.kind {
                        StepKind::SwitchToReplica | StepKind::SyncFromUpstream => {
                            self.has_open(ObligationKind::ReplicaHold)
                        }
                        StepKind::RestoreLocale => self.has_open(ObligationKind::LocaleSwitch),
                        _ => None,
                    }
                    .map_or_else(|| st.kind.name().to_string(), |o| o.id());
                    self.report_restore_failure(&message).await;
                    return Some((id, message));
                }
            }
        }
        if self.stop() == Stop::Now {
            return None;
        }
        self.restore_leftovers().await.err()
    }

    async fn report_restore_failure(&mut self, e: &str) {
        for ob in self.open.clone() {
            let event = Event::RestoreFailed {
                id: ob.id(),
                server: self.name().to_string(),
                error: e.to_string(),
            };
            // A failed record here changes nothing: the obligation is open either way.
            let _ = self
                .record(
                    Record::RestoreFailed {
                        id: ob.id(),
                        error: e.to_string(),
                        at: now(),
                    },
                    Some(event),
                )
                .await;
        }
    }

    /// Closes every obligation this turn still holds.
    async fn restore_leftovers(&mut self) -> Result<(), (String, String)> {
        for ob in self.open.clone() {
            match restore_one(self.sh, &self.ops, &ob).await {
                Ok(how) => {
                    self.counts.0 += 1;
                    // A closing record the journal cannot take leaves the obligation open in
                    // the journal; `restore` confirms it later.
                    let _ = self.close_obligation(&ob.id(), how).await;
                }
                Err(e) => {
                    self.report_restore_failure(&e).await;
                    return Err((ob.id(), e));
                }
            }
        }
        self.hold = None;
        Ok(())
    }

    async fn end_with_restores(
        &mut self,
        result: ServerResult,
        reason: Option<Reason>,
        path: PlanPath,
        steps: &[PlannedStep],
    ) -> UnitOutcome {
        if !self.open.is_empty()
            && self.stop() != Stop::Now
            && let Err((obligation, error)) = self.restore_leftovers().await
        {
            return self.outcome(
                ServerResult::Failed,
                Some(Reason::RestoreFailed {
                    obligation,
                    error,
                    after: reason.map(Box::new),
                }),
                path,
                steps,
            );
        }
        self.outcome(result, reason, path, steps)
    }
}

/// Undoes one obligation on its server, with retries: switch a held replica back (then sync it),
/// or set the culture back.
pub async fn restore_one<C: Connector>(
    sh: &Shared<C>,
    ops: &Handle<C::Remote>,
    ob: &Obligation,
) -> Result<Closure, String> {
    restore_with(sh, ops, ob, sh.retry).await
}

/// [`restore_one`] with its own retry policy.
pub async fn restore_with<C: Connector>(
    sh: &Shared<C>,
    ops: &Handle<C::Remote>,
    ob: &Obligation,
    policy: RetryPolicy,
) -> Result<Closure, String> {
    let server = ob.server().to_string();
    let label = format!("restore {}", ob.id());
    retried(
        &policy,
        sh.seed,
        &format!("restore/{}", ob.id()),
        || false,
        |attempt, d, e: &OpError| {
            sh.recorder.emit(Event::Retrying {
                host: server.clone(),
                action: label.clone(),
                attempt,
                delay_ms: d.as_millis() as u64,
                error: e.to_string(),
            })
        },
        |_| async move {
            let mut o = ops.lock().await;
            match ob {
                Obligation::ReplicaHold { .. } => {
                    let r = o.set_replica(true, 180).await?;
                    if r.replica {
                        // Inherit the upstream's (repaired) approvals.
                        o.sync_now(3600).await?;
                    }
                    Ok(if r.changed {
                        Closure::Restored
                    } else {
                        Closure::NotNeeded
                    })
                }
                Obligation::LocaleSwitch { previous, .. } => {
                    let r = o.set_culture(previous).await?;
                    Ok(if r.previous.eq_ignore_ascii_case(previous) {
                        Closure::NotNeeded
                    } else {
                        Closure::Restored
                    })
                }
            }
        },
    )
    .await
    .map_err(|e| e.to_string())
}
