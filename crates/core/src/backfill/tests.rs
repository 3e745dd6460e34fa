//! `backfill::run` against a small in-memory Google: Cloud Storage (listing pages, generation-
//! pinned downloads), BigQuery (datasets.get, create-if-absent jobs, jobs.get, resumable uploads)
//! and the metadata server's token, on a virtual clock, with faults scripted per endpoint. Every
//! load job that succeeded is recorded with the objects it loaded (a raw job's `sourceUris`, an
//! upload's events by `source_object`), so exactly-once is checked object by object.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::{BackfillError, Client, Credential, Options, Summary, run};
use crate::batching::Limits;
use crate::config::Config;
use crate::job::{LoadFormat, LoadSpec, TableRef};
use crate::listing::HourWindow;
use crate::log_name::LogKind;
use crate::object::ObjectRef;
use crate::secret::Secret;
use crate::service::Io;
use crate::session::Reply;
use crate::url::Endpoint;

const BUCKET: &str = "demo-logs";
const PROJECT: &str = "demo-project";
const START_UNIX: u64 = 1_767_225_600;
/// A raw usage log: the header and two rows.
const RAW: &[u8] = b"\"time_micros\",\"c_ip\"\n\"1\",\"192.0.2.1\"\n\"2\",\"192.0.2.2\"\n";
/// A real usage log (14 data rows), for the classified mode.
const FIXTURE: &[u8] =
    include_bytes!("../../../../fixtures/logs/accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0");

const DUPLICATE: &str = r#"{"error":{"code":409,"message":"Already Exists: Job","errors":[{"reason":"duplicate","message":"Already Exists"}],"status":"ALREADY_EXISTS"}}"#;
const NOT_FOUND: &str =
    r#"{"error":{"code":404,"message":"Not found","errors":[{"reason":"notFound","message":"Not found"}]}}"#;
const DENIED: &str = r#"{"error":{"code":403,"message":"caller does not have storage.objects.list access","errors":[{"reason":"forbidden","message":"forbidden"}]}}"#;
const QUOTA: &str = r#"{"error":{"code":403,"message":"Quota exceeded: Your table exceeded quota for imports or query appends per table","errors":[{"reason":"quotaExceeded","message":"Quota exceeded"}],"status":"PERMISSION_DENIED"}}"#;
const UNAUTHENTICATED: &str = r#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","errors":[{"reason":"authError","message":"Invalid Credentials"}],"status":"UNAUTHENTICATED"}}"#;

/// What a request is to the fake (a `jobs.insert` by what it creates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ep {
    Token,
    List,
    Download,
    Dataset,
    Reserve,
    Tombstone,
    Load,
    Get,
    Initiate,
    Chunk,
}

#[derive(Debug, Clone)]
enum Fault {
    /// No answer: the connection dropped before the request did anything.
    Network,
    /// The request does its work, but its answer is lost.
    Lost,
    /// This answer instead (nothing happens).
    Answer(u16, &'static str),
    /// The load job is created, and fails (naming its first URI or not).
    LoadFails { naming: bool },
}

struct Seen {
    ep: Ep,
    query: BTreeMap<String, String>,
    auth: String,
}

#[derive(Default)]
struct Google {
    now_ms: u64,
    random: u64,
    page_size: usize,
    /// bucket → name → (generation, bytes).
    objects: BTreeMap<String, BTreeMap<String, (u64, Vec<u8>)>>,
    forbidden: BTreeSet<String>,
    datasets: BTreeSet<String>,
    /// Job id → job resource (configuration, labels, status, statistics).
    jobs: BTreeMap<String, Value>,
    /// Succeeded load jobs: id and the `gs://` URIs loaded.
    loads: Vec<(String, Vec<String>)>,
    /// Objects of every load job created (failed ones too), in order.
    attempted: Vec<usize>,
    /// Events uploaded by succeeded uploads, per object URI.
    events: BTreeMap<String, u64>,
    /// URIs whose load always fails; named in the error when `poison_named`.
    poison: BTreeSet<String>,
    poison_named: bool,
    /// (endpoint, its n-th request from 0, fault).
    faults: Vec<(Ep, usize, Fault)>,
    counts: BTreeMap<Ep, usize>,
    seen: Vec<Seen>,
    /// Upload sessions: the job JSON and the bytes held.
    sessions: Vec<(Value, Vec<u8>)>,
    /// Replaced (a new generation) when the first download arrives: after the listing.
    replace_on_download: Option<String>,
    tokens: u64,
}

fn respond(status: u16, headers: &[(&str, String)], body: impl Into<Vec<u8>>) -> Reply {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    Reply::Response(builder.body(body.into()).unwrap())
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8().unwrap().into_owned()
}

fn uri(name: &str) -> String {
    format!("gs://{BUCKET}/{name}")
}

impl Google {
    fn new(names: &[String], bytes: &[u8]) -> Google {
        let mut google = Google { now_ms: 1_000, page_size: 20, ..Google::default() };
        google.datasets.insert("storageanalysis".into());
        let objects = google.objects.entry(BUCKET.into()).or_default();
        for (i, name) in names.iter().enumerate() {
            objects.insert(name.clone(), (1_710_000_000_000_000 + i as u64, bytes.to_vec()));
        }
        google
    }

