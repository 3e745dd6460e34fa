//! Application Default Credentials, found the way Google's client libraries find them (for
//! issue 12's backfill command; no caller yet): `GOOGLE_APPLICATION_CREDENTIALS`, then the file
//! `gcloud auth application-default login` writes, then the metadata server
//! (https://cloud.google.com/docs/authentication/application-default-credentials). Pure: the
//! caller says which files exist and reads them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::service_account::{GOOGLE_TOKEN_URI, ServiceAccountKey};
use crate::secret::Secret;

/// The environment variable that names a credentials file.
pub const CREDENTIALS_ENV: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// gcloud's file, in its configuration directory.
pub const GCLOUD_FILE: &str = "application_default_credentials.json";

/// Where the credentials are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdcSource {
    /// The file `GOOGLE_APPLICATION_CREDENTIALS` names.
    Named(PathBuf),
    /// gcloud's `application_default_credentials.json`.
    Gcloud(PathBuf),
    /// Neither: the metadata server (on Google Cloud), or nothing.
    MetadataServer,
}

/// Where to look, in order; `env` reads the environment, `exists` the file system. A named file
/// that does not exist is an error (as in Google's libraries), not a fall-through.
pub fn locate(env: impl Fn(&str) -> Option<String>, exists: impl Fn(&Path) -> bool) -> Result<AdcSource, String> {
    if let Some(named) = env(CREDENTIALS_ENV).filter(|v| !v.trim().is_empty()) {
        let path = PathBuf::from(named.trim());
        if !exists(&path) {
            return Err(format!("{CREDENTIALS_ENV} names {}, which does not exist", path.display()));
        }
        return Ok(AdcSource::Named(path));
    }
    let dir = env("CLOUDSDK_CONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("APPDATA").filter(|v| !v.is_empty()).map(|d| Path::new(&d).join("gcloud")))
        .or_else(|| env("HOME").filter(|v| !v.is_empty()).map(|h| Path::new(&h).join(".config").join("gcloud")));
    if let Some(file) = dir.map(|d| d.join(GCLOUD_FILE)).filter(|f| exists(f)) {
        return Ok(AdcSource::Gcloud(file));
    }
    Ok(AdcSource::MetadataServer)
}

/// The credential a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdcCredential {
    ServiceAccount(Box<ServiceAccountKey>),
    AuthorizedUser(AuthorizedUser),
}

/// A user's refresh token, as `gcloud auth application-default login` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedUser {
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
    /// The project billed for quota, if the user set one.
    pub quota_project_id: Option<String>,
    /// Where the refresh goes: Google's endpoint, unless the file names another (gcloud's files
    /// do not; Google's own libraries honour `token_uri` when one does).
    pub token_uri: String,
}

#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct UserFile {
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    quota_project_id: Option<String>,
    token_uri: Option<String>,
}

/// The credential in a credentials file (`source` names it in errors, which never quote a value).
pub fn parse_file(source: &str, json: &str) -> Result<AdcCredential, String> {
    let kind = serde_json::from_str::<TypeOnly>(json)
        .map_err(|e| format!("{source}: not a credentials JSON object (line {}, column {})", e.line(), e.column()))?
        .kind;
    match kind.as_deref() {
        Some("service_account") => ServiceAccountKey::parse(json)
            .map(|key| AdcCredential::ServiceAccount(Box::new(key)))
            .map_err(|e| format!("{source}: {e}")),
        Some("authorized_user") => {
            let file: UserFile =
                serde_json::from_str(json).map_err(|_| format!("{source}: not an authorized_user file"))?;
            let field = |value: Option<String>, name: &str| {
                value.filter(|v| !v.trim().is_empty()).ok_or_else(|| format!("{source}: field {name}: missing"))
            };
            let token_uri = file.token_uri.filter(|u| !u.trim().is_empty()).unwrap_or_else(|| GOOGLE_TOKEN_URI.into());
            crate::url::Endpoint::parse(&token_uri)
                .map_err(|_| format!("{source}: field token_uri: not an http(s) URL"))?;
            Ok(AdcCredential::AuthorizedUser(AuthorizedUser {
                client_id: field(file.client_id, "client_id")?,
                client_secret: Secret::new(field(file.client_secret, "client_secret")?),
                refresh_token: Secret::new(field(file.refresh_token, "refresh_token")?),
                quota_project_id: file.quota_project_id.filter(|p| !p.is_empty()),
                token_uri,
            }))
        }
        Some(other) => Err(format!(
            "{source}: credentials of type {:?} are not supported (service_account or authorized_user; or pass --token)",
            crate::object::truncate(other, 40)
        )),
        None => Err(format!("{source}: field type: missing (service_account or authorized_user)")),
    }
}

impl AuthorizedUser {
    /// `POST https://oauth2.googleapis.com/token` with `grant_type=refresh_token`; the answer is
    /// the token JSON the metadata server gives too ([`crate::metadata::parse_token`]).
    pub fn token_request(&self) -> http::Request<Vec<u8>> {
        let encode = crate::url::encode;
        let body = format!(
            "grant_type=refresh_token&client_id={}&client_secret={}&refresh_token={}",
            encode(&self.client_id),
            encode(self.client_secret.expose()),
            encode(self.refresh_token.expose())
        );
        super::form_post(&self.token_uri, body)
    }
}

