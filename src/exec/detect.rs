//! The canary clients' detection for `wsusfix verify`: on each client, `wuauclt /detectnow`, the
//! WindowsUpdate.log lines it wrote, the verdict of `core::logs::detection`, and one more try
//! when a detection fails (KB 954960: the first detection after the repair may fail and the next
//! succeed). Clients are checked at once (bounded); one that cannot be reached is a failure with
//! the reason.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::connect::{Connector, Target};
use super::retry::RetryPolicy;
use super::retry::retrying;
use super::unit::describe_detection;
use crate::core::logs::detection::{DetectionOutcome, summarize_detection};
use crate::wsus::WsusOps;

/// How each client is checked.
#[derive(Debug, Clone)]
pub struct DetectRequest {
    /// Detections before a client counts as failed (the playbook's `detect-now` attempts).
    pub attempts: u32,
    /// Seconds to wait for each detection.
    pub timeout: u32,
    /// Clients checked at once.
    pub parallel: usize,
    /// Retries of transient transport failures within one detection.
    pub retry: RetryPolicy,
}

/// A client to check.
#[derive(Debug, Clone)]
pub struct Canary {
    /// How to reach it.
    pub target: Target,
    /// The server it reports to.
    pub server: String,
}

/// What became of one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientCheck {
    /// The client.
    pub client: String,
    /// The server it reports to.
    pub server: String,
    /// Its last detection found updates.
    pub succeeded: bool,
    /// Detections that ran (a client that could not be asked ran none, or fewer).
    pub attempts: u32,
    /// Detections allowed.
    pub max_attempts: u32,
    /// The outcome in words.
    pub outcome: String,
    /// The verdict on the last detection's log lines (none when the client was not reached).
    pub detection: Option<DetectionOutcome>,
    /// The WindowsUpdate.log lines the verdict rests on.
    pub evidence: Vec<String>,
    /// Why the client could not be asked, when it could not.
    pub error: Option<String>,
}

/// Checks one client.
pub async fn check<C: Connector>(
    connector: &C,
    canary: &Canary,
    req: &DetectRequest,
) -> ClientCheck {
    let name = canary.target.name.clone();
    let max = req.attempts.max(1);
    let mut out = ClientCheck {
        client: name.clone(),
        server: canary.server.clone(),
        succeeded: false,
        attempts: 0,
        max_attempts: max,
        outcome: String::new(),
        detection: None,
        evidence: Vec::new(),
        error: None,
    };
    let remote = match connector.connect(&canary.target) {
        Ok(r) => r,
        Err(e) => {
            out.outcome = format!("not reached: {e}");
            out.error = Some(e);
            return out;
        }
    };
    let mut ops = WsusOps::new(remote);
    for attempt in 1..=max {
        out.attempts = attempt;
        let r = retrying!(
            req.retry,
            crate::exec::facts::READ_SEED,
            format!("{name}/detect-now"),
            ops.detect_now(req.timeout)
        );
        match r {
            Ok(d) => {
                let s = summarize_detection(&d.lines.join("\r\n"));
                out.evidence = s
                    .evidence
                    .iter()
                    .filter_map(|n| d.lines.get(n.saturating_sub(1)))
                    .map(|l| l.split('\t').collect::<Vec<_>>().join(" "))
                    .collect();
                out.outcome = describe_detection(&s.outcome);
                out.succeeded = matches!(s.outcome, DetectionOutcome::Succeeded { .. });
                out.detection = Some(s.outcome);
                out.error = None;
                if out.succeeded {
                    break;
                }
            }
            Err(e) => {
                // Another detection cannot help a client that cannot be asked; `attempts`
                // counts the detections that ran.
                out.attempts = attempt - 1;
                let e = e.to_string();
                out.outcome = format!("not reached: {e}");
                out.detection = None;
                out.evidence.clear();
                out.error = Some(e);
                break;
            }
        }
    }
    C::close(ops.remote_mut()).await;
    out
}

/// Checks every client, at most `req.parallel` at once; results in the order given.
pub async fn check_all<C: Connector>(
    connector: Arc<C>,
    canaries: Vec<Canary>,
    req: &DetectRequest,
) -> Vec<ClientCheck> {
    let permits = Arc::new(Semaphore::new(req.parallel.max(1)));
    let mut tasks = JoinSet::new();
    for (i, canary) in canaries.iter().cloned().enumerate() {
        let connector = connector.clone();
        let permits = permits.clone();
        let req = req.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (i, check(connector.as_ref(), &canary, &req).await)
        });
    }
    let mut results: Vec<Option<ClientCheck>> = vec![None; canaries.len()];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, c)) => results[i] = Some(c),
            Err(e) => tracing::error!("a verify task ended abnormally: {e}"),
        }
    }
    results
        .into_iter()
        .zip(canaries)
        .map(|(r, c)| {
            r.unwrap_or_else(|| ClientCheck {
                client: c.target.name.clone(),
                server: c.server.clone(),
                succeeded: false,
                attempts: 0,
                max_attempts: req.attempts.max(1),
                outcome: "not checked (internal error)".into(),
                detection: None,
                evidence: Vec::new(),
                error: Some("internal error".into()),
            })
        })
        .collect()
}
