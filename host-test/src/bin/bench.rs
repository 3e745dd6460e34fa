//! `cargo xtask bench` (= `cargo run --release -p gcr-usage-host-test --bin bench` with
//! `GCR_USAGE_WASM` set): what one event costs the loader component, and the same event handled
//! natively by `gcr_usage_core::service::handle` as a baseline.
//!
//! For each path (loaded, duplicate, ignored, 400) it measures, with canned upstream answers:
//! - wall time of one harness call = fresh `Store` + instantiation + `incoming-handler.handle`
//!   + collecting the answer (what a per-request host such as `wasmtime serve` pays),
//! - fuel per event (deterministic: a regression bar that does not depend on the machine),
//! - the native core on the same event: config from a map, `service::handle` with a scripted
//!   in-process `Io`, answer body and log line rendered.
//!
//! Virtual time (the harness's paused tokio clock) does not affect `std::time::Instant`, so the
//! wall times below are real. This is a report, not a test: nothing here asserts on timings.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use gcr_usage_core::service::{self, Io, Request};
use gcr_usage_core::session::Reply as CoreReply;
use gcr_usage_host_test::google::{self, JobRef};
use gcr_usage_host_test::{
    FakeUpstream, Harness, TestRequest, block_on, group_digits as group, guest_wasm, workspace_root,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

const WARM_UP: usize = 30;
const N: usize = 300;
const ROWS: u64 = 1184;

const ENV: [(&str, &str); 4] = [
    ("GCR_USAGE_PROJECT", "demo-project"),
    ("GCR_USAGE_BUCKETS", "demo-gcr-logs"),
    ("GCR_USAGE_AUTH", "none"),
    ("GCR_USAGE_WAIT_SECONDS", "30"),
];

/// One benchmarked path: the incoming event, the canned upstream for the component, the same
/// answers for the native core, and the status both must give.
struct Case {
    name: &'static str,
    request: TestRequest,
    upstream: fn() -> FakeUpstream,
    native_replies: Vec<(u16, Vec<u8>)>,
    status: u16,
}

fn main() {
    let wasm = guest_wasm();
    let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));
    let cases = cases();

    // First call: compiles the component or loads the cached artifact, then runs one event.
    let first = Instant::now();
    block_on(async { harness((cases[0].upstream)()).handle(cases[0].request.clone()).await.expect("first call") });
    let first = first.elapsed();

    let mut rows = Vec::new();
    for case in &cases {
        let (component, fuel) = block_on(time_component(case));
        let native = time_native(case);
        rows.push((case, component, fuel, native));
    }
    let check = paused_check_cost();

    println!();
    println!("gcr-usage loader benchmark");
    println!("  component  {} ({} bytes, {:.1} KiB)", wasm.display(), size, size as f64 / 1024.0);
    println!("  runtime    wasmtime 48.0.8, Cranelift, fuel metering on; fresh Store + instance per event");
    println!("  samples    N = {N} per path after {WARM_UP} warm-up runs; canned upstream (insert -> DONE)");
    println!("  first call {} (compile or load the cached artifact + one event)", fmt(first));
    println!();
    println!("Component: instantiate + handle, wall time per event");
    println!(
        "  {:<10} {:>6} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "path", "status", "fuel/event", "median", "p90", "p99", "min", "max"
    );
    for (case, s, fuel, _) in &rows {
        println!(
            "  {:<10} {:>6} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
            case.name,
            case.status,
            group(*fuel),
            fmt(s.median),
            fmt(s.p90),
            fmt(s.p99),
            fmt(s.min),
            fmt(s.max)
        );
    }
    println!();
    println!("Native core (service::handle, scripted in-process Io), wall time per event");
    println!(
        "  {:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "path", "status", "median", "p90", "p99", "min", "max"
    );
    for (case, _, _, n) in &rows {
        println!(
            "  {:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
            case.name,
            case.status,
            fmt(n.median),
            fmt(n.p90),
            fmt(n.p99),
            fmt(n.min),
            fmt(n.max)
        );
    }
    println!();
    println!("Component vs native (median)");
    for (case, s, _, n) in &rows {
        let native = n.median.as_secs_f64().max(1e-9);
        let ratio = s.median.as_secs_f64() / native;
        let net = s.median.saturating_sub(check);
        println!(
            "  {:<10} component is {ratio:>5.0}x the native core ({} vs {}); {:>4.0}x without the harness's {} paused-clock check",
            case.name,
            fmt(s.median),
            fmt(n.median),
            net.as_secs_f64() / native,
            fmt(check)
        );
    }
    println!();
    println!(
        "Notes: each component sample also includes the fake upstream (request recording, JSON echo of the job).\n       \
         The paused-clock check is a {} thread sleep inside Harness::handle (median {} on this machine).",
        fmt(Duration::from_micros(50)),
        fmt(check)
    );
}

fn harness(upstream: FakeUpstream) -> Harness {
    ENV.iter().fold(Harness::new(), |h, (k, v)| h.env(k, v)).upstream(upstream)
}

async fn time_component(case: &Case) -> (Stats, u64) {
    let mut samples = Vec::with_capacity(N);
    let mut fuel = None;
    for i in 0..WARM_UP + N {
        // A fresh harness per event keeps the upstream log (and its cloning) out of the timing.
        let h = harness((case.upstream)());
        let request = case.request.clone();
        let started = Instant::now();
        let response = h.handle(request).await;
        let took = started.elapsed();
        let response = response.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(response.status, case.status, "{}: {}", case.name, response.body_str());
        match fuel {
            None => fuel = Some(response.run.fuel_consumed),
            Some(f) => assert_eq!(f, response.run.fuel_consumed, "{}: fuel is deterministic", case.name),
        }
        if i >= WARM_UP {
            samples.push(took);
        }
    }
    (Stats::of(samples), fuel.unwrap_or_default())
}

