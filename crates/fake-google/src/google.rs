//! The stateful fake: what Cloud Storage and BigQuery keep between requests, and how they answer.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::Endpoint;
use crate::answers::{JobRef, crc32c_header, duplicate_job, google_error, job_resource, query_param};

/// Cloud Storage's rule for resumable uploads: every chunk but the last is a multiple of this.
const CHUNK_QUANTUM: usize = 256 * 1024;

/// What came of one request.
#[derive(Debug)]
pub enum Exchange {
    Answered(http::Response<Bytes>),
    /// No answer: the connection failed with these words (the request may have taken effect).
    Lost(String),
    /// The answer's head arrived, promising its whole body (`Content-Length`), but only the
    /// body bytes this response holds came before the connection reset. A runner delivers
    /// them, then fails the body's next read with a transport error.
    BrokenOff(http::Response<Bytes>),
}

impl Exchange {
    /// The exchange as a client that reads the whole answer sees it: the response, or the
    /// words of the failure (a body broken off is one: the client never had the answer).
    pub fn whole(self) -> Result<http::Response<Bytes>, String> {
        match self {
            Exchange::Answered(response) => Ok(response),
            Exchange::BrokenOff(_) => Err(BROKEN_OFF.into()),
            Exchange::Lost(words) => Err(words),
        }
    }

    /// The exchange as a client that streams the body sees it: the head and the body as a
    /// reader, whose read past the bytes of a body broken off fails (`ConnectionReset`).
    pub fn streamed(self) -> Result<(http::response::Parts, StreamedBody), String> {
        let (response, broken) = match self {
            Exchange::Answered(response) => (response, false),
            Exchange::BrokenOff(response) => (response, true),
            Exchange::Lost(words) => return Err(words),
        };
        let (head, body) = response.into_parts();
        Ok((head, StreamedBody { bytes: std::io::Cursor::new(body), broken }))
    }
}

/// What a native client's read of a body broken off fails with.
const BROKEN_OFF: &str = "connection reset before the end of the body";

/// A response body as [`Exchange::streamed`] hands it out.
#[derive(Debug)]
pub struct StreamedBody {
    bytes: std::io::Cursor<Bytes>,
    broken: bool,
}

impl std::io::Read for StreamedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.bytes.read(buf)? {
            0 if self.broken && !buf.is_empty() => {
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, BROKEN_OFF))
            }
            n => Ok(n),
        }
    }
}

/// A scripted deviation from the normal answer, consumed by the next request to its endpoint
/// while it is first in the queue (so a list of faults is met in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status and body instead; nothing happens.
    Reply(u16, &'static str),
    /// The connection resets before the request reaches the service; nothing happens.
    Network,
    /// The request takes effect (a chunk stored, a job created), then its answer is lost.
    PersistThenFail,
    /// Another delivery of the same event gets there first: before this request is answered a
    /// DONE job with this many rows appears under the job id it names (use on `Initiate`, so
    /// the upload's last chunk meets a 409, as two concurrent deliveries would).
    FinishedElsewhere(u64),
    /// The answer is sent, but the connection resets after this many bytes of its body (a
    /// download cut off part-way: [`Exchange::BrokenOff`]).
    BodyBreaksAfter(usize),
}

/// Answers that lie about the object or the session, for the checks that must catch them.
#[derive(Debug, Clone, Default)]
pub struct Tampering {
    /// `X-Goog-Hash` sent with downloads instead of the object's own.
    pub hash: Option<&'static str>,
    /// `Content-Length` sent with downloads instead of the object's size.
    pub content_length: Option<u64>,
    /// `Location` answered to an upload initiation instead of the endpoint's own URL.
    pub session_location: Option<&'static str>,
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub endpoint: Endpoint,
    /// Path and query.
    pub target: String,
    pub content_range: Option<String>,
    pub authorization: Option<String>,
}

struct StoredObject {
    generation: u64,
    bytes: Bytes,
    /// Computed once, as Cloud Storage does on upload (not per download: benchmarks would time
    /// the fake).
    hash: String,
}

