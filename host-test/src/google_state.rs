//! A stateful fake of what a classified load talks to: Cloud Storage serving log objects (with
//! their CRC32C in `X-Goog-Hash`, pinned by generation) and BigQuery keeping the jobs that
//! resumable uploads create — sessions answer `308` + `Range` until the last chunk names the
//! total, which creates the job (or answers 409 when it exists), as the reference describes.
//! Faults are injected by routing scripted rules *before* [`FakeGoogle::install`]'s routes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use crc::{CRC_32_ISCSI, Crc};
use serde_json::Value;

use crate::google::{JobRef, google_error, job_resource};
use crate::upstream::{FakeUpstream, RecordedRequest, Reply, Rule, matching, prefix};

#[derive(Default)]
struct State {
    /// (bucket, name) → (generation, bytes, their `X-Goog-Hash`), the hash computed once on
    /// upload as Cloud Storage does (not per download: benchmarks would time the fake).
    objects: HashMap<(String, String), (u64, bytes::Bytes, String)>,
    /// upload_id → (job reference, job configuration, bytes so far).
    sessions: HashMap<String, (JobRef, Value, Vec<u8>)>,
    jobs: HashMap<String, Value>,
    /// Completed uploads: job id and the NDJSON it carried.
    uploads: Vec<(String, Vec<u8>)>,
    next_session: u32,
}

/// Cheap to clone: clones share the state.
#[derive(Clone, Default)]
pub struct FakeGoogle {
    state: Arc<Mutex<State>>,
}

pub fn crc32c_header(bytes: &[u8]) -> String {
    let crc = Crc::<u32>::new(&CRC_32_ISCSI).checksum(bytes);
    format!("crc32c={}", base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes()))
}

impl FakeGoogle {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn object(&self, bucket: &str, name: &str, generation: u64, bytes: impl Into<Vec<u8>>) -> &Self {
        let bytes = bytes::Bytes::from(bytes.into());
        let hash = crc32c_header(&bytes);
        self.lock().objects.insert((bucket.into(), name.into()), (generation, bytes, hash));
        self
    }

    /// Completed uploads (job id, NDJSON), oldest first.
    pub fn uploads(&self) -> Vec<(String, Vec<u8>)> {
        self.lock().uploads.clone()
    }

    pub fn job_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().jobs.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Records a job as BigQuery would hold it (e.g. a failed earlier attempt).
    pub fn put_job(&self, job_id: &str, resource: Value) {
        self.lock().jobs.insert(job_id.into(), resource);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake Google state poisoned")
    }

    /// Routes the downloads, object metadata, the upload sessions and `jobs.get` for `project`
    /// to this state.
    pub fn install(&self, upstream: &FakeUpstream, project: &str) {
        let me = self.clone();
        upstream.route(Rule::get(prefix("/download/storage/v1/b/")).reply(Reply::dynamic(move |r| me.download(r))));
        let me = self.clone();
        upstream.route(Rule::get(prefix("/storage/v1/b/")).reply(Reply::dynamic(move |r| me.metadata(r))));
        let upload_path = format!("/upload/bigquery/v2/projects/{project}/jobs");
        let me = self.clone();
        let path = upload_path.clone();
        upstream.route(Rule::post(matching(move |r| r.path == path)).reply(Reply::dynamic(move |r| me.initiate(r))));
        let me = self.clone();
        upstream.route(
            Rule::new(Some(http::Method::PUT), matching(move |r| r.path == upload_path))
                .reply(Reply::dynamic(move |r| me.chunk(r))),
        );
        let me = self.clone();
        upstream.route(
            Rule::get(prefix(format!("/bigquery/v2/projects/{project}/jobs/")))
                .reply(Reply::dynamic(move |r| me.get_job(r))),
        );
    }

    /// `objects.get` (JSON API metadata): the fields the loader asks for, int64 as a string.
    fn metadata(&self, r: &RecordedRequest) -> Reply {
        let Some(key) = object_key(r.path.trim_start_matches("/storage/v1/b/")) else {
            return Reply::text(400, "bad path");
        };
        match self.lock().objects.get(&key) {
            Some((generation, ..)) => Reply::json(200, &serde_json::json!({"generation": generation.to_string()})),
            None => Reply::json(404, &serde_json::json!({"error": {"code": 404, "message": "No such object"}})),
        }
    }

