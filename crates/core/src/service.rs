//! The whole request path, written once against a tiny [`Io`] trait: the component implements
//! it with wasi:http and wasi:clocks, native tests with a script. Nothing here touches the world.

use std::io::Read;
use std::time::Duration;

use http::HeaderMap;

use crate::config::Config;
use crate::contract::Answer;
use crate::event::{EventDecision, EventShape, MAX_EVENT_BYTES, parse_event};
use crate::object::ObjectRef;
use crate::outcome::{LoadError, Outcome};
use crate::plan::{Plan, plan_load};
use crate::session::{LoadSession, Reply, Step};

/// A response whose body is read as it arrives (a log download can be hundreds of MB).
pub struct Streamed {
    pub status: u16,
    pub headers: HeaderMap,
    /// Read errors are the host's words for a broken transfer.
    pub body: Box<dyn Read>,
}

/// The host services a load needs.
pub trait Io {
    /// Send a request, giving up after `timeout`.
    fn send(&mut self, request: http::Request<Vec<u8>>, timeout: Duration) -> Reply;
    /// Send a request whose answer is read incrementally; `Err` carries the host's words when
    /// no answer came. The default reads the whole answer through [`Io::send`] (enough for
    /// tests); the component streams.
    fn open(&mut self, request: http::Request<Vec<u8>>, timeout: Duration) -> Result<Streamed, String> {
        match self.send(request, timeout) {
            Reply::Response(response) => {
                let (parts, body) = response.into_parts();
                Ok(Streamed {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: Box::new(std::io::Cursor::new(body)),
                })
            }
            Reply::Failed(why) => Err(why),
        }
    }
    fn sleep(&mut self, duration: Duration);
    /// Monotonic milliseconds.
    fn now_ms(&mut self) -> u64;
    fn random_u64(&mut self) -> u64;
}

/// Runs a session to its end.
pub fn drive(mut session: LoadSession, io: &mut impl Io) -> Result<Outcome, LoadError> {
    let now = io.now_ms();
    let mut step = session.start(now);
    loop {
        step = match step {
            Step::Send { request, timeout } => {
                let reply = io.send(request, timeout);
                let now = io.now_ms();
                session.on_reply(reply, now)
            }
            Step::Sleep(duration) => {
                io.sleep(duration);
                let now = io.now_ms();
                session.on_wake(now)
            }
            Step::Upload(plan) => {
                let report = crate::classified::run_upload(*plan, io);
                let now = io.now_ms();
                session.on_upload(report, now)
            }
            Step::Done(result) => return result,
        }
    }
}

/// What handling one object came to: its load, and in `GCR_USAGE_MODE=both` the events load
/// beside the raw one (`load` is then the raw load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectResult {
    pub load: Result<Outcome, LoadError>,
    pub events: Option<Result<Outcome, LoadError>>,
}

impl ObjectResult {
    fn single(load: Result<Outcome, LoadError>) -> ObjectResult {
        ObjectResult { load, events: None }
    }
}

/// Loads one object (the typed `gcr-usage:loader/loader#load` export, and the HTTP path after
/// event parsing). In `both` mode the two loads run one after the other, each with its own
/// budget, and neither depends on the other's success: both are idempotent, so a redelivery
/// caused by one failing is a duplicate for the other.
pub fn load_object(config: Result<Config, crate::ConfigError>, object: ObjectRef, io: &mut impl Io) -> ObjectResult {
    let config = match config {
        Ok(config) => config,
        Err(e) => return ObjectResult::single(Err(LoadError::Configuration(e.to_string()))),
    };
    let loads = match plan_load(&config, object) {
        Err(error) => return ObjectResult::single(Err(error)),
        Ok(Plan::Ignore(outcome)) => return ObjectResult::single(Ok(*outcome)),
        Ok(Plan::Load(loads)) => loads,
    };
    let mut results = loads.into_iter().map(|planned| {
        let now = io.now_ms();
        let seed = io.random_u64();
        drive(LoadSession::new(config.clone(), planned, now, seed), io)
    });
    let load = results.next().expect("a plan has at least one load");
    ObjectResult { load, events: results.next() }
}

/// An incoming HTTP request as the host read it. `body` holds at most `MAX_EVENT_BYTES + 1`
/// bytes: hosts stop reading there, which is enough to know it is too large.
pub struct Request<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The answer plus what the log line adds about the request.
pub struct Handled {
    pub answer: Answer,
    pub shape: Option<EventShape>,
    /// Whether to write the log line: successful health checks arrive every few seconds and
    /// would drown the events.
    pub log: bool,
}

/// Whether the host should read the body at all (a declared oversized body is refused unread).
pub fn declared_too_large(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > MAX_EVENT_BYTES as u64)
}

pub fn handle(request: &Request<'_>, config: Result<Config, crate::ConfigError>, io: &mut impl Io) -> Handled {
    let path = request.path_and_query.split('?').next().unwrap_or("");
    let plain = |answer| Handled { answer, shape: None, log: true };
    match (request.method, path) {
        ("GET" | "HEAD", "/healthz") => {
            return match config {
                Ok(_) => Handled {
                    answer: Answer {
                        status: 200,
                        body: serde_json::json!({"status": "ok"}),
                        severity: crate::contract::Severity::Info,
                        message: "healthy".into(),
                    },
                    shape: None,
                    log: false,
                },
                Err(e) => plain(Answer::from_error(&LoadError::Configuration(e.to_string()), None)),
            };
        }
        (_, "/healthz") => return plain(Answer::plain(405, "method-not-allowed", "use GET /healthz")),
        ("POST", _) => {}
        (method, _) => {
            return plain(Answer::plain(
                405,
                "method-not-allowed",
                format!("{method} is not supported; POST an event, or GET /healthz"),
            ));
        }
    }
    if declared_too_large(request.headers) || request.body.len() > MAX_EVENT_BYTES {
        return plain(Answer::plain(
            413,
            "body-too-large",
            format!("event bodies are limited to {MAX_EVENT_BYTES} bytes"),
        ));
    }
    // Configuration first: a broken deployment should say so on every event, naming the variable.
    let config = match config {
        Ok(c) => c,
        Err(e) => return plain(Answer::from_error(&LoadError::Configuration(e.to_string()), None)),
    };
    let (shape, decision) = match parse_event(request.headers, request.body) {
        Ok(parsed) => parsed,
        Err(invalid) => return plain(Answer::from_error(&LoadError::InvalidInput(invalid.to_string()), None)),
    };
    let answer = match decision {
        EventDecision::Ignore { object, reason } => Answer::from_outcome(&Outcome::ignored(object, reason)),
        EventDecision::Object(object) => {
            let for_errors = object.clone();
            Answer::from_object_result(&load_object(Ok(config), object, io), &for_errors)
        }
    };
    Handled { answer, shape: Some(shape), log: true }
}
