//! Classified loads written once and played by every runner: the native core driven in-process
//! and the component inside the wasmtime harness each build the fake from a [`Scenario`], deliver
//! its event, turn the HTTP answer into an [`Observed`] with [`Scenario::observe`], and check it
//! with [`Scenario::check`]; the two runners' observations are then compared with each other.

use serde_json::{Value, json};

use crate::logs::{BUCKET, USAGE_GENERATION, USAGE_NAME, fixture_log, grown_log, header_only_log};
use crate::{Endpoint, Fault, Google, Seen, Tampering};

use Endpoint::{Chunk, Download, GetJob, Initiate, Insert, ObjectMetadata, Status};

/// The access token every scenario configures; every request must carry it.
pub const TOKEN: &str = "ya29.scenario-token";

/// The configuration every scenario starts from (`GCR_USAGE_*` as the component reads it).
pub const BASE_CONFIG: [(&str, &str); 6] = [
    ("GCR_USAGE_PROJECT", "demo-project"),
    ("GCR_USAGE_BUCKETS", BUCKET),
    ("GCR_USAGE_AUTH", "token"),
    ("GCR_USAGE_TOKEN", TOKEN),
    ("GCR_USAGE_MODE", "classified"),
    ("GCR_USAGE_UPLOAD_CHUNK_KIB", "256"),
];

/// An audit-log sink object as a Cloud Logging sink names it (`/` and `:` in the name).
pub const AUDIT_NAME: &str = "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json";

/// What the log object holds.
#[derive(Debug, Clone, Copy)]
pub enum Log {
    /// `fixtures/logs/`' usage log: 14 requests.
    Fixture,
    /// `fixtures/audit/sink/`' sink object under [`AUDIT_NAME`]: 40 entries, 35 events.
    AuditSink,
    /// The sink object with a 600 KiB line (longer than any log entry can be) in front.
    AuditSinkWithAHugeLine,
    /// The fixture grown to about this many bytes (see [`grown_log`]).
    Grown(usize),
    HeaderOnly,
    Bytes(&'static [u8]),
    /// No such object.
    Missing,
}

/// How the runners' observations must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timing {
    /// Every request, range and retry the same on every runner.
    Exact,
    /// The scenario ends when the event's budget does: how many tries fit depends on the
    /// runner's latency and jitter, so only the answer and the fake's state must agree.
    BudgetBound,
}

#[derive(Debug, Clone, Copy)]
pub enum Rows {
    /// No `rows` in the answer.
    None,
    Exactly(u64),
    /// One per data line of the log.
    AllOfTheLog,
}

#[derive(Debug, Clone, Copy)]
pub enum Requests {
    Exactly(&'static [Endpoint]),
    Begin(&'static [Endpoint]),
    Any,
}

/// What one delivery must come to.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    pub status: u16,
    /// `outcome` of the answer, or its `error` kind.
    pub outcome: &'static str,
    /// Both mode: the `events` part's outcome or error kind.
    pub events: Option<&'static str>,
    pub rows: Rows,
    /// `retries.count`; `None` for as many as the budget allowed.
    pub retries: Option<u64>,
    pub requests: Requests,
    /// The first `Content-Range`s sent, in order.
    pub ranges: &'static [&'static str],
    /// Substrings of the answer's body.
    pub says: &'static [&'static str],
    /// Completed uploads the fake holds afterwards.
    pub uploads: usize,
}

const LOADED: Expect = Expect {
    status: 200,
    outcome: "loaded",
    events: None,
    rows: Rows::AllOfTheLog,
    retries: Some(0),
    requests: Requests::Any,
    ranges: &[],
    says: &[],
    uploads: 1,
};

const FAILED: Expect = Expect { rows: Rows::None, retries: Some(0), uploads: 0, ..LOADED };

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    /// The log object's name in [`BUCKET`].
    pub object: &'static str,
    pub log: Log,
    /// On top of [`BASE_CONFIG`].
    pub config: &'static [(&'static str, &'static str)],
    /// Whether the event names the generation (else the loader must look it up).
    pub event_generation: bool,
    pub faults: &'static [(Endpoint, Fault)],
    pub outages: &'static [Endpoint],
    pub tampering: Tampering,
    pub timing: Timing,
    /// One per delivery of the same event, in order.
    pub deliveries: &'static [Expect],
}

