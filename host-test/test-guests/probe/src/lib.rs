//! Probe guest for the harness self-tests. Each incoming path exercises one host facility and
//! reports what the guest observed in the response body, so tests assert on the guest's view.
//!
//! - `GET /env`                 → `K=V` lines, every variable the guest sees
//! - `GET /sleep?ms=N`          → `mono_before mono_after wall_before wall_after` (ns / s)
//! - `POST /fetch` body=`URL`   → outbound request to URL; answers `status\nbody` or
//!   `error:<ErrorCode>`. Headers: `x-method` (GET, default POST), `x-out-body` (default
//!   `probe-body`), `x-out-body-len` (send that many `x` instead), `x-body-first` (write the
//!   body in 4 KiB chunks *before* calling `handle`, as the loader does),
//!   `x-first-byte-timeout-ms` (request option).
//! - `GET /print`               → writes lines to stdout and stderr
//! - `GET /random`              → 8 secure + 8 insecure random bytes, hex
//! - `GET /trap`                → traps (`unreachable`)
//! - `GET /spin?n=N`            → burns fuel in a loop
//!
//! The typed `load` export sleeps 1 s, GETs the metadata token URL and maps the answer to an
//! `outcome`, which is enough to prove the harness's typed call path.

use std::io::{Read as _, Write as _};

use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse, RequestOptions, ResponseOutparam,
    Scheme,
};

wit_bindgen::generate!({
    world: "loader-guest",
    path: "../../../wit",
    generate_all,
});

use exports::gcr_usage::loader::loader::{Guest as LoaderGuest, LoadError, ObjectRef, Outcome, OutcomeKind};

struct Probe;

wasip2::http::proxy::export!(Probe);
export!(Probe);

impl LoaderGuest for Probe {
    fn load(object: ObjectRef) -> Result<Outcome, LoadError> {
        println!("{{\"event\":\"load\",\"bucket\":\"{}\"}}", object.bucket);
        monotonic_clock::subscribe_duration(1_000_000_000).block();
        let url = "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";
        match fetch("GET", url, b"", None, false) {
            Ok((status, body)) if status == 200 => Ok(Outcome {
                kind: OutcomeKind::Loaded,
                object,
                log_kind: Some("usage".into()),
                destination: None,
                job_id: None,
                rows: Some(body.len() as u64),
                reason: None,
                counts: None,
                retries: None,
                events: None,
            }),
            Ok((status, _)) => Err(LoadError::UpstreamRejected(format!("status {status}"))),
            Err(e) => Err(LoadError::UpstreamUnavailable(e)),
        }
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Probe {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let pq = request.path_with_query().unwrap_or_default();
        let (path, query) = pq.split_once('?').unwrap_or((&pq, ""));
        let body = match path {
            "/env" => std::env::vars().map(|(k, v)| format!("{k}={v}\n")).collect(),
            "/sleep" => {
                let ms: u64 = param(query, "ms").unwrap_or(0);
                let (m0, w0) = (monotonic_clock::now(), wall_clock::now());
                monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                let (m1, w1) = (monotonic_clock::now(), wall_clock::now());
                format!("{m0} {m1} {} {}", w0.seconds, w1.seconds)
            }
            "/fetch" => {
                let url = String::from_utf8(read_body(&request)).unwrap();
                let timeout = header(&request, "x-first-byte-timeout-ms").and_then(|v| v.parse::<u64>().ok());
                let method = header(&request, "x-method").unwrap_or_else(|| "POST".into());
                let mut out_body = header(&request, "x-out-body").unwrap_or_else(|| "probe-body".into());
                if let Some(n) = header(&request, "x-out-body-len").and_then(|v| v.parse().ok()) {
                    out_body = "x".repeat(n);
                }
                let body_first = header(&request, "x-body-first").is_some();
                match fetch(&method, &url, out_body.as_bytes(), timeout, body_first) {
                    Ok((status, body)) => format!("{status}\n{}", String::from_utf8_lossy(&body)),
                    Err(e) => format!("error:{e}"),
                }
            }
            "/print" => {
                println!("{{\"event\":\"hello\",\"n\":1}}");
                println!("{{\"event\":\"hello\",\"n\":2}}");
                eprintln!("to stderr");
                "printed".into()
            }
            "/random" => {
                let s = wasip2::random::random::get_random_bytes(8);
                let i = wasip2::random::insecure::get_insecure_random_bytes(8);
                format!("{} {}", hex(&s), hex(&i))
            }
            "/trap" => core::arch::wasm32::unreachable(),
            // Requests this instance has served: 1 on a fresh instance, more on a reused one.
            "/count" => {
                static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                format!("{}", SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
            }
            "/spin" => {
                let n: u64 = param(query, "n").unwrap_or(1000);
                let mut x = 0u64;
                for i in 0..n {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                format!("{x}")
            }
            _ => "unknown".into(),
        };
        respond(out, 200, body.as_bytes());
    }
}

fn param(query: &str, key: &str) -> Option<u64> {
    query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).and_then(|(_, v)| v.parse().ok())
}

fn header(request: &IncomingRequest, name: &str) -> Option<String> {
    let values = request.headers().get(name);
    values.first().map(|v| String::from_utf8_lossy(v).into_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let body = request.consume().unwrap();
    let mut buf = Vec::new();
    body.stream().unwrap().read_to_end(&mut buf).unwrap();
    buf
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())]).unwrap();
    let resp = OutgoingResponse::new(headers);
    resp.set_status_code(status).unwrap();
    let outgoing = resp.body().unwrap();
    ResponseOutparam::set(out, Ok(resp));
    {
        let mut stream = outgoing.write().unwrap();
        stream.write_all(body).unwrap();
        stream.flush().unwrap();
    }
    OutgoingBody::finish(outgoing, None).unwrap();
}

