//! Remembering request ids cheaply: duplicate records (same `s_request_id`) are dropped within
//! a file by the reader and across files by the statistics, both with a set of 64-bit hashes
//! (8 bytes a key plus table overhead instead of the ~60-byte id).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// A set of [`hash_id`] values; the keys are already well mixed, so no second hash is applied.
pub type RequestIdSet = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// Eight bytes at a time (multiply by an odd constant, rotate), the last word overlapping the
/// one before, the length mixed in first (so ids that differ only in a zero tail differ), then
/// MurmurHash3's 64-bit finaliser so every bit of the result is mixed. Deterministic across runs
/// and targets (no random seed needed inside the component), and request ids are not
/// attacker-chosen keys. Only 64-bit multiplies: a 128-bit one is a library call in wasm32.
/// (FNV-1a, a multiply per byte over ~70-byte ids, was 3% of the component's instructions.)
pub fn hash_id(id: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |h: u64, word: u64| (h ^ word).wrapping_mul(K).rotate_left(29);
    let mut h = (id.len() as u64 ^ 0xcbf2_9ce4_8422_2325).wrapping_mul(K);
    match id.last_chunk::<8>() {
        Some(last) => {
            let (words, _) = id.as_chunks::<8>();
            h = words.iter().fold(h, |h, word| step(h, u64::from_le_bytes(*word)));
            h = step(h, u64::from_le_bytes(*last));
        }
        None => {
            let mut word = [0u8; 8];
            for (w, &b) in word.iter_mut().zip(id) {
                *w = b;
            }
            h = step(h, u64::from_le_bytes(word));
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A hasher for keys that already are well-mixed 64-bit hashes.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `HashSet<u64>`; fold anything else in for correctness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use super::hash_id;
    use std::collections::HashSet;

    #[test]
    fn ids_that_differ_anywhere_hash_apart() {
        // Every length around the word size, one byte changed at each position, zero tails.
        let base: Vec<u8> = (0..40u8).map(|i| b'A' + i % 26).collect();
        let mut seen = HashSet::new();
        for len in 0..=base.len() {
            assert!(seen.insert(hash_id(&base[..len])), "length {len}");
            for at in 0..len {
                let mut id = base[..len].to_vec();
                id[at] ^= 0x20;
                assert!(seen.insert(hash_id(&id)), "length {len}, byte {at}");
            }
        }
        for zeros in 1..=9 {
            assert!(seen.insert(hash_id(&vec![0; zeros])), "{zeros} zero bytes");
        }
    }
}
