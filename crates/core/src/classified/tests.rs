//! Classified loads driven natively against a small in-process Google: a Cloud Storage that
//! serves one object (with faults on request), and a BigQuery that keeps jobs and resumable
//! sessions the way the reference describes (308 + `Range`, the job created by the last chunk).

use std::collections::{HashMap, VecDeque};

use super::*;

use base64::Engine;
use serde_json::{Value, json};

use crate::config::Config;
use crate::contract::Answer;
use crate::outcome::OutcomeKind;
use crate::service::{ObjectResult, load_object};

const BUCKET: &str = "demo-gcr-logs";
const NAME: &str = "accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0";
const GENERATION: u64 = 1710169200123456;
const BQ: &str = "http://bq.test";
const GCS: &str = "http://gcs.test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    GetJob,
    Initiate,
    Download,
    Chunk,
    Status,
    Insert,
}

fn kind_of(request: &http::Request<Vec<u8>>) -> Kind {
    let path = request.uri().path();
    match (request.method().as_str(), path) {
        ("GET", p) if p.starts_with("/download/storage/") => Kind::Download,
        ("GET", _) => Kind::GetJob,
        ("POST", p) if p.starts_with("/upload/") => Kind::Initiate,
        ("POST", _) => Kind::Insert,
        ("PUT", _) if request.headers()["content-range"] == "bytes */*" => Kind::Status,
        ("PUT", _) => Kind::Chunk,
        other => panic!("unexpected request {other:?}"),
    }
}

/// What the fake does instead of its normal answer.
#[derive(Debug, Clone)]
enum Fault {
    Reply(u16, &'static str),
    Network,
    /// Persist the chunk, then lose the answer.
    PersistThenFail,
}

struct Google {
    object: Vec<u8>,
    /// `X-Goog-Hash` override (default: the object's true CRC32C and MD5-less).
    hash: Option<String>,
    content_length: Option<u64>,
    location: Option<String>,
    faults: VecDeque<(Kind, Fault)>,
    /// Every chunk fails on the network (a BigQuery upload outage).
    chunk_outage: bool,
    jobs: HashMap<String, Value>,
    /// Session id → (job id, bytes so far).
    sessions: HashMap<String, (String, Vec<u8>)>,
    next_session: u32,
    /// Every request: kind, URL, Content-Range, Authorization.
    log: Vec<(Kind, String, String, String)>,
    /// The body of each completed upload.
    uploads: Vec<Vec<u8>>,
    now_ms: u64,
    slept_ms: u64,
}

impl Google {
    fn new(object: impl Into<Vec<u8>>) -> Google {
        Google {
            object: object.into(),
            hash: None,
            content_length: None,
            location: None,
            faults: VecDeque::new(),
            chunk_outage: false,
            jobs: HashMap::new(),
            sessions: HashMap::new(),
            next_session: 0,
            log: Vec::new(),
            uploads: Vec::new(),
            now_ms: 1_000,
            slept_ms: 0,
        }
    }

    fn fault(mut self, kind: Kind, fault: Fault) -> Google {
        self.faults.push_back((kind, fault));
        self
    }

    fn kinds(&self) -> Vec<Kind> {
        self.log.iter().map(|l| l.0).collect()
    }

    fn ranges(&self) -> Vec<&str> {
        self.log.iter().filter(|l| matches!(l.0, Kind::Chunk | Kind::Status)).map(|l| l.2.as_str()).collect()
    }

    fn job(&self, job_id: &str, rows: usize) -> Value {
        json!({"jobReference": {"jobId": job_id}, "status": {"state": "DONE"},
               "statistics": {"load": {"outputRows": rows.to_string()}}})
    }

