//! The inventory: which WSUS servers exist, how they sync from each other, how to reach them, and
//! which canary client computers prove the fix. Parsed from YAML text (docs/inventory.md) and
//! validated all at once: every problem gets a diagnostic with line:col, none stops the others.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::diag::{Diagnostic, did_you_mean};
use super::hierarchy;
use super::yaml::{self, Node, Span};

/// What a server is in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A top-level server that syncs from Microsoft Update.
    Upstream,
    /// A downstream server that mirrors its upstream's approvals (read-only approvals).
    Replica,
    /// A downstream server that syncs updates from its upstream but keeps its own approvals.
    Autonomous,
}

impl Role {
    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Upstream => "upstream",
            Role::Replica => "replica",
            Role::Autonomous => "autonomous",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The WSUS release a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum WsusVersion {
    /// WSUS 3.0 RTM (3.0.6000.x): takes the approval-reset workaround.
    #[serde(rename = "3.0-rtm")]
    Rtm,
    /// WSUS 3.0 SP1 (3.1.6001.x): takes hotfix 954960.
    #[serde(rename = "3.0-sp1")]
    Sp1,
    /// WSUS 3.0 SP2 or later (3.2.7600.x): already contains the fix.
    #[serde(rename = "3.0-sp2")]
    Sp2,
}

impl WsusVersion {
    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            WsusVersion::Rtm => "3.0-rtm",
            WsusVersion::Sp1 => "3.0-sp1",
            WsusVersion::Sp2 => "3.0-sp2",
        }
    }

    /// Parses the YAML name.
    pub fn parse(s: &str) -> Option<WsusVersion> {
        match s {
            "3.0-rtm" => Some(WsusVersion::Rtm),
            "3.0-sp1" => Some(WsusVersion::Sp1),
            "3.0-sp2" => Some(WsusVersion::Sp2),
            _ => None,
        }
    }

    /// Classifies a WSUS `VersionString` (`3.0.6000.273`, `3.1.6001.65`, `3.2.7600.226`).
    pub fn from_version_string(v: &str) -> Option<WsusVersion> {
        let mut parts = v.trim().split('.');
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next()?.parse().ok()?;
        match (major, minor) {
            (3, 0) => Some(WsusVersion::Rtm),
            (3, 1) => Some(WsusVersion::Sp1),
            (3, m) if m >= 2 => Some(WsusVersion::Sp2),
            _ => None,
        }
    }

    /// Human name: "3.0 RTM".
    pub fn display(self) -> &'static str {
        match self {
            WsusVersion::Rtm => "3.0 RTM",
            WsusVersion::Sp1 => "3.0 SP1",
            WsusVersion::Sp2 => "3.0 SP2",
        }
    }
}

/// Processor architecture of a server (chooses the hotfix package).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// 32-bit.
    X86,
    /// 64-bit.
    X64,
}

impl Arch {
    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86 => "x86",
            Arch::X64 => "x64",
        }
    }
}

/// WinRM transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// HTTP (5985) with NTLM message encryption.
    Http,
    /// HTTPS (5986).
    Https,
}

impl Scheme {
    /// The WinRM 2.0 default port.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 5985,
            Scheme::Https => 5986,
        }
    }
}

/// How `ca_file` is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CaMode {
    /// The CA file's certificates are the only roots (`ca_mode: only`, the default).
    #[default]
    Only,
    /// They are trusted in addition to the system's roots (`ca_mode: add`).
    Add,
}

impl CaMode {
    fn is_default(&self) -> bool {
        *self == CaMode::Only
    }
}

/// The default cap on one command's output, in MiB (`winrm: { max_output_mb: N }`).
pub const DEFAULT_MAX_OUTPUT_MB: u32 = 16;

fn is_default_max_output(mb: &u32) -> bool {
    *mb == DEFAULT_MAX_OUTPUT_MB
}

/// WinRM authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// SPNEGO, as Windows advertises it: Kerberos when the user is `user@REALM` and a KDC is
    /// known for the realm (here or in `KRB5_CONFIG`), NTLM otherwise.
    Negotiate,
    /// Kerberos only, never NTLM (hardened domains turn NTLM off).
    Kerberos,
    /// Raw NTLMSSP.
    Ntlm,
    /// Basic (HTTPS only; local accounts only on Windows).
    Basic,
}

/// Where a password comes from. The inventory never holds the password itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase", tag = "from", content = "name")]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file whose first line is the password (relative to the inventory's folder).
    File(String),
    /// Asked on the terminal.
    Prompt,
}

impl AuthKind {
    /// The name used in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Negotiate => "negotiate",
            AuthKind::Kerberos => "kerberos",
            AuthKind::Ntlm => "ntlm",
            AuthKind::Basic => "basic",
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{p}"),
            SecretRef::Prompt => f.write_str("prompt"),
        }
    }
}

/// An account and where its password comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Credentials {
    /// `DOMAIN\user`, `user@realm` or a local `user`.
    pub username: String,
    /// The password reference.
    pub password: SecretRef,
}

/// How to reach a host over WinRM, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct WinrmTarget {
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// TCP port.
    pub port: u16,
    /// Authentication.
    pub auth: AuthKind,
    /// A PEM file of CA certificates to trust for HTTPS.
    pub ca_file: Option<String>,
    /// Whether `ca_file` replaces the system's roots or adds to them.
    #[serde(skip_serializing_if = "CaMode::is_default")]
    pub ca_mode: CaMode,
    /// HTTPS without certificate verification (explicit, per host).
    pub insecure_skip_tls_verify: bool,
    /// WS-Man OperationTimeout in seconds (Receive long-poll).
    pub operation_timeout: u32,
    /// The most output (stdout and stderr) one command may produce, in MiB.
    #[serde(skip_serializing_if = "is_default_max_output")]
    pub max_output_mb: u32,
    /// The service class of the host's service principal (`HTTP` when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spn_service: Option<String>,
    /// The KDC (`HOST:PORT`) of the account's realm, from `defaults.kerberos`, for Kerberos and
    /// Negotiate; unset: the realm's entry in `KRB5_CONFIG` at run time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kdc: Option<String>,
}

/// The WSUS web site of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct WsusSite {
    /// 80 (default web site), 8530 (custom web site), 443 or 8531 with SSL.
    pub port: u16,
    /// Whether the site requires SSL.
    pub ssl: bool,
}

/// A client computer whose detection proves its server's fix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ClientComputer {
    /// Its name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// The DNS name in its service principal (`HTTP/<host>`), when it is not the address.
    #[serde(rename = "host", skip_serializing_if = "Option::is_none")]
    pub spn_host: Option<String>,
    /// How to reach it.
    pub winrm: WinrmTarget,
    /// The account to use on it.
    pub credentials: Credentials,
    /// Where its name is written.
    #[serde(skip)]
    pub span: Span,
    /// Where its address is written.
    #[serde(skip)]
    pub address_span: Span,
}

/// One WSUS server.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Server {
    /// Its name in the inventory.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The server it syncs from (replica and autonomous servers).
    pub upstream: Option<String>,
    /// IP address or DNS name: what is dialled.
    pub address: String,
    /// The DNS name in its service principal (`HTTP/<host>`), when it is not the address.
    #[serde(rename = "host", skip_serializing_if = "Option::is_none")]
    pub spn_host: Option<String>,
    /// How to reach it over WinRM.
    pub winrm: WinrmTarget,
    /// Its WSUS web site.
    pub wsus: WsusSite,
    /// The WSUS release it is expected to run, if stated.
    pub version: Option<WsusVersion>,
    /// Its architecture, if stated.
    pub arch: Option<Arch>,
    /// The account to use.
    pub credentials: Credentials,
    /// Canary client computers.
    pub clients: Vec<ClientComputer>,
    /// Where its name is written (for later diagnostics).
    #[serde(skip)]
    pub span: Span,
    /// Where its address is written.
    #[serde(skip)]
    pub address_span: Span,
}

/// A validated inventory. Servers are sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    servers: Vec<Server>,
    index: HashMap<String, usize>,
}

impl Inventory {
    /// Builds an inventory from servers already validated (used by generators and tests).
    pub fn from_servers(mut servers: Vec<Server>) -> Inventory {
        servers.sort_by(|a, b| a.name.cmp(&b.name));
        let index = servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Inventory { servers, index }
    }

    /// All servers, by name.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// A server by name.
    pub fn get(&self, name: &str) -> Option<&Server> {
        self.index.get(name).map(|&i| &self.servers[i])
    }

