//! Shared fixtures and assertions for the loader tests: the fixed configuration, the fixture
//! events, canned upstreams, the job-id rule (re-derived here from the README, independently of
//! the core), and the checks every answer must pass (status, JSON body, the one log line).

#![allow(dead_code)]

use std::time::Duration;

use gcr_usage_host_test::{
    FakeGoogle, FakeUpstream, Harness, HarnessResponse, RecordedRequest, RunInfo, TestRequest, google, workspace_root,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const PROJECT: &str = "demo-project";
pub const BUCKET: &str = "demo-gcr-logs";
pub const USAGE_DEST: &str = "demo-project:storageanalysis.usage";
pub const STORAGE_DEST: &str = "demo-project:storageanalysis.storage";
pub const BQ: &str = "https://bigquery.googleapis.com";
pub const INSERT_PATH: &str = "/bigquery/v2/projects/demo-project/jobs";
pub const TOKEN: &str = "ya29.test-token";

/// The object of `cloudevent-binary.json`.
pub const USAGE_NAME: &str = "accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0";
pub const USAGE_GEN: u64 = 1_710_170_135_482_117;
/// The shared fake of Google holding `log` as the event's object (`USAGE_NAME`, `USAGE_GEN`),
/// installed in front of a fresh fake upstream.
pub fn google_with(log: impl Into<Vec<u8>>) -> (FakeUpstream, FakeGoogle) {
    let up = FakeUpstream::new();
    let google = FakeGoogle::new();
    google.object(BUCKET, USAGE_NAME, USAGE_GEN, log);
    google.install(&up);
    (up, google)
}

/// A storage log of `fixtures/logs/`.
pub const STORAGE_NAME: &str = "gcr-usage.eu.artifacts.demo-project.appspot.com_storage_2024_03_11_07_00_00_0655cc_v0";

/// Every fixture event file with the object it names, its generation and the shape the loader
/// must report for it.
pub const FIXTURES: [(&str, &str, u64, &str); 5] = [
    ("cloudevent-binary.json", USAGE_NAME, USAGE_GEN, "cloudevent-binary"),
    (
        "cloudevent-structured.json",
        "accessLog_usage_2024_03_11_14_00_00_01cbe51e4b703105e9_v0",
        1_710_170_141_907_350,
        "cloudevent-structured",
    ),
    (
        "pubsub-push.json",
        "us.artifacts.demo-project.appspot.com_usage_2024_03_11_15_00_00_1702e6_v0",
        1_710_173_722_604_021,
        "pubsub-push",
    ),
    (
        "legacy-background.json",
        "gcr-usage.eu.artifacts.demo-project.appspot.com_usage_2024_03_11_15_00_00_0b6e2f_v0",
        1_710_173_748_010_552,
        "legacy-function",
    ),
    (
        "bare-object.json",
        "accessLog_usage_2024_03_11_16_00_00_02cbe51e4b703105e9_v0",
        1_710_173_761_230_871,
        "object-resource",
    ),
];

/// The configuration most tests run with: explicit project, one allowed bucket, no credentials.
pub fn harness(upstream: &FakeUpstream) -> Harness {
    Harness::new()
        .env("GCR_USAGE_PROJECT", PROJECT)
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .env("GCR_USAGE_AUTH", "none")
        .upstream(upstream.clone())
}

/// An upstream whose `jobs.insert` answers DONE with `rows` rows.
pub fn loads(rows: u64) -> FakeUpstream {
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(google::job_done_echo(rows)));
    up
}

/// An upstream where the job already exists (409) and `jobs.get` finds it DONE with `rows`.
pub fn duplicates(rows: u64) -> FakeUpstream {
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(google::duplicate_job_echo()))
        .route(google::jobs_get_rule(PROJECT).reply(google::job_done_echo(rows)));
    up
}

