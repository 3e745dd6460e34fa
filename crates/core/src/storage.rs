//! Downloading a log object from Cloud Storage: the pinned request, and checking that what
//! arrived is what Cloud Storage stored (its CRC32C from `X-Goog-Hash`, and its length).

use std::io::Read;

use base64::Engine;
use http::HeaderMap;

use crate::crc32c::Crc32c;
use crate::job::build;
use crate::object::ObjectRef;
use crate::url::{Endpoint, encode};

/// `GET …/download/storage/v1/b/{bucket}/o/{object}?alt=media&generation=N`: the version that
/// raised the event, not whatever the name holds by now.
pub fn download_request(storage: &Endpoint, object: &ObjectRef, token: Option<&str>) -> http::Request<Vec<u8>> {
    let mut path = format!("/download/storage/v1/b/{}/o/{}?alt=media", encode(&object.bucket), encode(&object.name));
    if let Some(generation) = object.generation {
        path.push_str(&format!("&generation={generation}"));
    }
    build(http::Method::GET, &storage.url(&path), token, None)
}

/// `GET …/storage/v1/b/{bucket}/o/{object}?fields=generation`: the live generation of an
/// object an event named without one. The job id is derived from the generation, so an event
/// with it and one without must end up with the same: this is asked before the id is decided.
pub fn generation_request(storage: &Endpoint, object: &ObjectRef, token: Option<&str>) -> http::Request<Vec<u8>> {
    let path = format!("/storage/v1/b/{}/o/{}?fields=generation", encode(&object.bucket), encode(&object.name));
    build(http::Method::GET, &storage.url(&path), token, None)
}

/// The generation in an object resource (`{"generation": "1710170135482117"}`; int64 as a
/// JSON string, as everywhere in the JSON API).
pub fn parse_generation(body: &[u8]) -> Result<u64, String> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| format!("object metadata is not JSON; {}", crate::bigquery::quote_body(body)))?;
    let text = match value.get("generation") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err("object metadata carries no generation".into()),
    };
    match text.parse::<u64>() {
        Ok(g) if g <= crate::object::MAX_GENERATION => Ok(g),
        _ => Err(format!("object metadata's generation {:?} is not an int64", crate::object::truncate(&text, 40))),
    }
}

/// What the download's headers promise about its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// `crc32c=` of `X-Goog-Hash`, unless the object is stored compressed (then the hash is of
    /// the stored bytes, not of the decompressed ones served; Google's clients skip it too).
    pub crc32c: Option<u32>,
    pub length: Option<u64>,
}

impl Expected {
    pub fn from_headers(headers: &HeaderMap) -> Expected {
        let transcoded = headers
            .get("x-goog-stored-content-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
            || headers.contains_key(http::header::CONTENT_ENCODING);
        let crc32c = headers
            .get_all("x-goog-hash")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|item| item.trim().strip_prefix("crc32c="))
            .find_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .map(u32::from_be_bytes)
            .filter(|_| !transcoded);
        let length = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .filter(|_| !transcoded);
        Expected { crc32c, length }
    }
}

/// Passes bytes through while computing their CRC32C and counting them.
pub struct Checked<R> {
    inner: R,
    crc: Crc32c,
    bytes: u64,
}

impl<R: Read> Checked<R> {
    pub fn new(inner: R) -> Self {
        Checked { inner, crc: Crc32c::new(), bytes: 0 }
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Compares what was read with what was promised; the error says what differs.
    pub fn verify(self, expected: &Expected) -> Result<(), String> {
        if let Some(length) = expected.length.filter(|&l| l != self.bytes) {
            return Err(format!("the download ended after {} of {length} bytes", self.bytes));
        }
        let actual = self.crc.value();
        match expected.crc32c {
            Some(crc) if crc != actual => Err(format!(
                "the download's CRC32C is {actual:08x}, Cloud Storage's is {crc:08x} (corrupted in transit)"
            )),
            _ => Ok(()),
        }
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn read_all(bytes: &[u8]) -> Checked<&[u8]> {
        let mut checked = Checked::new(bytes);
        std::io::copy(&mut checked, &mut std::io::sink()).unwrap();
        checked
    }

    #[test]
    fn download_requests_pin_the_generation_and_encode_the_name() {
        let ep = Endpoint::parse("http://127.0.0.1:4443").unwrap();
        let obj = ObjectRef { bucket: "logs".into(), name: "dir/a b+c".into(), generation: Some(42) };
        let req = download_request(&ep, &obj, Some("tok"));
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(
            req.uri(),
            "http://127.0.0.1:4443/download/storage/v1/b/logs/o/dir%2Fa%20b%2Bc?alt=media&generation=42"
        );
        assert_eq!(req.headers()["authorization"], "Bearer tok");
        let unpinned = ObjectRef { generation: None, ..obj };
        assert!(download_request(&ep, &unpinned, None).uri().to_string().ends_with("?alt=media"));
    }

    #[test]
    fn expected_values_from_headers() {
        let crc = base64::engine::general_purpose::STANDARD.encode(0xE306_9283u32.to_be_bytes());
        let e = Expected::from_headers(&headers(&[
            ("x-goog-hash", &format!("crc32c={crc}")),
            ("x-goog-hash", "md5=XrY7u+Ae7tCTyyK7j1rNww=="),
            ("content-length", "9"),
        ]));
        assert_eq!(e, Expected { crc32c: Some(0xE306_9283), length: Some(9) });
        let joined = Expected::from_headers(&headers(&[(
            "x-goog-hash",
            &format!("md5=XrY7u+Ae7tCTyyK7j1rNww==, crc32c={crc}"),
        )]));
        assert_eq!(joined.crc32c, Some(0xE306_9283));
        assert_eq!(Expected::from_headers(&headers(&[("x-goog-hash", "crc32c=!!")])).crc32c, None);
        assert_eq!(Expected::from_headers(&headers(&[("x-goog-hash", "crc32c=AAAA")])).crc32c, None, "3 bytes");
        let gzip = Expected::from_headers(&headers(&[
            ("x-goog-hash", &format!("crc32c={crc}")),
            ("x-goog-stored-content-encoding", "gzip"),
            ("content-length", "3"),
        ]));
        assert_eq!(gzip, Expected::default(), "served decompressed: the hash is of other bytes");
    }

    #[test]
    fn verification() {
        let expected = Expected { crc32c: Some(0xE306_9283), length: Some(9) };
        assert_eq!(read_all(b"123456789").verify(&expected), Ok(()));
        assert!(read_all(b"123456780").verify(&expected).unwrap_err().contains("corrupted in transit"));
        assert!(read_all(b"1234").verify(&expected).unwrap_err().contains("after 4 of 9 bytes"));
        assert_eq!(read_all(b"anything").verify(&Expected::default()), Ok(()), "nothing promised");
        assert_eq!(read_all(b"123456789").bytes_read(), 9);
    }
}
