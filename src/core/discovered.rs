//! A hierarchy found by `wsusfix discover`, written as an inventory (docs/inventory.md) with
//! comments for what the walk could not learn: hosts it could not reach or resolve, the
//! credentials to fill in, the canary clients to add.
//!
//! Pure: the walk (`exec::walk`) gathers the servers; this turns them into YAML text that
//! `inventory::load` accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::inventory::{Arch, AuthKind, Role, Scheme, WsusSite, WsusVersion};

/// Where a server's address came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressSource {
    /// `--root` was given as an address.
    Given,
    /// The `--hosts` file listed the name (the address written is the file's).
    HostsFile,
    /// The system resolver resolved the name (the name itself is written as the address).
    Resolver,
    /// Nothing resolved the name: the name is written as the address, to be corrected.
    Unresolved(String),
}

/// One server the walk found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundServer {
    /// Its inventory name (the name WSUS reports, lower case).
    pub name: String,
    /// Its upstream: the server that listed it as a child.
    pub upstream: Option<String>,
    /// Its role: from its own configuration when reached, else from its upstream's list.
    pub role: Role,
    /// What goes into `address:`.
    pub address: String,
    /// Where the address came from.
    pub address_source: AddressSource,
    /// Its WSUS release, when known.
    pub version: Option<WsusVersion>,
    /// The `VersionString` it (or its upstream) reported.
    pub version_string: Option<String>,
    /// Its architecture, when reached.
    pub arch: Option<Arch>,
    /// Its WSUS web site, as a downstream server configured it.
    pub site: Option<WsusSite>,
    /// `Err(why)` when the server could not be read (its role and version then come from its
    /// upstream's list of children, and its own children are unknown).
    pub reached: Result<(), String>,
    /// Other remarks, written as comments.
    pub notes: Vec<String>,
}

/// A server that a reached server lists as downstream, but that the walk did not log on to: it
/// is outside the allow-list (`--allow`, `--hosts`), or its reported name is no host name. It
/// is named in a comment, not written as a server, so that no later command logs on to it
/// either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotContacted {
    /// The name it registered with, as its upstream lists it (escaped when written).
    pub name: String,
    /// The server that lists it.
    pub listed_by: String,
    /// Its role as listed.
    pub role: Role,
    /// Its release as listed.
    pub version: Option<WsusVersion>,
    /// Why it was not contacted.
    pub why: String,
}

/// Everything `discover` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The `--root` argument.
    pub root: String,
    /// The account every host is reached with.
    pub username: String,
    /// The password reference (`env:VAR`, `file:PATH` or `prompt`), written as given.
    pub password: String,
    /// WinRM scheme.
    pub scheme: Scheme,
    /// WinRM port.
    pub port: u16,
    /// WinRM authentication.
    pub auth: AuthKind,
    /// A PEM file of CA certificates to trust for HTTPS (absolute).
    pub ca_file: Option<String>,
    /// The KDC of the account's realm (`HOST:PORT`), for Kerberos.
    pub kdc: Option<String>,
    /// The `--hosts` file, as given.
    pub hosts_file: Option<String>,
    /// The servers, root first.
    pub servers: Vec<FoundServer>,
    /// Servers found but not contacted.
    pub not_contacted: Vec<NotContacted>,
}

impl Discovery {
    /// Servers that could not be read.
    pub fn unreached(&self) -> impl Iterator<Item = &FoundServer> {
        self.servers.iter().filter(|s| s.reached.is_err())
    }

    /// Servers whose name did not resolve.
    pub fn unresolved(&self) -> impl Iterator<Item = &FoundServer> {
        self.servers
            .iter()
            .filter(|s| matches!(s.address_source, AddressSource::Unresolved(_)))
    }
}

