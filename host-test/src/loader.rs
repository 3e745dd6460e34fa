//! Typed bindings for the component's own export, `gcr-usage:loader/loader@0.4.0`.
//!
//! Generated from the `loader-guest` world, which holds only that export: the WASI imports are
//! provided by wasmtime-wasi's linker functions, so generating host traits for them (as the
//! `loader-component` world would) would only duplicate wasmtime-wasi's bindings.

wasmtime::component::bindgen!({
    world: "loader-guest",
    path: "../wit",
    exports: { default: async },
});

pub use exports::gcr_usage::loader::loader::{LoadError, ObjectRef, Outcome, OutcomeKind};

/// Shorthand for an [`ObjectRef`].
pub fn object_ref(bucket: &str, name: &str, generation: Option<u64>) -> ObjectRef {
    ObjectRef { bucket: bucket.into(), name: name.into(), generation }
}
