//! What the endpoint is given: the simulated hosts, their accounts and fault switches, the
//! listener settings, and the world model behind it (`ScriptHost`).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::util::secret::Secret;

use super::faults::TransportFaults;
use super::kerberos::ServiceKeys;

/// What a PowerShell script produced on a simulated host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptOutcome {
    /// The process exit code (`$LASTEXITCODE` / `exit N`).
    pub exit_code: i32,
    /// Bytes written to stdout, in the console code page the world model chose.
    pub stdout: Vec<u8>,
    /// Bytes written to stderr (PowerShell writes `#< CLIXML` records here).
    pub stderr: Vec<u8>,
}

impl ScriptOutcome {
    /// Exit code 0 with this stdout.
    pub fn success(stdout: impl Into<Vec<u8>>) -> Self {
        ScriptOutcome {
            exit_code: 0,
            stdout: stdout.into(),
            stderr: Vec::new(),
        }
    }
}

/// The boxed future a [`ScriptHost`] returns.
pub type ScriptFuture = Pin<Box<dyn Future<Output = ScriptOutcome> + Send>>;

/// The world model as the endpoint sees it: something that runs PowerShell on a named host.
pub trait ScriptHost: Send + Sync + 'static {
    /// Runs `script` (PowerShell text, already decoded from `-EncodedCommand` or from the stdin
    /// bootstrap) on simulated host `host`; may take time (latency faults). Dropping the future
    /// means the command was terminated (Signal, shell Delete, shutdown).
    fn run(&self, host: &str, script: String) -> ScriptFuture;
}

/// Any `Fn(&str, String) -> impl Future<Output = ScriptOutcome>` is a script host (handy for
/// stubs).
impl<F, Fut> ScriptHost for F
where
    F: Fn(&str, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ScriptOutcome> + Send + 'static,
{
    fn run(&self, host: &str, script: String) -> ScriptFuture {
        Box::pin(self(host, script))
    }
}

/// A local account that may log on to a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `user`, `DOMAIN\user` or `user@realm`; clients may use any of these forms, only the
    /// user part is compared (case-insensitively).
    pub username: String,
    pub password: Secret,
}

impl Account {
    /// An account from a user name and a password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Account {
            username: username.into(),
            password: Secret::new(password),
        }
    }
}

/// One simulated host: its name, the loopback address it listens on, who may log on and how,
/// and its transport faults.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// The host's name (also the `Machine` of its faults and the name passed to [`ScriptHost`]).
    pub name: String,
    /// A 127.0.0.0/8 address of its own.
    pub ip: IpAddr,
    pub accounts: Vec<Account>,
    /// Whether NTLM logons are accepted (true by default; hardened hosts refuse them).
    pub ntlm: bool,
    /// The host's Kerberos service keys (from a keytab); without them it refuses Kerberos.
    pub kerberos: Option<Arc<ServiceKeys>>,
    /// Switches the world model or a test flips while serving.
    pub faults: Arc<TransportFaults>,
}

impl HostSpec {
    /// A host with no faults switched on, NTLM allowed, no Kerberos keys.
    pub fn new(name: impl Into<String>, ip: IpAddr, accounts: Vec<Account>) -> Self {
        HostSpec {
            name: name.into(),
            ip,
            accounts,
            ntlm: true,
            kerberos: None,
            faults: Arc::new(TransportFaults::new()),
        }
    }
}

/// Listener settings and the WinRM 2.0 quotas the endpoint enforces.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointConfig {
    /// The HTTP listener port on every host's address (WinRM 2.0 default 5985; 0 = any free port).
    pub http_port: u16,
    /// The HTTPS listener port (default 5986; `None` = no HTTPS listener; 0 = any free port).
    pub https_port: Option<u16>,
    /// MaxEnvelopeSizekb: larger requests get HTTP 413 (WinRM 2.0 default 150).
    pub max_envelope_kb: usize,
    /// MaxShellsPerUser (WinRM 2.0 default 5).
    pub max_shells_per_user: usize,
    /// A shell untouched this long is dropped (WinRM 2.0 IdleTimeout, 180 s).
    pub shell_idle_timeout: Duration,
    /// The longest a Receive waits for output before `w:TimedOut`, whatever the request's
    /// OperationTimeout says (MaxTimeoutms, 60 s).
    pub max_operation_timeout: Duration,
    /// Seeds the probabilistic faults (each host draws from its own derived stream).
    pub seed: u64,
    /// How long a connection may take to send a request's headers, and may stay idle between
    /// requests, before it is closed (HTTP.sys HeaderWait and IdleConnection, 120 s).
    pub header_read_timeout: Duration,
    /// Connections one host serves at once (HTTP and HTTPS together); one more is answered 503
    /// and closed (WinRM 2.0's MaxConnections, 25 on Windows Server 2008 R2).
    pub max_connections: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            http_port: 5985,
            https_port: Some(5986),
            max_envelope_kb: 150,
            max_shells_per_user: 5,
            shell_idle_timeout: Duration::from_secs(180),
            max_operation_timeout: Duration::from_secs(60),
            seed: 0,
            header_read_timeout: Duration::from_secs(120),
            max_connections: 25,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closures_are_script_hosts() {
        let world: Arc<dyn ScriptHost> = Arc::new(|host: &str, _script: String| {
            let host = host.to_string();
            async move { ScriptOutcome::success(format!("ran on {host}\r\n")) }
        });
        let out = world.run("wsus-hq", "Get-Date".into()).await;
        assert_eq!(out, ScriptOutcome::success("ran on wsus-hq\r\n"));
        let spec = HostSpec::new(
            "h",
            "127.0.1.1".parse().unwrap(),
            vec![Account::new("a", "p")],
        );
        assert!(
            !format!("{spec:?}").contains("\"p\""),
            "the password stays hidden"
        );
        assert_eq!(EndpointConfig::default().http_port, 5985);
    }
}
