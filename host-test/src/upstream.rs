//! `FakeUpstream`: the only "network" a guest under test can reach.
//!
//! wasmtime-wasi-http hands every `wasi:http/outgoing-handler.handle` call to
//! [`WasiHttpHooks::send_request`]. The harness builds wasmtime-wasi-http without its
//! `default-send-request` feature, so there is no real client to fall back on: this fake records
//! each request (method, URL, headers, full body, options, virtual time) and answers it from a
//! script of [`Rule`]s. A request no rule matches is answered `599` and kept in an "unmatched"
//! list that the harness turns into a test failure unless the test takes it.
//!
//! In Spin host mode an outbound policy (`allowed_outbound_hosts` of `spin.toml`) comes first:
//! a request to an origin it does not list never reaches the script; it is kept in a "denied"
//! list and fails with `HTTP-request-denied`, as Spin fails it.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::clock::VirtualTime;
use crate::spin::AllowedHosts;

/// What a real client does when `first-byte-timeout` is not set: wasmtime's default client
/// (`wasmtime serve`) waits 600 s for the first byte, then fails with `connection-read-timeout`.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(600);

/// Status of the answer to a request that matched no rule (not a real HTTP status on purpose).
pub const UNMATCHED_STATUS: u16 = 599;

/// One outbound request as the guest sent it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: Method,
    /// `scheme://authority/path?query`.
    pub url: String,
    pub scheme: String,
    pub authority: String,
    /// Path without the query.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The whole request body, as streamed by the guest.
    pub body: Bytes,
    /// The guest's `request-options` (timeouts), if it passed any.
    pub options: Option<RequestOptions>,
    /// Virtual time (since the harness origin) at which the body was complete and the request
    /// was answered (before any scripted delay).
    pub at: Duration,
    /// Index of the rule that answered it (in the order rules were added); `None` = unmatched.
    pub rule: Option<usize>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("request body is not UTF-8")
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "request body of {} {} is not JSON ({e}): {:?}",
                self.method,
                self.url,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Value of one query parameter (not percent-decoded).
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query.as_deref()?.split('&').filter_map(|kv| kv.split_once('=')).find_map(|(k, v)| (k == key).then_some(v))
    }
}

impl fmt::Display for RecordedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({} body bytes", self.method, self.url, self.body.len())?;
        if !self.body.is_empty() {
            let body = String::from_utf8_lossy(&self.body);
            let short: String = body.chars().take(300).collect();
            write!(f, ": {short}")?;
        }
        write!(f, ")")
    }
}

/// How a rule selects requests by path (the path excludes the query string).
#[derive(Clone)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    /// Anything else: the closure sees the whole recorded request (host, query, body, ...).
    Custom(Arc<dyn Fn(&RecordedRequest) -> bool + Send + Sync>),
}

impl fmt::Debug for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathMatch::Exact(p) => write!(f, "exact({p:?})"),
            PathMatch::Prefix(p) => write!(f, "prefix({p:?})"),
            PathMatch::Custom(_) => write!(f, "custom(..)"),
        }
    }
}

pub fn exact(path: impl Into<String>) -> PathMatch {
    PathMatch::Exact(path.into())
}

pub fn prefix(path: impl Into<String>) -> PathMatch {
    PathMatch::Prefix(path.into())
}

pub fn matching(f: impl Fn(&RecordedRequest) -> bool + Send + Sync + 'static) -> PathMatch {
    PathMatch::Custom(Arc::new(f))
}

/// What happens to a matched request.
#[derive(Clone)]
enum Action {
    Respond {
        status: u16,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
        /// After the body's bytes, the connection fails with this (see [`Reply::breaks_off`]).
        breaks_off: Option<fn() -> Error>,
    },
    /// A transport failure (`fn` because `wasmtime_wasi_http::Error` is not `Clone` and the last
    /// reply of a rule repeats).
    Fail(fn() -> Error),
    /// Never answer: the request ends with the client's first-byte timeout.
    Hang,
    /// Compute the reply from the request (e.g. echo the job id the guest chose).
    Dynamic(Arc<dyn Fn(&RecordedRequest) -> Reply + Send + Sync>),
}