const BASE: Scenario = Scenario {
    name: "",
    object: USAGE_NAME,
    log: Log::Fixture,
    config: &[],
    event_generation: true,
    faults: &[],
    outages: &[],
    tampering: Tampering { hash: None, content_length: None, session_location: None },
    timing: Timing::Exact,
    deliveries: &[LOADED],
};

const BUSY: &str = r#"{"error":{"code":503,"message":"Backend busy","errors":[{"reason":"backendError"}]}}"#;
const NO_OBJECT: &str = r#"{"error":{"code":404,"message":"No such object","errors":[{"reason":"notFound"}]}}"#;
const DENIED_OBJECT: &str = r#"{"error":{"code":403,"message":"denied","errors":[{"reason":"forbidden"}]}}"#;
const DENIED_TABLE: &str =
    r#"{"error":{"code":403,"message":"Access Denied: Table registry_events","errors":[{"reason":"accessDenied"}]}}"#;
const FAILED_JOB: &str = r#"{"status":{"state":"DONE","errorResult":{"reason":"invalid","message":"bad"}}}"#;
const BAD_CRC: Tampering = Tampering { hash: Some("crc32c=AAAAAA=="), ..BASE.tampering };
/// A `Content-Length` far past the object: the download ends short of what Storage promised.
const SHORT_DOWNLOAD: Tampering = Tampering { content_length: Some(1 << 40), ..BASE.tampering };
const STORAGE_LOG: &[u8] = b"\"bucket\",\"storage_byte_hours\"\n\"b\",\"1\"\n";

