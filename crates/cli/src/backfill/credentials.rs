//! Which credential the backfill uses, found as a user of Google's tools expects: `--token`,
//! else `GCR_USAGE_AUTH` when set (the component's own settings), else Application Default
//! Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's login file, the metadata server).

use gcr_usage_core::auth::adc::{self, AdcCredential, AdcSource};
use gcr_usage_core::backfill::Credential;
use gcr_usage_core::config::{AuthMode, Config};

/// The credential, and the project its file names (a key's `project_id`, a login's
/// `quota_project_id`), for when none is configured.
pub fn resolve(
    config: &Config,
    auth_variable_set: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(Credential, Option<String>), String> {
    if auth_variable_set {
        return Ok((
            match &config.auth {
                AuthMode::Token(token) => Credential::Static(token.clone()),
                AuthMode::None => Credential::None,
                AuthMode::ServiceAccount { key, .. } => Credential::ServiceAccount(key.clone()),
                AuthMode::Metadata => Credential::Metadata(config.metadata.clone()),
            },
            None,
        ));
    }
    let source = adc::locate(env, |path| path.is_file()).map_err(|e| format!("credentials: {e}"))?;
    let path = match source {
        AdcSource::Named(path) | AdcSource::Gcloud(path) => path,
        AdcSource::MetadataServer => return Ok((Credential::Metadata(config.metadata.clone()), None)),
    };
    let shown = path.display().to_string();
    let json = std::fs::read_to_string(&path).map_err(|e| format!("credentials: cannot read {shown}: {e}"))?;
    match adc::parse_file(&shown, &json).map_err(|e| format!("credentials: {e}"))? {
        AdcCredential::ServiceAccount(key) => {
            let project = key.project_id.clone();
            Ok((Credential::ServiceAccount(key), project))
        }
        AdcCredential::AuthorizedUser(user) => {
            let project = user.quota_project_id.clone();
            Ok((Credential::AuthorizedUser(user), project))
        }
    }
}
