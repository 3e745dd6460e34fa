//! Interpreting BigQuery's answers: error bodies, retry classes, job resources.
//!
//! Google's error bodies are `{"error":{"code","message","errors":[{"reason","message"}],"status"}}`,
//! but proxies and load balancers answer with HTML or plain text, bodies arrive truncated, and
//! some errors lack `errors`. Every such case still yields a readable message.

use serde::Deserialize;

use crate::object::truncate;

/// A non-2xx answer from a Google API, reduced to what decisions and messages need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleError {
    pub status: u16,
    /// `errors[0].reason` (e.g. `duplicate`, `rateLimitExceeded`), or the RPC `status`.
    pub reason: Option<String>,
    pub message: String,
}

impl std::fmt::Display for GoogleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            Some(reason) => write!(f, "HTTP {} {}: {}", self.status, reason, self.message),
            None => write!(f, "HTTP {}: {}", self.status, self.message),
        }
    }
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Longest piece of a foreign body quoted in a message.
const QUOTE_CHARS: usize = 300;

impl GoogleError {
    pub fn from_response(status: u16, body: &[u8]) -> GoogleError {
        if let Ok(ErrorEnvelope { error }) = serde_json::from_slice::<ErrorEnvelope>(body) {
            let first = error.errors.into_iter().next();
            let reason = first.as_ref().and_then(|e| e.reason.clone()).or(error.status);
            let message =
                error.message.or_else(|| first.and_then(|e| e.message)).unwrap_or_else(|| "(no message)".to_string());
            return GoogleError { status, reason, message: truncate(&message, QUOTE_CHARS) };
        }
        GoogleError { status, reason: None, message: quote_body(body) }
    }

    /// What to do about this error.
    pub fn class(&self) -> ErrorClass {
        match (self.status, self.reason.as_deref()) {
            (409, _) => ErrorClass::AlreadyExists,
            // Before the retryable reasons: a spent quota refills over hours, never in a backoff.
            (_, Some("quotaExceeded")) => ErrorClass::Quota,
            (_, Some("rateLimitExceeded" | "backendError" | "internalError" | "badGateway")) => ErrorClass::Transient,
            (408 | 429 | 500..=599, _) => ErrorClass::Transient,
            _ => ErrorClass::Permanent,
        }
    }
}

/// A body that is not Google's JSON error, as a short readable quote.
pub fn quote_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        format!("unexpected body: {}", truncate(&text, QUOTE_CHARS))
    }
}

/// How an error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// 409: the job id exists — the event was delivered before. Read that job.
    AlreadyExists,
    /// 408, 429, any 5xx, or a retryable reason: retry the same request after a backoff.
    Transient,
    /// `quotaExceeded`: a daily quota (load jobs per table or project…) is spent. It refills over
    /// a rolling 24 hours, so a retry storm only burns what refills: stop and say when to resume.
    Quota,
    /// Anything else: retrying cannot help; report Google's message.
    Permanent,
}

/// Whether a failed job's `errorResult` is a spent quota (the job was created, counted, and
/// loaded nothing).
pub fn is_quota(failure: &JobFailure) -> bool {
    failure.reason.as_deref() == Some("quotaExceeded")
}

/// A job's state as `jobs.insert` / `jobs.get` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Done {
        /// `statistics.load.outputRows`, when present.
        rows: Option<u64>,
        /// `status.errorResult`: present means the job failed, whatever the HTTP status said.
        failure: Option<JobFailure>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    pub reason: Option<String>,
    pub message: String,
}

impl std::fmt::Display for JobFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reason {
            Some(reason) => write!(f, "{reason}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What the loader reads from a Job resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub state: JobState,
    /// Its [`crate::job::DELIVERY_LABEL`], when it has one (jobs submitted by older loaders, or
    /// by emulators that drop labels, do not).
    pub delivery: Option<String>,
    /// What the job is for, in the exactly-once protocol ([`crate::claims`]).
    pub role: JobRole,
}

/// What a job found at a load's id is, read from its configuration and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRole {
    /// A load job; `source_uris` are its `gs://` sources (empty for an upload).
    Load { source_uris: Vec<String> },
    /// A query job reserving an object's attempt for the batch whose job id is `batch`, which
    /// promised to create its load before `deadline` (Unix seconds).
    Reservation { batch: String, deadline: u64 },
    /// A query job closing a batch id, so that batch's load can never be created.
    Tombstone,
    /// Anything else (not a job of this loader's protocol).
    Other,
}

