//! `cargo run --release -p gcr-usage-host-test --bin backfill_bench`: what planning a backfill
//! costs on a large listing — the CPU and heap of `gcr-usage backfill` between the listing's
//! answers and its first reservation, without any network.
//!
//! 1. Generates (seeded, the same bytes every run) the 100 answers of an `objects.list` of a log
//!    bucket holding 100,000 objects, 1,000 per page as Cloud Storage returns them, in name order,
//!    only the fields the CLI asks for (`items(name,generation,size),nextPageToken`; `generation`
//!    and `size` as JSON strings, as the JSON API writes int64): ~93% usage logs
//!    (`PREFIX_usage_YYYY_MM_DD_HH_00_00_<hex id>_v0`) of six source buckets over a year, 5% storage
//!    logs, 2% objects that are no log (notes, exports, summaries).
//! 2. Times, best and median of `GCR_USAGE_BENCH_RUNS` runs (default 7, at least 5), interleaved:
//!    (j) `serde_json::from_slice::<Value>` of every page — the baseline: plain JSON parsing of the
//!    same bytes; (1) `listing::parse_page` of every page into one `Vec<Listed>` (what the CLI's
//!    listing loop does); (2) `listing::log_objects` (the name parser on every object, the hour
//!    window); (3) `batching::plan_backfill` in raw mode and (3') in both mode (`plan_load` per
//!    object, grouping per table and format, cutting batches); (t) all of it end to end, raw and
//!    both. Inputs a stage consumes are cloned outside its timing.
//! 3. Measures heap with a counting global allocator (current and peak bytes, around `System`):
//!    per stage the peak above what was held before it and what it leaves held, and the peak of
//!    the whole planning (pages already in memory excluded) per object.
//!
//! The counting allocator costs every path an atomic add per allocation (the JSON baseline too).
//! This is a report, not a test: nothing here asserts on timings (it does check the plan).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use gcr_usage_core::Config;
use gcr_usage_core::backoff::Jitter;
use gcr_usage_core::batching::{BackfillPlan, Limits, plan_backfill};
use gcr_usage_core::job::LoadFormat;
use gcr_usage_core::listing::{self, HourWindow, Listed, LogObject};
use gcr_usage_host_test::bench_support::{Timed, cpu_model, env_number, load_average, mb, mib};
use gcr_usage_host_test::group_digits as group;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// A counting allocator: current and peak heap bytes of the process (the bench is one thread).

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(by: usize) {
    CURRENT.fetch_sub(by, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap of a stage: the most it held above what was held before it, and what it left held.
#[derive(Debug, Clone, Copy, Default)]
struct Heap {
    peak: usize,
    retained: isize,
}

/// Runs `f`, with the heap it took.
fn measured<T>(f: impl FnOnce() -> T) -> (T, Heap) {
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    let (peak, after) = (PEAK.load(Ordering::Relaxed), CURRENT.load(Ordering::Relaxed));
    (out, Heap { peak: peak - before, retained: after as isize - before as isize })
}

// ---------------------------------------------------------------------------------------------
// The listing.

const RUNS_ENV: &str = "GCR_USAGE_BENCH_RUNS";
const DEFAULT_RUNS: u64 = 7;
const SEED: u64 = 0x6261_636b_6669_6c6c; // "backfill"
const BUCKET: &str = "demo-gcr-logs";
const OBJECTS: usize = 100_000;
const PAGE: usize = listing::PAGE_SIZE as usize;
const STORAGE_LOGS: usize = OBJECTS * 5 / 100;
const NOT_LOGS: usize = OBJECTS * 2 / 100;
const USAGE_LOGS: usize = OBJECTS - STORAGE_LOGS - NOT_LOGS;
/// Source buckets (the log prefix is the logged bucket's name by default), with their weight.
const PREFIXES: [(&str, u64); 6] = [
    ("artifacts.demo-project.appspot.com", 40),
    ("us.artifacts.demo-project.appspot.com", 25),
    ("eu.artifacts.demo-project.appspot.com", 15),
    ("asia.artifacts.demo-project.appspot.com", 8),
    ("gcr-usage.eu.artifacts.demo-project.appspot.com", 7),
    ("accessLog", 5),
];
const DAYS: u64 = 365;

struct Rng(Jitter);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }
    fn prefix(&mut self) -> &'static str {
        let total: u64 = PREFIXES.iter().map(|(_, w)| w).sum();
        let mut at = self.below(total);
        for (prefix, weight) in PREFIXES {
            if at < weight {
                return prefix;
            }
            at -= weight;
        }
        unreachable!()
    }
    /// A day of 2024 (month, day): the first DAYS of its 366.
    fn day(&mut self) -> (u64, u64) {
        const MONTHS: [u64; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        let mut left = self.below(DAYS);
        for (month, days) in MONTHS.into_iter().enumerate() {
            if left < days {
                return (month as u64 + 1, left + 1);
            }
            left -= days;
        }
        unreachable!("DAYS <= 366")
    }
    /// A shard id as real ones look: 18 lower-case hex digits.
    fn shard(&mut self) -> String {
        format!("{:016x}{:02x}", self.0.next_u64(), self.below(256))
    }
}

