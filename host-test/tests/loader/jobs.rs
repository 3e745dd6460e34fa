//! The load job: 409 duplicate, fresh attempts after a failed job, polling until DONE or the
//! deadline, BigQuery's rejections and odd answers from Google. (Transient errors: `retries.rs`.)

use std::time::Duration;

use gcr_usage_host_test::google::{self, JobRef};
use gcr_usage_host_test::{FakeUpstream, Reply};
use serde_json::json;

use crate::common::*;

pub const MSG: &str =
    "Error while reading data, error message: CSV table encountered too many errors, giving up. Rows: 1; errors: 1.";

pub fn job_id(attempt: u32) -> String {
    expected_job_id(BUCKET, USAGE_NAME, Some(USAGE_GEN), USAGE_DEST, attempt)
}

pub fn event() -> gcr_usage_host_test::TestRequest {
    fixture_request("cloudevent-binary.json")
}

fn get_url(id: &str) -> String {
    format!("{BQ}{INSERT_PATH}/{id}?location=US&prettyPrint=false")
}

#[tokio::test(start_paused = true)]
async fn redelivery_gets_409_then_reads_the_job_and_answers_duplicate() {
    // BigQuery as it behaves: the first insert creates the job, every later one is a 409.
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).replies([google::job_done_echo(1184), google::duplicate_job_echo()]))
        .route(google::jobs_get_rule(PROJECT).reply(google::job_done_echo(1184)));
    let h = harness(&up);
    let first = h.handle(event()).await.unwrap();
    assert_loaded(&first, USAGE_NAME, Some(USAGE_GEN), 1184);
    for _ in 0..3 {
        let r = h.handle(event()).await.unwrap();
        assert_eq!(
            r.json(),
            json!({"outcome": "duplicate", "object": object_json(BUCKET, USAGE_NAME, Some(USAGE_GEN)), "logKind": "usage",
                   "destination": USAGE_DEST, "jobId": job_id(1), "rows": 1184,
                   "reason": "the load job already existed (redelivered event); nothing was loaded twice"})
        );
        assert_eq!((r.status, &log_line(&r)["severity"]), (200, &json!("INFO")));
        let [insert, get] = &r.run.outbound[..] else { panic!("{:?}", r.run.outbound) };
        assert_eq!(
            google::without_delivery_label(&insert.body),
            google::without_delivery_label(&first.run.outbound[0].body),
            "every delivery sends the very same job"
        );
        assert_ne!(insert.body, first.run.outbound[0].body, "…labelled with its own delivery token");
        assert_eq!(get.method, http::Method::GET);
        assert_eq!(get.url, get_url(&job_id(1)));
        assert_eq!(get.query_param("location"), Some("US"));
        assert!(get.body.is_empty());
    }
}

/// `jobs.get`'s answer: the job DONE, labelled by the delivery `token` that submitted it.
fn labelled_job(job: &JobRef, token: &str) -> Reply {
    let mut resource = google::job_resource(job, "DONE", Some(1184), None);
    resource["configuration"] = json!({"labels": {"loader": "gcr-usage", "log_kind": "usage", "delivery": token}});
    Reply::json(200, &resource)
}

/// The e2e suite caught this: the first insert of a redelivery failed before reaching BigQuery,
/// the retry met the job an earlier delivery had created, and "there was an earlier try" made
/// it `loaded`. The job's delivery label says whose it is.
#[tokio::test(start_paused = true)]
async fn a_409_after_an_insert_that_never_arrived_is_a_duplicate() {
    for first in [Reply::connection_refused(), google::server_error(500)] {
        let up = FakeUpstream::new();
        up.route(google::jobs_insert_rule(PROJECT).replies([first, google::duplicate_job_echo()])).route(
            google::jobs_get_rule(PROJECT)
                .reply(Reply::dynamic(|r| labelled_job(&google::job_of(r), "0123456789abcdef"))),
        );
        let r = harness(&up).handle(event()).await.unwrap();
        assert_eq!((r.status, &r.json()["outcome"], &r.json()["rows"]), (200, &json!("duplicate"), &json!(1184)));
        assert_eq!(r.run.outbound.len(), 3, "insert, insert again, get");
    }
}