    fn answer(&mut self, request: http::Request<Vec<u8>>) -> Reply {
        let target = request.uri().clone();
        let segments: Vec<String> = target.path().split('/').map(decode).collect();
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        let query: BTreeMap<String, String> = target
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_string(), decode(v)))
            .collect();
        let body: Value = serde_json::from_slice(request.body()).unwrap_or(Value::Null);
        let ep = match (request.method().as_str(), &segs[1..]) {
            ("GET", ["computeMetadata", "v1", "instance", "service-accounts", "default", "token"]) => Ep::Token,
            ("GET", ["storage", "v1", "b", _, "o"]) => Ep::List,
            ("GET", ["download", "storage", "v1", "b", _, "o", _]) => Ep::Download,
            ("GET", ["bigquery", "v2", "projects", PROJECT, "datasets", _]) => Ep::Dataset,
            ("GET", ["bigquery", "v2", "projects", PROJECT, "jobs", _]) => Ep::Get,
            ("POST", ["bigquery", "v2", "projects", PROJECT, "jobs"]) if body["configuration"]["load"].is_object() => {
                Ep::Load
            }
            ("POST", ["bigquery", "v2", "projects", PROJECT, "jobs"]) => {
                match body["configuration"]["labels"]["role"] {
                    Value::String(ref role) if role == "tombstone" => Ep::Tombstone,
                    _ => Ep::Reserve,
                }
            }
            ("POST", ["upload", "bigquery", "v2", "projects", PROJECT, "jobs"]) => Ep::Initiate,
            ("PUT", ["upload", "bigquery", "v2", "projects", PROJECT, "jobs"]) => Ep::Chunk,
            (method, _) => panic!("the fake does not serve {method} {target}"),
        };
        let nth = *self.counts.entry(ep).and_modify(|n| *n += 1).or_insert(0);
        let auth = request.headers().get("authorization").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        self.seen.push(Seen { ep, query: query.clone(), auth });
        let fault = self.faults.iter().position(|(e, n, _)| *e == ep && *n == nth).map(|i| self.faults.remove(i).2);
        let failing = match fault {
            Some(Fault::Network) => return Reply::Failed("connection reset by peer".into()),
            Some(Fault::Answer(status, body)) => return respond(status, &[], body),
            Some(Fault::LoadFails { naming }) => Some(naming),
            Some(Fault::Lost) | None => None,
        };
        let reply = match ep {
            Ep::Token => {
                self.tokens += 1;
                let token = json!({"access_token": format!("tok-{}", self.tokens), "expires_in": 3599});
                respond(200, &[], token.to_string())
            }
            Ep::List => self.list(segs[4], &query),
            Ep::Download => self.download(segs[5], segs[7], &query),
            Ep::Dataset if self.datasets.contains(segs[6]) => respond(200, &[], json!({"id": segs[6]}).to_string()),
            Ep::Dataset => respond(404, &[], NOT_FOUND),
            Ep::Get => match self.jobs.get(segs[6]) {
                Some(job) => respond(200, &[], job.to_string()),
                None => respond(404, &[], NOT_FOUND),
            },
            Ep::Reserve | Ep::Tombstone | Ep::Load => self.create(&body, failing, None),
            Ep::Initiate => {
                self.sessions.push((body, Vec::new()));
                let location = format!(
                    "https://bigquery.googleapis.com/upload/bigquery/v2/projects/{PROJECT}/jobs?uploadType=resumable&upload_id={}",
                    self.sessions.len() - 1
                );
                respond(200, &[("location", location)], Vec::new())
            }
            Ep::Chunk => {
                let range = request.headers()["content-range"].to_str().unwrap().to_string();
                self.chunk(query["upload_id"].parse().unwrap(), &range, request.body(), failing)
            }
        };
        match fault {
            Some(Fault::Lost) => Reply::Failed("connection reset by peer".into()),
            _ => reply,
        }
    }

    fn list(&self, bucket: &str, query: &BTreeMap<String, String>) -> Reply {
        if self.forbidden.contains(bucket) {
            return respond(403, &[], DENIED);
        }
        let Some(objects) = self.objects.get(bucket) else { return respond(404, &[], NOT_FOUND) };
        let prefix = query.get("prefix").cloned().unwrap_or_default();
        let start: usize = query.get("pageToken").map_or(0, |t| t.strip_prefix("after-").unwrap().parse().unwrap());
        let max: usize = query["maxResults"].parse().unwrap();
        let matching: Vec<_> = objects.iter().filter(|(name, _)| name.starts_with(&prefix)).collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(start)
            .take(max.min(self.page_size))
            .map(|(name, (g, b))| json!({"name": name, "generation": g.to_string(), "size": b.len().to_string()}))
            .collect();
        let end = start + page.len();
        let mut answer = json!({ "items": page });
        if end < matching.len() {
            answer["nextPageToken"] = json!(format!("after-{end}"));
        }
        respond(200, &[], answer.to_string())
    }

    fn download(&mut self, bucket: &str, name: &str, query: &BTreeMap<String, String>) -> Reply {
        if let Some(replaced) = self.replace_on_download.take() {
            self.objects.get_mut(BUCKET).unwrap().get_mut(&replaced).unwrap().0 += 1;
        }
        let generation: u64 = query["generation"].parse().unwrap();
        match self.objects.get(bucket).and_then(|o| o.get(name)) {
            Some((g, bytes)) if *g == generation => {
                let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(bytes);
                let hash = format!("crc32c={}", base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes()));
                respond(200, &[("x-goog-hash", hash), ("content-length", bytes.len().to_string())], bytes.clone())
            }
            _ => respond(404, &[], NOT_FOUND),
        }
    }

    /// Create-if-absent; `uploaded` is an upload's NDJSON. The answer of a raw load reads RUNNING
    /// (it is DONE when read back).
    fn create(&mut self, job: &Value, failing: Option<bool>, uploaded: Option<&[u8]>) -> Reply {
        let id = job["jobReference"]["jobId"].as_str().unwrap().to_string();
        if self.jobs.contains_key(&id) {
            return respond(409, &[], DUPLICATE);
        }
        let configuration = job["configuration"].clone();
        let mut resource =
            json!({"jobReference": job["jobReference"], "configuration": configuration, "status": {"state": "DONE"}});
        if configuration["load"].is_object() {
            let (uris, rows, per_object) = match uploaded {
                Some(ndjson) => {
                    let mut per_object: BTreeMap<String, u64> = BTreeMap::new();
                    for line in std::str::from_utf8(ndjson).unwrap().lines() {
                        let event: Value = serde_json::from_str(line).unwrap();
                        let object = format!(
                            "gs://{}/{}",
                            event["source_bucket"].as_str().unwrap(),
                            event["source_object"].as_str().unwrap()
                        );
                        *per_object.entry(object).or_default() += 1;
                    }
                    (per_object.keys().cloned().collect(), per_object.values().sum(), per_object)
                }
                None => {
                    let uris: Vec<String> =
                        serde_json::from_value(configuration["load"]["sourceUris"].clone()).unwrap();
                    let rows: u64 = uris.iter().map(|u| self.raw_rows(u)).sum();
                    (uris, rows, BTreeMap::new())
                }
            };
            self.attempted.push(uris.len());
            let bad = uris.iter().find(|u| self.poison.contains(*u)).cloned();
            let naming = failing.or(bad.as_ref().map(|_| self.poison_named));
            if let Some(naming) = naming {
                let message = match naming {
                    true => format!(
                        "Error while reading data, error message: CSV processing encountered too many errors: {}",
                        bad.unwrap_or_else(|| uris[0].clone())
                    ),
                    false => {
                        "Error while reading data, error message: CSV table encountered too many errors".to_string()
                    }
                };
                resource["status"] = json!({"state": "DONE", "errorResult": {"reason": "invalid", "message": message}});
            } else {
                resource["statistics"] = json!({"load": {"outputRows": rows.to_string()}});
                for (object, n) in per_object {
                    *self.events.entry(object).or_default() += n;
                }
                self.loads.push((id.clone(), uris));
            }
        }
        self.jobs.insert(id, resource.clone());
        if configuration["load"]["sourceUris"].is_array() {
            resource["status"] = json!({"state": "RUNNING"});
            resource.as_object_mut().unwrap().remove("statistics");
        }
        respond(200, &[], resource.to_string())
    }

    fn raw_rows(&self, uri: &str) -> u64 {
        let (bucket, name) = uri.strip_prefix("gs://").unwrap().split_once('/').unwrap();
        let bytes = &self.objects[bucket][name].1;
        bytes.iter().filter(|b| **b == b'\n').count() as u64 - 1
    }

    fn chunk(&mut self, session: usize, range: &str, data: &[u8], failing: Option<bool>) -> Reply {
        let (span, total) = range.strip_prefix("bytes ").unwrap().split_once('/').unwrap();
        let held = &mut self.sessions[session].1;
        if let Some((from, _)) = span.split_once('-') {
            held.truncate(from.parse().unwrap());
            held.extend_from_slice(data);
        }
        let len = held.len();
        if total.parse::<usize>().ok() == Some(len) {
            let (job, bytes) = self.sessions[session].clone();
            return self.create(&job, failing, Some(&bytes));
        }
        let persisted: Vec<(&str, String)> =
            if len > 0 { vec![("range", format!("bytes=0-{}", len - 1))] } else { vec![] };
        respond(308, &persisted, Vec::new())
    }

    // What the tests read.

    fn count(&self, ep: Ep) -> usize {
        self.counts.get(&ep).map_or(0, |n| n + 1)
    }

    fn times_loaded(&self, uri: &str) -> usize {
        self.loads.iter().flat_map(|(_, uris)| uris).filter(|u| *u == uri).count()
    }

    fn assert_loaded_once(&self, names: &[String]) {
        for name in names {
            assert_eq!(self.times_loaded(&uri(name)), 1, "{name} in {:?}", self.loads);
        }
    }

    fn label(&self, id: &str, label: &str) -> Option<String> {
        self.jobs.get(id)?["configuration"]["labels"][label].as_str().map(str::to_string)
    }

    /// The batch ids the reservations name, in the order of their ids.
    fn reserved_batches(&self) -> BTreeSet<String> {
        self.jobs
            .keys()
            .filter(|id| self.label(id, "role").as_deref() == Some("reservation"))
            .filter_map(|id| self.label(id, "batch"))
            .collect()
    }

    fn spec(&self, name: &str) -> LoadSpec {
        LoadSpec {
            object: ObjectRef {
                bucket: BUCKET.into(),
                name: name.into(),
                generation: Some(self.objects[BUCKET][name].0),
            },
            kind: LogKind::Usage,
            format: LoadFormat::RawCsv,
            destination: TableRef {
                project_id: PROJECT.into(),
                dataset_id: "storageanalysis".into(),
                table_id: "usage".into(),
            },
            location: "US".into(),
        }
    }
}