    /// What the resumable-upload endpoint answers a `PUT` (chunk or status query), for a test
    /// that scripts some answers of its own ahead of it.
    pub fn chunk_reply(&self) -> Reply {
        let me = self.clone();
        Reply::dynamic(move |r| me.chunk(r))
    }

    fn download(&self, r: &RecordedRequest) -> Reply {
        let Some(key) = object_key(r.path.trim_start_matches("/download/storage/v1/b/")) else {
            return Reply::text(400, "bad path");
        };
        let state = self.lock();
        match state.objects.get(&key) {
            Some((generation, bytes, hash))
                if r.query_param("alt") == Some("media")
                    && r.query_param("generation").is_none_or(|g| g == generation.to_string()) =>
            {
                Reply::status(200)
                    .header("x-goog-hash", hash)
                    .header("x-goog-generation", &generation.to_string())
                    .header("content-type", "application/octet-stream")
                    .body(bytes.clone())
            }
            _ => Reply::text(404, "No such object"),
        }
    }

    fn initiate(&self, r: &RecordedRequest) -> Reply {
        assert_eq!(r.query_param("uploadType"), Some("resumable"), "{r}");
        let job = JobRef::from_request(r);
        // Kept for the job resource, as BigQuery does: the loader reads its labels back.
        let configuration = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|body| body.get("configuration").cloned())
            .unwrap_or(Value::Null);
        let mut state = self.lock();
        state.next_session += 1;
        let id = format!("session-{}", state.next_session);
        state.sessions.insert(id.clone(), (job, configuration, Vec::new()));
        let location = format!("{}://{}{}?uploadType=resumable&upload_id={id}", r.scheme, r.authority, r.path);
        Reply::status(200).header("location", &location)
    }

    fn chunk(&self, r: &RecordedRequest) -> Reply {
        let Some(id) = r.query_param("upload_id") else { return Reply::text(400, "no upload_id") };
        let range = r.header("content-range").unwrap_or_default().to_string();
        let mut state = self.lock();
        let Some((job, configuration, bytes)) = state.sessions.get_mut(id) else {
            return google_error(404, "notFound", "Not found: Upload session");
        };
        let Some((span, total)) = range.strip_prefix("bytes ").and_then(|s| s.split_once('/')) else {
            return Reply::text(400, "bad Content-Range");
        };
        if span != "*" {
            let Some((a, b)) = span.split_once('-') else { return Reply::text(400, "bad Content-Range") };
            let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
            if a != bytes.len() || b + 1 - a != r.body.len() {
                return Reply::text(400, "chunk out of order");
            }
            bytes.extend_from_slice(&r.body);
        }
        if total != "*" && total.parse::<usize>().ok() == Some(bytes.len()) {
            let (job, configuration, body) = (job.clone(), configuration.clone(), bytes.clone());
            if state.jobs.contains_key(&job.job_id) {
                return crate::google::duplicate_job(&job);
            }
            let rows = body.iter().filter(|&&b| b == b'\n').count() as u64;
            let mut resource = job_resource(&job, "DONE", Some(rows), None);
            resource["configuration"] = configuration;
            state.jobs.insert(job.job_id.clone(), resource.clone());
            state.uploads.push((job.job_id.clone(), body));
            return Reply::json(200, &resource);
        }
        let held = bytes.len();
        if held == 0 {
            Reply::status(308)
        } else {
            Reply::status(308).header("range", &format!("bytes=0-{}", held - 1))
        }
    }

    fn get_job(&self, r: &RecordedRequest) -> Reply {
        let job = JobRef::from_request(r);
        match self.lock().jobs.get(&job.job_id) {
            Some(resource) => Reply::json(200, resource),
            None => google_error(404, "notFound", &format!("Not found: Job {}", job.id())),
        }
    }
}

/// `(bucket, name)` from `BUCKET/o/NAME` (both percent-encoded in the path).
fn object_key(rest: &str) -> Option<(String, String)> {
    let (bucket, name) = rest.split_once("/o/")?;
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    Some((decode(bucket), decode(name)))
}
