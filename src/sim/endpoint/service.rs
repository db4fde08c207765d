//! One HTTP request through the listener's pipeline: transport faults, size limit, logon,
//! unsealing, the WS-Management operation, sealing of the reply. The state of a TCP connection
//! (its logon) lives in [`Connection`]; the host's state in [`HostRuntime`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use crate::util::prng::Prng;

use super::auth::{self, Handshake, Outcome, Policy, Protocol, Session};
use super::framing;
use super::host::{EndpointConfig, HostSpec, ScriptHost};
use super::shell::{self, Counters, Received, Shells};
use super::soap::{self, Fault, Operation};

/// What every host's listeners share.
pub(crate) struct HostRuntime {
    pub spec: HostSpec,
    pub config: Arc<EndpointConfig>,
    pub shells: Shells,
    pub counters: Arc<Counters>,
    pub prng: Mutex<Prng>,
    pub stop: watch::Receiver<bool>,
    /// The MsvAvChannelBindings an NTLM logon over this host's HTTPS listener carries.
    pub channel_bindings: std::sync::OnceLock<[u8; 16]>,
}

impl HostRuntime {
    pub fn new(
        spec: HostSpec,
        config: Arc<EndpointConfig>,
        handler: Arc<dyn ScriptHost>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let counters = Arc::new(Counters::default());
        HostRuntime {
            shells: Shells::new(spec.name.clone(), handler, Arc::clone(&counters)),
            prng: Mutex::new(Prng::derive(config.seed, &spec.name)),
            spec,
            config,
            counters,
            stop,
            channel_bindings: std::sync::OnceLock::new(),
        }
    }

    fn max_envelope(&self) -> usize {
        self.config.max_envelope_kb.saturating_mul(1024)
    }
}

enum Logon {
    None,
    Pending(Handshake),
    Established(Session),
}

/// The state of one TCP connection: NTLM authenticates the connection, not the request.
pub(crate) struct Connection {
    host: Arc<HostRuntime>,
    tls: bool,
    peer: SocketAddr,
    logon: Logon,
}

type Reply = Response<Full<Bytes>>;

/// Slack on top of MaxEnvelopeSize for the MIME framing of an encrypted request.
const FRAMING_SLACK: usize = 16 * 1024;

fn reply(status: StatusCode, content_type: Option<&str>, body: Vec<u8>) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::SERVER,
        HeaderValue::from_static("Microsoft-HTTPAPI/2.0"),
    );
    if let Some(ct) = content_type.and_then(|ct| HeaderValue::from_str(ct).ok()) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    response
}

/// Where the service answers a request that cannot go on, and why (for the log).
enum Stop {
    /// 401 with the listener's challenge headers.
    Unauthorized(&'static str),
    /// 401 with this `Negotiate` token: a refused Kerberos ticket's KRB-ERROR, as Windows sends.
    Rejected(Vec<u8>),
    /// A bare status (404, 405, 413, 500).
    Status(StatusCode, bool),
}

impl Connection {
    pub fn new(host: Arc<HostRuntime>, tls: bool, peer: SocketAddr) -> Self {
        Connection {
            host,
            tls,
            peer,
            logon: Logon::None,
        }
    }

