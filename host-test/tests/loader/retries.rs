//! Transient failures: retries with the same job id and jittered exponential backoff, the
//! GCR_USAGE_WAIT_SECONDS deadline (503), hanging upstreams, and where the deadline is not kept.

use std::time::Duration;

use gcr_usage_host_test::{FakeUpstream, Reply, google};

use crate::common::*;
use crate::jobs::{MSG, event};

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_the_same_job_and_growing_jittered_backoff() {
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).replies([
        google::server_error(500),
        google::server_error(503),
        google::rate_limited(),
        Reply::connection_refused(),
        google::google_error(403, "rateLimitExceeded", "Exceeded rate limits: too many table update operations"),
        Reply::text(502, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
        google::job_done_echo(77),
    ]));
    let r = harness(&up).env("GCR_USAGE_WAIT_SECONDS", "60").handle(event()).await.unwrap();
    let body = assert_loaded_after(&r, USAGE_NAME, Some(USAGE_GEN), 77, 6);
    assert_eq!(
        body["retries"]["last"],
        "BigQuery jobs.insert answered HTTP 502: unexpected body: <html><body><h1>502 Bad Gateway</h1></body></html>"
    );
    assert_eq!(r.run.outbound.len(), 7);
    assert!(r.run.outbound.iter().all(|q| q.body == r.run.outbound[0].body), "same job id, same body, every time");
    let gaps = gaps(&r.run);
    // Equal jitter: the n-th sleep lies in [full/2, full], full = 1 s, 2 s, 4 s, 8 s, 16 s, 16 s.
    for (gap, full) in gaps.iter().zip([1000, 2000, 4000, 8000, 16000, 16000]) {
        assert_between(*gap, full / 2, full);
    }
    assert!(
        gaps.iter().zip([1000u64, 2000, 4000, 8000, 16000, 16000]).any(|(g, f)| {
            let ms = g.as_millis() as u64;
            ms > f / 2 + 1 && ms < f - 1
        }),
        "jitter is visible: {gaps:?}"
    );
    assert_eq!(r.run.elapsed, r.run.outbound[6].at - r.run.outbound[0].at);
    assert_eq!(log_line(&r)["durationMs"], r.run.elapsed.as_millis() as u64, "the log line reports the time spent");
}

#[tokio::test(start_paused = true)]
async fn transient_errors_until_the_deadline_are_503() {
    for (wait, reply, what) in [
        (
            10,
            google::server_error(503),
            "BigQuery jobs.insert answered HTTP 503 backendError: Backend error. Please try again.",
        ),
        (7, Reply::connection_refused(), "BigQuery jobs.insert failed: "),
        (3, google::rate_limited(), "BigQuery jobs.insert answered HTTP 429 rateLimitExceeded"),
        (0, google::server_error(500), "BigQuery jobs.insert answered HTTP 500"),
    ] {
        let up = FakeUpstream::new();
        up.route(google::jobs_insert_rule(PROJECT).reply(reply));
        let h = harness(&up).env("GCR_USAGE_WAIT_SECONDS", &wait.to_string());
        let r = h.handle(event()).await.unwrap();
        let body = assert_error(&r, 503, "upstream-unavailable", what);
        let tries = r.run.outbound.len();
        // Requests and retries get max(GCR_USAGE_WAIT_SECONDS, 10 s): even "don't wait" retries.
        let budget = wait.max(10);
        let reason = body["reason"].as_str().unwrap();
        assert!(
            reason.ends_with(&format!(
                "(gave up after {tries} tries within the event's {budget} s budget; the trigger should redeliver)"
            )),
            "{reason}"
        );
        assert_eq!(body["object"], object_json(BUCKET, USAGE_NAME, Some(USAGE_GEN)));
        assert!(r.run.elapsed <= Duration::from_secs(budget), "{wait}: took {:?}", r.run.elapsed);
        // It gave up only because the next sleep (at most the next full delay) would cross it.
        let next_full = Duration::from_secs(1 << (tries - 1).min(4));
        assert!(r.run.elapsed + next_full > Duration::from_secs(budget), "{wait}: gave up early after {tries} tries");
        assert!(tries > 1, "{wait}: {tries} tries");
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_upstream_costs_at_most_the_wait_then_503() {
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(Reply::hang()));
    let r = harness(&up).handle(event()).await.unwrap();
    assert_error(&r, 503, "upstream-unavailable", "BigQuery jobs.insert failed: ");
    assert!(r.body_str().contains("ConnectionReadTimeout"), "{}", r.body_str());
    assert_eq!(r.run.outbound.len(), 1);
    assert_eq!(r.run.outbound[0].options.and_then(|o| o.first_byte_timeout), Some(Duration::from_secs(30)));
    assert_eq!(r.run.elapsed, Duration::from_secs(30), "the request timeout is the remaining wait");
}

/// README: "503 upstream-unavailable — 429/5xx/network errors until the deadline" and ARCHITECTURE:
/// "429/5xx/… → sleep … and resend". `GoogleError::class` (crates/core/src/bigquery.rs) only
/// counts 408/429/500/502/503/504 as transient, so any other 5xx — e.g. 507, or the 52x/599
/// timeouts that proxies in front of an emulator or a `GCR_USAGE_BIGQUERY_ENDPOINT` proxy answer —
/// is "refused for good": 502 upstream-rejected after one try, no retry.
#[tokio::test(start_paused = true)]
async fn every_5xx_is_retried() {
    for status in [507u16, 520, 522, 524, 599] {
        let up = FakeUpstream::new();
        up.route(
            google::jobs_insert_rule(PROJECT)
                .replies([Reply::text(status, "upstream trouble"), google::job_done_echo(1)]),
        );
        let r = harness(&up).handle(event()).await.unwrap();
        assert_eq!((r.status, r.run.outbound.len()), (200, 2), "{status}: {}", r.body_str());
    }
}

/// The deadline is checked only before sleeps (retry backoff, polling). Steps that *succeed* are
/// followed at once by the next request, even past GCR_USAGE_WAIT_SECONDS, each with a 10 s
/// minimum timeout: project id → token → insert (409) → get (failed) → insert _r2 → … With every
/// answer taking 4 s and WAIT=5 the answer comes after 48 s (12 requests). Expected: no new
/// request once the budget is spent, i.e. at most one request straddles the deadline.
#[tokio::test(start_paused = true)]
async fn slow_successful_calls_do_not_overrun_the_wait() {
    let slow = Duration::from_secs(4);
    let up = FakeUpstream::new();
    up.route(
        gcr_usage_host_test::Rule::get(gcr_usage_host_test::exact("/computeMetadata/v1/project/project-id"))
            .reply(Reply::text(200, PROJECT).delay(slow)),
    )
    .route(google::metadata_token_rule().reply(google::metadata_token("t").delay(slow)))
    .route(google::jobs_insert_rule(PROJECT).reply(google::duplicate_job_echo().delay(slow)))
    .route(google::jobs_get_rule(PROJECT).reply(google::job_failed_echo("invalid", MSG).delay(slow)));
    let h = gcr_usage_host_test::Harness::new()
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .env("GCR_USAGE_WAIT_SECONDS", "5")
        .upstream(up);
    let r = h.handle(event()).await.unwrap();
    assert!(
        r.run.elapsed <= Duration::from_secs(5 + 10),
        "answered {} after {:?} and {} requests",
        r.status,
        r.run.elapsed,
        r.run.outbound.len()
    );
}
