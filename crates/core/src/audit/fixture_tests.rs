//! `fixtures/audit/`: every case of `cases.json` (one entry → the event fields it must give, or
//! skipped, or malformed with a reason), the sink object against `sink/expected.json`, and the
//! `gcloud logging read` array against the same entries read as JSON lines.

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::AuditLogReader;
use crate::object::ObjectRef;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/audit")
}

fn json(path: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir().join(path)).unwrap()).unwrap()
}

/// RFC 7396: objects merge, `null` deletes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Reads `bytes` whole: (events as JSON, the reader's counts, malformed reasons with lines).
fn read(bytes: &[u8], source: &ObjectRef) -> (Vec<Map<String, Value>>, super::AuditStats) {
    let mut reader = AuditLogReader::new(bytes, source.clone(), 1 << 14, usize::MAX);
    let mut events = Vec::new();
    loop {
        match reader.next_event(|e| serde_json::to_value(e).unwrap()) {
            Ok(Some(Value::Object(map))) => events.push(map),
            Ok(Some(other)) => panic!("an event is an object: {other}"),
            // A case's one line is its object's only line: when it is no JSON object at all the
            // object is refused whole, and the malformed count says why.
            Ok(None) | Err(super::AuditReadError::NoEntries(_)) => break,
            Err(e) => panic!("{e}"),
        }
    }
    (events, reader.stats().clone())
}

fn source_of(v: &Value) -> ObjectRef {
    ObjectRef {
        bucket: v["bucket"].as_str().unwrap().into(),
        name: v["name"].as_str().unwrap().into(),
        generation: v["generation"].as_u64(),
    }
}

