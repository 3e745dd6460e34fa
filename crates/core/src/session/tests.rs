//! The session driven through [`crate::service::drive`] by a scripted host with a fake clock.

use std::collections::VecDeque;
use std::time::Duration;

use super::*;
use crate::ObjectRef;
use crate::credentials::CredentialCache;
use crate::log_name::LogKind;
use crate::service::{Io, drive};

struct Script {
    now_ms: u64,
    answers: VecDeque<Result<(u16, String), String>>,
    sent: Vec<(String, String, String)>,
    slept: Vec<Duration>,
    latency_ms: u64,
}

impl Script {
    fn new(answers: Vec<Result<(u16, &str), &str>>) -> Script {
        Script {
            now_ms: 1_000,
            answers: answers.into_iter().map(|a| a.map(|(s, b)| (s, b.to_string())).map_err(str::to_string)).collect(),
            sent: Vec::new(),
            slept: Vec::new(),
            latency_ms: 50,
        }
    }
    fn paths(&self) -> Vec<String> {
        self.sent.iter().map(|(m, u, _)| format!("{m} {}", u.split('?').next().unwrap())).collect()
    }
}

impl Io for Script {
    fn send(&mut self, request: http::Request<Vec<u8>>, _timeout: Duration) -> Reply {
        let auth = request.headers().get("authorization").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        self.sent.push((request.method().to_string(), request.uri().to_string(), auth));
        self.now_ms += self.latency_ms;
        match self.answers.pop_front().expect("the session sent more requests than scripted") {
            Ok((status, body)) => {
                Reply::Response(http::Response::builder().status(status).body(body.into_bytes()).unwrap())
            }
            // "refused ORIGIN": the host's outbound policy would not send it.
            Err(e) => match e.strip_prefix("refused ") {
                Some(origin) => Reply::Refused { origin: origin.into(), why: "ErrorCode::HttpRequestDenied".into() },
                None => Reply::Failed(e),
            },
        }
    }
    fn sleep(&mut self, d: Duration) {
        self.slept.push(d);
        self.now_ms += d.as_millis() as u64;
    }
    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
    fn unix_secs(&mut self) -> u64 {
        1_767_225_600 + self.now_ms / 1000
    }
    fn random_u64(&mut self) -> u64 {
        42
    }
}

const DONE: &str = r#"{"status":{"state":"DONE"},"statistics":{"load":{"outputRows":"12"}}}"#;
const RUNNING: &str = r#"{"status":{"state":"RUNNING"}}"#;
const FAILED: &str =
    r#"{"status":{"state":"DONE","errorResult":{"reason":"invalid","message":"Error while reading data"}}}"#;
const DUPLICATE: &str = r#"{"error":{"code":409,"message":"Already Exists: Job demo-project:US.x","errors":[{"reason":"duplicate","message":"Already Exists"}],"status":"ALREADY_EXISTS"}}"#;
const BACKEND: &str =
    r#"{"error":{"code":500,"message":"backend","errors":[{"reason":"backendError","message":"backend"}]}}"#;
const DENIED: &str = r#"{"error":{"code":403,"message":"Access Denied: Dataset demo-project:storageanalysis","errors":[{"reason":"accessDenied","message":"Access Denied"}],"status":"PERMISSION_DENIED"}}"#;
const TOKEN: &str = r#"{"access_token":"ya29.test","expires_in":3599,"token_type":"Bearer"}"#;

fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_env(|k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()).or_else(|| match k {
            "GCR_USAGE_BUCKETS" => Some("demo-gcr-logs".into()),
            "GCR_USAGE_PROJECT" => Some("demo-project".into()),
            "GCR_USAGE_AUTH" => Some("none".into()),
            _ => None,
        })
    })
    .unwrap()
}

fn planned() -> PlannedLoad {
    PlannedLoad {
        object: ObjectRef {
            bucket: "demo-gcr-logs".into(),
            name: "accessLog_usage_2019_05_19_18_00_00_00cbe5_v0".into(),
            generation: Some(9),
        },
        kind: LogKind::Usage,
        format: crate::job::LoadFormat::RawCsv,
        table_id: "usage".into(),
    }
}

fn run(config: Config, script: &mut Script) -> Result<Outcome, LoadError> {
    let seed = script.random_u64();
    let now = script.now_ms;
    drive(LoadSession::new(config, planned(), now, 1_767_225_600, seed), script, &mut CredentialCache::default())
}

