//! Retries: the one policy (exponential back-off with jitter, as a plain iterator testable
//! without async) and the one definition of a transient failure ([`Transient`]), used wherever
//! a remote call is tried again: a server's steps and facts, restores, and the read-only walks.

use std::future::Future;
use std::time::Duration;

use crate::util::prng::Prng;
use crate::wsus::{ErrorKind, OpError};

/// A failure that may go away when the same call is made again later.
pub trait Transient {
    /// True when trying again later may succeed.
    fn is_transient_failure(&self) -> bool;

    /// True when the failure cost a whole request timeout (the host did not answer at all).
    fn is_stall(&self) -> bool {
        false
    }
}

/// The one definition for operations: the transport failed in a way that may pass (a refused
/// connection, a stalled request, an HTTP 5xx), or WSUS's configuration was still busy after the
/// script's own wait. Bad credentials, a replica refusing a change, a missing package are not.
impl Transient for OpError {
    fn is_transient_failure(&self) -> bool {
        self.is_transient() || self.kind() == Some(ErrorKind::ConfigBusy)
    }

    fn is_stall(&self) -> bool {
        matches!(self, OpError::Transport { stalled: true, .. })
    }
}

/// Runs `attempt(n)` (n from 1) until it succeeds, fails for good, or the policy's attempts
/// run out; `stop()` true ends the retries early; `on_retry(n, delay, &error)` is told of each
/// retry before its delay.
pub async fn retried<T, E, F, Fut>(
    policy: &RetryPolicy,
    seed: u64,
    label: &str,
    stop: impl Fn() -> bool,
    mut on_retry: impl FnMut(u32, Duration, &E),
    mut attempt: F,
) -> Result<T, E>
where
    E: Transient,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delays = policy.delays(seed, label);
    let mut n = 1;
    let mut stalls = 0;
    loop {
        match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(e)
                if e.is_transient_failure() && !stop() && policy.again_after(&e, &mut stalls) =>
            {
                match delays.next() {
                    Some(d) => {
                        on_retry(n, d, &e);
                        tokio::time::sleep(d).await;
                        n += 1;
                    }
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Awaits an operation (an expression giving a future of `Result<_, OpError>`) again while it
/// fails transiently ([`Transient`]) and the policy has attempts left. A macro rather than
/// [`retried`]: the operation borrows the host's `WsusOps` mutably for each try.
macro_rules! retrying {
    ($retry:expr, $seed:expr, $label:expr, $op:expr) => {{
        let mut delays = $retry.delays($seed, &$label);
        let mut stalls = 0;
        loop {
            match $op.await {
                Ok(v) => break Ok(v),
                Err(e)
                    if $crate::exec::retry::Transient::is_transient_failure(&e)
                        && $retry.again_after(&e, &mut stalls) =>
                {
                    match delays.next() {
                        Some(d) => tokio::time::sleep(d).await,
                        None => break Err(e),
                    }
                }
                Err(e) => break Err(e),
            }
        }
    }};
}
pub(crate) use retrying;

/// How transient failures are retried. A host that does not answer at all costs a whole
/// request timeout per attempt, so such failures get fewer attempts (`stall_attempts`): the
/// bound on giving up on a silent host is documented in docs/exit-codes.md ("How long a run
/// waits for a host").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retry).
    pub attempts: u32,
    /// Attempts in all when every failure so far was a stall (the host did not answer).
    pub stall_attempts: u32,
    /// Delay before the second attempt.
    pub base: Duration,
    /// Upper bound of a delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            stall_attempts: 2,
            base: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// After failure `e` (transient), whether another attempt is allowed by the stall cap;
    /// `stalls` counts the stalls so far.
    pub fn again_after(&self, e: &impl Transient, stalls: &mut u32) -> bool {
        if e.is_stall() {
            *stalls += 1;
            *stalls < self.stall_attempts.max(1)
        } else {
            true
        }
    }

    /// The policy of a last try: one attempt.
    pub fn once(self) -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            stall_attempts: 1,
            ..self
        }
    }

    /// The delays between attempts ("equal jitter": half fixed, half random, so retries of
    /// many hosts do not fall in step).
    pub fn delays(&self, seed: u64, label: &str) -> Backoff {
        Backoff {
            policy: *self,
            n: 0,
            rng: Prng::derive(seed, label),
        }
    }
}

