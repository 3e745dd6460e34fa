//! The typed export `gcr-usage:loader/loader#load`: every outcome kind and every error variant,
//! with the same job ids and decisions as the HTTP path.

use gcr_usage_host_test::{FakeUpstream, LoadError, ObjectRef, Outcome, OutcomeKind, Reply, google, object_ref};

use crate::common::*;

fn usage_ref() -> ObjectRef {
    object_ref(BUCKET, USAGE_NAME, Some(USAGE_GEN))
}

#[track_caller]
fn outcome(r: &gcr_usage_host_test::LoadResponse) -> &Outcome {
    r.result.as_ref().unwrap_or_else(|e| panic!("expected an outcome, got {e:?}"))
}

#[tokio::test(start_paused = true)]
async fn loaded_duplicate_failed_and_submitted_outcomes() {
    let job_id = expected_job_id(BUCKET, USAGE_NAME, Some(USAGE_GEN), USAGE_DEST, 1);

    let r = harness(&loads(1184)).call_load(usage_ref()).await.unwrap();
    let o = outcome(&r);
    assert_eq!(o.kind, OutcomeKind::Loaded);
    assert_eq!(
        (o.object.bucket.as_str(), o.object.name.as_str(), o.object.generation),
        (BUCKET, USAGE_NAME, Some(USAGE_GEN))
    );
    assert_eq!(
        (o.log_kind.as_deref(), o.destination.as_deref(), o.job_id.as_deref(), o.rows, o.reason.as_deref()),
        (Some("usage"), Some(USAGE_DEST), Some(job_id.as_str()), Some(1184), None)
    );
    let line = only_log_line(&r.run);
    assert_eq!(
        (&line["eventShape"], &line["outcome"], &line["jobId"]),
        (&"wit-call".into(), &"loaded".into(), &job_id.clone().into())
    );
    assert_eq!((&line["severity"], &line["httpStatus"]), (&"INFO".into(), &200.into()));
    assert_eq!(r.run.outbound.len(), 1);

    let r = harness(&duplicates(9)).call_load(usage_ref()).await.unwrap();
    let o = outcome(&r);
    assert_eq!((o.kind, o.rows, o.job_id.as_deref()), (OutcomeKind::Duplicate, Some(9), Some(job_id.as_str())));
    assert!(o.reason.as_deref().unwrap().contains("nothing was loaded twice"));

    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(google::job_failed_echo("invalid", "bad CSV")));
    let r = harness(&up).call_load(usage_ref()).await.unwrap();
    let o = outcome(&r);
    assert_eq!((o.kind, o.rows), (OutcomeKind::Failed, None));
    assert!(
        o.reason.as_deref().unwrap().starts_with(&format!(
            "BigQuery rejected load job attempt 1/{}: invalid: bad CSV",
            gcr_usage_core::job::MAX_ATTEMPTS
        )),
        "{o:?}"
    );
    assert_eq!(only_log_line(&r.run)["httpStatus"], 422);

    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(google::job_running_echo()))
        .route(google::jobs_get_rule(PROJECT).reply(google::job_running_echo()));
    let r = harness(&up).env("GCR_USAGE_WAIT_SECONDS", "3").call_load(usage_ref()).await.unwrap();
    let o = outcome(&r);
    assert_eq!((o.kind, o.job_id.as_deref()), (OutcomeKind::Submitted, Some(job_id.as_str())));
}

#[tokio::test(start_paused = true)]
async fn ignored_objects_come_back_as_ignored_without_a_job() {
    let r = harness(&FakeUpstream::new()).call_load(object_ref(BUCKET, "usage-report.csv", None)).await.unwrap();
    let o = outcome(&r);
    assert_eq!(
        (o.kind, o.job_id.as_deref(), o.log_kind.as_deref(), o.destination.as_deref()),
        (OutcomeKind::Ignored, None, None, None)
    );
    assert!(o.reason.as_deref().unwrap().starts_with("not a usage or storage log object name"), "{o:?}");
    assert_eq!(o.object.name, "usage-report.csv");
    assert!(r.run.outbound.is_empty());
}

