//! Scenarios: what is broken in the simulated world and which faults to inject, per host
//! (docs/simulator.md). Read with serde_yaml; unknown keys are errors with their line and column.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::timing::Timing;

/// Whether the Office 2003 SP1 update starts declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Declined {
    /// Declined.
    Yes,
    /// Not declined.
    No,
    /// Drawn from the seed per server.
    #[default]
    Random,
}

/// A state of an IIS-hosted service at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceStart {
    /// Running.
    Running,
    /// Installed, stopped.
    Stopped,
    /// Not installed.
    NotInstalled,
}

/// Per-server world settings. Every field is optional; unset ones come from `defaults`, then
/// from the inventory, then from the seed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerScenario {
    /// The approvals start inconsistent (the KB 954960 state).
    pub broken: Option<bool>,
    /// Whether the update starts declined.
    pub declined: Option<Declined>,
    /// The update was never synchronised to this server.
    pub update_synced: Option<bool>,
    /// The real version (`3.0-rtm`, `3.0-sp1`, `3.0-sp2`) when the inventory does not say, or
    /// to contradict it.
    pub version: Option<String>,
    /// `x86` or `x64`.
    pub arch: Option<String>,
    /// The role the server really has (`upstream`, `replica`, `autonomous`), to contradict the
    /// inventory.
    pub actual_role: Option<String>,
    /// The culture WSUS was installed under.
    pub install_language: Option<String>,
    /// The current culture.
    pub current_culture: Option<String>,
    /// Configuration saves report "busy" for this many polls.
    pub config_busy_polls: Option<u32>,
    /// A service that does not come back after the hotfix restarts IIS services.
    pub service_stays_down: Option<String>,
    /// Service states at start.
    pub services: Option<BTreeMap<String, ServiceStart>>,
    /// Milliseconds added to each operation: `[min, max]`.
    pub latency_ms: Option<[u64; 2]>,
    /// Milliseconds a hotfix install takes: `[min, max]`.
    pub install_ms: Option<[u64; 2]>,
    /// Milliseconds a synchronisation takes: `[min, max]`.
    pub sync_ms: Option<[u64; 2]>,
    /// The installer exits 3010 (reboot required).
    pub reboot_required: Option<bool>,
}

/// Per-client settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientScenario {
    /// Probability that the first detection after its server's repair still fails (the article
    /// reports customers seeing this).
    pub first_detection_after_repair_fails: Option<f64>,
    /// Milliseconds a detection takes: `[min, max]`.
    pub detect_ms: Option<[u64; 2]>,
}

/// Transport faults of one host (the WinRM endpoint injects them).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransportScenario {
    /// Connections are refused from the start.
    #[serde(default)]
    pub refuse: bool,
    /// Milliseconds added to every HTTP request.
    #[serde(default)]
    pub latency_ms: u64,
    /// The next N requests get HTTP 500.
    #[serde(default)]
    pub http500: u32,
    /// Each request gets HTTP 500 with this probability.
    #[serde(default)]
    pub http500_probability: f64,
    /// Each Receive first answers this many `w:TimedOut` faults.
    #[serde(default)]
    pub timed_out_storm: u32,
    /// Every credential is rejected.
    #[serde(default)]
    pub bad_credentials: bool,
    /// Extended Protection (CbtHardeningLevel=Strict): NTLM over HTTPS needs the channel binding.
    #[serde(default)]
    pub extended_protection: bool,
    /// The host dies (refuses connections) after this many requests.
    pub dies_after_requests: Option<u64>,
    /// The host stops answering (accepts, never replies) after this many requests.
    #[serde(default)]
    pub hangs_after_requests: Option<u64>,
    /// `false`: the host refuses NTLM logons (hardened: "Restrict NTLM: Deny all"), and only
    /// Kerberos works. Unset: `transport_defaults.ntlm`, else NTLM is allowed.
    pub ntlm: Option<bool>,
}

/// Transport settings for every host that does not set its own.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TransportDefaults {
    /// `false`: every host refuses NTLM (a hardened domain).
    pub ntlm: Option<bool>,
}

/// A share path and what it holds.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PackageScenario {
    /// The file's bytes, as text; its SHA-256 is what the server computes.
    pub content: String,
}

/// A whole scenario.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of every random draw.
    pub seed: Option<u64>,
    /// Settings for every server.
    #[serde(default)]
    pub defaults: ServerScenario,
    /// Settings for every client.
    #[serde(default)]
    pub client_defaults: ClientScenario,
    /// Per-server settings.
    #[serde(default)]
    pub servers: BTreeMap<String, ServerScenario>,
    /// Per-client settings.
    #[serde(default)]
    pub clients: BTreeMap<String, ClientScenario>,
    /// Per-host transport faults.
    #[serde(default)]
    pub transport: BTreeMap<String, TransportScenario>,
    /// Transport settings of every host (a host's own `transport` entry wins).
    #[serde(default)]
    pub transport_defaults: TransportDefaults,
    /// Files on the share, replacing the default packages when given.
    pub packages: Option<BTreeMap<String, PackageScenario>>,
    /// How operation durations are drawn (`stream` by default; `keyed` for benchmarks).
    #[serde(default)]
    pub timing: Timing,
}

