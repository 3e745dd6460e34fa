//! The backfill's transport: [`gcr_usage_core::service::Io`] over ureq (rustls, webpki roots),
//! the real clock, the real sleep and the OS's randomness. Nothing here decides anything: every
//! request, timeout, retry and sleep comes from the core.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gcr_usage_core::service::{Io, Streamed};
use gcr_usage_core::session::{NoAnswer, Reply};

pub struct UreqIo {
    agent: ureq::Agent,
    /// Requests of one `send_all` in flight at once.
    parallel: usize,
    started: Instant,
    random: std::collections::hash_map::RandomState,
    draws: u64,
}

impl UreqIo {
    pub fn new(parallel: usize) -> UreqIo {
        let agent = ureq::Agent::config_builder()
            // Google's error answers are answers: the core reads their bodies.
            .http_status_as_error(false)
            .build()
            .new_agent();
        UreqIo { agent, parallel: parallel.max(1), started: Instant::now(), random: Default::default(), draws: 0 }
    }
}

/// One request, its whole answer read.
fn send(agent: &ureq::Agent, request: http::Request<Vec<u8>>, timeout: Duration) -> Reply {
    let request = agent.configure_request(request).timeout_global(Some(timeout)).build();
    match agent.run(request) {
        Ok(response) => {
            let (parts, mut body) = response.into_parts();
            // Answers here are JSON pages and job resources, never whole logs (those stream
            // through `open`); the limit only guards against a runaway answer.
            match body.with_config().limit(64 << 20).read_to_vec() {
                Ok(bytes) => Reply::Response(http::Response::from_parts(parts, bytes)),
                Err(e) => Reply::Failed(format!("reading the answer failed: {e}")),
            }
        }
        Err(why) => Reply::Failed(why.to_string()),
    }
}

impl Io for UreqIo {
    fn send(&mut self, request: http::Request<Vec<u8>>, timeout: Duration) -> Reply {
        send(&self.agent, request, timeout)
    }

    /// Up to `parallel` requests in flight: as many threads, sharing the agent's connection
    /// pool, each taking the next request as soon as its last is answered (a batch's
    /// reservations are independent round trips).
    fn send_all(&mut self, requests: Vec<(http::Request<Vec<u8>>, Duration)>) -> Vec<Reply> {
        let count = requests.len();
        let next = std::sync::Mutex::new(requests.into_iter().enumerate());
        let replies = std::sync::Mutex::new((0..count).map(|_| None).collect::<Vec<Option<Reply>>>());
        let agent = &self.agent;
        std::thread::scope(|scope| {
            for _ in 0..self.parallel.min(count) {
                scope.spawn(|| {
                    loop {
                        let Some((index, (request, timeout))) = next.lock().expect("not poisoned").next() else {
                            break;
                        };
                        let reply = send(agent, request, timeout);
                        replies.lock().expect("not poisoned")[index] = Some(reply);
                    }
                });
            }
        });
        replies
            .into_inner()
            .expect("not poisoned")
            .into_iter()
            .map(|reply| reply.unwrap_or_else(|| Reply::Failed("the request's thread ended without an answer".into())))
            .collect()
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