/// One scripted answer. Built with [`Reply::status`], [`Reply::json`], [`Reply::fail`], ...
#[derive(Clone)]
pub struct Reply {
    action: Action,
    delay: Duration,
    /// Answer on the request's head, leaving its body unread (see [`Reply::before_body`]).
    before_body: bool,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match &self.action {
            Action::Respond { status, body, .. } => format!("respond {status} ({} bytes)", body.len()),
            Action::Fail(make) => format!("fail {}", make()),
            Action::Hang => "hang".into(),
            Action::Dynamic(_) => "dynamic".into(),
        };
        write!(f, "Reply({action}, delay {:?})", self.delay)
    }
}

impl Reply {
    /// An empty response with this status.
    pub fn status(status: u16) -> Self {
        Reply {
            action: Action::Respond { status, headers: Vec::new(), body: Bytes::new(), breaks_off: None },
            delay: Duration::ZERO,
            before_body: false,
        }
    }

    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::status(status).header("content-type", "text/plain; charset=utf-8").body(body.into())
    }

    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::status(status).header("content-type", "application/json; charset=UTF-8").body(body.to_string())
    }

    /// A transport-level failure, e.g. `Reply::fail(|| Error::ConnectionRefused)`; the guest sees
    /// the matching `wasi:http/types.error-code`.
    pub fn fail(make: fn() -> Error) -> Self {
        Reply { action: Action::Fail(make), delay: Duration::ZERO, before_body: false }
    }

    pub fn connection_refused() -> Self {
        Self::fail(|| Error::ConnectionRefused)
    }

    /// No answer at all. Like a real client, the request then fails with `connection-read-timeout`
    /// after the guest's `first-byte-timeout` (or [`DEFAULT_FIRST_BYTE_TIMEOUT`]) of virtual time.
    pub fn hang() -> Self {
        Reply { action: Action::Hang, delay: Duration::ZERO, before_body: false }
    }

    /// A reply computed from the request when it arrives.
    pub fn dynamic(f: impl Fn(&RecordedRequest) -> Reply + Send + Sync + 'static) -> Self {
        Reply { action: Action::Dynamic(Arc::new(f)), delay: Duration::ZERO, before_body: false }
    }

    /// Adds a response header (ignored for failures and hangs).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Action::Respond { headers, .. } = &mut self.action {
            headers.push((
                HeaderName::try_from(name).expect("invalid header name"),
                HeaderValue::try_from(value).expect("invalid header value"),
            ));
        }
        self
    }

    /// Replaces the response body (ignored for failures and hangs).
    pub fn body(mut self, bytes: impl Into<Bytes>) -> Self {
        if let Action::Respond { body, .. } = &mut self.action {
            *body = bytes.into();
        }
        self
    }

    /// The body's bytes arrive, then the connection fails with `make()` instead of ending: a
    /// transfer cut off part-way. The guest reads the bytes, then its next read of the body
    /// fails with that `error-code`. Set the `content-length` the head promised with
    /// [`Reply::header`] (else it is the length of the bytes that arrived).
    pub fn breaks_off(mut self, make: fn() -> Error) -> Self {
        if let Action::Respond { breaks_off, .. } = &mut self.action {
            *breaks_off = Some(make);
        }
        self
    }

    /// Answer as soon as the request's head arrived, without reading its body — a server that
    /// refuses early. The body's receiver is dropped, so the guest's output stream reports
    /// `closed` part-way through a body larger than the host's buffer, as with hyper.
    pub fn before_body(mut self) -> Self {
        self.before_body = true;
        self
    }

    /// Answer only after `delay` of virtual time. A delay longer than the request's
    /// first-byte timeout turns into that timeout, as it would against a real server.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A scripted route: requests with this method (any if `None`), optional host and path
