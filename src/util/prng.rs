//! A small deterministic pseudo-random generator (SplitMix64) for seeded simulations, jitter and
//! benchmarks. Determinism across platforms and crate versions matters more here than quality.

/// SplitMix64: 64 bits of state, passes BigCrush when used as a generator of 64-bit words.
#[derive(Debug, Clone)]
pub struct Prng {
    state: u64,
}

impl Prng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Prng { state: seed }
    }

    /// A generator derived from `seed` and a label, so that independent streams (one per host,
    /// say) do not depend on the order in which they are drawn.
    pub fn derive(seed: u64, label: &str) -> Self {
        // FNV-1a over the label, mixed with the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in label.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let mut p = Prng::new(seed ^ h.rotate_left(17));
        p.next_u64();
        p
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A float uniformly drawn from [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An integer uniformly drawn from `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        let span = hi - lo + 1;
        if span == 0 {
            return self.next_u64();
        }
        lo + self.next_u64() % span
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let a: Vec<u64> = (0..5)
            .scan(Prng::new(7), |p, _| Some(p.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Prng::new(7), |p, _| Some(p.next_u64()))
            .collect();
        assert_eq!(a, b);
        let c: Vec<u64> = (0..5)
            .scan(Prng::new(8), |p, _| Some(p.next_u64()))
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn derived_streams_differ_by_label_and_stay_in_range() {
        let mut a = Prng::derive(1, "wsus-hq");
        let mut b = Prng::derive(1, "wsus-eu");
        assert_ne!(a.next_u64(), b.next_u64());
        for _ in 0..1000 {
            let v = a.range(10, 20);
            assert!((10..=20).contains(&v));
            let f = a.next_f64();
            assert!((0.0..1.0).contains(&f));
        }
    }
}
