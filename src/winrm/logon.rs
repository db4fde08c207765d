//! One logon before the fan-out: sessions that log on with the same credentials share a
//! [`LogonGate`], and until one logon with them has succeeded, only one session at a time tries.
//! When that logon is refused (a wrong password, an unknown or locked account), every other
//! session fails at once without trying, so a wrong password costs one failed logon on the domain
//! controller, not one per host (and not an account lockout).
//!
//! A logon that fails for another reason (the host is down, refuses NTLM, the KDC cannot be
//! reached) proves nothing about the credentials: the next waiting session tries. Once the
//! credentials are proven, sessions log on in parallel; a refusal after that (a password changed
//! mid-run) closes the gate again for every session that has not logged on yet.

use std::sync::Arc;

use tokio::sync::watch;

/// Why the credentials are known to be refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The host (`host:port`) whose logon was refused.
    pub host: String,
    /// Why, as the error said.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// No logon with these credentials has succeeded yet, and none is being tried.
    Unproven,
    /// One session is trying; the others wait.
    Probing,
    /// A logon succeeded: everyone may go.
    Proven,
    /// The credentials were refused: nobody tries again.
    Refused(Refusal),
}

/// The gate shared by the sessions of one set of credentials.
#[derive(Debug)]
pub struct LogonGate {
    state: watch::Sender<State>,
}

/// What [`LogonGate::pass`] lets a session do.
#[derive(Debug)]
pub(crate) enum Pass {
    /// The credentials are proven: log on.
    Free(Arc<LogonGate>),
    /// Log on as the one probe; tell the gate how it went ([`Probe::proven`],
    /// [`LogonGate::refuse`]); dropping the probe undecided lets the next session try.
    Probe(Probe),
}

/// The one session trying the credentials.
#[derive(Debug)]
pub(crate) struct Probe {
    gate: Arc<LogonGate>,
}

impl LogonGate {
    /// A gate for one set of credentials.
    pub fn new() -> Arc<LogonGate> {
        Arc::new(LogonGate {
            state: watch::Sender::new(State::Unproven),
        })
    }

    /// Waits until this session may log on, or returns why it must not.
    pub(crate) async fn pass(self: &Arc<Self>) -> Result<Pass, Refusal> {
        let mut rx = self.state.subscribe();
        loop {
            let mut probe = false;
            self.state.send_if_modified(|s| {
                if *s == State::Unproven {
                    *s = State::Probing;
                    probe = true;
                    true
                } else {
                    false
                }
            });
            if probe {
                return Ok(Pass::Probe(Probe {
                    gate: Arc::clone(self),
                }));
            }
            match &*rx.borrow_and_update() {
                State::Proven => return Ok(Pass::Free(Arc::clone(self))),
                State::Refused(r) => return Err(r.clone()),
                State::Probing | State::Unproven => {}
            }
            // The sender lives in `self`, which this call holds: `changed` cannot fail.
            let _ = rx.changed().await;
        }
    }

    /// Records that the credentials were refused: no session logs on with them any more.
    pub(crate) fn refuse(&self, refusal: Refusal) {
        self.state.send_replace(State::Refused(refusal));
    }

    /// True once a logon with these credentials succeeded.
    pub fn is_proven(&self) -> bool {
        *self.state.borrow() == State::Proven
    }

    /// The refusal, if the credentials were refused.
    pub fn refusal(&self) -> Option<Refusal> {
        match &*self.state.borrow() {
            State::Refused(r) => Some(r.clone()),
            _ => None,
        }
    }
}

impl Pass {
    /// The gate this pass came from.
    pub fn gate(&self) -> &Arc<LogonGate> {
        match self {
            Pass::Free(g) => g,
            Pass::Probe(p) => &p.gate,
        }
    }

    /// Records that the credentials are good (the KDC issued a ticket, or the host accepted
    /// them): every waiting session may go.
    pub fn proven(&self) {
        self.gate().state.send_if_modified(|s| match s {
            State::Refused(_) | State::Proven => false,
            _ => {
                *s = State::Proven;
                true
            }
        });
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // Undecided (the host was unreachable, the attempt was abandoned): the next one tries.
        self.gate.state.send_if_modified(|s| {
            if *s == State::Probing {
                *s = State::Unproven;
                true
            } else {
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn one_probe_at_a_time_then_everyone() {
        let gate = LogonGate::new();
        let first = gate.pass().await.unwrap();
        assert!(matches!(first, Pass::Probe(_)));
        // A second session waits while the first probes.
        let waiting = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.pass().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        first.proven();
        assert!(matches!(waiting.await.unwrap(), Ok(Pass::Free(_))));
        assert!(gate.is_proven());
        drop(first);
        assert!(gate.is_proven(), "a decided probe leaves the gate as it is");
    }

    #[tokio::test]
    async fn a_refusal_stops_the_waiting_sessions() {
        let gate = LogonGate::new();
        let first = gate.pass().await.unwrap();
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let gate = Arc::clone(&gate);
                tokio::spawn(async move { gate.pass().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.gate().refuse(Refusal {
            host: "wsus-hq:5985".into(),
            reason: "wrong password".into(),
        });
        drop(first);
        for w in waiting {
            let refusal = w.await.unwrap().unwrap_err();
            assert_eq!(refusal.host, "wsus-hq:5985");
        }
        assert!(gate.pass().await.is_err());
        assert!(gate.refusal().is_some());
    }

    #[tokio::test]
    async fn an_undecided_probe_hands_over_to_the_next_session() {
        let gate = LogonGate::new();
        let first = gate.pass().await.unwrap();
        let next = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.pass().await.map(|p| matches!(p, Pass::Probe(_))) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(first); // e.g. the host refused the connection
        assert!(next.await.unwrap().unwrap(), "the next session probes");
        assert!(!gate.is_proven());
    }
}
