//! `cargo xtask bench` (second part) = `cargo run --release -p gcr-usage-host-test --bin classify_bench`:
//! what reading and classifying a large usage log costs, natively and in a plain Python script.
//!
//! 1. Writes a realistic synthetic usage log ([`gcr_usage_host_test::synth`], seeded, so the
//!    same bytes every run) of `GCR_USAGE_BENCH_MB` MiB (default 200) under the target directory
//!    (`$CARGO_TARGET_DIR`, else `<workspace>/target`), in `classify-bench/`.
//! 2. Times, in one process and interleaved run by run (`GCR_USAGE_BENCH_RUNS`, default 3):
//!    (a) the native `UsageLogReader` alone, (b) reader + `classify`, (c) reader + `classify` +
//!    NDJSON (`ndjson::write_line`, what the component runs, into a reused `LineBuffer`
//!    cleared at 4 MiB, like an upload chunk), (c') the same through `serde_json::to_writer`, the
//!    reference; reports best and median as MB/s (10^6 bytes of log per second) and rows/s.
//! 3. Runs `bench/classify_baseline.py` (csv + re + json, the same work as (c)) with `python3`
//!    (or `$GCR_USAGE_BENCH_PYTHON`) for the same number of runs, and prints native/Python ratios.
//! 4. (e) Runs the component's whole classified load in the harness, with fuel and (e') without,
//!    interleaved with (c*) the same load by the core natively against the same fake (what the
//!    component costs beyond the work itself);
//!    (f) runs it under a real `wasmtime serve` ([`serve`]) and (g) the release CLI's
//!    `gcr-usage report` over the same log and over a 1 GiB one ([`cli`]).
//! 5. Measures peak RSS growth (`VmHWM` in `/proc/self/status`, before and after) of path (c)
//!    in fresh child processes, for a tenth of the file and for all of it, with the default
//!    exact duplicate detection and with a bounded window, to show what grows with the file.
//!
//! The log is read from the page cache (it was just written): the figures are CPU cost, not
//! disk speed. This is a report, not a test: nothing here asserts on timings.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use gcr_usage_core::ObjectRef;
use gcr_usage_core::ndjson::{self, LineBuffer, Lines};
use gcr_usage_core::usage::{ClientMemo, Dedup, ReaderOptions, UsageLogReader, classify_with};
use gcr_usage_host_test::bench_support::{
    FiguresTable, Timed, classified_load, env_number, load_average, mb, mib, native_classified_load, open, target_dir,
};
use gcr_usage_host_test::synth::{self, SynthStats};
use gcr_usage_host_test::under_serve as serve;
use gcr_usage_host_test::{Metering, group_digits as group, workspace_root};
use serde_json::Value;

mod cli;

const MB_ENV: &str = "GCR_USAGE_BENCH_MB";
const RUNS_ENV: &str = "GCR_USAGE_BENCH_RUNS";
const PYTHON_ENV: &str = "GCR_USAGE_BENCH_PYTHON";
const DEFAULT_MB: u64 = 200;
const DEFAULT_RUNS: usize = 3;
/// NDJSON is handed on in chunks of this size (a resumable upload's chunk).
const CHUNK: usize = 4 << 20;
/// The CLI's read buffer.
const READ_BUFFER: usize = 256 << 10;
/// The bounded duplicate window of the memory comparison.
const WINDOW: usize = 65_536;
const ACTIONS: [&str; 8] = ["pull", "push", "download", "upload", "delete", "list", "admin", "other"];
const PROBE_ARG: &str = "--memory-probe";

/// How far down the pipeline a pass goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Read,
    Classify,
    /// NDJSON as the component writes it (`ndjson::write_line`).
    Ndjson,
    /// The same bytes through `serde_json::to_writer`: the reference the writer must equal.
    NdjsonSerde,
}

/// What one pass over the log saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Pass {
    records: u64,
    rows: u64,
    malformed: u64,
    duplicates: u64,
    invalid_utf8: u64,
    ndjson_bytes: u64,
    actions: [u64; 8],
}

/// Timings of one path, and the rows each run handed out.
#[derive(Clone)]
pub(crate) struct Figures {
    seconds: Vec<f64>,
    rows: u64,
}

