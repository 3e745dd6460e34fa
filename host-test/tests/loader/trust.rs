//! Trust, both ways, through the real component: the loader's own credentials from a
//! service-account key (checked by a fake token endpoint that verifies signature and claims),
//! and who may send events (google-oidc, cloud-run, shared-secret) — with forged, expired,
//! misdirected and unsigned tokens, and a key-set endpoint that is down. No credential ever
//! reaches a log line or an answer.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gcr_usage_core::auth::jwt::{Token, rsa_key_from_jwk, sign_rs256};
use gcr_usage_host_test::{
    DEFAULT_WALL_START_UNIX_SECS, FakeUpstream, Harness, Reply, Rule, TestRequest, exact, google,
};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rsa::RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

use crate::common::*;

pub(crate) const NOW: u64 = DEFAULT_WALL_START_UNIX_SECS;
const SA: &str = "loader@demo-project.iam.gserviceaccount.com";
pub(crate) const PUSHER: &str = "eventarc-trigger@demo-project.iam.gserviceaccount.com";
pub(crate) const AUDIENCE: &str = "https://gcr-usage-abc-uc.a.run.app";
const TOKEN_HOST: &str = "oauth2.googleapis.com";
const SCOPES: &str = "https://www.googleapis.com/auth/bigquery https://www.googleapis.com/auth/devstorage.read_only";

pub(crate) fn key(n: usize) -> &'static RsaPrivateKey {
    static KEYS: OnceLock<Vec<RsaPrivateKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..2).map(|i| RsaPrivateKey::new(&mut ChaCha8Rng::seed_from_u64(99 + i), 2048).unwrap()).collect()
    })[n]
}

pub(crate) fn jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    let b64 = |b: Vec<u8>| URL_SAFE_NO_PAD.encode(b);
    json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be())})
}

fn sa_key_json() -> String {
    let pem = key(0).to_pkcs8_pem(LineEnding::LF).unwrap();
    json!({"type": "service_account", "project_id": PROJECT, "private_key_id": "throwaway-1", "private_key": pem.as_str(),
           "client_email": SA, "token_uri": format!("https://{TOKEN_HOST}/token")})
    .to_string()
}

/// A token endpoint that does what Google's does: verify the assertion, then issue a token.
fn token_endpoint() -> Rule {
    Rule::post(exact("/token")).host(TOKEN_HOST).reply(Reply::dynamic(|r| {
        let body = r.body_str();
        let Some(assertion) = body.strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
        else {
            return Reply::json(400, &json!({"error": "unsupported_grant_type"}));
        };
        let Ok(token) = Token::parse(assertion) else { return Reply::json(400, &json!({"error": "invalid_grant"})) };
        let public = rsa_key_from_jwk(&jwk(key(0), "throwaway-1")).unwrap();
        let claims = Value::Object(token.claims.clone());
        let expected = json!({"iss": SA, "scope": SCOPES, "aud": format!("https://{TOKEN_HOST}/token"), "iat": NOW, "exp": NOW + 3600});
        if token.verify_rs256(&public).is_err() || token.header_str("kid") != Some("throwaway-1") || claims != expected {
            return Reply::json(400, &json!({"error": "invalid_grant", "error_description": format!("bad assertion: {claims}")}));
        }
        Reply::json(200, &json!({"access_token": "ya29.from-the-key", "expires_in": 3599, "token_type": "Bearer"}))
    }))
}

/// Bucket allowed, credentials from the throw-away key only.
fn sa_harness() -> Harness {
    Harness::new()
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .env("GCR_USAGE_AUTH", "service-account")
        .env("GCR_USAGE_SA_KEY", &sa_key_json())
}

pub(crate) fn assert_no_secrets(r: &gcr_usage_host_test::HarnessResponse, secrets: &[&str]) {
    for secret in secrets {
        assert!(!r.run.stdout_str().contains(secret), "log line carries a secret: {}", r.run.stdout_str());
        assert!(!r.body_str().contains(secret), "answer carries a secret: {}", r.body_str());
    }
}

