//! The listeners: for every host, HTTP and HTTPS on its own loopback address, HTTP/1.1
//! keep-alive connections each with their own logon state, the refuse-connections fault (the
//! listener closes and reopens), and shutdown with a bounded drain.
//!
//! Like HTTP.sys in front of WinRM, a listener does not let a client hold it: a connection
//! that takes longer than `header_read_timeout` to send a request's headers (or idles that
//! long between requests) is closed, and a host serves at most `max_connections` connections at
//! once; one more is answered `503 Service Unavailable` and closed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::faults::TransportFaults;
use super::host::{EndpointConfig, HostSpec, ScriptHost};
use super::service::{Connection, HostRuntime};
use super::tls::{Authority, TlsError};

/// How long shutdown waits for connections to finish their request in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("no hosts to serve")]
    NoHosts,
    #[error("host {0:?} is listed twice")]
    DuplicateHost(String),
    #[error("host {host:?}: cannot listen on {addr}: {source}")]
    Bind {
        host: String,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Where one host listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddrs {
    pub name: String,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
}

impl HostAddrs {
    /// `http://ip:port/wsman`.
    pub fn http_url(&self) -> String {
        format!("http://{}/wsman", self.http)
    }

    /// `https://ip:port/wsman`, if there is an HTTPS listener.
    pub fn https_url(&self) -> Option<String> {
        self.https.map(|a| format!("https://{a}/wsman"))
    }
}

/// A snapshot of one host's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// TCP connections accepted (TLS ones counted after the handshake).
    pub connections: u64,
    /// HTTP requests received.
    pub requests: u64,
    /// Logons refused (wrong user or password, NTLMv1, Basic over HTTP, the reject fault, a
    /// refused Kerberos ticket, NTLM on a host that allows no NTLM).
    pub auth_failures: u64,
    /// NTLM logons that succeeded.
    pub ntlm_logons: u64,
    /// Kerberos logons that succeeded.
    pub kerberos_logons: u64,
    /// NTLM logons refused because the host allows no NTLM (`ntlm: false`).
    pub ntlm_refused: u64,
    pub shells_created: u64,
    pub shells_deleted: u64,
    /// Shells open now.
    pub shells_open: u64,
    /// Commands started.
    pub commands: u64,
    /// `w:TimedOut` faults sent (genuine and storm).
    pub timed_out: u64,
    /// HTTP 500s injected by the fault switches.
    pub injected_errors: u64,
    /// Connections turned away because the host served `max_connections` already.
    pub connections_refused: u64,
}

/// A running endpoint. Dropping it stops the listeners without waiting; [`shutdown`] waits for
/// the drain.
///
/// [`shutdown`]: RunningEndpoint::shutdown
pub struct RunningEndpoint {
    hosts: Vec<HostAddrs>,
    runtimes: HashMap<String, Arc<HostRuntime>>,
    ca_pem: String,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEndpoint")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl RunningEndpoint {
    /// Every host's bound addresses, in the order given to [`serve`].
    pub fn hosts(&self) -> &[HostAddrs] {
        &self.hosts
    }

    /// One host's bound addresses.
    pub fn host(&self, name: &str) -> Option<&HostAddrs> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// The PEM of the certificate authority that signed every HTTPS listener's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// One host's counters now.
    pub fn counters(&self, name: &str) -> Option<HostCounters> {
        let rt = self.runtimes.get(name)?;
        let c = &rt.counters;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Some(HostCounters {
            connections: get(&c.connections),
            requests: get(&c.requests),
            auth_failures: get(&c.auth_failures),
            ntlm_logons: get(&c.ntlm_logons),
            kerberos_logons: get(&c.kerberos_logons),
            ntlm_refused: get(&c.ntlm_refused),
            shells_created: get(&c.shells_created),
            shells_deleted: get(&c.shells_deleted),
            shells_open: rt.shells.open() as u64,
            commands: get(&c.commands),
            timed_out: get(&c.timed_out),
            injected_errors: get(&c.injected_errors),
            connections_refused: get(&c.connections_refused),
        })
    }

