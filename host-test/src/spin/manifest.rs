//! `spin.toml` (manifest v2): what Spin acts on for this component, validated by Spin's rules.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::guest::workspace_root;

use super::allowed_hosts::{AllowedHost, PartialHost, parse_partial};
use super::{AllowedHosts, SpinVariables};

/// An application variable (`[variables] name = { … }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppVariable {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

/// What the harness reads from `spin.toml`, for the one component the manifest declares.
#[derive(Clone, Debug)]
pub struct SpinManifest {
    pub application_name: String,
    pub variables: BTreeMap<String, AppVariable>,
    pub component_id: String,
    /// `source` (a local path relative to the manifest).
    pub source: String,
    /// `[component.ID.variables]`: component variable name → template.
    pub component_variables: BTreeMap<String, Template>,
    /// `allowed_outbound_hosts` as written (`{{ variable }}` templates unresolved: see
    /// [`SpinVariables::resolve_allowed_hosts`]).
    pub allowed_outbound_hosts: Vec<String>,
    /// `[[trigger.http]]` routes of this component.
    pub routes: Vec<String>,
    /// `[component.ID.build] command`.
    pub build_command: String,
    /// `[component.ID.build] workdir` (relative to the manifest), if any.
    pub build_workdir: Option<String>,
}

impl SpinManifest {
    /// The repository's `spin.toml`.
    pub fn path() -> PathBuf {
        workspace_root().join("spin.toml")
    }

    /// The repository's `spin.toml`, parsed once per process; panics with the problem if it is
    /// not a manifest this harness (and Spin) accepts.
    pub fn repo() -> &'static SpinManifest {
        static MANIFEST: OnceLock<SpinManifest> = OnceLock::new();
        MANIFEST.get_or_init(|| {
            let path = Self::path();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            Self::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
    }

    /// Parses and validates a manifest with exactly one component.
    pub fn parse(text: &str) -> Result<SpinManifest, String> {
        let doc: toml::Table = text.parse().map_err(|e| format!("not TOML: {e}"))?;
        match doc.get("spin_manifest_version") {
            Some(toml::Value::Integer(2)) => {}
            other => return Err(format!("spin_manifest_version must be 2, found {other:?}")),
        }
        let application_name = table(&doc, "application")?
            .get("name")
            .and_then(toml::Value::as_str)
            .ok_or("[application] needs a name")?
            .to_string();

        let mut variables = BTreeMap::new();
        if let Some(vars) = doc.get("variables") {
            let vars = vars.as_table().ok_or("[variables] must be a table")?;
            for (name, v) in vars {
                validate_variable_name(name).map_err(|e| format!("[variables] {e}"))?;
                variables.insert(name.clone(), app_variable(name, v)?);
            }
        }

        let components = table(&doc, "component")?;
        let mut ids = components.keys();
        let (Some(component_id), None) = (ids.next(), ids.next()) else {
            return Err(format!("expected exactly one component, found {:?}", components.keys().collect::<Vec<_>>()));
        };
        let component = components[component_id].as_table().ok_or("a component must be a table")?;
        const COMPONENT_KEYS: [&str; 5] = ["source", "allowed_outbound_hosts", "variables", "build", "description"];
        if let Some(unknown) = component.keys().find(|k| !COMPONENT_KEYS.contains(&k.as_str())) {
            // Anything else (environment, files, key_value_stores, …) would change what the
            // component sees in Spin, and the harness would not emulate it.
            return Err(format!("[component.{component_id}] {unknown} is not emulated by the harness"));
        }
        let source = component
            .get("source")
            .and_then(toml::Value::as_str)
            .ok_or_else(|| format!("[component.{component_id}] source must be a local path"))?
            .to_string();

        let mut component_variables = BTreeMap::new();
        if let Some(vars) = component.get("variables") {
            let vars = vars.as_table().ok_or("component variables must be a table")?;
            for (name, template) in vars {
                validate_variable_name(name).map_err(|e| format!("[component.{component_id}.variables] {e}"))?;
                let text = template.as_str().ok_or_else(|| format!("component variable {name} must be a string"))?;
                let template = Template::parse(text).map_err(|e| format!("component variable {name}: {e}"))?;
                if let Some(unknown) = template.variables().find(|v| !variables.contains_key(*v)) {
                    return Err(format!("component variable {name}: unknown variable {unknown:?}"));
                }
                component_variables.insert(name.clone(), template);
            }
        }

        // Spin's default is "no outbound at all" when the key is absent.
        let allowed_outbound_hosts = match component.get("allowed_outbound_hosts") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .ok_or("allowed_outbound_hosts must be an array")?
                .iter()
                .map(|h| h.as_str().map(str::to_string).ok_or("allowed_outbound_hosts entries must be strings"))
                .collect::<Result<_, _>>()?,
        };
        validate_allowed_hosts(&allowed_outbound_hosts, &variables)
            .map_err(|e| format!("`allowed_outbound_hosts` is malformed: {e}"))?;

        let build = component
            .get("build")
            .and_then(toml::Value::as_table)
            .ok_or_else(|| format!("[component.{component_id}.build] is missing"))?;
        let build_command = build
            .get("command")
            .and_then(toml::Value::as_str)
            .ok_or("the build command must be one string")?
            .to_string();
        let build_workdir = build.get("workdir").and_then(toml::Value::as_str).map(str::to_string);

        let mut routes = Vec::new();
        let triggers =
            table(&doc, "trigger")?.get("http").and_then(toml::Value::as_array).ok_or("[[trigger.http]] is missing")?;
        for trigger in triggers {
            let trigger = trigger.as_table().ok_or("[[trigger.http]] entries must be tables")?;
            let target = trigger.get("component").and_then(toml::Value::as_str);
            if target != Some(component_id.as_str()) {
                return Err(format!("an HTTP trigger targets {target:?}, not {component_id:?}"));
            }
            let route = trigger.get("route").and_then(toml::Value::as_str).ok_or("an HTTP trigger needs a route")?;
            routes.push(route.to_string());
        }

        Ok(SpinManifest {
            application_name,
            variables,
            component_id: component_id.clone(),
            source,
            component_variables,
            allowed_outbound_hosts,
            routes,
            build_command,
            build_workdir,
        })
    }

