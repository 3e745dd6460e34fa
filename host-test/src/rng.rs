//! The synthetic logs' randomness: the core's SplitMix64 ([`gcr_usage_core::backoff::Jitter`],
//! one implementation of the generator in the workspace) with the draws both generators use.
//! Generator-specific draws (digests, insert ids) live beside their generator as further
//! `impl Rng` blocks.

use gcr_usage_core::backoff::Jitter;

pub(crate) struct Rng(Jitter);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(Jitter::new(seed))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Uniform in `0..len`.
    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// An index into `weights`, with probability proportional to its weight.
    pub(crate) fn weighted_index(&mut self, weights: &[u32]) -> usize {
        self.weighted_by(weights.len(), |i| weights[i])
    }

    /// Picks by weight (`(item, weight)` pairs).
    pub(crate) fn weighted<'a, T>(&mut self, items: &'a [(T, u32)]) -> &'a T {
        &items[self.weighted_by(items.len(), |i| items[i].1)].0
    }

    pub(crate) fn hex(&mut self, out: &mut String, digits: usize) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut bits = 0u64;
        for i in 0..digits {
            if i % 16 == 0 {
                bits = self.next_u64();
            }
            out.push(HEX[(bits & 15) as usize] as char);
            bits >>= 4;
        }
    }

    /// A `sha256:<64 hex>` digest.
    pub(crate) fn digest(&mut self) -> String {
        let mut d = String::with_capacity(71);
        d.push_str("sha256:");
        self.hex(&mut d, 64);
        d
    }

    fn weighted_by(&mut self, len: usize, weight: impl Fn(usize) -> u32) -> usize {
        let total: u32 = (0..len).map(&weight).sum();
        let mut x = self.below(u64::from(total)) as u32;
        for i in 0..len {
            if x < weight(i) {
                return i;
            }
            x -= weight(i);
        }
        len - 1
    }
}
