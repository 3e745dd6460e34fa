//! What `gcr-usage report` prints: the public output types, and how values are spelled in
//! them. Plain data with no behaviour, so the CLI can render it as a table, CSV, JSON or HTML.

use serde::Serialize;

use super::accumulator::CurrentFile;
use crate::outcome::FileCounts;

use crate::registry_event::{Action, EventTime};
use crate::usage::reader::{HeaderKind, Malformed, ReadStats};
use crate::usage::user_agent::ClientFamily;

/// One image's pulls over time: `(bucket start in µs since the epoch, pulls)`, ascending,
/// empty buckets left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSeries {
    pub registry_host: String,
    pub repository: String,
    pub buckets: Vec<(i64, u64)>,
}

/// Everything `gcr-usage report` prints. Times are RFC 3339 UTC strings in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub summary: Summary,
    pub files: Vec<FileSummary>,
    /// Per image: pulls (rule 3), blob downloads, bytes, distinct pulling clients.
    pub images: Vec<ImageStats>,
    /// Per UTC day and image (rule 4).
    pub daily: Vec<DailyStats>,
    pub clients_by_pulls: Vec<ClientStats>,
    pub clients_by_bytes: Vec<ClientStats>,
    pub pushes: Vec<PushStats>,
    /// Unsuccessful requests (status neither 2xx nor 304) by status and action.
    pub failures: Vec<FailureStats>,
    pub buckets: Vec<BucketStats>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Usage logs read.
    pub files_read: u64,
    /// Files recognised and skipped (storage logs).
    pub files_skipped: u64,
    pub records: u64,
    pub rows: u64,
    /// Rows counted: rows minus duplicates across files.
    pub events: u64,
    pub malformed: u64,
    /// Duplicate records dropped within a file.
    pub duplicates: u64,
    /// Records dropped because another file held the same request id.
    pub duplicates_across_files: u64,
    /// Rows counted after the duplicate filter had forgotten ids of their minute or a later
    /// one (more request ids than its window): a copy of one read before would count twice.
    /// Left out of the JSON when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub unverified_for_duplicates: u64,
    pub first_event: Option<EventTime>,
    pub last_event: Option<EventTime>,
    /// The pull gap of rule 3 in microseconds (300000000 unless changed).
    pub pull_gap_micros: i64,
    pub images: u64,
    pub pulls: u64,
    pub blob_downloads: u64,
    pub bytes_served: u64,
    pub pulling_clients: u64,
    /// Manifest downloads by Google's own agents (vulnerability scanning, Cloud Build), from
    /// audit logs: reported apart, never counted as pulls (rule A).
    pub agent_pulls: u64,
    /// Successful blob reads whose repository is unknown (no registry Referer).
    pub unattributed_blob_downloads: u64,
    pub unattributed_bytes: u64,
    pub pushes: u64,
    pub failures: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    pub file: String,
    /// `usage` or `audit`, or what a skipped file was (`storage`).
    pub kind: &'static str,
    /// Why the file was skipped; `None` for a file that was read.
    pub note: Option<String>,
    /// What the first record was (`none` for an empty or skipped file).
    pub header: HeaderKind,
    pub records: u64,
    pub rows: u64,
    pub events: u64,
    pub malformed: u64,
    pub duplicates: u64,
    pub duplicates_across_files: u64,
    pub invalid_utf8: u64,
    pub malformed_samples: Vec<Malformed>,
    /// An audit log's entries of other services, or that are not audit entries (`None`, and
    /// left out of the JSON, for other files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u64>,
}

impl FileSummary {
    /// A file that was not read: listed with the reason, every count zero.
    pub(super) fn skipped(file: String, kind: &'static str, note: String) -> Self {
        FileSummary {
            file,
            kind,
            note: Some(note),
            header: HeaderKind::None,
            records: 0,
            rows: 0,
            events: 0,
            malformed: 0,
            duplicates: 0,
            duplicates_across_files: 0,
            invalid_utf8: 0,
            malformed_samples: Vec::new(),
            skipped: None,
        }
    }