#[tokio::test(start_paused = true)]
async fn a_409_after_an_insert_whose_answer_was_lost_is_our_load() {
    let up = FakeUpstream::new();
    let seen = up.clone();
    let dropped = Reply::fail(|| gcr_usage_host_test::UpstreamError::ConnectionTerminated);
    up.route(google::jobs_insert_rule(PROJECT).replies([dropped, google::duplicate_job_echo()])).route(
        google::jobs_get_rule(PROJECT).reply(Reply::dynamic(move |r| {
            // BigQuery created the job from the insert whose answer never came back.
            let first = &seen.requests_to(http::Method::POST, INSERT_PATH)[0];
            let token = first.body_json()["configuration"]["labels"]["delivery"].as_str().unwrap().to_string();
            labelled_job(&google::job_of(r), &token)
        })),
    );
    let r = harness(&up).handle(event()).await.unwrap();
    let body = assert_loaded_after(&r, USAGE_NAME, Some(USAGE_GEN), 1184, 1);
    assert_eq!(body["retries"]["last"], "BigQuery jobs.insert failed: ErrorCode::ConnectionTerminated");
}

#[tokio::test(start_paused = true)]
async fn a_failed_earlier_job_leads_to_attempt_r2() {
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).replies([google::duplicate_job_echo(), google::job_done_echo(8)]))
        .route(google::jobs_get_rule(PROJECT).reply(google::job_failed_echo("invalid", MSG)));
    let r = harness(&up).handle(event()).await.unwrap();
    let body = r.json();
    assert_eq!((r.status, &body["outcome"], &body["rows"]), (200, &json!("loaded"), &json!(8)), "{body}");
    assert_eq!(body["jobId"], job_id(2));
    assert!(job_id(2).ends_with("_r2") && job_id(2).starts_with(&job_id(1)));
    let [insert1, get1, insert2] = &r.run.outbound[..] else { panic!("{:?}", r.run.outbound) };
    assert_insert(insert1, &format!("gs://{BUCKET}/{USAGE_NAME}"), "usage", &job_id(1));
    assert_eq!(get1.url, get_url(&job_id(1)));
    let second = assert_insert(insert2, &format!("gs://{BUCKET}/{USAGE_NAME}"), "usage", &job_id(2));
    let mut first = insert1.body_json();
    first["jobReference"]["jobId"] = job_id(2).into();
    assert_eq!(second, first, "attempt 2 is the same load under the next id");
}

#[tokio::test(start_paused = true)]
async fn an_existing_successful_r2_is_a_duplicate() {
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(google::duplicate_job_echo())).route(
        google::jobs_get_rule(PROJECT).replies([google::job_failed_echo("invalid", MSG), google::job_done_echo(4)]),
    );
    let r = harness(&up).handle(event()).await.unwrap();
    assert_eq!((r.status, &r.json()["outcome"], &r.json()["jobId"]), (200, &json!("duplicate"), &json!(job_id(2))));
    let urls: Vec<&str> = r.run.outbound.iter().map(|q| q.path.as_str()).collect();
    assert_eq!(urls.len(), 4, "insert r1, get r1, insert r2, get r2: {urls:?}");
    assert!(r.run.outbound[3].path.ends_with(&job_id(2)));
}

#[tokio::test(start_paused = true)]
async fn after_max_attempts_failed_the_answer_is_422_failed() {
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(google::duplicate_job_echo()))
        .route(google::jobs_get_rule(PROJECT).reply(google::job_failed_echo("invalid", MSG)));
    let r = harness(&up).handle(event()).await.unwrap();
    let body = r.json();
    let max = gcr_usage_core::job::MAX_ATTEMPTS;
    assert_eq!((r.status, &body["outcome"], &body["jobId"]), (422, &json!("failed"), &json!(job_id(max))), "{body}");
    assert_eq!(body["reason"], format!("all {max} load job attempts for this object failed; the last: invalid: {MSG}"));
    let ids: Vec<String> =
        inserts(&r.run).iter().map(|q| q.body_json()["jobReference"]["jobId"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, (1..=max).map(job_id).collect::<Vec<_>>());
    assert_eq!(r.run.outbound.len(), 2 * max as usize);
    assert_eq!(log_line(&r)["severity"], "ERROR");
}

