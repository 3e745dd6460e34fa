//! Canned Google answers (metadata server, BigQuery jobs API) for [`FakeUpstream`] scripts.
//!
//! Shapes follow the public REST references: the metadata server's token JSON and the BigQuery v2
//! `Job` resource (int64 fields such as `outputRows` are JSON *strings* there) and Google's error
//! envelope `{"error": {"code", "message", "errors": [{"reason", ...}], "status"}}`.
//!
//! [`FakeUpstream`]: crate::FakeUpstream

use serde_json::{Value, json};

use crate::upstream::{PathMatch, RecordedRequest, Reply, Rule, exact, matching};

pub const METADATA_HOST: &str = "metadata.google.internal";
pub const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
pub const BIGQUERY_HOST: &str = "bigquery.googleapis.com";

/// The metadata server's access-token answer.
pub fn metadata_token(token: &str) -> Reply {
    Reply::json(200, &json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}))
        .header("metadata-flavor", "Google")
}

/// Rule for `GET http://metadata.google.internal/computeMetadata/v1/.../token`.
pub fn metadata_token_rule() -> Rule {
    Rule::get(exact(METADATA_TOKEN_PATH)).host(METADATA_HOST)
}

/// Rule for `jobs.insert`: `POST /bigquery/v2/projects/{project}/jobs` (query ignored).
pub fn jobs_insert_rule(project: &str) -> Rule {
    Rule::post(exact(format!("/bigquery/v2/projects/{project}/jobs"))).host(BIGQUERY_HOST)
}

/// Rule for `jobs.get` of any job in `project`: `GET /bigquery/v2/projects/{project}/jobs/{id}`.
pub fn jobs_get_rule(project: &str) -> Rule {
    let jobs = format!("/bigquery/v2/projects/{project}/jobs/");
    Rule::get(matching(move |r: &RecordedRequest| {
        r.path.strip_prefix(jobs.as_str()).is_some_and(|id| !id.is_empty() && !id.contains('/'))
    }))
    .host(BIGQUERY_HOST)
}

/// Rule for `jobs.get` of one job id.
pub fn jobs_get_one_rule(project: &str, job_id: &str) -> Rule {
    Rule::get(PathMatch::Exact(format!("/bigquery/v2/projects/{project}/jobs/{job_id}"))).host(BIGQUERY_HOST)
}

pub use gcr_usage_fake_google::{JobRef, job_resource};

/// The job a recorded request names (see [`JobRef::from_request`]).
pub fn job_of(r: &RecordedRequest) -> JobRef {
    JobRef::from_request(&r.method, &r.path, r.query.as_deref(), &r.body)
}

/// A request body with the job's `delivery` label (random per delivery) taken out, so two
/// deliveries' jobs compare equal exactly when they describe the same load.
pub fn without_delivery_label(body: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<Value>(body) {
        Ok(mut json) => {
            if let Some(labels) = json.pointer_mut("/configuration/labels").and_then(Value::as_object_mut) {
                labels.remove(gcr_usage_core::job::DELIVERY_LABEL);
            }
            serde_json::to_vec(&json).expect("JSON serialises")
        }
        Err(_) => body.to_vec(),
    }
}

/// 200, job DONE without error, `outputRows` loaded.
pub fn job_done(job: &JobRef, output_rows: u64) -> Reply {
    Reply::json(200, &job_resource(job, "DONE", Some(output_rows), None))
}

/// 200, job RUNNING.
pub fn job_running(job: &JobRef) -> Reply {
    Reply::json(200, &job_resource(job, "RUNNING", None, None))
}

/// 200, job PENDING.
pub fn job_pending(job: &JobRef) -> Reply {
    Reply::json(200, &job_resource(job, "PENDING", None, None))
}

/// 200, job DONE with `errorResult` (BigQuery rejected the load: `reason` e.g. "invalid").
pub fn job_failed(job: &JobRef, reason: &str, message: &str) -> Reply {
    Reply::json(200, &job_resource(job, "DONE", None, Some((reason, message))))
}

/// The same answers, echoing whatever job the request names (see [`JobRef::from_request`]).
pub fn job_done_echo(output_rows: u64) -> Reply {
    Reply::dynamic(move |r| job_done(&job_of(r), output_rows))
}

pub fn job_running_echo() -> Reply {
    Reply::dynamic(|r| job_running(&job_of(r)))
}

pub fn job_failed_echo(reason: &'static str, message: &'static str) -> Reply {
    Reply::dynamic(move |r| job_failed(&job_of(r), reason, message))
}

/// Google's error envelope with this HTTP status, `errors[0].reason` and message.
pub fn google_error(status: u16, reason: &str, message: &str) -> Reply {
    Reply::json(status, &gcr_usage_fake_google::google_error(status, reason, message))
}

/// 409 from `jobs.insert` when the job id already exists (a redelivered event).
pub fn duplicate_job(job: &JobRef) -> Reply {
    Reply::json(409, &gcr_usage_fake_google::duplicate_job(job))
}

/// 409 duplicate for whatever job the request names.
pub fn duplicate_job_echo() -> Reply {
    Reply::dynamic(|r| duplicate_job(&job_of(r)))
}

/// A 5xx (500 `backendError`, 503 `backendError`, ...).
pub fn server_error(status: u16) -> Reply {
    google_error(status, "backendError", "Backend error. Please try again.")
}

/// 429 `rateLimitExceeded`.
pub fn rate_limited() -> Reply {
    google_error(429, "rateLimitExceeded", "Exceeded rate limits: too many api requests per user per method")
}
