//! `TestRequest`: the incoming HTTP request a test sends to the guest.

use bytes::Bytes;
use http::Method;
use http_body_util::Full;

use crate::error::HarnessError;

/// An HTTP request to send to the guest's `wasi:http/incoming-handler`.
#[derive(Clone, Debug)]
pub struct TestRequest {
    pub method: Method,
    /// Path and query, e.g. `/events?x=1`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl TestRequest {
    pub fn new(method: Method, path: &str) -> Self {
        TestRequest { method, path: path.into(), headers: Vec::new(), body: Vec::new() }
    }

    pub fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new(Method::POST, path).body(body)
    }

    /// A POST with a JSON body and `content-type: application/json`.
    pub fn post_json(path: &str, body: &serde_json::Value) -> Self {
        Self::post(path, body.to_string()).header("content-type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub(crate) fn into_hyper(self) -> Result<hyper::Request<Full<Bytes>>, HarnessError> {
        // wasi:http needs an authority: take the test's `host` header, else `localhost`.
        let authority = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map_or("localhost", |(_, v)| v.as_str())
            .to_string();
        let mut builder = hyper::Request::builder().method(self.method).uri(format!("http://{authority}{}", self.path));
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        builder
            .body(Full::new(Bytes::from(self.body)))
            .map_err(|e| HarnessError::setup(format!("invalid test request: {e}")))
    }
}
