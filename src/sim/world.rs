//! The simulated world: WSUS 3.0 servers and client computers with the behaviour KB 954960
//! describes, seeded and deterministic for a given order of operations.
//!
//! The rules that give the simulator its teeth:
//! - approving or declining on a replica fails ("Cannot perform this action when the server is in
//!   replica mode");
//! - a replica that synchronises copies its upstream's update state, corruption included, so a
//!   replica fixed before its upstream is broken again by its next sync;
//! - the approval state is repaired only by the reset in the article's order: approve (no change)
//!   while the update is declined, then decline again; approving an update that is not declined
//!   leaves the duplicate approvals in place;
//! - hotfix 954960 repairs an SP1 server only when the current culture equals the install
//!   language during the install; otherwise the DLL stays 3.1.6001.65; it cannot be uninstalled,
//!   and it restarts IIS-hosted services;
//! - a client's detection fails with 0x8024400E while its server is broken, and the server logs
//!   the duplicate-key error with the same fault ID; the first detection after a repair may fail
//!   once.
//!
//! This module knows nothing of the executor or of WinRM; `sim::dispatch` maps scripts onto it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::logs::{self, WuWriter};
use super::scenario::{Declined, Scenario, ServiceStart, default_packages};
use super::timing::{self, Part, Timing};
use crate::core::inventory::{Arch, Inventory, Role, WsusVersion};
use crate::util::prng::Prng;

/// The Office 2003 SP1 update of KB 954960.
pub const OFFICE_UPDATE_ID: &str = "D359F493-0AAD-43FA-AF5C-6763326CD98F";
/// The All Computers target group.
pub const ALL_COMPUTERS: &str = "A0A08746-4DBE-4A37-9ADF-9E7652C0B421";
/// The IIS-hosted services the hotfix restarts.
pub const IIS_SERVICES: [&str; 4] = ["W3SVC", "MSFTPSVC", "NNTPSVC", "SMTPSVC"];
/// The client web service DLL, relative to the WSUS install folder.
pub const CLIENT_DLL: &str =
    "WebServices\\ClientWebService\\bin\\Microsoft.UpdateServices.WebServices.Client.dll";
/// File version of an SP1 client web service before the hotfix (or after a wrong install).
pub const DLL_SP1_UNFIXED: &str = "3.1.6001.65";
/// File version after a correct install of hotfix 954960.
pub const DLL_SP1_FIXED: &str = "3.1.6001.66";

/// A service's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ServiceState {
    /// Running.
    Running,
    /// Stopped.
    Stopped,
    /// Not installed.
    NotInstalled,
}

impl ServiceState {
    /// The name scripts print.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Running => "Running",
            ServiceState::Stopped => "Stopped",
            ServiceState::NotInstalled => "NotInstalled",
        }
    }
}

/// The Office 2003 SP1 update on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateState {
    /// Synchronised to this server at all.
    pub synced: bool,
    /// Declined.
    pub declined: bool,
    /// The inconsistent (duplicated) approval state of KB 954960.
    pub corrupted: bool,
    /// Approvals as (group, action), when not declined.
    pub approvals: Vec<(String, String)>,
    /// An approval without changes happened while the update was declined: the next decline
    /// completes the article's reset.
    pub reset_armed: bool,
}

/// Counters of non-idempotent actions, to prove nothing ran twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Times the hotfix installer ran.
    pub hotfix_installs: u32,
    /// Times IsReplicaServer changed.
    pub mode_switches: u32,
    /// Synchronisations.
    pub syncs: u32,
    /// Approve calls.
    pub approvals: u32,
    /// Decline calls that changed something.
    pub declines: u32,
    /// Culture changes.
    pub culture_changes: u32,
}

/// One simulated WSUS server.
#[derive(Debug, Clone)]
pub struct SimServer {
    /// Its inventory name.
    pub name: String,
    /// Its DNS name, as its upstream lists it among its downstream servers: the inventory's
    /// `host:` (a domain member's FQDN), else its name.
    pub dns_name: String,
    /// The release it runs.
    pub version: WsusVersion,
    /// Architecture.
    pub arch: Arch,
    /// Culture during the WSUS install.
    pub install_language: String,
    /// Current culture.
    pub current_culture: String,
    /// The culture at the start of the simulation (an admin's chosen setting to give back).
    pub original_culture: String,
    /// IsReplicaServer.
    pub replica: bool,
    /// SyncFromMicrosoftUpdate.
    pub sync_from_mu: bool,
    /// Upstream server name, port, ssl (when not syncing from Microsoft Update).
    pub upstream: Option<(String, u16, bool)>,
    /// Its WSUS site.
    pub site: (u16, bool),
    /// The Office 2003 SP1 update.
    pub update: UpdateState,
    /// Client web service DLL FileVersion.
    pub dll_version: String,
    /// Installed hotfixes (they do not show in Add or Remove Programs).
    pub hotfixes: Vec<u32>,
    /// IIS-hosted services.
    pub services: BTreeMap<String, ServiceState>,
    /// A service that does not come back after the hotfix.
    pub service_stays_down: Option<String>,
    /// SoftwareDistribution.log lines.
    pub softdist: Vec<String>,
    /// Configuration saves report busy for this many more polls.
    pub config_busy_polls: u32,
    /// Last synchronisation result.
    pub last_sync: Option<(DateTime<Utc>, String)>,
    /// Counters.
    pub counters: Counters,
    /// Timing, milliseconds `[min, max]`.
    pub latency_ms: [u64; 2],
    /// Install duration, milliseconds.
    pub install_ms: [u64; 2],
    /// Sync duration, milliseconds.
    pub sync_ms: [u64; 2],
    /// The installer asks for a reboot.
    pub reboot_required: bool,
    /// Stable server ID.
    pub id: String,
}

