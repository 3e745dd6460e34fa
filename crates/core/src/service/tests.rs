//! [`handle`] with one [`InstanceState`] across many requests, as a reusing host runs it: what
//! is fetched how often, and that nothing but caches crosses from one request to the next.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::auth::google_keys::{MIN_FETCH_INTERVAL_MS, STALE_IF_ERROR_MS};
use crate::auth::jwt::sign_rs256;
use crate::auth::jwt::test_keys::{jwk, key};

const AUD: &str = "https://gcr-usage-abc-uc.a.run.app/";
const SA: &str = "push@demo-project.iam.gserviceaccount.com";
const JWKS: &str = "http://127.0.0.1:9/certs";
const DONE: &str = r#"{"status":{"state":"DONE"},"statistics":{"load":{"outputRows":"3"}}}"#;
const START_UNIX: u64 = 1_767_225_600;

/// Answers every request from a closure of (method, URL); records what was sent.
struct Host {
    now_ms: u64,
    sent: Vec<String>,
    /// `None`: the key endpoint is down.
    keys: Option<(String, u64)>,
    answers: VecDeque<(u16, String)>,
}

impl Host {
    fn new() -> Host {
        let keys = json!({"keys": [jwk(key(0), "k0")]}).to_string();
        Host { now_ms: 1_000, sent: Vec::new(), keys: Some((keys, 20_000)), answers: VecDeque::new() }
    }
    fn key_fetches(&self) -> usize {
        self.sent.iter().filter(|s| s.contains("/certs")).count()
    }
}

impl Io for Host {
    fn send(&mut self, request: http::Request<Vec<u8>>, _timeout: Duration) -> Reply {
        let url = request.uri().to_string();
        self.sent.push(format!("{} {url}", request.method()));
        self.now_ms += 5;
        let (status, body, max_age) = if url.contains("/certs") {
            match &self.keys {
                Some((body, max_age)) => (200, body.clone(), Some(*max_age)),
                None => return Reply::Failed("connection refused".into()),
            }
        } else if let Some((status, body)) = self.answers.pop_front() {
            (status, body, None)
        } else {
            (200, DONE.to_string(), None)
        };
        let mut response = http::Response::builder().status(status);
        if let Some(max_age) = max_age {
            response = response.header("cache-control", format!("public, max-age={max_age}"));
        }
        Reply::Response(response.body(body.into_bytes()).unwrap())
    }
    fn sleep(&mut self, d: Duration) {
        self.now_ms += d.as_millis() as u64;
    }
    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
    fn unix_secs(&mut self) -> u64 {
        START_UNIX + self.now_ms / 1000
    }
    fn random_u64(&mut self) -> u64 {
        self.now_ms
    }
}

fn config(extra: &[(&str, &str)]) -> Result<Config, crate::ConfigError> {
    let base = [
        ("GCR_USAGE_BUCKETS", "demo-gcr-logs"),
        ("GCR_USAGE_PROJECT", "demo-project"),
        ("GCR_USAGE_AUTH", "none"),
        ("GCR_USAGE_TRIGGER_AUTH", "google-oidc"),
        ("GCR_USAGE_TRIGGER_AUDIENCE", AUD),
        ("GCR_USAGE_TRIGGER_EMAILS", SA),
        ("GCR_USAGE_OIDC_JWKS_URL", JWKS),
    ];
    Config::from_env(|name| extra.iter().chain(base.iter()).find(|(n, _)| *n == name).map(|(_, v)| v.to_string()))
}

fn token(kid: &str, email: &str, now_unix: u64) -> String {
    let claims = json!({"iss": "https://accounts.google.com", "aud": AUD, "email": email, "email_verified": true,
                        "iat": now_unix - 10, "exp": now_unix + 3000});
    sign_rs256(key(0), Some(kid), &claims)
}

const EVENT: &str =
    r#"{"bucket":"demo-gcr-logs","name":"accessLog_usage_2019_05_19_18_00_00_00cbe5_v0","generation":"7"}"#;

