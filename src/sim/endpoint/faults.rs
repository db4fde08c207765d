//! Transport-level faults of one simulated host, switched on and off while the endpoint serves.
//! Every switch is an atomic (or a watch channel, for the one the listener must react to), so
//! a test or the world model flips them from any thread without stopping anything.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::util::prng::Prng;

/// The fault switches of one host. All off by default.
#[derive(Debug)]
pub struct TransportFaults {
    refuse: watch::Sender<bool>,
    latency_ms: AtomicU64,
    fail_next: AtomicU64,
    /// Probability of an HTTP 500, as `f64` bits.
    fail_probability: AtomicU64,
    timeout_storm: AtomicU32,
    reject_credentials: AtomicBool,
    /// Extended Protection for Authentication (CbtHardeningLevel=Strict).
    extended_protection: AtomicBool,
    /// The host dies (refuses connections) after this many requests; 0 = never.
    die_after: AtomicU64,
    seen: AtomicU64,
    /// The host hangs (accepts, never answers) after this many requests; 0 = never.
    hang_after: AtomicU64,
    hang_seen: AtomicU64,
    hung: AtomicBool,
}

impl Default for TransportFaults {
    fn default() -> Self {
        TransportFaults::new()
    }
}

impl TransportFaults {
    /// No fault switched on.
    pub fn new() -> Self {
        TransportFaults {
            refuse: watch::Sender::new(false),
            latency_ms: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
            fail_probability: AtomicU64::new(0f64.to_bits()),
            timeout_storm: AtomicU32::new(0),
            reject_credentials: AtomicBool::new(false),
            extended_protection: AtomicBool::new(false),
            die_after: AtomicU64::new(0),
            seen: AtomicU64::new(0),
            hang_after: AtomicU64::new(0),
            hang_seen: AtomicU64::new(0),
            hung: AtomicBool::new(false),
        }
    }

    /// The host is down: its listeners close (connecting is refused) and open connections are
    /// dropped, requests in flight included. Switching it off listens again on the same
    /// addresses. Shells and running commands survive (as across a network outage).
    pub fn set_refuse_connections(&self, refuse: bool) {
        self.refuse.send_replace(refuse);
    }

    /// Whether connections are refused.
    pub fn refuses_connections(&self) -> bool {
        *self.refuse.borrow()
    }

    /// The host dies in the middle of a run: after `n` more HTTP requests (0: never) it refuses
    /// connections, as [`set_refuse_connections`](Self::set_refuse_connections) does.
    pub fn set_die_after_requests(&self, n: u64) {
        self.seen.store(0, Ordering::Relaxed);
        self.die_after.store(n, Ordering::Relaxed);
    }

    /// Counts one request; the host dies (or hangs) when its request budget is spent.
    pub fn count_request(&self) {
        let limit = self.die_after.load(Ordering::Relaxed);
        if limit > 0 && self.seen.fetch_add(1, Ordering::Relaxed) + 1 >= limit {
            self.die_after.store(0, Ordering::Relaxed);
            self.set_refuse_connections(true);
        }
        let limit = self.hang_after.load(Ordering::Relaxed);
        if limit > 0 && self.hang_seen.fetch_add(1, Ordering::Relaxed) + 1 > limit {
            self.hung.store(true, Ordering::Relaxed);
        }
    }

    /// The host stops answering after `n` more HTTP requests (0: never): it still accepts
    /// connections and reads requests, as a hung WinRM service does, but never replies.
    pub fn set_hang_after_requests(&self, n: u64) {
        self.hang_seen.store(0, Ordering::Relaxed);
        self.hang_after.store(n, Ordering::Relaxed);
        self.hung.store(false, Ordering::Relaxed);
    }

    /// True once the host has stopped answering.
    pub fn is_hung(&self) -> bool {
        self.hung.load(Ordering::Relaxed)
    }

    /// Added before every HTTP request is answered.
    pub fn set_latency(&self, latency: Duration) {
        let ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
        self.latency_ms.store(ms, Ordering::Relaxed);
    }

    /// The latency added per request.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }

    /// The next `n` authenticated WS-Management requests get HTTP 500 (replaces any count left).
    pub fn fail_next_requests(&self, n: u64) {
        self.fail_next.store(n, Ordering::Relaxed);
    }

