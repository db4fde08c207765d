//! A running simulated fleet: the world of an inventory behind the WinRM endpoint, every host on
//! its own loopback address. Scripts run in their own tasks, so a client that disconnects (or is
//! killed) does not stop an install half-way, as on a real server. With a state file, the world's
//! state view is written after every change (docs/simulator.md).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::dispatch;
use super::endpoint::{
    self, Account, EndpointConfig, HostSpec, Keytab, RunningEndpoint, ScriptFuture, ScriptHost,
    ScriptOutcome,
};
use super::scenario::Scenario;
use super::world::World;
use crate::core::inventory::Inventory;
use crate::util::credentials::Resolver;

/// How to serve a fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// HTTP port on every host (0: any free port per host).
    pub http_port: u16,
    /// HTTPS port on every host, if served.
    pub https_port: Option<u16>,
    /// Where to write the state view after every change.
    pub state_file: Option<PathBuf>,
    /// The service keys of the hosts (a keytab with `HTTP/<host>` principals): a host whose
    /// SPN host (`host:`, or a DNS `address:`) has keys there accepts Kerberos.
    pub keytab: Option<Keytab>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            http_port: 5985,
            https_port: Some(5986),
            state_file: None,
            keytab: None,
        }
    }
}

/// The world shared by every host's script tasks.
struct SimHost {
    world: Arc<Mutex<World>>,
    state_file: Option<PathBuf>,
}

/// Writes `text` through a temporary file and a rename.
pub fn write_atomically(path: &Path, text: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Writes the world's state view. Writers are serialized and each takes its snapshot while it
/// holds the writer lock, so the file never goes back to an older state (script tasks finish in
/// any order).
fn write_state(world: &Mutex<World>, path: &Path) {
    static WRITER: Mutex<()> = Mutex::new(());
    let Ok(_writing) = WRITER.lock() else { return };
    let json = match world.lock() {
        Ok(w) => serde_json::to_vec_pretty(&w.view()),
        Err(_) => return,
    };
    if let Ok(json) = json
        && let Err(e) = write_atomically(path, &json)
    {
        tracing::warn!(
            "cannot write the simulator state file {}: {e}",
            path.display()
        );
    }
}

impl ScriptHost for SimHost {
    fn run(&self, host: &str, script: String) -> ScriptFuture {
        let world = self.world.clone();
        let state_file = self.state_file.clone();
        let host = host.to_string();
        let task = tokio::spawn(async move {
            let op = dispatch::marker(&script).map(|m| m.op).unwrap_or_default();
            let latency = match world.lock() {
                Ok(mut w) => w.latency(&host, &op),
                Err(_) => Duration::ZERO,
            };
            tokio::time::sleep(latency).await;
            let answer = match world.lock() {
                Ok(mut w) => dispatch::run(&mut w, &host, &script, chrono::Utc::now()),
                Err(_) => dispatch::script_error("the simulated world is unavailable"),
            };
            if answer.mutated
                && let Some(path) = &state_file
            {
                write_state(&world, path);
            }
            tokio::time::sleep(answer.duration).await;
            ScriptOutcome {
                exit_code: answer.exit_code,
                stdout: answer.stdout,
                stderr: answer.stderr,
            }
        });
        Box::pin(async move {
            task.await.unwrap_or_else(|e| ScriptOutcome {
                exit_code: -1,
                stdout: Vec::new(),
                stderr: dispatch::clixml_error(&format!("the simulated script failed: {e}")),
            })
        })
    }
}

/// A served fleet.
pub struct Fleet {
    world: Arc<Mutex<World>>,
    endpoint: RunningEndpoint,
    state_file: Option<PathBuf>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("hosts", &self.endpoint.hosts().len())
            .finish_non_exhaustive()
    }
}

fn loopback_ip(name: &str, address: &str) -> Result<IpAddr, String> {
    let ip: IpAddr = address.parse().map_err(|_| {
        format!("{name}: the simulator serves hosts on IP addresses, and `{address}` is not one")
    })?;
    if !ip.is_loopback() {
        return Err(format!(
            "{name}: the simulator listens on loopback only (127.0.0.0/8 or ::1), not on {ip}"
        ));
    }
    Ok(ip)
}

