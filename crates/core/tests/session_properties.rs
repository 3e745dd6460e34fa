//! The load session under random scripts of Google's behaviour (issue 9, item 3): answers,
//! 5xx and 429, connections refused before the request arrived, requests that arrived but whose
//! answer was lost, slow answers, jobs that run for a while or fail, and jobs already there —
//! made by this delivery's lost request or by another delivery, with or without its label.
//! Whatever the script, the session must:
//! - end (a bounded number of requests);
//! - send nothing and sleep nothing past its budget, max(GCR_USAGE_WAIT_SECONDS, 10 s);
//! - name one job id per attempt (`…`, `…_r2`, … in order);
//! - never answer `loaded` for a job another delivery created;
//! - count every transient failure it got past in `retries`.
//!
//! Raw loads only: the classified upload has its own tests (`classified/tests.rs`).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use gcr_usage_core::credentials::CredentialCache;
use gcr_usage_core::job::LoadFormat;
use gcr_usage_core::log_name::LogKind;
use gcr_usage_core::plan::PlannedLoad;
use gcr_usage_core::service::{Io, drive};
use gcr_usage_core::session::{LoadSession, MIN_BUDGET, Reply};
use gcr_usage_core::{Config, ObjectRef, OutcomeKind};
use proptest::prelude::*;
use serde_json::{Value, json};

/// What happens to one request.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Answered normally, after `delay_ms`.
    Normal { delay_ms: u64 },
    /// 500 / 503 / 429 with Google's error body; nothing done.
    Status(u16),
    /// The connection failed before the request arrived: nothing done.
    Refused,
    /// The request was carried out, and its answer lost on the way back.
    Lost,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => (0u64..3_000).prop_map(|delay_ms| Fault::Normal { delay_ms }),
        1 => prop_oneof![Just(500u16), Just(503), Just(429)].prop_map(Fault::Status),
        1 => Just(Fault::Refused),
        1 => Just(Fault::Lost),
    ]
}

/// A job as the fake BigQuery holds it.
#[derive(Debug, Clone)]
struct Job {
    /// Polls left before it is DONE.
    running: u32,
    failed: bool,
    /// The delivery label it was created with (`None`: an older loader's job).
    label: Option<String>,
    by_us: bool,
}

/// A job some other delivery created before this one ran.
#[derive(Debug, Clone)]
struct Earlier {
    running: u32,
    failed: bool,
    labelled: bool,
}

fn earlier() -> impl Strategy<Value = Option<Earlier>> {
    prop::option::of((0u32..3, any::<bool>(), any::<bool>()).prop_map(|(running, failed, labelled)| Earlier {
        running,
        failed,
        labelled,
    }))
}

struct Google {
    now_ms: u64,
    faults: VecDeque<Fault>,
    /// For jobs this delivery creates: how long they run and whether they fail.
    new_job: (u32, bool),
    jobs: HashMap<String, Job>,
    requests: usize,
    /// (monotonic ms at the start, job id) of every request; sleeps as (start, end).
    sent: Vec<(u64, String)>,
    slept: Vec<(u64, u64)>,
    faults_seen: u32,
}

const ERROR_503: &str =
    r#"{"error":{"code":503,"message":"Service unavailable","errors":[{"reason":"backendError"}]}}"#;

impl Google {
    fn resource(&self, id: &str) -> Value {
        let job = &self.jobs[id];
        let mut status = json!({"state": if job.running > 0 { "RUNNING" } else { "DONE" }});
        if job.running == 0 && job.failed {
            status["errorResult"] = json!({"reason": "invalid", "message": "bad CSV"});
        }
        let mut resource = json!({"jobReference": {"jobId": id}, "status": status,
                                  "statistics": {"load": {"outputRows": "7"}}});
        if let Some(label) = &job.label {
            resource["configuration"] = json!({"labels": {"delivery": label}});
        }
        resource
    }

    fn carry_out(&mut self, request: &http::Request<Vec<u8>>) -> (u16, Value, String) {
        let path = request.uri().path().to_string();
        if request.method() == http::Method::POST {
            let body: Value = serde_json::from_slice(request.body()).unwrap();
            let id = body["jobReference"]["jobId"].as_str().unwrap().to_string();
            if self.jobs.contains_key(&id) {
                let error = json!({"error": {"code": 409, "message": format!("Already Exists: Job {id}"),
                                   "errors": [{"reason": "duplicate"}], "status": "ALREADY_EXISTS"}});
                return (409, error, id);
            }
            let label = body["configuration"]["labels"]["delivery"].as_str().map(str::to_string);
            let (running, failed) = self.new_job;
            self.jobs.insert(id.clone(), Job { running, failed, label, by_us: true });
            (200, self.resource(&id), id)
        } else {
            let id = path.rsplit('/').next().unwrap().to_string();
            let Some(job) = self.jobs.get_mut(&id) else {
                return (404, json!({"error": {"code": 404, "message": "Not found: Job"}}), id);
            };
            job.running = job.running.saturating_sub(1);
            (200, self.resource(&id), id)
        }
    }
}

