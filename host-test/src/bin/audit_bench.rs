//! `cargo xtask bench` (the audit part) = `cargo run --release -p gcr-usage-host-test --bin audit_bench`:
//! what reading and classifying a large Artifact Registry audit-log sink object costs, natively,
//! inside wasmtime and in a plain Python script, in one run.
//!
//! 1. Writes a realistic synthetic sink object ([`gcr_usage_host_test::synth_audit`], seeded, so
//!    the same bytes every run) of `GCR_USAGE_BENCH_MB` MiB (default 200), and one a fifth of that
//!    size (at least 30 MiB; the memory comparison), under the target directory (`$CARGO_TARGET_DIR`, else
//!    `<workspace>/target`), in `audit-bench/`, at the object's own name
//!    (`cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json`).
//! 2. Times, interleaved run by run (`GCR_USAGE_BENCH_RUNS`, default 3): (a) the native
//!    `AuditLogReader` (framing, parsing, skipping, deduplicating, classifying), (b) + NDJSON
//!    (`ndjson::write_line`, what the component runs, into a reused buffer cleared at
//!    4 MiB, like an upload chunk), (b') the same through `serde_json::to_writer`; best and
//!    median as MB/s (10^6 bytes of object per second) and entries/s (every line of the object).
//! 3. Runs `bench/audit_baseline.py` (json + re, the same work as (b)) with `python3` (or
//!    `$GCR_USAGE_BENCH_PYTHON`) for the same number of runs.
//! 4. (c) The component in wasmtime (the harness: wasmtime 48, Cranelift, fuel metering on), a
//!    fresh instance per run, handed the object through `gcr-usage:loader/loader#load`; a
//!    [`FakeGoogle`] serves it from bucket `demo-gcr-logs` (the component percent-encodes the
//!    `/` and `:` of its name) and takes the events' resumable upload in 4 MiB chunks. The time
//!    is the whole load (download, CRC32C, reader, classifier, NDJSON, upload through the fake
//!    network); the instance's peak linear memory is reported for both object sizes.
//! 5. Checks that everyone read the same thing: the counts the generator planted, the actions,
//!    and the NDJSON itself — its SHA-256 natively (an extra, untimed pass), in Python (hashing
//!    time left out of its timings) and of what the component uploaded.
//!
//! The object is read from the page cache (it was just written): the figures are CPU cost, not
//! disk speed. This is a report, not a test: nothing here asserts on timings.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use gcr_usage_core::ObjectRef;
use gcr_usage_core::audit::AuditLogReader;
use gcr_usage_core::ndjson;
use gcr_usage_host_test::bench_support::{FiguresTable, Timed, env_number, load_average, mb, mib, open, target_dir};
use gcr_usage_host_test::synth_audit::{self, ACTIONS, AUDIT_BUCKET, AUDIT_OBJECT, AuditSynthStats};
use gcr_usage_host_test::{
    FakeGoogle, FakeUpstream, Harness, block_on, group_digits as group, object_ref, workspace_root,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

const MB_ENV: &str = "GCR_USAGE_BENCH_MB";
const RUNS_ENV: &str = "GCR_USAGE_BENCH_RUNS";
const PYTHON_ENV: &str = "GCR_USAGE_BENCH_PYTHON";
const DEFAULT_MB: u64 = 200;
const DEFAULT_RUNS: usize = 3;
/// NDJSON is handed on in chunks of this size (a resumable upload's chunk).
const CHUNK: usize = 4 << 20;
/// The CLI's read buffer.
const READ_BUFFER: usize = 256 << 10;
/// The duplicate window and the kept malformed samples of the classified load.
const WINDOW: usize = gcr_usage_core::classified::DEDUP_WINDOW;
const SAMPLES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Classify,
    Ndjson,
    NdjsonSerde,
    /// NDJSON hashed (untimed): the reference the other readers are compared with.
    Digest,
}

/// What one pass saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Pass {
    entries: u64,
    events: u64,
    skipped: u64,
    malformed: u64,
    duplicates: u64,
    actions: [u64; 8],
    ndjson_bytes: u64,
    sha256: Option<String>,
}

