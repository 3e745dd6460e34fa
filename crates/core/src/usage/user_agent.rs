//! The client behind a `cs_user_agent`: a family (docker, containerd, crane …) and its version.
//!
//! User agents are free text, so this is a first-match list of product tokens (`name/version`
//! at the start or after a space, `(`, `)`, `,` or `;`), most specific first: kaniko and ko also
//! carry a `go-containerregistry/` token, Docker's carries `UpstreamClient(Docker-Client/…)`.

use std::ops::Range;

use serde::Serialize;

use crate::swar;

/// Appended by Google's front end to the client's own user agent (sometimes more than once).
pub const GFE_SUFFIX: &str = ",gzip(gfe)";

/// The user agent Cloud Storage writes for Object Lifecycle Management actions.
pub const LIFECYCLE_USER_AGENT: &str = "GCS Lifecycle Management";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientFamily {
    Docker,
    Containerd,
    CriO,
    Podman,
    Buildah,
    Skopeo,
    /// The containers/image library's default agent, `containers/5.x (github.com/containers/image)`:
    /// podman, skopeo or buildah without their own token cannot be told apart.
    ContainersImage,
    Buildkit,
    Kaniko,
    Crane,
    /// Other go-containerregistry programs (ko, …); the version is the library's.
    GoContainerregistry,
    Gcloud,
    Gsutil,
    /// `Mozilla/…`; the version is the browser's own token (`Chrome/122.0.0.0`).
    Browser,
    /// Object Lifecycle Management acting on the bucket's rules.
    Lifecycle,
    /// General-purpose HTTP tools and libraries (curl, wget, python-requests, Go-http-client,
    /// Java, okhttp …); the version is the tool's token (`curl/8.5.0`).
    HttpClient,
    Other,
    /// Empty user agent.
    None,
}

/// A parsed user agent; `version` borrows from the agent string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client<'a> {
    pub family: ClientFamily,
    pub version: Option<&'a str>,
}

/// Removes every trailing `,gzip(gfe)` and surrounding spaces: the client did not send them.
pub fn strip_gfe(ua: &str) -> &str {
    let mut ua = ua.trim();
    while let Some(rest) = ua.strip_suffix(GFE_SUFFIX) {
        ua = rest.trim_end();
    }
    ua
}

/// Token-named families, in priority order: a registry client's own token beats the library
/// tokens it also carries, so kaniko/crane come before go-containerregistry.
const TOKENS: [(&str, ClientFamily); 13] = [
    ("docker", ClientFamily::Docker),
    ("buildkit", ClientFamily::Buildkit),
    ("kaniko", ClientFamily::Kaniko),
    ("crane", ClientFamily::Crane),
    ("cri-o", ClientFamily::CriO),
    ("containerd", ClientFamily::Containerd),
    ("podman", ClientFamily::Podman),
    ("libpod", ClientFamily::Podman),
    ("skopeo", ClientFamily::Skopeo),
    ("buildah", ClientFamily::Buildah),
    ("go-containerregistry", ClientFamily::GoContainerregistry),
    ("gcloud", ClientFamily::Gcloud),
    ("gsutil", ClientFamily::Gsutil),
];

/// Generic HTTP tools: matched only when no registry client token is present.
const HTTP_CLIENTS: [&str; 12] = [
    "curl",
    "wget",
    "python-requests",
    "python-urllib",
    "python-httpx",
    "aiohttp",
    "go-http-client",
    "java",
    "okhttp",
    "apache-httpclient",
    "node-fetch",
    "axios",
];

/// Browser tokens, most specific first (Edge's agent also says Chrome and Safari).
const BROWSERS: [&str; 6] = ["Edg", "OPR", "Firefox", "Chrome", "Safari", "AppleWebKit"];

