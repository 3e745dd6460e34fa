//! Configuration: every GCR_USAGE_* variable (and GCE_METADATA_HOST) missing or invalid is a 500
//! naming the variable, on events and on GET /healthz alike, with no outbound request.

use gcr_usage_host_test::{FakeUpstream, Harness, LoadError, TestRequest, object_ref};

use crate::common::*;

/// (variable, value — empty means unset, reason prefix). Applied on top of [`harness`]'s
/// valid configuration.
const BROKEN: [(&str, &str, &str); 22] = [
    ("GCR_USAGE_BUCKETS", "", "GCR_USAGE_BUCKETS: is required"),
    ("GCR_USAGE_BUCKETS", " , ", "GCR_USAGE_BUCKETS: lists no bucket"),
    ("GCR_USAGE_BUCKETS", "ok-bucket,Bad_Bucket", "GCR_USAGE_BUCKETS: \"Bad_Bucket\" is not a valid bucket name"),
    ("GCR_USAGE_BUCKETS", "*,x-bucket", "GCR_USAGE_BUCKETS: * must stand alone"),
    ("GCR_USAGE_PROJECT", "My Project", "GCR_USAGE_PROJECT: \"My Project\" is not a project id"),
    ("GCR_USAGE_PROJECT", "abc", "GCR_USAGE_PROJECT: \"abc\" is not a project id"),
    ("GCR_USAGE_PROJECT", "", "GCR_USAGE_PROJECT: is required unless GCR_USAGE_AUTH=metadata"),
    ("GCR_USAGE_DATASET", "my-dataset", "GCR_USAGE_DATASET: \"my-dataset\" is not a dataset id"),
    ("GCR_USAGE_USAGE_TABLE", "usage;drop", "GCR_USAGE_USAGE_TABLE: \"usage;drop\" is not a table id"),
    ("GCR_USAGE_STORAGE_TABLE", "a.b", "GCR_USAGE_STORAGE_TABLE: \"a.b\" is not a table id"),
    ("GCR_USAGE_LOCATION", "moon", "GCR_USAGE_LOCATION: \"moon\" is not a BigQuery location"),
    ("GCR_USAGE_AUTH", "oauth", "GCR_USAGE_AUTH: \"oauth\" is not one of metadata, token, none"),
    ("GCR_USAGE_AUTH", "token", "GCR_USAGE_TOKEN: is required when GCR_USAGE_AUTH=token"),
    (
        "GCR_USAGE_WAIT_SECONDS",
        "soon",
        "GCR_USAGE_WAIT_SECONDS: \"soon\" is not a whole number of seconds from 0 to 3600",
    ),
    ("GCR_USAGE_WAIT_SECONDS", "3601", "GCR_USAGE_WAIT_SECONDS: \"3601\" is not a whole number"),
    ("GCR_USAGE_WAIT_SECONDS", "-1", "GCR_USAGE_WAIT_SECONDS: \"-1\" is not a whole number"),
    ("GCR_USAGE_WAIT_SECONDS", "1.5", "GCR_USAGE_WAIT_SECONDS: \"1.5\" is not a whole number"),
    ("GCR_USAGE_BIGQUERY_ENDPOINT", "ftp://x", "GCR_USAGE_BIGQUERY_ENDPOINT: \"ftp://x\" must start with http://"),
    ("GCR_USAGE_BIGQUERY_ENDPOINT", "bigquery.googleapis.com", "GCR_USAGE_BIGQUERY_ENDPOINT: "),
    ("GCR_USAGE_BIGQUERY_ENDPOINT", "http://h/?x=1", "GCR_USAGE_BIGQUERY_ENDPOINT: \"http://h/?x=1\" must not carry"),
    ("GCR_USAGE_STORAGE_ENDPOINT", "http://", "GCR_USAGE_STORAGE_ENDPOINT: "),
    ("GCE_METADATA_HOST", "http://x/y", "GCE_METADATA_HOST: must be host or host:port"),
];

