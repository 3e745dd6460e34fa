//! The metadata server (Cloud Run, GCE, GKE): the default source of access tokens and, when
//! GCR_USAGE_PROJECT is unset, of the project id.

use std::time::Duration;

use serde::Deserialize;

use crate::credentials::AccessToken;
use crate::secret::Secret;
use crate::url::Endpoint;

const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const PROJECT_PATH: &str = "/computeMetadata/v1/project/project-id";

/// `GET …/token` with `Metadata-Flavor: Google` (requests without it are refused with 403).
pub fn token_request(metadata: &Endpoint) -> http::Request<Vec<u8>> {
    get(metadata, TOKEN_PATH)
}

/// `GET …/project/project-id` (plain text answer).
pub fn project_request(metadata: &Endpoint) -> http::Request<Vec<u8>> {
    get(metadata, PROJECT_PATH)
}

fn get(metadata: &Endpoint, path: &str) -> http::Request<Vec<u8>> {
    http::Request::get(metadata.url(path))
        .header("Metadata-Flavor", "Google")
        .header(http::header::USER_AGENT, crate::job::USER_AGENT)
        .body(Vec::new())
        .expect("metadata URL is valid")
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Seconds; the metadata server and Google's token endpoint both send it. Anything but a
    /// non-negative integer is treated as absent (the token is then used once, not cached).
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// Reads `{"access_token":…,"expires_in":…,"token_type":"Bearer"}` (the metadata server's and
/// the OAuth token endpoint's answer alike).
pub fn parse_token(body: &[u8]) -> Result<AccessToken, String> {
    let answer: TokenAnswer = serde_json::from_slice(body)
        .map_err(|_| format!("token answer lacks access_token; {}", crate::bigquery::quote_body(body)))?;
    let token = answer.access_token.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("token answer carries an empty or malformed access_token".into());
    }
    let expires_in = answer.expires_in.as_ref().and_then(serde_json::Value::as_u64).map(Duration::from_secs);
    Ok(AccessToken { value: Secret::new(token), expires_in })
}

/// Reads the plain-text project id and checks it like GCR_USAGE_PROJECT.
pub fn parse_project(body: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(body);
    crate::config::validate_project(text.trim()).map_err(|e| format!("metadata server's project id: {}", e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_flavor_header() {
        let ep = Endpoint::parse("http://127.0.0.1:8181").unwrap();
        let r = token_request(&ep);
        assert_eq!(r.uri(), "http://127.0.0.1:8181/computeMetadata/v1/instance/service-accounts/default/token");
        assert_eq!(r.headers()["metadata-flavor"], "Google");
        assert_eq!(project_request(&ep).uri().path(), "/computeMetadata/v1/project/project-id");
    }

    #[test]
    fn token_and_project_answers() {
        assert_eq!(
            parse_token(br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#).unwrap(),
            AccessToken { value: Secret::new("ya29.x"), expires_in: Some(Duration::from_secs(3599)) }
        );
        for odd in [r#""3599""#, "-1", "1.5", "null"] {
            let body = format!(r#"{{"access_token":"ya29.x","expires_in":{odd}}}"#);
            assert_eq!(parse_token(body.as_bytes()).unwrap().expires_in, None, "{odd}");
        }
        assert!(parse_token(b"<html>").is_err());
        assert!(parse_token(br#"{"access_token":"a b"}"#).is_err());
        assert_eq!(parse_project(b"demo-project\n").unwrap(), "demo-project");
        assert!(parse_project(b"Not A Project").is_err());
    }
}
