//! Errors of the WinRM client: one type, [`WinrmError`], that names the host and the operation,
//! with a coarse [`ErrorKind`] for callers that decide what to do next (retry, give up, report).
//!
//! Nothing here ever holds a password: messages are built from status codes, fault texts and
//! transport errors, and the transport errors come from a client whose URL carries no credentials.

use std::fmt;
use std::time::Duration;

use crate::util::terminal::one_line;

/// What the client was doing when it failed; part of every error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Checking the endpoint configuration ([`crate::winrm::Session::new`]).
    Configure,
    /// The NTLM / Negotiate handshake on a fresh connection.
    Authenticate,
    /// WS-Transfer Create of the remote cmd shell.
    CreateShell,
    /// WinRS Command (starting `powershell.exe`).
    RunCommand,
    /// WinRS Send (the script over stdin).
    SendInput,
    /// WinRS Receive (stdout, stderr, exit code).
    ReceiveOutput,
    /// WinRS Signal terminate.
    SignalTerminate,
    /// WS-Transfer Delete of the shell.
    DeleteShell,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Configure => "configure endpoint",
            Operation::Authenticate => "authenticate",
            Operation::CreateShell => "create shell",
            Operation::RunCommand => "run command",
            Operation::SendInput => "send input",
            Operation::ReceiveOutput => "receive output",
            Operation::SignalTerminate => "signal terminate",
            Operation::DeleteShell => "delete shell",
        })
    }
}

/// The coarse category of a [`WinrmError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The endpoint configuration is invalid (found before any connection).
    Config,
    /// The host could not be reached, refused the connection, or dropped it.
    Connect,
    /// The TLS handshake or certificate verification failed.
    Tls,
    /// The server rejected the credentials (HTTP 401 after a complete handshake).
    Auth,
    /// The command's deadline passed, or the server stopped answering a request.
    Timeout,
    /// The server answered with an HTTP status the protocol does not expect.
    Http,
    /// The server answered with a WS-Management SOAP fault.
    Fault,
    /// The reply could not be understood (bad XML, missing element, wrong `RelatesTo`, bad framing).
    Protocol,
    /// A reply or the command's output passed a size the client allows.
    Limit,
}

/// A size the client does not let a server pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// One reply: the MaxEnvelopeSize the client announces (a sealed reply may add its frame).
    Reply {
        /// The envelope size, in bytes.
        bytes: u64,
    },
    /// The stdout and stderr one command may produce in all.
    Output {
        /// The largest output accepted, in bytes.
        bytes: u64,
    },
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Reply { bytes } => write!(
                f,
                "the server sent a reply larger than the {} envelope this client asks for \
                 (MaxEnvelopeSize); the rest was not read",
                human_bytes(*bytes)
            ),
            Limit::Output { bytes } => write!(
                f,
                "the command's output passed {}, the most one command may produce \
                 (winrm: {{ max_output_mb: N }} in the inventory raises it); the command was stopped",
                human_bytes(*bytes)
            ),
        }
    }
}

/// `153600 bytes` as `150 KiB`, `16777216` as `16 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// Why a timeout happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutCause {
    /// The overall per-command deadline passed.
    Deadline,
    /// One HTTP request got no complete answer in time (server or network stalled).
    Request,
}

/// A WS-Management SOAP fault, as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fault {
    /// `s:Code/s:Value`, e.g. `s:Receiver`.
    pub code: String,
    /// `s:Code/s:Subcode/s:Value`, e.g. `w:TimedOut`.
    pub subcode: Option<String>,
    /// `s:Reason/s:Text`.
    pub reason: String,
    /// `f:WSManFault/@Code`, e.g. 2150858793 for an operation timeout.
    pub wsman_code: Option<u32>,
    /// `f:WSManFault/@Machine`.
    pub machine: Option<String>,
    /// `f:WSManFault/f:Message` (its text content, provider faults included), when present.
    pub message: Option<String>,
}

/// `f:WSManFault/@Code` of "the operation did not complete within OperationTimeout" (0x80338029).
pub const WSMAN_CODE_OPERATION_TIMEOUT: u32 = 2_150_858_793;
/// `f:WSManFault/@Code` of "the shell was not found on the server" (0x8033805B).
pub const WSMAN_CODE_SHELL_NOT_FOUND: u32 = 2_150_858_843;
/// `f:WSManFault/@Code` of "the maximum number of concurrent operations/commands for this shell
/// was exceeded" (0x803381A6).
pub const WSMAN_CODE_TOO_MANY_COMMANDS: u32 = 2_150_859_174;