/// predicate get the rule's replies one per match, the last one repeating forever.
#[derive(Clone, Debug)]
pub struct Rule {
    method: Option<Method>,
    host: Option<String>,
    path: PathMatch,
    replies: Vec<Reply>,
}

impl Rule {
    pub fn new(method: Option<Method>, path: PathMatch) -> Self {
        Rule { method, host: None, path, replies: Vec::new() }
    }

    pub fn get(path: PathMatch) -> Self {
        Self::new(Some(Method::GET), path)
    }

    pub fn post(path: PathMatch) -> Self {
        Self::new(Some(Method::POST), path)
    }

    pub fn any_method(path: PathMatch) -> Self {
        Self::new(None, path)
    }

    /// Also require this authority (`host` or `host:port`, as the guest set it).
    pub fn host(mut self, authority: impl Into<String>) -> Self {
        self.host = Some(authority.into());
        self
    }

    /// Appends a reply to the sequence.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.replies.push(reply);
        self
    }

    /// Appends several replies.
    pub fn replies(mut self, replies: impl IntoIterator<Item = Reply>) -> Self {
        self.replies.extend(replies);
        self
    }

    fn matches(&self, req: &RecordedRequest) -> bool {
        self.method.as_ref().is_none_or(|m| *m == req.method)
            && self.host.as_ref().is_none_or(|h| *h == req.authority)
            && match &self.path {
                PathMatch::Exact(p) => *p == req.path,
                PathMatch::Prefix(p) => req.path.starts_with(p.as_str()),
                PathMatch::Custom(f) => f(req),
            }
    }
}

struct ScriptedRule {
    rule: Rule,
    hits: usize,
}

#[derive(Default)]
struct Inner {
    rules: Vec<ScriptedRule>,
    log: Vec<RecordedRequest>,
    /// Unmatched requests not yet taken by the test.
    unmatched: Vec<RecordedRequest>,
    /// Requests the outbound policy refused, in arrival order.
    denied: Vec<RecordedRequest>,
    /// Spin's `allowed_outbound_hosts`; `None` = everything goes to the script.
    policy: Option<AllowedHosts>,
    time: Option<VirtualTime>,
}

/// The fake network. Cheap to clone: clones share the script and the log.
#[derive(Clone, Default)]
pub struct FakeUpstream {
    inner: Arc<Mutex<Inner>>,
}

