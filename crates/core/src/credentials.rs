//! The loader's own credentials as one instance holds them between events: the access token,
//! until shortly before it expires, and the project id the metadata server named.
//!
//! Without this, every event asks the metadata server (or the token endpoint) for a token.
//! With instance reuse (`deploy/serve.sh`) an instance asks once an hour. Entries are keyed by
//! the credential they belong to ([`token_source`], [`project_source`]): a configuration that
//! changes under a live instance (a Spin variable from a provider, say) never gets another
//! credential's token.

use std::time::Duration;

use crate::config::{AuthMode, Config};
use crate::secret::Secret;

/// A cached token is handed out only while it has this much life left beyond what the asker
/// needs (Google's client libraries refresh 3 min 45 s before expiry).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// A token answer without `expires_in` is not cached: there is no telling how long it lives.
/// One with a lifetime above this is held to it anyway (Google's last an hour).
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// An access token as the metadata server or a token endpoint answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub value: Secret,
    pub expires_in: Option<Duration>,
}

/// Where a cached token came from: the metadata server at its URL, or a service-account key
/// (account, key id and token endpoint: the same key as far as Google can tell). `None`:
/// nothing to fetch, so nothing to cache (a fixed token, a self-signed JWT, no auth).
pub fn token_source(config: &Config) -> Option<String> {
    match &config.auth {
        AuthMode::Metadata => Some(format!("metadata {}", config.metadata.base())),
        AuthMode::ServiceAccount { key, self_signed: false } => Some(format!(
            "service-account {} {} {}",
            key.client_email,
            key.private_key_id.as_deref().unwrap_or("-"),
            key.token_uri
        )),
        AuthMode::ServiceAccount { self_signed: true, .. } | AuthMode::Token(_) | AuthMode::None => None,
    }
}

/// Where the project id comes from when GCR_USAGE_PROJECT is unset: the metadata server.
pub fn project_source(config: &Config) -> Option<String> {
    config.project.is_none().then(|| format!("metadata {}", config.metadata.base()))
}

#[derive(Debug, Default)]
pub struct CredentialCache {
    token: Option<CachedToken>,
    project: Option<(String, String)>,
    token_fetches: u64,
    project_fetches: u64,
}

#[derive(Debug)]
struct CachedToken {
    source: String,
    value: Secret,
    /// Monotonic ms at which the token expires (as its `expires_in` said, from when it arrived).
    expires_at_ms: u64,
}

impl CredentialCache {
    /// A token from `source` that stays valid for at least `needed` more (a session asks for
    /// its whole budget plus [`REFRESH_MARGIN`]).
    pub fn token(&self, source: &str, now_ms: u64, needed: Duration) -> Option<&str> {
        let needed_ms = u64::try_from(needed.as_millis()).unwrap_or(u64::MAX);
        self.token
            .as_ref()
            .filter(|t| t.source == source && now_ms.saturating_add(needed_ms) < t.expires_at_ms)
            .map(|t| t.value.expose())
    }

    /// Remembers a token fetched at `fetched_at_ms` (replacing any other: one credential at a
    /// time is all an instance uses).
    pub fn store_token(&mut self, source: &str, token: &AccessToken, fetched_at_ms: u64) {
        self.token_fetches += 1;
        let Some(lifetime) = token.expires_in.map(|l| l.min(MAX_TOKEN_LIFETIME)) else {
            self.token = None;
            return;
        };
        let lifetime_ms = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        self.token = Some(CachedToken {
            source: source.to_string(),
            value: token.value.clone(),
            expires_at_ms: fetched_at_ms.saturating_add(lifetime_ms),
        });
    }

    /// Google refused the token (401): whatever is cached for `source` is not used again.
    pub fn forget_token(&mut self, source: &str) {
        if self.token.as_ref().is_some_and(|t| t.source == source) {
            self.token = None;
        }
    }

    pub fn project(&self, source: &str) -> Option<&str> {
        self.project.as_ref().filter(|(s, _)| s == source).map(|(_, p)| p.as_str())
    }

    /// A project id is the instance's for good: the metadata server never changes it.
    pub fn store_project(&mut self, source: &str, project: &str) {
        self.project_fetches += 1;
        self.project = Some((source.to_string(), project.to_string()));
    }

    /// Tokens fetched over the cache's life (tests and benchmarks count them).
    pub fn token_fetches(&self) -> u64 {
        self.token_fetches
    }

    pub fn project_fetches(&self) -> u64 {
        self.project_fetches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEED: Duration = Duration::from_secs(330); // a 30 s budget + the margin

    fn token(value: &str, secs: Option<u64>) -> AccessToken {
        AccessToken { value: Secret::new(value), expires_in: secs.map(Duration::from_secs) }
    }

    #[test]
    fn a_token_is_handed_out_while_it_outlives_what_is_needed() {
        let mut cache = CredentialCache::default();
        assert_eq!(cache.token("m", 0, NEED), None);
        cache.store_token("m", &token("ya29.a", Some(3599)), 1_000);
        let last = 1_000 + (3599 - 330) * 1000 - 1;
        assert_eq!(cache.token("m", last, NEED), Some("ya29.a"));
        assert_eq!(cache.token("m", last + 1, NEED), None, "5 min + the budget before expiry: fetched anew");
        assert_eq!(cache.token("m", 1_000, Duration::from_secs(3600)), None, "an hour-long event needs a fresh one");
        assert_eq!(cache.token("other", 2_000, NEED), None, "another credential's token is never handed out");
        assert_eq!(cache.token_fetches(), 1);
    }

    #[test]
    fn long_and_unknown_lifetimes() {
        let mut cache = CredentialCache::default();
        cache.store_token("m", &token("short", Some(120)), 0);
        assert_eq!(cache.token("m", 0, NEED), None, "too short to cover an event: used once, not cached");
        cache.store_token("m", &token("long", Some(86_400)), 0);
        assert_eq!(cache.token("m", 3_270_000 - 1, NEED), Some("long"));
        assert_eq!(cache.token("m", 3_270_000, NEED), None, "held to an hour at most");
        cache.store_token("m", &token("unknown", None), 0);
        assert_eq!(cache.token("m", 0, Duration::ZERO), None, "no expires_in: not cached");
    }

    #[test]
    fn a_refused_token_is_forgotten_and_projects_are_per_source() {
        let mut cache = CredentialCache::default();
        cache.store_token("m", &token("t", Some(3600)), 0);
        cache.forget_token("other");
        assert_eq!(cache.token("m", 1, NEED), Some("t"));
        cache.forget_token("m");
        assert_eq!(cache.token("m", 1, NEED), None);
        cache.store_project("m", "demo-project");
        assert_eq!((cache.project("m"), cache.project("n")), (Some("demo-project"), None));
    }
}