    /// Every client computer, with the server it belongs to.
    pub fn clients(&self) -> impl Iterator<Item = (&Server, &ClientComputer)> {
        self.servers
            .iter()
            .flat_map(|s| s.clients.iter().map(move |c| (s, c)))
    }

    /// A canonical text of everything that affects what a run does, for fingerprints.
    pub fn canonical(&self) -> String {
        // serde_json of sorted servers is stable: fields in declaration order, servers by name.
        serde_json::to_string(&self.servers).unwrap_or_default()
    }
}

/// The result of loading: the inventory if it is valid, and every diagnostic (warnings too).
#[derive(Debug)]
pub struct Loaded {
    /// The inventory, when there is no error.
    pub inventory: Option<Inventory>,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and validates an inventory.
pub fn load(text: &str) -> Loaded {
    let mut diags = Vec::new();
    let inventory = match yaml::parse(text) {
        Err(e) => {
            diags.push(
                Diagnostic::error(format!("not valid YAML: {}", e.message), e.span)
                    .with_help("the inventory is a YAML file; see docs/inventory.md"),
            );
            None
        }
        Ok(None) => {
            diags.push(
                Diagnostic::error_in_file("the inventory is empty")
                    .with_help("an inventory needs a `servers:` mapping; see docs/inventory.md"),
            );
            None
        }
        Ok(Some(root)) => Validator::new(&mut diags).inventory(&root),
    };
    super::diag::sort(&mut diags);
    let has_errors = diags.iter().any(Diagnostic::is_error);
    Loaded {
        inventory: if has_errors { None } else { inventory },
        diagnostics: diags,
    }
}

const TOP_KEYS: &[&str] = &["defaults", "servers"];
const DEFAULT_KEYS: &[&str] = &[
    "username", "password", "winrm", "wsus", "clients", "kerberos",
];
const CLIENT_DEFAULT_KEYS: &[&str] = &["username", "password", "winrm"];
const SERVER_KEYS: &[&str] = &[
    "role", "upstream", "address", "host", "winrm", "wsus", "version", "arch", "username",
    "password", "clients",
];
const CLIENT_KEYS: &[&str] = &["address", "host", "winrm", "username", "password"];
const WINRM_KEYS: &[&str] = &[
    "scheme",
    "port",
    "auth",
    "ca_file",
    "ca_mode",
    "insecure_skip_tls_verify",
    "operation_timeout",
    "max_output_mb",
    "spn_service",
];
const KERBEROS_KEYS: &[&str] = &["kdc", "realms"];
const REALM_KEYS: &[&str] = &["kdc"];

/// `defaults.kerberos`: where the KDCs are.
#[derive(Debug, Clone, Default)]
struct KerberosDefaults {
    /// The KDC of any realm not listed in `realms`.
    kdc: Option<String>,
    /// KDCs by realm (upper-cased).
    realms: BTreeMap<String, String>,
}

impl KerberosDefaults {
    /// The KDC of `realm`, if the inventory names one.
    fn kdc_of(&self, realm: &str) -> Option<String> {
        self.realms
            .get(&realm.to_ascii_uppercase())
            .or(self.kdc.as_ref())
            .cloned()
    }
}

/// The realm of a user principal name (`user@REALM`): its suffix in capitals. `None` for a
/// down-level (`DOMAIN\user`) or bare name.
pub fn upn_realm(username: &str) -> Option<String> {
    let (user, suffix) = username.trim().rsplit_once('@')?;
    if user.is_empty() || suffix.is_empty() || user.contains('\\') || suffix.contains('\\') {
        return None;
    }
    Some(suffix.to_ascii_uppercase())
}

/// Checks a KDC address: `HOST` or `HOST:PORT`, an IPv6 address in brackets with a port.
pub fn check_kdc(text: &str) -> Result<(), String> {
    let t = text.trim();
    let (host, port) = if let Some(v6) = t.strip_prefix('[') {
        match v6.split_once("]:") {
            Some((h, p)) => (h, Some(p)),
            None => (v6.strip_suffix(']').unwrap_or(v6), None),
        }
    } else if t.matches(':').count() > 1 {
        (t, None)
    } else {
        match t.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (t, None),
        }
    };
    if let Some(p) = port
        && !p.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(format!(
            "`{text}` has no valid port (write HOST:PORT, e.g. dc01.corp.example:88)"
        ));
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    check_address(host).map_err(|(msg, _)| format!("KDC {msg}"))
}

/// Checks a service class (`HTTP`, `WSMAN`).
fn check_spn_service(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}
const WSUS_KEYS: &[&str] = &["port", "ssl"];

/// Partially specified WinRM settings, before defaults are applied.
#[derive(Debug, Clone, Default)]
struct WinrmPartial {
    scheme: Option<Scheme>,
    port: Option<u16>,
    auth: Option<AuthKind>,
    ca_file: Option<String>,
    ca_mode: Option<(CaMode, Span)>,
    insecure: Option<(bool, Span)>,
    operation_timeout: Option<u32>,
    max_output_mb: Option<u32>,
    spn_service: Option<String>,
    /// Where the block is, for errors found when combining.
    span: Option<Span>,
    port_span: Option<Span>,
    auth_span: Option<Span>,
    ca_span: Option<Span>,
}

#[derive(Debug, Clone, Default)]
struct CredPartial {
    username: Option<String>,
    /// Where the username is written.
    username_span: Option<Span>,
    password: Option<SecretRef>,
    /// A value was given but was invalid (already reported): do not report it missing too.
    poisoned: bool,
}

#[derive(Debug, Clone, Default)]
struct Defaults {
    creds: CredPartial,
    winrm: WinrmPartial,
    wsus: Option<WsusSite>,
    client_creds: CredPartial,
    client_winrm: WinrmPartial,
    kerberos: KerberosDefaults,
}

struct Validator<'d> {
    diags: &'d mut Vec<Diagnostic>,
    /// Spans of user names already reported as unusable for Kerberos (a default is reported
    /// once, not once per host).
    reported_users: std::collections::HashSet<Span>,
}

/// A mapping being read: remembers which keys were looked at to report unknown ones.
struct Fields<'n> {
    entries: &'n [(Node, Node)],
    /// Known keys suggested for unknown ones (a typo of a required key is reported once).
    suggested: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    fn suggested(&self, key: &str) -> bool {
        self.suggested.contains(&key)
    }

    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_scalar_text() == Some(key))
            .map(|(_, v)| v)
    }
}

