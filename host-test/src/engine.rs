//! One `Engine` per process and compiled components cached in memory and on disk.
//!
//! Cranelift compiling the loader takes seconds even with optimised dependencies; doing it once
//! per test would dominate the suite. Components are compiled once per process, and the compiled
//! artifact is also serialized under `target/host-test-cache/` keyed by the wasm bytes and the
//! engine's compatibility hash (wasmtime version + settings), so a rerun of the tests with an
//! unchanged guest skips Cranelift entirely.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::guest::workspace_root;

/// Whether the guest's work is metered in fuel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Metering {
    /// Fuel on: tests bound work deterministically (a runaway guest traps instead of hanging
    /// the suite) and read how much work a call did. What every harness uses unless told.
    #[default]
    Fuel,
    /// Fuel off, as `wasmtime serve` and Spin run: only for benchmarks, whose wall time would
    /// otherwise include the fuel check Cranelift puts in every block (~40% more time in the
    /// NDJSON writer's many small blocks).
    Off,
}

/// The engine every metered harness shares ([`Metering::Fuel`]).
pub fn engine() -> &'static Engine {
    engine_for(Metering::Fuel)
}

/// The engine of harnesses with `metering`: one per kind and process.
pub fn engine_for(metering: Metering) -> &'static Engine {
    static ENGINES: [OnceLock<Engine>; 2] = [OnceLock::new(), OnceLock::new()];
    ENGINES[metering as usize].get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(metering == Metering::Fuel);
        // `GCR_USAGE_PERFMAP=1`: wasmtime writes /tmp/perf-PID.map, so `perf record` of a
        // benchmark names the component's own functions (build it unstripped to see them:
        // bench/README.md "Profiling the component"). Off by default: it costs nothing then.
        if std::env::var_os("GCR_USAGE_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        Engine::new(&config).expect("wasmtime engine configuration")
    })
}

/// The compiled component at `path` for the metered engine, compiled at most once per process.
pub fn component(path: &Path) -> wasmtime::Result<Component> {
    component_for(path, Metering::Fuel)
}

/// The compiled component at `path` for the engine of `metering`, compiled at most once per
/// process and kind (the two engines' code differs: the disk cache keys it by engine too).
pub fn component_for(path: &Path, metering: Metering) -> wasmtime::Result<Component> {
    static CACHE: OnceLock<Mutex<HashMap<(PathBuf, Metering), Component>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    // Holding the lock while compiling makes concurrent tests wait for one compilation instead of
    // compiling the same component in parallel on our two cores.
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    let key = (path.to_path_buf(), metering);
    if let Some(c) = cache.get(&key) {
        return Ok(c.clone());
    }
    let bytes = std::fs::read(path).map_err(|e| wasmtime::format_err!("reading {}: {e}", path.display()))?;
    let component = load_or_compile(engine_for(metering), &bytes)?;
    cache.insert(key, component.clone());
    Ok(component)
}

fn load_or_compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Component> {
    let cached = cache_path(engine, wasm);
    if cached.is_file() {
        // SAFETY: the file is one this function serialized with an engine of the same
        // compatibility hash (part of its name). A corrupt or foreign file fails to deserialize
        // (wasmtime checks the header and version) and we fall back to compiling.
        if let Ok(c) = unsafe { Component::deserialize_file(engine, &cached) } {
            return Ok(c);
        }
    }
    let component = Component::new(engine, wasm)?;
    // Best effort: a read-only target dir only costs a recompilation next time.
    if let Ok(bytes) = component.serialize()
        && let Some(dir) = cached.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        // Write-then-rename so a concurrent test process never reads half a file.
        let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &cached);
        }
    }
    Ok(component)
}

fn cache_path(engine: &Engine, wasm: &[u8]) -> PathBuf {
    let wasm_hash = Sha256::digest(wasm);
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let key: String = wasm_hash[..16].iter().map(|b| format!("{b:02x}")).collect();
    workspace_root().join("target/host-test-cache").join(format!("{key}-{:016x}.cwasm", h.finish()))
}
