//! The BigQuery load job for one log object: its deterministic id and the `jobs.insert` /
//! `jobs.get` requests.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::log_name::LogKind;
use crate::object::ObjectRef;
use crate::schema::{self, Field};
use crate::url::{Endpoint, encode};

/// A BigQuery table, fully qualified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableRef {
    pub project_id: String,
    pub dataset_id: String,
    pub table_id: String,
}

impl std::fmt::Display for TableRef {
    /// `project:dataset.table`, the form BigQuery's console and `bq` print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}.{}", self.project_id, self.dataset_id, self.table_id)
    }
}

/// What a load job loads (ordered so that plans group by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoadFormat {
    /// The log object's CSV rows, read by BigQuery from `gs://` (`jobs.insert`).
    RawCsv,
    /// Classified usage events as newline-delimited JSON, sent by the loader (resumable upload).
    Events,
}

/// Everything that identifies one load: the object, what kind of log it is, what is loaded,
/// where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSpec {
    pub object: ObjectRef,
    pub kind: LogKind,
    pub format: LoadFormat,
    pub destination: TableRef,
    pub location: String,
}

/// How many load jobs one object may get: a failed job is followed by a fresh attempt on the
/// next delivery (no manual cleanup), but a poisoned file must not burn the per-table quota of
/// ~1,500 load jobs a day through endless redeliveries.
///
/// Backfill batches spend attempts too (a failed batch is split in halves, each half retried
/// under the next attempt; a batch closed before it loaded spends its reservations), so the
/// bound leaves room for halving a batch of 10,000 objects down to one (14 halvings) and more.
pub const MAX_ATTEMPTS: u32 = 20;

/// Longest readable part kept from the object name; the hash keeps ids unique anyway.
const READABLE_NAME_CHARS: usize = 180;