/// Classifies a user agent (pass it through [`strip_gfe`] first). Versions lose a leading `v`
/// (`containerd/v1.7.13` → `1.7.13`) so that one release groups under one value.
///
/// One pass over the agent's tokens, remembering the best match of each kind: this runs once
/// per log row, so it must not rescan the agent once per known client.
pub fn parse_user_agent(ua: &str) -> Client<'_> {
    if ua.is_empty() {
        return Client { family: ClientFamily::None, version: None };
    }
    if ua == LIFECYCLE_USER_AGENT {
        return Client { family: ClientFamily::Lifecycle, version: None };
    }
    let mut registry: Option<(usize, &str)> = None;
    let mut browser: Option<(usize, &str)> = None;
    let (mut http, mut containers) = (None, None);
    for (name, version, whole) in tokens(ua).filter(|(name, _, _)| may_be_known(name)) {
        let rank = |list: &[&str]| list.iter().position(|n| n.eq_ignore_ascii_case(name));
        if let Some(i) = TOKENS.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) {
            if registry.is_none_or(|(best, _)| i < best) {
                registry = Some((i, version));
            }
        } else if let Some(i) = rank(&BROWSERS) {
            if browser.is_none_or(|(best, _)| i < best) {
                browser = Some((i, whole));
            }
        } else if http.is_none() && rank(&HTTP_CLIENTS).is_some() {
            http = Some(whole);
        } else if containers.is_none() && name == CONTAINERS {
            containers = Some(version);
        }
    }
    let (family, version) = if let Some((i, version)) = registry {
        (TOKENS[i].1, trim_v(version))
    } else if let Some(version) = containers.filter(|_| ua.contains("(github.com/containers/image)")) {
        (ClientFamily::ContainersImage, trim_v(version))
    } else if ua.starts_with("Mozilla/") {
        (ClientFamily::Browser, browser.map(|(_, whole)| whole))
    } else if http.is_some() {
        (ClientFamily::HttpClient, http)
    } else {
        (ClientFamily::Other, None)
    };
    Client { family, version }
}

/// The last user agent parsed and what it parsed to, for a reader's run of rows: an image pull
/// is one GET per blob from one client, so most rows repeat the agent of the row before (77% of
/// the synthetic benchmark log's rows), and comparing the agent is much cheaper than parsing it
/// again (parsing was 7.5% of the component's instructions). Answers exactly what
/// [`parse_user_agent`] answers; the version is kept as a range of the agent, so the answer
/// borrows from the agent passed in, not from the memo.
#[derive(Debug, Clone)]
pub struct ClientMemo {
    agent: String,
    family: ClientFamily,
    version: Option<Range<usize>>,
}

impl Default for ClientMemo {
    /// What the empty agent parses to.
    fn default() -> Self {
        ClientMemo { agent: String::new(), family: ClientFamily::None, version: None }
    }
}

impl ClientMemo {
    /// [`parse_user_agent`] of `ua`, parsed only when it is not the agent of the last call.
    pub fn parse<'a>(&mut self, ua: &'a str) -> Client<'a> {
        if !swar::same(ua.as_bytes(), self.agent.as_bytes()) {
            let client = parse_user_agent(ua);
            // The version is a slice of `ua` (`trim_v` and the token search only narrow it).
            let start = |v: &str| v.as_ptr() as usize - ua.as_ptr() as usize;
            self.version = client.version.map(|v| start(v)..start(v) + v.len());
            self.family = client.family;
            self.agent.clear();
            self.agent.push_str(ua);
        }
        Client { family: self.family, version: self.version.clone().map(|range| &ua[range]) }
    }
}

/// The product name the containers/image library's default agent uses (matched exactly).
const CONTAINERS: &str = "containers";