#[tokio::test(start_paused = true)]
async fn every_broken_variable_is_a_500_naming_it_on_events_and_healthz() {
    for (variable, value, reason) in BROKEN {
        let h = || harness(&FakeUpstream::new()).env(variable, value);
        let r = h().handle(fixture_request("cloudevent-binary.json")).await.unwrap();
        let body = assert_error(&r, 500, "configuration", reason);
        assert!(r.run.outbound.is_empty(), "{variable}={value}");
        assert!(log_line(&r)["message"].as_str().unwrap().contains(variable), "{variable}");

        let health = h().handle(TestRequest::get("/healthz")).await.unwrap();
        assert_eq!(health.json(), body, "{variable}={value}: /healthz says the same");
        assert_error(&health, 500, "configuration", reason);
    }
}

#[tokio::test(start_paused = true)]
async fn token_variable_rules() {
    let h = harness(&FakeUpstream::new()).env("GCR_USAGE_AUTH", "token").env("GCR_USAGE_TOKEN", "ya29 with spaces");
    let r = h.handle(TestRequest::get("/healthz")).await.unwrap();
    assert_error(&r, 500, "configuration", "GCR_USAGE_TOKEN: must be a bearer token without spaces");
}

#[tokio::test(start_paused = true)]
async fn an_unset_configuration_names_the_bucket_list_first() {
    // Nothing set at all: metadata auth needs no project, so the allow-list is what is missing.
    let r = Harness::new().handle(fixture_request("pubsub-push.json")).await.unwrap();
    assert_error(&r, 500, "configuration", "GCR_USAGE_BUCKETS: is required: the comma-separated log buckets");
    let r = Harness::new().call_load(object_ref(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    assert!(
        matches!(&r.result, Err(LoadError::Configuration(m)) if m.starts_with("GCR_USAGE_BUCKETS: is required")),
        "{:?}",
        r.result
    );
}

#[tokio::test(start_paused = true)]
async fn configuration_is_checked_after_method_and_size_but_before_the_event() {
    let broken = || harness(&FakeUpstream::new()).env("GCR_USAGE_LOCATION", "moon");
    let r = broken().handle(TestRequest::post("/", "{")).await.unwrap();
    assert_error(&r, 500, "configuration", "GCR_USAGE_LOCATION");
    let r = broken().handle(TestRequest::get("/")).await.unwrap();
    assert_error(&r, 405, "method-not-allowed", "GET is not supported");
    let r = broken().handle(TestRequest::post("/", vec![b' '; 1024 * 1024 + 1])).await.unwrap();
    assert_error(&r, 413, "body-too-large", "event bodies are limited");
}

#[tokio::test(start_paused = true)]
async fn empty_values_mean_defaults_and_values_are_trimmed() {
    let up = loads(1);
    let h = harness(&up)
        .env("GCR_USAGE_DATASET", "")
        .env("GCR_USAGE_USAGE_TABLE", "")
        .env("GCR_USAGE_LOCATION", "eu")
        .env("GCR_USAGE_WAIT_SECONDS", " 5 ")
        .env("GCR_USAGE_BIGQUERY_ENDPOINT", "")
        .env("GCR_USAGE_BUCKETS", " gs://demo-gcr-logs/ ");
    let r = h.handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    assert_eq!((r.status, r.json()["destination"].as_str()), (200, Some(USAGE_DEST)), "{}", r.body_str());
    let insert = &r.run.outbound[0];
    assert_eq!(insert.authority, "bigquery.googleapis.com");
    assert_eq!(insert.body_json()["jobReference"]["location"], "EU", "multi-regions are upper-cased");
}

#[tokio::test(start_paused = true)]
async fn a_custom_bigquery_endpoint_with_a_path_is_used_as_the_base() {
    let up = FakeUpstream::new();
    up.route(
        gcr_usage_host_test::Rule::post(gcr_usage_host_test::exact("/proxy/bigquery/v2/projects/demo-project/jobs"))
            .host("127.0.0.1:9050")
            .reply(gcr_usage_host_test::google::job_done_echo(2)),
    );
    let h = harness(&up).env("GCR_USAGE_BIGQUERY_ENDPOINT", "http://127.0.0.1:9050/proxy/");
    let r = h.handle(bare(BUCKET, USAGE_NAME, Some(1))).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(
        r.run.outbound[0].url,
        "http://127.0.0.1:9050/proxy/bigquery/v2/projects/demo-project/jobs?prettyPrint=false"
    );
    assert_eq!(r.run.outbound[0].scheme, "http");
}
