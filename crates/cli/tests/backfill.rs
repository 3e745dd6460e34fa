//! `gcr-usage backfill`'s input and credential errors, end to end through the real binary
//! against a loopback fake of the endpoints involved (token endpoint, metadata server, Cloud
//! Storage listing). The loading itself runs against the emulators in `e2e/test_backfill.py`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// One request the fake saw: method, path with query, Authorization header, body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: String,
    body: String,
}

type Answer = (u16, String);

/// A loopback HTTP/1.1 server answering each request with `answer(seen, nth)`, one
/// connection per request (`Connection: close`).
struct Fake {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Fake {
    fn start(answer: impl Fn(&Seen, usize) -> Answer + Send + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.is_empty() {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
                let (mut length, mut authorization) = (0usize, String::new());
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "authorization" => authorization = value.trim().to_string(),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let request = Seen { method, path, authorization, body: String::from_utf8_lossy(&body).into() };
                let nth = {
                    let mut log = log.lock().unwrap();
                    log.push(request.clone());
                    log.len() - 1
                };
                let (status, body) = answer(&request, nth);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Fake { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

const TOKEN: &str = r#"{"access_token":"ya29.from-the-fake","expires_in":3599,"token_type":"Bearer"}"#;
const EMPTY_PAGE: &str = r#"{"kind":"storage#objects"}"#;

fn error(status: u16, reason: &str, message: &str) -> String {
    format!(
        r#"{{"error":{{"code":{status},"message":"{message}","errors":[{{"reason":"{reason}","message":"{message}"}}]}}}}"#
    )
}

/// The binary with only the variables given (no GCR_USAGE_* or credentials from the caller),
/// HOME in an empty directory so no gcloud login file is found.
fn backfill(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = std::env::temp_dir().join(format!("gcr-usage-backfill-test-{}", std::process::id()));
    backfill_at_home(&home, args, env)
}

fn backfill_at_home(home: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    std::fs::create_dir_all(home).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gcr-usage"));
    command.arg("backfill").args(args).env_clear().env("HOME", home).env("PATH", "/usr/bin:/bin");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A file of its own in the temp directory with these contents. Tests run in parallel: two of
/// them writing one `key.json` (each naming its own fake's token URI) sent each other's
/// JWTs to the wrong fake, which a loaded CI machine showed.
fn file(name: &str, contents: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("gcr-usage-{}-{n}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

fn key_file(token_uri: &str) -> String {
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::SeedableRng;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut ChaCha8Rng::seed_from_u64(11), 2048).unwrap();
    let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let json = serde_json::json!({"type": "service_account", "project_id": "demo-project",
        "private_key_id": "k-1", "private_key": pem.as_str(),
        "client_email": "backfill@demo-project.iam.gserviceaccount.com", "token_uri": token_uri});
    file("key.json", &json.to_string())
}

#[test]
fn bad_arguments_are_named_before_anything_is_sent() {
    let env = [("GCR_USAGE_PROJECT", "demo-project"), ("GCR_USAGE_AUTH", "none")];
    let o = backfill(&["gs://logs", "--since", "2024-03-02", "--until", "2024-03-01"], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--since 2024-03-02T00 is after --until 2024-03-01T23"), "{}", stderr(&o));
    let o = backfill(&["gs://logs/dir"], &env);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not a bucket"), "{}", stderr(&o));
    let o = backfill(&["gs://logs", "--since", "yesterday"], &env);
    assert!(stderr(&o).contains("--since \"yesterday\" is not YYYY-MM-DD"), "{}", stderr(&o));
    let o = backfill(&["gs://logs", "--objects-per-job", "20000"], &env);
    assert_eq!(o.status.code(), Some(2), "clap's own status");
    let o = backfill(&["gs://logs"], &[("GCR_USAGE_PROJECT", "demo-project"), ("GCR_USAGE_AUTH", "token")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("GCR_USAGE_TOKEN"), "{}", stderr(&o));
}

#[test]
fn credentials_that_cannot_be_used_are_explained() {
    let o = backfill(&["gs://logs"], &[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("GOOGLE_APPLICATION_CREDENTIALS names /nonexistent/key.json, which does not exist"));
    let wrong = file("external.json", r#"{"type":"external_account","audience":"x"}"#);
    let o = backfill(&["gs://logs"], &[("GOOGLE_APPLICATION_CREDENTIALS", &wrong)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(r#"credentials of type "external_account" are not supported"#), "{}", stderr(&o));
    // A login file without a project, and none configured.
    let user =
        file("user.json", r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}"#);
    let o = backfill(&["gs://logs"], &[("GOOGLE_APPLICATION_CREDENTIALS", &user)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("GCR_USAGE_PROJECT: not set, and the credentials name no project"), "{}", stderr(&o));
}

#[test]
fn no_credentials_anywhere_says_what_to_do() {
    // Nothing named, no gcloud file, and a metadata server that is not there.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let o = backfill(&["gs://logs"], &[("GCR_USAGE_PROJECT", "demo-project"), ("GCE_METADATA_HOST", &closed)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("credentials: none found") && err.contains("gcloud auth application-default login"), "{err}");
}

#[test]
fn a_service_account_key_is_exchanged_for_the_token_every_request_carries() {
    let google = Fake::start(|seen, _| match seen.path.as_str() {
        "/token" => (200, TOKEN.into()),
        _ => (200, EMPTY_PAGE.into()),
    });
    let key = key_file(&format!("{}/token", google.url));
    let o = backfill(
        &["gs://logs", "--prefix", "accessLog"],
        &[("GOOGLE_APPLICATION_CREDENTIALS", &key), ("GCR_USAGE_STORAGE_ENDPOINT", &google.url)],
    );
    // An empty bucket: nothing to load, said so.
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no log objects in gs://logs/accessLog* in any hour: 0 objects listed"),
        "{}",
        stderr(&o)
    );
    let seen = google.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].method.as_str(), seen[1].method.as_str()), ("POST", "GET"));
    assert!(seen[0].body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"), "{:?}", seen[0]);
    assert!(
        seen[1].path.starts_with("/storage/v1/b/logs/o?maxResults=1000") && seen[1].path.contains("prefix=accessLog")
    );
    assert_eq!(seen[1].authorization, "Bearer ya29.from-the-fake");
    // The project came from the key file.
    assert!(!stderr(&o).contains("GCR_USAGE_PROJECT"));
}

#[test]
fn a_refused_key_is_an_error_naming_it() {
    let google =
        Fake::start(|_, _| (400, r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#.into()));
    let key = key_file(&format!("{}/token", google.url));
    let o = backfill(
        &["gs://logs"],
        &[("GOOGLE_APPLICATION_CREDENTIALS", &key), ("GCR_USAGE_STORAGE_ENDPOINT", &google.url)],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("credentials: the token endpoint refused the service-account key"), "{}", stderr(&o));
    assert_eq!(google.seen().len(), 1, "nothing is retried or sent after a refusal");
}

#[test]
fn an_expired_token_is_refreshed_once_and_a_static_one_is_reported() {
    // The metadata server's token is refused once: a fresh one is fetched and the request repeated.
    let google = Fake::start(|seen, nth| match seen.path.as_str() {
        p if p.starts_with("/computeMetadata/") => (200, TOKEN.into()),
        _ if nth == 1 => (401, error(401, "authError", "Invalid Credentials")),
        _ => (200, EMPTY_PAGE.into()),
    });
    let host = google.url.trim_start_matches("http://").to_string();
    let env = [
        ("GCR_USAGE_PROJECT", "demo-project"),
        ("GCE_METADATA_HOST", &host),
        ("GCR_USAGE_STORAGE_ENDPOINT", &google.url),
    ];
    let o = backfill(&["gs://logs"], &env);
    assert!(stderr(&o).contains("0 objects listed"), "{}", stderr(&o));
    let paths: Vec<String> = google.seen().iter().map(|s| s.path.split('?').next().unwrap().to_string()).collect();
    let token = "/computeMetadata/v1/instance/service-accounts/default/token";
    assert_eq!(paths, [token, "/storage/v1/b/logs/o", token, "/storage/v1/b/logs/o"]);

    // --token cannot be refreshed: a 401 says it expired.
    let google = Fake::start(|_, _| (401, error(401, "authError", "Invalid Credentials")));
    let o = backfill(
        &["gs://logs", "--token", "ya29.old", "--project", "demo-project"],
        &[("GCR_USAGE_STORAGE_ENDPOINT", &google.url)],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("expired or been revoked") && stderr(&o).contains("print-access-token"),
        "{}",
        stderr(&o)
    );
    assert_eq!(google.seen().len(), 1);
    assert_eq!(google.seen()[0].authorization, "Bearer ya29.old");
}

#[test]
fn a_bucket_that_cannot_be_listed_names_the_permission_or_its_absence() {
    for (status, reason, expected) in [
        (404, "notFound", "gs://logs does not exist"),
        (403, "forbidden", "needs the storage.objects.list permission on the bucket"),
    ] {
        let google = Fake::start(move |_, _| (status, error(status, reason, "nope")));
        let env = [
            ("GCR_USAGE_PROJECT", "demo-project"),
            ("GCR_USAGE_AUTH", "none"),
            ("GCR_USAGE_STORAGE_ENDPOINT", &google.url),
        ];
        let o = backfill(&["gs://logs"], &env);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(expected), "{}", stderr(&o));
    }
}

#[test]
fn gclouds_login_file_is_found_and_its_refresh_token_used_or_explained() {
    let google = Fake::start(|seen, _| match seen.path.as_str() {
        "/token" if seen.body.contains("refresh_token=1%2F%2Frevoked") => {
            (400, r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#.into())
        }
        "/token" => (200, TOKEN.into()),
        _ => (200, EMPTY_PAGE.into()),
    });
    let login = |refresh: &str| {
        serde_json::json!({"type": "authorized_user", "client_id": "c.apps.googleusercontent.com",
            "client_secret": "s", "refresh_token": refresh, "quota_project_id": "demo-project",
            "token_uri": format!("{}/token", google.url)})
        .to_string()
    };
    // Where `gcloud auth application-default login` writes it: $HOME/.config/gcloud/.
    let home = std::env::temp_dir().join(format!("gcr-usage-backfill-login-{}", std::process::id()));
    let gcloud = home.join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::write(gcloud.join("application_default_credentials.json"), login("1//good")).unwrap();
    let o = backfill_at_home(&home, &["gs://logs"], &[("GCR_USAGE_STORAGE_ENDPOINT", &google.url)]);
    assert!(stderr(&o).contains("0 objects listed"), "{}", stderr(&o));
    let seen = google.seen();
    assert!(
        seen[0].body.starts_with("grant_type=refresh_token&client_id=c.apps.googleusercontent.com"),
        "{:?}",
        seen[0]
    );
    assert_eq!(seen[1].authorization, "Bearer ya29.from-the-fake", "the project came from quota_project_id");

    std::fs::write(gcloud.join("application_default_credentials.json"), login("1//revoked")).unwrap();
    let o = backfill_at_home(&home, &["gs://logs"], &[("GCR_USAGE_STORAGE_ENDPOINT", &google.url)]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("expired or was revoked") && err.contains("gcloud auth application-default login"), "{err}");
}