impl Io for Google {
    fn send(&mut self, request: http::Request<Vec<u8>>, _timeout: Duration) -> Reply {
        self.now_ms += 10;
        self.answer(request)
    }
    fn sleep(&mut self, duration: Duration) {
        self.now_ms += duration.as_millis() as u64;
    }
    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
    fn unix_secs(&mut self) -> u64 {
        START_UNIX + self.now_ms / 1000
    }
    fn random_u64(&mut self) -> u64 {
        self.random += 1;
        self.random
    }
}

fn config(mode: &str) -> Config {
    Config::from_env(|name| match name {
        "GCR_USAGE_BUCKETS" => Some(BUCKET.into()),
        "GCR_USAGE_PROJECT" => Some(PROJECT.into()),
        "GCR_USAGE_AUTH" => Some("none".into()),
        "GCR_USAGE_MODE" => Some(mode.into()),
        _ => None,
    })
    .unwrap()
}

fn options(objects_per_job: usize) -> Options {
    Options {
        bucket: BUCKET.into(),
        prefix: String::new(),
        window: HourWindow::default(),
        limits: Limits { objects_per_job, ..Limits::default() },
        dry_run: false,
        batch_seconds: 600,
        wait_for_others: Duration::from_secs(60),
    }
}

/// `n` usage logs of one hour, in name order.
fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("acme_usage_2024_03_11_14_00_00_{i:04x}_v0")).collect()
}

