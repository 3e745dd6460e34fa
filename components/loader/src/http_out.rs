//! Outgoing HTTP over `wasi:http/outgoing-handler`, blocking (one request at a time is all a
//! load needs). Every failure becomes a [`NoAnswer::Failed`] with the host's words — or a
//! [`NoAnswer::Refused`] when the host's outbound policy does not allow the origin — never a trap.

use std::time::Duration;

use gcr_usage_core::service::Streamed;
use gcr_usage_core::session::{NoAnswer, Reply};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Answers from Google APIs are a few KiB; anything far larger is not an answer we can use.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Reads of a streamed body ask the host for this much at a time: few host calls per MB.
const STREAM_READ: usize = 256 * 1024;
/// Writes hand the host at most this much at a time, though wasmtime permits 1 MiB: the host
/// copies each write into a fresh allocation of its size, and glibc's malloc took 1 MiB ones
/// from pages it had just given back, so every upload byte cost wasmtime a page fault and a
/// zeroed page (41,000 faults a 200 MiB log; 5,000 in 128 KiB writes, 4,300 in 64 KiB ones).
/// Measured under `wasmtime serve` (`classify_bench` (f), A/B): 128 KiB +2.8% wall and +4.4%
/// CPU against 1 MiB; smaller pieces lose it again to the extra host calls (32 KiB −7%).
const WRITE_PIECE: usize = 128 * 1024;

/// Sends the request (its body owned or borrowed: it is only written) and reads the answer.
pub fn send(request: http::Request<impl AsRef<[u8]>>, timeout: Duration) -> Reply {
    match try_send(request, timeout) {
        Ok(response) => Reply::Response(response),
        Err(no_answer) => no_answer.into(),
    }
}

/// Sends the request; the answer's body is read as the caller consumes it.
pub fn open(request: http::Request<Vec<u8>>, timeout: Duration) -> Result<Streamed, NoAnswer> {
    let response = start(request, timeout)?;
    let status = response.status();
    let mut headers = http::HeaderMap::new();
    for (name, value) in response.headers().entries() {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_bytes(&value))
        {
            headers.append(name, value);
        }
    }
    let body = response.consume().map_err(|()| failed("response body unavailable"))?;
    let stream = body.stream().map_err(|()| failed("body stream unavailable"))?;
    let reader = BodyReader { chunk: Vec::new(), at: 0, stream, _body: body, _response: response };
    Ok(Streamed { status, headers, body: Box::new(reader) })
}

fn failed(why: impl Into<String>) -> NoAnswer {
    NoAnswer::Failed(why.into())
}

/// No answer, and why: a request the host's outbound policy does not allow (Spin answers
/// `HttpRequestDenied` for an origin missing from `allowed_outbound_hosts`) is refused, which
/// no retry can change; anything else is a failure worth retrying.
fn no_answer(origin: &str, code: ErrorCode, write: Option<String>) -> NoAnswer {
    let why = match write {
        Some(write) => format!("{code:?} ({write})"),
        None => format!("{code:?}"),
    };
    match code {
        ErrorCode::HttpRequestDenied => NoAnswer::Refused { origin: origin.to_string(), why },
        _ => NoAnswer::Failed(why),
    }
}

/// An incoming body as `io::Read`, buffered in the host's own reads: each is a list the host
/// copies into guest memory, handed out from there (a `BufReader` on top copied it once more).
/// Field order is drop order: the stream is a child of the body, which must outlive it
/// (wasi:http traps otherwise).
struct BodyReader {
    /// The last read from the host, handed out from `at` on.
    chunk: Vec<u8>,
    at: usize,
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.stream.blocking_read(STREAM_READ as u64) {
                // An empty read is not the end (the host had nothing yet): ask again.
                Ok(chunk) => (self.chunk, self.at) = (chunk, 0),
                Err(StreamError::Closed) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(stream_error(e))),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn try_send(request: http::Request<impl AsRef<[u8]>>, timeout: Duration) -> Result<http::Response<Vec<u8>>, NoAnswer> {
    let response = start(request, timeout)?;
    let status = response.status();
    let mut builder = http::Response::builder().status(status);
    for (name, value) in response.headers().entries() {
        builder = builder.header(name, value);
    }
    let incoming = response.consume().map_err(|()| failed("response body unavailable"))?;
    let bytes = read_body(incoming, MAX_RESPONSE_BYTES)
        .map_err(|e| failed(format!("reading the response (HTTP {status}): {e}")))?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(failed(format!("response larger than {MAX_RESPONSE_BYTES} bytes")));
    }
    builder.body(bytes).map_err(|e| failed(format!("malformed response: {e}")))
}

