//! `Harness`: runs the guest once per call, the way a real host does, on virtual time.
//!
//! Each call gets a fresh `Store` and a fresh instance (what `wasmtime serve` does by default
//! for a WASI 0.2 component, and Spin always) from a pre-instantiated component shared by the
//! whole process; [`Harness::reused_instance`] keeps one instance for many requests, as
//! `wasmtime serve --max-instance-reuse-count N` does (and `deploy/serve.sh` deploys). Everything the guest
//! can observe is fixed by the test: env (nothing inherited), clocks (tokio's paused clock, see
//! `clock.rs`), random bytes (seeded), stdin (closed), no filesystem, no sockets, and HTTP only
//! through the `FakeUpstream`.
//!
//! [`Harness::spin`] switches to Spin host mode: the Spin build, linked only if its imports are
//! in Spin's host world, Spin variables resolved from `spin.toml` and the values the test
//! provides (a required one without a value stops the call before it starts, as it stops
//! `spin up`), and outbound requests held to `spin.toml`'s `allowed_outbound_hosts`, resolved
//! with those same values for each instance.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::BodyExt;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{Deterministic, WasiCtx};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use crate::clock::{DEFAULT_WALL_START_UNIX_SECS, VirtualMonotonicClock, VirtualTime, VirtualWallClock};
use crate::engine::{self, Metering};
use crate::error::{HarnessError, HarnessErrorKind};
use crate::guest;
use crate::host::{HostKind, HostState, MemoryLimits, Prepared, prepared};
use crate::instance::ReusedInstance;
use crate::loader::ObjectRef;
use crate::request::TestRequest;
use crate::response::{HarnessResponse, LoadResponse, RunInfo};
use crate::runtime::assert_paused_current_thread;
use crate::spin::{SpinManifest, SpinVariables};
use crate::upstream::{FakeUpstream, describe_unmatched};

/// Default fuel per call: far above any legitimate run, low enough to stop a runaway loop in
/// seconds of real time.
pub const DEFAULT_FUEL: u64 = 20_000_000_000;
/// Default bound on virtual time per call (a guest waiting on nothing would otherwise park the
/// test forever).
pub const DEFAULT_VIRTUAL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_MEMORY_LIMIT: usize = 256 << 20;
const PIPE_CAPACITY: usize = 16 << 20;

/// A configured guest. Cheap to build; compiles nothing until the first call.
///
/// Calls on one harness are meant to be sequential (`.await` each): `RunInfo::outbound` is the
/// slice of the upstream log a call added, which concurrent calls would interleave.
pub struct Harness {
    wasm: Option<PathBuf>,
    env: Vec<(String, String)>,
    time: VirtualTime,
    seed: u64,
    /// Calls started so far: each call's random streams are drawn from (seed, call), so two
    /// deliveries differ the way two requests to a real host do, yet every run repeats.
    calls: AtomicU64,
    /// Fuel per call; `None`: unmetered ([`Harness::unmetered`]).
    fuel: Option<u64>,
    memory_limit: usize,
    timeout: Duration,
    upstream: FakeUpstream,
    check_unmatched_on_drop: bool,
    spin: Option<SpinHost>,
}

/// Spin host mode's settings: the variables, which `get` answers from and the allow-list of
/// each instance is resolved with.
#[derive(Clone, Debug)]
struct SpinHost {
    variables: SpinVariables,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// The release loader ([`guest::guest_wasm`]), empty env, wall clock at
    /// 2026-01-01T00:00:00Z, seed 0, and an upstream with no rules.
    pub fn new() -> Self {
        let upstream = FakeUpstream::new();
        let time = VirtualTime::new(Duration::from_secs(DEFAULT_WALL_START_UNIX_SECS));
        upstream.attach_time(time.clone());
        Harness {
            wasm: None,
            env: Vec::new(),
            time,
            seed: 0,
            calls: AtomicU64::new(0),
            fuel: Some(DEFAULT_FUEL),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            timeout: DEFAULT_VIRTUAL_TIMEOUT,
            upstream,
            check_unmatched_on_drop: true,
            spin: None,
        }
    }

    /// Spin host mode with the repository's `spin.toml`: the Spin build
    /// ([`guest::spin_guest_wasm`]), linked against only what Spin's host world offers, Spin
    /// variables from the manifest (set values with [`Harness::spin_variable`]), outbound
    /// requests held to its `allowed_outbound_hosts` (see [`FakeUpstream::denied`]). Like
    /// `spin up`, a call fails before it starts ([`HarnessErrorKind::Setup`], naming it) while a
    /// required variable has no value.
    pub fn spin() -> Self {
        Self::spin_with(SpinManifest::repo())
    }