impl Timed for Figures {
    fn seconds(&self) -> &[f64] {
        &self.seconds
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(PROBE_ARG) {
        memory_probe(&args[2..]);
        return;
    }
    let mib = env_number(MB_ENV, DEFAULT_MB).max(1);
    let runs = env_number(RUNS_ENV, DEFAULT_RUNS as u64).max(1) as usize;
    let dir = target_dir().join("classify-bench");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    // A valid usage-log object name (the lineage columns carry it).
    let name = format!("classify-bench_usage_2024_03_11_14_00_00_{:08x}_v0", synth::DEFAULT_SEED as u32);
    let log = dir.join(format!("{mib}mib")).join(&name);
    std::fs::create_dir_all(log.parent().expect("has a parent")).expect("create the log directory");

    let load_before = load_average();
    let started = Instant::now();
    let file = File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    let synth = synth::write_log(BufWriter::with_capacity(1 << 20, file), mib << 20, synth::DEFAULT_SEED)
        .unwrap_or_else(|e| panic!("writing {}: {e}", log.display()));
    let generated = started.elapsed().as_secs_f64();
    let source = ObjectRef { bucket: "demo-gcr-logs".into(), name: name.clone(), generation: Some(1) };

    // Native paths, interleaved run by run so that machine noise hits all three alike.
    let mut native: [Vec<f64>; 4] = Default::default();
    let mut passes: Vec<Pass> = Vec::new();
    for _ in 0..runs {
        for (i, stage) in [Stage::Read, Stage::Classify, Stage::Ndjson, Stage::NdjsonSerde].into_iter().enumerate() {
            let started = Instant::now();
            let pass = native_pass(open(&log, READ_BUFFER), &source, stage, ReaderOptions::default());
            native[i].push(started.elapsed().as_secs_f64());
            passes.push(pass);
        }
    }
    let pass = passes.last().cloned().expect("at least one run");
    check_pass(&pass, &synth);
    assert_eq!(passes[2], passes[3], "the NDJSON writer and serde_json write as many bytes");
    let figures: Vec<Figures> =
        native.into_iter().map(|seconds| Figures { seconds, rows: pass.rows }).collect::<Vec<_>>();

    let python = python_baseline(&log, runs);
    let wasmtime = wasmtime_figures(&log, &name, runs);
    if let Some(w) = &wasmtime {
        assert_eq!(w.metered.rows, pass.rows, "the component classified as many rows as the native reader");
    }
    let serve = match &wasmtime {
        Some(_) => {
            let bytes = bytes::Bytes::from(std::fs::read(&log).expect("the log was just written"));
            let name_of = |run: usize| format!("classify-bench_usage_2024_03_11_14_00_00_{run:08x}_v0");
            serve::serve_figures(&gcr_usage_host_test::guest_wasm(), &bytes, name_of, runs)
        }
        None => Err("no component built".to_string()),
    };
    if let Ok(s) = &serve {
        assert_eq!(s.rows, pass.rows, "wasmtime serve classified as many rows as the native reader");
    }
    let reports = cli_reports(&dir, &log, runs);
    let memory = memory_table(&log, synth.bytes);
    let load_after = load_average();

    print_report(&Report {
        log: &log,
        synth,
        generated,
        pass: &pass,
        runs,
        native: &figures,
        python: python.as_ref(),
        wasmtime: wasmtime.as_ref(),
        serve: serve.as_ref(),
        reports: reports.as_ref(),
        memory: &memory,
        load: (load_before, load_after),
    });
}

/// One pass over the log, as far as `stage`. Rows, events and NDJSON chunks are consumed
/// through `black_box`, so nothing is optimised away.
fn native_pass<R: Read>(input: R, source: &ObjectRef, stage: Stage, options: ReaderOptions) -> Pass {
    let mut reader = UsageLogReader::with_options(input, options);
    let mut pass = Pass::default();
    let mut clients = ClientMemo::default();
    // (c) writes into a line buffer, as the component's upload does; (c') into a `Vec`.
    let room = CHUNK + (64 << 10);
    let mut lines = LineBuffer::with_capacity(room);
    let mut chunk: Vec<u8> = Vec::with_capacity(room);
    // Touch the buffers' pages once: their memory is fixed, whatever the size of the log.
    match stage {
        Stage::Ndjson => {
            lines.room(room);
            lines.keep(room, 0);
        }
        Stage::NdjsonSerde => {
            chunk.resize(room, 0);
            chunk.clear();
        }
        Stage::Read | Stage::Classify => {}
    }
    while let Some(row) = reader.next_row().unwrap_or_else(|e| panic!("reading the log: {e}")) {
        match stage {
            Stage::Read => {
                std::hint::black_box(&row);
            }
            Stage::Classify => {
                let event = classify_with(&row, source, &mut clients);
                pass.actions[event.action as usize] += 1;
                std::hint::black_box(&event);
            }
            Stage::Ndjson => {
                let event = classify_with(&row, source, &mut clients);
                pass.actions[event.action as usize] += 1;
                ndjson::write_line(&event, &mut lines);
                if lines.len() >= CHUNK {
                    pass.ndjson_bytes += lines.len() as u64;
                    std::hint::black_box(lines.as_bytes());
                    lines.clear();
                }
            }
            Stage::NdjsonSerde => {
                let event = classify_with(&row, source, &mut clients);
                pass.actions[event.action as usize] += 1;
                serde_json::to_writer(&mut chunk, &event).expect("serialising to memory cannot fail");
                chunk.push(b'\n');
                if chunk.len() >= CHUNK {
                    pass.ndjson_bytes += chunk.len() as u64;
                    std::hint::black_box(&chunk);
                    chunk.clear();
                }
            }
        }
    }
    pass.ndjson_bytes += (lines.len() + chunk.len()) as u64;
    std::hint::black_box((lines.as_bytes(), &chunk));
    let stats = reader.into_stats();
    pass.records = stats.records;
    pass.rows = stats.rows;
    pass.malformed = stats.malformed;
    pass.duplicates = stats.duplicates;
    pass.invalid_utf8 = stats.invalid_utf8;
    pass
}

/// The reader must have found exactly what the generator planted.
fn check_pass(pass: &Pass, synth: &SynthStats) {
    let read = (pass.records, pass.malformed, pass.duplicates, pass.invalid_utf8);
    let planted = (synth.rows, synth.malformed, synth.duplicates, synth.invalid_utf8);
    assert_eq!(read, planted, "reader (records, malformed, duplicates, invalid_utf8) vs generator");
}

/// The Python baseline's answer (its own per-run timings, excluding interpreter start-up).
struct Python {
    version: String,
    figures: Figures,
    /// Wall time of the whole child process, all runs and start-up included.
    wall: f64,
    max_rss_kib: u64,
    pass: Pass,
}

fn python_baseline(log: &Path, runs: usize) -> Result<Python, String> {
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".into());
    let script = workspace_root().join("bench").join("classify_baseline.py");
    let started = Instant::now();
    let output = Command::new(&python)
        .arg(&script)
        .arg(log)
        .args(["--runs", &runs.to_string()])
        .output()
        .map_err(|e| format!("cannot start {python}: {e}"))?;
    let wall = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let v: Value = serde_json::from_slice(&output.stdout).map_err(|e| format!("its output is not JSON: {e}"))?;
    let n = |k: &str| v[k].as_u64().unwrap_or_default();
    let seconds: Vec<f64> = v["seconds"].as_array().into_iter().flatten().filter_map(Value::as_f64).collect();
    if seconds.is_empty() {
        return Err("no timings in its output".into());
    }
    let mut pass = Pass {
        records: n("records"),
        rows: n("rows"),
        malformed: n("malformed"),
        duplicates: n("duplicates"),
        invalid_utf8: n("invalid_utf8"),
        ndjson_bytes: n("ndjson_bytes"),
        actions: [0; 8],
    };
    for (i, a) in ACTIONS.iter().enumerate() {
        pass.actions[i] = v["actions"][a].as_u64().unwrap_or_default();
    }
    Ok(Python {
        version: v["python"].as_str().unwrap_or("?").to_string(),
        figures: Figures { seconds, rows: pass.rows },
        wall,
        max_rss_kib: n("max_rss_kib"),
        pass,
    })
}

/// (e) The loader component itself, in the harness (wasmtime 48, Cranelift), with
/// `GCR_USAGE_MODE=classified`: a fresh instance per run is handed the log object through
/// `gcr-usage:loader/loader#load`; a [`FakeGoogle`] serves the object (with its CRC32C) and
/// takes the resumable upload in 4 MiB chunks. The time is the whole call — download, CRC32C,
/// reader, classifier, NDJSON, chunked upload — including the fake network's own copying of
/// every body, so it understates the component a little.
///
/// Run by run, interleaved: (e) with fuel metering, as every test runs (the fuel figure is
/// the count of work that does not move with the machine), and (e') without, as `wasmtime
/// serve` runs the component — the wall time comparable to (f).
struct Harnessed {
    /// (c*) The same whole load by the core natively, against the same fake.
    native: Figures,
    metered: Figures,
    unmetered: Figures,
    /// Fuel per byte of log, of the metered runs.
    fuel_per_byte: f64,
    peak_memory: usize,
}

fn wasmtime_figures(log: &Path, name: &str, runs: usize) -> Option<Harnessed> {
    let wasm = gcr_usage_host_test::guest_wasm();
    if !wasm.exists() {
        eprintln!("(e) skipped: no component at {} (run `cargo xtask build`)", wasm.display());
        return None;
    }
    let bytes = std::fs::read(log).ok()?;
    let (mut native, mut metered, mut unmetered, mut rows, mut fuel, mut peak) =
        (Vec::new(), Vec::new(), Vec::new(), 0, 0, 0);
    for _ in 0..runs {
        let (seconds, events) = native_classified_load(&bytes, name).unwrap_or_else(|e| panic!("{e}"));
        native.push(seconds);
        assert!(rows == 0 || rows == events, "every run classified as many rows");
        rows = events;
        for metering in [Metering::Fuel, Metering::Off] {
            let load = classified_load(&bytes, name, metering).unwrap_or_else(|e| panic!("{e}"));
            match metering {
                Metering::Fuel => {
                    metered.push(load.seconds);
                    fuel = load.fuel;
                }
                Metering::Off => unmetered.push(load.seconds),
            }
            assert!(rows == 0 || rows == load.events, "every run classified as many rows");
            rows = load.events;
            peak = peak.max(load.peak_memory);
        }
    }
    Some(Harnessed {
        native: Figures { seconds: native, rows },
        metered: Figures { seconds: metered, rows },
        unmetered: Figures { seconds: unmetered, rows },
        fuel_per_byte: fuel as f64 / bytes.len().max(1) as f64,
        peak_memory: peak,
    })
}

/// (g) The CLI over this log (`runs` times), then over a 1 GiB log written beside it, with the
/// default duplicate window (larger than the log: exact), a smaller one, and `--dedup file`.
fn cli_reports(dir: &Path, log: &Path, runs: usize) -> Result<Vec<cli::Report>, String> {
    let cli = cli::cli_path()?;
    let big_name = format!("classify-bench_usage_2024_03_11_15_00_00_{:08x}_v0", synth::DEFAULT_SEED as u32);
    let big = dir.join("1024mib").join(big_name);
    if std::fs::metadata(&big).map(|m| m.len()).unwrap_or(0) < 1 << 30 {
        std::fs::create_dir_all(big.parent().expect("has a parent")).map_err(|e| e.to_string())?;
        let file = File::create(&big).map_err(|e| format!("{}: {e}", big.display()))?;
        synth::write_log(BufWriter::with_capacity(1 << 20, file), 1 << 30, synth::DEFAULT_SEED)
            .map_err(|e| format!("writing {}: {e}", big.display()))?;
    }
    Ok(vec![
        cli::report_figures(&cli, log, &[], "(g) gcr-usage report, this log", runs)?,
        cli::report_figures(&cli, &big, &[], "(g') gcr-usage report, 1 GiB log", 1)?,
        // A window below the 1 GiB log's 1.8 million ids: peak RSS then is what 250,000 take.
        cli::report_figures(&cli, &big, &["--dedup-window", "250000"], "(g'') the same, --dedup-window 250000", 1)?,
        cli::report_figures(&cli, &big, &["--dedup", "file"], "(g''') the same, --dedup file", 1)?,
    ])
}

// ---------------------------------------------------------------------------------------------
// Memory

/// One memory measurement: a fresh process runs path (c) once.
struct Memory {
    label: String,
    dedup: String,
    bytes: u64,
    rows: u64,
    /// VmHWM before the pass and after it, KiB.
    before_kib: u64,
    after_kib: u64,
}

impl Memory {
    fn growth_kib(&self) -> u64 {
        self.after_kib.saturating_sub(self.before_kib)
    }
}

fn memory_table(log: &Path, size: u64) -> Vec<Memory> {
    let tenth = size / 10;
    let cases = [("exact", tenth), ("exact", size), ("window", tenth), ("window", size)];
    cases.iter().filter_map(|(dedup, limit)| probe(log, dedup, *limit)).collect()
}

/// Runs this binary again as `--memory-probe LOG DEDUP LIMIT` and parses its one line.
fn probe(log: &Path, dedup: &str, limit: u64) -> Option<Memory> {
    let exe = std::env::current_exe().ok()?;
    let output = Command::new(exe).arg(PROBE_ARG).arg(log).arg(dedup).arg(limit.to_string()).output().ok()?;
    if !output.status.success() {
        eprintln!("memory probe failed: {}", String::from_utf8_lossy(&output.stderr));
        return None;
    }
    let v: Value = serde_json::from_slice(&output.stdout).ok()?;
    let dedup = if dedup == "window" { format!("Dedup::Window({WINDOW})") } else { "Dedup::Exact".to_string() };
    let part = if limit == std::fs::metadata(log).map(|m| m.len()).unwrap_or(0) { "whole file" } else { "first tenth" };
    Some(Memory {
        label: format!("{dedup}, {part}"),
        dedup,
        bytes: v["bytes"].as_u64()?,
        rows: v["rows"].as_u64()?,
        before_kib: v["before_kib"].as_u64()?,
        after_kib: v["after_kib"].as_u64()?,
    })
}

/// The child side: VmHWM, one pass of path (c) over the first LIMIT bytes, VmHWM again.
fn memory_probe(args: &[String]) {
    let [log, dedup, limit] = args else { panic!("usage: {PROBE_ARG} LOG exact|window LIMIT") };
    let limit: u64 = limit.parse().expect("LIMIT is a number");
    let dedup = if dedup == "window" { Dedup::Window(WINDOW) } else { Dedup::Exact };
    let options = ReaderOptions { dedup, ..ReaderOptions::default() };
    let source = ObjectRef { bucket: "demo-gcr-logs".into(), name: "probe".into(), generation: None };
    let before = vm_kib("VmHWM");
    let pass = native_pass(open(Path::new(log), READ_BUFFER).take(limit), &source, Stage::Ndjson, options);
    let after = vm_kib("VmHWM");
    println!("{}", serde_json::json!({ "bytes": limit, "rows": pass.rows, "before_kib": before, "after_kib": after }));
}

/// A `Vm*` line of this process's `/proc/self/status`, in KiB (0 where there is no procfs).
fn vm_kib(field: &str) -> u64 {
    gcr_usage_host_test::child_usage::vm_kib("self", field).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report<'a> {
    log: &'a Path,
    synth: SynthStats,
    generated: f64,
    pass: &'a Pass,
    runs: usize,
    native: &'a [Figures],
    python: Result<&'a Python, &'a String>,
    wasmtime: Option<&'a Harnessed>,
    serve: Result<&'a serve::Serve, &'a String>,
    reports: Result<&'a Vec<cli::Report>, &'a String>,
    memory: &'a [Memory],
    load: (String, String),
}

fn print_report(r: &Report<'_>) {
    let bytes = r.synth.bytes;
    let p = r.pass;
    println!();
    println!("gcr-usage classification benchmark");
    println!("  log       {}", r.log.display());
    println!(
        "            {} bytes ({:.1} MiB), {} records: {} rows, {} malformed, {} duplicates, {} with invalid UTF-8",
        group(bytes),
        mib(bytes),
        group(r.synth.rows),
        group(p.rows),
        p.malformed,
        p.duplicates,
        p.invalid_utf8
    );
    println!(
        "            generated in {:.2} s ({:.0} MB/s), seed {:#x}; read back from the page cache",
        r.generated,
        mb(bytes) / r.generated,
        synth::DEFAULT_SEED
    );
    let mix: Vec<String> = ACTIONS
        .iter()
        .zip(p.actions)
        .filter(|(_, n)| *n > 0)
        .map(|(a, n)| format!("{a} {:.1}%", 100.0 * n as f64 / p.rows.max(1) as f64))
        .collect();
    println!("  mix       {}", mix.join(", "));
    println!(
        "  NDJSON    {} bytes ({:.2} bytes of NDJSON per byte of log)",
        group(p.ndjson_bytes),
        p.ndjson_bytes as f64 / bytes as f64
    );
    let table = FiguresTable { bytes, items: "rows" };
    table.print_header(&r.load, r.runs);
    let line = |name: &str, f: &Figures| table.print_row(name, f.rows, f);
    let names = [
        "(a) native reader",
        "(b) native reader + classify",
        "(c) native reader + classify + NDJSON",
        "(c') the same, NDJSON through serde_json",
    ];
    for (name, f) in names.iter().zip(r.native) {
        line(name, f);
    }
    match r.python {
        Ok(py) => line(&format!("(d) Python {} baseline (csv + re + json)", py.version), &py.figures),
        Err(e) => table.print_missing("(d) Python baseline", e),
    }
    match r.wasmtime {
        Some(h) => {
            line("(c*) the whole load natively, same fake", &h.native);
            line("(e) component in the harness, classified load", &h.metered);
            line("(e') the same without fuel metering", &h.unmetered);
            println!(
                "      (e) is the whole load: download + CRC32C + reader + classify + NDJSON + 4 MiB upload chunks,"
            );
            println!(
                "      fake network included; {:.1} fuel per byte; peak linear memory of the instance {:.1} MiB;",
                h.fuel_per_byte,
                h.peak_memory as f64 / 1048576.0
            );
            println!(
                "      (e') runs the same code without the fuel check in every block, as wasmtime serve and Spin do;"
            );
            println!(
                "      (c*) is the core doing that whole load in-process, natively, against the same fake (what (e') costs"
            );
            println!("      beyond the work itself is WebAssembly's share)");
        }
        None => table.print_missing("(e) component in wasmtime", "no component built"),
    }
    match r.serve {
        Ok(s) => {
            line("(f) component under wasmtime serve, loopback", &Figures { seconds: s.seconds.clone(), rows: s.rows });
            let cpu = Figures { seconds: s.cpu_seconds.clone(), rows: s.rows };
            line("(f') the same, wasmtime's own CPU time", &cpu);
            println!(
                "      (f) is deploy/serve.sh on the precompiled component ({}), one event per run, Storage and",
                s.wasmtime
            );
            println!(
                "      BigQuery served over loopback HTTP by the shared fake; wasmtime peak RSS {:.1} MiB;",
                s.max_rss_kib as f64 / 1024.0
            );
            let mut faults = s.minor_faults.clone();
            faults.sort_unstable();
            println!(
                "      wasmtime's minor page faults a run (median) {} = {:.0} MiB of fresh pages zeroed for it",
                group(faults.get(faults.len() / 2).copied().unwrap_or(0)),
                mib(faults.get(faults.len() / 2).copied().unwrap_or(0) * gcr_usage_host_test::child_usage::page_size())
            );
        }
        Err(e) => table.print_missing("(f) component under wasmtime serve", e),
    }
    match r.reports {
        Ok(reports) => {
            for report in reports {
                let t = FiguresTable { bytes: report.bytes, items: "rows" };
                t.print_row(&report.label, 0, &report.figures);
            }
            for report in reports {
                println!(
                    "      {}: {:.0} MiB in {:.2} s wall, {:.2} s CPU, peak RSS {:.1} MiB",
                    report.label.split_whitespace().next().unwrap_or_default(),
                    mib(report.bytes),
                    report.usage.wall_seconds,
                    report.usage.cpu_seconds(),
                    report.usage.max_rss_kib as f64 / 1024.0
                );
            }
        }
        Err(e) => table.print_missing("(g) gcr-usage report", e),
    }
    println!();
    // The component's paths, each against Python and against native (c).
    let harness = r.wasmtime.map_or(vec![], |h| {
        vec![("(e) component in the harness", h.metered.clone()), ("(e') the same without fuel", h.unmetered.clone())]
    });
    let serve = r.serve.ok().map_or(vec![], |s| {
        let wall = Figures { seconds: s.seconds.clone(), rows: s.rows };
        let cpu = Figures { seconds: s.cpu_seconds.clone(), rows: s.rows };
        vec![("(f) component under wasmtime serve", wall), ("(f') the same, wasmtime's CPU time", cpu)]
    });
    let component: Vec<(&str, Figures)> = harness.into_iter().chain(serve).collect();
    if let Ok(py) = r.python {
        println!("  native / Python (throughput ratio; (c) is the like-for-like path)");
        let component = component.iter().map(|(name, f)| (*name, f));
        for (name, f) in names.iter().copied().zip(r.native).chain(component) {
            println!(
                "    {:<42} {:>6.1}x best vs best, {:>6.1}x median vs median",
                name,
                py.figures.best() / f.best(),
                py.figures.median() / f.median()
            );
        }
        println!(
            "    Python process: {:.1} s wall for {} run(s) (start-up included), peak RSS {:.1} MiB",
            py.wall,
            py.figures.seconds.len(),
            py.max_rss_kib as f64 / 1024.0
        );
        let same = (py.pass.records, py.pass.rows, py.pass.malformed, py.pass.duplicates, py.pass.actions)
            == (p.records, p.rows, p.malformed, p.duplicates, p.actions);
        if same {
            println!("    Python agrees with the native path on records, rows, malformed, duplicates and actions");
        } else {
            println!(
                "    Python DISAGREES: records {} rows {} malformed {} duplicates {} actions {:?} (native: {} {} {} {} {:?})",
                py.pass.records,
                py.pass.rows,
                py.pass.malformed,
                py.pass.duplicates,
                py.pass.actions,
                p.records,
                p.rows,
                p.malformed,
                p.duplicates,
                p.actions
            );
        }
        println!();
    }
    if let Some(c) = r.native.get(2).filter(|_| !component.is_empty()) {
        println!("  component / native (c) (throughput ratio: the share of native speed the component reaches)");
        for (name, f) in &component {
            println!(
                "    {:<42} {:>6.2}x best vs best, {:>6.2}x median vs median",
                name,
                c.best() / f.best(),
                c.median() / f.median()
            );
        }
        println!();
    }
    if let Some(h) = r.wasmtime.filter(|_| !component.is_empty()) {
        println!("  component / the whole load natively (c*) (the same work: what WebAssembly and the host cost)");
        for (name, f) in &component {
            println!(
                "    {:<42} {:>6.2}x best vs best, {:>6.2}x median vs median",
                name,
                h.native.best() / f.best(),
                h.native.median() / f.median()
            );
        }
        println!();
    }
    if !r.memory.is_empty() {
        println!("  peak RSS of path (c), a fresh process each (VmHWM before -> after the pass)");
        for m in r.memory {
            println!(
                "    {:<36} {:>6.1} MiB of log, {:>9} rows: {:>6.1} -> {:>6.1} MiB, +{:>5.1} MiB",
                m.label,
                mib(m.bytes),
                group(m.rows),
                m.before_kib as f64 / 1024.0,
                m.after_kib as f64 / 1024.0,
                m.growth_kib() as f64 / 1024.0
            );
        }
        // Fixed buffers cancel out between a tenth and the whole file: what is left grows with it.
        for pair in r.memory.chunks(2) {
            if let [tenth, whole] = pair {
                let extra_rows = whole.rows.saturating_sub(tenth.rows).max(1) as f64;
                let extra = whole.growth_kib() as f64 - tenth.growth_kib() as f64;
                println!(
                    "    {:<36} {:>+6.1} MiB for {} more rows = {:.1} bytes per row",
                    format!("{}:", whole.dedup),
                    extra / 1024.0,
                    group(extra_rows as u64),
                    extra * 1024.0 / extra_rows
                );
            }
        }
        println!(
            "    fixed: the 256 KiB read buffer, one record, the {} MiB NDJSON chunk. Growing with the file: the\n    \
             reader's exact duplicate set (ReaderOptions::default(), a 64-bit hash per row in a hash set);\n    \
             Dedup::Window({WINDOW}) takes its whole table at the start (room for 1.5 x {WINDOW} ids, so it\n    \
             never grows), at the cost of missing duplicates further apart.",
            CHUNK >> 20
        );
    }
}
