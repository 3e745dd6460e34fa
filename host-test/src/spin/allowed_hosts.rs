//! `allowed_outbound_hosts`: entries parsed and matched the way Spin 4 does it.

use std::net::IpAddr;

use super::Template;

/// A resolved `allowed_outbound_hosts` list, parsed the way Spin parses each entry
/// (`AllowedHostConfig::parse`): `scheme://host[:port][/]`, `*` for scheme, host or port,
/// `*.domain` for any subdomain, a port range `a..b` (`b` excluded), an IP address or CIDR
/// block as host (`127.0.0.1`, `10.0.0.0/8`), an entry without a port meaning the scheme's
/// well-known one. What the harness does not emulate (`self` and service chaining, scheme, host
/// and port lists, non-ASCII host names) is rejected with that reason, so a manifest using it
/// fails the tests instead of being checked wrongly. Templated entries are resolved by
/// [`SpinVariables::resolve_allowed_hosts`]; [`AllowedHosts::parse`] takes literal ones only.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    pub(crate) hosts: Vec<AllowedHost>,
    /// Why the list could not be resolved: then nothing is allowed.
    pub(crate) unresolved: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct AllowedHost {
    entry: String,
    /// `None` = any scheme. Compared as written: Spin accepts `HTTPS://…`, which then matches
    /// nothing (request schemes are lower case).
    scheme: Option<String>,
    host: HostPattern,
    /// `None` = any port.
    ports: Option<PortPattern>,
}

#[derive(Clone, Debug)]
enum HostPattern {
    Any,
    /// A domain name, lower case.
    Exact(String),
    /// `*.example.com`: any subdomain, not `example.com` itself (held as `.example.com`).
    SubdomainOf(String),
    /// An address or block (a bare address is its /32 or /128), host bits cleared.
    Cidr(IpAddr, u8),
}

#[derive(Clone, Copy, Debug)]
enum PortPattern {
    One(u16),
    /// `a..b`: `a` up to, not including, `b` (Spin's `Range`).
    Range(u16, u16),
}

/// Spin's table (`well_known_port`): the port an entry or a URL without one means.
fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// One entry of the list as written: parsed when literal, kept as a template otherwise (Spin's
/// `PartialAllowedHostConfig`).
pub(crate) enum PartialHost {
    Exact(AllowedHost),
    Unresolved { template: Template, text: String },
}

/// Spin's `parse_partial`: literal entries must parse now, templated ones wait for the values.
pub(crate) fn parse_partial(entries: &[String]) -> Result<Vec<PartialHost>, String> {
    if let [only] = entries
        && only == "insecure:allow-all"
    {
        return Err("'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all \
                    outbound traffic'"
            .into());
    }
    entries
        .iter()
        .map(|entry| {
            let template = Template::parse_unchecked(entry).map_err(|e| format!("invalid variable template: {e}"))?;
            if template.is_literal() {
                AllowedHost::parse(entry).map(PartialHost::Exact)
            } else {
                Ok(PartialHost::Unresolved { template, text: entry.clone() })
            }
        })
        .collect()
}

impl AllowedHosts {
    /// A list of literal entries (no `{{ … }}`: those need the variables, see
    /// [`SpinVariables::resolve_allowed_hosts`]).
    pub fn parse(entries: &[String]) -> Result<AllowedHosts, String> {
        let mut hosts = Vec::new();
        for entry in parse_partial(entries)? {
            match entry {
                PartialHost::Exact(host) => hosts.push(host),
                PartialHost::Unresolved { text, .. } => {
                    return Err(format!(
                        "{text:?} is a template: it is resolved with the variables \
                         (SpinVariables::resolve_allowed_hosts)"
                    ));
                }
            }
        }
        Ok(AllowedHosts { hosts, unresolved: None })
    }

    /// The list Spin acts on when resolving `allowed_outbound_hosts` failed: nothing is allowed.
    pub fn deny_all(why: String) -> AllowedHosts {
        AllowedHosts { hosts: Vec::new(), unresolved: Some(why) }
    }

    /// Why this list allows nothing at all, if it could not be resolved (what Spin logs).
    pub fn unresolved(&self) -> Option<&str> {
        self.unresolved.as_deref()
    }

    /// Whether Spin lets a request to this URL out: its scheme, host and port (the scheme's
    /// well-known port when the URL has none) must all match one entry.
    pub fn allows(&self, url: &http::Uri) -> bool {
        let (Some(scheme), Some(host)) = (url.scheme_str(), url.host()) else { return false };
        let scheme = scheme.to_ascii_lowercase();
        let host = RequestHost::parse(host);
        let port = url.port_u16().or_else(|| well_known_port(&scheme));
        self.hosts.iter().any(|a| {
            a.scheme.as_ref().is_none_or(|s| *s == scheme)
                && match a.ports {
                    None => true,
                    Some(PortPattern::One(p)) => port == Some(p),
                    Some(PortPattern::Range(from, to)) => port.is_some_and(|p| from <= p && p < to),
                }
                && match (&a.host, &host) {
                    (HostPattern::Any, _) => true,
                    (HostPattern::Exact(h), RequestHost::Domain(d)) => h == d,
                    (HostPattern::SubdomainOf(suffix), RequestHost::Domain(d)) => d.ends_with(suffix.as_str()),
                    (HostPattern::Cidr(net, len), RequestHost::Ip(ip)) => in_block(*ip, *net, *len),
                    _ => false,
                }
        })
    }