fn backfill_as(
    google: &mut Google,
    mode: &str,
    options: &Options,
    credential: Credential,
) -> Result<Summary, BackfillError> {
    let mut client = Client::new(google, credential);
    run(&config(mode), options, &mut client, &mut |_| {})
}

fn backfill(google: &mut Google, options: &Options) -> Result<Summary, BackfillError> {
    backfill_as(google, "raw", options, Credential::None)
}

fn jobs(table: &str, n: usize) -> BTreeMap<String, usize> {
    BTreeMap::from([(table.to_string(), n)])
}

#[test]
fn a_raw_backfill_loads_every_object_once_in_three_jobs_and_a_rerun_loads_nothing() {
    let names = names(50);
    let mut google = Google::new(&names, RAW);
    let summary = backfill(&mut google, &options(20)).unwrap();
    assert_eq!(google.count(Ep::List), 3, "50 objects, 20 a page");
    assert_eq!((summary.listed, summary.log_objects, summary.bytes), (50, 50, 50 * RAW.len() as u64));
    assert_eq!((summary.loaded, summary.already_loaded, summary.reservations, summary.rows), (50, 0, 50, 100));
    assert_eq!(summary.load_jobs, jobs("usage", 3));
    assert!(summary.stopped.is_none() && summary.rejected.is_empty() && summary.held_elsewhere.is_empty());
    assert_eq!(google.attempted, [20, 20, 10]);
    google.assert_loaded_once(&names);
    assert_eq!(google.reserved_batches().len(), 3);

    let jobs_before = google.jobs.len();
    let again = backfill(&mut google, &options(20)).unwrap();
    assert_eq!((again.loaded, again.already_loaded, again.reservations, again.rows), (0, 50, 0, 0));
    assert!(again.load_jobs.is_empty(), "{:?}", again.load_jobs);
    assert_eq!((google.loads.len(), google.jobs.len()), (3, jobs_before), "the rerun created no job at all");
}

