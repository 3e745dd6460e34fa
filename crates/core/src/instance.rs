//! What one component instance keeps from one request to the next — and nothing else does.
//!
//! Hosts that reuse an instance (`wasmtime serve --max-instance-reuse-count`, see
//! `deploy/serve.sh`) hand every request the same [`InstanceState`]; hosts that do not hand
//! each a fresh one, and behave exactly the same but for the fetches. Its contents are caches
//! only, each bounded in size (one key set of at most [`crate::auth::google_keys::MAX_KEYS`]
//! keys, one token, one project id) and in time (key sets by `max-age`, tokens by
//! `expires_in`), and each keyed by the configuration it belongs to. Nothing about a request —
//! its caller, its event, its outcome — is stored here, so nothing of one request can reach
//! the answer to another.

use crate::auth::google_keys::KeyCache;
use crate::credentials::CredentialCache;

#[derive(Debug, Default)]
pub struct InstanceState {
    /// Google's OIDC signing keys (`GCR_USAGE_TRIGGER_AUTH=google-oidc`).
    pub keys: KeyCache,
    /// The loader's access token and project id.
    pub credentials: CredentialCache,
}
