//! Connections: a [`Connector`] makes one [`Remote`] per host (no I/O until the first script),
//! and the [`Pool`] keeps one per host, used by one operation at a time (NTLM and Kerberos
//! authenticate the TCP connection, so requests to a host are strictly sequential).
//!
//! The [`WinrmConnector`] gives the sessions that log on with the same account one
//! [`LogonGate`]: the first logon proves the credentials before the others try, so a wrong
//! password costs one failed logon, however many hosts a run fans out to.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::core::inventory::{
    AuthKind, CaMode as InvCaMode, Credentials, Inventory, Scheme as InvScheme, WinrmTarget,
};
use crate::util::credentials::Resolver;
use crate::winrm::{AuthMethod, CaMode, Endpoint, LogonGate, Scheme, Session, TransportStats};
use crate::wsus::{Remote, WsusOps};

/// A host to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its inventory name.
    pub name: String,
    /// Its address.
    pub address: String,
    /// The DNS name in its service principal, when it is not the address.
    pub spn_host: Option<String>,
    /// How to reach it.
    pub winrm: WinrmTarget,
    /// The account.
    pub credentials: Credentials,
}

impl Target {
    /// Every server and client of an inventory, by name.
    pub fn all(inv: &Inventory) -> HashMap<String, Target> {
        let mut out = HashMap::new();
        for s in inv.servers() {
            out.insert(
                s.name.clone(),
                Target {
                    name: s.name.clone(),
                    address: s.address.clone(),
                    spn_host: s.spn_host.clone(),
                    winrm: s.winrm.clone(),
                    credentials: s.credentials.clone(),
                },
            );
            for c in &s.clients {
                out.insert(
                    c.name.clone(),
                    Target {
                        name: c.name.clone(),
                        address: c.address.clone(),
                        spn_host: c.spn_host.clone(),
                        winrm: c.winrm.clone(),
                        credentials: c.credentials.clone(),
                    },
                );
            }
        }
        out
    }
}

/// Makes transports.
pub trait Connector: Send + Sync + 'static {
    /// The transport.
    type Remote: Remote + 'static;
    /// A transport to `target` (validation only; connecting happens on first use).
    fn connect(&self, target: &Target) -> Result<Self::Remote, String>;
    /// Traffic counters of a transport, when it has them.
    fn stats(_remote: &Self::Remote) -> Option<TransportStats> {
        None
    }
    /// Ends a transport's session (deletes its shell).
    fn close(_remote: &mut Self::Remote) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
}

/// The real thing: WinRM sessions, with the inventory's credential references resolved.
pub struct WinrmConnector {
    resolver: Arc<Resolver>,
    base_dir: PathBuf,
    operation_timeout: Option<Duration>,
    /// One gate per account (user name, password reference).
    gates: Mutex<HashMap<(String, String), Arc<LogonGate>>>,
}

impl std::fmt::Debug for WinrmConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WinrmConnector")
            .field("base_dir", &self.base_dir)
            .finish_non_exhaustive()
    }
}

