//! The jobs of the exactly-once protocol ([`crate::claims`]) beside the per-object loads of
//! [`crate::job`]: a backfill batch's one load job for many objects, the `SELECT 1` query jobs
//! that reserve an object's attempt for a batch or close a batch (tombstones), and reading any
//! job back by id.

use serde::Serialize;

use crate::job::{JobReference, LoadFormat, LoadSpec, build};
use crate::url::{Endpoint, encode};

/// A backfill batch: one load job for many objects, all of one kind, format and destination
/// (`specs[0]` stands for what they share), under the batch's own job id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLoad {
    pub id: String,
    pub specs: Vec<LoadSpec>,
}

impl BatchLoad {
    /// `gcr_usage_batch_<run>_<n>` (`gcr_usage_events_batch_…` for events): `run` is a random
    /// token of the backfill run, `n` counts its batches, so no two batches ever share an id.
    pub fn id(format: LoadFormat, run: &str, n: u32) -> String {
        let prefix = match format {
            LoadFormat::RawCsv => "gcr_usage_batch",
            LoadFormat::Events => "gcr_usage_events_batch",
        };
        format!("{prefix}_{run}_{n}")
    }

    fn first(&self) -> &LoadSpec {
        &self.specs[0]
    }

    fn jobs_url(&self, endpoint: &Endpoint, upload: bool) -> String {
        let project = encode(&self.first().destination.project_id);
        if upload {
            endpoint.url(&format!("/upload/bigquery/v2/projects/{project}/jobs?uploadType=resumable&prettyPrint=false"))
        } else {
            endpoint.url(&format!("/bigquery/v2/projects/{project}/jobs?prettyPrint=false"))
        }
    }

    /// `jobs.insert` of the raw batch: every object's URI in one CSV load job.
    pub fn insert_request(&self, endpoint: &Endpoint, delivery: &str, token: Option<&str>) -> http::Request<Vec<u8>> {
        let uris = self.specs.iter().map(|s| s.object.gs_uri()).collect();
        let body = self.first().job_json(self.id.clone(), Some(uris), delivery, Some(ROLE_BATCH));
        build(http::Method::POST, &self.jobs_url(endpoint, false), token, Some(body))
    }

    /// The upload session of the events batch (the objects' events, one after the other).
    pub fn upload_request(&self, endpoint: &Endpoint, delivery: &str, token: Option<&str>) -> http::Request<Vec<u8>> {
        let body = self.first().job_json(self.id.clone(), None, delivery, Some(ROLE_BATCH));
        upload_session(self.jobs_url(endpoint, true), token, body)
    }

    /// `jobs.get` of the batch's id.
    pub fn get_request(&self, endpoint: &Endpoint, token: Option<&str>) -> http::Request<Vec<u8>> {
        let first = self.first();
        get_job_request(endpoint, &first.destination.project_id, &first.location, &self.id, token)
    }

    /// `jobs.insert` of a tombstone at the batch's id ([`tombstone_request`]).
    pub fn tombstone_request(
        &self,
        endpoint: &Endpoint,
        delivery: &str,
        token: Option<&str>,
    ) -> http::Request<Vec<u8>> {
        let first = self.first();
        tombstone_request(endpoint, &first.destination.project_id, &first.location, &self.id, delivery, token)
    }
}

/// `POST …/jobs`: a `SELECT 1` query job at `batch_id` that closes the batch: once it exists,
/// the batch's load can never be created, so the objects it reserved are free to load elsewhere.
pub fn tombstone_request(
    endpoint: &Endpoint,
    project: &str,
    location: &str,
    batch_id: &str,
    delivery: &str,
    token: Option<&str>,
) -> http::Request<Vec<u8>> {
    let labels = QueryLabels { loader: "gcr-usage", role: ROLE_TOMBSTONE, batch: None, deadline: None, delivery };
    query_job_request(endpoint, project, location, batch_id, labels, token)
}

/// `GET …/jobs/{id}?location=…`.
pub fn get_job_request(
    endpoint: &Endpoint,
    project: &str,
    location: &str,
    job_id: &str,
    token: Option<&str>,
) -> http::Request<Vec<u8>> {
    let url = endpoint.url(&format!(
        "/bigquery/v2/projects/{}/jobs/{}?location={}&prettyPrint=false",
        encode(project),
        encode(job_id),
        encode(location)
    ));
    build(http::Method::GET, &url, token, None)
}

