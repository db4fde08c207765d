//! The hierarchy walk of `wsusfix discover`: from a root server, read each server's facts
//! (version, replica flag, upstream) and its child servers through the WSUS API, then do the same
//! for every child, level by level, several servers at once. A child that cannot be resolved or
//! read is kept, with the reason, as its upstream lists it; only a root that cannot be read ends
//! the walk.
//!
//! A server learns of its children from what its upstream reports, and logging on to one hands
//! it the account's NTLM response (enough for an offline password guess). So the walk logs on
//! only to children inside an [`AllowList`] (DNS suffixes and networks from `--allow`, or the
//! names of the `--hosts` file); the others, and names that are no host names, are returned as
//! found but not contacted. Only the root, which the user named, is always contacted.
//!
//! Name resolution and reading go through a [`Probe`], so the walk itself is tested without a
//! network; [`WinrmProbe`] is the real one.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::connect::{Connector, Target};
use super::retry::RetryPolicy;
use super::retry::retrying;
use crate::core::discovered::{AddressSource, FoundServer, NotContacted};
use crate::core::hosts::HostsFile;
use crate::core::inventory::{
    Arch, Credentials, Role, WinrmTarget, WsusSite, WsusVersion, check_address, check_name,
};
use crate::wsus::{ChildServer, Upstream, WsusOps};

/// What the walk learns from one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// Its release.
    pub version: Option<WsusVersion>,
    /// Its `VersionString`.
    pub version_string: String,
    /// Its architecture.
    pub arch: Arch,
    /// `IsReplicaServer`.
    pub replica: bool,
    /// `SyncFromMicrosoftUpdate`.
    pub sync_from_mu: bool,
    /// Where it synchronises from.
    pub upstream: Upstream,
    /// The servers that synchronise directly from it.
    pub children: Vec<ChildServer>,
}

/// Where a name resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What goes into `address:`.
    pub address: String,
    /// Where it came from.
    pub source: AddressSource,
    /// The IP addresses the name stands for now.
    pub ips: Vec<IpAddr>,
}

/// Which downstream servers the walk may log on to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    /// DNS suffixes, lower case, without a leading dot: `corp.example` allows `corp.example` and
    /// every name that ends in `.corp.example`.
    suffixes: Vec<String>,
    /// Networks: an address and a prefix length.
    networks: Vec<(IpAddr, u8)>,
}

/// Why a child may be contacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    /// Its name is in the hosts file, or ends in an allowed suffix.
    ByName,
    /// Every address it resolved to is in an allowed network: it is read at the first of them,
    /// not looked up again.
    ByAddress(IpAddr),
}

impl AllowList {
    /// Parses `--allow` values: a DNS suffix (`corp.example`, `.corp.example`), a network
    /// (`10.1.0.0/16`, `fd00::/8`) or one address.
    pub fn parse(items: &[String]) -> Result<AllowList, String> {
        let mut allow = AllowList::default();
        for item in items {
            let item = item.trim();
            if let Some((addr, bits)) = item.split_once('/') {
                let addr: IpAddr = addr
                    .parse()
                    .map_err(|_| format!("--allow `{item}`: `{addr}` is not an IP address"))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let bits: u8 = bits.parse().ok().filter(|b| *b <= max).ok_or_else(|| {
                    format!("--allow `{item}`: the prefix length must be 0 to {max}")
                })?;
                allow.networks.push((addr, bits));
            } else if let Ok(addr) = item.parse::<IpAddr>() {
                allow
                    .networks
                    .push((addr, if addr.is_ipv4() { 32 } else { 128 }));
            } else {
                let suffix = item
                    .trim_start_matches('.')
                    .trim_end_matches('.')
                    .to_ascii_lowercase();
                if suffix.is_empty() || check_address(&suffix).is_err() {
                    return Err(format!(
                        "--allow `{item}` is neither a DNS suffix (corp.example) nor a network (10.1.0.0/16)"
                    ));
                }
                allow.suffixes.push(suffix);
            }
        }
        Ok(allow)
    }

    /// True when nothing is allowed beyond the hosts file.
    pub fn is_empty(&self) -> bool {
        self.suffixes.is_empty() && self.networks.is_empty()
    }

