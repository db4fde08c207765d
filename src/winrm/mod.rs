//! WS-Management (WinRS) client: SOAP envelopes, Negotiate (NTLM or Kerberos) with message
//! encryption, Basic over HTTPS, and the remote shell lifecycle.
//!
//! The entry point is [`Session`]: one per host, holding one authenticated connection and one
//! remote cmd shell that is reused across commands. [`Session::run_ps`] runs a PowerShell script
//! (inline with `-EncodedCommand`, or through a stdin bootstrap when it is too long for cmd.exe)
//! and returns its exit code, stdout and cleaned-up stderr.
//!
//! Layout (lower layers know nothing of the upper ones):
//! - pure: [`soap`] (requests), [`xml`] + [`reply`] (replies), [`encryption`] (MS-WSMV framing),
//!   [`powershell`] (command line / bootstrap), [`clixml`], [`codepage`], [`endpoint`], [`error`];
//! - [`auth`]: the sspi adapter (NTLM, SPNEGO, Kerberos, sealing); [`kerberos`]: the KDC
//!   exchange and what Kerberos errors mean; [`logon`]: one logon before the fan-out;
//! - [`transport`]: HTTP over reqwest, the handshake, sealing, re-authentication, statistics;
//! - [`shell`]: the WinRS operations and the per-command state machine;
//! - [`session`]: the public face.
//!
//! The module never logs a password and never puts one into an error: [`Endpoint`] keeps it in a
//! [`Secret`](crate::util::secret::Secret) and only [`auth`] and the Basic header read it.

mod affinity;
mod auth;
mod channel_binding;
mod clixml;
mod codepage;
mod encryption;
mod endpoint;
mod error;
mod kerberos;
mod logon;
mod powershell;
mod reply;
mod session;
mod shell;
mod soap;
mod transport;
mod xml;

pub use auth::LogonMechanism;
pub use endpoint::{
    AuthMethod, CaMode, DEFAULT_CODEPAGE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_OUTPUT,
    DEFAULT_OPERATION_TIMEOUT, DEFAULT_SPN_SERVICE, Endpoint, Scheme,
};
pub use error::{
    ErrorKind, Failure, Fault, Limit, Operation, TimeoutCause, WSMAN_CODE_OPERATION_TIMEOUT,
    WSMAN_CODE_SHELL_NOT_FOUND, WSMAN_CODE_TOO_MANY_COMMANDS, WinrmError,
};
pub use logon::{LogonGate, Refusal};
pub use session::{CommandOutput, Session};
pub use transport::{TransportStats, enable_protocol_dumps, protocol_dumps_enabled};
