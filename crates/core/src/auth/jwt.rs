//! Compact JWTs with RS256, the only algorithm gcr-usage signs or accepts.
//!
//! Written against the `rsa` and `sha2` crates directly rather than a JWT library: the checks
//! that matter here (the algorithm is exactly RS256, never `none` or HS256 with a public key as
//! the secret; the key is chosen by `kid`) are a few lines each and stay visible in one place.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value};
use sha2::Sha256;

/// Signs `claims` with RS256; `kid` names the key for the verifier.
pub fn sign_rs256(key: &RsaPrivateKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Map::new();
    header.insert("alg".into(), "RS256".into());
    header.insert("typ".into(), "JWT".into());
    if let Some(kid) = kid {
        header.insert("kid".into(), kid.into());
    }
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(Value::Object(header).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = SigningKey::<Sha256>::new(key.clone()).sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// A token split into its parts; nothing is trusted until [`Token::verify_rs256`] passed.
#[derive(Debug, Clone)]
pub struct Token {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
    /// The signature part is Cloud Run's [`SIGNATURE_REMOVED`] marker.
    signature_removed: bool,
}

/// What Cloud Run puts in place of the signature of every ID token it verified before handing
/// the request to the container ("Signature removed",
/// <https://cloud.google.com/run/docs/troubleshooting#signature-removed>). Only a token carrying
/// it can have passed Cloud Run's check; one with a signature went around it.
pub const SIGNATURE_REMOVED: &str = "SIGNATURE_REMOVED_BY_GOOGLE";

/// Why a token was refused. Messages never quote the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub String);

fn invalid<T>(message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(message.into()))
}

impl Token {
    pub fn parse(token: &str) -> Result<Token, Invalid> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return invalid("not a JWT (three dot-separated parts expected)");
        };
        let json = |part: &str, what: &str| -> Result<Map<String, Value>, Invalid> {
            let bytes = URL_SAFE_NO_PAD.decode(part).or_else(|_| invalid(format!("the {what} is not base64url")))?;
            match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Ok(map),
                _ => invalid(format!("the {what} is not a JSON object")),
            }
        };
        let header = json(h, "header")?;
        let claims = json(c, "claims")?;
        // Cloud Run replaces the signature with its marker; that is not base64url, and only the
        // `cloud-run` mode (which trusts the platform's check) accepts such a token.
        let signature_removed = s == SIGNATURE_REMOVED;
        let signature = URL_SAFE_NO_PAD.decode(s).unwrap_or_default();
        Ok(Token { header, claims, signing_input: format!("{h}.{c}"), signature, signature_removed })
    }

    /// Whether Cloud Run verified this token and removed its signature (see [`SIGNATURE_REMOVED`]).
    pub fn signature_removed_by_google(&self) -> bool {
        self.signature_removed
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// Checks the header says RS256 and the signature is `key`'s over header and claims.
    pub fn verify_rs256(&self, key: &RsaPublicKey) -> Result<(), Invalid> {
        match self.header_str("alg") {
            Some("RS256") => {}
            Some(other) => {
                return invalid(format!(
                    "algorithm {:?} is not accepted (RS256 only)",
                    crate::object::truncate(other, 20)
                ));
            }
            None => return invalid("the header names no algorithm"),
        }
        let signature = Signature::try_from(self.signature.as_slice()).or_else(|_| invalid("malformed signature"))?;
        VerifyingKey::<Sha256>::new(key.clone())
            .verify(self.signing_input.as_bytes(), &signature)
            .or_else(|_| invalid("the signature does not verify"))
    }
}

/// An RSA public key from a JWK's `n` and `e` (base64url, big-endian).
pub fn rsa_key_from_jwk(jwk: &Value) -> Option<RsaPublicKey> {
    if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
        return None;
    }
    let number = |name: &str| {
        let text = jwk.get(name)?.as_str()?;
        URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok().map(|b| BigUint::from_bytes_be(&b))
    };
    RsaPublicKey::new(number("n")?, number("e")?).ok()
}

#[cfg(test)]
pub(crate) mod test_keys {
    //! One deterministic 2048-bit key pair for every auth test (generating one per test would
    //! cost a second each); never used anywhere but tests.
    use std::sync::OnceLock;

    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;
    use rsa::RsaPrivateKey;
    use rsa::traits::PublicKeyParts;

    pub fn key(n: u64) -> &'static RsaPrivateKey {
        static KEYS: OnceLock<Vec<RsaPrivateKey>> = OnceLock::new();
        &KEYS.get_or_init(|| {
            (0..2).map(|i| RsaPrivateKey::new(&mut ChaCha8Rng::seed_from_u64(7 + i), 2048).unwrap()).collect()
        })[n as usize]
    }

    pub fn jwk(key: &RsaPrivateKey, kid: &str) -> serde_json::Value {
        use base64::Engine;
        let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        serde_json::json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                           "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be())})
    }
}

#[cfg(test)]
mod tests {
    use super::test_keys::{jwk, key};
    use super::*;
    use serde_json::json;

    #[test]
    fn signed_tokens_verify_and_tampering_is_caught() {
        let token = sign_rs256(key(0), Some("k1"), &json!({"sub": "x", "exp": 10}));
        let parsed = Token::parse(&token).unwrap();
        assert_eq!((parsed.header_str("kid"), parsed.claim_str("sub")), (Some("k1"), Some("x")));
        let public = rsa_key_from_jwk(&jwk(key(0), "k1")).unwrap();
        assert_eq!(parsed.verify_rs256(&public), Ok(()));
        let other = rsa_key_from_jwk(&jwk(key(1), "k2")).unwrap();
        assert_eq!(parsed.verify_rs256(&other), Err(Invalid("the signature does not verify".into())));
        // Claims swapped under the same signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(json!({"sub": "admin", "exp": 10}).to_string());
        parts[1] = &forged;
        assert!(Token::parse(&parts.join(".")).unwrap().verify_rs256(&public).is_err());
    }

    #[test]
    fn only_rs256_is_accepted() {
        let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let public = rsa_key_from_jwk(&jwk(key(0), "k1")).unwrap();
        for alg in ["none", "HS256", "RS512"] {
            let token = format!("{}.{}.", b64(json!({"alg": alg})), b64(json!({"sub": "x"})));
            let e = Token::parse(&token).unwrap().verify_rs256(&public).unwrap_err();
            assert!(e.0.contains("is not accepted"), "{alg}: {e:?}");
        }
        let no_alg = format!("{}.{}.", b64(json!({})), b64(json!({})));
        assert!(Token::parse(&no_alg).unwrap().verify_rs256(&public).is_err());
    }

    #[test]
    fn malformed_tokens() {
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.x", "e30.!!.x", "WyJ4Il0.e30.x"] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
        assert!(rsa_key_from_jwk(&json!({"kty": "EC"})).is_none());
        assert!(rsa_key_from_jwk(&json!({"kty": "RSA", "n": "!!", "e": "AQAB"})).is_none());
    }
}
