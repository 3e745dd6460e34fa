//! What a harness call returns: the guest's answer plus what it printed, spent and sent.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;

use crate::loader::{LoadError, Outcome};
use crate::upstream::RecordedRequest;

/// What a call observed besides its result.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Fuel (≈ wasm instructions) the call consumed, instantiation included: deterministic for a
    /// given guest build, a good regression bar.
    pub fuel_consumed: u64,
    /// The largest linear memory the instance grew to, in bytes (instantiation included).
    pub peak_memory: usize,
    /// Virtual time the call took (sleeps, scripted delays, timeouts).
    pub elapsed: Duration,
    /// The outbound requests made during this call, in arrival order.
    pub outbound: Vec<RecordedRequest>,
}

impl RunInfo {
    pub fn stdout_str(&self) -> &str {
        std::str::from_utf8(&self.stdout).expect("guest stdout is not UTF-8")
    }

    pub fn stderr_str(&self) -> &str {
        std::str::from_utf8(&self.stderr).expect("guest stderr is not UTF-8")
    }

    /// Stdout as one JSON value per non-empty line; panics naming the first line that is not
    /// JSON (the guest's log contract is one JSON object per line).
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.stdout_str()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")))
            .collect()
    }
}

/// The guest's HTTP response.
#[derive(Debug)]
pub struct HarnessResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub run: RunInfo,
}

impl HarnessResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("response body is not UTF-8")
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// The result of the typed `load` export.
#[derive(Debug)]
pub struct LoadResponse {
    pub result: Result<Outcome, LoadError>,
    pub run: RunInfo,
}
