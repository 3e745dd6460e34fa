//! The usage event: one classified registry request — a usage-log row or an Artifact Registry
//! audit entry ([`SourceKind`]) — serialised as one flat JSON object (a line of the NDJSON
//! loaded into `registry_events`). Fields borrow from the row (or entry) and the source object,
//! so classifying allocates nothing (except a domain-scoped project id, which is rebuilt).

use serde::{Serialize, Serializer};

use crate::usage::user_agent::ClientFamily;

/// Which kind of log a event was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A Cloud Storage usage log (CSV) of a bucket: Container Registry's, or any other.
    UsageLog,
    /// Cloud Audit Logs (Data Access) of Artifact Registry, as a log sink writes them.
    AuditLog,
}

/// The package format of an Artifact Registry request (Docker for registry-bucket blobs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactFormat {
    Docker,
    Maven,
    Npm,
    Python,
    Apt,
    Yum,
    Go,
    /// Generic repositories (`ArtifactRegistry.DownloadFile`).
    Generic,
}

/// What the request touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A registry blob: `containers/images/sha256:…` in a registry bucket, or an Artifact
    /// Registry blob (layer, config).
    Blob,
    /// Any other object.
    Object,
    /// The bucket itself (empty `cs_object`).
    Bucket,
    /// An image manifest or tag (audit logs).
    Manifest,
    /// A repository as a whole: tag lists, the catalog, settings (audit logs).
    Repository,
    /// A package of another format than Docker (audit logs).
    Package,
}

/// What the request did (rules in [`super::classify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read a blob's content (one blob download; an image pull is several).
    Pull,
    /// Wrote a blob.
    Push,
    /// Read another object's content.
    Download,
    /// Wrote another object.
    Upload,
    Delete,
    List,
    /// Bucket or object settings, metadata changes, ACLs, IAM.
    Admin,
    /// Everything else, including HEAD and metadata reads (no content transferred).
    Other,
}

/// Who is likely behind the request. A heuristic: see [`super::classify`] for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerClass {
    EndUser,
    /// A service account that is not one of Google's own agents (audit logs say who).
    Workload,
    GoogleInternalOrAutomation,
    OwnerAdmin,
}

/// Microseconds since the epoch, serialised as RFC 3339 UTC with six fraction digits
/// (`2024-03-11T14:07:12.118406Z`), a form BigQuery loads into TIMESTAMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventTime(pub i64);

impl std::fmt::Display for EventTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (secs, micros) = (self.0.div_euclid(1_000_000), self.0.rem_euclid(1_000_000));
        // The reader only hands out times within BigQuery's range, which `time` covers.
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
            return write!(f, "{}", self.0);
        };
        let (date, clock) = (t.date(), t.time());
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            date.year(),
            u8::from(date.month()),
            date.day(),
            clock.hour(),
            clock.minute(),
            clock.second()
        )
    }
}

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `HOST/REPOSITORY` as the client named it (`eu.gcr.io/demo-project/team/api/server`),
/// serialised as one string without building it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef<'a> {
    pub host: &'a str,
    pub repository: &'a str,
}

impl std::fmt::Display for ImageRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        self.host.chars().try_for_each(|c| f.write_char(c.to_ascii_lowercase()))?;
        write!(f, "/{}", self.repository)
    }
}

impl Serialize for ImageRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One classified request. Optional values serialise as `null`, so every line has every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryEvent<'a> {
    pub event_time: EventTime,
    pub time_micros: i64,
    /// `gcr.io` / `us.gcr.io` / `eu.gcr.io` / `asia.gcr.io` when the bucket is a registry bucket;
    /// `LOCATION-docker.pkg.dev` (or the format's host) for Artifact Registry.
    pub registry_host: Option<&'a str>,
    pub project: Option<std::borrow::Cow<'a, str>>,
    /// Full repository path from the Referer (`demo-project/team/api/server`), when the row is a
    /// blob request whose Referer names the same digest.
    pub repository: Option<&'a str>,
    /// The image as the client named it: the Referer's host and the repository.
    pub image: Option<ImageRef<'a>>,
    pub digest: Option<&'a str>,
    pub target: Target,
    pub action: Action,
    /// 2xx or 304.
    pub success: bool,
    pub status: u16,
    pub method: &'a str,
    pub operation: &'a str,
    /// The bucket of a usage-log row (`null` for audit entries).
    pub bucket: Option<&'a str>,
    /// `null` for bucket-level requests.
    pub object: Option<&'a str>,
    pub client_family: ClientFamily,
    pub client_version: Option<&'a str>,
    /// The user agent without Google's `,gzip(gfe)` suffix.
    pub user_agent: &'a str,
    pub caller_class: CallerClass,
    pub client_ip: &'a str,
    /// `cs_bytes`: what the client sent.
    pub request_bytes: u64,
    /// `sc_bytes`: what the server sent (the blob size for a whole-blob pull).
    pub response_bytes: u64,
    pub time_taken_micros: u64,
    /// `s_request_id` of a usage-log row, `insertId` of an audit entry.
    pub request_id: &'a str,
    /// Some text in the row was invalid UTF-8 and was replaced by U+FFFD.
    pub invalid_utf8: bool,
    pub source_bucket: &'a str,
    pub source_object: &'a str,
    pub source_generation: Option<u64>,
    /// Data record number within the source object (1-based, see `UsageRow::row`).
    pub source_row: u64,
    pub source_line: u64,
    // The columns below were added with the audit-log source: new columns go last, so a table
    // created by an earlier release takes them with `ALLOW_FIELD_ADDITION`.
    pub source_kind: SourceKind,
    /// Who made the request: the authenticated principal of an audit entry.
    pub principal: Option<&'a str>,
    pub artifact_format: Option<ArtifactFormat>,
    /// The tag or digest the request named (audit entries: from `request.requestUrl`).
    pub reference: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_time_is_rfc3339_utc_with_micros() {
        assert_eq!(EventTime(1710166032118406).to_string(), "2024-03-11T14:07:12.118406Z");
        assert_eq!(EventTime(0).to_string(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(EventTime(-1).to_string(), "1969-12-31T23:59:59.999999Z");
        assert_eq!(EventTime(crate::usage::row::MIN_TIME_MICROS).to_string(), "0001-01-01T00:00:00.000000Z");
        assert_eq!(EventTime(crate::usage::row::MAX_TIME_MICROS).to_string(), "9999-12-31T23:59:59.999999Z");
        assert_eq!(serde_json::to_string(&EventTime(1709251200000000)).unwrap(), "\"2024-03-01T00:00:00.000000Z\"");
    }

    #[test]
    fn image_ref_lowercases_the_host() {
        let image = ImageRef { host: "EU.GCR.io", repository: "p/app" };
        assert_eq!(serde_json::to_string(&image).unwrap(), "\"eu.gcr.io/p/app\"");
    }
}
