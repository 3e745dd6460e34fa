//! What the Container Registry layout tells about a log row: the registry host and project
//! behind a bucket name, the digest behind an object name, and the repository behind a Referer.
//!
//! All three are plain string shapes, matched by hand rather than with regular expressions:
//! the core is compiled into a small WASI component and these run once per log row.

use std::borrow::Cow;

use crate::swar;

/// The four Container Registry hosts, each backed by one bucket per project.
pub const REGISTRY_HOSTS: [(&str, &str); 4] =
    [("", "gcr.io"), ("us.", "us.gcr.io"), ("eu.", "eu.gcr.io"), ("asia.", "asia.gcr.io")];

/// Where blobs live inside a registry bucket; nothing else there is image content.
pub const BLOB_PREFIX: &str = "containers/images/";

/// A registry bucket: `[us.|eu.|asia.]artifacts.PROJECT.appspot.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryBucket<'a> {
    /// `gcr.io`, `us.gcr.io`, `eu.gcr.io` or `asia.gcr.io`.
    pub host: &'static str,
    /// The project id. Domain-scoped projects (`example.com:my-project`) follow App Engine's
    /// bucket naming, `artifacts.my-project.example.com.a.appspot.com`, so the id is rebuilt.
    pub project: Cow<'a, str>,
}

/// Recognises a registry bucket by its name; any other bucket is an ordinary bucket.
pub fn registry_bucket(bucket: &str) -> Option<RegistryBucket<'_>> {
    let (rest, host) = REGISTRY_HOSTS
        .iter()
        .rev() // regional prefixes first: "" matches everything
        .find_map(|(prefix, host)| Some((bucket.strip_prefix(prefix)?, *host)))?;
    let middle = rest.strip_prefix("artifacts.")?.strip_suffix(".appspot.com")?;
    if is_project_id(middle) {
        return Some(RegistryBucket { host, project: Cow::Borrowed(middle) });
    }
    // Domain-scoped: `PROJECT.DOMAIN.a` → `DOMAIN:PROJECT`.
    let (project, domain) = middle.strip_suffix(".a")?.split_once('.')?;
    let domain_ok = domain.split('.').all(|label| !label.is_empty() && is_project_id(label));
    (is_project_id(project) && domain_ok && domain.contains('.'))
        .then(|| RegistryBucket { host, project: Cow::Owned(format!("{domain}:{project}")) })
}

/// Project ids are lower-case letters, digits and hyphens (the length rules are not checked:
/// a bucket that exists names a project that exists).
fn is_project_id(s: &str) -> bool {
    let s = s.as_bytes();
    // Eight bytes at a time (every pull's bucket is checked). Not ASCII: refused by the first
    // term (the range tests are exact for ASCII words only, and matter only there).
    let refused = |w: u64| {
        let allowed = swar::ascii_in(w, b'a', b'z') | swar::ascii_in(w, b'0', b'9') | swar::ascii_in(w, b'-', b'-');
        (w & swar::HIGHS) | (!allowed & swar::HIGHS)
    };
    match swar::any_word(s, refused) {
        Some(refused) => refused == 0,
        None => !s.is_empty() && s.iter().all(|&b| is_project_byte(b)),
    }
}

fn is_project_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// The length of a digest, `sha256:` and 64 hex digits.
const DIGEST_LEN: usize = 7 + 64;
const BLOBS: &str = "/blobs/";

/// `sha256:` followed by 64 lower-case hex digits: the only digest form Container Registry
/// stored (it never supported other algorithms).
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").and_then(|hex| <&[u8; 64]>::try_from(hex.as_bytes()).ok()).is_some_and(lower_hex)
}

/// Whether every byte is `0-9a-f`, eight at a time: a pull checks its digest twice (object and
/// Referer), and a table lookup per digit was 2.5% of the component's instructions.
fn lower_hex(hex: &[u8; 64]) -> bool {
    let (words, _) = hex.as_chunks::<8>();
    // A non-ASCII byte is refused by the first test; the range tests are exact for ASCII words
    // (and wrong ones only matter where the first test already refused).
    let refused = words.iter().fold(0, |refused, word| {
        let w = swar::word(*word);
        refused | (w & swar::HIGHS) | (!(swar::ascii_in(w, b'0', b'9') | swar::ascii_in(w, b'a', b'f')) & swar::HIGHS)
    });
    refused == 0
}

