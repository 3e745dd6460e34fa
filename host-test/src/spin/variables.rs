//! Spin's variable resolution (`fermyon:spin/variables@2.0.0#get`) and the start-up check of
//! required variables; an instance's allow-list resolved with the same values.

use std::collections::BTreeMap;
use std::fmt;

use wasmtime::component::{ComponentType, Lift, Lower};

use super::allowed_hosts::{AllowedHost, PartialHost, parse_partial};
use super::{AllowedHosts, AppVariable, SpinManifest, Template, validate_variable_name};

/// `fermyon:spin/variables@2.0.0`'s `error` variant, case for case.
#[derive(ComponentType, Lift, Lower, Clone, Debug, PartialEq, Eq)]
#[component(variant)]
pub enum VariableError {
    #[component(name = "invalid-name")]
    InvalidName(String),
    #[component(name = "undefined")]
    Undefined(String),
    #[component(name = "provider")]
    Provider(String),
    #[component(name = "other")]
    Other(String),
}

impl fmt::Display for VariableError {
    /// As Spin's `spin_expressions::Error` displays it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VariableError::InvalidName(n) => write!(f, "invalid variable name: {n}"),
            VariableError::Undefined(m) => write!(f, "undefined variable: {m}"),
            VariableError::Provider(m) => write!(f, "provider error: {m}"),
            VariableError::Other(m) => f.write_str(m),
        }
    }
}

/// Spin's resolution of one component's variables, with the values a test supplies the way an
/// operator would (`SPIN_VARIABLE_X=…`, `spin up --variable x=…`).
#[derive(Clone, Debug)]
pub struct SpinVariables {
    variables: BTreeMap<String, AppVariable>,
    component_id: String,
    templates: BTreeMap<String, Template>,
    /// The component's `allowed_outbound_hosts`, as written (templates unresolved).
    outbound: Vec<String>,
    provided: BTreeMap<String, String>,
    /// Application variables whose provider fails (e.g. Vault unreachable), with its message.
    failing: BTreeMap<String, String>,
    /// Component variables whose `get` answers this error outright (the host's own failures,
    /// which no manifest can provoke).
    errors: BTreeMap<String, VariableError>,
}

impl SpinVariables {
    pub fn new(manifest: &SpinManifest) -> Self {
        SpinVariables {
            variables: manifest.variables.clone(),
            component_id: manifest.component_id.clone(),
            templates: manifest.component_variables.clone(),
            outbound: manifest.allowed_outbound_hosts.clone(),
            provided: BTreeMap::new(),
            failing: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    /// A provider value for an application variable.
    pub fn provide(&mut self, name: &str, value: &str) {
        self.provided.insert(name.into(), value.into());
    }

    /// Makes the provider fail for this application variable.
    pub fn fail(&mut self, name: &str, message: &str) {
        self.failing.insert(name.into(), message.into());
    }

    /// `get(name)` answers this error.
    pub fn error(&mut self, name: &str, error: VariableError) {
        self.errors.insert(name.into(), error);
    }

    /// Drops a component variable (as an older or hand-edited `spin.toml` would lack it).
    pub fn undeclare(&mut self, name: &str) {
        self.templates.remove(name);
    }

    /// What `variables.get(name)` answers in Spin.
    pub fn get(&self, name: &str) -> Result<String, VariableError> {
        validate_variable_name(name).map_err(VariableError::InvalidName)?;
        if let Some(e) = self.errors.get(name) {
            return Err(e.clone());
        }
        let template = self
            .templates
            .get(name)
            .ok_or_else(|| VariableError::Undefined(format!("no variable for {:?}.{name:?}", self.component_id)))?;
        template.fill(|v| self.resolve(v))
    }

    /// What `spin up` checks before it serves (`ensure_required_variables_resolvable`): every
    /// required application variable must have a provider that may resolve it — here, a value
    /// the test provided (an empty one counts, as an empty `SPIN_VARIABLE_X` does) or a provider
    /// made to fail (Vault and the like answer "may resolve" up front). Otherwise Spin stops
    /// with this error before serving anything.
    pub fn check_required(&self) -> Result<(), String> {
        let missing: Vec<String> = self
            .variables
            .iter()
            .filter(|(name, v)| {
                v.default.is_none() && !self.provided.contains_key(*name) && !self.failing.contains_key(*name)
            })
            .map(|(name, _)| format!("Key({name:?})"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("Error: provider error: no provider resolved required variable(s): [{}]", missing.join(", ")))
        }
    }

    /// The allow-list of an instance, as Spin builds it (`AllowedHostsConfig::parse` with a
    /// `PreparedResolver`): every application variable resolved (provider value, else default),
    /// then every entry parsed, templates filled in with those values. Any failure — a variable
    /// that does not resolve, a template naming an unknown variable, an entry that is no allowed
    /// host once filled in (`""`, a path…) — is the whole list's: Spin logs it and denies every
    /// outbound request, literal entries included. The `Err` is Spin's log message.
    pub fn resolve_allowed_hosts(&self) -> Result<AllowedHosts, String> {
        let mut values = BTreeMap::new();
        for name in self.variables.keys() {
            let value = self.resolve(name).map_err(|e| {
                format!("Error resolving variables when checking request against allowed outbound hosts: {e}")
            })?;
            values.insert(name.as_str(), value);
        }
        let parse_error = |e: String| format!("Error parsing allowed outbound hosts: {e}");
        let mut hosts = Vec::new();
        for entry in parse_partial(&self.outbound).map_err(parse_error)? {
            hosts.push(match entry {
                PartialHost::Exact(host) => host,
                PartialHost::Unresolved { template, .. } => {
                    let resolved = template
                        .fill(|v| values.get(v).cloned().ok_or_else(|| format!("invalid variable name: {v}")))
                        .map_err(parse_error)?;
                    AllowedHost::parse(&resolved).map_err(parse_error)?
                }
            });
        }
        Ok(AllowedHosts { hosts, unresolved: None })
    }

    /// The policy the harness applies to an instance's outbound requests: the resolved list, or,
    /// when it does not resolve, one that denies everything (and says why).
    pub fn outbound_policy(&self) -> AllowedHosts {
        self.resolve_allowed_hosts().unwrap_or_else(AllowedHosts::deny_all)
    }

    fn resolve(&self, variable: &str) -> Result<String, VariableError> {
        if let Some(why) = self.failing.get(variable) {
            return Err(VariableError::Provider(why.clone()));
        }
        if let Some(v) = self.provided.get(variable) {
            return Ok(v.clone());
        }
        let declared = self.variables.get(variable).ok_or_else(|| VariableError::InvalidName(variable.into()))?;
        declared
            .default
            .clone()
            .ok_or_else(|| VariableError::Provider(format!("no provider resolved required variable {variable:?}")))
    }
}
