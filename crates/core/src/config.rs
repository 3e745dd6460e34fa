//! Configuration from environment variables — the one mechanism every Wasm host offers.
//!
//! Every rule lives here, and every error names the variable and the rule it breaks, because
//! the operator reads it in a 500 answer or a log line, far from this code.

use std::time::Duration;

use crate::auth::service_account::ServiceAccountKey;
use crate::auth::trigger::{GOOGLE_JWKS_URL, Secret, TriggerAuth};
use crate::object::{is_valid_bucket_name, truncate};
use crate::url::Endpoint;

pub const PROJECT: &str = "GCR_USAGE_PROJECT";
pub const DATASET: &str = "GCR_USAGE_DATASET";
pub const USAGE_TABLE: &str = "GCR_USAGE_USAGE_TABLE";
pub const STORAGE_TABLE: &str = "GCR_USAGE_STORAGE_TABLE";
pub const LOCATION: &str = "GCR_USAGE_LOCATION";
pub const BUCKETS: &str = "GCR_USAGE_BUCKETS";
pub const AUTH: &str = "GCR_USAGE_AUTH";
pub const TOKEN: &str = "GCR_USAGE_TOKEN";
pub const WAIT_SECONDS: &str = "GCR_USAGE_WAIT_SECONDS";
pub const BIGQUERY_ENDPOINT: &str = "GCR_USAGE_BIGQUERY_ENDPOINT";
pub const STORAGE_ENDPOINT: &str = "GCR_USAGE_STORAGE_ENDPOINT";
pub const METADATA_HOST: &str = "GCE_METADATA_HOST";
pub const MODE: &str = "GCR_USAGE_MODE";
pub const SA_KEY: &str = "GCR_USAGE_SA_KEY";
pub const SA_SELF_SIGNED_JWT: &str = "GCR_USAGE_SA_SELF_SIGNED_JWT";
pub const TRIGGER_AUTH: &str = "GCR_USAGE_TRIGGER_AUTH";
pub const TRIGGER_AUDIENCE: &str = "GCR_USAGE_TRIGGER_AUDIENCE";
pub const TRIGGER_EMAILS: &str = "GCR_USAGE_TRIGGER_EMAILS";
pub const TRIGGER_SECRET: &str = "GCR_USAGE_TRIGGER_SECRET";
pub const OIDC_JWKS_URL: &str = "GCR_USAGE_OIDC_JWKS_URL";
pub const EVENTS_TABLE: &str = "GCR_USAGE_EVENTS_TABLE";
pub const UPLOAD_CHUNK_KIB: &str = "GCR_USAGE_UPLOAD_CHUNK_KIB";

pub const DEFAULT_DATASET: &str = "storageanalysis";
pub const DEFAULT_USAGE_TABLE: &str = "usage";
pub const DEFAULT_STORAGE_TABLE: &str = "storage";
pub const DEFAULT_LOCATION: &str = "US";
pub const DEFAULT_WAIT_SECONDS: u64 = 30;
/// Cloud Run's longest request is 60 minutes; waiting longer than that can never be answered.
pub const MAX_WAIT_SECONDS: u64 = 3600;
pub const DEFAULT_BIGQUERY_ENDPOINT: &str = "https://bigquery.googleapis.com";
pub const DEFAULT_STORAGE_ENDPOINT: &str = "https://storage.googleapis.com";
pub const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";
pub const DEFAULT_EVENTS_TABLE: &str = "registry_events";
/// Resumable uploads take chunks in multiples of 256 KiB.
pub const UPLOAD_CHUNK_UNIT: usize = 256 * 1024;
/// 4 MiB: few enough requests for an hour's log, small enough for the smallest instance. The
/// chunk is most of the component's memory (see `ARCHITECTURE.md`).
pub const DEFAULT_UPLOAD_CHUNK_KIB: usize = 4096;
pub const MAX_UPLOAD_CHUNK_KIB: usize = 64 * 1024;