pub fn fixture(file: &str) -> Value {
    let path = workspace_root().join("fixtures/events").join(file);
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture event as its sender would POST it (see fixtures/events/README.md).
pub fn fixture_request(file: &str) -> TestRequest {
    let v = fixture(file);
    match file {
        "cloudevent-binary.json" => with_headers(TestRequest::post("/", v["body"].to_string()), &v["headers"]),
        "cloudevent-structured.json" => {
            TestRequest::post("/", v.to_string()).header("content-type", "application/cloudevents+json")
        }
        _ => TestRequest::post_json("/", &v),
    }
}

/// A binary-mode CloudEvent with the fixture's headers, this `ce-type` and body.
pub fn binary_event(ce_type: &str, body: &Value) -> TestRequest {
    let mut headers = fixture("cloudevent-binary.json")["headers"].clone();
    headers["ce-type"] = ce_type.into();
    with_headers(TestRequest::post("/", body.to_string()), &headers)
}

pub fn with_headers(mut r: TestRequest, headers: &Value) -> TestRequest {
    for (k, v) in headers.as_object().expect("headers object") {
        r = r.header(k, v.as_str().expect("header value"));
    }
    r
}

/// A bare object resource event.
pub fn bare(bucket: &str, name: &str, generation: Option<u64>) -> TestRequest {
    TestRequest::post_json("/", &object(bucket, name, generation))
}

pub fn object(bucket: &str, name: &str, generation: Option<u64>) -> Value {
    let mut o = json!({"kind": "storage#object", "bucket": bucket, "name": name});
    if let Some(g) = generation {
        o["generation"] = g.to_string().into();
    }
    o
}

/// `{"bucket", "name", "generation"}` as answers and log lines carry it.
pub fn object_json(bucket: &str, name: &str, generation: Option<u64>) -> Value {
    let mut o = json!({"bucket": bucket, "name": name});
    if let Some(g) = generation {
        o["generation"] = g.to_string().into();
    }
    o
}

/// The job id rule of the README ("Exactly once"), written out independently of the core:
/// `gcr_usage_<last 180 chars of the name, [A-Za-z0-9_-] kept, others _>_g<generation|none>_`
/// `<16 hex of SHA-256("gcr-usage load v1"\0 bucket\0 name\0 generation\0 destination\0)>[_rN]`.
pub fn expected_job_id(bucket: &str, name: &str, generation: Option<u64>, destination: &str, attempt: u32) -> String {
    let generation_text = generation.map(|g| g.to_string()).unwrap_or_default();
    let mut hasher = Sha256::new();
    for part in ["gcr-usage load v1", bucket, name, &generation_text, destination] {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    let hash: String = hasher.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
    let chars: Vec<char> = name.chars().collect();
    let readable: String = chars[chars.len().saturating_sub(180)..]
        .iter()
        .map(|&c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect();
    let generation = generation.map_or("none".to_string(), |g| g.to_string());
    let retry = if attempt > 1 { format!("_r{attempt}") } else { String::new() };
    format!("gcr_usage_{readable}_g{generation}_{hash}{retry}")
}

/// BigQuery's rule for job ids.
#[track_caller]
pub fn assert_valid_job_id(id: &str) {
    assert!(
        !id.is_empty() && id.len() <= 1024 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "invalid BigQuery job id {id:?}"
    );
}

/// The single JSON log line of a call, which must carry the answer's fields.
#[track_caller]
pub fn log_line(r: &HarnessResponse) -> Value {
    let line = only_log_line(&r.run);
    assert_eq!(line["httpStatus"], r.status, "{line}");
    for (k, v) in r.json().as_object().expect("answer is a JSON object") {
        assert_eq!(&line[k], v, "log line field {k} differs from the answer: {line}");
    }
    assert!(line["message"].as_str().is_some_and(|m| !m.is_empty()), "{line}");
    assert!(line["durationMs"].is_u64(), "{line}");
    line
}

#[track_caller]
pub fn only_log_line(run: &RunInfo) -> Value {
    let lines = run.log_lines();
    assert_eq!(lines.len(), 1, "exactly one log line per event, got {lines:?}");
    assert!(run.stderr.is_empty(), "nothing on stderr: {}", String::from_utf8_lossy(&run.stderr));
    lines.into_iter().next().unwrap()
}

/// Asserts an error answer: status, `outcome: error`, the `error` kind, a `reason` starting with
/// `reason_prefix` (the field or variable named first), the log line's severity and shape.
#[track_caller]
pub fn assert_error(r: &HarnessResponse, status: u16, error: &str, reason_prefix: &str) -> Value {
    let body = r.json();
    assert_eq!(
        (r.status, body["outcome"].as_str(), body["error"].as_str()),
        (status, Some("error"), Some(error)),
        "{body}"
    );
    let reason = body["reason"].as_str().unwrap_or_else(|| panic!("no reason: {body}"));
    assert!(reason.starts_with(reason_prefix), "reason {reason:?} should start with {reason_prefix:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let line = log_line(r);
    assert_eq!(line["severity"], if status >= 500 { "ERROR" } else { "WARNING" }, "{line}");
    body
}

/// Asserts a 200 `loaded` answer for `name` in the usage table, with nothing retried, and
/// returns it.
#[track_caller]
pub fn assert_loaded(r: &HarnessResponse, name: &str, generation: Option<u64>, rows: u64) -> Value {
    assert_loaded_after(r, name, generation, rows, 0)
}

/// [`assert_loaded`] for a load that got past `retries` transient failures: the answer and the
/// log line say how many, and what failed last (returned under `"retries"`).
#[track_caller]
pub fn assert_loaded_after(r: &HarnessResponse, name: &str, generation: Option<u64>, rows: u64, retries: u64) -> Value {
    let mut body = r.json();
    let reported = body.as_object_mut().expect("an object").remove("retries");
    assert_eq!(reported.as_ref().map(|r| r["count"].as_u64().expect("a count")).unwrap_or(0), retries, "{reported:?}");
    assert_eq!(log_line(r)["retries"], reported.clone().unwrap_or(Value::Null), "the log line says it too");
    let job_id = expected_job_id(BUCKET, name, generation, USAGE_DEST, 1);
    assert_eq!(
        body,
        json!({
            "outcome": "loaded",
            "object": object_json(BUCKET, name, generation),
            "logKind": "usage",
            "destination": USAGE_DEST,
            "jobId": job_id,
            "rows": rows,
        }),
        "status {}",
        r.status
    );
    assert_eq!(r.status, 200);
    let line = log_line(r);
    assert_eq!(line["severity"], "INFO");
    if let Some(reported) = reported {
        body["retries"] = reported;
    }
    body
}

/// The `jobs.insert` requests of a call.
pub fn inserts(run: &RunInfo) -> Vec<&RecordedRequest> {
    run.outbound.iter().filter(|r| r.method == http::Method::POST).collect()
}

/// Checks one `jobs.insert`: URL, content type, and the job it describes.
#[track_caller]
pub fn assert_insert(req: &RecordedRequest, source_uri: &str, table: &str, job_id: &str) -> Value {
    assert_eq!(req.method, http::Method::POST);
    assert_eq!(req.url, format!("{BQ}{INSERT_PATH}?prettyPrint=false"));
    assert_eq!(req.header("content-type"), Some("application/json; charset=UTF-8"));
    assert_eq!(req.header("content-length"), Some(req.body.len().to_string().as_str()), "explicit, exact length");
    let body = req.body_json();
    assert_eq!(body["jobReference"], json!({"projectId": PROJECT, "jobId": job_id, "location": "US"}));
    let load = &body["configuration"]["load"];
    assert_eq!(load["sourceUris"], json!([source_uri]));
    assert_eq!(
        load["destinationTable"],
        json!({"projectId": PROJECT, "datasetId": "storageanalysis", "tableId": table})
    );
    body
}

/// The time between consecutive outbound requests.
pub fn gaps(run: &RunInfo) -> Vec<Duration> {
    run.outbound.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[track_caller]
pub fn assert_between(d: Duration, lo_ms: u64, hi_ms: u64) {
    // Tokio's timer rounds a sleep up to the next millisecond.
    let (lo, hi) = (Duration::from_millis(lo_ms), Duration::from_millis(hi_ms + 1));
    assert!(d >= lo && d <= hi, "{d:?} not within [{lo:?}, {hi:?}]");
}
