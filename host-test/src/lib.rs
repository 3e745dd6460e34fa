//! Deterministic wasmtime harness for the gcr-usage loader component.
//!
//! A test builds a [`Harness`] (env, start time, seed, a scripted [`FakeUpstream`]), then calls
//! the guest through [`Harness::handle`] (wasi:http) or [`Harness::call_load`] (typed export),
//! on a current-thread tokio runtime with paused time:
//!
//! ```no_run
//! use gcr_usage_host_test::{google, FakeUpstream, Harness, TestRequest};
//!
//! #[tokio::test(start_paused = true)]
//! async fn loads() {
//!     let up = FakeUpstream::new();
//!     up.route(google::metadata_token_rule().reply(google::metadata_token("t")));
//!     let h = Harness::new().env("GCR_USAGE_PROJECT", "p").upstream(up.clone());
//!     let r = h.handle(TestRequest::post("/", "{}")).await.expect("no trap");
//!     assert_eq!(r.status, 200);
//! }
//! ```
//!
//! `Harness::spin()` runs the Spin build as Spin would (see [`spin`]).
//!
//! Guest time is tokio's paused clock ([`clock`]): sleeps and scripted delays take no real time
//! but advance what the guest reads, so retry and polling logic runs exactly and instantly.

pub mod bench_support;
pub mod child_usage;
pub mod clock;
mod engine;
mod error;
mod fake_google;
pub mod google;
mod guest;
mod harness;
mod host;
mod instance;
mod loader;
pub mod loopback;
pub mod native;
mod request;
mod response;
mod rng;
mod runtime;
pub mod spin;
pub mod synth;
pub mod synth_audit;
pub mod under_serve;
mod upstream;

pub use clock::{DEFAULT_WALL_START_UNIX_SECS, VirtualTime};
pub use engine::{Metering, component, component_for, engine, engine_for};
pub use error::{HarnessError, HarnessErrorKind};
pub use fake_google::FakeGoogle;
pub use gcr_usage_fake_google::crc32c_header;
pub use guest::{SPIN_WASM_ENV, WASM_ENV, guest_wasm, probe_wasm, spin_guest_wasm, workspace_root};
pub use harness::{DEFAULT_FUEL, DEFAULT_VIRTUAL_TIMEOUT, Harness};
pub use instance::ReusedInstance;
pub use loader::{LoadError, ObjectRef, Outcome, OutcomeKind, object_ref};
pub use request::TestRequest;
pub use response::{HarnessResponse, LoadResponse, RunInfo};
pub use runtime::block_on;
pub use upstream::{
    DEFAULT_FIRST_BYTE_TIMEOUT, FakeUpstream, PathMatch, RecordedRequest, Reply, Rule, UNMATCHED_STATUS, exact,
    matching, prefix,
};
/// The transport errors a [`Reply::fail`] can produce.
pub use wasmtime_wasi_http::Error as UpstreamError;

/// `1234567` → `1,234,567`: the benchmarks' figures, readable.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
