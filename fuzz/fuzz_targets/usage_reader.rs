//! Arbitrary bytes → `UsageLogReader`, read to the end three ways:
//! A: `Dedup::Exact` over the slice; B: `Dedup::Off` through a reader returning tiny chunks;
//! C: `Dedup::Window(n)` over the slice. Each must satisfy the documented invariants
//! (`records = rows + malformed + duplicates`, …) and never panic, and they must agree:
//! chunking changes nothing, B keeps exactly what A drops as duplicates, a window finds
//! no more duplicates than exact dedup.
#![no_main]

mod common;

use common::{Chunked, read_all};
use gcr_usage_core::usage::{Dedup, ReaderOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let samples = data.len() % 4; // 0..=3 kept samples: exercises the cap
    let exact = read_all(data, ReaderOptions { dedup: Dedup::Exact, malformed_samples: samples });
    let chunk = 1 + data.last().map_or(0, |b| usize::from(*b) % 7);
    let off = read_all(Chunked::new(data, chunk), ReaderOptions { dedup: Dedup::Off, malformed_samples: samples });
    let window = 1 + data.len() % 3;
    let win = read_all(data, ReaderOptions { dedup: Dedup::Window(window), malformed_samples: samples });

    // A vs B: the same records, malformed rows and header; B keeps the duplicates A dropped.
    let (a, b) = (&exact.stats, &off.stats);
    assert_eq!(exact.not_a_usage_log, off.not_a_usage_log);
    assert_eq!(
        (a.records, a.malformed, a.repeated_headers, a.header),
        (b.records, b.malformed, b.repeated_headers, b.header)
    );
    assert_eq!(a.malformed_samples, b.malformed_samples);
    assert_eq!(b.rows, a.rows + a.duplicates);
    // Every row A kept is in B, identical (line numbers included): A's rows are a subsequence.
    let mut it = off.rows.iter();
    for r in &exact.rows {
        assert!(
            it.any(|o| o == r),
            "row {} (line {}) of the exact read is missing from the chunked read",
            r.row,
            r.line
        );
    }
    // C: a window never finds more duplicates than exact dedup.
    let c = &win.stats;
    assert_eq!((c.records, c.malformed), (a.records, a.malformed));
    assert!(c.duplicates <= a.duplicates, "window {window}: {} > {}", c.duplicates, a.duplicates);
});