/// A YAML scalar in single quotes (only `'` needs escaping there).
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A comment's text on one line: whitespace runs collapsed, and (since it may come from a
/// server) control characters escaped, so that nothing can end the comment or break the YAML.
fn one_line(s: &str) -> String {
    crate::util::terminal::one_line(&s.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn scheme_name(s: Scheme) -> &'static str {
    match s {
        Scheme::Http => "http",
        Scheme::Https => "https",
    }
}

fn auth_name(a: AuthKind) -> &'static str {
    a.as_str()
}

fn site_text(s: WsusSite) -> String {
    format!("{{ port: {}, ssl: {} }}", s.port, s.ssl)
}

/// Servers in tree order: the root first, each server followed by its subtree, children by name.
fn tree_order(servers: &[FoundServer]) -> Vec<(usize, &FoundServer, String)> {
    let names: BTreeSet<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let mut children: BTreeMap<&str, Vec<&FoundServer>> = BTreeMap::new();
    let mut roots = Vec::new();
    for s in servers {
        match s.upstream.as_deref() {
            Some(u) if names.contains(u) => children.entry(u).or_default().push(s),
            _ => roots.push(s),
        }
    }
    for c in children.values_mut() {
        c.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let mut out = Vec::new();
    // (server, depth, prefix for its line, prefix for its children)
    let mut stack: Vec<(&FoundServer, usize, String, String)> = roots
        .into_iter()
        .rev()
        .map(|r| (r, 0, String::new(), String::new()))
        .collect();
    let mut seen = BTreeSet::new();
    while let Some((s, depth, head, body)) = stack.pop() {
        if !seen.insert(s.name.as_str()) {
            continue;
        }
        out.push((depth, s, head));
        let kids = children.get(s.name.as_str()).cloned().unwrap_or_default();
        for (i, k) in kids.iter().enumerate().rev() {
            let last = i == kids.len() - 1;
            stack.push((
                k,
                depth + 1,
                format!("{body}{}", if last { "`-- " } else { "|-- " }),
                format!("{body}{}", if last { "    " } else { "|   " }),
            ));
        }
    }
    out
}

/// The most common WSUS site among those learned (ties: the lowest port), for `defaults`.
fn common_site(servers: &[FoundServer]) -> Option<WsusSite> {
    let mut counts: BTreeMap<(u16, bool), usize> = BTreeMap::new();
    for s in servers {
        if let Some(site) = s.site {
            *counts.entry((site.port, site.ssl)).or_default() += 1;
        }
    }
    let best = counts
        .iter()
        .max_by_key(|(k, n)| (**n, std::cmp::Reverse(**k)))?;
    Some(WsusSite {
        port: best.0.0,
        ssl: best.0.1,
    })
}

/// The inventory text.
pub fn render(d: &Discovery) -> String {
    let mut out = String::new();
    let order = tree_order(&d.servers);
    let unreached = d.unreached().count();
    let unresolved = d.unresolved().count();
    let _ = writeln!(
        out,
        "# Discovered by `wsusfix discover --root {}` through the WSUS API: the facts and the child",
        d.root
    );
    let _ = writeln!(
        out,
        "# servers of every server it reached ({} server{}). Review it before use:",
        d.servers.len(),
        if d.servers.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        out,
        "# - credentials: every host logs on as {} with the password from {};",
        d.username, d.password
    );
    let _ = writeln!(
        out,
        "#   provide it, or give hosts their own username/password (docs/inventory.md, Credentials)."
    );
    let _ = writeln!(
        out,
        "# - canary clients: WSUS does not say which computers to test on. Add one or two client"
    );
    let _ = writeln!(
        out,
        "#   computers per server under `clients:` so that apply and verify prove the fix on them."
    );
    if unreached > 0 || unresolved > 0 {
        let mut parts = Vec::new();
        if unreached > 0 {
            parts.push(format!(
                "{unreached} server{} could not be read (NOT REACHED below)",
                if unreached == 1 { "" } else { "s" }
            ));
        }
        if unresolved > 0 {
            parts.push(format!(
                "{unresolved} name{} did not resolve (NOT RESOLVED below)",
                if unresolved == 1 { "" } else { "s" }
            ));
        }
        let _ = writeln!(out, "# - incomplete: {}.", parts.join("; "));
    }
    if !d.not_contacted.is_empty() {
        let n = d.not_contacted.len();
        let _ = writeln!(
            out,
            "# - not contacted: {n} server{} listed as downstream {} outside the allow-list; wsusfix",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" }
        );
        let _ = writeln!(
            out,
            "#   did not log on to {} and {} not in this inventory. If one is yours, allow it (--allow",
            if n == 1 { "it" } else { "them" },
            if n == 1 { "it is" } else { "they are" }
        );
        let _ = writeln!(
            out,
            "#   with its DNS suffix or network, or list it in --hosts) and discover again:"
        );
        for c in &d.not_contacted {
            let mut what = vec![format!("{} of {}", c.role, c.listed_by)];
            if let Some(v) = c.version {
                what.push(v.display().to_string());
            }
            let _ = writeln!(
                out,
                "#     {} ({}): {}",
                one_line(&c.name),
                what.join(", "),
                one_line(&c.why)
            );
        }
    }
    if let Some(h) = &d.hosts_file {
        let _ = writeln!(
            out,
            "# Addresses of names listed in {h} are that file's; other names are written as DNS names."
        );
    }
    let _ = writeln!(out, "#");
    for (_, s, head) in &order {
        let mut what = vec![match &s.upstream {
            Some(_) => s.role.to_string(),
            None => "upstream".to_string(),
        }];
        if let Some(v) = s.version {
            what.push(v.display().to_string());
        }
        if s.reached.is_err() {
            what.push("not reached".into());
        }
        let _ = writeln!(out, "#   {head}{} ({})", s.name, what.join(", "));
    }
    out.push('\n');

    let site = common_site(&d.servers);
    let _ = writeln!(out, "defaults:");
    let _ = writeln!(out, "  username: {}", quoted(&d.username));
    let _ = writeln!(out, "  password: {}", quoted(&d.password));
    let _ = writeln!(
        out,
        "  winrm: {{ scheme: {}, port: {}, auth: {}{} }}",
        scheme_name(d.scheme),
        d.port,
        auth_name(d.auth),
        d.ca_file
            .as_ref()
            .map(|f| format!(", ca_file: {}", quoted(f)))
            .unwrap_or_default()
    );
    if let Some(kdc) = &d.kdc {
        let _ = writeln!(out, "  kerberos: {{ kdc: {} }}", quoted(kdc));
    }
    match site {
        Some(site) => {
            let _ = writeln!(
                out,
                "  # The WSUS site most downstream servers synchronise from."
            );
            let _ = writeln!(out, "  wsus: {}", site_text(site));
        }
        None => {
            let _ = writeln!(
                out,
                "  # No downstream server reported its upstream's WSUS site: port 80 without SSL is assumed."
            );
        }
    }
    out.push('\n');
    let _ = writeln!(out, "servers:");
    // Addresses must be unique in an inventory: a second name for an address already written
    // (an alias, a server registered twice) is written by its name, with a note.
    let mut used: BTreeMap<String, &str> = BTreeMap::new();
    for (i, (_, s, _)) in order.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let key = s.address.to_ascii_lowercase();
        match used.get(&key) {
            Some(first) if s.address != s.name => {
                let mut s = (*s).clone();
                s.notes.push(format!(
                    "{} resolves to {}, the address of {first}: written by name; check whether both are one server",
                    s.name, s.address
                ));
                s.address = s.name.clone();
                s.address_source = AddressSource::Resolver;
                write_server(&mut out, &s, site, d);
            }
            _ => {
                used.insert(key, s.name.as_str());
                write_server(&mut out, s, site, d);
            }
        }
    }
    out
}

