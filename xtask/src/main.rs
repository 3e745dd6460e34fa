//! `cargo xtask <command>`: the only entry points a newcomer or CI needs.
//!
//! - `demo`  builds the component, installs what is missing (wasm target, wasmtime-cli,
//!   the emulators' Python venv), starts fake-gcs-server + local-bigquery + `wasmtime serve`,
//!   loads the fixture logs through the component and prints per-image statistics;
//!   `demo --spin` does the same with the Spin flavour under `spin up` of spin.toml.
//! - `test`  everything CI runs: formatting, lints, native and harness tests, and the
//!   end-to-end and peer tests against the emulators under a real `wasmtime serve`, and the
//!   Spin flavour under a real `spin up` beside it.
//! - `bench` the harness benchmark (time and fuel per event) and the component's size, the
//!   classification benchmarks (a synthetic usage log, `classify_bench`; a synthetic audit-log
//!   sink object, `audit_bench`: native, in wasmtime and in Python), then the
//!   cold-start benchmark (`bench/cold_start.py`: wasmtime serve with .wasm / .cwasm, the
//!   pre-instantiated harness, the seed's Python function and the Spin flavour under `spin up`
//!   with and without Spin's compile cache, request -> first outbound call),
//!   then the load benchmark (`bench/load.py`: serve.sh + .cwasm under 1, 16, 32, 64 events in flight).
//! - `build` both flavours of the component: the portable one (target/wasm32-wasip2/component)
//!   and the Spin one (`--features spin`, target/spin/wasm32-wasip2/component, as in spin.toml).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const WASMTIME_VERSION: &str = "48.0.8";
const WASM_TARGET: &str = "wasm32-wasip2";

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("bench") => bench(),
        Some("build") => build_component().and_then(|_| build_spin_component()).map(|_| ()),
        _ => {
            eprintln!(
                "usage: cargo xtask <demo|test|bench|build>\n  demo --spin    the demo under spin up\n  test --no-e2e  skips the emulator tests"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

/// Where cargo puts build output: `CARGO_TARGET_DIR` if set, else `target/`.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).map_or_else(|| root().join("target"), |d| root().join(d))
}

fn step(what: &str) {
    eprintln!("\n==> {what}");
}

fn run(cmd: &mut Command) -> Result {
    let shown = format!("{cmd:?}");
    let status = cmd.current_dir(root()).status().map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{shown} failed ({status})")) }
}

fn cargo() -> Command {
    Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// rustup's auto-install is off on these machines, so the target is added explicitly.
fn ensure_wasm_target() -> Result {
    let installed = Command::new("rustup").args(["target", "list", "--installed"]).output();
    if let Ok(out) = &installed
        && String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == WASM_TARGET)
    {
        return Ok(());
    }
    step(&format!("rustup target add {WASM_TARGET}"));
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// The component's cargo profile (Cargo.toml `[profile.component]`: size-optimised; native
/// builds use `release`, optimised for speed). spin.toml and deploy/Dockerfile name it too.
const COMPONENT_PROFILE: &str = "component";

/// `cargo build` of the component: both flavours start from these words.
const COMPONENT_BUILD: [&str; 7] =
    ["build", "--package", "gcr-usage-loader", "--target", WASM_TARGET, "--profile", COMPONENT_PROFILE];

/// Builds the component and returns its path.
fn build_component() -> Result<PathBuf> {
    ensure_wasm_target()?;
    step("building the component (--profile component, wasm32-wasip2)");
    run(cargo().args(COMPONENT_BUILD))?;
    let wasm = target_dir().join(WASM_TARGET).join(COMPONENT_PROFILE).join("gcr_usage_loader.wasm");
    report_size(&wasm)?;
    Ok(wasm)
}

/// Where the Spin flavour is built: its own target directory, so the two `.wasm` files never
/// overwrite each other. The same command and path as `spin.toml`'s `[component.gcr-usage.build]`
/// and `source` (host-test/tests/loader/spin.rs checks the manifest's side).
const SPIN_TARGET_DIR: &str = "target/spin";

/// Builds the Spin flavour (`--features spin`) and returns its path.
fn build_spin_component() -> Result<PathBuf> {
    ensure_wasm_target()?;
    step("building the Spin flavour (--profile component, wasm32-wasip2, --features spin)");
    run(cargo().args(COMPONENT_BUILD).args(["--features", "spin", "--target-dir", SPIN_TARGET_DIR]))?;
    let wasm = root().join(SPIN_TARGET_DIR).join(WASM_TARGET).join(COMPONENT_PROFILE).join("gcr_usage_loader.wasm");
    report_size(&wasm)?;
    Ok(wasm)
}

fn report_size(wasm: &Path) -> Result {
    let size = std::fs::metadata(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?.len();
    eprintln!("component: {} ({} KiB)", wasm.display(), size / 1024);
    Ok(())
}

/// `wasmtime` 48.0.8 (the last release rustc 1.95 builds): the one on PATH if it is that
/// version, else installed with cargo (about 13 minutes the first time, then cached).
fn ensure_wasmtime() -> Result<PathBuf> {
    let version_of = |bin: &Path| {
        Command::new(bin).arg("--version").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).to_string())
    };
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let installed = cargo_home.join("bin").join("wasmtime");
    // Absolute paths only: the Python side is handed this path and checks that it exists.
    let on_path = env::var_os("PATH").into_iter().flat_map(|p| env::split_paths(&p).collect::<Vec<_>>());
    let candidates = on_path.map(|dir| dir.join("wasmtime")).filter(|p| p.is_file()).chain([installed.clone()]);
    for candidate in candidates {
        if version_of(&candidate).is_some_and(|v| v.contains(WASMTIME_VERSION)) {
            return Ok(candidate);
        }
    }
    step(&format!("installing wasmtime-cli {WASMTIME_VERSION} (first run only, ~13 minutes)"));
    run(cargo().args(["install", "wasmtime-cli", "--version", WASMTIME_VERSION, "--locked"]))?;
    Ok(installed)
}

/// local-bigquery needs Python 3.13 or newer.
fn find_python() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = ["python3.14", "python3.13"].iter().map(PathBuf::from).collect();
    if let Ok(out) = Command::new("pyenv").arg("root").output() {
        let pyenv = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Ok(entries) = std::fs::read_dir(pyenv.join("versions")) {
            let mut versions: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            versions.sort();
            versions.reverse();
            candidates.extend(versions.into_iter().map(|v| v.join("bin").join("python3")));
        }
    }
    for candidate in candidates {
        let ok = Command::new(&candidate)
            .args(["-c", "import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(candidate);
        }
    }
    Err("Python 3.13 or newer is required for the local BigQuery emulator (none found on PATH or under pyenv)".into())
}

/// The emulators' venv (local-bigquery, fake-gcs-server, google-cloud-bigquery, pytest).
fn ensure_venv() -> Result<PathBuf> {
    let venv = root().join("target").join("e2e-venv");
    step("preparing the emulators' Python environment");
    run(Command::new(find_python()?).arg("e2e/bootstrap.py").arg(&venv))?;
    Ok(venv.join("bin").join("python"))
}

/// `cargo xtask demo [--spin]`: the emulators, the fixture logs, and the loader under wasmtime
/// serve — or, with `--spin`, the Spin flavour under `spin up` (Spin found as e2e/stack.py says).
fn demo(args: &[String]) -> Result {
    let spin = args.iter().any(|a| a == "--spin");
    let wasm = build_component()?;
    if spin {
        build_spin_component()?;
    }
    let wasmtime = ensure_wasmtime()?;
    let python = ensure_venv()?;
    let mut demo = Command::new(python);
    demo.arg("e2e/demo.py").env("GCR_USAGE_WASM", &wasm).env("WASMTIME", &wasmtime);
    if spin {
        step("demo: emulators + spin up (the Spin flavour) + fixture logs");
        demo.arg("--spin");
    } else {
        step("demo: emulators + wasmtime serve + fixture logs");
    }
    run(&mut demo)
}

fn test(args: &[String]) -> Result {
    let e2e = !args.iter().any(|a| a == "--no-e2e");
    step("cargo fmt --check");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    let wasm = build_component()?;
    let spin_wasm = build_spin_component()?;
    step("cargo clippy (native crates and both flavours of the component)");
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    let component_clippy =
        ["clippy", "--package", "gcr-usage-loader", "--target", WASM_TARGET, "--profile", COMPONENT_PROFILE];
    run(cargo().args(component_clippy).args(["--", "-D", "warnings"]))?;
    // In the Spin target directory, where the Spin build just compiled spin-sdk and its
    // dependencies: checking them again in target/ would only cost time.
    run(cargo().args(component_clippy).args([
        "--features",
        "spin",
        "--target-dir",
        SPIN_TARGET_DIR,
        "--",
        "-D",
        "warnings",
    ]))?;
    step("cargo test (core unit tests, harness tests against both built flavours)");
    run(cargo().args(["test", "--workspace"]).env("GCR_USAGE_WASM", &wasm).env("GCR_USAGE_SPIN_WASM", &spin_wasm))?;
    if !e2e {
        return Ok(());
    }
    let wasmtime = ensure_wasmtime()?;
    let python = ensure_venv()?;
    // What the harness's Spin imitation decides, held to a real `spin up` by e2e/test_spin.py.
    run(cargo().args(["build", "--package", "gcr-usage-host-test", "--bin", "spin_policy"]))?;
    let spin_policy = target_dir().join("debug").join("spin_policy");
    // The native CLI, whose `backfill` e2e/test_backfill.py runs against the emulators.
    run(cargo().args(["build", "--package", "gcr-usage-cli", "--bin", "gcr-usage"]))?;
    let cli = target_dir().join("debug").join("gcr-usage");
    step("end-to-end and peer tests (fake-gcs-server, local-bigquery, google-cloud-bigquery, wasmtime serve, spin up)");
    run(Command::new(python)
        .args(["-m", "pytest", "e2e", "-q", "-p", "no:cacheprovider"])
        .env("GCR_USAGE_WASM", &wasm)
        .env("WASMTIME", &wasmtime)
        .env("GCR_USAGE_SPIN_POLICY", &spin_policy)
        .env("GCR_USAGE_CLI", &cli)
        // A component that cannot run must fail the suite, not skip it.
        .env("GCR_USAGE_E2E_STRICT", "1"))
}

fn bench() -> Result {
    let wasm = build_component()?;
    step("harness benchmark");
    run(cargo()
        .args(["run", "--release", "--package", "gcr-usage-host-test", "--bin", "bench"])
        .env("GCR_USAGE_WASM", &wasm))?;
    // The size of the synthetic usage log in MiB: `GCR_USAGE_BENCH_MB=20 cargo xtask bench` is a
    // quick run; the default gives the figures worth quoting.
    let mib = env::var("GCR_USAGE_BENCH_MB").unwrap_or_else(|_| "200".into());
    step(&format!(
        "classification benchmark ({mib} MiB synthetic usage log: native, harness, wasmtime serve, CLI report, Python)"
    ));
    run(cargo().args(["build", "--release", "--package", "gcr-usage-cli", "--bin", "gcr-usage"]))?;
    let wasmtime = ensure_wasmtime()?;
    run(cargo()
        .args(["run", "--release", "--package", "gcr-usage-host-test", "--bin", "classify_bench"])
        .env("GCR_USAGE_BENCH_MB", &mib)
        .env("GCR_USAGE_WASM", &wasm)
        .env("GCR_USAGE_CLI", target_dir().join("release").join("gcr-usage"))
        .env("WASMTIME", &wasmtime))?;
    step(&format!(
        "audit-log benchmark ({mib} MiB synthetic Artifact Registry sink object: native, component in wasmtime, Python)"
    ));
    run(cargo()
        .args(["run", "--release", "--package", "gcr-usage-host-test", "--bin", "audit_bench"])
        .env("GCR_USAGE_BENCH_MB", &mib)
        .env("GCR_USAGE_WASM", &wasm))?;
    cold_start_bench(&wasm)?;
    load_bench(&wasm)?;
    backfill_bench(&wasm)
}

/// The backfill: its planner on a listing of 100,000 objects (time, heap), then
/// `bench/backfill.py`, 2,000 objects on the emulators — batched, one job per object, and one
/// event per object through the component — with wall time and load jobs used.
fn backfill_bench(wasm: &Path) -> Result {
    step("backfill planner benchmark (100,000 listed objects)");
    run(cargo().args(["run", "--release", "--package", "gcr-usage-host-test", "--bin", "backfill_bench"]))?;
    step("backfill benchmark on the emulators (bench/backfill.py)");
    run(cargo().args(["build", "--release", "--package", "gcr-usage-cli", "--bin", "gcr-usage"]))?;
    let wasmtime = ensure_wasmtime()?;
    let python = ensure_venv()?;
    run(Command::new(python)
        .arg("bench/backfill.py")
        .env("GCR_USAGE_CLI", target_dir().join("release").join("gcr-usage"))
        .env("GCR_USAGE_WASM", wasm)
        .env("WASMTIME", &wasmtime))
}

/// `bench/cold_start.py`: request -> first outbound call for wasmtime serve (.wasm, .cwasm), the
/// harness with a pre-instantiated component, the seed's Python function (functions-framework)
/// and the Spin flavour under `spin up` (left out, with one line saying why, if no Spin runtime is
/// found). The Spin flavour is built here, so it is as fresh as the portable build just made.
fn cold_start_bench(wasm: &Path) -> Result {
    build_spin_component()?;
    step("cold-start benchmark (bench/cold_start.py)");
    run(cargo().args(["build", "--release", "--package", "gcr-usage-host-test", "--bin", "cold_start"]))?;
    let harness = target_dir().join("release").join("cold_start");
    let wasmtime = ensure_wasmtime()?;
    let python = ensure_venv()?;
    run(Command::new(python)
        .arg("bench/cold_start.py")
        .arg("--harness-bin")
        .arg(harness)
        .env("GCR_USAGE_WASM", wasm)
        .env("WASMTIME", &wasmtime))
}

/// `bench/load.py`: deploy/serve.sh with the .cwasm under concurrent deliveries (one at a time,
/// then 16, 32 and 64 in flight) against a fake Google: throughput, latency, peak RSS, instances.
fn load_bench(wasm: &Path) -> Result {
    step("load benchmark (bench/load.py)");
    let wasmtime = ensure_wasmtime()?;
    let python = ensure_venv()?;
    run(Command::new(python).arg("bench/load.py").env("GCR_USAGE_WASM", wasm).env("WASMTIME", &wasmtime))
}