fn log_name(prefix: &str, kind: &str, (month, day): (u64, u64), hour: u64, shard: &str) -> String {
    format!("{prefix}_{kind}_2024_{month:02}_{day:02}_{hour:02}_00_00_{shard}_v0")
}

/// What the generated listing holds.
struct Listing {
    pages: Vec<Vec<u8>>,
    usage: usize,
    storage: usize,
    not_logs: usize,
    log_bytes: u64,
}

fn generate() -> Listing {
    let mut rng = Rng(Jitter::new(SEED));
    let mut objects: Vec<(String, u64)> = Vec::with_capacity(OBJECTS);
    for _ in 0..USAGE_LOGS {
        let (prefix, day, hour) = (rng.prefix(), rng.day(), rng.below(24));
        let shard = rng.shard();
        objects.push((log_name(prefix, "usage", day, hour, &shard), 300 + rng.below(200_000)));
    }
    for _ in 0..STORAGE_LOGS {
        let (prefix, day) = (rng.prefix(), rng.day());
        let shard = rng.shard();
        objects.push((log_name(prefix, "storage", day, 7, &shard), 90 + rng.below(40)));
    }
    for i in 0..NOT_LOGS {
        let name = match i % 4 {
            0 => format!("notes/README-{i}.txt"),
            1 => format!("{}_usage_summary_{i}.csv", rng.prefix()),
            2 => format!("exports/2024/{:02}/usage-report-{i}.json", 1 + rng.below(12)),
            _ => format!("tmp/{}.partial", rng.shard()),
        };
        objects.push((name, rng.below(1 << 20)));
    }
    let log_bytes = objects[..USAGE_LOGS + STORAGE_LOGS].iter().map(|(_, size)| size).sum();
    // objects.list answers in lexicographic name order.
    objects.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    objects.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(objects.len(), OBJECTS, "generated names are unique");

    let pages_total = OBJECTS.div_ceil(PAGE);
    let pages = objects
        .chunks(PAGE)
        .enumerate()
        .map(|(i, chunk)| {
            let items: Vec<Value> = chunk
                .iter()
                .map(|(name, size)| {
                    let generation = 1_704_067_200_000_000 + rng.below(31_536_000_000_000);
                    json!({"name": name, "generation": generation.to_string(), "size": size.to_string()})
                })
                .collect();
            let mut page = json!({ "items": items });
            if i + 1 < pages_total {
                // An opaque continuation token, about as long as Cloud Storage's.
                page["nextPageToken"] = json!(format!("Cg{:016x}{:016x}GAE=", rng.0.next_u64(), i));
            }
            let mut body = serde_json::to_vec(&page).expect("serialising to memory cannot fail");
            body.shrink_to_fit();
            body
        })
        .collect();
    Listing { pages, usage: USAGE_LOGS, storage: STORAGE_LOGS, not_logs: NOT_LOGS, log_bytes }
}

// ---------------------------------------------------------------------------------------------
// The stages, as `backfill::run` strings them together.

