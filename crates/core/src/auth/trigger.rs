//! Who may send events: the three trigger-authentication modes, decided before any other work.
//!
//! - `google-oidc`: the `Authorization: Bearer` token Pub/Sub push and Eventarc attach, verified
//!   here — RS256 signature against Google's JWK set (fetched by the caller, see
//!   [`Check::NeedKeys`]), issuer, audience, expiry, `email` in the allow-list, `email_verified`.
//! - `cloud-run`: Cloud Run already verified the token and the invoker role, and replaced the
//!   signature (`SIGNATURE_REMOVED_BY_GOOGLE`): only the `email` claim is checked.
//! - `shared-secret`: a token in the `X-Gcr-Usage-Token` header or the `token` query parameter,
//!   compared in constant time.
//!
//! Refusals say what is wrong without quoting the credential: they end up in log lines.

use std::collections::HashMap;

use http::HeaderMap;
use rsa::RsaPublicKey;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::jwt::{Token, rsa_key_from_jwk};
use crate::url::Endpoint;

pub const SECRET_HEADER: &str = "x-gcr-usage-token";
pub const SECRET_QUERY: &str = "token";
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
const GOOGLE_ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
/// Clock skew tolerated between Google and this host.
const LEEWAY_SECS: i64 = 60;
/// How long fetched keys are trusted when the answer says nothing (Google rotates daily-ish).
pub const DEFAULT_KEYS_MAX_AGE_MS: u64 = 3_600_000;

/// A secret value: compared, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerAuth {
    /// Anyone who can reach the service (Cloud Run's IAM, a private network, or local use).
    None,
    GoogleOidc {
        audience: String,
        emails: Vec<String>,
        jwks: Endpoint,
    },
    CloudRun {
        emails: Vec<String>,
    },
    SharedSecret(Secret),
}

/// A refusal: 401 (no usable credential) or 403 (a valid credential of someone not allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub status: u16,
    pub reason: String,
}

impl Denial {
    pub fn error(&self) -> &'static str {
        if self.status == 403 { "forbidden" } else { "unauthenticated" }
    }
}

fn unauthenticated(reason: impl Into<String>) -> Check {
    Check::Denied(Denial { status: 401, reason: reason.into() })
}

fn forbidden(reason: impl Into<String>) -> Check {
    Check::Denied(Denial { status: 403, reason: reason.into() })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Go on; `caller` is the verified (or platform-asserted) e-mail, for the log line.
    Allowed {
        caller: Option<String>,
    },
    Denied(Denial),
    /// The token names a key not among the keys at hand: fetch Google's keys, then check again.
    NeedKeys,
}

/// Google's signing keys by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet(HashMap<String, RsaPublicKey>);

impl KeySet {
    /// Reads a JWK set (`{"keys":[{"kty":"RSA","kid":…,"n":…,"e":…}, …]}`); non-RSA keys are skipped.
    pub fn parse(body: &[u8]) -> Result<KeySet, String> {
        let value: Value = serde_json::from_slice(body).map_err(|_| "the key set is not JSON".to_string())?;
        let keys = value.get("keys").and_then(Value::as_array).ok_or("the key set has no keys array")?;
        let set: HashMap<String, RsaPublicKey> =
            keys.iter().filter_map(|k| Some((k.get("kid")?.as_str()?.to_string(), rsa_key_from_jwk(k)?))).collect();
        if set.is_empty() {
            return Err("the key set holds no RSA key".into());
        }
        Ok(KeySet(set))
    }
}

/// Keys fetched by this instance, and until when they are trusted (monotonic ms).
#[derive(Debug, Default)]
pub struct KeyCache {
    keys: Option<(KeySet, u64)>,
}

impl KeyCache {
    pub fn fresh(&self, now_ms: u64) -> Option<&KeySet> {
        self.keys.as_ref().filter(|(_, until)| now_ms < *until).map(|(k, _)| k)
    }

    pub fn store(&mut self, keys: KeySet, now_ms: u64, max_age_ms: u64) {
        self.keys = Some((keys, now_ms.saturating_add(max_age_ms)));
    }
}