#[test]
fn a_network_failing_mid_listing_asks_the_same_page_again() {
    let names = names(50);
    let mut google = Google::new(&names, RAW);
    google.faults = vec![(Ep::List, 1, Fault::Network), (Ep::List, 2, Fault::Network)];
    let summary = backfill(&mut google, &options(20)).unwrap();
    let tokens: Vec<Option<&str>> =
        google.seen.iter().filter(|s| s.ep == Ep::List).map(|s| s.query.get("pageToken").map(String::as_str)).collect();
    assert_eq!(tokens, [None, Some("after-20"), Some("after-20"), Some("after-20"), Some("after-40")]);
    assert_eq!((summary.listed, summary.loaded, summary.reservations), (50, 50, 50));
    assert_eq!(summary.load_jobs, jobs("usage", 3));
    google.assert_loaded_once(&names);
}

#[test]
fn a_missing_or_forbidden_bucket_is_the_users_to_fix() {
    let mut google = Google::new(&names(3), RAW);
    google.objects.clear();
    let Err(BackfillError::Input(message)) = backfill(&mut google, &options(20)) else { panic!("not an input error") };
    assert!(message.contains("gs://demo-logs does not exist"), "{message}");
    assert_eq!(google.count(Ep::List), 1, "a 404 is not retried");

    let mut google = Google::new(&names(3), RAW);
    google.forbidden.insert(BUCKET.into());
    let Err(BackfillError::Input(message)) = backfill(&mut google, &options(20)) else { panic!("not an input error") };
    assert!(message.contains("cannot list gs://demo-logs") && message.contains("storage.objects.list"), "{message}");
    assert!(google.jobs.is_empty());
}

#[test]
fn a_missing_dataset_is_said_before_anything_is_reserved() {
    let mut google = Google::new(&names(3), RAW);
    google.datasets.clear();
    let Err(BackfillError::Input(message)) = backfill(&mut google, &options(20)) else { panic!("not an input error") };
    assert!(message.contains("BigQuery dataset demo-project:storageanalysis does not exist"), "{message}");
    assert!(google.jobs.is_empty());
    assert_eq!((google.count(Ep::Reserve), google.count(Ep::Load)), (0, 0));
}

#[test]
fn a_prefix_or_window_matching_nothing_says_no_log_objects() {
    let mut google = Google::new(&names(5), RAW);
    let mut nothing = options(20);
    nothing.prefix = "nothing/".into();
    let Err(BackfillError::Input(message)) = backfill(&mut google, &nothing) else { panic!("not an input error") };
    assert!(
        message.starts_with("no log objects in gs://demo-logs/nothing/* in any hour: 0 objects listed"),
        "{message}"
    );

    let mut later = options(20);
    later.window = HourWindow::parse(Some("2030-01-01"), None, START_UNIX).unwrap();
    let Err(BackfillError::Input(message)) = backfill(&mut google, &later) else { panic!("not an input error") };
    assert!(
        message.starts_with("no log objects in gs://demo-logs/* from 2030-01-01T00: 5 objects listed"),
        "{message}"
    );
    assert!(google.jobs.is_empty());
}

#[test]
fn a_spent_quota_closes_the_batch_stops_and_a_rerun_loads_everything_once() {
    let names = names(50);
    let mut google = Google::new(&names, RAW);
    google.faults = vec![(Ep::Load, 0, Fault::Answer(403, QUOTA))];
    let summary = backfill(&mut google, &options(20)).unwrap();
    let stopped = summary.stopped.clone().expect("stopped");
    assert!(stopped.contains("quota is spent") && stopped.contains("resumes where this run stopped"), "{stopped}");
    assert_eq!((summary.loaded, summary.reservations), (0, 20));
    assert!(summary.load_jobs.is_empty(), "the refused insert created no job: {:?}", summary.load_jobs);
    assert_eq!(google.count(Ep::Load), 1, "a spent quota is not retried");
    assert!(google.loads.is_empty());
    let batches = google.reserved_batches();
    assert_eq!(batches.len(), 1);
    let batch = batches.first().unwrap();
    assert_eq!(google.label(batch, "role").as_deref(), Some("tombstone"), "the batch closed itself");

    let again = backfill(&mut google, &options(20)).unwrap();
    assert!(again.stopped.is_none());
    assert_eq!((again.loaded, again.already_loaded, again.reservations), (50, 0, 50));
    assert_eq!(again.load_jobs, jobs("usage", 3));
    google.assert_loaded_once(&names);
    for (i, name) in names.iter().enumerate() {
        let second = google.jobs.contains_key(&google.spec(name).job_id(2));
        assert_eq!(second, i < 20, "{name}: the closed batch's objects go on to attempt 2, the others stay at 1");
    }
}

