//! URLs the loader builds: API endpoints and percent-encoded path segments and query values.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters is encoded: an object name is *one* path
/// segment for the JSON API (`/` → `%2F`, space → `%20`, `+` → `%2B`), and job ids, project ids
/// and locations are encoded the same way so no value can ever change a URL's structure.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes one path segment or query value.
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}

/// The base URL of an API (`scheme://authority[/path]`, no trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
    has_path: bool,
}

impl Endpoint {
    /// Accepts `http(s)://host[:port][/base/path]`; the error explains what is wrong.
    pub fn parse(value: &str) -> Result<Endpoint, String> {
        let uri: http::Uri = value.parse().map_err(|e| format!("{value:?} is not a URL ({e})"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(format!("{value:?} must start with http:// or https://")),
        }
        let Some(authority) = uri.authority().filter(|a| !a.host().is_empty()) else {
            return Err(format!("{value:?} has no host"));
        };
        if uri.query().is_some() || authority.as_str().contains('@') {
            return Err(format!("{value:?} must not carry a query or user info"));
        }
        let path = uri.path().trim_end_matches('/');
        Ok(Endpoint {
            base: format!("{}://{}{}", uri.scheme_str().unwrap_or("https"), authority, path),
            has_path: !path.is_empty(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn has_no_path(&self) -> bool {
        !self.has_path
    }

    /// `base` + `path` (which starts with `/` and is already encoded).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_object_names_as_one_segment() {
        assert_eq!(encode("dir/a b+c#d?e%f"), "dir%2Fa%20b%2Bc%23d%3Fe%25f");
        assert_eq!(encode("ü"), "%C3%BC");
        assert_eq!(encode("a-b.c_d~e"), "a-b.c_d~e");
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::parse("https://bigquery.googleapis.com/").unwrap().base(),
            "https://bigquery.googleapis.com"
        );
        assert_eq!(Endpoint::parse("http://127.0.0.1:9050/proxy/").unwrap().url("/x"), "http://127.0.0.1:9050/proxy/x");
        for bad in ["bigquery.googleapis.com", "ftp://x", "http://", "http://h?x=1", "http://u@h", ""] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