struct Session {
    job: JobRef,
    /// Kept for the job resource, as BigQuery does: the loader reads its labels back.
    configuration: Value,
    /// What the session holds (empty when uploads are only counted).
    bytes: Vec<u8>,
    /// How many bytes it holds, and how many of them are line ends (the job's row count).
    held: usize,
    lines: u64,
}

#[derive(Default)]
pub struct Google {
    objects: HashMap<(String, String), StoredObject>,
    sessions: HashMap<String, Session>,
    jobs: HashMap<String, Value>,
    uploads: Vec<(String, Vec<u8>)>,
    next_session: u32,
    faults: VecDeque<(Endpoint, Fault)>,
    outages: HashSet<Endpoint>,
    tampering: Tampering,
    seen: Vec<Seen>,
    violations: Vec<String>,
    /// [`Google::count_uploads_only`].
    count_only: bool,
}

impl Google {
    pub fn new() -> Google {
        Google::default()
    }

    /// Stores `gs://bucket/name` at `generation`.
    pub fn object(&mut self, bucket: &str, name: &str, generation: u64, bytes: impl Into<Bytes>) -> &mut Self {
        let bytes = bytes.into();
        let hash = crc32c_header(&bytes);
        self.objects.insert((bucket.into(), name.into()), StoredObject { generation, bytes, hash });
        self
    }

    /// Keeps no upload's bytes, only how many there are and how many lines (the job's row
    /// count); [`Google::uploads`] stays empty. For benchmarks: holding hundreds of MB of
    /// NDJSON per load, and copying it once more when the job is made, made the fake rather
    /// than the loader a large part of the time a load took. Every protocol check still runs.
    pub fn count_uploads_only(&mut self) -> &mut Self {
        self.count_only = true;
        self
    }

    /// Queues a fault for the next request to `endpoint` (see [`Fault`]).
    pub fn fault(&mut self, endpoint: Endpoint, fault: Fault) -> &mut Self {
        self.faults.push_back((endpoint, fault));
        self
    }

    /// Every request to `endpoint` fails on the network from now on.
    pub fn outage(&mut self, endpoint: Endpoint) -> &mut Self {
        self.outages.insert(endpoint);
        self
    }

    pub fn tamper(&mut self, tampering: Tampering) -> &mut Self {
        self.tampering = tampering;
        self
    }

    /// Records a job as BigQuery holds it (e.g. a failed earlier attempt).
    pub fn put_job(&mut self, job_id: &str, resource: Value) {
        self.jobs.insert(job_id.into(), resource);
    }

    pub fn job(&self, job_id: &str) -> Option<&Value> {
        self.jobs.get(job_id)
    }

    pub fn job_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.jobs.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Completed uploads (job id, NDJSON), oldest first.
    pub fn uploads(&self) -> &[(String, Vec<u8>)] {
        &self.uploads
    }

    /// Faults queued and not yet met.
    pub fn faults_left(&self) -> usize {
        self.faults.len()
    }

    /// Every request so far, oldest first.
    pub fn seen(&self) -> &[Seen] {
        &self.seen
    }

    /// Forgets the requests seen so far (between deliveries of a scenario).
    pub fn take_seen(&mut self) -> Vec<Seen> {
        std::mem::take(&mut self.seen)
    }