/// The digest of a blob object `containers/images/sha256:<hex>`; `None` for any other name
/// (the decoded `cs_object` is used, so a `%3A` in `cs_uri` does not matter).
pub fn blob_digest(object: &str) -> Option<&str> {
    object.strip_prefix(BLOB_PREFIX).filter(|d| is_digest(d))
}

/// What a registry client's Referer says: it followed a redirect from
/// `https://HOST/v2/REPOSITORY/blobs/DIGEST` to the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobReferer<'a> {
    /// The host the client asked (`gcr.io`, `eu.gcr.io`, or another `*.gcr.io` name).
    pub host: &'a str,
    /// The whole repository path, nested components kept (`project/team/api/server`).
    pub repository: &'a str,
    pub digest: &'a str,
}

/// Parses a Referer of a registry blob redirect. Rules:
/// - scheme `https://` (or `http://`), host `gcr.io` or any `*.gcr.io` (ASCII case-insensitive,
///   no port, no user info): vanity hosts such as `k8s.gcr.io` were served the same way;
/// - path `/v2/` + repository + `/blobs/` + digest, a query or fragment is ignored;
/// - the repository is one or more non-empty components of `[a-z0-9._-]` (Docker's name
///   grammar, loosely): anything else is not a registry URL and attributes nothing.
pub fn parse_blob_referer(referer: &str) -> Option<BlobReferer<'_>> {
    let rest = referer.strip_prefix("https://").or_else(|| referer.strip_prefix("http://"))?;
    // Byte searches (`memchr`), not `str::find` with char patterns, which decode UTF-8 as they
    // go: this runs for every pull, and was 7% of the native classified path.
    let (host, path) = rest.split_at(memchr::memchr(b'/', rest.as_bytes())?);
    let h = host.as_bytes();
    let host_ok = h.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
        && (host.eq_ignore_ascii_case("gcr.io") || (h.len() > 7 && h[h.len() - 7..].eq_ignore_ascii_case(b".gcr.io")));
    if !host_ok {
        return None;
    }
    let path = memchr::memchr2(b'?', b'#', path.as_bytes()).map_or(path, |end| &path[..end]);
    // A digest has no `/blobs/` in it, so the last `/blobs/` is the one right before it: the
    // fixed-length tail is checked in place instead of searched for (this runs for every pull).
    let rest = path.strip_prefix("/v2/")?;
    let split = rest.len().checked_sub(DIGEST_LEN + BLOBS.len())?;
    let (repository, tail) = (rest.get(..split)?, rest.get(split..)?);
    let digest = tail.strip_prefix(BLOBS)?;
    (is_repository(repository) && is_digest(digest)).then_some(BlobReferer { host, repository, digest })
}

/// One or more `/`-separated components of `[a-z0-9._-]`, none empty: eight bytes at a time
/// (a table lookup and a branch per byte was 2% of the component's instructions), the last word
/// overlapping the one before. An empty component is a `/` first, last, or beside another.
fn is_repository(repository: &str) -> bool {
    let r = repository.as_bytes();
    let Some(last) = r.last_chunk::<8>() else {
        return is_short_repository(r);
    };
    if r[0] == b'/' || last[7] == b'/' {
        return false;
    }
    // The refused bytes of a word, and its slashes; pairs of slashes within it are refused.
    let test = |word: &[u8; 8]| {
        let w = swar::word(*word);
        let slashes = swar::ascii_in(w, b'/', b'/');
        // `-`, `.` and `/` are 0x2d..=0x2f.
        let allowed = swar::ascii_in(w, b'a', b'z') | swar::ascii_in(w, b'0', b'9') | swar::ascii_in(w, b'-', b'/');
        let allowed = allowed | swar::ascii_in(w, b'_', b'_');
        // Not ASCII: refused by the first term (and the range tests, exact only for ASCII, do
        // not matter).
        ((w & swar::HIGHS) | (!allowed & swar::HIGHS) | (slashes & (slashes >> 8)), slashes)
    };
    let (words, _) = r.as_chunks::<8>();
    let mut refused = test(last).0;
    // The slash flag of the previous word's last byte, where its first byte's flag sits.
    let mut slash_before = 0;
    for word in words {
        let (refused_here, slashes) = test(word);
        refused |= refused_here | (slashes & slash_before);
        slash_before = slashes >> 56;
    }
    refused == 0
}

