use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;
use crate::auth::google_keys::{
    DEFAULT_KEYS_MAX_AGE_MS, MAX_KEYS, MAX_KEYS_MAX_AGE_MS, MAX_SOURCES, MIN_FETCH_INTERVAL_MS, MIN_KEYS_MAX_AGE_MS,
    STALE_IF_ERROR_MS,
};
use crate::auth::jwt::test_keys::{jwk, key};
use crate::auth::jwt::{SIGNATURE_REMOVED, sign_rs256};

const AUD: &str = "https://gcr-usage-abc-uc.a.run.app/";
const SA: &str = "push@demo-project.iam.gserviceaccount.com";
const NOW: u64 = 1_767_225_600;

fn oidc() -> TriggerAuth {
    TriggerAuth::GoogleOidc {
        audience: AUD.into(),
        emails: vec![SA.into()],
        jwks: Endpoint::parse(GOOGLE_JWKS_URL).unwrap(),
    }
}

fn keys() -> KeySet {
    let body = json!({"keys": [jwk(key(0), "k0"), {"kty": "EC", "kid": "ec"}]}).to_string();
    KeySet::parse(body.as_bytes()).unwrap()
}

fn claims() -> serde_json::Value {
    json!({"iss": "https://accounts.google.com", "aud": AUD, "email": SA, "email_verified": true,
           "iat": NOW - 10, "exp": NOW + 3590, "sub": "1234"})
}

fn with(mut claims: serde_json::Value, field: &str, value: serde_json::Value) -> serde_json::Value {
    if value.is_null() {
        claims.as_object_mut().unwrap().remove(field);
    } else {
        claims[field] = value;
    }
    claims
}

fn headers(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    h
}

fn run(auth: &TriggerAuth, token: &str) -> Check {
    check(auth, &headers(token), "", Some(&keys()), NOW)
}