/// What the loader does with a usage log. Storage logs (one row a day, nothing to classify)
/// always load raw into the storage table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// BigQuery reads the CSV from `gs://` into the usage table (the default; no download).
    Raw,
    /// The loader downloads the log, classifies each row and uploads the events.
    Classified,
    /// Both, one after the other; the answer reports both.
    Both,
}

impl Mode {
    pub fn raw(self) -> bool {
        matches!(self, Mode::Raw | Mode::Both)
    }
    pub fn classified(self) -> bool {
        matches!(self, Mode::Classified | Mode::Both)
    }
}

/// How the loader authenticates to Google APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Access token from the metadata server (Cloud Run, GCE, GKE): the default.
    Metadata,
    /// A fixed bearer token (development: `gcloud auth print-access-token`).
    Token(Secret),
    /// No `Authorization` header (local emulators).
    None,
    /// A service-account key (`GCR_USAGE_SA_KEY`): a signed JWT exchanged at the key's
    /// `token_uri`, or with `self_signed` used directly as the bearer token.
    ServiceAccount { key: Box<ServiceAccountKey>, self_signed: bool },
}

/// Which log buckets may trigger loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketAllowList {
    Any,
    Only(Vec<String>),
}

impl BucketAllowList {
    pub fn allows(&self, bucket: &str) -> bool {
        match self {
            BucketAllowList::Any => true,
            BucketAllowList::Only(list) => list.iter().any(|b| b == bucket),
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `None`: ask the metadata server (only possible with [`AuthMode::Metadata`]).
    pub project: Option<String>,
    pub dataset: String,
    pub usage_table: String,
    pub storage_table: String,
    pub location: String,
    pub buckets: BucketAllowList,
    pub auth: AuthMode,
    /// Time budget for one event: retries and waiting for the job together.
    pub wait: Duration,
    pub bigquery: Endpoint,
    pub storage: Endpoint,
    pub metadata: Endpoint,
    pub mode: Mode,
    pub events_table: String,
    /// Bytes per resumable-upload chunk (a multiple of [`UPLOAD_CHUNK_UNIT`]).
    pub upload_chunk: usize,
    /// Who may send events.
    pub trigger: TriggerAuth,
}

/// A configuration problem: which variable (`field`), and what is wrong with it.
pub type ConfigError = crate::field_error::FieldError;

fn error<T>(variable: &'static str, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::new(variable, message))
}

impl Config {
    /// Reads and validates the configuration; `env` looks a variable up (an empty value counts
    /// as unset, since container tooling often passes `K=` for "no value").
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| env(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let or = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_string());

        let auth = match get(AUTH).as_deref().unwrap_or("metadata") {
            "metadata" => AuthMode::Metadata,
            "token" => match get(TOKEN) {
                Some(token) if token.bytes().all(|b| b.is_ascii_graphic()) => AuthMode::Token(Secret::new(token)),
                Some(_) => return error(TOKEN, "must be a bearer token without spaces or control characters"),
                None => return error(TOKEN, "is required when GCR_USAGE_AUTH=token"),
            },
            "none" => AuthMode::None,
            "service-account" => {
                let Some(json) = env(SA_KEY).filter(|v| !v.trim().is_empty()) else {
                    return error(SA_KEY, "is required when GCR_USAGE_AUTH=service-account (the key file's JSON)");
                };
                let key = ServiceAccountKey::parse(&json).or_else(|m| error(SA_KEY, m))?;
                let self_signed = parse_bool(SA_SELF_SIGNED_JWT, get(SA_SELF_SIGNED_JWT))?;
                AuthMode::ServiceAccount { key: Box::new(key), self_signed }
            }
            other => {
                return error(
                    AUTH,
                    format!("{:?} is not one of metadata, token, none, service-account", truncate(other, 40)),
                );
            }
        };
        let key_project = match &auth {
            AuthMode::ServiceAccount { key, .. } => key.project_id.clone(),
            _ => None,
        };
        let project = match get(PROJECT).or(key_project) {
            Some(p) => Some(validate_project(&p)?),
            None if auth == AuthMode::Metadata => None,
            None => {
                return error(
                    PROJECT,
                    "is required unless GCR_USAGE_AUTH=metadata (then the metadata server supplies it)",
                );
            }
        };
        let dataset = validate_id(DATASET, "dataset", &or(DATASET, DEFAULT_DATASET))?;
        let usage_table = validate_id(USAGE_TABLE, "table", &or(USAGE_TABLE, DEFAULT_USAGE_TABLE))?;
        let storage_table = validate_id(STORAGE_TABLE, "table", &or(STORAGE_TABLE, DEFAULT_STORAGE_TABLE))?;
        let location = validate_location(&or(LOCATION, DEFAULT_LOCATION))?;
        let buckets = parse_buckets(get(BUCKETS))?;
        let wait = parse_wait(get(WAIT_SECONDS))?;
        let bigquery = Endpoint::parse(&or(BIGQUERY_ENDPOINT, DEFAULT_BIGQUERY_ENDPOINT))
            .or_else(|m| error(BIGQUERY_ENDPOINT, m))?;
        let storage =
            Endpoint::parse(&or(STORAGE_ENDPOINT, DEFAULT_STORAGE_ENDPOINT)).or_else(|m| error(STORAGE_ENDPOINT, m))?;
        // Google's libraries take a bare host[:port] here and always speak plain HTTP to it.
        let metadata = Endpoint::parse(&format!("http://{}", or(METADATA_HOST, DEFAULT_METADATA_HOST)))
            .ok()
            .filter(|e| e.has_no_path())
            .ok_or_else(|| ConfigError::new(METADATA_HOST, "must be host or host:port"))?;
        let mode = match get(MODE).as_deref().unwrap_or("raw") {
            "raw" => Mode::Raw,
            "classified" => Mode::Classified,
            "both" => Mode::Both,
            other => return error(MODE, format!("{:?} is not one of raw, classified, both", truncate(other, 40))),
        };
        let events_table = validate_id(EVENTS_TABLE, "table", &or(EVENTS_TABLE, DEFAULT_EVENTS_TABLE))?;
        let upload_chunk = parse_chunk(get(UPLOAD_CHUNK_KIB))?;
        let trigger = parse_trigger(&get, env(TRIGGER_SECRET))?;
        Ok(Config {
            project,
            dataset,
            usage_table,
            storage_table,
            location,
            buckets,
            auth,
            wait,
            bigquery,
            storage,
            metadata,
            mode,
            events_table,
            upload_chunk,
            trigger,
        })
    }
}

/// Project ids: 6–30 characters, lower-case letters, digits and hyphens, starting with a letter
/// and not ending with a hyphen; legacy domain-scoped ids add `example.com:` in front.
pub fn validate_project(value: &str) -> Result<String, ConfigError> {
    let (domain, id) = match value.rsplit_once(':') {
        Some((domain, id)) => (Some(domain), id),
        None => (None, value),
    };
    let domain_ok = domain.is_none_or(|d| {
        !d.is_empty()
            && d.len() <= 63
            && d.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
    });
    let b = id.as_bytes();
    let id_ok = (6..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-';
    if domain_ok && id_ok {
        Ok(value.to_string())
    } else {
        error(
            PROJECT,
            format!(
                "{:?} is not a project id (6–30 lower-case letters, digits or hyphens, starting with a letter, not ending with a hyphen)",
                truncate(value, 60)
            ),
        )
    }
}

/// Dataset and table ids: letters, digits and underscores, at most 1,024 characters. (BigQuery
/// allows more in table ids, but these need no quoting in SQL and are what `sql/` assumes.)
fn validate_id(variable: &'static str, what: &str, value: &str) -> Result<String, ConfigError> {
    if value.len() <= 1024 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        Ok(value.to_string())
    } else {
        error(
            variable,
            format!("{:?} is not a {what} id (letters, digits and underscores, at most 1,024)", truncate(value, 60)),
        )
    }
}

/// Multi-regions (`US`, `EU`) or a region such as `us-central1`, `europe-west4`,
/// `northamerica-northeast1`.
fn validate_location(value: &str) -> Result<String, ConfigError> {
    let multi = matches!(value.to_ascii_uppercase().as_str(), "US" | "EU");
    let region = value.split('-').count() >= 2
        && value.split('-').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && value.ends_with(|c: char| c.is_ascii_digit());
    if multi {
        Ok(value.to_ascii_uppercase())
    } else if region {
        Ok(value.to_string())
    } else {
        error(
            LOCATION,
            format!("{:?} is not a BigQuery location (US, EU or a region such as us-central1)", truncate(value, 60)),
        )
    }
}

fn parse_buckets(value: Option<String>) -> Result<BucketAllowList, ConfigError> {
    let Some(value) = value else {
        return error(
            BUCKETS,
            "is required: the comma-separated log buckets whose objects may be loaded (or * for any)",
        );
    };
    let items: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if items == ["*"] {
        return Ok(BucketAllowList::Any);
    }
    if items.is_empty() {
        return error(BUCKETS, "lists no bucket");
    }
    let mut list = Vec::with_capacity(items.len());
    for item in items {
        let bucket = item.strip_prefix("gs://").unwrap_or(item).trim_end_matches('/');
        if item == "*" {
            return error(BUCKETS, "* must stand alone (it allows every bucket)");
        }
        if !is_valid_bucket_name(bucket) {
            return error(BUCKETS, format!("{:?} is not a valid bucket name", truncate(item, 80)));
        }
        list.push(bucket.to_string());
    }
    Ok(BucketAllowList::Only(list))
}

fn parse_wait(value: Option<String>) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(Duration::from_secs(DEFAULT_WAIT_SECONDS)),
        Some(v) => match v.parse::<u64>() {
            Ok(s) if s <= MAX_WAIT_SECONDS => Ok(Duration::from_secs(s)),
            _ => error(
                WAIT_SECONDS,
                format!("{:?} is not a whole number of seconds from 0 to {MAX_WAIT_SECONDS}", truncate(&v, 40)),
            ),
        },
    }
}