pub(crate) fn query_job_request(
    endpoint: &Endpoint,
    project: &str,
    location: &str,
    job_id: &str,
    labels: QueryLabels,
    token: Option<&str>,
) -> http::Request<Vec<u8>> {
    let job = QueryJob {
        job_reference: JobReference { project_id: project, job_id: job_id.to_string(), location },
        configuration: QueryConfiguration { labels, query: Query { query: "SELECT 1", use_legacy_sql: false } },
    };
    let url = endpoint.url(&format!("/bigquery/v2/projects/{}/jobs?prettyPrint=false", encode(project)));
    build(http::Method::POST, &url, token, Some(serde_json::to_vec(&job).expect("a job serialises")))
}

pub(crate) fn upload_session(url: String, token: Option<&str>, body: Vec<u8>) -> http::Request<Vec<u8>> {
    let mut request = build(http::Method::POST, &url, token, Some(body));
    request.headers_mut().insert("x-upload-content-type", http::HeaderValue::from_static("application/octet-stream"));
    request
}

/// The label saying which part of the exactly-once protocol a job plays ([`crate::claims`]).
pub const ROLE_LABEL: &str = "role";
pub const ROLE_RESERVATION: &str = "reservation";
pub const ROLE_TOMBSTONE: &str = "tombstone";
pub const ROLE_BATCH: &str = "batch";
/// On a reservation: the batch's job id.
pub const BATCH_LABEL: &str = "batch";
/// On a reservation: the Unix second after which the batch may be closed by anyone.
pub const DEADLINE_LABEL: &str = "deadline";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryJob<'a> {
    job_reference: JobReference<'a>,
    configuration: QueryConfiguration<'a>,
}

#[derive(Serialize)]
struct QueryConfiguration<'a> {
    labels: QueryLabels<'a>,
    query: Query,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Query {
    query: &'static str,
    use_legacy_sql: bool,
}