impl Fault {
    /// The local part of the subcode (`TimedOut` for `w:TimedOut`).
    pub fn subcode_local(&self) -> Option<&str> {
        self.subcode
            .as_deref()
            .map(|s| s.rsplit_once(':').map_or(s, |(_, local)| local))
    }

    /// True for the operation-timeout fault that a Receive answers with when no output arrived
    /// within OperationTimeout; the client simply asks again.
    pub fn is_operation_timeout(&self) -> bool {
        self.wsman_code == Some(WSMAN_CODE_OPERATION_TIMEOUT)
            || (self.wsman_code.is_none() && self.subcode_local() == Some("TimedOut"))
    }

    /// True when the fault says the shell is gone (idle timeout, service restart) or cannot take
    /// another command; a new shell fixes both.
    pub fn shell_needs_reset(&self) -> bool {
        matches!(
            self.wsman_code,
            Some(WSMAN_CODE_SHELL_NOT_FOUND | WSMAN_CODE_TOO_MANY_COMMANDS)
        )
    }
}

impl fmt::Display for Fault {
    /// Every part comes from the server: control characters are escaped and long texts cut
    /// (`util::terminal`), so that the message is safe wherever it goes (journal, recap, logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WS-Management fault {}", one_line(&self.code))?;
        if let Some(sub) = &self.subcode {
            write!(f, "/{}", one_line(sub))?;
        }
        if let Some(code) = self.wsman_code {
            write!(f, " (code {code:#x} = {code})")?;
        }
        if let Some(machine) = &self.machine {
            write!(f, " from {}", one_line(machine))?;
        }
        let reason = self.reason.trim();
        let text = if reason.is_empty() {
            self.message.as_deref().map(str::trim).unwrap_or("")
        } else {
            reason
        };
        if !text.is_empty() {
            write!(f, ": {}", one_line(text))?;
        }
        Ok(())
    }
}

/// The failure itself, without the host and operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// Invalid endpoint configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Connection refused, host unreachable, name not resolved, or the connection was lost.
    #[error("{0}")]
    Connect(String),
    /// TLS handshake or certificate verification failure, or an unusable CA file.
    #[error("TLS: {0}")]
    Tls(String),
    /// Credentials rejected.
    #[error("{0}")]
    Auth(String),
    /// A deadline or request timeout.
    #[error("{}", timeout_text(*.cause, *.after))]
    Timeout {
        /// What timed out.
        cause: TimeoutCause,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// An unexpected HTTP status.
    #[error("HTTP {status}{}", hint.map(|h| format!(": {h}")).unwrap_or_default())]
    Http {
        /// The status code.
        status: u16,
        /// Advice for statuses with a known cause (413).
        hint: Option<&'static str>,
    },
    /// A SOAP fault from the server.
    #[error("{0}")]
    Fault(Box<Fault>),
    /// A reply the client cannot use (the text may quote the reply: it is escaped when shown).
    #[error("unexpected reply: {}", one_line(.0))]
    Protocol(String),
    /// A reply or the output passed a size limit.
    #[error("{0}")]
    Limit(Limit),
    /// A clear-text answer in a session whose messages are sealed: its body was not read.
    #[error("unsealed reply in a sealed session (HTTP {status}); its body was not read")]
    Unsealed {
        /// The status it came with.
        status: u16,
    },
}

