//! Who may send events: the three trigger-authentication modes, decided before any other work.
//!
//! - `google-oidc`: the `Authorization: Bearer` token Pub/Sub push and Eventarc attach, verified
//!   here — RS256 signature against Google's JWK set (fetched by the caller, see
//!   [`Check::NeedKeys`]), issuer, audience, expiry, `email` in the allow-list, `email_verified`.
//! - `cloud-run`: Cloud Run already verified the token and the invoker role, and replaced the
//!   signature (`SIGNATURE_REMOVED_BY_GOOGLE`): the identity is read from the header Cloud Run
//!   checked (`X-Serverless-Authorization` before `Authorization`), only in that stripped form,
//!   and its `email` must be in the allow-list.
//! - `shared-secret`: a token in the `X-Gcr-Usage-Token` header or the `token` query parameter,
//!   compared in constant time.
//!
//! Refusals say what is wrong without quoting the credential: they end up in log lines.

use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use super::google_keys::{KeyCache, KeySet, max_age_ms};
use super::jwt::Token;
use crate::outcome::Refusal;
use crate::url::Endpoint;

pub const SECRET_HEADER: &str = "x-gcr-usage-token";
pub const SECRET_QUERY: &str = "token";
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
const GOOGLE_ISSUERS: [&str; 2] = ["accounts.google.com", "https://accounts.google.com"];
/// Clock skew tolerated between Google and this host.
const LEEWAY_SECS: i64 = 60;
/// The header Cloud Run checks first: "If both [`Authorization` and `X-Serverless-Authorization`]
/// are provided, only the `X-Serverless-Authorization` header is checked"
/// (<https://cloud.google.com/run/docs/authenticating/service-to-service#acquire-token>), and the
/// `Authorization` header then reaches the container untouched — unverified.
pub const SERVERLESS_AUTHORIZATION: &str = "x-serverless-authorization";

pub use crate::secret::Secret;

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

fn unauthenticated(reason: impl Into<String>) -> Check {
    Check::Denied(Refusal::Unauthenticated(reason.into()))
}

