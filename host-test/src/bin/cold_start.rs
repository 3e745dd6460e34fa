//! Cold-start figure (c) of `bench/cold_start.py` (run by `cargo xtask bench`; not a test):
//! the component in the harness, already compiled, linked and pre-instantiated (`ProxyPre`, built
//! once per process), from `Harness::handle(request)` to the component's **first outbound call**.
//!
//! `cold_start [--runs N] [--warm M]` handles N × (1 + M) Cloud Functions-style events
//! (`fixtures/events/legacy-background.json`), each on a fresh `Store` and instance as every
//! harness call is, with `GCR_USAGE_AUTH=metadata`: the first outbound call is the metadata-server
//! token request, as for the other hosts of the benchmark. The first event of each group of 1 + M
//! is reported as "first", the others as "warm" (in the harness they differ only by what the CPU
//! caches still hold). It prints one JSON object on stdout (microseconds):
//! `{"prepare_us", "first_us": [...], "warm_us": [...], "total_us": [...], "check_us"}`.
//!
//! `prepare_us`: compile (or load `target/host-test-cache/`) + link + `ProxyPre` + one `GET /healthz`.
//! `check_us`: what `Harness::handle`'s paused-clock check (a 50 µs thread sleep) costs here; it
//! is inside every sample. Fuel metering is on in the harness engine (`wasmtime serve` has none).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gcr_usage_host_test::google::{self, metadata_token, metadata_token_rule};
use gcr_usage_host_test::{FakeUpstream, Harness, Reply, TestRequest, block_on, guest_wasm, workspace_root};
use serde_json::{Value, json};

const ENV: [(&str, &str); 5] = [
    ("GCR_USAGE_PROJECT", "demo-project"),
    ("GCR_USAGE_BUCKETS", "demo-gcr-logs"),
    ("GCR_USAGE_AUTH", "metadata"),
    ("GCR_USAGE_WAIT_SECONDS", "30"),
    ("GCR_USAGE_LOCATION", "US"),
];

type Stamp = Arc<Mutex<Option<Instant>>>;

fn main() {
    let (runs, warm) = args();
    let wasm = guest_wasm();
    let event = std::fs::read(workspace_root().join("fixtures/events/legacy-background.json")).expect("fixture event");
    let request = TestRequest::post("/", event).header("content-type", "application/json");

    let started = Instant::now();
    let health = block_on(harness(FakeUpstream::new()).handle(TestRequest::get("/healthz"))).expect("GET /healthz");
    assert_eq!(health.status, 200, "{}", String::from_utf8_lossy(&health.body));
    let prepare = started.elapsed();

    // One runtime for the whole run, so that creating it stays out of the samples.
    let (first, warm_samples, total) = block_on(async {
        let (mut first, mut warm_samples, mut total) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            for i in 0..=warm {
                let stamp: Stamp = Arc::default();
                let h = harness(upstream(&stamp));
                let request = request.clone();
                let sent = Instant::now();
                let response = h.handle(request).await.expect("event");
                let done = sent.elapsed();
                assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
                let at = stamp.lock().unwrap().expect("the component made no outbound call");
                if i == 0 { &mut first } else { &mut warm_samples }.push(micros(at.duration_since(sent)));
                total.push(micros(done));
            }
        }
        (first, warm_samples, total)
    });
    let out = json!({
        "wasm": wasm.display().to_string(),
        "prepare_us": micros(prepare),
        "first_us": first,
        "warm_us": warm_samples,
        "total_us": total,
        "check_us": micros(paused_check_cost()),
    });
    println!("{out}");
}

fn args() -> (usize, usize) {
    let (mut runs, mut warm) = (10, 5);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok());
        match (flag.as_str(), value) {
            ("--runs", Some(n)) => runs = n,
            ("--warm", Some(n)) => warm = n,
            _ => panic!("usage: cold_start [--runs N] [--warm M]"),
        }
    }
    (runs, warm)
}

fn harness(upstream: FakeUpstream) -> Harness {
    ENV.iter().fold(Harness::new(), |h, (k, v)| h.env(k, v)).upstream(upstream)
}

/// Metadata token and jobs.insert (DONE), each stamping the real time of the first request seen.
fn upstream(stamp: &Stamp) -> FakeUpstream {
    let stamped = |stamp: &Stamp, reply: fn(&gcr_usage_host_test::RecordedRequest) -> Reply| {
        let stamp = stamp.clone();
        Reply::dynamic(move |r| {
            stamp.lock().unwrap().get_or_insert_with(Instant::now);
            reply(r)
        })
    };
    let up = FakeUpstream::new();
    up.route(metadata_token_rule().reply(stamped(stamp, |_| metadata_token("bench-token")))).route(
        google::jobs_insert_rule("demo-project").reply(stamped(stamp, |r| google::job_done(&google::job_of(r), 14))),
    );
    up
}

fn micros(d: Duration) -> Value {
    json!((d.as_secs_f64() * 1e6 * 10.0).round() / 10.0)
}

/// Median cost of the 50 µs thread sleep `Harness::handle` performs before instantiating.
fn paused_check_cost() -> Duration {
    let mut samples: Vec<Duration> = (0..100)
        .map(|_| {
            let t = Instant::now();
            std::thread::sleep(Duration::from_micros(50));
            t.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}
