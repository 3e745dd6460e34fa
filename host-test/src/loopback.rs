//! The shared fake of Google served over real HTTP/1.1 on `127.0.0.1`, for runs of the
//! component under a real host (`wasmtime serve`) where the harness's in-process upstream does
//! not reach: the `serve_bench` benchmark.
//!
//! Only the transport lives here; every answer is [`gcr_usage_fake_google::Google`]'s. It is
//! made to cost little next to the component: a thread per connection, bodies read with one
//! copy into memory, answers written with one `write_all`, keep-alive. Bodies come with
//! `Content-Length` or chunked, as wasmtime's outgoing HTTP sends them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use gcr_usage_fake_google::{Exchange, Google};

/// Longest request head accepted (request line and headers).
const MAX_HEAD: usize = 64 << 10;

/// A running loopback server; it serves until the process ends.
pub struct LoopbackGoogle {
    addr: SocketAddr,
    google: Arc<Mutex<Google>>,
}

impl LoopbackGoogle {
    /// Binds an ephemeral loopback port and serves `google` from a background thread.
    pub fn start(google: Google) -> std::io::Result<LoopbackGoogle> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let google = Arc::new(Mutex::new(google));
        let shared = google.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let google = shared.clone();
                std::thread::spawn(move || serve_connection(stream, &google));
            }
        });
        Ok(LoopbackGoogle { addr, google })
    }

    /// `http://127.0.0.1:PORT`: the endpoint to configure for Storage and BigQuery alike.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fake's state, to inspect what was uploaded or created.
    pub fn with<T>(&self, f: impl FnOnce(&mut Google) -> T) -> T {
        f(&mut self.google.lock().expect("fake Google state poisoned"))
    }
}

/// Requests on one keep-alive connection until the client closes it (or sends nonsense).
fn serve_connection(stream: TcpStream, google: &Mutex<Google>) {
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::with_capacity(256 << 10, stream);
    while let Ok(Some(request)) = read_request(&mut reader) {
        let exchange = google.lock().map(|mut g| g.answer(&request));
        match exchange {
            Ok(Exchange::Answered(response)) => {
                let length = response.body().len();
                if write_response(&mut writer, &response, length).is_err() {
                    return;
                }
            }
            // The head promises the whole body; the connection closes after what it holds.
            Ok(Exchange::BrokenOff(response)) => {
                let promised = response.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
                let promised = promised.and_then(|v| v.parse().ok()).unwrap_or(usize::MAX);
                let _ = write_response(&mut writer, &response, promised);
                let _ = writer.shutdown(std::net::Shutdown::Both);
                return;
            }
            Ok(Exchange::Lost(_)) | Err(_) => return, // a lost answer: hang up
        }
    }
}

/// One request, its body whole; `Ok(None)` when the client closed the connection between requests.
fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<http::Request<Vec<u8>>>> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if reader.read_until(b'\n', &mut head)? == 0 {
            return if head.is_empty() { Ok(None) } else { Err(invalid("connection closed mid-request")) };
        }
        if head.len() > MAX_HEAD {
            return Err(invalid("request head too long"));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    parsed.parse(&head).map_err(|e| invalid(&format!("bad request head: {e}")))?;
    let host = parsed.headers.iter().find(|h| h.name.eq_ignore_ascii_case("host")).map(|h| h.value);
    let host = std::str::from_utf8(host.unwrap_or(b"127.0.0.1")).map_err(|_| invalid("host is not UTF-8"))?;
    // The fake builds absolute URLs (a resumable session's Location) from the request's own.
    let uri = format!("http://{host}{}", parsed.path.unwrap_or("/"));
    let mut builder = http::Request::builder().method(parsed.method.unwrap_or("GET")).uri(uri);
    let (mut length, mut chunked) = (0usize, false);
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
        }
        builder = builder.header(h.name, h.value);
    }
    let body = if chunked { read_chunked(reader)? } else { read_exact_vec(reader, length)? };
    builder.body(body).map(Some).map_err(|e| invalid(&format!("bad request: {e}")))
}

fn read_exact_vec(reader: &mut impl Read, length: usize) -> std::io::Result<Vec<u8>> {
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(body)
}

/// A chunked body (RFC 9112 §7.1): hex size lines, data, an empty last chunk, no trailers kept.
fn read_chunked(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, if any, up to the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// The head, saying `content-length: length`, and the body.
fn write_response(
    writer: &mut TcpStream,
    response: &http::Response<bytes::Bytes>,
    length: usize,
) -> std::io::Result<()> {
    let status = response.status();
    let mut head = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    for (name, value) in response.headers() {
        if name != http::header::CONTENT_LENGTH {
            head.push_str(&format!("{name}: {}\r\n", String::from_utf8_lossy(value.as_bytes())));
        }
    }
    head.push_str(&format!("content-length: {length}\r\n\r\n"));
    writer.write_all(head.as_bytes())?;
    writer.write_all(response.body())
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

#[cfg(test)]
mod tests {
    use gcr_usage_fake_google::{Endpoint, Fault};

    use super::*;

    /// One GET: the head, and the body bytes that came before the promised length or the
    /// connection's end, whichever was first (the fake keeps connections alive).
    fn get(url: &str, target: &str) -> (String, Vec<u8>) {
        let authority = url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(authority).unwrap();
        stream.write_all(format!("GET {target} HTTP/1.1\r\nhost: {authority}\r\n\r\n").as_bytes()).unwrap();
        let (mut answer, mut piece) = (Vec::new(), [0; 4096]);
        loop {
            if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n").map(|at| at + 4) {
                let head = String::from_utf8_lossy(&answer[..at]).to_lowercase();
                let length: usize = head
                    .split("content-length: ")
                    .nth(1)
                    .and_then(|v| v.split("\r\n").next()?.parse().ok())
                    .expect("a length");
                if answer.len() - at >= length {
                    return (head, answer[at..].to_vec());
                }
            }
            match stream.read(&mut piece) {
                Ok(0) | Err(_) => break, // the connection ended (a reset may end the read with an error)
                Ok(n) => answer.extend_from_slice(&piece[..n]),
            }
        }
        let at = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
        (String::from_utf8_lossy(&answer[..at]).to_lowercase(), answer[at..].to_vec())
    }

    #[test]
    fn a_body_broken_off_promises_the_whole_object_and_sends_its_first_bytes() {
        let mut google = Google::new();
        google.object("b", "log", 1, b"0123456789".to_vec());
        google.fault(Endpoint::Download, Fault::BodyBreaksAfter(4));
        let fake = LoopbackGoogle::start(google).unwrap();
        let target = "/download/storage/v1/b/b/o/log?alt=media";
        let (head, body) = get(&fake.url(), target);
        assert!(head.contains("content-length: 10\r\n"), "{head}");
        assert_eq!(body, b"0123");
        let (head, body) = get(&fake.url(), target);
        assert!(head.contains("content-length: 10\r\n"), "{head}");
        assert_eq!(body, b"0123456789", "one break only");
    }
}