fn config(mode: &str) -> Config {
    Config::from_env(|name| match name {
        "GCR_USAGE_BUCKETS" => Some(BUCKET.into()),
        "GCR_USAGE_PROJECT" => Some("demo-project".into()),
        "GCR_USAGE_MODE" => Some(mode.into()),
        _ => None,
    })
    .expect("a valid configuration")
}

fn parse_all(pages: &[Vec<u8>]) -> Vec<Listed> {
    let mut items = Vec::new();
    for body in pages {
        let page = listing::parse_page(BUCKET, body).expect("a listing page");
        items.extend(page.items);
    }
    items
}

fn json_values(pages: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for body in pages {
        let value: Value = serde_json::from_slice(body).expect("JSON");
        n += value["items"].as_array().map_or(0, Vec::len);
        drop(black_box(value));
    }
    n
}

fn filter(items: Vec<Listed>) -> Vec<LogObject> {
    listing::log_objects(items, &HourWindow::default())
}

fn end_to_end(pages: &[Vec<u8>], config: &Config, limits: &Limits) -> BackfillPlan {
    plan_backfill(config, filter(parse_all(pages)), limits)
}

/// The plan must be what the listing asks for: every log object in a batch, once per format.
fn check_plan(plan: &BackfillPlan, listing: &Listing, both: bool, limits: &Limits) {
    assert!(plan.skipped.is_empty(), "{:?}", &plan.skipped[..plan.skipped.len().min(3)]);
    let count = |format: LoadFormat, table: &str| -> (usize, usize) {
        let batches: Vec<_> = plan.batches.iter().filter(|b| b.format == format && b.table_id == table).collect();
        (batches.len(), batches.iter().map(|b| b.objects.len()).sum())
    };
    let jobs = |n: usize| n.div_ceil(limits.objects_per_job);
    assert_eq!(count(LoadFormat::RawCsv, "usage"), (jobs(listing.usage), listing.usage));
    assert_eq!(count(LoadFormat::RawCsv, "storage"), (jobs(listing.storage), listing.storage));
    let events = if both { (jobs(listing.usage), listing.usage) } else { (0, 0) };
    assert_eq!(count(LoadFormat::Events, "registry_events"), events);
}

struct Path {
    name: &'static str,
    seconds: Vec<f64>,
}

impl Timed for Path {
    fn seconds(&self) -> &[f64] {
        &self.seconds
    }
}

