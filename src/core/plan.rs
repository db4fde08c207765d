//! The plan: for each server, the path it takes, its ordered steps (including the replica switch
//! and its guaranteed restore), its wave and the upstream it waits for; plus a fingerprint that
//! binds the plan to the inventory, the playbook and the tool version. Pure and deterministic:
//! the same input gives the same plan, byte for byte.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::diag::did_you_mean;
use super::hierarchy::Hierarchy;
use super::inventory::{Arch, Inventory, Role, Server, WsusVersion};
use super::playbook::{Action, OnMismatch, Playbook, ReplicaMode, Unaffected};

/// Version of the plan's JSON format (docs/plan-format.md).
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// The tool version that goes into fingerprints.
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// When in a server's run a step happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Enters a temporary state that must be undone (switch to autonomous).
    Hold,
    /// The fix itself.
    Main,
    /// Undoes a temporary state; runs whatever happened before (guaranteed).
    Restore,
    /// Proves the fix on canary clients.
    Verify,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum StepKind {
    /// Switch a replica to autonomous (opens a restore obligation).
    SwitchToAutonomous,
    /// Switch it back to replica (closes the obligation).
    SwitchToReplica,
    /// Synchronise a replica from its upstream after the restore.
    SyncFromUpstream,
    /// Set the culture back to what it was if the locale guard switched it.
    RestoreLocale,
    /// A playbook action.
    #[serde(untagged)]
    Do(Action),
}

impl StepKind {
    /// The step's action name.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::SwitchToAutonomous => "switch-to-autonomous",
            StepKind::SwitchToReplica => "switch-to-replica",
            StepKind::SyncFromUpstream => "sync-from-upstream",
            StepKind::RestoreLocale => "restore-locale",
            StepKind::Do(a) => a.name(),
        }
    }
}

/// One planned step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    /// What it does.
    #[serde(flatten)]
    pub kind: StepKind,
    /// When it happens.
    pub phase: Phase,
    /// A one-line human description.
    pub detail: String,
    /// Cannot be undone.
    pub irreversible: bool,
}

/// The path a server takes: a WSUS version's, or one decided at run time from live facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlanPath {
    /// The version's path.
    Version(WsusVersion),
    /// Decided from the facts gathered before the first step.
    Runtime,
}

impl PlanPath {
    /// The name in plans and journals: `3.0-rtm`, `3.0-sp1`, `3.0-sp2` or `runtime`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanPath::Version(v) => v.as_str(),
            PlanPath::Runtime => "runtime",
        }
    }

    /// Parses the name.
    pub fn parse(s: &str) -> Option<PlanPath> {
        match s {
            "runtime" => Some(PlanPath::Runtime),
            other => WsusVersion::parse(other).map(PlanPath::Version),
        }
    }

    /// The version, once known.
    pub fn version(self) -> Option<WsusVersion> {
        match self {
            PlanPath::Version(v) => Some(v),
            PlanPath::Runtime => None,
        }
    }
}

impl std::fmt::Display for PlanPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<WsusVersion> for PlanPath {
    fn from(v: WsusVersion) -> PlanPath {
        PlanPath::Version(v)
    }
}

impl Serialize for PlanPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PlanPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PlanPath, D::Error> {
        let s = String::deserialize(d)?;
        PlanPath::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown path `{s}` (expected 3.0-rtm, 3.0-sp1, 3.0-sp2 or runtime)"
            ))
        })
    }
}

/// How a server's path was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathSource {
    /// The inventory states the version.
    Inventory,
    /// Live facts gave the version.
    Facts,
    /// Decided at run time from gathered facts.
    Runtime,
}

/// Whether live facts show a server as affected by KB 954960.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Affected {
    /// The symptom or its cause is present.
    Affected,
    /// Nothing points at the problem.
    NotAffected,
    /// The facts could not tell.
    Unknown,
}

