//! Retry delays as a plain iterator: exponential back-off with jitter, testable without async.

use std::time::Duration;

use crate::util::prng::Prng;

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1: no retry).
    pub attempts: u32,
    /// Delay before the second attempt.
    pub base: Duration,
    /// Upper bound of a delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(200),
            max: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
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
}
