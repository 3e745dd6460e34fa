//! The backfill's transport: [`gcr_usage_core::service::Io`] over ureq (rustls, webpki roots),
//! the real clock, the real sleep and the OS's randomness. Nothing here decides anything: every
//! request, timeout, retry and sleep comes from the core.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gcr_usage_core::service::{Io, Streamed};
use gcr_usage_core::session::{NoAnswer, Reply};

pub struct UreqIo {
    agent: ureq::Agent,
    started: Instant,
    random: std::collections::hash_map::RandomState,
    draws: u64,
}

impl UreqIo {
    pub fn new() -> UreqIo {
        let agent = ureq::Agent::config_builder()
            // Google's error answers are answers: the core reads their bodies.
            .http_status_as_error(false)
            .build()
            .new_agent();
        UreqIo { agent, started: Instant::now(), random: Default::default(), draws: 0 }
    }

    fn run(&self, request: http::Request<Vec<u8>>, timeout: Duration) -> Result<http::Response<ureq::Body>, String> {
        let request = self.agent.configure_request(request).timeout_global(Some(timeout)).build();
        self.agent.run(request).map_err(|e| e.to_string())
    }
}

impl Io for UreqIo {
    fn send(&mut self, request: http::Request<Vec<u8>>, timeout: Duration) -> Reply {
        match self.run(request, timeout) {
            Ok(response) => {
                let (parts, mut body) = response.into_parts();
                // Answers here are JSON pages and job resources, never whole logs (those stream
                // through `open`); the limit only guards against a runaway answer.
                match body.with_config().limit(64 << 20).read_to_vec() {
                    Ok(bytes) => Reply::Response(http::Response::from_parts(parts, bytes)),
                    Err(e) => Reply::Failed(format!("reading the answer failed: {e}")),
                }
            }
            Err(why) => Reply::Failed(why),
        }
    }

    fn open(&mut self, request: http::Request<Vec<u8>>, timeout: Duration) -> Result<Streamed, NoAnswer> {
        // A download may take long: the timeout covers the connection and the first answer,
        // reading then goes on as long as bytes arrive.
        let request = self
            .agent
            .configure_request(request)
            .timeout_connect(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .build();
        let response = self.agent.run(request).map_err(|e| NoAnswer::Failed(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body: Box<dyn Read> = Box::new(body.into_reader());
        Ok(Streamed { status: parts.status.as_u16(), headers: parts.headers, body })
    }

    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn now_ms(&mut self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn unix_secs(&mut self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }

    fn random_u64(&mut self) -> u64 {
        use std::hash::BuildHasher;
        // SipHash keyed by the OS's randomness (RandomState): unpredictable run tokens without
        // another dependency.
        self.draws += 1;
        let unix = self.unix_secs();
        self.random.hash_one((self.draws, unix, self.started.elapsed().as_nanos()))
    }
}