impl SimServer {
    /// Clients of this server fail detection with KB 954960's fault.
    pub fn broken(&self) -> bool {
        self.update.synced && self.update.corrupted && self.dll_version != DLL_SP1_FIXED
    }

    /// The VersionString the registry holds.
    pub fn version_string(&self) -> &'static str {
        match self.version {
            WsusVersion::Rtm => "3.0.6000.273",
            WsusVersion::Sp1 => "3.1.6001.65",
            WsusVersion::Sp2 => "3.2.7600.226",
        }
    }

    /// The approvals scripts see: the duplicated state shows as the same group twice.
    pub fn visible_approvals(&self) -> Vec<(String, String)> {
        if self.update.declined || !self.update.synced {
            return Vec::new();
        }
        let mut a = self.update.approvals.clone();
        if self.update.corrupted {
            a.push((ALL_COMPUTERS.to_string(), "Install".to_string()));
            a.push((ALL_COMPUTERS.to_string(), "Install".to_string()));
        }
        a
    }

    /// The client web service URL.
    pub fn client_url(&self) -> String {
        logs::client_service_url(&self.name, self.site.0, self.site.1)
    }
}

/// Result of one detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectionResult {
    /// Found updates.
    Succeeded,
    /// Failed.
    Failed,
}

/// One simulated client computer.
#[derive(Debug, Clone)]
pub struct SimClient {
    /// Name.
    pub name: String,
    /// The WSUS server it reports to.
    pub server: String,
    /// WindowsUpdate.log lines.
    pub log: Vec<String>,
    /// Last detection.
    pub last_detection: Option<DetectionResult>,
    /// Its last failure came from a broken server: the first detection after the repair may
    /// still fail.
    pub failed_on_broken_server: bool,
    /// Probability of that one extra failure.
    pub retry_failure_probability: f64,
    /// Detection duration, milliseconds.
    pub detect_ms: [u64; 2],
    /// Writer of its log lines.
    pub writer: WuWriter,
    /// Detections run.
    pub detections: u32,
}

/// A failure an operation reports the way the real script would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpFailure {
    /// The contract's error kind.
    pub kind: &'static str,
    /// The .NET exception type.
    pub error_type: &'static str,
    /// The message.
    pub message: String,
    /// Extra keys.
    pub extra: Vec<(String, String)>,
}

