//! Classified loads driven natively against the shared fake of Google
//! (`gcr_usage_fake_google`): what only a native run can see — the virtual clock against the
//! budget, the upload's bytes against the core's own writer, the fake's tampering with lengths —
//! and the random-fault property. The scenarios every host plays (redelivery, resumed chunks,
//! refusals, both mode, …) are written once in `gcr_usage_fake_google::scenario` and run by the
//! harness natively *and* in the component.

use super::*;

use gcr_usage_fake_google::logs::{BUCKET, USAGE_GENERATION as GENERATION, USAGE_NAME as NAME, fixture_log};
use gcr_usage_fake_google::{Endpoint, Fault, Google, Tampering};
use serde_json::Value;

use crate::config::Config;
use crate::contract::Answer;
use crate::outcome::OutcomeKind;
use crate::service::{ObjectResult, load_object};
use crate::usage::classify;

/// The shared fake with a virtual clock: every request costs 20 ms, sleeps cost what they say.
struct Fake {
    google: Google,
    now_ms: u64,
    slept_ms: u64,
}

impl Fake {
    fn new(log: impl Into<Vec<u8>>) -> Fake {
        let mut google = Google::new();
        google.object(BUCKET, NAME, GENERATION, log.into());
        Fake { google, now_ms: 1_000, slept_ms: 0 }
    }

    fn endpoints(&self) -> Vec<Endpoint> {
        self.google.seen().iter().map(|s| s.endpoint).collect()
    }
}

impl Io for Fake {
    fn send(&mut self, request: http::Request<Vec<u8>>, _timeout: Duration) -> Reply {
        self.now_ms += 20;
        match self.google.answer(&request).whole() {
            Ok(response) => Reply::Response(response.map(|body| body.to_vec())),
            Err(words) => Reply::Failed(words),
        }
    }
    /// Streams, so that a body broken off part-way fails a read, as it does in the component.
    fn open(&mut self, request: http::Request<Vec<u8>>, _timeout: Duration) -> Result<Streamed, NoAnswer> {
        self.now_ms += 20;
        let (head, body) = self.google.answer(&request).streamed().map_err(NoAnswer::Failed)?;
        Ok(Streamed { status: head.status.as_u16(), headers: head.headers, body: Box::new(body) })
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
            _ => None,
        })
    })
    .unwrap()
}

fn object() -> ObjectRef {
    ObjectRef { bucket: BUCKET.into(), name: NAME.into(), generation: Some(GENERATION) }
}

fn fixture() -> Vec<u8> {
    fixture_log()
}

fn big_log(bytes: usize) -> (Vec<u8>, usize) {
    gcr_usage_fake_google::logs::grown_log(bytes)
}

fn run(fake: &mut Fake, vars: &[(&str, &str)]) -> ObjectResult {
    load_object(Ok(config(vars)), object(), fake, &mut Default::default())
}

fn outcome(result: &ObjectResult) -> &crate::Outcome {
    result.load.as_ref().unwrap_or_else(|e| panic!("{e}"))
}

/// What the core's own reader, classifier and writer make of `log`.
fn core_ndjson(log: &[u8]) -> Vec<u8> {
    let object = object();
    let options =
        crate::usage::ReaderOptions { dedup: crate::usage::Dedup::Window(DEDUP_WINDOW), malformed_samples: 5 };
    let mut reader = crate::usage::UsageLogReader::with_options(log, options);
    let mut out = Vec::new();
    while let Some(row) = reader.next_row().unwrap() {
        crate::ndjson::write_line(&crate::usage::classify(&row, &object), &mut out);
    }
    out
}

