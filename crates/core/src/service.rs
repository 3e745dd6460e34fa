//! The whole request path, written once against a tiny [`Io`] trait: the component implements
//! it with wasi:http and wasi:clocks, native tests with a script. Nothing here touches the world.

use std::io::Read;
use std::time::Duration;

use http::HeaderMap;

use crate::auth::google_keys::{self, KeyCache, KeySet};
use crate::auth::trigger::{self, Check, TriggerAuth};
use crate::config::Config;
use crate::contract::Answer;
use crate::credentials::CredentialCache;
use crate::instance::InstanceState;
use crate::object::ObjectRef;
use crate::outcome::{LoadError, Outcome, Refusal};
use crate::plan::{Plan, plan_load};
use crate::session::{LoadSession, NoAnswer, Reply, Step};
use crate::trigger_event::{EventDecision, EventShape, MAX_EVENT_BYTES, parse_event};

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
    /// Send a request whose body the caller keeps (an upload chunk it may have to send again).
    /// The default copies the body for [`Io::send`]; a host that can write from a borrowed
    /// body overrides it (the component: the copy was 3% of its CPU time under `wasmtime serve`).
    fn send_borrowed(&mut self, request: http::Request<&[u8]>, timeout: Duration) -> Reply {
        self.send(request.map(<[u8]>::to_vec), timeout)
    }
    /// Send a request whose answer is read incrementally; `Err` says why no answer came. The
    /// default reads the whole answer through [`Io::send`] (enough for tests); the component
    /// streams.
    fn open(&mut self, request: http::Request<Vec<u8>>, timeout: Duration) -> Result<Streamed, NoAnswer> {
        match self.send(request, timeout) {
            Reply::Response(response) => {
                let (parts, body) = response.into_parts();
                Ok(Streamed {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: Box::new(std::io::Cursor::new(body)),
                })
            }
            Reply::Failed(why) => Err(NoAnswer::Failed(why)),
            Reply::Refused { origin, why } => Err(NoAnswer::Refused { origin, why }),
        }
    }
    /// Sends independent requests (each with its timeout) and returns their answers in order.
    /// The default sends them one after the other; a host may send them in parallel (the CLI's
    /// backfill does, for a batch's reservations). Only the backfill uses it.
    fn send_all(&mut self, requests: Vec<(http::Request<Vec<u8>>, Duration)>) -> Vec<Reply> {
        requests.into_iter().map(|(request, timeout)| self.send(request, timeout)).collect()
    }
    fn sleep(&mut self, duration: Duration);
    /// Monotonic milliseconds.
    fn now_ms(&mut self) -> u64;
    /// Wall-clock seconds since the Unix epoch (JWT times).
    fn unix_secs(&mut self) -> u64;
    fn random_u64(&mut self) -> u64;
}

