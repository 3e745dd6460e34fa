//! Never a trap, whatever comes in or comes back; the same script always gives the same run.

use gcr_usage_host_test::google;
use gcr_usage_host_test::{FakeUpstream, Harness, HarnessResponse, Reply, TestRequest};
use serde_json::json;

use crate::common::*;

/// Every kind of bad request the loader can get, beyond the malformed events of `input.rs`.
fn bad_requests() -> Vec<(&'static str, TestRequest)> {
    let event = fixture("bare-object.json").to_string();
    let mut out: Vec<(&'static str, TestRequest)> = vec![
        ("1 MiB + 1", TestRequest::post("/", vec![b'{'; 1024 * 1024 + 1])),
        ("8 MiB", TestRequest::post("/", vec![b'x'; 8 * 1024 * 1024])),
        ("declared 1 TiB", TestRequest::post("/", event.clone()).header("content-length", "1099511627776")),
        ("content-length not a number", TestRequest::post("/", "{").header("content-length", "lots")),
        ("GET /", TestRequest::get("/")),
        ("PUT /", TestRequest::new(http::Method::PUT, "/").body(event.clone())),
        ("POST /healthz", TestRequest::post("/healthz", event.clone())),
        ("odd method", TestRequest::new(http::Method::from_bytes(b"BREW").unwrap(), "/")),
        ("non-ASCII ce-type", binary_event("google.cloud.storage.object.v1.finalizedü", &fixture("bare-object.json"))),
        ("binary zeros", TestRequest::post("/", vec![0u8; 4096])),
        ("deep nesting", TestRequest::post("/", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)))),
        ("deep object", TestRequest::post("/", format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)))),
        ("huge string", TestRequest::post_json("/", &json!({"bucket": BUCKET, "name": "n".repeat(900_000)}))),
        ("many keys", TestRequest::post("/", format!("{{{}\"bucket\": 1}}", "\"k\": 1, ".repeat(50_000)))),
        ("foreign bucket", bare("other-logs", USAGE_NAME, Some(1))),
    ];
    out.extend(crate::input::malformed_events().into_iter().map(|(r, _)| ("malformed event", r)));
    out
}

/// Upstream answers that are wrong in every way we could think of (insert, then get).
fn bad_upstreams() -> Vec<(&'static str, Reply, Reply)> {
    let done = |rows: &str| {
        Reply::dynamic({
            let rows = rows.to_string();
            move |r| {
                let mut job = google::job_resource(&google::job_of(r), "DONE", Some(1), None);
                job["statistics"]["load"]["outputRows"] = rows.clone().into();
                Reply::json(200, &job)
            }
        })
    };
    vec![
        ("hang", Reply::hang(), google::job_done_echo(1)),
        ("refused", Reply::connection_refused(), google::job_done_echo(1)),
        ("timeout", Reply::fail(|| gcr_usage_host_test::UpstreamError::ConnectionTimeout), google::job_done_echo(1)),
        ("html 200", Reply::text(200, "<html>"), Reply::text(200, "<html>")),
        ("5 MiB 200", Reply::text(200, "x".repeat(5 << 20)), google::job_done_echo(1)),
        ("non-UTF-8", Reply::status(200).body(vec![0xff, 0xfe, 0x00]), Reply::status(500).body(vec![0xc3])),
        ("redirect", Reply::status(301).header("location", "https://example.invalid/"), google::job_done_echo(1)),
        ("204", Reply::status(204), Reply::status(204)),
        ("outputRows not a number", done("many"), done("many")),
        ("outputRows negative", done("-1"), done("-1")),
        ("unknown state", Reply::json(200, &json!({"status": {"state": "WEIRD"}})), google::job_done_echo(1)),
        ("409 then get hangs", google::duplicate_job_echo(), Reply::hang()),
        ("409 then get 409", google::duplicate_job_echo(), google::duplicate_job_echo()),
        ("409 with a huge message", google::google_error(409, "duplicate", &"m".repeat(100_000)), Reply::status(404)),
        ("error envelope of nulls", Reply::json(500, &json!({"error": null})), google::job_done_echo(1)),
    ]
}

#[track_caller]
fn assert_answered(what: &str, r: &HarnessResponse) {
    assert!(
        [200, 202, 400, 403, 405, 413, 422, 500, 502, 503].contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.body_str()
    );
    let body = r.json();
    assert!(body["outcome"].is_string(), "{what}: {body}");
    assert_eq!(only_log_line(&r.run)["httpStatus"], r.status, "{what}");
}

#[tokio::test(start_paused = true)]
async fn never_a_trap_whatever_the_request() {
    let mut statuses = std::collections::BTreeMap::new();
    for (what, request) in bad_requests() {
        let r = harness(&FakeUpstream::new()).handle(request).await.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_answered(what, &r);
        assert!(r.run.outbound.is_empty(), "{what}");
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    assert_eq!(statuses.keys().copied().collect::<Vec<_>>(), [400, 403, 405, 413], "{statuses:?}");
}

#[tokio::test(start_paused = true)]
async fn never_a_trap_with_a_broken_configuration_or_metadata_server() {
    let broken = [("GCR_USAGE_BUCKETS", ""), ("GCR_USAGE_AUTH", "kerberos"), ("GCE_METADATA_HOST", "::::")];
    for (variable, value) in broken {
        for request in [fixture_request("pubsub-push.json"), TestRequest::get("/healthz"), TestRequest::post("/", "{")]
        {
            let r = harness(&FakeUpstream::new()).env(variable, value).handle(request).await.unwrap();
            assert_answered(variable, &r);
            assert_eq!(r.status, 500);
        }
    }
    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(Reply::text(200, "{\"access_token\": 7}")));
    let h = Harness::new()
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .env("GCR_USAGE_PROJECT", PROJECT)
        .env("GCR_USAGE_WAIT_SECONDS", "1");
    let r = h.upstream(up).handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    assert_answered("token not a string", &r);
}