#[test]
fn a_failed_batch_is_halved_down_to_the_object_bigquery_rejects() {
    // A job failing once (not the objects' fault): its halves load.
    let names = names(8);
    let mut google = Google::new(&names, RAW);
    google.faults = vec![(Ep::Load, 0, Fault::LoadFails { naming: false })];
    let summary = backfill(&mut google, &options(8)).unwrap();
    assert_eq!(google.attempted, [8, 4, 4]);
    assert_eq!((summary.loaded, summary.reservations, summary.rejected.len()), (8, 16, 0));
    google.assert_loaded_once(&names);

    // One object that always fails, unnamed: halved until it is alone.
    let mut google = Google::new(&names, RAW);
    google.poison.insert(uri(&names[5]));
    let summary = backfill(&mut google, &options(8)).unwrap();
    assert_eq!(google.attempted, [8, 4, 4, 2, 1, 1, 2]);
    assert_eq!(summary.load_jobs, jobs("usage", 7));
    assert_eq!((summary.loaded, summary.reservations), (7, 8 + 4 + 4 + 2 + 1 + 1 + 2));
    assert_eq!(summary.rejected.len(), 1);
    assert_eq!(summary.rejected[0].object, uri(&names[5]));
    assert!(summary.rejected[0].reason.contains("BigQuery rejected it"), "{}", summary.rejected[0].reason);
    let others: Vec<String> = names.iter().filter(|n| **n != names[5]).cloned().collect();
    google.assert_loaded_once(&others);
    assert_eq!(google.times_loaded(&uri(&names[5])), 0);
    let bad = google.spec(&names[5]);
    assert!(google.jobs.contains_key(&bad.job_id(4)) && !google.jobs.contains_key(&bad.job_id(5)));

    // Named by BigQuery: rejected at once, the rest go again together.
    let mut google = Google::new(&names, RAW);
    google.poison.insert(uri(&names[5]));
    google.poison_named = true;
    let summary = backfill(&mut google, &options(8)).unwrap();
    assert_eq!(google.attempted, [8, 7]);
    assert_eq!((summary.loaded, summary.reservations, summary.rejected.len()), (7, 15, 1));
    assert_eq!(summary.rejected[0].object, uri(&names[5]));
    google.assert_loaded_once(&others);
}

/// A reservation of `name`'s attempt 1 by a batch of a run that was killed.
fn killed_run_reservation(google: &mut Google, name: &str, deadline: u64) {
    let bigquery = config("raw").bigquery;
    let request = google.spec(name).reservation_request(&bigquery, 1, DEAD_BATCH, deadline, "0123456789abcdef", None);
    assert!(matches!(google.answer(request), Reply::Response(r) if r.status() == 200));
}

const DEAD_BATCH: &str = "gcr_usage_batch_0123456789abcdef_1";

#[test]
fn a_killed_runs_batch_is_closed_once_abandoned_and_its_objects_load_at_attempt_2() {
    let names = names(6);
    let mut google = Google::new(&names, RAW);
    for name in &names[..2] {
        killed_run_reservation(&mut google, name, START_UNIX - 60);
    }
    let summary = backfill(&mut google, &options(20)).unwrap();
    assert_eq!((summary.loaded, summary.reservations, summary.already_loaded), (6, 6, 0));
    assert!(summary.held_elsewhere.is_empty());
    assert_eq!(google.label(DEAD_BATCH, "role").as_deref(), Some("tombstone"));
    assert_eq!(google.count(Ep::Tombstone), 1, "closed once: the second object finds it closed");
    google.assert_loaded_once(&names);
    for (i, name) in names.iter().enumerate() {
        let second = google.spec(name).job_id(2);
        assert_eq!(google.jobs.contains_key(&second), i < 2, "{name}");
    }
    assert_eq!(google.attempted, [6]);
}

#[test]
fn a_batch_still_in_its_time_holds_its_objects_elsewhere() {
    let names = names(6);
    let mut google = Google::new(&names, RAW);
    for name in &names[..2] {
        killed_run_reservation(&mut google, name, START_UNIX + 3600);
    }
    let mut options = options(20);
    options.wait_for_others = Duration::from_secs(10);
    let summary = backfill(&mut google, &options).unwrap();
    assert_eq!((summary.loaded, summary.reservations), (4, 4));
    assert_eq!(summary.held_elsewhere, [uri(&names[0]), uri(&names[1])]);
    let stopped = summary.stopped.clone().expect("stopped: resumable");
    assert!(stopped.starts_with("2 objects are still held") && stopped.contains("--wait-for-others"), "{stopped}");
    assert!(google.now_ms > 10_000, "waited for them: {} ms", google.now_ms);
    assert!(!google.jobs.contains_key(DEAD_BATCH), "a batch within its deadline is not closed");
    assert_eq!(google.count(Ep::Tombstone), 0);
    google.assert_loaded_once(&names[2..]);
    assert_eq!(google.times_loaded(&uri(&names[0])) + google.times_loaded(&uri(&names[1])), 0);
}

#[test]
fn an_object_a_live_event_loaded_is_not_loaded_again() {
    let names = names(5);
    let mut google = Google::new(&names, RAW);
    let live = google.spec(&names[3]).insert_request(&config("raw").bigquery, 1, "live0000", None);
    assert!(matches!(google.answer(live), Reply::Response(r) if r.status() == 200));
    let summary = backfill(&mut google, &options(20)).unwrap();
    assert_eq!((summary.loaded, summary.already_loaded, summary.reservations), (4, 1, 4));
    assert_eq!(google.loads.len(), 2, "the live load and one batch");
    google.assert_loaded_once(&names);
}