#[tokio::test(start_paused = true)]
async fn a_job_we_created_that_bigquery_rejects_is_422_with_its_message() {
    for (insert, get) in [
        (google::job_failed_echo("invalid", MSG), None),
        (google::job_running_echo(), Some(google::job_failed_echo("invalid", MSG))),
    ] {
        let up = FakeUpstream::new();
        up.route(google::jobs_insert_rule(PROJECT).reply(insert));
        if let Some(get) = get {
            up.route(google::jobs_get_rule(PROJECT).reply(get));
        }
        let r = harness(&up).handle(event()).await.unwrap();
        assert_eq!(
            r.json(),
            json!({"outcome": "failed", "object": object_json(BUCKET, USAGE_NAME, Some(USAGE_GEN)), "logKind": "usage",
                   "destination": USAGE_DEST, "jobId": job_id(1),
                   "reason": format!("BigQuery rejected load job attempt 1/{}: invalid: {MSG}; redelivering the event submits a fresh attempt", gcr_usage_core::job::MAX_ATTEMPTS)})
        );
        assert_eq!(r.status, 422);
        let line = log_line(&r);
        assert_eq!(line["severity"], "ERROR");
        assert!(line["message"].as_str().unwrap().contains(MSG));
    }
}

#[tokio::test(start_paused = true)]
async fn running_jobs_are_polled_until_done() {
    let up = FakeUpstream::new();
    let pending = Reply::dynamic(|r| google::job_pending(&google::job_of(r)));
    up.route(google::jobs_insert_rule(PROJECT).reply(pending)).route(google::jobs_get_rule(PROJECT).replies([
        google::job_running_echo(),
        google::job_running_echo(),
        google::job_done_echo(12),
    ]));
    let r = harness(&up).handle(event()).await.unwrap();
    assert_loaded(&r, USAGE_NAME, Some(USAGE_GEN), 12);
    let [_, gets @ ..] = &r.run.outbound[..] else { panic!() };
    assert_eq!(gets.len(), 3);
    assert!(gets.iter().all(|g| g.url == get_url(&job_id(1))));
    // Polling backoff: 0.5 s × 1.5ⁿ with equal jitter.
    let gaps = gaps(&r.run);
    assert_between(gaps[0], 250, 500);
    assert_between(gaps[1], 375, 750);
    assert_between(gaps[2], 562, 1125);
}

#[tokio::test(start_paused = true)]
async fn jobs_still_running_at_the_deadline_are_202_submitted() {
    for wait in [5u64, 0] {
        let up = FakeUpstream::new();
        up.route(google::jobs_insert_rule(PROJECT).reply(google::job_running_echo()))
            .route(google::jobs_get_rule(PROJECT).reply(google::job_running_echo()));
        let r = harness(&up).env("GCR_USAGE_WAIT_SECONDS", &wait.to_string()).handle(event()).await.unwrap();
        assert_eq!(
            r.json(),
            json!({"outcome": "submitted", "object": object_json(BUCKET, USAGE_NAME, Some(USAGE_GEN)), "logKind": "usage",
                   "destination": USAGE_DEST, "jobId": job_id(1),
                   "reason": "the load job was still running when GCR_USAGE_WAIT_SECONDS ran out; BigQuery finishes it on its own"})
        );
        assert_eq!(r.status, 202);
        assert_eq!(log_line(&r)["severity"], "INFO");
        assert!(r.run.elapsed <= Duration::from_secs(wait), "{:?}", r.run.elapsed);
        if wait == 0 {
            assert_eq!(r.run.outbound.len(), 1, "submit and answer at once");
        } else {
            assert!(r.run.outbound.len() > 3);
        }
    }
    // A redelivery finding the job still running: done from the trigger's point of view.
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(google::duplicate_job_echo()))
        .route(google::jobs_get_rule(PROJECT).reply(google::job_running_echo()));
    let r = harness(&up).env("GCR_USAGE_WAIT_SECONDS", "2").handle(event()).await.unwrap();
    assert_eq!((r.status, &r.json()["outcome"]), (200, &json!("duplicate")));
    assert_eq!(r.json()["reason"], "the load job already existed (redelivered event) and is still running");
}