    fn challenge(&self) -> Reply {
        let mut r = reply(StatusCode::UNAUTHORIZED, None, Vec::new());
        let headers = r.headers_mut();
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Negotiate"),
        );
        if self.tls {
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"WSMAN\""),
            );
        }
        r
    }

    fn stop(&self, stop: Stop) -> Reply {
        match stop {
            Stop::Unauthorized(why) => {
                tracing::debug!(host = %self.host.spec.name, why, "401");
                self.challenge()
            }
            Stop::Rejected(token) => {
                with_token(reply(StatusCode::UNAUTHORIZED, None, Vec::new()), &token)
            }
            Stop::Status(status, close) => {
                let mut r = reply(status, None, Vec::new());
                if close {
                    r.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                r
            }
        }
    }

    fn refuse_logon(&mut self, why: &str) -> Stop {
        tracing::info!(host = %self.host.spec.name, peer = %self.peer, why, "logon refused");
        Counters::bump(&self.host.counters.auth_failures);
        self.logon = Logon::None;
        Stop::Unauthorized("logon refused")
    }

    /// Answers one request.
    pub async fn handle(&mut self, req: Request<Incoming>) -> Reply {
        let host = Arc::clone(&self.host);
        Counters::bump(&host.counters.requests);
        host.spec.faults.count_request();
        if host.spec.faults.is_hung() {
            // A hung WinRM service: the request was read, no answer ever comes.
            std::future::pending::<()>().await;
        }
        let latency = host.spec.faults.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match self.handle_inner(req).await {
            Ok(r) => r,
            Err(stop) => self.stop(stop),
        }
    }

    async fn handle_inner(&mut self, req: Request<Incoming>) -> Result<Reply, Stop> {
        let host = Arc::clone(&self.host);
        if !req.uri().path().eq_ignore_ascii_case("/wsman") {
            return Err(Stop::Status(StatusCode::NOT_FOUND, false));
        }
        if req.method() != Method::POST {
            return Err(Stop::Status(StatusCode::METHOD_NOT_ALLOWED, false));
        }
        let text_header = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let authorization = text_header(header::AUTHORIZATION);
        let content_type = text_header(header::CONTENT_TYPE).unwrap_or_default();
        let host_header = text_header(header::HOST).unwrap_or_else(|| host.spec.ip.to_string());

        let hard_limit = host.max_envelope() + FRAMING_SLACK;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > hard_limit) {
            return Err(Stop::Status(StatusCode::PAYLOAD_TOO_LARGE, true));
        }
        let body = match Limited::new(req.into_body(), hard_limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(Stop::Status(StatusCode::PAYLOAD_TOO_LARGE, true)),
        };

        // Logon.
        let mut final_token = None;
        let mut basic_user = None;
        if let Some(authorization) = authorization {
            let (scheme, value) = authorization
                .split_once(' ')
                .unwrap_or((authorization.as_str(), ""));
            if scheme.eq_ignore_ascii_case("Negotiate") {
                match self.negotiate(value.trim())? {
                    Leg::Challenge(token) => {
                        let r = reply(StatusCode::UNAUTHORIZED, None, Vec::new());
                        return Ok(with_token(r, &token));
                    }
                    Leg::LoggedOn(token) => final_token = token,
                }
            } else if scheme.eq_ignore_ascii_case("Basic") {
                if !self.tls {
                    return Err(self.refuse_logon("Basic is not allowed over HTTP"));
                }
                if host.spec.faults.rejects_credentials() {
                    return Err(self.refuse_logon("credentials rejected (fault)"));
                }
                match auth::check_basic(value, &host.spec.accounts) {
                    Some(i) => basic_user = Some(host.spec.accounts[i].username.clone()),
                    None => return Err(self.refuse_logon("Basic: wrong user name or password")),
                }
            } else {
                return Err(Stop::Unauthorized("unsupported scheme"));
            }
        }

        // Who is asking, and the message in clear.
        let encrypted = framing::is_encrypted(&content_type);
        let (user, plain) = if let Some(user) = basic_user {
            if encrypted {
                return Err(Stop::Unauthorized(
                    "encrypted message without a security context",
                ));
            }
            (user, body.to_vec())
        } else {
            let Logon::Established(session) = &mut self.logon else {
                return Err(Stop::Unauthorized("not logged on"));
            };
            let user = session.account.clone();
            if encrypted {
                match session.unseal(&body) {
                    Ok(plain) => (user, plain),
                    Err(e) => {
                        tracing::info!(host = %host.spec.name, error = %e, "decrypt failed; context dropped");
                        self.logon = Logon::None;
                        return Err(Stop::Unauthorized("decrypt failed"));
                    }
                }
            } else if body.is_empty() {
                (user, Vec::new())
            } else if self.tls {
                (user, body.to_vec())
            } else {
                // AllowUnencrypted=false: plaintext SOAP over HTTP is refused with 401.
                self.logon = Logon::None;
                return Err(Stop::Unauthorized("unencrypted message over HTTP"));
            }
        };

        if plain.is_empty() {
            // The empty POST that completes a logon (pywinrm, pypsrp) or a keep-alive probe.
            let r = reply(StatusCode::OK, None, Vec::new());
            return Ok(match final_token {
                Some(token) => with_token(r, &token),
                None => r,
            });
        }
        if plain.len() > host.max_envelope() {
            return Err(Stop::Status(StatusCode::PAYLOAD_TOO_LARGE, false));
        }
        if host.spec.faults.take_failure(&host.prng) {
            Counters::bump(&host.counters.injected_errors);
            return Err(Stop::Status(StatusCode::INTERNAL_SERVER_ERROR, false));
        }

        let machine = host_header
            .rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or_else(|| host_header.clone());
        let address = format!(
            "{}://{}/wsman",
            if self.tls { "https" } else { "http" },
            host_header
        );
        let (status, xml) = self.operation(&plain, &user, &machine, &address).await;

        let r = if encrypted {
            let Logon::Established(session) = &mut self.logon else {
                return Err(Stop::Unauthorized("context lost"));
            };
            match session.seal(xml.as_bytes()) {
                Ok(sealed) => reply(status, Some(framing::CONTENT_TYPE), sealed),
                Err(e) => {
                    tracing::warn!(host = %host.spec.name, error = %e, "seal failed");
                    self.logon = Logon::None;
                    return Err(Stop::Status(StatusCode::INTERNAL_SERVER_ERROR, true));
                }
            }
        } else {
            reply(
                status,
                Some("application/soap+xml;charset=UTF-8"),
                xml.into_bytes(),
            )
        };
        Ok(match final_token {
            Some(token) => with_token(r, &token),
            None => r,
        })
    }

    /// One `Negotiate` leg.
    fn negotiate(&mut self, value: &str) -> Result<Leg, Stop> {
        let host = Arc::clone(&self.host);
        let Ok(token) = base64::engine::general_purpose::STANDARD.decode(value) else {
            return Err(self.refuse_logon("Negotiate token is not base64"));
        };
        let outcome = if auth::is_initial(&token) {
            let policy = Policy {
                host: &host.spec.name,
                accounts: &host.spec.accounts,
                ntlm: host.spec.ntlm,
                kerberos: host.spec.kerberos.as_deref(),
            };
            if host.spec.faults.rejects_credentials()
                && super::kerberos::offer(&token) != super::kerberos::Offer::Ntlm
            {
                // A Kerberos logon proves the password at the KDC; "rejected credentials" on
                // this host means its account is refused here.
                return Err(self.refuse_logon("credentials rejected (fault)"));
            }
            if !host.spec.ntlm && super::kerberos::offer(&token) == super::kerberos::Offer::Ntlm {
                Counters::bump(&host.counters.ntlm_refused);
            }
            Handshake::begin(&token, policy)
        } else {
            match std::mem::replace(&mut self.logon, Logon::None) {
                Logon::Pending(handshake) => {
                    // A rejected password is refused at the AUTHENTICATE leg, as a wrong one is.
                    if host.spec.faults.rejects_credentials()
                        && super::ntlm::find_message(&token, 3).is_some()
                    {
                        return Err(self.refuse_logon("credentials rejected (fault)"));
                    }
                    // Extended Protection: over HTTPS, the logon must be bound to this channel.
                    if self.tls
                        && host.spec.faults.extended_protection()
                        && let Some(msg) = super::ntlm::find_message(&token, 3)
                    {
                        let sent = super::ntlm::parse_authenticate(msg)
                            .ok()
                            .and_then(|a| super::ntlm::channel_bindings_of(&a.nt_response));
                        if sent.is_none() || sent.as_ref() != host.channel_bindings.get() {
                            return Err(self.refuse_logon(
                                "Extended Protection: the logon carries no channel binding of this connection",
                            ));
                        }
                    }
                    handshake.next(&token, &host.spec.accounts)
                }
                _ => return Err(self.refuse_logon("Negotiate token out of sequence")),
            }
        };
        match outcome {
            Outcome::Continue(handshake, token) => {
                self.logon = Logon::Pending(handshake);
                Ok(Leg::Challenge(token))
            }
            Outcome::Established(session, token) => {
                tracing::debug!(host = %host.spec.name, account = %session.account, protocol = ?session.protocol, "logged on");
                Counters::bump(match session.protocol {
                    Protocol::Ntlm => &host.counters.ntlm_logons,
                    Protocol::Kerberos => &host.counters.kerberos_logons,
                });
                self.logon = Logon::Established(session);
                Ok(Leg::LoggedOn(token))
            }
            Outcome::Refused { why, token } => {
                let stop = self.refuse_logon(&why);
                Err(match token {
                    Some(t) => Stop::Rejected(t),
                    None => stop,
                })
            }
        }
    }

    /// Runs the WS-Management operation; returns the HTTP status and the reply envelope.
    async fn operation(
        &mut self,
        plain: &[u8],
        user: &str,
        machine: &str,
        address: &str,
    ) -> (StatusCode, String) {
        let host = Arc::clone(&self.host);
        let message_id = soap::new_message_id();
        let fault = |relates: &str, f: Fault| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                soap::fault_response(relates, &message_id, machine, &f),
            )
        };
        let request = match soap::parse_request(plain) {
            Ok(r) => r,
            Err(e) => return fault("", Fault::schema(&e.0)),
        };
        let h = &request.header;
        let relates = h.message_id.as_str();
        if h.resource_uri != soap::RESOURCE_CMD {
            return fault(
                relates,
                Fault::unsupported(&format!("resource URI {}", h.resource_uri)),
            );
        }
        let shell_id = h.shell_id.clone().unwrap_or_default();
        let shells = &host.shells;
        let result: Result<String, Fault> = match &request.operation {
            Operation::Create => shells
                .create(
                    user,
                    host.config.max_shells_per_user,
                    host.config.shell_idle_timeout,
                )
                .map(|id| {
                    soap::create_response(
                        relates,
                        &message_id,
                        &soap::ShellInfo {
                            shell_id: &id,
                            address,
                            owner: super::ntlm::account_part(user),
                            client_ip: &self.peer.ip().to_string(),
                            idle_timeout: host.config.shell_idle_timeout,
                        },
                    )
                }),
            Operation::Command { command, arguments } => shells
                .start(&shell_id, user, command, arguments)
                .map(|id| soap::command_response(relates, &message_id, &id)),
            Operation::Send { streams } => shells
                .send(&shell_id, user, streams)
                .map(|()| soap::send_response(relates, &message_id)),
            Operation::Receive { command_id } => {
                let Some(command_id) = command_id else {
                    return fault(relates, Fault::schema("Receive without a CommandId"));
                };
                let timeout = h
                    .operation_timeout
                    .unwrap_or(Duration::from_secs(60))
                    .min(host.config.max_operation_timeout);
                let max_envelope = h
                    .max_envelope_size
                    .unwrap_or(host.max_envelope())
                    .clamp(8192, host.max_envelope().max(8192));
                let limits = shell::ReceiveLimits {
                    timeout,
                    budget: shell::receive_budget(max_envelope),
                    storm: host.spec.faults.timeout_storm(),
                };
                match shells
                    .receive(&shell_id, user, command_id, limits, host.stop.clone())
                    .await
                {
                    Ok(Received::TimedOut) => {
                        Counters::bump(&host.counters.timed_out);
                        Err(Fault::timed_out())
                    }
                    Ok(Received::Chunk { streams, exit_code }) => {
                        let chunk = soap::ReceiveChunk {
                            command_id,
                            streams: streams.iter().map(|(n, b)| (*n, b.as_slice())).collect(),
                            exit_code,
                        };
                        Ok(soap::receive_response(relates, &message_id, &chunk))
                    }
                    Err(f) => Err(f),
                }
            }
            Operation::Signal { command_id, code } => match command_id {
                Some(command_id) => shells
                    .signal(&shell_id, user, command_id, code)
                    .map(|()| soap::signal_response(relates, &message_id)),
                None => Err(Fault::schema("Signal without a CommandId")),
            },
            Operation::Delete => shells
                .delete(&shell_id, user)
                .map(|()| soap::delete_response(relates, &message_id)),
            Operation::Unsupported => Err(Fault::unsupported(&format!("action {}", h.action))),
        };
        match result {
            Ok(xml) => (StatusCode::OK, xml),
            Err(f) => fault(relates, f),
        }
    }
}

/// Where a `Negotiate` leg leaves the logon.
enum Leg {
    /// Go on: a 401 carrying this token.
    Challenge(Vec<u8>),
    /// Logged on; SPNEGO's final token, if any, goes on the reply.
    LoggedOn(Option<Vec<u8>>),
}

/// Adds `WWW-Authenticate: Negotiate <token>` to a reply.
fn with_token(mut r: Reply, token: &[u8]) -> Reply {
    let value = format!(
        "Negotiate {}",
        base64::engine::general_purpose::STANDARD.encode(token)
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_str(&value).expect("base64 is a valid header value"),
    );
    r
}
