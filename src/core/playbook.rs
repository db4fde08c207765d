//! The playbook: what to do on a server of each WSUS version, and how to prove it worked.
//! Steps are a closed set of typed actions (docs/playbook.md); every parameter is validated here
//! so that only known-safe values ever reach a remote script.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::diag::{Diagnostic, did_you_mean};
use super::inventory::{Arch, WsusVersion};
use super::yaml::{self, Node, Span};

/// The KB 954960 playbook, embedded in the binary and used when no `-p` is given.
pub const DEFAULT_PLAYBOOK: &str = include_str!("../../playbooks/kb954960.yaml");
/// The file name shown for the embedded playbook.
pub const DEFAULT_PLAYBOOK_NAME: &str = "playbooks/kb954960.yaml (built in)";

/// The ID of the built-in "All Computers" target group (never looked up by its localized name).
pub const ALL_COMPUTERS_GROUP_ID: &str = "A0A08746-4DBE-4a37-9ADF-9E7652C0B421";

/// What to do with a server whose live facts say it is not affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unaffected {
    /// Fix it anyway (the article applies the fix to every server of a hierarchy).
    Fix,
    /// Leave it alone.
    Skip,
}

/// How a path treats replica servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplicaMode {
    /// Leave the replica as it is.
    Keep,
    /// Switch a replica to autonomous before the steps and back to replica after, always, then
    /// sync it from its upstream.
    HoldAutonomous,
}

/// What the locale guard does when the current culture differs from the install language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMismatch {
    /// Switch to the install language for the install and switch back afterwards (a restore
    /// obligation, like a replica hold).
    Switch,
    /// Fail the server with the reason; an admin switches by hand.
    Fail,
}

/// A hotfix package for one architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Path or UNC path of the package, as seen from the server.
    pub path: String,
    /// Expected SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// A typed step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Compare the WSUS install language with the current culture.
    LocaleGuard {
        /// What to do on a mismatch.
        on_mismatch: OnMismatch,
    },
    /// Install a hotfix package (irreversible: it cannot be uninstalled).
    InstallHotfix {
        /// The KB number.
        kb: u32,
        /// Packages by architecture.
        packages: BTreeMap<Arch, Package>,
        /// Installer arguments.
        args: String,
        /// Seconds to wait for the installer.
        timeout: u32,
    },
    /// Check a file's Win32 FileVersion under the WSUS install folder.
    VerifyFileVersion {
        /// Path relative to the WSUS install folder (TargetDir).
        path: String,
        /// The version that means success.
        expect: String,
        /// Versions that mean "installed wrongly".
        wrong: Vec<String>,
    },
    /// Check that IIS-hosted services that were running are running again.
    CheckServices {
        /// Service names.
        services: Vec<String>,
        /// Seconds to wait for them.
        timeout: u32,
    },
    /// Decline the update if it is not declined.
    EnsureDeclined {
        /// The UpdateID.
        update: String,
    },
    /// Approve the update for a group without changing its approvals (NotApproved).
    ApproveUnchanged {
        /// The UpdateID.
        update: String,
        /// The target group ID.
        group: String,
    },
    /// Decline the update.
    Decline {
        /// The UpdateID.
        update: String,
    },
    /// Start a synchronisation and wait for its result.
    Sync {
        /// Seconds to wait.
        timeout: u32,
    },
    /// On each canary client: `wuauclt /detectnow`, read WindowsUpdate.log.
    DetectNow {
        /// Attempts before declaring failure (the article says a second may be needed).
        attempts: u32,
        /// Seconds to wait for each detection.
        timeout: u32,
    },
}

impl Action {
    /// The action's name in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            Action::LocaleGuard { .. } => "locale-guard",
            Action::InstallHotfix { .. } => "install-hotfix",
            Action::VerifyFileVersion { .. } => "verify-file-version",
            Action::CheckServices { .. } => "check-services",
            Action::EnsureDeclined { .. } => "ensure-declined",
            Action::ApproveUnchanged { .. } => "approve-unchanged",
            Action::Decline { .. } => "decline",
            Action::Sync { .. } => "sync",
            Action::DetectNow { .. } => "detect-now",
        }
    }

    /// True for steps that cannot be undone.
    pub fn irreversible(&self) -> bool {
        matches!(self, Action::InstallHotfix { .. })
    }

    /// True for steps that only read state.
    pub fn read_only(&self) -> bool {
        matches!(
            self,
            Action::VerifyFileVersion { .. }
                | Action::CheckServices { .. }
                | Action::DetectNow { .. }
        )
    }
}

