//! The component under a real `wasmtime serve` (path (f) of `classify_bench`, and
//! `examples/serve_ab.rs`): `deploy/serve.sh` on the component
//! precompiled by `serve.sh --compile`, exactly as the container runs it, with Storage and
//! BigQuery served by the shared fake over loopback HTTP ([`LoopbackGoogle`]).
//!
//! One server process for all runs; each run posts one event (the bare object resource) naming
//! a fresh copy of the log (its own name), so each is a whole classified load: metadata,
//! download, CRC32C, reader, classifier, NDJSON, resumable upload in 4 MiB chunks, job. The
//! time is from the request written to the answer read; wasmtime's own CPU time over the same
//! span (`/proc/PID/stat`) says how much of it was the host and the component, not the fake.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gcr_usage_fake_google::Google;
use serde_json::Value;

use crate::bench_support::target_dir;
use crate::child_usage::{cpu_seconds_of, minor_faults_of, peak_rss_kib_of};
use crate::loopback::LoopbackGoogle;
use crate::workspace_root;

const BUCKET: &str = "demo-gcr-logs";

/// What the real host did over the runs.
pub struct Serve {
    /// Wall seconds per run, from the event sent to the answer read.
    pub seconds: Vec<f64>,
    /// Events each run loaded.
    pub rows: u64,
    /// wasmtime's CPU seconds per run (user + system, every thread).
    pub cpu_seconds: Vec<f64>,
    /// wasmtime's minor page faults per run: fresh memory it touched (the kernel zeroes each
    /// page), which the host's allocations for the component's reads and writes cost.
    pub minor_faults: Vec<u64>,
    /// wasmtime's peak RSS after the runs, KiB.
    pub max_rss_kib: u64,
    pub wasmtime: String,
}

/// Runs (f); `Err` says why it could not (no wasmtime, a failed compile, a refused load).
pub fn serve_figures(
    wasm: &Path,
    log: &Bytes,
    name_of: impl Fn(usize) -> String,
    runs: usize,
) -> Result<Serve, String> {
    let wasmtime = std::env::var("WASMTIME").unwrap_or_else(|_| "wasmtime".into());
    let version = Command::new(&wasmtime)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {wasmtime}: {e} (set WASMTIME, or `cargo xtask bench` installs it)"))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let serve_sh = workspace_root().join("deploy").join("serve.sh");
    // A component compiled already (`serve_ab` comparing compile settings) runs as it is.
    let cwasm = if wasm.extension().is_some_and(|e| e == "cwasm") {
        wasm.to_path_buf()
    } else {
        let cwasm = target_dir().join("classify-bench").join("gcr_usage_loader.cwasm");
        let compiled = Command::new("bash")
            .arg(&serve_sh)
            .args(["--compile".as_ref(), wasm.as_os_str(), cwasm.as_os_str()])
            .env("WASMTIME", &wasmtime)
            .output()
            .map_err(|e| format!("serve.sh --compile: {e}"))?;
        if !compiled.status.success() {
            return Err(format!("serve.sh --compile failed: {}", String::from_utf8_lossy(&compiled.stderr)));
        }
        cwasm
    };

    let mut google = Google::new();
    // The uploads are counted, not kept: holding and copying ~400 MB of NDJSON a run made the
    // fake, not the component, a large part of the wall time.
    google.count_uploads_only();
    for run in 0..runs {
        google.object(BUCKET, &name_of(run), 1, log.clone());
    }
    let fake = LoopbackGoogle::start(google).map_err(|e| format!("the loopback fake: {e}"))?;
    let port = free_port()?;
    let mut server = Command::new("bash")
        .arg(&serve_sh)
        .arg(&cwasm)
        .env("WASMTIME", &wasmtime)
        .env("PORT", port.to_string())
        .env("GCR_USAGE_PROJECT", "demo-project")
        .env("GCR_USAGE_BUCKETS", BUCKET)
        .env("GCR_USAGE_AUTH", "none")
        .env("GCR_USAGE_MODE", "classified")
        .env("GCR_USAGE_WAIT_SECONDS", "3600")
        .env("GCR_USAGE_STORAGE_ENDPOINT", fake.url())
        .env("GCR_USAGE_BIGQUERY_ENDPOINT", fake.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting serve.sh: {e}"))?;
    let result = measure(&mut server, port, runs, &name_of, log.len());
    let _ = server.kill();
    let _ = server.wait();
    Ok(Serve { wasmtime: version, ..result? })
}

fn measure(
    server: &mut Child,
    port: u16,
    runs: usize,
    name_of: &impl Fn(usize) -> String,
    size: usize,
) -> Result<Serve, String> {
    // serve.sh `exec`s wasmtime, so the child's pid is wasmtime's.
    let pid = server.id();
    wait_listening(server, port)?;
    // An event for a bucket outside the allow-list: the instance is made, nothing is loaded.
    post(port, &object("not-allowed-bucket", &name_of(0), size))?;
    let (mut seconds, mut cpu, mut faults, mut rows) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for run in 0..runs {
        let cpu_before = cpu_seconds_of(pid).ok_or("no /proc/PID/stat for wasmtime")?;
        let faults_before = minor_faults_of(pid).unwrap_or(0);
        let started = Instant::now();
        let (status, answer) = post(port, &object(BUCKET, &name_of(run), size))?;
        seconds.push(started.elapsed().as_secs_f64());
        cpu.push(cpu_seconds_of(pid).ok_or("no /proc/PID/stat for wasmtime")? - cpu_before);
        faults.push(minor_faults_of(pid).unwrap_or(0).saturating_sub(faults_before));
        if status != 200 {
            return Err(format!("the load answered {status}: {answer}"));
        }
        rows = events_in(&answer).ok_or_else(|| format!("no event count in the answer: {answer}"))?;
    }
    let rss = peak_rss_kib_of(pid).unwrap_or(0);
    Ok(Serve { seconds, rows, cpu_seconds: cpu, minor_faults: faults, max_rss_kib: rss, wasmtime: String::new() })
}

/// The bare object resource, the simplest event shape the loader takes.
fn object(bucket: &str, name: &str, size: usize) -> String {
    serde_json::json!({"kind": "storage#object", "bucket": bucket, "name": name, "generation": "1",
                       "size": size.to_string()})
    .to_string()
}

/// The classified load's event count, wherever the answer carries it.
fn events_in(answer: &str) -> Option<u64> {
    fn find(v: &Value) -> Option<u64> {
        match v {
            Value::Object(map) => map
                .get("counts")
                .and_then(|c| c.get("events"))
                .and_then(Value::as_u64)
                .or_else(|| map.values().find_map(find)),
            Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    find(&serde_json::from_str(answer).ok()?)
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Until wasmtime accepts connections (it compiles nothing: the component is precompiled).
fn wait_listening(server: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.try_wait() {
            return Err(format!("wasmtime serve exited at start ({status})"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("wasmtime serve did not listen within 60 s".into())
}

/// One POST on its own connection; the answer's status and body.
fn post(port: u16, body: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connecting: {e}"))?;
    let request = format!(
        "POST / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| format!("sending the event: {e}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| format!("reading the answer: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("an answer without a head")?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("an answer without a status")?;
    Ok((status, dechunk(head, body)))
}

/// wasmtime serve answers chunked when the component streams its body.
fn dechunk(head: &str, body: &str) -> String {
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        return body.to_string();
    }
    let (mut out, mut rest) = (String::new(), body);
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}