    /// Protocol violations by the client; a correct loader leaves this empty.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Answers one request. Panics on a request to no endpoint the fake models: the runner
    /// routed something it should not have.
    pub fn answer<B: AsRef<[u8]>>(&mut self, request: &http::Request<B>) -> Exchange {
        let (method, uri) = (request.method(), request.uri());
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_range = header("content-range");
        let endpoint = Endpoint::of(method, uri.path(), content_range.as_deref())
            .unwrap_or_else(|| panic!("the fake Google has no endpoint for {method} {uri}"));
        self.seen.push(Seen {
            endpoint,
            target: uri.path_and_query().map_or_else(|| uri.path().to_string(), |pq| pq.to_string()),
            content_range: content_range.clone(),
            authorization: header("authorization"),
        });
        if self.outages.contains(&endpoint) {
            return Exchange::Lost("connection reset".into());
        }
        let fault = match self.faults.front() {
            Some((e, _)) if *e == endpoint => self.faults.pop_front().map(|(_, f)| f),
            _ => None,
        };
        let call =
            Call { endpoint, method, uri, content_range: content_range.as_deref(), body: request.body().as_ref() };
        match fault {
            None => Exchange::Answered(self.serve(&call)),
            Some(Fault::Reply(status, body)) => {
                Exchange::Answered(response(status, &[], Bytes::from_static(body.as_bytes())))
            }
            Some(Fault::Network) => Exchange::Lost("connection reset".into()),
            Some(Fault::PersistThenFail) => {
                let _ = self.serve(&call);
                Exchange::Lost("connection reset after the body was sent".into())
            }
            Some(Fault::FinishedElsewhere(rows)) => {
                let job = call.job();
                self.jobs.insert(job.job_id.clone(), job_resource(&job, "DONE", Some(rows), None));
                Exchange::Answered(self.serve(&call))
            }
            Some(Fault::BodyBreaksAfter(n)) => {
                let (head, body) = self.serve(&call).into_parts();
                Exchange::BrokenOff(http::Response::from_parts(head, body.slice(..n.min(body.len()))))
            }
        }
    }

    fn serve(&mut self, call: &Call<'_>) -> http::Response<Bytes> {
        match call.endpoint {
            Endpoint::ObjectMetadata => self.object_metadata(call),
            Endpoint::Download => self.download(call),
            Endpoint::Insert => self.insert(call),
            Endpoint::GetJob => self.get_job(call),
            Endpoint::Initiate => self.initiate(call),
            Endpoint::Chunk | Endpoint::Status => self.put_chunk(call),
        }
    }

    /// `objects.get`: the metadata the loader asks for, int64 fields as strings.
    fn object_metadata(&mut self, call: &Call<'_>) -> http::Response<Bytes> {
        self.check_encoded(call);
        let Some(key) = object_key(call.uri.path().trim_start_matches("/storage/v1/b/")) else {
            return error(400, "invalid", "bad object path");
        };
        match self.objects.get(&key) {
            Some(o) => json_response(
                200,
                &json!({"kind": "storage#object", "bucket": key.0, "name": key.1,
                        "generation": o.generation.to_string(), "size": o.bytes.len().to_string()}),
            ),
            None => error(404, "notFound", &format!("No such object: {}/{}", key.0, key.1)),
        }
    }

    fn download(&mut self, call: &Call<'_>) -> http::Response<Bytes> {
        self.check_encoded(call);
        let Some(key) = object_key(call.uri.path().trim_start_matches("/download/storage/v1/b/")) else {
            return error(400, "invalid", "bad object path");
        };
        let query = call.uri.query();
        match self.objects.get(&key) {
            Some(o)
                if query_param(query, "alt") == Some("media")
                    && query_param(query, "generation").is_none_or(|g| g == o.generation.to_string()) =>
            {
                let hash = self.tampering.hash.map_or(o.hash.as_str(), |h| h);
                let length = self.tampering.content_length.unwrap_or(o.bytes.len() as u64).to_string();
                let generation = o.generation.to_string();
                response(
                    200,
                    &[
                        ("x-goog-hash", hash),
                        ("x-goog-generation", &generation),
                        ("content-length", &length),
                        ("content-type", "application/octet-stream"),
                    ],
                    o.bytes.clone(),
                )
            }
            _ => error(404, "notFound", &format!("No such object: {}/{}", key.0, key.1)),
        }
    }

    /// An object name is one path segment: a `/` in it must arrive as `%2F` (sink objects are
    /// named `cloudaudit.googleapis.com/data_access/…`), or Cloud Storage reads another path.
    fn check_encoded(&mut self, call: &Call<'_>) {
        let path = call.uri.path();
        if let Some((_, name)) = path.split_once("/o/")
            && name.contains('/')
        {
            self.violations.push(format!("an object name with a raw '/' in the path: {path}"));
        }
    }