    /// A usage log that was read: the reader's counts, plus what the statistics counted
    /// (`events`) and dropped as duplicates (within the file: those the reader let through,
    /// which are no rows of the file then; saturating, so counts from another source than the
    /// events added cannot wrap).
    pub(super) fn read(file: String, read: &ReadStats, counted: &CurrentFile) -> Self {
        FileSummary {
            file,
            kind: "usage",
            note: None,
            header: read.header,
            records: read.records,
            rows: read.rows.saturating_sub(counted.duplicates_in_file),
            events: counted.events,
            malformed: read.malformed,
            duplicates: read.duplicates + counted.duplicates_in_file,
            duplicates_across_files: counted.duplicates_across_files,
            invalid_utf8: read.invalid_utf8.saturating_sub(counted.duplicates_in_file_invalid_utf8),
            malformed_samples: read.malformed_samples.clone(),
            skipped: None,
        }
    }

    /// An audit log that was read: records are its entries, rows the events handed out.
    pub(super) fn audit(file: String, counts: &FileCounts, counted: &CurrentFile) -> Self {
        FileSummary {
            file,
            kind: "audit",
            note: None,
            header: HeaderKind::None,
            records: counts.records,
            rows: counts.events.saturating_sub(counted.duplicates_in_file),
            events: counted.events,
            malformed: counts.malformed,
            duplicates: counts.duplicates + counted.duplicates_in_file,
            duplicates_across_files: counted.duplicates_across_files,
            invalid_utf8: counts.invalid_utf8.saturating_sub(counted.duplicates_in_file_invalid_utf8),
            malformed_samples: counts.first_malformed.clone(),
            skipped: Some(counts.skipped),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageStats {
    pub registry_host: String,
    pub repository: String,
    pub pulls: u64,
    pub blob_downloads: u64,
    pub bytes_served: u64,
    /// Distinct client IPs with at least one blob download of the image.
    pub clients: u64,
    pub first_seen: Option<EventTime>,
    pub last_seen: Option<EventTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyStats {
    pub day: String,
    pub registry_host: String,
    pub repository: String,
    pub pulls: u64,
    pub blob_downloads: u64,
    pub bytes_served: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    pub client_ip: String,
    pub pulls: u64,
    pub blob_downloads: u64,
    pub bytes_served: u64,
    /// Distinct images it pulled.
    pub images: u64,
    /// Client families of its blob downloads, space-separated, in order of appearance.
    pub client_families: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushStats {
    pub bucket: String,
    pub registry_host: Option<String>,
    /// Known only when the push row names it (pushes rarely carry a registry Referer).
    pub repository: Option<String>,
    /// Successful blob writes.
    pub pushes: u64,
    pub failed: u64,
    pub bytes_received: u64,
    pub clients: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureStats {
    pub status: u16,
    pub action: &'static str,
    pub count: u64,
}

/// Per bucket, every event (registry buckets and any other bucket alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketStats {
    pub bucket: String,
    pub registry_host: Option<String>,
    pub events: u64,
    /// Successful content reads (blob pulls and object downloads).
    pub content_reads: u64,
    pub bytes_served: u64,
    /// Successful content writes (blob pushes and object uploads).
    pub writes: u64,
    pub bytes_received: u64,
    pub deletes: u64,
    pub failures: u64,
}

/// The snake_case name an [`Action`] serialises to. Spelled out rather than taken from serde
/// because [`FailureStats::action`] is a `&'static str`; a test keeps the two in step.
pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::Pull => "pull",
        Action::Push => "push",
        Action::Download => "download",
        Action::Upload => "upload",
        Action::Delete => "delete",
        Action::List => "list",
        Action::Admin => "admin",
        Action::Other => "other",
    }
}

/// The kebab-case name a [`ClientFamily`] serialises to, taken from serde so that the report
/// and the NDJSON events can never spell a family differently.
pub(super) fn family_name(family: ClientFamily) -> String {
    match serde_json::to_value(family) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{family:?}"),
    }
}