#[test]
fn a_401_fetches_a_fresh_token_and_a_static_token_is_reported_expired() {
    let names = names(5);
    let mut google = Google::new(&names, RAW);
    google.page_size = 2;
    google.faults = vec![(Ep::List, 1, Fault::Answer(401, UNAUTHENTICATED))];
    let metadata = Credential::Metadata(Endpoint::parse("http://metadata.google.internal").unwrap());
    let summary = backfill_as(&mut google, "raw", &options(20), metadata).unwrap();
    assert_eq!(google.tokens, 2);
    let lists: Vec<&str> = google.seen.iter().filter(|s| s.ep == Ep::List).map(|s| s.auth.as_str()).collect();
    assert_eq!(lists, ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-2"]);
    let after = google.seen.iter().skip_while(|s| s.auth != "Bearer tok-2");
    assert!(after.filter(|s| s.ep != Ep::Token).all(|s| s.auth == "Bearer tok-2"));
    assert_eq!((summary.listed, summary.loaded), (5, 5));
    google.assert_loaded_once(&names);

    let mut google = Google::new(&names, RAW);
    google.faults = vec![(Ep::List, 0, Fault::Answer(401, UNAUTHENTICATED))];
    let given = Credential::Static(Secret::new("ya29.old"));
    let Err(BackfillError::Credentials(message)) = backfill_as(&mut google, "raw", &options(20), given) else {
        panic!("not a credentials error")
    };
    assert!(message.contains("the bearer token given") && message.contains("expired or been revoked"), "{message}");
    assert_eq!((google.count(Ep::List), google.tokens), (1, 0));
    assert!(google.jobs.is_empty());
}

#[test]
fn the_job_budget_stops_the_run_after_the_first_batch_and_a_rerun_finishes() {
    let names = names(50);
    let mut google = Google::new(&names, RAW);
    let mut options = options(20);
    options.limits.jobs_per_table_per_day = 1;
    let summary = backfill(&mut google, &options).unwrap();
    let stopped = summary.stopped.clone().expect("stopped");
    assert!(stopped.contains("its budget of 1 load jobs per table on usage (30 objects left)"), "{stopped}");
    assert_eq!((summary.loaded, summary.reservations), (20, 20));
    assert_eq!(summary.load_jobs, jobs("usage", 1));
    let first: Vec<String> = names[..20].iter().map(|n| uri(n)).collect();
    assert_eq!(google.loads.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>(), [first]);

    options.limits.jobs_per_table_per_day = 10;
    let again = backfill(&mut google, &options).unwrap();
    assert!(again.stopped.is_none());
    assert_eq!((again.loaded, again.already_loaded, again.reservations), (30, 20, 30));
    assert_eq!(again.load_jobs, jobs("usage", 2));
    google.assert_loaded_once(&names);
}

#[test]
fn lost_answers_are_recognised_as_the_runs_own_jobs() {
    let names = names(5);
    let mut google = Google::new(&names, RAW);
    google.faults = vec![(Ep::Reserve, 2, Fault::Lost), (Ep::Load, 0, Fault::Lost)];
    let summary = backfill(&mut google, &options(20)).unwrap();
    assert_eq!((summary.loaded, summary.reservations, summary.rejected.len()), (5, 5, 0));
    assert_eq!(summary.load_jobs, jobs("usage", 1));
    assert_eq!((google.count(Ep::Reserve), google.count(Ep::Load)), (6, 2));
    assert_eq!(google.attempted, [5]);
    google.assert_loaded_once(&names);
}

#[test]
fn classified_an_object_replaced_after_the_listing_is_rejected_and_the_others_load() {
    let names = names(3);
    let mut google = Google::new(&names, FIXTURE);
    google.replace_on_download = Some(names[1].clone());
    let summary = backfill_as(&mut google, "classified", &options(20), Credential::None).unwrap();
    assert_eq!(summary.rejected.len(), 1, "{:?}", summary.rejected);
    assert_eq!(summary.rejected[0].object, uri(&names[1]));
    assert!(summary.rejected[0].reason.contains("deleted or replaced"), "{}", summary.rejected[0].reason);
    assert_eq!((summary.loaded, summary.reservations), (2, 3 + 2));
    // The first upload never completed: no job, none counted.
    assert_eq!(summary.load_jobs, jobs("registry_events", 1));
    assert_eq!((google.count(Ep::Initiate), google.loads.len()), (2, 1));
    let batches = google.reserved_batches();
    assert_eq!(batches.len(), 2);
    let first = batches.iter().find(|b| google.label(b, "role").as_deref() == Some("tombstone"));
    assert!(first.is_some(), "the batch that met the replaced object closed itself: {batches:?}");
    google.assert_loaded_once(&[names[0].clone(), names[2].clone()]);
    assert_eq!(google.times_loaded(&uri(&names[1])), 0);
    assert_eq!(google.events.values().copied().collect::<Vec<_>>(), [14, 14], "every row once: {:?}", google.events);
    assert_eq!(summary.rows, 28);
}

#[test]
fn a_spent_quota_on_a_reservation_stops_cleanly_too() {
    let names = names(5);
    let mut google = Google::new(&names, RAW);
    google.faults = vec![(Ep::Reserve, 3, Fault::Answer(403, QUOTA))];
    let summary = backfill(&mut google, &options(20)).expect("a spent quota stops the run, it is not a failure");
    assert!(summary.stopped.expect("stopped").contains("quota"));
    // The reservations go out in one round: the other four went through, and are freed.
    assert_eq!((summary.loaded, summary.reservations), (0, 4));
    let batches = google.reserved_batches();
    assert_eq!(batches.len(), 1);
    assert_eq!(
        google.label(batches.first().unwrap(), "role").as_deref(),
        Some("tombstone"),
        "its reservations are freed"
    );
}

#[test]
fn one_tables_spent_budget_leaves_the_other_tables_going() {
    let names = names(30);
    let mut google = Google::new(&names, FIXTURE);
    let mut options = options(20);
    options.limits.jobs_per_table_per_day = 1;
    let summary = backfill_as(&mut google, "both", &options, Credential::None).unwrap();
    let stopped = summary.stopped.clone().expect("stopped");
    assert!(
        stopped.contains("registry_events (10 objects left)") && stopped.contains("usage (10 objects left)"),
        "{stopped}"
    );
    let mut expected = jobs("usage", 1);
    expected.insert("registry_events".into(), 1);
    assert_eq!(summary.load_jobs, expected, "each table spent its own budget, neither skipped");
    assert_eq!(summary.loaded, 40, "20 objects into each table");
}

#[test]
fn a_network_failing_mid_upload_or_mid_download_loads_every_event_once() {
    for fault in [(Ep::Chunk, 0, Fault::Network), (Ep::Chunk, 0, Fault::Lost), (Ep::Download, 1, Fault::Network)] {
        let names = names(3);
        let mut google = Google::new(&names, FIXTURE);
        google.faults = vec![fault.clone()];
        let summary = backfill_as(&mut google, "classified", &options(20), Credential::None).unwrap();
        assert!(summary.rejected.is_empty() && summary.stopped.is_none(), "{fault:?}: {summary:?}");
        assert_eq!((summary.loaded, summary.rows), (3, 42), "{fault:?}");
        assert_eq!(summary.load_jobs, jobs("registry_events", 1), "{fault:?}");
        assert_eq!(google.loads.len(), 1, "{fault:?}");
        assert_eq!(google.events.values().copied().collect::<Vec<_>>(), [14, 14, 14], "{fault:?}: every row once");
    }
}

#[test]
fn a_409_whose_job_never_reads_back_is_an_error_not_a_loop() {
    let names = names(1);
    let mut google = Google::new(&names, RAW);
    killed_run_reservation(&mut google, &names[0], START_UNIX - 1);
    google.faults = (0..3).map(|n| (Ep::Get, n, Fault::Answer(404, NOT_FOUND))).collect();
    let error = backfill(&mut google, &options(20)).unwrap_err();
    assert!(matches!(&error, BackfillError::Upstream(m) if m.contains("jobs.get does not find it")), "{error:?}");
    assert_eq!(google.count(Ep::Get), 3);
}

#[test]
fn a_batch_too_slow_to_reserve_within_its_deadline_closes_itself_and_goes_again_in_halves() {
    // 10 ms a request: 400 reservations take 4 s, past a 5 s deadline's 2 s margin; 200 do not.
    let names = names(400);
    let mut google = Google::new(&names, RAW);
    let mut options = options(400);
    options.batch_seconds = 5;
    let summary = backfill(&mut google, &options).unwrap();
    assert!(summary.stopped.is_none() && summary.rejected.is_empty(), "{summary:?}");
    assert_eq!((summary.loaded, summary.reservations), (400, 800));
    assert_eq!(summary.load_jobs, jobs("usage", 2));
    assert_eq!(google.count(Ep::Tombstone), 1, "the slow batch closed itself before any load");
    google.assert_loaded_once(&names);
}

#[test]
fn a_batch_found_closed_when_its_load_is_created_goes_again_at_the_next_attempt() {
    // The insert meets 409 and the id reads as nothing but a close: the batch counts as closed.
    let names = names(5);
    let mut google = Google::new(&names, RAW);
    google.faults = vec![(Ep::Load, 0, Fault::Answer(409, DUPLICATE))];
    let summary = backfill(&mut google, &options(20)).unwrap();
    assert!(summary.stopped.is_none() && summary.rejected.is_empty(), "{summary:?}");
    assert_eq!((summary.loaded, summary.reservations), (5, 10), "reserved again at attempt 2");
    assert_eq!(summary.load_jobs, jobs("usage", 1));
    assert_eq!(google.count(Ep::Tombstone), 1);
    google.assert_loaded_once(&names);
}
