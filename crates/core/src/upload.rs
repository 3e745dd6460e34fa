//! BigQuery's resumable upload protocol, as pure request builders and answer readers.
//!
//! The job JSON opens a session (`job::LoadSpec::upload_request`); the answer's `Location` is
//! the session URL. Chunks are `PUT` to it with `Content-Range: bytes a-b/*` while the total is
//! unknown (every chunk but the last a multiple of 256 KiB) and answered `308` with a `Range:
//! bytes=0-N` header saying how much is persisted; the last chunk names the total and is
//! answered with the Job resource. Only then does the job exist, so a session abandoned halfway
//! (bad checksum, crash) loads nothing and needs no cleanup: Google expires it.

use crate::job::build;
use crate::url::Endpoint;

/// Where the chunks go. The bearer token travels with every chunk, so the URL must be on the
/// configured BigQuery origin: a `Location` elsewhere is refused rather than followed.
pub fn session_url(response: &http::Response<Vec<u8>>, bigquery: &Endpoint) -> Result<String, String> {
    let location = response
        .headers()
        .get(http::header::LOCATION)
        .ok_or("the answer opening the upload session has no Location header")?
        .to_str()
        .map_err(|_| "the upload session's Location header is not text")?;
    let origin = origin_of(bigquery.base());
    let url = if location.starts_with('/') { format!("{origin}{location}") } else { location.to_string() };
    let uri: http::Uri = url.parse().map_err(|_| format!("the upload session URL {location:?} is not a URL"))?;
    let same_origin = uri.scheme().zip(uri.authority()).map(|(s, a)| format!("{s}://{a}")) == Some(origin.clone());
    if !same_origin {
        return Err(format!(
            "the upload session URL {:?} is not on {origin}; refusing to send the token elsewhere",
            crate::object::truncate(location, 200)
        ));
    }
    Ok(url)
}

fn origin_of(base: &str) -> String {
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    match base[after_scheme..].find('/') {
        Some(slash) => base[..after_scheme + slash].to_string(),
        None => base.to_string(),
    }
}

/// One chunk starting at byte `offset` of the upload; `total` is known only for the last one
/// (an empty last chunk says "the total is `total`, nothing more"). The body is the caller's
/// (`&[u8]`: a chunk it keeps, to send again if this try fails).
pub fn chunk_request<B: AsRef<[u8]>>(
    url: &str,
    token: Option<&str>,
    offset: u64,
    bytes: B,
    total: Option<u64>,
) -> http::Request<B> {
    let total_text = total.map_or_else(|| "*".to_string(), |t| t.to_string());
    let len = bytes.as_ref().len() as u64;
    let range = match len {
        0 => format!("bytes */{total_text}"),
        _ => format!("bytes {offset}-{}/{total_text}", offset + len - 1),
    };
    put(url, token, &range, bytes)
}

/// Asks how much of the upload is persisted (after a chunk whose answer was lost).
pub fn status_request(url: &str, token: Option<&str>) -> http::Request<Vec<u8>> {
    put(url, token, "bytes */*", Vec::new())
}

fn put<B: AsRef<[u8]>>(url: &str, token: Option<&str>, range: &str, bytes: B) -> http::Request<B> {
    let mut request = build(http::Method::PUT, url, token, None);
    let headers = request.headers_mut();
    headers.insert(http::header::CONTENT_LENGTH, bytes.as_ref().len().into());
    headers.insert(http::header::CONTENT_RANGE, range.parse().expect("a range is a valid header value"));
    request.map(|_| bytes)
}

/// For a `308 Resume Incomplete`: how many bytes the server holds (`Range: bytes=0-N` → N+1;
/// no header → none yet). `None` for any other status or an unreadable header.
pub fn persisted(response: &http::Response<Vec<u8>>) -> Option<u64> {
    if response.status().as_u16() != 308 {
        return None;
    }
    let Some(range) = response.headers().get(http::header::RANGE) else { return Some(0) };
    let last = range.to_str().ok()?.trim().strip_prefix("bytes=0-")?;
    last.parse::<u64>().ok()?.checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)]) -> http::Response<Vec<u8>> {
        let mut b = http::Response::builder().status(status);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(Vec::new()).unwrap()
    }

    #[test]
    fn session_urls_stay_on_the_bigquery_origin() {
        let google = Endpoint::parse("https://bigquery.googleapis.com").unwrap();
        let url =
            "https://bigquery.googleapis.com/upload/bigquery/v2/projects/p/jobs?uploadType=resumable&upload_id=AB";
        assert_eq!(session_url(&response(200, &[("location", url)]), &google).unwrap(), url);
        let local = Endpoint::parse("http://127.0.0.1:9050/base").unwrap();
        assert_eq!(
            session_url(&response(200, &[("location", "/upload/x?upload_id=1")]), &local).unwrap(),
            "http://127.0.0.1:9050/upload/x?upload_id=1"
        );
        let elsewhere = session_url(&response(200, &[("location", "https://evil.example/upload")]), &google);
        assert!(elsewhere.unwrap_err().contains("refusing to send the token elsewhere"));
        let other_port = session_url(&response(200, &[("location", "http://127.0.0.1:9051/u")]), &local);
        assert!(other_port.is_err());
        assert!(session_url(&response(200, &[]), &google).unwrap_err().contains("no Location header"));
        assert!(session_url(&response(200, &[("location", "http://[bad")]), &google).is_err());
    }

    #[test]
    fn chunk_ranges() {
        let r = chunk_request("http://h/u?upload_id=1", Some("t"), 0, vec![b'x'; 262_144], None);
        assert_eq!(r.method(), http::Method::PUT);
        assert_eq!(r.headers()["content-range"], "bytes 0-262143/*");
        assert_eq!(r.headers()["content-length"], "262144");
        assert_eq!(r.headers()["authorization"], "Bearer t");
        assert!(r.headers().get("content-type").is_none());
        let last = chunk_request("http://h/u", None, 262_144, b"abc".to_vec(), Some(262_147));
        assert_eq!(last.headers()["content-range"], "bytes 262144-262146/262147");
        let empty_last = chunk_request("http://h/u", None, 262_144, Vec::new(), Some(262_144));
        assert_eq!(empty_last.headers()["content-range"], "bytes */262144");
        assert_eq!(chunk_request("http://h/u", None, 0, Vec::new(), Some(0)).headers()["content-range"], "bytes */0");
        let status = status_request("http://h/u", None);
        assert_eq!((status.headers()["content-range"].to_str().unwrap(), status.body().len()), ("bytes */*", 0));
    }

    #[test]
    fn persisted_bytes_from_308() {
        assert_eq!(persisted(&response(308, &[("range", "bytes=0-262143")])), Some(262_144));
        assert_eq!(persisted(&response(308, &[])), Some(0));
        assert_eq!(persisted(&response(308, &[("range", "bytes=5-9")])), None);
        assert_eq!(persisted(&response(308, &[("range", "bytes=0-x")])), None);
        assert_eq!(persisted(&response(308, &[("range", "bytes=0-18446744073709551615")])), None);
        assert_eq!(persisted(&response(200, &[("range", "bytes=0-1")])), None);
    }
}