#[tokio::test(start_paused = true)]
async fn a_service_account_key_is_exchanged_for_a_token_then_used() {
    let up = FakeUpstream::new();
    up.route(token_endpoint()).route(google::jobs_insert_rule(PROJECT).reply(google::job_done_echo(14)));
    let h = sa_harness().upstream(up.clone());
    let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_eq!((r.status, &r.json()["outcome"]), (200, &json!("loaded")), "{}", r.body_str());
    let [exchange, insert] = &r.run.outbound[..] else { panic!("{:?}", r.run.outbound) };
    assert_eq!(exchange.url, format!("https://{TOKEN_HOST}/token"));
    assert_eq!(insert.header("authorization"), Some("Bearer ya29.from-the-key"));
    assert!(insert.path.contains("/projects/demo-project/"), "the project comes from the key");
    let assertion = exchange.body_str().rsplit('=').next().unwrap().to_string();
    assert_no_secrets(&r, &["PRIVATE KEY", "ya29.from-the-key", &assertion]);
}

#[tokio::test(start_paused = true)]
async fn a_self_signed_jwt_skips_the_exchange() {
    let up = loads(14);
    let h = sa_harness().env("GCR_USAGE_SA_SELF_SIGNED_JWT", "true").upstream(up.clone());
    let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    let [insert] = &r.run.outbound[..] else { panic!("{:?}", r.run.outbound) };
    let jwt = insert.header("authorization").unwrap().strip_prefix("Bearer ").unwrap();
    let token = Token::parse(jwt).unwrap();
    token.verify_rs256(&rsa_key_from_jwk(&jwk(key(0), "x")).unwrap()).unwrap();
    assert_eq!(
        Value::Object(token.claims.clone()),
        json!({"iss": SA, "sub": SA, "scope": SCOPES, "iat": NOW, "exp": NOW + 3600})
    );
    assert_no_secrets(&r, &[jwt]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_exchange_is_502_naming_the_endpoint_not_the_key() {
    let up = FakeUpstream::new();
    up.route(
        Rule::post(exact("/token"))
            .reply(Reply::json(400, &json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}))),
    );
    let h = sa_harness().upstream(up.clone());
    let r = h.handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    let body = assert_error(&r, 502, "upstream-rejected", "OAuth token endpoint (service-account key) refused");
    assert!(body["reason"].as_str().unwrap().contains("Invalid JWT Signature"), "{body}");
    assert_no_secrets(&r, &["PRIVATE KEY", "eyJ"]);
}

// --- who may send events -------------------------------------------------------------------

pub(crate) fn claims() -> Value {
    json!({"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": PUSHER, "email_verified": true,
           "iat": NOW - 5, "exp": NOW + 3595, "sub": "1"})
}

pub(crate) fn with(mut c: Value, field: &str, value: Value) -> Value {
    c[field] = value;
    c
}

pub(crate) fn google_keys() -> Rule {
    Rule::get(exact("/oauth2/v3/certs")).host("www.googleapis.com").reply(
        Reply::json(200, &json!({"keys": [jwk(key(0), "google-1")]})).header("cache-control", "public, max-age=20000"),
    )
}

pub(crate) fn oidc_harness(up: &FakeUpstream) -> Harness {
    harness(up)
        .env("GCR_USAGE_TRIGGER_AUTH", "google-oidc")
        .env("GCR_USAGE_TRIGGER_AUDIENCE", AUDIENCE)
        .env("GCR_USAGE_TRIGGER_EMAILS", PUSHER)
}

pub(crate) fn bearer(token: &str) -> TestRequest {
    fixture_request("cloudevent-binary.json").header("authorization", &format!("Bearer {token}"))
}

#[tokio::test(start_paused = true)]
async fn a_google_signed_token_from_the_trigger_account_is_let_in() {
    let up = loads(14);
    up.route(google_keys());
    let token = sign_rs256(key(0), Some("google-1"), &claims());
    let r = oidc_harness(&up).handle(bearer(&token)).await.unwrap();
    assert_eq!((r.status, &r.json()["outcome"]), (200, &json!("loaded")), "{}", r.body_str());
    assert_eq!(r.run.outbound[0].url, "https://www.googleapis.com/oauth2/v3/certs");
    assert_eq!(log_line(&r)["caller"], PUSHER);
    assert_no_secrets(&r, &[&token]);
}

