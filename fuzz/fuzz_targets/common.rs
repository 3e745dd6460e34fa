//! Shared by the reader and classifier targets.
#![allow(dead_code)]

use std::io::Read;

use gcr_usage_core::usage::{ReadError, ReadStats, ReaderOptions, UsageLogReader, UsageRow};

/// A reader that hands out at most `chunk` bytes per `read` call, so record and line
/// boundaries land anywhere relative to the csv crate's buffer and the line tracker's.
pub struct Chunked<'a> {
    pub data: &'a [u8],
    pub chunk: usize,
}

impl<'a> Chunked<'a> {
    pub fn new(data: &'a [u8], chunk: usize) -> Self {
        Chunked { data, chunk }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let chunk = self.chunk.max(1);
        let n = chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// What one read of a whole input produced.
pub struct Outcome {
    pub rows: Vec<UsageRow<'static>>,
    pub stats: ReadStats,
    pub not_a_usage_log: bool,
}

/// Reads `input` to the end with `options`, checking the per-row invariants on the way.
pub fn read_all<R: Read>(input: R, options: ReaderOptions) -> Outcome {
    let mut reader = UsageLogReader::with_options(input, options);
    let mut rows = Vec::new();
    let mut not_a_usage_log = false;
    loop {
        match reader.next_row() {
            Ok(Some(row)) => rows.push(row.into_owned()),
            Ok(None) => break,
            Err(ReadError::NotAUsageLog { missing }) => {
                assert!(!missing.is_empty(), "NotAUsageLog without missing columns");
                not_a_usage_log = true;
                break;
            }
            // Reading from a byte slice / `Chunked` cannot fail.
            Err(ReadError::Io(e)) => panic!("I/O error from an in-memory reader: {e}"),
        }
    }
    // After the end (or an error) the reader stays ended.
    assert!(matches!(reader.next_row(), Ok(None)), "reader handed out more after its end");
    let stats = reader.into_stats();
    check_stats(&rows, &stats, options, not_a_usage_log);
    Outcome { rows, stats, not_a_usage_log }
}

fn check_stats(rows: &[UsageRow<'_>], stats: &ReadStats, options: ReaderOptions, not_a_usage_log: bool) {
    use gcr_usage_core::usage::{Dedup, HeaderKind};
    // The documented invariant.
    assert_eq!(stats.records, stats.rows + stats.malformed + stats.duplicates, "{stats:?}");
    assert_eq!(stats.rows, rows.len() as u64, "{stats:?}");
    assert!(stats.invalid_utf8 <= stats.rows, "{stats:?}");
    assert_eq!(stats.invalid_utf8, rows.iter().filter(|r| r.invalid_utf8).count() as u64);
    assert_eq!(
        stats.malformed_samples.len() as u64,
        stats.malformed.min(options.malformed_samples as u64),
        "{stats:?}"
    );
    if options.dedup == Dedup::Off {
        assert_eq!(stats.duplicates, 0);
    }
    if not_a_usage_log {
        assert_eq!((stats.records, stats.header), (0, HeaderKind::None), "{stats:?}");
    }
    if stats.records > 0 {
        assert_ne!(stats.header, HeaderKind::None, "{stats:?}");
    }
    // Row numbers strictly increase, line numbers never go back, both 1-based.
    let mut last = (0u64, 0u64);
    for r in rows {
        assert!(r.row > last.0 && r.row <= stats.records, "row {} after {} (records {})", r.row, last.0, stats.records);
        assert!(r.line >= 1 && r.line >= last.1, "line {} after {}", r.line, last.1);
        assert!(
            (gcr_usage_core::usage::row::MIN_TIME_MICROS..=gcr_usage_core::usage::row::MAX_TIME_MICROS)
                .contains(&r.time_micros)
        );
        last = (r.row, r.line);
    }
    let mut last_sample = 0;
    for m in &stats.malformed_samples {
        assert!(m.row > last_sample && m.row <= stats.records && m.line >= 1, "{m:?}");
        last_sample = m.row;
    }
}
