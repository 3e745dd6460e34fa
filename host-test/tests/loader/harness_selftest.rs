//! Self-tests of the harness against the probe guest (`host-test/test-guests/probe`): each test
//! proves one promise the loader's tests rely on.

use std::time::Duration;

use gcr_usage_host_test::{
    DEFAULT_FIRST_BYTE_TIMEOUT, DEFAULT_WALL_START_UNIX_SECS, FakeUpstream, Harness, HarnessErrorKind, LoadError,
    OutcomeKind, Reply, Rule, TestRequest, UNMATCHED_STATUS, exact, google, object_ref, prefix, probe_wasm,
};
use http::Method;

fn probe() -> Harness {
    Harness::new().component(probe_wasm())
}

/// Asks the probe to send one outbound request to `url` and returns its report.
fn fetch(url: &str) -> TestRequest {
    TestRequest::post("/fetch", url)
}

/// `mono_before mono_after wall_before wall_after` reported by `/sleep`.
fn sleep_report(body: &str) -> [u64; 4] {
    let v: Vec<u64> = body.split(' ').map(|x| x.parse().unwrap()).collect();
    [v[0], v[1], v[2], v[3]]
}

#[tokio::test(start_paused = true)]
async fn sleeps_advance_virtual_time_instantly_and_consistently() {
    let h = probe();
    // Compile first so that the real-time bound below measures only the run.
    gcr_usage_host_test::component(&probe_wasm()).unwrap();
    let tokio_before = tokio::time::Instant::now();
    let real_before = std::time::Instant::now();

    let r = h.handle(TestRequest::get("/sleep?ms=30000")).await.unwrap();

    let [m0, m1, w0, w1] = sleep_report(r.body_str());
    assert_eq!(m1 - m0, 30_000_000_000, "guest monotonic clock advanced by exactly the sleep");
    assert_eq!(w0, DEFAULT_WALL_START_UNIX_SECS, "wall clock starts at 2026-01-01T00:00:00Z");
    assert_eq!(w1 - w0, 30, "wall clock advanced with the sleep");
    assert_eq!(r.run.elapsed, Duration::from_secs(30));
    assert_eq!(tokio::time::Instant::now() - tokio_before, Duration::from_secs(30));
    assert!(
        real_before.elapsed() < Duration::from_secs(5),
        "30 s of guest sleep took {:?} of real time",
        real_before.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn time_line_continues_across_calls_and_honours_advance() {
    let h = probe().start_time_unix(2_000_000_000);
    let first = sleep_report(h.handle(TestRequest::get("/sleep?ms=1500")).await.unwrap().body_str());
    tokio::time::advance(Duration::from_secs(3600)).await;
    let second = sleep_report(h.handle(TestRequest::get("/sleep?ms=0")).await.unwrap().body_str());
    assert_eq!(first[2], 2_000_000_000);
    assert_eq!(first[1], 1_500_000_000);
    assert_eq!(second[0], 3_601_500_000_000);
    assert_eq!(second[2], 2_000_000_000 + 3601);
    assert_eq!(h.elapsed(), Duration::from_millis(3_601_500));
}

#[tokio::test(start_paused = true)]
async fn env_is_exactly_what_the_test_set() {
    let h = probe().env("GCR_USAGE_PROJECT", "p1").env("B", "two").env("B", "three");
    let r = h.handle(TestRequest::get("/env")).await.unwrap();
    assert_eq!(r.body_str(), "GCR_USAGE_PROJECT=p1\nB=three\n");
    let r = probe().handle(TestRequest::get("/env")).await.unwrap();
    assert_eq!(r.body_str(), "", "nothing is inherited from the host process");
}

#[tokio::test(start_paused = true)]
async fn outbound_requests_are_recorded_and_answered_in_script_order() {
    let up = FakeUpstream::new();
    up.route(
        google::jobs_insert_rule("p")
            .reply(google::server_error(503))
            .reply(Reply::text(200, "second").header("x-answer", "2")),
    );
    let h = probe().upstream(up.clone());
    let url = "https://bigquery.googleapis.com/bigquery/v2/projects/p/jobs?prettyPrint=false";

    let r1 = h.handle(fetch(url)).await.unwrap();
    let r2 = h.handle(fetch(url)).await.unwrap();
    let r3 = h.handle(fetch(url)).await.unwrap();

    assert!(r1.body_str().starts_with("503\n{\"error\""), "{}", r1.body_str());
    assert_eq!(r2.body_str(), "200\nsecond");
    assert_eq!(r3.body_str(), "200\nsecond", "the last reply repeats");
    assert_eq!(up.hits(0), 3);

    let sent = &r1.run.outbound;
    assert_eq!(sent.len(), 1, "each call reports its own outbound requests");
    let req = &sent[0];
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.url, url);
    assert_eq!((req.scheme.as_str(), req.authority.as_str()), ("https", "bigquery.googleapis.com"));
    assert_eq!(req.path, "/bigquery/v2/projects/p/jobs");
    assert_eq!(req.query_param("prettyPrint"), Some("false"));
    assert_eq!(req.header("x-probe"), Some("1"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.body_str(), "probe-body");
    assert_eq!(req.rule, Some(0));
    assert_eq!(up.requests().len(), 3);
    assert_eq!(up.requests_to(Method::POST, "/bigquery/").len(), 3);
    up.assert_all_matched();
}

#[tokio::test(start_paused = true)]
async fn rules_match_in_order_by_method_host_and_path() {
    let up = FakeUpstream::new();
    up.route(Rule::get(exact("/a")).reply(Reply::text(200, "get-a")))
        .route(Rule::post(prefix("/a")).host("x.test").reply(Reply::text(201, "post-a-prefix")))
        .route(Rule::any_method(prefix("/")).reply(Reply::text(202, "fallback")));
    let h = probe().upstream(up.clone());
    let get = |url: &str| fetch(url).header("x-method", "GET");

    assert_eq!(h.handle(get("http://x.test/a")).await.unwrap().body_str(), "200\nget-a");
    assert_eq!(h.handle(fetch("http://x.test/a/b")).await.unwrap().body_str(), "201\npost-a-prefix");
    assert_eq!(h.handle(fetch("http://y.test/a/b")).await.unwrap().body_str(), "202\nfallback");
    assert_eq!(
        h.handle(get("http://x.test/a?q=1")).await.unwrap().body_str(),
        "200\nget-a",
        "query is not part of the path"
    );
    assert_eq!([up.hits(0), up.hits(1), up.hits(2)], [2, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn delays_hangs_and_transport_errors_run_on_virtual_time() {
    let up = FakeUpstream::new();
    up.route(Rule::post(exact("/slow")).reply(Reply::text(200, "late").delay(Duration::from_secs(10))))
        .route(Rule::post(exact("/hang")).reply(Reply::hang()))
        .route(Rule::post(exact("/refused")).reply(Reply::connection_refused()))
        .route(
            Rule::post(exact("/timeout")).reply(Reply::fail(|| gcr_usage_host_test::UpstreamError::ConnectionTimeout)),
        );
    let h = probe().upstream(up);

    let r = h.handle(fetch("http://x.test/slow")).await.unwrap();
    assert_eq!((r.body_str(), r.run.elapsed), ("200\nlate", Duration::from_secs(10)));

    let r = h.handle(fetch("http://x.test/hang").header("x-first-byte-timeout-ms", "5000")).await.unwrap();
    assert_eq!((r.body_str(), r.run.elapsed), ("error:ErrorCode::ConnectionReadTimeout", Duration::from_secs(5)));

    let r = h.handle(fetch("http://x.test/slow").header("x-first-byte-timeout-ms", "2000")).await.unwrap();
    assert_eq!(
        (r.body_str(), r.run.elapsed),
        ("error:ErrorCode::ConnectionReadTimeout", Duration::from_secs(2)),
        "a delay past the timeout is a timeout"
    );

    let r = h.handle(fetch("http://x.test/hang")).await.unwrap();
    assert_eq!(r.run.elapsed, DEFAULT_FIRST_BYTE_TIMEOUT);

    let r = h.handle(fetch("http://x.test/refused")).await.unwrap();
    assert_eq!((r.body_str(), r.run.elapsed), ("error:ErrorCode::ConnectionRefused", Duration::ZERO));
    let r = h.handle(fetch("http://x.test/timeout")).await.unwrap();
    assert_eq!(r.body_str(), "error:ErrorCode::ConnectionTimeout");
}

#[tokio::test(start_paused = true)]
async fn unmatched_requests_are_answered_599_and_reported() {
    let h = probe();
    let r = h.handle(fetch("https://storage.googleapis.com/b/o")).await.unwrap();
    assert!(r.body_str().starts_with(&format!("{UNMATCHED_STATUS}\n")), "{}", r.body_str());
    assert!(r.body_str().contains("no FakeUpstream rule matched POST https://storage.googleapis.com/b/o"));
    let unmatched = h.fake_upstream().take_unmatched();
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0].rule, None);
    assert_eq!(unmatched[0].url, "https://storage.googleapis.com/b/o");
    h.fake_upstream().assert_all_matched();
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "1 outbound request(s) matched no FakeUpstream rule")]
async fn unacknowledged_unmatched_requests_fail_the_test_when_the_harness_drops() {
    let h = probe();
    h.handle(fetch("https://example.invalid/")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stdout_and_stderr_are_captured() {
    let r = probe().handle(TestRequest::get("/print")).await.unwrap();
    let lines = r.run.log_lines();
    assert_eq!(
        lines,
        vec![serde_json::json!({"event": "hello", "n": 1}), serde_json::json!({"event": "hello", "n": 2})]
    );
    assert_eq!(r.run.stderr_str(), "to stderr\n");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.status, 200);
}

#[tokio::test(start_paused = true)]
async fn traps_and_fuel_exhaustion_are_errors_not_panics() {
    let err = probe().handle(TestRequest::get("/trap")).await.unwrap_err();
    assert!(err.is_trap(), "{err}");
    assert!(err.message.contains("unreachable"), "{err}");

    let err = probe().fuel(5_000_000).handle(TestRequest::get("/spin?n=100000000")).await.unwrap_err();
    assert_eq!(err.kind, HarnessErrorKind::Trap);
    assert!(err.message.contains("fuel"), "{err}");
    assert_eq!(err.run.fuel_consumed, 5_000_000);
}

/// The benchmarks' unmetered mode (as `wasmtime serve` runs a component) really has no meter:
/// a tank that traps the metered run does not stop it.
#[tokio::test(start_paused = true)]
async fn an_unmetered_harness_runs_past_any_fuel_and_counts_none() {
    let spin = || TestRequest::get("/spin?n=10000");
    let metered = probe().fuel(1_000).handle(spin()).await.unwrap_err();
    assert!(metered.message.contains("fuel"), "{metered}");
    let unmetered = probe().fuel(1_000).unmetered().handle(spin()).await.unwrap();
    assert_eq!(unmetered.status, 200);
    assert_eq!(unmetered.body_str(), probe().handle(spin()).await.unwrap().body_str(), "the same answer");
    assert_eq!(unmetered.run.fuel_consumed, 0);
}

#[tokio::test(start_paused = true)]
async fn fuel_and_random_are_deterministic() {
    let spin = || TestRequest::get("/spin?n=10000");
    let a = probe().handle(spin()).await.unwrap().run.fuel_consumed;
    let b = probe().handle(spin()).await.unwrap().run.fuel_consumed;
    assert!(a > 10_000, "fuel counts work: {a}");
    assert_eq!(a, b);

    let random = |seed| async move {
        probe().seed(seed).handle(TestRequest::get("/random")).await.unwrap().body_str().to_string()
    };
    assert_eq!(random(7).await, random(7).await);
    assert_ne!(random(7).await, random(8).await);
}

#[tokio::test(start_paused = true)]
async fn typed_load_export_is_callable() {
    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(google::metadata_token("tok")));
    let h = probe().upstream(up);
    let r = h.call_load(object_ref("bkt", "usage_2026_01_01_v0", Some(7))).await.unwrap();
    let outcome = r.result.expect("load succeeded");
    assert_eq!(outcome.kind, OutcomeKind::Loaded);
    assert_eq!(outcome.object.bucket, "bkt");
    assert_eq!(outcome.object.generation, Some(7));
    assert!(outcome.rows.unwrap() > 0);
    assert_eq!(r.run.elapsed, Duration::from_secs(1));
    assert_eq!(r.run.outbound.len(), 1);
    assert_eq!(r.run.outbound[0].authority, google::METADATA_HOST);
    assert_eq!(r.run.log_lines()[0]["event"], "load");

    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(Reply::connection_refused()));
    let r = probe().upstream(up).call_load(object_ref("bkt", "o", None)).await.unwrap();
    assert!(
        matches!(r.result, Err(LoadError::UpstreamUnavailable(ref m)) if m.contains("ConnectionRefused")),
        "{:?}",
        r.result
    );
}

#[tokio::test(start_paused = true)]
async fn bigquery_helpers_echo_the_job_the_guest_named() {
    let up = FakeUpstream::new();
    up.route(google::jobs_get_rule("p").replies([google::job_running_echo(), google::job_done_echo(42)]))
        .route(google::jobs_insert_rule("p").reply(google::duplicate_job_echo()));
    let h = probe().upstream(up);
    let get = fetch("https://bigquery.googleapis.com/bigquery/v2/projects/p/jobs/job-1?location=US")
        .header("x-method", "GET");

    let running = h.handle(get.clone()).await.unwrap();
    let done = h.handle(get).await.unwrap();
    let job = |r: &gcr_usage_host_test::HarnessResponse| -> serde_json::Value {
        serde_json::from_str(r.body_str().split_once('\n').unwrap().1).unwrap()
    };
    assert_eq!(job(&running)["status"]["state"], "RUNNING");
    let done = job(&done);
    assert_eq!(done["status"]["state"], "DONE");
    assert_eq!(done["jobReference"], serde_json::json!({"projectId": "p", "jobId": "job-1", "location": "US"}));
    assert_eq!(done["statistics"]["load"]["outputRows"], "42");

    let insert_body = r#"{"jobReference":{"projectId":"p","jobId":"gcr-usage-abc","location":"EU"}}"#;
    let dup = h
        .handle(fetch("https://bigquery.googleapis.com/bigquery/v2/projects/p/jobs").header("x-out-body", insert_body))
        .await
        .unwrap();
    let (status, body) = dup.body_str().split_once('\n').unwrap();
    assert_eq!(status, "409");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["errors"][0]["reason"], "duplicate");
    assert_eq!(body["error"]["message"], "Already Exists: Job p:EU.gcr-usage-abc");
}

