//! Which Google endpoint a request is for, from its method, path and `Content-Range` alone —
//! the same routing whatever host name the runner gives the services (emulator, fake, Google).

/// The endpoints the loader uses (REST paths from the Cloud Storage JSON API and BigQuery v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /storage/v1/b/{bucket}/o/{object}`: `objects.get`, metadata.
    ObjectMetadata,
    /// `GET /download/storage/v1/b/{bucket}/o/{object}?alt=media`: the object's bytes.
    Download,
    /// `POST /bigquery/v2/projects/{project}/jobs`: `jobs.insert` (a load from Cloud Storage).
    Insert,
    /// `GET /bigquery/v2/projects/{project}/jobs/{job}`: `jobs.get`.
    GetJob,
    /// `POST /upload/bigquery/v2/projects/{project}/jobs?uploadType=resumable`: opens a session.
    Initiate,
    /// `PUT` to a session with bytes (or the empty last chunk `bytes */N`).
    Chunk,
    /// `PUT` to a session with `Content-Range: bytes */*`: "what do you hold?".
    Status,
}

impl Endpoint {
    pub fn of(method: &http::Method, path: &str, content_range: Option<&str>) -> Option<Endpoint> {
        let bigquery_jobs = |p: &str| {
            p.strip_prefix("/bigquery/v2/projects/")
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(_, rest)| rest.strip_prefix("jobs"))
                .map(str::to_string)
        };
        Some(match method.as_str() {
            "GET" if path.starts_with("/download/storage/v1/b/") => Endpoint::Download,
            "GET" if path.starts_with("/storage/v1/b/") && path.contains("/o/") => Endpoint::ObjectMetadata,
            "GET" if bigquery_jobs(path).is_some_and(|rest| rest.len() > 1 && !rest[1..].contains('/')) => {
                Endpoint::GetJob
            }
            "POST" if path.starts_with("/upload/bigquery/v2/") => Endpoint::Initiate,
            "POST" if bigquery_jobs(path).is_some_and(|rest| rest.is_empty()) => Endpoint::Insert,
            "PUT" if path.starts_with("/upload/bigquery/v2/") => match content_range {
                Some("bytes */*") => Endpoint::Status,
                _ => Endpoint::Chunk,
            },
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn routes_by_method_path_and_range() {
        let cases = [
            (Method::GET, "/storage/v1/b/b/o/n", None, Some(Endpoint::ObjectMetadata)),
            (Method::GET, "/download/storage/v1/b/b/o/n", None, Some(Endpoint::Download)),
            (Method::POST, "/bigquery/v2/projects/p/jobs", None, Some(Endpoint::Insert)),
            (Method::GET, "/bigquery/v2/projects/p/jobs/j1", None, Some(Endpoint::GetJob)),
            (Method::POST, "/upload/bigquery/v2/projects/p/jobs", None, Some(Endpoint::Initiate)),
            (Method::PUT, "/upload/bigquery/v2/projects/p/jobs", Some("bytes 0-9/*"), Some(Endpoint::Chunk)),
            (Method::PUT, "/upload/bigquery/v2/projects/p/jobs", Some("bytes */0"), Some(Endpoint::Chunk)),
            (Method::PUT, "/upload/bigquery/v2/projects/p/jobs", Some("bytes */*"), Some(Endpoint::Status)),
            (Method::GET, "/bigquery/v2/projects/p/jobs", None, None),
            (Method::GET, "/bigquery/v2/projects/p/jobs/j/x", None, None),
            (Method::GET, "/computeMetadata/v1/instance/service-accounts/default/token", None, None),
            (Method::DELETE, "/storage/v1/b/b/o/n", None, None),
        ];
        for (method, path, range, want) in cases {
            assert_eq!(Endpoint::of(&method, path, range), want, "{method} {path} {range:?}");
        }
    }
}