/// The steps for one WSUS version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathSpec {
    /// How replicas are treated.
    pub replica: ReplicaMode,
    /// The steps, in order.
    pub steps: Vec<Action>,
    /// When set, servers of this version are not touched, for this reason.
    pub skip: Option<String>,
}

/// A validated playbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Playbook {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// What to do with servers that live facts show as not affected.
    pub unaffected: Unaffected,
    /// The steps per WSUS version.
    pub paths: BTreeMap<WsusVersion, PathSpec>,
    /// The client verification steps, run after each server's fix.
    pub verify: Vec<Action>,
}

impl Playbook {
    /// A canonical text for fingerprints.
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The path for a version, if the playbook has one.
    pub fn path(&self, v: WsusVersion) -> Option<&PathSpec> {
        self.paths.get(&v)
    }
}

/// The result of loading: the playbook if valid, and every diagnostic.
#[derive(Debug)]
pub struct Loaded {
    /// The playbook, when there is no error.
    pub playbook: Option<Playbook>,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and validates a playbook.
pub fn load(text: &str) -> Loaded {
    let mut diags = Vec::new();
    let playbook = match yaml::parse(text) {
        Err(e) => {
            diags.push(Diagnostic::error(
                format!("not valid YAML: {}", e.message),
                e.span,
            ));
            None
        }
        Ok(None) => {
            diags.push(
                Diagnostic::error_in_file("the playbook is empty").with_help(
                    "a playbook needs `playbook:`, `paths:` and `verify:`; see docs/playbook.md",
                ),
            );
            None
        }
        Ok(Some(root)) => Checker {
            diags: &mut diags,
            update_poisoned: false,
        }
        .playbook(&root),
    };
    super::diag::sort(&mut diags);
    let has_errors = diags.iter().any(Diagnostic::is_error);
    Loaded {
        playbook: if has_errors { None } else { playbook },
        diagnostics: diags,
    }
}

const TOP_KEYS: &[&str] = &[
    "playbook",
    "description",
    "update",
    "unaffected",
    "paths",
    "verify",
];
const PATH_KEYS: &[&str] = &["replica", "steps", "skip"];
const ACTIONS: &[&str] = &[
    "locale-guard",
    "install-hotfix",
    "verify-file-version",
    "check-services",
    "ensure-declined",
    "approve-unchanged",
    "decline",
    "sync",
    "detect-now",
];
const GROUPS: &[(&str, &str)] = &[("all-computers", ALL_COMPUTERS_GROUP_ID)];

struct Checker<'d> {
    diags: &'d mut Vec<Diagnostic>,
    /// The top-level `update` was given but invalid (already reported).
    update_poisoned: bool,
}

fn keys_of(node: &Node) -> HashMap<&str, (&Node, &Node)> {
    node.as_map()
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, v)| k.as_scalar_text().map(|t| (t, (k, v))))
        .collect()
}