fn write_server(out: &mut String, s: &FoundServer, site: Option<WsusSite>, d: &Discovery) {
    let _ = writeln!(out, "  {}:", s.name);
    if let Err(why) = &s.reached {
        let _ = writeln!(out, "    # NOT REACHED: {}", one_line(why));
        let from = s.upstream.as_deref().unwrap_or("its upstream");
        let _ = writeln!(
            out,
            "    # Role and version are as {from} lists them; its own downstream servers are unknown:"
        );
        let _ = writeln!(
            out,
            "    # once it can be reached, run `wsusfix discover --root {}` for its subtree.",
            s.name
        );
    }
    for n in &s.notes {
        let _ = writeln!(out, "    # {}", one_line(n));
    }
    match &s.upstream {
        Some(u) => {
            let _ = writeln!(out, "    role: {}", s.role);
            let _ = writeln!(out, "    upstream: {u}");
        }
        None => {
            let _ = writeln!(out, "    role: upstream");
        }
    }
    let address_note = match &s.address_source {
        AddressSource::Given => "as given to --root".to_string(),
        AddressSource::HostsFile => format!(
            "{} in {}",
            s.name,
            d.hosts_file.as_deref().unwrap_or("the hosts file")
        ),
        AddressSource::Resolver => "resolves by DNS".to_string(),
        AddressSource::Unresolved(why) => {
            format!("NOT RESOLVED ({}): set its address", one_line(why))
        }
    };
    let _ = writeln!(out, "    address: {}  # {address_note}", s.address);
    // Kerberos names the service by the host's DNS name: the name WSUS reported.
    let kerberos = d.auth == AuthKind::Kerberos || d.kdc.is_some();
    if kerberos
        && s.address != s.name
        && s.address.parse::<std::net::IpAddr>().is_ok()
        && s.name.parse::<std::net::IpAddr>().is_err()
        && crate::core::inventory::check_address(&s.name).is_ok()
    {
        let _ = writeln!(
            out,
            "    host: {}  # its service principal: HTTP/{}",
            s.name, s.name
        );
    }
    match (s.version, &s.version_string) {
        (Some(v), Some(vs)) => {
            let _ = writeln!(out, "    version: {}  # {}", v.as_str(), one_line(vs));
        }
        (Some(v), None) => {
            let _ = writeln!(out, "    version: {}", v.as_str());
        }
        (None, Some(vs)) => {
            let _ = writeln!(
                out,
                "    # It reports version {}, which is not WSUS 3.0: the default playbook has no path for it.",
                one_line(vs)
            );
        }
        (None, None) => {}
    }
    if let Some(a) = s.arch {
        let _ = writeln!(out, "    arch: {}", a.as_str());
    }
    match s.site {
        Some(own) if Some(own) != site => {
            let _ = writeln!(out, "    wsus: {}", site_text(own));
        }
        Some(_) => {}
        None if site.is_some() => {
            let _ = writeln!(
                out,
                "    # Its WSUS site is not known (no downstream server reports it): the default applies."
            );
        }
        None => {}
    }
    let _ = writeln!(
        out,
        "    # clients: {{ pc-name: {{ address: 192.0.2.10 }} }}  # canary clients to add"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::inventory;

    fn server(name: &str, upstream: Option<&str>, role: Role) -> FoundServer {
        FoundServer {
            name: name.into(),
            upstream: upstream.map(str::to_string),
            role,
            address: format!("127.0.1.{}", name.bytes().map(u32::from).sum::<u32>() % 250),
            address_source: AddressSource::HostsFile,
            version: Some(WsusVersion::Rtm),
            version_string: Some("3.0.6000.273".into()),
            arch: Some(Arch::X86),
            site: None,
            reached: Ok(()),
            notes: Vec::new(),
        }
    }

    fn discovery(servers: Vec<FoundServer>) -> Discovery {
        Discovery {
            root: "hq".into(),
            username: "LAB\\wsusfix".into(),
            password: "env:WSUSFIX_PASSWORD".into(),
            scheme: Scheme::Http,
            port: 5985,
            auth: AuthKind::Negotiate,
            ca_file: None,
            kdc: None,
            hosts_file: Some("sim-hosts".into()),
            servers,
            not_contacted: Vec::new(),
        }
    }

    #[test]
    fn the_output_validates_and_keeps_the_hierarchy() {
        let mut hq = server("hq", None, Role::Upstream);
        hq.site = Some(WsusSite {
            port: 8530,
            ssl: false,
        });
        hq.version = Some(WsusVersion::Sp1);
        hq.version_string = Some("3.1.6001.65".into());
        hq.arch = Some(Arch::X64);
        let mut eu = server("eu", Some("hq"), Role::Replica);
        eu.site = Some(WsusSite {
            port: 443,
            ssl: true,
        });
        let mut berlin = server("eu-berlin", Some("eu"), Role::Autonomous);
        berlin.site = hq.site;
        let mut paris = server("eu-paris", Some("eu"), Role::Replica);
        paris.reached = Err("127.0.1.8:5985: connection refused\n(after 3 attempts)".into());
        paris.arch = None;
        let mut lost = server("lost.example.com", Some("hq"), Role::Autonomous);
        lost.address = "lost.example.com".into();
        lost.address_source =
            AddressSource::Unresolved("not in sim-hosts, and DNS has no such name".into());
        lost.reached = Err("its name did not resolve".into());
        lost.notes
            .push("it reports its upstream as hq.example.com".into());
        let d = discovery(vec![hq, eu, paris, berlin, lost]);
        let text = render(&d);
        let loaded = inventory::load(&text);
        assert!(
            loaded.diagnostics.is_empty(),
            "{text}\n{:?}",
            loaded.diagnostics
        );
        let inv = loaded.inventory.unwrap();
        let got: Vec<(String, Role, Option<String>)> = inv
            .servers()
            .iter()
            .map(|s| (s.name.clone(), s.role, s.upstream.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("eu".to_string(), Role::Replica, Some("hq".to_string())),
                ("eu-berlin".into(), Role::Autonomous, Some("eu".into())),
                ("eu-paris".into(), Role::Replica, Some("eu".into())),
                ("hq".into(), Role::Upstream, None),
                (
                    "lost.example.com".into(),
                    Role::Autonomous,
                    Some("hq".into())
                ),
            ]
        );
        assert_eq!(inv.get("eu").unwrap().wsus.port, 443);
        assert_eq!(inv.get("eu-berlin").unwrap().wsus.port, 8530);
        assert_eq!(inv.get("eu-paris").unwrap().wsus.port, 8530, "the default");
        assert_eq!(inv.get("hq").unwrap().version, Some(WsusVersion::Sp1));
        assert_eq!(inv.get("hq").unwrap().credentials.username, "LAB\\wsusfix");
        assert!(
            text.contains(
                "    # NOT REACHED: 127.0.1.8:5985: connection refused (after 3 attempts)\n"
            ),
            "{text}"
        );
        assert!(text.contains("address: lost.example.com  # NOT RESOLVED (not in sim-hosts, and DNS has no such name): set its address"), "{text}");
        assert!(text.contains("# - incomplete: 2 servers could not be read (NOT REACHED below); 1 name did not resolve (NOT RESOLVED below)."), "{text}");
        assert!(text.contains("#   hq (upstream, 3.0 SP1)\n#   |-- eu (replica, 3.0 RTM)\n#   |   |-- eu-berlin (autonomous, 3.0 RTM)\n#   |   `-- eu-paris (replica, 3.0 RTM, not reached)\n#   `-- lost.example.com (autonomous, 3.0 RTM, not reached)\n"), "{text}");
        assert!(text.contains("    # it reports its upstream as hq.example.com\n"));
    }

    #[test]
    fn a_ca_file_is_written_into_the_defaults() {
        let mut d = discovery(vec![server("hq", None, Role::Upstream)]);
        d.scheme = Scheme::Https;
        d.port = 5986;
        d.ca_file = Some("/etc/wsusfix/it's ca.pem".into());
        let text = render(&d);
        let inv = inventory::load(&text).inventory.expect("valid");
        let w = &inv.servers()[0].winrm;
        assert_eq!(w.scheme, Scheme::Https);
        assert_eq!(w.ca_file.as_deref(), Some("/etc/wsusfix/it's ca.pem"));
        d.ca_file = None;
        assert!(!render(&d).contains("ca_file"));
    }

    #[test]
    fn a_second_name_for_one_address_is_written_by_name() {
        let hq = server("hq", None, Role::Upstream);
        let mut alias = server("hq-alias", Some("hq"), Role::Autonomous);
        alias.address = hq.address.clone();
        let text = render(&discovery(vec![hq, alias]));
        let inv = inventory::load(&text).inventory.expect("valid");
        assert_eq!(inv.get("hq-alias").unwrap().address, "hq-alias");
        assert!(text.contains("# hq-alias resolves to 127.0.1."), "{text}");
    }

    #[test]
    fn quotes_in_references_survive() {
        let mut d = discovery(vec![server("hq", None, Role::Upstream)]);
        d.password = "file:it's here #1.txt".into();
        let text = render(&d);
        let inv = inventory::load(&text).inventory.expect("valid");
        assert_eq!(
            inv.servers()[0].credentials.password.to_string(),
            "file:it's here #1.txt"
        );
        assert!(text.contains("No downstream server reported its upstream's WSUS site"));
    }

    #[test]
    fn an_unknown_release_is_a_comment_not_a_version() {
        let mut hq = server("hq", None, Role::Upstream);
        hq.version = None;
        hq.version_string = Some("6.2.9200.16384".into());
        let text = render(&discovery(vec![hq]));
        assert!(text.contains("# It reports version 6.2.9200.16384, which is not WSUS 3.0"));
        let inv = inventory::load(&text).inventory.expect("valid");
        assert_eq!(inv.servers()[0].version, None);
    }

    #[test]
    fn servers_not_contacted_are_comments_only() {
        let mut d = discovery(vec![server("hq", None, Role::Upstream)]);
        d.not_contacted.push(NotContacted {
            name: "rogue.evil.example\n  x: 1".into(),
            listed_by: "hq".into(),
            role: Role::Replica,
            version: Some(WsusVersion::Rtm),
            why: "outside the allow-list".into(),
        });
        let text = render(&d);
        let inv = inventory::load(&text).inventory.expect("valid");
        assert_eq!(inv.servers().len(), 1);
        assert!(
            text.contains(
                "#     rogue.evil.example x: 1 (replica of hq, 3.0 RTM): outside the allow-list\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "# - not contacted: 1 server listed as downstream is outside the allow-list"
        ));
    }

    #[test]
    fn server_text_cannot_break_out_of_a_comment() {
        let mut hq = server("hq", None, Role::Upstream);
        hq.version_string =
            Some("3.0.6000.273\n    insecure_skip_tls_verify: true\u{85}\x1b[2J".into());
        hq.notes.push("note\r\n  evil: yes".into());
        let text = render(&discovery(vec![hq]));
        let loaded = inventory::load(&text);
        assert!(
            loaded.diagnostics.is_empty(),
            "{text}\n{:?}",
            loaded.diagnostics
        );
        assert!(
            !loaded.inventory.unwrap().servers()[0]
                .winrm
                .insecure_skip_tls_verify
        );
        assert!(
            text.contains(
                "version: 3.0-rtm  # 3.0.6000.273 insecure_skip_tls_verify: true \\e[2J\n"
            ),
            "{text}"
        );
    }
}