#[tokio::test(start_paused = true)]
async fn every_bad_token_is_refused_and_nothing_is_loaded() {
    let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let hs256 = format!("{}.{}.{}", b64(json!({"alg": "HS256", "kid": "google-1"})), b64(claims()), b64(json!("mac")));
    let none = format!("{}.{}.", b64(json!({"alg": "none", "kid": "google-1"})), b64(claims()));
    // (case, token, status, reason fragment, whether Google's keys are fetched to decide)
    let cases: Vec<(&str, String, u16, &str, bool)> = vec![
        ("forged signature", sign_rs256(key(1), Some("google-1"), &claims()), 401, "signature does not verify", true),
        (
            "unknown kid",
            sign_rs256(key(1), Some("attacker-1"), &claims()),
            401,
            "not among Google's signing keys",
            true,
        ),
        (
            "wrong audience",
            sign_rs256(key(0), Some("google-1"), &with(claims(), "aud", json!("https://other.run.app"))),
            401,
            "audience",
            true,
        ),
        (
            "expired",
            sign_rs256(key(0), Some("google-1"), &with(claims(), "exp", json!(NOW - 3600))),
            401,
            "expired",
            true,
        ),
        (
            "wrong email",
            sign_rs256(key(0), Some("google-1"), &with(claims(), "email", json!("someone@evil.example"))),
            403,
            "not in GCR_USAGE_TRIGGER_EMAILS",
            true,
        ),
        (
            "unverified email",
            sign_rs256(key(0), Some("google-1"), &with(claims(), "email_verified", json!(false))),
            403,
            "not verified",
            true,
        ),
        ("alg none", none, 401, "not signed with RS256", false),
        ("HS256 with the public key", hs256, 401, "not signed with RS256", false),
    ];
    for (case, token, status, reason, fetches) in cases {
        let up = FakeUpstream::new();
        up.route(google_keys());
        let r = oidc_harness(&up).handle(bearer(&token)).await.unwrap();
        let error = if status == 403 { "forbidden" } else { "unauthenticated" };
        let body = assert_error(&r, status, error, "");
        assert!(body["reason"].as_str().unwrap().contains(reason), "{case}: {body}");
        let urls: Vec<&str> = r.run.outbound.iter().map(|o| o.url.as_str()).collect();
        let expected: &[&str] = if fetches { &["https://www.googleapis.com/oauth2/v3/certs"] } else { &[] };
        assert_eq!(urls, expected, "{case}: no work beyond verifying the sender");
        assert_no_secrets(&r, &[&token]);
    }
    // No Authorization header at all.
    let up = FakeUpstream::new();
    let r = oidc_harness(&up).handle(fixture_request("cloudevent-binary.json")).await.unwrap();
    assert_error(&r, 401, "unauthenticated", "no Authorization: Bearer token");
    assert!(r.run.outbound.is_empty());
}

#[tokio::test(start_paused = true)]
async fn keys_that_cannot_be_fetched_are_503_and_nothing_is_loaded() {
    let token = sign_rs256(key(0), Some("google-1"), &claims());
    for reply in [Reply::status(503), Reply::connection_refused(), Reply::text(200, "<html>")] {
        let up = FakeUpstream::new();
        up.route(Rule::get(exact("/oauth2/v3/certs")).reply(reply));
        let r = oidc_harness(&up).handle(bearer(&token)).await.unwrap();
        let body = assert_error(&r, 503, "upstream-unavailable", "cannot verify the sender");
        assert_eq!(r.run.outbound.len(), 1, "{body}");
        assert_no_secrets(&r, &[&token]);
    }
}

/// A token as Cloud Run hands it to the container once it verified it: signature replaced.
pub(crate) fn stripped(claims: &Value) -> String {
    let signed = sign_rs256(key(1), Some("k"), claims);
    format!("{}.SIGNATURE_REMOVED_BY_GOOGLE", signed.rsplit_once('.').unwrap().0)
}

pub(crate) fn cloud_run_harness(up: &FakeUpstream) -> Harness {
    harness(up).env("GCR_USAGE_TRIGGER_AUTH", "cloud-run").env("GCR_USAGE_TRIGGER_EMAILS", PUSHER)
}

#[tokio::test(start_paused = true)]
async fn cloud_run_mode_trusts_the_platform_and_checks_the_email() {
    let up = loads(14);
    let r = cloud_run_harness(&up).handle(bearer(&stripped(&claims()))).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(log_line(&r)["caller"], PUSHER);
    let intruder = stripped(&with(claims(), "email", json!("intruder@other-project.iam.gserviceaccount.com")));
    let up = FakeUpstream::new();
    let r = cloud_run_harness(&up).handle(bearer(&intruder)).await.unwrap();
    assert_error(&r, 403, "forbidden", "intruder@other-project.iam.gserviceaccount.com is not in");
    assert!(r.run.outbound.is_empty());
}

