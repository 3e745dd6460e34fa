//! `GCR_USAGE_MODE=classified|both`: the component downloads the log (pinned, checksummed),
//! classifies it as it streams and uploads NDJSON through a resumable session — checked against
//! the native core's classification of the same bytes, for bounded memory and for the
//! body-writing paths of wasi:http. The answers to faults and refusals are the shared
//! scenarios (`scenarios.rs`).

use gcr_usage_core::ObjectRef as CoreObject;
use gcr_usage_core::usage::{Dedup, ReaderOptions, UsageLogReader, classify};
use gcr_usage_fake_google::logs::{fixture_log, grown_log};
use gcr_usage_host_test::bench_support::classified_load;
use gcr_usage_host_test::{FakeGoogle, FakeUpstream, Metering, OutcomeKind, Reply, Rule, object_ref, prefix};
use serde_json::json;

use crate::common::*;

/// What the core makes of `log`: the NDJSON the component must upload, byte for byte.
fn native_ndjson(log: &[u8]) -> Vec<u8> {
    let object = CoreObject { bucket: BUCKET.into(), name: USAGE_NAME.into(), generation: Some(USAGE_GEN) };
    let options =
        ReaderOptions { dedup: Dedup::Window(gcr_usage_core::classified::DEDUP_WINDOW), malformed_samples: 5 };
    let mut reader = UsageLogReader::with_options(log, options);
    let mut out = Vec::new();
    while let Some(row) = reader.next_row().unwrap() {
        serde_json::to_writer(&mut out, &classify(&row, &object)).unwrap();
        out.push(b'\n');
    }
    out
}

fn big_log(bytes: usize) -> Vec<u8> {
    grown_log(bytes).0
}

fn classified(up: &FakeUpstream, mode: &str) -> gcr_usage_host_test::Harness {
    harness(up).env("GCR_USAGE_MODE", mode).fuel(u64::MAX / 4)
}

fn events_job_id() -> String {
    let raw = expected_job_id(BUCKET, USAGE_NAME, Some(USAGE_GEN), USAGE_DEST, 1);
    // Same readable part, another prefix and hash: checked for shape, not re-derived.
    assert!(raw.starts_with("gcr_usage_accessLog_usage_2024_03_11_14"));
    raw
}

/// The benchmarks' classified load (`classify_bench` (e) and (e')) classifies as many rows
/// metered as unmetered, and only the metered run counts fuel.
#[test]
fn the_benchmark_load_classifies_alike_with_and_without_fuel() {
    let log = big_log(256 << 10);
    let metered = classified_load(&log, USAGE_NAME, Metering::Fuel).unwrap();
    let unmetered = classified_load(&log, USAGE_NAME, Metering::Off).unwrap();
    let rows = native_ndjson(&log).iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(rows > 100, "{rows} rows");
    assert_eq!(metered.events, rows, "as many events as the native reader's rows");
    assert!(metered.fuel as usize > log.len(), "{} fuel for {} bytes", metered.fuel, log.len());
    assert_eq!(unmetered.events, metered.events);
    assert_eq!(unmetered.fuel, 0);
}

/// The component's escape check scans sixteen bytes at a time (`simd128`), natively eight: a
/// user agent of every length up to 40 with each byte that needs an escape at every position
/// (first, last, straddling a block) comes out as serde_json writes it.
#[tokio::test(start_paused = true)]
async fn strings_needing_escapes_at_any_position_are_written_as_serde_writes_them() {
    let text = String::from_utf8(fixture_log()).unwrap();
    let mut lines = text.lines();
    let mut log = format!("{}\n", lines.next().unwrap());
    let template: Vec<&str> = lines.next().unwrap().split("\",\"").collect();
    let mut n = 0;
    let mut row = |agent: String| {
        let mut fields: Vec<String> = template.iter().map(|f| f.to_string()).collect();
        fields[12] = agent.replace('"', "\"\"");
        fields[13] = format!("escape-{n}");
        n += 1;
        log.push_str(&fields.join("\",\""));
        log.push('\n');
    };
    for len in 0..=40 {
        row("a".repeat(len));
        for at in 0..len {
            for needle in ['"', '\\', '\t', '\u{1}'] {
                let mut agent: Vec<char> = "b".repeat(len).chars().collect();
                agent[at] = needle;
                row(agent.into_iter().collect());
            }
        }
    }
    let log = log.into_bytes();
    let (up, google) = google_with(log.clone());
    let r = classified(&up, "classified").handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_eq!((r.status, &r.json()["outcome"]), (200, &json!("loaded")), "{}", r.json());
    let uploads = google.uploads();
    let [(_, ndjson)] = &uploads[..] else { panic!("{uploads:?}") };
    assert_eq!(ndjson.iter().filter(|&&b| b == b'\n').count(), 41 + 4 * (40 * 41 / 2));
    assert_eq!(ndjson, &native_ndjson(&log), "escaped exactly as serde_json escapes");
}