    /// `jobs.insert` of a load from Cloud Storage: the job is created DONE, its `outputRows`
    /// the data lines of the source objects (after `skipLeadingRows`), or 409 when it exists.
    fn insert(&mut self, call: &Call<'_>) -> http::Response<Bytes> {
        let job = call.job();
        if self.jobs.contains_key(&job.job_id) {
            return json_response(409, &duplicate_job(&job));
        }
        let configuration = call.configuration();
        let load = &configuration["load"];
        let skip = load["skipLeadingRows"].as_u64().unwrap_or(0) as usize;
        let mut rows = 0;
        for uri in load["sourceUris"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            let key = uri.strip_prefix("gs://").and_then(|rest| rest.split_once('/'));
            match key.and_then(|(b, n)| self.objects.get(&(b.to_string(), n.to_string()))) {
                Some(o) => rows += o.bytes.iter().filter(|&&b| b == b'\n').count().saturating_sub(skip),
                None => {
                    let message = format!("Not found: URI {uri}");
                    let mut failed = job_resource(&job, "DONE", None, Some(("notFound", &message)));
                    failed["configuration"] = configuration;
                    self.jobs.insert(job.job_id.clone(), failed.clone());
                    return json_response(200, &failed);
                }
            }
        }
        let mut resource = job_resource(&job, "DONE", Some(rows as u64), None);
        resource["configuration"] = configuration;
        self.jobs.insert(job.job_id.clone(), resource.clone());
        json_response(200, &resource)
    }

    fn get_job(&self, call: &Call<'_>) -> http::Response<Bytes> {
        let job = call.job();
        match self.jobs.get(&job.job_id) {
            Some(resource) => json_response(200, resource),
            None => error(404, "notFound", &format!("Not found: Job {}", job.id())),
        }
    }

    fn initiate(&mut self, call: &Call<'_>) -> http::Response<Bytes> {
        if query_param(call.uri.query(), "uploadType") != Some("resumable") {
            self.violations.push(format!("upload initiated without uploadType=resumable: {}", call.uri));
            return error(400, "invalid", "uploadType=resumable is required");
        }
        self.next_session += 1;
        let id = format!("session-{}", self.next_session);
        let session =
            Session { job: call.job(), configuration: call.configuration(), bytes: Vec::new(), held: 0, lines: 0 };
        self.sessions.insert(id.clone(), session);
        let origin = match (call.uri.scheme_str(), call.uri.authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => String::new(),
        };
        let location = self
            .tampering
            .session_location
            .map_or_else(|| format!("{origin}{}?uploadType=resumable&upload_id={id}", call.uri.path()), str::to_string);
        response(200, &[("location", &location)], Bytes::new())
    }