/// Seconds per run of one path.
struct Figures {
    seconds: Vec<f64>,
}

impl Timed for Figures {
    fn seconds(&self) -> &[f64] {
        &self.seconds
    }
}

fn main() {
    let mib = env_number(MB_ENV, DEFAULT_MB).max(1);
    let runs = env_number(RUNS_ENV, DEFAULT_RUNS as u64).max(1) as usize;
    // The memory comparison's smaller object: a fifth, but no less than 30 MiB, so that it has
    // more entries than the duplicate window holds (16,384) and its NDJSON fills 4 MiB upload
    // chunks too: what is left of a difference is what grows with the object.
    let small_mib = (mib / 5).max(30).min(mib);
    let load_before = load_average();
    let started = Instant::now();
    let (path, synth) = generate(mib);
    let generated = started.elapsed().as_secs_f64();
    let (small_path, small_synth) = generate(small_mib);
    let source = ObjectRef { bucket: AUDIT_BUCKET.into(), name: AUDIT_OBJECT.into(), generation: Some(1) };

    // Native paths, interleaved run by run so that machine noise hits them alike.
    let stages = [Stage::Classify, Stage::Ndjson, Stage::NdjsonSerde];
    let mut native: [Vec<f64>; 3] = Default::default();
    let mut passes = Vec::new();
    for _ in 0..runs {
        for (i, stage) in stages.into_iter().enumerate() {
            let started = Instant::now();
            let pass = native_pass(open(&path, READ_BUFFER), &source, stage);
            native[i].push(started.elapsed().as_secs_f64());
            passes.push(pass);
        }
    }
    let reference = native_pass(open(&path, READ_BUFFER), &source, Stage::Digest);
    check_pass("native", &reference, &synth);
    for pass in &passes {
        let without_digest = Pass { sha256: None, ndjson_bytes: pass.ndjson_bytes, ..reference.clone() };
        if pass.ndjson_bytes > 0 {
            assert_eq!(pass, &without_digest, "every NDJSON pass writes the same bytes");
        }
    }
    let native: Vec<Figures> = native.into_iter().map(|seconds| Figures { seconds }).collect();

    let python = python_baseline(&path, runs);
    let component = component_figures(&path, runs);
    let small_component = component_figures(&small_path, 1);
    let load_after = load_average();

    print_report(&Report {
        path: &path,
        synth: &synth,
        small: &small_synth,
        generated,
        reference: &reference,
        runs,
        native: &native,
        python: python.as_ref(),
        component: component.as_ref(),
        small_component: small_component.as_ref(),
        load: (load_before, load_after),
    });
}

/// Writes the `mib` MiB object (at its own name under `audit-bench/{mib}mib/`).
fn generate(mib: u64) -> (PathBuf, AuditSynthStats) {
    let path = target_dir().join("audit-bench").join(format!("{mib}mib")).join(AUDIT_OBJECT);
    std::fs::create_dir_all(path.parent().expect("has a parent")).expect("create the object's directory");
    let file = File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let synth =
        synth_audit::write_audit_log(BufWriter::with_capacity(1 << 20, file), mib << 20, synth_audit::DEFAULT_SEED)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    (path, synth)
}

