//! One instance for many requests, as `deploy/serve.sh` runs the loader (`wasmtime serve
//! --max-instance-reuse-count`): the instance's caches cut the fetches, and nothing of one
//! request reaches another's answer.

use gcr_usage_core::auth::jwt::sign_rs256;
use gcr_usage_host_test::{FakeUpstream, Harness, HarnessResponse, Reply, Rule, TestRequest, exact, google};
use serde_json::{Value, json};

use crate::common::*;
use crate::trust::{PUSHER, bearer, claims, google_keys, key, oidc_harness, stripped, with};

const PROJECT_PATH: &str = "/computeMetadata/v1/project/project-id";
const CERTS: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// google-oidc triggers, metadata credentials and project: everything an event can fetch.
fn deployed(up: &FakeUpstream) -> Harness {
    deployed_with(up, google::jobs_insert_rule("meta-project").reply(google::job_done_echo(14)))
}

fn deployed_with(up: &FakeUpstream, insert: Rule) -> Harness {
    up.route(google_keys())
        .route(Rule::get(exact(PROJECT_PATH)).host(google::METADATA_HOST).reply(Reply::text(200, "meta-project\n")))
        .route(google::metadata_token_rule().reply(google::metadata_token("ya29.instance")))
        .route(insert);
    Harness::new()
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .env("GCR_USAGE_TRIGGER_AUTH", "google-oidc")
        .env("GCR_USAGE_TRIGGER_AUDIENCE", crate::trust::AUDIENCE)
        .env("GCR_USAGE_TRIGGER_EMAILS", PUSHER)
        .upstream(up.clone())
}

fn fetches(responses: &[HarnessResponse]) -> [usize; 3] {
    let count = |f: &dyn Fn(&str) -> bool| responses.iter().flat_map(|r| &r.run.outbound).filter(|o| f(&o.url)).count();
    [count(&|u| u == CERTS), count(&|u| u.ends_with("/token")), count(&|u| u.ends_with(PROJECT_PATH))]
}

#[tokio::test(start_paused = true)]
async fn a_hundred_events_on_one_instance_fetch_keys_token_and_project_once() {
    let token = sign_rs256(key(0), Some("google-1"), &claims());
    let up = FakeUpstream::new();
    let h = deployed(&up);
    let mut instance = h.reused_instance(1000);
    let mut reused = Vec::new();
    for _ in 0..100 {
        let r = instance.handle(bearer(&token)).await.unwrap();
        assert_eq!((r.status, &r.json()["outcome"]), (200, &json!("loaded")), "{}", r.body_str());
        reused.push(r);
    }
    assert_eq!(fetches(&reused), [1, 1, 1], "key set, token, project id: once per instance");
    assert_eq!(instance.instances(), 1);
    assert!(
        reused.iter().flat_map(|r| inserts(&r.run)).all(|q| q.header("authorization") == Some("Bearer ya29.instance"))
    );
    // The same 100 events, a fresh instance each (wasmtime serve's default for WASI 0.2).
    let mut fresh = Vec::new();
    for _ in 0..100 {
        fresh.push(h.handle(bearer(&token)).await.unwrap());
    }
    assert_eq!(fetches(&fresh), [100, 100, 100]);
    println!(
        "fetches per 100 events (keys, token, project): fresh instances {:?}, one reused instance {:?}",
        fetches(&fresh),
        fetches(&reused)
    );
}

/// What a request answers and logs, without what may differ between two runs of it (its
/// duration, and what was fetched to get there).
fn observable(r: &HarnessResponse) -> (u16, Value, Value) {
    let mut line = log_line(r);
    line.as_object_mut().unwrap().remove("durationMs");
    (r.status, r.json(), line)
}

