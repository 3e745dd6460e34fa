//! Where the guest components come from.
//!
//! The loader is built with a *nested* cargo into its own target directory
//! (`target/guest`): the outer `cargo test` holds the lock on `target/`, and a nested build on the
//! same directory would wait for it forever.
//!
//! The Spin flavour is built by `spin.toml`'s own build command (into `target/spin`, its own
//! target directory too), so the tests prove that command works from the repository root and
//! that `source` names what it builds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Environment variable that points the harness at a prebuilt loader component.
pub const WASM_ENV: &str = "GCR_USAGE_WASM";
/// Environment variable that points the harness at a prebuilt Spin build of the loader.
pub const SPIN_WASM_ENV: &str = "GCR_USAGE_SPIN_WASM";

/// The workspace root (`host-test/..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host-test lives inside the workspace").to_path_buf()
}

/// The loader component (`--profile component`): `$GCR_USAGE_WASM` if set, else built once per process.
pub fn guest_wasm() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os(WASM_ENV) {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "{WASM_ENV}={} is not a file", path.display());
            return path;
        }
        let root = workspace_root();
        let target_dir = root.join("target/guest");
        cargo_build(&root, &["-p", "gcr-usage-loader", "--profile", "component"], &target_dir);
        target_dir.join("wasm32-wasip2/component/gcr_usage_loader.wasm")
    })
    .clone()
}

/// The Spin build of the loader (`--features spin`): `$GCR_USAGE_SPIN_WASM` if set, else built
/// once per process by running `spin.toml`'s build command from the repository root, as
/// `spin build` would, and found at the manifest's `source`.
pub fn spin_guest_wasm() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os(SPIN_WASM_ENV) {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "{SPIN_WASM_ENV}={} is not a file", path.display());
            return path;
        }
        let root = workspace_root();
        let manifest = crate::spin::SpinManifest::repo();
        let dir = root.join(manifest.build_workdir.as_deref().unwrap_or("."));
        let mut words = manifest.build_command.split_whitespace();
        assert_eq!(words.next(), Some("cargo"), "spin.toml's build command should run cargo");
        let args: Vec<&str> = words.collect();
        run_cargo(&dir, &args);
        let wasm = root.join(&manifest.source);
        assert!(wasm.is_file(), "spin.toml's build command did not produce its source {}", wasm.display());
        wasm
    })
    .clone()
}

/// The throwaway probe guest (`host-test/test-guests/probe`) the harness self-tests run.
pub fn probe_wasm() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = workspace_root();
        let dir = root.join("host-test/test-guests/probe");
        let target_dir = root.join("target/probe-guest");
        cargo_build(&dir, &["--release"], &target_dir);
        target_dir.join("wasm32-wasip2/release/probe_guest.wasm")
    })
    .clone()
}

/// `cargo build --target wasm32-wasip2 ARGS --target-dir TARGET_DIR` in `dir`; panics with
/// cargo's output on failure. Cargo itself decides whether anything needs rebuilding.
fn cargo_build(dir: &Path, args: &[&str], target_dir: &Path) {
    let target_dir = target_dir.to_str().expect("target dir is UTF-8");
    let mut all = vec!["build", "--target", "wasm32-wasip2"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--target-dir", target_dir]);
    run_cargo(dir, &all);
}

/// `cargo ARGS` in `dir`; panics with cargo's output on failure.
fn run_cargo(dir: &Path, args: &[&str]) {
    // `CARGO` is set by cargo for build scripts and tests: use the same toolchain's cargo.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(dir)
        .args(args)
        // Flags meant for the host test build must not leak into the wasm build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("failed to run cargo");
    assert!(
        output.status.success(),
        "building the guest failed (is `rustup target add wasm32-wasip2` done?)\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