    fn name_allowed(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.suffixes
            .iter()
            .any(|s| name == *s || name.ends_with(&format!(".{s}")))
    }

    fn address_allowed(&self, ip: IpAddr) -> bool {
        self.networks
            .iter()
            .any(|(net, bits)| in_network(ip, *net, *bits))
    }

    /// Whether a child that resolved as `r` may be contacted.
    fn check(&self, name: &str, r: &Resolved) -> Option<Allowed> {
        if r.source == AddressSource::HostsFile || self.name_allowed(name) {
            return Some(Allowed::ByName);
        }
        let first = *r.ips.first()?;
        r.ips
            .iter()
            .all(|ip| self.address_allowed(*ip))
            .then_some(Allowed::ByAddress(first))
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Resolves names and reads servers.
pub trait Probe: Send + Sync + 'static {
    /// Where `name` is.
    fn resolve(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Resolved, String>> + Send;
    /// Reads the server `name` at `address`.
    fn read(
        &self,
        name: &str,
        address: &str,
    ) -> impl std::future::Future<Output = Result<Reading, String>> + Send;
}

/// A server waiting to be read.
#[derive(Debug, Clone)]
struct Pending {
    /// Its inventory name.
    name: String,
    /// What to resolve.
    host: String,
    /// The server that listed it (name and address).
    upstream: Option<(String, String)>,
    /// How that server listed it.
    listed: Option<ChildServer>,
    /// Remarks about its name.
    notes: Vec<String>,
}

/// The inventory name of a server WSUS reports as `fqdn`: lower case, and only the characters
/// an inventory name may hold.
pub fn inventory_name(fqdn: &str) -> (String, Option<String>) {
    let lower = fqdn.trim().trim_end_matches('.').to_ascii_lowercase();
    if check_name(&lower).is_ok() {
        return (lower, None);
    }
    let cleaned: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned
        .trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    let cleaned = if cleaned.is_empty() {
        "unnamed-server".to_string()
    } else {
        cleaned
    };
    (
        cleaned,
        Some(format!(
            "WSUS reports its name as `{fqdn}`, which an inventory name cannot hold"
        )),
    )
}

fn host_part(name: &str) -> String {
    name.split('.').next().unwrap_or(name).to_ascii_lowercase()
}

/// What the walk found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walked {
    /// The servers, root first, then level by level, by name within a level.
    pub servers: Vec<FoundServer>,
    /// Servers listed as downstream that were not logged on to, in the order found.
    pub not_contacted: Vec<NotContacted>,
}

/// Walks the hierarchy below `root_host` (named `root_name` in the inventory), logging on only
/// to the root and to children `allow` admits.
pub async fn walk<P: Probe>(
    probe: Arc<P>,
    root_name: &str,
    root_host: &str,
    parallel: usize,
    allow: &AllowList,
) -> Result<Walked, String> {
    let allow = Arc::new(allow.clone());
    let mut not_contacted: Vec<NotContacted> = Vec::new();
    let permits = Arc::new(Semaphore::new(parallel.max(1)));
    let mut seen: HashSet<String> = HashSet::from([root_name.to_ascii_lowercase()]);
    let mut level = vec![Pending {
        name: root_name.to_string(),
        host: root_host.to_string(),
        upstream: None,
        listed: None,
        notes: Vec::new(),
    }];
    let mut found: Vec<FoundServer> = Vec::new();
    // What each reached downstream server says of its upstream's WSUS site.
    let mut sites: BTreeMap<String, Vec<(String, WsusSite)>> = BTreeMap::new();
    while !level.is_empty() {
        let mut tasks = JoinSet::new();
        for (i, p) in level.iter().cloned().enumerate() {
            let probe = probe.clone();
            let permits = permits.clone();
            let allow = allow.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let resolved = probe.resolve(&p.host).await;
                let is_root = p.upstream.is_none();
                // Where to log on, if at all.
                let contact = match &resolved {
                    Ok(r) if is_root => Some(r.address.clone()),
                    Ok(r) => match allow.check(&p.host, r) {
                        Some(Allowed::ByName) => Some(r.address.clone()),
                        Some(Allowed::ByAddress(ip)) => Some(ip.to_string()),
                        None => None,
                    },
                    Err(_) => None,
                };
                let refused = !is_root
                    && contact.is_none()
                    && !(resolved.is_err() && allow.name_allowed(&p.host));
                let read = match &contact {
                    Some(address) => Some(probe.read(&p.name, address).await),
                    None => None,
                };
                (i, resolved, read, refused)
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(r) => results.push(r),
                Err(e) => return Err(format!("the walk failed: {e}")),
            }
        }
        results.sort_by_key(|(i, _, _, _)| level[*i].name.clone());
        let mut next = Vec::new();
        for (i, resolved, read, refused) in results {
            let p = &level[i];
            let is_root = p.upstream.is_none();
            if is_root {
                match (&resolved, &read) {
                    (Err(e), _) => return Err(format!("cannot resolve the root {}: {e}", p.host)),
                    (Ok(r), Some(Err(e))) => {
                        return Err(format!(
                            "cannot read the root {} at {}: {e}",
                            p.host, r.address
                        ));
                    }
                    _ => {}
                }
            }
            if refused {
                let listed_by = p
                    .upstream
                    .as_ref()
                    .map(|(n, _)| n.clone())
                    .unwrap_or_default();
                not_contacted.push(NotContacted {
                    name: p.host.clone(),
                    listed_by,
                    role: match &p.listed {
                        Some(c) if c.is_replica => Role::Replica,
                        _ => Role::Autonomous,
                    },
                    version: p.listed.as_ref().and_then(|c| c.wsus_version),
                    why: match &resolved {
                        Ok(r) => format!(
                            "outside the allow-list (it is {}{})",
                            r.ips
                                .iter()
                                .map(IpAddr::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                            if r.source == AddressSource::Resolver {
                                " by DNS"
                            } else {
                                ""
                            }
                        ),
                        Err(_) => "outside the allow-list (and its name does not resolve)".into(),
                    },
                });
                continue;
            }
            let (address, source) = match &resolved {
                Ok(r) => (r.address.clone(), r.source.clone()),
                Err(e) => (p.host.clone(), AddressSource::Unresolved(e.clone())),
            };
            let mut s = FoundServer {
                name: p.name.clone(),
                upstream: p.upstream.as_ref().map(|(n, _)| n.clone()),
                role: match (&p.upstream, &p.listed) {
                    (None, _) => Role::Upstream,
                    (Some(_), Some(c)) if c.is_replica => Role::Replica,
                    _ => Role::Autonomous,
                },
                address: address.clone(),
                address_source: source,
                version: p.listed.as_ref().and_then(|c| c.wsus_version),
                version_string: p.listed.as_ref().map(|c| c.version.clone()),
                arch: None,
                site: None,
                reached: Ok(()),
                notes: p.notes.clone(),
            };
            match read {
                None => {
                    s.reached = Err("its name did not resolve, so it was not asked".into());
                }
                Some(Err(e)) => s.reached = Err(e),
                Some(Ok(r)) => {
                    s.version = r.version;
                    s.version_string = Some(r.version_string.clone());
                    s.arch = Some(r.arch);
                    match &p.upstream {
                        None => {
                            if !r.sync_from_mu {
                                s.notes.push(format!(
                                    "it synchronises from {}, not from Microsoft Update: servers above it are not in this inventory (run discover from the top server)",
                                    if r.upstream.name.is_empty() { "another WSUS server" } else { r.upstream.name.as_str() }
                                ));
                            }
                        }
                        Some((up_name, up_address)) => {
                            s.role = if r.replica {
                                Role::Replica
                            } else {
                                Role::Autonomous
                            };
                            if let Some(c) = &p.listed
                                && c.is_replica != r.replica
                            {
                                s.notes.push(format!(
                                    "{up_name} lists it as {}, but its own configuration says {}",
                                    if c.is_replica {
                                        "a replica"
                                    } else {
                                        "autonomous"
                                    },
                                    if r.replica { "replica" } else { "autonomous" }
                                ));
                            }
                            if r.sync_from_mu {
                                s.notes.push(format!(
                                    "it synchronises from Microsoft Update, yet {up_name} lists it as a downstream server"
                                ));
                            } else {
                                let named = &r.upstream.name;
                                let same = named.is_empty()
                                    || host_part(named) == host_part(up_name)
                                    || named.eq_ignore_ascii_case(up_address);
                                if !same {
                                    s.notes.push(format!(
                                        "it reports its upstream as {named}, but {up_name} lists it"
                                    ));
                                }
                                sites.entry(up_name.clone()).or_default().push((
                                    s.name.clone(),
                                    WsusSite {
                                        port: r.upstream.port,
                                        ssl: r.upstream.ssl,
                                    },
                                ));
                            }
                        }
                    }
                    let mut children = r.children.clone();
                    children.sort_by(|a, b| a.fqdn.cmp(&b.fqdn));
                    for c in children {
                        if let Err((why, _)) = check_address(c.fqdn.trim_end_matches('.')) {
                            // A name that is no host name is not looked up, let alone logged on to.
                            not_contacted.push(NotContacted {
                                name: c.fqdn.clone(),
                                listed_by: s.name.clone(),
                                role: if c.is_replica {
                                    Role::Replica
                                } else {
                                    Role::Autonomous
                                },
                                version: c.wsus_version,
                                why: format!("its reported name is not a host name: {why}"),
                            });
                            continue;
                        }
                        let (name, note) = inventory_name(&c.fqdn);
                        if !seen.insert(name.to_ascii_lowercase()) {
                            s.notes.push(format!(
                                "it lists {name} as a downstream server, which was found already"
                            ));
                            continue;
                        }
                        next.push(Pending {
                            name,
                            host: c.fqdn.clone(),
                            upstream: Some((s.name.clone(), address.clone())),
                            listed: Some(c),
                            notes: note.into_iter().collect(),
                        });
                    }
                }
            }
            found.push(s);
        }
        level = next;
    }
    for s in &mut found {
        let Some(reports) = sites.get(&s.name) else {
            continue;
        };
        let (_, first) = reports[0];
        s.site = Some(first);
        if let Some((other, site)) = reports.iter().find(|(_, x)| *x != first) {
            s.notes.push(format!(
                "its downstream servers disagree on its WSUS site: {} uses port {} (ssl {}), {other} port {} (ssl {})",
                reports[0].0, first.port, first.ssl, site.port, site.ssl
            ));
        }
    }
    Ok(Walked {
        servers: found,
        not_contacted,
    })
}

/// The real probe: names from a hosts file, else the system resolver; servers over WinRM.
pub struct WinrmProbe<C: Connector> {
    /// Makes the WinRM sessions.
    pub connector: Arc<C>,
    /// The `--hosts` file and how to name it in messages.
    pub hosts: Option<(HostsFile, String)>,
    /// How every server is reached.
    pub winrm: WinrmTarget,
    /// The account.
    pub credentials: Credentials,
    /// The UpdateID the facts ask about.
    pub update: String,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

/// How long the system resolver may take for one name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

impl<C: Connector> Probe for WinrmProbe<C> {
    async fn resolve(&self, name: &str) -> Result<Resolved, String> {
        if let Some((h, _)) = &self.hosts
            && let Some(ip) = h.lookup(name)
        {
            return Ok(Resolved {
                address: ip.to_string(),
                source: AddressSource::HostsFile,
                ips: vec![ip],
            });
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            return Ok(Resolved {
                address: name.to_string(),
                source: AddressSource::Given,
                ips: vec![ip],
            });
        }
        let looked =
            tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, 0))).await;
        let why = match looked {
            Ok(Ok(addrs)) => {
                let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                ips.dedup();
                if !ips.is_empty() {
                    return Ok(Resolved {
                        address: name.to_string(),
                        source: AddressSource::Resolver,
                        ips,
                    });
                }
                "the system resolver returned no address".to_string()
            }
            Ok(Err(e)) => format!("the system resolver does not know it ({e})"),
            Err(_) => format!(
                "the system resolver did not answer within {} s",
                RESOLVE_TIMEOUT.as_secs()
            ),
        };
        Err(match &self.hosts {
            Some((_, file)) => format!("{name} is not in {file}, and {why}"),
            None => why,
        })
    }

    async fn read(&self, name: &str, address: &str) -> Result<Reading, String> {
        let target = Target {
            name: name.to_string(),
            address: address.to_string(),
            // The name WSUS reports is the host's DNS name: the one in its service principal.
            spn_host: (name.parse::<IpAddr>().is_err()).then(|| name.to_ascii_lowercase()),
            winrm: self.winrm.clone(),
            credentials: self.credentials.clone(),
        };
        let remote = self.connector.connect(&target)?;
        let mut ops = WsusOps::new(remote);
        let since = Utc::now();
        let facts = retrying!(
            self.retry,
            crate::exec::facts::READ_SEED,
            format!("{name}/facts"),
            ops.facts(&self.update, Some(since), &[] as &[&str])
        );
        let children = match &facts {
            Ok(_) => Some(retrying!(
                self.retry,
                crate::exec::facts::READ_SEED,
                format!("{name}/child_servers"),
                ops.child_servers()
            )),
            Err(_) => None,
        };
        C::close(ops.remote_mut()).await;
        let f = facts.map_err(|e| e.to_string())?;
        let children = children
            .unwrap_or_else(|| Ok(Vec::new()))
            .map_err(|e| e.to_string())?;
        Ok(Reading {
            version: f.version,
            version_string: f.version_string,
            arch: f.arch,
            replica: f.replica,
            sync_from_mu: f.sync_from_mu,
            upstream: f.upstream,
            children,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A world of servers by name: (address or resolution error, reading or read error). Names
    /// in `hosts` are in the hosts file; names in `dns` resolve by DNS.
    #[derive(Default)]
    struct Fake {
        hosts: BTreeMap<String, Result<String, String>>,
        dns: BTreeMap<String, Vec<IpAddr>>,
        servers: BTreeMap<String, Result<Reading, String>>,
        /// Every (name, address) read.
        reads: std::sync::Mutex<Vec<(String, String)>>,
    }

    impl Probe for Fake {
        async fn resolve(&self, name: &str) -> Result<Resolved, String> {
            if let Some(ips) = self.dns.get(name) {
                return Ok(Resolved {
                    address: name.to_string(),
                    source: AddressSource::Resolver,
                    ips: ips.clone(),
                });
            }
            match self.hosts.get(name) {
                Some(Ok(a)) => Ok(Resolved {
                    address: a.clone(),
                    source: AddressSource::HostsFile,
                    ips: vec![a.parse().unwrap()],
                }),
                Some(Err(e)) => Err(e.clone()),
                None => Err(format!("{name} is unknown")),
            }
        }

        async fn read(&self, name: &str, address: &str) -> Result<Reading, String> {
            self.reads
                .lock()
                .unwrap()
                .push((name.to_string(), address.to_string()));
            self.servers
                .get(name)
                .cloned()
                .unwrap_or_else(|| Err(format!("{name}: connection refused")))
        }
    }

    fn child(fqdn: &str, replica: bool, version: &str) -> ChildServer {
        ChildServer {
            fqdn: fqdn.into(),
            is_replica: replica,
            version: version.into(),
            wsus_version: WsusVersion::from_version_string(version),
            last_sync: None,
            id: "00000000-0000-0000-0000-000000000001".into(),
            parent_id: "00000000-0000-0000-0000-000000000002".into(),
        }
    }

    fn reading(replica: bool, upstream: &str, children: Vec<ChildServer>) -> Reading {
        Reading {
            version: Some(WsusVersion::Rtm),
            version_string: "3.0.6000.273".into(),
            arch: Arch::X64,
            replica,
            sync_from_mu: upstream.is_empty(),
            upstream: Upstream {
                name: upstream.into(),
                port: 8530,
                ssl: false,
            },
            children,
        }
    }

    fn fake() -> Fake {
        let mut hosts = BTreeMap::new();
        let mut servers = BTreeMap::new();
        hosts.insert("hq".to_string(), Ok("127.0.1.1".to_string()));
        hosts.insert("EU.example.com".to_string(), Ok("127.0.1.2".to_string()));
        hosts.insert("paris".to_string(), Ok("127.0.1.4".to_string()));
        hosts.insert(
            "lost".to_string(),
            Err("lost is not in hosts, and DNS does not know it".to_string()),
        );
        servers.insert(
            "hq".to_string(),
            Ok(reading(
                false,
                "",
                vec![
                    child("EU.example.com", true, "3.0.6000.273"),
                    child("lost", false, "3.1.6001.65"),
                ],
            )),
        );
        servers.insert(
            "eu.example.com".to_string(),
            Ok(reading(
                true,
                "hq.example.com",
                vec![
                    child("paris", true, "3.0.6000.273"),
                    child("hq", false, "3.0.6000.273"),
                ],
            )),
        );
        Fake {
            hosts,
            servers,
            ..Fake::default()
        }
    }

    fn walk_with(f: Arc<Fake>, root: &str, allow: &[&str]) -> Result<Walked, String> {
        let allow =
            AllowList::parse(&allow.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(walk(f, root, root, 4, &allow))
    }

    fn run(f: Fake, root: &str) -> Result<Vec<FoundServer>, String> {
        walk_with(Arc::new(f), root, &[]).map(|w| w.servers)
    }

    #[test]
    fn the_walk_keeps_what_it_cannot_reach_or_resolve() {
        // Unresolved, `lost` is kept (to set its address) when its name is allowed...
        let found = walk_with(Arc::new(fake()), "hq", &["lost"])
            .unwrap()
            .servers;
        let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["hq", "eu.example.com", "lost", "paris"]);
        let hq = &found[0];
        assert_eq!(hq.role, Role::Upstream);
        assert_eq!(
            hq.site,
            Some(WsusSite {
                port: 8530,
                ssl: false
            })
        );
        let eu = &found[1];
        assert_eq!(
            (eu.role, eu.upstream.as_deref()),
            (Role::Replica, Some("hq"))
        );
        assert_eq!(eu.address, "127.0.1.2");
        assert!(
            eu.notes
                .iter()
                .any(|n| n == "it lists hq as a downstream server, which was found already"),
            "{:?}",
            eu.notes
        );
        let lost = &found[2];
        assert_eq!(lost.role, Role::Autonomous);
        assert_eq!(lost.version, Some(WsusVersion::Sp1), "as hq lists it");
        assert_eq!(lost.address, "lost");
        assert!(
            matches!(&lost.address_source, AddressSource::Unresolved(e) if e.contains("DNS does not know it"))
        );
        assert!(lost.reached.is_err());
        let paris = &found[3];
        assert_eq!(paris.role, Role::Replica);
        assert_eq!(paris.upstream.as_deref(), Some("eu.example.com"));
        assert_eq!(paris.reached, Err("paris: connection refused".to_string()));
        // ... and only named, as not contacted, when it is not.
        let w = walk_with(Arc::new(fake()), "hq", &[]).unwrap();
        assert_eq!(w.servers.len(), 3);
        assert_eq!(w.not_contacted.len(), 1);
        assert_eq!(
            w.not_contacted[0].why,
            "outside the allow-list (and its name does not resolve)"
        );
    }

    #[test]
    fn a_root_that_cannot_be_read_ends_the_walk() {
        let mut f = fake();
        f.servers.remove("hq");
        let e = run(f, "hq").unwrap_err();
        assert_eq!(
            e,
            "cannot read the root hq at 127.0.1.1: hq: connection refused"
        );
        let e = run(fake(), "lost").unwrap_err();
        assert!(e.starts_with("cannot resolve the root lost: "), "{e}");
    }

    #[test]
    fn a_root_below_another_server_is_noted() {
        let mut f = fake();
        f.servers
            .insert("hq".to_string(), Ok(reading(false, "corp-top", Vec::new())));
        let found = run(f, "hq").unwrap();
        assert!(
            found[0].notes[0]
                .starts_with("it synchronises from corp-top, not from Microsoft Update")
        );
    }

    #[test]
    fn names_an_inventory_cannot_hold_are_cleaned() {
        assert_eq!(
            inventory_name("WSUS-EU.Contoso.COM."),
            ("wsus-eu.contoso.com".to_string(), None)
        );
        let (n, note) = inventory_name("_wsus eu");
        assert_eq!(n, "wsus-eu");
        assert!(note.unwrap().contains("`_wsus eu`"));
    }

    /// hq lists a rogue child that DNS places outside the lab, one inside 10.9.0.0/16, one in
    /// corp.example, and a "name" that is no host name.
    fn rogue_world() -> Fake {
        let mut f = fake();
        f.servers.insert(
            "hq".to_string(),
            Ok(reading(
                false,
                "",
                vec![
                    child("rogue.evil.example", true, "3.0.6000.273"),
                    child("branch.corp.example", false, "3.0.6000.273"),
                    child("lab-box", false, "3.0.6000.273"),
                    child("bad name\n  x: 1", false, "3.0.6000.273"),
                ],
            )),
        );
        f.dns.insert(
            "rogue.evil.example".into(),
            vec!["203.0.113.9".parse().unwrap()],
        );
        f.dns.insert(
            "branch.corp.example".into(),
            vec!["198.51.100.7".parse().unwrap()],
        );
        f.dns.insert(
            "lab-box".into(),
            vec!["10.9.1.2".parse().unwrap(), "10.9.1.3".parse().unwrap()],
        );
        f
    }

    #[test]
    fn children_outside_the_allow_list_are_found_but_not_contacted() {
        let f = Arc::new(rogue_world());
        let w = walk_with(f.clone(), "hq", &[]).unwrap();
        let names: Vec<&str> = w.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["hq"]);
        let skipped: Vec<(&str, &str)> = w
            .not_contacted
            .iter()
            .map(|c| (c.name.as_str(), c.why.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [
                (
                    "bad name\n  x: 1",
                    "its reported name is not a host name: `bad name\n  x: 1` is neither an IP address nor a valid host name"
                ),
                (
                    "branch.corp.example",
                    "outside the allow-list (it is 198.51.100.7 by DNS)"
                ),
                (
                    "lab-box",
                    "outside the allow-list (it is 10.9.1.2, 10.9.1.3 by DNS)"
                ),
                (
                    "rogue.evil.example",
                    "outside the allow-list (it is 203.0.113.9 by DNS)"
                ),
            ]
        );
        assert_eq!(w.not_contacted[3].role, Role::Replica);
        assert_eq!(w.not_contacted[3].listed_by, "hq");
        assert_eq!(
            *f.reads.lock().unwrap(),
            [("hq".to_string(), "127.0.1.1".to_string())]
        );

        let f = Arc::new(rogue_world());
        let w = walk_with(f.clone(), "hq", &[".corp.example", "10.9.0.0/16"]).unwrap();
        let names: Vec<&str> = w.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["hq", "branch.corp.example", "lab-box"]);
        let reads = f.reads.lock().unwrap().clone();
        assert!(reads.contains(&("branch.corp.example".into(), "branch.corp.example".into())));
        // Allowed by its network: read at the address that was checked, not looked up again.
        assert!(
            reads.contains(&("lab-box".into(), "10.9.1.2".into())),
            "{reads:?}"
        );
        assert_eq!(
            w.servers[2].address, "lab-box",
            "the inventory keeps the name"
        );
        let skipped: Vec<&str> = w.not_contacted.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(skipped, ["bad name\n  x: 1", "rogue.evil.example"]);
    }

    #[test]
    fn allow_list_values() {
        let a = AllowList::parse(&[
            "Corp.Example.".into(),
            "10.0.0.0/8".into(),
            "fd00::/8".into(),
            "192.0.2.1".into(),
        ])
        .unwrap();
        assert!(a.name_allowed("wsus.corp.example"));
        assert!(a.name_allowed("CORP.EXAMPLE"));
        assert!(!a.name_allowed("evilcorp.example"));
        assert!(a.address_allowed("10.200.0.1".parse().unwrap()));
        assert!(!a.address_allowed("11.0.0.1".parse().unwrap()));
        assert!(a.address_allowed("fd12::1".parse().unwrap()));
        assert!(a.address_allowed("192.0.2.1".parse().unwrap()));
        assert!(!a.address_allowed("192.0.2.2".parse().unwrap()));
        assert!(
            AllowList::parse(&["0.0.0.0/0".into()])
                .unwrap()
                .address_allowed("8.8.8.8".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "x/8", "", "a b"] {
            assert!(AllowList::parse(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(AllowList::default().is_empty());
    }
}