    /// A chunk, the empty last chunk or a status query: `308` with the `Range` held until the
    /// bytes reach the total the last chunk names, which creates the job (409 if it exists).
    fn put_chunk(&mut self, call: &Call<'_>) -> http::Response<Bytes> {
        let Some(id) = query_param(call.uri.query(), "upload_id") else {
            self.violations.push(format!("a PUT without upload_id: {}", call.uri));
            return error(400, "invalid", "no upload_id");
        };
        let Some(session) = self.sessions.get_mut(id) else {
            return error(404, "notFound", "Not found: Upload session");
        };
        let parsed = call.content_range.and_then(|r| r.strip_prefix("bytes ")).and_then(|s| s.split_once('/'));
        let Some((span, total)) = parsed else {
            self.violations.push(format!("bad Content-Range {:?}", call.content_range));
            return error(400, "invalid", "bad Content-Range");
        };
        let total: Option<usize> = if total == "*" { None } else { total.parse().ok() };
        if span == "*" {
            if !call.body.is_empty() {
                self.violations.push(format!("{} body bytes with Content-Range bytes */…", call.body.len()));
            }
        } else {
            let range =
                span.split_once('-').and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
            let Some((first, last)) = range.filter(|(a, b)| a <= b) else {
                self.violations.push(format!("bad Content-Range {span}"));
                return error(400, "invalid", "bad Content-Range");
            };
            if first != session.held || last + 1 - first != call.body.len() {
                self.violations.push(format!(
                    "chunk {first}-{last} ({} bytes) sent while the session holds {}",
                    call.body.len(),
                    session.held
                ));
                return error(400, "invalid", "chunk out of order");
            }
            if total.is_none() && !call.body.len().is_multiple_of(CHUNK_QUANTUM) {
                self.violations
                    .push(format!("a non-last chunk of {} bytes (not a multiple of 256 KiB)", call.body.len()));
                return error(400, "invalid", "chunk size must be a multiple of 256 KiB");
            }
            session.held += call.body.len();
            session.lines += call.body.iter().filter(|&&b| b == b'\n').count() as u64;
            if !self.count_only {
                session.bytes.extend_from_slice(call.body);
            }
        }
        if total.is_some_and(|t| t == session.held) {
            let job = session.job.clone();
            if self.jobs.contains_key(&job.job_id) {
                return json_response(409, &duplicate_job(&job));
            }
            let mut resource = job_resource(&job, "DONE", Some(session.lines), None);
            resource["configuration"] = session.configuration.clone();
            self.jobs.insert(job.job_id.clone(), resource.clone());
            if !self.count_only {
                self.uploads.push((job.job_id, session.bytes.clone()));
            }
            return json_response(200, &resource);
        }
        match session.held {
            0 => response(308, &[], Bytes::new()),
            held => response(308, &[("range", &format!("bytes=0-{}", held - 1))], Bytes::new()),
        }
    }
}

/// The parts of a request the endpoints read.
struct Call<'a> {
    endpoint: Endpoint,
    method: &'a http::Method,
    uri: &'a http::Uri,
    content_range: Option<&'a str>,
    body: &'a [u8],
}

impl Call<'_> {
    fn job(&self) -> JobRef {
        JobRef::from_request(self.method, self.uri.path(), self.uri.query(), self.body)
    }

    fn configuration(&self) -> Value {
        serde_json::from_slice::<Value>(self.body)
            .ok()
            .and_then(|body| body.get("configuration").cloned())
            .unwrap_or(Value::Null)
    }
}

/// `(bucket, name)` from `BUCKET/o/NAME` (both percent-encoded in the path).
fn object_key(rest: &str) -> Option<(String, String)> {
    let (bucket, name) = rest.split_once("/o/")?;
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    Some((decode(bucket), decode(name)))
}

fn response(status: u16, headers: &[(&str, &str)], body: Bytes) -> http::Response<Bytes> {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body).expect("the fake's answers are valid HTTP")
}

fn json_response(status: u16, body: &Value) -> http::Response<Bytes> {
    response(status, &[("content-type", "application/json; charset=UTF-8")], Bytes::from(body.to_string()))
}

