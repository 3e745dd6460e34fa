//! Credentials and the metadata server: `metadata` (default), `token` and `none` modes, the
//! project id from the metadata server, GCE_METADATA_HOST, request headers and timeouts.

use std::time::Duration;

use gcr_usage_host_test::google::{self, METADATA_TOKEN_PATH};
use gcr_usage_host_test::{FakeUpstream, Harness, Reply, Rule, exact};
use serde_json::json;

use crate::common::*;

const PROJECT_PATH: &str = "/computeMetadata/v1/project/project-id";
const USER_AGENT: &str = concat!("gcr-usage/", env!("CARGO_PKG_VERSION"));

/// Project and bucket set, auth left to its default (metadata).
fn metadata_harness(up: &FakeUpstream) -> Harness {
    Harness::new().env("GCR_USAGE_PROJECT", PROJECT).env("GCR_USAGE_BUCKETS", BUCKET).upstream(up.clone())
}

#[tokio::test(start_paused = true)]
async fn metadata_mode_fetches_a_token_and_sends_it_to_bigquery() {
    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(google::metadata_token("ya29.from-metadata")))
        .route(google::jobs_insert_rule(PROJECT).reply(google::duplicate_job_echo()))
        .route(google::jobs_get_rule(PROJECT).reply(google::job_done_echo(5)));
    let r = metadata_harness(&up).handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_eq!((r.status, &r.json()["outcome"]), (200, &json!("duplicate")), "{}", r.body_str());
    let [token, insert, get] = &r.run.outbound[..] else { panic!("{:?}", r.run.outbound) };
    assert_eq!(token.method, http::Method::GET);
    assert_eq!(token.url, format!("http://metadata.google.internal{METADATA_TOKEN_PATH}"));
    assert_eq!(token.header("metadata-flavor"), Some("Google"));
    assert_eq!(token.header("authorization"), None, "nothing to authenticate with yet");
    for bq in [insert, get] {
        assert_eq!(bq.scheme, "https");
        assert_eq!(bq.header("authorization"), Some("Bearer ya29.from-metadata"), "{}", bq.url);
        assert_eq!(bq.header("metadata-flavor"), None);
    }
    for q in &r.run.outbound {
        assert_eq!(q.header("user-agent"), Some(USER_AGENT), "{}", q.url);
    }
}

#[tokio::test(start_paused = true)]
async fn the_token_is_fetched_once_per_event_even_across_retries() {
    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(google::metadata_token("t1")))
        .route(google::jobs_insert_rule(PROJECT).replies([google::server_error(503), google::job_done_echo(1)]));
    let r = metadata_harness(&up).handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    let paths: Vec<&str> = r.run.outbound.iter().map(|q| q.path.as_str()).collect();
    assert_eq!(paths, [METADATA_TOKEN_PATH, INSERT_PATH, INSERT_PATH]);
    assert!(inserts(&r.run).iter().all(|q| q.header("authorization") == Some("Bearer t1")));
}

#[tokio::test(start_paused = true)]
async fn the_project_comes_from_the_metadata_server_when_unset() {
    let up = FakeUpstream::new();
    up.route(Rule::get(exact(PROJECT_PATH)).host(google::METADATA_HOST).reply(Reply::text(200, "metadata-project\n")))
        .route(google::metadata_token_rule().reply(google::metadata_token("tok")))
        .route(google::jobs_insert_rule("metadata-project").reply(google::job_done_echo(2)));
    let h = Harness::new().env("GCR_USAGE_BUCKETS", BUCKET).upstream(up.clone());
    let r = h.handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    let destination = "metadata-project:storageanalysis.usage";
    assert_eq!((r.status, r.json()["destination"].as_str()), (200, Some(destination)), "{}", r.body_str());
    assert_eq!(r.json()["jobId"], expected_job_id(BUCKET, USAGE_NAME, Some(1), destination, 1));
    let [project, token, insert] = &r.run.outbound[..] else { panic!("{:?}", r.run.outbound) };
    assert_eq!(project.url, format!("http://metadata.google.internal{PROJECT_PATH}"));
    assert_eq!(project.header("metadata-flavor"), Some("Google"));
    assert_eq!(token.path, METADATA_TOKEN_PATH);
    assert_eq!(insert.body_json()["jobReference"]["projectId"], "metadata-project");
    assert_eq!(insert.header("authorization"), Some("Bearer tok"));
}