fn main() {
    let runs = env_number(RUNS_ENV, DEFAULT_RUNS).max(5) as usize;
    let load_before = load_average();
    let started = Instant::now();
    let (listing, generated_heap) = measured(generate);
    let generated = started.elapsed().as_secs_f64();
    let json_bytes: u64 = listing.pages.iter().map(|p| p.len() as u64).sum();
    let (raw, both, limits) = (config("raw"), config("both"), Limits::default());
    let log_objects = listing.usage + listing.storage;

    // Inputs of the later stages, made once (each timed run consumes a clone made before its clock).
    let items = parse_all(&listing.pages);
    assert_eq!(items.len(), OBJECTS);
    let objects = filter(items.clone());
    assert_eq!(objects.len(), log_objects, "every usage and storage log, no other object");
    assert_eq!(objects.iter().map(|o| o.listed.size).sum::<u64>(), listing.log_bytes);

    let mut paths: Vec<Path> = [
        "(j) serde_json::from_slice::<Value>, every page",
        "(1) listing::parse_page, every page",
        "(2) listing::log_objects (name parser, window)",
        "(3) batching::plan_backfill, raw mode",
        "(3') batching::plan_backfill, both mode",
        "(t) all of it (1+2+3), raw mode",
        "(t') all of it (1+2+3'), both mode",
    ]
    .into_iter()
    .map(|name| Path { name, seconds: Vec::with_capacity(runs) })
    .collect();
    let time = |path: &mut Path, f: &mut dyn FnMut()| {
        let started = Instant::now();
        f();
        path.seconds.push(started.elapsed().as_secs_f64());
    };
    for _ in 0..runs {
        time(&mut paths[0], &mut || assert_eq!(json_values(black_box(&listing.pages)), OBJECTS));
        time(&mut paths[1], &mut || drop(black_box(parse_all(black_box(&listing.pages)))));
        let mut input = Some(items.clone());
        time(&mut paths[2], &mut || drop(black_box(filter(input.take().unwrap()))));
        let mut input = Some(objects.clone());
        time(&mut paths[3], &mut || drop(black_box(plan_backfill(&raw, input.take().unwrap(), &limits))));
        let mut input = Some(objects.clone());
        time(&mut paths[4], &mut || drop(black_box(plan_backfill(&both, input.take().unwrap(), &limits))));
        time(&mut paths[5], &mut || drop(black_box(end_to_end(&listing.pages, &raw, &limits))));
        time(&mut paths[6], &mut || drop(black_box(end_to_end(&listing.pages, &both, &limits))));
    }
    let load_after = load_average();

    // Heap, in an untimed pass: stage by stage, then the whole planning at once.
    let (items_m, parse_heap) = measured(|| parse_all(&listing.pages));
    let (objects_m, filter_heap) = measured(|| filter(items_m));
    let raw_input = objects_m.clone();
    let (plan_raw, plan_raw_heap) = measured(|| plan_backfill(&raw, raw_input, &limits));
    let (plan_both, plan_both_heap) = measured(|| plan_backfill(&both, objects_m, &limits));
    check_plan(&plan_raw, &listing, false, &limits);
    check_plan(&plan_both, &listing, true, &limits);
    let (raw_batches, both_batches) = (plan_raw.batches.len(), plan_both.batches.len());
    drop((plan_raw, plan_both));
    let (plan, total_raw_heap) = measured(|| end_to_end(&listing.pages, &raw, &limits));
    check_plan(&plan, &listing, false, &limits);
    drop(plan);
    let (plan, total_both_heap) = measured(|| end_to_end(&listing.pages, &both, &limits));
    drop(plan);
    let (_, json_heap) = measured(|| json_values(&listing.pages));

    print_report(&Report {
        listing: &listing,
        json_bytes,
        generated,
        generated_heap,
        runs,
        paths: &paths,
        load: (load_before, load_after),
        heaps: [
            ("(j) one page's Value at a time", json_heap),
            ("(1) parse_page -> Vec<Listed>", parse_heap),
            ("(2) log_objects -> Vec<LogObject>", filter_heap),
            ("(3) plan_backfill raw -> BackfillPlan", plan_raw_heap),
            ("(3') plan_backfill both -> BackfillPlan", plan_both_heap),
            ("(t) all of it, raw mode", total_raw_heap),
            ("(t') all of it, both mode", total_both_heap),
        ],
        batches: (raw_batches, both_batches),
    });
}

