//! Harness tests through the real loader component (`GCR_USAGE_WASM`, else built on demand):
//! every event shape, every bad input, the exactly-once and retry paths, auth, the typed export,
//! golden request bodies, never a trap, determinism.
//!
//! One test binary (one link of wasmtime) with a module per topic under `tests/loader/`.

mod common;

#[path = "loader/auth.rs"]
mod auth;
#[path = "loader/classified.rs"]
mod classified;
#[path = "loader/config.rs"]
mod config;
#[path = "loader/events.rs"]
mod events;
#[path = "loader/golden.rs"]
mod golden;
#[path = "loader/input.rs"]
mod input;
#[path = "loader/jobs.rs"]
mod jobs;
#[path = "loader/retries.rs"]
mod retries;
#[path = "loader/reuse.rs"]
mod reuse;
#[path = "loader/robustness.rs"]
mod robustness;
#[path = "loader/trust.rs"]
mod trust;
#[path = "loader/typed.rs"]
mod typed;