fn parse_bool(variable: &'static str, value: Option<String>) -> Result<bool, ConfigError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => error(variable, "must be true or false"),
    }
}

fn parse_trigger(get: &dyn Fn(&str) -> Option<String>, secret: Option<String>) -> Result<TriggerAuth, ConfigError> {
    let emails = || -> Result<Vec<String>, ConfigError> {
        let list: Vec<String> = get(TRIGGER_EMAILS)
            .unwrap_or_default()
            .split(',')
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if list.is_empty() {
            return error(TRIGGER_EMAILS, "is required: the service accounts allowed to send events (comma-separated)");
        }
        match list.iter().find(|e| !e.contains('@')) {
            Some(bad) => error(TRIGGER_EMAILS, format!("{:?} is not an e-mail address", truncate(bad, 80))),
            None => Ok(list),
        }
    };
    match get(TRIGGER_AUTH).as_deref().unwrap_or("none") {
        "none" => Ok(TriggerAuth::None),
        "google-oidc" => {
            let audience = get(TRIGGER_AUDIENCE).ok_or(ConfigError {
                field: TRIGGER_AUDIENCE.into(),
                message: "is required with GCR_USAGE_TRIGGER_AUTH=google-oidc (the push endpoint URL or the audience set on the subscription)".into(),
            })?;
            let jwks = Endpoint::parse(&get(OIDC_JWKS_URL).unwrap_or_else(|| GOOGLE_JWKS_URL.to_string()))
                .or_else(|m| error(OIDC_JWKS_URL, m))?;
            Ok(TriggerAuth::GoogleOidc { audience, emails: emails()?, jwks })
        }
        "cloud-run" => Ok(TriggerAuth::CloudRun { emails: emails()? }),
        "shared-secret" => match secret.filter(|s| !s.trim().is_empty()) {
            // Short secrets can be guessed; 16 characters is the least a random token has.
            Some(s) if s.trim().len() >= 16 => Ok(TriggerAuth::SharedSecret(Secret::new(s.trim().to_string()))),
            Some(_) => error(TRIGGER_SECRET, "must be at least 16 characters"),
            None => error(TRIGGER_SECRET, "is required with GCR_USAGE_TRIGGER_AUTH=shared-secret"),
        },
        other => error(
            TRIGGER_AUTH,
            format!("{:?} is not one of none, google-oidc, cloud-run, shared-secret", truncate(other, 40)),
        ),
    }
}