#[tokio::test(start_paused = true)]
async fn alternating_callers_tokens_and_events_through_one_instance_answer_as_fresh_instances_do() {
    const OTHER: &str = "intruder@other-project.iam.gserviceaccount.com";
    let good = sign_rs256(key(0), Some("google-1"), &claims());
    let wrong_email = sign_rs256(key(0), Some("google-1"), &with(claims(), "email", json!(OTHER)));
    let forged = sign_rs256(key(1), Some("google-1"), &claims());
    let unknown_kid = sign_rs256(key(1), Some("made-up"), &claims());
    let other_event = bare(BUCKET, USAGE_NAME, Some(42)).header("authorization", &format!("Bearer {good}"));
    let requests: Vec<(&str, TestRequest)> = vec![
        ("allowed caller, fixture event", bearer(&good)),
        ("caller not in the allow-list", bearer(&wrong_email)),
        ("no token", fixture_request("cloudevent-binary.json")),
        ("allowed caller, another event", other_event),
        ("forged signature", bearer(&forged)),
        (
            "bad input from an allowed caller",
            TestRequest::post("/", "{not json").header("authorization", &format!("Bearer {good}")),
        ),
        ("unknown key id", bearer(&unknown_kid)),
        ("not a log object", bare(BUCKET, "notes.txt", Some(1)).header("authorization", &format!("Bearer {good}"))),
    ];
    let up = FakeUpstream::new();
    let h = deployed(&up);
    let mut instance = h.reused_instance(1000);
    for round in 0..3 {
        for (case, request) in &requests {
            let on_reused = instance.handle(request.clone()).await.unwrap();
            let on_fresh = h.handle(request.clone()).await.unwrap();
            assert_eq!(observable(&on_reused), observable(&on_fresh), "round {round}, {case}");
            if on_reused.status != 200 {
                assert!(log_line(&on_reused).get("caller").is_none(), "{case}: a refusal names no caller");
            }
            crate::trust::assert_no_secrets(&on_reused, &[&good, &wrong_email, &forged, &unknown_kid, "ya29.instance"]);
        }
    }
    assert_eq!(instance.instances(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_bounded_reuse_count_starts_afresh() {
    let token = sign_rs256(key(0), Some("google-1"), &claims());
    let up = FakeUpstream::new();
    let h = deployed(&up);
    let mut instance = h.reused_instance(10);
    let mut all = Vec::new();
    for _ in 0..25 {
        all.push(instance.handle(bearer(&token)).await.unwrap());
    }
    assert_eq!((instance.instances(), fetches(&all)), (3, [3, 3, 3]));
}

#[tokio::test(start_paused = true)]
async fn a_revoked_cached_token_is_replaced_on_the_spot() {
    let token = sign_rs256(key(0), Some("google-1"), &claims());
    let up = FakeUpstream::new();
    // The second event's insert is refused (the cached token was revoked), then accepted.
    let h = deployed_with(
        &up,
        google::jobs_insert_rule("meta-project").replies([
            google::job_done_echo(14),
            google::google_error(401, "authError", "Invalid Credentials"),
            google::job_done_echo(14),
        ]),
    );
    let mut instance = h.reused_instance(100);
    assert_eq!(instance.handle(bearer(&token)).await.unwrap().status, 200);
    let r = instance.handle(bearer(&token)).await.unwrap();
    assert_eq!((r.status, &r.json()["outcome"]), (200, &json!("loaded")), "{}", r.body_str());
    let insert = INSERT_PATH.replace(PROJECT, "meta-project");
    let paths: Vec<&str> = r.run.outbound.iter().map(|o| o.path.as_str()).collect();
    assert_eq!(paths, [insert.as_str(), google::METADATA_TOKEN_PATH, insert.as_str()]);
}

#[tokio::test(start_paused = true)]
async fn cloud_run_callers_alternating_on_one_instance() {
    const INVOKER: &str = "ci-runner@demo-project.iam.gserviceaccount.com";
    let trigger = stripped(&claims());
    let invoker = stripped(&with(claims(), "email", json!(INVOKER)));
    let forged = sign_rs256(key(1), Some("made-up"), &claims());
    let up = loads(14);
    let h = crate::trust::cloud_run_harness(&up);
    let mut instance = h.reused_instance(100);
    for _ in 0..3 {
        let r = instance.handle(bearer(&trigger)).await.unwrap();
        assert_eq!((r.status, &log_line(&r)["caller"]), (200, &json!(PUSHER)));
        let attack = fixture_request("cloudevent-binary.json")
            .header("authorization", &format!("Bearer {forged}"))
            .header("x-serverless-authorization", &format!("Bearer {invoker}"));
        let r = instance.handle(attack).await.unwrap();
        assert_error(&r, 403, "forbidden", "Authorization and X-Serverless-Authorization name different callers");
        assert!(r.run.outbound.is_empty() && log_line(&r).get("caller").is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn without_reuse_every_oidc_event_fetches_the_keys() {
    // The "before" of issue 8, kept as a fact about hosts that do not reuse (Spin, and wasmtime
    // serve's default): each event pays one key-set fetch.
    let token = sign_rs256(key(0), Some("google-1"), &claims());
    let up = loads(14);
    up.route(google_keys());
    let h = oidc_harness(&up);
    for _ in 0..5 {
        let r = h.handle(bearer(&token)).await.unwrap();
        assert_eq!(r.run.outbound[0].url, CERTS);
    }
}