#[tokio::test(start_paused = true)]
async fn never_a_trap_whatever_google_answers() {
    for (what, insert, get) in bad_upstreams() {
        let up = FakeUpstream::new();
        up.route(google::jobs_insert_rule(PROJECT).reply(insert)).route(google::jobs_get_rule(PROJECT).reply(get));
        let h = harness(&up).env("GCR_USAGE_WAIT_SECONDS", "2");
        for request in [fixture_request("cloudevent-binary.json"), fixture_request("pubsub-push.json")] {
            let r = h.handle(request).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_answered(what, &r);
            assert!(!r.run.outbound.is_empty(), "{what}");
            let reason = r.json()["reason"].as_str().map(str::len).unwrap_or(0);
            assert!(reason < 2000, "{what}: Google's words are quoted, not copied whole ({reason} bytes)");
        }
    }
}

/// A script that exercises everything random or timed: token, retries with jitter, polling.
fn eventful_run(seed: u64) -> Harness {
    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(google::metadata_token("ya29.det")))
        .route(google::jobs_insert_rule(PROJECT).replies([
            google::server_error(503),
            Reply::connection_refused(),
            google::job_running_echo(),
        ]))
        .route(google::jobs_get_rule(PROJECT).replies([
            google::server_error(500),
            google::job_running_echo(),
            google::job_done_echo(21),
        ]));
    Harness::new().env("GCR_USAGE_PROJECT", PROJECT).env("GCR_USAGE_BUCKETS", BUCKET).seed(seed).upstream(up)
}

#[tokio::test(start_paused = true)]
async fn the_same_script_gives_the_same_run() {
    let mut runs = Vec::new();
    for seed in [0, 0, 1] {
        let h = eventful_run(seed);
        let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body_str());
        runs.push(r);
    }
    let [a, b, c] = &runs[..] else { unreachable!() };
    assert_eq!((a.status, &a.body), (b.status, &b.body), "identical answers");
    assert_eq!(a.run.stdout, b.run.stdout, "identical log lines");
    assert_eq!(a.run.fuel_consumed, b.run.fuel_consumed, "identical fuel");
    assert_eq!(a.run.elapsed, b.run.elapsed, "identical virtual time");
    let sent = |r: &HarnessResponse| {
        r.run
            .outbound
            .iter()
            .map(|q| (q.method.clone(), q.url.clone(), q.headers.clone(), q.body.clone(), q.at))
            .collect::<Vec<_>>()
    };
    assert_eq!(sent(a), sent(b), "identical outbound requests, bodies and timing");
    assert_eq!(a.run.outbound.len(), 7, "token, 3 inserts, 3 gets");

    // Another seed moves only the jitter and the delivery label: same job, same requests
    // otherwise, other sleeps.
    assert_eq!(a.body, c.body);
    let without_time = |r: &HarnessResponse| {
        sent(r).into_iter().map(|(m, u, h, b, _)| (m, u, h, google::without_delivery_label(&b))).collect::<Vec<_>>()
    };
    assert_eq!(without_time(a), without_time(c));
    assert_ne!(sent(a)[1].3, sent(c)[1].3, "each delivery labels its job with its own token");
    assert_ne!(gaps(&a.run), gaps(&c.run), "the seed drives the backoff jitter");
}

#[tokio::test(start_paused = true)]
async fn fuel_is_identical_across_harnesses_for_every_kind_of_answer() {
    let requests = || {
        [
            fixture_request("cloudevent-structured.json"),
            bare(BUCKET, "usage-report.csv", None),
            TestRequest::post("/", "{"),
            TestRequest::get("/healthz"),
        ]
    };
    let fuel = |up: FakeUpstream| async move {
        let h = harness(&up);
        let mut out = Vec::new();
        for request in requests() {
            out.push(h.handle(request).await.unwrap().run.fuel_consumed);
        }
        out
    };
    let (a, b) = (fuel(loads(1)).await, fuel(loads(1)).await);
    assert_eq!(a, b);
    assert!(a.iter().all(|&f| f > 0), "{a:?}");
}

/// The README promises one log line per event; the adapter skips successful health checks by
/// matching the path *prefix* `/healthz`, so a successful event POSTed to e.g. `/healthz-probe`
/// or `/healthzz` is answered but never logged.
#[tokio::test(start_paused = true)]
async fn an_event_posted_to_a_path_starting_with_healthz_is_still_logged() {
    let up = loads(1);
    let mut request = fixture_request("bare-object.json");
    request.path = "/healthzz".into();
    let r = harness(&up).handle(request).await.unwrap();
    assert_eq!((r.status, &r.json()["outcome"]), (200, &json!("loaded")));
    assert_eq!(r.run.log_lines().len(), 1, "one log line per event: {:?}", r.run.stdout_str());
}