fn error(status: u16, reason: &str, message: &str) -> http::Response<Bytes> {
    json_response(status, &google_error(status, reason, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(google: &mut Google, target: &str) -> Exchange {
        let request = http::Request::get(format!("https://storage.googleapis.com{target}")).body(Vec::new()).unwrap();
        google.answer(&request)
    }

    #[test]
    fn an_object_name_must_arrive_as_one_path_segment() {
        let mut google = Google::new();
        google.object("b", "dir/x:y.json", 7, b"{}\n".to_vec());
        let ok = get(&mut google, "/download/storage/v1/b/b/o/dir%2Fx%3Ay.json?alt=media&generation=7");
        assert!(matches!(ok, Exchange::Answered(r) if r.status() == 200));
        assert!(google.violations().is_empty());
        get(&mut google, "/download/storage/v1/b/b/o/dir/x:y.json?alt=media");
        assert_eq!(google.violations().len(), 1, "{:?}", google.violations());
    }

    #[test]
    fn a_body_broken_off_keeps_the_whole_head_and_the_first_bytes() {
        let mut google = Google::new();
        google.object("b", "log", 7, b"0123456789".to_vec());
        google.fault(Endpoint::Download, Fault::BodyBreaksAfter(4));
        let broken = get(&mut google, "/download/storage/v1/b/b/o/log?alt=media");
        let Exchange::BrokenOff(response) = broken else { panic!("{broken:?}") };
        assert_eq!((response.status(), response.body().as_ref()), (http::StatusCode::OK, &b"0123"[..]));
        assert_eq!(response.headers()["content-length"], "10", "the head promises the whole object");
        assert_eq!(response.headers()["x-goog-hash"], crc32c_header(b"0123456789"));
        let (head, mut body) = Exchange::BrokenOff(response).streamed().expect("a head");
        assert_eq!(head.status, 200);
        let mut read = vec![0; 3];
        assert_eq!(std::io::Read::read(&mut body, &mut read).unwrap(), 3);
        let mut rest = Vec::new();
        let error = std::io::Read::read_to_end(&mut body, &mut rest).unwrap_err();
        assert_eq!((rest, error.kind()), (b"3".to_vec(), std::io::ErrorKind::ConnectionReset));
        let again = get(&mut google, "/download/storage/v1/b/b/o/log?alt=media");
        assert!(matches!(again, Exchange::Answered(r) if r.body().as_ref() == b"0123456789"), "one break only");
    }

    /// One resumable upload in two chunks (and a chunk out of order): what the fake answers.
    fn upload(google: &mut Google) -> (Vec<u16>, Value) {
        let answer = |google: &mut Google, request: http::Request<Vec<u8>>| {
            google.answer(&request).whole().unwrap_or_else(|why| panic!("no answer: {why}"))
        };
        let body = br#"{"jobReference":{"projectId":"p","jobId":"j1"},"configuration":{"load":{}}}"#.to_vec();
        let initiate = http::Request::post(
            "https://bigquery.googleapis.com/upload/bigquery/v2/projects/p/jobs?uploadType=resumable",
        );
        let session = answer(google, initiate.body(body).unwrap());
        let url = session.headers()["location"].to_str().unwrap().to_string();
        let first = vec![b'\n'; CHUNK_QUANTUM];
        let last = b"{}\n{}\n".to_vec();
        let total = first.len() + last.len();
        let chunk = |range: String, bytes: Vec<u8>| {
            http::Request::put(url.as_str()).header("content-range", range).body(bytes).unwrap()
        };
        let mut statuses = Vec::new();
        let early = chunk(format!("bytes {}-{}/{total}", CHUNK_QUANTUM, total - 1), last.clone());
        statuses.push(answer(google, early).status().as_u16());
        let r = answer(google, chunk(format!("bytes 0-{}/*", CHUNK_QUANTUM - 1), first));
        statuses.push(r.status().as_u16());
        let r = answer(google, chunk(format!("bytes {}-{}/{total}", CHUNK_QUANTUM, total - 1), last));
        statuses.push(r.status().as_u16());
        (statuses, serde_json::from_slice(r.body()).unwrap())
    }

    #[test]
    fn counting_uploads_answers_as_keeping_them_does() {
        let mut kept = Google::new();
        let mut counted = Google::new();
        counted.count_uploads_only();
        let (kept_statuses, kept_job) = upload(&mut kept);
        let (counted_statuses, counted_job) = upload(&mut counted);
        assert_eq!(kept_statuses, [400, 308, 200]);
        assert_eq!((counted_statuses, &counted_job), (kept_statuses, &kept_job));
        assert_eq!(counted_job["statistics"]["load"]["outputRows"], json!((CHUNK_QUANTUM + 2).to_string()));
        assert_eq!(kept.uploads().len(), 1);
        assert!(counted.uploads().is_empty());
        assert_eq!(counted.violations(), kept.violations(), "the out-of-order chunk is a violation either way");
        assert_eq!(counted.violations().len(), 1);
    }
}