impl Checker<'_> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn check_keys(&mut self, node: &Node, what: &str, allowed: &[&str]) -> bool {
        let Some(entries) = node.as_map() else {
            self.err(Diagnostic::error(
                format!("{what} must be a mapping, found {}", node.kind()),
                node.span,
            ));
            return false;
        };
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut ok = true;
        for (k, _) in entries {
            let key = k.as_scalar_text().unwrap_or("");
            if let Some(first) = seen.insert(key, k.span) {
                self.err(
                    Diagnostic::error(format!("duplicate key `{key}` in {what}"), k.span)
                        .with_label(format!("first set at line {}", first.start.line)),
                );
                ok = false;
            } else if !allowed.contains(&key) {
                let mut d = Diagnostic::error(format!("unknown key `{key}` in {what}"), k.span);
                d = match did_you_mean(key, allowed.iter().copied()) {
                    Some(s) => d.with_label(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("allowed keys: {}", allowed.join(", "))),
                };
                self.err(d);
                ok = false;
            }
        }
        ok
    }

    fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.as_scalar_text() {
            Some(t) if !t.trim().is_empty() => Some(t.to_string()),
            _ => {
                self.err(Diagnostic::error(
                    format!("{what} must be a non-empty string, found {}", node.kind()),
                    node.span,
                ));
                None
            }
        }
    }

    fn number(
        &mut self,
        node: &Node,
        what: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<u32> {
        match node.as_i64() {
            Some(n) if range.contains(&n) => Some(n as u32),
            _ => {
                self.err(Diagnostic::error(
                    format!(
                        "{what} must be a number from {} to {}, found {}",
                        range.start(),
                        range.end(),
                        node.as_scalar_text()
                            .map(|t| format!("`{t}`"))
                            .unwrap_or_else(|| node.kind().into())
                    ),
                    node.span,
                ));
                None
            }
        }
    }

    fn guid(&mut self, node: &Node, what: &str) -> Option<String> {
        let t = self.text(node, what)?;
        if is_guid(&t) {
            Some(t.to_ascii_uppercase())
        } else {
            self.err(
                Diagnostic::error(format!("{what} `{t}` is not a GUID"), node.span).with_help(
                    "write it as 8-4-4-4-12 hex digits, e.g. D359F493-0AAD-43FA-AF5C-6763326CD98F",
                ),
            );
            None
        }
    }

    fn playbook(&mut self, root: &Node) -> Option<Playbook> {
        if !self.check_keys(root, "the playbook", TOP_KEYS) && root.as_map().is_none() {
            return None;
        }
        let top = keys_of(root);
        let name = match top.get("playbook") {
            Some((_, v)) => self.text(v, "playbook name"),
            None => {
                self.err(
                    Diagnostic::error("the playbook has no name", root.span)
                        .with_help("add `playbook: NAME` at the top"),
                );
                None
            }
        };
        if let Some(n) = &name
            && let Err(m) = super::inventory::check_name(n)
        {
            self.err(Diagnostic::error(
                format!("playbook name `{n}` {m}"),
                top["playbook"].1.span,
            ));
        }
        let description = match top.get("description") {
            Some((_, v)) => self.text(v, "description").unwrap_or_default(),
            None => String::new(),
        };
        let update = match top.get("update") {
            Some((_, v)) => {
                let u = self.guid(v, "update");
                self.update_poisoned = u.is_none();
                u
            }
            None => None,
        };
        let unaffected = match top.get("unaffected") {
            Some((_, v)) => match v.as_scalar_text() {
                Some("fix") => Unaffected::Fix,
                Some("skip") => Unaffected::Skip,
                _ => {
                    self.err(Diagnostic::error(
                        format!(
                            "unaffected must be fix | skip, found {}",
                            v.as_scalar_text()
                                .map(|t| format!("`{t}`"))
                                .unwrap_or_else(|| v.kind().into())
                        ),
                        v.span,
                    ));
                    Unaffected::Fix
                }
            },
            None => Unaffected::Fix,
        };
        let mut paths = BTreeMap::new();
        match top.get("paths") {
            Some((_, pnode)) => {
                if let Some(entries) = pnode.as_map() {
                    let mut seen: HashMap<&str, Span> = HashMap::new();
                    for (k, v) in entries {
                        let key = k.as_scalar_text().unwrap_or("");
                        if let Some(first) = seen.insert(key, k.span) {
                            self.err(
                                Diagnostic::error(format!("duplicate path `{key}`"), k.span)
                                    .with_label(format!("first set at line {}", first.start.line)),
                            );
                            continue;
                        }
                        let Some(version) = WsusVersion::parse(key) else {
                            let known = ["3.0-rtm", "3.0-sp1", "3.0-sp2"];
                            let mut d = Diagnostic::error(
                                format!("unknown WSUS version `{key}` in paths"),
                                k.span,
                            );
                            d = match did_you_mean(key, known) {
                                Some(s) => d.with_label(format!("did you mean `{s}`?")),
                                None => {
                                    d.with_help("paths are keyed by 3.0-rtm, 3.0-sp1 or 3.0-sp2")
                                }
                            };
                            self.err(d);
                            continue;
                        };
                        if let Some(p) = self.path(v, key, update.as_deref()) {
                            paths.insert(version, p);
                        }
                    }
                    if entries.is_empty() {
                        self.err(Diagnostic::error("`paths` is empty", pnode.span));
                    }
                } else {
                    self.err(Diagnostic::error(
                        format!(
                            "`paths` must be a mapping of WSUS versions, found {}",
                            pnode.kind()
                        ),
                        pnode.span,
                    ));
                }
            }
            None => self.err(
                Diagnostic::error("the playbook has no `paths:`", root.span)
                    .with_help("add `paths:` with the steps for 3.0-sp1 and 3.0-rtm servers"),
            ),
        }
        let mut verify = Vec::new();
        if let Some((_, vnode)) = top.get("verify") {
            match vnode.as_seq() {
                Some(items) => {
                    for item in items {
                        if let Some(a) = self.step(item, update.as_deref(), true) {
                            verify.push(a);
                        }
                    }
                }
                None if vnode.is_null() => {}
                None => self.err(Diagnostic::error(
                    format!("`verify` must be a list of steps, found {}", vnode.kind()),
                    vnode.span,
                )),
            }
        }
        Some(Playbook {
            name: name?,
            description,
            unaffected,
            paths,
            verify,
        })
    }

    fn path(&mut self, node: &Node, version: &str, update: Option<&str>) -> Option<PathSpec> {
        let what = format!("path `{version}`");
        if !self.check_keys(node, &what, PATH_KEYS) && node.as_map().is_none() {
            return None;
        }
        let f = keys_of(node);
        let replica = match f.get("replica") {
            Some((_, v)) => match v.as_scalar_text() {
                Some("keep") => ReplicaMode::Keep,
                Some("hold-autonomous") => ReplicaMode::HoldAutonomous,
                other => {
                    let mut d = Diagnostic::error(
                        format!(
                            "replica must be keep | hold-autonomous, found {}",
                            other
                                .map(|t| format!("`{t}`"))
                                .unwrap_or_else(|| v.kind().into())
                        ),
                        v.span,
                    );
                    if let Some(s) =
                        other.and_then(|t| did_you_mean(t, ["keep", "hold-autonomous"]))
                    {
                        d = d.with_label(format!("did you mean `{s}`?"));
                    }
                    self.err(d);
                    return None;
                }
            },
            None => ReplicaMode::Keep,
        };
        let skip = match f.get("skip") {
            Some((_, v)) => Some(self.text(v, "skip reason")?),
            None => None,
        };
        let mut steps = Vec::new();
        let mut ok = true;
        match f.get("steps") {
            Some((_, s)) => match s.as_seq() {
                Some(items) => {
                    for item in items {
                        match self.step(item, update, false) {
                            Some(a) => steps.push((a, item.span)),
                            None => ok = false,
                        }
                    }
                }
                None if s.is_null() => {}
                None => {
                    self.err(Diagnostic::error(
                        format!("steps of {what} must be a list, found {}", s.kind()),
                        s.span,
                    ));
                    ok = false;
                }
            },
            None if skip.is_some() => {}
            None => {
                self.err(
                    Diagnostic::error(format!("{what} has no steps"), node.span)
                        .with_help("add `steps:` or `skip: REASON` to leave such servers alone"),
                );
                ok = false;
            }
        }
        if skip.is_some() && !steps.is_empty() {
            self.err(Diagnostic::error(
                format!("{what} has both `skip` and `steps`"),
                node.span,
            ));
            ok = false;
        }
        // The article's order: decline first, then approve without changes, then decline again.
        let mut declined = false;
        for (a, span) in &steps {
            match a {
                Action::EnsureDeclined { .. } | Action::Decline { .. } => declined = true,
                Action::ApproveUnchanged { .. } if !declined => self.diags.push(
                    Diagnostic::warning("approve-unchanged runs before the update is declined", *span)
                        .with_help("KB 954960's reset is ensure-declined, approve-unchanged, decline; approving an update that is not declined keeps the inconsistent approvals"),
                ),
                _ => {}
            }
        }
        ok.then(|| PathSpec {
            replica,
            steps: steps.into_iter().map(|(a, _)| a).collect(),
            skip,
        })
    }

    fn step(&mut self, node: &Node, update: Option<&str>, in_verify: bool) -> Option<Action> {
        let Some(entries) = node.as_map() else {
            let mut d = Diagnostic::error(
                format!(
                    "a step must be a mapping with an `action:`, found {}",
                    node.kind()
                ),
                node.span,
            );
            if let Some(t) = node.as_scalar_text() {
                d = d.with_help(format!("write `- action: {t}`"));
            }
            self.err(d);
            return None;
        };
        let f: HashMap<&str, (&Node, &Node)> = keys_of(node);
        let Some((_, anode)) = f.get("action") else {
            let span = entries.first().map(|(k, _)| k.span).unwrap_or(node.span);
            let mut d = Diagnostic::error("a step has no `action:`", span);
            if let Some(k) = entries.first().and_then(|(k, _)| k.as_scalar_text())
                && ACTIONS.contains(&k)
            {
                d = d.with_help(format!(
                    "write `- action: {k}` and put its parameters beside it"
                ));
            }
            self.err(d);
            return None;
        };
        let aname = anode.as_scalar_text().unwrap_or("");
        let allowed: &[&str] = match aname {
            "locale-guard" => &["action", "on_mismatch"],
            "install-hotfix" => &["action", "kb", "packages", "args", "timeout"],
            "verify-file-version" => &["action", "path", "expect", "wrong"],
            "check-services" => &["action", "services", "timeout"],
            "ensure-declined" | "decline" => &["action", "update"],
            "approve-unchanged" => &["action", "update", "group"],
            "sync" => &["action", "timeout"],
            "detect-now" => &["action", "attempts", "timeout"],
            _ => {
                let mut d = Diagnostic::error(format!("unknown action `{aname}`"), anode.span);
                d = match did_you_mean(aname, ACTIONS.iter().copied()) {
                    Some(s) => d.with_label(format!("did you mean `{s}`?")),
                    None => d.with_help(format!("actions: {}", ACTIONS.join(", "))),
                };
                self.err(d);
                return None;
            }
        };
        if !self.check_keys(node, &format!("step `{aname}`"), allowed) {
            return None;
        }
        if in_verify != (aname == "detect-now") {
            let msg = if in_verify {
                format!("`{aname}` belongs in a path's steps, not in verify")
            } else {
                format!("`{aname}` belongs in verify, not in a path's steps")
            };
            self.err(Diagnostic::error(msg, anode.span));
            return None;
        }
        let get = |k: &str| f.get(k).map(|(_, v)| *v);
        let timeout = |c: &mut Self, default: u32| -> Option<u32> {
            match get("timeout") {
                Some(n) => c.number(n, "timeout (seconds)", 1..=86_400),
                None => Some(default),
            }
        };
        let update_of = |c: &mut Self| -> Option<String> {
            match get("update") {
                Some(n) => c.guid(n, "update"),
                None => match update {
                    Some(u) => Some(u.to_string()),
                    None if c.update_poisoned => None,
                    None => {
                        c.err(
                            Diagnostic::error(format!("step `{aname}` has no update"), anode.span)
                                .with_help(
                                    "set `update: GUID` on the step or at the top of the playbook",
                                ),
                        );
                        None
                    }
                },
            }
        };
        let action = match aname {
            "locale-guard" => {
                let on_mismatch = match get("on_mismatch") {
                    None => OnMismatch::Switch,
                    Some(n) => match n.as_scalar_text() {
                        Some("switch") => OnMismatch::Switch,
                        Some("fail") => OnMismatch::Fail,
                        _ => {
                            self.err(Diagnostic::error(
                                "on_mismatch must be switch | fail",
                                n.span,
                            ));
                            return None;
                        }
                    },
                };
                Action::LocaleGuard { on_mismatch }
            }
            "install-hotfix" => {
                let kb = match get("kb") {
                    Some(n) => self.number(n, "kb", 1..=99_999_999)?,
                    None => {
                        self.err(Diagnostic::error("install-hotfix has no `kb`", anode.span));
                        return None;
                    }
                };
                let packages = match get("packages") {
                    Some(n) => self.packages(n)?,
                    None => {
                        self.err(Diagnostic::error("install-hotfix has no `packages`", anode.span)
                            .with_help("give x86 and x64 packages: `packages: { x86: { path: ..., sha256: ... }, x64: {...} }`"));
                        return None;
                    }
                };
                let args = match get("args") {
                    Some(n) => {
                        let a = self.text(n, "args")?;
                        if !a
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || " /-:._=".contains(c))
                        {
                            self.err(Diagnostic::error(format!("args `{a}` has characters an installer switch never needs"), n.span)
                                .with_help("installer arguments may hold letters, digits, spaces and / - : . _ ="));
                            return None;
                        }
                        a
                    }
                    None => "/q".to_string(),
                };
                Action::InstallHotfix {
                    kb,
                    packages,
                    args,
                    timeout: timeout(self, 1800)?,
                }
            }
            "verify-file-version" => {
                let path = match get("path") {
                    Some(n) => {
                        let p = self.text(n, "path")?;
                        if !is_safe_path(&p) || p.starts_with('\\') || p.contains(':') {
                            self.err(Diagnostic::error(format!("path `{p}` must be relative to the WSUS install folder"), n.span)
                                .with_help("e.g. WebServices\\ClientWebService\\bin\\Microsoft.UpdateServices.WebServices.Client.dll"));
                            return None;
                        }
                        p
                    }
                    None => {
                        self.err(Diagnostic::error(
                            "verify-file-version has no `path`",
                            anode.span,
                        ));
                        return None;
                    }
                };
                let expect = match get("expect") {
                    Some(n) => self.version(n)?,
                    None => {
                        self.err(Diagnostic::error(
                            "verify-file-version has no `expect`",
                            anode.span,
                        ));
                        return None;
                    }
                };
                let mut wrong = Vec::new();
                if let Some(n) = get("wrong") {
                    match n.as_seq() {
                        Some(items) => {
                            for i in items {
                                wrong.push(self.version(i)?);
                            }
                        }
                        None => wrong.push(self.version(n)?),
                    }
                }
                Action::VerifyFileVersion {
                    path,
                    expect,
                    wrong,
                }
            }
            "check-services" => {
                let mut services = Vec::new();
                match get("services").map(|n| (n, n.as_seq())) {
                    Some((_, Some(items))) if !items.is_empty() => {
                        for i in items {
                            let s = self.text(i, "service name")?;
                            if !(s.len() <= 80
                                && s.chars()
                                    .all(|c| c.is_ascii_alphanumeric() || "_-.$".contains(c)))
                            {
                                self.err(Diagnostic::error(
                                    format!("`{s}` is not a service name"),
                                    i.span,
                                ));
                                return None;
                            }
                            services.push(s);
                        }
                    }
                    Some((n, _)) => {
                        self.err(Diagnostic::error(
                            "services must be a non-empty list of service names",
                            n.span,
                        ));
                        return None;
                    }
                    None => {
                        self.err(Diagnostic::error(
                            "check-services has no `services`",
                            anode.span,
                        ));
                        return None;
                    }
                }
                Action::CheckServices {
                    services,
                    timeout: timeout(self, 120)?,
                }
            }
            "ensure-declined" => Action::EnsureDeclined {
                update: update_of(self)?,
            },
            "decline" => Action::Decline {
                update: update_of(self)?,
            },
            "approve-unchanged" => {
                let update = update_of(self)?;
                let group = match get("group") {
                    None => ALL_COMPUTERS_GROUP_ID.to_string(),
                    Some(n) => {
                        let g = n.as_scalar_text().unwrap_or("");
                        if let Some((_, id)) = GROUPS.iter().find(|(k, _)| *k == g) {
                            id.to_string()
                        } else if is_guid(g) {
                            g.to_string()
                        } else {
                            self.err(
                                Diagnostic::error(
                                    format!("group `{g}` is neither all-computers nor a group ID"),
                                    n.span,
                                )
                                .with_help(
                                    "groups are named by ID, never by their localized display name",
                                ),
                            );
                            return None;
                        }
                    }
                };
                Action::ApproveUnchanged { update, group }
            }
            "sync" => Action::Sync {
                timeout: timeout(self, 3600)?,
            },
            "detect-now" => {
                let attempts = match get("attempts") {
                    Some(n) => self.number(n, "attempts", 1..=5)?,
                    None => 2,
                };
                Action::DetectNow {
                    attempts,
                    timeout: timeout(self, 600)?,
                }
            }
            _ => return None,
        };
        Some(action)
    }

    fn version(&mut self, node: &Node) -> Option<String> {
        let t = self.text(node, "file version")?;
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() == 4
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()))
        {
            Some(t)
        } else {
            self.err(Diagnostic::error(
                format!("`{t}` is not a file version like 3.1.6001.66"),
                node.span,
            ));
            None
        }
    }

    fn packages(&mut self, node: &Node) -> Option<BTreeMap<Arch, Package>> {
        if !self.check_keys(node, "packages", &["x86", "x64"]) {
            return None;
        }
        let mut out = BTreeMap::new();
        for (k, v) in node.as_map().unwrap_or_default() {
            let arch = match k.as_scalar_text() {
                Some("x86") => Arch::X86,
                _ => Arch::X64,
            };
            if !self.check_keys(
                v,
                &format!("package {}", arch.as_str()),
                &["path", "sha256"],
            ) {
                return None;
            }
            let f = keys_of(v);
            let path = match f.get("path") {
                Some((_, p)) => {
                    let t = self.text(p, "package path")?;
                    if !is_safe_path(&t)
                        || !t.to_ascii_lowercase().ends_with(".exe")
                            && !t.to_ascii_lowercase().ends_with(".msp")
                    {
                        self.err(Diagnostic::error(format!("package path `{t}` must be a path to an .exe or .msp without quotes or control characters"), p.span));
                        return None;
                    }
                    t
                }
                None => {
                    self.err(Diagnostic::error(
                        format!("package {} has no `path`", arch.as_str()),
                        v.span,
                    ));
                    return None;
                }
            };
            let sha256 = match f.get("sha256") {
                Some((_, h)) => {
                    let t = self.text(h, "sha256")?;
                    if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
                        t.to_ascii_lowercase()
                    } else {
                        self.err(
                            Diagnostic::error("sha256 must be 64 hex digits", h.span).with_help(
                                "the package's SHA-256 is checked on the server before it runs",
                            ),
                        );
                        return None;
                    }
                }
                None => {
                    self.err(
                        Diagnostic::error(
                            format!("package {} has no `sha256`", arch.as_str()),
                            v.span,
                        )
                        .with_help("the package's SHA-256 is checked on the server before it runs"),
                    );
                    return None;
                }
            };
            out.insert(arch, Package { path, sha256 });
        }
        if out.is_empty() {
            self.err(Diagnostic::error("packages is empty", node.span));
            return None;
        }
        Some(out)
    }
}

