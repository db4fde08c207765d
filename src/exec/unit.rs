//! One server's turn: gather facts and compare them with the inventory, pick the path, run the
//! steps, always run the restores, then verify the canary clients.
//!
//! Every step reads live state before acting, so running it again after an unknown outcome
//! (a crash, a lost connection) is safe: declining is skipped when already declined, the hotfix
//! when the DLL already has the fixed version, a mode switch when the server is already in that
//! mode. A temporary change (replica hold, culture switch) is journaled as an obligation, and on
//! disk, before it is requested; it is closed only after the way back is confirmed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::connect::{Connector, Handle, Pool};
use super::events::Event;
use super::retry::RetryPolicy;
use crate::core::inventory::{Role, Server, WsusVersion};
use crate::core::logs::detection::{DetectionOutcome, summarize_detection};
use crate::core::plan::{Phase, PlannedServer, PlannedStep, StepKind};
use crate::core::playbook::{Action, OnMismatch};
use crate::journal::reader::{ServerProgress, StepState};
use crate::journal::record::{Obligation, Record, ServerResult, StepOutcome, now};
use crate::journal::writer::JournalWriter;
use crate::wsus::{ErrorKind, Facts, OpError, ServiceState, UpdateState};

/// How hard a stop was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    /// Keep going.
    No,
    /// No new steps: finish the running one, then restore.
    Graceful,
    /// Stop at once (second Ctrl-C); obligations stay open in the journal.
    Now,
}

/// What every unit shares.
pub struct Shared<C: Connector> {
    /// Connections.
    pub pool: Pool<C>,
    /// The journal.
    pub journal: JournalWriter,
    /// Events to the dispatcher.
    pub events: mpsc::UnboundedSender<Event>,
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

/// What the unit is given.
#[derive(Debug, Clone)]
pub struct UnitSpec {
    /// The planned server.
    pub planned: PlannedServer,
    /// The inventory's view of it.
    pub server: Server,
    /// Its upstream in the inventory (name, address).
    pub upstream: Option<(String, String)>,
    /// Obligations of this server still open from an earlier run (adopted by this turn).
    pub adopted: Vec<Obligation>,
    /// Its progress in the journal, when resuming.
    pub progress: Option<ServerProgress>,
    /// The playbook's path for each version (for paths decided at run time) and skip reasons.
    pub runtime_skip: BTreeMap<String, String>,
}

/// How the unit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOutcome {
    /// The result.
    pub result: ServerResult,
    /// Why.
    pub reason: Option<String>,
    /// Its children may go ahead.
    pub unblocks: bool,
    /// The path taken.
    pub path: String,
    /// Steps that changed something.
    pub changed: u32,
    /// Steps with nothing to do.
    pub ok: u32,
    /// Failed steps.
    pub failed: u32,
}

struct StepErr {
    message: String,
    transient: bool,
}

impl From<OpError> for StepErr {
    fn from(e: OpError) -> Self {
        // A configuration still busy after the script's own wait is worth another try later.
        let transient = e.is_transient() || e.kind() == Some(ErrorKind::ConfigBusy);
        StepErr {
            message: e.to_string(),
            transient,
        }
    }
}