    /// How many forced HTTP 500s are still due.
    pub fn failures_pending(&self) -> u64 {
        self.fail_next.load(Ordering::Relaxed)
    }

    /// Each authenticated WS-Management request gets HTTP 500 with this probability (0..=1),
    /// drawn from the host's seeded generator.
    pub fn set_failure_probability(&self, p: f64) {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.fail_probability.store(p.to_bits(), Ordering::Relaxed);
    }

    /// The probability of an HTTP 500.
    pub fn failure_probability(&self) -> f64 {
        f64::from_bits(self.fail_probability.load(Ordering::Relaxed))
    }

    /// A TimedOut storm: `n` extra `w:TimedOut` faults, answered at once, before each Receive
    /// that would deliver output or completion (0 = off).
    pub fn set_timeout_storm(&self, n: u32) {
        self.timeout_storm.store(n, Ordering::Relaxed);
    }

    /// The TimedOut storm size.
    pub fn timeout_storm(&self) -> u32 {
        self.timeout_storm.load(Ordering::Relaxed)
    }

    /// Every new logon (NTLM, Negotiate or Basic) is refused with 401, whatever the password
    /// (as after a password change). Connections already authenticated keep working.
    pub fn set_reject_credentials(&self, reject: bool) {
        self.reject_credentials.store(reject, Ordering::Relaxed);
    }

    /// Whether new logons are refused.
    pub fn rejects_credentials(&self) -> bool {
        self.reject_credentials.load(Ordering::Relaxed)
    }

    /// Extended Protection for Authentication (WinRM's `CbtHardeningLevel` Strict): an NTLM
    /// logon over HTTPS must carry the channel binding of this host's certificate
    /// (`tls-server-end-point`), or it is refused with 401. A hardening setting rather than a
    /// fault; plain HTTP is not affected.
    pub fn set_extended_protection(&self, on: bool) {
        self.extended_protection.store(on, Ordering::Relaxed);
    }

    /// Whether NTLM logons over HTTPS must carry the channel binding.
    pub fn extended_protection(&self) -> bool {
        self.extended_protection.load(Ordering::Relaxed)
    }

    /// Switches every fault off.
    pub fn clear(&self) {
        self.set_refuse_connections(false);
        self.set_latency(Duration::ZERO);
        self.fail_next_requests(0);
        self.set_failure_probability(0.0);
        self.set_timeout_storm(0);
        self.set_reject_credentials(false);
        self.set_extended_protection(false);
        self.set_die_after_requests(0);
        self.set_hang_after_requests(0);
    }

    pub(crate) fn watch_refuse(&self) -> watch::Receiver<bool> {
        self.refuse.subscribe()
    }

    /// Whether this request gets an injected HTTP 500: a forced one if any is due, else a draw.
    pub(crate) fn take_failure(&self, prng: &Mutex<Prng>) -> bool {
        let forced = self
            .fail_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if forced {
            return true;
        }
        let p = self.failure_probability();
        p > 0.0 && prng.lock().expect("prng lock").chance(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_failures_count_down_and_draws_are_seeded() {
        let faults = TransportFaults::new();
        let prng = Mutex::new(Prng::derive(1, "h"));
        assert!(!faults.take_failure(&prng));
        faults.fail_next_requests(2);
        assert!(faults.take_failure(&prng));
        assert!(faults.take_failure(&prng));
        assert!(!faults.take_failure(&prng));

        faults.set_failure_probability(0.5);
        let draws = |seed| {
            let prng = Mutex::new(Prng::derive(seed, "h"));
            (0..64)
                .map(|_| faults.take_failure(&prng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert!(draws(7).iter().any(|f| *f) && draws(7).iter().any(|f| !*f));
        faults.clear();
        assert_eq!(faults.failure_probability(), 0.0);
        faults.set_failure_probability(f64::NAN);
        assert_eq!(faults.failure_probability(), 0.0);
    }

    #[test]
    fn a_host_dies_after_its_request_budget() {
        let faults = TransportFaults::new();
        faults.set_die_after_requests(3);
        faults.count_request();
        faults.count_request();
        assert!(!faults.refuses_connections());
        faults.count_request();
        assert!(faults.refuses_connections(), "dead after the third request");
        faults.clear();
        assert!(!faults.refuses_connections());
        for _ in 0..10 {
            faults.count_request();
        }
        assert!(!faults.refuses_connections(), "0 means never");
    }
}
