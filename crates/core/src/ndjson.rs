//! A [`RegistryEvent`] as one NDJSON line, written by hand: this is the classified load's hot path
//! (every row of every log object becomes one line of ~1 KB).
//!
//! The derived `Serialize` of [`RegistryEvent`] stays the specification: the tests below and the
//! harness hold this writer byte-identical to `serde_json::to_writer` on every classification
//! fixture, on arbitrary field contents and on whole synthetic logs. Going through serde costs
//! about twice as much, mostly in escaping the 30 constant keys and in `collect_str`'s formatting
//! machinery for the timestamp and the image; here keys are constant bytes, strings that need no
//! escape (nearly all) are copied in one piece, and numbers go through `itoa`.

use serde::Serialize;

use crate::registry_event::{EventTime, ImageRef, RegistryEvent};

/// Appends `event` as one JSON object and a `\n` to `out`.
pub fn write_line(event: &RegistryEvent<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"event_time\":");
    event_time(out, event.event_time);
    out.extend_from_slice(b",\"time_micros\":");
    int(out, event.time_micros);
    out.extend_from_slice(b",\"registry_host\":");
    opt_str(out, event.registry_host);
    out.extend_from_slice(b",\"project\":");
    opt_str(out, event.project.as_deref());
    out.extend_from_slice(b",\"repository\":");
    opt_str(out, event.repository);
    out.extend_from_slice(b",\"image\":");
    match event.image {
        Some(image) => image_ref(out, image),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"digest\":");
    opt_str(out, event.digest);
    out.extend_from_slice(b",\"target\":");
    unit(out, &event.target);
    out.extend_from_slice(b",\"action\":");
    unit(out, &event.action);
    out.extend_from_slice(if event.success { b",\"success\":true" } else { b",\"success\":false" });
    out.extend_from_slice(b",\"status\":");
    int(out, event.status);
    out.extend_from_slice(b",\"method\":");
    string(out, event.method);
    out.extend_from_slice(b",\"operation\":");
    string(out, event.operation);
    out.extend_from_slice(b",\"bucket\":");
    opt_str(out, event.bucket);
    out.extend_from_slice(b",\"object\":");
    opt_str(out, event.object);
    out.extend_from_slice(b",\"client_family\":");
    unit(out, &event.client_family);
    out.extend_from_slice(b",\"client_version\":");
    opt_str(out, event.client_version);
    out.extend_from_slice(b",\"user_agent\":");
    string(out, event.user_agent);
    out.extend_from_slice(b",\"caller_class\":");
    unit(out, &event.caller_class);
    out.extend_from_slice(b",\"client_ip\":");
    string(out, event.client_ip);
    out.extend_from_slice(b",\"request_bytes\":");
    int(out, event.request_bytes);
    out.extend_from_slice(b",\"response_bytes\":");
    int(out, event.response_bytes);
    out.extend_from_slice(b",\"time_taken_micros\":");
    int(out, event.time_taken_micros);
    out.extend_from_slice(b",\"request_id\":");
    string(out, event.request_id);
    out.extend_from_slice(if event.invalid_utf8 { b",\"invalid_utf8\":true" } else { b",\"invalid_utf8\":false" });
    out.extend_from_slice(b",\"source_bucket\":");
    string(out, event.source_bucket);
    out.extend_from_slice(b",\"source_object\":");
    string(out, event.source_object);
    out.extend_from_slice(b",\"source_generation\":");
    match event.source_generation {
        Some(generation) => int(out, generation),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"source_row\":");
    int(out, event.source_row);
    out.extend_from_slice(b",\"source_line\":");
    int(out, event.source_line);
    out.extend_from_slice(b",\"source_kind\":");
    unit(out, &event.source_kind);
    out.extend_from_slice(b",\"principal\":");
    opt_str(out, event.principal);
    out.extend_from_slice(b",\"artifact_format\":");
    match &event.artifact_format {
        Some(format) => unit(out, format),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"reference\":");
    opt_str(out, event.reference);
    out.extend_from_slice(b"}\n");
}

fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// The few unit enums: their serde names are the one list of names, and they are short.
fn unit(out: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(out, value).expect("a unit variant serialises into memory");
}

fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escaped(out, s.as_bytes());
    out.push(b'"');
}

