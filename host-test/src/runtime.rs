//! The tokio runtime the harness requires: current-thread with paused time.
//!
//! Paused time is what makes guest time virtual (see `clock.rs`); current-thread scheduling is
//! what makes the interleaving of the guest, its outbound requests and scripted delays the same
//! on every run.

use std::time::Duration;

use tokio::runtime::{Handle, RuntimeFlavor};

/// Panics unless running on a current-thread tokio runtime with paused time: on any other
/// runtime guest sleeps would take real time and the clocks would not be deterministic.
pub(crate) fn assert_paused_current_thread() {
    let handle = Handle::try_current()
        .expect("run the harness inside #[tokio::test(start_paused = true)] or gcr_usage_host_test::block_on");
    assert_eq!(
        handle.runtime_flavor(),
        RuntimeFlavor::CurrentThread,
        "the harness needs a current-thread runtime with paused time: #[tokio::test(start_paused = true)]"
    );
    // A paused clock only moves when the runtime parks or on `advance`, never on its own.
    let before = tokio::time::Instant::now();
    std::thread::sleep(Duration::from_micros(50));
    assert_eq!(
        before,
        tokio::time::Instant::now(),
        "tokio time is not paused: use #[tokio::test(start_paused = true)] or gcr_usage_host_test::block_on"
    );
}

/// Runs `fut` on a fresh current-thread runtime with paused time (for tests that are not
/// `#[tokio::test(start_paused = true)]`).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
        .block_on(fut)
}
