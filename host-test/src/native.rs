//! The native runner of the shared scenarios ([`gcr_usage_fake_google::scenario`]): the core's
//! `service::handle` called in-process, exactly as the component calls it, with an `Io` that
//! answers from the shared fake and keeps a virtual clock — so the component's answers can be
//! compared with the core's own, request for request.

use std::time::Duration;

use gcr_usage_core::Config;
use gcr_usage_core::instance::InstanceState;
use gcr_usage_core::service::{self, Io, Request, Streamed};
use gcr_usage_core::session::{NoAnswer, Reply};
use gcr_usage_fake_google::Google;
use gcr_usage_fake_google::scenario::Scenario;
use serde_json::Value;

/// Virtual latency of every request: sends cost time, as they do on a network.
const LATENCY_MS: u64 = 20;

struct FakeIo<'g> {
    google: &'g mut Google,
    now_ms: u64,
    random: u64,
}

impl Io for FakeIo<'_> {
    fn send(&mut self, request: http::Request<Vec<u8>>, _timeout: Duration) -> Reply {
        self.now_ms += LATENCY_MS;
        match self.google.answer(&request).whole() {
            Ok(response) => Reply::Response(response.map(|body| body.to_vec())),
            Err(words) => Reply::Failed(words),
        }
    }
    /// Streams, so that a body broken off part-way fails a read, as it does in the component.
    fn open(&mut self, request: http::Request<Vec<u8>>, _timeout: Duration) -> Result<Streamed, NoAnswer> {
        self.now_ms += LATENCY_MS;
        let (head, body) = self.google.answer(&request).streamed().map_err(NoAnswer::Failed)?;
        Ok(Streamed { status: head.status.as_u16(), headers: head.headers, body: Box::new(body) })
    }
    fn sleep(&mut self, duration: Duration) {
        self.now_ms += duration.as_millis() as u64;
    }
    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
    fn unix_secs(&mut self) -> u64 {
        crate::DEFAULT_WALL_START_UNIX_SECS + self.now_ms / 1000
    }
    fn random_u64(&mut self) -> u64 {
        // xorshift64: deterministic, and not constant (the delivery label must vary).
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random
    }
}

/// One classified load of `gs://BUCKET/NAME` (generation 1, stored in `google`) by the core
/// in-process, with `config` as the component's environment: the same whole load the component
/// does in the harness (download, CRC32C, reader, classify, NDJSON, upload chunks) against the
/// same fake, so that `classify_bench` can tell the cost of WebAssembly from that of the work.
/// The load's outcome and its wall time (the fake's answers included, as in the harness).
pub fn classified_load(
    google: &mut Google,
    config: &[(&str, &str)],
    object: gcr_usage_core::ObjectRef,
) -> (Result<gcr_usage_core::outcome::Outcome, String>, Duration) {
    let config = config_of(config);
    let mut io = FakeIo { google, now_ms: 1_000, random: 0x9E37_79B9_7F4A_7C15 };
    let started = std::time::Instant::now();
    let result = service::load_object(config, object, &mut io, &mut Default::default());
    (result.load.map_err(|e| e.to_string()), started.elapsed())
}

/// The core's configuration from `GCR_USAGE_*` pairs, as the component reads its environment.
fn config_of(pairs: &[(&str, &str)]) -> Result<Config, gcr_usage_core::ConfigError> {
    Config::from_env(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
}

/// Delivery `n` of `scenario`'s event to the core, against `google`: the answer's status and
/// body. Each delivery draws other random numbers (its `delivery` label), as a redelivery would.
pub fn deliver(scenario: &Scenario, n: u64, google: &mut Google) -> (u16, Value) {
    let config = scenario.config();
    let config = config_of(&config);
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    let body = scenario.event().to_string();
    let request = Request { method: "POST", path_and_query: "/", headers: &headers, body: body.as_bytes() };
    let mut io = FakeIo { google, now_ms: 1_000, random: 0x9E37_79B9_7F4A_7C15 ^ (n + 1) };
    let handled = service::handle(&request, config, &mut io, &mut InstanceState::default());
    (handled.answer.status, handled.answer.body)
}