/// The contents of a JSON string, escaped exactly as serde_json does (`\"`, `\\`, the short
/// forms `\b \t \n \f \r`, `\u00XX` with lower-case hex for other control characters; all else,
/// including non-ASCII UTF-8, verbatim).
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Eight bytes at a time while none needs escaping (nearly always): the component runs
        // without SIMD, and a byte-at-a-time scan was a third of the NDJSON cost there.
        if let Some(word) = bytes.get(i..i + 8)
            && !needs_escape(u64::from_le_bytes(word.try_into().expect("eight bytes")))
        {
            i += 8;
            continue;
        }
        let b = bytes[i];
        if b >= 0x20 && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether any of the eight bytes in `word` is below 0x20, `"` or `\`. The classic SWAR tests:
/// `x - 0x01…01` borrows into a byte's top bit only where that byte was zero (or below the
/// subtrahend), and `& !x` drops bytes that had the top bit set already (non-ASCII).
fn needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    (below_space | quote | backslash) & HIGHS != 0
}

/// `"HOST/REPOSITORY"` with the host lower-cased, as [`ImageRef`]'s `Display`.
fn image_ref(out: &mut Vec<u8>, image: ImageRef<'_>) {
    out.push(b'"');
    if image.host.bytes().any(|b| b.is_ascii_uppercase()) {
        escaped(out, image.host.to_ascii_lowercase().as_bytes());
    } else {
        escaped(out, image.host.as_bytes());
    }
    out.push(b'/');
    escaped(out, image.repository.as_bytes());
    out.push(b'"');
}

/// `"YYYY-MM-DDTHH:MM:SS.ffffffZ"`, as [`EventTime`]'s `Display`.
fn event_time(out: &mut Vec<u8>, time: EventTime) {
    let (secs, micros) = (time.0.div_euclid(1_000_000), time.0.rem_euclid(1_000_000));
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        // Out of `time`'s range (the reader never hands such a row out): Display's fallback.
        return string(out, &time.to_string());
    };
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return string(out, &time.to_string());
    }
    let mut text = *b"\"0000-00-00T00:00:00.000000Z\"";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(1, 4, year as u32);
    put(6, 2, u32::from(u8::from(t.month())));
    put(9, 2, u32::from(t.day()));
    put(12, 2, u32::from(t.hour()));
    put(15, 2, u32::from(t.minute()));
    put(18, 2, u32::from(t.second()));
    put(21, 6, micros as u32);
    out.extend_from_slice(&text);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ObjectRef;
    use crate::usage::{UsageRow, classify};

    fn serde_line(event: &RegistryEvent<'_>) -> Vec<u8> {
        let mut line = serde_json::to_vec(event).unwrap();
        line.push(b'\n');
        line
    }

    fn ours(event: &RegistryEvent<'_>) -> Vec<u8> {
        let mut line = Vec::new();
        write_line(event, &mut line);
        line
    }

    fn source() -> ObjectRef {
        ObjectRef {
            bucket: "demo-gcr-logs".into(),
            name: "accessLog_usage_2024_03_11_14_00_00_00cbe5_v0".into(),
            generation: Some(7),
        }
    }

    #[test]
    fn every_classification_fixture_serialises_as_serde_does() {
        let mut checked = 0;
        let source = source();
        for row in crate::usage::fixture_tests::fixture_rows() {
            let event = classify(&row, &source);
            assert_eq!(String::from_utf8(ours(&event)).unwrap(), String::from_utf8(serde_line(&event)).unwrap());
            checked += 1;
        }
        assert!(checked >= 60, "{checked} fixture rows");
    }

    #[test]
    fn escapes_and_edge_values_match_serde() {
        let mut row = UsageRow {
            cs_user_agent: "a\"b\\c\u{8}\t\n\u{c}\r\u{1}\u{1f}\u{7f}é😀".into(),
            cs_object: "containers/images/x\u{0}".into(),
            cs_bucket: "artifacts.demo-project.appspot.com".into(),
            time_micros: crate::usage::row::MIN_TIME_MICROS,
            cs_bytes: u64::MAX,
            ..UsageRow::default()
        };
        for time in
            [crate::usage::row::MIN_TIME_MICROS, -1, 0, 1_710_166_032_118_406, crate::usage::row::MAX_TIME_MICROS]
        {
            row.time_micros = time;
            let mut source = source();
            for generation in [None, Some(u64::MAX)] {
                source.generation = generation;
                let event = classify(&row, &source);
                assert_eq!(ours(&event), serde_line(&event), "{time} {generation:?}");
            }
        }
        let source = source();
        let image = RegistryEvent {
            image: Some(ImageRef { host: "EU.GCR.io", repository: "p/a\"pp" }),
            ..classify(&row, &source)
        };
        assert_eq!(ours(&image), serde_line(&image));
    }

    #[test]
    fn the_word_test_finds_exactly_the_bytes_to_escape() {
        let must = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut word = *b"abcdefgh";
                word[at] = b;
                assert_eq!(needs_escape(u64::from_le_bytes(word)), must(b), "byte {b:#04x} at {at}");
                // Next to non-ASCII bytes (UTF-8 continuation and lead bytes) too.
                let mut word = [0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80, 0xe2, 0x82];
                word[at] = b;
                assert_eq!(needs_escape(u64::from_le_bytes(word)), must(b), "byte {b:#04x} at {at} among non-ASCII");
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_rows_serialise_as_serde_does(
            text in proptest::collection::vec("\\PC{0,12}|[\\x00-\\x7f]{0,12}", 8),
            time in crate::usage::row::MIN_TIME_MICROS..=crate::usage::row::MAX_TIME_MICROS,
            numbers in proptest::array::uniform3(any::<u64>()),
            status in any::<u16>(),
        ) {
            let referer = format!("https://{}gcr.io/v2/{}/blobs/sha256:{}", text[0], text[1], "a".repeat(64));
            let row = UsageRow {
                time_micros: time,
                c_ip: text[2].clone(),
                cs_method: text[3].clone(),
                cs_uri: text[4].clone(),
                sc_status: status,
                cs_bytes: numbers[0],
                sc_bytes: numbers[1],
                time_taken_micros: numbers[2],
                cs_referer: referer,
                cs_user_agent: text[5].clone(),
                s_request_id: text[6].clone(),
                cs_operation: text[7].clone(),
                cs_bucket: "artifacts.demo-project.appspot.com".into(),
                cs_object: format!("containers/images/sha256:{}", "a".repeat(64)),
                ..UsageRow::default()
            };
            let source = source();
            let event = classify(&row, &source);
            prop_assert_eq!(ours(&event), serde_line(&event));
        }
    }
}