#[derive(Deserialize)]
struct JobResource {
    status: Option<StatusResource>,
    statistics: Option<Statistics>,
    configuration: Option<ConfigurationResource>,
}

#[derive(Deserialize)]
struct ConfigurationResource {
    /// Only the protocol's labels matter, and an odd label must not make the job unreadable.
    labels: Option<serde_json::Value>,
    load: Option<LoadConfiguration>,
    query: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoadConfiguration {
    #[serde(default)]
    source_uris: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusResource {
    state: Option<String>,
    error_result: Option<ErrorProto>,
    #[serde(default)]
    errors: Vec<ErrorProto>,
}

#[derive(Deserialize)]
struct ErrorProto {
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Statistics {
    load: Option<LoadStatistics>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoadStatistics {
    output_rows: Option<Int64>,
}

/// int64 fields arrive as JSON strings; accept numbers too.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Text(String),
    Number(u64),
}

/// Reads a Job resource; the error says what was wrong with the body.
pub fn parse_job(body: &[u8]) -> Result<Job, String> {
    let job: JobResource = serde_json::from_slice(body)
        .map_err(|e| format!("job resource is not valid JSON ({e}); {}", quote_body(body)))?;
    let configuration = job.configuration;
    let labels = configuration.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
    let label = |key: &str| labels.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let delivery = label(crate::job::DELIVERY_LABEL);
    let role = match configuration {
        Some(ConfigurationResource { load: Some(load), .. }) => JobRole::Load { source_uris: load.source_uris },
        Some(ConfigurationResource { query: Some(_), .. }) => {
            match (label(crate::batch_job::ROLE_LABEL).as_deref(), label(crate::batch_job::BATCH_LABEL)) {
                (Some(crate::batch_job::ROLE_TOMBSTONE), _) => JobRole::Tombstone,
                (Some(crate::batch_job::ROLE_RESERVATION), Some(batch)) => {
                    let deadline = label(crate::batch_job::DEADLINE_LABEL).and_then(|d| d.parse().ok()).unwrap_or(0);
                    JobRole::Reservation { batch, deadline }
                }
                _ => JobRole::Other,
            }
        }
        // No configuration (fakes, and emulators that drop it): read as a load, as the loader
        // always has, so such a job at an object's id is that object's load.
        Some(ConfigurationResource { load: None, query: None, .. }) | None => JobRole::Load { source_uris: Vec::new() },
    };
    let state = job_state(job.status.ok_or("job resource has no status")?, job.statistics)?;
    Ok(Job { state, delivery, role })
}

fn job_state(status: StatusResource, statistics: Option<Statistics>) -> Result<JobState, String> {
    match status.state.as_deref() {
        Some("PENDING") => Ok(JobState::Pending),
        Some("RUNNING") => Ok(JobState::Running),
        Some("DONE") => {
            let failure = status.error_result.map(|e| {
                // errorResult is often generic ("Error while reading data"); the first of
                // `errors` usually names the row and column.
                let detail = status
                    .errors
                    .iter()
                    .filter_map(|e| e.message.as_deref())
                    .find(|m| Some(*m) != e.message.as_deref());
                let base = e.message.unwrap_or_else(|| "the load job failed".into());
                JobFailure {
                    reason: e.reason,
                    message: truncate(&detail.map(|d| format!("{base} ({d})")).unwrap_or(base), QUOTE_CHARS),
                }
            });
            let rows = match statistics.and_then(|s| s.load).and_then(|l| l.output_rows) {
                None => None,
                Some(Int64::Number(n)) => Some(n),
                Some(Int64::Text(t)) => {
                    Some(t.parse().map_err(|_| format!("statistics.load.outputRows {t:?} is not an integer"))?)
                }
            };
            Ok(JobState::Done { rows, failure })
        }
        Some(other) => Err(format!("job state {:?} is unknown", truncate(other, 40))),
        None => Err("job resource has no status.state".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_409() {
        let body = br#"{"error":{"code":409,"message":"Already Exists: Job demo-project:US.gcr_usage_x","errors":[{"domain":"global","reason":"duplicate","message":"Already Exists: Job demo-project:US.gcr_usage_x"}],"status":"ALREADY_EXISTS"}}"#;
        let e = GoogleError::from_response(409, body);
        assert_eq!(e.reason.as_deref(), Some("duplicate"));
        assert_eq!(e.class(), ErrorClass::AlreadyExists);
        assert!(e.to_string().contains("Already Exists"));
    }

    #[test]
    fn retry_classes() {
        let err = |status, reason: &str| GoogleError { status, reason: Some(reason.into()), message: String::new() };
        assert_eq!(err(403, "rateLimitExceeded").class(), ErrorClass::Transient);
        assert_eq!(err(500, "backendError").class(), ErrorClass::Transient);
        assert_eq!(err(429, "x").class(), ErrorClass::Transient);
        assert_eq!(err(503, "x").class(), ErrorClass::Transient);
        assert_eq!(err(403, "accessDenied").class(), ErrorClass::Permanent);
        assert_eq!(err(403, "quotaExceeded").class(), ErrorClass::Quota);
        assert_eq!(err(404, "notFound").class(), ErrorClass::Permanent);
        assert_eq!(err(400, "invalid").class(), ErrorClass::Permanent);
    }

    #[test]
    fn bodies_that_are_not_google_errors() {
        let html = GoogleError::from_response(502, b"<html><body>\n<h1>502 Bad Gateway</h1></body></html>");
        assert_eq!(html.reason, None);
        assert!(html.message.contains("502 Bad Gateway"), "{}", html.message);
        assert_eq!(html.class(), ErrorClass::Transient);
        let truncated = GoogleError::from_response(400, br#"{"error":{"code":400,"message":"Inval"#);
        assert!(truncated.message.starts_with("unexpected body"));
        let no_errors = GoogleError::from_response(
            403,
            br#"{"error":{"code":403,"message":"Access Denied: Dataset","status":"PERMISSION_DENIED"}}"#,
        );
        assert_eq!(no_errors.reason.as_deref(), Some("PERMISSION_DENIED"));
        assert_eq!(no_errors.message, "Access Denied: Dataset");
        assert_eq!(GoogleError::from_response(500, b"").message, "(empty body)");
        let long = GoogleError::from_response(500, "x".repeat(10_000).as_bytes());
        assert!(long.message.chars().count() < 400);
    }

    fn parse_state(body: &[u8]) -> Result<JobState, String> {
        parse_job(body).map(|job| job.state)
    }

    #[test]
    fn job_delivery_labels() {
        let delivery = |body: &[u8]| parse_job(body).unwrap().delivery;
        assert_eq!(delivery(br#"{"status":{"state":"RUNNING"}}"#), None);
        assert_eq!(
            delivery(
                br#"{"status":{"state":"DONE"},"configuration":{"labels":{"loader":"gcr-usage","delivery":"ab12"}}}"#
            ),
            Some("ab12".into())
        );
        assert_eq!(delivery(br#"{"status":{"state":"DONE"},"configuration":{"labels":null}}"#), None);
        assert_eq!(delivery(br#"{"status":{"state":"DONE"},"configuration":{"labels":{"delivery":7}}}"#), None);
    }

    #[test]
    fn job_states() {
        assert_eq!(parse_state(br#"{"status":{"state":"RUNNING"}}"#), Ok(JobState::Running));
        assert_eq!(parse_state(br#"{"status":{"state":"PENDING"}}"#), Ok(JobState::Pending));
        assert_eq!(
            parse_state(br#"{"status":{"state":"DONE"},"statistics":{"load":{"outputRows":"42"}}}"#),
            Ok(JobState::Done { rows: Some(42), failure: None })
        );
        assert_eq!(
            parse_state(br#"{"status":{"state":"DONE"},"statistics":{"load":{"outputRows":7}}}"#),
            Ok(JobState::Done { rows: Some(7), failure: None })
        );
        let failed = parse_state(
            br#"{"status":{"state":"DONE","errorResult":{"reason":"invalid","message":"Error while reading data"},"errors":[{"reason":"invalid","message":"Error while reading data"},{"reason":"invalid","message":"Could not parse 'x' as INT64 for field time_micros (position 0) starting at location 0"}]}}"#,
        )
        .unwrap();
        let JobState::Done { failure: Some(f), .. } = failed else { panic!("{failed:?}") };
        assert_eq!(f.reason.as_deref(), Some("invalid"));
        assert!(f.message.contains("Could not parse 'x'"), "{}", f.message);
        for bad in [
            &b"{"[..],
            b"[]",
            b"{}",
            br#"{"status":{}}"#,
            br#"{"status":{"state":"WEIRD"}}"#,
            br#"{"status":{"state":"DONE"},"statistics":{"load":{"outputRows":"x"}}}"#,
        ] {
            assert!(parse_state(bad).is_err());
        }
    }
}