impl WinrmConnector {
    /// A connector for an inventory in `base_dir`.
    pub fn new(resolver: Arc<Resolver>, base_dir: &Path) -> Self {
        WinrmConnector {
            resolver,
            base_dir: base_dir.to_path_buf(),
            operation_timeout: None,
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// Every host's WinRM operation timeout is `t` (`--op-timeout`) instead of the inventory's.
    pub fn with_operation_timeout(mut self, t: Option<Duration>) -> Self {
        self.operation_timeout = t;
        self
    }

    /// The logon gate of an account: the same for every host that uses it.
    pub fn gate(&self, credentials: &Credentials) -> Arc<LogonGate> {
        let key = (
            credentials.username.trim().to_lowercase(),
            credentials.password.to_string(),
        );
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(gates.entry(key).or_insert_with(LogonGate::new))
    }
}

/// The WinRM endpoint of a target.
pub fn endpoint(t: &Target, password: crate::util::secret::Secret, base_dir: &Path) -> Endpoint {
    let scheme = match t.winrm.scheme {
        InvScheme::Http => Scheme::Http,
        InvScheme::Https => Scheme::Https,
    };
    let auth = match t.winrm.auth {
        AuthKind::Negotiate => AuthMethod::Negotiate,
        AuthKind::Kerberos => AuthMethod::Kerberos,
        AuthKind::Ntlm => AuthMethod::Ntlm,
        AuthKind::Basic => AuthMethod::Basic,
    };
    let mut e = Endpoint::new(
        t.address.clone(),
        scheme,
        auth,
        t.credentials.username.clone(),
        password,
    );
    e.port = t.winrm.port;
    e.ca_file = t.winrm.ca_file.as_ref().map(|f| base_dir.join(f));
    e.ca_mode = match t.winrm.ca_mode {
        InvCaMode::Only => CaMode::Only,
        InvCaMode::Add => CaMode::Add,
    };
    e.insecure_skip_verify = t.winrm.insecure_skip_tls_verify;
    e.operation_timeout = Duration::from_secs(u64::from(t.winrm.operation_timeout));
    e.max_output = u64::from(t.winrm.max_output_mb) * 1024 * 1024;
    e.spn_host = t.spn_host.clone();
    if let Some(service) = &t.winrm.spn_service {
        e.spn_service = service.clone();
    }
    e.kdc = t.winrm.kdc.clone();
    e
}

impl Connector for WinrmConnector {
    type Remote = Session;

    fn connect(&self, t: &Target) -> Result<Session, String> {
        let password = self
            .resolver
            .resolve(&t.credentials.password, &t.credentials.username)
            .map_err(|e| format!("{}: {e}", t.name))?;
        let mut e = endpoint(t, password, &self.base_dir);
        if let Some(op) = self.operation_timeout {
            e.operation_timeout = op;
        }
        let gate = self.gate(&t.credentials);
        Session::with_logon_gate(e, gate).map_err(|e| e.to_string())
    }

    fn stats(remote: &Session) -> Option<TransportStats> {
        Some(remote.stats())
    }

    async fn close(remote: &mut Session) {
        if let Err(e) = remote.close().await {
            tracing::debug!("closing the WinRM shell: {e}");
        }
    }
}

/// One operations handle per host, created on first use.
pub struct Pool<C: Connector> {
    connector: Arc<C>,
    targets: HashMap<String, Target>,
    open: Mutex<HashMap<String, Handle<C::Remote>>>,
}

impl<C: Connector> std::fmt::Debug for Pool<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("targets", &self.targets.len())
            .finish_non_exhaustive()
    }
}

/// A host's operations, locked for one caller at a time.
pub type Handle<R> = Arc<tokio::sync::Mutex<WsusOps<R>>>;

impl<C: Connector> Pool<C> {
    /// A pool over the hosts of an inventory.
    pub fn new(connector: Arc<C>, targets: HashMap<String, Target>) -> Self {
        Pool {
            connector,
            targets,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The operations of `host`.
    pub fn get(&self, host: &str) -> Result<Handle<C::Remote>, String> {
        let mut open = self.open.lock().map_err(|_| "connection pool poisoned")?;
        if let Some(h) = open.get(host) {
            return Ok(h.clone());
        }
        let target = self
            .targets
            .get(host)
            .ok_or_else(|| format!("{host} is not in the inventory"))?;
        let remote = self.connector.connect(target)?;
        let h = Arc::new(tokio::sync::Mutex::new(WsusOps::new(remote)));
        open.insert(host.to_string(), h.clone());
        Ok(h)
    }

    /// Every open handle, by host.
    pub fn handles(&self) -> Vec<(String, Handle<C::Remote>)> {
        self.open
            .lock()
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Traffic per host.
    pub async fn stats(&self) -> Vec<(String, TransportStats)> {
        let mut out = Vec::new();
        for (name, h) in self.handles() {
            let mut ops = h.lock().await;
            if let Some(s) = C::stats(ops.remote_mut()) {
                out.push((name, s));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// WinRM sessions run the operation scripts.
impl Remote for Session {
    type Error = crate::winrm::WinrmError;

    async fn run_ps(
        &mut self,
        script: &str,
        deadline: Duration,
    ) -> Result<crate::wsus::RemoteOutput, Self::Error> {
        let out = Session::run_ps(self, script, deadline).await?;
        Ok(crate::wsus::RemoteOutput {
            exit_code: out.exit_code,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    fn is_transient(err: &Self::Error) -> bool {
        err.is_transient()
    }

    fn is_stall(err: &Self::Error) -> bool {
        matches!(
            err.failure(),
            crate::winrm::Failure::Timeout {
                cause: crate::winrm::TimeoutCause::Request,
                ..
            }
        )
    }
}