/// The component's CSV splitter searches 16 bytes at a time (`simd128`), natively `memchr3`:
/// quoted fields of every length up to 40 holding a comma, `\n`, `\r\n` or `""` at every
/// position, unquoted numbers, LF and CRLF record ends — the same events, line numbers
/// included, as the native reader's.
#[tokio::test(start_paused = true)]
async fn csv_structure_at_any_position_is_split_as_the_native_reader_splits_it() {
    let text = String::from_utf8(fixture_log()).unwrap();
    let mut lines = text.lines();
    let mut log = format!("{}\n", lines.next().unwrap());
    let first = lines.next().unwrap();
    let inner = first.strip_prefix('"').and_then(|l| l.strip_suffix('"')).unwrap();
    let template: Vec<String> = inner.split("\",\"").map(str::to_string).collect();
    assert_eq!(template.len(), 17);
    let mut n = 0;
    let mut row = |agent: &str, crlf: bool| {
        let mut fields: Vec<String> = template.iter().map(|f| format!("\"{f}\"")).collect();
        fields[12] = format!("\"{agent}\"");
        fields[13] = format!("\"csv-{n}\"");
        if n % 2 == 1 {
            // Unquoted numbers, and an unquoted last field: its end is the line end.
            fields[6] = template[6].clone();
            fields[16] = template[16].clone();
        }
        n += 1;
        log.push_str(&fields.join(","));
        log.push_str(if crlf { "\r\n" } else { "\n" });
    };
    for len in 0..=40 {
        row(&"a".repeat(len), len % 2 == 1);
        for at in 0..len {
            for inner in [",", "\n", "\r\n", "\"\""] {
                let mut agent = "b".repeat(len);
                agent.replace_range(at..=at, inner);
                row(&agent, at % 3 == 0);
            }
        }
    }
    // The last record ends the object with an unquoted field and CRLF: found in the search's
    // last, partial block.
    row("end", true);
    let log = log.into_bytes();
    let expected = native_ndjson(&log);
    assert_eq!(expected.iter().filter(|&&b| b == b'\n').count(), 41 + 4 * (40 * 41 / 2) + 1);
    let (up, google) = google_with(log);
    let r = classified(&up, "classified").handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_eq!((r.status, &r.json()["outcome"]), (200, &json!("loaded")), "{}", r.json());
    let uploads = google.uploads();
    let [(_, ndjson)] = &uploads[..] else { panic!("{uploads:?}") };
    assert_eq!(ndjson, &expected, "split, unescaped and numbered as natively");
}

