//! Arbitrary bytes → reader → `classify` → `serde_json::to_string`: every row classifies
//! (the classifier is total), and the event serialises to valid JSON — one NDJSON line.
#![no_main]

mod common;

use gcr_usage_core::ObjectRef;
use gcr_usage_core::usage::{ReaderOptions, UsageLogReader, classify};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let source = ObjectRef {
        bucket: "demo-gcr-logs".into(),
        name: "accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0".into(),
        generation: Some(1710170135482117),
    };
    let mut reader = UsageLogReader::with_options(data, ReaderOptions::default());
    while let Ok(Some(row)) = reader.next_row() {
        let event = classify(&row, &source);
        let line = serde_json::to_string(&event).expect("a usage event must serialise");
        assert!(!line.contains('\n'), "an NDJSON line must not contain a raw newline: {line}");
        let value: Value = serde_json::from_str(&line).expect("serialised event must be valid JSON");
        let Value::Object(map) = value else { panic!("event is not a JSON object: {line}") };
        assert_eq!(map.get("time_micros").and_then(Value::as_i64), Some(row.time_micros), "{line}");
    }
});
