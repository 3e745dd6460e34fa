//! CRC32C (Castagnoli), the checksum Cloud Storage keeps for every object (`X-Goog-Hash`):
//! slicing-by-16 over four little-endian 32-bit words per block.
//!
//! Why not the `crc` crate (still the reference in the tests below): its slice-by-16 loads the
//! block a byte at a time behind per-offset bounds checks, which Cranelift compiles to ~170
//! instructions per 16 bytes inside the component — a fifth of the classified load's
//! instructions went to the checksum. Four word loads and a single accumulator keep the loop in
//! registers. WebAssembly has no carry-less multiply or CRC instruction, so tables it is.

/// The reflected Castagnoli polynomial.
const POLY: u32 = 0x82F6_3B78;

/// `TABLES[k][b]`: the CRC of byte `b` followed by `k` zero bytes (16 KiB, built at compile time).
static TABLES: [[u32; 256]; 16] = tables();

const fn tables() -> [[u32; 256]; 16] {
    let mut t = [[0u32; 256]; 16];
    let mut b = 0;
    while b < 256 {
        let mut crc = b as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY } else { crc >> 1 };
            bit += 1;
        }
        t[0][b] = crc;
        b += 1;
    }
    let mut k = 1;
    while k < 16 {
        let mut b = 0;
        while b < 256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            b += 1;
        }
        k += 1;
    }
    t
}

/// A running CRC32C.
#[derive(Debug, Clone, Copy, Default)]
pub struct Crc32c {
    /// The register, inverted (the CRC's initial and final XOR are both all ones).
    state: u32,
}

impl Crc32c {
    pub fn new() -> Self {
        Crc32c::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let mut crc = !self.state;
        let (blocks, rest) = bytes.as_chunks::<16>();
        for block in blocks {
            let word = |i: usize| u32::from_le_bytes([block[i], block[i + 1], block[i + 2], block[i + 3]]);
            let (w0, w1, w2, w3) = (word(0) ^ crc, word(4), word(8), word(12));
            // Byte j of the block (j = 0 first) is followed by 15 - j more: table 15 - j.
            let lookup = |k: usize, w: u32| {
                TABLES[k][(w & 0xff) as usize]
                    ^ TABLES[k - 1][((w >> 8) & 0xff) as usize]
                    ^ TABLES[k - 2][((w >> 16) & 0xff) as usize]
                    ^ TABLES[k - 3][(w >> 24) as usize]
            };
            crc = lookup(15, w0) ^ lookup(11, w1) ^ lookup(7, w2) ^ lookup(3, w3);
        }
        for &b in rest {
            crc = (crc >> 8) ^ TABLES[0][((crc ^ u32::from(b)) & 0xff) as usize];
        }
        self.state = !crc;
    }

    pub fn value(&self) -> u32 {
        self.state
    }
}

/// The CRC32C of `bytes`.
pub fn checksum(bytes: &[u8]) -> u32 {
    let mut crc = Crc32c::new();
    crc.update(bytes);
    crc.value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REFERENCE: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

    #[test]
    fn the_catalogue_check_value() {
        assert_eq!(checksum(b"123456789"), 0xE306_9283);
        assert_eq!(checksum(b""), 0);
    }

    #[test]
    fn every_length_around_the_block_size_matches_the_crc_crate() {
        let bytes: Vec<u8> = (0..100u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..=bytes.len() {
            assert_eq!(checksum(&bytes[..len]), REFERENCE.checksum(&bytes[..len]), "length {len}");
        }
    }

    proptest! {
        /// Any bytes, fed in any two pieces, give the `crc` crate's CRC-32/ISCSI.
        #[test]
        fn matches_the_crc_crate_in_any_pieces(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..600) {
            let cut = cut.min(bytes.len());
            let mut crc = Crc32c::new();
            crc.update(&bytes[..cut]);
            crc.update(&bytes[cut..]);
            prop_assert_eq!(crc.value(), REFERENCE.checksum(&bytes));
        }
    }
}
