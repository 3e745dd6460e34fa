//! Spin host mode: what the harness needs to stand in for Spin, which cannot run here.
//!
//! - [`SpinManifest`]: the parts of `spin.toml` (manifest v2) Spin acts on for this component —
//!   application variables, the component's variable templates, `allowed_outbound_hosts`, the
//!   route, `source` and the build command — validated by Spin's own rules.
//! - [`SpinVariables`]: Spin's variable resolution (`fermyon:spin/variables@2.0.0#get`):
//!   name check, component template, then provider value (what `SPIN_VARIABLE_X` or
//!   `spin up --variable` supply), then the application default.
//! - [`AllowedHosts`]: Spin's outbound check: scheme, host and port of the request must match an
//!   entry (an entry without a port means the scheme's well-known port).
//! - [`SpinWorld`]: the host world of the `spin-sdk` 5.2.0 crate's WIT (`spin:up/platform`), and
//!   the check that every import of a component is in it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentType, Lift, Lower};

use crate::guest::workspace_root;

/// The `spin-sdk` release whose WIT defines Spin's host world here (the last WASI 0.2 SDK; the
/// loader pins the same version).
pub const SPIN_SDK_VERSION: &str = "5.2.0";
/// The world a Spin host offers to every component, in that crate's `wit/world.wit`.
pub const SPIN_HOST_WORLD: &str = "spin:up/platform@3.6.0";
/// The interface Spin variables are read through (what `spin_sdk::variables::get` imports).
pub const SPIN_VARIABLES_INTERFACE: &str = "fermyon:spin/variables@2.0.0";

// ---------------------------------------------------------------------------------------------
// spin.toml
// ---------------------------------------------------------------------------------------------

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
        AllowedHosts::parse(&allowed_outbound_hosts)?;

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

    pub fn allowed_hosts(&self) -> AllowedHosts {
        AllowedHosts::parse(&self.allowed_outbound_hosts).expect("validated by parse")
    }
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
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| format!("unclosed '{{{{' in {text:?}"))?;
            let name = after[..end].trim();
            validate_variable_name(name)?;
            parts.push(Part::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template(parts))
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

// ---------------------------------------------------------------------------------------------
// Variables
// ---------------------------------------------------------------------------------------------

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

/// Spin's resolution of one component's variables, with the values a test supplies the way an
/// operator would (`SPIN_VARIABLE_X=…`, `spin up --variable x=…`).
#[derive(Clone, Debug)]
pub struct SpinVariables {
    variables: BTreeMap<String, AppVariable>,
    component_id: String,
    templates: BTreeMap<String, Template>,
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
        let mut value = String::new();
        for part in &template.0 {
            match part {
                Part::Literal(l) => value.push_str(l),
                Part::Variable(v) => value.push_str(&self.resolve(v)?),
            }
        }
        Ok(value)
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

// ---------------------------------------------------------------------------------------------
// allowed_outbound_hosts
// ---------------------------------------------------------------------------------------------

/// A parsed `allowed_outbound_hosts` list. Supports the forms this project can need: `scheme://`
/// `host[:port]` with `*` for scheme, host, port, and `*.domain` subdomain wildcards. Spin's
/// other forms (templates, `self`, CIDR, port ranges) are rejected, so a manifest using them
/// fails the tests instead of being checked wrongly.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts(Vec<AllowedHost>);

#[derive(Clone, Debug)]
struct AllowedHost {
    entry: String,
    /// `None` = any scheme.
    scheme: Option<String>,
    host: HostPattern,
    /// `None` = any port.
    port: Option<u16>,
}

#[derive(Clone, Debug)]
enum HostPattern {
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain, not `example.com` itself (Spin's rule).
    SubdomainOf(String),
}

fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHosts {
    pub fn parse(entries: &[String]) -> Result<AllowedHosts, String> {
        entries
            .iter()
            .map(|e| AllowedHost::parse(e).map_err(|why| format!("allowed_outbound_hosts {e:?}: {why}")))
            .collect::<Result<_, _>>()
            .map(AllowedHosts)
    }

    /// Whether Spin lets a request to this URL out: its scheme, host and port (the scheme's
    /// well-known port when the URL has none) must all match one entry.
    pub fn allows(&self, url: &http::Uri) -> bool {
        let (Some(scheme), Some(host)) = (url.scheme_str(), url.host()) else { return false };
        let scheme = scheme.to_ascii_lowercase();
        let host = host.to_ascii_lowercase();
        let Some(port) = url.port_u16().or_else(|| well_known_port(&scheme)) else { return false };
        self.0.iter().any(|a| {
            a.scheme.as_ref().is_none_or(|s| *s == scheme)
                && a.port.is_none_or(|p| p == port)
                && match &a.host {
                    HostPattern::Any => true,
                    HostPattern::Exact(h) => *h == host,
                    HostPattern::SubdomainOf(d) => {
                        host.strip_suffix(d.as_str()).is_some_and(|s| s.ends_with('.') && s.len() > 1)
                    }
                }
        })
    }

    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|a| a.entry.as_str())
    }
}