impl<'d> Validator<'d> {
    fn new(diags: &'d mut Vec<Diagnostic>) -> Self {
        Validator {
            diags,
            reported_users: std::collections::HashSet::new(),
        }
    }

    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Opens a mapping, reporting unknown and duplicate keys. `what` names it in messages.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&'static str],
    ) -> Option<Fields<'n>> {
        let Some(entries) = node.as_map() else {
            self.err(Diagnostic::error(
                format!("{what} must be a mapping, found {}", node.kind()),
                node.span,
            ));
            return None;
        };
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut suggested = Vec::new();
        for (k, _) in entries {
            let Some(key) = k.as_scalar_text() else {
                self.err(Diagnostic::error(
                    format!("keys in {what} must be plain names, found {}", k.kind()),
                    k.span,
                ));
                continue;
            };
            if let Some(first) = seen.get(key) {
                self.err(
                    Diagnostic::error(format!("duplicate key `{key}` in {what}"), k.span)
                        .with_label(format!("first set at line {}", first.start.line)),
                );
                continue;
            }
            seen.insert(key, k.span);
            if !allowed.contains(&key) {
                let mut d = Diagnostic::error(format!("unknown key `{key}` in {what}"), k.span);
                if let Some(s) = did_you_mean(key, allowed.iter().copied()) {
                    d = d.with_label(format!("did you mean `{s}`?"));
                    suggested.push(s);
                } else {
                    d = d.with_help(format!("allowed keys: {}", allowed.join(", ")));
                }
                self.err(d);
            }
        }
        Some(Fields { entries, suggested })
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s.to_string()),
            Some(_) => {
                self.err(Diagnostic::error(format!("{what} is empty"), node.span));
                None
            }
            None => {
                self.err(Diagnostic::error(
                    format!("{what} must be a string, found {}", node.kind()),
                    node.span,
                ));
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, node: &Node, what: &str, options: &[(&str, T)]) -> Option<T> {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let Some(text) = node.as_scalar_text() else {
            self.err(Diagnostic::error(
                format!(
                    "{what} must be one of {}, found {}",
                    names.join(" | "),
                    node.kind()
                ),
                node.span,
            ));
            return None;
        };
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == text) {
            return Some(*v);
        }
        let mut d = Diagnostic::error(
            format!(
                "{what} must be one of {}, found `{text}`",
                names.join(" | ")
            ),
            node.span,
        );
        if let Some(s) = did_you_mean(text, names.iter().copied()) {
            d = d.with_label(format!("did you mean `{s}`?"));
        }
        self.err(d);
        None
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        let b = node.as_bool();
        if b.is_none() {
            self.err(Diagnostic::error(
                format!("{what} must be true or false, found {}", node.kind()),
                node.span,
            ));
        }
        b
    }

    fn port(&mut self, node: &Node, what: &str) -> Option<u16> {
        match node.as_i64() {
            Some(p) if (1..=65535).contains(&p) => Some(p as u16),
            Some(p) => {
                self.err(Diagnostic::error(
                    format!("{what} must be between 1 and 65535, found {p}"),
                    node.span,
                ));
                None
            }
            None if node.kind() == "a number" => {
                self.err(Diagnostic::error(
                    format!(
                        "{what} must be a whole number from 1 to 65535, found {}",
                        node.as_scalar_text().unwrap_or("a fraction")
                    ),
                    node.span,
                ));
                None
            }
            None => {
                self.err(Diagnostic::error(
                    format!(
                        "{what} must be a number from 1 to 65535, found {}",
                        node.kind()
                    ),
                    node.span,
                ));
                None
            }
        }
    }

    fn secret_ref(&mut self, node: &Node, what: &str) -> Option<SecretRef> {
        let text = match node.as_scalar_text() {
            Some(t) => t,
            None => {
                self.err(Diagnostic::error(
                    format!(
                        "{what} must be a reference like env:VAR, found {}",
                        node.kind()
                    ),
                    node.span,
                ));
                return None;
            }
        };
        if text == "prompt" {
            return Some(SecretRef::Prompt);
        }
        if let Some(var) = text.strip_prefix("env:") {
            let valid = !var.is_empty()
                && !var.starts_with(|c: char| c.is_ascii_digit())
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if valid {
                return Some(SecretRef::Env(var.to_string()));
            }
            self.err(Diagnostic::error(
                format!("`{text}` does not name an environment variable"),
                node.span,
            ).with_help("write env:NAME with letters, digits and underscores, e.g. env:WSUSFIX_PASSWORD"));
            return None;
        }
        if let Some(path) = text.strip_prefix("file:") {
            if !path.trim().is_empty() {
                return Some(SecretRef::File(path.to_string()));
            }
            self.err(Diagnostic::error("`file:` needs a path", node.span));
            return None;
        }
        let mut d = Diagnostic::error(format!("{what} holds a literal password"), node.span)
            .with_label("passwords are never written in the inventory")
            .with_help(
                "an inventory is shared and committed; refer to the password instead: \
             env:VAR (an environment variable), file:PATH (first line of a file) or prompt",
            );
        if let Some(var) = text
            .strip_prefix("${")
            .and_then(|v| v.strip_suffix('}'))
            .or_else(|| text.strip_prefix('$'))
        {
            d = d.with_help(format!("to read the environment variable, write env:{var}"));
        }
        self.err(d);
        None
    }

    fn credentials_into(&mut self, f: &Fields<'_>, what: &str, into: &mut CredPartial) {
        if let Some(u) = f.get("username") {
            match self.string(u, &format!("username of {what}")) {
                Some(name) => {
                    into.username = Some(name);
                    into.username_span = Some(u.span);
                }
                None => into.poisoned = true,
            }
        }
        if let Some(p) = f.get("password") {
            match self.secret_ref(p, &format!("password of {what}")) {
                Some(p) => into.password = Some(p),
                None => into.poisoned = true,
            }
        }
    }

    fn winrm_partial(&mut self, node: &Node, what: &str, allow_insecure: bool) -> WinrmPartial {
        let mut w = WinrmPartial {
            span: Some(node.span),
            ..WinrmPartial::default()
        };
        let ctx = format!("the winrm settings of {what}");
        let Some(f) = self.fields(node, &ctx, WINRM_KEYS) else {
            return w;
        };
        if let Some(n) = f.get("scheme") {
            w.scheme = self.choice(
                n,
                "winrm scheme",
                &[("http", Scheme::Http), ("https", Scheme::Https)],
            );
        }
        if let Some(n) = f.get("port") {
            w.port = self.port(n, "winrm port");
            w.port_span = Some(n.span);
        }
        if let Some(n) = f.get("auth") {
            w.auth = self.choice(
                n,
                "winrm auth",
                &[
                    ("negotiate", AuthKind::Negotiate),
                    ("kerberos", AuthKind::Kerberos),
                    ("ntlm", AuthKind::Ntlm),
                    ("basic", AuthKind::Basic),
                ],
            );
            w.auth_span = Some(n.span);
        }
        if let Some(n) = f.get("ca_file") {
            w.ca_file = self.string(n, "ca_file");
            w.ca_span = Some(n.span);
        }
        if let Some(n) = f.get("ca_mode")
            && let Some(mode) = self.choice(
                n,
                "ca_mode",
                &[("only", CaMode::Only), ("add", CaMode::Add)],
            )
        {
            w.ca_mode = Some((mode, n.span));
        }
        if let Some(n) = f.get("max_output_mb") {
            match n.as_i64() {
                Some(mb) if (1..=1024).contains(&mb) => w.max_output_mb = Some(mb as u32),
                _ => self.err(
                    Diagnostic::error(
                        format!(
                            "max_output_mb must be a number of MiB from 1 to 1024, found {}",
                            n.as_scalar_text()
                                .map(|t| format!("`{t}`"))
                                .unwrap_or_else(|| n.kind().into())
                        ),
                        n.span,
                    )
                    .with_help(format!(
                        "the most output one command may produce; {DEFAULT_MAX_OUTPUT_MB} by default"
                    )),
                ),
            }
        }
        if let Some(n) = f.get("insecure_skip_tls_verify")
            && let Some(b) = self.boolean(n, "insecure_skip_tls_verify")
        {
            if b && !allow_insecure {
                self.err(
                    Diagnostic::error("insecure_skip_tls_verify cannot be a default", n.span)
                        .with_help(
                            "turning TLS verification off is a per-host decision: set it on the \
                             server or client that needs it, or trust its CA with ca_file",
                        ),
                );
            } else {
                w.insecure = Some((b, n.span));
            }
        }
        if let Some(n) = f.get("spn_service")
            && let Some(text) = self.string(n, "spn_service")
        {
            if check_spn_service(&text) {
                w.spn_service = Some(text);
            } else {
                self.err(
                    Diagnostic::error(
                        format!(
                            "spn_service must be a service class like HTTP or WSMAN, found `{text}`"
                        ),
                        n.span,
                    )
                    .with_help(
                        "the service principal is SERVICE/host; write only the SERVICE part",
                    ),
                );
            }
        }
        if let Some(n) = f.get("operation_timeout") {
            match n.as_i64() {
                Some(t) if (1..=60).contains(&t) => w.operation_timeout = Some(t as u32),
                _ => self.err(
                    Diagnostic::error(
                        format!(
                            "operation_timeout must be a number of seconds from 1 to 60, found {}",
                            n.as_scalar_text()
                                .map(|t| format!("`{t}`"))
                                .unwrap_or_else(|| n.kind().into())
                        ),
                        n.span,
                    )
                    .with_help("WinRM 2.0 caps MaxTimeoutms at 60000"),
                ),
            }
        }
        w
    }

    /// Combines a host's own settings with the defaults and checks the combination.
    fn resolve_winrm(
        &mut self,
        own: &WinrmPartial,
        defaults: &WinrmPartial,
        what: &str,
    ) -> WinrmTarget {
        let scheme = own.scheme.or(defaults.scheme).unwrap_or(Scheme::Http);
        // A port set in the defaults belongs to the defaults' scheme: a host that switches scheme
        // gets that scheme's default port unless it sets its own.
        let inherited_port = if own.scheme.is_some() && own.scheme != defaults.scheme {
            None
        } else {
            defaults.port
        };
        let port = own.port.or(inherited_port).unwrap_or(scheme.default_port());
        let auth = own.auth.or(defaults.auth).unwrap_or(AuthKind::Negotiate);
        let ca_file = own.ca_file.clone().or_else(|| defaults.ca_file.clone());
        let ca_mode = own.ca_mode.or(defaults.ca_mode);
        let insecure = own.insecure.map(|(b, _)| b).unwrap_or(false);
        if let Some((_, span)) = ca_mode
            && ca_file.is_none()
        {
            self.err(
                Diagnostic::error(
                    format!("ca_mode is set for {what}, which has no ca_file"),
                    span,
                )
                .with_help("ca_mode says how ca_file is trusted: only (the default) or add"),
            );
        }
        if scheme == Scheme::Http && auth == AuthKind::Basic {
            let span = own
                .auth_span
                .or(defaults.auth_span)
                .or(own.span)
                .unwrap_or_default();
            self.err(
                Diagnostic::error(
                    format!("{what} would use Basic authentication over plain HTTP"),
                    span,
                )
                .with_label("the password would travel in clear")
                .with_help(
                    "WinRM refuses Basic over HTTP by default (AllowUnencrypted=false); \
                         use auth: negotiate (NTLM with message encryption) or scheme: https",
                ),
            );
        }
        if scheme == Scheme::Http {
            if let Some((true, span)) = own.insecure {
                self.err(
                    Diagnostic::error(
                        format!(
                            "insecure_skip_tls_verify is set for {what}, which uses plain HTTP"
                        ),
                        span,
                    )
                    .with_help("it only applies with scheme: https"),
                );
            }
            if own.ca_file.is_some() {
                self.err(
                    Diagnostic::error(
                        format!("ca_file is set for {what}, which uses plain HTTP"),
                        own.ca_span.unwrap_or_default(),
                    )
                    .with_help("it only applies with scheme: https"),
                );
            }
        } else if let Some((true, span)) = own.insecure {
            // Said wherever the inventory is loaded: validate, plan, exec, verify, apply.
            self.diags.push(
                Diagnostic::warning(
                    format!("TLS verification is off for {what} (insecure_skip_tls_verify)"),
                    span,
                )
                .with_label("any server that answers on its address can pose as it")
                .with_help(
                    "an impostor learns what is sent there, Basic passwords included; trust the \
                     host's CA with ca_file instead",
                ),
            );
        }
        WinrmTarget {
            scheme,
            port,
            auth,
            ca_file,
            ca_mode: ca_mode.map(|(m, _)| m).unwrap_or_default(),
            insecure_skip_tls_verify: insecure,
            operation_timeout: own
                .operation_timeout
                .or(defaults.operation_timeout)
                .unwrap_or(20),
            max_output_mb: own
                .max_output_mb
                .or(defaults.max_output_mb)
                .unwrap_or(DEFAULT_MAX_OUTPUT_MB),
            spn_service: own
                .spn_service
                .clone()
                .or_else(|| defaults.spn_service.clone()),
            kdc: None,
        }
    }

    /// Reads a KDC address.
    fn kdc(&mut self, node: &Node, what: &str) -> Option<String> {
        let text = self.string(node, what)?;
        match check_kdc(&text) {
            Ok(()) => Some(text.trim().to_string()),
            Err(m) => {
                self.err(
                    Diagnostic::error(format!("{what}: {m}"), node.span).with_help(
                        "the KDC is a domain controller: HOST or HOST:PORT (port 88 by default)",
                    ),
                );
                None
            }
        }
    }

    /// `defaults.kerberos`.
    fn kerberos_defaults(&mut self, node: &Node) -> KerberosDefaults {
        let mut k = KerberosDefaults::default();
        let Some(f) = self.fields(node, "defaults.kerberos", KERBEROS_KEYS) else {
            return k;
        };
        if let Some(n) = f.get("kdc") {
            k.kdc = self.kdc(n, "kerberos kdc");
        }
        if let Some(n) = f.get("realms") {
            let Some(entries) = n.as_map() else {
                self.err(
                    Diagnostic::error(
                        format!(
                            "kerberos realms must be a mapping of realm names, found {}",
                            n.kind()
                        ),
                        n.span,
                    )
                    .with_help("write `realms: { CORP.EXAMPLE: { kdc: dc01.corp.example:88 } }`"),
                );
                return k;
            };
            for (key, body) in entries {
                let Some(realm) = key.as_scalar_text().filter(|r| {
                    !r.is_empty() && !r.chars().any(|c| c.is_whitespace() || "@/\\".contains(c))
                }) else {
                    self.err(Diagnostic::error(
                        "a realm name must be a plain name like CORP.EXAMPLE",
                        key.span,
                    ));
                    continue;
                };
                let what = format!("realm `{realm}`");
                let Some(rf) = self.fields(body, &what, REALM_KEYS) else {
                    continue;
                };
                match rf.get("kdc") {
                    Some(n) => {
                        if let Some(kdc) = self.kdc(n, &format!("kdc of {what}")) {
                            k.realms.insert(realm.to_ascii_uppercase(), kdc);
                        }
                    }
                    None => self.err(Diagnostic::error(format!("{what} has no kdc"), body.span)),
                }
            }
        }
        k
    }

    /// Reads a host's `host:` (the DNS name of its service principal).
    fn spn_host(&mut self, node: &Node, what: &str) -> Option<String> {
        let text = self.string(node, &format!("host of {what}"))?;
        let text = text.trim().to_string();
        if text.parse::<IpAddr>().is_ok() {
            self.err(
                Diagnostic::error(format!("host of {what} is an IP address, `{text}`"), node.span)
                    .with_label("a service principal names the host by its DNS name")
                    .with_help("write the name its SPN is registered under (HTTP/NAME), e.g. wsus01.corp.example; keep the IP in `address:`"),
            );
            return None;
        }
        match check_address(&text) {
            Ok(()) => Some(text.to_ascii_lowercase()),
            Err((msg, help)) => {
                let mut d = Diagnostic::error(format!("host of {what}: {msg}"), node.span);
                if let Some(h) = help {
                    d = d.with_help(h);
                }
                self.err(d);
                None
            }
        }
    }

    /// Kerberos and Negotiate: the KDC from the inventory, and for Kerberos the checks that make
    /// a logon possible at all (a `user@REALM` name, a host name for the service principal).
    #[allow(clippy::too_many_arguments)]
    fn finish_kerberos(
        &mut self,
        winrm: &mut WinrmTarget,
        credentials: &Credentials,
        username_span: Option<Span>,
        address: &str,
        address_span: Span,
        spn_host: Option<&str>,
        kerberos: &KerberosDefaults,
        what: &str,
    ) -> bool {
        if !matches!(winrm.auth, AuthKind::Kerberos | AuthKind::Negotiate) {
            return true;
        }
        let realm = upn_realm(&credentials.username);
        winrm.kdc = realm.as_deref().and_then(|r| kerberos.kdc_of(r));
        if winrm.auth != AuthKind::Kerberos {
            return true;
        }
        let mut ok = true;
        if realm.is_none() {
            let span = username_span.unwrap_or(address_span);
            if self.reported_users.insert(span) {
                let user = credentials.username.trim();
                let example = match user.rsplit_once('\\') {
                    Some((domain, account)) if !domain.is_empty() && domain != "." => {
                        format!("{account}@{}.EXAMPLE", domain.to_ascii_uppercase())
                    }
                    _ => format!("{}@CORP.EXAMPLE", user.rsplit('\\').next().unwrap_or(user)),
                };
                self.err(
                    Diagnostic::error(
                        format!("{what} uses Kerberos, which needs the user principal name (user@REALM), not `{user}`"),
                        span,
                    )
                    .with_label("a down-level DOMAIN\\user name does not say the Kerberos realm")
                    .with_help(format!(
                        "write the account as user@REALM with the domain's DNS name in capitals, e.g. {example}"
                    )),
                );
            }
            ok = false;
        }
        if spn_host.is_none() && address.parse::<IpAddr>().is_ok() {
            self.err(
                Diagnostic::error(
                    format!("{what} uses Kerberos, but its address `{address}` is an IP and it has no `host:`"),
                    address_span,
                )
                .with_label("Kerberos names the service by the host's DNS name")
                .with_help("add `host: NAME` with the name its SPN is registered under (HTTP/NAME); `address:` stays what is dialled"),
            );
            ok = false;
        }
        ok
    }

    fn wsus_site(&mut self, node: &Node, what: &str) -> Option<WsusSite> {
        let f = self.fields(node, &format!("the wsus settings of {what}"), WSUS_KEYS)?;
        let ssl = match f.get("ssl") {
            Some(n) => self.boolean(n, "wsus ssl")?,
            None => false,
        };
        let port = match f.get("port") {
            Some(n) => {
                let p = self.port(n, "wsus port")?;
                let allowed: &[u16] = if ssl { &[443, 8531] } else { &[80, 8530] };
                if !allowed.contains(&p) {
                    self.err(
                        Diagnostic::error(
                            format!(
                                "wsus port {p} is not a WSUS 3.0 web site port{}",
                                if ssl { " with ssl" } else { "" }
                            ),
                            n.span,
                        )
                        .with_help(if ssl {
                            "with ssl: true, WSUS 3.0 listens on 443 (default web site) or 8531 (custom web site)"
                        } else {
                            "WSUS 3.0 listens on 80 (default web site) or 8530 (custom web site); \
                             for 443 or 8531 also set ssl: true"
                        }),
                    );
                    return None;
                }
                p
            }
            None => {
                if ssl {
                    443
                } else {
                    80
                }
            }
        };
        Some(WsusSite { port, ssl })
    }

    fn address(&mut self, node: &Node, what: &str) -> Option<String> {
        let text = self.string(node, &format!("address of {what}"))?;
        match check_address(&text) {
            Ok(()) => Some(text),
            Err((msg, help)) => {
                let mut d = Diagnostic::error(format!("address of {what}: {msg}"), node.span);
                if let Some(h) = help {
                    d = d.with_help(h);
                }
                self.err(d);
                None
            }
        }
    }

    fn defaults(&mut self, node: &Node) -> Defaults {
        let mut d = Defaults::default();
        let Some(f) = self.fields(node, "defaults", DEFAULT_KEYS) else {
            return d;
        };
        self.credentials_into(&f, "defaults", &mut d.creds);
        if let Some(w) = f.get("winrm") {
            d.winrm = self.winrm_partial(w, "defaults", false);
        }
        if let Some(w) = f.get("wsus") {
            d.wsus = self.wsus_site(w, "defaults");
        }
        if let Some(k) = f.get("kerberos") {
            d.kerberos = self.kerberos_defaults(k);
        }
        if let Some(c) = f.get("clients")
            && let Some(cf) = self.fields(c, "defaults.clients", CLIENT_DEFAULT_KEYS)
        {
            self.credentials_into(&cf, "defaults.clients", &mut d.client_creds);
            if let Some(w) = cf.get("winrm") {
                d.client_winrm = self.winrm_partial(w, "defaults.clients", false);
            }
        }
        d
    }

    fn finish_creds(
        &mut self,
        own: CredPartial,
        fallback: &[&CredPartial],
        what: &str,
        span: Span,
    ) -> Option<(Credentials, Option<Span>)> {
        let username_span = if own.username.is_some() {
            own.username_span
        } else {
            fallback
                .iter()
                .find(|c| c.username.is_some())
                .and_then(|c| c.username_span)
        };
        let username = own
            .username
            .or_else(|| fallback.iter().find_map(|c| c.username.clone()));
        let password = own
            .password
            .or_else(|| fallback.iter().find_map(|c| c.password.clone()));
        let poisoned = own.poisoned || fallback.iter().any(|c| c.poisoned);
        match (username, password) {
            (Some(username), Some(password)) => {
                Some((Credentials { username, password }, username_span))
            }
            _ if poisoned => None,
            (u, p) => {
                let missing = match (u.is_none(), p.is_none()) {
                    (true, true) => "username and password",
                    (true, false) => "username",
                    _ => "password",
                };
                self.err(
                    Diagnostic::error(format!("no {missing} for {what}"), span)
                        .with_help("set them under `defaults:` or on the host (password as env:VAR, file:PATH or prompt)"),
                );
                None
            }
        }
    }

    fn inventory(&mut self, root: &Node) -> Option<Inventory> {
        let top = self.fields(root, "the inventory", TOP_KEYS)?;
        let defaults = match top.get("defaults") {
            Some(n) if !n.is_null() => self.defaults(n),
            _ => Defaults::default(),
        };
        let Some(servers_node) = top.get("servers") else {
            if top.suggested("servers") {
                return None;
            }
            self.err(
                Diagnostic::error("the inventory has no `servers:` mapping", root.span).with_help(
                    "list the WSUS servers under `servers:`, keyed by name; see docs/inventory.md",
                ),
            );
            return None;
        };
        let Some(entries) = servers_node.as_map() else {
            self.err(Diagnostic::error(
                format!(
                    "`servers` must be a mapping of server names, found {}",
                    servers_node.kind()
                ),
                servers_node.span,
            ));
            return None;
        };
        if entries.is_empty() {
            self.err(Diagnostic::error("`servers` is empty", servers_node.span));
            return None;
        }

        let mut servers: Vec<Server> = Vec::with_capacity(entries.len());
        let mut upstream_spans: HashMap<String, (String, Span)> = HashMap::new();
        let mut name_spans: BTreeMap<String, Span> = BTreeMap::new();
        let mut by_lower: BTreeMap<String, (String, Span)> = BTreeMap::new();
        let mut ok = true;
        for (key, body) in entries {
            let Some(name) = key.as_scalar_text() else {
                self.err(Diagnostic::error(
                    "a server name must be a plain name",
                    key.span,
                ));
                ok = false;
                continue;
            };
            // Windows host names, and so server names, are unique whatever their case.
            if let Some((first_name, first)) = by_lower.get(&name.to_ascii_lowercase()) {
                let msg = if first_name == name {
                    format!("duplicate server name `{name}`")
                } else {
                    format!(
                        "duplicate server name `{name}`: names are unique whatever their case, and `{first_name}` is already a server"
                    )
                };
                self.err(
                    Diagnostic::error(msg, key.span)
                        .with_label(format!("first defined at line {}", first.start.line)),
                );
                ok = false;
                continue;
            }
            by_lower.insert(name.to_ascii_lowercase(), (name.to_string(), key.span));
            name_spans.insert(name.to_string(), key.span);
            if let Err(msg) = check_name(name) {
                self.err(Diagnostic::error(
                    format!("server name `{name}` {msg}"),
                    key.span,
                ));
                ok = false;
            }
            match self.server(name, key.span, body, &defaults, &mut upstream_spans) {
                Some(s) => servers.push(s),
                None => ok = false,
            }
        }

        // Cross-server checks: upstream names, cycles, shared names and addresses.
        let names: Vec<&str> = name_spans.keys().map(String::as_str).collect();
        // Every written upstream link counts, including those of servers with other errors.
        let mut links: Vec<(&String, &(String, Span))> = upstream_spans.iter().collect();
        links.sort_by_key(|(_, (_, span))| *span);
        for (name, (up, span)) in &links {
            if !name_spans.contains_key(up.as_str()) {
                let mut d = Diagnostic::error(
                    format!("server `{name}` names an unknown upstream `{up}`"),
                    *span,
                );
                if let Some(m) = did_you_mean(up, names.iter().copied()) {
                    d = d.with_label(format!("did you mean `{m}`?"));
                } else {
                    d = d.with_help(format!("known servers: {}", truncate_list(&names, 8)));
                }
                self.err(d);
                ok = false;
            }
        }
        let edges: Vec<(&str, &str)> = links
            .iter()
            .map(|(n, (u, _))| (n.as_str(), u.as_str()))
            .filter(|(_, u)| name_spans.contains_key(*u))
            .collect();
        for cycle in hierarchy::find_cycles(&edges) {
            let first = &cycle[0];
            let span = upstream_spans
                .get(first)
                .map(|(_, span)| *span)
                .or_else(|| name_spans.get(first).copied())
                .unwrap_or_default();
            let mut path = cycle.clone();
            path.push(first.clone());
            self.err(
                Diagnostic::error(format!("upstream cycle: {}", path.join(" -> ")), span)
                    .with_help("each server syncs from the next one in this list, so none of them reaches Microsoft Update; break the loop by making one of them `role: upstream`"),
            );
            ok = false;
        }
        let mut used: HashMap<String, String> = HashMap::new();
        let mut used_addr: HashMap<String, String> = HashMap::new();
        for s in &servers {
            used.insert(s.name.to_ascii_lowercase(), format!("server `{}`", s.name));
        }
        for s in &servers {
            let addr = s.address.to_ascii_lowercase();
            if let Some(other) = used_addr.get(&addr) {
                self.err(Diagnostic::error(
                    format!(
                        "address {} of server `{}` is also used by {other}",
                        s.address, s.name
                    ),
                    s.address_span,
                ));
                ok = false;
            } else {
                used_addr.insert(addr, format!("server `{}`", s.name));
            }
        }
        for s in &servers {
            for c in &s.clients {
                let key = c.name.to_ascii_lowercase();
                if let Some(other) = used.get(&key) {
                    self.err(Diagnostic::error(
                        format!(
                            "client name `{}` under server `{}` is also used by {other}",
                            c.name, s.name
                        ),
                        c.span,
                    ));
                    ok = false;
                } else {
                    used.insert(key, format!("client `{}` of server `{}`", c.name, s.name));
                }
                let addr = c.address.to_ascii_lowercase();
                if let Some(other) = used_addr.get(&addr) {
                    self.err(Diagnostic::error(
                        format!(
                            "address {} of client `{}` is also used by {other}",
                            c.address, c.name
                        ),
                        c.address_span,
                    ));
                    ok = false;
                } else {
                    used_addr.insert(addr, format!("client `{}`", c.name));
                }
            }
        }
        if !ok {
            return None;
        }
        let inv = Inventory::from_servers(servers);
        // Depth advice (a warning): Microsoft recommends at most three tiers. One warning for
        // the whole hierarchy, at the first deep server, naming the others.
        let h = hierarchy::Hierarchy::new(&inv);
        if h.tiers() > 3 {
            let deep: Vec<&str> = h.waves().into_iter().skip(3).flatten().collect();
            if let Some(s) = deep.first().and_then(|n| inv.get(n)) {
                self.diags.push(
                    Diagnostic::warning(
                        format!(
                            "the hierarchy has {} tiers: {} on tier 4 or below ({})",
                            h.tiers(),
                            if deep.len() == 1 { "1 server is".to_string() } else { format!("{} servers are", deep.len()) },
                            truncate_list(&deep, 5)
                        ),
                        s.span,
                    )
                    .with_help("Microsoft advises against WSUS hierarchies deeper than three tiers (only five were tested)"),
                );
            }
        }
        Some(inv)
    }

    fn server(
        &mut self,
        name: &str,
        span: Span,
        body: &Node,
        defaults: &Defaults,
        upstream_spans: &mut HashMap<String, (String, Span)>,
    ) -> Option<Server> {
        let what = format!("server `{name}`");
        let f = self.fields(body, &what, SERVER_KEYS)?;
        let role = match f.get("role") {
            Some(n) => self.choice(
                n,
                "role",
                &[
                    ("upstream", Role::Upstream),
                    ("replica", Role::Replica),
                    ("autonomous", Role::Autonomous),
                ],
            ),
            None if f.suggested("role") => None,
            None => {
                self.err(
                    Diagnostic::error(format!("{what} has no role"), span)
                        .with_help("add `role: upstream`, `role: replica` or `role: autonomous`"),
                );
                None
            }
        };
        let mut broken = false;
        let upstream = match f.get("upstream") {
            Some(n) => {
                let up = self.string(n, "upstream");
                if let Some(u) = &up {
                    upstream_spans.insert(name.to_string(), (u.clone(), n.span));
                }
                if role == Some(Role::Upstream) {
                    self.err(
                        Diagnostic::error(format!("{what} is `role: upstream` but names an upstream"), n.span)
                            .with_help("an upstream server syncs from Microsoft Update; a server that syncs from another WSUS server is `role: replica` or `role: autonomous`"),
                    );
                    broken = true;
                }
                up
            }
            None if f.suggested("upstream") => None,
            None => {
                if let Some(r @ (Role::Replica | Role::Autonomous)) = role {
                    self.err(
                        Diagnostic::error(
                            format!("{what} is `role: {r}` but has no upstream"),
                            span,
                        )
                        .with_help(format!(
                            "a {r} server syncs from another WSUS server: add `upstream: NAME`"
                        )),
                    );
                    broken = true;
                }
                None
            }
        };
        let address_span = f.get("address").map(|n| n.span).unwrap_or(span);
        let address = match f.get("address") {
            Some(n) => self.address(n, &what),
            None if f.suggested("address") => None,
            None => {
                self.err(
                    Diagnostic::error(format!("{what} has no address"), span)
                        .with_help("add `address:` with its IP address or DNS name"),
                );
                None
            }
        };
        let spn_host = match f.get("host") {
            Some(n) => {
                let h = self.spn_host(n, &what);
                if h.is_none() {
                    broken = true;
                }
                h
            }
            None => None,
        };
        let own_winrm = match f.get("winrm") {
            Some(n) => self.winrm_partial(n, &what, true),
            None => WinrmPartial::default(),
        };
        let mut winrm = self.resolve_winrm(&own_winrm, &defaults.winrm, &what);
        let wsus = match f.get("wsus") {
            Some(n) => self.wsus_site(n, &what)?,
            None => defaults.wsus.unwrap_or(WsusSite {
                port: 80,
                ssl: false,
            }),
        };
        let version = match f.get("version") {
            Some(n) => self.choice(
                n,
                "version",
                &[
                    ("3.0-rtm", WsusVersion::Rtm),
                    ("3.0-sp1", WsusVersion::Sp1),
                    ("3.0-sp2", WsusVersion::Sp2),
                ],
            ),
            None => None,
        };
        let arch = match f.get("arch") {
            Some(n) => self.choice(n, "arch", &[("x86", Arch::X86), ("x64", Arch::X64)]),
            None => None,
        };
        let mut own_creds = CredPartial::default();
        self.credentials_into(&f, &what, &mut own_creds);
        let credentials = self.finish_creds(own_creds, &[&defaults.creds], &what, span);
        if let (Some((c, user_span)), Some(a)) = (&credentials, &address)
            && !self.finish_kerberos(
                &mut winrm,
                c,
                *user_span,
                a,
                address_span,
                spn_host.as_deref(),
                &defaults.kerberos,
                &what,
            )
        {
            broken = true;
        }
        let credentials = credentials.map(|(c, _)| c);
        let mut clients = Vec::new();
        let mut clients_ok = true;
        if let Some(cn) = f.get("clients") {
            match cn.as_map() {
                Some(entries) => {
                    let mut seen: HashMap<&str, Span> = HashMap::new();
                    for (ck, cv) in entries {
                        match self.client(ck, cv, defaults, &mut seen) {
                            Some(c) => clients.push(c),
                            None => clients_ok = false,
                        }
                    }
                }
                None if cn.is_null() => {}
                None => {
                    self.err(Diagnostic::error(
                        format!("clients of {what} must be a mapping of client names, found {}", cn.kind()),
                        cn.span,
                    ).with_help("write `clients:` then one line per client: `pc-1: { address: 10.0.0.5 }`"));
                    clients_ok = false;
                }
            }
        }
        clients.sort_by(|a, b| a.name.cmp(&b.name));
        let (Some(role), Some(address), Some(credentials)) = (role, address, credentials) else {
            return None;
        };
        if !clients_ok || broken {
            return None;
        }
        if version.is_none() && f.get("version").is_some() {
            return None;
        }
        if arch.is_none() && f.get("arch").is_some() {
            return None;
        }
        Some(Server {
            name: name.to_string(),
            role,
            upstream,
            address,
            spn_host,
            winrm,
            wsus,
            version,
            arch,
            credentials,
            clients,
            span,
            address_span,
        })
    }

    fn client<'n>(
        &mut self,
        key: &'n Node,
        body: &Node,
        defaults: &Defaults,
        seen: &mut HashMap<&'n str, Span>,
    ) -> Option<ClientComputer> {
        let Some(name) = key.as_scalar_text() else {
            self.err(Diagnostic::error(
                "a client name must be a plain name",
                key.span,
            ));
            return None;
        };
        if let Some(first) = seen.get(name) {
            self.err(
                Diagnostic::error(format!("duplicate client name `{name}`"), key.span)
                    .with_label(format!("first defined at line {}", first.start.line)),
            );
            return None;
        }
        seen.insert(name, key.span);
        if let Err(msg) = check_name(name) {
            self.err(Diagnostic::error(
                format!("client name `{name}` {msg}"),
                key.span,
            ));
            return None;
        }
        let what = format!("client `{name}`");
        let f = self.fields(body, &what, CLIENT_KEYS)?;
        let address_span = f.get("address").map(|n| n.span).unwrap_or(key.span);
        let address = match f.get("address") {
            Some(n) => self.address(n, &what),
            None if f.suggested("address") => None,
            None => {
                self.err(Diagnostic::error(
                    format!("{what} has no address"),
                    key.span,
                ));
                None
            }
        };
        let mut broken = false;
        let spn_host = match f.get("host") {
            Some(n) => {
                let h = self.spn_host(n, &what);
                broken = h.is_none();
                h
            }
            None => None,
        };
        let own = match f.get("winrm") {
            Some(n) => self.winrm_partial(n, &what, true),
            None => WinrmPartial::default(),
        };
        // Clients fall back to defaults.clients, then to the server defaults.
        let mut base = defaults.client_winrm.clone();
        base.scheme = base.scheme.or(defaults.winrm.scheme);
        base.port = base.port.or(defaults.winrm.port);
        base.auth = base.auth.or(defaults.winrm.auth);
        base.auth_span = base.auth_span.or(defaults.winrm.auth_span);
        base.ca_file = base.ca_file.or(defaults.winrm.ca_file.clone());
        base.ca_mode = base.ca_mode.or(defaults.winrm.ca_mode);
        base.operation_timeout = base.operation_timeout.or(defaults.winrm.operation_timeout);
        base.max_output_mb = base.max_output_mb.or(defaults.winrm.max_output_mb);
        base.spn_service = base.spn_service.or(defaults.winrm.spn_service.clone());
        let mut winrm = self.resolve_winrm(&own, &base, &what);
        let mut own_creds = CredPartial::default();
        self.credentials_into(&f, &what, &mut own_creds);
        let (credentials, user_span) = self.finish_creds(
            own_creds,
            &[&defaults.client_creds, &defaults.creds],
            &what,
            key.span,
        )?;
        let address = address?;
        if !self.finish_kerberos(
            &mut winrm,
            &credentials,
            user_span,
            &address,
            address_span,
            spn_host.as_deref(),
            &defaults.kerberos,
            &what,
        ) || broken
        {
            return None;
        }
        Some(ClientComputer {
            name: name.to_string(),
            address,
            spn_host,
            winrm,
            credentials,
            span: key.span,
            address_span,
        })
    }
}

