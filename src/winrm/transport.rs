//! HTTP for one WinRM host: one reqwest client (one TCP connection), the Negotiate handshake on it
//! (NTLM or Kerberos), MS-WSMV sealing over plain HTTP, Basic over HTTPS, and re-authentication.
//!
//! NTLM authenticates the TCP connection, not the request. So the client keeps at most one idle
//! connection (`pool_max_idle_per_host(1)`, HTTP/1.1 only), sends strictly one request at a time
//! and always reads reply bodies to the end, which keeps the authenticated connection in use.
//! When the server answers 401 on an established context (the connection was lost, the server
//! restarted), the transport throws the client away, authenticates on a fresh connection and
//! replays the request once. A request abandoned half-way (its future dropped at a deadline)
//! leaves the connection in an unknown state, so the next request starts on a fresh one as well.
//!
//! The handshake follows the server's legs on empty-body POSTs: NTLM is
//! `Authorization: Negotiate <type 1>` → 401 with the challenge → `<type 3>` → 200; Kerberos is
//! `<AP-REQ>` → 200 with the AP-REP (or 401 with the host's KRB-ERROR). Whatever token comes back
//! on the 200 (the SPNEGO final token, the AP-REP) is fed into the context, and only then does the
//! first sealed SOAP message go out. Kerberos's first step talks to the KDC and blocks, so it runs
//! on tokio's blocking pool. Sessions that share credentials share a [`LogonGate`]: one logon
//! proves them before the others try.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE};

use std::sync::Arc;

use super::affinity;
use super::auth::{LogonMechanism, Mechanism, SecurityContext};
use super::channel_binding;
use super::encryption;
use super::endpoint::{AuthMethod, CaMode, Endpoint, Scheme};
use super::error::{Failure, HINT_413, Limit, Operation, TimeoutCause, WinrmError};
use super::kerberos::{self, KdcAddr};
use super::logon::{LogonGate, Pass, Refusal};
use super::soap::MAX_ENVELOPE_SIZE;

const SOAP_CONTENT_TYPE: &str = "application/soap+xml;charset=UTF-8";
/// How long a request waits for the pooled, authenticated connection before deciding it is gone.
const AFFINITY_GRACE: Duration = Duration::from_secs(1);
/// The most handshake legs a server may ask for (NTLM takes 2, Kerberos 1).
const MAX_LEGS: usize = 4;
const USER_AGENT: &str = concat!("wsusfix/", env!("CARGO_PKG_VERSION"), " (WinRM client)");
/// The MS-WSMV frame around a sealed envelope: two part headers, the signature and its length,
/// the closing boundary (about 230 bytes; the rest is slack).
const SEALING_FRAME: usize = 1024;
/// The largest reply body read: the envelope we ask for (`w:MaxEnvelopeSize`) in its frame.
/// A server that sends more breaks the protocol; reading on would let it fill our memory.
pub(crate) const MAX_REPLY_BODY: usize = MAX_ENVELOPE_SIZE + SEALING_FRAME;

/// Whether the plaintext SOAP messages and the logon tokens are written to the log (target
/// `wsusfix::winrm::wire`, level trace). Off unless [`enable_protocol_dumps`] was called: no
/// log filter can turn these on.
static PROTOCOL_DUMPS: AtomicBool = AtomicBool::new(false);

/// Turns protocol dumps on for the rest of the process. Only the logging setup calls this, when
/// `WSUSFIX_LOG_PROTOCOL` asks for it on a terminal (docs/logging.md).
pub fn enable_protocol_dumps() {
    PROTOCOL_DUMPS.store(true, Ordering::Relaxed);
}

/// True once protocol dumps are on.
pub fn protocol_dumps_enabled() -> bool {
    PROTOCOL_DUMPS.load(Ordering::Relaxed)
}

fn dump(host: &str, what: impl FnOnce() -> String, bytes: &[u8]) {
    if PROTOCOL_DUMPS.load(Ordering::Relaxed) {
        let what = what();
        tracing::trace!(target: "wsusfix::winrm::wire", host, "{what} ({} bytes):\n{}", bytes.len(), String::from_utf8_lossy(bytes));
    }
}

/// Traffic counters of one [`crate::winrm::Session`], for benchmarks and diagnostics.
/// Bytes are HTTP bodies as sent and received (sealed form when encrypted), headers excluded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// HTTP requests sent, authentication legs included.
    pub requests: u64,
    /// Request body bytes.
    pub bytes_sent: u64,
    /// Reply body bytes.
    pub bytes_received: u64,
    /// Completed NTLM/Negotiate handshakes (1 while the connection lives).
    pub authentications: u64,
    /// The protocol of the last logon (Kerberos, NTLM or Basic), once one succeeded.
    pub mechanism: Option<LogonMechanism>,
    /// Requests to the KDC (Kerberos: about 3 per logon).
    pub kdc_requests: u64,
}