impl OpFailure {
    fn new(kind: &'static str, error_type: &'static str, message: impl Into<String>) -> Self {
        OpFailure {
            kind,
            error_type,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    fn replica_mode() -> Self {
        OpFailure::new(
            "replica-mode",
            "System.InvalidOperationException",
            "Cannot perform this action when the server is in replica mode",
        )
    }

    fn not_synced(update: &str) -> Self {
        OpFailure::new(
            "not-synced",
            "Microsoft.UpdateServices.Administration.WsusObjectNotFoundException",
            format!("The requested update {update} could not be found."),
        )
    }
}

/// What an operation produced: result keys (or a failure) and how long it took.
#[derive(Debug, Clone)]
pub struct OpOutcome {
    /// Keys on success, or the failure.
    pub result: Result<Vec<(String, String)>, OpFailure>,
    /// Simulated duration before the answer.
    pub duration: Duration,
}

/// The whole world.
#[derive(Debug, Clone)]
pub struct World {
    /// Seed of every draw.
    pub seed: u64,
    /// Servers by name.
    pub servers: BTreeMap<String, SimServer>,
    /// Clients by name.
    pub clients: BTreeMap<String, SimClient>,
    /// The file share: lowercase path -> content.
    pub share: BTreeMap<String, Vec<u8>>,
    rng: Prng,
    /// How durations are drawn.
    timing: Timing,
    /// Operations served so far, per host and operation name (numbers keyed draws).
    op_counts: HashMap<String, HashMap<String, u32>>,
}

fn kv(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

fn draw_ms(rng: &mut Prng, r: [u64; 2]) -> Duration {
    Duration::from_millis(timing::draw(rng, r))
}

fn guid(rng: &mut Prng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        (a & 0x0fff) | 0x4000,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

impl World {
    /// Builds the world of an inventory under a scenario. Servers without a stated version or
    /// architecture draw one from the seed.
    pub fn new(inv: &Inventory, scenario: &Scenario, now: DateTime<Utc>) -> Result<World, String> {
        let seed = scenario.seed.unwrap_or(954_960);
        let mut servers = BTreeMap::new();
        for s in inv.servers() {
            let sc = scenario.server(&s.name);
            let mut rng = Prng::derive(seed, &s.name);
            let version = match sc.version.as_deref() {
                Some(v) => WsusVersion::parse(v)
                    .ok_or_else(|| format!("scenario: server {}: unknown version `{v}`", s.name))?,
                None => s.version.unwrap_or(if rng.chance(0.5) {
                    WsusVersion::Rtm
                } else {
                    WsusVersion::Sp1
                }),
            };
            let arch = match sc.arch.as_deref() {
                Some("x86") => Arch::X86,
                Some("x64") => Arch::X64,
                Some(a) => return Err(format!("scenario: server {}: unknown arch `{a}`", s.name)),
                None => s.arch.unwrap_or(if rng.chance(0.5) {
                    Arch::X86
                } else {
                    Arch::X64
                }),
            };
            let role = match sc.actual_role.as_deref() {
                Some("upstream") => Role::Upstream,
                Some("replica") => Role::Replica,
                Some("autonomous") => Role::Autonomous,
                Some(r) => return Err(format!("scenario: server {}: unknown role `{r}`", s.name)),
                None => s.role,
            };
            let broken = sc.broken.unwrap_or(true) && version != WsusVersion::Sp2;
            let declined = match sc.declined.unwrap_or_default() {
                Declined::Yes => true,
                Declined::No => false,
                Declined::Random => rng.chance(0.5),
            };
            let install_language = sc
                .install_language
                .clone()
                .unwrap_or_else(|| "en-US".into());
            let current_culture = sc
                .current_culture
                .clone()
                .unwrap_or_else(|| install_language.clone());
            let mut services = BTreeMap::new();
            for name in IIS_SERVICES {
                let default = if name == "W3SVC" {
                    ServiceStart::Running
                } else {
                    ServiceStart::NotInstalled
                };
                let st = sc
                    .services
                    .as_ref()
                    .and_then(|m| m.get(name).copied())
                    .unwrap_or(default);
                services.insert(
                    name.to_string(),
                    match st {
                        ServiceStart::Running => ServiceState::Running,
                        ServiceStart::Stopped => ServiceState::Stopped,
                        ServiceStart::NotInstalled => ServiceState::NotInstalled,
                    },
                );
            }
            let upstream = s
                .upstream
                .as_ref()
                .and_then(|u| inv.get(u))
                .map(|u| (u.name.clone(), u.wsus.port, u.wsus.ssl));
            let dll_version = match version {
                WsusVersion::Rtm => "3.0.6000.273",
                WsusVersion::Sp1 => DLL_SP1_UNFIXED,
                WsusVersion::Sp2 => "3.2.7600.226",
            }
            .to_string();
            let synced = sc.update_synced.unwrap_or(true);
            let mut softdist = vec![logs::softdist_info(
                now - chrono::Duration::hours(6),
                "WsusService.13",
                "CatalogSyncAgentCore.ExecuteSyncProtocol",
                "Imported 3 updates; 1 revision of Office 2003 Service Pack 1 replaced",
            )];
            softdist.push(logs::softdist_info(
                now - chrono::Duration::hours(6),
                "WsusService.13",
                "EventLogEventReporter.ReportEvent",
                "EventId=384,Type=Information,Category=Synchronization,Message=Synchronization completed successfully.",
            ));
            let id = guid(&mut rng);
            servers.insert(
                s.name.clone(),
                SimServer {
                    name: s.name.clone(),
                    dns_name: s.spn_host.clone().unwrap_or_else(|| s.name.clone()),
                    version,
                    arch,
                    install_language,
                    original_culture: current_culture.clone(),
                    current_culture,
                    replica: role == Role::Replica,
                    sync_from_mu: role == Role::Upstream,
                    upstream: if role == Role::Upstream {
                        None
                    } else {
                        upstream
                    },
                    site: (s.wsus.port, s.wsus.ssl),
                    update: UpdateState {
                        synced,
                        declined: synced && declined,
                        corrupted: synced && broken,
                        approvals: Vec::new(),
                        reset_armed: false,
                    },
                    dll_version,
                    hotfixes: Vec::new(),
                    services,
                    service_stays_down: sc.service_stays_down.clone(),
                    softdist,
                    config_busy_polls: sc.config_busy_polls.unwrap_or(0),
                    last_sync: Some((now - chrono::Duration::hours(6), "Succeeded".into())),
                    counters: Counters::default(),
                    latency_ms: sc.latency_ms.unwrap_or([2, 10]),
                    install_ms: sc.install_ms.unwrap_or([150, 300]),
                    sync_ms: sc.sync_ms.unwrap_or([20, 60]),
                    reboot_required: sc.reboot_required.unwrap_or(false),
                    id,
                },
            );
        }
        for name in scenario.servers.keys() {
            if !servers.contains_key(name) {
                return Err(format!(
                    "scenario names a server `{name}` that is not in the inventory"
                ));
            }
        }
        let mut world = World {
            seed,
            servers,
            clients: BTreeMap::new(),
            share: BTreeMap::new(),
            rng: Prng::derive(seed, "world"),
            timing: scenario.timing,
            op_counts: HashMap::new(),
        };
        let packages = scenario.packages.clone().unwrap_or_else(default_packages);
        for (path, p) in packages {
            world
                .share
                .insert(path.to_ascii_lowercase(), p.content.into_bytes());
        }
        for (server, c) in inv.clients() {
            let cs = scenario.client(&c.name);
            let mut rng = Prng::derive(seed, &c.name);
            let writer = WuWriter {
                pid: rng.range(400, 1900) as u32,
                tid: rng.range(0x200, 0xfff) as u32,
            };
            let mut client = SimClient {
                name: c.name.clone(),
                server: server.name.clone(),
                log: Vec::new(),
                last_detection: None,
                failed_on_broken_server: false,
                retry_failure_probability: cs.first_detection_after_repair_fails.unwrap_or(0.5),
                detect_ms: cs.detect_ms.unwrap_or([20, 60]),
                writer,
                detections: 0,
            };
            let srv = &world.servers[&server.name];
            let url = srv.client_url();
            let earlier = now - chrono::Duration::hours(1);
            client.log.extend(
                client
                    .writer
                    .initialized(now - chrono::Duration::hours(2), &url),
            );
            // The scheduled detection an hour ago: it already shows the state of its server.
            let call = guid(&mut rng);
            if srv.broken() {
                let fault = guid(&mut rng);
                client.log.extend(
                    client
                        .writer
                        .detection_failed_kb954960(earlier, earlier, &call, &url, &fault),
                );
                client.failed_on_broken_server = true;
                client.last_detection = Some(DetectionResult::Failed);
                let thread = rng.range(5, 30) as u32;
                let lines = logs::softdist_duplicate_key(earlier, thread, 8862, &url, &fault);
                world
                    .servers
                    .get_mut(&server.name)
                    .expect("server")
                    .softdist
                    .extend(lines);
            } else {
                client.log.extend(
                    client
                        .writer
                        .detection_succeeded(earlier, earlier, &call, &url, 2, 68),
                );
                client.last_detection = Some(DetectionResult::Succeeded);
            }
            world.clients.insert(c.name.clone(), client);
        }
        for name in scenario.clients.keys() {
            if !world.clients.contains_key(name) {
                return Err(format!(
                    "scenario names a client `{name}` that is not in the inventory"
                ));
            }
        }
        Ok(world)
    }

    fn server_mut(&mut self, host: &str) -> &mut SimServer {
        self.servers.get_mut(host).expect("known server")
    }

    /// The base latency of an operation `op` arriving on `host` (drawn before the operation
    /// changes the world). Under keyed timing this also numbers the operation.
    pub fn latency(&mut self, host: &str, op: &str) -> Duration {
        let r = self
            .servers
            .get(host)
            .map(|s| s.latency_ms)
            .unwrap_or([2, 10]);
        match self.timing {
            Timing::Stream => draw_ms(&mut self.rng, r),
            Timing::Keyed => {
                let n = self
                    .op_counts
                    .entry(host.to_string())
                    .or_default()
                    .entry(op.to_string())
                    .or_insert(0);
                *n += 1;
                let nth = *n;
                Duration::from_millis(timing::keyed_ms(self.seed, host, op, nth, Part::Latency, r))
            }
        }
    }

    /// The work of the current `op` on `host` beyond its latency, drawn from `r`.
    fn work(&mut self, host: &str, op: &str, r: [u64; 2]) -> Duration {
        match self.timing {
            Timing::Stream => draw_ms(&mut self.rng, r),
            Timing::Keyed => Duration::from_millis(timing::keyed_ms(
                self.seed,
                host,
                op,
                self.served(host, op),
                Part::Work,
                r,
            )),
        }
    }

    /// How many `op` operations `host` has been asked for (counted under keyed timing only).
    pub fn served(&self, host: &str, op: &str) -> u32 {
        self.op_counts
            .get(host)
            .and_then(|m| m.get(op))
            .copied()
            .unwrap_or(0)
    }

    /// Operations asked of each host, by name (counted under keyed timing only).
    pub fn served_counts(&self) -> &HashMap<String, HashMap<String, u32>> {
        &self.op_counts
    }

    /// `facts`.
    pub fn facts(
        &mut self,
        host: &str,
        update: &str,
        since: Option<DateTime<Utc>>,
        services: &[String],
    ) -> OpOutcome {
        let s = &self.servers[host];
        let mut out = vec![
            kv("version_string", s.version_string()),
            kv("install_type", 1),
            kv("target_dir", "C:\\Program Files\\Update Services\\"),
            kv("replica", s.replica),
            kv("sync_from_mu", s.sync_from_mu),
        ];
        // The configuration always has these properties; a server that syncs from Microsoft
        // Update keeps an empty name.
        let (n, p, ssl) = s.upstream.clone().unwrap_or((String::new(), 80, false));
        out.push(kv("upstream_name", n));
        out.push(kv("upstream_port", p));
        out.push(kv("upstream_ssl", ssl));
        out.push(kv(
            "config_state",
            if s.config_busy_polls > 0 {
                "ProcessingSave"
            } else {
                "Ready"
            },
        ));
        out.push(kv("sync_status", "NotProcessing"));
        out.push(kv(
            "last_sync_result",
            s.last_sync
                .as_ref()
                .map(|(_, r)| r.as_str())
                .unwrap_or("NeverRun"),
        ));
        out.push(kv("install_language", &s.install_language));
        out.push(kv("current_culture", &s.current_culture));
        out.push(kv("arch", s.arch.as_str()));
        out.push(kv("dll_version", &s.dll_version));
        let known_update = update.eq_ignore_ascii_case(OFFICE_UPDATE_ID);
        out.push(kv("update_synced", s.update.synced && known_update));
        if s.update.synced && known_update {
            out.push(kv("update_declined", s.update.declined));
            out.push(kv("update_publication_state", "Expired"));
            for (g, a) in s.visible_approvals() {
                out.push(kv("update_approval", format!("{g}|{a}")));
            }
        }
        for name in services {
            let st = s
                .services
                .get(&name.to_ascii_uppercase())
                .copied()
                .unwrap_or(ServiceState::NotInstalled);
            out.push(kv("service", format!("{name}|{}", st.as_str())));
        }
        for record in softdist_records(&s.softdist, since) {
            if record.contains("Item has already been added") {
                out.push(kv("softdist_record", record));
            }
        }
        OpOutcome {
            result: Ok(out),
            duration: Duration::ZERO,
        }
    }

    /// `set_replica`: waits while the configuration is busy (up to `timeout`), then saves.
    pub fn set_replica(
        &mut self,
        host: &str,
        replica: bool,
        timeout: Duration,
        now: DateTime<Utc>,
    ) -> OpOutcome {
        const POLL: Duration = Duration::from_millis(20);
        let s = self.server_mut(host);
        let busy = s.config_busy_polls;
        let waited = POLL * busy;
        // The real script polls once a second; the simulator compresses each poll to 20 ms and
        // the timeout in the same proportion.
        if u64::from(busy) > timeout.as_secs() {
            s.config_busy_polls = busy.saturating_sub(timeout.as_secs() as u32 + 1);
            return OpOutcome {
                result: Err(OpFailure::new(
                    "config-busy",
                    "System.InvalidOperationException",
                    "The configuration is being saved by another process (state ProcessingSave).",
                )),
                duration: POLL * (timeout.as_secs() as u32 + 1),
            };
        }
        s.config_busy_polls = 0;
        if s.replica == replica {
            return OpOutcome {
                result: Ok(vec![kv("changed", false), kv("replica", replica)]),
                duration: waited,
            };
        }
        if replica && s.upstream.is_none() {
            return OpOutcome {
                result: Err(OpFailure::new(
                    "other",
                    "Microsoft.UpdateServices.Administration.WsusInvalidDataException",
                    "UpstreamWsusServerName must be set for a replica server.",
                )),
                duration: waited,
            };
        }
        s.replica = replica;
        s.sync_from_mu = false;
        s.counters.mode_switches += 1;
        s.update.reset_armed = false;
        s.softdist.push(logs::softdist_change(
            now,
            "w3wp.9",
            "UpdateServerConfiguration.Save",
            &format!(
                "IsReplicaServer changed to {}",
                if replica { "True" } else { "False" }
            ),
        ));
        OpOutcome {
            result: Ok(vec![kv("changed", true), kv("replica", replica)]),
            duration: waited,
        }
    }

    fn check_update(s: &SimServer, update: &str) -> Result<(), OpFailure> {
        if !update.eq_ignore_ascii_case(OFFICE_UPDATE_ID) || !s.update.synced {
            return Err(OpFailure::not_synced(update));
        }
        if s.replica {
            return Err(OpFailure::replica_mode());
        }
        Ok(())
    }

    /// `ensure_declined`.
    pub fn ensure_declined(&mut self, host: &str, update: &str) -> OpOutcome {
        let s = self.server_mut(host);
        if let Err(e) = Self::check_update(s, update) {
            return OpOutcome {
                result: Err(e),
                duration: Duration::ZERO,
            };
        }
        if s.update.declined {
            return OpOutcome {
                result: Ok(vec![kv("changed", false), kv("declined", true)]),
                duration: Duration::ZERO,
            };
        }
        Self::do_decline(s);
        OpOutcome {
            result: Ok(vec![kv("changed", true), kv("declined", true)]),
            duration: Duration::ZERO,
        }
    }

    fn do_decline(s: &mut SimServer) {
        // Declining removes the approvals of every revision; it completes the reset only when an
        // approval without changes was made while the update was declined.
        if s.update.reset_armed {
            s.update.corrupted = false;
            s.update.reset_armed = false;
        }
        s.update.declined = true;
        s.update.approvals.clear();
        s.counters.declines += 1;
    }

    /// `approve_unchanged`: Approve(NotApproved, group).
    pub fn approve_unchanged(&mut self, host: &str, update: &str, group: &str) -> OpOutcome {
        let s = self.server_mut(host);
        if let Err(e) = Self::check_update(s, update) {
            return OpOutcome {
                result: Err(e),
                duration: Duration::ZERO,
            };
        }
        if !group.eq_ignore_ascii_case(ALL_COMPUTERS) {
            return OpOutcome {
                result: Err(OpFailure::new(
                    "other",
                    "Microsoft.UpdateServices.Administration.WsusObjectNotFoundException",
                    format!("The requested computer target group {group} could not be found."),
                )),
                duration: Duration::ZERO,
            };
        }
        s.counters.approvals += 1;
        // The "approve without changes" rewrites the deployments of every revision, dropping the
        // duplicates, only when it starts from the declined state.
        s.update.reset_armed = s.update.declined;
        s.update.declined = false;
        s.update.approvals = vec![(ALL_COMPUTERS.to_string(), "NotApproved".to_string())];
        OpOutcome {
            result: Ok(vec![kv("approved", true)]),
            duration: Duration::ZERO,
        }
    }

    /// `decline`.
    pub fn decline(&mut self, host: &str, update: &str) -> OpOutcome {
        let s = self.server_mut(host);
        if let Err(e) = Self::check_update(s, update) {
            return OpOutcome {
                result: Err(e),
                duration: Duration::ZERO,
            };
        }
        let changed = !s.update.declined || s.update.reset_armed;
        Self::do_decline(s);
        OpOutcome {
            result: Ok(vec![kv("changed", changed), kv("declined", true)]),
            duration: Duration::ZERO,
        }
    }

    /// `install_hotfix`.
    pub fn install_hotfix(
        &mut self,
        host: &str,
        kb: u32,
        path: &str,
        sha256: &str,
        now: DateTime<Utc>,
    ) -> OpOutcome {
        let content = self.share.get(&path.to_ascii_lowercase()).cloned();
        let duration = {
            let r = self.servers[host].install_ms;
            self.work(host, "install_hotfix", r)
        };
        let Some(content) = content else {
            return OpOutcome {
                result: Err(OpFailure::new(
                    "package-missing",
                    "System.IO.FileNotFoundException",
                    format!("Could not find file '{path}'."),
                )),
                duration: Duration::ZERO,
            };
        };
        use sha2::{Digest, Sha256};
        let actual: String = Sha256::digest(&content)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !actual.eq_ignore_ascii_case(sha256) {
            let mut f = OpFailure::new(
                "hash-mismatch",
                "System.Security.SecurityException",
                format!(
                    "The SHA-256 of '{path}' is {actual}, expected {sha256}; the package was not run."
                ),
            );
            f.extra.push(kv("actual_sha256", &actual));
            return OpOutcome {
                result: Err(f),
                duration: Duration::ZERO,
            };
        }
        let s = self.server_mut(host);
        s.counters.hotfix_installs += 1;
        if s.version != WsusVersion::Sp1 {
            let mut f = OpFailure::new(
                "install-failed",
                "System.ComponentModel.Win32Exception",
                format!(
                    "The installer exited with 1603: the update does not apply to WSUS {}.",
                    s.version.display()
                ),
            );
            f.extra.push(kv("exit_code", 1603));
            return OpOutcome {
                result: Err(f),
                duration,
            };
        }
        // The install stops and restarts the IIS-hosted services.
        for (name, st) in s.services.iter_mut() {
            if *st == ServiceState::Running {
                *st = if s.service_stays_down.as_deref() == Some(name.as_str()) {
                    ServiceState::Stopped
                } else {
                    ServiceState::Running
                };
            }
        }
        if !s.hotfixes.contains(&kb) {
            s.hotfixes.push(kb);
            if s.current_culture.eq_ignore_ascii_case(&s.install_language) {
                s.dll_version = DLL_SP1_FIXED.to_string();
                s.update.corrupted = false;
            }
            s.softdist.push(logs::softdist_info(
                now,
                "WsusService.5",
                "WsusService.OnStart",
                "WSUS service started after an update of its web services",
            ));
        }
        let code = if s.reboot_required { 3010 } else { 0 };
        OpOutcome {
            result: Ok(vec![
                kv("exit_code", code),
                kv("reboot_required", code == 3010),
            ]),
            duration,
        }
    }

    /// `file_version`.
    pub fn file_version(&mut self, host: &str, path: &str) -> OpOutcome {
        let s = &self.servers[host];
        let result = if path.eq_ignore_ascii_case(CLIENT_DLL) {
            vec![kv("exists", true), kv("version", &s.dll_version)]
        } else {
            vec![kv("exists", false), kv("version", "")]
        };
        OpOutcome {
            result: Ok(result),
            duration: Duration::ZERO,
        }
    }

    /// `services`: states, waiting for `wait_running` up to `timeout` (compressed).
    pub fn services(
        &mut self,
        host: &str,
        names: &[String],
        wait_running: &[String],
        timeout: Duration,
    ) -> OpOutcome {
        let s = &self.servers[host];
        let state = |n: &str| {
            s.services
                .get(&n.to_ascii_uppercase())
                .copied()
                .unwrap_or(ServiceState::NotInstalled)
        };
        let keys: Vec<(String, String)> = names
            .iter()
            .map(|n| kv("service", format!("{n}|{}", state(n).as_str())))
            .collect();
        let down: Vec<&String> = wait_running
            .iter()
            .filter(|n| state(n) != ServiceState::Running)
            .collect();
        if down.is_empty() {
            return OpOutcome {
                result: Ok(keys),
                duration: Duration::ZERO,
            };
        }
        let mut f = OpFailure::new(
            "timeout",
            "System.TimeoutException",
            format!(
                "{} did not reach Running within {} s",
                down.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                timeout.as_secs()
            ),
        );
        f.extra = keys;
        OpOutcome {
            result: Err(f),
            duration: Duration::from_millis(timeout.as_millis().min(200) as u64),
        }
    }

    /// `sync_now`: a replica copies its upstream's update state (corruption included, unless
    /// its own hotfixed client web service deduplicates it); an autonomous server receives the
    /// update's metadata only.
    pub fn sync_now(&mut self, host: &str, now: DateTime<Utc>) -> OpOutcome {
        let duration = {
            let r = self.servers[host].sync_ms;
            self.work(host, "sync_now", r)
        };
        let (upstream, replica) = {
            let s = &self.servers[host];
            (s.upstream.as_ref().map(|u| u.0.clone()), s.replica)
        };
        let from_mu = self.servers[host].sync_from_mu;
        let copied = match (&upstream, from_mu) {
            (_, true) => None,
            (Some(u), false) => match self.servers.get(u) {
                Some(up) => Some(up.update.clone()),
                None => {
                    let mut f = OpFailure::new(
                        "sync-failed",
                        "System.Net.WebException",
                        format!("The upstream server {u} could not be contacted."),
                    );
                    f.extra.push(kv("result", "Failed"));
                    f.extra.push(kv(
                        "error_text",
                        format!("The upstream server {u} could not be contacted."),
                    ));
                    return OpOutcome {
                        result: Err(f),
                        duration,
                    };
                }
            },
            (None, false) => None,
        };
        let s = self.server_mut(host);
        s.counters.syncs += 1;
        if let Some(up) = copied {
            if replica {
                let dedupe = s.dll_version == DLL_SP1_FIXED;
                s.update = UpdateState {
                    corrupted: up.corrupted && !dedupe,
                    reset_armed: false,
                    ..up
                };
            } else {
                s.update.synced = s.update.synced || up.synced;
            }
        }
        let started = now;
        let finished = now + chrono::Duration::from_std(duration).unwrap_or_default();
        s.last_sync = Some((finished, "Succeeded".into()));
        s.softdist.push(logs::softdist_info(
            finished,
            "WsusService.13",
            "EventLogEventReporter.ReportEvent",
            "EventId=384,Type=Information,Category=Synchronization,Message=Synchronization completed successfully.",
        ));
        OpOutcome {
            result: Ok(vec![
                kv("result", "Succeeded"),
                kv("started", started.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
                kv("finished", finished.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
            ]),
            duration,
        }
    }

    /// `child_servers`: the servers that sync directly from `host`.
    pub fn child_servers(&mut self, host: &str) -> OpOutcome {
        let parent_id = self.servers[host].id.clone();
        let mut out = Vec::new();
        for s in self.servers.values() {
            if s.upstream.as_ref().is_some_and(|u| u.0 == host) {
                let last = s
                    .last_sync
                    .as_ref()
                    .map(|(t, _)| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                    .unwrap_or_else(|| "1753-01-01T00:00:00.000Z".into());
                out.push(kv(
                    "child",
                    format!(
                        "{}|{}|{}|{last}|{}|{parent_id}",
                        s.dns_name,
                        s.replica,
                        s.version_string(),
                        s.id
                    ),
                ));
            }
        }
        OpOutcome {
            result: Ok(out),
            duration: Duration::ZERO,
        }
    }

    /// `set_culture`.
    pub fn set_culture(&mut self, host: &str, culture: &str) -> OpOutcome {
        let valid = culture.len() <= 12
            && culture.split('-').count() >= 2
            && culture
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return OpOutcome {
                result: Err(OpFailure::new(
                    "bad-culture",
                    "System.ArgumentException",
                    format!("Culture name '{culture}' is not supported."),
                )),
                duration: Duration::ZERO,
            };
        }
        let s = self.server_mut(host);
        let previous = std::mem::replace(&mut s.current_culture, culture.to_string());
        if !previous.eq_ignore_ascii_case(culture) {
            s.counters.culture_changes += 1;
        }
        OpOutcome {
            result: Ok(vec![kv("previous", previous), kv("current", culture)]),
            duration: Duration::ZERO,
        }
    }

    /// `detect_now` on a client: its detection calls its server.
    pub fn detect_now(&mut self, client: &str, now: DateTime<Utc>) -> OpOutcome {
        let (server, detect_ms) = {
            let c = &self.clients[client];
            (c.server.clone(), c.detect_ms)
        };
        let duration = self.work(client, "detect_now", detect_ms);
        let end = now + chrono::Duration::from_std(duration).unwrap_or_default();
        let call = guid(&mut self.rng);
        let (broken, url) = {
            let s = &self.servers[&server];
            (s.broken(), s.client_url())
        };
        let retry_roll = self.rng.next_f64();
        let fault = guid(&mut self.rng);
        let thread = self.rng.range(5, 30) as u32;
        let c = self.clients.get_mut(client).expect("known client");
        c.detections += 1;
        let lines;
        if broken {
            lines = c
                .writer
                .detection_failed_kb954960(now, end, &call, &url, &fault);
            c.failed_on_broken_server = true;
            c.last_detection = Some(DetectionResult::Failed);
            let s = self.servers.get_mut(&server).expect("server");
            s.softdist.extend(logs::softdist_duplicate_key(
                end, thread, 8862, &url, &fault,
            ));
        } else if c.failed_on_broken_server && retry_roll < c.retry_failure_probability {
            // The first detection after the repair still fails (the client's cached sync state);
            // the next one succeeds.
            lines = c
                .writer
                .detection_failed_kb954960(now, end, &call, &url, &fault);
            c.failed_on_broken_server = false;
            c.last_detection = Some(DetectionResult::Failed);
        } else {
            lines = c.writer.detection_succeeded(now, end, &call, &url, 3, 71);
            c.failed_on_broken_server = false;
            c.last_detection = Some(DetectionResult::Succeeded);
        }
        c.log.extend(lines.iter().cloned());
        let mut out: Vec<(String, String)> = lines.into_iter().map(|l| kv("line", l)).collect();
        out.push(kv("completed", true));
        OpOutcome {
            result: Ok(out),
            duration,
        }
    }
}

/// Splits SoftwareDistribution.log lines into records (a record and its continuation lines),
/// keeping those at or after `since`.
fn softdist_records(lines: &[String], since: Option<DateTime<Utc>>) -> Vec<String> {
    let mut records: Vec<(Option<DateTime<Utc>>, String)> = Vec::new();
    for l in lines {
        let t = l
            .get(..23)
            .and_then(|p| chrono::NaiveDateTime::parse_from_str(p, "%Y-%m-%d %H:%M:%S%.3f").ok())
            .map(|n| n.and_utc());
        match (t, records.last_mut()) {
            (None, Some(last)) => {
                last.1.push_str("\r\n");
                last.1.push_str(l);
            }
            _ => records.push((t, l.clone())),
        }
    }
    records
        .into_iter()
        .filter(|(t, _)| match (t, since) {
            (Some(t), Some(s)) => *t >= s,
            _ => true,
        })
        .map(|(_, r)| r)
        .collect()
}

/// The world as JSON for `sim state` (docs/simulator.md).
#[derive(Debug, Serialize)]
pub struct StateView {
    /// Per server.
    pub servers: BTreeMap<String, ServerView>,
    /// Per client.
    pub clients: BTreeMap<String, ClientView>,
}

/// A server in the state view.
#[derive(Debug, Serialize)]
pub struct ServerView {
    /// IsReplicaServer.
    pub replica: bool,
    /// The approvals are consistent (the KB 954960 state is gone).
    pub approvals_consistent: bool,
    /// Clients of this server can detect.
    pub healthy: bool,
    /// The WSUS release.
    pub version: WsusVersion,
    /// The update is declined.
    pub update_declined: bool,
    /// Client web service DLL FileVersion (null when the server has no SP1 DLL).
    pub dll_version: Option<String>,
    /// Installed hotfixes.
    pub hotfixes: Vec<u32>,
    /// Times the hotfix installer ran.
    pub hotfix_installs: u32,
    /// Times IsReplicaServer changed.
    pub mode_switches: u32,
    /// Synchronisations.
    pub syncs: u32,
    /// Current culture.
    pub current_culture: String,
    /// The culture at the start (an admin's choice, to be given back).
    pub original_culture: String,
    /// Install language.
    pub install_language: String,
    /// Services.
    pub services: BTreeMap<String, ServiceState>,
}

/// A client in the state view.
#[derive(Debug, Serialize)]
pub struct ClientView {
    /// Its server.
    pub server: String,
    /// The last detection's result.
    pub last_detection: Option<DetectionResult>,
    /// Detections run.
    pub detections: u32,
    /// The last lines of its WindowsUpdate.log.
    pub log_tail: Vec<String>,
}

impl World {
    /// The state view.
    pub fn view(&self) -> StateView {
        StateView {
            servers: self
                .servers
                .iter()
                .map(|(n, s)| {
                    (
                        n.clone(),
                        ServerView {
                            replica: s.replica,
                            approvals_consistent: !s.update.corrupted,
                            healthy: !s.broken(),
                            version: s.version,
                            update_declined: s.update.declined,
                            dll_version: (s.version == WsusVersion::Sp1)
                                .then(|| s.dll_version.clone()),
                            hotfixes: s.hotfixes.clone(),
                            hotfix_installs: s.counters.hotfix_installs,
                            mode_switches: s.counters.mode_switches,
                            syncs: s.counters.syncs,
                            current_culture: s.current_culture.clone(),
                            original_culture: s.original_culture.clone(),
                            install_language: s.install_language.clone(),
                            services: s.services.clone(),
                        },
                    )
                })
                .collect(),
            clients: self
                .clients
                .iter()
                .map(|(n, c)| {
                    (
                        n.clone(),
                        ClientView {
                            server: c.server.clone(),
                            last_detection: c.last_detection,
                            detections: c.detections,
                            log_tail: c.log.iter().rev().take(40).rev().cloned().collect(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Every server repaired, every replica a replica again, every client detecting.
    pub fn repaired(&self, inv: &Inventory) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for s in inv.servers() {
            let w = &self.servers[&s.name];
            if w.update.corrupted && w.version != WsusVersion::Sp2 {
                problems.push(format!("{}: approvals still inconsistent", s.name));
            }
            if (s.role == Role::Replica) != w.replica {
                problems.push(format!(
                    "{}: replica flag is {} (inventory role {})",
                    s.name, w.replica, s.role
                ));
            }
            if !w.current_culture.eq_ignore_ascii_case(&w.original_culture) {
                problems.push(format!(
                    "{}: culture left at {} (was {})",
                    s.name, w.current_culture, w.original_culture
                ));
            }
        }
        for c in self.clients.values() {
            if c.last_detection != Some(DetectionResult::Succeeded) {
                problems.push(format!("{}: last detection {:?}", c.name, c.last_detection));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