    /// How one host takes logons, for banners: `kerberos HTTP/h@R, no NTLM`, `NTLM`, ...
    pub fn logons(&self, name: &str) -> Option<String> {
        let spec = &self.runtimes.get(name)?.spec;
        let mut parts = Vec::new();
        if let Some(keys) = &spec.kerberos {
            parts.push(format!("kerberos {}", keys.principals().join(" ")));
        }
        parts.push(if spec.ntlm {
            "NTLM".into()
        } else {
            "no NTLM".into()
        });
        Some(parts.join(", "))
    }

    /// One host's fault switches (the same `Arc` its [`HostSpec`] carried).
    pub fn faults(&self, name: &str) -> Option<Arc<TransportFaults>> {
        self.runtimes
            .get(name)
            .map(|rt| Arc::clone(&rt.spec.faults))
    }

    /// Stops listening, lets requests in flight finish (waiting Receives answer TimedOut at
    /// once), closes connections, stops running commands.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        for rt in self.runtimes.values() {
            rt.shells.stop_all();
        }
    }
}

impl Drop for RunningEndpoint {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        for rt in self.runtimes.values() {
            rt.shells.stop_all();
        }
    }
}

/// Starts serving `hosts` over WinRM: every host on its own address, HTTP on
/// `cfg.http_port` and HTTPS on `cfg.https_port`, at `/wsman`. Scripts run through `handler`.
pub async fn serve(
    hosts: Vec<HostSpec>,
    cfg: EndpointConfig,
    handler: Arc<dyn ScriptHost>,
) -> Result<RunningEndpoint, EndpointError> {
    if hosts.is_empty() {
        return Err(EndpointError::NoHosts);
    }
    let mut seen = std::collections::HashSet::new();
    for h in &hosts {
        if !seen.insert(h.name.to_lowercase()) {
            return Err(EndpointError::DuplicateHost(h.name.clone()));
        }
    }
    let config = Arc::new(cfg);
    let authority = if config.https_port.is_some() {
        Some(Authority::generate()?)
    } else {
        None
    };
    let (stop, _) = watch::channel(false);

    let mut bound = Vec::new();
    let mut runtimes = HashMap::new();
    let mut listeners = Vec::new();
    for spec in hosts {
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let runtime = Arc::new(HostRuntime::new(
            spec.clone(),
            Arc::clone(&config),
            Arc::clone(&handler),
            stop.subscribe(),
        ));
        let bind = |port: u16| {
            let addr = SocketAddr::new(spec.ip, port);
            let name = spec.name.clone();
            async move {
                let listener =
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| EndpointError::Bind {
                            host: name.clone(),
                            addr,
                            source,
                        })?;
                let local = listener
                    .local_addr()
                    .map_err(|source| EndpointError::Bind {
                        host: name,
                        addr,
                        source,
                    })?;
                Ok::<_, EndpointError>((listener, local))
            }
        };
        let (http, http_addr) = bind(config.http_port).await?;
        listeners.push((
            http,
            http_addr,
            Arc::clone(&runtime),
            None,
            Arc::clone(&slots),
        ));
        let mut https_addr = None;
        if let (Some(port), Some(authority)) = (config.https_port, &authority) {
            let (https, addr) = bind(port).await?;
            let (config, binding) = authority.server_config(&spec.name, spec.ip)?;
            let _ = runtime
                .channel_bindings
                .set(super::ntlm::channel_bindings_hash(&binding));
            let tls = TlsAcceptor::from(config);
            listeners.push((
                https,
                addr,
                Arc::clone(&runtime),
                Some(tls),
                Arc::clone(&slots),
            ));
            https_addr = Some(addr);
        }
        tracing::info!(host = %spec.name, http = %http_addr, https = ?https_addr, "simulated WinRM listener");
        bound.push(HostAddrs {
            name: spec.name.clone(),
            http: http_addr,
            https: https_addr,
        });
        runtimes.insert(spec.name.clone(), runtime);
    }

    let tasks = listeners
        .into_iter()
        .map(|(listener, addr, runtime, tls, slots)| {
            tokio::spawn(listen(
                listener,
                addr,
                runtime,
                tls,
                slots,
                stop.subscribe(),
            ))
        })
        .collect();
    Ok(RunningEndpoint {
        hosts: bound,
        runtimes,
        ca_pem: authority
            .map(|a| a.ca_pem().to_string())
            .unwrap_or_default(),
        stop,
        tasks,
    })
}