/// A reply with its body already unsealed.
#[derive(Debug)]
pub(crate) struct HttpReply {
    pub status: u16,
    pub body: Vec<u8>,
}

struct RawReply {
    status: u16,
    /// The server's certificate (DER), over HTTPS.
    peer_certificate: Option<Vec<u8>>,
    content_type: Option<String>,
    negotiate_token: Option<Result<Vec<u8>, String>>,
    offered: Vec<String>,
    body: Vec<u8>,
}

/// The HTTP side of a session.
pub(crate) struct Transport {
    endpoint: Endpoint,
    url: String,
    authority: String,
    client: Option<reqwest::Client>,
    ca_roots: Option<Vec<reqwest::Certificate>>,
    context: Option<SecurityContext>,
    in_flight: bool,
    /// The last request found the connection gone while idle (it never left).
    idle_connection_lost: bool,
    stats: TransportStats,
    /// The logon mechanism, decided at the first logon (Negotiate reads `KRB5_CONFIG`).
    plan: Option<Mechanism>,
    /// Shared with the other sessions of the same credentials.
    gate: Option<Arc<LogonGate>>,
}

/// How a logon failed: the error, and whether it says the credentials are wrong.
struct LogonFailure {
    error: WinrmError,
    credentials_refused: bool,
    /// The KDC said so (about the account itself, whatever host); else a host's 401, which may
    /// be that host's own (a local account, an account not allowed there).
    by_kdc: bool,
}

impl From<WinrmError> for LogonFailure {
    fn from(error: WinrmError) -> Self {
        LogonFailure {
            error,
            credentials_refused: false,
            by_kdc: false,
        }
    }
}

impl Transport {
    /// A transport for a validated endpoint; no I/O until the first request.
    pub fn new(endpoint: Endpoint) -> Transport {
        Transport {
            url: endpoint.url(),
            authority: endpoint.authority(),
            endpoint,
            client: None,
            ca_roots: None,
            context: None,
            in_flight: false,
            idle_connection_lost: false,
            stats: TransportStats::default(),
            plan: None,
            gate: None,
        }
    }

    /// Shares a logon gate with the other sessions of the same credentials.
    pub fn set_logon_gate(&mut self, gate: Arc<LogonGate>) {
        self.gate = Some(gate);
    }

    /// The listener URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host:port`, for error messages.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Counters so far.
    pub fn stats(&self) -> TransportStats {
        self.stats
    }

    fn error(&self, operation: Operation, failure: Failure) -> WinrmError {
        WinrmError::new(self.authority.clone(), operation, failure)
    }

    /// Whether the endpoint logs on with a security context (everything but Basic).
    fn uses_context(&self) -> bool {
        self.endpoint.auth != AuthMethod::Basic
    }

    fn seals(&self) -> bool {
        self.uses_context() && self.endpoint.scheme == Scheme::Http
    }

    /// Which mechanism the logon uses. Kerberos needs the KDC of the user's realm: the
    /// endpoint's, else `KRB5_CONFIG`'s. Negotiate takes Kerberos when it can (a `user@REALM`
    /// name, a realm with a KDC, an SPN host that is a name) and NTLM otherwise.
    fn logon_plan(&mut self) -> Result<Mechanism, WinrmError> {
        if let Some(plan) = &self.plan {
            return Ok(plan.clone());
        }
        let e = &self.endpoint;
        let kdc_for = |realm: &str| -> Result<Option<KdcAddr>, String> {
            match &e.kdc {
                Some(text) => KdcAddr::parse(text).map(Some),
                None => Ok(kerberos::configured_kdc(realm)),
            }
        };
        let plan = match e.auth {
            AuthMethod::Ntlm => Mechanism::RawNtlm,
            AuthMethod::Basic => Mechanism::SpnegoNtlm, // never used: Basic has no context
            AuthMethod::Negotiate => {
                let realm = kerberos::realm_of(&e.username).filter(|_| !e.spn_host_is_ip());
                match realm.map(|r| kdc_for(&r)) {
                    Some(Ok(Some(kdc))) => Mechanism::Kerberos {
                        kdc,
                        ntlm_fallback: true,
                    },
                    _ => Mechanism::SpnegoNtlm,
                }
            }
            AuthMethod::Kerberos => {
                let realm = kerberos::realm_of(&e.username).ok_or_else(|| {
                    self.error(
                        Operation::Authenticate,
                        Failure::Config(format!(
                            "Kerberos needs the user principal name (user@REALM), not {:?}",
                            e.username
                        )),
                    )
                })?;
                match kdc_for(&realm) {
                    Ok(Some(kdc)) => Mechanism::Kerberos {
                        kdc,
                        ntlm_fallback: false,
                    },
                    Ok(None) => {
                        let config = std::env::var("KRB5_CONFIG")
                            .unwrap_or_else(|_| "/etc/krb5.conf".to_string());
                        return Err(self.error(
                            Operation::Authenticate,
                            Failure::Config(format!(
                                "no KDC is known for the realm {realm}: set \
                                 `kerberos: {{ kdc: HOST:PORT }}` under `defaults:` in the \
                                 inventory, or give the realm a kdc in the [realms] section of \
                                 {config} (KRB5_CONFIG)"
                            )),
                        ));
                    }
                    Err(m) => {
                        return Err(self.error(Operation::Authenticate, Failure::Config(m)));
                    }
                }
            }
        };
        tracing::debug!(host = %self.authority, ?plan, spn = %self.endpoint.spn(), "logon plan");
        self.plan = Some(plan.clone());
        Ok(plan)
    }

