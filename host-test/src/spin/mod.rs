//! Spin host mode: the harness's imitation of Spin, for deterministic tests. A real Spin (4.0.2)
//! runs the Spin build in the e2e suite; here the same component runs in wasmtime on virtual
//! time and a scripted network, and these types stand in for what Spin does around it.
//!
//! - [`SpinManifest`]: the parts of `spin.toml` (manifest v2) Spin acts on for this component —
//!   application variables, the component's variable templates, `allowed_outbound_hosts`, the
//!   route, `source` and the build command — validated by Spin's own rules, templated
//!   `allowed_outbound_hosts` entries included (checked with the variables' defaults, as
//!   `spin up` checks them).
//! - [`SpinVariables`]: Spin's variable resolution (`fermyon:spin/variables@2.0.0#get`):
//!   name check, component template, then provider value (what `SPIN_VARIABLE_X` or
//!   `spin up --variable` supply), then the application default; the start-up check that every
//!   required variable has a value; and the allow-list of an instance, its templates resolved
//!   with those same values.
//! - [`AllowedHosts`]: Spin's outbound check: scheme, host and port of the request must match an
//!   entry (an entry without a port means the scheme's well-known port). A list that failed to
//!   resolve allows nothing, as in Spin.
//! - [`SpinWorld`]: the host world of the `spin-sdk` 5.2.0 crate's WIT (`spin:up/platform`), and
//!   the check that every import of a component is in it (functions and types too);
//!   [`PlatformImports`]: the interfaces Spin 4.0.2's own host world (`spin:up/platform@4.0.0`)
//!   imports, from a list generated once from Spin's WIT (`host-test/spin-4.0.2-platform-imports.txt`).

mod allowed_hosts;
mod manifest;
mod variables;
mod world;

pub use allowed_hosts::*;
pub use manifest::*;
pub use variables::*;
pub use world::*;

/// The `spin-sdk` release whose WIT defines Spin's host world here (the last WASI 0.2 SDK; the
/// loader pins the same version).
pub const SPIN_SDK_VERSION: &str = "5.2.0";
/// The world a Spin host offers to every component, in that crate's `wit/world.wit`.
pub const SPIN_HOST_WORLD: &str = "spin:up/platform@3.6.0";
/// The interface Spin variables are read through (what `spin_sdk::variables::get` imports).
pub const SPIN_VARIABLES_INTERFACE: &str = "fermyon:spin/variables@2.0.0";
/// The Spin release the e2e suite runs (`../shared/tools/spin`), whose host world the imports are
/// checked against too ([`PlatformImports::spin_4`]).
pub const SPIN_RUNTIME_VERSION: &str = "4.0.2";
/// That release's host world, in its `wit/world.wit`.
pub const SPIN_4_HOST_WORLD: &str = "spin:up/platform@4.0.0";
