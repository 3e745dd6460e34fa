//! Remembering request ids cheaply: duplicate records (same `s_request_id`) are dropped within
//! a file by the reader and across files by the statistics, both with a set of 64-bit hashes
//! (8 bytes a key plus table overhead instead of the ~60-byte id).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// A set of [`hash_id`] values; the keys are already well mixed, so no second hash is applied.
pub type RequestIdSet = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// FNV-1a over the id, then MurmurHash3's 64-bit finaliser so every bit of the result is mixed.
/// Deterministic across runs and targets (no random seed needed inside the component), and
/// request ids are not attacker-chosen keys.
pub fn hash_id(id: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in id {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
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
