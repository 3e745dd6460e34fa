//! Virtual clocks for the guest, derived from tokio's clock.
//!
//! wasmtime-wasi implements `monotonic-clock.subscribe-duration` / `subscribe-instant` with
//! `tokio::time::sleep_until(tokio::time::Instant::now() + d)` (see
//! `wasmtime-wasi/src/p2/host/clocks.rs`). Under a paused tokio clock those sleeps complete as soon
//! as the runtime is idle, with tokio's clock jumping forward by exactly the slept duration. If the
//! guest's `now()` came from the OS it would disagree with its own sleeps (30 s of backoff would
//! take 0 ns), so both guest clocks are read from the same tokio clock instead: every sleep is
//! instant in real time and exact in guest time.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

/// 2026-01-01T00:00:00Z, the default wall-clock start of every harness.
pub const DEFAULT_WALL_START_UNIX_SECS: u64 = 1_767_225_600;

/// The time line shared by one harness: its guest clocks and its fake upstream's timestamps.
///
/// The origin is captured lazily on first use *inside* the test's runtime (tokio's paused clock
/// belongs to a runtime), so successive calls on one harness share a continuous time line and a
/// test can `tokio::time::advance` between calls to simulate time passing.
#[derive(Clone, Debug)]
pub struct VirtualTime {
    origin: Arc<OnceLock<Instant>>,
    wall_start: Duration,
}

impl VirtualTime {
    pub fn new(wall_start: Duration) -> Self {
        Self { origin: Arc::new(OnceLock::new()), wall_start }
    }

    /// Virtual time elapsed since the harness first ran a guest.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(*self.origin.get_or_init(Instant::now))
    }

    /// Wall-clock time (since the Unix epoch) the guest would see right now.
    pub fn wall_now(&self) -> Duration {
        self.wall_start + self.elapsed()
    }

    pub fn wall_start(&self) -> Duration {
        self.wall_start
    }
}

/// `wasi:clocks/monotonic-clock`: nanoseconds of virtual time since the harness origin.
pub struct VirtualMonotonicClock(pub VirtualTime);

impl HostMonotonicClock for VirtualMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        // u64 nanoseconds cover 584 years of virtual time.
        self.0.elapsed().as_nanos() as u64
    }
}

/// `wasi:clocks/wall-clock`: the configured start plus virtual time elapsed.
pub struct VirtualWallClock(pub VirtualTime);

impl HostWallClock for VirtualWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        self.0.wall_now()
    }
}