/// Resolves once the switch is on (at once if it is already); never if its sender is gone.
pub(crate) async fn switched_on(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|on| *on).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Rebinds a listener that the refuse fault closed (SO_REUSEADDR, which tokio sets on Unix,
/// lets it bind past the dropped connections in TIME_WAIT), retrying while the port is busy.
async fn rebind(addr: SocketAddr, stop: &mut watch::Receiver<bool>) -> Option<TcpListener> {
    let mut delay = Duration::from_millis(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) => tracing::warn!(%addr, error = %e, "cannot listen again yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = switched_on(stop) => return None,
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// The answer to a connection over the cap (before any TLS: the client gets a clear refusal).
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nServer: Microsoft-HTTPAPI/2.0\r\n\
Content-Length: 0\r\nConnection: close\r\n\r\n";

async fn listen(
    listener: TcpListener,
    addr: SocketAddr,
    runtime: Arc<HostRuntime>,
    tls: Option<TlsAcceptor>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut refuse = runtime.spec.faults.watch_refuse();
    let mut listener = Some(listener);
    let mut connections = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        if *refuse.borrow_and_update() {
            if listener.take().is_some() {
                tracing::info!(host = %runtime.spec.name, %addr, "refusing connections");
            }
            tokio::select! {
                _ = refuse.changed() => continue,
                _ = switched_on(&mut stop) => break,
            }
        }
        let Some(current) = listener.as_ref() else {
            match rebind(addr, &mut stop).await {
                Some(l) => {
                    tracing::info!(host = %runtime.spec.name, %addr, "accepting connections again");
                    listener = Some(l);
                    continue;
                }
                None => break,
            }
        };
        tokio::select! {
            accepted = current.accept() => match accepted {
                Ok((mut tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        super::shell::Counters::bump(&runtime.counters.connections_refused);
                        tracing::debug!(host = %runtime.spec.name, %peer, "too many connections: 503");
                        let plain = tls.is_none();
                        connections.spawn(async move {
                            use tokio::io::AsyncWriteExt;
                            if plain {
                                let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(BUSY)).await;
                            }
                            let _ = tcp.shutdown().await;
                        });
                        continue;
                    };
                    let runtime = Arc::clone(&runtime);
                    let tls = tls.clone();
                    let stop = stop.clone();
                    connections.spawn(async move {
                        let _slot = slot;
                        match tls {
                            None => serve_connection(tcp, runtime, false, peer, stop).await,
                            Some(acceptor) => {
                                let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                                match handshake {
                                    Ok(Ok(stream)) => serve_connection(stream, runtime, true, peer, stop).await,
                                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                                }
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            _ = refuse.changed() => {}
            _ = switched_on(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

async fn serve_connection<IO>(
    io: IO,
    runtime: Arc<HostRuntime>,
    tls: bool,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    super::shell::Counters::bump(&runtime.counters.connections);
    let mut refuse = runtime.spec.faults.watch_refuse();
    let state = Arc::new(Mutex::new(Connection::new(Arc::clone(&runtime), tls, peer)));
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move {
            // HTTP/1.1 serves one request at a time per connection: the lock is never contended.
            let mut conn = state.lock().await;
            Ok::<_, Infallible>(conn.handle(req).await)
        }
    });
    let header_read_timeout = runtime.config.header_read_timeout;
    let conn = http1::Builder::new()
        .keep_alive(true)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
        _ = switched_on(&mut refuse) => {
            tracing::debug!(%peer, "connection dropped (host refuses connections)");
        }
        _ = switched_on(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
