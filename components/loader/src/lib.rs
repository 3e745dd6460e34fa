//! The gcr-usage WASI 0.2 component: a thin adapter between wasi:http / wasi:clocks /
//! wasi:random and the pure core in `gcr-usage-core`, which makes every decision.
//!
//! Two exports share one code path: `wasi:http/incoming-handler` (events over HTTP, used by
//! Spin, `wasmtime serve` and Cloud Run) and `gcr-usage:loader/loader` (typed, for other Wasm
//! hosts and compositions).

mod bindings {
    wit_bindgen::generate!({ world: "loader-guest", path: "../../wit" });
}
mod http_in;
mod http_out;
mod typed;
mod wasi_io;

/// The exported component. Each export is implemented in its own module.
pub struct Component;

wasip2::http::proxy::export!(Component);
bindings::export!(Component with_types_in bindings);

/// Configuration is read per call (hosts create a fresh instance per request anyway), so a
/// fixed environment takes effect without a rebuild and errors are answered on each request.
fn config() -> Result<gcr_usage_core::Config, gcr_usage_core::ConfigError> {
    gcr_usage_core::Config::from_env(|name| std::env::var(name).ok())
}

/// One JSON line per event on stdout: the format Cloud Logging (and most log shippers) parse.
fn log(line: &str) {
    println!("{line}");
}