/// `Cache-Control: max-age=N` of the key-set answer, in ms.
pub fn max_age_ms(headers: &HeaderMap) -> u64 {
    headers
        .get(http::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok()))
        .map_or(DEFAULT_KEYS_MAX_AGE_MS, |s| s.saturating_mul(1000))
}

/// Decides whether the request may proceed. `keys`: what the caller holds (None = nothing yet).
pub fn check(auth: &TriggerAuth, headers: &HeaderMap, query: &str, keys: Option<&KeySet>, now_unix: u64) -> Check {
    match auth {
        TriggerAuth::None => Check::Allowed { caller: None },
        TriggerAuth::SharedSecret(secret) => shared_secret(secret, headers, query),
        TriggerAuth::CloudRun { emails } => {
            let token = match bearer(headers).map(Token::parse) {
                None => {
                    return unauthenticated(
                        "no Authorization: Bearer token (is the service deployed with --no-allow-unauthenticated?)",
                    );
                }
                Some(Err(e)) => return unauthenticated(format!("the bearer token is unreadable: {}", e.0)),
                Some(Ok(t)) => t,
            };
            allowed_email(&token, emails, false)
        }
        TriggerAuth::GoogleOidc { audience, emails, .. } => {
            let token = match bearer(headers).map(Token::parse) {
                None => return unauthenticated("no Authorization: Bearer token"),
                Some(Err(e)) => return unauthenticated(format!("the bearer token is unreadable: {}", e.0)),
                Some(Ok(t)) => t,
            };
            if token.header_str("alg") != Some("RS256") {
                return unauthenticated("the token is not signed with RS256");
            }
            let Some(kid) = token.header_str("kid") else { return unauthenticated("the token names no key (kid)") };
            let Some(key) = keys.and_then(|k| k.0.get(kid)) else { return Check::NeedKeys };
            if let Err(e) = token.verify_rs256(key) {
                return unauthenticated(format!("the token is not Google's: {}", e.0));
            }
            if !token.claim_str("iss").is_some_and(|iss| GOOGLE_ISSUERS.contains(&iss)) {
                return unauthenticated("the token's issuer is not accounts.google.com");
            }
            let aud_ok = match token.claims.get("aud") {
                Some(Value::String(a)) => a == audience,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !aud_ok {
                return unauthenticated("the token's audience is not GCR_USAGE_TRIGGER_AUDIENCE");
            }
            let now = now_unix as i64;
            match token.claims.get("exp").and_then(Value::as_i64) {
                Some(exp) if exp + LEEWAY_SECS > now => {}
                Some(_) => return unauthenticated("the token has expired"),
                None => return unauthenticated("the token has no expiry"),
            }
            if token.claims.get("iat").and_then(Value::as_i64).is_some_and(|iat| iat - LEEWAY_SECS > now) {
                return unauthenticated("the token was issued in the future");
            }
            allowed_email(&token, emails, true)
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn allowed_email(token: &Token, emails: &[String], must_be_verified: bool) -> Check {
    let Some(email) = token.claim_str("email") else { return forbidden("the token carries no email claim") };
    if !emails.iter().any(|e| e.eq_ignore_ascii_case(email)) {
        return forbidden(format!("{} is not in GCR_USAGE_TRIGGER_EMAILS", crate::object::truncate(email, 120)));
    }
    if must_be_verified && token.claims.get("email_verified") != Some(&Value::Bool(true)) {
        return forbidden(format!("the email {} is not verified", crate::object::truncate(email, 120)));
    }
    Check::Allowed { caller: Some(email.to_string()) }
}

fn shared_secret(secret: &Secret, headers: &HeaderMap, query: &str) -> Check {
    let offered = headers.get(SECRET_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| {
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == SECRET_QUERY)
            .map(|(_, v)| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    });
    let Some(offered) = offered else {
        return unauthenticated(format!("no {SECRET_HEADER} header or {SECRET_QUERY} query parameter"));
    };
    // Hashing first makes the comparison's time independent of both values' lengths.
    let same: bool = Sha256::digest(offered.as_bytes()).ct_eq(&Sha256::digest(secret.0.as_bytes())).into();
    if same { Check::Allowed { caller: None } } else { unauthenticated("the shared secret does not match") }
}

#[cfg(test)]
mod tests;
