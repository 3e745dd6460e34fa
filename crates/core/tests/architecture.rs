//! ARCHITECTURE.md's invariants, held against the code: a map that stops matching the tree, or
//! a second place that reads configuration or keeps state between requests, fails here.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Non-test `.rs` files under `dir`, recursively, as paths relative to it.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if name != "tests" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" && !name.ends_with("_tests.rs") {
                out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Source text without `//` comments and without `#[cfg(test)]` modules' bodies (good enough
/// for the plain layout of this repository: test modules live in their own files).
fn code(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_core_module_is_on_the_map() {
    let map = fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let missing: Vec<String> = sources(&root().join("crates/core/src"))
        .iter()
        .filter_map(|p| {
            let file = p.file_name().unwrap().to_string_lossy().to_string();
            let named = match file.as_str() {
                "lib.rs" => true,
                // A module directory is on the map by its name (`auth/`, `usage/`, `stats/`).
                "mod.rs" => map.contains(&format!("{}/", p.parent().unwrap().file_name().unwrap().to_string_lossy())),
                _ => map.contains(&file),
            };
            (!named).then(|| p.display().to_string())
        })
        .collect();
    assert!(missing.is_empty(), "modules not on ARCHITECTURE.md's map: {missing:?}");
}

#[test]
fn the_core_does_no_io() {
    for file in sources(&root().join("crates/core/src")) {
        let text = code(&root().join("crates/core/src").join(&file));
        for banned in ["std::env", "std::fs", "std::net", "SystemTime::now", "Instant::now", "std::thread"] {
            assert!(!text.contains(banned), "crates/core/src/{} uses {banned}: the core does no I/O", file.display());
        }
    }
}

#[test]
fn only_config_reads_configuration_and_only_instance_state_outlives_a_request() {
    let dir = root().join("components/loader/src");
    for file in sources(&dir) {
        let text = code(&dir.join(&file));
        let env_reads = text.matches("std::env::var").count();
        let statics = text.matches("thread_local!").count() + text.matches("static mut").count();
        let statics = statics + text.lines().filter(|l| l.trim_start().starts_with("static ")).count();
        if file == Path::new("lib.rs") {
            // `config()` (portable) and the Spin flavour's fallback; INSTANCE (declared by
            // `thread_local!` + `static`).
            assert_eq!(env_reads, 2, "lib.rs: std::env::var outside config()");
            assert_eq!(statics, 2, "lib.rs: instance state beyond INSTANCE");
            assert!(text.contains("static INSTANCE: std::cell::RefCell<gcr_usage_core::instance::InstanceState>"));
        } else {
            assert_eq!(env_reads, 0, "{}: reads the environment; only config() may", file.display());
            assert_eq!(statics, 0, "{}: keeps state across requests; only InstanceState may", file.display());
        }
    }
}
