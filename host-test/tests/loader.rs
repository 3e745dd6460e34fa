//! The harness's one test binary (one link of wasmtime), a module per topic under
//! `tests/loader/`: the real loader component (`GCR_USAGE_WASM`, else built on demand) — every
//! event shape, every bad input, the exactly-once and retry paths, auth and trust, instance
//! reuse, the typed export, golden request bodies, never a trap, determinism; its Spin flavour
//! in Spin host mode (`spin`); its imports and exports (`component_world`); and the harness's
//! own promises against the probe guest (`harness_selftest`).

mod common;

#[path = "loader/auth.rs"]
mod auth;
#[path = "loader/classified.rs"]
mod classified;
#[path = "loader/component_world.rs"]
mod component_world;
#[path = "loader/config.rs"]
mod config;
#[path = "loader/events.rs"]
mod events;
#[path = "loader/golden.rs"]
mod golden;
#[path = "loader/harness_selftest.rs"]
mod harness_selftest;
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
#[path = "loader/scenarios.rs"]
mod scenarios;
#[path = "loader/spin.rs"]
mod spin;
#[path = "loader/trust.rs"]
mod trust;
#[path = "loader/typed.rs"]
mod typed;