/// One pass over the object, as far as `stage`; events and chunks go through `black_box`.
fn native_pass<R: Read>(input: R, source: &ObjectRef, stage: Stage) -> Pass {
    let mut reader = AuditLogReader::new(input, source.clone(), WINDOW, SAMPLES);
    let mut pass = Pass::default();
    let mut chunk: Vec<u8> = Vec::with_capacity(CHUNK + (64 << 10));
    let mut hash = (stage == Stage::Digest).then(Sha256::new);
    if stage != Stage::Classify {
        // Touch the chunk's pages once: its memory is fixed, whatever the size of the object.
        chunk.resize(chunk.capacity(), 0);
        chunk.clear();
    }
    loop {
        let next = reader.next_event(|event| {
            match stage {
                Stage::Classify => {
                    std::hint::black_box(event);
                }
                Stage::Ndjson | Stage::Digest => ndjson::write_line(event, &mut chunk),
                Stage::NdjsonSerde => {
                    serde_json::to_writer(&mut chunk, event).expect("serialising to memory cannot fail");
                    chunk.push(b'\n');
                }
            }
            event.action as usize
        });
        match next.unwrap_or_else(|e| panic!("reading the object: {e}")) {
            Some(action) => pass.actions[action] += 1,
            None => break,
        }
        if chunk.len() >= CHUNK {
            pass.ndjson_bytes += chunk.len() as u64;
            if let Some(h) = hash.as_mut() {
                h.update(&chunk);
            }
            std::hint::black_box(&chunk);
            chunk.clear();
        }
    }
    pass.ndjson_bytes += chunk.len() as u64;
    if let Some(mut h) = hash {
        h.update(&chunk);
        pass.sha256 = Some(hex(&h.finalize()));
    }
    std::hint::black_box(&chunk);
    let (_, stats) = reader.into_parts();
    pass.entries = stats.entries;
    pass.events = stats.events;
    pass.skipped = stats.skipped;
    pass.malformed = stats.malformed;
    pass.duplicates = stats.duplicates;
    pass
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The reader must find exactly what the generator planted.
fn check_pass(who: &str, pass: &Pass, synth: &AuditSynthStats) {
    let read = (pass.entries, pass.events, pass.skipped, pass.malformed, pass.duplicates, pass.actions);
    let planted = (synth.entries, synth.events, synth.skipped, synth.malformed, synth.duplicates, synth.actions);
    assert_eq!(read, planted, "{who}: (entries, events, skipped, malformed, duplicates, actions) vs the generator");
}

struct Python {
    version: String,
    figures: Figures,
    wall: f64,
    hashing: f64,
    max_rss_kib: u64,
    pass: Pass,
}

fn python_baseline(path: &Path, runs: usize) -> Result<Python, String> {
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".into());
    let script = workspace_root().join("bench").join("audit_baseline.py");
    let started = Instant::now();
    let output = Command::new(&python)
        .arg(&script)
        .arg(path)
        .args(["--runs", &runs.to_string(), "--bucket", AUDIT_BUCKET, "--name", AUDIT_OBJECT, "--generation", "1"])
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
    let hashing = v["hashing_seconds"].as_array().into_iter().flatten().filter_map(Value::as_f64).sum::<f64>();
    let mut pass = Pass {
        entries: n("entries"),
        events: n("events"),
        skipped: n("skipped"),
        malformed: n("malformed"),
        duplicates: n("duplicates"),
        actions: [0; 8],
        ndjson_bytes: n("ndjson_bytes"),
        sha256: v["sha256"].as_str().map(str::to_string),
    };
    for (i, a) in ACTIONS.iter().enumerate() {
        pass.actions[i] = v["actions"][a].as_u64().unwrap_or_default();
    }
    Ok(Python {
        version: v["python"].as_str().unwrap_or("?").to_string(),
        figures: Figures { seconds },
        wall,
        hashing,
        max_rss_kib: n("max_rss_kib"),
        pass,
    })
}

/// The component's runs: timings, peak linear memory, what it counted and the SHA-256 of the
/// NDJSON it uploaded.
struct Component {
    figures: Figures,
    peak_memory: usize,
    pass: Pass,
    fuel: u64,
}

/// (c) The loader component in the harness: a fresh instance per run loads the object through
/// `gcr-usage:loader/loader#load` from a [`FakeGoogle`].
fn component_figures(path: &Path, runs: usize) -> Option<Component> {
    let wasm = gcr_usage_host_test::guest_wasm();
    if !wasm.exists() {
        eprintln!("(c) skipped: no component at {} (run `cargo xtask build`)", wasm.display());
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let (mut seconds, mut peak, mut pass, mut fuel) = (Vec::new(), 0, Pass::default(), 0);
    for run in 0..runs {
        let upstream = FakeUpstream::new();
        let google = FakeGoogle::new();
        google.object(AUDIT_BUCKET, AUDIT_OBJECT, 1, bytes.clone());
        google.install(&upstream);
        let harness = Harness::new()
            .env("GCR_USAGE_PROJECT", "demo-project")
            .env("GCR_USAGE_BUCKETS", AUDIT_BUCKET)
            .env("GCR_USAGE_AUTH", "none")
            .env("GCR_USAGE_MODE", "classified")
            .env("GCR_USAGE_WAIT_SECONDS", "3600")
            .fuel(u64::MAX / 4)
            .upstream(upstream);
        // Compile (or load the cached artifact) outside the timed call: a refused bucket.
        block_on(harness.call_load(object_ref("other-bucket", AUDIT_OBJECT, Some(1)))).ok()?;
        let started = Instant::now();
        let answer = block_on(harness.call_load(object_ref(AUDIT_BUCKET, AUDIT_OBJECT, Some(1))));
        seconds.push(started.elapsed().as_secs_f64());
        let answer = answer.unwrap_or_else(|e| panic!("the component failed: {e:?}"));
        let outcome = answer.result.unwrap_or_else(|e| panic!("the component refused the load: {e:?}"));
        let counts = outcome.counts.unwrap_or_else(|| panic!("no counts in {:?}", outcome.kind));
        peak = peak.max(answer.run.peak_memory);
        fuel = answer.run.fuel_consumed;
        if run == 0 {
            let uploads = google.uploads();
            let ndjson: Vec<u8> = uploads.iter().flat_map(|(_, body)| body.iter().copied()).collect();
            let mut actions = [0u64; 8];
            for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let v: Value = serde_json::from_slice(line).expect("the component uploads JSON lines");
                let action = v["action"].as_str().unwrap_or_default();
                actions[ACTIONS.iter().position(|a| *a == action).expect("a known action")] += 1;
            }
            pass = Pass {
                entries: counts.records,
                events: counts.events,
                skipped: counts.skipped,
                malformed: counts.malformed,
                duplicates: counts.duplicates,
                actions,
                ndjson_bytes: ndjson.len() as u64,
                sha256: Some(hex(&Sha256::digest(&ndjson))),
            };
        }
    }
    Some(Component { figures: Figures { seconds }, peak_memory: peak, pass, fuel })
}

// ---------------------------------------------------------------------------------------------
// Report

struct Report<'a> {
    path: &'a Path,
    synth: &'a AuditSynthStats,
    small: &'a AuditSynthStats,
    generated: f64,
    reference: &'a Pass,
    runs: usize,
    native: &'a [Figures],
    python: Result<&'a Python, &'a String>,
    component: Option<&'a Component>,
    small_component: Option<&'a Component>,
    load: (String, String),
}