#[test]
fn block_on_gives_a_paused_runtime_outside_tokio_test() {
    let r =
        gcr_usage_host_test::block_on(async { probe().handle(TestRequest::get("/sleep?ms=43200000")).await.unwrap() });
    assert_eq!(r.run.elapsed, Duration::from_secs(43_200));
}

#[tokio::test(start_paused = true)]
async fn a_guest_that_never_answers_hits_the_virtual_timeout() {
    let up = FakeUpstream::new();
    up.route(Rule::post(exact("/hang")).reply(Reply::hang()));
    // The hang resolves after the default 600 s first-byte timeout; bound the call below it.
    let err =
        probe().upstream(up).timeout(Duration::from_secs(60)).handle(fetch("http://x.test/hang")).await.unwrap_err();
    assert_eq!(err.kind, HarnessErrorKind::Timeout);
    assert_eq!(err.run.elapsed, Duration::from_secs(60));
}

#[tokio::test]
#[should_panic(expected = "tokio time is not paused")]
async fn running_without_paused_time_is_refused() {
    let _ = probe().handle(TestRequest::get("/env")).await;
}

#[tokio::test(start_paused = true)]
async fn large_bodies_are_recorded_whole_and_body_before_handle_limit_is_visible() {
    let up = FakeUpstream::new();
    up.route(Rule::post(exact("/big")).reply(Reply::status(204)));
    let h = probe().upstream(up.clone()).timeout(Duration::from_secs(3600));

    // Streamed after `handle`, as most clients do: any size works.
    let r = h.handle(fetch("http://x.test/big").header("x-out-body-len", "100000")).await.unwrap();
    assert_eq!(r.body_str(), "204\n");
    assert_eq!(r.run.outbound[0].body.len(), 100_000);

    // Written *before* `handle` (what the loader does): until the request is handed to the host,
    // nothing drains wasmtime-wasi-http's outgoing-body buffer (default settings, the same in
    // `wasmtime serve`), so one 4 KiB write fits and the next blocks forever. The harness shows
    // that as a timeout instead of hanging the test.
    let r = h.handle(fetch("http://x.test/big").header("x-out-body-len", "4096").header("x-body-first", "1")).await;
    assert_eq!(r.unwrap().run.outbound[0].body.len(), 4096);
    let err = h
        .handle(fetch("http://x.test/big").header("x-out-body-len", "4097").header("x-body-first", "1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, HarnessErrorKind::Timeout, "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_reused_instance_keeps_its_memory_until_its_reuse_count_or_a_trap() {
    let h = probe();
    let mut instance = h.reused_instance(3);
    let mut counts = Vec::new();
    for _ in 0..4 {
        counts.push(instance.handle(TestRequest::get("/count")).await.unwrap().body_str().to_string());
    }
    assert_eq!(counts, ["1", "2", "3", "1"], "three requests per instance, then a fresh one");
    assert_eq!(instance.instances(), 2);
    // Output is reported per request, not accumulated.
    let printed = instance.handle(TestRequest::get("/print")).await.unwrap();
    assert_eq!(printed.run.stdout_str().lines().count(), 2);
    let again = instance.handle(TestRequest::get("/random")).await.unwrap();
    assert!(again.run.stdout.is_empty(), "{:?}", again.run.stdout_str());
    // A trap ends the instance, as wasmtime serve's worker ends on one: the next request gets
    // a fresh instance.
    let mut instance = h.reused_instance(100);
    assert_eq!(instance.handle(TestRequest::get("/count")).await.unwrap().body_str(), "1");
    let trapped = instance.handle(TestRequest::get("/trap")).await.unwrap_err();
    assert_eq!(trapped.kind, HarnessErrorKind::Trap);
    assert_eq!(instance.handle(TestRequest::get("/count")).await.unwrap().body_str(), "1");
    assert_eq!(instance.instances(), 2);
    // Each request has its own fuel, and the one stream of randomness goes on.
    let mut instance = h.reused_instance(10);
    let a = instance.handle(TestRequest::get("/random")).await.unwrap();
    let b = instance.handle(TestRequest::get("/random")).await.unwrap();
    assert_ne!(a.body_str(), b.body_str());
    assert!(
        b.run.fuel_consumed > 0 && b.run.fuel_consumed < a.run.fuel_consumed,
        "the first call paid for instantiation"
    );
}
