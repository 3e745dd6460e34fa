//! An A/B of components where they run: `cargo run --release -p gcr-usage-host-test --example
//! serve_ab -- LOG ROUNDS A.wasm B.wasm …` loads LOG (a usage log) through each component
//! under a real `wasmtime serve` (path (f) of `classify_bench`, [`serve`]), two
//! loads per server, alternating the components round by round so that the machine's drift
//! hits all alike, and prints per component the medians of the wall and of wasmtime's CPU
//! time (as MB/s of log) and of wasmtime's minor page faults a load. On this kind of VM single
//! runs move 5–10%: compare medians of several rounds, never two single runs. A `.cwasm`
//! (`wasmtime compile` with settings of one's own) runs as it is, to compare compile settings.

use gcr_usage_host_test::under_serve as serve;

/// One component's loads: wall seconds, wasmtime CPU seconds, minor faults, and its peak RSS.
type Samples = (Vec<f64>, Vec<f64>, Vec<u64>, u64);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(log), Some(rounds), wasms) = (args.first(), args.get(1).and_then(|r| r.parse().ok()), args.get(2..))
    else {
        eprintln!("usage: serve_ab LOG ROUNDS A.wasm [B.wasm …]");
        std::process::exit(2);
    };
    let wasms = wasms.unwrap_or_default();
    let log = bytes::Bytes::from(std::fs::read(log).unwrap_or_else(|e| panic!("{log}: {e}")));
    let rounds: usize = rounds;
    let mut samples: Vec<Samples> = vec![Default::default(); wasms.len()];
    let mut host = String::new();
    for _ in 0..rounds {
        for (wasm, (wall, cpu, faults, rss)) in wasms.iter().zip(&mut samples) {
            let name_of = |run: usize| format!("classify-bench_usage_2024_03_11_14_00_00_{run:08x}_v0");
            let s = serve::serve_figures(std::path::Path::new(wasm), &log, name_of, 2)
                .unwrap_or_else(|e| panic!("{wasm}: {e}"));
            wall.extend(&s.seconds);
            cpu.extend(&s.cpu_seconds);
            faults.extend(&s.minor_faults);
            *rss = (*rss).max(s.max_rss_kib);
            host = s.wasmtime;
        }
    }
    println!("{host}, {rounds} round(s) of 2 loads, {:.1} MiB of log", log.len() as f64 / 1048576.0);
    let mb = log.len() as f64 / 1e6;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (wasm, (wall, cpu, faults, rss)) in wasms.iter().zip(&mut samples) {
        faults.sort_unstable();
        println!(
            "{wasm}: wall {:.1} MB/s, wasmtime CPU {:.1} MB/s, {} minor faults a load, peak RSS {:.1} MiB",
            mb / median(wall),
            mb / median(cpu),
            faults[faults.len() / 2],
            *rss as f64 / 1024.0
        );
    }
}