/// One outbound request the way a real client does it: headers, streamed body, then wait on
/// the response future (which the host resolves from its fake upstream).
fn fetch(
    method: &str,
    url: &str,
    body: &[u8],
    first_byte_timeout_ms: Option<u64>,
    body_first: bool,
) -> Result<(u16, Vec<u8>), String> {
    let (scheme, rest) = url.split_once("://").ok_or("bad url")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let headers =
        Fields::from_list(&[("content-type".into(), b"application/json".to_vec()), ("x-probe".into(), b"1".to_vec())])
            .unwrap();
    let req = OutgoingRequest::new(headers);
    req.set_method(&match method {
        "POST" => Method::Post,
        _ => Method::Get,
    })
    .unwrap();
    req.set_scheme(Some(&match scheme {
        "http" => Scheme::Http,
        _ => Scheme::Https,
    }))
    .unwrap();
    req.set_authority(Some(authority)).unwrap();
    req.set_path_with_query(Some(path)).unwrap();
    let outgoing = req.body().unwrap();
    let options = first_byte_timeout_ms.map(|ms| {
        let o = RequestOptions::new();
        o.set_first_byte_timeout(Some(ms * 1_000_000)).unwrap();
        o
    });
    let write_body = || {
        if method == "POST" {
            let stream = outgoing.write().unwrap();
            for chunk in body.chunks(4096) {
                stream.blocking_write_and_flush(chunk).unwrap();
            }
        }
    };
    if body_first {
        write_body();
    }
    let future = outgoing_handler::handle(req, options).map_err(|e| format!("{e:?}"))?;
    if !body_first {
        write_body();
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        match future.get() {
            Some(result) => break result.unwrap().map_err(|e| format!("{e:?}"))?,
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let mut buf = Vec::new();
    let incoming = response.consume().unwrap();
    incoming.stream().unwrap().read_to_end(&mut buf).map_err(|e| e.to_string())?;
    Ok((status, buf))
}