/// [`is_repository`] for fewer than eight bytes, byte by byte.
fn is_short_repository(repository: &[u8]) -> bool {
    let mut after_slash = true; // at the start, a `/` would begin with an empty component
    for &b in repository {
        if !REPOSITORY_BYTE[usize::from(b)] || (b == b'/' && after_slash) {
            return false;
        }
        after_slash = b == b'/';
    }
    !after_slash // neither empty nor ending in `/`
}

/// The bytes of a repository path: Docker's name characters `[a-z0-9._-]`, and `/`.
const REPOSITORY_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:c1ee13b9a1a3b38904c3fc2dd6a908b762cd9ad6b666e7d02f7419deba78d4e4";

    #[test]
    fn registry_buckets_per_host() {
        for (bucket, host) in [
            ("artifacts.demo-project.appspot.com", "gcr.io"),
            ("us.artifacts.demo-project.appspot.com", "us.gcr.io"),
            ("eu.artifacts.demo-project.appspot.com", "eu.gcr.io"),
            ("asia.artifacts.demo-project.appspot.com", "asia.gcr.io"),
        ] {
            let b = registry_bucket(bucket).unwrap();
            assert_eq!((b.host, b.project.as_ref()), (host, "demo-project"), "{bucket}");
        }
    }

    #[test]
    fn domain_scoped_project_is_rebuilt() {
        let b = registry_bucket("artifacts.my-project.example.com.a.appspot.com").unwrap();
        assert_eq!((b.host, b.project.as_ref()), ("gcr.io", "example.com:my-project"));
        let b = registry_bucket("eu.artifacts.proj.corp.example.co.uk.a.appspot.com").unwrap();
        assert_eq!((b.host, b.project.as_ref()), ("eu.gcr.io", "corp.example.co.uk:proj"));
    }

    #[test]
    fn ordinary_buckets_are_not_registries() {
        for bucket in [
            "demo-project.appspot.com",
            "staging.demo-project.appspot.com",
            "artifacts.demo-project.appspot.com.evil",
            "us.artifacts..appspot.com",
            "artifacts.appspot.com",
            "uk.artifacts.demo-project.appspot.com",
            "artifacts.Demo.appspot.com",
            "artifacts.p.x.appspot.com",
            "release-bucket",
            "",
        ] {
            assert_eq!(registry_bucket(bucket), None, "{bucket}");
        }
    }

    #[test]
    fn blob_digests_come_only_from_blob_objects() {
        assert_eq!(blob_digest(&format!("containers/images/{D}")), Some(D));
        for object in [
            "containers/images/sha256:c1ee",
            &format!("containers/images/{}", D.to_uppercase()),
            &format!("containers/images/{D}/extra"),
            &format!("containers/repositories/{D}"),
            &format!("containers/images/sha512:{}", &D[7..]),
            D,
            "",
        ] {
            assert_eq!(blob_digest(object), None, "{object}");
        }
    }

    #[test]
    fn referer_keeps_nested_paths_and_regional_hosts() {
        for (referer, host, repository) in [
            (format!("https://gcr.io/v2/demo-project/app/blobs/{D}"), "gcr.io", "demo-project/app"),
            (
                format!("https://eu.gcr.io/v2/demo-project/team/api/server/blobs/{D}"),
                "eu.gcr.io",
                "demo-project/team/api/server",
            ),
            (
                format!("https://asia.gcr.io/v2/example.com/proj/img/blobs/{D}?ns=x"),
                "asia.gcr.io",
                "example.com/proj/img",
            ),
            (format!("https://k8s.gcr.io/v2/pause/blobs/{D}#f"), "k8s.gcr.io", "pause"),
            (format!("https://US.GCR.IO/v2/p/app/blobs/{D}"), "US.GCR.IO", "p/app"),
        ] {
            let r = parse_blob_referer(&referer).unwrap();
            assert_eq!((r.host, r.repository, r.digest), (host, repository, D), "{referer}");
        }
    }

    #[test]
    fn repository_paths_are_the_split_definition() {
        // The one-pass check against the plain definition, on paths built from the bytes that
        // matter (valid ones, `/`, an invalid one), every arrangement up to five bytes.
        let split = |r: &str| {
            r.split('/').all(|c| {
                !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            })
        };
        let alphabet = ["a", "/", "9", "-", "A", "é"];
        let mut paths = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> =
                paths.iter().flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}"))).collect();
            paths.extend(longer);
        }
        for path in &paths {
            assert_eq!(is_repository(path), split(path), "{path:?}");
        }
        assert!(paths.len() > 9000);
        // Longer paths take the word-at-a-time test: every byte value at every position of
        // paths of 8 to 24 bytes, and a `/` beside every other position.
        for len in 8..=24 {
            let good: String = (0..len).map(|i| if i % 5 == 4 && i + 1 < len { '/' } else { 'a' }).collect();
            assert!(is_repository(&good) && split(&good), "{good}");
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = good.clone().into_bytes();
                    bytes[at] = b;
                    let Ok(path) = String::from_utf8(bytes.clone()) else {
                        // Not UTF-8: cannot be a `&str`; a lone byte ≥ 0x80 is refused as `é` is.
                        continue;
                    };
                    assert_eq!(is_repository(&path), split(&path), "{path:?}");
                }
                // One slash, and two side by side, among letters (so no other pair hides them).
                for pair in [false, true] {
                    let mut slashes = vec![b'a'; len];
                    slashes[at] = b'/';
                    if pair && at + 1 < len {
                        slashes[at + 1] = b'/';
                    }
                    let path = String::from_utf8(slashes).unwrap();
                    assert_eq!(is_repository(&path), split(&path), "{path:?}");
                }
            }
        }
    }

    proptest::proptest! {
        /// Any path over the bytes that matter, of any length, as the split definition says.
        #[test]
        fn any_repository_path_is_the_split_definition(
            path in proptest::collection::vec(proptest::sample::select(vec!["a", "/", "9", "-", "_", ".", "A", "é", "//"]), 0..40)
        ) {
            let path = path.concat();
            let split = |r: &str| {
                r.split('/').all(|c| {
                    !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                })
            };
            proptest::prop_assert_eq!(is_repository(&path), split(&path), "{:?}", path);
        }
    }

    #[test]
    fn referer_rejects_everything_else() {
        for referer in [
            "",
            "https://console.cloud.google.com/",
            &format!("https://gcr.io/v2/blobs/{D}"),
            &format!("https://gcr.io/v2//app/blobs/{D}"),
            &format!("https://gcr.io/v2/p/app/manifests/{D}"),
            &format!("https://gcr.io/v2/p/App/blobs/{D}"),
            "https://gcr.io/v2/p/app/blobs/sha256:abc",
            &format!("https://evilgcr.io/v2/p/app/blobs/{D}"),
            &format!("https://gcr.io.evil.com/v2/p/app/blobs/{D}"),
            &format!("https://user@gcr.io/v2/p/app/blobs/{D}"),
            &format!("https://europe-docker.pkg.dev/v2/p/r/app/blobs/{D}"),
            &format!("ftp://gcr.io/v2/p/app/blobs/{D}"),
            &format!("https://gcr.io/p/app/blobs/{D}"),
            &format!("https://abc.io/v2/p/app/blobs/{D}"),
            &format!("https://.gcr.io/v2/p/app/blobs/{D}"),
        ] {
            assert_eq!(parse_blob_referer(referer), None, "{referer}");
        }
    }

    /// The word-at-a-time project id test agrees with the byte definition for every byte
    /// value at every position, at every length around the word size.
    #[test]
    fn project_ids_are_checked_at_every_byte() {
        for len in 0..=20 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut id = vec![b'p'; len];
                    id[at] = b;
                    let Ok(id) = String::from_utf8(id) else { continue };
                    let expected = id.bytes().all(is_project_byte);
                    assert_eq!(is_project_id(&id), expected, "{id:?}");
                }
            }
        }
        assert!(!is_project_id("") && !is_project_id("demo-project-é") && is_project_id("demo-project-12345"));
    }

    /// The word-at-a-time digit test agrees with `0-9a-f` for every byte value at every
    /// position of a digest.
    #[test]
    fn every_digit_of_a_digest_is_checked() {
        let good = *b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert!(lower_hex(&good));
        for at in 0..64 {
            for b in 0..=255u8 {
                let mut hex = good;
                hex[at] = b;
                assert_eq!(lower_hex(&hex), matches!(b, b'0'..=b'9' | b'a'..=b'f'), "byte {b:#x} at {at}");
            }
        }
        assert!(!is_digest("sha256:0123"));
        assert!(!is_digest(&format!("sha256:{}0", std::str::from_utf8(&good).unwrap())));
    }
}
