//! The signals that ask a run to stop: Ctrl-C (SIGINT), SIGTERM (`kill`, `timeout`, systemd, a
//! cancelled CI job) and SIGHUP (a closed terminal or SSH session) all take the same path: the
//! first stops scheduling and lets running steps finish and restores run; the second stops at
//! once. On Windows, Ctrl-C and Ctrl-Break (as SIGINT), a closed console or a logoff (as
//! SIGHUP) and a shutdown (as SIGTERM) take the same path.

use tokio::sync::watch;

use super::run::Signals;
use crate::journal::record::Signal;

/// Starts listening (inside a runtime) and returns the count of signals so far.
pub fn listen() -> watch::Receiver<Signals> {
    let (tx, rx) = watch::channel(Signals::default());
    tokio::spawn(async move {
        let mut next = waiter();
        loop {
            let Some(sig) = next.next().await else { break };
            let mut s = *tx.borrow();
            s.count += 1;
            s.last = sig;
            if tx.send(s).is_err() {
                break;
            }
        }
    });
    rx
}

/// A receiver that never sees a signal (benchmarks, the demo's own runs).
pub fn none() -> watch::Receiver<Signals> {
    let (tx, rx) = watch::channel(Signals::default());
    // Keep the sender alive for the program's life: a closed channel would read as a change.
    std::mem::forget(tx);
    rx
}

#[cfg(unix)]
struct Waiter {
    int: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
fn waiter() -> Waiter {
    use tokio::signal::unix::{SignalKind, signal};
    let make = |k: SignalKind, name: &str| match signal(k) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for {name}: {e}");
            None
        }
    };
    Waiter {
        int: make(SignalKind::interrupt(), "SIGINT"),
        term: make(SignalKind::terminate(), "SIGTERM"),
        hup: make(SignalKind::hangup(), "SIGHUP"),
    }
}

/// Waits for a signal that may not be listened for (then forever).
#[cfg(unix)]
async fn recv(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(unix)]
impl Waiter {
    async fn next(&mut self) -> Option<Signal> {
        tokio::select! {
            s = recv(&mut self.int) => s.map(|()| Signal::Sigint),
            s = recv(&mut self.term) => s.map(|()| Signal::Sigterm),
            s = recv(&mut self.hup) => s.map(|()| Signal::Sighup),
        }
    }
}

/// Windows sends console control events instead of signals. Ctrl-C and Ctrl-Break are the
/// user at the keyboard (SIGINT); a closed console window or a logoff is SIGHUP's case (the
/// terminal went away); a system shutdown is SIGTERM's. For the last three Windows ends the
/// process a few seconds after the event (tokio holds the handler until then), so a run
/// restores what it can in that time and the journal keeps the rest for `restore`.
#[cfg(windows)]
struct Waiter {
    c: Option<tokio::signal::windows::CtrlC>,
    brk: Option<tokio::signal::windows::CtrlBreak>,
    close: Option<tokio::signal::windows::CtrlClose>,
    logoff: Option<tokio::signal::windows::CtrlLogoff>,
    shutdown: Option<tokio::signal::windows::CtrlShutdown>,
}

#[cfg(windows)]
fn waiter() -> Waiter {
    use tokio::signal::windows as w;
    fn make<T>(r: std::io::Result<T>, name: &str) -> Option<T> {
        r.map_err(|e| tracing::warn!("cannot listen for {name}: {e}"))
            .ok()
    }
    Waiter {
        c: make(w::ctrl_c(), "Ctrl-C"),
        brk: make(w::ctrl_break(), "Ctrl-Break"),
        close: make(w::ctrl_close(), "a closed console"),
        logoff: make(w::ctrl_logoff(), "a logoff"),
        shutdown: make(w::ctrl_shutdown(), "a shutdown"),
    }
}

/// Waits for an event that may not be listened for (then forever).
#[cfg(windows)]
macro_rules! recv {
    ($s:expr) => {
        async {
            match $s {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        }
    };
}

#[cfg(windows)]
impl Waiter {
    async fn next(&mut self) -> Option<Signal> {
        let Waiter {
            c,
            brk,
            close,
            logoff,
            shutdown,
        } = self;
        tokio::select! {
            s = recv!(c) => s.map(|()| Signal::Sigint),
            s = recv!(brk) => s.map(|()| Signal::Sigint),
            s = recv!(close) => s.map(|()| Signal::Sighup),
            s = recv!(logoff) => s.map(|()| Signal::Sighup),
            s = recv!(shutdown) => s.map(|()| Signal::Sigterm),
        }
    }
}