fn post(
    host: &mut Host,
    instance: &mut InstanceState,
    config: Result<Config, crate::ConfigError>,
    bearer: Option<&str>,
) -> Handled {
    let mut headers = HeaderMap::new();
    if let Some(token) = bearer {
        headers.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    }
    handle(
        &Request { method: "POST", path_and_query: "/", headers: &headers, body: EVENT.as_bytes() },
        config,
        host,
        instance,
    )
}

fn now_unix(host: &Host) -> u64 {
    START_UNIX + host.now_ms / 1000
}

#[test]
fn one_key_set_fetch_for_a_hundred_events() {
    let (mut host, mut instance) = (Host::new(), InstanceState::default());
    for _ in 0..100 {
        let t = token("k0", SA, now_unix(&host));
        let handled = post(&mut host, &mut instance, config(&[]), Some(&t));
        assert_eq!(handled.answer.status, 200, "{:?}", handled.answer.body);
        assert_eq!(handled.caller.as_deref(), Some(SA));
    }
    assert_eq!((host.key_fetches(), instance.keys.fetches()), (1, 1));
    // A fresh instance for every event (no reuse) fetches every time: the figure before.
    let mut host = Host::new();
    for _ in 0..100 {
        let t = token("k0", SA, now_unix(&host));
        assert_eq!(post(&mut host, &mut InstanceState::default(), config(&[]), Some(&t)).answer.status, 200);
    }
    assert_eq!(host.key_fetches(), 100);
}

#[test]
fn a_flood_of_unknown_key_ids_fetches_at_most_once_per_interval() {
    let (mut host, mut instance) = (Host::new(), InstanceState::default());
    let t = token("k0", SA, now_unix(&host));
    assert_eq!(post(&mut host, &mut instance, config(&[]), Some(&t)).answer.status, 200);
    // 1 000 anonymous requests naming made-up keys over ~10 s of host time.
    for i in 0..1_000 {
        host.now_ms += 10;
        let forged = token(&format!("made-up-{i}"), SA, now_unix(&host));
        let handled = post(&mut host, &mut instance, config(&[]), Some(&forged));
        assert_eq!(handled.answer.status, 401);
        assert!(handled.answer.message.contains("not among Google's signing keys"), "{}", handled.answer.message);
    }
    let elapsed = host.now_ms - 1_000;
    assert!(
        host.key_fetches() as u64 <= 1 + elapsed / MIN_FETCH_INTERVAL_MS + 1,
        "{} fetches in {elapsed} ms",
        host.key_fetches()
    );
    assert_eq!(host.key_fetches(), 1, "the first fetch was under 30 s ago");
    // A real rotation is picked up once the interval has passed.
    host.now_ms += MIN_FETCH_INTERVAL_MS;
    host.keys = Some((json!({"keys": [jwk(key(0), "k0"), jwk(key(0), "k1")]}).to_string(), 20_000));
    let rotated = token("k1", SA, now_unix(&host));
    assert_eq!(post(&mut host, &mut instance, config(&[]), Some(&rotated)).answer.status, 200);
    assert_eq!(host.key_fetches(), 2);
}

