//! The component's classified load alone, for iterating on its speed: `cargo run --release -p
//! gcr-usage-host-test --example component_pass -- LOG [RUNS]` loads LOG (a usage log) through
//! the component in the harness (path (e) of `classify_bench`, [`classified_load`]) and prints,
//! per run, MB/s and the fuel it consumed — wasm instructions executed, a figure that does not
//! move with the machine's noise (it does not see what host calls such as `memory.copy` cost).
//! `GCR_USAGE_FUEL=off` runs it unmetered, as `wasmtime serve` does (fuel then reads 0).

use gcr_usage_host_test::Metering;
use gcr_usage_host_test::bench_support::classified_load;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(log) = args.next() else {
        eprintln!("usage: component_pass LOG [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let bytes = std::fs::read(&log).unwrap_or_else(|e| panic!("{log}: {e}"));
    let metering = match std::env::var("GCR_USAGE_FUEL").as_deref() {
        Ok("off") => Metering::Off,
        _ => Metering::Fuel,
    };
    for _ in 0..runs {
        let load = classified_load(&bytes, "component-pass_usage_2024_03_11_14_00_00_00000001_v0", metering)
            .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "{:7.1} MB/s, {} events, {:.1} fuel/byte, {} fuel, {:.3} s",
            bytes.len() as f64 / 1e6 / load.seconds,
            load.events,
            load.fuel as f64 / bytes.len() as f64,
            load.fuel,
            load.seconds
        );
    }
}
