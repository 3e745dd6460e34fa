//! Retry and polling delays: exponential, jittered, and never past the event's deadline.

use std::time::Duration;

/// Exponential delays with "equal jitter": each delay lies in [d/2, d], so retries from many
/// instances spread out while the expected wait still grows geometrically.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    factor_percent: u32,
    cap: Duration,
}

impl Backoff {
    /// Transient-error retries: 1 s, 2 s, 4 s … up to 16 s (Google's clients: 1 s ×2 up to 60 s,
    /// but our whole budget is GCR_USAGE_WAIT_SECONDS).
    pub fn retries() -> Backoff {
        Backoff { next: Duration::from_secs(1), factor_percent: 200, cap: Duration::from_secs(16) }
    }

    /// Job polling: 0.5 s ×1.5 up to 5 s; small load jobs finish in seconds.
    pub fn polling() -> Backoff {
        Backoff { next: Duration::from_millis(500), factor_percent: 150, cap: Duration::from_secs(5) }
    }

    /// The next delay; `random` is any uniformly distributed u64 (the host's randomness).
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let full = self.next;
        self.next = (self.next * self.factor_percent / 100).min(self.cap);
        let half = full / 2;
        let jitter_ns = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(if jitter_ns == 0 { 0 } else { random % (jitter_ns + 1) })
    }
}

/// A small deterministic generator (SplitMix64) seeded once from the host, so one seed drives
/// every jitter decision of an event and tests can replay them.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_jitter_bounds_and_cap() {
        let mut b = Backoff::retries();
        let mut rng = Jitter::new(7);
        let expected_full = [1u64, 2, 4, 8, 16, 16, 16];
        for full in expected_full {
            let d = b.next_delay(rng.next_u64());
            let full = Duration::from_secs(full);
            assert!(d >= full / 2 && d <= full, "{d:?} vs {full:?}");
        }
        let mut p = Backoff::polling();
        assert_eq!(p.next_delay(0), Duration::from_millis(250));
        assert_eq!(p.next_delay(0), Duration::from_millis(375));
    }

    #[test]
    fn jitter_is_reproducible() {
        let (mut a, mut b) = (Jitter::new(1), Jitter::new(1));
        assert_eq!((a.next_u64(), a.next_u64()), (b.next_u64(), b.next_u64()));
        assert_ne!(Jitter::new(2).next_u64(), Jitter::new(1).next_u64());
    }
}