/// Every scenario. A new one here is played by every runner.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "a large log streams through 256 KiB chunks into one job",
            log: Log::Grown(1_200 << 10),
            deliveries: &[Expect {
                requests: Requests::Begin(&[GetJob, Initiate, Download, Chunk, Chunk, Chunk, Chunk, Chunk]),
                ranges: &["bytes 0-262143/*", "bytes 262144-524287/*", "bytes 524288-786431/*"],
                ..LOADED
            }],
            ..BASE
        },
        Scenario {
            name: "a redelivery finds the job and downloads nothing",
            deliveries: &[
                LOADED,
                Expect {
                    outcome: "duplicate",
                    requests: Requests::Exactly(&[GetJob]),
                    says: &["\"jobId\":\"gcr_usage_events_"],
                    ..LOADED
                },
            ],
            ..BASE
        },
        Scenario {
            name: "an event without a generation loads the live generation",
            event_generation: false,
            deliveries: &[Expect {
                requests: Requests::Exactly(&[ObjectMetadata, GetJob, Initiate, Download, Chunk]),
                says: &["\"generation\":\"1710170135482117\""],
                ..LOADED
            }],
            ..BASE
        },
        Scenario {
            name: "an event without a generation for a vanished object is invalid input",
            log: Log::Missing,
            event_generation: false,
            deliveries: &[Expect {
                status: 400,
                outcome: "invalid-input",
                requests: Requests::Exactly(&[ObjectMetadata]),
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            name: "a failed earlier attempt is followed by the next attempt",
            faults: &[(GetJob, Fault::Reply(200, FAILED_JOB))],
            deliveries: &[Expect {
                requests: Requests::Begin(&[GetJob, GetJob, Initiate, Download]),
                says: &["_r2\""],
                ..LOADED
            }],
            ..BASE
        },
        Scenario {
            name: "a download shorter than its length loads nothing",
            config: &[("GCR_USAGE_WAIT_SECONDS", "0")],
            tampering: SHORT_DOWNLOAD,
            timing: Timing::BudgetBound,
            deliveries: &[Expect {
                status: 503,
                outcome: "upstream-unavailable",
                retries: None,
                says: &["the download ended after", "of 1099511627776 bytes", "nothing was loaded"],
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            // The first session already holds chunks of events when the body breaks; it is
            // left unfinished (no job), and the retry starts a new one from the object's start.
            name: "a download broken off part-way is read again from the start and loads once",
            log: Log::Grown(1_200 << 10),
            faults: &[(Download, Fault::BodyBreaksAfter(700 << 10))],
            deliveries: &[Expect {
                retries: Some(1),
                requests: Requests::Begin(&[GetJob, Initiate, Download, Chunk, Chunk]),
                says: &["failed after", "records", "nothing of it was loaded"],
                ..LOADED
            }],
            ..BASE
        },
        Scenario {
            name: "a corrupted download loads nothing",
            config: &[("GCR_USAGE_WAIT_SECONDS", "0")],
            tampering: BAD_CRC,
            timing: Timing::BudgetBound,
            deliveries: &[Expect {
                status: 503,
                outcome: "upstream-unavailable",
                retries: None,
                says: &["CRC32C", "nothing was loaded"],
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            name: "a transient failure before the download retries the whole upload",
            faults: &[(Initiate, Fault::Network), (Download, Fault::Reply(503, BUSY))],
            deliveries: &[Expect {
                retries: Some(2),
                requests: Requests::Begin(&[GetJob, Initiate, Initiate, Download, Initiate, Download, Chunk]),
                ..LOADED
            }],
            ..BASE
        },
        Scenario {
            name: "a vanished object is refused naming it and the fix",
            faults: &[(Download, Fault::Reply(404, NO_OBJECT))],
            deliveries: &[Expect {
                status: 502,
                outcome: "upstream-rejected",
                says: &[
                    "gs://demo-gcr-logs/accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0 generation 1710170135482117",
                    "deleted or replaced",
                ],
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            name: "storage denying the download names the role to grant",
            faults: &[(Download, Fault::Reply(403, DENIED_OBJECT))],
            deliveries: &[Expect {
                status: 502,
                outcome: "upstream-rejected",
                says: &["roles/storage.objectViewer"],
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            name: "an object that is not a usage log is invalid input",
            log: Log::Bytes(STORAGE_LOG),
            deliveries: &[Expect {
                status: 400,
                outcome: "invalid-input",
                says: &["not a usage log header"],
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            name: "a header-only log loads zero events",
            log: Log::HeaderOnly,
            deliveries: &[Expect {
                rows: Rows::Exactly(0),
                requests: Requests::Exactly(&[GetJob, Initiate, Download, Chunk]),
                ranges: &["bytes */0"],
                ..LOADED
            }],
            ..BASE
        },
        Scenario {
            name: "a failed chunk is resumed from what the session holds",
            log: Log::Grown(700 << 10),
            faults: &[
                (Chunk, Fault::Reply(503, BUSY)),
                (Chunk, Fault::Reply(503, BUSY)),
                (Chunk, Fault::PersistThenFail),
            ],
            deliveries: &[Expect {
                retries: Some(3),
                requests: Requests::Begin(&[GetJob, Initiate, Download, Chunk, Status, Chunk, Status, Chunk, Status]),
                // The stored-but-unanswered chunk is not sent again: the next starts after it.
                ranges: &[
                    "bytes 0-262143/*",
                    "bytes */*",
                    "bytes 0-262143/*",
                    "bytes */*",
                    "bytes 0-262143/*",
                    "bytes */*",
                    "bytes 262144-524287/*",
                ],
                ..LOADED
            }],
            ..BASE
        },
        Scenario {
            name: "an upload outage fails inside the budget and loads nothing",
            log: Log::Grown(300 << 10),
            config: &[("GCR_USAGE_WAIT_SECONDS", "0")],
            outages: &[Chunk],
            timing: Timing::BudgetBound,
            deliveries: &[Expect {
                status: 503,
                outcome: "upstream-unavailable",
                retries: None,
                says: &["upload"],
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            name: "a session URL elsewhere is refused before any chunk",
            tampering: Tampering {
                session_location: Some("https://attacker.example/upload?upload_id=1"),
                ..BASE.tampering
            },
            deliveries: &[Expect {
                status: 502,
                outcome: "upstream-rejected",
                requests: Requests::Exactly(&[GetJob, Initiate]),
                says: &["refusing to send the token elsewhere"],
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            name: "a delivery finishing first makes ours a duplicate that still reports what it read",
            faults: &[(Initiate, Fault::FinishedElsewhere(31))],
            deliveries: &[Expect {
                outcome: "duplicate",
                rows: Rows::Exactly(31),
                requests: Requests::Exactly(&[GetJob, Initiate, Download, Chunk, GetJob]),
                says: &["\"counts\":{"],
                uploads: 0,
                ..LOADED
            }],
            ..BASE
        },
        Scenario {
            name: "BigQuery refusing the session is rejected with its message",
            faults: &[(Initiate, Fault::Reply(403, DENIED_TABLE))],
            deliveries: &[Expect {
                status: 502,
                outcome: "upstream-rejected",
                requests: Requests::Exactly(&[GetJob, Initiate]),
                says: &[
                    "BigQuery upload (jobs.insert) refused job gcr_usage_events_",
                    "Access Denied: Table registry_events",
                ],
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            name: "an audit-log sink object loads its Artifact Registry entries as events, once",
            object: AUDIT_NAME,
            log: Log::AuditSink,
            // Raw mode: audit objects have no raw table, they load as events whatever the mode.
            config: &[("GCR_USAGE_MODE", "raw")],
            deliveries: &[
                Expect {
                    rows: Rows::Exactly(35),
                    requests: Requests::Exactly(&[GetJob, Initiate, Download, Chunk]),
                    says: &[
                        "\"logKind\":\"audit\"",
                        "\"records\":40",
                        "\"skipped\":2",
                        "\"malformed\":2",
                        "\"duplicates\":1",
                        "\"jobId\":\"gcr_usage_events_",
                    ],
                    ..LOADED
                },
                Expect {
                    outcome: "duplicate",
                    rows: Rows::Exactly(35),
                    requests: Requests::Exactly(&[GetJob]),
                    ..LOADED
                },
            ],
            ..BASE
        },
        Scenario {
            name: "a 600 KiB line is one malformed entry and the rest of the object loads",
            object: AUDIT_NAME,
            log: Log::AuditSinkWithAHugeLine,
            deliveries: &[Expect {
                rows: Rows::Exactly(35),
                requests: Requests::Exactly(&[GetJob, Initiate, Download, Chunk]),
                says: &[
                    "\"records\":41",
                    "\"malformed\":3",
                    "{\"line\":1,\"reason\":{\"kind\":\"entry\",\"message\":\"the line is longer than 512 KiB",
                ],
                ..LOADED
            }],
            ..BASE
        },
        Scenario {
            name: "a sink object that is not one JSON entry (a CSV) is refused whole",
            object: AUDIT_NAME,
            log: Log::Bytes(b"\"time_micros\",\"c_ip\"\n\"1710166032118406\",\"198.51.100.23\"\n"),
            deliveries: &[Expect {
                status: 400,
                outcome: "invalid-input",
                requests: Requests::Exactly(&[GetJob, Initiate, Download]),
                says: &["not Cloud Logging entries (JSON lines or a JSON array): none of its 2 lines is a log entry"],
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            name: "a JSON array cut off half-way loads nothing of it",
            object: AUDIT_NAME,
            log: Log::Bytes(
                b"[\n  {\"insertId\": \"a\", \"timestamp\": \"2024-07-04T23:00:00Z\"},\n  {\"insertId\": \"b\", ",
            ),
            deliveries: &[Expect {
                status: 400,
                outcome: "invalid-input",
                requests: Requests::Exactly(&[GetJob, Initiate, Download]),
                says: &["not a complete JSON array of log entries", "ends inside an entry"],
                ..FAILED
            }],
            ..BASE
        },
        Scenario {
            name: "both mode loads the raw rows, then the events, and answers for both",
            config: &[("GCR_USAGE_MODE", "both")],
            deliveries: &[Expect {
                events: Some("loaded"),
                requests: Requests::Exactly(&[Insert, GetJob, Initiate, Download, Chunk]),
                says: &["demo-project:storageanalysis.usage", "demo-project:storageanalysis.registry_events"],
                ..LOADED
            }],
            ..BASE
        },
        Scenario {
            name: "in both mode the graver answer wins",
            config: &[("GCR_USAGE_MODE", "both"), ("GCR_USAGE_WAIT_SECONDS", "0")],
            tampering: BAD_CRC,
            timing: Timing::BudgetBound,
            deliveries: &[Expect {
                status: 503,
                events: Some("upstream-unavailable"),
                retries: None,
                uploads: 0,
                ..LOADED
            }],
            ..BASE
        },
    ]
}

/// Takes out of an answer (and its `events` part) what depends on how many tries fitted.
fn strip_budget_words(body: &mut Value) {
    if let Some(events) = body.get_mut("events") {
        strip_budget_words(events);
    }
    if let Some(map) = body.as_object_mut() {
        map.remove("reason");
        map.remove("retries");
    }
}

/// What a runner saw of one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub status: u16,
    pub body: Value,
    /// The requests the fake saw during this delivery.
    pub requests: Vec<Seen>,
    /// Every completed upload the fake holds afterwards (job id, NDJSON).
    pub uploads: Vec<(String, Vec<u8>)>,
    pub violations: Vec<String>,
}

impl Scenario {
    /// The fake as this scenario starts.
    pub fn google(&self) -> Google {
        let mut google = Google::new();
        if let Some(bytes) = self.log_bytes() {
            google.object(BUCKET, self.object, USAGE_GENERATION, bytes);
        }
        for (endpoint, fault) in self.faults {
            google.fault(*endpoint, fault.clone());
        }
        for endpoint in self.outages {
            google.outage(*endpoint);
        }
        google.tamper(self.tampering.clone());
        google
    }

    pub fn log_bytes(&self) -> Option<Vec<u8>> {
        Some(match self.log {
            Log::Fixture => fixture_log(),
            Log::AuditSink => crate::logs::audit_sink_log(),
            Log::AuditSinkWithAHugeLine => {
                let mut log = format!("{{\"insertId\": \"{}\"}}\n", "x".repeat(600 << 10)).into_bytes();
                log.extend(crate::logs::audit_sink_log());
                log
            }
            Log::Grown(bytes) => grown_log(bytes).0,
            Log::HeaderOnly => header_only_log(),
            Log::Bytes(bytes) => bytes.to_vec(),
            Log::Missing => return None,
        })
    }

    /// [`BASE_CONFIG`] with this scenario's settings over it.
    pub fn config(&self) -> Vec<(&'static str, &'static str)> {
        let mut config: Vec<_> =
            BASE_CONFIG.iter().filter(|(k, _)| !self.config.iter().any(|(o, _)| o == k)).copied().collect();
        config.extend_from_slice(self.config);
        config
    }

    /// The event every delivery POSTs to `/` as `application/json` (a bare object resource).
    pub fn event(&self) -> Value {
        let mut event = json!({"kind": "storage#object", "bucket": BUCKET, "name": self.object});
        if self.event_generation {
            event["generation"] = json!(USAGE_GENERATION.to_string());
        }
        event
    }

    /// After a delivery answered `status` / `body`: what the fake saw (taken from it).
    pub fn observe(&self, status: u16, body: Value, google: &mut Google) -> Observed {
        Observed {
            status,
            body,
            requests: google.take_seen(),
            uploads: google.uploads().to_vec(),
            violations: google.violations().to_vec(),
        }
    }

    /// Whether delivery `n` (from 0) came to what the scenario expects.
    pub fn check(&self, n: usize, seen: &Observed) -> Result<(), String> {
        let expect = &self.deliveries[n];
        let fail = |what: String| Err(format!("{}, delivery {}: {what}\nanswer: {}", self.name, n + 1, seen.body));
        let kind = |v: &Value| v["error"].as_str().or(v["outcome"].as_str()).map(str::to_string);
        if seen.status != expect.status {
            return fail(format!("status {} (expected {})", seen.status, expect.status));
        }
        if kind(&seen.body).as_deref() != Some(expect.outcome) {
            return fail(format!("outcome {:?} (expected {})", kind(&seen.body), expect.outcome));
        }
        let events = seen.body.get("events").and_then(kind);
        if events.as_deref() != expect.events {
            return fail(format!("events {events:?} (expected {:?})", expect.events));
        }
        let rows = seen.body["rows"].as_u64();
        let want_rows = match expect.rows {
            Rows::None => None,
            Rows::Exactly(n) => Some(n),
            Rows::AllOfTheLog => self.log_bytes().map(|log| log.iter().filter(|&&b| b == b'\n').count() as u64 - 1),
        };
        if rows != want_rows {
            return fail(format!("rows {rows:?} (expected {want_rows:?})"));
        }
        let retries = seen.body["retries"]["count"].as_u64().unwrap_or(0);
        if expect.retries.is_some_and(|r| r != retries) {
            return fail(format!("{retries} retries (expected {:?})", expect.retries));
        }
        let endpoints: Vec<Endpoint> = seen.requests.iter().map(|s| s.endpoint).collect();
        let requests_ok = match expect.requests {
            Requests::Exactly(want) => endpoints == want,
            Requests::Begin(want) => endpoints.starts_with(want),
            Requests::Any => true,
        };
        if !requests_ok {
            return fail(format!("requests {endpoints:?} (expected {:?})", expect.requests));
        }
        let ranges: Vec<&str> = seen.requests.iter().filter_map(|s| s.content_range.as_deref()).collect();
        if !ranges.starts_with(expect.ranges) {
            return fail(format!("Content-Ranges {ranges:?} (expected to begin {:?})", expect.ranges));
        }
        let text = seen.body.to_string();
        if let Some(missing) = expect.says.iter().find(|s| !text.contains(*s)) {
            return fail(format!("the answer does not say {missing:?}"));
        }
        if seen.uploads.len() != expect.uploads {
            return fail(format!("{} uploads (expected {})", seen.uploads.len(), expect.uploads));
        }
        let bearer = format!("Bearer {TOKEN}");
        if let Some(s) = seen.requests.iter().find(|s| s.authorization.as_deref() != Some(bearer.as_str())) {
            return fail(format!("{:?} {} without the token", s.endpoint, s.target));
        }
        if !seen.violations.is_empty() {
            return fail(format!("protocol violations: {:?}", seen.violations));
        }
        Ok(())
    }

    /// Whether two runners' observations of the same delivery agree, as far as [`Timing`]
    /// allows. A transport failure's words are the host's own ("connection reset" natively,
    /// wasi:http's error code in a component): the last retry's are left out, and so is the
    /// reason of an answer that ran out of budget.
    pub fn agree(&self, a: &Observed, b: &Observed) -> Result<(), String> {
        let comparable = |o: &Observed| {
            let mut body = o.body.clone();
            if let Some(retries) = body.get_mut("retries").and_then(Value::as_object_mut) {
                retries.remove("last");
            }
            if self.timing == Timing::BudgetBound {
                strip_budget_words(&mut body);
            }
            let requests = if self.timing == Timing::Exact { o.requests.clone() } else { Vec::new() };
            (o.status, body, requests, o.uploads.clone())
        };
        let (a, b) = (comparable(a), comparable(b));
        if a == b {
            return Ok(());
        }
        let mut why = Vec::new();
        if a.0 != b.0 || a.1 != b.1 {
            why.push(format!("answers differ:\n  {} {}\n  {} {}", a.0, a.1, b.0, b.1));
        }
        if a.2 != b.2 {
            let first = a.2.iter().zip(&b.2).position(|(x, y)| x != y).unwrap_or(a.2.len().min(b.2.len()));
            why.push(format!(
                "requests differ from #{first} ({} vs {}): {:?} vs {:?}",
                a.2.len(),
                b.2.len(),
                a.2.get(first),
                b.2.get(first)
            ));
        }
        if a.3 != b.3 {
            why.push(format!("uploads differ ({} vs {})", a.3.len(), b.3.len()));
        }
        Err(format!("{}: {}", self.name, why.join("; ")))
    }
}
