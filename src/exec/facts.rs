//! Live facts for `plan --facts`: read every server of a plan at once (bounded), judge each one
//! affected, not affected or unknown (`core::assess`), and compare it with the inventory
//! (`unit::contradictions`). Reads only; a server that cannot be read is `unknown` with the
//! error, never a reason to stop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::connect::{Connector, Target};
use super::retry::{RetryPolicy, retrying};
use super::unit::contradictions;
use crate::core::assess::{self, Observed, UpdateView};
use crate::core::inventory::Inventory;
use crate::core::plan::FactSummary;
use crate::wsus::{Facts, OpError, UpdateState, WsusOps};

/// Retries of read-only operations: a few quick ones, so an unreachable host costs seconds.
pub fn read_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        stall_attempts: 1,
        base: Duration::from_millis(200),
        max: Duration::from_secs(2),
    }
}

/// Seed of the retry jitter of read-only commands.
pub const READ_SEED: u64 = 0x5eed;

/// What to ask every server.
#[derive(Debug, Clone)]
pub struct FactsRequest {
    /// The UpdateID whose approvals are read.
    pub update: String,
    /// Start of the SoftwareDistribution.log window.
    pub since: DateTime<Utc>,
    /// The client web service DLL version that means the hotfix is installed.
    pub fixed_dll: String,
    /// Servers read at once.
    pub parallel: usize,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Replicas an interrupted run still holds autonomous, with that run's ID: not a
    /// contradiction of the inventory, but something to restore.
    pub held: BTreeMap<String, String>,
}

/// Reads the facts of one host.
pub async fn read_facts<C: Connector>(
    connector: &C,
    target: &Target,
    req: &FactsRequest,
) -> Result<Facts, String> {
    let remote = connector.connect(target)?;
    let mut ops = WsusOps::new(remote);
    let r: Result<Facts, OpError> = retrying!(
        req.retry,
        READ_SEED,
        format!("{}/facts", target.name),
        ops.facts(&req.update, Some(req.since), &[] as &[&str])
    );
    C::close(ops.remote_mut()).await;
    r.map_err(|e| e.to_string())
}

/// What `core::assess` judges, from the facts.
pub fn observed(f: &Facts, update: &str) -> Observed {
    Observed {
        version: f.version,
        version_string: f.version_string.clone(),
        dll_version: f.dll_version.map(|v| v.to_string()),
        update_id: update.to_string(),
        update: match &f.update {
            UpdateState::NotSynced => UpdateView::NotSynced,
            u @ UpdateState::Synced { declined, .. } => UpdateView::Synced {
                declined: *declined,
                duplicated_groups: u
                    .duplicated_groups()
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            },
        },
        softdist_records: f.softdist_records.clone(),
    }
}

/// The summary of one server: its verdict, evidence and contradictions with the inventory.
pub fn summarize(
    inv: &Inventory,
    name: &str,
    facts: Result<&Facts, &str>,
    req: &FactsRequest,
) -> FactSummary {
    match facts {
        Err(e) => {
            let a = assess::unreadable(e);
            FactSummary {
                version: None,
                arch: None,
                affected: a.affected,
                evidence: a.evidence,
                contradictions: Vec::new(),
            }
        }
        Ok(f) => {
            let a = assess::assess(&observed(f, &req.update), req.since, &req.fixed_dll);
            let found = match inv.get(name) {
                Some(s) => {
                    let upstream = s
                        .upstream
                        .as_ref()
                        .and_then(|u| inv.get(u))
                        .map(|u| (u.name.clone(), u.address.clone()));
                    contradictions(s, upstream.as_ref(), f, req.held.contains_key(name))
                }
                None => Vec::new(),
            };
            let mut evidence = a.evidence;
            if let Some(run) = req.held.get(name) {
                evidence.push(format!(
                    "held autonomous by the interrupted run {run}: `wsusfix restore {run}` switches it back (apply does so first)"
                ));
            }
            FactSummary {
                version: f.version,
                arch: Some(f.arch),
                affected: a.affected,
                evidence,
                contradictions: found,
            }
        }
    }
}

/// Reads and judges `names`, at most `req.parallel` at once.
pub async fn gather<C: Connector>(
    inv: &Inventory,
    names: &[String],
    connector: Arc<C>,
    req: &FactsRequest,
) -> BTreeMap<String, FactSummary> {
    let targets = Target::all(inv);
    let permits = Arc::new(Semaphore::new(req.parallel.max(1)));
    let mut tasks = JoinSet::new();
    for name in names {
        let Some(target) = targets.get(name).cloned() else {
            continue;
        };
        let connector = connector.clone();
        let permits = permits.clone();
        let req = req.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let r = read_facts(connector.as_ref(), &target, &req).await;
            (target.name, r)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (name, r) = match joined {
            Ok(x) => x,
            Err(e) => {
                tracing::error!("a facts task ended abnormally: {e}");
                continue;
            }
        };
        let summary = summarize(inv, &name, r.as_ref().map_err(String::as_str), req);
        out.insert(name, summary);
    }
    // A task that died leaves its server unknown rather than missing.
    for name in names {
        out.entry(name.clone()).or_insert_with(|| {
            summarize(
                inv,
                name,
                Err("the facts could not be gathered (internal error)"),
                req,
            )
        });
    }
    out
}

/// What live facts say of a replica of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaMode {
    /// In replica mode, as the inventory says.
    Replica,
    /// Autonomous: held by some run (or switched by hand) and not switched back.
    Autonomous,
    /// Its facts could not be read.
    Unknown(String),
}

/// Reads the mode of every server the inventory calls a replica, at most `parallel` at once.
pub async fn replica_modes<C: Connector>(
    inv: &Inventory,
    connector: Arc<C>,
    update: &str,
    parallel: usize,
    retry: RetryPolicy,
) -> BTreeMap<String, ReplicaMode> {
    let targets = Target::all(inv);
    let permits = Arc::new(Semaphore::new(parallel.max(1)));
    let req = FactsRequest {
        update: update.to_string(),
        since: Utc::now(),
        fixed_dll: String::new(),
        parallel,
        retry,
        held: BTreeMap::new(),
    };
    let mut tasks = JoinSet::new();
    for s in inv.servers() {
        if s.role != crate::core::inventory::Role::Replica {
            continue;
        }
        let Some(target) = targets.get(&s.name).cloned() else {
            continue;
        };
        let (connector, permits, req) = (connector.clone(), permits.clone(), req.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let mode = match read_facts(connector.as_ref(), &target, &req).await {
                Ok(f) if f.replica => ReplicaMode::Replica,
                Ok(_) => ReplicaMode::Autonomous,
                Err(e) => ReplicaMode::Unknown(e),
            };
            (target.name, mode)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((name, mode)) = joined {
            out.insert(name, mode);
        }
    }
    out
}