    /// Spin host mode with another manifest.
    pub fn spin_with(manifest: &SpinManifest) -> Self {
        let mut h = Self::new();
        h.spin = Some(SpinHost { variables: SpinVariables::new(manifest) });
        h
    }

    /// A provider value for a Spin application variable, as `SPIN_VARIABLE_<NAME>=value` or
    /// `spin up --variable name=value` would supply it. Spin host mode only.
    pub fn spin_variable(mut self, name: &str, value: &str) -> Self {
        self.spin_mut().variables.provide(name, value);
        self
    }

    /// The variable provider fails for this application variable (e.g. Vault unreachable).
    pub fn spin_variable_failure(mut self, name: &str, message: &str) -> Self {
        self.spin_mut().variables.fail(name, message);
        self
    }

    /// `fermyon:spin/variables#get(name)` answers this error (what a host fault looks like).
    pub fn spin_variable_error(mut self, name: &str, error: crate::spin::VariableError) -> Self {
        self.spin_mut().variables.error(name, error);
        self
    }

    /// Removes a component variable from the manifest, as an older `spin.toml` would lack it.
    pub fn spin_undeclare(mut self, name: &str) -> Self {
        self.spin_mut().variables.undeclare(name);
        self
    }

    fn spin_mut(&mut self) -> &mut SpinHost {
        self.spin.as_mut().expect("only in Spin host mode (Harness::spin)")
    }

    /// Run another component (e.g. [`guest::probe_wasm`]).
    pub fn component(mut self, wasm: impl Into<PathBuf>) -> Self {
        self.wasm = Some(wasm.into());
        self
    }