/// Per name length, the first letters (a bit each, case-folded) of the names in [`TOKENS`],
/// [`BROWSERS`], [`HTTP_CLIENTS`] and [`CONTAINERS`]: most tokens of an agent (`go/…`, `os/…`,
/// `arch/…`, `git-commit/…`) match no entry and are passed over without comparing them with
/// the 32 names — which, per token, had made this parser a tenth of the component's work.
const CANDIDATES: [u32; 21] = {
    let mut names: [&str; TOKENS.len() + BROWSERS.len() + HTTP_CLIENTS.len() + 1] = [""; _];
    let mut n = 0;
    while n < TOKENS.len() {
        names[n] = TOKENS[n].0;
        n += 1;
    }
    let mut i = 0;
    while i < BROWSERS.len() {
        names[n] = BROWSERS[i];
        (n, i) = (n + 1, i + 1);
    }
    i = 0;
    while i < HTTP_CLIENTS.len() {
        names[n] = HTTP_CLIENTS[i];
        (n, i) = (n + 1, i + 1);
    }
    names[n] = CONTAINERS;
    let mut masks = [0u32; 21];
    i = 0;
    while i < names.len() {
        let name = names[i].as_bytes();
        assert!(name.len() < masks.len() && name[0].is_ascii_alphabetic(), "a name the filter cannot hold");
        masks[name.len()] |= 1 << (name[0].to_ascii_lowercase() - b'a');
        i += 1;
    }
    masks
};

/// Whether `name` could be one of the known names (see [`CANDIDATES`]); false is certain.
fn may_be_known(name: &str) -> bool {
    match (CANDIDATES.get(name.len()), name.as_bytes().first()) {
        (Some(mask), Some(first)) if first.is_ascii_alphabetic() => {
            mask & (1 << (first.to_ascii_lowercase() - b'a')) != 0
        }
        _ => false,
    }
}

/// Bytes that end a token: ` ( ) , ;` (a table, for agents shorter than a word).
const SEPARATOR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 5 {
        table[b" (),;"[i] as usize] = true;
        i += 1;
    }
    table
};

/// The agent's product tokens `name/version` as `(name, version, whole token)`: a token starts
/// at the beginning or after a space, `(`, `)`, `,` or `;` and runs to the next of those.
fn tokens(ua: &str) -> impl Iterator<Item = (&str, &str, &str)> {
    let bytes = ua.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let start = i;
            let end = first_separator(&bytes[start..]).map_or(bytes.len(), |p| start + p);
            i = end + 1;
            // Separators are ASCII, so both ends are character boundaries.
            let token = &ua[start..end];
            // A byte search: `split_once('/')` goes through the char searcher, once per token.
            if let Some(slash) = memchr::memchr(b'/', token.as_bytes())
                && let (name, version) = (&token[..slash], &token[slash + 1..])
                && !name.is_empty()
                && !version.is_empty()
            {
                return Some((name, version, token));
            }
        }
        None
    })
}

/// Where the first separator (` ( ) , ;`) of `bytes` is: eight bytes at a time, the last word
/// overlapping the one before (a byte loop over the table was two fifths of this parser's
/// instructions in the component); strings under a word go byte by byte.
fn first_separator(bytes: &[u8]) -> Option<usize> {
    fn flags(word: &[u8; 8]) -> u64 {
        let w = swar::word(*word);
        // `(` and `)` are 0x28 and 0x29: one test of the word with its lowest bits set.
        swar::eq(w, b' ') | swar::eq(w | swar::ONES, b')') | swar::eq(w, b',') | swar::eq(w, b';')
    }
    let Some(last) = bytes.last_chunk::<8>() else {
        return bytes.iter().position(|&b| SEPARATOR[usize::from(b)]);
    };
    let (words, _) = bytes.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let found = flags(word);
        if found != 0 {
            return Some(n * 8 + swar::first(found));
        }
    }
    // The bytes before the last word held none, so its lowest flag is the first separator.
    let found = flags(last);
    (found != 0).then(|| bytes.len() - 8 + swar::first(found))
}

