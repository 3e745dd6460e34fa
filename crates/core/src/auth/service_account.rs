//! Service-account key JSON → access token, with nothing but outbound HTTP: an RS256 JWT signed
//! with the key, exchanged at the key's `token_uri` (JWT-bearer grant), or — self-signed mode —
//! used directly as the bearer token, skipping the exchange.
//!
//! The key is a secret: `Debug` is redacted and no error message quotes any of its values.

use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use serde::Deserialize;
use serde_json::json;

use super::jwt::sign_rs256;
use crate::url::Endpoint;

/// BigQuery (jobs, uploads) and read-only Cloud Storage (log downloads): nothing more.
pub const SCOPES: &str =
    "https://www.googleapis.com/auth/bigquery https://www.googleapis.com/auth/devstorage.read_only";
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Google accepts assertions valid for at most an hour.
const LIFETIME_SECS: u64 = 3600;

#[derive(Clone)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub project_id: Option<String>,
    pub token_uri: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// Keys are the same key when Google would say so: same account, same key id, same endpoint.
impl PartialEq for ServiceAccountKey {
    fn eq(&self, other: &Self) -> bool {
        (&self.client_email, &self.private_key_id, &self.token_uri)
            == (&other.client_email, &other.private_key_id, &other.token_uri)
    }
}
impl Eq for ServiceAccountKey {}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    project_id: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccountKey {
    /// Reads the JSON key file as `gcloud iam service-accounts keys create` writes it. The
    /// error names the field at fault and never quotes a value.
    pub fn parse(json: &str) -> Result<ServiceAccountKey, String> {
        let file: KeyFile = serde_json::from_str(json).map_err(|e| {
            format!("is not a service-account key JSON object (line {}, column {})", e.line(), e.column())
        })?;
        match file.kind.as_deref() {
            None | Some("service_account") => {}
            Some(_) => return Err("field type: must be \"service_account\"".into()),
        }
        let client_email = file
            .client_email
            .filter(|e| e.contains('@') && !e.trim().is_empty())
            .ok_or("field client_email: missing or not an e-mail address")?;
        let pem = file.private_key.ok_or("field private_key: missing")?;
        let key = RsaPrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
            .map_err(|_| "field private_key: not an RSA private key in PEM (PKCS#8 or PKCS#1)".to_string())?;
        let token_uri = file.token_uri.unwrap_or_else(|| GOOGLE_TOKEN_URI.to_string());
        Endpoint::parse(&token_uri).map_err(|_| "field token_uri: not an http(s) URL".to_string())?;
        Ok(ServiceAccountKey {
            client_email,
            private_key_id: file.private_key_id.filter(|k| !k.is_empty()),
            project_id: file.project_id.filter(|p| !p.is_empty()),
            token_uri,
            key,
        })
    }

    /// The JWT-bearer assertion for the token endpoint (`aud` = the key's `token_uri`).
    pub fn assertion(&self, now_unix: u64) -> String {
        let claims = json!({
            "iss": self.client_email, "scope": SCOPES, "aud": self.token_uri,
            "iat": now_unix, "exp": now_unix + LIFETIME_SECS,
        });
        sign_rs256(&self.key, self.private_key_id.as_deref(), &claims)
    }

    /// A self-signed JWT used directly as the bearer token: `scope` instead of `aud`, so one
    /// token serves BigQuery and Cloud Storage (Google takes one or the other, never both).
    pub fn self_signed(&self, now_unix: u64) -> String {
        let claims = json!({
            "iss": self.client_email, "sub": self.client_email, "scope": SCOPES,
            "iat": now_unix, "exp": now_unix + LIFETIME_SECS,
        });
        sign_rs256(&self.key, self.private_key_id.as_deref(), &claims)
    }

    /// `POST token_uri` with `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…`;
    /// the answer is the same token JSON as the metadata server's.
    pub fn token_request(&self, now_unix: u64) -> http::Request<Vec<u8>> {
        let body = format!(
            "grant_type={}&assertion={}",
            crate::url::encode("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            self.assertion(now_unix)
        );
        // token_uri was validated when the key was read.
        super::form_post(&self.token_uri, body)
    }
}

#[cfg(test)]
mod tests {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::traits::PublicKeyParts;

    use super::*;
    use crate::auth::jwt::test_keys::{jwk, key};
    use crate::auth::jwt::{Token, rsa_key_from_jwk};

    pub fn key_json(token_uri: &str) -> String {
        let pem = key(0).to_pkcs8_pem(LineEnding::LF).unwrap();
        json!({"type": "service_account", "project_id": "demo-project", "private_key_id": "k-123",
               "private_key": pem.as_str(), "client_email": "loader@demo-project.iam.gserviceaccount.com",
               "token_uri": token_uri})
        .to_string()
    }

    #[test]
    fn parses_a_key_file_and_redacts_it() {
        let k = ServiceAccountKey::parse(&key_json("https://oauth2.googleapis.com/token")).unwrap();
        assert_eq!(k.client_email, "loader@demo-project.iam.gserviceaccount.com");
        assert_eq!((k.private_key_id.as_deref(), k.project_id.as_deref()), (Some("k-123"), Some("demo-project")));
        let debug = format!("{k:?}");
        assert!(debug.contains("<redacted>") && !debug.contains("PRIVATE KEY"), "{debug}");
        assert_eq!(k.key.n(), key(0).n());
    }

    #[test]
    fn key_errors_name_the_field_and_quote_nothing() {
        let good: serde_json::Value = serde_json::from_str(&key_json("https://x/token")).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[field] = value;
            ServiceAccountKey::parse(&v.to_string()).unwrap_err()
        };
        assert!(with("type", json!("authorized_user")).starts_with("field type"));
        assert!(with("client_email", json!("nobody")).starts_with("field client_email"));
        let e = with("private_key", json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
        assert!(e.starts_with("field private_key") && !e.contains("AAAA"), "{e}");
        assert!(with("token_uri", json!("ftp://x")).starts_with("field token_uri"));
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("private_key");
        assert_eq!(ServiceAccountKey::parse(&missing.to_string()).unwrap_err(), "field private_key: missing");
        assert!(ServiceAccountKey::parse("not json").unwrap_err().starts_with("is not a service-account key"));
    }

    #[test]
    fn assertion_claims_and_signature() {
        let k = ServiceAccountKey::parse(&key_json("http://127.0.0.1:9/token")).unwrap();
        let request = k.token_request(1_700_000_000);
        assert_eq!(request.uri(), "http://127.0.0.1:9/token");
        assert_eq!(request.headers()["content-type"], "application/x-www-form-urlencoded");
        let body = String::from_utf8(request.body().clone()).unwrap();
        let assertion =
            body.strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=").unwrap();
        let token = Token::parse(assertion).unwrap();
        token.verify_rs256(&rsa_key_from_jwk(&jwk(key(0), "k-123")).unwrap()).unwrap();
        assert_eq!(token.header_str("kid"), Some("k-123"));
        assert_eq!(
            serde_json::Value::Object(token.claims.clone()),
            json!({"iss": "loader@demo-project.iam.gserviceaccount.com", "scope": SCOPES,
                   "aud": "http://127.0.0.1:9/token", "iat": 1_700_000_000u64, "exp": 1_700_003_600u64})
        );
        let own = Token::parse(&k.self_signed(5)).unwrap();
        assert_eq!(own.claim_str("sub"), own.claim_str("iss"));
        assert!(own.claims.get("aud").is_none(), "scope or aud, never both");
    }
}
