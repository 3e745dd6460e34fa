//! The Spin flavour in the harness's imitation of Spin (a real Spin 4.0.2 runs it in the e2e
//! suite; here it runs deterministically): the Spin build (`--features spin`, built by
//! `spin.toml`'s own build command unless `GCR_USAGE_SPIN_WASM` is set) runs in Spin host mode —
//! linked only if its imports are in Spin's host world (the `spin-sdk` 5.2.0 WIT, and Spin
//! 4.0.2's own list of interfaces), configured through Spin variables resolved from `spin.toml`
//! (a required one without a value stops it before it starts, as `spin up` stops), its outbound
//! requests held to `spin.toml`'s `allowed_outbound_hosts` resolved with those same variables.
//! And `spin.toml` itself is checked against the core.

use std::collections::BTreeSet;
use std::time::Duration;

use gcr_usage_core::config as core_config;
use gcr_usage_fake_google::logs::fixture_log;
use gcr_usage_host_test::spin::{
    AllowedHosts, FuncShape, Import, InstanceItems, PlatformImports, SPIN_4_HOST_WORLD, SPIN_4_IMPORTS_FILE,
    SPIN_4_WIT_ENV, SPIN_VARIABLES_INTERFACE, SpinManifest, SpinVariables, SpinWorld, Template, VariableError,
    component_imports, validate_variable_name,
};
use gcr_usage_host_test::{
    FakeUpstream, Harness, HarnessErrorKind, HarnessResponse, LoadError, Rule, SPIN_WASM_ENV, TestRequest, component,
    engine, exact, google, guest_wasm, object_ref, spin_guest_wasm, workspace_root,
};
use serde_json::json;

use crate::common::*;

/// The configuration most tests give through Spin variables: explicit project, the fixture
/// bucket, a bearer token (a secret).
fn spin(upstream: &FakeUpstream) -> Harness {
    Harness::spin()
        .spin_variable("gcr_usage_project", PROJECT)
        .spin_variable("gcr_usage_buckets", BUCKET)
        .spin_variable("gcr_usage_auth", "token")
        .spin_variable("gcr_usage_token", TOKEN)
        .upstream(upstream.clone())
}