fn time_native(case: &Case) -> Stats {
    let mut headers = HeaderMap::new();
    for (k, v) in &case.request.headers {
        headers.append(HeaderName::try_from(k.as_str()).unwrap(), HeaderValue::try_from(v.as_str()).unwrap());
    }
    let method = case.request.method.as_str();
    let mut samples = Vec::with_capacity(N);
    for i in 0..WARM_UP + N {
        let mut io = ScriptedIo { replies: case.native_replies.iter().cloned().collect(), now_ms: 0 };
        let started = Instant::now();
        let config =
            gcr_usage_core::Config::from_env(|k| ENV.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
        let request =
            Request { method, path_and_query: &case.request.path, headers: &headers, body: &case.request.body };
        let handled = service::handle(&request, config, &mut io, &mut Default::default());
        let body = handled.answer.body_bytes();
        let mut extra = vec![("durationMs", Value::from(0))];
        if let Some(shape) = handled.shape {
            extra.push(("eventShape", shape.as_str().into()));
        }
        let line = handled.answer.log_line(&extra);
        let took = started.elapsed();
        std::hint::black_box((body, line));
        assert_eq!(handled.answer.status, case.status, "native {}: {}", case.name, handled.answer.body);
        assert!(io.replies.is_empty(), "native {}: unused replies", case.name);
        if i >= WARM_UP {
            samples.push(took);
        }
    }
    Stats::of(samples)
}

/// The core's `Io` with canned answers, no clock and no randomness worth the name.
struct ScriptedIo {
    replies: VecDeque<(u16, Vec<u8>)>,
    now_ms: u64,
}

impl Io for ScriptedIo {
    fn send(&mut self, request: http::Request<Vec<u8>>, _timeout: Duration) -> CoreReply {
        let (status, body) = self.replies.pop_front().unwrap_or_else(|| panic!("unscripted {}", request.uri()));
        let response = http::Response::builder()
            .status(status)
            .header("content-type", "application/json; charset=UTF-8")
            .body(body)
            .expect("canned response");
        CoreReply::Response(response)
    }

    fn sleep(&mut self, duration: Duration) {
        self.now_ms += u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    }

    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }

    fn unix_secs(&mut self) -> u64 {
        1_767_225_600
    }

    fn random_u64(&mut self) -> u64 {
        0x5eed
    }
}

fn cases() -> Vec<Case> {
    let path = workspace_root().join("fixtures/events/cloudevent-binary.json");
    let fixture: Value = serde_json::from_slice(&std::fs::read(&path).expect("fixture event")).expect("fixture JSON");
    let binary = |body: &Value| {
        let mut r = TestRequest::post("/", body.to_string());
        for (k, v) in fixture["headers"].as_object().expect("headers") {
            r = r.header(k, v.as_str().expect("header value"));
        }
        r
    };
    let mut not_a_log = fixture["body"].clone();
    not_a_log["name"] = "usage-report.csv".into();
    let job = JobRef::new("demo-project", "gcr_usage_bench", Some("US"));
    let done = google::job_resource(&job, "DONE", Some(ROWS), None).to_string().into_bytes();
    let duplicate = serde_json::json!({"error": {"code": 409, "message": "Already Exists: Job demo-project:US.gcr_usage_bench",
        "errors": [{"message": "Already Exists: Job demo-project:US.gcr_usage_bench", "domain": "global", "reason": "duplicate"}],
        "status": "ALREADY_EXISTS"}})
    .to_string()
    .into_bytes();
    vec![
        Case {
            name: "loaded",
            request: binary(&fixture["body"]),
            upstream: || {
                let up = FakeUpstream::new();
                up.route(google::jobs_insert_rule("demo-project").reply(google::job_done_echo(ROWS)));
                up
            },
            native_replies: vec![(200, done.clone())],
            status: 200,
        },
        Case {
            name: "duplicate",
            request: binary(&fixture["body"]),
            upstream: || {
                let up = FakeUpstream::new();
                up.route(google::jobs_insert_rule("demo-project").reply(google::duplicate_job_echo()))
                    .route(google::jobs_get_rule("demo-project").reply(google::job_done_echo(ROWS)));
                up
            },
            native_replies: vec![(409, duplicate), (200, done)],
            status: 200,
        },
        Case {
            name: "ignored",
            request: binary(&not_a_log),
            upstream: FakeUpstream::new,
            native_replies: Vec::new(),
            status: 200,
        },
        Case {
            name: "400",
            request: TestRequest::post("/", "{\"bucket\": ").header("content-type", "application/json"),
            upstream: FakeUpstream::new,
            native_replies: Vec::new(),
            status: 400,
        },
    ]
}

struct Stats {
    median: Duration,
    p90: Duration,
    p99: Duration,
    min: Duration,
    max: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        // Nearest-rank percentiles.
        let rank = |p: f64| samples[((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
        Stats { median: rank(0.5), p90: rank(0.9), p99: rank(0.99), min: samples[0], max: samples[samples.len() - 1] }
    }
}

/// What the harness's per-call "is tokio time paused?" check costs (a 50 µs thread sleep).
fn paused_check_cost() -> Duration {
    let samples = (0..100)
        .map(|_| {
            let t = Instant::now();
            std::thread::sleep(Duration::from_micros(50));
            t.elapsed()
        })
        .collect();
    Stats::of(samples).median
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 { format!("{us:.1} µs") } else { format!("{:.3} ms", us / 1000.0) }
}
