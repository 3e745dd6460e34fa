use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;
use crate::auth::jwt::sign_rs256;
use crate::auth::jwt::test_keys::{jwk, key};

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
        Check::Denied(d) => (d.status, d.reason),
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
fn cloud_run_mode_checks_only_the_email() {
    let auth = TriggerAuth::CloudRun { emails: vec![SA.into()] };
    let signed = sign_rs256(key(1), Some("whatever"), &with(claims(), "exp", json!(1)));
    let stripped = format!("{}.SIGNATURE_REMOVED_BY_GOOGLE", signed.rsplit_once('.').unwrap().0);
    assert_eq!(check(&auth, &headers(&stripped), "", None, NOW), Check::Allowed { caller: Some(SA.into()) });
    let other = sign_rs256(key(0), None, &with(claims(), "email", json!("x@y.z")));
    assert_eq!(denied(check(&auth, &headers(&other), "", None, NOW)).0, 403);
    assert!(denied(check(&auth, &HeaderMap::new(), "", None, NOW)).1.contains("--no-allow-unauthenticated"));
}

#[test]
fn shared_secret_from_header_or_query() {
    let auth = TriggerAuth::SharedSecret(Secret::new("s3cr3t/+=".into()));
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
    let mut cache = KeyCache::default();
    assert!(cache.fresh(0).is_none());
    cache.store(keys(), 1_000, 500);
    assert!(cache.fresh(1_499).is_some() && cache.fresh(1_500).is_none());
}
