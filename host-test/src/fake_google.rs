//! The shared fake of Google ([`gcr_usage_fake_google::Google`], the same one the core's native
//! tests use) behind a [`FakeUpstream`]: every outbound request to an endpoint it models (Cloud
//! Storage metadata and downloads, BigQuery jobs and resumable uploads) is answered from its
//! state; a lost answer becomes a transport failure the guest sees as a wasi:http error code.
//! Scripted rules routed *before* [`FakeGoogle::install`] answer first (faults of a test's own).

use std::sync::{Arc, Mutex, MutexGuard};

use gcr_usage_fake_google::{Endpoint, Exchange, Google};
use serde_json::Value;

use crate::upstream::{FakeUpstream, RecordedRequest, Reply, Rule, matching};

/// Cheap to clone: clones share the state.
#[derive(Clone, Default)]
pub struct FakeGoogle {
    state: Arc<Mutex<Google>>,
}

impl From<Google> for FakeGoogle {
    fn from(google: Google) -> Self {
        FakeGoogle { state: Arc::new(Mutex::new(google)) }
    }
}

impl FakeGoogle {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn object(&self, bucket: &str, name: &str, generation: u64, bytes: impl Into<Vec<u8>>) -> &Self {
        self.lock().object(bucket, name, generation, bytes.into());
        self
    }

    /// Completed uploads (job id, NDJSON), oldest first.
    pub fn uploads(&self) -> Vec<(String, Vec<u8>)> {
        self.lock().uploads().to_vec()
    }

    pub fn job_ids(&self) -> Vec<String> {
        self.lock().job_ids()
    }

    /// Records a job as BigQuery would hold it (e.g. a failed earlier attempt).
    pub fn put_job(&self, job_id: &str, resource: Value) {
        self.lock().put_job(job_id, resource);
    }

    /// The shared state itself, to script or inspect.
    pub fn lock(&self) -> MutexGuard<'_, Google> {
        self.state.lock().expect("fake Google state poisoned")
    }

    /// Routes every request to an endpoint the fake models to it, whatever the host.
    pub fn install(&self, upstream: &FakeUpstream) {
        let modelled = |r: &RecordedRequest| Endpoint::of(&r.method, &r.path, r.header("content-range")).is_some();
        upstream.route(Rule::any_method(matching(modelled)).reply(self.reply()));
    }

    /// The fake's answer to whatever request meets it, for a test that scripts answers of its
    /// own ahead of it.
    pub fn reply(&self) -> Reply {
        let me = self.clone();
        Reply::dynamic(move |r| match me.lock().answer(&as_http(r)) {
            Exchange::Answered(response) => scripted(response),
            // The head keeps the fake's `content-length` (the whole body's), as a real cut-off does.
            Exchange::BrokenOff(response) => {
                scripted(response).breaks_off(|| crate::UpstreamError::ConnectionTerminated)
            }
            Exchange::Lost(_) => Reply::fail(|| crate::UpstreamError::ConnectionTerminated),
        })
    }
}

fn scripted(response: http::Response<bytes::Bytes>) -> Reply {
    let mut reply = Reply::status(response.status().as_u16());
    for (name, value) in response.headers() {
        reply = reply.header(name.as_str(), value.to_str().expect("the fake's headers are ASCII"));
    }
    reply.body(response.into_body())
}

fn as_http(r: &RecordedRequest) -> http::Request<bytes::Bytes> {
    let mut request = http::Request::builder().method(r.method.clone()).uri(r.url.as_str());
    for (name, value) in &r.headers {
        request = request.header(name, value);
    }
    request.body(r.body.clone()).expect("a recorded request is valid HTTP")
}
