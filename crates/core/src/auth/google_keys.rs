//! Google's OIDC signing keys as one instance holds them: the key set, how long it is trusted,
//! and when it may be fetched again.
//!
//! Hosts that reuse an instance (`wasmtime serve --max-instance-reuse-count`, see
//! `deploy/serve.sh`) keep one [`KeyCache`] for the instance's life. Every fetch it allows is
//! decided here, so that what an anonymous sender can cause is bounded: a token naming an
//! unknown `kid` makes at most one fetch per [`MIN_FETCH_INTERVAL_MS`], whatever the request rate.

use std::collections::HashMap;

use http::HeaderMap;
use rsa::RsaPublicKey;
use serde_json::Value;

use super::jwt::rsa_key_from_jwk;

/// How long fetched keys are trusted when the answer says nothing (Google's say `max-age` of
/// several hours; keys are published well before they sign anything).
pub const DEFAULT_KEYS_MAX_AGE_MS: u64 = 3_600_000;
/// Bounds on a key set's `max-age`: `max-age=0` must not turn every event into a fetch, and a
/// huge one must not keep a set (perhaps with a retired key) for days.
pub const MIN_KEYS_MAX_AGE_MS: u64 = 60_000;
pub const MAX_KEYS_MAX_AGE_MS: u64 = 24 * 3_600_000;
/// At most one fetch per this interval, successful or not: a rotation is picked up within it,
/// and a flood of tokens naming made-up key ids costs Google (and us) two requests a minute.
pub const MIN_FETCH_INTERVAL_MS: u64 = 30_000;
/// After a set's `max-age`, while Google's endpoint cannot be reached, the set is still used
/// for this long (RFC 5861's stale-if-error): an outage of the key endpoint does not stop
/// events signed with keys we already hold. Google's tokens live an hour, so a key retired
/// during the outage cannot sign anything new beyond that.
pub const STALE_IF_ERROR_MS: u64 = 6 * 3_600_000;
/// Google publishes two or three keys; a set is cut off at this many.
pub const MAX_KEYS: usize = 16;

/// Google's signing keys by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet(HashMap<String, RsaPublicKey>);

impl KeySet {
    /// Reads a JWK set (`{"keys":[{"kty":"RSA","kid":…,"n":…,"e":…}, …]}`); non-RSA keys are
    /// skipped, and no more than [`MAX_KEYS`] are kept.
    pub fn parse(body: &[u8]) -> Result<KeySet, String> {
        let value: Value = serde_json::from_slice(body).map_err(|_| "the key set is not JSON".to_string())?;
        let keys = value.get("keys").and_then(Value::as_array).ok_or("the key set has no keys array")?;
        let set: HashMap<String, RsaPublicKey> = keys
            .iter()
            .filter_map(|k| Some((k.get("kid")?.as_str()?.to_string(), rsa_key_from_jwk(k)?)))
            .take(MAX_KEYS)
            .collect();
        if set.is_empty() {
            return Err("the key set holds no RSA key".into());
        }
        Ok(KeySet(set))
    }

    pub fn get(&self, kid: &str) -> Option<&RsaPublicKey> {
        self.0.get(kid)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The key sets this instance fetched, by key-set URL, and until when (monotonic ms) each is
/// trusted. One URL is all a deployment uses; a few are kept so that a configuration that
/// changes under a live instance does not make the two evict each other on every request.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Vec<Entry>,
    /// Fetches started over the cache's life (reported by tests and benchmarks).
    fetches: u64,
}

/// Key-set URLs held at once; a new one beyond this replaces the one fetched longest ago.
pub const MAX_SOURCES: usize = 4;

#[derive(Debug)]
struct Entry {
    /// The key-set URL: a set is only ever used for the endpoint it was fetched from.
    source: String,
    held: Option<(KeySet, u64)>,
    /// When the last fetch from this URL was started, whatever came of it.
    last_fetch_ms: u64,
}

impl KeyCache {
    fn entry(&self, source: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.source == source)
    }

    /// The keys from `source` within their `max-age`.
    pub fn fresh(&self, source: &str, now_ms: u64) -> Option<&KeySet> {
        self.entry(source)?.held.as_ref().filter(|(_, until)| now_ms < *until).map(|(k, _)| k)
    }

    /// The keys from `source`, fresh or within [`STALE_IF_ERROR_MS`] after: for when a fetch
    /// is not allowed yet or has just failed.
    pub fn usable(&self, source: &str, now_ms: u64) -> Option<&KeySet> {
        self.entry(source)?
            .held
            .as_ref()
            .filter(|(_, until)| now_ms < until.saturating_add(STALE_IF_ERROR_MS))
            .map(|(k, _)| k)
    }

    /// Whether a fetch from `source` may start now ([`MIN_FETCH_INTERVAL_MS`] since the last).
    pub fn may_fetch(&self, source: &str, now_ms: u64) -> bool {
        self.entry(source).is_none_or(|e| now_ms >= e.last_fetch_ms.saturating_add(MIN_FETCH_INTERVAL_MS))
    }

    /// A fetch from `source` starts now.
    pub fn fetching(&mut self, source: &str, now_ms: u64) {
        self.fetches += 1;
        self.entry_mut(source, now_ms).last_fetch_ms = now_ms;
    }

    /// Keeps `keys` from `source` for `max_age_ms`, bounded by [`MIN_KEYS_MAX_AGE_MS`] and
    /// [`MAX_KEYS_MAX_AGE_MS`]; the set replaces what `source` gave before.
    pub fn store(&mut self, source: &str, keys: KeySet, now_ms: u64, max_age_ms: u64) {
        let until = now_ms.saturating_add(max_age_ms.clamp(MIN_KEYS_MAX_AGE_MS, MAX_KEYS_MAX_AGE_MS));
        self.entry_mut(source, now_ms).held = Some((keys, until));
    }

    /// The entry of `source`, made (as if fetched `now_ms`) when missing, in place of the one
    /// fetched longest ago when [`MAX_SOURCES`] are held.
    fn entry_mut(&mut self, source: &str, now_ms: u64) -> &mut Entry {
        let index = match self.entries.iter().position(|e| e.source == source) {
            Some(index) => index,
            None => {
                if self.entries.len() >= MAX_SOURCES
                    && let Some(oldest) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].last_fetch_ms)
                {
                    self.entries.swap_remove(oldest);
                }
                self.entries.push(Entry { source: source.to_string(), held: None, last_fetch_ms: now_ms });
                self.entries.len() - 1
            }
        };
        &mut self.entries[index]
    }

    /// Fetches started so far.
    pub fn fetches(&self) -> u64 {
        self.fetches
    }

    /// Key-set URLs held.
    pub fn sources(&self) -> usize {
        self.entries.len()
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