impl Io for Google {
    fn send(&mut self, request: http::Request<Vec<u8>>, _timeout: Duration) -> Reply {
        self.requests += 1;
        assert!(self.requests < 400, "the session does not end");
        let fault = self.faults.pop_front().unwrap_or(Fault::Normal { delay_ms: 10 });
        let start = self.now_ms;
        match fault {
            Fault::Normal { delay_ms } => {
                self.now_ms += delay_ms;
                let (status, body, id) = self.carry_out(&request);
                self.sent.push((start, id));
                Reply::Response(http::Response::builder().status(status).body(body.to_string().into_bytes()).unwrap())
            }
            Fault::Status(status) => {
                self.faults_seen += 1;
                self.now_ms += 20;
                self.sent.push((start, job_id_of(&request)));
                Reply::Response(http::Response::builder().status(status).body(ERROR_503.as_bytes().to_vec()).unwrap())
            }
            Fault::Refused => {
                self.faults_seen += 1;
                self.sent.push((start, job_id_of(&request)));
                Reply::Failed("connection refused".into())
            }
            Fault::Lost => {
                self.faults_seen += 1;
                self.now_ms += 20;
                let (_, _, id) = self.carry_out(&request);
                self.sent.push((start, id));
                Reply::Failed("connection reset after the request was sent".into())
            }
        }
    }
    fn sleep(&mut self, d: Duration) {
        let start = self.now_ms;
        self.now_ms += d.as_millis() as u64;
        self.slept.push((start, self.now_ms));
    }
    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
    fn unix_secs(&mut self) -> u64 {
        1_767_225_600 + self.now_ms / 1000
    }
    fn random_u64(&mut self) -> u64 {
        0x5eed
    }
}

fn job_id_of(request: &http::Request<Vec<u8>>) -> String {
    if request.method() == http::Method::POST {
        let body: Value = serde_json::from_slice(request.body()).unwrap();
        body["jobReference"]["jobId"].as_str().unwrap().to_string()
    } else {
        request.uri().path().rsplit('/').next().unwrap().to_string()
    }
}

fn planned() -> PlannedLoad {
    PlannedLoad {
        object: ObjectRef {
            bucket: "demo-gcr-logs".into(),
            name: "accessLog_usage_2024_03_11_14_00_00_00cbe5_v0".into(),
            generation: Some(1_710_169_200_000_000),
        },
        kind: LogKind::Usage,
        format: LoadFormat::RawCsv,
        table_id: "usage".into(),
    }
}

fn config(wait: u64) -> Config {
    Config::from_env(|name| match name {
        "GCR_USAGE_BUCKETS" => Some("demo-gcr-logs".into()),
        "GCR_USAGE_PROJECT" => Some("demo-project".into()),
        "GCR_USAGE_AUTH" => Some("none".into()),
        "GCR_USAGE_WAIT_SECONDS" => Some(wait.to_string()),
        _ => None,
    })
    .unwrap()
}

const START_MS: u64 = 1_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]

    #[test]
    fn the_session_keeps_its_promises_whatever_google_does(
        faults in prop::collection::vec(fault(), 0..24),
        wait in prop_oneof![Just(0u64), Just(5), Just(30), Just(120)],
        new_job in (0u32..6, prop::bool::weighted(0.2)),
        earlier in earlier(),
        seed in any::<u64>(),
    ) {
        let mut google = Google {
            now_ms: START_MS,
            faults: faults.into(),
            new_job,
            jobs: HashMap::new(),
            requests: 0,
            sent: Vec::new(),
            slept: Vec::new(),
            faults_seen: 0,
        };
        let session = LoadSession::new(config(wait), planned(), START_MS, 1_767_225_600, seed);
        let base_id = gcr_usage_core::job::LoadSpec {
            object: planned().object,
            kind: LogKind::Usage,
            format: LoadFormat::RawCsv,
            destination: gcr_usage_core::job::TableRef {
                project_id: "demo-project".into(),
                dataset_id: "storageanalysis".into(),
                table_id: "usage".into(),
            },
            location: "US".into(),
        };
        if let Some(e) = &earlier {
            let label = e.labelled.then(|| "0123456789abcdef".to_string()); // not ours: ours is random
            google.jobs.insert(base_id.job_id(1), Job { running: e.running, failed: e.failed, label, by_us: false });
        }
        let result = drive(session, &mut google, &mut CredentialCache::default());

        // Nothing sent, nothing slept past the budget.
        let budget_end = START_MS + Duration::from_secs(wait).max(MIN_BUDGET).as_millis() as u64;
        for (at, id) in &google.sent {
            prop_assert!(*at < budget_end, "request for {id} sent at {at} ms, the budget ends at {budget_end}");
        }
        for (from, to) in &google.slept {
            prop_assert!(*to <= budget_end, "slept {from}..{to} ms past the budget's end {budget_end}");
        }
        // One job id per attempt, attempts in order.
        let mut attempts: Vec<&String> = Vec::new();
        for (_, id) in &google.sent {
            if attempts.last() != Some(&id) {
                prop_assert!(!attempts.contains(&id), "went back to {id}: {:?}", google.sent);
                attempts.push(id);
            }
        }
        for (n, id) in attempts.iter().enumerate() {
            let expected = base_id.job_id(n as u32 + 1);
            prop_assert_eq!(id.as_str(), expected.as_str());
        }
        match result {
            Ok(outcome) => {
                if outcome.outcome == OutcomeKind::Loaded {
                    let id = outcome.job_id.as_ref().unwrap();
                    prop_assert!(google.jobs[id].by_us, "loaded reported for a job another delivery created");
                }
                if outcome.outcome == OutcomeKind::Duplicate {
                    let id = outcome.job_id.as_ref().unwrap();
                    // A job of ours can only be a "duplicate" when it carries no label of ours
                    // (never the case here): ours are always recognised.
                    prop_assert!(!google.jobs[id].by_us, "our own job reported as a duplicate");
                }
                let counted = outcome.retries.as_ref().map_or(0, |r| r.count);
                prop_assert_eq!(counted, google.faults_seen, "every transient failure is counted");
            }
            Err(e) => {
                // Only transient trouble (or the budget) can end a raw load in an error here.
                prop_assert_eq!(e.kind(), "upstream-unavailable", "{}", e);
            }
        }
    }
}