#[tokio::test(start_paused = true)]
async fn gce_metadata_host_is_honoured() {
    let host = "127.0.0.1:8181";
    let up = FakeUpstream::new();
    up.route(Rule::get(exact(PROJECT_PATH)).host(host).reply(Reply::text(200, PROJECT)))
        .route(Rule::get(exact(METADATA_TOKEN_PATH)).host(host).reply(google::metadata_token("local")))
        .route(google::jobs_insert_rule(PROJECT).reply(google::job_done_echo(1)));
    let h = Harness::new().env("GCR_USAGE_BUCKETS", BUCKET).env("GCE_METADATA_HOST", host).upstream(up.clone());
    let r = h.handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    for q in &r.run.outbound[..2] {
        assert_eq!((q.scheme.as_str(), q.authority.as_str()), ("http", host));
        assert_eq!(q.header("metadata-flavor"), Some("Google"));
    }
    assert_eq!(r.run.outbound[2].header("authorization"), Some("Bearer local"));
}

#[tokio::test(start_paused = true)]
async fn token_mode_sends_the_configured_token_and_never_asks_the_metadata_server() {
    let up = duplicates(1);
    let h = harness(&up).env("GCR_USAGE_AUTH", "token").env("GCR_USAGE_TOKEN", TOKEN);
    let r = h.handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.run.outbound.len(), 2);
    for q in &r.run.outbound {
        assert_eq!(q.authority, "bigquery.googleapis.com");
        assert_eq!(q.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    }
}

#[tokio::test(start_paused = true)]
async fn none_mode_sends_no_credentials() {
    let up = duplicates(1);
    let r = harness(&up).handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.run.outbound.len(), 2);
    assert!(
        r.run.outbound.iter().all(|q| q.header("authorization").is_none() && q.authority == "bigquery.googleapis.com")
    );
}

#[tokio::test(start_paused = true)]
async fn metadata_server_failures() {
    // Unreachable: transient, retried until the deadline.
    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(Reply::connection_refused()));
    let r = metadata_harness(&up)
        .env("GCR_USAGE_WAIT_SECONDS", "4")
        .handle(bare(BUCKET, USAGE_NAME, Some(1)))
        .await
        .unwrap();
    assert_error(&r, 503, "upstream-unavailable", "metadata server (access token) failed: ");
    // The budget for requests and retries is max(GCR_USAGE_WAIT_SECONDS, 10 s).
    assert!(r.run.outbound.len() >= 2 && r.run.elapsed <= Duration::from_secs(10));

    // A garbled token answer: also retried (a flaky proxy), then 503.
    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(Reply::text(200, "<html>captive portal</html>")));
    let r = metadata_harness(&up)
        .env("GCR_USAGE_WAIT_SECONDS", "2")
        .handle(bare(BUCKET, USAGE_NAME, Some(1)))
        .await
        .unwrap();
    assert_error(
        &r,
        503,
        "upstream-unavailable",
        "metadata server: token answer lacks access_token; unexpected body: <html>",
    );

    // No service account: refused for good.
    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(Reply::text(404, "Not Found")));
    let r = metadata_harness(&up).handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    assert_error(
        &r,
        502,
        "upstream-rejected",
        "metadata server (access token) refused: HTTP 404: unexpected body: Not Found",
    );
    assert_eq!(r.run.outbound.len(), 1);

    // A project id that is not one.
    let up = FakeUpstream::new();
    up.route(Rule::get(exact(PROJECT_PATH)).reply(Reply::text(200, "Not A Project")));
    let h = Harness::new().env("GCR_USAGE_BUCKETS", BUCKET).upstream(up.clone());
    let r = h.handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    assert_error(&r, 502, "upstream-rejected", "metadata server's project id: \"Not A Project\" is not a project id");
}

#[tokio::test(start_paused = true)]
async fn request_timeouts_follow_the_remaining_wait_within_10_to_60_seconds() {
    for (wait, timeout) in [("30", 30), ("0", 10), ("5", 10), ("3600", 60)] {
        let up = loads(1);
        let r =
            harness(&up).env("GCR_USAGE_WAIT_SECONDS", wait).handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
        let options = r.run.outbound[0].options.expect("request options are set");
        let t = Some(Duration::from_secs(timeout));
        assert_eq!(
            (options.connect_timeout, options.first_byte_timeout, options.between_bytes_timeout),
            (t, t, t),
            "{wait}"
        );
    }
}
