//! Arbitrary bytes → `AuditLogReader`, read to the end three ways: A over the slice with a
//! duplicate window of 1–4 entries, B the same through a reader returning 1–7 bytes per `read`,
//! C over the slice with a window as long as the input.
//! Each must satisfy the documented invariants and never panic:
//! - the read ends with `Ok(None)` (and stays ended), or with `BrokenArray` — and only when the
//!   stream has the array layout — or, when every entry was malformed, with the refusal of the
//!   whole object; never an I/O error (the input is in memory);
//! - `entries = events + skipped + malformed + duplicates`, `events` = events handed out,
//!   samples capped, rows strictly increasing and within `entries`, lines non-decreasing;
//! - every event's NDJSON line (`ndjson::write_line`, the component's writer) is
//!   `serde_json::to_vec(event)` + `\n` byte for byte, parses as JSON and equals
//!   `serde_json::to_value(event)`, is an `audit_log` event with a time in BigQuery's range;
//!
//! and they must agree: chunking changes nothing (A = B: the same events, byte for byte, the
//! same counts, samples, layout and error); a wider window only turns events into duplicates
//! (C: same entries, skipped, malformed; events + duplicates equal; at least A's duplicates).
#![no_main]

mod common;

use common::Chunked;
use gcr_usage_core::ObjectRef;
use gcr_usage_core::audit::framing::Layout;
use gcr_usage_core::audit::{AuditLogReader, AuditReadError, AuditStats};
use gcr_usage_core::ndjson;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::io::Read;

/// What one read of a whole input produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// Each event's NDJSON line (checked against serde on the way).
    lines: Vec<Vec<u8>>,
    stats: AuditStats,
    layout: Option<Layout>,
    /// The error that ended the read (`BrokenArray` …), if one did.
    broken: Option<String>,
}

fn read_all<R: Read>(input: R, window: usize, samples: usize) -> Outcome {
    let source = ObjectRef {
        bucket: "demo-audit-logs".into(),
        name: "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json".into(),
        generation: Some(1720137600000000),
    };
    let mut reader = AuditLogReader::new(input, source, window, samples);
    let mut lines = Vec::new();
    let mut last = (0u64, 0u64);
    let broken = loop {
        let next = reader.next_event(|event| {
            let mut line = Vec::new();
            ndjson::write_line(event, &mut line);
            let mut serde = serde_json::to_vec(event).expect("an audit event serialises");
            serde.push(b'\n');
            assert_eq!(
                String::from_utf8_lossy(&line),
                String::from_utf8_lossy(&serde),
                "the NDJSON writer and serde_json differ"
            );
            assert_eq!(line, serde, "the NDJSON writer and serde_json differ in bytes");
            assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1, "one NDJSON line, one newline");
            let parsed: Value = serde_json::from_slice(&line).expect("an NDJSON line is JSON");
            assert_eq!(parsed, serde_json::to_value(event).expect("an event becomes a JSON value"));
            assert_eq!(parsed["source_kind"], "audit_log");
            assert!(
                (gcr_usage_core::usage::row::MIN_TIME_MICROS..=gcr_usage_core::usage::row::MAX_TIME_MICROS)
                    .contains(&event.time_micros)
            );
            assert_eq!(event.event_time.0, event.time_micros);
            (line, event.source_row, event.source_line)
        });
        match next {
            Ok(Some((line, row, physical))) => {
                assert!(row > last.0, "row {row} after {}", last.0);
                assert!(physical >= 1 && physical >= last.1, "line {physical} after {}", last.1);
                last = (row, physical);
                lines.push(line);
            }
            Ok(None) => {
                // The reader stays ended.
                assert!(matches!(reader.next_event(|_| ()), Ok(None)), "the reader handed out more after its end");
                break None;
            }
            Err(AuditReadError::Io(e)) => panic!("I/O error from an in-memory reader: {e}"),
            Err(AuditReadError::BrokenArray(why)) => {
                assert_eq!(reader.layout(), Some(Layout::JsonArray), "BrokenArray from a stream of JSON lines: {why}");
                break Some(why);
            }
            // Any other error (an object none of whose entries is one, refused whole) only at
            // the end, and only when every entry was malformed.
            Err(e) => {
                let s = reader.stats();
                assert!(s.entries > 0 && s.malformed == s.entries, "{e} after {s:?}");
                assert!(reader.next_event(|_| ()).is_err(), "the refusal does not stay");
                break Some(e.to_string());
            }
        }
    };
    let layout = reader.layout();
    let (_, stats) = reader.into_parts();
    let s = &stats;
    assert_eq!(s.entries, s.events + s.skipped + s.malformed + s.duplicates, "{s:?}");
    assert_eq!(s.events, lines.len() as u64, "{s:?}");
    assert!(last.0 <= s.entries, "row {} of {} entries", last.0, s.entries);
    assert_eq!(s.malformed_samples.len() as u64, s.malformed.min(samples as u64), "{s:?}");
    let mut last_sample = (0u64, 0u64);
    for m in &s.malformed_samples {
        assert!(m.row > last_sample.0 && m.row <= s.entries, "{m:?} after {last_sample:?}");
        assert!(m.line >= 1 && m.line >= last_sample.1, "{m:?} after {last_sample:?}");
        last_sample = (m.row, m.line);
    }
    if layout.is_none() {
        assert_eq!(s.entries, 0, "entries without a layout: {s:?}");
    }
    Outcome { lines, stats, layout, broken }
}

fuzz_target!(|data: &[u8]| {
    let samples = data.len() % 4; // 0..=3 kept samples: exercises the cap
    let window = 1 + data.first().map_or(0, |b| usize::from(*b) % 4); // small windows: evictions happen
    let whole = read_all(data, window, samples);
    let chunk = 1 + data.last().map_or(0, |b| usize::from(*b) % 7);
    let chunked = read_all(Chunked::new(data, chunk), window, samples);
    assert_eq!(whole, chunked, "reading {chunk} bytes at a time changed the result");
    // C: a window as long as the input finds every duplicate the short one found, and maybe more.
    let wide = read_all(data, data.len().max(1), samples);
    let (a, c) = (&whole.stats, &wide.stats);
    assert_eq!(
        (c.entries, c.skipped, c.malformed, &c.malformed_samples),
        (a.entries, a.skipped, a.malformed, &a.malformed_samples)
    );
    assert_eq!(c.events + c.duplicates, a.events + a.duplicates, "{a:?} vs {c:?}");
    assert!(c.duplicates >= a.duplicates, "window {window}: {a:?} vs {}: {c:?}", data.len());
    assert_eq!((&wide.broken, wide.layout), (&whole.broken, whole.layout));
});