#[test]
fn an_outage_of_the_key_endpoint() {
    // No keys held and Google unreachable: 503 (the trigger redelivers), and the next request
    // within the interval does not try again.
    let (mut host, mut instance) = (Host::new(), InstanceState::default());
    host.keys = None;
    let t = token("k0", SA, now_unix(&host));
    let first = post(&mut host, &mut instance, config(&[]), Some(&t));
    assert_eq!(first.answer.status, 503, "{}", first.answer.message);
    assert!(first.answer.message.contains("connection refused"), "{}", first.answer.message);
    let second = post(&mut host, &mut instance, config(&[]), Some(&t));
    assert_eq!(second.answer.status, 503);
    assert!(second.answer.message.contains("moments ago"), "{}", second.answer.message);
    assert_eq!(host.key_fetches(), 1);

    // Keys held, then their max-age passes during an outage: they still verify (stale-if-error)…
    let (mut host, mut instance) = (Host::new(), InstanceState::default());
    let t = token("k0", SA, now_unix(&host));
    assert_eq!(post(&mut host, &mut instance, config(&[]), Some(&t)).answer.status, 200);
    host.keys = None;
    host.now_ms += 20_000_000; // past max-age=20000 s
    let t = token("k0", SA, now_unix(&host));
    let stale = post(&mut host, &mut instance, config(&[]), Some(&t));
    assert_eq!(stale.answer.status, 200, "{}", stale.answer.message);
    let again = post(&mut host, &mut instance, config(&[]), Some(&t));
    assert_eq!(again.answer.status, 200, "{}", again.answer.message);
    assert_eq!(host.key_fetches(), 2, "one failed refetch, then the interval");
    // …but a key id they do not hold cannot be verified: 503, not a refusal.
    host.now_ms += MIN_FETCH_INTERVAL_MS;
    let unknown = token("k9", SA, now_unix(&host));
    assert_eq!(post(&mut host, &mut instance, config(&[]), Some(&unknown)).answer.status, 503);
    // …and only for so long.
    host.now_ms += STALE_IF_ERROR_MS;
    let t = token("k0", SA, now_unix(&host));
    assert_eq!(post(&mut host, &mut instance, config(&[]), Some(&t)).answer.status, 503);
}

#[test]
fn two_configurations_alternating_through_one_instance_share_nothing_but_their_own_caches() {
    // Two deployments' worth of settings (a Spin variable provider can change them under a
    // live instance): other key endpoints, audiences, allow-lists and token sources.
    const SA_B: &str = "other-push@demo-project.iam.gserviceaccount.com";
    let a = || config(&[("GCR_USAGE_AUTH", "metadata"), ("GCR_USAGE_PROJECT", "")]);
    let b = || {
        config(&[
            ("GCR_USAGE_OIDC_JWKS_URL", "http://127.0.0.2:9/certs"),
            ("GCR_USAGE_TRIGGER_EMAILS", SA_B),
            ("GCR_USAGE_AUTH", "token"),
            ("GCR_USAGE_TOKEN", "ya29.fixed-b"),
        ])
    };
    let (mut host, mut instance) = (Host::new(), InstanceState::default());
    let mut a_answers = Vec::new();
    let mut b_answers = Vec::new();
    for round in 0..10 {
        if round == 0 {
            host.answers.extend([
                (200, "meta-project\n".into()),
                (200, r#"{"access_token":"ya29.meta-a","expires_in":3599}"#.into()),
            ]);
        }
        let now = now_unix(&host);
        let handled = post(&mut host, &mut instance, a(), Some(&token("k0", SA, now)));
        a_answers.push((handled.answer.status, handled.caller.clone(), handled.answer.body["destination"].clone()));
        // B's caller is refused by A's allow-list and A's caller by B's: nothing of the last
        // request's verdict carries over.
        assert_eq!(post(&mut host, &mut instance, a(), Some(&token("k0", SA_B, now))).answer.status, 403);
        let handled = post(&mut host, &mut instance, b(), Some(&token("k0", SA_B, now)));
        b_answers.push((handled.answer.status, handled.caller.clone(), handled.answer.body["destination"].clone()));
        assert_eq!(post(&mut host, &mut instance, b(), Some(&token("k0", SA, now))).answer.status, 403);
        assert_eq!(post(&mut host, &mut instance, b(), None).answer.status, 401);
    }
    assert!(
        a_answers.iter().all(|x| *x == (200, Some(SA.into()), json!("meta-project:storageanalysis.usage"))),
        "{a_answers:?}"
    );
    assert!(
        b_answers.iter().all(|x| *x == (200, Some(SA_B.into()), json!("demo-project:storageanalysis.usage"))),
        "{b_answers:?}"
    );
    let certs: Vec<&String> = host.sent.iter().filter(|s| s.contains("/certs")).collect();
    // Each endpoint's keys are fetched once and only ever verify that endpoint's tokens.
    assert_eq!(certs, ["GET http://127.0.0.1:9/certs", "GET http://127.0.0.2:9/certs"]);
    assert_eq!(host.sent.iter().filter(|s| s.contains("computeMetadata")).count(), 2, "A's project and token, once");
}
