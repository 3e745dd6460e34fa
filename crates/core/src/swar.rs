//! Eight bytes at a time in a `u64` ("SIMD within a register"): the byte tests of the hot
//! scans that are too short or too varied for `memchr` (the NDJSON escape check, user-agent
//! token ends, digest digits), the same on every target. Each test answers the top bit of each
//! byte that passes, and no other bit.

pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
pub(crate) const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Eight bytes, the first in the lowest byte (so [`first`] of a test is the first byte).
#[inline(always)]
pub(crate) fn word(bytes: [u8; 8]) -> u64 {
    u64::from_le_bytes(bytes)
}

/// Bytes of `word` equal to `b`. The lowest flag is exact; a byte above a true one may be
/// flagged too (`x - 0x01…01` borrows into the next byte when `x` had a zero byte), never one
/// below, so `eq(…) != 0` and the [`first`] of any OR of these tests are exact.
#[inline(always)]
pub(crate) fn eq(word: u64, b: u8) -> u64 {
    let x = word ^ (ONES * u64::from(b));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Bytes of `word` below `n` (`n` ≤ 0x80), with the lowest flag exact as for [`eq`]; a byte
/// of 0x80 or more is never flagged.
#[inline(always)]
pub(crate) fn below(word: u64, n: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS
}

/// Bytes of `word` in `lo..=hi`, every flag exact, for a word whose bytes are all ASCII (no
/// top bit set: check `word & HIGHS == 0` first; otherwise the sums carry between bytes).
/// `x + (0x80 - lo)` reaches the top bit exactly when `x ≥ lo`, `x + (0x7f - hi)` stays below
/// it exactly when `x ≤ hi`, and no byte sum of ASCII bytes exceeds 0xff.
#[inline(always)]
pub(crate) fn ascii_in(word: u64, lo: u8, hi: u8) -> u64 {
    let at_least_lo = word.wrapping_add(ONES * u64::from(0x80 - lo));
    let above_hi = word.wrapping_add(ONES * u64::from(0x7f - hi));
    at_least_lo & !above_hi & HIGHS
}

/// `test` of every word of `bytes` ORed together, the last word overlapping the one before (so
/// every byte is tested, some twice, with no byte loop and no branch per word); `None` when
/// `bytes` is shorter than a word. For "does any byte fail": a test whose flags are exact at
/// least in being non-zero exactly when some byte of the word fails.
#[inline(always)]
pub(crate) fn any_word(bytes: &[u8], test: impl Fn(u64) -> u64) -> Option<u64> {
    let last = bytes.last_chunk::<8>()?;
    let (words, _) = bytes.as_chunks::<8>();
    Some(words.iter().fold(test(word(*last)), |flags, w| flags | test(word(*w))))
}

/// Whether `a` and `b` hold the same bytes: a word at a time, the last words overlapping, no
/// early exit (for strings of tens of bytes: `==` on slices is a `memcmp` call, and in the
/// component that is a byte loop).
#[inline]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (Some(last_a), Some(last_b)) = (a.last_chunk::<8>(), b.last_chunk::<8>()) else {
        return a == b;
    };
    let ((words_a, _), (words_b, _)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    let differ = words_a.iter().zip(words_b).fold(word(*last_a) ^ word(*last_b), |d, (x, y)| d | (word(*x) ^ word(*y)));
    differ == 0
}

/// The value of eight ASCII digits, the first the most significant; `None` unless every byte is
/// a digit. Three multiplies instead of eight (the pairs, then the pairs of pairs, combined in
/// one 64-bit product each): a usage log's time column has sixteen digits.
#[inline(always)]
pub(crate) fn eight_digits(bytes: [u8; 8]) -> Option<u32> {
    let w = word(bytes);
    if w & HIGHS != 0 || ascii_in(w, b'0', b'9') != HIGHS {
        return None;
    }
    let v = w - ONES * u64::from(b'0');
    // Byte 2k: digit 2k × 10 + digit 2k+1 (the odd bytes are left-overs, masked off below).
    let pairs = v.wrapping_mul(10).wrapping_add(v >> 8);
    const LOW_PAIRS: u64 = 0x0000_00ff_0000_00ff;
    let high = (pairs & LOW_PAIRS).wrapping_mul(100 + (1_000_000 << 32));
    let low = ((pairs >> 16) & LOW_PAIRS).wrapping_mul(1 + (10_000 << 32));
    Some((high.wrapping_add(low) >> 32) as u32)
}

/// The index of the byte the lowest flag of `flags` (non-zero) stands for.
#[inline(always)]
pub(crate) fn first(flags: u64) -> usize {
    flags.trailing_zeros() as usize / 8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal and unequal strings of every length around the word size, differing at any one
    /// byte, and strings of other lengths with a common prefix.
    #[test]
    fn same_is_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for len in 0..=base.len() {
            let a = &base[..len];
            let copy = a.to_vec();
            assert!(same(a, a) && same(a, copy.as_slice()));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x80;
                assert!(!same(a, &b), "{len} bytes, byte {at}");
            }
            for other in 0..len {
                assert!(!same(a, &base[..other]), "{len} against {other}");
            }
        }
    }

    /// Eight digits read as `str::parse` reads them, and any byte that is not a digit, at any
    /// position, refused.
    #[test]
    fn eight_digits_are_their_value() {
        let mut values: Vec<u32> = (0..20_000).map(|i: u32| i.wrapping_mul(2_654_435_761) % 100_000_000).collect();
        values.extend([0, 1, 9, 10, 99_999_999, 10_000_000, 12_345_678, 87_654_321, 90_000_009]);
        for value in values {
            let text = format!("{value:08}");
            let bytes: [u8; 8] = text.as_bytes().try_into().unwrap();
            assert_eq!(eight_digits(bytes), Some(value), "{text}");
            for at in 0..8 {
                for b in (0..=255u8).filter(|b| !b.is_ascii_digit()) {
                    let mut other = bytes;
                    other[at] = b;
                    assert_eq!(eight_digits(other), None, "{other:?}");
                }
            }
        }
    }

    /// Every byte value at every position, beside bytes that pass and bytes that do not.
    #[test]
    fn each_test_flags_exactly_the_bytes_it_names() {
        for fill in [0u8, b'0', b'a', b'"', 0x20, 0x7f, 0x80, 0xff] {
            for at in 0..8 {
                for b in 0..=255u8 {
                    let mut bytes = [fill; 8];
                    bytes[at] = b;
                    let w = word(bytes);
                    let first_of = |pass: &dyn Fn(u8) -> bool| bytes.iter().position(|&x| pass(x));
                    for target in [0u8, b'"', b'\\', b' ', b'/', 0x7f] {
                        let flags = eq(w, target);
                        assert_eq!(
                            (flags != 0).then(|| first(flags)),
                            first_of(&|x| x == target),
                            "{bytes:?} eq {target}"
                        );
                    }
                    for n in [0x20u8, 0x30, 0x80] {
                        let flags = below(w, n);
                        assert_eq!((flags != 0).then(|| first(flags)), first_of(&|x| x < n), "{bytes:?} below {n}");
                    }
                    if w & HIGHS == 0 {
                        for (lo, hi) in [(b'0', b'9'), (b'a', b'f'), (0, 0x7f), (0x41, 0x41)] {
                            let expected =
                                bytes.iter().fold(0, |f, &x| f >> 8 | u64::from((lo..=hi).contains(&x)) << 63);
                            assert_eq!(ascii_in(w, lo, hi), expected, "{bytes:?} in {lo}..={hi}");
                        }
                    }
                }
            }
        }
    }
}
