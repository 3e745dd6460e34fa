//! Fixture-driven tests: the classification table in `fixtures/classification/cases.json`, and
//! every sample log in `fixtures/logs/` read and classified against what its README states.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::reader::HEADER_LINE;
use super::row::COLUMNS;
use super::*;
use crate::log_name::{LogKind, LogObjectName};
use crate::object::ObjectRef;
use crate::registry_event::{Action, EventTime};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// One quoted CSV field (RFC 4180: `"` doubled).
fn quoted(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![b'"'];
    for &b in bytes {
        out.extend_from_slice(if b == b'"' { b"\"\"" } else { std::slice::from_ref(&b) });
    }
    out.push(b'"');
    out
}

/// The case's row as a log object: the documented header and one quoted line.
fn case_csv(defaults: &Value, case: &Value) -> Vec<u8> {
    let mut fields: Vec<Vec<u8>> = COLUMNS
        .iter()
        .map(|c| {
            let value = case["row"].get(*c).unwrap_or(&defaults[*c]);
            value.as_str().unwrap_or_else(|| panic!("{c} must be a string")).as_bytes().to_vec()
        })
        .collect();
    if let Some(bytes) = case.get("row_bytes").and_then(Value::as_object) {
        for (column, value) in bytes {
            let i = COLUMNS.iter().position(|c| c == column).unwrap_or_else(|| panic!("unknown column {column}"));
            fields[i] = percent_encoding::percent_decode_str(value.as_str().unwrap_or_default()).collect();
        }
    }
    if let Some(n) = case.get("truncate").and_then(Value::as_u64) {
        fields.truncate(n as usize);
    }
    for extra in case.get("extra").and_then(Value::as_array).into_iter().flatten() {
        fields.push(extra.as_str().unwrap_or_default().as_bytes().to_vec());
    }
    let mut csv = format!("{HEADER_LINE}\n").into_bytes();
    csv.extend(fields.iter().map(|f| quoted(f)).collect::<Vec<_>>().join(&b","[..]));
    csv.push(b'\n');
    csv
}

/// Runs one case; `Err` says what differed.
fn run_case(defaults: &Value, source: &ObjectRef, case: &Value) -> Result<(), String> {
    let csv = case_csv(defaults, case);
    let mut reader = UsageLogReader::new(csv.as_slice());
    let rows: Vec<UsageRow> = reader.by_ref().collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let stats = reader.into_stats();
    if let Some(reason) = case.get("expect_malformed").and_then(Value::as_str) {
        let got: Vec<String> = stats.malformed_samples.iter().map(|m| m.reason.to_string()).collect();
        return match (rows.len(), got.as_slice()) {
            (0, [only]) if only == reason => Ok(()),
            _ => Err(format!("expected malformed {reason:?}, got {} rows and reasons {got:?}", rows.len())),
        };
    }
    let [row] = rows.as_slice() else { return Err(format!("expected 1 row, got {} ({stats:?})", rows.len())) };
    let event = serde_json::to_value(classify(row, source)).map_err(|e| e.to_string())?;
    let mut diffs = Vec::new();
    for (key, want) in case["expect"].as_object().into_iter().flatten() {
        match event.get(key) {
            None => diffs.push(format!("no field {key:?} in the event")),
            Some(got) if got != want => diffs.push(format!("{key}: expected {want}, got {got}")),
            Some(_) => {}
        }
    }
    if diffs.is_empty() { Ok(()) } else { Err(diffs.join("; ")) }
}

/// `fixtures/classification/cases.json`: `source`, `defaults` and the `cases`.
fn classification_doc() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("classification/cases.json")).unwrap()).unwrap()
}

#[test]
fn classification_table() {
    let doc = classification_doc();
    let source: ObjectRef = ObjectRef {
        bucket: doc["source"]["bucket"].as_str().unwrap().into(),
        name: doc["source"]["name"].as_str().unwrap().into(),
        generation: doc["source"]["generation"].as_u64(),
    };
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 40, "the table should stay a real table ({} cases)", cases.len());
    let names: HashSet<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            assert!(case.get("expect").is_some() != case.get("expect_malformed").is_some(), "{case}");
            run_case(&doc["defaults"], &source, case).err().map(|e| format!("{}: {e}", case["name"]))
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

/// Every row the fixtures hold: each classification case that reads as a row, and every row of
/// every usage log in `fixtures/logs/` (for tests that must hold on realistic rows).
pub(crate) fn fixture_rows() -> Vec<UsageRow<'static>> {
    let doc = classification_doc();
    let mut rows: Vec<UsageRow<'static>> = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|case| {
            let csv = case_csv(&doc["defaults"], case);
            UsageLogReader::new(csv.as_slice()).filter_map(Result::ok).collect::<Vec<_>>()
        })
        .collect();
    for file in log_files().into_iter().filter(|f| f.kind == LogKind::Usage) {
        rows.extend(UsageLogReader::new(file.bytes.as_slice()).filter_map(Result::ok));
    }
    rows
}

/// The rows of the markdown table between `<!-- expected:NAME -->` markers, cells trimmed and
/// unquoted from their backticks; header and separator rows dropped.
fn readme_table(readme: &str, name: &str) -> Vec<Vec<String>> {
    let start = readme.find(&format!("<!-- expected:{name} -->")).unwrap_or_else(|| panic!("no table {name}"));
    let end = start + readme[start..].find(&format!("<!-- /expected:{name} -->")).unwrap();
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().trim_matches('`').to_string()).collect())
        .collect()
}

struct LogFile {
    name: String,
    kind: LogKind,
    bytes: Vec<u8>,
}

