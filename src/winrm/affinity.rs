//! One client, one TCP connection: NTLM authenticates the connection, not the request.
//!
//! reqwest's pool (hyper-util) puts a connection back in its idle set from a spawned task, once
//! the response has ended; a request sent at once races that return against dialing a new
//! connection, and on a fast network the dial wins. The request then lands on a connection that
//! never logged on, and the server answers 401 (Windows does; so does the simulator).
//!
//! [`OneConnection`] is a connector layer that lets a client dial once. Any later connect waits
//! for `grace` and gives up without dialing: while the authenticated connection is alive, the
//! pool's checkout wins as soon as it is idle (a connect that lost is left to finish in the
//! background, where giving up is harmless); when the connection is really gone, the request
//! fails with [`ConnectionGone`] and the transport starts over on a new client.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error of a connect attempt that was not allowed to dial.
#[derive(Debug)]
pub struct ConnectionGone;

impl std::fmt::Display for ConnectionGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the authenticated connection is gone")
    }
}

impl std::error::Error for ConnectionGone {}

/// True when `e` (or one of its causes) is [`ConnectionGone`].
pub fn gave_up(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if err.downcast_ref::<ConnectionGone>().is_some() {
            return true;
        }
        current = err.source();
    }
    false
}

/// The layer: one per client (and so per connection).
#[derive(Debug, Clone)]
pub struct OneConnection {
    dialed: Arc<AtomicBool>,
    grace: Duration,
}

impl OneConnection {
    /// A layer whose later connects wait `grace` for the pooled connection, then give up.
    pub fn new(grace: Duration) -> Self {
        OneConnection {
            dialed: Arc::new(AtomicBool::new(false)),
            grace,
        }
    }
}

impl<S> tower_layer::Layer<S> for OneConnection {
    type Service = OneConnectionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OneConnectionService {
            inner,
            dialed: self.dialed.clone(),
            grace: self.grace,
        }
    }
}

/// The connector service.
#[derive(Debug, Clone)]
pub struct OneConnectionService<S> {
    inner: S,
    dialed: Arc<AtomicBool>,
    grace: Duration,
}

impl<S, R> tower_service::Service<R> for OneConnectionService<S>
where
    S: tower_service::Service<R, Error = BoxError> + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        if self.dialed.swap(true, Ordering::SeqCst) {
            let grace = self.grace;
            Box::pin(async move {
                tokio::time::sleep(grace).await;
                Err(Box::new(ConnectionGone) as BoxError)
            })
        } else {
            Box::pin(self.inner.call(req))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tower_layer::Layer;
    use tower_service::Service;

    #[derive(Clone)]
    struct Dialer(Arc<AtomicUsize>);

    impl Service<&'static str> for Dialer {
        type Response = &'static str;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<&'static str, BoxError>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: &'static str) -> Self::Future {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok("connected") })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn dials_once_then_waits_and_gives_up() {
        let dials = Arc::new(AtomicUsize::new(0));
        let layer = OneConnection::new(Duration::from_secs(1));
        let mut svc = layer.layer(Dialer(dials.clone()));
        assert_eq!(svc.call("uri").await.unwrap(), "connected");
        let started = tokio::time::Instant::now();
        let e = svc.call("uri").await.unwrap_err();
        assert!(gave_up(e.as_ref()));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(1),
            "it waited for the pooled connection"
        );
        assert_eq!(
            dials.load(Ordering::SeqCst),
            1,
            "never dialed a second connection"
        );
        // A clone of the layer (another client) has its own connection to dial.
        let mut other = OneConnection::new(Duration::from_secs(1)).layer(Dialer(dials.clone()));
        assert!(other.call("uri").await.is_ok());
        assert_eq!(dials.load(Ordering::SeqCst), 2);
    }
}