#[test]
fn done_at_insert_is_loaded() {
    let mut s = Script::new(vec![Ok((200, DONE))]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!((o.outcome, o.rows), (OutcomeKind::Loaded, Some(12)));
    assert_eq!(o.destination.as_deref(), Some("demo-project:storageanalysis.usage"));
    assert_eq!(
        s.paths(),
        ["POST http://bigquery.googleapis.com/bigquery/v2/projects/demo-project/jobs".replace("http:", "https:")]
    );
}

#[test]
fn running_job_is_polled_until_done() {
    let mut s = Script::new(vec![Ok((200, RUNNING)), Ok((200, RUNNING)), Ok((200, DONE))]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Loaded);
    assert_eq!(s.sent.len(), 3);
    assert!(s.sent[1].1.contains("/jobs/gcr_usage_") && s.sent[1].1.contains("location=US"));
    assert_eq!(s.slept.len(), 2);
    assert!(s.slept[1] > s.slept[0] / 2);
}

#[test]
fn still_running_at_the_deadline_is_submitted() {
    let mut s = Script::new(vec![Ok((200, RUNNING)); 100]);
    let o = run(config(&[("GCR_USAGE_WAIT_SECONDS", "10")]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Submitted);
    assert!(s.now_ms <= 1_000 + 10_000 + 50, "waited past the deadline: {}", s.now_ms);
    let mut s = Script::new(vec![Ok((200, RUNNING))]);
    assert_eq!(run(config(&[("GCR_USAGE_WAIT_SECONDS", "0")]), &mut s).unwrap().outcome, OutcomeKind::Submitted);
}

#[test]
fn duplicate_reads_the_existing_job() {
    let mut s = Script::new(vec![Ok((409, DUPLICATE)), Ok((200, DONE))]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!((o.outcome, o.rows), (OutcomeKind::Duplicate, Some(12)));
    assert_eq!(s.sent[0].1.split("/jobs").next(), s.sent[1].1.split("/jobs").next());
    let id = o.job_id.unwrap();
    assert!(s.sent[1].1.contains(&format!("/jobs/{id}?")));
}

#[test]
fn transient_errors_are_retried_with_the_same_job_id() {
    let mut s = Script::new(vec![
        Ok((503, "<html>unavailable</html>")),
        Err("connection refused"),
        Ok((500, BACKEND)),
        Ok((429, "{}")),
        Ok((200, DONE)),
    ]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Loaded);
    assert_eq!(s.sent.len(), 5);
    assert!(s.sent.iter().all(|(m, u, _)| m == "POST" && *u == s.sent[0].1));
    // Exponential with jitter in [d/2, d]: 1 s, 2 s, 4 s, 8 s.
    for (i, d) in s.slept.iter().enumerate() {
        let full = Duration::from_secs(1 << i);
        assert!(*d >= full / 2 && *d <= full, "{i}: {d:?}");
    }
}

#[test]
fn transient_errors_until_the_deadline_are_unavailable() {
    let mut s = Script::new(vec![Ok((503, "busy")); 100]);
    let e = run(config(&[("GCR_USAGE_WAIT_SECONDS", "20")]), &mut s).unwrap_err();
    assert_eq!(e.kind(), "upstream-unavailable");
    assert!(e.message().contains("HTTP 503") && e.message().contains("busy"), "{e}");
    assert!(s.now_ms <= 1_000 + 20_000 + 50 * s.sent.len() as u64);
    assert!(s.sent.len() >= 4, "{}", s.sent.len());
}

#[test]
fn permanent_errors_carry_googles_message() {
    let mut s = Script::new(vec![Ok((403, DENIED))]);
    let e = run(config(&[]), &mut s).unwrap_err();
    assert_eq!(e.kind(), "upstream-rejected");
    assert!(e.message().contains("Access Denied: Dataset demo-project:storageanalysis"), "{e}");
    assert!(e.message().contains("accessDenied"));
    assert_eq!(s.sent.len(), 1);
    let mut s = Script::new(vec![Ok((400, r#"{"error":{"code":400,"message":"Invalid"#))]);
    assert!(run(config(&[]), &mut s).unwrap_err().message().contains("unexpected body"));
}

#[test]
fn a_job_we_created_that_fails_is_reported_failed() {
    let mut s = Script::new(vec![Ok((200, RUNNING)), Ok((200, FAILED))]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Failed);
    assert!(o.reason.as_deref().unwrap().contains("Error while reading data"));
    assert!(!o.job_id.unwrap().ends_with("_r2"));
}

#[test]
fn a_failed_earlier_attempt_leads_to_the_next_attempt() {
    let mut s = Script::new(vec![Ok((409, DUPLICATE)), Ok((200, FAILED)), Ok((200, DONE))]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Loaded);
    assert!(o.job_id.as_deref().unwrap().ends_with("_r2"));
    assert_eq!(s.paths()[2], s.paths()[0]);
    // Redelivered again later: attempt 1 failed, attempt 2 exists → duplicate, nothing reloaded.
    let mut s = Script::new(vec![Ok((409, DUPLICATE)), Ok((200, FAILED)), Ok((409, DUPLICATE)), Ok((200, DONE))]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Duplicate);
    assert!(o.job_id.unwrap().ends_with("_r2"));
}

#[test]
fn attempts_are_bounded() {
    let answers: Vec<_> = (0..MAX_ATTEMPTS).flat_map(|_| [Ok((409, DUPLICATE)), Ok((200, FAILED))]).collect();
    let mut s = Script::new(answers);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Failed);
    assert!(o.reason.unwrap().contains(&format!("all {MAX_ATTEMPTS} load job attempts")));
    assert_eq!(s.sent.len(), 2 * MAX_ATTEMPTS as usize);
}

#[test]
fn metadata_supplies_project_and_token() {
    let mut s = Script::new(vec![Ok((200, "meta-project\n")), Ok((200, TOKEN)), Ok((200, DONE))]);
    let cfg = Config::from_env(|k| (k == "GCR_USAGE_BUCKETS").then(|| "demo-gcr-logs".to_string())).unwrap();
    let o = run(cfg, &mut s).unwrap();
    assert_eq!(o.destination.as_deref(), Some("meta-project:storageanalysis.usage"));
    assert_eq!(s.paths()[0], "GET http://metadata.google.internal/computeMetadata/v1/project/project-id");
    assert_eq!(
        s.paths()[1],
        "GET http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token"
    );
    assert_eq!(s.sent[0].2, "");
    assert_eq!(s.sent[2].2, "Bearer ya29.test");
}

#[test]
fn metadata_failures() {
    let cfg = || config(&[("GCR_USAGE_AUTH", "metadata")]);
    let mut s = Script::new(vec![Ok((500, "oops")), Ok((200, TOKEN)), Ok((200, DONE))]);
    assert_eq!(run(cfg(), &mut s).unwrap().outcome, OutcomeKind::Loaded);
    let mut s = Script::new(vec![Ok((403, "Missing Metadata-Flavor:Google header."))]);
    let e = run(cfg(), &mut s).unwrap_err();
    assert_eq!(e.kind(), "upstream-rejected");
    assert!(e.message().contains("metadata server (access token) refused"), "{e}");
    let mut s = Script::new(vec![Err("dns error: metadata.google.internal"); 50]);
    assert_eq!(run(cfg(), &mut s).unwrap_err().kind(), "upstream-unavailable");
}

#[test]
fn token_mode_sends_the_configured_token() {
    let mut s = Script::new(vec![Ok((200, DONE))]);
    run(config(&[("GCR_USAGE_AUTH", "token"), ("GCR_USAGE_TOKEN", "ya29.dev")]), &mut s).unwrap();
    assert_eq!(s.sent[0].2, "Bearer ya29.dev");
}

#[test]
fn unreadable_success_answers() {
    // 200 with garbage from insert: the job probably exists, so it is read back.
    let mut s = Script::new(vec![Ok((200, "<html>")), Ok((200, DONE))]);
    assert_eq!(run(config(&[]), &mut s).unwrap().outcome, OutcomeKind::Loaded);
    // 200 with garbage from jobs.get: retried until the deadline.
    let mut answers = vec![Ok((200, RUNNING))];
    answers.extend(std::iter::repeat_n(Ok((200, "{\"status\":")), 60));
    let mut s = Script::new(answers);
    let e = run(config(&[("GCR_USAGE_WAIT_SECONDS", "5")]), &mut s).unwrap_err();
    assert_eq!(e.kind(), "upstream-unavailable");
}

#[test]
fn slow_answers_cannot_stretch_an_event_past_its_budget() {
    // Every answer takes 4 s: the chain 409 → failed → _r2 … would run for ~40 s unchecked.
    let answers: Vec<_> = (0..MAX_ATTEMPTS).flat_map(|_| [Ok((409, DUPLICATE)), Ok((200, FAILED))]).collect();
    let mut s = Script::new(answers);
    s.latency_ms = 4_000;
    let e = run(config(&[("GCR_USAGE_WAIT_SECONDS", "5")]), &mut s).unwrap_err();
    assert_eq!(e.kind(), "upstream-unavailable");
    assert!(e.message().contains("ran out before BigQuery jobs."), "{e}");
    // The budget is max(wait, 10 s): no request is *sent* after it, one may straddle it.
    assert!(s.now_ms <= 1_000 + 10_000 + 4_000, "{}", s.now_ms);
}

#[test]
fn out_of_time_with_our_job_submitted_is_submitted() {
    let mut s = Script::new(vec![Ok((200, RUNNING)); 10]);
    s.latency_ms = 6_000;
    let o = run(config(&[("GCR_USAGE_WAIT_SECONDS", "0")]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Submitted);
}

#[test]
fn a_409_for_a_job_without_our_label_is_never_ours() {
    // An older loader's job (no label) met after our own insert failed ambiguously: the failed
    // insert may never have arrived, so the job is not ours to report as loaded.
    let mut s = Script::new(vec![Err("connection reset"), Ok((409, DUPLICATE)), Ok((200, DONE))]);
    assert_eq!(run(config(&[]), &mut s).unwrap().outcome, OutcomeKind::Duplicate);
    // …and if that job failed, it is a past attempt to supersede with the next one.
    let mut s = Script::new(vec![Ok((503, "busy")), Ok((409, DUPLICATE)), Ok((200, FAILED)), Ok((200, DONE))]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Loaded);
    assert!(o.job_id.unwrap().ends_with("_r2"));
}

/// A job resource as `jobs.get` returns it, labelled with a delivery token.
fn done_by(delivery: &str) -> String {
    format!(
        r#"{{"configuration":{{"labels":{{"loader":"gcr-usage","delivery":"{delivery}"}}}},"status":{{"state":"DONE"}},"statistics":{{"load":{{"outputRows":"12"}}}}}}"#
    )
}

#[test]
fn a_409_is_ours_exactly_when_the_job_carries_our_delivery_label() {
    let ours = done_by(&delivery_token(42));
    let theirs = done_by("0123456789abcdef");
    // The first insert never reached BigQuery (or was refused): the 409 is another delivery's job.
    for first in [Err("connection refused"), Ok((500, BACKEND))] {
        let mut s = Script::new(vec![first, Ok((409, DUPLICATE)), Ok((200, theirs.as_str()))]);
        assert_eq!(run(config(&[]), &mut s).unwrap().outcome, OutcomeKind::Duplicate, "{first:?}");
    }
    // Its answer was lost after BigQuery created the job: ours, loaded.
    let mut s = Script::new(vec![Err("timed out"), Ok((409, DUPLICATE)), Ok((200, ours.as_str()))]);
    assert_eq!(run(config(&[]), &mut s).unwrap().outcome, OutcomeKind::Loaded);
    // A single insert answered 409 with a job labelled by someone else: a plain redelivery.
    let mut s = Script::new(vec![Ok((409, DUPLICATE)), Ok((200, theirs.as_str()))]);
    assert_eq!(run(config(&[]), &mut s).unwrap().outcome, OutcomeKind::Duplicate);
}

#[test]
fn the_insert_carries_the_delivery_label() {
    let mut session = LoadSession::new(config(&[]), planned(), 0, 0, 42);
    let Step::Send { request, .. } = session.start(0) else { panic!("the session starts by sending") };
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(body["configuration"]["labels"]["delivery"], delivery_token(42).as_str());
    assert_ne!(delivery_token(42), delivery_token(43));
}

#[test]
fn retried_failures_are_reported_with_the_outcome() {
    let mut s = Script::new(vec![Err("connection refused"), Ok((503, "busy")), Ok((200, DONE))]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Loaded);
    let retries = o.retries.expect("two retries");
    assert_eq!(retries.count, 2);
    assert!(retries.last.starts_with("BigQuery jobs.insert answered"), "{}", retries.last);
    let mut s = Script::new(vec![Ok((200, DONE))]);
    assert_eq!(run(config(&[]), &mut s).unwrap().retries, None, "nothing retried, nothing said");
}

#[test]
fn every_5xx_is_transient() {
    for status in [507, 520, 599] {
        let mut s = Script::new(vec![Ok((status, "?")), Ok((200, DONE))]);
        assert_eq!(run(config(&[]), &mut s).unwrap().outcome, OutcomeKind::Loaded, "{status}");
    }
}

#[test]
fn a_service_account_key_is_exchanged_at_its_token_uri() {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let pem = crate::auth::jwt::test_keys::key(0).to_pkcs8_pem(LineEnding::LF).unwrap();
    let key = serde_json::json!({"private_key": pem.as_str(), "client_email": "l@p.iam.gserviceaccount.com",
                                 "token_uri": "http://127.0.0.1:9/token"})
    .to_string();
    let mut s = Script::new(vec![Ok((200, TOKEN)), Ok((200, DONE))]);
    let outcome = run(config(&[("GCR_USAGE_AUTH", "service-account"), ("GCR_USAGE_SA_KEY", &key)]), &mut s).unwrap();
    assert_eq!(outcome.outcome, OutcomeKind::Loaded);
    assert_eq!(
        s.paths(),
        [
            "POST http://127.0.0.1:9/token",
            "POST https://bigquery.googleapis.com/bigquery/v2/projects/demo-project/jobs"
        ]
    );
    assert_eq!(s.sent[1].2, "Bearer ya29.test");

    // Self-signed: no exchange, the JWT itself is the bearer token.
    let mut s = Script::new(vec![Ok((200, DONE))]);
    let c = config(&[
        ("GCR_USAGE_AUTH", "service-account"),
        ("GCR_USAGE_SA_KEY", &key),
        ("GCR_USAGE_SA_SELF_SIGNED_JWT", "true"),
    ]);
    run(c, &mut s).unwrap();
    assert_eq!(s.sent.len(), 1);
    let jwt = s.sent[0].2.strip_prefix("Bearer ").unwrap();
    assert_eq!(crate::auth::jwt::Token::parse(jwt).unwrap().claim_str("sub"), Some("l@p.iam.gserviceaccount.com"));

    // A refused exchange is the endpoint's fault, named as such.
    let mut s =
        Script::new(vec![Ok((400, r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#))]);
    let e = run(config(&[("GCR_USAGE_AUTH", "service-account"), ("GCR_USAGE_SA_KEY", &key)]), &mut s).unwrap_err();
    assert!(e.message().starts_with("OAuth token endpoint (service-account key) refused"), "{e}");
    assert!(!e.message().contains("eyJ"), "no JWT in messages: {e}");
}

const UNAUTHENTICATED: &str = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","errors":[{"reason":"authError","message":"Invalid Credentials"}],"status":"UNAUTHENTICATED"}}"#;

fn metadata_config() -> Config {
    Config::from_env(|k| (k == "GCR_USAGE_BUCKETS").then(|| "demo-gcr-logs".to_string())).unwrap()
}

fn run_cached(config: Config, script: &mut Script, cache: &mut CredentialCache) -> Result<Outcome, LoadError> {
    let now = script.now_ms;
    drive(LoadSession::new(config, planned(), now, 1_767_225_600 + now / 1000, 42), script, cache)
}

#[test]
fn an_instance_asks_the_metadata_server_once_while_the_token_lasts() {
    let mut cache = CredentialCache::default();
    let mut s = Script::new(vec![Ok((200, "meta-project\n")), Ok((200, TOKEN)), Ok((200, DONE))]);
    run_cached(metadata_config(), &mut s, &mut cache).unwrap();
    for _ in 0..99 {
        s.answers.push_back(Ok((200, DONE.into())));
        run_cached(metadata_config(), &mut s, &mut cache).unwrap();
    }
    let metadata = s.paths().iter().filter(|p| p.contains("computeMetadata")).count();
    assert_eq!((metadata, cache.token_fetches(), cache.project_fetches()), (2, 1, 1), "100 events, one token");
    assert!(s.sent.iter().skip(2).all(|(_, _, auth)| auth == "Bearer ya29.test"));
    // Shortly before expiry (3599 s - 5 min) a new token is fetched, the project id is kept.
    s.now_ms = 1_100 + (3599 - 300 - 30) * 1000; // arrived at 1 100 ms; 5 min + the 30 s budget
    s.answers.extend([Ok((200, TOKEN.replace("ya29.test", "ya29.next"))), Ok((200, DONE.into()))]);
    let before = s.sent.len();
    run_cached(metadata_config(), &mut s, &mut cache).unwrap();
    assert_eq!(s.paths()[before..].len(), 2);
    assert!(s.paths()[before].ends_with("/token"));
    assert_eq!(s.sent[before + 1].2, "Bearer ya29.next");
}

#[test]
fn a_cached_token_refused_with_401_is_replaced_once_and_the_request_repeated() {
    let mut cache = CredentialCache::default();
    let mut s = Script::new(vec![Ok((200, "meta-project\n")), Ok((200, TOKEN)), Ok((200, DONE))]);
    run_cached(metadata_config(), &mut s, &mut cache).unwrap();
    let before = s.sent.len();
    s.answers.extend([
        Ok((401, UNAUTHENTICATED.into())),
        Ok((200, TOKEN.replace("ya29.test", "ya29.fresh"))),
        Ok((200, DONE.into())),
    ]);
    let o = run_cached(metadata_config(), &mut s, &mut cache).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Loaded, "the repeated insert created the job: ours");
    let sent = &s.sent[before..];
    assert_eq!(sent.len(), 3);
    assert_eq!((sent[0].2.as_str(), sent[2].2.as_str()), ("Bearer ya29.test", "Bearer ya29.fresh"));
    assert_eq!(sent[0].1, sent[2].1, "the same jobs.insert");
    assert_eq!(cache.token("metadata http://metadata.google.internal", s.now_ms, Duration::ZERO), Some("ya29.fresh"));
    // A fresh token refused too is Google's word: no loop.
    s.answers.extend([Ok((401, UNAUTHENTICATED.into())), Ok((200, TOKEN.into())), Ok((401, UNAUTHENTICATED.into()))]);
    let e = run_cached(metadata_config(), &mut s, &mut cache).unwrap_err();
    assert_eq!(e.kind(), "upstream-rejected");
    assert!(e.message().contains("Invalid Credentials") || e.message().contains("invalid authentication"), "{e}");
}

#[test]
fn a_401_fetches_one_new_token_and_then_is_googles_word() {
    // A token the metadata server handed out near its end can expire under a long event.
    let mut s = Script::new(vec![
        Ok((200, "meta-project\n")),
        Ok((200, TOKEN)),
        Ok((401, UNAUTHENTICATED)),
        Ok((200, TOKEN)),
        Ok((401, UNAUTHENTICATED)),
    ]);
    let e = run(metadata_config(), &mut s).unwrap_err();
    assert_eq!((e.kind(), s.sent.len()), ("upstream-rejected", 5));
    assert!(s.paths()[3].ends_with("/token"));
    // A fixed token cannot be replaced: its 401 is final at once.
    let mut s = Script::new(vec![Ok((401, UNAUTHENTICATED))]);
    let e = run(config(&[("GCR_USAGE_AUTH", "token"), ("GCR_USAGE_TOKEN", "ya29.dev")]), &mut s).unwrap_err();
    assert_eq!((e.kind(), s.sent.len()), ("upstream-rejected", 1));
}

#[test]
fn tokens_are_cached_per_credential() {
    let mut cache = CredentialCache::default();
    let other_metadata = || {
        Config::from_env(|k| match k {
            "GCR_USAGE_BUCKETS" => Some("demo-gcr-logs".into()),
            "GCE_METADATA_HOST" => Some("127.0.0.1:8181".into()),
            _ => None,
        })
        .unwrap()
    };
    let mut s = Script::new(vec![Ok((200, "meta-project\n")), Ok((200, TOKEN)), Ok((200, DONE))]);
    run_cached(metadata_config(), &mut s, &mut cache).unwrap();
    s.answers.extend([
        Ok((200, "other-project\n".into())),
        Ok((200, TOKEN.replace("test", "other"))),
        Ok((200, DONE.into())),
    ]);
    let before = s.sent.len();
    let o = run_cached(other_metadata(), &mut s, &mut cache).unwrap();
    assert_eq!(s.sent.len() - before, 3, "another metadata server: its own project and token");
    assert_eq!(o.destination.as_deref(), Some("other-project:storageanalysis.usage"));
    assert_eq!(s.sent.last().unwrap().2, "Bearer ya29.other");
    // Fixed tokens and self-signed JWTs are never cached, nor handed to other configurations.
    s.answers.push_back(Ok((200, DONE.into())));
    run_cached(config(&[("GCR_USAGE_AUTH", "token"), ("GCR_USAGE_TOKEN", "ya29.dev")]), &mut s, &mut cache).unwrap();
    assert_eq!(s.sent.last().unwrap().2, "Bearer ya29.dev");
}

fn without_generation() -> PlannedLoad {
    let mut planned = planned();
    planned.object.generation = None;
    planned
}

#[test]
fn an_event_without_a_generation_loads_under_the_live_generations_job_id() {
    let mut s = Script::new(vec![Ok((200, r#"{"generation":"9"}"#)), Ok((200, DONE))]);
    let o = drive(
        LoadSession::new(config(&[]), without_generation(), 1_000, 1_767_225_600, 42),
        &mut s,
        &mut CredentialCache::default(),
    )
    .unwrap();
    assert_eq!(
        s.paths()[0],
        "GET https://storage.googleapis.com/storage/v1/b/demo-gcr-logs/o/accessLog_usage_2019_05_19_18_00_00_00cbe5_v0"
    );
    assert!(s.sent[0].1.ends_with("?fields=generation"));
    // The same job id as the event that named generation 9: the object cannot load twice.
    let mut with = Script::new(vec![Ok((200, DONE))]);
    let named = run(config(&[]), &mut with).unwrap();
    assert_eq!((o.outcome, &o.job_id), (OutcomeKind::Loaded, &named.job_id));
    assert_eq!(o.object.unwrap().generation, Some(9));
}

#[test]
fn a_generation_that_cannot_be_resolved() {
    let session = || LoadSession::new(config(&[]), without_generation(), 1_000, 1_767_225_600, 42);
    // Gone: nothing to load, and the sender learns why (4xx: redelivery cannot help).
    let mut s = Script::new(vec![Ok((404, r#"{"error":{"code":404,"message":"No such object"}}"#))]);
    let e = drive(session(), &mut s, &mut CredentialCache::default()).unwrap_err();
    assert_eq!(e.kind(), "invalid-input");
    assert!(e.message().contains("generation: the event names none, and gs://demo-gcr-logs/"), "{e}");
    // Not allowed to look: Google's refusal, named.
    let mut s = Script::new(vec![Ok((403, DENIED))]);
    let e = drive(session(), &mut s, &mut CredentialCache::default()).unwrap_err();
    assert_eq!(e.kind(), "upstream-rejected");
    assert!(e.message().contains("Cloud Storage objects.get (generation) refused"), "{e}");
    // A garbled answer or a 503 is retried like any transient failure.
    let mut s =
        Script::new(vec![Ok((200, "{}")), Ok((503, "busy")), Ok((200, r#"{"generation":"9"}"#)), Ok((200, DONE))]);
    let o = drive(session(), &mut s, &mut CredentialCache::default()).unwrap();
    assert_eq!(o.retries.unwrap().count, 2);
    for bad in [r#"{"generation":"9223372036854775808"}"#, r#"{"generation":"x"}"#] {
        assert!(crate::storage::parse_generation(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn a_request_the_host_refuses_ends_the_load_at_once_naming_the_fix() {
    let mut script = Script::new(vec![Err("refused https://bigquery.googleapis.com")]);
    let error = run(config(&[]), &mut script).unwrap_err();
    assert_eq!(error.kind(), "upstream-unavailable", "503: the event comes back once the deployment is fixed");
    let message = error.message();
    assert!(
        message
            .starts_with("BigQuery jobs.insert: the host refused to send a request to https://bigquery.googleapis.com"),
        "{message}"
    );
    assert!(message.contains("allowed_outbound_hosts in spin.toml"), "{message}");
    assert_eq!((script.sent.len(), script.slept.len()), (1, 0), "one try, no sleep: no retry can succeed");
}

/// A backfill's reservation at the object's attempt: the batch `b1`, closable after `deadline`.
fn reservation(deadline: u64) -> String {
    format!(
        r#"{{"status":{{"state":"DONE"}},"configuration":{{"query":{{"query":"SELECT 1"}},"labels":{{"role":"reservation","batch":"gcr_usage_batch_00ff_1","deadline":"{deadline}","delivery":"00ff"}}}}}}"#
    )
}
const TOMBSTONE: &str =
    r#"{"status":{"state":"DONE"},"configuration":{"query":{"query":"SELECT 1"},"labels":{"role":"tombstone"}}}"#;
const NOT_FOUND: &str = r#"{"error":{"code":404,"message":"Not found: Job demo-project:US.gcr_usage_batch_00ff_1","errors":[{"reason":"notFound"}]}}"#;
/// The unix second the scripted host starts at (see `Script::unix_secs`).
const T0: u64 = 1_767_225_600;

#[test]
fn a_reservation_whose_batch_loaded_the_object_is_a_duplicate() {
    let batch = r#"{"status":{"state":"DONE"},"statistics":{"load":{"outputRows":"40"}},"configuration":{"load":{"sourceUris":["gs://demo-gcr-logs/other","gs://demo-gcr-logs/accessLog_usage_2019_05_19_18_00_00_00cbe5_v0"]}}}"#;
    let r = reservation(T0 + 600);
    let mut s = Script::new(vec![Ok((409, DUPLICATE)), Ok((200, &r)), Ok((200, RUNNING)), Ok((200, batch))]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Duplicate, "{o:?}");
    let paths = s.paths();
    assert!(paths[1].contains("/jobs/gcr_usage_accessLog") && paths[2].ends_with("/jobs/gcr_usage_batch_00ff_1"));
    assert_eq!(paths[3], paths[2], "a running batch is polled at its own id");
}

#[test]
fn a_reservation_of_a_batch_not_yet_loaded_answers_unavailable_at_once() {
    let r = reservation(T0 + 600);
    let mut s = Script::new(vec![Ok((409, DUPLICATE)), Ok((200, &r)), Ok((404, NOT_FOUND))]);
    let e = run(config(&[]), &mut s).unwrap_err();
    assert!(matches!(e, LoadError::UpstreamUnavailable(_)), "{e:?}");
    assert!(e.message().contains("gcr_usage_batch_00ff_1") && e.message().contains("redeliver"), "{e}");
    assert!(s.slept.is_empty() && s.sent.len() == 3);
}

#[test]
fn an_abandoned_batch_is_closed_and_the_next_attempt_loads() {
    let r = reservation(T0 - 1);
    let mut s = Script::new(vec![
        Ok((409, DUPLICATE)),
        Ok((200, &r)),
        Ok((404, NOT_FOUND)),
        Ok((200, TOMBSTONE)),
        Ok((200, TOMBSTONE)),
        Ok((200, DONE)),
    ]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Loaded);
    assert!(o.job_id.unwrap().ends_with("_r2"));
    let paths = s.paths();
    assert!(paths[3].starts_with("POST ") && paths[4].ends_with("/jobs/gcr_usage_batch_00ff_1"), "{paths:?}");
    // The batch created its load first after all: the tombstone's 409 leads to reading it.
    let batch = r#"{"status":{"state":"DONE"},"configuration":{"load":{}}}"#;
    let mut s = Script::new(vec![
        Ok((409, DUPLICATE)),
        Ok((200, &r)),
        Ok((404, NOT_FOUND)),
        Ok((409, DUPLICATE)),
        Ok((200, batch)),
    ]);
    assert_eq!(run(config(&[]), &mut s).unwrap().outcome, OutcomeKind::Duplicate);
}

#[test]
fn a_tombstone_or_a_foreign_job_at_the_attempt_spends_it() {
    let mut s = Script::new(vec![Ok((409, DUPLICATE)), Ok((200, TOMBSTONE)), Ok((200, DONE))]);
    let o = run(config(&[]), &mut s).unwrap();
    assert_eq!(o.outcome, OutcomeKind::Loaded);
    assert!(o.job_id.unwrap().ends_with("_r2"));
}

#[test]
fn a_spent_quota_is_answered_at_once_without_retries() {
    let quota = r#"{"error":{"code":403,"message":"Quota exceeded: Your table exceeded quota for imports or query appends per table","errors":[{"reason":"quotaExceeded","message":"Quota exceeded"}]}}"#;
    let mut s = Script::new(vec![Ok((403, quota))]);
    let e = run(config(&[]), &mut s).unwrap_err();
    assert!(matches!(e, LoadError::UpstreamUnavailable(_)), "{e:?}");
    assert!(e.message().contains("quota") && e.message().contains("nothing was retried"), "{e}");
    assert_eq!((s.sent.len(), s.slept.len()), (1, 0));
    // A job that failed on the quota: counted, loaded nothing, the next delivery tries again.
    let failed = r#"{"status":{"state":"DONE","errorResult":{"reason":"quotaExceeded","message":"Quota exceeded"}}}"#;
    let mut s = Script::new(vec![Ok((200, failed))]);
    let e = run(config(&[]), &mut s).unwrap_err();
    assert!(matches!(e, LoadError::UpstreamUnavailable(_)) && e.message().contains("quota"), "{e:?}");
}
