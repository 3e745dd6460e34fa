//! The HTTP contract: one rule maps every result to a status code, and one JSON shape serves
//! both the answer body and the log line.
//!
//! The rule: **2xx means "done, do not redeliver"** (loaded, duplicate, ignored, submitted);
//! **4xx means "this request cannot succeed as sent"** (400 malformed, 403 bucket not allowed,
//! 405/404 wrong method or path, 413 too large, 422 BigQuery rejected the load — the next
//! delivery submits a fresh attempt); **5xx means "try again later"** (500 configuration,
//! 502 Google refused the call, 503 Google unavailable until the deadline). Pub/Sub and
//! Eventarc redeliver every non-2xx answer, so a dead-letter topic should catch the 4xx ones.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::outcome::{LoadError, Outcome, OutcomeKind, Refusal};
use crate::service::ObjectResult;

/// A rendered answer: status, JSON body and the one log line for the event. Made only by the
/// constructors below, from an [`Outcome`], a [`LoadError`] or a [`Refusal`]: `non_exhaustive`
/// keeps hosts from writing a status by hand and so around the rule.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub severity: Severity,
    pub message: String,
}

/// Ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

pub fn status_of_outcome(kind: OutcomeKind) -> u16 {
    match kind {
        OutcomeKind::Loaded | OutcomeKind::Duplicate | OutcomeKind::Ignored => 200,
        OutcomeKind::Submitted => 202,
        OutcomeKind::Failed => 422,
    }
}

pub fn status_of_refusal(refusal: &Refusal) -> u16 {
    match refusal {
        Refusal::Unauthenticated(_) => 401,
        Refusal::Forbidden(_) => 403,
        Refusal::MethodNotAllowed(_) => 405,
        Refusal::BodyTooLarge(_) => 413,
    }
}

pub fn status_of_error(error: &LoadError) -> u16 {
    match error {
        LoadError::InvalidInput(_) => 400,
        LoadError::BucketNotAllowed(_) => 403,
        LoadError::Configuration(_) => 500,
        LoadError::UpstreamRejected(_) => 502,
        LoadError::UpstreamUnavailable(_) => 503,
    }
}

impl Answer {
    pub fn from_result(result: &Result<Outcome, LoadError>) -> Answer {
        match result {
            Ok(outcome) => Answer::from_outcome(outcome),
            Err(error) => Answer::from_error(error, None),
        }
    }

    /// One object's answer. In `both` mode the events load's answer rides along as `events`,
    /// and the status is the graver of the two (a higher code is never milder here: 2xx < 4xx
    /// < 5xx, and within each class the codes grow with the trouble), so a load that needs a
    /// redelivery gets one; the other load answers `duplicate` then.
    pub fn from_object_result(result: &ObjectResult, object: &crate::ObjectRef) -> Answer {
        let first = match &result.load {
            Ok(outcome) => Answer::from_outcome(outcome),
            Err(error) => Answer::from_error(error, Some(object)),
        };
        let Some(events) = &result.events else { return first };
        let second = match events {
            Ok(outcome) => Answer::from_outcome(outcome),
            Err(error) => Answer::from_error(error, None),
        };
        let mut body = first.body;
        if let Value::Object(map) = &mut body {
            map.insert("events".into(), second.body);
        }
        Answer {
            status: first.status.max(second.status),
            body,
            severity: first.severity.max(second.severity),
            message: format!("{}; events: {}", first.message, second.message),
        }
    }

    pub fn from_outcome(outcome: &Outcome) -> Answer {
        let body = serde_json::to_value(outcome).expect("an outcome serialises");
        let object = outcome.object.as_ref().map(|o| o.gs_uri()).unwrap_or_default();
        let (severity, message) = match outcome.outcome {
            OutcomeKind::Loaded => (
                Severity::Info,
                format!(
                    "loaded {object} into {} ({} rows)",
                    outcome.destination.as_deref().unwrap_or("?"),
                    outcome.rows.map_or("unknown".to_string(), |r| r.to_string())
                ),
            ),
            OutcomeKind::Failed => {
                (Severity::Error, format!("load of {object} failed: {}", outcome.reason.as_deref().unwrap_or("")))
            }
            kind => {
                (Severity::Info, format!("{} {object}: {}", kind.as_str(), outcome.reason.as_deref().unwrap_or("")))
            }
        };
        Answer { status: status_of_outcome(outcome.outcome), body, severity, message }
    }