fn trim_v(version: &str) -> Option<&str> {
    let v = match version.strip_prefix(['v', 'V']) {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
        _ => version,
    };
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::ClientFamily::*;
    use super::*;

    fn parse(ua: &str) -> (ClientFamily, Option<&str>) {
        let c = parse_user_agent(strip_gfe(ua));
        (c.family, c.version)
    }

    #[test]
    fn the_name_filter_passes_every_known_name_in_any_case() {
        let names = TOKENS.iter().map(|(n, _)| *n).chain(BROWSERS).chain(HTTP_CLIENTS).chain([CONTAINERS]);
        for name in names {
            for spelling in [name.to_string(), name.to_ascii_uppercase(), name.to_ascii_lowercase()] {
                assert!(may_be_known(&spelling), "{spelling}");
            }
        }
        for other in ["go", "os", "arch", "git-commit", "", "1docker", "é", "a".repeat(300).as_str()] {
            assert!(!may_be_known(other), "{other}");
        }
    }

    #[test]
    fn gfe_suffix_is_stripped_once_or_more() {
        assert_eq!(strip_gfe("containerd/v1.7.13,gzip(gfe)"), "containerd/v1.7.13");
        assert_eq!(strip_gfe(" curl/8.5.0,gzip(gfe),gzip(gfe) "), "curl/8.5.0");
        assert_eq!(strip_gfe("gzip(gfe)"), "gzip(gfe)");
        assert_eq!(strip_gfe(",gzip(gfe)"), "");
    }

    #[test]
    fn registry_clients() {
        let docker = "docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.5.0-21-generic os/linux arch/amd64 \
                      UpstreamClient(Docker-Client/24.0.7 \\(linux\\)),gzip(gfe)";
        assert_eq!(parse(docker), (Docker, Some("24.0.7")));
        assert_eq!(parse("containerd/v1.7.13,gzip(gfe)"), (Containerd, Some("1.7.13")));
        assert_eq!(parse("containerd/1.6.28-k3s2"), (Containerd, Some("1.6.28-k3s2")));
        assert_eq!(parse("cri-o/1.28.1 go/go1.20.10 os/linux arch/amd64"), (CriO, Some("1.28.1")));
        assert_eq!(parse("buildkit/v0.12.5"), (Buildkit, Some("0.12.5")));
        assert_eq!(parse("kaniko/v1.21.0, go-containerregistry/v0.19.0,gzip(gfe)"), (Kaniko, Some("1.21.0")));
        assert_eq!(parse("crane/v0.19.1 go-containerregistry/v0.19.1,gzip(gfe)"), (Crane, Some("0.19.1")));
        assert_eq!(parse("ko/v0.15.1 go-containerregistry/v0.19.0"), (GoContainerregistry, Some("0.19.0")));
        assert_eq!(parse("go-containerregistry/v0.19.0"), (GoContainerregistry, Some("0.19.0")));
        assert_eq!(parse("Buildah/1.33.2"), (Buildah, Some("1.33.2")));
        assert_eq!(parse("podman/4.9.3"), (Podman, Some("4.9.3")));
        assert_eq!(parse("skopeo/1.14.2"), (Skopeo, Some("1.14.2")));
        assert_eq!(parse("containers/5.29.2 (github.com/containers/image)"), (ContainersImage, Some("5.29.2")));
    }

    #[test]
    fn cloud_sdk_browsers_lifecycle_and_tools() {
        let gcloud =
            "gcloud/465.0.0 command/gcloud.storage.buckets.describe invocation-id/5f2c python/3.11.8,gzip(gfe)";
        assert_eq!(parse(gcloud), (Gcloud, Some("465.0.0")));
        let gsutil = "apitools gsutil/5.27 Python/3.11.8 (linux) google-cloud-sdk/465.0.0 analytics/disabled,gzip(gfe)";
        assert_eq!(parse(gsutil), (Gsutil, Some("5.27")));
        let chrome =
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36";
        assert_eq!(parse(chrome), (Browser, Some("Chrome/122.0.0.0")));
        let edge = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/122.0 Safari/537.36 Edg/122.0.2365.80";
        assert_eq!(parse(edge), (Browser, Some("Edg/122.0.2365.80")));
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0";
        assert_eq!(parse(firefox), (Browser, Some("Firefox/123.0")));
        assert_eq!(parse("Mozilla/5.0"), (Browser, Option::None));
        assert_eq!(parse("GCS Lifecycle Management"), (Lifecycle, Option::None));
        assert_eq!(parse("python-requests/2.31.0,gzip(gfe)"), (HttpClient, Some("python-requests/2.31.0")));
        assert_eq!(parse("curl/8.5.0"), (HttpClient, Some("curl/8.5.0")));
        assert_eq!(parse("Go-http-client/2.0"), (HttpClient, Some("Go-http-client/2.0")));
        assert_eq!(parse("Java/1.8.0_171,gzip(gfe)"), (HttpClient, Some("Java/1.8.0_171")));
    }

    #[test]
    fn odd_agents() {
        assert_eq!(parse(""), (None, Option::None));
        assert_eq!(parse(",gzip(gfe)"), (None, Option::None));
        assert_eq!(parse("my-scanner"), (Other, Option::None));
        // A token must stand at a boundary: "notdocker/1" is not docker.
        assert_eq!(parse("notdocker/1.0"), (Other, Option::None));
        // A name without a version is not a token.
        assert_eq!(parse("docker/"), (Other, Option::None));
        assert_eq!(parse("Docker/20.10.7"), (Docker, Some("20.10.7")));
        assert_eq!(parse("containers/5.29 (example)"), (Other, Option::None));
        assert_eq!(parse("gcs lifecycle management"), (Other, Option::None));
        assert_eq!(parse("v/1"), (Other, Option::None));
        assert_eq!(parse("\u{fffd}docker/1 (x)"), (Other, Option::None));
    }

    /// The memo answers what a fresh parse answers, whatever came before: repeats, changes,
    /// agents that differ only in the last byte or in length, the empty agent first.
    #[test]
    fn the_memo_answers_what_parsing_answers() {
        let agents = [
            "",
            "containerd/v1.7.13",
            "containerd/v1.7.13",
            "containerd/v1.7.14",
            "containerd/v1.7.1",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
            "",
            "curl/8.5.0",
            "curl/8.5.1",
            "GCS Lifecycle Management",
            "kaniko/v1.21.0, go-containerregistry/v0.19.0",
            "my-scanner",
            "my-scanner",
            "",
        ];
        let mut memo = ClientMemo::default();
        for ua in agents {
            // A copy of its own, so that a version borrowed from an earlier agent would show.
            let ua = ua.to_string();
            let (remembered, parsed) = (memo.parse(&ua), parse_user_agent(&ua));
            assert_eq!(remembered, parsed, "{ua}");
            assert_eq!(remembered.version.map(str::as_ptr), parsed.version.map(str::as_ptr), "{ua}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_memo_agrees_with_parsing_on_any_sequence(
            agents in proptest::collection::vec(
                proptest::sample::select(vec![
                    "docker/24.0.7 go/go1.20.10", "docker/24.0.7 go/go1.20.11", "Docker/v1", "",
                    "crane/v0.19.1 go-containerregistry/v0.19.1", "containers/5.29.2 (github.com/containers/image)",
                    "python-requests/2.31.0", "Mozilla/5.0", "GCS Lifecycle Management", "x",
                ]),
                0..40,
            ),
        ) {
            let mut memo = ClientMemo::default();
            for ua in agents {
                proptest::prop_assert_eq!(memo.parse(ua), parse_user_agent(ua));
            }
        }
    }

    /// The word-at-a-time search agrees with the table on every byte value at every position
    /// of strings around the word size, before and after another separator.
    #[test]
    fn the_first_separator_is_found_exactly() {
        let by_table = |bytes: &[u8]| bytes.iter().position(|&b| SEPARATOR[usize::from(b)]);
        for len in 0..=25 {
            for fill in [b'a', b'(' - 1, b')' + 1, 0x80, 0xff] {
                for at in 0..len {
                    for b in 0..=255u8 {
                        let mut bytes = vec![fill; len];
                        bytes[at] = b;
                        assert_eq!(first_separator(&bytes), by_table(&bytes), "{bytes:?}");
                        if at + 1 < len {
                            bytes[at + 1] = b';';
                            assert_eq!(first_separator(&bytes), by_table(&bytes), "{bytes:?}");
                        }
                    }
                }
                assert_eq!(first_separator(&vec![fill; len]), Option::None);
            }
        }
    }
}