fn import_names(imports: &[Import]) -> Vec<&str> {
    imports.iter().map(|i| i.name.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// The component's world
// ---------------------------------------------------------------------------------------------

#[test]
fn the_spin_build_imports_only_what_spins_host_world_offers() {
    let spin_build = component(&spin_guest_wasm()).expect("the Spin build compiles");
    let imports = component_imports(&spin_build);
    eprintln!("Spin build imports: {:#?}", import_names(&imports));
    SpinWorld::sdk().check(&imports).unwrap_or_else(|p| panic!("not linkable on Spin:\n{}", p.join("\n")));
    // And in Spin 4.0.2's own host world (the e2e suite's Spin), by name and version.
    PlatformImports::spin_4().check(&imports).unwrap_or_else(|p| panic!("not linkable on Spin 4:\n{}", p.join("\n")));

    let variables = imports.iter().find(|i| i.name == SPIN_VARIABLES_INTERFACE).expect("Spin variables imported");
    let get = &variables.items.as_ref().unwrap().functions["get"];
    assert_eq!(get, &FuncShape { params: vec!["name".into()], has_result: true });
    // Spin variables are the only thing beyond WASI 0.2: no key-value, no SQLite, no outbound
    // Redis — nothing that would need more of the manifest.
    for name in import_names(&imports) {
        assert!(name == SPIN_VARIABLES_INTERFACE || name.starts_with("wasi:"), "{name}");
        if name.starts_with("wasi:") {
            assert!(name.split_once('@').unwrap().1.starts_with("0.2."), "{name} is not WASI 0.2");
        }
    }

    // Same exports as the portable build: one code path, two flavours.
    let exports = |c: &wasmtime::component::Component| -> BTreeSet<String> {
        c.component_type().exports(engine()).map(|(n, _)| n.to_string()).collect()
    };
    let portable = component(&guest_wasm()).expect("the portable build compiles");
    assert_eq!(exports(&spin_build), exports(&portable));
}

#[tokio::test(start_paused = true)]
async fn the_portable_build_has_no_spin_import_and_runs_on_spin_too() {
    let imports = component_imports(&component(&guest_wasm()).unwrap());
    assert!(!imports.iter().any(|i| i.name.contains("spin")), "{:?}", import_names(&imports));
    SpinWorld::sdk().check(&imports).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    PlatformImports::spin_4().check(&imports).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    // In Spin it reads only the environment (a manifest's `environment` block); Spin variables
    // are there but unused, and the allow-list applies all the same.
    let up = loads(9);
    let h = Harness::spin()
        .component(guest_wasm())
        .spin_variable("gcr_usage_buckets", "not-read-by-the-portable-build")
        .env("GCR_USAGE_PROJECT", PROJECT)
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .env("GCR_USAGE_AUTH", "none")
        .upstream(up.clone());
    let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_loaded(&r, USAGE_NAME, Some(USAGE_GEN), 9);
    // The manifest's required variable needs a value all the same (`spin up` checks it), and
    // the allow-list is the manifest's, resolved with its defaults: Google's origins.
    let h = Harness::spin()
        .component(guest_wasm())
        .spin_variable("gcr_usage_buckets", "not-read-by-the-portable-build")
        .env("GCR_USAGE_PROJECT", PROJECT)
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .env("GCR_USAGE_AUTH", "none")
        .env("GCR_USAGE_BIGQUERY_ENDPOINT", "https://bigquery.example.com")
        .env("GCR_USAGE_WAIT_SECONDS", "0")
        .upstream(up.clone());
    let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_error(&r, 503, "upstream-unavailable", "");
    assert!(up.denied().iter().all(|q| q.authority == "bigquery.example.com") && !up.denied().is_empty());
}

#[test]
fn spins_host_world_is_the_sdks_platform_world() {
    let names = SpinWorld::sdk().interface_names();
    for expected in [
        "wasi:cli/environment@0.2.6",
        "wasi:http/outgoing-handler@0.2.6",
        "wasi:http/outgoing-handler@0.2.0",
        "wasi:config/store@0.2.0-draft-2024-09-27",
        "fermyon:spin/variables@2.0.0",
        "fermyon:spin/key-value@2.0.0",
        "spin:sqlite/sqlite@3.0.0",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    // The WASI 0.3 release candidate is behind `@unstable` (and an executor opt-in in Spin).
    assert!(!names.iter().any(|n| n.contains("0.3.0")), "{names:?}");
    // Spin offers no incoming-handler *import*: that is what components export.
    assert!(!names.iter().any(|n| n.starts_with("wasi:http/incoming-handler")), "{names:?}");
}

/// `host-test/spin-4.0.2-platform-imports.txt` is what Spin 4.0.2's `spin:up/platform@4.0.0`
/// imports: WASI 0.2.6 and the 0.3 release candidate, the Spin 2.0 platform (the SDK's
/// `fermyon:spin/variables@2.0.0` among it) and the Spin 3 interfaces. With `$GCR_USAGE_SPIN_4_WIT`
/// (Spin's `wit/`, see the file's header) the file must be exactly what that WIT gives.
#[test]
fn spin_4s_host_world_is_the_committed_list() {
    let list = PlatformImports::spin_4();
    let names = list.names();
    for expected in [
        "wasi:cli/environment@0.2.6",
        "wasi:cli/environment@0.3.0-rc-2026-03-15",
        "wasi:http/outgoing-handler@0.2.6",
        "wasi:http/types@0.2.6",
        "wasi:io/streams@0.2.6",
        "fermyon:spin/variables@2.0.0",
        "spin:variables/variables@3.0.0",
        "wasi:config/store@0.2.0-draft-2024-09-27",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {SPIN_4_IMPORTS_FILE}: {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("wasi:otel/")), "@unstable(feature = wasi-otel) is left out");
    assert!(!names.iter().any(|n| n.starts_with("wasi:http/incoming-handler")), "components export that");
    let text = std::fs::read_to_string(workspace_root().join("host-test").join(SPIN_4_IMPORTS_FILE)).unwrap();
    assert_eq!(text, list.file_text(), "the file is what PlatformImports::file_text writes (header included)");
    if let Some(dir) = std::env::var_os(SPIN_4_WIT_ENV) {
        let world = SpinWorld::from_wit_dir(std::path::Path::new(&dir), SPIN_4_HOST_WORLD).unwrap();
        assert_eq!(&PlatformImports::of(&world), list, "{SPIN_4_IMPORTS_FILE} is stale: regenerate it");
    }

    // The check is by name and semver-compatible version, as wasmtime links.
    let import = |name: &str| Import { name: name.into(), items: Some(InstanceItems::default()) };
    list.check(&[import("wasi:cli/environment@0.2.12"), import("spin:variables/variables@3.0.0")]).unwrap();
    for (name, expected) in [
        ("wasi:cli/environment@0.4.0", "no compatible wasi:cli/environment"),
        ("wasi:cli/environment@0.3.0-rc-2025-09-16", "no compatible wasi:cli/environment"),
        ("fermyon:spin/variables@3.0.0", "no compatible fermyon:spin/variables"),
        ("wasi:nn/inference@0.2.0", "no compatible wasi:nn/inference"),
    ] {
        let problems = list.check(&[import(name)]).expect_err(name);
        assert!(problems.len() == 1 && problems[0].contains(expected), "{name}: {problems:?}");
    }
    let bare = Import { name: "run".into(), items: None };
    assert!(list.check(&[bare]).unwrap_err()[0].contains("not an interface import"));
    assert!(PlatformImports::parse("# nothing\n").is_err());
    assert!(PlatformImports::parse("wasi:cli/environment\n").unwrap_err().contains("line 1"));
}

/// Writes `host-test/spin-4.0.2-platform-imports.txt` from Spin's WIT (`$GCR_USAGE_SPIN_4_WIT`);
/// the file's header has the whole command.
#[test]
#[ignore = "regenerates a committed file from Spin's WIT: run by hand"]
fn regenerate_the_spin_4_platform_imports() {
    let dir = std::env::var_os(SPIN_4_WIT_ENV).unwrap_or_else(|| panic!("set {SPIN_4_WIT_ENV} to Spin 4.0.2's wit/"));
    let world = SpinWorld::from_wit_dir(std::path::Path::new(&dir), SPIN_4_HOST_WORLD).unwrap();
    let path = workspace_root().join("host-test").join(SPIN_4_IMPORTS_FILE);
    std::fs::write(&path, PlatformImports::of(&world).file_text()).unwrap();
    eprintln!("wrote {}", path.display());
}

#[test]
fn the_world_check_rejects_every_kind_of_import_spin_lacks() {
    let instance = |name: &str, funcs: &[(&str, &[&str], bool)], types: &[&str]| Import {
        name: name.into(),
        items: Some(InstanceItems {
            functions: funcs
                .iter()
                .map(|(f, params, has_result)| {
                    let shape =
                        FuncShape { params: params.iter().map(|p| p.to_string()).collect(), has_result: *has_result };
                    (f.to_string(), shape)
                })
                .collect(),
            types: types.iter().map(|t| t.to_string()).collect(),
        }),
    };
    let world = SpinWorld::sdk();
    // Accepted: a newer 0.2 patch release links on Spin's 0.2.6 (semver, as wasmtime links).
    let fine = instance("wasi:cli/environment@0.2.12", &[("get-environment", &[], true)], &[]);
    world.check(std::slice::from_ref(&fine)).unwrap();

    let cases = [
        (instance("wasi:cli/environment@0.3.0", &[], &[]), "no compatible wasi:cli/environment"),
        (instance("wasi:config/store@0.2.0-draft-2024-10-01", &[], &[]), "no compatible wasi:config/store"),
        (instance("wasi:nn/inference@0.2.0", &[], &[]), "no compatible wasi:nn/inference"),
        (instance("fermyon:spin/variables@3.0.0", &[], &[]), "no compatible fermyon:spin/variables"),
        (instance("wasi:cli/environment@0.2.12", &[("get-secrets", &[], true)], &[]), "#get-secrets: not in"),
        (instance("fermyon:spin/variables@2.0.0", &[("get", &["key"], true)], &[]), "#get: FuncShape"),
        (instance("fermyon:spin/variables@2.0.0", &[("get", &["name"], false)], &[]), "#get: FuncShape"),
        (instance("wasi:io/streams@0.2.12", &[], &["output-stream", "socket"]), "type socket not in"),
        (Import { name: "run".into(), items: None }, "run: not an interface import"),
    ];
    for (import, expected) in cases {
        let problems = world.check(&[fine.clone(), import.clone()]).expect_err(&import.name);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains(expected), "{:?} should mention {expected:?}", problems[0]);
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration from Spin variables
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_spin_build_loads_a_fixture_event_configured_only_by_spin_variables() {
    let up = loads(1184);
    // No `.env(…)` at all: the guest's environment is empty.
    let r = spin(&up).handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_loaded(&r, USAGE_NAME, Some(USAGE_GEN), 1184);
    let [insert] = &inserts(&r.run)[..] else { panic!("{:?}", r.run.outbound) };
    let job_id = expected_job_id(BUCKET, USAGE_NAME, Some(USAGE_GEN), USAGE_DEST, 1);
    assert_insert(insert, &format!("gs://{BUCKET}/{USAGE_NAME}"), "usage", &job_id);
    assert_eq!(insert.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()), "the secret was used");
    assert!(up.denied().is_empty());

    // The typed export reads the same variables.
    let r = spin(&loads(7)).call_load(object_ref(BUCKET, USAGE_NAME, Some(USAGE_GEN))).await.unwrap();
    assert_eq!(r.result.expect("loaded").rows, Some(7));
}

/// Only the bucket and the project set: metadata auth (token `ya29.from-metadata`) and the
/// other defaults come from `spin.toml`; jobs finish with 3 rows.
fn spin_with_defaults() -> (FakeUpstream, Harness) {
    let up = FakeUpstream::new();
    up.route(google::metadata_token_rule().reply(google::metadata_token("ya29.from-metadata")));
    up.route(google::jobs_insert_rule(PROJECT).reply(google::job_done_echo(3)));
    let h = Harness::spin()
        .spin_variable("gcr_usage_buckets", BUCKET)
        .spin_variable("gcr_usage_project", PROJECT)
        .upstream(up.clone());
    (up, h)
}

#[tokio::test(start_paused = true)]
async fn spin_toml_defaults_drive_metadata_auth_through_the_allowed_metadata_host() {
    // Only what has no default: the manifest's defaults (metadata auth, US, storageanalysis)
    // do the rest, and the metadata server is one of the allowed hosts.
    let (up, h) = spin_with_defaults();
    let r = h.handle(fixture_request("pubsub-push.json")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(up.denied().is_empty());
    let hosts: Vec<&str> = r.run.outbound.iter().map(|q| q.url.as_str()).collect();
    assert!(hosts[0].starts_with("http://metadata.google.internal/computeMetadata/"), "{hosts:?}");
    assert!(hosts[1].starts_with("https://bigquery.googleapis.com/bigquery/v2/"), "{hosts:?}");
    assert_eq!(r.run.outbound[1].header("authorization"), Some("Bearer ya29.from-metadata"));
}

#[tokio::test(start_paused = true)]
async fn classified_loads_reach_cloud_storage_through_the_allow_list() {
    let (up, google) = google_with(fixture_log());
    up.route(google::jobs_insert_rule(PROJECT).reply(google::job_done_echo(1184)));
    let h = spin(&up).spin_variable("gcr_usage_mode", "both").fuel(u64::MAX / 4);
    let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_eq!((r.status, &r.json()["events"]["outcome"]), (200, &json!("loaded")), "{}", r.body_str());
    assert!(r.run.outbound.iter().any(|q| q.url.starts_with("https://storage.googleapis.com/download/")));
    assert_eq!(google.uploads().len(), 1);
    assert!(up.denied().is_empty(), "{:?}", up.denied());
}

#[tokio::test(start_paused = true)]
async fn the_environment_fills_in_what_spin_leaves_empty_or_undefined_and_spin_wins_otherwise() {
    // gcr_usage_project is declared with an empty default: the environment's value is used.
    let up = loads(5);
    let h = Harness::spin()
        .spin_variable("gcr_usage_buckets", BUCKET)
        .spin_variable("gcr_usage_auth", "none")
        .env("GCR_USAGE_PROJECT", PROJECT)
        .upstream(up.clone());
    let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_loaded(&r, USAGE_NAME, Some(USAGE_GEN), 5);

    // A variable the manifest does not map for the component (an older spin.toml) is
    // undefined to the guest: the environment is the fallback, even for a required one (whose
    // application variable still needs a value for Spin to start).
    let r = Harness::spin()
        .spin_undeclare("gcr_usage_buckets")
        .spin_variable("gcr_usage_buckets", "not-mapped-to-the-component")
        .spin_variable("gcr_usage_auth", "none")
        .spin_variable("gcr_usage_project", PROJECT)
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .upstream(up.clone())
        .handle(fixture_request("cloudevent-binary.json"))
        .await
        .unwrap();
    assert_loaded(&r, USAGE_NAME, Some(USAGE_GEN), 5);

    // A Spin variable with a value wins over the environment.
    let r = spin(&up).env("GCR_USAGE_BUCKETS", "some-other-bucket").handle(fixture_request("bare-object.json")).await;
    assert_eq!(r.unwrap().status, 200);
    let r = spin(&up).spin_variable("gcr_usage_buckets", "some-other-bucket").env("GCR_USAGE_BUCKETS", BUCKET);
    let r = r.handle(fixture_request("bare-object.json")).await.unwrap();
    assert_error(&r, 403, "bucket-not-allowed", "");

    // A host that cannot spell the name (`invalid-name`) is not a reason to fail: environment.
    let r = spin(&up)
        .spin_variable_error("gcr_usage_location", VariableError::InvalidName("gcr_usage_location".into()))
        .env("GCR_USAGE_LOCATION", "moon")
        .handle(TestRequest::get("/healthz"))
        .await
        .unwrap();
    assert_error(&r, 500, "configuration", "GCR_USAGE_LOCATION: \"moon\" is not a BigQuery location");
}

#[tokio::test(start_paused = true)]
async fn a_variable_spin_cannot_read_is_a_500_naming_it_without_falling_back() {
    let cases = [
        // The provider (Vault, Azure Key Vault…) failed.
        (
            spin(&FakeUpstream::new()).spin_variable_failure("gcr_usage_token", "vault: connection refused"),
            "gcr_usage_token: the Spin variable could not be read: vault: connection refused",
        ),
        // Any other host failure.
        (
            spin(&FakeUpstream::new())
                .spin_variable_error("gcr_usage_dataset", VariableError::Other("store closed".into())),
            "gcr_usage_dataset: the Spin variable could not be read: store closed",
        ),
    ];
    for (h, reason) in cases {
        // The environment holds the variables too: a provider failure must not silently swap
        // in other credentials or buckets.
        let h = h.env("GCR_USAGE_TOKEN", "ya29.env-token").env("GCR_USAGE_BUCKETS", BUCKET);
        let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
        assert_error(&r, 500, "configuration", reason);
        assert!(r.run.outbound.is_empty());
        let r = h.handle(TestRequest::get("/healthz")).await.unwrap();
        assert_error(&r, 500, "configuration", reason);
        let r = h.call_load(object_ref(BUCKET, USAGE_NAME, None)).await.unwrap();
        assert!(matches!(&r.result, Err(LoadError::Configuration(m)) if m.starts_with(reason)), "{:?}", r.result);
    }
}

/// `spin up` checks that every required variable has a provider before it serves anything
/// (`Error: provider error: no provider resolved required variable(s): [Key("gcr_usage_buckets")]`,
/// exit 1): the component never runs, so there is no answer to give — not a 500 from the
/// component, whatever the environment holds.
#[tokio::test(start_paused = true)]
async fn a_required_variable_without_a_value_stops_spin_before_it_serves() {
    let up = FakeUpstream::new();
    let h = Harness::spin()
        .spin_variable("gcr_usage_auth", "none")
        .spin_variable("gcr_usage_project", PROJECT)
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .upstream(up.clone());
    let expected = r#"no provider resolved required variable(s): [Key("gcr_usage_buckets")]"#;
    let e = h.handle(fixture_request("cloudevent-binary.json")).await.expect_err("Spin does not start");
    assert_eq!(e.kind, HarnessErrorKind::Setup, "{e}");
    assert!(e.message.contains(expected), "{e}");
    assert!(e.run.stdout.is_empty() && e.run.stderr.is_empty(), "the component never ran: {e}");
    let e = h.handle(TestRequest::get("/healthz")).await.expect_err("not even the health check");
    assert!(e.message.contains(expected), "{e}");
    let e = h.call_load(object_ref(BUCKET, USAGE_NAME, None)).await.expect_err("nor the typed export");
    assert!(e.message.contains(expected), "{e}");
    assert!(up.requests().is_empty() && up.denied().is_empty());

    // Any value starts it, an empty one too (Spin's check is that a provider has the key; the
    // component then reads the empty value as unset and falls back to the environment).
    let r = h.spin_variable("gcr_usage_buckets", "").handle(TestRequest::get("/healthz")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    // A provider that fails (Vault down) may still resolve it: Spin starts, and the component
    // names the variable it could not read.
    let r = Harness::spin()
        .spin_variable("gcr_usage_auth", "none")
        .spin_variable("gcr_usage_project", PROJECT)
        .spin_variable_failure("gcr_usage_buckets", "vault: connection refused")
        .handle(TestRequest::get("/healthz"))
        .await
        .unwrap();
    assert_error(&r, 500, "configuration", "gcr_usage_buckets: the Spin variable could not be read: ");

    // Every required variable without a value is named.
    let m = SpinManifest::parse(&manifest_with(
        r#"a = { required = true }
b = { required = true }
c = { required = true }"#,
        "[]",
    ))
    .unwrap();
    let mut v = SpinVariables::new(&m);
    v.provide("b", "x");
    assert_eq!(
        v.check_required().unwrap_err(),
        r#"Error: provider error: no provider resolved required variable(s): [Key("a"), Key("c")]"#
    );
}

/// Every secret `spin.toml` declares gets a value no log line, answer or error may contain.
fn with_secrets(h: Harness) -> (Harness, Vec<String>) {
    let mut h = h;
    let mut values = Vec::new();
    for (name, var) in &SpinManifest::repo().variables {
        if var.secret {
            let value = format!("ya29.SECRET-{}-4f1c9a", name.replace('_', "-"));
            h = h.spin_variable(name, &value);
            values.push(value);
        }
    }
    (h, values)
}

#[track_caller]
fn assert_no_secret(r: &HarnessResponse, secrets: &[String]) {
    for secret in secrets {
        for (what, bytes) in [("stdout", &r.run.stdout), ("stderr", &r.run.stderr), ("body", &r.body.to_vec())] {
            assert!(!String::from_utf8_lossy(bytes).contains(secret.as_str()), "{secret} in {what}");
        }
        for h in r.headers.values() {
            assert!(!h.to_str().unwrap_or_default().contains(secret.as_str()), "{secret} in a response header");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn secrets_never_appear_in_log_lines_or_answers() {
    let base = || {
        Harness::spin()
            .spin_variable("gcr_usage_project", PROJECT)
            .spin_variable("gcr_usage_buckets", BUCKET)
            .spin_variable("gcr_usage_auth", "token")
    };
    let (h, secrets) = with_secrets(base());
    assert_eq!(secrets.len(), 3, "gcr_usage_sa_key, gcr_usage_token, gcr_usage_trigger_secret");
    let token = secrets.iter().find(|s| s.contains("gcr-usage-token-")).unwrap().clone();

    // Loaded: the token went out as the bearer and nowhere else.
    let up = loads(1184);
    let r = h.upstream(up.clone()).handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(inserts(&r.run)[0].header("authorization"), Some(format!("Bearer {token}").as_str()));
    assert_no_secret(&r, &secrets);

    // Google refuses the token.
    let up = FakeUpstream::new();
    up.route(google::jobs_insert_rule(PROJECT).reply(google::google_error(401, "authError", "Invalid Credentials")));
    let (h, _) = with_secrets(base());
    let r = h.upstream(up).handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert!(r.status >= 500, "{}", r.body_str());
    assert_no_secret(&r, &secrets);

    // A token the core rejects, and a configuration error elsewhere.
    let (h, _) = with_secrets(base());
    let bad_token = "ya29.SECRET with a space";
    let r = h.spin_variable("gcr_usage_token", bad_token).handle(TestRequest::get("/healthz")).await.unwrap();
    assert_error(&r, 500, "configuration", "GCR_USAGE_TOKEN: must be a bearer token");
    assert_no_secret(&r, &[bad_token.to_string()]);
    let (h, _) = with_secrets(base());
    let r = h.spin_variable("gcr_usage_location", "moon").handle(fixture_request("pubsub-push.json")).await.unwrap();
    assert_error(&r, 500, "configuration", "GCR_USAGE_LOCATION");
    assert_no_secret(&r, &secrets);
}

// ---------------------------------------------------------------------------------------------
// allowed_outbound_hosts
// ---------------------------------------------------------------------------------------------

/// Spin's refusal, as the loader answers it: 503 at once (one denied request, no retry, no
/// virtual time spent), naming the refused origin and the manifest key. Only the stable parts of
/// the core's wording are asserted. Returns the reason.
#[track_caller]
fn assert_refused(r: &HarnessResponse, up: &FakeUpstream, origin: &str) -> String {
    assert_eq!(r.status, 503, "{}", r.body_str());
    let reason = r.json()["reason"].as_str().unwrap_or_else(|| panic!("no reason: {}", r.body_str())).to_string();
    assert!(reason.contains(origin) && reason.contains("allowed_outbound_hosts"), "{reason}");
    let denied = up.denied();
    assert_eq!(denied.len(), 1, "one try, no retry: {origin}: {denied:?}");
    assert!(denied[0].url.starts_with(origin), "{origin}: {}", denied[0]);
    assert!(r.run.outbound.is_empty(), "{origin}: nothing reached the network");
    assert!(r.run.elapsed < Duration::from_secs(1), "{origin}: answered at once, not after {:?}", r.run.elapsed);
    reason
}

const LOOPBACK: &str = "http://127.0.0.1:9050";

/// The repository's manifest, its templates resolved with these values (the required bucket
/// given).
fn repo_allowed_hosts(values: &[(&str, &str)]) -> Result<AllowedHosts, String> {
    let mut all = vec![("gcr_usage_buckets", BUCKET)];
    all.extend_from_slice(values);
    SpinManifest::repo().allowed_hosts_with(&all)
}

#[tokio::test(start_paused = true)]
async fn a_request_to_a_host_not_in_spin_toml_is_denied() {
    // The endpoint variables keep their defaults (so the list is Google's origins); the
    // component is pointed elsewhere through the environment, its endpoint variable unmapped.
    for endpoint in [
        "https://bigquery.example.com",         // another host
        "https://bigquery.googleapis.com:8443", // another port
        "http://bigquery.googleapis.com",       // another scheme
        "https://eu-bigquery.googleapis.com",   // a sibling host: no wildcard is listed
    ] {
        let up = loads(1);
        // The default 30 s budget: a refused origin must not spend it.
        let h = spin(&up).spin_undeclare("gcr_usage_bigquery_endpoint").env("GCR_USAGE_BIGQUERY_ENDPOINT", endpoint);
        let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
        assert_error(&r, 503, "upstream-unavailable", "");
        assert_refused(&r, &up, endpoint);
    }

    // A classified load whose download origin is missing from the manifest: refused at the
    // download, after the probe and the session (allowed) — at once, and nothing loaded.
    let (up, google) = google_with(fixture_log());
    let h = spin(&up)
        .spin_variable("gcr_usage_mode", "classified")
        .spin_undeclare("gcr_usage_storage_endpoint")
        .env("GCR_USAGE_STORAGE_ENDPOINT", "https://storage.example.com");
    let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    let body = assert_error(&r, 503, "upstream-unavailable", "");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.starts_with("Cloud Storage download of gs://demo-gcr-logs/"), "{reason}");
    assert!(reason.contains("https://storage.example.com") && reason.contains("allowed_outbound_hosts"), "{reason}");
    assert!(body.get("retries").is_none() && up.denied().len() == 1, "{body}");
    assert!(google.uploads().is_empty());

    // The same endpoint under the plain harness (wasmtime serve: no allow-list) goes out.
    let up = FakeUpstream::new();
    up.route(
        gcr_usage_host_test::Rule::post(gcr_usage_host_test::prefix("/"))
            .host("bigquery.example.com")
            .reply(google::job_done_echo(2)),
    );
    let r = harness(&up)
        .env("GCR_USAGE_BIGQUERY_ENDPOINT", "https://bigquery.example.com")
        .handle(fixture_request("cloudevent-binary.json"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert!(up.denied().is_empty());
}

/// `spin.toml` allows the three API locations through their endpoint variables: pointing one
/// at a loopback fake (what the e2e suite does with the emulators) allows that origin, and no
/// longer Google's.
#[tokio::test(start_paused = true)]
async fn an_endpoint_variable_allows_its_own_origin_and_no_longer_googles() {
    let allowed = repo_allowed_hosts(&[("gcr_usage_bigquery_endpoint", LOOPBACK)]).unwrap();
    assert_eq!(
        allowed.entries().collect::<Vec<_>>(),
        [
            LOOPBACK,
            "https://storage.googleapis.com",
            "http://metadata.google.internal",
            "https://oauth2.googleapis.com",
            "https://www.googleapis.com",
        ]
    );
    let allows = |url: &str| allowed.allows(&url.parse().unwrap());
    assert!(allows("http://127.0.0.1:9050/bigquery/v2/projects/p/jobs"));
    for url in [
        "https://bigquery.googleapis.com/",
        "http://127.0.0.1:9051/",
        "https://127.0.0.1:9050/",
        "http://localhost:9050/",
    ] {
        assert!(!allows(url), "{url}");
    }

    // The component loads against the harness's fake at that origin.
    let up = FakeUpstream::new();
    up.route(Rule::post(exact(INSERT_PATH)).host("127.0.0.1:9050").reply(google::job_done_echo(7)));
    let r = spin(&up)
        .spin_variable("gcr_usage_bigquery_endpoint", LOOPBACK)
        .handle(fixture_request("cloudevent-binary.json"))
        .await
        .unwrap();
    assert_loaded(&r, USAGE_NAME, Some(USAGE_GEN), 7);
    assert!(r.run.outbound[0].url.starts_with("http://127.0.0.1:9050/bigquery/v2/"), "{}", r.run.outbound[0]);
    assert!(up.denied().is_empty());

    // With that same list, a request to Google's BigQuery (the component's variable unmapped,
    // so the core's default origin) is refused.
    let up = FakeUpstream::new();
    let r = spin(&up)
        .spin_variable("gcr_usage_bigquery_endpoint", LOOPBACK)
        .spin_undeclare("gcr_usage_bigquery_endpoint")
        .handle(fixture_request("cloudevent-binary.json"))
        .await
        .unwrap();
    assert_refused(&r, &up, BQ);
}

/// Spin resolves the whole list for each instance; one entry that is no allowed host once
/// filled in (an empty value, a path) fails it, and then Spin denies *every* outbound request —
/// also to origins whose entries are fine, literal ones included (`check_url` errs,
/// `unwrap_or(false)`). The loader answers each such refusal 503 at once.
#[tokio::test(start_paused = true)]
async fn an_endpoint_variable_that_is_no_origin_makes_spin_deny_every_request() {
    for (variable, value, spin_says) in [
        ("gcr_usage_bigquery_endpoint", "", r#""" is not an allowed outbound host format"#),
        ("gcr_usage_storage_endpoint", "", r#""" is not an allowed outbound host format"#),
        (
            "gcr_usage_bigquery_endpoint",
            "http://127.0.0.1:9050/bq",
            r#""http://127.0.0.1:9050/bq" has a path but is not allowed to"#,
        ),
        ("gce_metadata_host", "", r#"Invalid allowed host "": empty host"#),
        ("gce_metadata_host", "metadata.google.internal/x", "must not include a path"),
    ] {
        let e = repo_allowed_hosts(&[(variable, value)]).expect_err(value);
        assert!(e.starts_with("Error parsing allowed outbound hosts: ") && e.contains(spin_says), "{variable}: {e}");
        let mut variables = SpinVariables::new(SpinManifest::repo());
        variables.provide("gcr_usage_buckets", BUCKET);
        variables.provide(variable, value);
        let policy = variables.outbound_policy();
        assert_eq!(policy.unresolved(), Some(e.as_str()));
        for url in [
            "https://oauth2.googleapis.com/token",
            "https://www.googleapis.com/oauth2/v3/certs",
            "https://bigquery.googleapis.com/",
        ] {
            assert!(!policy.allows(&url.parse().unwrap()), "{variable}={value:?}: {url} (literal entries too)");
        }
    }

    // The component: the first request it sends is refused, whichever entry was broken.
    // - BigQuery's own entry empty: the component reads "" as unset, takes the core's default.
    let up = loads(1);
    let r = spin(&up)
        .spin_variable("gcr_usage_bigquery_endpoint", "")
        .handle(fixture_request("cloudevent-binary.json"))
        .await;
    assert_refused(&r.unwrap(), &up, BQ);
    // - Cloud Storage's entry empty, in raw mode (no download): BigQuery's fine entry is denied.
    let up = loads(1);
    let r = spin(&up)
        .spin_variable("gcr_usage_storage_endpoint", "")
        .handle(fixture_request("cloudevent-binary.json"))
        .await;
    assert_refused(&r.unwrap(), &up, BQ);
    // - A path in the endpoint: its own origin is denied.
    let up = loads(1);
    let h = spin(&up).spin_variable("gcr_usage_bigquery_endpoint", "http://127.0.0.1:9050/bq");
    assert_refused(&h.handle(fixture_request("cloudevent-binary.json")).await.unwrap(), &up, LOOPBACK);
    // - The metadata host empty, metadata auth: the token request is the one refused.
    let (up, h) = spin_with_defaults();
    let r = h.spin_variable("gce_metadata_host", "").handle(fixture_request("pubsub-push.json")).await.unwrap();
    assert_refused(&r, &up, "http://metadata.google.internal");
}

/// A template naming a variable the manifest does not declare: Spin 4.0.2 starts (`validate`
/// cannot resolve it, so it does not check it) and then denies every request (`Error parsing
/// allowed outbound hosts err=invalid variable name: …`).
#[tokio::test(start_paused = true)]
async fn a_template_naming_an_unknown_variable_starts_and_denies_every_request() {
    let text = std::fs::read_to_string(SpinManifest::path()).unwrap().replacen(
        "\"{{ gcr_usage_bigquery_endpoint }}\",",
        "\"{{ gcr_usage_bigquery_endpiont }}\",",
        1,
    );
    assert!(text.contains("gcr_usage_bigquery_endpiont"));
    let m = SpinManifest::parse(&text).expect("Spin starts");
    let e = m.allowed_hosts_with(&[("gcr_usage_buckets", BUCKET)]).unwrap_err();
    assert_eq!(e, "Error parsing allowed outbound hosts: invalid variable name: gcr_usage_bigquery_endpiont");
    let up = loads(1);
    let h = Harness::spin_with(&m)
        .spin_variable("gcr_usage_project", PROJECT)
        .spin_variable("gcr_usage_buckets", BUCKET)
        .spin_variable("gcr_usage_auth", "token")
        .spin_variable("gcr_usage_token", TOKEN)
        .upstream(up.clone());
    assert_refused(&h.handle(fixture_request("cloudevent-binary.json")).await.unwrap(), &up, BQ);
}

#[test]
fn allowed_hosts_match_scheme_host_and_port_as_spin_does() {
    let hosts =
        |entries: &[&str]| AllowedHosts::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap();
    let allows = |a: &AllowedHosts, url: &str| a.allows(&url.parse().unwrap());
    let a = hosts(&[
        "https://api.example.com",
        "http://meta.internal:8080",
        "*://any-scheme.test:*",
        "https://*.wild.test",
        "https://ports.test:*",
        "http://range.test:9000..9100",
        "http://127.0.0.0/8:9050",
        "http://10.1.2.3",
        "http://[::1]:8080",
        "redis://cache.test",
        " https://trimmed.test/ ",
        "https://under_score.test",
    ]);
    for (url, allowed) in [
        ("https://api.example.com/v1?x=1", true),
        ("https://API.example.com/", true),
        ("https://api.example.com:443/", true),
        ("https://api.example.com:444/", false),
        ("http://api.example.com/", false),
        ("https://example.com/", false),
        ("https://x.api.example.com/", false),
        ("http://meta.internal:8080/", true),
        ("http://meta.internal/", false),
        ("http://any-scheme.test/", true),
        ("https://any-scheme.test/", true),
        ("https://a.wild.test/", true),
        ("https://a.b.wild.test/", true),
        ("https://wild.test/", false),
        ("https://evilwild.test/", false),
        ("https://ports.test:9999/", true),
        ("http://range.test:9000/", true),
        ("http://range.test:9099/", true),
        ("http://range.test:9100/", false),
        ("http://range.test/", false),
        ("http://127.0.0.1:9050/", true),
        ("http://127.255.0.9:9050/", true),
        ("http://128.0.0.1:9050/", false),
        ("http://127.0.0.1:9051/", false),
        ("http://localhost:9050/", false),
        ("http://10.1.2.3/", true),
        ("http://10.1.2.4/", false),
        ("http://[::1]:8080/", true),
        ("http://[::2]:8080/", false),
        ("redis://cache.test:6379/", true),
        ("redis://cache.test/", true),
        ("https://trimmed.test/", true),
        ("https://under_score.test/", true),
        ("ftp://api.example.com/", false),
        ("/relative", false),
    ] {
        assert_eq!(allows(&a, url), allowed, "{url}");
    }
    assert!(!allows(&hosts(&[]), "https://api.example.com/"), "an empty list allows nothing");
    let any = hosts(&["*://*:*"]);
    assert!(allows(&any, "http://x.test:1/"));
    // Spin accepts an upper-case scheme, which then matches nothing.
    assert!(!allows(&hosts(&["HTTPS://x.test:443"]), "https://x.test/"));
    let none = AllowedHosts::deny_all("resolving failed".into());
    assert!(!allows(&none, "https://api.example.com/") && none.unresolved() == Some("resolving failed"));

    for (entry, why) in [
        ("api.example.com", "does not contain a scheme"),
        ("", "is not an allowed outbound host format"),
        ("*", "is not an allowed outbound host format"),
        ("https://api.example.com/v1", "must not include a path"),
        ("https://api.example.com:443/v1", "has a path but is not allowed to"),
        ("https://api.example.com:http", "port \"http\" is not a number"),
        ("https://{{ host }}", "is a template"),
        ("https://{{ host", "unclosed"),
        ("http://self", "`self`"),
        ("http://a.spin.internal", "service chaining"),
        ("http://*.spin.internal", "service chaining"),
        ("ftp://files.test", "does not have a known default port number"),
        ("*://any-scheme.test", "does not have a known default port number"),
        ("https://x.test:{443,8443}", "port lists"),
        ("{http,https}://x.test:80", "scheme lists"),
        ("https://{a.test,b.test}:443", "host lists"),
        ("h2c+tls://x.test:1", "only alphabetic characters"),
        ("https://a.*.test", "wildcards are allowed only as subdomains"),
        ("https://*.a.*.test", "wildcards are allowed only as prefixes"),
        ("https://bad host", "invalid host name"),
        ("https://bücher.test", "non-ASCII"),
        ("https://[::1", "Invalid allowed host \"[:\""),
        ("https://[zz]:443", "invalid IPv6 address"),
        ("https://", "empty host"),
    ] {
        let e = AllowedHosts::parse(&[entry.to_string()]).expect_err(entry);
        assert!(e.contains(why), "{entry}: {e}");
    }
    let e = AllowedHosts::parse(&["insecure:allow-all".to_string()]).unwrap_err();
    assert!(e.contains("use '*://*:*'"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// spin.toml
// ---------------------------------------------------------------------------------------------

/// Every configuration variable the core knows: each string literal in `config.rs` that is a
/// whole `GCR_USAGE_*` / `GCE_METADATA_HOST` name, and every `const …: &str = "GCR_USAGE_…"`
/// anywhere in the core (new modules such as auth may declare theirs next to their code).
fn core_variables() -> BTreeSet<String> {
    let is_name = |s: &str| {
        (s.starts_with("GCR_USAGE_")
            && s.len() > 10
            && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
            || s == "GCE_METADATA_HOST"
    };
    let literals = |text: &str| -> Vec<String> { text.split('"').skip(1).step_by(2).map(str::to_string).collect() };
    let src = workspace_root().join("crates/core/src");
    let mut names: BTreeSet<String> =
        literals(&std::fs::read_to_string(src.join("config.rs")).unwrap()).into_iter().filter(|s| is_name(s)).collect();
    let mut dirs = vec![src];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    let line = line.trim_start();
                    if line.starts_with("pub const ")
                        || line.starts_with("const ")
                        || line.starts_with("pub(crate) const ")
                    {
                        names.extend(literals(line).into_iter().filter(|s| is_name(s)));
                    }
                }
            }
        }
    }
    names
}

#[test]
fn spin_toml_declares_and_maps_every_variable_the_core_reads() {
    let core = core_variables();
    assert!(core.len() >= 15 && core.contains("GCR_USAGE_BUCKETS") && core.contains("GCE_METADATA_HOST"), "{core:?}");
    let m = SpinManifest::repo();
    for env_name in &core {
        let name = env_name.to_ascii_lowercase();
        validate_variable_name(&name).unwrap_or_else(|e| panic!("{env_name} cannot be a Spin variable: {e}"));
        assert!(m.variables.contains_key(&name), "spin.toml [variables] lacks {name} ({env_name})");
        let template =
            m.component_variables.get(&name).unwrap_or_else(|| panic!("[component.gcr-usage.variables] lacks {name}"));
        assert!(template.is_reference_to(&name), "{name} should be \"{{{{ {name} }}}}\", is {template:?}");
    }
    // Each component variable is the application variable of its own name (the component
    // reads `name` and means `NAME`; any other template would silently rename it).
    for (name, template) in &m.component_variables {
        assert!(template.is_reference_to(name), "{name} = {template:?}");
    }
    assert_eq!(m.component_variables.keys().collect::<Vec<_>>(), m.variables.keys().collect::<Vec<_>>());
}

#[test]
fn spin_toml_defaults_secrets_and_required_match_the_core() {
    let m = SpinManifest::repo();
    let default = |name: &str| m.variables[name].default.clone();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(default("gcr_usage_dataset"), s(core_config::DEFAULT_DATASET));
    assert_eq!(default("gcr_usage_usage_table"), s(core_config::DEFAULT_USAGE_TABLE));
    assert_eq!(default("gcr_usage_storage_table"), s(core_config::DEFAULT_STORAGE_TABLE));
    assert_eq!(default("gcr_usage_events_table"), s(core_config::DEFAULT_EVENTS_TABLE));
    assert_eq!(default("gcr_usage_location"), s(core_config::DEFAULT_LOCATION));
    assert_eq!(default("gcr_usage_wait_seconds"), Some(core_config::DEFAULT_WAIT_SECONDS.to_string()));
    assert_eq!(default("gcr_usage_upload_chunk_kib"), Some(core_config::DEFAULT_UPLOAD_CHUNK_KIB.to_string()));
    assert_eq!(default("gcr_usage_bigquery_endpoint"), s(core_config::DEFAULT_BIGQUERY_ENDPOINT));
    assert_eq!(default("gcr_usage_storage_endpoint"), s(core_config::DEFAULT_STORAGE_ENDPOINT));
    assert_eq!(default("gce_metadata_host"), s(core_config::DEFAULT_METADATA_HOST));
    assert_eq!(default("gcr_usage_auth"), s("metadata"));
    assert_eq!(default("gcr_usage_mode"), s("raw"));

    // The defaults are the core's own: a run with nothing but the required variable gives the
    // configuration the core gives with nothing but GCR_USAGE_BUCKETS (plus a project).
    let from_manifest = core_config::Config::from_env(|env| match env {
        "GCR_USAGE_BUCKETS" => s(BUCKET),
        "GCR_USAGE_PROJECT" => s(PROJECT),
        _ => m.variables.get(&env.to_ascii_lowercase()).and_then(|v| v.default.clone()),
    });
    let from_core = core_config::Config::from_env(|env| match env {
        "GCR_USAGE_BUCKETS" => s(BUCKET),
        "GCR_USAGE_PROJECT" => s(PROJECT),
        _ => None,
    });
    assert_eq!(from_manifest, from_core);

    let secrets: Vec<&str> = m.variables.iter().filter(|(_, v)| v.secret).map(|(n, _)| n.as_str()).collect();
    assert_eq!(secrets, ["gcr_usage_sa_key", "gcr_usage_token", "gcr_usage_trigger_secret"]);
    let required: Vec<&str> = m.variables.iter().filter(|(_, v)| v.required).map(|(n, _)| n.as_str()).collect();
    assert_eq!(required, ["gcr_usage_buckets"]);
}

#[test]
fn spin_toml_allows_exactly_googles_origins_routes_everything_and_builds_the_spin_flavour() {
    let m = SpinManifest::repo();
    assert_eq!(m.application_name, "gcr-usage");
    assert_eq!(m.component_id, "gcr-usage");
    assert_eq!(m.routes, ["/..."]);
    // The API locations are their endpoint variables; with the defaults, exactly Google's
    // five origins.
    assert_eq!(
        m.allowed_outbound_hosts,
        [
            "{{ gcr_usage_bigquery_endpoint }}",
            "{{ gcr_usage_storage_endpoint }}",
            "http://{{ gce_metadata_host }}",
            "https://oauth2.googleapis.com",
            "https://www.googleapis.com",
        ]
    );
    let allowed = repo_allowed_hosts(&[]).unwrap();
    assert_eq!(
        allowed.entries().collect::<Vec<_>>(),
        [
            "https://bigquery.googleapis.com",
            "https://storage.googleapis.com",
            "http://metadata.google.internal",
            "https://oauth2.googleapis.com",
            "https://www.googleapis.com",
        ]
    );
    // The defaults are the core's own endpoints, so the component's defaults are allowed.
    assert_eq!(allowed.entries().next(), Some(core_config::DEFAULT_BIGQUERY_ENDPOINT));
    assert_eq!(allowed.entries().nth(1), Some(core_config::DEFAULT_STORAGE_ENDPOINT));
    assert_eq!(allowed.entries().nth(2), Some(format!("http://{}", core_config::DEFAULT_METADATA_HOST).as_str()));
    // What the harness applies to an instance with nothing but the required variable.
    let mut variables = SpinVariables::new(m);
    variables.provide("gcr_usage_buckets", BUCKET);
    let policy = variables.outbound_policy();
    assert_eq!(policy.unresolved(), None);
    assert_eq!(policy.entries().collect::<Vec<_>>(), allowed.entries().collect::<Vec<_>>());
    for url in [
        "https://bigquery.googleapis.com/bigquery/v2/projects/p/jobs",
        "https://bigquery.googleapis.com/upload/bigquery/v2/projects/p/jobs?uploadType=resumable",
        "https://storage.googleapis.com/download/storage/v1/b/b/o/n?alt=media",
        "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
        "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com/oauth2/v3/certs",
    ] {
        assert!(allowed.allows(&url.parse().unwrap()), "{url}");
    }
    for url in [
        "https://metadata.google.internal/",
        "http://169.254.169.254/",
        "https://googleapis.com/",
        "https://pubsub.googleapis.com/",
    ] {
        assert!(!allowed.allows(&url.parse().unwrap()), "{url}");
    }

    // The build command builds the Spin flavour into its own target directory, and `source`
    // is what it builds: the portable build's path stays the portable build's.
    let words: Vec<&str> = m.build_command.split_whitespace().collect();
    for w in ["cargo", "build", "--features", "spin"] {
        assert!(words.contains(&w), "{w} missing from {:?}", m.build_command);
    }
    let after = |flag: &str| words.iter().position(|w| *w == flag).map(|i| words[i + 1]);
    assert_eq!(after("--package"), Some("gcr-usage-loader"));
    assert_eq!(after("--target"), Some("wasm32-wasip2"));
    assert_eq!(after("--profile"), Some("component"), "the size-optimised profile of Cargo.toml");
    let target_dir = after("--target-dir").expect("--target-dir");
    assert_ne!(target_dir, "target", "would overwrite the portable build");
    assert_eq!(m.source, format!("{target_dir}/wasm32-wasip2/component/gcr_usage_loader.wasm"));
    assert_eq!(m.build_workdir, None, "runs from the repository root");
    if std::env::var_os(SPIN_WASM_ENV).is_none() {
        // Built here by that very command (see `spin_guest_wasm`).
        assert_eq!(spin_guest_wasm(), workspace_root().join(&m.source));
    }
}

#[test]
fn the_manifest_parser_rejects_what_spin_rejects() {
    let repo = std::fs::read_to_string(SpinManifest::path()).unwrap();
    SpinManifest::parse(&repo).unwrap();
    let minimal = r#"
spin_manifest_version = 2
[application]
name = "a"
[variables]
x = { default = "" }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
[component.c.variables]
x = "{{ x }}"
[component.c.build]
command = "cargo build"
"#;
    let m = SpinManifest::parse(minimal).unwrap();
    assert!(m.allowed_outbound_hosts.is_empty(), "no key: no outbound");
    for (from, to, why) in [
        ("spin_manifest_version = 2", "spin_manifest_version = 1", "must be 2"),
        ("x = { default = \"\" }", "x = { default = \"\", required = true }", "exclude each other"),
        ("x = { default = \"\" }", "x = { secret = true }", "needs a default or required"),
        ("x = { default = \"\" }", "x = { default = 1 }", "default must be a string"),
        ("x = { default = \"\" }", "x = { default = \"\", secret = \"yes\" }", "must be a boolean"),
        ("x = { default = \"\" }", "x = { default = \"\", hidden = true }", "unknown field hidden"),
        ("x = { default = \"\" }", "X = { default = \"\" }", "lower-case"),
        ("x = \"{{ x }}\"", "x = \"{{ y }}\"", "unknown variable \"y\""),
        ("x = \"{{ x }}\"", "x = \"{{ x }\"", "unclosed"),
        ("x = \"{{ x }}\"", "x_ = \"{{ x }}\"", "must end with a letter or digit"),
        ("source = \"c.wasm\"", "source = \"c.wasm\"\nenvironment = { A = \"b\" }", "environment is not emulated"),
        (
            "source = \"c.wasm\"",
            "source = \"c.wasm\"\nallowed_outbound_hosts = [\"https://x.test/p\"]",
            "`allowed_outbound_hosts` is malformed: Invalid allowed host \"x.test/p\": must not include a path",
        ),
        // Templated entries are checked with the variables' defaults, as `spin up` checks them.
        (
            "source = \"c.wasm\"",
            "source = \"c.wasm\"\nallowed_outbound_hosts = [\"{{ x }}\"]",
            "using default variable value(s) with template \"{{ x }}\" results in invalid config \"\": \"\" is not an \
             allowed outbound host format",
        ),
        (
            "source = \"c.wasm\"",
            "source = \"c.wasm\"\nallowed_outbound_hosts = [\"https://{{ x }}/v1\"]",
            "results in invalid config \"https:///v1\": Invalid allowed host \"/v1\": must not include a path",
        ),
        ("source = \"c.wasm\"", "source = \"c.wasm\"\nallowed_outbound_hosts = [\"https://{{ x \"]", "unclosed"),
        ("source = \"c.wasm\"", "source = { url = \"https://x.test/c.wasm\", digest = \"sha256:0\" }", "local path"),
        ("component = \"c\"", "component = \"d\"", "targets Some(\"d\")"),
        ("[component.c.build]\ncommand = \"cargo build\"", "", "build] is missing"),
        (
            "[component.c.variables]",
            "[component.d]\nsource = \"d.wasm\"\n[component.c.variables]",
            "exactly one component",
        ),
        ("[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"", "", "[trigger] is missing"),
    ] {
        let text = minimal.replacen(from, to, 1);
        assert_ne!(text, minimal, "{from}");
        let e = SpinManifest::parse(&text).expect_err(to);
        assert!(e.contains(why), "{to}: {e}");
    }
    assert!(SpinManifest::parse("not toml [").unwrap_err().contains("not TOML"));

    // What `spin up` accepts: templates whose defaults give valid entries, and templates it
    // cannot check before a request (a required variable; a variable not declared at all,
    // which then denies every request: see
    // `a_template_naming_an_unknown_variable_starts_and_denies_every_request`).
    let hosts = |variables: &str, allowed: &str| SpinManifest::parse(&manifest_with(variables, allowed));
    let m = hosts(r#"x = { default = "a.test" }"#, r#"["https://{{ x }}:8443", "https://b.test", "http://{{x}}"]"#)
        .unwrap();
    let resolved = m.allowed_hosts_with(&[]).unwrap();
    assert_eq!(resolved.entries().collect::<Vec<_>>(), ["https://a.test:8443", "https://b.test", "http://a.test"]);
    let m = hosts("x = { required = true }", r#"["https://{{ x }}/v1"]"#).expect("not checked at start");
    let e = m.allowed_hosts_with(&[("x", "a.test")]).unwrap_err();
    assert!(e.contains("must not include a path"), "{e}");
    let m = hosts("x = { required = true }", r#"["https://{{ x }}"]"#).unwrap();
    let resolved = m.allowed_hosts_with(&[("x", "a.test:8443")]).unwrap();
    assert!(resolved.allows(&"https://a.test:8443/".parse().unwrap()));
    assert!(m.allowed_hosts_with(&[]).unwrap_err().contains(r#"no provider resolved required variable "x""#));
    let m = hosts(r#"x = { default = "a.test" }"#, r#"["https://{{ y }}"]"#).expect("not checked at start");
    assert!(m.allowed_hosts_with(&[]).unwrap_err().ends_with("invalid variable name: y"));
    let m = hosts(r#"x = { default = "a.test" }"#, r#"["https://{{ Not-A-Name }}"]"#).expect("not checked at start");
    assert!(m.allowed_hosts_with(&[]).unwrap_err().ends_with("invalid variable name: Not-A-Name"));
    // A provider failure for any variable fails the whole list (Spin resolves every variable
    // first), even one the list does not name.
    let m = hosts("x = { default = \"a.test\" }\nz = { default = \"\" }", r#"["https://{{ x }}"]"#).unwrap();
    let mut v = SpinVariables::new(&m);
    v.fail("z", "vault down");
    let e = v.resolve_allowed_hosts().unwrap_err();
    assert_eq!(
        e,
        "Error resolving variables when checking request against allowed outbound hosts: provider error: vault down"
    );
    assert!(!v.outbound_policy().allows(&"https://a.test/".parse().unwrap()));
}

/// A one-component manifest with these `[variables]` lines and this `allowed_outbound_hosts`.
fn manifest_with(variables: &str, allowed_outbound_hosts: &str) -> String {
    format!(
        r#"
spin_manifest_version = 2
[application]
name = "a"
[variables]
{variables}
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
allowed_outbound_hosts = {allowed_outbound_hosts}
[component.c.build]
command = "cargo build"
"#
    )
}

#[test]
fn variables_resolve_as_spin_resolves_them() {
    let m = SpinManifest::parse(
        r#"
spin_manifest_version = 2
[application]
name = "a"
[variables]
host = { default = "example.test" }
key = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
[component.c.variables]
url = "https://{{ host }}/v1"
key = "{{key}}"
[component.c.build]
command = "cargo build"
"#,
    )
    .unwrap();
    let mut v = SpinVariables::new(&m);
    assert_eq!(v.get("url"), Ok("https://example.test/v1".into()));
    assert!(matches!(v.get("key"), Err(VariableError::Provider(m)) if m.contains("required variable \"key\"")));
    assert!(
        matches!(v.get("host"), Err(VariableError::Undefined(_))),
        "application variables are not component variables"
    );
    assert!(matches!(v.get("Url"), Err(VariableError::InvalidName(_))));
    v.provide("host", "other.test");
    v.provide("key", "k");
    assert_eq!((v.get("url"), v.get("key")), (Ok("https://other.test/v1".into()), Ok("k".into())));
    v.fail("host", "vault down");
    assert_eq!(v.get("url"), Err(VariableError::Provider("vault down".into())));
    v.undeclare("key");
    assert!(matches!(v.get("key"), Err(VariableError::Undefined(_))));
    assert_eq!(Template::parse("a{{ b }}c").unwrap().variables().collect::<Vec<_>>(), ["b"]);
    for bad in ["", "1a", "a-b", "a__b", "_a", "aB"] {
        assert!(validate_variable_name(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_spin_build_does_not_link_in_a_host_without_spin_variables() {
    // What `wasmtime serve` would say: the Spin flavour is for Spin only (the portable build is
    // the one for every other host).
    let h = Harness::new().component(spin_guest_wasm());
    let e = h.handle(TestRequest::get("/healthz")).await.expect_err("no Spin variables in the plain host");
    assert!(e.message.contains(SPIN_VARIABLES_INTERFACE), "{e}");
}

// ---------------------------------------------------------------------------------------------
// One instance, two configurations
// ---------------------------------------------------------------------------------------------

/// A Spin variable's provider (Vault, say) can change a value under a live instance, and the
/// Spin flavour reads variables per request: two configurations alternating through one
/// instance must each get their own credentials and verdicts, never the other's cached ones.
#[tokio::test(start_paused = true)]
async fn two_configurations_alternating_through_one_instance_keep_their_own_credentials() {
    use base64::Engine;
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    const PUSHER: &str = "eventarc-trigger@demo-project.iam.gserviceaccount.com";
    let verified = format!(
        "{}.{}.SIGNATURE_REMOVED_BY_GOOGLE",
        b64(json!({"alg": "RS256", "kid": "k"})),
        b64(json!({"email": PUSHER, "aud": "https://x.a.run.app"}))
    );
    // A: metadata credentials, cloud-run triggers from PUSHER, the default dataset.
    let (up, h) = spin_with_defaults();
    let h = h.spin_variable("gcr_usage_trigger_auth", "cloud-run").spin_variable("gcr_usage_trigger_emails", PUSHER);
    let a = [
        ("gcr_usage_auth", "metadata"),
        ("gcr_usage_dataset", "storageanalysis"),
        ("gcr_usage_trigger_auth", "cloud-run"),
    ];
    // B: a fixed token, another dataset, no trigger authentication.
    let b = [("gcr_usage_auth", "token"), ("gcr_usage_dataset", "other_dataset"), ("gcr_usage_trigger_auth", "none")];
    let mut instance = h.reused_instance(100);
    let request = || fixture_request("pubsub-push.json").header("authorization", &format!("Bearer {verified}"));
    let anonymous = || fixture_request("pubsub-push.json");
    for round in 0..4 {
        let r = instance.handle(request()).await.unwrap();
        assert_eq!(
            (r.status, r.json()["destination"].as_str()),
            (200, Some(USAGE_DEST)),
            "round {round}: {}",
            r.body_str()
        );
        assert_eq!(log_line(&r)["caller"], PUSHER);
        assert_eq!(inserts(&r.run)[0].header("authorization"), Some("Bearer ya29.from-metadata"));
        assert_error(&instance.handle(anonymous()).await.unwrap(), 401, "unauthenticated", "");
        for (name, value) in b {
            instance.spin_variable(name, value);
        }
        instance.spin_variable("gcr_usage_token", TOKEN);
        let r = instance.handle(anonymous()).await.unwrap();
        let other = "demo-project:other_dataset.usage";
        assert_eq!((r.status, r.json()["destination"].as_str()), (200, Some(other)), "round {round}: {}", r.body_str());
        assert!(log_line(&r).get("caller").is_none(), "B authenticates no caller");
        assert_eq!(inserts(&r.run)[0].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        for (name, value) in a {
            instance.spin_variable(name, value);
        }
    }
    assert_eq!(instance.instances(), 1);
    let token_fetches = up.requests().iter().filter(|q| q.path == google::METADATA_TOKEN_PATH).count();
    assert_eq!(token_fetches, 1, "A's metadata token was cached across B's requests, and never handed to B");
}
