//! The component's classified load alone, for iterating on its speed: `cargo run --release -p
//! gcr-usage-host-test --example component_pass -- LOG [RUNS]` loads LOG (a usage log) through
//! the component in the harness (path (e) of `classify_bench`) and prints, per run, MB/s and
//! the fuel it consumed — wasm instructions executed, a figure that does not move with the
//! machine's noise (it does not see what host calls such as `memory.copy` cost, though).

use std::time::Instant;

use gcr_usage_host_test::{FakeGoogle, FakeUpstream, Harness, block_on, object_ref};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(log) = args.next() else {
        eprintln!("usage: component_pass LOG [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let bytes = std::fs::read(&log).unwrap_or_else(|e| panic!("{log}: {e}"));
    let name = "component-pass_usage_2024_03_11_14_00_00_00000001_v0";
    for _ in 0..runs {
        let upstream = FakeUpstream::new();
        let google = FakeGoogle::new();
        google.object("demo-gcr-logs", name, 1, bytes.clone());
        google.install(&upstream);
        let harness = Harness::new()
            .env("GCR_USAGE_PROJECT", "demo-project")
            .env("GCR_USAGE_BUCKETS", "demo-gcr-logs")
            .env("GCR_USAGE_AUTH", "none")
            .env("GCR_USAGE_MODE", "classified")
            .env("GCR_USAGE_WAIT_SECONDS", "3600")
            .fuel(u64::MAX / 4)
            .upstream(upstream);
        // Compile (or load the cached artifact) outside the timed call.
        block_on(harness.call_load(object_ref("other-bucket", name, Some(1)))).expect("the component runs");
        let started = Instant::now();
        let answer = block_on(harness.call_load(object_ref("demo-gcr-logs", name, Some(1))))
            .unwrap_or_else(|e| panic!("the component failed: {e:?}"));
        let seconds = started.elapsed().as_secs_f64();
        let outcome = answer.result.unwrap_or_else(|e| panic!("the component refused the load: {e:?}"));
        let events = outcome.counts.map_or(0, |c| c.events);
        println!(
            "{:7.1} MB/s, {events} events, {:.1} fuel/byte, {} fuel, {seconds:.3} s",
            bytes.len() as f64 / 1e6 / seconds,
            answer.run.fuel_consumed as f64 / bytes.len() as f64,
            answer.run.fuel_consumed
        );
    }
}
