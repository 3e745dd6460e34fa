//! Google's answers as the public REST references shape them: the BigQuery v2 `Job` resource
//! (int64 fields such as `outputRows` are JSON *strings*), Google's error envelope
//! `{"error": {"code", "message", "errors": [{"reason", ...}], "status"}}` and Cloud Storage's
//! `X-Goog-Hash`. Shared by the stateful [`crate::Google`] and by tests that script one answer.

use base64::Engine;
use crc::{CRC_32_ISCSI, Crc, Table};
use serde_json::{Value, json};

/// Which job a BigQuery request or answer is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobRef {
    pub project: String,
    pub job_id: String,
    pub location: Option<String>,
}

impl JobRef {
    pub fn new(project: &str, job_id: &str, location: Option<&str>) -> Self {
        JobRef { project: project.into(), job_id: job_id.into(), location: location.map(Into::into) }
    }

    /// The job a request names: `jobReference` of a `jobs.insert` (or upload-initiation) body,
    /// else the last path segment of a `jobs.get` URL, its location from `?location=`. Lets one
    /// answer serve whatever (deterministic) job id the loader chose.
    pub fn from_request(method: &http::Method, path: &str, query: Option<&str>, body: &[u8]) -> Self {
        let project = path
            .trim_start_matches("/upload")
            .strip_prefix("/bigquery/v2/projects/")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_default()
            .to_string();
        if method == http::Method::POST {
            let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let r = &body["jobReference"];
            return JobRef {
                project: r["projectId"].as_str().map_or(project, str::to_string),
                job_id: r["jobId"].as_str().unwrap_or_default().to_string(),
                location: r["location"].as_str().map(str::to_string),
            };
        }
        JobRef {
            project,
            job_id: path.rsplit('/').next().unwrap_or_default().to_string(),
            location: query_param(query, "location").map(str::to_string),
        }
    }

    fn reference(&self) -> Value {
        let mut r = json!({"projectId": self.project, "jobId": self.job_id});
        if let Some(loc) = &self.location {
            r["location"] = json!(loc);
        }
        r
    }

    /// `project:location.job`, as BigQuery writes a job's `id`.
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

/// Google's error envelope with this HTTP status, `errors[0].reason` and message.
pub fn google_error(status: u16, reason: &str, message: &str) -> Value {
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
    json!({"error": {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": status_name,
    }})
}

/// The 409 `jobs.insert` (or an upload's last chunk) answers when the job id exists.
pub fn duplicate_job(job: &JobRef) -> Value {
    google_error(409, "duplicate", &format!("Already Exists: Job {}", job.id()))
}

/// `X-Goog-Hash: crc32c=…` for these bytes (big-endian CRC32C, base64), as Cloud Storage sends it.
pub fn crc32c_header(bytes: &[u8]) -> String {
    // Slicing-by-16, built once: the benchmarks hash hundreds of MB of uploads through the
    // fake, whose cost must stay small beside the component's.
    static CRC32C: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISCSI);
    let crc = CRC32C.checksum(bytes);
    format!("crc32c={}", base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes()))
}

/// One query parameter's raw value.
pub(crate) fn query_param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?.split('&').filter_map(|kv| kv.split_once('=')).find_map(|(k, v)| (k == key).then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_cloud_storages() {
        // RFC 3720's check value for "123456789" is 0xE3069283.
        assert_eq!(crc32c_header(b"123456789"), "crc32c=4waSgw==");
    }

    #[test]
    fn a_job_is_named_by_the_body_or_the_path() {
        let body = br#"{"jobReference":{"projectId":"p","jobId":"j","location":"EU"}}"#;
        let insert = JobRef::from_request(&http::Method::POST, "/bigquery/v2/projects/x/jobs", None, body);
        assert_eq!(insert, JobRef::new("p", "j", Some("EU")));
        let get = JobRef::from_request(&http::Method::GET, "/bigquery/v2/projects/p/jobs/j", Some("location=EU"), b"");
        assert_eq!((get.id(), insert.id()), ("p:EU.j".to_string(), "p:EU.j".to_string()));
    }
}