#[tokio::test(start_paused = true)]
async fn the_component_uploads_exactly_what_the_core_classifies() {
    let log = fixture_log();
    let (up, google) = google_with(log.clone());
    let r = classified(&up, "classified").handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    let body = r.json();
    assert_eq!((r.status, &body["outcome"]), (200, &json!("loaded")), "{body}");
    let uploads = google.uploads();
    let [(job_id, ndjson)] = &uploads[..] else { panic!("{uploads:?}") };
    assert_eq!(ndjson, &native_ndjson(&log), "the component's events are the core's, byte for byte");
    let events = ndjson.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(body["rows"], events);
    assert_eq!(body["jobId"], json!(job_id));
    assert!(job_id.starts_with("gcr_usage_events_accessLog_usage_2024_03_11_14") && *job_id != events_job_id());
    assert_eq!(body["destination"], "demo-project:storageanalysis.registry_events");
    assert_eq!(
        body["counts"],
        json!({"bytes": log.len(), "records": events, "events": events, "malformed": 0, "duplicates": 0, "invalidUtf8": 0})
    );
    // Probe, open the session, download the pinned generation, one last chunk.
    let calls: Vec<String> = r.run.outbound.iter().map(|o| format!("{} {}", o.method, o.path)).collect();
    assert_eq!(
        calls,
        [
            format!("GET {INSERT_PATH}/{job_id}"),
            format!("POST /upload{INSERT_PATH}"),
            format!("GET /download/storage/v1/b/{BUCKET}/o/{USAGE_NAME}"),
            format!("PUT /upload{INSERT_PATH}"),
        ]
    );
    assert_eq!(r.run.outbound[2].query_param("generation"), Some(USAGE_GEN.to_string().as_str()));
    assert_eq!(
        r.run.outbound[3].header("content-range"),
        Some(format!("bytes 0-{}/{}", ndjson.len() - 1, ndjson.len()).as_str())
    );
    let job = r.run.outbound[1].body_json();
    assert_eq!(job["configuration"]["load"]["sourceFormat"], "NEWLINE_DELIMITED_JSON");
    assert_eq!(job["configuration"]["load"]["timePartitioning"]["field"], "event_time");
    let line = log_line(&r);
    assert_eq!((&line["severity"], &line["counts"]["events"]), (&json!("INFO"), &json!(events)));

    // Every redelivery: one jobs.get, nothing downloaded, nothing loaded twice.
    for instance in 1..=3 {
        // Another instance (own randomness) each time, as redeliveries land in production.
        let again = classified(&up, "classified")
            .seed(instance)
            .handle(fixture_request("cloudevent-binary.json"))
            .await
            .unwrap();
        assert_eq!(
            (again.status, &again.json()["outcome"], &again.json()["rows"]),
            (200, &json!("duplicate"), &json!(events))
        );
        assert_eq!(again.run.outbound.len(), 1);
    }
    assert_eq!(google.uploads().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn memory_stays_flat_however_large_the_log() {
    let mut peaks = Vec::new();
    // Both beyond the request-id window (16,384 rows, ~10 MB): from there on nothing grows.
    for megabytes in [12, 36] {
        let log = big_log(megabytes << 20);
        let (up, google) = google_with(log.clone());
        let r = classified(&up, "classified")
            .env("GCR_USAGE_UPLOAD_CHUNK_KIB", "256")
            .handle(fixture_request("cloudevent-binary.json"))
            .await
            .unwrap();
        assert_eq!((r.status, &r.json()["outcome"]), (200, &json!("loaded")), "{}", r.json());
        let uploaded = &google.uploads()[0].1;
        assert_eq!(r.json()["counts"]["events"], uploaded.iter().filter(|&&b| b == b'\n').count());
        let chunks = r.run.outbound.iter().filter(|o| o.method == http::Method::PUT).count();
        assert_eq!(chunks, uploaded.len().div_ceil(256 << 10));
        peaks.push((megabytes, r.run.peak_memory, log.len()));
    }
    let (small, large) = (peaks[0].1, peaks[1].1);
    // 3× the input, the same memory: nothing in the component holds the whole object.
    assert!(large <= small + (64 << 10), "peak linear memory grew with the log: {peaks:?}");
    assert!(large < 8 << 20, "{peaks:?}");
}

/// wasmtime-wasi-http's outgoing body reports its stream `closed` as soon as the receiver has
/// taken `Content-Length` bytes (hyper drops the body then; the fake reads the same way). A
/// multi-MiB chunk fills the body channel, so the guest waits on it and finds it closed after
/// its last write: that is a body fully written, not a failure to retry (issue 9).
#[tokio::test(start_paused = true)]
async fn a_body_taken_whole_at_its_content_length_is_sent_once() {
    let log = big_log(12 << 20);
    let (up, google) = google_with(log.clone());
    // The default 4 MiB chunks: each written in 1 MiB host writes, the channel full at the end.
    let r = classified(&up, "classified").handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    let body = r.json();
    assert_eq!((r.status, &body["outcome"]), (200, &json!("loaded")), "{body}");
    assert!(body.get("retries").is_none(), "a delivered body was retried: {body}");
    let uploaded = &google.uploads()[0].1;
    let chunks = r.run.outbound.iter().filter(|o| o.method == http::Method::PUT).count();
    assert_eq!(chunks, uploaded.len().div_ceil(4 << 20), "each chunk sent once");
}

/// A server that answers before it has read a body (an early 503 here) stops taking the body:
/// the guest's stream closes part-way through a 4 MiB chunk. The answer, not the broken write,
/// is what happened, and the retry says so.
#[tokio::test(start_paused = true)]
async fn an_answer_before_the_body_was_taken_is_the_answer() {
    let log = big_log(12 << 20);
    let up = FakeUpstream::new();
    let google = FakeGoogle::new();
    google.object(BUCKET, USAGE_NAME, USAGE_GEN, log);
    let busy =
        serde_json::json!({"error": {"code": 503, "message": "Backend busy", "errors": [{"reason": "backendError"}]}});
    up.route(
        Rule::new(Some(http::Method::PUT), prefix(format!("/upload/bigquery/v2/projects/{PROJECT}/jobs")))
            .replies([Reply::json(503, &busy).before_body(), google.reply()]),
    );
    google.install(&up);
    let r = classified(&up, "classified").handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    let body = r.json();
    assert_eq!((r.status, &body["outcome"]), (200, &json!("loaded")), "{body}");
    assert_eq!(body["retries"]["count"], 1, "{body}");
    let last = body["retries"]["last"].as_str().unwrap();
    assert!(last.contains("503") && last.contains("Backend busy"), "{last}");
    assert!(!last.contains("stream closed"), "the broken write hid the server's answer: {last}");
}

/// Both mode's answer is a scenario (`scenarios.rs`); what it leaves to this test is the
/// component's own two renderings of it: the log line and the typed export.
#[tokio::test(start_paused = true)]
async fn both_mode_speaks_for_both_parts_in_the_log_line_and_the_typed_export() {
    let (up, google) = google_with(fixture_log());
    let r = classified(&up, "both").handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_eq!((r.status, &r.json()["events"]["outcome"]), (200, &json!("loaded")), "{}", r.body_str());
    let message = log_line(&r)["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("loaded gs://demo-gcr-logs/") && message.contains("; events: loaded"), "{message}");

    let typed =
        classified(&up, "both").seed(1).call_load(object_ref(BUCKET, USAGE_NAME, Some(USAGE_GEN))).await.unwrap();
    let o = typed.result.unwrap();
    assert_eq!((o.kind, o.rows), (OutcomeKind::Duplicate, Some(14)));
    let events = o.events.unwrap().unwrap();
    assert_eq!((events.kind, events.rows), (OutcomeKind::Duplicate, Some(14)));
    assert!(o.counts.is_none(), "a duplicate reads nothing");
    assert_eq!(google.uploads().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_typed_export_reports_the_counts() {
    let (up, _google) = google_with(big_log(200 << 10));
    let r = classified(&up, "classified").call_load(object_ref(BUCKET, USAGE_NAME, Some(USAGE_GEN))).await.unwrap();
    let o = r.result.unwrap();
    let counts = o.counts.unwrap();
    assert_eq!((o.kind, o.rows), (OutcomeKind::Loaded, Some(counts.events)));
    assert_eq!(counts.records, counts.events);
    assert!(counts.events > 100 && o.events.is_none());
}

#[tokio::test(start_paused = true)]
async fn storage_logs_load_raw_in_classified_mode() {
    let up = loads(1);
    let r = classified(&up, "classified").handle(bare(BUCKET, STORAGE_NAME, Some(7))).await.unwrap();
    assert_eq!((r.status, &r.json()["destination"]), (200, &json!(STORAGE_DEST)));
    assert_eq!(r.run.outbound.len(), 1);
}