fn forbidden(reason: impl Into<String>) -> Check {
    Check::Denied(Refusal::Forbidden(reason.into()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Go on; `caller` is the verified (or platform-asserted) e-mail, for the log line.
    Allowed { caller: Option<String> },
    /// [`Refusal::Unauthenticated`] (no usable credential) or [`Refusal::Forbidden`] (a valid
    /// credential of someone not allowed).
    Denied(Refusal),
    /// The token names a key not among the keys at hand: fetch Google's keys, then check again.
    NeedKeys,
}

/// Decides whether the request may proceed. `keys`: what the caller holds (None = nothing yet).
pub fn check(auth: &TriggerAuth, headers: &HeaderMap, query: &str, keys: Option<&KeySet>, now_unix: u64) -> Check {
    match auth {
        TriggerAuth::None => Check::Allowed { caller: None },
        TriggerAuth::SharedSecret(secret) => shared_secret(secret, headers, query),
        TriggerAuth::CloudRun { emails } => cloud_run(emails, headers),
        TriggerAuth::GoogleOidc { audience, emails, .. } => {
            let token = match bearer(headers, http::header::AUTHORIZATION.as_str()) {
                Bearer::Missing => return unauthenticated("no Authorization: Bearer token"),
                Bearer::Malformed(why) => return unauthenticated(why),
                Bearer::Token(token) => token,
            };
            if token.header_str("alg") != Some("RS256") {
                return unauthenticated("the token is not signed with RS256");
            }
            let Some(kid) = token.header_str("kid") else { return unauthenticated("the token names no key (kid)") };
            let Some(key) = keys.and_then(|k| k.get(kid)) else { return Check::NeedKeys };
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
            // RFC 7519 §4.1.5: not to be accepted before `nbf`. Google's ID tokens carry none
            // today; a token that does is held to it.
            match token.claims.get("nbf") {
                None => {}
                Some(nbf) => match nbf.as_i64() {
                    Some(nbf) if nbf - LEEWAY_SECS <= now => {}
                    Some(_) => return unauthenticated("the token is not valid yet (nbf)"),
                    None => return unauthenticated("the token's nbf is not a number"),
                },
            }
            allowed_email(&token, emails, true)
        }
    }
}

/// `cloud-run`: the identity comes from the token Cloud Run verified — `X-Serverless-Authorization`
/// when present, else `Authorization` — and only in the form Cloud Run forwards after verifying
/// it, with the signature replaced by [`super::jwt::SIGNATURE_REMOVED`]. Cloud Run checked the
/// signature, audience, expiry and the caller's `run.invoker` role; this checks who it was.
fn cloud_run(emails: &[String], headers: &HeaderMap) -> Check {
    let serverless = bearer(headers, SERVERLESS_AUTHORIZATION);
    let authorization = bearer(headers, http::header::AUTHORIZATION.as_str());
    let (verified, header, beside) = match serverless {
        Bearer::Token(token) => (token, "X-Serverless-Authorization", Some(authorization)),
        Bearer::Malformed(why) => return unauthenticated(why),
        Bearer::Missing => match authorization {
            Bearer::Token(token) => (token, "Authorization", None),
            Bearer::Malformed(why) => return unauthenticated(why),
            Bearer::Missing => {
                return unauthenticated(
                    "no Authorization or X-Serverless-Authorization: Bearer token (is the service deployed with --no-allow-unauthenticated?)",
                );
            }
        },
    };
    if !verified.signature_removed_by_google() {
        // A token whose signature is still there did not pass through Cloud Run's check (a
        // public service, or another way in): its claims are whatever the sender wrote.
        return unauthenticated(format!(
            "the {header} token still carries a signature, so Cloud Run did not verify it (deploy with --no-allow-unauthenticated, or use GCR_USAGE_TRIGGER_AUTH=google-oidc on a public service)"
        ));
    }
    // Both headers: Cloud Run verified X-Serverless-Authorization and passed Authorization on
    // as the sender wrote it. A second identity there is at best confusing and at worst the
    // forgery this check exists for (a permitted invoker claiming the trigger's account).
    match beside {
        None | Some(Bearer::Missing) => {}
        Some(Bearer::Malformed(_)) => {
            return unauthenticated(
                "the Authorization header beside X-Serverless-Authorization is not a readable bearer token",
            );
        }
        Some(Bearer::Token(other)) => {
            let same = match (other.claim_str("email"), verified.claim_str("email")) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            };
            if !same {
                return forbidden(
                    "Authorization and X-Serverless-Authorization name different callers; only X-Serverless-Authorization was verified by Cloud Run",
                );
            }
        }
    }
    allowed_email(&verified, emails, false)
}

/// A bearer token header as sent: absent, not a readable `Bearer` JWT (the reason names the
/// header, never the value), or the parsed (unverified) token.
enum Bearer {
    Missing,
    Malformed(String),
    Token(Token),
}

fn bearer(headers: &HeaderMap, name: &str) -> Bearer {
    let display = if name == SERVERLESS_AUTHORIZATION { "X-Serverless-Authorization" } else { "Authorization" };
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else { return Bearer::Missing };
    if values.next().is_some() {
        // Which of two copies a proxy verified is anyone's guess: refuse rather than pick one.
        return Bearer::Malformed(format!("more than one {display} header"));
    }
    let Some((scheme, token)) = value.to_str().ok().map(str::trim).and_then(|v| v.split_once(' ')) else {
        return Bearer::Malformed(format!("the {display} header is not a Bearer token"));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Bearer::Malformed(format!("the {display} header is not a Bearer token"));
    }
    match Token::parse(token.trim()) {
        Ok(token) => Bearer::Token(token),
        Err(e) => Bearer::Malformed(format!("the {display} bearer token is unreadable: {}", e.0)),
    }
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
    let same: bool = Sha256::digest(offered.as_bytes()).ct_eq(&Sha256::digest(secret.expose().as_bytes())).into();
    if same { Check::Allowed { caller: None } } else { unauthenticated("the shared secret does not match") }
}

#[cfg(test)]
mod tests;