fn log_files() -> Vec<LogFile> {
    let mut files: Vec<LogFile> = std::fs::read_dir(fixtures().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let kind = LogObjectName::parse(&name).unwrap_or_else(|e| panic!("{name}: {}", e.0)).kind;
            LogFile { bytes: std::fs::read(&p).unwrap(), name, kind }
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

#[test]
fn every_fixture_log_reads_as_its_readme_says() {
    let readme = std::fs::read_to_string(fixtures().join("logs/README.md")).unwrap();
    let expected: BTreeMap<String, (String, u64)> = readme_table(&readme, "files")
        .into_iter()
        .map(|r| (r[0].clone(), (r[1].clone(), r[3].parse().unwrap())))
        .collect();
    let files = log_files();
    let names: BTreeSet<&String> = files.iter().map(|f| &f.name).collect();
    assert_eq!(names, expected.keys().collect(), "the README's table lists exactly the files present");
    let mut usage_rows = 0;
    for file in &files {
        let (kind, data_rows) = &expected[&file.name];
        assert_eq!(file.kind.as_str(), kind, "{}", file.name);
        let mut reader = UsageLogReader::new(file.bytes.as_slice());
        match file.kind {
            LogKind::Usage => {
                let rows = reader.by_ref().collect::<Result<Vec<_>, _>>().unwrap();
                let stats = reader.into_stats();
                assert_eq!(stats.records, *data_rows, "{}: data rows", file.name);
                assert_eq!((stats.malformed, stats.duplicates, stats.rows), (0, 0, rows.len() as u64), "{}", file.name);
                assert_eq!(stats.header, HeaderKind::Documented, "{}", file.name);
                usage_rows += stats.records;
            }
            LogKind::Audit => panic!("{}: fixtures/logs holds usage and storage logs only", file.name),
            LogKind::Storage => {
                let err = reader.next().unwrap().unwrap_err();
                assert!(matches!(err, ReadError::NotAUsageLog { .. }), "{}: {err}", file.name);
            }
        }
    }
    assert!(readme.contains(&format!("**`usage` {usage_rows} rows")), "the README's total is {usage_rows} usage rows");
}

#[test]
fn fixture_logs_classify_to_the_readme_image_pulls() {
    let readme = std::fs::read_to_string(fixtures().join("logs/README.md")).unwrap();
    #[derive(Default)]
    struct Pulls {
        downloads: u64,
        bytes: u64,
        ips: BTreeSet<String>,
        first: Option<EventTime>,
        last: Option<EventTime>,
        configs: u64,
    }
    let configs: BTreeSet<&str> = [
        "sha256:c1ee13b9a1a3b38904c3fc2dd6a908b762cd9ad6b666e7d02f7419deba78d4e4",
        "sha256:03850a17933d669871306d6eda058b778f2e86d729a8b9c993737d44911903c0",
        "sha256:bf512d43f25589da72ed91fd5f8cf64a247240673eb58c76570b124c071c8271",
        "sha256:fb78569305580c8953be633fc45ca54817d403d2695a91e59ca355db415ed9fa",
    ]
    .into();
    let mut seen = HashSet::new();
    let mut by_image: BTreeMap<(String, String), Pulls> = BTreeMap::new();
    for file in log_files().iter().filter(|f| f.kind == LogKind::Usage) {
        let source = ObjectRef { bucket: "demo-gcr-logs".into(), name: file.name.clone(), generation: None };
        for row in UsageLogReader::new(file.bytes.as_slice()) {
            let row = row.unwrap();
            let e = classify(&row, &source);
            let (Action::Pull, true, Some(image)) = (e.action, e.success, e.image) else { continue };
            if !seen.insert(e.request_id.to_string()) {
                continue; // the same record delivered in two objects
            }
            let p = by_image.entry((image.host.to_ascii_lowercase(), image.repository.to_string())).or_default();
            p.downloads += 1;
            p.bytes += e.response_bytes;
            p.ips.insert(e.client_ip.to_string());
            p.first = p.first.min(Some(e.event_time)).or(Some(e.event_time));
            p.last = p.last.max(Some(e.event_time));
            p.configs += u64::from(e.digest.is_some_and(|d| configs.contains(d)));
        }
    }
    let mut got: Vec<(&(String, String), &Pulls)> = by_image.iter().collect();
    got.sort_by(|a, b| b.1.downloads.cmp(&a.1.downloads).then(a.0.cmp(b.0)));
    let got: Vec<Vec<String>> = got
        .iter()
        .map(|((host, repo), p)| {
            let time = |t: Option<EventTime>| t.map(|t| t.to_string()).unwrap_or_default();
            let (n, bytes, ips) = (p.downloads, p.bytes, p.ips.len());
            [host.clone(), repo.clone(), n.to_string(), bytes.to_string(), ips.to_string(), time(p.first), time(p.last)]
                .into()
        })
        .collect();
    assert_eq!(got, readme_table(&readme, "image_pulls"));

    // "Config downloads (= image pulls …): `IMAGE` N, …"
    let para = &readme[readme.find("Config downloads").unwrap()..];
    let para = &para[..para.find("\n\n").unwrap()];
    let parts: Vec<&str> = para.split('`').collect();
    let stated: Vec<(String, u64)> = parts[1..]
        .chunks(2)
        .map(|c| (c[0].to_string(), c[1].trim_start().split([',', '.']).next().unwrap().trim().parse().unwrap()))
        .collect();
    let mut counted: Vec<(String, u64)> = by_image.iter().map(|((h, r), p)| (format!("{h}/{r}"), p.configs)).collect();
    counted.sort();
    let mut stated_sorted = stated.clone();
    stated_sorted.sort();
    assert_eq!(counted, stated_sorted, "config downloads per image");
}