/// What live facts say about a server, for `plan --facts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactSummary {
    /// The version found.
    pub version: Option<WsusVersion>,
    /// The architecture found.
    pub arch: Option<Arch>,
    /// Affected or not.
    pub affected: Affected,
    /// The evidence, one line each.
    pub evidence: Vec<String>,
    /// Differences from the inventory (role, upstream, version); a server with any is not touched.
    pub contradictions: Vec<String>,
}

/// One server in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedServer {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The server it syncs from.
    pub upstream: Option<String>,
    /// 1-based wave within this plan.
    pub wave: usize,
    /// The server that must finish first (its upstream, when part of this plan).
    pub waits_for: Option<String>,
    /// The path: `3.0-sp1`, `3.0-rtm`, `3.0-sp2`, or `runtime` when decided from live facts.
    pub path: PlanPath,
    /// Where the path choice came from.
    pub path_source: PathSource,
    /// When set, the server is not touched, for this reason.
    pub skip: Option<String>,
    /// The steps, in order (empty when skipped or decided at run time).
    pub steps: Vec<PlannedStep>,
    /// For `runtime` paths: the steps for each version it may turn out to be.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alternatives: BTreeMap<WsusVersion, Vec<PlannedStep>>,
    /// Canary clients verified after the fix.
    pub clients: Vec<String>,
    /// Live facts, when gathered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<FactSummary>,
}

impl PlannedServer {
    /// True when the server will change something.
    pub fn changes(&self) -> bool {
        self.skip.is_none()
            && (self
                .steps
                .iter()
                .chain(self.alternatives.values().flatten()))
            .any(|s| !matches!(s.phase, Phase::Verify) && !step_read_only(&s.kind))
    }

    /// Steps of the chosen path, or of any alternative when decided at run time.
    pub fn all_steps(&self) -> impl Iterator<Item = &PlannedStep> {
        self.steps
            .iter()
            .chain(self.alternatives.values().flatten())
    }
}

fn step_read_only(k: &StepKind) -> bool {
    matches!(k, StepKind::Do(a) if a.read_only())
}

/// A server outside `--limit` that the plan relies on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precondition {
    /// The server.
    pub name: String,
    /// Why the plan relies on it.
    pub reason: String,
}

/// Counts for the one-line summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Servers in the plan.
    pub servers: usize,
    /// Servers whose path installs the hotfix.
    pub hotfix_installs: usize,
    /// Servers whose path resets approvals.
    pub approval_resets: usize,
    /// Replicas held autonomous during their fix.
    pub replica_holds: usize,
    /// Servers whose path is decided at run time.
    pub decided_at_runtime: usize,
    /// Servers left alone.
    pub skipped: usize,
    /// Waves.
    pub waves: usize,
}

/// The plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version.
    pub format_version: u32,
    /// SHA-256 of the normalized inventory, the playbook and the tool version.
    pub fingerprint: String,
    /// The tool version.
    pub tool_version: String,
    /// The playbook's name.
    pub playbook: String,
    /// `--limit` roots (empty: the whole hierarchy).
    pub limit: Vec<String>,
    /// Servers outside the limit that must already be fixed.
    pub preconditions: Vec<Precondition>,
    /// Server names per wave.
    pub waves: Vec<Vec<String>>,
    /// Servers in wave order, by name within a wave.
    pub servers: Vec<PlannedServer>,
    /// Counts.
    pub summary: Summary,
}

impl Plan {
    /// A plan of no servers: what a journal whose header is lost is restored against (only
    /// its obligations are known).
    pub fn empty() -> Plan {
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            fingerprint: String::new(),
            tool_version: TOOL_VERSION.to_string(),
            playbook: String::new(),
            limit: Vec::new(),
            preconditions: Vec::new(),
            waves: Vec::new(),
            servers: Vec::new(),
            summary: Summary::default(),
        }
    }

    /// A server of the plan by name.
    pub fn server(&self, name: &str) -> Option<&PlannedServer> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// True when the plan changes anything (for `--detailed-exitcode`).
    pub fn has_changes(&self) -> bool {
        self.servers.iter().any(PlannedServer::changes)
    }
}