    fn answer(&mut self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, String> {
        let kind = kind_of(&request);
        let range = request.headers().get("content-range").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let auth = request.headers().get("authorization").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        self.log.push((kind, request.uri().to_string(), range.clone(), auth));
        let fault = match self.faults.front() {
            Some((k, _)) if *k == kind => self.faults.pop_front().map(|f| f.1),
            _ => None,
        };
        if self.chunk_outage && kind == Kind::Chunk {
            return Err("connection reset".into());
        }
        match fault {
            Some(Fault::Reply(status, body)) => return Ok(response(status, body.as_bytes().to_vec(), &[])),
            Some(Fault::Network) => return Err("connection reset".into()),
            Some(Fault::PersistThenFail) => {
                let _ = self.normal(kind, request, &range);
                return Err("connection reset after the body was sent".into());
            }
            None => {}
        }
        Ok(self.normal(kind, request, &range))
    }

    fn normal(&mut self, kind: Kind, request: http::Request<Vec<u8>>, range: &str) -> http::Response<Vec<u8>> {
        let uri = request.uri().to_string();
        match kind {
            Kind::GetJob => {
                let id = request.uri().path().rsplit('/').next().unwrap().to_string();
                match self.jobs.get(&id) {
                    Some(job) => response(200, job.to_string().into_bytes(), &[]),
                    None => response(
                        404,
                        br#"{"error":{"code":404,"message":"Not found: Job x","errors":[{"reason":"notFound"}]}}"#
                            .to_vec(),
                        &[],
                    ),
                }
            }
            Kind::Initiate => {
                let job: Value = serde_json::from_slice(request.body()).unwrap();
                let id = job["jobReference"]["jobId"].as_str().unwrap().to_string();
                self.next_session += 1;
                let session = self.next_session.to_string();
                self.sessions.insert(session.clone(), (id, Vec::new()));
                let location = self.location.clone().unwrap_or(format!(
                    "{BQ}/upload/bigquery/v2/projects/demo-project/jobs?uploadType=resumable&upload_id={session}"
                ));
                response(200, Vec::new(), &[("location", &location)])
            }
            Kind::Download => {
                let crc = super::super::storage::tests_support::crc32c(&self.object);
                let hash = self.hash.clone().unwrap_or(format!(
                    "crc32c={}",
                    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
                ));
                let length = self.content_length.unwrap_or(self.object.len() as u64).to_string();
                assert!(uri.contains(&format!("generation={GENERATION}")), "{uri}");
                response(200, self.object.clone(), &[("x-goog-hash", &hash), ("content-length", &length)])
            }
            Kind::Chunk | Kind::Status => {
                let session = uri.rsplit("upload_id=").next().unwrap().to_string();
                let (job_id, bytes) = self.sessions.get_mut(&session).expect("a known session");
                let spec = range.strip_prefix("bytes ").unwrap();
                let (span, total) = spec.split_once('/').unwrap();
                if span != "*" {
                    let (a, b) = span.split_once('-').unwrap();
                    let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
                    assert_eq!(a, bytes.len(), "chunks arrive in order from the persisted offset");
                    assert_eq!(b + 1 - a, request.body().len());
                    bytes.extend_from_slice(request.body());
                } else {
                    assert!(request.body().is_empty());
                }
                if total != "*" && total.parse::<usize>().unwrap() == bytes.len() {
                    let job_id = job_id.clone();
                    let body = bytes.clone();
                    if self.jobs.contains_key(&job_id) {
                        return response(409, br#"{"error":{"code":409,"message":"Already Exists: Job","errors":[{"reason":"duplicate"}]}}"#.to_vec(), &[]);
                    }
                    let rows = body.iter().filter(|&&b| b == b'\n').count();
                    let job = self.job(&job_id, rows);
                    self.jobs.insert(job_id, job.clone());
                    self.uploads.push(body);
                    return response(200, job.to_string().into_bytes(), &[]);
                }
                assert!(total == "*" || kind == Kind::Status || bytes.len() % (256 * 1024) == 0);
                let held = if bytes.is_empty() { String::new() } else { format!("bytes=0-{}", bytes.len() - 1) };
                let headers: Vec<(&str, &str)> = if held.is_empty() { vec![] } else { vec![("range", &held)] };
                response(308, Vec::new(), &headers)
            }
            Kind::Insert => panic!("classified loads never call jobs.insert"),
        }
    }
}

fn response(status: u16, body: Vec<u8>, headers: &[(&str, &str)]) -> http::Response<Vec<u8>> {
    let mut b = http::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body).unwrap()
}

impl Io for Google {
    fn send(&mut self, request: http::Request<Vec<u8>>, _timeout: Duration) -> Reply {
        self.now_ms += 20;
        match self.answer(request) {
            Ok(r) => Reply::Response(r),
            Err(e) => Reply::Failed(e),
        }
    }
    fn sleep(&mut self, d: Duration) {
        self.now_ms += d.as_millis() as u64;
        self.slept_ms += d.as_millis() as u64;
    }
    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
    fn unix_secs(&mut self) -> u64 {
        1_767_225_600 + self.now_ms / 1000
    }
    fn random_u64(&mut self) -> u64 {
        7
    }
}

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_env(|k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()).or_else(|| match k {
            "GCR_USAGE_BUCKETS" => Some(BUCKET.into()),
            "GCR_USAGE_PROJECT" => Some("demo-project".into()),
            "GCR_USAGE_AUTH" => Some("token".into()),
            "GCR_USAGE_TOKEN" => Some("ya29.secret".into()),
            "GCR_USAGE_MODE" => Some("classified".into()),
            "GCR_USAGE_UPLOAD_CHUNK_KIB" => Some("256".into()),
            "GCR_USAGE_BIGQUERY_ENDPOINT" => Some(BQ.into()),
            "GCR_USAGE_STORAGE_ENDPOINT" => Some(GCS.into()),
            _ => None,
        })
    })
    .unwrap()
}