/// Whether `other` read what the native reference read, NDJSON byte for byte.
fn agreement(other: &Pass, reference: &Pass) -> String {
    let counts = |p: &Pass| (p.entries, p.events, p.skipped, p.malformed, p.duplicates, p.actions);
    match (counts(other) == counts(reference), other.sha256 == reference.sha256) {
        (true, true) => format!(
            "same counts and actions; NDJSON byte-identical ({} bytes, SHA-256 {}…)",
            group(other.ndjson_bytes),
            &reference.sha256.as_deref().unwrap_or("?")[..16]
        ),
        (same, _) => format!(
            "DIFFERS: counts {:?} (native {:?}), NDJSON {} bytes sha256 {:?} (native {} bytes {:?}){}",
            counts(other),
            counts(reference),
            other.ndjson_bytes,
            other.sha256,
            reference.ndjson_bytes,
            reference.sha256,
            if same { " — counts agree" } else { "" }
        ),
    }
}

fn print_report(r: &Report<'_>) {
    let (bytes, s) = (r.synth.bytes, r.synth);
    println!();
    println!("gcr-usage audit-log benchmark");
    println!("  object    {}", r.path.display());
    println!(
        "            {} bytes ({:.1} MiB, {:.0} bytes per entry), {} entries: {} events, {} skipped, {} malformed, {} duplicates",
        group(bytes),
        mib(bytes),
        bytes as f64 / s.entries as f64,
        group(s.entries),
        group(s.events),
        group(s.skipped),
        s.malformed,
        s.duplicates
    );
    println!(
        "            generated in {:.2} s ({:.0} MB/s), seed {:#x}; read back from the page cache",
        r.generated,
        mb(bytes) / r.generated,
        synth_audit::DEFAULT_SEED
    );
    let mix: Vec<String> = ACTIONS
        .iter()
        .zip(s.actions)
        .filter(|(_, n)| *n > 0)
        .map(|(a, n)| format!("{a} {:.1}%", 100.0 * n as f64 / s.events.max(1) as f64))
        .collect();
    println!("  mix       {}; {} refused or failed calls", mix.join(", "), group(s.failed));
    println!(
        "  NDJSON    {} bytes ({:.2} bytes of NDJSON per byte of object)",
        group(r.reference.ndjson_bytes),
        r.reference.ndjson_bytes as f64 / bytes as f64
    );
    let table = FiguresTable { bytes, items: "entries" };
    table.print_header(&r.load, r.runs);
    let line = |name: &str, f: &Figures| table.print_row(name, s.entries, f);
    let names = [
        "(a) native AuditLogReader (frame, parse, classify)",
        "(b) native AuditLogReader + NDJSON",
        "(b') the same, NDJSON through serde_json",
    ];
    for (name, f) in names.iter().zip(r.native) {
        line(name, f);
    }
    match r.python {
        Ok(py) => line(&format!("(p) Python {} baseline (json + re)", py.version), &py.figures),
        Err(e) => table.print_missing("(p) Python baseline", e),
    }
    match r.component {
        Some(c) => line("(c) component in wasmtime, loader#load", &c.figures),
        None => table.print_missing("(c) component in wasmtime", "no component built"),
    }
    if let Some(c) = r.component {
        println!("      (c) is the whole load: download + CRC32C + reader + classify + NDJSON + 4 MiB upload chunks,");
        println!("      fake network included; {} fuel (~wasm instructions) per load", group(c.fuel));
    }
    println!();
    if let Ok(py) = r.python {
        println!("  throughput ratio to Python (same run)");
        let component = r.component.map(|c| ("(c) component in wasmtime", &c.figures));
        for (name, f) in names.iter().copied().zip(r.native).chain(component) {
            let name = name.split(" (").next().unwrap_or(name);
            println!(
                "    {:<46} {:>6.1}x best vs best, {:>6.1}x median vs median",
                name,
                py.figures.best() / f.best(),
                py.figures.median() / f.median()
            );
        }
        println!(
            "    Python process: {:.1} s wall for {} run(s) (start-up included; {:.2} s of NDJSON hashing left out of its timings), peak RSS {:.1} MiB",
            py.wall,
            py.figures.seconds.len(),
            py.hashing,
            py.max_rss_kib as f64 / 1024.0
        );
    }
    if let Some(c) = r.component {
        println!("  component vs native (b): {:.2}x best vs best", r.native[1].best() / c.figures.best());
    }
    println!();
    println!("  what each read (against the generator's counts and the native NDJSON, hashed in an extra pass)");
    println!("    native      {}", agreement(r.reference, r.reference));
    match r.python {
        Ok(py) => println!("    Python      {}", agreement(&py.pass, r.reference)),
        Err(_) => println!("    Python      not run"),
    }
    match r.component {
        Some(c) => println!("    component   {}", agreement(&c.pass, r.reference)),
        None => println!("    component   not run"),
    }
    if let (Some(c), Some(small)) = (r.component, r.small_component) {
        println!();
        println!("  component peak linear memory (instantiation included), a fresh instance per load");
        println!(
            "    {:>6.1} MiB object ({:>9} entries): {:>6.2} MiB",
            mib(r.small.bytes),
            group(r.small.entries),
            small.peak_memory as f64 / 1048576.0
        );
        println!(
            "    {:>6.1} MiB object ({:>9} entries): {:>6.2} MiB",
            mib(bytes),
            group(s.entries),
            c.peak_memory as f64 / 1048576.0
        );
        let small_ok = small.pass.entries == r.small.entries && small.pass.events == r.small.events;
        println!(
            "    {}x the object, {:+.2} MiB of linear memory{}",
            bytes / r.small.bytes.max(1),
            (c.peak_memory as f64 - small.peak_memory as f64) / 1048576.0,
            if small_ok { "" } else { " (the small load's counts DIFFER from the generator's)" }
        );
    }
}
