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
