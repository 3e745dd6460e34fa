//! The classified path natively, for a profiler: `perf record cargo run --release -p
//! gcr-usage-core --example classified_pass -- LOG [RUNS] [STAGE]` reads LOG (a usage log),
//! classifies every row and writes its NDJSON into a reused 4 MiB `LineBuffer`, as the component does —
//! and nothing else, so a profile shows only the core's hot loops. STAGE (`read`, `classify`,
//! `ndjson`; default: all three, interleaved run by run) stops the pipeline early, to see what
//! each step adds. Prints MB/s per run and stage.
//! (`cargo xtask bench` measures the same path with a baseline; this is the magnifying glass.)

use std::io::BufReader;
use std::time::Instant;

use gcr_usage_core::ObjectRef;
use gcr_usage_core::ndjson::{self, LineBuffer};
use gcr_usage_core::usage::{ClientMemo, UsageLogReader, classify_with};

const STAGES: [&str; 3] = ["read", "classify", "ndjson"];

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(log) = args.next() else {
        eprintln!("usage: classified_pass LOG [RUNS] [read|classify|ndjson]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let stages: Vec<&str> = match args.next() {
        Some(stage) if STAGES.contains(&stage.as_str()) => STAGES.into_iter().filter(|s| *s == stage).collect(),
        Some(stage) => {
            eprintln!("unknown stage {stage:?}: one of {STAGES:?}");
            std::process::exit(2);
        }
        None => STAGES.to_vec(),
    };
    let source = ObjectRef { bucket: "demo-gcr-logs".into(), name: "profile".into(), generation: Some(1) };
    let size = std::fs::metadata(&log).unwrap_or_else(|e| panic!("{log}: {e}")).len();
    for _ in 0..runs {
        for stage in &stages {
            let started = Instant::now();
            let file = std::fs::File::open(&log).unwrap_or_else(|e| panic!("{log}: {e}"));
            let mut reader = UsageLogReader::new(BufReader::with_capacity(256 << 10, file));
            let mut chunk = LineBuffer::with_capacity(4 << 20);
            let mut clients = ClientMemo::default();
            let mut ndjson_bytes = 0;
            while let Some(row) = reader.next_row().unwrap_or_else(|e| panic!("reading {log}: {e}")) {
                match *stage {
                    "read" => {
                        std::hint::black_box(&row);
                    }
                    "classify" => {
                        std::hint::black_box(&classify_with(&row, &source, &mut clients));
                    }
                    _ => {
                        ndjson::write_line(&classify_with(&row, &source, &mut clients), &mut chunk);
                        if chunk.len() >= 4 << 20 {
                            ndjson_bytes += chunk.len();
                            std::hint::black_box(chunk.as_bytes());
                            chunk.clear();
                        }
                    }
                }
            }
            ndjson_bytes += chunk.len();
            let seconds = started.elapsed().as_secs_f64();
            let rows = reader.stats().rows;
            println!(
                "{stage:>8} {:7.1} MB/s, {rows} rows, {ndjson_bytes} NDJSON bytes, {seconds:.3} s",
                size as f64 / 1e6 / seconds
            );
        }
    }
}