fn parse_chunk(value: Option<String>) -> Result<usize, ConfigError> {
    let Some(v) = value else { return Ok(DEFAULT_UPLOAD_CHUNK_KIB * 1024) };
    match v.parse::<usize>() {
        Ok(kib) if kib > 0 && kib <= MAX_UPLOAD_CHUNK_KIB && (kib * 1024) % UPLOAD_CHUNK_UNIT == 0 => Ok(kib * 1024),
        _ => error(
            UPLOAD_CHUNK_KIB,
            format!(
                "{:?} is not a multiple of 256 from 256 to {MAX_UPLOAD_CHUNK_KIB} (KiB; resumable uploads take 256 KiB units)",
                truncate(&v, 40)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_env(|k| map.get(k).cloned())
    }

    fn var_of(vars: &[(&str, &str)]) -> String {
        config(vars).unwrap_err().field
    }

    #[test]
    fn defaults() {
        let c = config(&[(BUCKETS, "logs-bucket")]).unwrap();
        assert_eq!(c.project, None);
        assert_eq!(
            (c.dataset.as_str(), c.usage_table.as_str(), c.storage_table.as_str()),
            ("storageanalysis", "usage", "storage")
        );
        assert_eq!(c.location, "US");
        assert_eq!(c.auth, AuthMode::Metadata);
        assert_eq!(c.wait, Duration::from_secs(30));
        assert_eq!(c.bigquery.base(), "https://bigquery.googleapis.com");
        assert_eq!(c.metadata.base(), "http://metadata.google.internal");
        assert!(c.buckets.allows("logs-bucket") && !c.buckets.allows("other"));
        assert_eq!((c.mode, c.events_table.as_str(), c.upload_chunk), (Mode::Raw, "registry_events", 4 << 20));
    }

    #[test]
    fn trigger_modes() {
        let b = (BUCKETS, "logs-bucket");
        assert_eq!(config(&[b]).unwrap().trigger, TriggerAuth::None);
        let c = config(&[b, (TRIGGER_AUTH, "cloud-run"), (TRIGGER_EMAILS, " a@b.c , d@e.f ")]).unwrap();
        assert_eq!(c.trigger, TriggerAuth::CloudRun { emails: vec!["a@b.c".into(), "d@e.f".into()] });
        let c = config(&[b, (TRIGGER_AUTH, "shared-secret"), (TRIGGER_SECRET, "0123456789abcdef")]).unwrap();
        assert!(matches!(c.trigger, TriggerAuth::SharedSecret(_)));
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "secrets never print");
        let c =
            config(&[b, (TRIGGER_AUTH, "google-oidc"), (TRIGGER_EMAILS, "a@b.c"), (TRIGGER_AUDIENCE, "https://x/")])
                .unwrap();
        let TriggerAuth::GoogleOidc { jwks, audience, .. } = c.trigger else { panic!() };
        assert_eq!((jwks.base(), audience.as_str()), (GOOGLE_JWKS_URL, "https://x/"));
    }

    #[test]
    fn service_account_keys() {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let pem = crate::auth::jwt::test_keys::key(0).to_pkcs8_pem(LineEnding::LF).unwrap();
        let key =
            serde_json::json!({"type": "service_account", "project_id": "key-project", "private_key": pem.as_str(),
                                     "client_email": "l@key-project.iam.gserviceaccount.com"})
            .to_string();
        let b = (BUCKETS, "logs-bucket");
        let c = config(&[b, (AUTH, "service-account"), (SA_KEY, &key)]).unwrap();
        assert_eq!(
            c.project.as_deref(),
            Some("key-project"),
            "the key's project unless GCR_USAGE_PROJECT says otherwise"
        );
        assert!(matches!(c.auth, AuthMode::ServiceAccount { self_signed: false, .. }));
        assert!(!format!("{c:?}").contains("PRIVATE KEY"));
        let c = config(&[
            b,
            (AUTH, "service-account"),
            (SA_KEY, &key),
            (PROJECT, "other-project"),
            (SA_SELF_SIGNED_JWT, "true"),
        ])
        .unwrap();
        assert_eq!(c.project.as_deref(), Some("other-project"));
        assert!(matches!(c.auth, AuthMode::ServiceAccount { self_signed: true, .. }));
        assert_eq!(
            var_of(&[b, (AUTH, "service-account"), (SA_KEY, &key), (SA_SELF_SIGNED_JWT, "maybe")]),
            SA_SELF_SIGNED_JWT
        );
        let broken = key.replace("BEGIN PRIVATE KEY", "BEGIN NOTHING");
        let e = config(&[b, (AUTH, "service-account"), (SA_KEY, &broken)]).unwrap_err();
        assert!(e.message.starts_with("field private_key") && !e.message.contains("MII"), "{e}");
    }

    #[test]
    fn modes_and_chunks() {
        let b = (BUCKETS, "logs-bucket");
        let c = config(&[b, (MODE, "both"), (UPLOAD_CHUNK_KIB, "256"), (EVENTS_TABLE, "events")]).unwrap();
        assert_eq!((c.mode, c.upload_chunk, c.events_table.as_str()), (Mode::Both, 256 * 1024, "events"));
        assert!(c.mode.raw() && c.mode.classified());
        let c = config(&[b, (MODE, "classified"), (UPLOAD_CHUNK_KIB, "65536")]).unwrap();
        assert!(!c.mode.raw() && c.mode.classified());
        assert_eq!(c.upload_chunk, 64 << 20);
        assert_eq!(
            config(&[b, (MODE, "Events")]).unwrap_err().to_string(),
            "GCR_USAGE_MODE: \"Events\" is not one of raw, classified, both"
        );
    }

    #[test]
    fn every_variable_is_validated() {
        let b = (BUCKETS, "logs-bucket");
        assert_eq!(var_of(&[]), BUCKETS);
        assert_eq!(var_of(&[(BUCKETS, " , ")]), BUCKETS);
        assert_eq!(var_of(&[(BUCKETS, "ok-bucket,Bad_Bucket")]), BUCKETS);
        assert_eq!(var_of(&[(BUCKETS, "*,x-bucket")]), BUCKETS);
        assert_eq!(var_of(&[b, (PROJECT, "My Project")]), PROJECT);
        assert_eq!(var_of(&[b, (PROJECT, "abc")]), PROJECT);
        assert_eq!(var_of(&[b, (PROJECT, "demo-project-")]), PROJECT);
        assert_eq!(var_of(&[b, (DATASET, "my-dataset")]), DATASET);
        assert_eq!(var_of(&[b, (USAGE_TABLE, "usage;drop")]), USAGE_TABLE);
        assert_eq!(var_of(&[b, (STORAGE_TABLE, "a.b")]), STORAGE_TABLE);
        assert_eq!(var_of(&[b, (LOCATION, "moon")]), LOCATION);
        assert_eq!(var_of(&[b, (AUTH, "oauth")]), AUTH);
        assert_eq!(var_of(&[b, (AUTH, "token"), (PROJECT, "demo-project")]), TOKEN);
        assert_eq!(var_of(&[b, (AUTH, "token"), (TOKEN, "a b"), (PROJECT, "demo-project")]), TOKEN);
        assert_eq!(var_of(&[b, (AUTH, "none")]), PROJECT);
        assert_eq!(var_of(&[b, (WAIT_SECONDS, "-1")]), WAIT_SECONDS);
        assert_eq!(var_of(&[b, (WAIT_SECONDS, "3601")]), WAIT_SECONDS);
        assert_eq!(var_of(&[b, (WAIT_SECONDS, "1.5")]), WAIT_SECONDS);
        assert_eq!(var_of(&[b, (BIGQUERY_ENDPOINT, "ftp://x")]), BIGQUERY_ENDPOINT);
        assert_eq!(var_of(&[b, (STORAGE_ENDPOINT, "http://")]), STORAGE_ENDPOINT);
        assert_eq!(var_of(&[b, (METADATA_HOST, "http://x/y")]), METADATA_HOST);
        assert_eq!(var_of(&[b, (MODE, "events")]), MODE);
        assert_eq!(var_of(&[b, (EVENTS_TABLE, "registry-events")]), EVENTS_TABLE);
        assert_eq!(var_of(&[b, (AUTH, "service-account")]), SA_KEY);
        assert_eq!(var_of(&[b, (AUTH, "service-account"), (SA_KEY, "{}")]), SA_KEY);
        assert_eq!(var_of(&[b, (TRIGGER_AUTH, "iap")]), TRIGGER_AUTH);
        assert_eq!(var_of(&[b, (TRIGGER_AUTH, "google-oidc"), (TRIGGER_EMAILS, "a@b.c")]), TRIGGER_AUDIENCE);
        assert_eq!(var_of(&[b, (TRIGGER_AUTH, "google-oidc"), (TRIGGER_AUDIENCE, "https://x/")]), TRIGGER_EMAILS);
        assert_eq!(var_of(&[b, (TRIGGER_AUTH, "cloud-run"), (TRIGGER_EMAILS, "a@b.c,nobody")]), TRIGGER_EMAILS);
        assert_eq!(var_of(&[b, (TRIGGER_AUTH, "shared-secret")]), TRIGGER_SECRET);
        assert_eq!(var_of(&[b, (TRIGGER_AUTH, "shared-secret"), (TRIGGER_SECRET, "short")]), TRIGGER_SECRET);
        let oidc = [b, (TRIGGER_AUTH, "google-oidc"), (TRIGGER_EMAILS, "a@b.c"), (TRIGGER_AUDIENCE, "https://x/")];
        assert_eq!(var_of(&[oidc[0], oidc[1], oidc[2], oidc[3], (OIDC_JWKS_URL, "keys.json")]), OIDC_JWKS_URL);
        for chunk in ["0", "100", "255", "65792", "1e3", "-256"] {
            assert_eq!(var_of(&[b, (UPLOAD_CHUNK_KIB, chunk)]), UPLOAD_CHUNK_KIB, "{chunk}");
        }
    }

    #[test]
    fn messages_name_variable_and_rule() {
        let e = config(&[(BUCKETS, "logs-bucket"), (WAIT_SECONDS, "soon")]).unwrap_err();
        assert_eq!(e.to_string(), "GCR_USAGE_WAIT_SECONDS: \"soon\" is not a whole number of seconds from 0 to 3600");
    }

    #[test]
    fn accepted_values() {
        let c = config(&[
            (BUCKETS, " gs://a-logs/ , b.logs.example.com "),
            (PROJECT, "example.com:demo-project"),
            (LOCATION, "europe-west4"),
            (AUTH, "token"),
            (TOKEN, "ya29.abc-DEF_123"),
            (WAIT_SECONDS, "0"),
            (BIGQUERY_ENDPOINT, "http://127.0.0.1:9050/"),
            (METADATA_HOST, "127.0.0.1:8181"),
            (DATASET, ""),
        ])
        .unwrap();
        assert_eq!(c.buckets, BucketAllowList::Only(vec!["a-logs".into(), "b.logs.example.com".into()]));
        assert_eq!(c.project.as_deref(), Some("example.com:demo-project"));
        assert_eq!(c.location, "europe-west4");
        assert_eq!(c.auth, AuthMode::Token(Secret::new("ya29.abc-DEF_123")));
        assert!(!format!("{c:?}").contains("ya29.abc"), "the configuration's Debug shows no token");
        assert_eq!(c.wait, Duration::ZERO);
        assert_eq!(c.bigquery.base(), "http://127.0.0.1:9050");
        assert_eq!(c.metadata.base(), "http://127.0.0.1:8181");
        assert_eq!(c.dataset, "storageanalysis");
        assert_eq!(config(&[(BUCKETS, "*"), (LOCATION, "eu")]).unwrap().location, "EU");
        assert_eq!(config(&[(BUCKETS, "*")]).unwrap().buckets, BucketAllowList::Any);
    }
}
