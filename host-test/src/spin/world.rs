//! Spin's host world: spin-sdk 5.2.0's WIT (functions and types) and Spin 4.0.2's list of
//! interfaces, and the check of a component's imports against them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::{SPIN_4_HOST_WORLD, SPIN_HOST_WORLD, SPIN_RUNTIME_VERSION, SPIN_SDK_VERSION};

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

/// The interfaces a Spin release's host world imports, by name and version: Spin 4.0.2's
/// `spin:up/platform@4.0.0`, generated once from that release's WIT (850 KB, not vendored) into
/// `host-test/spin-4.0.2-platform-imports.txt` ([`PlatformImports::file_text`] writes it; the
/// file's header says how to regenerate it). Names only: the function signatures are
/// [`SpinWorld`]'s check, against the SDK's WIT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformImports {
    names: Vec<String>,
}

/// Where the list comes from: Spin's repository, the release tag and its commit.
pub const SPIN_4_SOURCE: &str = "spinframework/spin at tag v4.0.2 (commit bfc7543b21b6edda13286caea9f3f8e623125108)";
/// The list's file, relative to the harness crate.
pub const SPIN_4_IMPORTS_FILE: &str = "spin-4.0.2-platform-imports.txt";
/// The variable the regeneration reads Spin's `wit/` directory from.
pub const SPIN_4_WIT_ENV: &str = "GCR_USAGE_SPIN_4_WIT";

impl PlatformImports {
    /// Spin 4.0.2's, from the committed list.
    pub fn spin_4() -> &'static PlatformImports {
        static LIST: OnceLock<PlatformImports> = OnceLock::new();
        LIST.get_or_init(|| {
            PlatformImports::parse(include_str!("../../spin-4.0.2-platform-imports.txt"))
                .unwrap_or_else(|e| panic!("{SPIN_4_IMPORTS_FILE}: {e}"))
        })
    }

    /// The interfaces a world imports (e.g. `SpinWorld::from_wit_dir(spin_wit, SPIN_4_HOST_WORLD)`).
    pub fn of(world: &SpinWorld) -> PlatformImports {
        PlatformImports { names: world.interface_names() }
    }

    /// One `ns:pkg/iface@version` a line; `#` lines and blank lines are comments.
    pub fn parse(text: &str) -> Result<PlatformImports, String> {
        let mut names = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let well_formed = line.split_once('@').is_some_and(|(name, version)| {
                !version.is_empty()
                    && name.split_once(':').is_some_and(|(ns, rest)| {
                        !ns.is_empty() && rest.split_once('/').is_some_and(|(p, i)| !p.is_empty() && !i.is_empty())
                    })
            });
            if !well_formed {
                return Err(format!("line {}: {line:?} is not ns:pkg/iface@version", n + 1));
            }
            names.push(line.to_string());
        }
        if names.is_empty() {
            return Err("no interfaces".into());
        }
        Ok(PlatformImports { names })
    }

    /// The committed file's text: the header (source, how to regenerate) and the names.
    pub fn file_text(&self) -> String {
        let mut text = format!(
            "# The interfaces Spin {SPIN_RUNTIME_VERSION}'s host world `{SPIN_4_HOST_WORLD}` imports: what `spin up`\n\
             # offers every component, one `namespace:package/interface@version` a line. host-test/tests/loader/spin.rs\n\
             # checks that every import of the Spin build is one of them (same name, a semver-compatible\n\
             # version), besides the spin-sdk {SPIN_SDK_VERSION} check of its functions.\n\
             #\n\
             # Generated from {SPIN_4_SOURCE}:\n\
             # wit/world.wit's `world platform` with wit/deps/, parsed with wit-parser (SpinWorld::from_wit_dir);\n\
             # what sits behind @unstable features (wasi:otel) is left out. Regenerate from the repository root:\n\
             #\n\
             #   mkdir -p /tmp/spin-4.0.2 && git -C <clone of spinframework/spin> archive v4.0.2 wit | tar -x -C /tmp/spin-4.0.2\n\
             #   {SPIN_4_WIT_ENV}=/tmp/spin-4.0.2/wit cargo test -p gcr-usage-host-test --test loader -- \\\n\
             #       --ignored --exact spin::regenerate_the_spin_4_platform_imports\n\
             \n"
        );
        for name in &self.names {
            text.push_str(name);
            text.push('\n');
        }
        text
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Every import these interfaces do not cover: not an instance, or no interface of that
    /// name in a version wasmtime would link it to ([`SpinWorld::check`]'s rule).
    pub fn check(&self, imports: &[Import]) -> Result<(), Vec<String>> {
        let problems: Vec<String> = imports
            .iter()
            .filter_map(|import| {
                if import.items.is_none() {
                    return Some(format!("{}: not an interface import", import.name));
                }
                let (name, version) = import.name.split_once('@').unwrap_or((&import.name, ""));
                let offered = self
                    .names
                    .iter()
                    .any(|n| n.split_once('@').is_some_and(|(n, v)| n == name && compatible(v, version)));
                (!offered).then(|| {
                    format!("{}: Spin {SPIN_RUNTIME_VERSION}'s host world has no compatible {name}", import.name)
                })
            })
            .collect();
        if problems.is_empty() { Ok(()) } else { Err(problems) }
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
             (cargo build -p gcr-usage-loader --target wasm32-wasip2 --profile component --features spin)",
            src.display()
        )
    })
}