impl LoadSpec {
    /// The job id for `attempt` (1-based): `gcr_usage_<readable name>_g<generation>_<hash>`,
    /// then `_r<attempt>` from the second attempt on.
    ///
    /// Derived from bucket, name, generation and destination only, so every delivery of the
    /// same event names the same job and BigQuery's 409 `duplicate` makes redelivery harmless.
    /// The hash covers what sanitising and truncating the name loses; the readable part lets an
    /// operator find the job in the console. Only `[A-Za-z0-9_-]`, well under 1,024 characters.
    ///
    /// Event loads hash a different tag and read `gcr_usage_events_…`: in `both` mode the two
    /// loads of one object are two jobs, and the console shows which is which.
    pub fn job_id(&self, attempt: u32) -> String {
        let (tag, prefix) = match self.format {
            LoadFormat::RawCsv => ("gcr-usage load v1", "gcr_usage"),
            LoadFormat::Events => ("gcr-usage events v1", "gcr_usage_events"),
        };
        let mut hasher = Sha256::new();
        for part in [
            tag,
            &self.object.bucket,
            &self.object.name,
            &self.object.generation.map(|g| g.to_string()).unwrap_or_default(),
            &self.destination.to_string(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        let digest = hasher.finalize();
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let readable: String = self
            .object
            .name
            .chars()
            .rev()
            .take(READABLE_NAME_CHARS)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
            .collect();
        let generation = self.object.generation.map(|g| g.to_string()).unwrap_or_else(|| "none".into());
        let mut id = format!("{prefix}_{readable}_g{generation}_{hash}");
        if attempt > 1 {
            id.push_str(&format!("_r{attempt}"));
        }
        id
    }

    /// `POST …/bigquery/v2/projects/{p}/jobs`: the load job, with schema and dispositions sent
    /// explicitly so the outcome never depends on the table already existing.
    /// `delivery` labels the job with the delivery that submits it (see [`DELIVERY_LABEL`]).
    pub fn insert_request(
        &self,
        endpoint: &Endpoint,
        attempt: u32,
        delivery: &str,
        token: Option<&str>,
    ) -> http::Request<Vec<u8>> {
        let url = endpoint
            .url(&format!("/bigquery/v2/projects/{}/jobs?prettyPrint=false", encode(&self.destination.project_id)));
        build(http::Method::POST, &url, token, Some(self.job_json(self.job_id(attempt), None, delivery, None)))
    }

    /// `POST …/upload/bigquery/v2/projects/{p}/jobs?uploadType=resumable`: opens an upload
    /// session for the events; the job exists only once the last chunk is in (see `upload`).
    pub fn upload_request(
        &self,
        endpoint: &Endpoint,
        attempt: u32,
        delivery: &str,
        token: Option<&str>,
    ) -> http::Request<Vec<u8>> {
        let url = endpoint.url(&format!(
            "/upload/bigquery/v2/projects/{}/jobs?uploadType=resumable&prettyPrint=false",
            encode(&self.destination.project_id)
        ));
        crate::batch_job::upload_session(url, token, self.job_json(self.job_id(attempt), None, delivery, None))
    }

    /// `POST …/jobs`: a `SELECT 1` query job at this object's `attempt` id that reserves the
    /// attempt for the batch `batch_id`, which promises to create its load before `deadline`
    /// (Unix seconds) or never ([`crate::claims`]). It reads no table and costs nothing.
    pub fn reservation_request(
        &self,
        endpoint: &Endpoint,
        attempt: u32,
        batch_id: &str,
        deadline: u64,
        delivery: &str,
        token: Option<&str>,
    ) -> http::Request<Vec<u8>> {
        let deadline = deadline.to_string();
        let labels = crate::batch_job::QueryLabels {
            loader: "gcr-usage",
            role: crate::batch_job::ROLE_RESERVATION,
            batch: Some(batch_id),
            deadline: Some(&deadline),
            delivery,
        };
        crate::batch_job::query_job_request(
            endpoint,
            &self.destination.project_id,
            &self.location,
            &self.job_id(attempt),
            labels,
            token,
        )
    }

    /// The load job's JSON under `job_id`: one object's (`source_uris` `None`: this object's
    /// own URI for a raw load) or a batch's (many URIs, `role` [`crate::batch_job::ROLE_BATCH`]).
    pub(crate) fn job_json(
        &self,
        job_id: String,
        source_uris: Option<Vec<String>>,
        delivery: &str,
        role: Option<&'static str>,
    ) -> Vec<u8> {
        let common = |source_format| Load {
            source_uris: None,
            destination_table: &self.destination,
            source_format,
            skip_leading_rows: None,
            allow_quoted_newlines: None,
            schema: Schema { fields: schema::fields(self.kind) },
            time_partitioning: None,
            clustering: None,
            max_bad_records: None,
            schema_update_options: None,
            create_disposition: "CREATE_IF_NEEDED",
            write_disposition: "WRITE_APPEND",
        };
        let load = match self.format {
            LoadFormat::RawCsv => Load {
                source_uris: Some(source_uris.unwrap_or_else(|| vec![self.object.gs_uri()])),
                skip_leading_rows: Some(1),
                // Quoted values may contain newlines; the logs are small enough that the
                // slower splitting this forces does not matter.
                allow_quoted_newlines: Some(true),
                ..common("CSV")
            },
            LoadFormat::Events => Load {
                schema: Schema { fields: &schema::EVENTS },
                time_partitioning: Some(TimePartitioning { kind: "DAY", field: schema::EVENTS_PARTITION_FIELD }),
                clustering: Some(Clustering { fields: &schema::EVENTS_CLUSTERING }),
                // The loader wrote every line itself: a bad one is a bug to see, not to skip.
                max_bad_records: Some(0),
                // A table created by an earlier release lacks the columns added since (always
                // appended last): the load adds them, so upgrading needs no manual DDL.
                schema_update_options: Some(&["ALLOW_FIELD_ADDITION"]),
                ..common("NEWLINE_DELIMITED_JSON")
            },
        };
        let content = match self.format {
            LoadFormat::RawCsv => None,
            LoadFormat::Events => Some("events"),
        };
        let job = Job {
            job_reference: JobReference { project_id: &self.destination.project_id, job_id, location: &self.location },
            configuration: Configuration {
                labels: Labels { loader: "gcr-usage", log_kind: self.kind.as_str(), content, role, delivery },
                load,
            },
        };
        serde_json::to_vec(&job).expect("a job serialises")
    }

    /// `GET …/jobs/{id}?location=…`: jobs outside `US` are invisible without the location.
    pub fn get_request(&self, endpoint: &Endpoint, attempt: u32, token: Option<&str>) -> http::Request<Vec<u8>> {
        crate::batch_job::get_job_request(
            endpoint,
            &self.destination.project_id,
            &self.location,
            &self.job_id(attempt),
            token,
        )
    }
}

pub const USER_AGENT: &str = concat!("gcr-usage/", env!("CARGO_PKG_VERSION"));

/// A request with the headers every Google API call carries.
pub fn build(method: http::Method, url: &str, token: Option<&str>, body: Option<Vec<u8>>) -> http::Request<Vec<u8>> {
    let mut builder = http::Request::builder().method(method).uri(url).header(http::header::USER_AGENT, USER_AGENT);
    if let Some(token) = token {
        // Sensitive: `Debug` of the header map (a log line, a test failure) shows `Sensitive`,
        // never the token, and HTTP/2 stacks keep it out of their compression tables.
        let mut value = http::HeaderValue::try_from(format!("Bearer {token}")).expect("tokens are header-safe");
        value.set_sensitive(true);
        builder = builder.header(http::header::AUTHORIZATION, value);
    }
    if let Some(body) = &body {
        // An explicit length: some proxies and emulators mishandle chunked request bodies.
        builder = builder
            .header(http::header::CONTENT_TYPE, "application/json; charset=UTF-8")
            .header(http::header::CONTENT_LENGTH, body.len());
    }
    // The URL is built from validated, percent-encoded parts and the token from a validated
    // header-safe string, so the builder cannot fail on them.
    builder.body(body.unwrap_or_default()).expect("request parts are valid")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Job<'a> {
    job_reference: JobReference<'a>,
    configuration: Configuration<'a>,
}

/// The job label naming the delivery that submitted the job. When `jobs.insert` answers 409,
/// the job's label says whether our own earlier request (whose answer was lost to a timeout or
/// a dropped connection) created it — `loaded` — or another delivery did — `duplicate`.
/// Guessing from "was there an earlier try?" is wrong whenever that try failed without
/// reaching BigQuery.
pub const DELIVERY_LABEL: &str = "delivery";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobReference<'a> {
    pub(crate) project_id: &'a str,
    pub(crate) job_id: String,
    pub(crate) location: &'a str,
}

#[derive(Serialize)]
struct Configuration<'a> {
    labels: Labels<'a>,
    load: Load<'a>,
}

