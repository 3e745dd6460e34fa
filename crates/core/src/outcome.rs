//! What handling one object ends in: an [`Outcome`] (the event is dealt with) or a
//! [`LoadError`] (whose fault, and whether a redelivery can help).

use serde::Serialize;

use crate::log_name::LogKind;
use crate::object::ObjectRef;
use crate::usage::{Malformed, ReadStats};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeKind {
    /// This delivery submitted the job and it finished: the rows are in the table.
    Loaded,
    /// The job already existed (a redelivered event): nothing was loaded twice.
    Duplicate,
    /// Submitted (or found) but not finished within GCR_USAGE_WAIT_SECONDS.
    Submitted,
    /// Not something gcr-usage loads; `reason` says why.
    Ignored,
    /// BigQuery ran the job and rejected it; the next delivery submits a fresh attempt.
    Failed,
}

impl OutcomeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Loaded => "loaded",
            OutcomeKind::Duplicate => "duplicate",
            OutcomeKind::Submitted => "submitted",
            OutcomeKind::Ignored => "ignored",
            OutcomeKind::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub outcome: OutcomeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_kind: Option<LogKind>,
    /// `project:dataset.table`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What reading the object found (classified loads that read it in this delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<FileCounts>,
    /// Transient failures this delivery got past by retrying: a load that keeps needing
    /// retries is worth a look even when it ends well (`jsonPayload.retries.count > 0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
}

/// How many requests of the load failed transiently and were sent again, and the last failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retries {
    pub count: u32,
    pub last: String,
}

/// Per-file counts of a classified load. `records = events + malformed + duplicates`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCounts {
    /// Size of the object as downloaded.
    pub bytes: u64,
    /// Data records (the header and repeated headers excluded).
    pub records: u64,
    /// Events uploaded: one per good row.
    pub events: u64,
    pub malformed: u64,
    /// Rows dropped for repeating an earlier row's request id (audit entries: insertId and timestamp).
    pub duplicates: u64,
    /// Audit entries of other services, or not audit entries (usage logs: always 0, not shown).
    #[serde(skip_serializing_if = "is_zero")]
    pub skipped: u64,
    /// Events whose text had invalid UTF-8 replaced.
    pub invalid_utf8: u64,
    /// The first malformed rows, with line numbers and reasons.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub first_malformed: Vec<Malformed>,
}

impl FileCounts {
    pub fn new(stats: &ReadStats, bytes: u64) -> FileCounts {
        FileCounts {
            bytes,
            records: stats.records,
            events: stats.rows,
            malformed: stats.malformed,
            duplicates: stats.duplicates,
            skipped: 0,
            invalid_utf8: stats.invalid_utf8,
            first_malformed: stats.malformed_samples.clone(),
        }
    }
}

impl Outcome {
    pub fn ignored(object: Option<ObjectRef>, reason: impl Into<String>) -> Outcome {
        Outcome {
            outcome: OutcomeKind::Ignored,
            object,
            log_kind: None,
            destination: None,
            job_id: None,
            rows: None,
            reason: Some(reason.into()),
            counts: None,
            retries: None,
        }
    }
}

/// Why an object could not be dealt with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The request or object reference is malformed (field and rule in the message).
    InvalidInput(String),
    /// The bucket is not in GCR_USAGE_BUCKETS.
    BucketNotAllowed(String),
    /// GCR_USAGE_* configuration is missing or invalid (variable in the message).
    Configuration(String),
    /// Google kept answering with transient errors until the deadline.
    UpstreamUnavailable(String),
    /// Google refused the request for good (Google's message included).
    UpstreamRejected(String),
}

impl LoadError {
    /// The kebab-case name used in JSON answers, log lines and the WIT variant.
    pub fn kind(&self) -> &'static str {
        match self {
            LoadError::InvalidInput(_) => "invalid-input",
            LoadError::BucketNotAllowed(_) => "bucket-not-allowed",
            LoadError::Configuration(_) => "configuration",
            LoadError::UpstreamUnavailable(_) => "upstream-unavailable",
            LoadError::UpstreamRejected(_) => "upstream-rejected",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            LoadError::InvalidInput(m)
            | LoadError::BucketNotAllowed(m)
            | LoadError::Configuration(m)
            | LoadError::UpstreamUnavailable(m)
            | LoadError::UpstreamRejected(m) => m,
        }
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

/// A request turned away before any load was attempted: the rest of the contract's vocabulary,
/// beside [`Outcome`] and [`LoadError`]. Every answer the loader gives is built from one of the
/// three ([`crate::contract::Answer`]), so no answer can pick its status by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 405: not `POST` (or `GET /healthz`).
    MethodNotAllowed(String),
    /// 413: a body over the event size limit.
    BodyTooLarge(String),
    /// 401: trigger authentication found no usable credential.
    Unauthenticated(String),
    /// 403: a valid credential of someone not allowed to send events.
    Forbidden(String),
}

impl Refusal {
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::MethodNotAllowed(_) => "method-not-allowed",
            Refusal::BodyTooLarge(_) => "body-too-large",
            Refusal::Unauthenticated(_) => "unauthenticated",
            Refusal::Forbidden(_) => "forbidden",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::MethodNotAllowed(m)
            | Refusal::BodyTooLarge(m)
            | Refusal::Unauthenticated(m)
            | Refusal::Forbidden(m) => m,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