#[derive(Serialize)]
pub(crate) struct QueryLabels<'a> {
    pub(crate) loader: &'static str,
    pub(crate) role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) batch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) deadline: Option<&'a str>,
    pub(crate) delivery: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bigquery::{JobRole, parse_job};
    use crate::job::TableRef;
    use crate::log_name::LogKind;
    use crate::object::ObjectRef;

    fn spec(name: &str, format: LoadFormat) -> LoadSpec {
        LoadSpec {
            object: ObjectRef { bucket: "demo-gcr-logs".into(), name: name.into(), generation: Some(7) },
            kind: LogKind::Usage,
            format,
            destination: TableRef {
                project_id: "demo-project".into(),
                dataset_id: "storageanalysis".into(),
                table_id: "usage".into(),
            },
            location: "EU".into(),
        }
    }

    fn body(request: &http::Request<Vec<u8>>) -> serde_json::Value {
        serde_json::from_slice(request.body()).unwrap()
    }

    /// What BigQuery's jobs.get shows of a job it was sent: the request body plus a status.
    fn read_back(request: &http::Request<Vec<u8>>) -> crate::bigquery::Job {
        let mut job = body(request);
        job["status"] = serde_json::json!({"state": "DONE"});
        parse_job(job.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_reservation_is_a_labelled_select_1_at_the_objects_attempt_id() {
        let s = spec("a_usage_2024_03_11_14_00_00_0a_v0", LoadFormat::RawCsv);
        let ep = Endpoint::parse("http://127.0.0.1:9050").unwrap();
        let request = s.reservation_request(&ep, 2, "gcr_usage_batch_00ff_3", 1_767_225_900, "00ff", Some("tok"));
        assert_eq!(request.uri(), "http://127.0.0.1:9050/bigquery/v2/projects/demo-project/jobs?prettyPrint=false");
        let job = body(&request);
        assert_eq!(job["jobReference"]["jobId"], s.job_id(2));
        assert_eq!(job["jobReference"]["location"], "EU");
        assert_eq!(job["configuration"]["query"], serde_json::json!({"query": "SELECT 1", "useLegacySql": false}));
        assert_eq!(
            job["configuration"]["labels"],
            serde_json::json!({"loader": "gcr-usage", "role": "reservation", "batch": "gcr_usage_batch_00ff_3",
                               "deadline": "1767225900", "delivery": "00ff"})
        );
        assert!(job["configuration"].get("load").is_none(), "a reservation loads nothing");
        assert_eq!(
            read_back(&request).role,
            JobRole::Reservation { batch: "gcr_usage_batch_00ff_3".into(), deadline: 1_767_225_900 }
        );
        // Every label value is a valid BigQuery label value.
        for (_, value) in job["configuration"]["labels"].as_object().unwrap() {
            let v = value.as_str().unwrap();
            assert!(
                v.len() <= 63
                    && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            );
        }
    }

    #[test]
    fn a_batch_loads_every_uri_under_its_own_id_and_a_tombstone_closes_it() {
        let specs = vec![spec("a_0", LoadFormat::RawCsv), spec("a_1", LoadFormat::RawCsv)];
        let batch = BatchLoad { id: BatchLoad::id(LoadFormat::RawCsv, "00ff", 3), specs };
        assert_eq!(batch.id, "gcr_usage_batch_00ff_3");
        assert_eq!(BatchLoad::id(LoadFormat::Events, "00ff", 3), "gcr_usage_events_batch_00ff_3");
        let ep = Endpoint::parse("https://bigquery.googleapis.com").unwrap();
        let insert = batch.insert_request(&ep, "00ff", None);
        let job = body(&insert);
        assert_eq!(job["jobReference"]["jobId"], "gcr_usage_batch_00ff_3");
        assert_eq!(
            job["configuration"]["load"]["sourceUris"],
            serde_json::json!(["gs://demo-gcr-logs/a_0", "gs://demo-gcr-logs/a_1"])
        );
        assert_eq!(job["configuration"]["labels"]["role"], "batch");
        assert_eq!(job["configuration"]["load"]["skipLeadingRows"], 1, "the same load as one object's");
        assert_eq!(
            read_back(&insert).role,
            JobRole::Load { source_uris: vec!["gs://demo-gcr-logs/a_0".into(), "gs://demo-gcr-logs/a_1".into()] }
        );

        let tombstone = batch.tombstone_request(&ep, "00ff", None);
        let job = body(&tombstone);
        assert_eq!(job["jobReference"]["jobId"], "gcr_usage_batch_00ff_3");
        assert_eq!(job["configuration"]["labels"]["role"], "tombstone");
        assert_eq!(read_back(&tombstone).role, JobRole::Tombstone);
        assert!(
            batch
                .get_request(&ep, None)
                .uri()
                .to_string()
                .ends_with("/jobs/gcr_usage_batch_00ff_3?location=EU&prettyPrint=false")
        );

        let events = BatchLoad {
            id: BatchLoad::id(LoadFormat::Events, "00ff", 4),
            specs: vec![spec("a_0", LoadFormat::Events), spec("a_1", LoadFormat::Events)],
        };
        let upload = events.upload_request(&ep, "00ff", None);
        assert!(
            upload.uri().to_string().contains("/upload/bigquery/v2/projects/demo-project/jobs?uploadType=resumable")
        );
        let job = body(&upload);
        assert!(job["configuration"]["load"].get("sourceUris").is_none());
        assert_eq!(job["configuration"]["load"]["sourceFormat"], "NEWLINE_DELIMITED_JSON");
        assert_eq!(read_back(&upload).role, JobRole::Load { source_uris: Vec::new() });
    }

    #[test]
    fn query_jobs_without_the_protocols_labels_are_nobodys() {
        let job = r#"{"status":{"state":"DONE"},"configuration":{"query":{"query":"SELECT 2"},"labels":{"role":"reservation"}}}"#;
        assert_eq!(parse_job(job.as_bytes()).unwrap().role, JobRole::Other, "a reservation without its batch");
        let job = r#"{"status":{"state":"DONE"},"configuration":{"query":{"query":"SELECT 2"}}}"#;
        assert_eq!(parse_job(job.as_bytes()).unwrap().role, JobRole::Other);
    }
}
