//! Golden files (`fixtures/golden/`): the exact `jobs.insert` bodies for a usage and a storage log,
//! and the request line and headers (sorted, without `host`) of `jobs.insert`, `jobs.get` and the
//! metadata token request, all for one fixed configuration. The files are pretty-printed for
//! review; like every golden file of the workspace they go through `expect-test`, so
//! `UPDATE_EXPECT=1 cargo test ...` rewrites them.

use expect_test::{ExpectFile, expect_file};
use gcr_usage_host_test::{FakeUpstream, Harness, RecordedRequest, google};
use serde_json::Value;

use crate::common::*;

const STORAGE_GEN: u64 = 1_710_140_400_000_000;

/// JSON as the files hold it: pretty-printed (keys sorted, as serde_json's map keeps them).
#[track_caller]
fn check_json(expected: ExpectFile, actual: &Value) {
    expected.assert_eq(&format!("{}\n", serde_json::to_string_pretty(actual).unwrap()));
}

/// `METHOD /path?query HTTP/1.1`, then `name: value` per header, sorted, `host` left out.
fn request_head(r: &RecordedRequest) -> String {
    let target = match &r.query {
        Some(q) => format!("{}?{q}", r.path),
        None => r.path.clone(),
    };
    let mut headers: Vec<String> = r
        .headers
        .iter()
        .filter(|(name, _)| name.as_str() != "host")
        .map(|(name, value)| format!("{name}: {}", value.to_str().expect("ASCII header")))
        .collect();
    headers.sort();
    let mut out = format!("{} {target} HTTP/1.1\n", r.method);
    for h in headers {
        out.push_str(&h);
        out.push('\n');
    }
    out
}

/// The fixed configuration of the golden files: explicit project, metadata credentials.
fn golden_harness(up: &FakeUpstream) -> Harness {
    Harness::new()
        .env("GCR_USAGE_PROJECT", PROJECT)
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .env("GCR_USAGE_LOCATION", "US")
        .upstream(up.clone())
}

#[tokio::test(start_paused = true)]
async fn golden_requests() {
    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(google::metadata_token("ya29.golden-token")))
        .route(google::jobs_insert_rule(PROJECT).replies([google::duplicate_job_echo(), google::job_done_echo(1)]))
        .route(google::jobs_get_rule(PROJECT).reply(google::job_done_echo(1184)));
    let h = golden_harness(&up);

    let usage = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_eq!((usage.status, usage.json()["outcome"].as_str()), (200, Some("duplicate")), "{}", usage.body_str());
    let [token, insert, get] = &usage.run.outbound[..] else { panic!("{:?}", usage.run.outbound) };
    check_json(expect_file!["../../../fixtures/golden/jobs-insert-usage.json"], &insert.body_json());
    expect_file!["../../../fixtures/golden/metadata-token.http"].assert_eq(&request_head(token));
    expect_file!["../../../fixtures/golden/jobs-insert.http"].assert_eq(&request_head(insert));
    expect_file!["../../../fixtures/golden/jobs-get.http"].assert_eq(&request_head(get));
    assert!(token.body.is_empty() && get.body.is_empty());

    let storage = h.handle(bare(BUCKET, STORAGE_NAME, Some(STORAGE_GEN))).await.unwrap();
    assert_eq!((storage.status, storage.json()["outcome"].as_str()), (200, Some("loaded")), "{}", storage.body_str());
    check_json(expect_file!["../../../fixtures/golden/jobs-insert-storage.json"], &storage.run.outbound[1].body_json());
    up.assert_all_matched();
}