/// What a refused refresh means to the user: `invalid_grant` is a refresh token that expired or
/// was revoked (only a new login helps), anything else is quoted.
pub fn refresh_refused(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) if e.error == "invalid_grant" => format!(
            "the refresh token of your application-default credentials expired or was revoked ({}): \
             run `gcloud auth application-default login` again",
            e.error_description.as_deref().unwrap_or("invalid_grant")
        ),
        Ok(e) => format!("the OAuth token endpoint refused the refresh ({status} {})", e.error),
        Err(_) => format!("the OAuth token endpoint answered {status}; {}", crate::bigquery::quote_body(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_named_file_comes_first_then_gclouds_then_the_metadata_server() {
        let all = |_: &Path| true;
        let none = |_: &Path| false;
        let named = [(CREDENTIALS_ENV, "/keys/loader.json"), ("HOME", "/home/u")];
        assert_eq!(locate(env(&named), all), Ok(AdcSource::Named("/keys/loader.json".into())));
        let e = locate(env(&named), none).unwrap_err();
        assert_eq!(e, "GOOGLE_APPLICATION_CREDENTIALS names /keys/loader.json, which does not exist");
        let home = [("HOME", "/home/u")];
        assert_eq!(
            locate(env(&home), all),
            Ok(AdcSource::Gcloud("/home/u/.config/gcloud/application_default_credentials.json".into()))
        );
        let config = [("HOME", "/home/u"), ("CLOUDSDK_CONFIG", "/etc/gcloud")];
        assert_eq!(
            locate(env(&config), all),
            Ok(AdcSource::Gcloud("/etc/gcloud/application_default_credentials.json".into()))
        );
        assert_eq!(locate(env(&home), none), Ok(AdcSource::MetadataServer));
        assert_eq!(locate(env(&[(CREDENTIALS_ENV, " ")]), none), Ok(AdcSource::MetadataServer));
    }

    #[test]
    fn an_authorized_user_file_refreshes_at_googles_token_endpoint() {
        let json = r#"{"type":"authorized_user","client_id":"764086051850-x.apps.googleusercontent.com",
                       "client_secret":"d-FL95Q","refresh_token":"1//0g+/=","quota_project_id":"demo-project"}"#;
        let AdcCredential::AuthorizedUser(user) = parse_file("adc.json", json).unwrap() else { panic!() };
        assert_eq!(user.quota_project_id.as_deref(), Some("demo-project"));
        assert!(!format!("{user:?}").contains("d-FL95Q") && !format!("{user:?}").contains("1//0g"));
        let r = user.token_request();
        assert_eq!(
            (r.method().as_str(), r.uri().to_string().as_str()),
            ("POST", "https://oauth2.googleapis.com/token")
        );
        assert_eq!(r.headers()["content-type"], "application/x-www-form-urlencoded");
        assert_eq!(
            String::from_utf8(r.body().clone()).unwrap(),
            "grant_type=refresh_token&client_id=764086051850-x.apps.googleusercontent.com&client_secret=d-FL95Q\
             &refresh_token=1%2F%2F0g%2B%2F%3D"
        );
    }

    #[test]
    fn a_file_that_is_no_credential_is_an_error_naming_the_file_and_field() {
        let e = parse_file("adc.json", "{").unwrap_err();
        assert!(e.starts_with("adc.json: not a credentials JSON object"), "{e}");
        assert_eq!(
            parse_file("adc.json", "{}").unwrap_err(),
            "adc.json: field type: missing (service_account or authorized_user)"
        );
        let e = parse_file("adc.json", r#"{"type":"external_account"}"#).unwrap_err();
        assert!(e.contains("type \"external_account\" are not supported"), "{e}");
        let e =
            parse_file("adc.json", r#"{"type":"authorized_user","client_id":"c","client_secret":"s"}"#).unwrap_err();
        assert_eq!(e, "adc.json: field refresh_token: missing");
        let e = parse_file("key.json", r#"{"type":"service_account","client_email":"a@b.c"}"#).unwrap_err();
        assert_eq!(e, "key.json: field private_key: missing");
    }

    #[test]
    fn a_revoked_refresh_token_says_to_log_in_again() {
        let body = br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#;
        let m = refresh_refused(400, body);
        assert!(m.contains("expired or was revoked (Token has been expired or revoked.)"), "{m}");
        assert!(m.contains("gcloud auth application-default login"), "{m}");
        assert_eq!(
            refresh_refused(401, br#"{"error":"invalid_client"}"#),
            "the OAuth token endpoint refused the refresh (401 invalid_client)"
        );
        assert!(refresh_refused(502, b"<html>").starts_with("the OAuth token endpoint answered 502; unexpected body"));
    }

    #[test]
    fn a_token_uri_in_the_file_is_where_the_refresh_goes() {
        let json = r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r",
                       "token_uri":"http://127.0.0.1:9/token"}"#;
        let AdcCredential::AuthorizedUser(user) = parse_file("adc.json", json).unwrap() else { panic!() };
        assert_eq!(user.token_request().uri(), "http://127.0.0.1:9/token");
        let bad = json.replace("http://127.0.0.1:9/token", "not a url");
        assert_eq!(parse_file("adc.json", &bad).unwrap_err(), "adc.json: field token_uri: not an http(s) URL");
    }
}
