//! What the benchmark binaries (`classify_bench`, `audit_bench`) share: run timings and their
//! statistics, the environment knobs, the machine's description, units.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::{Metering, workspace_root};

/// Statistics of a measured path's runs: implementors say where their seconds per run are.
pub trait Timed {
    fn seconds(&self) -> &[f64];

    fn sorted(&self) -> Vec<f64> {
        let mut s = self.seconds().to_vec();
        s.sort_by(f64::total_cmp);
        s
    }
    fn best(&self) -> f64 {
        self.sorted()[0]
    }
    fn median(&self) -> f64 {
        let s = self.sorted();
        if s.len() % 2 == 1 { s[s.len() / 2] } else { (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0 }
    }
    /// (slowest - fastest) / fastest: the run-to-run noise.
    fn spread(&self) -> f64 {
        let s = self.sorted();
        (s[s.len() - 1] - s[0]) / s[0]
    }
}

/// A whole-number environment knob (e.g. `GCR_USAGE_BENCH_MB`), or `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// `$CARGO_TARGET_DIR` (relative to the workspace if relative), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

pub fn open(path: &Path, buffer: usize) -> BufReader<File> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    BufReader::with_capacity(buffer, file)
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info.lines().find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim()));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{} x {}", cpus, model.unwrap_or("unknown CPU"))
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// The figures table both benchmarks print, one row per measured path over the same input.
pub struct FiguresTable {
    /// Size of the input, for MB/s.
    pub bytes: u64,
    /// What the item rate counts ("rows", "entries").
    pub items: &'static str,
}

impl FiguresTable {
    const NAME: usize = 48;

    /// The machine, the load around the runs, the build, then the table's header.
    pub fn print_header(&self, load: &(String, String), runs: usize) {
        println!("  machine   {}; load average {} before, {} after", cpu_model(), load.0, load.1);
        println!(
            "  native    release profile (opt-level 3, thin LTO; the component: profile `component`, opt-level \"s\" with the core at 3, simd128); {runs} run(s) per path, interleaved"
        );
        println!();
        let (best, median) = (format!("best {}/s", self.items), format!("med {}/s", self.items));
        println!(
            "  {:<w$} {:>10} {:>10} {:>13} {:>13} {:>8}",
            "path",
            "best MB/s",
            "med MB/s",
            best,
            median,
            "spread",
            w = Self::NAME
        );
    }

    /// One path: `items` handed out per run, at the runs' best and median speed.
    pub fn print_row(&self, name: &str, items: u64, f: &impl Timed) {
        println!(
            "  {:<w$} {:>10.1} {:>10.1} {:>13} {:>13} {:>7.1}%",
            name,
            mb(self.bytes) / f.best(),
            mb(self.bytes) / f.median(),
            crate::group_digits((items as f64 / f.best()) as u64),
            crate::group_digits((items as f64 / f.median()) as u64),
            100.0 * f.spread(),
            w = Self::NAME
        );
    }

    pub fn print_missing(&self, name: &str, why: &str) {
        println!("  {name:<w$} not measured: {why}", w = Self::NAME);
    }
}

/// The configuration of the benchmarks' classified loads, in the component and natively.
const CLASSIFIED_LOAD_ENV: [(&str, &str); 5] = [
    ("GCR_USAGE_PROJECT", "demo-project"),
    ("GCR_USAGE_BUCKETS", "demo-gcr-logs"),
    ("GCR_USAGE_AUTH", "none"),
    ("GCR_USAGE_MODE", "classified"),
    ("GCR_USAGE_WAIT_SECONDS", "3600"),
];

/// The load [`classified_load`] times, done by the core natively against the same fake
/// ([`crate::native::classified_load`]): seconds and events.
pub fn native_classified_load(bytes: &[u8], name: &str) -> Result<(f64, u64), String> {
    let mut google = gcr_usage_fake_google::Google::new();
    google.count_uploads_only();
    google.object("demo-gcr-logs", name, 1, bytes.to_vec());
    let object = gcr_usage_core::ObjectRef { bucket: "demo-gcr-logs".into(), name: name.into(), generation: Some(1) };
    let (outcome, took) = crate::native::classified_load(&mut google, &CLASSIFIED_LOAD_ENV, object);
    let outcome = outcome.map_err(|e| format!("the core refused the load: {e}"))?;
    Ok((took.as_secs_f64(), outcome.counts.map_or(0, |c| c.events)))
}

/// One classified load of a usage log through the component in the harness: path (e) of
/// `classify_bench`, and `examples/component_pass.rs`.
pub struct ClassifiedLoad {
    pub seconds: f64,
    pub events: u64,
    /// Fuel (≈ wasm instructions) of the load: the figure that does not move with the machine.
    pub fuel: u64,
    pub peak_memory: usize,
}

/// Loads `bytes`, stored as `gs://demo-gcr-logs/NAME` (a usage-log object name), in classified
/// mode through a fresh harness and fake Google, timing only the load: the component is compiled
/// (or its cached artefact loaded) by a first, refused call. Unmetered (`Metering::Off`), the
/// fuel figure is 0.
pub fn classified_load(bytes: &[u8], name: &str, metering: Metering) -> Result<ClassifiedLoad, String> {
    use crate::{FakeGoogle, FakeUpstream, Harness, block_on, object_ref};
    let upstream = FakeUpstream::new();
    let google = FakeGoogle::new();
    // Only counted: keeping and copying the NDJSON was the fake's cost, not the component's.
    google.lock().count_uploads_only();
    google.object("demo-gcr-logs", name, 1, bytes.to_vec());
    google.install(&upstream);
    let mut harness = match metering {
        Metering::Fuel => Harness::new().fuel(u64::MAX / 4),
        Metering::Off => Harness::new().unmetered(),
    };
    for (name, value) in CLASSIFIED_LOAD_ENV {
        harness = harness.env(name, value);
    }
    let harness = harness.upstream(upstream);
    block_on(harness.call_load(object_ref("other-bucket", name, Some(1)))).map_err(|e| format!("{e:?}"))?;
    let started = std::time::Instant::now();
    let answer = block_on(harness.call_load(object_ref("demo-gcr-logs", name, Some(1))));
    let seconds = started.elapsed().as_secs_f64();
    let answer = answer.map_err(|e| format!("the component failed: {e:?}"))?;
    let outcome = answer.result.map_err(|e| format!("the component refused the load: {e:?}"))?;
    Ok(ClassifiedLoad {
        seconds,
        events: outcome.counts.map_or(0, |c| c.events),
        fuel: answer.run.fuel_consumed,
        peak_memory: answer.run.peak_memory,
    })
}