struct Report<'a> {
    listing: &'a Listing,
    json_bytes: u64,
    generated: f64,
    generated_heap: Heap,
    runs: usize,
    paths: &'a [Path],
    load: (String, String),
    heaps: [(&'static str, Heap); 7],
    batches: (usize, usize),
}

/// Rounded to three decimals, for the JSON summary.
fn r3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn ms(seconds: f64) -> String {
    format!("{:.1}", seconds * 1e3)
}

fn print_report(r: &Report<'_>) {
    let l = r.listing;
    let n = OBJECTS as f64;
    println!();
    println!("gcr-usage backfill planner benchmark (no network: the listing's answers are in memory)");
    println!(
        "  listing   {} objects in {} objects.list pages of {}: {} usage logs, {} storage logs, {} not logs; {} prefixes over {} days",
        group(OBJECTS as u64),
        l.pages.len(),
        PAGE,
        group(l.usage as u64),
        group(l.storage as u64),
        group(l.not_logs as u64),
        PREFIXES.len(),
        DAYS
    );
    println!(
        "            {} bytes of JSON ({:.1} MiB, {:.0} bytes per object), generated in {:.2} s (seed {SEED:#x}; pages hold {:.1} MiB of heap)",
        group(r.json_bytes),
        mib(r.json_bytes),
        r.json_bytes as f64 / n,
        r.generated,
        mib(r.generated_heap.retained.max(0) as u64)
    );
    println!(
        "  plan      raw: {} load jobs (usage, storage; objects-per-job {}), both: {} (+ registry_events); nothing skipped",
        r.batches.0,
        Limits::default().objects_per_job,
        r.batches.1
    );
    println!("  machine   {}; load average {} before, {} after", cpu_model(), r.load.0, r.load.1);
    println!(
        "  native    release profile (opt-level 3, thin LTO; the component: profile `component`, opt-level \"s\" with the core at 3, simd128); {} runs per path, interleaved; counting allocator on",
        r.runs
    );
    println!();
    let j = &r.paths[0];
    println!(
        "  {:<46} {:>9} {:>9} {:>12} {:>9} {:>8} {:>8}",
        "path", "best ms", "med ms", "objects/s", "MB/s", "x (j)", "spread"
    );
    println!("  {}", "-".repeat(46 + 9 * 3 + 12 + 8 * 2 + 6));
    for p in r.paths {
        println!(
            "  {:<46} {:>9} {:>9} {:>12} {:>9.1} {:>7.2}x {:>7.1}%",
            p.name,
            ms(p.best()),
            ms(p.median()),
            group((n / p.best()) as u64),
            mb(r.json_bytes) / p.best(),
            p.best() / j.best(),
            100.0 * p.spread()
        );
    }
    println!(
        "      objects/s and MB/s: of the whole listing (100,000 objects, its JSON) per best run, whatever the stage;"
    );
    println!("      x (j) = best time / best time of plain JSON parsing into serde_json::Value, same run");
    println!();
    println!(
        "  heap (counting allocator): peak = most held above what was held before the stage (the pages excluded),"
    );
    println!("  left = change of what is held after it (negative: the stage consumed its input)");
    println!("  {:<46} {:>11} {:>13} {:>11}", "stage", "peak MiB", "peak B/object", "left MiB");
    for (name, h) in &r.heaps {
        println!(
            "  {:<46} {:>11.2} {:>13.0} {:>11.2}",
            name,
            mib(h.peak as u64),
            h.peak as f64 / n,
            h.retained as f64 / f64::from(1 << 20)
        );
    }
    let t = &r.paths[5];
    let t_both = &r.paths[6];
    let heap = r.heaps[5].1;
    let heap_both = r.heaps[6].1;
    println!();
    println!(
        "  planning 100,000 objects: {} ms (raw, best), {} objects/s, {:.1}x plain JSON parsing; peak heap {:.1} MiB = {:.0} bytes/object",
        ms(t.best()),
        group((n / t.best()) as u64),
        t.best() / j.best(),
        mib(heap.peak as u64),
        heap.peak as f64 / n
    );
    let summary = json!({
        "bench": "backfill_planner",
        "objects": OBJECTS,
        "pages": l.pages.len(),
        "json_bytes": r.json_bytes,
        "runs": r.runs,
        "best_ms": {
            "json_value": r3(j.best() * 1e3),
            "parse_page": r3(r.paths[1].best() * 1e3),
            "log_objects": r3(r.paths[2].best() * 1e3),
            "plan_raw": r3(r.paths[3].best() * 1e3),
            "plan_both": r3(r.paths[4].best() * 1e3),
            "total_raw": r3(t.best() * 1e3),
            "total_both": r3(t_both.best() * 1e3),
        },
        "objects_per_s_raw": (n / t.best()).round(),
        "objects_per_s_both": (n / t_both.best()).round(),
        "total_raw_vs_json_value": r3(t.best() / j.best()),
        "total_both_vs_json_value": r3(t_both.best() / j.best()),
        "peak_heap_bytes_raw": heap.peak,
        "peak_heap_bytes_both": heap_both.peak,
        "heap_bytes_per_object_raw": (heap.peak as f64 / n).round(),
        "heap_bytes_per_object_both": (heap_both.peak as f64 / n).round(),
        "load_jobs_raw": r.batches.0,
        "load_jobs_both": r.batches.1,
    });
    println!("{summary}");
}