    /// Adds an environment variable. The guest sees exactly the variables set this way.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
        self
    }

    /// Wall-clock time the guest sees when the harness first runs (then it advances with
    /// virtual time).
    pub fn start_time(self, at: SystemTime) -> Self {
        let since_epoch = at.duration_since(UNIX_EPOCH).expect("start time before 1970");
        self.with_time(VirtualTime::new(since_epoch))
    }

    pub fn start_time_unix(self, secs: u64) -> Self {
        self.with_time(VirtualTime::new(Duration::from_secs(secs)))
    }

    fn with_time(mut self, time: VirtualTime) -> Self {
        self.upstream.attach_time(time.clone());
        self.time = time;
        self
    }

    /// Seed of the guest's secure and insecure random streams (the first call's streams are the
    /// seed's own; later calls on the same harness get fresh, equally reproducible ones).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fuel per call; running out traps the guest.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// No fuel metering, as `wasmtime serve` runs the component: for benchmarks that compare
    /// wall time with it. Nothing then bounds the guest's work but the virtual timeout, and
    /// `RunInfo::fuel_consumed` is 0.
    pub fn unmetered(mut self) -> Self {
        self.fuel = None;
        self
    }

    fn metering(&self) -> Metering {
        match self.fuel {
            Some(_) => Metering::Fuel,
            None => Metering::Off,
        }
    }

    /// Linear memory cap per instance (bytes).
    pub fn memory_limit(mut self, bytes: usize) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Virtual-time bound of a call; past it the call fails with [`HarnessErrorKind::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Use this fake upstream (a clone shares its script and log with the test).
    pub fn upstream(mut self, upstream: FakeUpstream) -> Self {
        upstream.attach_time(self.time.clone());
        self.upstream = upstream;
        self
    }

    /// Do not fail the test at drop time for unmatched outbound requests.
    pub fn allow_unmatched(mut self) -> Self {
        self.check_unmatched_on_drop = false;
        self
    }

    pub fn fake_upstream(&self) -> &FakeUpstream {
        &self.upstream
    }

    /// Virtual time since this harness first ran a guest.
    pub fn elapsed(&self) -> Duration {
        self.time.elapsed()
    }

    /// Sends one request to `wasi:http/incoming-handler` on a fresh instance and collects the
    /// whole response. `Err` when the guest traps, never answers, answers with an error code,
    /// or exceeds the virtual timeout.
    pub async fn handle(&self, request: TestRequest) -> Result<HarnessResponse, HarnessError> {
        let mut live = self.instantiate().await?;
        self.serve(&mut live, request).await
    }

    /// An instance kept for many requests, as `wasmtime serve --max-instance-reuse-count` keeps
    /// one (see [`ReusedInstance`]).
    pub fn reused_instance(&self, max_reuse: usize) -> ReusedInstance<'_> {
        ReusedInstance::new(self, max_reuse)
    }

    /// A fresh store and instance of the component's `wasi:http/incoming-handler`.
    pub(crate) async fn instantiate(&self) -> Result<Live, HarnessError> {
        assert_paused_current_thread();
        let prepared = self.prepared()?;
        let pre = prepared
            .proxy
            .as_ref()
            .map_err(|e| HarnessError::setup(format!("no wasi:http/incoming-handler export: {e}")))?;
        let mut call = self.start_call()?;
        let instantiated = pre.instantiate_async(&mut call.store).await;
        let proxy = instantiated.map_err(|e| call.fail(HarnessErrorKind::Trap, e))?;
        let Call { store, pipes, peak, .. } = call;
        Ok(Live { store, proxy, pipes, peak, seen: (0, 0), served: 0, broken: false })
    }

    /// One request on `live`. A call that traps, never answers or times out marks the instance
    /// broken: a host discards such an instance, and so does [`ReusedInstance`].
    pub(crate) async fn serve(&self, live: &mut Live, request: TestRequest) -> Result<HarnessResponse, HarnessError> {
        let start = (self.time.elapsed(), self.upstream.requests().len());
        let result = self.serve_inner(live, request, start).await;
        live.served += 1;
        if result.is_err() {
            live.broken = true;
        }
        result
    }

    async fn serve_inner(
        &self,
        live: &mut Live,
        request: TestRequest,
        start: (Duration, usize),
    ) -> Result<HarnessResponse, HarnessError> {
        // The first call's fuel counts instantiation too (the fuel was set before it); later
        // calls on a reused instance start from a full tank of their own.
        if live.served > 0 {
            set_fuel(&mut live.store, self.fuel)?;
        }
        let incoming = live
            .store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request.into_hyper()?)
            .map_err(|e| HarnessError::setup(format!("{e:?}")))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let out = live
            .store
            .data_mut()
            .http()
            .new_response_outparam(tx)
            .map_err(|e| HarnessError::setup(format!("{e:?}")))?;

        let fuel = self.fuel;
        let (store, proxy) = (&mut live.store, &live.proxy);
        let (returned_tx, returned_rx) = tokio::sync::oneshot::channel::<()>();
        // The guest and the reader of its response run concurrently, as in a real server: the
        // guest may set the response first and stream the body afterwards, and would block on a
        // full body pipe if nobody read it.
        let guest = async {
            let result = proxy.wasi_http_incoming_handler().call_handle(&mut *store, incoming, out).await;
            let consumed = fuel_consumed(store, fuel);
            let _ = returned_tx.send(());
            (result, consumed)
        };
        let reader = async {
            let answered = async {
                match rx.await {
                    Ok(Ok(response)) => {
                        let (parts, body) = response.into_parts();
                        let body = body.collect().await.map(|c| c.to_bytes());
                        Ok(Some((parts, body)))
                    }
                    Ok(Err(code)) => Err(code),
                    Err(_) => Ok(None),
                }
            };
            // A Rust guest drops an unset response-outparam on return, which ends `rx`; a guest
            // that leaked it would leave the reader waiting. Once the guest has returned,
            // nothing more can arrive: a moment of virtual time settles it.
            let guest_returned = async {
                let _ = returned_rx.await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            };
            tokio::select! {
                answer = answered => answer,
                () = guest_returned => Ok(None),
            }
        };
        let joined = tokio::time::timeout(self.timeout, async { tokio::join!(guest, reader) }).await;
        let mut run = self.run_info(live, start);
        let ((guest_result, consumed), response) = match joined {
            Ok(j) => j,
            Err(_) => {
                return Err(self.error(
                    HarnessErrorKind::Timeout,
                    format!("no answer within {:?} of virtual time", self.timeout),
                    run,
                ));
            }
        };
        run.fuel_consumed = consumed;
        if let Err(e) = guest_result {
            return Err(self.error(HarnessErrorKind::Trap, format!("{e:?}"), run));
        }
        match response {
            Ok(Some((parts, Ok(body)))) => {
                Ok(HarnessResponse { status: parts.status.as_u16(), headers: parts.headers, body, run })
            }
            Ok(Some((_, Err(e)))) => Err(self.error(HarnessErrorKind::BrokenBody, format!("{e}"), run)),
            Ok(None) => Err(self.error(
                HarnessErrorKind::NoResponse,
                "the guest returned without setting a response".into(),
                run,
            )),
            Err(code) => Err(self.error(HarnessErrorKind::ErrorCode, format!("{code:?}"), run)),
        }
    }

    /// Calls the typed export `gcr-usage:loader/loader#load` on a fresh instance.
    pub async fn call_load(&self, object: ObjectRef) -> Result<LoadResponse, HarnessError> {
        assert_paused_current_thread();
        let prepared = self.prepared()?;
        let pre = prepared
            .loader
            .as_ref()
            .map_err(|e| HarnessError::setup(format!("no gcr-usage:loader/loader export: {e}")))?;
        let Call { mut store, pipes, start, peak } = self.start_call()?;
        let fuel = self.fuel;
        let call = async {
            let loader = pre.instantiate_async(&mut store).await?;
            let result = loader.gcr_usage_loader_loader().call_load(&mut store, &object).await;
            result.map(|r| (r, fuel_consumed(&store, fuel)))
        };
        let outcome = tokio::time::timeout(self.timeout, call).await;
        let mut run = self.call_run_info(&pipes, start, &peak);
        match outcome {
            Ok(Ok((result, consumed))) => {
                run.fuel_consumed = consumed;
                Ok(LoadResponse { result, run })
            }
            Ok(Err(e)) => {
                run.fuel_consumed = fuel_consumed(&store, fuel);
                Err(self.error(HarnessErrorKind::Trap, format!("{e:?}"), run))
            }
            Err(_) => {
                run.fuel_consumed = fuel_consumed(&store, fuel);
                Err(self.error(
                    HarnessErrorKind::Timeout,
                    format!("no answer within {:?} of virtual time", self.timeout),
                    run,
                ))
            }
        }
    }

    fn prepared(&self) -> Result<Arc<Prepared>, HarnessError> {
        match &self.spin {
            None => prepared(&self.wasm.clone().unwrap_or_else(guest::guest_wasm), HostKind::Plain, self.metering()),
            Some(_) => {
                prepared(&self.wasm.clone().unwrap_or_else(guest::spin_guest_wasm), HostKind::Spin, self.metering())
            }
        }
    }

    fn start_call(&self) -> Result<Call, HarnessError> {
        if let Some(spin) = &self.spin {
            // `spin up` checks this before it serves anything: no instance, no answer.
            spin.variables
                .check_required()
                .map_err(|e| HarnessError::setup(format!("spin up would not start: {e}")))?;
        }
        let stdout = MemoryOutputPipe::new(PIPE_CAPACITY);
        let stderr = MemoryOutputPipe::new(PIPE_CAPACITY);
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let mut wasi = WasiCtx::builder();
        wasi.envs(&self.env)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(VirtualWallClock(self.time.clone()))
            .monotonic_clock(VirtualMonotonicClock(self.time.clone()))
            .secure_random(Deterministic::new(seeded_bytes(self.seed, 1 + (call << 8))))
            .insecure_random(Deterministic::new(seeded_bytes(self.seed, 2 + (call << 8))))
            .insecure_random_seed(u128::from(self.seed ^ call.rotate_left(32)) << 64 | 0x6763_722d_7573_6167)
            // Belt and braces: no preopens, no sockets, no DNS; HTTP goes to the fake only.
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let peak = Arc::new(AtomicUsize::new(0));
        // Set per call: a test may hand the harness its upstream after choosing the mode. Spin
        // resolves the list once per instance (with the variables' current values; a value
        // that does not resolve to a valid list denies every request), and an instance serves
        // one request; a reused instance here keeps the list it started with.
        self.upstream.set_policy(self.spin.as_ref().map(|s| s.variables.outbound_policy()));
        let state = HostState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            upstream: self.upstream.clone(),
            spin: self.spin.as_ref().map(|s| s.variables.clone()),
            limits: MemoryLimits {
                limits: StoreLimitsBuilder::new().memory_size(self.memory_limit).build(),
                peak: peak.clone(),
            },
        };
        let mut store = Store::new(engine::engine_for(self.metering()), state);
        store.limiter(|s| &mut s.limits);
        set_fuel(&mut store, self.fuel)?;
        Ok(Call { store, pipes: (stdout, stderr), start: (self.time.elapsed(), self.upstream.requests().len()), peak })
    }

    /// What the call left behind (the output since the instance's last call); `fuel_consumed`
    /// is filled in by the caller when known.
    fn run_info(&self, live: &mut Live, start: (Duration, usize)) -> RunInfo {
        let (stdout, stderr) = (live.pipes.0.contents(), live.pipes.1.contents());
        let seen = std::mem::replace(&mut live.seen, (stdout.len(), stderr.len()));
        RunInfo {
            peak_memory: live.peak.load(Ordering::Relaxed),
            stdout: stdout[seen.0..].to_vec(),
            stderr: stderr[seen.1..].to_vec(),
            fuel_consumed: 0,
            elapsed: self.time.elapsed() - start.0,
            outbound: self.upstream.requests().split_off(start.1),
        }
    }

    /// The same for a typed call on a store of its own.
    fn call_run_info(
        &self,
        pipes: &(MemoryOutputPipe, MemoryOutputPipe),
        start: (Duration, usize),
        peak: &AtomicUsize,
    ) -> RunInfo {
        RunInfo {
            peak_memory: peak.load(Ordering::Relaxed),
            stdout: pipes.0.contents().to_vec(),
            stderr: pipes.1.contents().to_vec(),
            fuel_consumed: 0,
            elapsed: self.time.elapsed() - start.0,
            outbound: self.upstream.requests().split_off(start.1),
        }
    }

    fn error(&self, kind: HarnessErrorKind, message: String, run: RunInfo) -> HarnessError {
        HarnessError { kind, message, run: Box::new(run) }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Unmatched outbound requests fail the test even if it never looked at the upstream,
        // unless it took them (`take_unmatched`) or opted out. Not while already panicking:
        // a second panic would abort and hide the first.
        if self.check_unmatched_on_drop && !std::thread::panicking() {
            let unmatched = self.upstream.unmatched();
            if !unmatched.is_empty() {
                panic!("{}", describe_unmatched(&unmatched));
            }
        }
    }
}