    /// Forgets the connection and its security context; the next request opens a new one.
    pub fn reset_connection(&mut self) {
        self.client = None;
        self.context = None;
        self.in_flight = false;
    }

    /// POSTs one SOAP message and returns the (unsealed) reply. 401 and transport failures are
    /// errors; every other status is returned for the caller to interpret.
    pub async fn post(
        &mut self,
        operation: Operation,
        soap: &str,
        timeout: Duration,
    ) -> Result<HttpReply, WinrmError> {
        if self.in_flight {
            tracing::debug!(host = %self.authority, "previous request was abandoned; reconnecting");
            self.reset_connection();
        }
        let mut replayed = false;
        let mut reconnected = false;
        loop {
            if self.uses_context() && self.context.is_none() {
                self.authenticate(timeout)
                    .await
                    .map_err(|e| e.during(operation))?;
            }
            dump(
                &self.authority,
                || format!("{operation} request"),
                soap.as_bytes(),
            );
            let (body, content_type) = if self.seals() {
                let context = self.context.as_mut().expect("authenticated above");
                let body = encryption::wrap(context, soap.as_bytes()).map_err(|m| {
                    WinrmError::new(self.authority.clone(), operation, Failure::Protocol(m))
                })?;
                (body, encryption::CONTENT_TYPE)
            } else {
                (soap.as_bytes().to_vec(), SOAP_CONTENT_TYPE)
            };
            let authorization = self.basic_header();
            let raw = match self
                .send(operation, body, content_type, authorization, timeout)
                .await
            {
                Ok(raw) => raw,
                // The server closed the authenticated connection while it was idle (Windows
                // does after a while). The request never left: log on again and send it once.
                Err(_) if self.idle_connection_lost && !reconnected => {
                    tracing::debug!(host = %self.authority, %operation, "the idle connection was closed; reconnecting");
                    reconnected = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if raw.status == 401 {
                if self.uses_context() && !replayed {
                    tracing::debug!(host = %self.authority, %operation, "401 on an established connection; re-authenticating");
                    replayed = true;
                    self.reset_connection();
                    continue;
                }
                self.reset_connection();
                let why = if self.endpoint.auth == AuthMethod::Basic {
                    "the server rejected the credentials (HTTP 401); Basic works only for local \
                     accounts, given without a domain"
                } else {
                    "the server rejected the request after re-authenticating (HTTP 401)"
                };
                return Err(self.error(operation, Failure::Auth(why.into())));
            }
            if self.endpoint.auth == AuthMethod::Basic {
                self.stats.mechanism = Some(LogonMechanism::Basic);
            }
            let body = self.unseal(operation, &raw)?;
            dump(
                &self.authority,
                || format!("{operation} reply, HTTP {}", raw.status),
                &body,
            );
            return Ok(HttpReply {
                status: raw.status,
                body,
            });
        }
    }

    fn unseal(&mut self, operation: Operation, raw: &RawReply) -> Result<Vec<u8>, WinrmError> {
        if !encryption::is_encrypted(raw.content_type.as_deref()) {
            if self.seals() {
                // Once the session is sealed, Windows seals every answer, faults included. A
                // clear-text body did not come from our security context: anyone on the path (or
                // a server that never knew the password) can write one, so it is not parsed. The
                // sequence numbers may be out of step now: start over on a fresh connection.
                self.reset_connection();
                let failure = match raw.status {
                    // HTTP.sys refuses an oversized request before anything is unsealed; the
                    // status alone says what happened.
                    413 => Failure::Http {
                        status: 413,
                        hint: Some(HINT_413),
                    },
                    status => Failure::Unsealed { status },
                };
                return Err(self.error(operation, failure));
            }
            return Ok(raw.body.clone());
        }
        let Some(context) = self.context.as_mut() else {
            return Err(self.error(
                operation,
                Failure::Protocol("encrypted reply without a security context".into()),
            ));
        };
        let content_type = raw.content_type.as_deref().unwrap_or_default();
        match encryption::unwrap(context, content_type, &raw.body) {
            Ok(plain) => Ok(plain),
            Err(message) => {
                // The sealing state is now out of step with the server's: start over next time.
                self.reset_connection();
                Err(self.error(operation, Failure::Protocol(message)))
            }
        }
    }

    fn basic_header(&self) -> Option<HeaderValue> {
        if self.endpoint.auth != AuthMethod::Basic {
            return None;
        }
        let pair = format!(
            "{}:{}",
            self.endpoint.username,
            self.endpoint.password.expose()
        );
        let mut value = HeaderValue::from_str(&format!("Basic {}", BASE64.encode(pair))).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// The Negotiate handshake (NTLM or Kerberos) on a fresh connection, through the logon gate.
    async fn authenticate(&mut self, timeout: Duration) -> Result<(), WinrmError> {
        let op = Operation::Authenticate;
        let plan = self.logon_plan()?;
        self.reset_connection();
        let pass = match self.gate.clone() {
            Some(gate) => Some(gate.pass().await.map_err(|r| self.not_tried(&r))?),
            None => None,
        };
        match self.handshake(&plan, pass.as_ref(), timeout).await {
            Ok(mechanism) => {
                if let Some(pass) = &pass {
                    pass.proven();
                }
                self.stats.authentications += 1;
                self.stats.mechanism = Some(mechanism);
                tracing::info!(host = %self.authority, %mechanism, spn = %self.endpoint.spn(), "logged on");
                Ok(())
            }
            Err(failure) => {
                self.reset_connection();
                // Before the account is proven any refusal closes the gate; after, only the KDC's
                // (a host's NTLM 401 may be about that host alone).
                if failure.credentials_refused
                    && let Some(pass) = &pass
                    && (failure.by_kdc || matches!(pass, Pass::Probe(_)))
                {
                    pass.gate().refuse(Refusal {
                        host: self.authority.clone(),
                        reason: failure.error.failure().to_string(),
                    });
                }
                Err(failure.error.during(op))
            }
        }
    }

    /// The error of a session that did not try: the credentials were refused elsewhere.
    fn not_tried(&self, refusal: &Refusal) -> WinrmError {
        self.error(
            Operation::Authenticate,
            Failure::Auth(format!(
                "not tried: the credentials of {} were refused by {} ({}); wsusfix logs on to no \
                 other host with them, so that a wrong password costs one failed logon",
                self.endpoint.username, refusal.host, refusal.reason
            )),
        )
    }

    /// The legs of one logon; returns the mechanism used.
    async fn handshake(
        &mut self,
        plan: &Mechanism,
        pass: Option<&Pass>,
        timeout: Duration,
    ) -> Result<LogonMechanism, LogonFailure> {
        let op = Operation::Authenticate;
        let spn = self.endpoint.spn();
        let context = SecurityContext::new(
            plan,
            &self.endpoint.username,
            &self.endpoint.password,
            &spn,
            self.endpoint.connect_timeout,
        )
        .map_err(|m| self.error(op, Failure::Config(m)))?;
        let (mut context, first) = self.first_step(context).await?;
        let mechanism = context.mechanism();
        if mechanism == LogonMechanism::Kerberos
            && let Some(pass) = pass
        {
            // The KDC issued the tickets: the password is right, whatever the host says.
            pass.proven();
        }
        let mut token = first;
        let mut leg = 0;
        loop {
            leg += 1;
            if leg > MAX_LEGS {
                return Err(self
                    .error(
                        op,
                        Failure::Protocol(format!(
                            "the server asked for more than {MAX_LEGS} handshake legs"
                        )),
                    )
                    .into());
            }
            let reply = self
                .send(
                    op,
                    Vec::new(),
                    SOAP_CONTENT_TYPE,
                    Some(negotiate_header(&token)),
                    timeout,
                )
                .await?;
            match reply.status {
                200 => {
                    // The SPNEGO final token (NTLM's mechListMIC) or Kerberos's AP-REP rides on
                    // the 200 and must be consumed, or the sealing sequence is off.
                    match reply.negotiate_token {
                        Some(Ok(t)) if !context.is_complete() => {
                            context.step(Some(&t)).map_err(|m| {
                                self.error(
                                    op,
                                    Failure::Auth(format!(
                                        "the server's final token was refused: {m}"
                                    )),
                                )
                            })?;
                        }
                        Some(Err(m)) => return Err(self.error(op, Failure::Protocol(m)).into()),
                        _ => {}
                    }
                    if !context.is_complete() {
                        if mechanism == LogonMechanism::Kerberos {
                            // sspi takes the acceptor's subkey from the AP-REP: without it there
                            // is no sealing.
                            return Err(self
                                .error(
                                    op,
                                    Failure::Auth(format!(
                                        "the host accepted the Kerberos ticket for {spn} but \
                                         sent no AP-REP, so it did not prove itself (mutual \
                                         authentication)"
                                    )),
                                )
                                .into());
                        }
                        tracing::debug!(host = %self.authority, "handshake ended without a final token; using the context as is");
                    }
                    self.context = Some(context);
                    return Ok(mechanism);
                }
                401 if mechanism == LogonMechanism::Kerberos => {
                    // Kerberos takes one leg: a 401 is the host refusing the ticket, with its
                    // KRB-ERROR when it sent one (Windows does, e.g. for a clock skew).
                    let error = match &reply.negotiate_token {
                        Some(Ok(t)) => kerberos::krb_error_in_token(t),
                        _ => None,
                    };
                    return Err(self
                        .error(
                            op,
                            Failure::Auth(kerberos::explain_acceptor_error(error.as_ref(), &spn)),
                        )
                        .into());
                }
                401 => match reply.negotiate_token {
                    Some(Ok(challenge)) if leg == 1 && !context.is_complete() => {
                        // Over HTTPS, bind the NTLM logon to this TLS channel (Extended
                        // Protection hosts insist). Never with Kerberos: sspi 0.23.1 encodes
                        // its channel binding wrongly (docs/winrm.md).
                        if let Some(cert) = &reply.peer_certificate {
                            match channel_binding::tls_server_end_point(cert) {
                                Ok(binding) => context.set_channel_binding(&binding),
                                Err(m) => {
                                    tracing::debug!(host = %self.authority, "no channel binding: {m}");
                                }
                            }
                        }
                        token = context.step(Some(&challenge)).map_err(|m| {
                            self.error(
                                op,
                                Failure::Protocol(format!("cannot answer the NTLM challenge: {m}")),
                            )
                        })?;
                    }
                    Some(Err(m)) => return Err(self.error(op, Failure::Protocol(m)).into()),
                    _ if leg == 1 => {
                        return Err(self.ntlm_refused(&reply.offered, &context).into());
                    }
                    _ => {
                        return Err(LogonFailure {
                            error: self.error(
                                op,
                                Failure::Auth(
                                    "the server rejected the credentials (HTTP 401): check user \
                                     name, password and domain, and that the account may use \
                                     WinRM"
                                        .into(),
                                ),
                            ),
                            credentials_refused: true,
                            by_kdc: false,
                        });
                    }
                },
                status => {
                    return Err(self
                        .unexpected_handshake_status(status, "the end of the handshake")
                        .into());
                }
            }
        }
    }

    /// The error for a 401 without a challenge at the first NTLM leg: no password was sent, the
    /// host refused NTLM itself (or does not offer Negotiate at all).
    fn ntlm_refused(&self, offered: &[String], context: &SecurityContext) -> WinrmError {
        let op = Operation::Authenticate;
        if !offered.iter().any(|o| o.eq_ignore_ascii_case("Negotiate")) {
            let offered = if offered.is_empty() {
                "nothing".to_string()
            } else {
                offered.join(", ")
            };
            return self.error(
                op,
                Failure::Auth(format!(
                    "the server does not offer Negotiate authentication (it offers {offered})"
                )),
            );
        }
        // With Negotiate, NTLM may be a fallback from Kerberos: say why Kerberos was not used.
        let fallback = match context.kdc_log() {
            Some(log) => match (&log.unreachable, log.decisive_error()) {
                (Some((kdc, why)), _) => {
                    format!(" (Kerberos was not used: the KDC {kdc} could not be reached: {why})")
                }
                (None, Some(e)) => {
                    format!(" (Kerberos was not used: the KDC answered {})", e.label())
                }
                (None, None) => String::new(),
            },
            None => String::new(),
        };
        self.error(
            op,
            Failure::Auth(format!(
                "the host refused the NTLM logon before any password was sent (HTTP 401 without a \
                 challenge){fallback}: hardened hosts accept only Kerberos; use auth: kerberos \
                 with a user@REALM name and the host's DNS name in `host:`"
            )),
        )
    }

    /// The first handshake step. Kerberos talks to the KDC here, which blocks: it runs on the
    /// blocking pool, the context moving there and back.
    async fn first_step(
        &mut self,
        mut context: SecurityContext,
    ) -> Result<(SecurityContext, Vec<u8>), LogonFailure> {
        let op = Operation::Authenticate;
        let (context, result) = if context.kdc().is_some() {
            tokio::task::spawn_blocking(move || {
                let r = context.step_sspi(None);
                (context, r)
            })
            .await
            .map_err(|e| {
                self.error(
                    op,
                    Failure::Protocol(format!("the Kerberos step did not finish: {e}")),
                )
            })?
        } else {
            let r = context.step_sspi(None);
            (context, r)
        };
        if let Some(log) = context.kdc_log() {
            self.stats.kdc_requests += log.exchanges;
        }
        match result {
            Ok(token) => Ok((context, token)),
            Err(e) => Err(self.first_step_failure(&context, e)),
        }
    }

    /// Names the cause of a failed first step from what the KDC client saw.
    fn first_step_failure(&self, context: &SecurityContext, e: sspi::Error) -> LogonFailure {
        let op = Operation::Authenticate;
        let spn = context.target().to_string();
        let user = self.endpoint.username.clone();
        let Some(log) = context.kdc_log() else {
            return self
                .error(
                    op,
                    Failure::Auth(format!(
                        "cannot start NTLM: {:?}: {}",
                        e.error_type, e.description
                    )),
                )
                .into();
        };
        let realm = kerberos::realm_of(&user).unwrap_or_default();
        if let Some((kdc, why)) = &log.unreachable {
            return self
                .error(
                    op,
                    Failure::Connect(format!(
                        "cannot reach the KDC {kdc} of the realm {realm}: {why}"
                    )),
                )
                .into();
        }
        if let Some(krb) = log.decisive_error() {
            return LogonFailure {
                error: self.error(
                    op,
                    Failure::Auth(kerberos::explain_kdc_error(krb, &user, &spn, &realm)),
                ),
                credentials_refused: kerberos::refuses_credentials(krb.code),
                by_kdc: true,
            };
        }
        self.error(
            op,
            Failure::Auth(format!(
                "the Kerberos logon of {user} to {spn} failed: {:?}: {}",
                e.error_type, e.description
            )),
        )
        .into()
    }

    fn unexpected_handshake_status(&mut self, status: u16, waiting_for: &str) -> WinrmError {
        self.reset_connection();
        let failure = match status {
            413 => Failure::Http {
                status,
                hint: Some(HINT_413),
            },
            _ => Failure::Http { status, hint: None },
        };
        tracing::debug!(host = %self.authority, status, "unexpected status while waiting for {waiting_for}");
        self.error(Operation::Authenticate, failure)
    }

    async fn client(&mut self, operation: Operation) -> Result<reqwest::Client, WinrmError> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        let client = self
            .build_client()
            .await
            .map_err(|f| self.error(operation, f))?;
        self.client = Some(client.clone());
        Ok(client)
    }

    async fn build_client(&mut self) -> Result<reqwest::Client, Failure> {
        // rustls needs a process-wide crypto provider; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(1)
            .connect_timeout(self.endpoint.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would break NTLM's connection affinity.
            .no_proxy()
            .tcp_nodelay(true)
            .user_agent(USER_AGENT);
        if self.uses_context() {
            // NTLM and Kerberos authenticate the TCP connection: one client, one connection.
            builder = builder.connector_layer(affinity::OneConnection::new(AFFINITY_GRACE));
        }
        match self.endpoint.scheme {
            // Plain HTTP never touches TLS: do not load the system's roots for nothing.
            Scheme::Http => builder = builder.tls_certs_only(Vec::new()),
            Scheme::Https if self.endpoint.insecure_skip_verify => {
                builder = builder.tls_danger_accept_invalid_certs(true).tls_info(true);
            }
            Scheme::Https => {
                // The certificate is needed for the channel binding of an NTLM logon.
                builder = builder.tls_info(true);
                if let Some(path) = &self.endpoint.ca_file {
                    if self.ca_roots.is_none() {
                        let pem = tokio::fs::read(path).await.map_err(|e| {
                            Failure::Config(format!("cannot read CA file {}: {e}", path.display()))
                        })?;
                        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                            Failure::Config(format!(
                                "CA file {} holds no usable PEM certificate: {}",
                                path.display(),
                                chain(&e)
                            ))
                        })?;
                        if certs.is_empty() {
                            return Err(Failure::Config(format!(
                                "CA file {} holds no PEM certificate",
                                path.display()
                            )));
                        }
                        self.ca_roots = Some(certs);
                    }
                    let roots = self.ca_roots.iter().flatten().cloned();
                    builder = match self.endpoint.ca_mode {
                        // "Trust this CA" means this CA: a certificate that some other
                        // authority of the system's store signed is refused.
                        CaMode::Only => builder.tls_certs_only(roots),
                        CaMode::Add => builder.tls_certs_merge(roots),
                    };
                }
            }
        }
        builder.build().map_err(|e| {
            Failure::Tls(format!(
                "cannot set up the HTTPS client: {}; give a CA file for this host",
                chain(&e)
            ))
        })
    }

    /// Sends one request and reads the whole reply.
    async fn send(
        &mut self,
        operation: Operation,
        body: Vec<u8>,
        content_type: &str,
        authorization: Option<HeaderValue>,
        timeout: Duration,
    ) -> Result<RawReply, WinrmError> {
        let client = self.client(operation).await?;
        let sent = body.len() as u64;
        let mut request = client
            .post(&self.url)
            .header(CONTENT_TYPE, content_type)
            .timeout(timeout)
            .body(body);
        if let Some(value) = authorization {
            request = request.header(AUTHORIZATION, value);
        }
        self.in_flight = true;
        self.stats.requests += 1;
        self.stats.bytes_sent += sent;
        let result = async {
            let mut response = request.send().await.map_err(ReadError::Http)?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let certificate = response
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|info| info.peer_certificate())
                .map(<[u8]>::to_vec);
            if response
                .content_length()
                .is_some_and(|n| n > MAX_REPLY_BODY as u64)
            {
                return Err(ReadError::TooLarge);
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(ReadError::Http)? {
                if bytes.len() + chunk.len() > MAX_REPLY_BODY {
                    return Err(ReadError::TooLarge);
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok((status, headers, certificate, bytes))
        }
        .await;
        self.in_flight = false;
        self.idle_connection_lost = false;
        let (status, headers, peer_certificate, bytes) = match result {
            Ok(parts) => parts,
            Err(ReadError::Http(e)) => {
                self.idle_connection_lost = affinity::gave_up(&e);
                self.reset_connection();
                return Err(self.error(operation, classify(&e, timeout)));
            }
            Err(ReadError::TooLarge) => {
                // The rest of the body is still on the connection: it cannot carry another request.
                self.reset_connection();
                return Err(self.error(
                    operation,
                    Failure::Limit(Limit::Reply {
                        bytes: MAX_ENVELOPE_SIZE as u64,
                    }),
                ));
            }
        };
        self.stats.bytes_received += bytes.len() as u64;
        tracing::debug!(host = %self.authority, %operation, status, sent, received = bytes.len(), "http exchange");
        let (negotiate_token, offered) = negotiate_token(&headers);
        Ok(RawReply {
            status,
            peer_certificate,
            content_type: headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            negotiate_token,
            offered,
            body: bytes,
        })
    }
}

/// Why reading a reply stopped.
enum ReadError {
    Http(reqwest::Error),
    TooLarge,
}

fn negotiate_header(token: &[u8]) -> HeaderValue {
    if PROTOCOL_DUMPS.load(Ordering::Relaxed) {
        tracing::trace!(target: "wsusfix::winrm::wire", "logon token sent: {}", BASE64.encode(token));
    }
    HeaderValue::from_str(&format!("Negotiate {}", BASE64.encode(token)))
        .expect("base64 is a valid header value")
}

/// The token of a `WWW-Authenticate: Negotiate <base64>` header (or `NTLM <base64>`), and the
/// list of schemes offered, for messages.
fn negotiate_token(headers: &HeaderMap) -> (Option<Result<Vec<u8>, String>>, Vec<String>) {
    let mut offered = Vec::new();
    let mut token = None;
    for value in headers.get_all(WWW_AUTHENTICATE) {
        let Ok(value) = value.to_str() else { continue };
        for challenge in value.split(',') {
            let challenge = challenge.trim();
            let (scheme, param) = challenge
                .split_once(' ')
                .map_or((challenge, ""), |(s, p)| (s, p.trim()));
            if scheme.is_empty() {
                continue;
            }
            offered.push(scheme.to_string());
            let negotiate =
                scheme.eq_ignore_ascii_case("Negotiate") || scheme.eq_ignore_ascii_case("NTLM");
            if negotiate && !param.is_empty() && token.is_none() {
                token = Some(
                    BASE64
                        .decode(param)
                        .map_err(|e| format!("the server's {scheme} token is not base64: {e}")),
                );
            }
        }
    }
    offered.dedup();
    (token, offered)
}

/// The messages of an error and its sources, joined, without repeats.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

/// The innermost cause of an error ("Connection refused (os error 111)"): for connection
/// failures the layers above it (request, client, connector) only repeat the URL.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = current.source() {
        current = next;
    }
    let text = current.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(io_wraps_rustls)
        {
            return true;
        }
        current = err.source();
    }
    false
}