fn truncate_list(names: &[&str], max: usize) -> String {
    if names.len() <= max {
        names.join(", ")
    } else {
        format!("{}, ... ({} in all)", names[..max].join(", "), names.len())
    }
}

/// Checks a server or client name: it appears in plans, journals, file names and scripts.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("must have 1 to 253 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may only hold letters, digits, `-`, `_` and `.`");
    }
    Ok(())
}

/// Checks an address: an IPv4/IPv6 address or a DNS host name (RFC 1123).
pub fn check_address(text: &str) -> Result<(), (String, Option<String>)> {
    if text.contains("://") {
        return Err((
            format!("`{text}` is a URL, not an address"),
            Some(
                "give the host name or IP only; set winrm.scheme and winrm.port for the rest"
                    .into(),
            ),
        ));
    }
    if text.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if let Some((host, port)) = text.rsplit_once(':')
        && !host.contains(':')
        && port.parse::<u16>().is_ok()
    {
        return Err((
            format!("`{text}` includes a port"),
            Some(format!(
                "write `address: {host}` and set the port under winrm:"
            )),
        ));
    }
    let labels: Vec<&str> = text.trim_end_matches('.').split('.').collect();
    if labels
        .iter()
        .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err((format!("`{text}` is not a valid IPv4 address"), None));
    }
    if text.len() > 253 {
        return Err((format!("`{text}` is longer than 253 characters"), None));
    }
    for l in &labels {
        let valid = !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err((
                format!("`{text}` is neither an IP address nor a valid host name"),
                Some("host names hold letters, digits and `-` in dot-separated labels".into()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "\
defaults:
  username: CONTOSO\\wsusfix
  password: env:WSUSFIX_PASSWORD
  winrm: { scheme: http, port: 5985, auth: negotiate }
servers:
  wsus-hq:
    role: upstream
    address: 127.0.1.1
    version: 3.0-sp1
    clients:
      pc-hq-1: { address: 127.0.2.1 }
  wsus-eu:
    role: replica
    upstream: wsus-hq
    address: 127.0.1.2
    version: 3.0-rtm
";

    fn errors(text: &str) -> Vec<(usize, usize, String)> {
        load(text)
            .diagnostics
            .into_iter()
            .filter(|d| d.is_error())
            .map(|d| {
                let (l, c) = d.line_col().unwrap_or((0, 0));
                (l, c, d.message)
            })
            .collect()
    }

    #[test]
    fn the_documented_shape_loads() {
        let loaded = load(LAB);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let inv = loaded.inventory.unwrap();
        let eu = inv.get("wsus-eu").unwrap();
        assert_eq!(eu.role, Role::Replica);
        assert_eq!(eu.upstream.as_deref(), Some("wsus-hq"));
        assert_eq!(eu.credentials.username, "CONTOSO\\wsusfix");
        assert_eq!(
            eu.credentials.password,
            SecretRef::Env("WSUSFIX_PASSWORD".into())
        );
        assert_eq!(eu.winrm.port, 5985);
        assert_eq!(
            eu.wsus,
            WsusSite {
                port: 80,
                ssl: false
            }
        );
        let hq = inv.get("wsus-hq").unwrap();
        assert_eq!(hq.clients.len(), 1);
        assert_eq!(hq.clients[0].credentials.username, "CONTOSO\\wsusfix");
        assert_eq!(inv.servers()[0].name, "wsus-eu", "sorted by name");
    }

    #[test]
    fn switching_scheme_switches_the_default_port() {
        let text = LAB.replace(
            "    address: 127.0.1.2\n",
            "    address: 127.0.1.2\n    winrm: { scheme: https, insecure_skip_tls_verify: true }\n",
        );
        let inv = load(&text).inventory.unwrap();
        let eu = inv.get("wsus-eu").unwrap();
        assert_eq!(eu.winrm.scheme, Scheme::Https);
        assert_eq!(eu.winrm.port, 5986);
        assert!(eu.winrm.insecure_skip_tls_verify);
    }

    #[test]
    fn skipping_tls_verification_is_warned_about() {
        let text = LAB.replace(
            "    address: 127.0.1.2\n",
            "    address: 127.0.1.2\n    winrm: { scheme: https, insecure_skip_tls_verify: true }\n",
        );
        let loaded = load(&text);
        assert!(loaded.inventory.is_some());
        let warnings: Vec<&Diagnostic> = loaded
            .diagnostics
            .iter()
            .filter(|d| !d.is_error())
            .collect();
        assert_eq!(warnings.len(), 1, "{:?}", loaded.diagnostics);
        assert!(
            warnings[0]
                .message
                .starts_with("TLS verification is off for server `wsus-eu`"),
            "{}",
            warnings[0].message
        );
        assert_eq!(warnings[0].line_col().map(|(l, _)| l), Some(16));
        assert!(load(LAB).diagnostics.is_empty());
    }

    #[test]
    fn ca_mode_and_the_output_cap() {
        let text = LAB.replace(
            "    address: 127.0.1.2\n",
            "    address: 127.0.1.2\n    winrm: { scheme: https, ca_file: ca.pem, ca_mode: add, max_output_mb: 64 }\n",
        );
        let inv = load(&text).inventory.unwrap();
        let eu = inv.get("wsus-eu").unwrap();
        assert_eq!(eu.winrm.ca_mode, CaMode::Add);
        assert_eq!(eu.winrm.max_output_mb, 64);
        let hq = inv.get("wsus-hq").unwrap();
        assert_eq!(
            (hq.winrm.ca_mode, hq.winrm.max_output_mb),
            (CaMode::Only, DEFAULT_MAX_OUTPUT_MB)
        );
        // The defaults keep the canonical form (and so the fingerprint) of older inventories.
        assert!(!inv.canonical().contains("wsus-hq\",\"ca_mode"));
        assert_eq!(inv.canonical().matches("ca_mode").count(), 1);

        let text = LAB.replace(
            "    address: 127.0.1.2\n",
            "    address: 127.0.1.2\n    winrm: { scheme: https, ca_mode: add, max_output_mb: 0 }\n",
        );
        let e = errors(&text);
        assert!(
            e.iter()
                .any(|(_, _, m)| m
                    .contains("ca_mode is set for server `wsus-eu`, which has no ca_file")),
            "{e:?}"
        );
        assert!(
            e.iter().any(|(_, _, m)| m
                .contains("max_output_mb must be a number of MiB from 1 to 1024, found `0`")),
            "{e:?}"
        );
    }

    #[test]
    fn literal_passwords_are_refused_with_the_reason() {
        let text = LAB.replace("env:WSUSFIX_PASSWORD", "Passw0rd!");
        let d = load(&text).diagnostics;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line_col(), Some((3, 13)));
        assert!(d[0].message.contains("literal password"));
        assert!(d[0].help.as_deref().unwrap().contains("env:VAR"));
    }

    #[test]
    fn many_problems_are_reported_at_once() {
        let text = LAB
            .replace("role: upstream", "role: upstreem")
            .replace("upstream: wsus-hq", "upstream: wsus-hqq")
            .replace("address: 127.0.1.2", "adress: 127.0.1.2");
        let e = errors(&text);
        assert!(
            e.iter()
                .any(|(l, c, m)| (*l, *c) == (7, 11) && m.contains("role must be one of")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|(l, _, m)| *l == 15 && m.contains("unknown key `adress`")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|(l, _, m)| *l == 14 && m.contains("unknown upstream `wsus-hqq`")),
            "{e:?}"
        );
        // The typo of a required key is one problem, not two.
        assert!(
            !e.iter().any(|(_, _, m)| m.contains("has no address")),
            "{e:?}"
        );
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn unknown_upstream_suggests_the_near_name() {
        let text = LAB.replace("upstream: wsus-hq", "upstream: wsus-hqq");
        let d = load(&text).diagnostics;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line_col(), Some((14, 15)));
        assert_eq!(d[0].label.as_deref(), Some("did you mean `wsus-hq`?"));
    }

    #[test]
    fn cycles_are_printed_as_a_path() {
        let text = "\
defaults: { username: u, password: prompt }
servers:
  a: { role: replica, upstream: b, address: 10.0.0.1 }
  b: { role: autonomous, upstream: a, address: 10.0.0.2 }
  c: { role: upstream, address: 10.0.0.3 }
";
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].2, "upstream cycle: a -> b -> a");
        assert_eq!((e[0].0, e[0].1), (3, 33));
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check_address("127.0.1.1").is_ok());
        assert!(check_address("::1").is_ok());
        assert!(check_address("wsus01.contoso.com").is_ok());
        assert!(check_address("wsus01.").is_ok());
        assert!(check_address("127.0.0.300").is_err());
        assert!(check_address("http://wsus01").is_err());
        assert!(check_address("wsus01:8530").is_err());
        assert!(check_address("bad_host").is_err());
        assert!(check_address("-x.contoso.com").is_err());
    }

    const KERBEROS: &str = "\
defaults:
  username: wsusfix@LAB.TEST
  password: env:WSUSFIX_PASSWORD
  winrm: { auth: kerberos }
  kerberos:
    kdc: 127.0.0.1:18888
    realms:
      emea.lab.test: { kdc: dc-emea.lab.test }