fn object() -> ObjectRef {
    ObjectRef { bucket: BUCKET.into(), name: NAME.into(), generation: Some(GENERATION) }
}

fn fixture() -> Vec<u8> {
    std::fs::read(format!("{}/../../fixtures/logs/{NAME}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The fixture's data rows repeated with fresh request ids until the log is about `bytes` long.
fn big_log(bytes: usize) -> (Vec<u8>, usize) {
    let text = String::from_utf8(fixture()).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let mut out = format!("{header}\n");
    let mut n = 0;
    while out.len() < bytes {
        let row = rows[n % rows.len()];
        // The request id is the 14th quoted field; make it unique per copy.
        let fields: Vec<&str> = row.split("\",\"").collect();
        let mut fields: Vec<String> = fields.into_iter().map(str::to_string).collect();
        fields[13] = format!("{}-{n}", fields[13]);
        out.push_str(&fields.join("\",\""));
        out.push('\n');
        n += 1;
    }
    (out.into_bytes(), n)
}

fn run(google: &mut Google, vars: &[(&str, &str)]) -> ObjectResult {
    load_object(Ok(config(vars)), object(), google, &mut Default::default())
}

fn outcome(result: &ObjectResult) -> &crate::Outcome {
    result.load.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_large_log_streams_through_256_kib_chunks_into_one_job() {
    let (log, rows) = big_log(3 << 20);
    let mut google = Google::new(log.clone());
    let result = run(&mut google, &[]);
    let o = outcome(&result);
    assert_eq!(o.outcome, OutcomeKind::Loaded, "{o:?}");
    assert_eq!(o.rows, Some(rows as u64));
    let counts = o.counts.as_ref().unwrap();
    assert_eq!((counts.records, counts.events, counts.malformed, counts.duplicates), (rows as u64, rows as u64, 0, 0));
    assert_eq!(counts.bytes, log.len() as u64);
    assert!(o.job_id.as_ref().unwrap().starts_with("gcr_usage_events_accessLog_usage_2024"));
    assert_eq!(o.destination.as_deref(), Some("demo-project:storageanalysis.registry_events"));

    // Probe (404), open the session, download, then chunks of exactly 256 KiB and a last one.
    let kinds = google.kinds();
    assert_eq!(kinds[..3], [Kind::GetJob, Kind::Initiate, Kind::Download]);
    assert!(kinds[3..].iter().all(|k| *k == Kind::Chunk));
    let ranges = google.ranges();
    let upload = &google.uploads[0];
    for (i, range) in ranges[..ranges.len() - 1].iter().enumerate() {
        assert_eq!(*range, format!("bytes {}-{}/*", i * 262_144, (i + 1) * 262_144 - 1));
    }
    assert!(ranges.last().unwrap().ends_with(&format!("/{}", upload.len())));
    assert!(ranges.len() > 5, "{ranges:?}");
    // The token goes to BigQuery and Cloud Storage alike.
    assert!(google.log.iter().all(|l| l.3 == "Bearer ya29.secret"));

    // Every line is one event with exactly the table's columns, in order.
    let text = std::str::from_utf8(upload).unwrap();
    assert_eq!(text.lines().count(), rows);
    for line in text.lines().take(50) {
        let event: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        let keys: Vec<&str> = event.keys().map(String::as_str).collect();
        let mut expected: Vec<&str> = crate::schema::EVENTS.iter().map(|f| f.name).collect();
        expected.sort_unstable();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected);
        assert_eq!(event["source_object"], NAME);
        assert_eq!(event["source_generation"], GENERATION);
    }
}

#[test]
fn events_serialise_in_the_schema_order() {
    let log = fixture();
    let mut reader = crate::usage::UsageLogReader::new(&log[..]);
    let mut row = UsageRow::default();
    assert!(reader.read_row(&mut row).unwrap());
    let line = serde_json::to_string(&classify(&row, &object())).unwrap();
    let names: Vec<&str> = crate::schema::EVENTS.iter().map(|f| f.name).collect();
    let mut at = 0;
    for name in names {
        let key = format!("\"{name}\":");
        let found = line[at..].find(&key).unwrap_or_else(|| panic!("{name} missing or out of order in {line}"));
        at += found + key.len();
    }
}

#[test]
fn a_redelivery_finds_the_job_and_downloads_nothing() {
    let mut google = Google::new(fixture());
    let first = run(&mut google, &[]);
    assert_eq!(outcome(&first).outcome, OutcomeKind::Loaded);
    google.log.clear();
    let again = run(&mut google, &[]);
    let o = outcome(&again);
    assert_eq!(o.outcome, OutcomeKind::Duplicate);
    assert_eq!(o.job_id, outcome(&first).job_id);
    assert_eq!(o.counts, None, "nothing was read");
    assert_eq!(google.kinds(), [Kind::GetJob]);
    assert_eq!(google.uploads.len(), 1);
}

#[test]
fn a_failed_earlier_attempt_is_followed_by_the_next_attempt() {
    let mut google = Google::new(fixture());
    let spec_id = {
        let first = run(&mut google, &[]);
        outcome(&first).job_id.clone().unwrap()
    };
    google.jobs.insert(
        spec_id.clone(),
        json!({"status": {"state": "DONE", "errorResult": {"reason": "invalid", "message": "bad"}}}),
    );
    google.log.clear();
    let result = run(&mut google, &[]);
    let o = outcome(&result);
    assert_eq!((o.outcome, o.job_id.clone()), (OutcomeKind::Loaded, Some(format!("{spec_id}_r2"))));
    assert_eq!(google.kinds()[..4], [Kind::GetJob, Kind::GetJob, Kind::Initiate, Kind::Download]);
}

#[test]
fn a_corrupted_download_loads_nothing() {
    let mut google = Google::new(fixture());
    google.hash = Some("crc32c=AAAAAA==".into());
    let result = run(&mut google, &[("GCR_USAGE_WAIT_SECONDS", "0")]);
    let error = result.load.unwrap_err();
    assert_eq!(error.kind(), "upstream-unavailable");
    assert!(error.message().contains("CRC32C") && error.message().contains("nothing was loaded"), "{error}");
    assert!(google.jobs.is_empty() && google.uploads.is_empty());
    assert!(google.ranges().iter().all(|r| r.ends_with("/*")), "no last chunk: {:?}", google.ranges());
}

#[test]
fn a_truncated_download_loads_nothing() {
    let mut google = Google::new(fixture());
    google.content_length = Some(google.object.len() as u64 + 100);
    let error = run(&mut google, &[("GCR_USAGE_WAIT_SECONDS", "0")]).load.unwrap_err();
    assert!(error.message().contains("the download ended after"), "{error}");
    assert!(google.jobs.is_empty());
}

#[test]
fn a_transient_download_failure_retries_the_whole_upload() {
    let mut google =
        Google::new(fixture()).fault(Kind::Initiate, Fault::Network).fault(Kind::Download, Fault::Reply(503, "busy"));
    let o = run(&mut google, &[]).load.unwrap();
    assert_eq!(o.outcome, OutcomeKind::Loaded);
    assert_eq!(
        google.kinds()[..7],
        [Kind::GetJob, Kind::Initiate, Kind::Initiate, Kind::Download, Kind::Initiate, Kind::Download, Kind::Chunk]
    );
    assert!(google.slept_ms >= 500);
}

#[test]
fn storage_refusals_name_the_object_and_the_fix() {
    let mut google = Google::new(fixture()).fault(Kind::Download, Fault::Reply(404, "No such object"));
    let e = run(&mut google, &[]).load.unwrap_err();
    assert_eq!(e.kind(), "upstream-rejected");
    assert!(e.message().contains(&format!("gs://{BUCKET}/{NAME} generation {GENERATION}")), "{e}");
    assert!(e.message().contains("deleted or replaced"), "{e}");
    let mut google = Google::new(fixture()).fault(
        Kind::Download,
        Fault::Reply(403, r#"{"error":{"code":403,"message":"denied","errors":[{"reason":"forbidden"}]}}"#),
    );
    let e = run(&mut google, &[]).load.unwrap_err();
    assert!(e.message().contains("roles/storage.objectViewer"), "{e}");
    assert!(google.jobs.is_empty());
}

#[test]
fn an_object_that_is_not_a_usage_log_is_invalid_input() {
    let mut google = Google::new(&b"\"bucket\",\"storage_byte_hours\"\n\"b\",\"1\"\n"[..]);
    let e = run(&mut google, &[]).load.unwrap_err();
    assert_eq!(e.kind(), "invalid-input");
    assert!(e.message().contains("not a usage log header"), "{e}");
}

#[test]
fn malformed_rows_and_duplicates_are_counted() {
    let text = String::from_utf8(fixture()).unwrap();
    let second_row = text.lines().nth(1).unwrap();
    let log = format!("{text}{second_row}\n\"1\",\"too\",\"few\"\n");
    let mut google = Google::new(log.into_bytes());
    let o = run(&mut google, &[]).load.unwrap();
    let counts = o.counts.unwrap();
    assert_eq!((counts.malformed, counts.duplicates), (1, 1));
    assert_eq!(counts.records, counts.events + 2);
    assert_eq!(o.rows, Some(counts.events));
    assert_eq!(counts.first_malformed.len(), 1);
    let answer = Answer::from_object_result(
        &ObjectResult { load: Ok(crate::Outcome { counts: Some(counts), ..o }), events: None },
        &object(),
    );
    assert_eq!(answer.body["counts"]["firstMalformed"][0]["reason"]["kind"], "column_count");
}

#[test]
fn a_header_only_log_loads_zero_events() {
    let mut google = Google::new(&b"\"time_micros\",\"c_ip\",\"c_ip_type\",\"c_ip_region\",\"cs_method\",\"cs_uri\",\"sc_status\",\"cs_bytes\",\"sc_bytes\",\"time_taken_micros\",\"cs_host\",\"cs_referer\",\"cs_user_agent\",\"s_request_id\",\"cs_operation\",\"cs_bucket\",\"cs_object\"\n"[..]);
    let o = run(&mut google, &[]).load.unwrap();
    assert_eq!((o.outcome, o.rows), (OutcomeKind::Loaded, Some(0)));
    assert_eq!(google.ranges(), ["bytes */0"]);
}

#[test]
fn a_failed_chunk_is_resumed_from_what_the_session_holds() {
    let (log, rows) = big_log(700 << 10);
    // One chunk answered 503, one whose answer is lost although it was stored.
    let mut google = Google::new(log)
        .fault(Kind::Chunk, Fault::Reply(503, "unavailable"))
        .fault(Kind::Chunk, Fault::Reply(503, "unavailable"));
    google.faults.push_back((Kind::Chunk, Fault::PersistThenFail));
    let o = run(&mut google, &[]).load.unwrap();
    assert_eq!((o.outcome, o.rows), (OutcomeKind::Loaded, Some(rows as u64)));
    let ranges = google.ranges();
    assert_eq!(
        ranges[..6],
        ["bytes 0-262143/*", "bytes */*", "bytes 0-262143/*", "bytes */*", "bytes 0-262143/*", "bytes */*"]
    );
    // The stored-but-unanswered chunk is not sent again: the next range starts after it.
    assert!(ranges[6].starts_with("bytes 262144-"), "{ranges:?}");
    assert_eq!(google.uploads[0].iter().filter(|&&b| b == b'\n').count(), rows);
    // The three chunk failures are the event's retries, as the session's own would be.
    let retries = o.retries.expect("chunk retries reach the outcome");
    assert_eq!(retries.count, 3);
    assert!(retries.last.starts_with("BigQuery upload of bytes 0-262143: connection reset"), "{}", retries.last);
}

#[test]
fn chunk_retries_are_never_slept_past_the_events_budget() {
    let (log, _) = big_log(300 << 10);
    let mut google = Google::new(log);
    google.chunk_outage = true;
    // GCR_USAGE_WAIT_SECONDS=0: the 10 s minimum budget, starting at the fake's 1 000 ms.
    let e = run(&mut google, &[("GCR_USAGE_WAIT_SECONDS", "0")]).load.unwrap_err();
    assert_eq!(e.kind(), "upstream-unavailable");
    let budget_end = 1_000 + 10_000;
    // Every request was started inside the budget (each takes the fake 20 ms).
    assert!(
        google.now_ms <= budget_end + 20,
        "the upload ran until {} ms, past the budget ending at {budget_end}",
        google.now_ms
    );
}

#[test]
fn chunks_failing_every_try_give_up_and_retry_the_upload() {
    let (log, _) = big_log(300 << 10);
    let mut google = Google::new(log);
    google.chunk_outage = true;
    // The default 30 s budget: room for the whole upload again after the first one's four
    // chunk tries (one backoff for the event: 1, 2, 4 s between them, then 8 s).
    let e = run(&mut google, &[]).load.unwrap_err();
    assert_eq!(e.kind(), "upstream-unavailable");
    assert!(e.message().contains("upload"), "{e}");
    assert!(google.now_ms <= 1_000 + 30_000 + 20, "past the budget: {} ms", google.now_ms);
    let kinds = google.kinds();
    // The first upload: four tries of its first chunk with a status query between them.
    assert_eq!(
        kinds[..10],
        [
            Kind::GetJob,
            Kind::Initiate,
            Kind::Download,
            Kind::Chunk,
            Kind::Status,
            Kind::Chunk,
            Kind::Status,
            Kind::Chunk,
            Kind::Status,
            Kind::Chunk
        ]
    );
    assert!(kinds[10..].starts_with(&[Kind::Initiate, Kind::Download]), "then the whole upload again: {kinds:?}");
    assert!(google.jobs.is_empty());
}

#[test]
fn a_session_url_elsewhere_is_refused_before_any_chunk() {
    let mut google = Google::new(fixture());
    google.location = Some("https://attacker.example/upload?upload_id=1".into());
    let e = run(&mut google, &[]).load.unwrap_err();
    assert_eq!(e.kind(), "upstream-rejected");
    assert!(e.message().contains("refusing to send the token elsewhere"), "{e}");
    assert_eq!(google.kinds(), [Kind::GetJob, Kind::Initiate]);
}

#[test]
fn a_409_at_the_last_chunk_is_a_concurrent_delivery_and_reads_the_job() {
    let mut google = Google::new(fixture());
    let id = {
        let mut first = Google::new(fixture());
        outcome(&run(&mut first, &[])).job_id.clone().unwrap()
    };
    // The other delivery finishes between our probe and our last chunk.
    google.faults.push_back((Kind::GetJob, Fault::Reply(404, "{}")));
    google.jobs.insert(id.clone(), google.job(&id, 31));
    let o = run(&mut google, &[]).load.unwrap();
    assert_eq!((o.outcome, o.rows), (OutcomeKind::Duplicate, Some(31)));
    assert_eq!(*google.kinds().last().unwrap(), Kind::GetJob);
    assert!(o.counts.is_some(), "this delivery did read the object");
}

#[test]
fn bigquery_refusing_the_session_is_rejected_with_its_message() {
    let denied = r#"{"error":{"code":403,"message":"Access Denied: Table registry_events","errors":[{"reason":"accessDenied"}]}}"#;
    let mut google = Google::new(fixture()).fault(Kind::Initiate, Fault::Reply(403, denied));
    let e = run(&mut google, &[]).load.unwrap_err();
    assert_eq!(e.kind(), "upstream-rejected");
    assert!(e.message().contains("BigQuery upload (jobs.insert) refused job gcr_usage_events_"), "{e}");
    assert!(e.message().contains("Access Denied: Table registry_events"), "{e}");
    assert!(!google.kinds().contains(&Kind::Download), "nothing downloaded for a session that never opened");
}

#[test]
fn both_mode_loads_raw_then_events_and_answers_for_both() {
    let mut google = Google::new(fixture()).fault(
        Kind::Insert,
        Fault::Reply(200, r#"{"status":{"state":"DONE"},"statistics":{"load":{"outputRows":"31"}}}"#),
    );
    let result = run(&mut google, &[("GCR_USAGE_MODE", "both")]);
    let raw = result.load.as_ref().unwrap();
    let events = result.events.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(
        (raw.outcome, raw.destination.as_deref()),
        (OutcomeKind::Loaded, Some("demo-project:storageanalysis.usage"))
    );
    assert_eq!((events.outcome, events.rows), (OutcomeKind::Loaded, Some(14)));
    assert_eq!(google.kinds()[..2], [Kind::Insert, Kind::GetJob]);
    let answer = Answer::from_object_result(&result, &object());
    assert_eq!(
        (answer.status, &answer.body["outcome"], &answer.body["events"]["outcome"]),
        (200, &json!("loaded"), &json!("loaded"))
    );
    assert!(answer.message.contains("; events: loaded"), "{}", answer.message);

    // The graver answer wins: events failing with 503 makes the event be redelivered.
    let mut google = Google::new(fixture()).fault(
        Kind::Insert,
        Fault::Reply(200, r#"{"status":{"state":"DONE"},"statistics":{"load":{"outputRows":"31"}}}"#),
    );
    google.hash = Some("crc32c=AAAAAA==".into());
    let result = run(&mut google, &[("GCR_USAGE_MODE", "both"), ("GCR_USAGE_WAIT_SECONDS", "0")]);
    let answer = Answer::from_object_result(&result, &object());
    assert_eq!(
        (answer.status, &answer.body["outcome"], &answer.body["events"]["error"]),
        (503, &json!("loaded"), &json!("upstream-unavailable"))
    );
    assert_eq!(answer.severity, crate::contract::Severity::Error);
}

mod properties {
    //! The classified upload under random faults (issue 9, item 3, for uploads): 503s,
    //! connections reset before an answer, and chunks stored whose answer was lost (the 308 /
    //! `Range` path), on every kind of request. Whatever the faults, the load ends inside its
    //! budget, the session sends chunks only from the offset the server holds (the fake asserts
    //! it), no object makes two jobs, the events uploaded are the core's byte for byte, and
    //! every fault it met is counted in `retries`.

    use proptest::prelude::*;

    use super::*;

    fn fault() -> impl Strategy<Value = (Kind, Fault)> {
        let kind = prop_oneof![
            Just(Kind::GetJob),
            Just(Kind::Initiate),
            Just(Kind::Download),
            Just(Kind::Chunk),
            Just(Kind::Status)
        ];
        let fault = prop_oneof![
            Just(Fault::Reply(503, r#"{"error":{"code":503,"message":"busy","errors":[{"reason":"backendError"}]}}"#)),
            Just(Fault::Network),
            Just(Fault::PersistThenFail),
        ];
        (kind, fault)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

        #[test]
        fn uploads_keep_the_promises_whatever_fails(
            faults in prop::collection::vec(fault(), 0..10),
            large in any::<bool>(),
        ) {
            let log = if large { big_log(600 << 10).0 } else { fixture() };
            let mut google = Google::new(log.clone());
            let offered = faults.len();
            for f in faults {
                google.faults.push_back(f);
            }
            let result = run(&mut google, &[("GCR_USAGE_UPLOAD_CHUNK_KIB", "256")]);
            let consumed = (offered - google.faults.len()) as u32;
            prop_assert!(google.now_ms <= 1_000 + 30_000 + 20, "ran past the budget: {} ms", google.now_ms);
            prop_assert!(google.uploads.len() <= 1, "one object, one job: {} uploads", google.uploads.len());
            match &result.load {
                Ok(o) => {
                    prop_assert!(matches!(o.outcome, OutcomeKind::Loaded | OutcomeKind::Duplicate), "{o:?}");
                    let expected: Vec<u8> = {
                        let object = object();
                        let options = crate::usage::ReaderOptions {
                            dedup: crate::usage::Dedup::Window(DEDUP_WINDOW),
                            malformed_samples: 5,
                        };
                        let mut reader = crate::usage::UsageLogReader::with_options(&log[..], options);
                        let mut row = crate::usage::UsageRow::default();
                        let mut out = Vec::new();
                        while reader.read_row(&mut row).unwrap() {
                            crate::usage::ndjson::write_line(&crate::usage::classify(&row, &object), &mut out);
                        }
                        out
                    };
                    prop_assert!(google.uploads[0] == expected, "the uploaded events are not the core's");
                    let counted = o.retries.as_ref().map_or(0, |r| r.count);
                    prop_assert_eq!(counted, consumed, "every fault met is counted");
                }
                Err(e) => prop_assert_eq!(e.kind(), "upstream-unavailable", "{}", e),
            }
        }
    }
}