fn fail(message: impl Into<String>) -> StepErr {
    StepErr {
        message: message.into(),
        transient: false,
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
        let _ = self.sh.events.send(e);
    }

    fn stop(&self) -> Stop {
        *self.sh.stop.borrow()
    }

    async fn journal(&self, r: Record) -> Result<(), String> {
        self.sh.journal.append(&r).await.map_err(|e| {
            format!(
                "cannot write the journal {}: {e}",
                self.sh.journal.path().display()
            )
        })
    }

    /// Runs `f` with retries of transient failures.
    async fn retried<T, F, Fut>(&self, host: &str, action: &str, mut f: F) -> Result<T, StepErr>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, StepErr>>,
    {
        let mut delays = self
            .sh
            .retry
            .delays(self.sh.seed, &format!("{host}/{action}"));
        let mut attempt = 1;
        loop {
            match f(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) if e.transient && self.stop() != Stop::Now => match delays.next() {
                    Some(d) => {
                        self.emit(Event::Retrying {
                            host: host.to_string(),
                            action: action.to_string(),
                            attempt,
                            delay_ms: d.as_millis() as u64,
                            error: e.message.clone(),
                        });
                        tokio::time::sleep(d).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
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
        self.retried(&name, "facts", |_| {
            let ops = ops.clone();
            let update = update.clone();
            let services = services.clone();
            async move {
                let mut o = ops.lock().await;
                o.facts(&update, None, &services)
                    .await
                    .map_err(StepErr::from)
            }
        })
        .await
    }

    async fn open_obligation(&mut self, ob: Obligation) -> Result<(), StepErr> {
        if self.open.iter().any(|o| o.id() == ob.id()) {
            return Ok(());
        }
        self.journal(Record::ObligationOpened {
            obligation: ob.clone(),
            at: now(),
        })
        .await
        .map_err(fail)?;
        self.emit(Event::ObligationOpened {
            id: ob.id(),
            server: self.name().to_string(),
        });
        self.open.push(ob);
        Ok(())
    }

    async fn close_obligation(&mut self, id: &str, how: &str) -> Result<(), StepErr> {
        self.journal(Record::ObligationClosed {
            id: id.to_string(),
            how: how.to_string(),
            at: now(),
        })
        .await
        .map_err(fail)?;
        self.open.retain(|o| o.id() != id);
        self.emit(Event::ObligationClosed {
            id: id.to_string(),
            server: self.name().to_string(),
            how: how.to_string(),
        });
        Ok(())
    }

    fn has_open(&self, prefix: &str) -> Option<Obligation> {
        self.open
            .iter()
            .find(|o| o.id().starts_with(prefix))
            .cloned()
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
                let Some(ob) = self.has_open("replica-hold:") else {
                    return Ok((StepOutcome::Skipped, "no replica hold to restore".into()));
                };
                let r = ops.lock().await.set_replica(true, 180).await?;
                if !r.replica {
                    return Err(fail("the server did not confirm replica mode"));
                }
                self.close_obligation(&ob.id(), "restored").await?;
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
                let r = ops.lock().await.sync_now(3600).await?;
                Ok((
                    StepOutcome::Changed,
                    format!("synchronised ({:?})", r.result),
                ))
            }
            StepKind::RestoreLocale => {
                let Some(ob) = self.has_open("locale-switch:") else {
                    return Ok((StepOutcome::Skipped, "the culture was not switched".into()));
                };
                let Obligation::LocaleSwitch { previous, .. } = &ob else {
                    return Ok((StepOutcome::Skipped, String::new()));
                };
                let r = ops.lock().await.set_culture(previous).await?;
                self.close_obligation(&ob.id(), "restored").await?;
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
                        if self.has_open("locale-switch:").is_none() {
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

    async fn step(&mut self, steps: &[PlannedStep], i: usize) -> Result<(), String> {
        let action = steps[i].kind.name().to_string();
        let name = self.name().to_string();
        let started = Instant::now();
        let mut delays = self.sh.retry.delays(self.sh.seed, &format!("{name}/{i}"));
        let mut attempt = 1;
        let result = loop {
            self.journal(Record::StepStarted {
                server: name.clone(),
                step: i,
                action: action.clone(),
                attempt,
                at: now(),
            })
            .await?;
            self.emit(Event::StepStarted {
                server: name.clone(),
                step: i,
                action: action.clone(),
                attempt,
            });
            match self.run_step(steps, i, attempt).await {
                Ok(v) => break Ok(v),
                Err(e) if e.transient && self.stop() != Stop::Now => match delays.next() {
                    Some(d) => {
                        self.emit(Event::Retrying {
                            host: name.clone(),
                            action: action.clone(),
                            attempt,
                            delay_ms: d.as_millis() as u64,
                            error: e.message.clone(),
                        });
                        tokio::time::sleep(d).await;
                        attempt += 1;
                    }
                    None => break Err(e.message),
                },
                Err(e) => break Err(e.message),
            }
        };
        let (outcome, detail) = match &result {
            Ok((o, d)) => (*o, d.clone()),
            Err(e) => (StepOutcome::Failed, e.clone()),
        };
        match outcome {
            StepOutcome::Changed => self.counts.0 += 1,
            StepOutcome::Ok => self.counts.1 += 1,
            StepOutcome::Failed => self.counts.2 += 1,
            StepOutcome::Skipped => {}
        }
        self.journal(Record::StepFinished {
            server: name.clone(),
            step: i,
            action: action.clone(),
            outcome,
            detail: detail.clone(),
            at: now(),
        })
        .await?;
        self.emit(Event::StepFinished {
            server: name,
            step: i,
            action: action.clone(),
            outcome,
            detail,
            duration_ms: started.elapsed().as_millis() as u64,
        });
        result.map(|_| ()).map_err(|e| format!("{action}: {e}"))
    }

    async fn verify(&mut self, attempts: u32, timeout: u32) -> Result<(), String> {
        let clients = self.spec.server.clients.clone();
        let mut failures = Vec::new();
        for c in clients {
            let handle = self.sh.pool.get(&c.name)?;
            let mut last = String::new();
            let mut ok = false;
            let mut evidence = Vec::new();
            let mut made = 0;
            for attempt in 1..=attempts.max(1) {
                made = attempt;
                let h = handle.clone();
                let out = self
                    .retried(&c.name, "detect-now", |_| {
                        let h = h.clone();
                        async move {
                            h.lock()
                                .await
                                .detect_now(timeout)
                                .await
                                .map_err(StepErr::from)
                        }
                    })
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
                    Err(e) => last = e.message,
                }
            }
            self.journal(Record::Verification {
                server: self.name().to_string(),
                client: c.name.clone(),
                succeeded: ok,
                attempts: made,
                detail: last.clone(),
                evidence,
                at: now(),
            })
            .await?;
            self.emit(Event::Verification {
                server: self.name().to_string(),
                client: c.name.clone(),
                succeeded: ok,
                attempts: made,
                detail: last.clone(),
            });
            if ok {
                self.counts.1 += 1;
            } else {
                self.counts.2 += 1;
                failures.push(format!("client {} still fails detection: {last}", c.name));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}

/// Which steps to run when resuming: all of them when the hold and main steps did not all end
/// (each re-checks live state), otherwise only the restore and verify steps that did not end.
fn resume_skips(steps: &[PlannedStep], progress: Option<&ServerProgress>) -> Vec<bool> {
    let Some(p) = progress else {
        return vec![false; steps.len()];
    };
    let ended = |i: usize| {
        matches!(
            p.steps.get(&i),
            Some(StepState::Ended(
                StepOutcome::Ok | StepOutcome::Changed | StepOutcome::Skipped
            ))
        )
    };
    let main_done = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.phase, Phase::Hold | Phase::Main))
        .all(|(i, _)| ended(i));
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| main_done && (matches!(s.phase, Phase::Hold | Phase::Main) || ended(i)))
        .collect()
}

/// Runs one server's turn. Errors writing the journal end the turn as failed.
pub async fn run<C: Connector>(sh: &Shared<C>, spec: UnitSpec) -> UnitOutcome {
    let name = spec.planned.name.clone();
    let ops = match sh.pool.get(&name) {
        Ok(o) => o,
        Err(e) => {
            return UnitOutcome {
                result: ServerResult::Failed,
                reason: Some(e),
                unblocks: false,
                path: spec.planned.path.clone(),
                changed: 0,
                ok: 0,
                failed: 1,
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
        reason: Option<String>,
        unblocks: bool,
        path: &str,
    ) -> UnitOutcome {
        UnitOutcome {
            result,
            reason,
            unblocks,
            path: path.to_string(),
            changed: self.counts.0,
            ok: self.counts.1,
            failed: self.counts.2,
        }
    }

    async fn turn(&mut self) -> UnitOutcome {
        let planned_path = self.spec.planned.path.clone();
        self.emit(Event::ServerStarted {
            server: self.name().to_string(),
            path: planned_path.clone(),
        });
        // 1. Facts.
        let facts = match self.gather_facts().await {
            Ok(f) => f,
            Err(e) => {
                // A server that cannot even be read: restore what earlier runs left, if we can.
                let reason = e.message.clone();
                return self
                    .finish_with_restores(ServerResult::Failed, Some(reason), &planned_path)
                    .await;
            }
        };
        let held = self
            .open
            .iter()
            .any(|o| matches!(o, Obligation::ReplicaHold { .. }));
        let found = contradictions(&self.spec.server, self.spec.upstream.as_ref(), &facts, held);
        let _ = self
            .journal(Record::Facts {
                server: self.name().to_string(),
                version: facts.version.map(|v| v.as_str().to_string()),
                contradictions: found.clone(),
                at: now(),
            })
            .await;
        if !found.is_empty() {
            let reason = format!("not touched: {}", found.join("; "));
            return self
                .finish_with_restores(ServerResult::Skipped, Some(reason), &planned_path)
                .await;
        }
        let synced = !matches!(facts.update, UpdateState::NotSynced);
        self.facts = Some(facts.clone());
        // 2. The path.
        let (path, steps) = if self.spec.planned.path == "runtime" {
            let Some(v) = facts.version else {
                let reason = format!("unknown WSUS version {}", facts.version_string);
                return self
                    .finish_with_restores(ServerResult::Failed, Some(reason), "runtime")
                    .await;
            };
            match self.spec.planned.alternatives.get(v.as_str()) {
                Some(steps) => (v.as_str().to_string(), steps.clone()),
                None => {
                    let reason = self
                        .spec
                        .runtime_skip
                        .get(v.as_str())
                        .cloned()
                        .unwrap_or_else(|| {
                            format!("the playbook has no path for WSUS {}", v.display())
                        });
                    return self
                        .finish_with_restores(ServerResult::Skipped, Some(reason), v.as_str())
                        .await;
                }
            }
        } else {
            (
                self.spec.planned.path.clone(),
                self.spec.planned.steps.clone(),
            )
        };
        if let Some(reason) = &self.spec.planned.skip {
            return self
                .finish_with_restores(ServerResult::Skipped, Some(reason.clone()), &path)
                .await;
        }
        if path == WsusVersion::Rtm.as_str() && !synced {
            // Nothing to reset on this server; its clients cannot be affected by this update.
            let reason =
                "the Office 2003 SP1 update never synchronised to this server: nothing to reset"
                    .to_string();
            return self
                .finish_with_restores(ServerResult::Skipped, Some(reason), &path)
                .await;
        }
        // 3. Hold and main steps, unless already done (resume).
        let skips = resume_skips(&steps, self.spec.progress.as_ref());
        let mut failure: Option<String> = None;
        for (i, st) in steps.iter().enumerate() {
            if !matches!(st.phase, Phase::Hold | Phase::Main) || skips[i] {
                continue;
            }
            if self.stop() != Stop::No {
                failure = Some("interrupted before this step".into());
                break;
            }
            if let Err(e) = self.step(&steps, i).await {
                failure = Some(e);
                break;
            }
        }
        // 4. Restores, always (unless told to stop at once).
        let mut restore_failure: Option<String> = None;
        for (i, st) in steps.iter().enumerate() {
            if st.phase != Phase::Restore || skips[i] || self.stop() == Stop::Now {
                continue;
            }
            if let Err(e) = self.step(&steps, i).await {
                self.report_restore_failure(&e).await;
                restore_failure = Some(e);
                break;
            }
        }
        // Anything this turn still holds (a path without its restore step, a failure above).
        if self.stop() != Stop::Now && restore_failure.is_none() {
            restore_failure = self.restore_leftovers().await.err();
        }
        let interrupted = self.stop() != Stop::No;
        if let Some(e) = failure.or(restore_failure.clone()) {
            let result = if interrupted && e.starts_with("interrupted") {
                ServerResult::Skipped
            } else {
                ServerResult::Failed
            };
            return self.outcome(result, Some(e), false, &path);
        }
        // 5. Verification on the canary clients.
        let verify = steps
            .iter()
            .enumerate()
            .find(|(i, s)| s.phase == Phase::Verify && !skips[*i]);
        if let Some((_, st)) = verify
            && let StepKind::Do(Action::DetectNow { attempts, timeout }) = &st.kind
            && !interrupted
            && let Err(e) = self.verify(*attempts, *timeout).await
        {
            return self.outcome(ServerResult::Failed, Some(e), false, &path);
        }
        self.outcome(ServerResult::Done, None, true, &path)
    }

    async fn report_restore_failure(&mut self, e: &str) {
        for ob in self.open.clone() {
            let _ = self
                .journal(Record::RestoreFailed {
                    id: ob.id(),
                    error: e.to_string(),
                    at: now(),
                })
                .await;
            self.emit(Event::RestoreFailed {
                id: ob.id(),
                server: self.name().to_string(),
                error: e.to_string(),
            });
        }
    }

    /// Closes every obligation this turn still holds.
    async fn restore_leftovers(&mut self) -> Result<(), String> {
        for ob in self.open.clone() {
            let r = restore_one(self.sh, &self.ops, &ob).await;
            match r {
                Ok(how) => {
                    self.close_obligation(&ob.id(), &how)
                        .await
                        .map_err(|e| e.message)?;
                    self.counts.0 += 1;
                }
                Err(e) => {
                    self.report_restore_failure(&e).await;
                    return Err(format!("restore of {}: {e}", ob.id()));
                }
            }
        }
        self.hold = None;
        Ok(())
    }

    async fn finish_with_restores(
        &mut self,
        result: ServerResult,
        reason: Option<String>,
        path: &str,
    ) -> UnitOutcome {
        let mut reason = reason;
        if !self.open.is_empty()
            && self.stop() != Stop::Now
            && let Err(e) = self.restore_leftovers().await
        {
            reason = Some(format!("{}; {e}", reason.unwrap_or_default()));
            return self.outcome(ServerResult::Failed, reason, false, path);
        }
        let unblocks = result == ServerResult::Skipped
            && !reason.as_deref().unwrap_or("").starts_with("not touched");
        self.outcome(result, reason, unblocks, path)
    }
}

/// Undoes one obligation on its server, with retries: switch a held replica back (then sync it),
/// or set the culture back. Returns `restored`.
pub async fn restore_one<C: Connector>(
    sh: &Shared<C>,
    ops: &Handle<C::Remote>,
    ob: &Obligation,
) -> Result<String, String> {
    let mut delays = sh.retry.delays(sh.seed, &format!("restore/{}", ob.id()));
    let mut attempt = 1u32;
    loop {
        let r: Result<(), OpError> = async {
            let mut o = ops.lock().await;
            match ob {
                Obligation::ReplicaHold { .. } => {
                    let r = o.set_replica(true, 180).await?;
                    if r.replica {
                        // Inherit the upstream's (repaired) approvals.
                        o.sync_now(3600).await?;
                    }
                    Ok(())
                }
                Obligation::LocaleSwitch { previous, .. } => {
                    o.set_culture(previous).await.map(|_| ())
                }
            }
        }
        .await;
        match r {
            Ok(()) => return Ok("restored".into()),
            Err(e) if e.is_transient() || e.kind() == Some(ErrorKind::ConfigBusy) => {
                match delays.next() {
                    Some(d) => {
                        let _ = sh.events.send(Event::Retrying {
                            host: ob.server().to_string(),
                            action: format!("restore {}", ob.id()),
                            attempt,
                            delay_ms: d.as_millis() as u64,
                            error: e.to_string(),
                        });
                        tokio::time::sleep(d).await;
                        attempt += 1;
                    }
                    None => return Err(e.to_string()),
                }
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
