//! The host side of one guest instance: the store state, and the process-wide linker and
//! pre-instantiated components.
//!
//! Linking and pre-instantiation (type-checking every import) happen once per component per
//! process; each call then only pays for `instantiate_async`, like a production host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::engine::{self, Metering};
use crate::error::HarnessError;
use crate::loader::LoaderGuestPre;
use crate::spin::{SPIN_VARIABLES_INTERFACE, SpinVariables, SpinWorld, VariableError, component_imports};
use crate::upstream::FakeUpstream;

/// The `T` of `Store<T>`: one per call.
pub(crate) struct HostState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub upstream: FakeUpstream,
    pub limits: MemoryLimits,
    /// Spin host mode: the variables `fermyon:spin/variables#get` answers from.
    pub spin: Option<SpinVariables>,
}

/// Which host the component is linked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HostKind {
    /// wasmtime serve's: WASI 0.2 (full CLI set) and wasi:http.
    Plain,
    /// Spin's: only what `spin:up/platform` offers, Spin variables implemented.
    Spin,
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

/// Prepared components by path, host and metering.
type PreparedCache = Mutex<HashMap<(PathBuf, HostKind, Metering), Arc<Prepared>>>;

pub(crate) fn prepared(path: &Path, kind: HostKind, metering: Metering) -> Result<Arc<Prepared>, HarnessError> {
    // A linker belongs to one engine: a pair (plain, Spin) per metering.
    static LINKERS: [OnceLock<[Linker<HostState>; 2]>; 2] = [OnceLock::new(), OnceLock::new()];
    static PREPARED: OnceLock<PreparedCache> = OnceLock::new();
    let setup = |e: wasmtime::Error| HarnessError::setup(format!("{e:?}"));
    let engine = engine::engine_for(metering);
    let linkers = LINKERS[metering as usize].get_or_init(|| [plain_linker(engine), spin_linker(engine)]);
    let mut map = PREPARED.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let key = (path.to_path_buf(), kind, metering);
    if let Some(p) = map.get(&key) {
        return Ok(p.clone());
    }
    let component = engine::component_for(path, metering).map_err(setup)?;
    let linker = match kind {
        HostKind::Plain => &linkers[0],
        HostKind::Spin => {
            // The Spin linker holds wasmtime-wasi's whole WASI 0.2 set (Spin's host is built on
            // the same crates), so linking alone would accept an import Spin lacks; the
            // component's imports are held against Spin's world first.
            SpinWorld::sdk().check(&component_imports(&component)).map_err(|problems| {
                HarnessError::setup(format!("{} would not link on Spin:\n  {}", path.display(), problems.join("\n  ")))
            })?;
            &linkers[1]
        }
    };
    let pre = linker.instantiate_pre(&component).map_err(setup)?;
    let p = Arc::new(Prepared {
        proxy: ProxyPre::new(pre.clone()).map_err(|e| format!("{e:?}")),
        loader: LoaderGuestPre::new(pre).map_err(|e| format!("{e:?}")),
    });
    map.insert(key, p.clone());
    Ok(p)
}

/// The full wasi:cli set (Rust std imports it) plus wasi:http types and outgoing-handler.
fn plain_linker(engine: &Engine) -> Linker<HostState> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi linker");
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).expect("wasi-http linker");
    linker
}

/// The plain set plus Spin variables: `get(name) -> result<string, error>`.
fn spin_linker(engine: &Engine) -> Linker<HostState> {
    let mut linker = plain_linker(engine);
    linker
        .instance(SPIN_VARIABLES_INTERFACE)
        .and_then(|mut variables| {
            variables.func_wrap(
                "get",
                |store: wasmtime::StoreContextMut<'_, HostState>,
                 (name,): (String,)|
                 -> wasmtime::Result<(Result<String, VariableError>,)> {
                    let answer = match &store.data().spin {
                        Some(vars) => vars.get(&name),
                        None => Err(VariableError::Other("not in Spin host mode".into())),
                    };
                    Ok((answer,))
                },
            )
        })
        .expect("spin variables linker");
    linker
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