    /// `allowed_outbound_hosts` as Spin resolves it with these provider values (application
    /// variable → value; the others take their defaults). `Err` is what Spin logs when it cannot
    /// resolve the list, and then denies every request.
    pub fn allowed_hosts_with(&self, values: &[(&str, &str)]) -> Result<AllowedHosts, String> {
        let mut variables = SpinVariables::new(self);
        for (name, value) in values {
            variables.provide(name, value);
        }
        variables.resolve_allowed_hosts()
    }
}

/// What `spin up` checks before it serves (`AllowedHostsConfig::validate`): a literal entry must
/// parse; a templated one is filled in with the variables' defaults and must then parse, unless
/// a variable it names has no default (required, or not declared at all: Spin does not check
/// those before a request, and an unknown variable then denies every request).
fn validate_allowed_hosts(entries: &[String], variables: &BTreeMap<String, AppVariable>) -> Result<(), String> {
    for entry in parse_partial(entries)? {
        if let PartialHost::Unresolved { template, text } = entry {
            let defaults = template.fill(|v| variables.get(v).and_then(|d| d.default.clone()).ok_or(()));
            if let Ok(resolved) = defaults {
                AllowedHost::parse(&resolved).map_err(|e| {
                    format!(
                        "using default variable value(s) with template {text:?} results in invalid config \
                         {resolved:?}: {e}"
                    )
                })?;
            }
        }
    }
    Ok(())
}

fn table<'a>(doc: &'a toml::Table, key: &str) -> Result<&'a toml::Table, String> {
    doc.get(key).and_then(toml::Value::as_table).ok_or_else(|| format!("[{key}] is missing"))
}

/// Spin's rules for an application variable: only these keys; `required` and `default` exclude
/// each other, and one of them is needed.
fn app_variable(name: &str, v: &toml::Value) -> Result<AppVariable, String> {
    let t = v.as_table().ok_or_else(|| format!("variable {name} must be a table"))?;
    if let Some(unknown) = t.keys().find(|k| !["default", "required", "secret", "description"].contains(&k.as_str())) {
        return Err(format!("variable {name}: unknown field {unknown}"));
    }
    let flag = |key: &str| match t.get(key) {
        None => Ok(false),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(other) => Err(format!("variable {name}: {key} must be a boolean, found {}", other.type_str())),
    };
    let default = match t.get("default") {
        None => None,
        Some(toml::Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(format!("variable {name}: default must be a string, found {}", other.type_str())),
    };
    let (required, secret) = (flag("required")?, flag("secret")?);
    match (required, &default) {
        (true, Some(_)) => Err(format!("variable {name}: required and default exclude each other")),
        (false, None) => Err(format!("variable {name}: needs a default or required = true")),
        _ => Ok(AppVariable { default, required, secret }),
    }
}

/// Spin's variable-name rule (`spin_expressions::Key`): lower-case ASCII letters, digits and
/// single underscores, starting with a letter and not ending with an underscore.
pub fn validate_variable_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "must not be empty"
    } else if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        "may contain only lower-case letters, digits and underscores"
    } else if !name.as_bytes()[0].is_ascii_lowercase() {
        "must start with a lower-case letter"
    } else if !name.as_bytes()[name.len() - 1].is_ascii_alphanumeric() {
        "must end with a letter or digit"
    } else if name.contains("__") {
        "must not contain consecutive underscores"
    } else {
        return Ok(());
    };
    Err(format!("{name:?}: {why}"))
}

/// A component variable's value: literals and `{{ variable }}` references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Part>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Literal(String),
    Variable(String),
}

impl Template {
    /// A component variable's template: every `{{ name }}` must be a valid variable name (Spin
    /// then also requires it to be declared, which [`SpinManifest::parse`] checks).
    pub fn parse(text: &str) -> Result<Template, String> {
        let template = Self::parse_unchecked(text)?;
        for name in template.variables() {
            validate_variable_name(name)?;
        }
        Ok(template)
    }

    /// Spin's `Template::new`: only the braces are checked; a name that is no variable fails
    /// when the template is resolved (`invalid variable name: …`).
    pub fn parse_unchecked(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| format!("unclosed '{{{{' in {text:?}"))?;
            parts.push(Part::Variable(after[..end].trim().to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// `true` when the template names no variable.
    pub fn is_literal(&self) -> bool {
        self.variables().next().is_none()
    }

    /// The text with every variable replaced by `value(name)`, or the first error.
    pub fn fill<E>(&self, mut value: impl FnMut(&str) -> Result<String, E>) -> Result<String, E> {
        let mut text = String::new();
        for part in &self.0 {
            match part {
                Part::Literal(l) => text.push_str(l),
                Part::Variable(v) => text.push_str(&value(v)?),
            }
        }
        Ok(text)
    }

    /// The variables the template refers to.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::Variable(v) => Some(v.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// `true` for exactly `{{ name }}`.
    pub fn is_reference_to(&self, name: &str) -> bool {
        matches!(self.0.as_slice(), [Part::Variable(v)] if v == name)
    }
}