/// A problem with the plan request (not with the inventory itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// What is wrong.
    pub message: String,
    /// A hint.
    pub help: Option<String>,
}

/// Options of a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Subtree roots to restrict the plan to.
    pub limit: Vec<String>,
    /// Live facts per server.
    pub facts: BTreeMap<String, FactSummary>,
}

/// The fingerprint of a run's inputs.
pub fn fingerprint(inv: &Inventory, pb: &Playbook) -> String {
    let mut h = Sha256::new();
    h.update(b"wsusfix-plan\n");
    h.update(TOOL_VERSION.as_bytes());
    h.update(b"\n");
    h.update(inv.canonical().as_bytes());
    h.update(b"\n");
    h.update(pb.canonical().as_bytes());
    let digest = h.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds the plan.
pub fn plan(
    inv: &Inventory,
    h: &Hierarchy,
    pb: &Playbook,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    // Which servers are in scope.
    let mut limit: Vec<String> = opts.limit.clone();
    limit.sort();
    limit.dedup();
    let in_scope: BTreeSet<&str> = if limit.is_empty() {
        inv.servers().iter().map(|s| s.name.as_str()).collect()
    } else {
        let mut set = BTreeSet::new();
        for root in &limit {
            if !h.contains(root) {
                let names = inv.servers().iter().map(|s| s.name.as_str());
                return Err(PlanError {
                    message: format!("--limit names an unknown server `{root}`"),
                    help: did_you_mean(root, names).map(|m| format!("did you mean `{m}`?")),
                });
            }
            set.extend(h.subtree(root));
        }
        set
    };
    let mut preconditions = Vec::new();
    if !limit.is_empty() {
        let mut seen = BTreeSet::new();
        for root in &limit {
            for (i, anc) in h.ancestors(root).into_iter().enumerate() {
                if in_scope.contains(anc) || !seen.insert(anc) {
                    continue;
                }
                let reason = if i == 0 {
                    format!("upstream of {root}, outside --limit: must already be fixed")
                } else {
                    format!("above {root} in the hierarchy, outside --limit: must already be fixed")
                };
                preconditions.push(Precondition {
                    name: anc.to_string(),
                    reason,
                });
            }
        }
        preconditions.sort_by(|a, b| a.name.cmp(&b.name));
    }

    // Waves within the plan: depth below the plan's own roots.
    let mut wave_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut waves: Vec<Vec<String>> = Vec::new();
    for global in h.waves() {
        for name in global {
            if !in_scope.contains(name) {
                continue;
            }
            let w = match h.upstream_of(name) {
                Some(up) if in_scope.contains(up) => wave_of[up] + 1,
                _ => 0,
            };
            wave_of.insert(name, w);
            if waves.len() <= w {
                waves.resize_with(w + 1, Vec::new);
            }
            waves[w].push(name.to_string());
        }
    }
    for w in &mut waves {
        w.sort();
    }

    let mut servers = Vec::with_capacity(in_scope.len());
    let mut summary = Summary {
        waves: waves.len(),
        ..Summary::default()
    };
    for (w, names) in waves.iter().enumerate() {
        for name in names {
            let Some(s) = inv.get(name) else { continue };
            let waits_for = s.upstream.clone().filter(|u| in_scope.contains(u.as_str()));
            let facts = opts.facts.get(name).cloned();
            let ps = plan_server(s, w + 1, waits_for, pb, facts);
            summary.servers += 1;
            if ps.skip.is_some() {
                summary.skipped += 1;
            } else if ps.path == PlanPath::Runtime {
                summary.decided_at_runtime += 1;
            }
            let steps = &ps.steps;
            if steps
                .iter()
                .any(|st| matches!(st.kind, StepKind::Do(Action::InstallHotfix { .. })))
            {
                summary.hotfix_installs += 1;
            }
            if steps
                .iter()
                .any(|st| matches!(st.kind, StepKind::Do(Action::ApproveUnchanged { .. })))
            {
                summary.approval_resets += 1;
            }
            if steps
                .iter()
                .any(|st| st.kind == StepKind::SwitchToAutonomous)
            {
                summary.replica_holds += 1;
            }
            servers.push(ps);
        }
    }
    Ok(Plan {
        format_version: PLAN_FORMAT_VERSION,
        fingerprint: fingerprint(inv, pb),
        tool_version: TOOL_VERSION.to_string(),
        playbook: pb.name.clone(),
        limit,
        preconditions,
        waves,
        servers,
        summary,
    })
}

fn plan_server(
    s: &Server,
    wave: usize,
    waits_for: Option<String>,
    pb: &Playbook,
    facts: Option<FactSummary>,
) -> PlannedServer {
    let mut ps = PlannedServer {
        name: s.name.clone(),
        role: s.role,
        upstream: s.upstream.clone(),
        wave,
        waits_for,
        path: PlanPath::Runtime,
        path_source: PathSource::Runtime,
        skip: None,
        steps: Vec::new(),
        alternatives: BTreeMap::new(),
        clients: s.clients.iter().map(|c| c.name.clone()).collect(),
        facts: facts.clone(),
    };
    let (version, source) = match (&facts, s.version) {
        (Some(f), _) if f.version.is_some() => (f.version, PathSource::Facts),
        (_, Some(v)) => (Some(v), PathSource::Inventory),
        _ => (None, PathSource::Runtime),
    };
    let arch = facts.as_ref().and_then(|f| f.arch).or(s.arch);
    ps.path_source = source;
    if let Some(f) = &facts {
        if !f.contradictions.is_empty() {
            ps.path = version.map_or(PlanPath::Runtime, PlanPath::Version);
            ps.skip = Some(format!(
                "facts contradict the inventory: {}",
                f.contradictions.join("; ")
            ));
            return ps;
        }
        if f.affected == Affected::NotAffected && pb.unaffected == Unaffected::Skip {
            ps.path = version.map_or(PlanPath::Runtime, PlanPath::Version);
            ps.skip = Some("not affected (the playbook skips unaffected servers)".into());
            return ps;
        }
    }
    match version {
        Some(v) => {
            ps.path = PlanPath::Version(v);
            match pb.path(v) {
                None => {
                    ps.skip = Some(format!("the playbook has no path for WSUS {}", v.display()));
                }
                Some(p) if p.skip.is_some() => ps.skip = p.skip.clone(),
                Some(_) => ps.steps = steps_for(s, v, arch, pb),
            }
        }
        None => {
            for (v, p) in &pb.paths {
                if p.skip.is_none() {
                    ps.alternatives.insert(*v, steps_for(s, *v, arch, pb));
                }
            }
        }
    }
    ps
}

fn steps_for(s: &Server, v: WsusVersion, arch: Option<Arch>, pb: &Playbook) -> Vec<PlannedStep> {
    let Some(path) = pb.path(v) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let hold = s.role == Role::Replica && path.replica == ReplicaMode::HoldAutonomous;
    let upstream = s.upstream.as_deref().unwrap_or("its upstream");
    if hold {
        out.push(PlannedStep {
            kind: StepKind::SwitchToAutonomous,
            phase: Phase::Hold,
            detail: "switch the replica to autonomous (the journal records the obligation to restore it first)".into(),
            irreversible: false,
        });
    }
    let mut locale_switch = false;
    for a in &path.steps {
        if let Action::LocaleGuard {
            on_mismatch: OnMismatch::Switch,
        } = a
        {
            locale_switch = true;
        }
        out.push(PlannedStep {
            detail: describe(a, arch),
            irreversible: a.irreversible(),
            kind: StepKind::Do(a.clone()),
            phase: Phase::Main,
        });
    }
    if locale_switch {
        out.push(PlannedStep {
            kind: StepKind::RestoreLocale,
            phase: Phase::Restore,
            detail: "set the culture back if the locale guard switched it (always)".into(),
            irreversible: false,
        });
    }
    if hold {
        out.push(PlannedStep {
            kind: StepKind::SwitchToReplica,
            phase: Phase::Restore,
            detail: format!(
                "switch back to replica of {upstream} (always, even after a failure or Ctrl-C)"
            ),
            irreversible: false,
        });
        out.push(PlannedStep {
            kind: StepKind::SyncFromUpstream,
            phase: Phase::Restore,
            detail: format!("synchronise from {upstream} to inherit its repaired approvals"),
            irreversible: false,
        });
    }
    if !s.clients.is_empty() {
        for a in &pb.verify {
            out.push(PlannedStep {
                detail: describe_verify(a, s),
                irreversible: false,
                kind: StepKind::Do(a.clone()),
                phase: Phase::Verify,
            });
        }
    }
    out
}

fn short_guid(g: &str) -> &str {
    g.split('-').next().unwrap_or(g)
}

fn describe(a: &Action, arch: Option<Arch>) -> String {
    match a {
        Action::LocaleGuard { on_mismatch } => match on_mismatch {
            OnMismatch::Switch => "check the culture equals the WSUS install language; switch it for the install if not".into(),
            OnMismatch::Fail => "check the culture equals the WSUS install language; stop if not".into(),
        },
        Action::InstallHotfix { kb, packages, args, .. } => {
            let pkg = match arch.and_then(|a| packages.get(&a).map(|p| (a, p))) {
                Some((a, p)) => format!("{} package {}", a.as_str(), file_name(&p.path)),
                None => {
                    let archs: Vec<&str> = packages.keys().map(|a| a.as_str()).collect();
                    format!("{} package chosen from the server's architecture", archs.join(" or "))
                }
            };
            format!("install KB{kb} ({pkg}, SHA-256 checked, {args}); cannot be uninstalled")
        }
        Action::VerifyFileVersion { path, expect, wrong } => {
            let mut d = format!("check {} is {expect}", file_name(path));
            if !wrong.is_empty() {
                d.push_str(&format!(" ({} means installed wrongly)", wrong.join(", ")));
            }
            d
        }
        Action::CheckServices { services, .. } => {
            format!("check {} are running again if they ran before", services.join(", "))
        }
        Action::EnsureDeclined { update } => format!("decline update {} if it is not declined", short_guid(update)),
        Action::ApproveUnchanged { update, .. } => {
            format!("approve update {} for All Computers without changing approvals (NotApproved)", short_guid(update))
        }
        Action::Decline { update } => format!("decline update {} again", short_guid(update)),
        Action::Sync { .. } => "synchronise and wait for the result".into(),
        Action::DetectNow { attempts, .. } => format!("wuauclt /detectnow, up to {attempts} attempts"),
    }
}

fn describe_verify(a: &Action, s: &Server) -> String {
    let clients: Vec<&str> = s.clients.iter().map(|c| c.name.as_str()).collect();
    match a {
        Action::DetectNow { attempts, .. } => format!(
            "on {}: wuauclt /detectnow and read WindowsUpdate.log (up to {attempts} attempts)",
            clients.join(", ")
        ),
        other => describe(other, None),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{inventory, playbook};

    const INV: &str = "\
defaults: { username: u, password: prompt }
servers:
  hq: { role: upstream, address: 10.0.0.1, version: 3.0-sp1, arch: x64, clients: { pc1: { address: 10.0.1.1 } } }
  eu: { role: replica, upstream: hq, address: 10.0.0.2, version: 3.0-rtm }
  eu-b: { role: autonomous, upstream: eu, address: 10.0.0.3, version: 3.0-rtm }
  us: { role: replica, upstream: hq, address: 10.0.0.4 }
";

    fn setup() -> (Inventory, Hierarchy, Playbook) {
        let inv = inventory::load(INV).inventory.unwrap();
        let h = Hierarchy::new(&inv);
        let pb = playbook::load(playbook::DEFAULT_PLAYBOOK).playbook.unwrap();
        (inv, h, pb)
    }

    fn names(steps: &[PlannedStep]) -> Vec<&str> {
        steps.iter().map(|s| s.kind.name()).collect()
    }

    #[test]
    fn replicas_on_the_reset_path_are_held_and_restored() {
        let (inv, h, pb) = setup();
        let p = plan(&inv, &h, &pb, &PlanOptions::default()).unwrap();
        let eu = p.server("eu").unwrap();
        assert_eq!(
            names(&eu.steps),
            [
                "switch-to-autonomous",
                "ensure-declined",
                "approve-unchanged",
                "decline",
                "switch-to-replica",
                "sync-from-upstream"
            ]
        );
        assert_eq!(eu.waits_for.as_deref(), Some("hq"));
        assert_eq!(eu.wave, 2);
        let eub = p.server("eu-b").unwrap();
        assert_eq!(
            names(&eub.steps),
            ["ensure-declined", "approve-unchanged", "decline"]
        );
    }

    #[test]
    fn sp1_takes_the_hotfix_path_and_marks_it_irreversible() {
        let (inv, h, pb) = setup();
        let p = plan(&inv, &h, &pb, &PlanOptions::default()).unwrap();
        let hq = p.server("hq").unwrap();
        assert_eq!(
            names(&hq.steps),
            [
                "locale-guard",
                "install-hotfix",
                "verify-file-version",
                "check-services",
                "restore-locale",
                "detect-now"
            ]
        );
        assert!(hq.steps[1].irreversible);
        assert!(
            hq.steps[1]
                .detail
                .contains("x64 package WSUS3SP1-KB954960-x64.exe")
        );
        assert_eq!(p.summary.hotfix_installs, 1);
        assert_eq!(p.summary.approval_resets, 2);
        assert_eq!(p.summary.replica_holds, 1);
        assert_eq!(p.summary.decided_at_runtime, 1);
    }

    #[test]
    fn unknown_versions_are_decided_at_run_time() {
        let (inv, h, pb) = setup();
        let p = plan(&inv, &h, &pb, &PlanOptions::default()).unwrap();
        let us = p.server("us").unwrap();
        assert_eq!(us.path, PlanPath::Runtime);
        assert!(us.steps.is_empty());
        assert_eq!(
            us.alternatives.keys().collect::<Vec<_>>(),
            [&WsusVersion::Rtm, &WsusVersion::Sp1]
        );
    }

    #[test]
    fn limit_takes_a_subtree_and_lists_its_preconditions() {
        let (inv, h, pb) = setup();
        let opts = PlanOptions {
            limit: vec!["eu".into()],
            ..PlanOptions::default()
        };
        let p = plan(&inv, &h, &pb, &opts).unwrap();
        assert_eq!(
            p.waves,
            vec![vec!["eu".to_string()], vec!["eu-b".to_string()]]
        );
        assert_eq!(p.preconditions.len(), 1);
        assert_eq!(p.preconditions[0].name, "hq");
        assert_eq!(p.server("eu").unwrap().waits_for, None);
        let e = plan(
            &inv,
            &h,
            &pb,
            &PlanOptions {
                limit: vec!["e".into()],
                ..PlanOptions::default()
            },
        )
        .unwrap_err();
        assert!(e.message.contains("unknown server `e`"));
    }

    #[test]
    fn fingerprint_follows_meaning_not_formatting() {
        let (inv, _, pb) = setup();
        let reformatted = INV.replace(
            "defaults: { username: u, password: prompt }",
            "# comment\ndefaults:\n  username: u\n  password: prompt",
        );
        let inv2 = inventory::load(&reformatted).inventory.unwrap();
        assert_eq!(fingerprint(&inv, &pb), fingerprint(&inv2, &pb));
        let changed = inventory::load(&INV.replace("10.0.0.4", "10.0.0.5"))
            .inventory
            .unwrap();
        assert_ne!(fingerprint(&inv, &pb), fingerprint(&changed, &pb));
    }

    #[test]
    fn plans_round_trip_through_json() {
        let (inv, h, pb) = setup();
        let p = plan(&inv, &h, &pb, &PlanOptions::default()).unwrap();
        let text = serde_json::to_string(&p).unwrap();
        let back: Plan = serde_json::from_str(&text).unwrap();
        assert_eq!(p, back);
    }
}