/// True for a GUID written 8-4-4-4-12.
pub fn is_guid(t: &str) -> bool {
    let parts: Vec<&str> = t.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    parts.len() == 5
        && parts
            .iter()
            .zip(lens)
            .all(|(p, l)| p.len() == l && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A Windows path with nothing that could escape quoting or hide meaning: printable ASCII
/// without quotes, backticks, `$` or `;`.
pub fn is_safe_path(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 260
        && t.chars()
            .all(|c| c.is_ascii_graphic() && !"'\"`$;|&<>*?{}".contains(c) || c == ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_playbook_is_valid() {
        let loaded = load(DEFAULT_PLAYBOOK);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let pb = loaded.playbook.unwrap();
        assert_eq!(pb.name, "kb954960");
        let sp1 = pb.path(WsusVersion::Sp1).unwrap();
        assert!(
            sp1.steps
                .iter()
                .any(|a| matches!(a, Action::InstallHotfix { kb: 954960, .. }))
        );
        let rtm = pb.path(WsusVersion::Rtm).unwrap();
        assert_eq!(rtm.replica, ReplicaMode::HoldAutonomous);
        let names: Vec<&str> = rtm.steps.iter().map(Action::name).collect();
        assert_eq!(names, ["ensure-declined", "approve-unchanged", "decline"]);
        assert!(matches!(
            pb.verify[0],
            Action::DetectNow { attempts: 2, .. }
        ));
    }

    #[test]
    fn unknown_actions_get_a_suggestion() {
        let text = "playbook: p\npaths:\n  3.0-rtm:\n    steps:\n      - action: declin\n        update: D359F493-0AAD-43FA-AF5C-6763326CD98F\n";
        let d = load(text).diagnostics;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line_col(), Some((5, 17)));
        assert_eq!(d[0].label.as_deref(), Some("did you mean `decline`?"));
    }

    #[test]
    fn approving_before_declining_is_a_warning() {
        let text = "playbook: p\nupdate: D359F493-0AAD-43FA-AF5C-6763326CD98F\npaths:\n  3.0-rtm:\n    steps:\n      - action: approve-unchanged\n      - action: decline\n";
        let loaded = load(text);
        assert!(loaded.playbook.is_some());
        assert_eq!(loaded.diagnostics.len(), 1);
        assert!(!loaded.diagnostics[0].is_error());
    }

    #[test]
    fn guids_and_paths() {
        assert!(is_guid("D359F493-0AAD-43FA-AF5C-6763326CD98F"));
        assert!(!is_guid("D359F493-0AAD-43FA-AF5C-6763326CD98"));
        assert!(is_safe_path("\\\\files\\hotfix\\WSUS-KB954960-x64.exe"));
        assert!(!is_safe_path("C:\\x'; Remove-Item C:\\ -Recurse; '"));
        assert!(!is_safe_path("C:\\$(calc).exe"));
        assert!(!is_safe_path("C:\\a\nb.exe"));
        assert!(!is_safe_path("C:\\caf\u{e9}.exe"));
    }
}
