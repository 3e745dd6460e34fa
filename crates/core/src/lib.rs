//! The pure core of gcr-usage: every decision the loader makes, with no I/O.
//!
//! Hosts (the WASI component, the test harness, a future CLI) only move bytes: they hand this
//! crate the incoming request, execute the HTTP requests it asks for, sleep when it says so,
//! and render what it returns. That keeps all behaviour testable natively and fuzzable.
//!
//! The path of one event: [`trigger_event::parse_event`] → [`plan::plan_load`] (allow-list, log-name
//! check, destination) → [`session::LoadSession`] (token, `jobs.insert`, `jobs.get`, retries)
//! → [`contract`] (HTTP status, JSON body, log line). Classified loads add
//! [`classified::run_upload`]: [`storage`] download → [`usage`] reader and classifier →
//! [`upload`] resumable NDJSON chunks.

pub mod audit;
pub mod auth;
pub mod backfill;
pub mod backoff;
pub mod batch_job;
pub mod batching;
pub mod bigquery;
pub mod budget;
pub mod claims;
pub mod classified;
pub mod config;
pub mod contract;
pub mod crc32c;
pub mod credentials;
mod cursor;
pub mod field_error;
pub mod instance;
pub mod job;
pub mod listing;
pub mod log_name;
pub mod metadata;
pub mod ndjson;
pub mod object;
pub mod outcome;
pub mod plan;
pub mod registry_event;
pub mod schema;
pub mod secret;
pub mod service;
pub mod session;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd128;
pub mod source;
pub mod stats;
pub mod storage;
mod swar;
pub mod trigger_event;
pub mod upload;
pub mod url;
pub mod usage;

pub use config::{Config, ConfigError};
pub use object::ObjectRef;
pub use outcome::{LoadError, Outcome, OutcomeKind, Retries};