/// Runs a session to its end, starting from what `credentials` holds and leaving there what
/// it fetched.
pub fn drive(session: LoadSession, io: &mut impl Io, credentials: &mut CredentialCache) -> Result<Outcome, LoadError> {
    let now = io.now_ms();
    let mut session = session.with_cached(credentials, now);
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
            Step::Done(result) => {
                session.remember(credentials);
                return result;
            }
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
pub fn load_object(
    config: Result<Config, crate::ConfigError>,
    object: ObjectRef,
    io: &mut impl Io,
    credentials: &mut CredentialCache,
) -> ObjectResult {
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
        let unix = io.unix_secs();
        let seed = io.random_u64();
        drive(LoadSession::new(config.clone(), planned, now, unix, seed), io, credentials)
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
    /// Who sent the event, when trigger authentication established it (an e-mail address).
    pub caller: Option<String>,
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

/// Handles one HTTP request. `instance` is what the instance keeps between requests (hosts
/// that reuse an instance pass the same one every time; see [`crate::instance`]).
pub fn handle(
    request: &Request<'_>,
    config: Result<Config, crate::ConfigError>,
    io: &mut impl Io,
    instance: &mut InstanceState,
) -> Handled {
    let (path, query) = request.path_and_query.split_once('?').unwrap_or((request.path_and_query, ""));
    let plain = |answer| Handled { answer, shape: None, caller: None, log: true };
    let refused = |refusal: Refusal| plain(Answer::from_refusal(&refusal));
    match (request.method, path) {
        ("GET" | "HEAD", "/healthz") => {
            return match config {
                Ok(_) => Handled { answer: Answer::healthy(), shape: None, caller: None, log: false },
                Err(e) => plain(Answer::from_error(&LoadError::Configuration(e.to_string()), None)),
            };
        }
        (_, "/healthz") => return refused(Refusal::MethodNotAllowed("use GET /healthz".into())),
        ("POST", _) => {}
        (method, _) => {
            return refused(Refusal::MethodNotAllowed(format!(
                "{method} is not supported; POST an event, or GET /healthz"
            )));
        }
    }
    if declared_too_large(request.headers) || request.body.len() > MAX_EVENT_BYTES {
        return refused(Refusal::BodyTooLarge(format!("event bodies are limited to {MAX_EVENT_BYTES} bytes")));
    }
    // Configuration first: a broken deployment should say so on every event, naming the variable.
    let config = match config {
        Ok(c) => c,
        Err(e) => return plain(Answer::from_error(&LoadError::Configuration(e.to_string()), None)),
    };
    // Then the sender, before the body is even parsed: a refused request costs nothing more.
    let caller = match authenticate(&config.trigger, request.headers, query, io, &mut instance.keys) {
        Ok(caller) => caller,
        Err(answer) => return plain(answer),
    };
    let (shape, decision) = match parse_event(request.headers, request.body) {
        Ok(parsed) => parsed,
        Err(invalid) => return plain(Answer::from_error(&LoadError::InvalidInput(invalid.to_string()), None)),
    };
    let answer = match decision {
        EventDecision::Ignore { object, reason } => Answer::from_outcome(&Outcome::ignored(object, reason)),
        EventDecision::Object(object) => {
            let for_errors = object.clone();
            Answer::from_object_result(&load_object(Ok(config), object, io, &mut instance.credentials), &for_errors)
        }
    };
    Handled { answer, shape: Some(shape), caller, log: true }
}

/// Trigger authentication ([`crate::auth::trigger`]), fetching Google's keys when the token
/// names one not at hand (first use, a rotation, or keys past their `max-age`) and
/// [`KeyCache::may_fetch`] allows it. `Err` is the refusal to send.
fn authenticate(
    auth: &TriggerAuth,
    headers: &HeaderMap,
    query: &str,
    io: &mut impl Io,
    keys: &mut KeyCache,
) -> Result<Option<String>, Answer> {
    let now_unix = io.unix_secs();
    let TriggerAuth::GoogleOidc { jwks, .. } = auth else {
        // The other modes need no keys: the check decides alone.
        return match trigger::check(auth, headers, query, None, now_unix) {
            Check::Allowed { caller } => Ok(caller),
            Check::Denied(refusal) => Err(Answer::from_refusal(&refusal)),
            Check::NeedKeys => unreachable!("only google-oidc needs keys"),
        };
    };
    let source = jwks.base();
    // The check against `held`; `None` when it needs keys that `held` lacks.
    let check_with = |held: Option<&KeySet>| match trigger::check(auth, headers, query, held, now_unix) {
        Check::Allowed { caller } => Some(Ok(caller)),
        Check::Denied(refusal) => Some(Err(Answer::from_refusal(&refusal))),
        Check::NeedKeys => None,
    };
    let unknown_kid = || {
        Err(Answer::from_refusal(&Refusal::Unauthenticated(
            "the token's key id is not among Google's signing keys".into(),
        )))
    };
    let cannot_verify = |why: &str| {
        Err(Answer::from_error(
            &LoadError::UpstreamUnavailable(format!(
                "cannot verify the sender: Google's OIDC keys ({source}) {why}; the trigger should redeliver"
            )),
            None,
        ))
    };
    let now_ms = io.now_ms();
    if let Some(done) = check_with(keys.fresh(source, now_ms)) {
        return done;
    }
    if !keys.may_fetch(source, now_ms) {
        // Fetched moments ago: a kid missing from fresh keys stays missing, and without fresh
        // keys the set held before (within stale-if-error) is all there is to check against.
        if keys.fresh(source, now_ms).is_some() {
            return unknown_kid();
        }
        return match keys.usable(source, now_ms) {
            Some(stale) => check_with(Some(stale)).unwrap_or_else(unknown_kid),
            None => cannot_verify("could not be fetched moments ago"),
        };
    }
    keys.fetching(source, now_ms);
    match fetch_keys(jwks, io) {
        Ok((set, max_age)) => {
            let now_ms = io.now_ms();
            keys.store(source, set, now_ms, max_age);
            check_with(keys.fresh(source, now_ms)).unwrap_or_else(unknown_kid)
        }
        // Google's endpoint is out of reach: the keys held before still verify what they signed.
        Err(why) => match keys.usable(source, io.now_ms()) {
            Some(stale) => check_with(Some(stale)).unwrap_or_else(|| cannot_verify(&why)),
            None => cannot_verify(&why),
        },
    }
}

const KEYS_TIMEOUT: Duration = Duration::from_secs(10);

fn fetch_keys(jwks: &crate::url::Endpoint, io: &mut impl Io) -> Result<(KeySet, u64), String> {
    let request = http::Request::get(jwks.base())
        .header(http::header::USER_AGENT, crate::job::USER_AGENT)
        .body(Vec::new())
        .expect("the key-set URL was validated");
    match io.send(request, KEYS_TIMEOUT) {
        Reply::Response(r) if r.status().is_success() => {
            let set = KeySet::parse(r.body()).map_err(|why| format!("answered unusably: {why}"))?;
            Ok((set, google_keys::max_age_ms(r.headers())))
        }
        Reply::Response(r) => Err(format!("answered HTTP {}", r.status().as_u16())),
        Reply::Failed(why) => Err(format!("could not be fetched: {why}")),
        Reply::Refused { origin, why } => {
            Err(format!("could not be fetched: the host refused to send a request to {origin} ({why})"))
        }
    }
}

#[cfg(test)]
mod tests;
