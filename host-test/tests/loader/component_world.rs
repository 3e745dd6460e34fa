//! The built component's imports and exports, checked against what every promised host offers:
//! only WASI 0.2 (wasi:cli, clocks, io, random, filesystem, sockets as Rust's std pulls them in,
//! and wasi:http), nothing Spin-specific, so the one `.wasm` links in `wasmtime serve`, Spin and
//! the harness alike; and both exports present.

use gcr_usage_host_test::{component, engine, guest_wasm};

fn names(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = items.collect();
    v.sort();
    v
}

#[test]
fn imports_are_plain_wasi_0_2_and_exports_are_the_two_interfaces() {
    let component = component(&guest_wasm()).expect("the loader compiles");
    let ty = component.component_type();
    let imports = names(ty.imports(engine()).map(|(name, _)| name.to_string()));
    let exports = names(ty.exports(engine()).map(|(name, _)| name.to_string()));

    for import in &imports {
        let (package, version) = import.split_once('@').unwrap_or((import, ""));
        let wasi = [
            "wasi:cli/",
            "wasi:clocks/",
            "wasi:io/",
            "wasi:random/",
            "wasi:filesystem/",
            "wasi:sockets/",
            "wasi:http/",
        ]
        .iter()
        .any(|p| package.starts_with(p));
        assert!(wasi, "non-WASI import {import} would not link in every host (imports: {imports:?})");
        assert!(version.starts_with("0.2."), "{import} is not a WASI 0.2 import");
    }
    assert!(imports.iter().any(|i| i.starts_with("wasi:http/outgoing-handler@0.2.")), "{imports:?}");
    assert!(!imports.iter().any(|i| i.contains("spin")), "{imports:?}");

    assert!(exports.iter().any(|e| e.starts_with("wasi:http/incoming-handler@0.2.")), "{exports:?}");
    assert!(exports.iter().any(|e| e == "gcr-usage:loader/loader@0.4.0"), "{exports:?}");
    assert_eq!(exports.len(), 2, "unexpected exports: {exports:?}");
}

/// The component ships as one small file (`[profile.component]`, size-optimised): bounded here,
/// both flavours, so a dependency or a profile change that bloats it fails the suite.
const MAX_COMPONENT_BYTES: u64 = 1 << 20;

#[test]
fn both_flavours_stay_under_one_mebibyte() {
    for wasm in [guest_wasm(), gcr_usage_host_test::spin_guest_wasm()] {
        let size = std::fs::metadata(&wasm).expect("the component was built").len();
        println!("{}: {size} bytes", wasm.display());
        assert!(size <= MAX_COMPONENT_BYTES, "{} is {size} bytes, over {MAX_COMPONENT_BYTES}", wasm.display());
    }
}

/// The component is built with WebAssembly SIMD (`.cargo/config.toml`), so its scans take
/// their 16-byte paths; a host without SIMD refuses it when compiling, before any request —
/// which this shows with an engine that has SIMD turned off. (A build whose `RUSTFLAGS`
/// replaced the config's would compile here and fail this test.)
#[test]
fn the_component_uses_simd_and_a_host_without_it_refuses_it_at_compile_time() {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true).wasm_relaxed_simd(false).wasm_simd(false);
    let no_simd = wasmtime::Engine::new(&config).expect("an engine without SIMD");
    for wasm in [guest_wasm(), gcr_usage_host_test::spin_guest_wasm()] {
        let bytes = std::fs::read(&wasm).expect("the component was built");
        let refused = wasmtime::component::Component::new(&no_simd, &bytes).err().map(|e| format!("{e:?}"));
        let refused =
            refused.unwrap_or_else(|| panic!("{} compiled without SIMD: built without simd128", wasm.display()));
        assert!(refused.to_lowercase().contains("simd"), "refused for another reason: {refused}");
    }
}