fn denied(check: Check) -> (u16, String) {
    match check {
        Check::Denied(d) => (crate::contract::status_of_refusal(&d), d.message().to_string()),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn a_google_token_for_us_from_an_allowed_account_passes() {
    let token = sign_rs256(key(0), Some("k0"), &claims());
    assert_eq!(run(&oidc(), &token), Check::Allowed { caller: Some(SA.into()) });
    // `aud` as a list, issuer without scheme, upper-case e-mail in the allow-list.
    let token =
        sign_rs256(key(0), Some("k0"), &with(with(claims(), "aud", json!([AUD])), "iss", json!("accounts.google.com")));
    let auth = TriggerAuth::GoogleOidc {
        audience: AUD.into(),
        emails: vec![SA.to_uppercase()],
        jwks: Endpoint::parse(GOOGLE_JWKS_URL).unwrap(),
    };
    assert!(matches!(run(&auth, &token), Check::Allowed { .. }));
}

#[test]
fn every_forgery_and_mismatch_is_refused() {
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("forged signature", sign_rs256(key(1), Some("k0"), &claims()), 401, "signature does not verify"),
        (
            "wrong audience",
            sign_rs256(key(0), Some("k0"), &with(claims(), "aud", json!("https://elsewhere/"))),
            401,
            "audience",
        ),
        ("expired", sign_rs256(key(0), Some("k0"), &with(claims(), "exp", json!(NOW - 61))), 401, "expired"),
        ("no expiry", sign_rs256(key(0), Some("k0"), &with(claims(), "exp", json!(null))), 401, "no expiry"),
        ("future", sign_rs256(key(0), Some("k0"), &with(claims(), "iat", json!(NOW + 600))), 401, "future"),
        (
            "not yet valid",
            sign_rs256(key(0), Some("k0"), &with(claims(), "nbf", json!(NOW + 3600))),
            401,
            "not valid yet",
        ),
        ("nbf not a number", sign_rs256(key(0), Some("k0"), &with(claims(), "nbf", json!("soon"))), 401, "nbf"),
        (
            "issuer",
            sign_rs256(key(0), Some("k0"), &with(claims(), "iss", json!("https://evil.example"))),
            401,
            "issuer",
        ),
        (
            "wrong email",
            sign_rs256(key(0), Some("k0"), &with(claims(), "email", json!("x@evil.example"))),
            403,
            "not in GCR_USAGE_TRIGGER_EMAILS",
        ),
        (
            "unverified",
            sign_rs256(key(0), Some("k0"), &with(claims(), "email_verified", json!(false))),
            403,
            "not verified",
        ),
        ("no email", sign_rs256(key(0), Some("k0"), &with(claims(), "email", json!(null))), 403, "no email claim"),
        ("no kid", sign_rs256(key(0), None, &claims()), 401, "names no key"),
        ("garbage", "not-a-token".into(), 401, "unreadable"),
    ];
    for (name, token, status, reason) in cases {
        let (got, why) = denied(run(&oidc(), &token));
        assert_eq!(got, status, "{name}: {why}");
        assert!(why.contains(reason), "{name}: {why}");
        assert!(!why.contains(&token) || token.len() < 12, "{name}: the reason quotes the token");
    }
}

#[test]
fn unsigned_and_symmetric_tokens_are_refused_before_any_key_is_looked_up() {
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!("{}.{}.", b64(json!({"alg": "none", "kid": "k0"})), b64(claims()));
    assert_eq!(denied(run(&oidc(), &none)).0, 401);
    // HS256 "signed" with the public key as the HMAC secret: the classic confusion attack.
    let hs = format!("{}.{}.{}", b64(json!({"alg": "HS256", "kid": "k0"})), b64(claims()), b64(json!("mac")));
    let (status, reason) = denied(check(&oidc(), &headers(&hs), "", None, NOW));
    assert_eq!((status, reason.as_str()), (401, "the token is not signed with RS256"));
}

#[test]
fn unknown_keys_ask_for_the_key_set() {
    let token = sign_rs256(key(1), Some("k-new"), &claims());
    assert_eq!(run(&oidc(), &token), Check::NeedKeys, "a key not in the set: fetch again (rotation)");
    assert_eq!(check(&oidc(), &headers(&token), "", None, NOW), Check::NeedKeys);
    let mut no_header = HeaderMap::new();
    no_header.insert(http::header::AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
    assert_eq!(denied(check(&oidc(), &no_header, "", None, NOW)).0, 401);
    assert_eq!(denied(check(&oidc(), &HeaderMap::new(), "", None, NOW)).0, 401);
}

#[test]
fn nbf_within_the_leeway_or_past_is_accepted() {
    for nbf in [NOW - 3600, NOW, NOW + 59] {
        let token = sign_rs256(key(0), Some("k0"), &with(claims(), "nbf", json!(nbf)));
        assert!(matches!(run(&oidc(), &token), Check::Allowed { .. }), "nbf {nbf}");
    }
}

const TRIGGER: &str = "eventarc-trigger@demo-project.iam.gserviceaccount.com";
const INVOKER: &str = "someone-allowed-to-invoke@demo-project.iam.gserviceaccount.com";

/// A token as Cloud Run hands it to the container after verifying it.
fn stripped(email: &str) -> String {
    let signed = sign_rs256(key(0), Some("k0"), &with(claims(), "email", json!(email)));
    format!("{}.{SIGNATURE_REMOVED}", signed.rsplit_once('.').unwrap().0)
}

/// A token with a signature (its own key: nobody checks it in `cloud-run` mode).
fn signed(email: &str) -> String {
    sign_rs256(key(1), Some("attacker"), &with(claims(), "email", json!(email)))
}

fn cloud_run_check(authorization: Option<&str>, serverless: Option<&str>) -> Check {
    let mut h = HeaderMap::new();
    if let Some(a) = authorization {
        h.insert(http::header::AUTHORIZATION, a.parse().unwrap());
    }
    if let Some(s) = serverless {
        h.insert(SERVERLESS_AUTHORIZATION, s.parse().unwrap());
    }
    check(&TriggerAuth::CloudRun { emails: vec![TRIGGER.into()] }, &h, "", None, NOW)
}

/// (name, Authorization, X-Serverless-Authorization, status (0 = allowed), words in the reason)
type CloudRunCase = (&'static str, Option<String>, Option<String>, u16, &'static str);

#[test]
fn cloud_run_mode_reads_the_identity_cloud_run_verified() {
    let bearer = |t: &str| format!("Bearer {t}");
    let allowed = Check::Allowed { caller: Some(TRIGGER.into()) };
    let no_email = sign_rs256(key(0), Some("k0"), &with(claims(), "email", json!(null)));
    let cases: Vec<CloudRunCase> = vec![
        ("Eventarc / Pub/Sub push: Authorization only, verified", Some(bearer(&stripped(TRIGGER))), None, 0, ""),
        ("X-Serverless-Authorization only, verified", None, Some(bearer(&stripped(TRIGGER))), 0, ""),
        ("both, the same caller", Some(bearer(&stripped(TRIGGER))), Some(bearer(&stripped(TRIGGER))), 0, ""),
        (
            "the attack: a permitted invoker's verified token, and a forged one claiming the trigger",
            Some(bearer(&signed(TRIGGER))),
            Some(bearer(&stripped(INVOKER))),
            403,
            "different callers",
        ),
        (
            "the attack's other half: the invoker in both headers is still not the trigger",
            Some(bearer(&signed(INVOKER))),
            Some(bearer(&stripped(INVOKER))),
            403,
            "not in GCR_USAGE_TRIGGER_EMAILS",
        ),
        (
            "verified trigger beside someone else",
            Some(bearer(&stripped(INVOKER))),
            Some(bearer(&stripped(TRIGGER))),
            403,
            "different callers",
        ),
        (
            "verified beside a non-bearer Authorization",
            Some("Basic dXNlcjpwYXNz".into()),
            Some(bearer(&stripped(TRIGGER))),
            401,
            "not a readable bearer",
        ),
        (
            "verified beside garbage",
            Some(bearer("garbage")),
            Some(bearer(&stripped(TRIGGER))),
            401,
            "not a readable bearer",
        ),
        (
            "beside a token without an email",
            Some(bearer(&no_email)),
            Some(bearer(&stripped(TRIGGER))),
            403,
            "different callers",
        ),
        (
            "a signed token Cloud Run never saw (public service)",
            Some(bearer(&signed(TRIGGER))),
            None,
            401,
            "did not verify it",
        ),
        (
            "a signed X-Serverless-Authorization",
            None,
            Some(bearer(&signed(TRIGGER))),
            401,
            "X-Serverless-Authorization token still carries a signature",
        ),
        (
            "a verified token of someone else",
            Some(bearer(&stripped(INVOKER))),
            None,
            403,
            "not in GCR_USAGE_TRIGGER_EMAILS",
        ),
        ("no header at all", None, None, 401, "--no-allow-unauthenticated"),
        (
            "an unreadable X-Serverless-Authorization",
            Some(bearer(&stripped(TRIGGER))),
            Some(bearer("x.y")),
            401,
            "X-Serverless-Authorization bearer token is unreadable",
        ),
        (
            "X-Serverless-Authorization not bearer",
            Some(bearer(&stripped(TRIGGER))),
            Some("Basic eA==".into()),
            401,
            "X-Serverless-Authorization header is not a Bearer token",
        ),
        (
            "Authorization not bearer",
            Some("Basic eA==".into()),
            None,
            401,
            "Authorization header is not a Bearer token",
        ),
    ];
    for (name, authorization, serverless, status, words) in cases {
        let got = cloud_run_check(authorization.as_deref(), serverless.as_deref());
        if status == 0 {
            assert_eq!(got, allowed, "{name}");
            continue;
        }
        let (got_status, reason) = denied(got);
        assert_eq!(got_status, status, "{name}: {reason}");
        assert!(reason.contains(words), "{name}: {reason}");
        for token in authorization.iter().chain(serverless.iter()) {
            let token = token.trim_start_matches("Bearer ");
            assert!(token.len() < 12 || !reason.contains(token), "{name}: the reason quotes a token");
        }
    }
}

#[test]
fn cloud_run_mode_refuses_a_repeated_header() {
    let mut h = HeaderMap::new();
    h.append(SERVERLESS_AUTHORIZATION, format!("Bearer {}", stripped(TRIGGER)).parse().unwrap());
    h.append(SERVERLESS_AUTHORIZATION, format!("Bearer {}", stripped(INVOKER)).parse().unwrap());
    let (status, reason) = denied(check(&TriggerAuth::CloudRun { emails: vec![TRIGGER.into()] }, &h, "", None, NOW));
    assert_eq!((status, reason.as_str()), (401, "more than one X-Serverless-Authorization header"));
}

#[test]
fn shared_secret_from_header_or_query() {
    let auth = TriggerAuth::SharedSecret(Secret::new("s3cr3t/+="));
    let mut h = HeaderMap::new();
    h.insert(SECRET_HEADER, "s3cr3t/+=".parse().unwrap());
    assert_eq!(check(&auth, &h, "", None, NOW), Check::Allowed { caller: None });
    assert_eq!(
        check(&auth, &HeaderMap::new(), "a=1&token=s3cr3t%2F%2B%3D", None, NOW),
        Check::Allowed { caller: None }
    );
    let (status, reason) = denied(check(&auth, &HeaderMap::new(), "token=s3cr3t", None, NOW));
    assert_eq!((status, reason.as_str()), (401, "the shared secret does not match"));
    assert_eq!(denied(check(&auth, &HeaderMap::new(), "tokens=s3cr3t%2F%2B%3D", None, NOW)).0, 401);
    assert_eq!(format!("{auth:?}"), "SharedSecret(<redacted>)");
}

#[test]
fn key_sets_and_their_lifetime() {
    assert!(KeySet::parse(b"{}").is_err());
    assert!(KeySet::parse(b"{\"keys\":[{\"kty\":\"EC\",\"kid\":\"x\"}]}").is_err());
    assert!(KeySet::parse(b"<html>").is_err());
    let mut h = HeaderMap::new();
    h.insert(http::header::CACHE_CONTROL, "public, max-age=19204, must-revalidate".parse().unwrap());
    assert_eq!(max_age_ms(&h), 19_204_000);
    assert_eq!(max_age_ms(&HeaderMap::new()), DEFAULT_KEYS_MAX_AGE_MS);
    let src = GOOGLE_JWKS_URL;
    let mut cache = KeyCache::default();
    assert!(cache.fresh(src, 0).is_none());
    cache.store(src, keys(), 1_000, 120_000);
    assert!(cache.fresh(src, 120_999).is_some() && cache.fresh(src, 121_000).is_none());
    assert!(cache.fresh("https://elsewhere/certs", 2_000).is_none(), "keys are only used for their own endpoint");
    assert!(cache.usable(src, 121_000 + STALE_IF_ERROR_MS - 1).is_some(), "stale-if-error");
    assert!(cache.usable(src, 121_000 + STALE_IF_ERROR_MS).is_none());
    // max-age is bounded both ways.
    cache.store(src, keys(), 0, 0);
    assert!(cache.fresh(src, MIN_KEYS_MAX_AGE_MS - 1).is_some());
    cache.store(src, keys(), 0, u64::MAX);
    assert!(cache.fresh(src, MAX_KEYS_MAX_AGE_MS).is_none());
}

#[test]
fn fetches_are_rate_limited() {
    let mut cache = KeyCache::default();
    let src = GOOGLE_JWKS_URL;
    assert!(cache.may_fetch(src, 0), "the first fetch is always allowed");
    cache.fetching(src, 5_000);
    assert!(!cache.may_fetch(src, 5_000 + MIN_FETCH_INTERVAL_MS - 1));
    assert!(cache.may_fetch(src, 5_000 + MIN_FETCH_INTERVAL_MS));
    assert!(cache.may_fetch("https://other/certs", 5_000), "per key-set URL");
    assert_eq!(cache.fetches(), 1);
    // At most MAX_SOURCES URLs are held; the one fetched longest ago goes first.
    for i in 0..10 {
        cache.fetching(&format!("https://k{i}/certs"), 6_000 + i);
        cache.store(&format!("https://k{i}/certs"), keys(), 6_000 + i, 60_000);
    }
    assert_eq!(cache.sources(), MAX_SOURCES);
    assert!(cache.fresh("https://k9/certs", 7_000).is_some() && cache.fresh(src, 7_000).is_none());
}

#[test]
fn key_sets_are_bounded() {
    let many: Vec<_> = (0..40).map(|i| jwk(key(i % 2), &format!("k{i}"))).collect();
    let set = KeySet::parse(json!({"keys": many}).to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), MAX_KEYS);
}