servers:
  wsus-hq:
    role: upstream
    address: 127.0.1.1
    host: WSUS-HQ.lab.test
    clients:
      pc-hq-1: { address: 127.0.2.1, host: pc-hq-1.lab.test }
  wsus-eu:
    role: replica
    upstream: wsus-hq
    address: wsus-eu.lab.test
    username: ops@EMEA.LAB.TEST
    winrm: { spn_service: WSMAN }
";

    #[test]
    fn kerberos_settings_load() {
        let loaded = load(KERBEROS);
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let inv = loaded.inventory.unwrap();
        let hq = inv.get("wsus-hq").unwrap();
        assert_eq!(hq.winrm.auth, AuthKind::Kerberos);
        assert_eq!(
            hq.spn_host.as_deref(),
            Some("wsus-hq.lab.test"),
            "lower-cased"
        );
        assert_eq!(hq.winrm.kdc.as_deref(), Some("127.0.0.1:18888"));
        assert_eq!(hq.winrm.spn_service, None);
        assert_eq!(hq.clients[0].spn_host.as_deref(), Some("pc-hq-1.lab.test"));
        assert_eq!(hq.clients[0].winrm.kdc.as_deref(), Some("127.0.0.1:18888"));
        let eu = inv.get("wsus-eu").unwrap();
        assert_eq!(
            eu.winrm.kdc.as_deref(),
            Some("dc-emea.lab.test"),
            "the realm's own KDC"
        );
        assert_eq!(eu.winrm.spn_service.as_deref(), Some("WSMAN"));
        assert_eq!(eu.spn_host, None, "a DNS address is its own SPN host");
        assert!(inv.canonical().contains("\"host\":\"wsus-hq.lab.test\""));
    }

    #[test]
    fn inventories_without_kerberos_keep_their_canonical_form() {
        let inv = load(LAB).inventory.unwrap();
        let text = inv.canonical();
        assert!(!text.contains("\"host\""), "{text}");
        assert!(
            !text.contains("spn_service") && !text.contains("kdc"),
            "{text}"
        );
    }

    #[test]
    fn kerberos_needs_a_upn_and_a_host_name() {
        let text = KERBEROS
            .replace("username: wsusfix@LAB.TEST", "username: LAB\\wsusfix")
            .replace("    host: WSUS-HQ.lab.test\n", "");
        let d: Vec<_> = load(&text)
            .diagnostics
            .into_iter()
            .filter(|d| d.is_error())
            .collect();
        // The default user name is reported once, at its line, for every host that uses it.
        let upn: Vec<_> = d
            .iter()
            .filter(|d| d.message.contains("needs the user principal name"))
            .collect();
        assert_eq!(upn.len(), 1, "{d:?}");
        assert_eq!(upn[0].line_col(), Some((2, 13)));
        assert!(
            upn[0]
                .help
                .as_deref()
                .unwrap()
                .contains("wsusfix@LAB.EXAMPLE"),
            "{:?}",
            upn[0].help
        );
        let ip: Vec<_> = d
            .iter()
            .filter(|d| d.message.contains("is an IP and it has no `host:`"))
            .collect();
        assert_eq!(ip.len(), 1, "{d:?}");
        assert_eq!(ip[0].line_col(), Some((12, 14)));
        assert!(ip[0].help.as_deref().unwrap().contains("add `host: NAME`"));
        assert_eq!(d.len(), 2, "{d:?}");

        // NTLM does not care.
        let ntlm = text.replace("winrm: { auth: kerberos }", "winrm: { auth: ntlm }");
        assert!(load(&ntlm).inventory.is_some());
    }

    #[test]
    fn bad_kerberos_values_are_reported_where_written() {
        let text = KERBEROS
            .replace("kdc: 127.0.0.1:18888", "kdc: 127.0.0.1:0")
            .replace("host: WSUS-HQ.lab.test", "host: 10.0.0.1")
            .replace("spn_service: WSMAN", "spn_service: HTTP/x")
            .replace("auth: kerberos", "auth: kerberoz");
        let e = errors(&text);
        assert!(
            e.iter().any(|(l, _, m)| *l == 6
                && m.contains("kerberos kdc")
                && m.contains("no valid port")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|(l, c, m)| (*l, *c) == (13, 11) && m.contains("is an IP address")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|(l, _, m)| *l == 21 && m.contains("spn_service must be a service class")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|(l, _, m)| *l == 4
                    && m.contains("winrm auth must be one of negotiate | kerberos")),
            "{e:?}"
        );
        let unknown = KERBEROS.replace("realms:", "realmz:");
        assert!(
            errors(&unknown)
                .iter()
                .any(|(_, _, m)| m.contains("unknown key `realmz` in defaults.kerberos")),
            "{:?}",
            errors(&unknown)
        );
    }

    #[test]
    fn negotiate_takes_the_inventory_kdc_of_upn_accounts_only() {
        let text = KERBEROS.replace("winrm: { auth: kerberos }", "winrm: { auth: negotiate }");
        let inv = load(&text).inventory.unwrap();
        assert_eq!(
            inv.get("wsus-hq").unwrap().winrm.kdc.as_deref(),
            Some("127.0.0.1:18888")
        );
        let down_level = text.replace("username: wsusfix@LAB.TEST", "username: LAB\\wsusfix");
        let inv = load(&down_level).inventory.unwrap();
        assert_eq!(inv.get("wsus-hq").unwrap().winrm.kdc, None, "NTLM then");
        assert_eq!(upn_realm("a@corp.example").as_deref(), Some("CORP.EXAMPLE"));
        assert_eq!(upn_realm("CORP\\a"), None);
        assert!(check_kdc("[::1]:88").is_ok());
        assert!(check_kdc("dc01").is_ok());
        assert!(check_kdc("dc_01:88").is_err());
    }

    #[test]
    fn deep_hierarchies_warn_but_load() {
        let text = "\
defaults: { username: u, password: prompt }
servers:
  t1: { role: upstream, address: 10.0.0.1 }
  t2: { role: replica, upstream: t1, address: 10.0.0.2 }
  t3: { role: replica, upstream: t2, address: 10.0.0.3 }
  t4: { role: autonomous, upstream: t3, address: 10.0.0.4 }
";
        let loaded = load(text);
        assert!(loaded.inventory.is_some());
        assert_eq!(loaded.diagnostics.len(), 1);
        assert!(!loaded.diagnostics[0].is_error());
        assert_eq!(
            loaded.diagnostics[0].message,
            "the hierarchy has 4 tiers: 1 server is on tier 4 or below (t4)"
        );
    }
}