/// TLS errors come as an io::Error (maybe inside another io::Error) around a rustls::Error;
/// io::Error::source skips the wrapped error, so look inside explicitly.
fn io_wraps_rustls(io: &std::io::Error) -> bool {
    io.get_ref().is_some_and(|inner| {
        inner.downcast_ref::<rustls::Error>().is_some()
            || inner
                .downcast_ref::<std::io::Error>()
                .is_some_and(io_wraps_rustls)
    })
}

/// Old Windows hosts fail the handshake on the protocol version; say what to do about it.
fn with_tls_version_hint(text: String) -> String {
    let version_problem = ["ProtocolVersion", "SupportTls12Or13", "HandshakeFailure"]
        .iter()
        .any(|marker| text.contains(marker));
    if version_problem {
        format!(
            "{text} (the host may offer only TLS 1.0: Windows Server 2003/2008 cannot do better \
             and 2008 R2 has TLS 1.2 off by default; use HTTP on port 5985 with NTLM, which \
             encrypts every message)"
        )
    } else {
        text
    }
}

fn classify(e: &reqwest::Error, timeout: Duration) -> Failure {
    let text = chain(e);
    if is_tls(e) {
        return Failure::Tls(with_tls_version_hint(text));
    }
    if e.is_timeout() {
        return Failure::Timeout {
            cause: TimeoutCause::Request,
            after: timeout,
        };
    }
    if e.is_connect() {
        return Failure::Connect(format!("cannot connect: {}", root_cause(e)));
    }
    if e.is_builder() {
        return Failure::Config(text);
    }
    Failure::Connect(format!("connection lost: {}", root_cause(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn www_authenticate_parsing() {
        let mut headers = HeaderMap::new();
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("Kerberos"));
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Negotiate TlRMTVNTUAAC"),
        );
        headers.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"WSMAN\""),
        );
        let (token, offered) = negotiate_token(&headers);
        assert_eq!(token.unwrap().unwrap(), b"NTLMSSP\0\x02".to_vec());
        assert_eq!(offered, ["Kerberos", "Negotiate", "Basic"]);

        let mut headers = HeaderMap::new();
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate"));
        let (token, offered) = negotiate_token(&headers);
        assert!(token.is_none());
        assert_eq!(offered, ["Negotiate"]);

        let mut headers = HeaderMap::new();
        headers.append(WWW_AUTHENTICATE, HeaderValue::from_static("Negotiate !!!"));
        assert!(negotiate_token(&headers).0.unwrap().is_err());
    }

    #[test]
    fn tls_version_failures_get_a_hint() {
        let hinted = with_tls_version_hint(
            "peer is incompatible: ServerDoesNotSupportTls12Or13".to_string(),
        );
        assert!(
            hinted.contains("use HTTP on port 5985 with NTLM"),
            "{hinted}"
        );
        let plain = with_tls_version_hint("invalid peer certificate: UnknownIssuer".into());
        assert_eq!(plain, "invalid peer certificate: UnknownIssuer");
    }

    #[test]
    fn basic_header_is_sensitive_and_only_for_basic() {
        use crate::util::secret::Secret;
        let ep = Endpoint::new(
            "h",
            Scheme::Https,
            AuthMethod::Basic,
            "admin",
            Secret::new("pw"),
        );
        let t = Transport::new(ep);
        let h = t.basic_header().unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h.to_str().unwrap(), "Basic YWRtaW46cHc=");
        let ep = Endpoint::new(
            "h",
            Scheme::Http,
            AuthMethod::Ntlm,
            "admin",
            Secret::new("pw"),
        );
        assert!(Transport::new(ep).basic_header().is_none());
    }
}
