//! The host side of one guest instance: the store state, and the process-wide linker and
//! pre-instantiated components.
//!
//! Linking and pre-instantiation (type-checking every import) happen once per component per
//! process; each call then only pays for `instantiate_async`, like a production host.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine;
use crate::error::HarnessError;
use crate::loader::LoaderGuestPre;
use crate::upstream::FakeUpstream;

/// The `T` of `Store<T>`: one per call.
pub(crate) struct HostState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub upstream: FakeUpstream,
    pub limits: MemoryLimits,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http, table: &mut self.table, hooks: &mut self.upstream }
    }
}

/// A component linked and pre-instantiated for both of its entry points. Either may be missing
/// (the probe guest has both; a broken build may have neither): the error is kept until used.
pub(crate) struct Prepared {
    pub proxy: Result<ProxyPre<HostState>, String>,
    pub loader: Result<LoaderGuestPre<HostState>, String>,
}

pub(crate) fn prepared(path: &PathBuf) -> Result<Arc<Prepared>, HarnessError> {
    static LINKER: OnceLock<Linker<HostState>> = OnceLock::new();
    static PREPARED: OnceLock<Mutex<HashMap<PathBuf, Arc<Prepared>>>> = OnceLock::new();
    let setup = |e: wasmtime::Error| HarnessError::setup(format!("{e:?}"));
    let linker = LINKER.get_or_init(|| {
        let mut linker = Linker::new(engine::engine());
        // The full wasi:cli set (Rust std imports it) plus wasi:http types and outgoing-handler.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi linker");
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).expect("wasi-http linker");
        linker
    });
    let mut map = PREPARED.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get(path) {
        return Ok(p.clone());
    }
    let component = engine::component(path).map_err(setup)?;
    let pre = linker.instantiate_pre(&component).map_err(setup)?;
    let p = Arc::new(Prepared {
        proxy: ProxyPre::new(pre.clone()).map_err(|e| format!("{e:?}")),
        loader: LoaderGuestPre::new(pre).map_err(|e| format!("{e:?}")),
    });
    map.insert(path.clone(), p.clone());
    Ok(p)
}

/// The store's limits, plus the largest linear memory the guest grew to (what a host must
/// provision per instance; shared so the harness can read it after the store is gone).
pub(crate) struct MemoryLimits {
    pub limits: StoreLimits,
    pub peak: Arc<AtomicUsize>,
}

impl ResourceLimiter for MemoryLimits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak.fetch_max(desired, Ordering::Relaxed);
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}