/// A live instance: its store, its exports, and how much of its output earlier calls reported.
pub(crate) struct Live {
    pub(crate) store: Store<HostState>,
    proxy: wasmtime_wasi_http::p2::bindings::Proxy,
    pipes: (MemoryOutputPipe, MemoryOutputPipe),
    peak: Arc<AtomicUsize>,
    seen: (usize, usize),
    /// Requests served so far.
    pub(crate) served: usize,
    /// A call trapped, never answered or timed out: not to be used again.
    pub(crate) broken: bool,
}

/// The per-call store and what is needed to report on it afterwards.
struct Call {
    store: Store<HostState>,
    pipes: (MemoryOutputPipe, MemoryOutputPipe),
    /// Virtual time and upstream log length at the start of the call.
    start: (Duration, usize),
    peak: Arc<AtomicUsize>,
}

impl Call {
    fn fail(&self, kind: HarnessErrorKind, e: wasmtime::Error) -> HarnessError {
        HarnessError {
            kind,
            message: format!("{e:?}"),
            run: Box::new(RunInfo {
                stdout: self.pipes.0.contents().to_vec(),
                stderr: self.pipes.1.contents().to_vec(),
                ..Default::default()
            }),
        }
    }
}

/// 64 KiB of SplitMix64 output for `(seed, stream)`; `Deterministic` cycles through it, which is
/// far more than one guest call draws (ids, jitter, hash seeds).
/// Fills the tank of a metered store (`Some`); an unmetered one has none to fill.
fn set_fuel(store: &mut Store<HostState>, fuel: Option<u64>) -> Result<(), HarnessError> {
    match fuel {
        Some(fuel) => store.set_fuel(fuel).map_err(|e| HarnessError::setup(format!("{e:?}"))),
        None => Ok(()),
    }
}

/// The fuel a call burnt since its tank was filled with `fuel`: 0 when unmetered.
fn fuel_consumed(store: &Store<HostState>, fuel: Option<u64>) -> u64 {
    fuel.map_or(0, |fuel| fuel - store.get_fuel().unwrap_or(0))
}

fn seeded_bytes(seed: u64, stream: u64) -> Vec<u8> {
    let mut state = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(64 << 10);
    while out.len() < 64 << 10 {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}