/// The content of the simulator's copy of the KB 954960 package for `arch`; the default
/// playbook carries its SHA-256.
pub fn default_package_content(arch: &str) -> String {
    format!("wsusfix simulated package: WSUS 3.0 SP1 hotfix KB954960 {arch}\n")
}

/// The share paths of the default playbook's packages.
pub fn default_packages() -> BTreeMap<String, PackageScenario> {
    ["x86", "x64"]
        .into_iter()
        .map(|a| {
            (
                format!("\\\\fileserver\\wsusfix\\KB954960\\WSUS3SP1-KB954960-{a}.exe"),
                PackageScenario {
                    content: default_package_content(a),
                },
            )
        })
        .collect()
}

impl Scenario {
    /// Parses a scenario file; errors carry the line and column.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        if text.trim().is_empty() {
            return Ok(Scenario::default());
        }
        serde_yaml::from_str(text).map_err(|e| match e.location() {
            Some(l) => format!("{}:{}: {e}", l.line(), l.column()),
            None => e.to_string(),
        })
    }

    /// The settings of a server: its own over the defaults.
    pub fn server(&self, name: &str) -> ServerScenario {
        let d = &self.defaults;
        let s = self.servers.get(name).cloned().unwrap_or_default();
        ServerScenario {
            broken: s.broken.or(d.broken),
            declined: s.declined.or(d.declined),
            update_synced: s.update_synced.or(d.update_synced),
            version: s.version.or(d.version.clone()),
            arch: s.arch.or(d.arch.clone()),
            actual_role: s.actual_role.or(d.actual_role.clone()),
            install_language: s.install_language.or(d.install_language.clone()),
            current_culture: s.current_culture.or(d.current_culture.clone()),
            config_busy_polls: s.config_busy_polls.or(d.config_busy_polls),
            service_stays_down: s.service_stays_down.or(d.service_stays_down.clone()),
            services: s.services.or(d.services.clone()),
            latency_ms: s.latency_ms.or(d.latency_ms),
            install_ms: s.install_ms.or(d.install_ms),
            sync_ms: s.sync_ms.or(d.sync_ms),
            reboot_required: s.reboot_required.or(d.reboot_required),
        }
    }

    /// Whether `host` accepts NTLM logons.
    pub fn ntlm_allowed(&self, host: &str) -> bool {
        self.transport
            .get(host)
            .and_then(|t| t.ntlm)
            .or(self.transport_defaults.ntlm)
            .unwrap_or(true)
    }

    /// The settings of a client: its own over the defaults.
    pub fn client(&self, name: &str) -> ClientScenario {
        let d = &self.client_defaults;
        let c = self.clients.get(name).cloned().unwrap_or_default();
        ClientScenario {
            first_detection_after_repair_fails: c
                .first_detection_after_repair_fails
                .or(d.first_detection_after_repair_fails),
            detect_ms: c.detect_ms.or(d.detect_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_merges_defaults() {
        let s = Scenario::parse(
            "seed: 7\ndefaults: { broken: true, latency_ms: [1, 2] }\nservers:\n  a: { broken: false }\ntransport:\n  a: { http500: 2 }\n",
        )
        .unwrap();
        assert_eq!(s.seed, Some(7));
        assert_eq!(s.server("a").broken, Some(false));
        assert_eq!(s.server("b").broken, Some(true));
        assert_eq!(s.server("a").latency_ms, Some([1, 2]));
        assert_eq!(s.transport["a"].http500, 2);
    }

    #[test]
    fn hosts_can_refuse_ntlm() {
        let s = Scenario::parse(
            "transport_defaults: { ntlm: false }\ntransport:\n  a: { ntlm: true }\n  b: { http500: 1 }\n",
        )
        .unwrap();
        assert!(s.ntlm_allowed("a"));
        assert!(!s.ntlm_allowed("b"));
        assert!(!s.ntlm_allowed("c"));
        assert!(Scenario::default().ntlm_allowed("c"));
        let e = Scenario::parse("transport_defaults: { refuse: true }\n").unwrap_err();
        assert!(e.contains("refuse"), "{e}");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_position() {
        let e = Scenario::parse("servers:\n  a: { brokn: true }\n").unwrap_err();
        assert!(e.starts_with("2:"), "{e}");
        assert!(e.contains("brokn"), "{e}");
    }

    #[test]
    fn default_packages_match_the_default_playbook() {
        use sha2::{Digest, Sha256};
        let pb = crate::core::playbook::load(crate::core::playbook::DEFAULT_PLAYBOOK)
            .playbook
            .unwrap();
        let sp1 = pb.path(crate::core::inventory::WsusVersion::Sp1).unwrap();
        let crate::core::playbook::Action::InstallHotfix { packages, .. } = &sp1.steps[1] else {
            panic!("the second SP1 step installs the hotfix");
        };
        let share = default_packages();
        for p in packages.values() {
            let content = &share[&p.path].content;
            let hash: String = Sha256::digest(content.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(hash, p.sha256, "{}", p.path);
        }
    }
}