fn timeout_text(cause: TimeoutCause, after: Duration) -> String {
    match cause {
        TimeoutCause::Deadline => format!("command did not finish within {}", secs(after)),
        TimeoutCause::Request => format!("no answer from the server within {}", secs(after)),
    }
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Hint attached to HTTP 413.
pub(crate) const HINT_413: &str = "request entity too large: the envelope exceeds the server's \
     MaxEnvelopeSizekb (150 on WinRM 2.0); raise it with \
     winrm set winrm/config @{MaxEnvelopeSizekb=\"500\"} or send less per request";

/// An error of the WinRM client: `<operation> on <host:port>: <failure>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} on {host}: {failure}")]
pub struct WinrmError {
    host: String,
    operation: Operation,
    failure: Failure,
}

impl WinrmError {
    /// Builds an error for `host` (as `host:port`) and `operation`.
    pub fn new(host: impl Into<String>, operation: Operation, failure: Failure) -> Self {
        WinrmError {
            host: host.into(),
            operation,
            failure,
        }
    }

    /// The `host:port` the error concerns.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The failure without context.
    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// The SOAP fault, if the server sent one.
    pub fn fault(&self) -> Option<&Fault> {
        match &self.failure {
            Failure::Fault(f) => Some(f),
            _ => None,
        }
    }

    /// The HTTP status, for [`ErrorKind::Http`] errors and unsealed replies.
    pub fn http_status(&self) -> Option<u16> {
        match &self.failure {
            Failure::Http { status, .. } | Failure::Unsealed { status } => Some(*status),
            _ => None,
        }
    }

    /// The coarse category.
    pub fn kind(&self) -> ErrorKind {
        match &self.failure {
            Failure::Config(_) => ErrorKind::Config,
            Failure::Connect(_) => ErrorKind::Connect,
            Failure::Tls(_) => ErrorKind::Tls,
            Failure::Auth(_) => ErrorKind::Auth,
            Failure::Timeout { .. } => ErrorKind::Timeout,
            Failure::Http { .. } => ErrorKind::Http,
            Failure::Fault(_) => ErrorKind::Fault,
            Failure::Protocol(_) => ErrorKind::Protocol,
            Failure::Limit(_) => ErrorKind::Limit,
            Failure::Unsealed { .. } => ErrorKind::Http,
        }
    }

    /// True when running the *whole command* again later may succeed without any change:
    /// connection refused or lost, a stalled request, or an HTTP 5xx without a SOAP fault (also
    /// in clear text in a sealed session: HTTP.sys answers a wedged or stopping service so).
    /// Configuration, TLS, credential, protocol errors, faults, limits and command deadlines are
    /// not.
    pub fn is_transient(&self) -> bool {
        match &self.failure {
            Failure::Connect(_) => true,
            Failure::Timeout { cause, .. } => *cause == TimeoutCause::Request,
            Failure::Http { status, .. } | Failure::Unsealed { status } => {
                (500..600).contains(status)
            }
            _ => false,
        }
    }

    /// The same error attributed to another operation (used when a shared step fails).
    pub(crate) fn during(mut self, operation: Operation) -> Self {
        self.operation = operation;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(failure: Failure) -> WinrmError {
        WinrmError::new("127.0.1.2:5985", Operation::CreateShell, failure)
    }

    #[test]
    fn message_names_operation_and_host() {
        let e = err(Failure::Connect("connection refused".into()));
        assert_eq!(
            e.to_string(),
            "create shell on 127.0.1.2:5985: connection refused"
        );
        assert_eq!(e.kind(), ErrorKind::Connect);
        assert!(e.is_transient());
    }

    #[test]
    fn http_413_carries_a_hint() {
        let e = err(Failure::Http {
            status: 413,
            hint: Some(HINT_413),
        });
        assert!(e.to_string().contains("HTTP 413: request entity too large"));
        assert!(e.to_string().contains("MaxEnvelopeSizekb"));
        assert!(!e.is_transient());
        assert_eq!(e.http_status(), Some(413));
        assert!(
            err(Failure::Http {
                status: 503,
                hint: None
            })
            .is_transient()
        );
    }

    #[test]
    fn fault_text_and_classification() {
        let fault = Fault {
            code: "s:Receiver".into(),
            subcode: Some("w:TimedOut".into()),
            reason: "The WS-Management service cannot complete the operation within the time \
                     specified in OperationTimeout.  "
                .into(),
            wsman_code: Some(WSMAN_CODE_OPERATION_TIMEOUT),
            machine: Some("srv01".into()),
            message: None,
        };
        assert!(fault.is_operation_timeout());
        assert!(!fault.shell_needs_reset());
        let e = err(Failure::Fault(Box::new(fault)));
        assert_eq!(e.kind(), ErrorKind::Fault);
        assert!(!e.is_transient());
        insta::assert_snapshot!(e.to_string(), @"create shell on 127.0.1.2:5985: WS-Management fault s:Receiver/w:TimedOut (code 0x80338029 = 2150858793) from srv01: The WS-Management service cannot complete the operation within the time specified in OperationTimeout.");
    }

    #[test]
    fn deadline_is_not_transient_but_a_stalled_request_is() {
        let deadline = err(Failure::Timeout {
            cause: TimeoutCause::Deadline,
            after: Duration::from_secs(90),
        });
        assert_eq!(deadline.kind(), ErrorKind::Timeout);
        assert!(!deadline.is_transient());
        assert!(
            deadline
                .to_string()
                .ends_with("command did not finish within 90 s")
        );
        let stalled = err(Failure::Timeout {
            cause: TimeoutCause::Request,
            after: Duration::from_millis(1500),
        });
        assert!(stalled.is_transient());
        assert!(stalled.to_string().ends_with("within 1.5 s"));
    }
}