#[test]
fn a_large_log_uploads_one_event_per_line_with_the_tables_columns() {
    let (log, rows) = big_log(3 << 20);
    let mut fake = Fake::new(log.clone());
    let result = run(&mut fake, &[]);
    let o = outcome(&result);
    assert_eq!((o.outcome, o.rows), (OutcomeKind::Loaded, Some(rows as u64)), "{o:?}");
    let counts = o.counts.as_ref().unwrap();
    assert_eq!((counts.records, counts.events, counts.malformed, counts.duplicates), (rows as u64, rows as u64, 0, 0));
    assert_eq!(counts.bytes, log.len() as u64);
    assert!(fake.google.seen().iter().all(|s| s.authorization.as_deref() == Some("Bearer ya29.secret")));
    assert!(fake.google.violations().is_empty(), "{:?}", fake.google.violations());

    let upload = &fake.google.uploads()[0].1;
    assert!(*upload == core_ndjson(&log), "the uploaded events are not the core's");
    let mut expected: Vec<&str> = crate::schema::EVENTS.iter().map(|f| f.name).collect();
    expected.sort_unstable();
    for line in std::str::from_utf8(upload).unwrap().lines().take(50) {
        let event: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
        let mut keys: Vec<&str> = event.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(
            (&event["source_object"], &event["source_generation"]),
            (&Value::from(NAME), &Value::from(GENERATION))
        );
    }
}

