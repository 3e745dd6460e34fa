//! The gcr-usage WASI 0.2 component: a thin adapter between wasi:http / wasi:clocks /
//! wasi:random and the pure core in `gcr-usage-core`, which makes every decision.
//!
//! Two exports share one code path: `wasi:http/incoming-handler` (events over HTTP, used by
//! Spin, `wasmtime serve` and Cloud Run) and `gcr-usage:loader/loader` (typed, for other Wasm
//! hosts and compositions).
//!
//! Two flavours share all of it: the portable build reads its configuration from the
//! environment only and imports nothing but WASI 0.2; `--features spin` reads Spin variables
//! first (and so imports `fermyon:spin/variables@2.0.0`, which only Spin provides). Only
//! [`config`] differs between them.

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

thread_local! {
    /// What this instance keeps between requests: caches only (Google's OIDC keys, the access
    /// token, the project id), bounded and keyed by configuration — see
    /// `gcr_usage_core::instance`. Hosts that reuse instances (`deploy/serve.sh`) fetch once an
    /// hour what would otherwise be fetched per event.
    static INSTANCE: std::cell::RefCell<gcr_usage_core::instance::InstanceState> = Default::default();
}

/// Runs `f` with the instance's state. Calls into a component instance never overlap (the
/// component model forbids re-entering a WASI 0.2 export), so the state is always free; if it
/// ever were not, or a past call had left it mid-update, a fresh state is used instead of
/// trapping: caches are only ever an optimisation.
fn with_instance_state<T>(f: impl FnOnce(&mut gcr_usage_core::instance::InstanceState) -> T) -> T {
    INSTANCE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut state) => f(&mut state),
        Err(_) => f(&mut Default::default()),
    })
}

/// Configuration is read per call: a fixed environment takes effect without a rebuild, errors
/// are answered on each request, and the Spin flavour sees a variable's current value.
#[cfg(not(feature = "spin"))]
fn config() -> Result<gcr_usage_core::Config, gcr_usage_core::ConfigError> {
    gcr_usage_core::Config::from_env(|name| std::env::var(name).ok())
}

/// The Spin flavour: each variable the core asks for is first looked up as the Spin variable
/// of the same name in lower case (`GCR_USAGE_BUCKETS` → `gcr_usage_buckets`; Spin only allows
/// lower-case names), then in the environment. The mapping is generic on purpose: a variable
/// the core learns later needs a line in `spin.toml`, not here.
#[cfg(feature = "spin")]
fn config() -> Result<gcr_usage_core::Config, gcr_usage_core::ConfigError> {
    spin::config()
}

#[cfg(feature = "spin")]
mod spin {
    use std::cell::RefCell;

    use gcr_usage_core::{Config, ConfigError};
    use spin_sdk::variables::{self, Error};

    pub fn config() -> Result<Config, ConfigError> {
        // The first variable the Spin host could not answer; `from_env` only takes a lookup,
        // so the failure is kept aside and wins over whatever `from_env` made of the gap.
        let failed: RefCell<Option<ConfigError>> = RefCell::new(None);
        let config = Config::from_env(|name| match lookup(name) {
            Ok(value) => value,
            Err(e) => {
                failed.borrow_mut().get_or_insert(e);
                None
            }
        });
        match failed.into_inner() {
            Some(e) => Err(e),
            None => config,
        }
    }

    /// The Spin variable if it has a value, else the environment (the core treats empty as
    /// unset, so an empty Spin default — how `spin.toml` declares "no value" — falls through).
    fn lookup(name: &str) -> Result<Option<String>, ConfigError> {
        let spin_name = name.to_ascii_lowercase();
        match variables::get(&spin_name) {
            Ok(value) if !value.trim().is_empty() => Ok(Some(value)),
            // Not declared for this component (an older spin.toml, or a host that maps only
            // some variables), declared empty, or a name Spin cannot spell: the environment
            // is the portable fallback, exactly what the plain build reads.
            Ok(_) | Err(Error::Undefined(_)) | Err(Error::InvalidName(_)) => Ok(std::env::var(name).ok()),
            // The provider (e.g. Vault, Azure Key Vault) failed: the value exists but is out
            // of reach. Using the environment instead could silently run with other
            // credentials, so this is a configuration error (500, redelivered later). Spin's
            // message names the provider's problem, never the value.
            Err(Error::Provider(why)) | Err(Error::Other(why)) => {
                Err(ConfigError::new(spin_name, format!("the Spin variable could not be read: {why}")))
            }
        }
    }
}

/// One JSON line per event on stdout: the format Cloud Logging (and most log shippers) parse.
fn log(line: &str) {
    println!("{line}");
}
