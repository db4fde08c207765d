//! The simulator's WinRM endpoint: every simulated host listens on its own loopback address and
//! answers WS-Management/WinRS over HTTP and HTTPS the way a default WinRM 2.0 listener on
//! Windows Server 2008 R2 does (logon, message encryption, faults, quotas). The world model plugs
//! in as a [`ScriptHost`]; this module knows nothing of WSUS and uses nothing of the project's
//! WinRM client, so the two are checked against each other and against independent peers.
//!
//! Layout: `server` (listeners, connections, shutdown), `service` (one request's pipeline),
//! `auth` + `ntlm` + `kerberos` (logons), `framing` (MS-WSMV encryption), `soap` (envelopes and faults),
//! `shell` (shells and commands), `cmdline` (cmd.exe and powershell.exe command lines),
//! `faults` (transport fault switches), `tls` (certificates), `host` (what the endpoint is given).
//! See docs/simulator-endpoint.md.

mod auth;
mod cmdline;
mod faults;
mod framing;
mod host;
mod kerberos;
mod ntlm;
mod server;
mod service;
mod shell;
mod soap;
mod tls;

pub use cmdline::{BOOTSTRAP_MARKER, MAX_COMMAND_LINE};
pub use faults::TransportFaults;
pub use host::{Account, EndpointConfig, HostSpec, ScriptFuture, ScriptHost, ScriptOutcome};
pub use kerberos::{Keytab, KeytabEntry, KeytabError, ServiceKeys};
pub use server::{EndpointError, HostAddrs, HostCounters, RunningEndpoint, serve};
pub use tls::TlsError;