impl FakeUpstream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule. Rules are tried in the order they were added; the first match answers.
    pub fn route(&self, rule: Rule) -> &Self {
        assert!(!rule.replies.is_empty(), "rule {:?} has no replies", rule.path);
        self.lock().rules.push(ScriptedRule { rule, hits: 0 });
        self
    }

    /// Every request received so far, matched or not, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().log.clone()
    }

    /// Requests with this method whose path starts with `path_prefix`.
    pub fn requests_to(&self, method: Method, path_prefix: &str) -> Vec<RecordedRequest> {
        self.lock().log.iter().filter(|r| r.method == method && r.path.starts_with(path_prefix)).cloned().collect()
    }

    /// How many requests rule number `index` answered.
    pub fn hits(&self, index: usize) -> usize {
        self.lock().rules[index].hits
    }

    /// Unmatched requests not yet taken (see [`FakeUpstream::take_unmatched`]).
    pub fn unmatched(&self) -> Vec<RecordedRequest> {
        self.lock().unmatched.clone()
    }

    /// Takes the unmatched requests: a test that expects some acknowledges them this way, which
    /// keeps the harness from failing the test when it is dropped.
    pub fn take_unmatched(&self) -> Vec<RecordedRequest> {
        std::mem::take(&mut self.lock().unmatched)
    }

    /// Panics, listing them, if any request matched no rule.
    #[track_caller]
    pub fn assert_all_matched(&self) {
        let unmatched = self.unmatched();
        if !unmatched.is_empty() {
            panic!("{}", describe_unmatched(&unmatched));
        }
    }

    pub(crate) fn attach_time(&self, time: VirtualTime) {
        self.lock().time = Some(time);
    }

    /// Requests the outbound policy (Spin host mode) refused, in arrival order. They are not
    /// in [`FakeUpstream::requests`]: they never left the host.
    pub fn denied(&self) -> Vec<RecordedRequest> {
        self.lock().denied.clone()
    }

    pub(crate) fn set_policy(&self, policy: Option<AllowedHosts>) {
        self.lock().policy = policy;
    }

    /// `true` (and recorded as denied) when a policy is set and does not allow the URL.
    fn deny(&self, req: &RecordedRequest, uri: &http::Uri) -> bool {
        let mut inner = self.lock();
        let denied = inner.policy.as_ref().is_some_and(|p| !p.allows(uri));
        if denied {
            let mut req = req.clone();
            req.at = inner.time.as_ref().map(VirtualTime::elapsed).unwrap_or_default();
            inner.denied.push(req);
        }
        denied
    }

    /// Whether the reply this request's head would get is a [`Reply::before_body`] one.
    fn answers_before_body(&self, parts: &http::request::Parts) -> bool {
        let head = RecordedRequest {
            method: parts.method.clone(),
            url: parts.uri.to_string(),
            scheme: parts.uri.scheme_str().unwrap_or_default().to_string(),
            authority: parts.uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            headers: parts.headers.clone(),
            body: Bytes::new(),
            options: None,
            at: Duration::ZERO,
            rule: None,
        };
        let inner = self.lock();
        inner.rules.iter().find(|r| r.rule.matches(&head)).is_some_and(|scripted| {
            scripted.rule.replies[scripted.hits.min(scripted.rule.replies.len() - 1)].before_body
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not hide the log from the assertions that follow.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the request and picks its reply (the script advances at arrival, so the order of
    /// replies follows the order in which request bodies completed).
    fn dispatch(&self, mut req: RecordedRequest) -> Option<Reply> {
        let mut inner = self.lock();
        req.at = inner.time.as_ref().map(VirtualTime::elapsed).unwrap_or_default();
        let found = inner.rules.iter().position(|r| r.rule.matches(&req));
        req.rule = found;
        let reply = found.map(|i| {
            let scripted = &mut inner.rules[i];
            let n = scripted.hits.min(scripted.rule.replies.len() - 1);
            scripted.hits += 1;
            scripted.rule.replies[n].clone()
        });
        if reply.is_none() {
            inner.unmatched.push(req.clone());
        }
        inner.log.push(req);
        reply
    }

    async fn answer(
        self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Result<http::Response<WasiBody>, Error> {
        let (parts, body) = request.into_parts();
        // Waiting for the whole body is what lets tests assert on it (unless the reply is to
        // come before it). A denied request's body is drained too, so the guest sees the denial
        // and not a broken pipe.
        let body = if self.answers_before_body(&parts) {
            drop(body);
            Bytes::new()
        } else {
            read_like_hyper(&parts.headers, body).await?
        };
        let uri = &parts.uri;
        let recorded = RecordedRequest {
            method: parts.method.clone(),
            url: uri.to_string(),
            scheme: uri.scheme_str().unwrap_or_default().to_string(),
            authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            headers: parts.headers,
            body,
            options,
            at: Duration::ZERO,
            rule: None,
        };
        // Spin refuses in `outgoing-handler.handle` itself; wasmtime 48's hook can only fail the
        // response future. The guest reads both as the same error code (`http_out.rs` turns
        // either into the same failure), so the difference is not observable to it.
        if self.deny(&recorded, uri) {
            return Err(Error::HttpRequestDenied);
        }
        let first_byte_timeout = options.and_then(|o| o.first_byte_timeout).unwrap_or(DEFAULT_FIRST_BYTE_TIMEOUT);
        let Some(mut reply) = self.dispatch(recorded.clone()) else {
            return Ok(response(
                UNMATCHED_STATUS,
                &[],
                Bytes::from(format!("gcr-usage-host-test: no FakeUpstream rule matched {recorded}")),
                None,
            ));
        };
        while let Action::Dynamic(f) = &reply.action {
            let delay = reply.delay;
            reply = f(&recorded);
            reply.delay += delay;
        }
        // Delays and hangs are tokio sleeps, i.e. virtual time: instant under a paused clock.
        let waits_for_first_byte = matches!(reply.action, Action::Hang) || reply.delay > first_byte_timeout;
        if waits_for_first_byte {
            tokio::time::sleep(first_byte_timeout).await;
            return Err(Error::ConnectionReadTimeout);
        }
        tokio::time::sleep(reply.delay).await;
        match reply.action {
            Action::Respond { status, headers, body, breaks_off } => Ok(response(status, &headers, body, breaks_off)),
            Action::Fail(make) => Err(make()),
            Action::Hang | Action::Dynamic(_) => unreachable!("handled above"),
        }
    }
}

/// Reads a request body the way hyper's client does: with a `Content-Length`, exactly that many
/// bytes, and then the body is dropped at once — so the guest's output stream reports `closed`
/// as soon as the last byte is taken, possibly before the guest's own flush or `finish`
/// (wasmtime-wasi-http's `BodyWriteStream` answers `closed` once its receiver is gone). Without
/// one, to the end the guest marks with `finish`.
async fn read_like_hyper(headers: &HeaderMap, mut body: WasiBody) -> Result<Bytes, Error> {
    let declared =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    let Some(declared) = declared else { return Ok(body.collect().await?.to_bytes()) };
    let mut bytes = bytes::BytesMut::with_capacity(declared.min(64 << 20));
    while bytes.len() < declared {
        match body.frame().await {
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            None => break,
        }
    }
    drop(body);
    Ok(bytes.freeze())
}

pub(crate) fn describe_unmatched(unmatched: &[RecordedRequest]) -> String {
    let mut msg = format!(
        "{} outbound request(s) matched no FakeUpstream rule (answered {UNMATCHED_STATUS}); \
         add a rule or acknowledge them with FakeUpstream::take_unmatched():",
        unmatched.len()
    );
    for r in unmatched {
        msg.push_str(&format!("\n  - {r}"));
    }
    msg
}

/// A scripted response; its `content-length` is the body's unless the script set one.
fn response(
    status: u16,
    headers: &[(HeaderName, HeaderValue)],
    body: Bytes,
    breaks_off: Option<fn() -> Error>,
) -> http::Response<WasiBody> {
    let mut builder = http::Response::builder().status(status);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    if !headers.iter().any(|(k, _)| *k == http::header::CONTENT_LENGTH) {
        builder = builder.header(http::header::CONTENT_LENGTH, body.len());
    }
    let body = match breaks_off {
        None => Full::new(body).map_err(|never| match never {}).boxed_unsync(),
        Some(make) => BrokenOff { data: Some(body), error: Some(make) }.boxed_unsync(),
    };
    builder.body(body).expect("scripted response is valid")
}

/// A body that yields its bytes in one frame, then fails: what hyper's client hands on when the
/// connection resets before the promised length.
struct BrokenOff {
    data: Option<Bytes>,
    error: Option<fn() -> Error>,
}

impl hyper::body::Body for BrokenOff {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Error>>> {
        let frame = match self.data.take() {
            Some(data) => Some(Ok(hyper::body::Frame::data(data))),
            None => self.error.take().map(|make| Err(make())),
        };
        std::task::Poll::Ready(frame)
    }
}

impl WasiHttpHooks for FakeUpstream {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>,
            > + Send,
    > {
        let upstream = self.clone();
        Box::new(async move {
            let response = upstream.answer(request, options).await?;
            // No connection task to drive: the body is already in memory.
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}