#[tokio::test(start_paused = true)]
async fn every_error_variant() {
    // invalid-input
    let long = "n".repeat(1025);
    for (object, says) in [
        (object_ref("", USAGE_NAME, None), "bucket: must not be empty"),
        (
            object_ref("Not A Bucket", USAGE_NAME, None),
            "bucket: \"Not A Bucket\" is not a valid Cloud Storage bucket name",
        ),
        (object_ref(BUCKET, "", None), "name: must not be empty"),
        (object_ref(BUCKET, &long, None), "name: is 1025 bytes long"),
        (object_ref(BUCKET, "a\rb", None), "name: contains a line break"),
        (object_ref(BUCKET, USAGE_NAME, Some(1 << 63)), "generation: 9223372036854775808 is out of range"),
        (object_ref(BUCKET, USAGE_NAME, Some(u64::MAX)), "generation: 18446744073709551615 is out of range"),
    ] {
        let r = harness(&FakeUpstream::new()).call_load(object).await.unwrap();
        assert!(matches!(&r.result, Err(LoadError::InvalidInput(m)) if m.starts_with(says)), "{says}: {:?}", r.result);
        assert_eq!(only_log_line(&r.run)["httpStatus"], 400);
    }

    // bucket-not-allowed
    let r = harness(&FakeUpstream::new()).call_load(object_ref("other-logs", USAGE_NAME, Some(1))).await.unwrap();
    assert!(
        matches!(&r.result, Err(LoadError::BucketNotAllowed(m)) if m == "bucket \"other-logs\" is not in GCR_USAGE_BUCKETS"),
        "{:?}",
        r.result
    );
    assert!(r.run.outbound.is_empty());

    // configuration
    let r = harness(&FakeUpstream::new()).env("GCR_USAGE_WAIT_SECONDS", "later").call_load(usage_ref()).await.unwrap();
    assert!(
        matches!(&r.result, Err(LoadError::Configuration(m)) if m.starts_with("GCR_USAGE_WAIT_SECONDS: \"later\"")),
        "{:?}",
        r.result
    );
    let line = only_log_line(&r.run);
    assert_eq!(
        (&line["severity"], &line["httpStatus"], &line["error"]),
        (&"ERROR".into(), &500.into(), &"configuration".into())
    );

    // upstream-unavailable
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(Reply::connection_refused()));
    let r = harness(&up).env("GCR_USAGE_WAIT_SECONDS", "2").call_load(usage_ref()).await.unwrap();
    assert!(
        matches!(&r.result, Err(LoadError::UpstreamUnavailable(m)) if m.starts_with("BigQuery jobs.insert failed: ") && m.contains("10 s budget")),
        "{:?}",
        r.result
    );
    assert!(r.run.outbound.len() >= 2);

    // upstream-rejected
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(google::google_error(
        403,
        "accessDenied",
        "Access Denied: Table x",
    )));
    let r = harness(&up).call_load(usage_ref()).await.unwrap();
    assert!(
        matches!(&r.result, Err(LoadError::UpstreamRejected(m)) if m.ends_with("HTTP 403 accessDenied: Access Denied: Table x")),
        "{:?}",
        r.result
    );
    assert_eq!(only_log_line(&r.run)["httpStatus"], 502);
}

#[tokio::test(start_paused = true)]
async fn typed_and_http_paths_agree_on_the_job() {
    let http_up = loads(3);
    let http = harness(&http_up).handle(bare(BUCKET, STORAGE_NAME, Some(5))).await.unwrap();
    let typed_up = loads(3);
    let typed = harness(&typed_up).call_load(object_ref(BUCKET, STORAGE_NAME, Some(5))).await.unwrap();
    let o = outcome(&typed);
    assert_eq!(o.job_id.as_deref(), http.json()["jobId"].as_str());
    assert_eq!(o.log_kind.as_deref(), Some("storage"));
    assert_eq!(typed.run.outbound[0].body, http.run.outbound[0].body, "the same jobs.insert");
}

#[tokio::test(start_paused = true)]
async fn retries_reach_the_typed_outcome_as_they_reach_the_answer() {
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).replies([google::server_error(503), google::job_done_echo(5)]));
    let r = harness(&up).call_load(usage_ref()).await.unwrap();
    let o = outcome(&r);
    assert_eq!(o.kind, OutcomeKind::Loaded);
    let retries = o.retries.as_ref().expect("the WIT outcome carries the retries");
    assert_eq!(retries.count, 1);
    assert!(retries.last.contains("503"), "{}", retries.last);
    let line = only_log_line(&r.run);
    assert_eq!((&line["retries"]["count"], &line["retries"]["last"]), (&1.into(), &retries.last.clone().into()));
    // Without a retry there is none to report.
    let r = harness(&loads(5)).call_load(usage_ref()).await.unwrap();
    assert!(outcome(&r).retries.is_none());
}