    pub fn from_error(error: &LoadError, object: Option<&crate::ObjectRef>) -> Answer {
        let status = status_of_error(error);
        let mut body = Map::new();
        body.insert("outcome".into(), "error".into());
        body.insert("error".into(), error.kind().into());
        if let Some(object) = object {
            body.insert("object".into(), serde_json::to_value(object).expect("an object serialises"));
        }
        body.insert("reason".into(), error.message().into());
        let severity = if status >= 500 { Severity::Error } else { Severity::Warning };
        Answer { status, body: Value::Object(body), severity, message: error.to_string() }
    }

    /// A request turned away before any load (routing, size, trigger authentication).
    pub fn from_refusal(refusal: &Refusal) -> Answer {
        Answer::error_body(status_of_refusal(refusal), refusal.kind(), refusal.message().to_string())
    }

    /// `GET /healthz` with a valid configuration (an invalid one answers its `configuration`
    /// error instead).
    pub fn healthy() -> Answer {
        Answer {
            status: 200,
            body: serde_json::json!({"status": "ok"}),
            severity: Severity::Info,
            message: "healthy".into(),
        }
    }

    fn error_body(status: u16, error: &str, reason: String) -> Answer {
        let mut body = Map::new();
        body.insert("outcome".into(), "error".into());
        body.insert("error".into(), error.into());
        body.insert("reason".into(), reason.clone().into());
        let severity = if status >= 500 { Severity::Error } else { Severity::Warning };
        Answer { status, body: Value::Object(body), severity, message: format!("{error}: {reason}") }
    }

    pub fn body_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec(&self.body).expect("JSON serialises");
        bytes.push(b'\n');
        bytes
    }

    /// One JSON object per line, in the shape Cloud Logging parses (`severity`, `message`),
    /// carrying the answer's fields so logs and answers can be correlated by job id.
    pub fn log_line(&self, extra: &[(&str, Value)]) -> String {
        let mut line = Map::new();
        line.insert("severity".into(), serde_json::to_value(self.severity).expect("severity serialises"));
        line.insert("message".into(), self.message.clone().into());
        line.insert("httpStatus".into(), self.status.into());
        if let Value::Object(fields) = &self.body {
            for (k, v) in fields {
                line.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        for (k, v) in extra {
            line.insert((*k).to_string(), v.clone());
        }
        serde_json::to_string(&Value::Object(line)).expect("JSON serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_status_codes() {
        assert_eq!(status_of_outcome(OutcomeKind::Loaded), 200);
        assert_eq!(status_of_outcome(OutcomeKind::Duplicate), 200);
        assert_eq!(status_of_outcome(OutcomeKind::Ignored), 200);
        assert_eq!(status_of_outcome(OutcomeKind::Submitted), 202);
        assert_eq!(status_of_outcome(OutcomeKind::Failed), 422);
        assert_eq!(status_of_error(&LoadError::InvalidInput(String::new())), 400);
        assert_eq!(status_of_error(&LoadError::BucketNotAllowed(String::new())), 403);
        assert_eq!(status_of_error(&LoadError::Configuration(String::new())), 500);
        assert_eq!(status_of_error(&LoadError::UpstreamRejected(String::new())), 502);
        assert_eq!(status_of_error(&LoadError::UpstreamUnavailable(String::new())), 503);
        assert_eq!(status_of_refusal(&Refusal::Unauthenticated(String::new())), 401);
        assert_eq!(status_of_refusal(&Refusal::Forbidden(String::new())), 403);
        assert_eq!(status_of_refusal(&Refusal::MethodNotAllowed(String::new())), 405);
        assert_eq!(status_of_refusal(&Refusal::BodyTooLarge(String::new())), 413);
        let a = Answer::from_refusal(&Refusal::Forbidden("x@y is not in GCR_USAGE_TRIGGER_EMAILS".into()));
        assert_eq!((a.status, &a.body["error"], a.severity), (403, &"forbidden".into(), Severity::Warning));
    }

    #[test]
    fn log_lines_are_single_json_objects_with_severity() {
        let a = Answer::from_error(&LoadError::Configuration("GCR_USAGE_BUCKETS: is required".into()), None);
        let line = a.log_line(&[("durationMs", 3.into())]);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["severity"], "ERROR");
        assert_eq!(v["httpStatus"], 500);
        assert_eq!(v["error"], "configuration");
        assert_eq!(v["durationMs"], 3);
        assert!(v["message"].as_str().unwrap().contains("GCR_USAGE_BUCKETS"));
    }
}
