//! Artifact Registry's Cloud Audit Logs (Data Access), the second log source beside usage logs:
//! Artifact Registry has no bucket to log, so its pulls are recorded only there. A log sink
//! writes the entries to Cloud Storage as JSON lines; `gcloud logging read --format=json`
//! prints them as one JSON array. Both are read by [`AuditLogReader`] into the same
//! [`crate::usage::RegistryEvent`]s (and so the same NDJSON, table and views) as usage-log rows.
//!
//! - `framing`: the stream → one JSON text per entry (either layout), bounded memory;
//! - `entry`: the parts of a `LogEntry` the classifier reads; RFC 3339 timestamps;
//! - `classify`: an entry → an event (registry host, image, reference, action, principal, …);
//! - `reader`: skipping, deduplicating, counting, lending each event.

pub mod classify;
pub mod entry;
pub mod framing;
pub mod reader;

pub use reader::{AuditLogReader, AuditReadError, AuditStats};

#[cfg(test)]
mod fixture_tests;