#[test]
fn events_serialise_in_the_schema_order() {
    let log = fixture();
    let mut reader = crate::usage::UsageLogReader::new(&log[..]);
    let row = reader.next_row().unwrap().expect("the fixture has rows");
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
fn a_truncated_download_loads_nothing() {
    let mut fake = Fake::new(fixture());
    let declared = fixture().len() as u64 + 100;
    fake.google.tamper(Tampering { content_length: Some(declared), ..Tampering::default() });
    let error = run(&mut fake, &[("GCR_USAGE_WAIT_SECONDS", "0")]).load.unwrap_err();
    assert!(error.message().contains("the download ended after"), "{error}");
    assert!(fake.google.job_ids().is_empty());
}

#[test]
fn a_download_broken_off_on_every_try_loads_nothing_and_says_how_far_it_read() {
    let log = fixture();
    let half = log.len() / 2;
    let complete_records = log[..half].iter().filter(|&&b| b == b'\n').count() - 1;
    let mut fake = Fake::new(log);
    for _ in 0..20 {
        fake.google.fault(Endpoint::Download, Fault::BodyBreaksAfter(half));
    }
    let error = run(&mut fake, &[("GCR_USAGE_WAIT_SECONDS", "0")]).load.unwrap_err();
    let words = format!(
        "reading {} failed after {complete_records} records: connection reset before the end of the body; \
         nothing of it was loaded",
        object().gs_uri()
    );
    assert!(error.message().contains(&words), "{error}");
    assert_eq!(error.kind(), "upstream-unavailable", "{error}");
    assert!(fake.google.faults_left() < 20, "no download was tried");
    assert!(fake.google.faults_left() > 0, "every try met a broken body");
    assert!(fake.google.job_ids().is_empty(), "a job was made from part of the object");
}

#[test]
fn malformed_rows_and_duplicates_are_counted() {
    let text = String::from_utf8(fixture()).unwrap();
    let second_row = text.lines().nth(1).unwrap();
    let log = format!("{text}{second_row}\n\"1\",\"too\",\"few\"\n");
    let mut fake = Fake::new(log.into_bytes());
    let o = run(&mut fake, &[]).load.unwrap();
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
fn chunk_retries_are_never_slept_past_the_events_budget() {
    let (log, _) = big_log(300 << 10);
    let mut fake = Fake::new(log);
    fake.google.outage(Endpoint::Chunk);
    // GCR_USAGE_WAIT_SECONDS=0: the 10 s minimum budget, starting at the fake's 1 000 ms.
    let e = run(&mut fake, &[("GCR_USAGE_WAIT_SECONDS", "0")]).load.unwrap_err();
    assert_eq!(e.kind(), "upstream-unavailable");
    let budget_end = 1_000 + 10_000;
    // Every request was started inside the budget (each takes the fake 20 ms).
    assert!(
        fake.now_ms <= budget_end + 20,
        "the upload ran until {} ms, past the budget ending at {budget_end}",
        fake.now_ms
    );
}

#[test]
fn chunks_failing_every_try_give_up_and_retry_the_upload() {
    use Endpoint::{Chunk, Download, GetJob, Initiate, Status};
    let (log, _) = big_log(300 << 10);
    let mut fake = Fake::new(log);
    fake.google.outage(Chunk);
    // The default 30 s budget: room for the whole upload again after the first one's four
    // chunk tries (one backoff for the event: 1, 2, 4 s between them, then 8 s).
    let e = run(&mut fake, &[]).load.unwrap_err();
    assert_eq!(e.kind(), "upstream-unavailable");
    assert!(e.message().contains("upload"), "{e}");
    assert!(fake.now_ms <= 1_000 + 30_000 + 20, "past the budget: {} ms", fake.now_ms);
    assert!(fake.slept_ms >= 1_000 + 2_000 + 4_000, "backed off between tries: {} ms", fake.slept_ms);
    let endpoints = fake.endpoints();
    // The first upload: four tries of its first chunk with a status query between them.
    assert_eq!(endpoints[..10], [GetJob, Initiate, Download, Chunk, Status, Chunk, Status, Chunk, Status, Chunk]);
    assert!(endpoints[10..].starts_with(&[Initiate, Download]), "then the whole upload again: {endpoints:?}");
    assert!(fake.google.job_ids().is_empty());
}

mod properties {
    //! The classified upload under random faults (issue 9, item 3, for uploads): 503s,
    //! connections reset before an answer, and chunks stored whose answer was lost (the 308 /
    //! `Range` path), on every kind of request. Whatever the faults, the load ends inside its
    //! budget, the session sends chunks only from the offset the server holds (the fake records
    //! any violation), no object makes two jobs, the events uploaded are the core's byte for
    //! byte, and every fault it met is counted in `retries`.

    use proptest::prelude::*;

    use super::*;

    const BUSY: &str = r#"{"error":{"code":503,"message":"busy","errors":[{"reason":"backendError"}]}}"#;

    fn fault() -> impl Strategy<Value = (Endpoint, Fault)> {
        let endpoint = prop_oneof![
            Just(Endpoint::GetJob),
            Just(Endpoint::Initiate),
            Just(Endpoint::Download),
            Just(Endpoint::Chunk),
            Just(Endpoint::Status)
        ];
        let fault = prop_oneof![Just(Fault::Reply(503, BUSY)), Just(Fault::Network), Just(Fault::PersistThenFail)];
        (endpoint, fault)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

        #[test]
        fn uploads_keep_the_promises_whatever_fails(
            faults in prop::collection::vec(fault(), 0..10),
            large in any::<bool>(),
        ) {
            let log = if large { big_log(600 << 10).0 } else { fixture() };
            let mut fake = Fake::new(log.clone());
            let offered = faults.len();
            for (endpoint, f) in faults {
                fake.google.fault(endpoint, f);
            }
            let result = run(&mut fake, &[("GCR_USAGE_UPLOAD_CHUNK_KIB", "256")]);
            let consumed = (offered - fake.google.faults_left()) as u32;
            let uploads = fake.google.uploads();
            prop_assert!(fake.now_ms <= 1_000 + 30_000 + 20, "ran past the budget: {} ms", fake.now_ms);
            prop_assert!(uploads.len() <= 1, "one object, one job: {} uploads", uploads.len());
            prop_assert!(fake.google.violations().is_empty(), "{:?}", fake.google.violations());
            match &result.load {
                Ok(o) => {
                    prop_assert!(matches!(o.outcome, OutcomeKind::Loaded | OutcomeKind::Duplicate), "{o:?}");
                    prop_assert!(uploads[0].1 == core_ndjson(&log), "the uploaded events are not the core's");
                    let counted = o.retries.as_ref().map_or(0, |r| r.count);
                    prop_assert_eq!(counted, consumed, "every fault met is counted");
                }
                Err(e) => prop_assert_eq!(e.kind(), "upstream-unavailable", "{}", e),
            }
        }
    }
}