/// The attack of issue 8: any principal allowed to invoke the service sends its own token in
/// X-Serverless-Authorization (Cloud Run verifies it, strips its signature) and a self-made
/// token claiming the trigger's account in Authorization (Cloud Run passes it on untouched).
#[tokio::test(start_paused = true)]
async fn cloud_run_mode_takes_the_caller_from_the_header_cloud_run_verified() {
    const INVOKER: &str = "ci-runner@demo-project.iam.gserviceaccount.com";
    let forged_trigger = sign_rs256(key(1), Some("made-up"), &claims());
    let verified_invoker = stripped(&with(claims(), "email", json!(INVOKER)));
    let verified_trigger = stripped(&claims());
    let both = |authorization: &str, serverless: &str| {
        fixture_request("cloudevent-binary.json")
            .header("authorization", &format!("Bearer {authorization}"))
            .header("x-serverless-authorization", &format!("Bearer {serverless}"))
    };
    let serverless_only = |token: &str| {
        fixture_request("cloudevent-binary.json").header("x-serverless-authorization", &format!("Bearer {token}"))
    };
    // (case, request, status, error, reason fragment)
    let cases: Vec<(&str, TestRequest, u16, &str, &str)> = vec![
        ("the attack", both(&forged_trigger, &verified_invoker), 403, "forbidden", "different callers"),
        (
            "the invoker, honestly",
            both(&verified_invoker, &verified_invoker),
            403,
            "forbidden",
            "ci-runner@demo-project.iam.gserviceaccount.com is not in",
        ),
        (
            "the trigger beside another identity",
            both(&verified_invoker, &verified_trigger),
            403,
            "forbidden",
            "different callers",
        ),
        (
            "a forged token alone (a public service)",
            bearer(&forged_trigger),
            401,
            "unauthenticated",
            "Cloud Run did not verify it",
        ),
        (
            "a forged X-Serverless-Authorization",
            serverless_only(&forged_trigger),
            401,
            "unauthenticated",
            "still carries a signature",
        ),
    ];
    for (case, request, status, error, reason) in cases {
        let up = FakeUpstream::new();
        let r = cloud_run_harness(&up).handle(request).await.unwrap();
        let body = assert_error(&r, status, error, "");
        assert!(body["reason"].as_str().unwrap().contains(reason), "{case}: {body}");
        assert!(r.run.outbound.is_empty(), "{case}: nothing loaded, nothing fetched");
        assert!(log_line(&r).get("caller").is_none(), "{case}: no caller logged for a refusal");
        assert_no_secrets(&r, &[&forged_trigger, &verified_invoker, &verified_trigger]);
    }
    // The verified trigger, in X-Serverless-Authorization alone or beside itself, is let in.
    for request in [serverless_only(&verified_trigger), both(&verified_trigger, &verified_trigger)] {
        let up = loads(14);
        let r = cloud_run_harness(&up).handle(request).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body_str());
        assert_eq!(log_line(&r)["caller"], PUSHER);
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_valid_only_later_is_refused() {
    let up = FakeUpstream::new();
    up.route(google_keys());
    let token = sign_rs256(key(0), Some("google-1"), &with(claims(), "nbf", json!(NOW + 3600)));
    let r = oidc_harness(&up).handle(bearer(&token)).await.unwrap();
    assert_error(&r, 401, "unauthenticated", "the token is not valid yet (nbf)");
    assert_eq!(r.run.outbound.len(), 1, "only the key set");
}

#[tokio::test(start_paused = true)]
async fn shared_secret_in_a_header_or_the_query() {
    const SECRET: &str = "a-long-random-shared-secret-0123";
    let secret_harness = |up: &FakeUpstream| {
        harness(up).env("GCR_USAGE_TRIGGER_AUTH", "shared-secret").env("GCR_USAGE_TRIGGER_SECRET", SECRET)
    };
    let up = loads(14);
    let r = secret_harness(&up)
        .handle(fixture_request("cloudevent-binary.json").header("x-gcr-usage-token", SECRET))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    let mut by_query = fixture_request("cloudevent-binary.json");
    by_query.path = format!("/?token={SECRET}");
    let r = secret_harness(&up).handle(by_query).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.body_str());
    let up = FakeUpstream::new();
    let wrong = "a-long-random-shared-secret-0124";
    let r = secret_harness(&up)
        .handle(fixture_request("cloudevent-binary.json").header("x-gcr-usage-token", wrong))
        .await
        .unwrap();
    assert_error(&r, 401, "unauthenticated", "the shared secret does not match");
    assert!(r.run.outbound.is_empty());
    assert_no_secrets(&r, &[SECRET, wrong]);
}
