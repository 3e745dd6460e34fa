//! The Spin flavour, proven without a Spin runtime: the Spin build (`--features spin`, built by
//! `spin.toml`'s own build command unless `GCR_USAGE_SPIN_WASM` is set) runs in the harness's
//! Spin host mode — linked only if its imports are in Spin's host world (the `spin-sdk` 5.2.0
//! WIT), configured through Spin variables resolved from `spin.toml`, its outbound requests held
//! to `spin.toml`'s `allowed_outbound_hosts`. And `spin.toml` itself is checked against the core.

use std::collections::BTreeSet;

use gcr_usage_core::config as core_config;
use gcr_usage_host_test::spin::{
    AllowedHosts, FuncShape, Import, InstanceItems, SPIN_VARIABLES_INTERFACE, SpinManifest, SpinVariables, SpinWorld,
    Template, VariableError, component_imports, validate_variable_name,
};
use gcr_usage_host_test::{
    FakeGoogle, FakeUpstream, Harness, HarnessResponse, LoadError, SPIN_WASM_ENV, TestRequest, component, engine,
    google, guest_wasm, object_ref, spin_guest_wasm, workspace_root,
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
    let h = Harness::spin()
        .component(guest_wasm())
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
    let up = FakeUpstream::new();
    let google = FakeGoogle::new();
    let log = std::fs::read(workspace_root().join("fixtures/logs").join(USAGE_NAME)).unwrap();
    google.object(BUCKET, USAGE_NAME, USAGE_GEN, log);
    google.install(&up);
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
    // undefined to the guest: the environment is the fallback, even for a required one.
    let r = Harness::spin()
        .spin_undeclare("gcr_usage_buckets")
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
        // The required variable has no value at all (Spin's own error for it).
        (
            Harness::spin().spin_variable("gcr_usage_auth", "none").spin_variable("gcr_usage_project", PROJECT),
            "gcr_usage_buckets: the Spin variable could not be read: no provider resolved required variable",
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

#[tokio::test(start_paused = true)]
async fn a_request_to_a_host_not_in_spin_toml_is_denied() {
    for endpoint in [
        "https://bigquery.example.com",         // another host
        "https://bigquery.googleapis.com:8443", // another port
        "http://bigquery.googleapis.com",       // another scheme
        "https://eu-bigquery.googleapis.com",   // a sibling host: no wildcard is listed
    ] {
        let up = loads(1);
        // The default 30 s budget: a refused origin must not spend it.
        let h = spin(&up).spin_variable("gcr_usage_bigquery_endpoint", endpoint);
        let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
        let body = assert_error(&r, 503, "upstream-unavailable", "");
        let reason = body["reason"].as_str().unwrap();
        assert!(
            reason
                .contains(&format!("the host refused to send a request to {endpoint} (ErrorCode::HttpRequestDenied)")),
            "{reason}"
        );
        assert!(
            reason.contains(&format!(
                "add \"{endpoint}\" to the host's allowed outbound hosts (Spin: allowed_outbound_hosts in spin.toml)"
            )),
            "{reason}"
        );
        assert!(body.get("retries").is_none(), "answered at once, nothing retried: {body}");
        assert_eq!(up.denied().len(), 1, "one try, no retry: {endpoint}");
        assert!(r.run.outbound.is_empty(), "{endpoint}: nothing reached the network");
        let denied = up.denied();
        assert!(!denied.is_empty(), "{endpoint}");
        for q in &denied {
            assert!(q.url.starts_with(endpoint), "{endpoint}: {q}");
        }
    }

    // A classified load whose download origin is missing from the manifest: refused at the
    // download, after the probe and the session (allowed) — at once, and nothing loaded.
    let up = FakeUpstream::new();
    let google = FakeGoogle::new();
    google.object(
        BUCKET,
        USAGE_NAME,
        USAGE_GEN,
        std::fs::read(workspace_root().join("fixtures/logs").join(USAGE_NAME)).unwrap(),
    );
    google.install(&up);
    let h = spin(&up)
        .spin_variable("gcr_usage_mode", "classified")
        .spin_variable("gcr_usage_storage_endpoint", "https://storage.example.com");
    let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    let body = assert_error(&r, 503, "upstream-unavailable", "");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.starts_with("Cloud Storage download of gs://demo-gcr-logs/"), "{reason}");
    assert!(reason.contains("refused to send a request to https://storage.example.com"), "{reason}");
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
        ("ftp://api.example.com/", false),
        ("/relative", false),
    ] {
        assert_eq!(allows(&a, url), allowed, "{url}");
    }
    assert!(!allows(&hosts(&[]), "https://api.example.com/"), "an empty list allows nothing");
    let any = hosts(&["*://*:*"]);
    assert!(allows(&any, "http://x.test:1/"));

    for (entry, why) in [
        ("api.example.com", "needs a scheme"),
        ("https://api.example.com/v1", "must not carry a path"),
        ("https://api.example.com:http", "invalid port"),
        ("https://{{ host }}", "templates"),
        ("http://self", "`self`"),
        ("redis://cache.test", "needs a port"),
        ("*://any-scheme.test", "needs a port"),
        ("https://bad_host", "invalid host"),
        ("HTTPS://x.test", "invalid scheme"),
        ("https://", "invalid host"),
    ] {
        let e = AllowedHosts::parse(&[entry.to_string()]).expect_err(entry);
        assert!(e.contains(why), "{entry}: {e}");
    }
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
    assert_eq!(
        m.allowed_outbound_hosts,
        [
            "https://bigquery.googleapis.com",
            "https://storage.googleapis.com",
            "http://metadata.google.internal",
            "https://oauth2.googleapis.com",
            "https://www.googleapis.com",
        ]
    );
    let allowed = m.allowed_hosts();
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
    for w in ["cargo", "build", "--release", "--features", "spin"] {
        assert!(words.contains(&w), "{w} missing from {:?}", m.build_command);
    }
    let after = |flag: &str| words.iter().position(|w| *w == flag).map(|i| words[i + 1]);
    assert_eq!(after("--package"), Some("gcr-usage-loader"));
    assert_eq!(after("--target"), Some("wasm32-wasip2"));
    let target_dir = after("--target-dir").expect("--target-dir");
    assert_ne!(target_dir, "target", "would overwrite the portable build");
    assert_eq!(m.source, format!("{target_dir}/wasm32-wasip2/release/gcr_usage_loader.wasm"));
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
            "must not carry a path",
        ),
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
