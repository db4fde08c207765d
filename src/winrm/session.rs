//! [`Session`]: the public face of the WinRM client, one per host.
//!
//! A session owns one HTTP client (one authenticated TCP connection) and one remote cmd shell
//! that it reuses for every command. Commands run strictly one after another (`&mut self`).
//! Call [`Session::close`] when done: a session dropped with an open shell leaves it to the
//! server's idle timeout (180 s on WinRM 2.0, where only 5 shells per user are allowed).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::auth::LogonMechanism;
use super::clixml;
use super::codepage;
use super::endpoint::Endpoint;
use super::error::{Failure, Operation, WinrmError};
use super::logon::LogonGate;
use super::powershell;
use super::shell::{ShellConfig, ShellDriver, WsmanClient};
use super::transport::{Transport, TransportStats};

/// What a PowerShell script produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// The process exit code (`exit N` in the script; otherwise 0, or 1 if the last statement
    /// failed).
    pub exit_code: i32,
    /// Standard output, decoded from the shell's code page.
    pub stdout: String,
    /// Standard error as readable text: for PowerShell's CLIXML only the error records, with
    /// `_xHHHH_` escapes decoded.
    pub stderr: String,
}

/// A connection to one WinRM host with one reusable shell.
pub struct Session {
    driver: ShellDriver<WsmanClient>,
    codepage: u32,
    url: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.url)
            .field("shell", &self.driver.shell_id())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Session {
    /// Checks the endpoint and prepares a session. No I/O happens here: the connection, the
    /// handshake and the shell come with the first command.
    pub fn new(endpoint: Endpoint) -> Result<Session, WinrmError> {
        Session::build(endpoint, None)
    }

    /// Like [`Session::new`], with a logon gate shared by the sessions that use the same
    /// credentials: until one of them has logged on, only one at a time tries, and once the
    /// credentials are refused none does (see [`LogonGate`]).
    pub fn with_logon_gate(
        endpoint: Endpoint,
        gate: Arc<LogonGate>,
    ) -> Result<Session, WinrmError> {
        Session::build(endpoint, Some(gate))
    }

    fn build(endpoint: Endpoint, gate: Option<Arc<LogonGate>>) -> Result<Session, WinrmError> {
        endpoint.validate().map_err(|message| {
            WinrmError::new(
                endpoint.authority(),
                Operation::Configure,
                Failure::Config(message),
            )
        })?;
        let config = ShellConfig {
            codepage: endpoint.codepage,
            operation_timeout_secs: endpoint.operation_timeout_secs(),
            max_output: endpoint.max_output,
        };
        let codepage = endpoint.codepage;
        let url = endpoint.url();
        let mut transport = Transport::new(endpoint);
        if let Some(gate) = gate {
            transport.set_logon_gate(gate);
        }
        let client = WsmanClient::new(transport);
        Ok(Session {
            driver: ShellDriver::new(client, config),
            codepage,
            url,
        })
    }

    /// Runs a PowerShell script and waits for it, at most `deadline` (connection, shell
    /// creation and upload included). Scripts that fit cmd.exe's 8191-character command line go
    /// by `-EncodedCommand`; longer ones through stdin (see `docs/winrm.md`).
    ///
    /// A non-zero exit code is not an error; read [`CommandOutput::exit_code`].
    pub async fn run_ps(
        &mut self,
        script: &str,
        deadline: Duration,
    ) -> Result<CommandOutput, WinrmError> {
        let plan = powershell::plan(script);
        tracing::debug!(
            url = %self.url,
            script_chars = script.chars().count(),
            via_stdin = plan.stdin.is_some(),
            "run_ps"
        );
        let raw = self.driver.run(&plan, deadline).await?;
        let stderr = codepage::decode(self.codepage, &raw.stderr);
        Ok(CommandOutput {
            exit_code: raw.exit_code,
            stdout: codepage::decode(self.codepage, &raw.stdout),
            stderr: clixml::clean_stderr(&stderr),
        })
    }

    /// Deletes the shell (if one is open). The session stays usable: the next command creates a
    /// new shell.
    pub async fn close(&mut self) -> Result<(), WinrmError> {
        self.driver.delete_shell().await
    }

    /// The protocol of the last logon (Kerberos, NTLM, Basic), once one succeeded.
    pub fn mechanism(&self) -> Option<LogonMechanism> {
        self.stats().mechanism
    }

    /// Traffic counters since the session was created.
    pub fn stats(&self) -> TransportStats {
        self.driver.exchange().transport().stats()
    }

    /// True while a remote shell is open.
    pub fn has_open_shell(&self) -> bool {
        self.driver.shell_id().is_some()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.driver.shell_id().is_some() {
            tracing::warn!(url = %self.url, "session dropped with an open shell; WinRM removes it after its idle timeout");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::secret::Secret;
    use crate::winrm::{AuthMethod, ErrorKind, Scheme};

    #[test]
    fn basic_over_http_is_refused_before_any_connection() {
        let endpoint = Endpoint::new(
            "127.0.1.2",
            Scheme::Http,
            AuthMethod::Basic,
            "admin",
            Secret::new("Tr0ub4dor&3"),
        );
        let err = Session::new(endpoint).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(!err.is_transient());
        let text = err.to_string();
        assert!(
            text.starts_with("configure endpoint on 127.0.1.2:5985: invalid configuration: Basic"),
            "{text}"
        );
        assert!(!text.contains("Tr0ub4dor"));
        assert!(!format!("{err:?}").contains("Tr0ub4dor"));
    }

    #[test]
    fn debug_of_a_session_hides_the_password() {
        let endpoint = Endpoint::new(
            "srv01",
            Scheme::Http,
            AuthMethod::Ntlm,
            "CORP\\admin",
            Secret::new("Tr0ub4dor&3"),
        );
        let session = Session::new(endpoint).unwrap();
        let text = format!("{session:?}");
        assert!(!text.contains("Tr0ub4dor"), "{text}");
        assert!(text.contains("http://srv01:5985/wsman"));
        assert!(!session.has_open_shell());
        assert_eq!(session.stats(), TransportStats::default());
    }

    #[test]
    fn session_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Session>();
    }

    #[tokio::test]
    async fn refused_connection_is_transient_and_names_the_host() {
        // Bind a port, then close it: connecting there is refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut endpoint = Endpoint::new(
            "127.0.0.1",
            Scheme::Http,
            AuthMethod::Ntlm,
            "admin",
            Secret::new("Tr0ub4dor&3"),
        );
        endpoint.port = port;
        let mut session = Session::new(endpoint).unwrap();
        let err = session
            .run_ps("Write-Output 1", Duration::from_secs(20))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
        assert!(err.is_transient());
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("create shell on 127.0.0.1:{port}: cannot connect")),
            "{text}"
        );
        assert!(!text.contains("Tr0ub4dor"));
    }
}