impl Fleet {
    /// Builds the world of `inv` under `scenario` and serves every server and client.
    /// Credentials are the inventory's, resolved by `resolver`.
    pub async fn start(
        inv: &Inventory,
        scenario: &Scenario,
        resolver: &Resolver,
        cfg: FleetConfig,
    ) -> Result<Fleet, String> {
        let world = World::new(inv, scenario, chrono::Utc::now())?;
        let seed = world.seed;
        let world = Arc::new(Mutex::new(world));
        let mut hosts = Vec::new();
        let mut add = |name: &str,
                       address: &str,
                       spn_host: Option<&str>,
                       creds: &crate::core::inventory::Credentials|
         -> Result<(), String> {
            let ip = loopback_ip(name, address)?;
            let password = resolver
                .resolve(&creds.password, &creds.username)
                .map_err(|e| format!("{name}: {e}"))?;
            let mut spec = HostSpec::new(
                name,
                ip,
                vec![Account {
                    username: creds.username.clone(),
                    password,
                }],
            );
            spec.ntlm = scenario.ntlm_allowed(name);
            if let (Some(keytab), Some(spn_host)) = (&cfg.keytab, spn_host) {
                spec.kerberos = keytab.service_keys(spn_host).map(Arc::new);
            }
            if let Some(t) = scenario.transport.get(name) {
                let f = &spec.faults;
                f.set_refuse_connections(t.refuse);
                f.set_latency(Duration::from_millis(t.latency_ms));
                f.fail_next_requests(u64::from(t.http500));
                f.set_failure_probability(t.http500_probability);
                f.set_timeout_storm(t.timed_out_storm);
                f.set_reject_credentials(t.bad_credentials);
                f.set_extended_protection(t.extended_protection);
                // A host that dies mid-run: it stops answering after N requests.
                f.set_die_after_requests(t.dies_after_requests.unwrap_or(0));
                f.set_hang_after_requests(t.hangs_after_requests.unwrap_or(0));
            }
            hosts.push(spec);
            Ok(())
        };
        // The SPN host: `host:`, else the address when it is a name (the simulator serves IPs).
        let spn = |host: &Option<String>, address: &str| {
            host.clone().or_else(|| {
                address
                    .parse::<IpAddr>()
                    .is_err()
                    .then(|| address.to_string())
            })
        };
        for s in inv.servers() {
            add(
                &s.name,
                &s.address,
                spn(&s.spn_host, &s.address).as_deref(),
                &s.credentials,
            )?;
        }
        for (_, c) in inv.clients() {
            add(
                &c.name,
                &c.address,
                spn(&c.spn_host, &c.address).as_deref(),
                &c.credentials,
            )?;
        }
        for name in scenario.transport.keys() {
            if !hosts.iter().any(|h| &h.name == name) {
                return Err(format!(
                    "the scenario's transport faults name an unknown host `{name}`"
                ));
            }
        }
        let ecfg = EndpointConfig {
            http_port: cfg.http_port,
            https_port: cfg.https_port,
            seed,
            ..EndpointConfig::default()
        };
        let handler = Arc::new(SimHost {
            world: world.clone(),
            state_file: cfg.state_file.clone(),
        });
        let endpoint = endpoint::serve(hosts, ecfg, handler)
            .await
            .map_err(|e| e.to_string())?;
        let fleet = Fleet {
            world,
            endpoint,
            state_file: cfg.state_file,
        };
        if let Some(p) = &fleet.state_file {
            write_state(&fleet.world, p);
        }
        Ok(fleet)
    }

    /// The world, for inspection.
    pub fn world(&self) -> Arc<Mutex<World>> {
        self.world.clone()
    }

    /// The endpoint (addresses, CA, counters, fault switches).
    pub fn endpoint(&self) -> &RunningEndpoint {
        &self.endpoint
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        if let Some(p) = &self.state_file {
            write_state(&self.world, p);
        }
        self.endpoint.shutdown().await;
    }
}
