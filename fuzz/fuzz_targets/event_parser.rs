//! Headers + body → `parse_event` never panics, and every object it accepts (or names in an
//! `Ignore`) passes `ObjectRef::validate`.
//!
//! Input formats (so that `../fixtures/events/*.json` work as seeds unchanged):
//! 1. a JSON object `{"headers": {name: string, …}, "body": …}` (the fixture wrapper of
//!    `cloudevent-binary.json`): those headers, the body re-serialised (a string body is sent
//!    as its text);
//! 2. first byte a control byte (0x00–0x08, 0x0e–0x1f): a selector — bits 0–2 pick a
//!    Content-Type, bit 3 adds the `ce-*` headers of a binary CloudEvent, bits 4–5 pick its
//!    `ce-type`; the rest of the input is the body;
//! 3. first non-blank byte `{` or `[`: the whole input is the body, no headers;
//! 4. otherwise an HTTP-like block: `name: value` lines up to an empty line, then the body
//!    (lines that are not a valid header are skipped).
#![no_main]

use gcr_usage_core::trigger_event::{EventDecision, parse_event};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const CONTENT_TYPES: [Option<&[u8]>; 8] = [
    None,
    Some(b"application/json"),
    Some(b"application/json; charset=utf-8"),
    Some(b"application/cloudevents+json"),
    Some(b"  Application/CloudEvents+JSON; charset=utf-8"),
    Some(b"text/plain"),
    Some(b""),
    Some(b"application/cloudevents-batch+json"),
];

const CE_TYPES: [&str; 4] = [
    "google.cloud.storage.object.v1.finalized",
    "google.cloud.storage.object.v1.deleted",
    "google.cloud.storage.object.v1.metadataUpdated",
    "google.storage.object.finalize",
];

fn insert(headers: &mut HeaderMap, name: &[u8], value: &[u8]) {
    if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
        headers.append(n, v);
    }
}

fn split(data: &[u8]) -> (HeaderMap, Vec<u8>) {
    let mut headers = HeaderMap::new();
    // 1. the fixture wrapper
    if let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(data)
        && root.len() == 2
        && let (Some(Value::Object(h)), Some(body)) = (root.get("headers"), root.get("body"))
    {
        for (name, value) in h {
            if let Value::String(v) = value {
                insert(&mut headers, name.as_bytes(), v.as_bytes());
            }
        }
        let body = match body {
            Value::String(s) => s.as_bytes().to_vec(),
            other => serde_json::to_vec(other).unwrap(),
        };
        return (headers, body);
    }
    match data.first() {
        // 2. selector byte
        Some(&sel) if sel < 0x20 && !(0x09..=0x0d).contains(&sel) => {
            if let Some(ct) = CONTENT_TYPES[usize::from(sel & 7)] {
                insert(&mut headers, b"content-type", ct);
            }
            if sel & 8 != 0 {
                insert(&mut headers, b"ce-specversion", b"1.0");
                insert(&mut headers, b"ce-id", b"10357822216473921");
                insert(&mut headers, b"ce-source", b"//storage.googleapis.com/projects/_/buckets/demo-gcr-logs");
                insert(&mut headers, b"ce-type", CE_TYPES[usize::from((sel >> 4) & 3)].as_bytes());
            }
            (headers, data[1..].to_vec())
        }
        _ => {
            // 3. a bare JSON body
            if matches!(data.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'[') | None) {
                return (headers, data.to_vec());
            }
            // 4. header block, blank line, body
            let (block, body) = match data.windows(2).position(|w| w == b"\n\n") {
                Some(i) => (&data[..i], &data[i + 2..]),
                None => (data, &[][..]),
            };
            for line in block.split(|b| *b == b'\n') {
                if let Some(colon) = line.iter().position(|b| *b == b':') {
                    insert(&mut headers, line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
                }
            }
            (headers, body.to_vec())
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (headers, body) = split(data);
    match parse_event(&headers, &body) {
        Ok((_, EventDecision::Object(object))) => {
            if let Err(e) = object.validate("") {
                panic!("accepted an invalid object {object:?}: {}: {}", e.field, e.message);
            }
        }
        Ok((_, EventDecision::Ignore { object: Some(object), .. })) => {
            if let Err(e) = object.validate("") {
                panic!("ignored event names an invalid object {object:?}: {}: {}", e.field, e.message);
            }
        }
        Ok((_, EventDecision::Ignore { object: None, reason })) => assert!(!reason.is_empty()),
        Err(e) => assert!(!e.field.is_empty() && !e.message.is_empty(), "{e:?}"),
    }
});