/// The delays of one retried action.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    n: u32,
    rng: Prng,
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.n + 1 >= self.policy.attempts {
            return None;
        }
        let exp = self
            .policy
            .base
            .saturating_mul(1u32.checked_shl(self.n).unwrap_or(u32::MAX))
            .min(self.policy.max);
        self.n += 1;
        let half = exp / 2;
        let jitter = half.mul_f64(self.rng.next_f64());
        Some(half + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_bounded_and_stop() {
        let p = RetryPolicy {
            attempts: 6,
            stall_attempts: 2,
            base: Duration::from_millis(100),
            max: Duration::from_millis(500),
        };
        let d: Vec<Duration> = p.delays(1, "h").collect();
        assert_eq!(d.len(), 5, "five delays between six attempts");
        let caps = [100, 200, 400, 500, 500];
        for (delay, cap) in d.iter().zip(caps) {
            let cap = Duration::from_millis(cap);
            assert!(
                *delay >= cap / 2 && *delay <= cap,
                "{delay:?} not in [{:?}, {cap:?}]",
                cap / 2
            );
        }
        assert_eq!(d, p.delays(1, "h").collect::<Vec<_>>(), "seeded");
        assert_ne!(
            d,
            p.delays(1, "other").collect::<Vec<_>>(),
            "per-host jitter"
        );
        let none = RetryPolicy { attempts: 1, ..p };
        assert_eq!(none.delays(1, "h").count(), 0);
    }

    #[derive(Debug)]
    struct Flaky(bool);
    impl Transient for Flaky {
        fn is_transient_failure(&self) -> bool {
            self.0
        }
    }

    #[derive(Debug)]
    struct Silent;
    impl Transient for Silent {
        fn is_transient_failure(&self) -> bool {
            true
        }
        fn is_stall(&self) -> bool {
            true
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let p = RetryPolicy {
            attempts: 4,
            stall_attempts: 2,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let mut retries = Vec::new();
        let r: Result<u32, Flaky> = retried(
            &p,
            1,
            "h",
            || false,
            |n, _, _| retries.push(n),
            |n| async move { if n < 3 { Err(Flaky(true)) } else { Ok(n) } },
        )
        .await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(retries, [1, 2]);
        let mut calls = 0;
        let r: Result<u32, Flaky> = retried(
            &p,
            1,
            "h",
            || false,
            |_, _, _| {},
            |_| {
                calls += 1;
                async { Err(Flaky(false)) }
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "a permanent failure is not retried");
        let mut calls = 0;
        let r: Result<u32, Flaky> = retried(
            &p,
            1,
            "h",
            || true,
            |_, _, _| {},
            |_| {
                calls += 1;
                async { Err(Flaky(true)) }
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "a stop ends the retries");
        let mut calls = 0;
        let _: Result<u32, Flaky> = retried(
            &p,
            1,
            "h",
            || false,
            |_, _, _| {},
            |_| {
                calls += 1;
                async { Err(Flaky(true)) }
            },
        )
        .await;
        assert_eq!(calls, 4, "the policy's attempts, no more");
        let mut calls = 0;
        let _: Result<u32, Silent> = retried(
            &p,
            1,
            "h",
            || false,
            |_, _, _| {},
            |_| {
                calls += 1;
                async { Err(Silent) }
            },
        )
        .await;
        assert_eq!(
            calls, 2,
            "a host that does not answer gets the stall attempts only"
        );
    }
}