    /// The entries, as written (templates filled in).
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(|a| a.entry.as_str())
    }
}

/// A request's host as Spin compares it (`url::Host`): an IP address or a lower-case domain.
enum RequestHost {
    Ip(IpAddr),
    Domain(String),
}

impl RequestHost {
    fn parse(host: &str) -> RequestHost {
        let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        match bare.parse::<IpAddr>() {
            Ok(ip) => RequestHost::Ip(ip),
            Err(_) => RequestHost::Domain(host.to_ascii_lowercase()),
        }
    }
}

impl AllowedHost {
    /// Spin's `AllowedHostConfig::parse`, step for step (the port is split off at the last `:`,
    /// then the port, the scheme and the host are checked in that order), with Spin's messages.
    pub(crate) fn parse(entry: &str) -> Result<AllowedHost, String> {
        let url = entry.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(match url {
                "*" | ":" | "" | "?" => format!(
                    "{url:?} is not an allowed outbound host format. Hosts must be in the form \
                     <scheme>://<host>[:<port>], with '*' wildcards allowed for each."
                ),
                _ => format!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')"),
            });
        };
        let (host, rest) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let port = match rest.split_once('/') {
            Some((_, path)) if !path.is_empty() => return Err(format!("{url:?} has a path but is not allowed to")),
            Some((port, _)) => port,
            None => rest,
        };
        let ports = parse_port(port, scheme).map_err(|e| format!("Invalid allowed host port {port:?}: {e}"))?;
        let scheme = match scheme {
            "*" => None,
            s if s.starts_with('{') => {
                return Err(format!("Invalid allowed host scheme {s:?}: scheme lists are not supported"));
            }
            s if s.chars().any(|c| !c.is_alphabetic()) => {
                return Err(format!("Invalid allowed host scheme {s:?}: only alphabetic characters are allowed"));
            }
            s => Some(s.to_string()),
        };
        let host = parse_host(host).map_err(|e| format!("Invalid allowed host {host:?}: {e}"))?;
        Ok(AllowedHost { entry: entry.to_string(), scheme, host, ports })
    }
}

/// Spin's `PortConfig::parse`.
fn parse_port(port: &str, scheme: &str) -> Result<Option<PortPattern>, String> {
    let number = |p: &str| p.parse::<u16>().map_err(|_| format!("port {p:?} is not a number"));
    match port {
        "" => well_known_port(scheme).map(|p| Some(PortPattern::One(p))).ok_or_else(|| {
            format!("no port was provided and the scheme {scheme:?} does not have a known default port number")
        }),
        "*" => Ok(None),
        p if p.starts_with('{') => Err("port lists are not yet supported".into()),
        p => match p.split_once("..") {
            Some((from, to)) => Ok(Some(PortPattern::Range(number(from)?, number(to)?))),
            None => Ok(Some(PortPattern::One(number(p)?))),
        },
    }
}

/// Spin's `HostConfig::parse`.
fn parse_host(host: &str) -> Result<HostPattern, String> {
    let host = host.trim();
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if host == "self" || host == "self.alt" {
        return Err("`self` (requests to the app itself) is not emulated by the harness".into());
    }
    if host.starts_with('{') {
        return Err("host lists are not yet supported".into());
    }
    if let Some((ip, len)) = parse_cidr(host) {
        return Ok(HostPattern::Cidr(ip, len));
    }
    let host = host.trim_end_matches('/');
    if host.contains('/') {
        return Err("must not include a path".into());
    }
    // An IPv6 literal (`[::1]`, only with a port: without one, the last `:` splits it).
    if let Some(ip) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ip = ip.parse::<std::net::Ipv6Addr>().map_err(|_| "invalid IPv6 address".to_string())?;
        return Ok(HostPattern::Cidr(IpAddr::V6(ip), 128));
    }
    let domain = |d: &str| -> Result<String, String> {
        // `url::Host::parse` accepts any name without its forbidden code points (so `_` too);
        // IDNA is not emulated.
        const FORBIDDEN: &[u8] = b" #%/:<>?@[\\]^|*";
        if d.is_empty() {
            return Err("empty host".into());
        }
        if !d.bytes().all(|b| b.is_ascii_graphic() && !FORBIDDEN.contains(&b)) {
            return Err("invalid host name (non-ASCII names are not emulated by the harness)".into());
        }
        let d = d.to_ascii_lowercase();
        if d == SERVICE_CHAINING_DOMAIN || d.ends_with(&format!(".{SERVICE_CHAINING_DOMAIN}")) {
            return Err("service chaining (*.spin.internal) is not emulated by the harness".into());
        }
        Ok(d)
    };
    if let Some(parent) = host.strip_prefix("*.") {
        if parent.contains('*') {
            return Err("wildcards are allowed only as prefixes".into());
        }
        return Ok(HostPattern::SubdomainOf(format!(".{}", domain(parent)?)));
    }
    if host.contains('*') {
        return Err("wildcards are allowed only as subdomains".into());
    }
    domain(host).map(HostPattern::Exact)
}

/// Spin's domain for service chaining (`http://component.spin.internal`).
const SERVICE_CHAINING_DOMAIN: &str = "spin.internal";

/// `ip_network::IpNetwork::from_str_truncate`: `address[/prefix]`, host bits cleared.
fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, Some(len.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then(|| (truncate(ip, len), len))
}

fn truncate(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

fn in_block(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    ip.is_ipv4() == net.is_ipv4() && truncate(ip, len) == net
}