impl AllowedHost {
    fn parse(entry: &str) -> Result<AllowedHost, String> {
        if entry.contains("{{") {
            return Err("templates are not emulated by the harness".into());
        }
        let (scheme, rest) = entry.split_once("://").ok_or("needs a scheme (e.g. https://)")?;
        let scheme = match scheme {
            "*" => None,
            s if !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b)) =>
            {
                Some(s.to_string())
            }
            s => return Err(format!("invalid scheme {s:?}")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') {
            return Err("must not carry a path".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, "*")) => (h, None),
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| format!("invalid port {p:?}"))?)),
            None => match scheme.as_deref().map(well_known_port) {
                Some(Some(p)) => (authority, Some(p)),
                // Spin demands a port where the scheme has no well-known one.
                _ => return Err("needs a port (the scheme has no well-known one)".into()),
            },
        };
        let host = match host {
            "*" => HostPattern::Any,
            "self" => return Err("`self` (service chaining) is not emulated by the harness".into()),
            h if h.starts_with("*.") && is_hostname(&h[2..]) => HostPattern::SubdomainOf(h[2..].to_ascii_lowercase()),
            h if is_hostname(h) => HostPattern::Exact(h.to_ascii_lowercase()),
            h => return Err(format!("invalid host {h:?}")),
        };
        Ok(AllowedHost { entry: entry.to_string(), scheme, host, port })
    }
}

fn is_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
        })
}

// ---------------------------------------------------------------------------------------------
// The host world
// ---------------------------------------------------------------------------------------------

/// A function's shape: parameter names and whether it returns a value (enough to tell two
/// releases of a WASI function apart; linking checks the full types).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuncShape {
    pub params: Vec<String>,
    pub has_result: bool,
}

/// What a component imports from one interface instance, or what a world offers in one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceItems {
    pub functions: BTreeMap<String, FuncShape>,
    pub types: BTreeSet<String>,
}

/// One import of a component: an instance (`ns:pkg/iface@version`) or something else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Import {
    pub name: String,
    /// `None`: not an instance (a bare function, type or component import).
    pub items: Option<InstanceItems>,
}

/// A component's imports, as wasmtime sees them.
pub fn component_imports(component: &Component) -> Vec<Import> {
    let engine = crate::engine::engine();
    let mut imports: Vec<Import> = component
        .component_type()
        .imports(engine)
        .map(|(name, ext)| Import {
            name: name.to_string(),
            items: match ext.ty {
                ComponentItem::ComponentInstance(instance) => {
                    let mut items = InstanceItems::default();
                    for (item, ext) in instance.exports(engine) {
                        match ext.ty {
                            ComponentItem::ComponentFunc(f) => {
                                let shape = FuncShape {
                                    params: f.params().map(|(n, _)| n.to_string()).collect(),
                                    has_result: f.results().len() > 0,
                                };
                                items.functions.insert(item.to_string(), shape);
                            }
                            _ => {
                                items.types.insert(item.to_string());
                            }
                        }
                    }
                    Some(items)
                }
                _ => None,
            },
        })
        .collect();
    imports.sort_by(|a, b| a.name.cmp(&b.name));
    imports
}

/// The interfaces a Spin host offers, from the WIT of the `spin-sdk` crate.
#[derive(Clone, Debug)]
pub struct SpinWorld {
    /// `ns:pkg/iface` → (version, items) for every version the world includes.
    interfaces: BTreeMap<String, Vec<(String, InstanceItems)>>,
}