/// Sends the request (body included) and waits for the answer's head.
fn start(request: http::Request<impl AsRef<[u8]>>, timeout: Duration) -> Result<IncomingResponse, NoAnswer> {
    let (parts, body) = request.into_parts();
    let origin =
        format!("{}://{}", parts.uri.scheme_str().unwrap_or("https"), parts.uri.authority().map_or("", |a| a.as_str()));
    let headers = Fields::new();
    for (name, value) in &parts.headers {
        headers.append(name.as_str(), value.as_bytes()).map_err(|e| failed(format!("header {name}: {e:?}")))?;
    }
    let outgoing = OutgoingRequest::new(headers);
    let method = match parts.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    outgoing.set_method(&method).map_err(|()| failed("method refused by host"))?;
    let scheme = match parts.uri.scheme_str() {
        Some("http") => Scheme::Http,
        _ => Scheme::Https,
    };
    outgoing.set_scheme(Some(&scheme)).map_err(|()| failed("scheme refused by host"))?;
    outgoing
        .set_authority(parts.uri.authority().map(|a| a.as_str()))
        .map_err(|()| failed("authority refused by host"))?;
    outgoing
        .set_path_with_query(parts.uri.path_and_query().map(|p| p.as_str()))
        .map_err(|()| failed("path refused by host"))?;

    let options = RequestOptions::new();
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    // Hosts may not support every timeout; an unsupported one is not an error.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    let outgoing_body = outgoing.body().map_err(|()| failed("request body unavailable"))?;
    // `handle` first: the host drains the body only once the request is under way, so writing
    // more than one stream buffer (4 KiB in wasmtime) before it would block forever.
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(|code| no_answer(&origin, code, None))?;
    let mut written = Ok(());
    let body = body.as_ref();
    if !body.is_empty() {
        let stream = outgoing_body.write().map_err(|()| failed("request body stream unavailable"))?;
        written = write_all(&stream, body).map_err(|e| format!("writing the request body: {}", stream_error(e)));
    }
    if written.is_ok() {
        OutgoingBody::finish(outgoing_body, None).map_err(|e| failed(format!("finishing the request body: {e:?}")))?;
    } else {
        // The connection stopped taking the body part-way. What happened is the response's to
        // say: the server may have answered early (a 4xx), or the host knows the transport
        // error. Only without either is the write error all there is.
        drop(outgoing_body);
    }

    future.subscribe().block();
    match (future.get(), written) {
        (Some(Ok(Ok(response))), _) => Ok(response),
        (Some(Ok(Err(code))), Ok(())) => Err(no_answer(&origin, code, None)),
        (Some(Ok(Err(code))), Err(write)) => Err(no_answer(&origin, code, Some(write))),
        (Some(Err(())) | None, Ok(())) => Err(failed("the host lost the response")),
        (Some(Err(())) | None, Err(write)) => Err(failed(write)),
    }
}

/// Reads a body to its end, or to `limit + 1` bytes (enough to know it is too large).
pub fn read_body(body: IncomingBody, limit: usize) -> Result<Vec<u8>, String> {
    let stream = body.stream().map_err(|()| "body stream unavailable".to_string())?;
    let mut bytes = Vec::new();
    loop {
        let want = (limit + 1 - bytes.len()).min(64 * 1024) as u64;
        match stream.blocking_read(want) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > limit {
                    break;
                }
            }
            Err(StreamError::Closed) => break,
            Err(e) => return Err(stream_error(e)),
        }
    }
    drop(stream);
    if bytes.len() <= limit {
        // Trailers are not used; finishing releases the body.
        let _ = IncomingBody::finish(body);
    }
    Ok(bytes)
}

/// Writes as much as the host permits per call (`check-write`; wasmtime grants 1 MiB), up to
/// [`WRITE_PIECE`], and flushes once: upload chunks are megabytes, and 4 KiB
/// `blocking-write-and-flush` calls cost a host round trip each.
///
/// Once every byte has been written, `closed` is success: wasmtime-wasi-http's outgoing body
/// closes its stream as soon as the connection has taken `Content-Length` bytes (hyper drops
/// the body then), which can happen before the flush or the final check. A body that really
/// did not arrive shows in the response instead (a transport error, or the server's answer).
fn write_all(stream: &OutputStream, mut data: &[u8]) -> Result<(), StreamError> {
    while !data.is_empty() {
        let permit = stream.check_write()?;
        if permit == 0 {
            stream.subscribe().block();
            continue;
        }
        let n = usize::try_from(permit).unwrap_or(usize::MAX).min(data.len()).min(WRITE_PIECE);
        stream.write(&data[..n])?;
        data = &data[n..];
    }
    let delivered = |result: Result<(), StreamError>| match result {
        Err(StreamError::Closed) => Ok(()),
        other => other,
    };
    delivered(stream.flush())?;
    stream.subscribe().block();
    // Surfaces an error of the flush itself.
    delivered(stream.check_write().map(|_| ()))
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "stream closed".to_string(),
        StreamError::LastOperationFailed(err) => err.to_debug_string(),
    }
}