/// Labels make the loader's jobs easy to filter in INFORMATION_SCHEMA.JOBS and the console.
#[derive(Serialize)]
struct Labels<'a> {
    loader: &'static str,
    log_kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'static str>,
    /// Key [`crate::batch_job::ROLE_LABEL`]: only on batch loads (per-object loads keep their deployed labels).
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// Key [`DELIVERY_LABEL`]; label values allow only `[a-z0-9_-]`, so callers pass hex.
    delivery: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Load<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    source_uris: Option<Vec<String>>,
    destination_table: &'a TableRef,
    source_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    skip_leading_rows: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_quoted_newlines: Option<bool>,
    schema: Schema,
    #[serde(skip_serializing_if = "Option::is_none")]
    time_partitioning: Option<TimePartitioning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clustering: Option<Clustering>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_bad_records: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_update_options: Option<&'static [&'static str]>,
    create_disposition: &'static str,
    write_disposition: &'static str,
}

#[derive(Serialize)]
struct TimePartitioning {
    #[serde(rename = "type")]
    kind: &'static str,
    field: &'static str,
}

#[derive(Serialize)]
struct Clustering {
    fields: &'static [&'static str],
}

#[derive(Serialize)]
struct Schema {
    fields: &'static [Field],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, generation: Option<u64>) -> LoadSpec {
        LoadSpec {
            object: ObjectRef { bucket: "demo-gcr-logs".into(), name: name.into(), generation },
            kind: LogKind::Usage,
            format: LoadFormat::RawCsv,
            destination: TableRef {
                project_id: "demo-project".into(),
                dataset_id: "storageanalysis".into(),
                table_id: "usage".into(),
            },
            location: "US".into(),
        }
    }

    fn valid_job_id(id: &str) -> bool {
        !id.is_empty() && id.len() <= 1024 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    #[test]
    fn job_ids_are_deterministic_readable_and_valid() {
        let name = "accessLog_usage_2019_05_19_18_00_00_00cbe51e4b703105e9_v0";
        let a = spec(name, Some(1558293456789000));
        assert_eq!(a.job_id(1), a.clone().job_id(1));
        assert!(
            a.job_id(1)
                .starts_with("gcr_usage_accessLog_usage_2019_05_19_18_00_00_00cbe51e4b703105e9_v0_g1558293456789000_")
        );
        assert!(a.job_id(2).ends_with("_r2"));
        assert!(valid_job_id(&a.job_id(5)));
        // Every identifying part changes the id.
        assert_ne!(a.job_id(1), spec(name, Some(2)).job_id(1));
        assert_ne!(a.job_id(1), spec(name, None).job_id(1));
        let mut other_table = a.clone();
        other_table.destination.table_id = "usage2".into();
        assert_ne!(a.job_id(1), other_table.job_id(1));
        let mut other_bucket = a.clone();
        other_bucket.object.bucket = "other-logs".into();
        assert_ne!(a.job_id(1), other_bucket.job_id(1));
        // Names that sanitise alike stay apart through the hash.
        assert_ne!(spec("a b", None).job_id(1), spec("a_b", None).job_id(1));
    }

    #[test]
    fn odd_names_give_valid_ids() {
        for name in ["dir/ä ö#?%+&=.csv", &"ü".repeat(500), &"x".repeat(1024)] {
            let id = spec(name, Some(crate::object::MAX_GENERATION)).job_id(5);
            assert!(valid_job_id(&id), "{id}");
            assert!(id.len() < 300);
        }
    }

    #[test]
    fn insert_request_shape() {
        let s = spec("accessLog_usage_2019_05_19_18_00_00_00cbe5_v0", Some(7));
        let ep = Endpoint::parse("https://bigquery.googleapis.com").unwrap();
        let req = s.insert_request(&ep, 1, "00c0ffee00c0ffee", Some("tok"));
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(
            req.uri(),
            "https://bigquery.googleapis.com/bigquery/v2/projects/demo-project/jobs?prettyPrint=false"
        );
        assert_eq!(req.headers()["authorization"], "Bearer tok");
        assert!(req.headers()["authorization"].is_sensitive());
        assert!(!format!("{:?}", req.headers()).contains("tok\""), "the token shows in Debug output");
        assert_eq!(req.headers()["content-length"], req.body().len().to_string().as_str());
        let body: serde_json::Value = serde_json::from_slice(req.body()).unwrap();
        assert_eq!(body["jobReference"]["location"], "US");
        assert_eq!(body["configuration"]["labels"][DELIVERY_LABEL], "00c0ffee00c0ffee");
        let load = &body["configuration"]["load"];
        assert_eq!(load["sourceUris"][0], "gs://demo-gcr-logs/accessLog_usage_2019_05_19_18_00_00_00cbe5_v0");
        assert_eq!(load["skipLeadingRows"], 1);
        assert_eq!(load["schema"]["fields"].as_array().unwrap().len(), 17);
        assert_eq!(load["writeDisposition"], "WRITE_APPEND");
        assert!(s.insert_request(&ep, 1, "d", None).headers().get("authorization").is_none());
    }

    #[test]
    fn event_loads_are_other_jobs_with_their_own_configuration() {
        let raw = spec("accessLog_usage_2019_05_19_18_00_00_00cbe5_v0", Some(7));
        let mut events = raw.clone();
        events.format = LoadFormat::Events;
        events.destination.table_id = "registry_events".into();
        assert!(events.job_id(1).starts_with("gcr_usage_events_accessLog_usage_2019_05_19_18_00_00_00cbe5_v0_g7_"));
        assert!(valid_job_id(&events.job_id(5)));
        let mut same_table = events.clone();
        same_table.destination.table_id = "usage".into();
        assert_ne!(same_table.job_id(1).rsplit('_').next(), raw.job_id(1).rsplit('_').next(), "another hash tag");

        let ep = Endpoint::parse("http://127.0.0.1:9050").unwrap();
        let req = events.upload_request(&ep, 2, "d", Some("tok"));
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(
            req.uri(),
            "http://127.0.0.1:9050/upload/bigquery/v2/projects/demo-project/jobs?uploadType=resumable&prettyPrint=false"
        );
        assert_eq!(req.headers()["x-upload-content-type"], "application/octet-stream");
        assert_eq!(req.headers()["authorization"], "Bearer tok");
        let body: serde_json::Value = serde_json::from_slice(req.body()).unwrap();
        assert_eq!(body["jobReference"]["jobId"], events.job_id(2));
        assert_eq!(body["configuration"]["labels"]["content"], "events");
        let load = &body["configuration"]["load"];
        assert_eq!(load["sourceFormat"], "NEWLINE_DELIMITED_JSON");
        assert!(load.get("sourceUris").is_none() && load.get("skipLeadingRows").is_none());
        assert_eq!(load["schema"]["fields"].as_array().unwrap().len(), 34);
        assert_eq!(load["schemaUpdateOptions"], serde_json::json!(["ALLOW_FIELD_ADDITION"]));
        assert_eq!(load["timePartitioning"], serde_json::json!({"type": "DAY", "field": "event_time"}));
        assert_eq!(load["clustering"]["fields"], serde_json::json!(["registry_host", "repository", "client_ip"]));
        assert_eq!(load["maxBadRecords"], 0);
        assert_eq!(load["destinationTable"]["tableId"], "registry_events");
        // The raw job is unchanged by the new options (deployed job ids and bodies stay put).
        let raw_body: serde_json::Value = serde_json::from_slice(raw.insert_request(&ep, 1, "d", None).body()).unwrap();
        assert!(raw_body["configuration"]["labels"].get("content").is_none());
        assert!(raw_body["configuration"]["load"].get("timePartitioning").is_none());
    }

    #[test]
    fn get_request_encodes_and_carries_location() {
        let mut s = spec("n", Some(7));
        s.location = "europe-west4".into();
        let ep = Endpoint::parse("http://127.0.0.1:9050").unwrap();
        let uri = s.get_request(&ep, 2, None).uri().to_string();
        assert!(uri.starts_with("http://127.0.0.1:9050/bigquery/v2/projects/demo-project/jobs/gcr_usage_n_g7_"));
        assert!(uri.ends_with("_r2?location=europe-west4&prettyPrint=false"));
    }
}