impl SpinWorld {
    /// `spin:up/platform` from the `spin-sdk` 5.2.0 crate cargo unpacked (it is a dependency of
    /// the Spin build, so building that flavour puts it there), parsed once per process.
    pub fn sdk() -> &'static SpinWorld {
        static WORLD: OnceLock<SpinWorld> = OnceLock::new();
        WORLD.get_or_init(|| {
            let dir = sdk_wit_dir().unwrap_or_else(|e| panic!("{e}"));
            SpinWorld::from_wit_dir(&dir, SPIN_HOST_WORLD).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        })
    }

    /// The imports of `world` (e.g. `spin:up/platform@3.6.0`) in a WIT directory with `deps/`.
    /// Items behind `@unstable` features are left out, as a Spin host without them would.
    pub fn from_wit_dir(dir: &Path, world: &str) -> Result<SpinWorld, String> {
        let mut resolve = wit_parser::Resolve::new();
        let (pkg, _) = resolve.push_dir(dir).map_err(|e| format!("{e:#}"))?;
        let world = resolve.select_world(&[pkg], Some(world)).map_err(|e| format!("{e:#}"))?;
        let mut interfaces: BTreeMap<String, Vec<(String, InstanceItems)>> = BTreeMap::new();
        for (key, item) in &resolve.worlds[world].imports {
            let wit_parser::WorldItem::Interface { id, .. } = item else {
                return Err(format!("world import {} is not an interface", resolve.name_world_key(key)));
            };
            let full = resolve.id_of(*id).ok_or("an anonymous interface in the world")?;
            let (name, version) = full.split_once('@').unwrap_or((&full, ""));
            let iface = &resolve.interfaces[*id];
            let items = InstanceItems {
                functions: iface
                    .functions
                    .iter()
                    .map(|(n, f)| {
                        let shape = FuncShape {
                            params: f.params.iter().map(|p| p.name.clone()).collect(),
                            has_result: f.result.is_some(),
                        };
                        (n.clone(), shape)
                    })
                    .collect(),
                types: iface.types.keys().cloned().collect(),
            };
            interfaces.entry(name.to_string()).or_default().push((version.to_string(), items));
        }
        Ok(SpinWorld { interfaces })
    }

    /// Every interface the world offers, `ns:pkg/iface@version`.
    pub fn interface_names(&self) -> Vec<String> {
        self.interfaces
            .iter()
            .flat_map(|(name, versions)| versions.iter().map(move |(v, _)| format!("{name}@{v}")))
            .collect()
    }

    /// Every problem that keeps these imports from linking on a Spin host: an import that is not
    /// an instance, an interface the world lacks (no semver-compatible version: `0.2.x` matches
    /// any `0.2.y`, pre-releases only themselves, as wasmtime links them), or a function or
    /// type the newest compatible version does not have.
    pub fn check(&self, imports: &[Import]) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for import in imports {
            let Some(items) = &import.items else {
                problems.push(format!("{}: not an interface import", import.name));
                continue;
            };
            let (name, version) = import.name.split_once('@').unwrap_or((&import.name, ""));
            let offered = self.interfaces.get(name).and_then(|versions| {
                versions
                    .iter()
                    .filter(|(v, _)| compatible(v, version))
                    .max_by(|(a, _), (b, _)| version_key(a).cmp(&version_key(b)))
            });
            let Some((offered_version, offered)) = offered else {
                problems.push(format!("{}: Spin's host world has no compatible {name}", import.name));
                continue;
            };
            for (f, shape) in &items.functions {
                match offered.functions.get(f) {
                    Some(s) if s == shape => {}
                    Some(s) => {
                        problems.push(format!("{}#{f}: {shape:?} but Spin's @{offered_version} has {s:?}", import.name))
                    }
                    None => problems.push(format!("{}#{f}: not in Spin's @{offered_version}", import.name)),
                }
            }
            for t in items.types.difference(&offered.types) {
                problems.push(format!("{}: type {t} not in Spin's @{offered_version}", import.name));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

impl fmt::Display for SpinWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.interface_names().join(", "))
    }
}

/// Numeric (major, minor, patch) of a version, pre-release ignored (for picking the newest).
fn version_key(v: &str) -> (u64, u64, u64) {
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let mut n = core.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (n.next().unwrap_or(0), n.next().unwrap_or(0), n.next().unwrap_or(0))
}

/// wasmtime's linking rule: versions match when equal, or when neither is a pre-release and they
/// share the major (≥ 1) or, for 0.x, the minor.
fn compatible(offered: &str, wanted: &str) -> bool {
    if offered == wanted {
        return true;
    }
    let plain = |v: &str| !v.is_empty() && !v.contains(['-', '+']);
    if !plain(offered) || !plain(wanted) {
        return false;
    }
    let (a, b) = (version_key(offered), version_key(wanted));
    if a.0 == 0 { b.0 == 0 && a.1 == b.1 } else { a.0 == b.0 }
}

/// `wit/` of the `spin-sdk` crate in cargo's registry (`$GCR_USAGE_SPIN_WIT` overrides).
pub fn sdk_wit_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("GCR_USAGE_SPIN_WIT") {
        return Ok(PathBuf::from(dir));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let src = cargo_home.join("registry/src");
    let crate_dir = format!("spin-sdk-{SPIN_SDK_VERSION}");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&src)
        .map_err(|e| format!("{}: {e}", src.display()))?
        .flatten()
        .map(|index| index.path().join(&crate_dir).join("wit"))
        .filter(|wit| wit.join("world.wit").is_file())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        format!(
            "{crate_dir} is not unpacked under {}: build the Spin flavour once \
             (cargo build -p gcr-usage-loader --target wasm32-wasip2 --release --features spin)",
            src.display()
        )
    })
}