#[test]
fn every_case_classifies_as_the_fixture_says() {
    let cases = json("cases.json");
    let source = source_of(&cases["source"]);
    let mut failures = Vec::new();
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let line: Vec<u8> = if let Some(raw) = case["raw_line"].as_str() {
            raw.as_bytes().to_vec()
        } else if let Some(hex) = case["raw_line_hex"].as_str() {
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
        } else {
            let mut entry = cases["defaults"].clone();
            merge(&mut entry, &case["entry"]);
            serde_json::to_vec(&entry).unwrap()
        };
        let (events, stats) = read(&line, &source);
        let mut fail = |why: String| failures.push(format!("{name}: {why}"));
        if case["expect_skipped"] == true {
            if (stats.skipped, events.len(), stats.malformed) != (1, 0, 0) {
                fail(format!("expected skipped, got {stats:?}"));
            }
        } else if let Some(reason) = case["expect_malformed"].as_str() {
            let reasons: Vec<String> = stats.malformed_samples.iter().map(|m| m.reason.to_string()).collect();
            if stats.malformed != 1 || !events.is_empty() || !reasons.iter().any(|r| r.contains(reason)) {
                fail(format!("expected malformed ({reason}), got {} events, reasons {reasons:?}", events.len()));
            }
        } else if events.len() != 1 {
            fail(format!("expected one event, got {stats:?}"));
        } else {
            for (field, want) in case["expect"].as_object().unwrap() {
                let got = events[0].get(field).unwrap_or(&Value::Null);
                if got != want {
                    fail(format!("{field}: {got} (expected {want})"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases["cases"].as_array().unwrap().len(),
        failures.join("\n")
    );
}

#[test]
fn the_sink_object_counts_as_expected() {
    let expected = json("sink/expected.json");
    let name = "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json";
    let source = ObjectRef { bucket: "demo-audit-logs".into(), name: name.into(), generation: Some(1) };
    let (events, stats) = read(&std::fs::read(dir().join("sink").join(name)).unwrap(), &source);
    let counts = (stats.entries, stats.events, stats.skipped, stats.malformed, stats.duplicates);
    let want = |k: &str| expected[k].as_u64().unwrap();
    assert_eq!(counts, (want("entries"), want("events"), want("skipped"), want("malformed"), want("duplicates")));
    let lines: Vec<u64> = stats.malformed_samples.iter().map(|m| m.line).collect();
    assert_eq!(serde_json::to_value(lines).unwrap(), expected["malformed_lines"]);
    let mut by_action = Map::new();
    for e in &events {
        let n = by_action.entry(e["action"].as_str().unwrap().to_string()).or_insert(Value::from(0));
        *n = Value::from(n.as_u64().unwrap() + 1);
    }
    assert_eq!(Value::Object(by_action), expected["pulls_by_action"]);
    assert!(events.iter().all(|e| e["source_object"] == name && e["source_kind"] == "audit_log"));
}

#[test]
fn gcloud_output_and_sink_lines_give_the_same_events() {
    let name = "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json";
    let source = ObjectRef { bucket: "demo-audit-logs".into(), name: name.into(), generation: Some(1) };
    let sink = std::fs::read_to_string(dir().join("sink").join(name)).unwrap();
    let first_ten: String = sink.lines().take(10).map(|l| format!("{l}\n")).collect();
    let lineage = |mut events: Vec<Map<String, Value>>| {
        for e in &mut events {
            e.remove("source_row");
            e.remove("source_line");
        }
        events.sort_by_key(|e| e["request_id"].as_str().unwrap().to_string());
        events
    };
    let (from_lines, line_stats) = read(first_ten.as_bytes(), &source);
    let (from_array, array_stats) = read(&std::fs::read(dir().join("gcloud/read.json")).unwrap(), &source);
    assert_eq!((array_stats.entries, array_stats.malformed), (line_stats.entries, line_stats.malformed));
    assert_eq!(lineage(from_array), lineage(from_lines));
}

/// Rule A over the sink object (and its late shard), in the core's statistics: the pulls per
/// image and the agents' manifest reads worked out by hand in `sink/expected.json`.
#[test]
fn the_pull_rule_counts_pulls_not_requests() {
    use crate::stats::{StatsOptions, UsageStats};
    let expected = json("sink/expected.json");
    let dir = dir().join("sink/cloudaudit.googleapis.com/data_access/2024/07/04");
    let mut stats = UsageStats::new(StatsOptions::default());
    let mut check = |files: &[&str], want: &Value| {
        for file in files {
            let source = ObjectRef { bucket: "demo-audit-logs".into(), name: (*file).into(), generation: Some(1) };
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let mut reader = AuditLogReader::new(&bytes[..], source, 1 << 14, 5);
            while reader.next_event(|e| stats.add(e)).unwrap().is_some() {}
        }
        let report = stats.report(None);
        let pulls: Map<String, Value> = report
            .images
            .iter()
            .filter(|i| i.pulls > 0)
            .map(|i| (format!("{}/{}", i.registry_host, i.repository), Value::from(i.pulls)))
            .collect();
        assert_eq!(Value::Object(pulls), want["pulls_per_image"], "{files:?}");
        assert_eq!(Value::from(report.summary.agent_pulls), want["agent_pulls"], "{files:?}");
    };
    check(&["23:00:00_23:59:59_S0.json"], &expected);
    check(&["23:00:00_23:59:59_A1:1720140000.json"], &expected["with_the_late_file"]);
}

#[test]
fn an_object_without_one_json_object_is_refused_whole() {
    let source = ObjectRef { bucket: "b".into(), name: "n".into(), generation: None };
    let refuse = |bytes: &[u8]| {
        let mut reader = AuditLogReader::new(bytes, source.clone(), 16, 5);
        loop {
            match reader.next_event(|_| ()) {
                Ok(Some(())) => {}
                Ok(None) => return None,
                Err(e) => return Some(e.to_string()),
            }
        }
    };
    let csv = refuse(b"\"time_micros\",\"c_ip\"\n\"1\",\"2\"\n").expect("a CSV is refused");
    assert!(csv.starts_with("not Cloud Logging entries") && csv.contains("none of its 2 lines"), "{csv}");
    assert!(refuse(b"\x1f\x8b\x08\x00\x00\n").is_some(), "a compressed file is refused");
    assert!(refuse(b"[1, 2, \"x\"]").is_some(), "an array of other JSON is refused");
    // One JSON object, however malformed its fields, makes it a log to read (and count).
    assert_eq!(refuse(b"not json\n{\"insertId\": 5}\n"), None);
    assert_eq!(refuse(b""), None, "an empty object has no entries, and nothing wrong");
}
