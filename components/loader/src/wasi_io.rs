//! The core's [`Io`] on WASI: outgoing HTTP, monotonic-clock sleeps, host randomness.

use std::time::Duration;

use gcr_usage_core::service::{Io, Streamed};
use gcr_usage_core::session::{NoAnswer, Reply};
use wasip2::clocks::monotonic_clock;

pub struct WasiIo;

impl Io for WasiIo {
    fn send(&mut self, request: http::Request<Vec<u8>>, timeout: Duration) -> Reply {
        crate::http_out::send(request, timeout)
    }

    /// Written from the caller's bytes: an upload chunk is not copied to be sent.
    fn send_borrowed(&mut self, request: http::Request<&[u8]>, timeout: Duration) -> Reply {
        crate::http_out::send(request, timeout)
    }

    fn open(&mut self, request: http::Request<Vec<u8>>, timeout: Duration) -> Result<Streamed, NoAnswer> {
        crate::http_out::open(request, timeout)
    }

    fn sleep(&mut self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        monotonic_clock::subscribe_duration(nanos).block();
    }

    fn now_ms(&mut self) -> u64 {
        monotonic_clock::now() / 1_000_000
    }

    fn unix_secs(&mut self) -> u64 {
        wasip2::clocks::wall_clock::now().seconds
    }

    fn random_u64(&mut self) -> u64 {
        // Jitter needs no secrecy; the insecure source is cheaper and just as host-controlled.
        wasip2::random::insecure::get_insecure_random_u64()
    }
}

/// Milliseconds on the monotonic clock, for durations in log lines.
pub fn now_ms() -> u64 {
    monotonic_clock::now() / 1_000_000
}
