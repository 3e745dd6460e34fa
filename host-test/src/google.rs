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

/// Which job a BigQuery answer is about.
#[derive(Clone, Debug)]
pub struct JobRef {
    pub project: String,
    pub job_id: String,
    pub location: Option<String>,
}

impl JobRef {
    pub fn new(project: &str, job_id: &str, location: Option<&str>) -> Self {
        JobRef { project: project.into(), job_id: job_id.into(), location: location.map(Into::into) }
    }

    /// The job a request is about: `jobReference` of a `jobs.insert` body, else the last path
    /// segment of a `jobs.get` URL (location from `?location=`). Lets one scripted reply serve
    /// whatever (deterministic) job id the guest chose.
    pub fn from_request(req: &RecordedRequest) -> Self {
        let project = req
            .path
            .strip_prefix("/bigquery/v2/projects/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default()
            .to_string();
        if req.method == http::Method::POST {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let r = &body["jobReference"];
            return JobRef {
                project: r["projectId"].as_str().map_or(project, str::to_string),
                job_id: r["jobId"].as_str().unwrap_or_default().to_string(),
                location: r["location"].as_str().map(str::to_string),
            };
        }
        JobRef {
            project,
            job_id: req.path.rsplit('/').next().unwrap_or_default().to_string(),
            location: req.query_param("location").map(str::to_string),
        }
    }

    fn reference(&self) -> Value {
        let mut r = json!({"projectId": self.project, "jobId": self.job_id});
        if let Some(loc) = &self.location {
            r["location"] = json!(loc);
        }
        r
    }

    pub fn id(&self) -> String {
        match &self.location {
            Some(loc) => format!("{}:{}.{}", self.project, loc, self.job_id),
            None => format!("{}:{}", self.project, self.job_id),
        }
    }
}

/// A `Job` resource in `state` with optional load statistics and error.
pub fn job_resource(job: &JobRef, state: &str, output_rows: Option<u64>, error: Option<(&str, &str)>) -> Value {
    let mut status = json!({"state": state});
    if let Some((reason, message)) = error {
        let e = json!({"reason": reason, "message": message});
        status["errorResult"] = e.clone();
        status["errors"] = json!([e]);
    }
    let mut statistics = json!({"creationTime": "1767225600000"});
    if let Some(rows) = output_rows {
        statistics["load"] = json!({
            "inputFiles": "1",
            "inputFileBytes": "1024",
            "outputRows": rows.to_string(),
            "outputBytes": (rows * 100).to_string(),
            "badRecords": "0",
        });
    }
    json!({
        "kind": "bigquery#job",
        "id": job.id(),
        "selfLink": format!("https://bigquery.googleapis.com/bigquery/v2/projects/{}/jobs/{}", job.project, job.job_id),
        "jobReference": job.reference(),
        "status": status,
        "statistics": statistics,
    })
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
    Reply::dynamic(move |r| job_done(&JobRef::from_request(r), output_rows))
}

pub fn job_running_echo() -> Reply {
    Reply::dynamic(|r| job_running(&JobRef::from_request(r)))
}

pub fn job_failed_echo(reason: &'static str, message: &'static str) -> Reply {
    Reply::dynamic(move |r| job_failed(&JobRef::from_request(r), reason, message))
}

/// Google's error envelope with this HTTP status, `errors[0].reason` and message.
pub fn google_error(status: u16, reason: &str, message: &str) -> Reply {
    let status_name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    };
    Reply::json(
        status,
        &json!({"error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status_name,
        }}),
    )
}

/// 409 from `jobs.insert` when the job id already exists (a redelivered event).
pub fn duplicate_job(job: &JobRef) -> Reply {
    google_error(409, "duplicate", &format!("Already Exists: Job {}", job.id()))
}

/// 409 duplicate for whatever job the request names.
pub fn duplicate_job_echo() -> Reply {
    Reply::dynamic(|r| duplicate_job(&JobRef::from_request(r)))
}

/// A 5xx (500 `backendError`, 503 `backendError`, ...).
pub fn server_error(status: u16) -> Reply {
    google_error(status, "backendError", "Backend error. Please try again.")
}

/// 429 `rateLimitExceeded`.
pub fn rate_limited() -> Reply {
    google_error(429, "rateLimitExceeded", "Exceeded rate limits: too many api requests per user per method")
}