#[tokio::test(start_paused = true)]
async fn permanent_refusals_are_502_with_googles_message() {
    let denied = "Access Denied: Project demo-project: User does not have bigquery.jobs.create permission in project demo-project.";
    let cases = [
        (google::google_error(403, "accessDenied", denied), None, format!("HTTP 403 accessDenied: {denied}")),
        (
            google::google_error(404, "notFound", "Not found: Dataset demo-project:storageanalysis"),
            None,
            "HTTP 404 notFound: Not found: Dataset demo-project:storageanalysis".to_string(),
        ),
        (
            google::google_error(400, "invalid", "Invalid value for sourceFormat"),
            None,
            "HTTP 400 invalid: Invalid value".into(),
        ),
        (
            google::google_error(401, "authError", "Invalid Credentials"),
            None,
            "HTTP 401 authError: Invalid Credentials".into(),
        ),
        (
            google::duplicate_job_echo(),
            Some(google::google_error(404, "notFound", "Not found: Job demo-project:US.x")),
            "HTTP 404 notFound: Not found: Job".into(),
        ),
    ];
    for (insert, get, google_says) in cases {
        let up = FakeUpstream::new();
        up.route(google::jobs_insert_rule(PROJECT).reply(insert));
        let call = if get.is_some() { "jobs.get" } else { "jobs.insert" };
        if let Some(get) = get {
            up.route(google::jobs_get_rule(PROJECT).reply(get));
        }
        let r = harness(&up).handle(event()).await.unwrap();
        let prefix = format!("BigQuery {call} refused job {} for {USAGE_DEST}: {google_says}", job_id(1));
        assert_error(&r, 502, "upstream-rejected", &prefix);
        assert_eq!(r.run.outbound.len(), if call == "jobs.get" { 2 } else { 1 }, "no retry: {google_says}");
    }
}

#[tokio::test(start_paused = true)]
async fn odd_google_answers_give_clear_messages() {
    let html = "<html><head><title>Error 403 (Forbidden)</title></head>\n<body>Forbidden</body></html>";
    let cases = [
        (
            Reply::text(403, html),
            502,
            "HTTP 403: unexpected body: <html><head><title>Error 403 (Forbidden)</title></head> <body>Forbidden</body></html>",
        ),
        (
            Reply::json(400, &json!({"error": {"code": 400}})).body(r#"{"error":{"code":400,"message":"Inval"#),
            502,
            "HTTP 400: unexpected body: {\"error\":{\"code\":400,\"message\":\"Inval",
        ),
        (
            Reply::json(
                403,
                &json!({"error": {"code": 403, "message": "Access Denied: Dataset", "status": "PERMISSION_DENIED"}}),
            ),
            502,
            "HTTP 403 PERMISSION_DENIED: Access Denied: Dataset",
        ),
        (
            Reply::json(
                403,
                &json!({"error": {"code": 403, "errors": [{"reason": "accessDenied", "message": "only here"}]}}),
            ),
            502,
            "HTTP 403 accessDenied: only here",
        ),
        (Reply::status(404), 502, "HTTP 404: (empty body)"),
        (
            Reply::json(418, &json!(["not", "an", "error"])),
            502,
            "HTTP 418: unexpected body: [\"not\",\"an\",\"error\"]",
        ),
    ];
    for (reply, status, says) in cases {
        let up = FakeUpstream::new();
        up.route(google::jobs_insert_rule(PROJECT).reply(reply));
        let r = harness(&up).handle(event()).await.unwrap();
        let body = assert_error(&r, status, "upstream-rejected", "BigQuery jobs.insert refused job");
        let reason = body["reason"].as_str().unwrap();
        assert!(reason.ends_with(says), "{reason:?} should end with {says:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn unreadable_success_answers_are_resolved_by_reading_the_job() {
    for insert_body in ["<html>OK</html>", "{\"status\": {\"state\": \"DO", "", "{}"] {
        let up = FakeUpstream::new();
        up.route(google::jobs_insert_rule(PROJECT).reply(Reply::text(200, insert_body)))
            .route(google::jobs_get_rule(PROJECT).reply(google::job_done_echo(3)));
        let r = harness(&up).handle(event()).await.unwrap();
        assert_loaded(&r, USAGE_NAME, Some(USAGE_GEN), 3);
        assert_eq!(r.run.outbound[1].url, get_url(&job_id(1)), "{insert_body:?}");
    }
    // A jobs.get that never makes sense is retried until the deadline, then 503.
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(google::duplicate_job_echo()))
        .route(google::jobs_get_rule(PROJECT).reply(Reply::text(200, "{\"status\": {\"sta")));
    let r = harness(&up).env("GCR_USAGE_WAIT_SECONDS", "5").handle(event()).await.unwrap();
    assert_error(&r, 503, "upstream-unavailable", "BigQuery jobs.get: job resource is not valid JSON");
    assert!(r.run.elapsed <= Duration::from_secs(10), "budget is max(wait, 10 s)");
}
