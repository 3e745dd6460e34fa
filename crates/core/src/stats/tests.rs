use std::path::{Path, PathBuf};

use super::*;
use crate::object::ObjectRef;
use crate::usage::classify::classify;
use crate::usage::reader::{ReadStats, ReaderOptions};
use crate::usage::row::UsageRow;

/// Rule 3 and 4 (the grouping of blob downloads into pulls), apart from what is counted.
mod pull_rule;

const MIN: i64 = 60 * 1_000_000;
/// 2024-03-11T00:00:00Z
const DAY0: i64 = 1_710_115_200_000_000;

fn source() -> ObjectRef {
    ObjectRef { bucket: "logs".into(), name: "test_usage_2024_03_11_14_00_00_00_v0".into(), generation: None }
}

fn digest(n: u64) -> String {
    format!("sha256:{n:064x}")
}

/// A blob GET of `repository`'s blob `n` by `ip` at `t` from `gcr.io`, with status `status`.
fn blob(ip: &str, t: i64, repository: &str, n: u64, status: u16) -> UsageRow<'static> {
    blob_from("gcr.io", ip, t, repository, n, status)
}

fn blob_from(host: &str, ip: &str, t: i64, repository: &str, n: u64, status: u16) -> UsageRow<'static> {
    let d = digest(n);
    UsageRow {
        time_micros: t,
        c_ip: ip.to_string().into(),
        cs_method: "GET".into(),
        cs_uri: format!("/artifacts.demo.appspot.com/containers/images/{d}").into(),
        sc_status: status,
        sc_bytes: 1000 + n,
        cs_host: "storage.googleapis.com".into(),
        cs_referer: format!("https://{host}/v2/{repository}/blobs/{d}").into(),
        cs_user_agent: "docker/24.0.7 go/go1.20.10,gzip(gfe)".into(),
        s_request_id: format!("req-{ip}-{t}-{n}-{status}").into(),
        cs_operation: "GET_Object".into(),
        cs_bucket: "artifacts.demo.appspot.com".into(),
        cs_object: format!("containers/images/{d}").into(),
        ..UsageRow::default()
    }
}

fn stats_of(rows: &[UsageRow]) -> UsageStats {
    let mut stats = UsageStats::default();
    let source = source();
    for row in rows {
        stats.add(&classify(row, &source));
    }
    stats
}

fn pulls(rows: &[UsageRow]) -> u64 {
    stats_of(rows).report(None).summary.pulls
}

#[test]
fn one_pull_is_many_blob_downloads() {
    let rows = [blob("10.0.0.1", DAY0, "p/app", 1, 200), blob("10.0.0.1", DAY0 + 500_000, "p/app", 2, 200)];
    let report = stats_of(&rows).report(None);
    assert_eq!(report.summary.pulls, 1);
    assert_eq!(report.summary.blob_downloads, 2);
    let image = &report.images[0];
    assert_eq!((image.registry_host.as_str(), image.repository.as_str()), ("gcr.io", "p/app"));
    assert_eq!((image.pulls, image.blob_downloads, image.bytes_served, image.clients), (1, 2, 2003, 1));
}

#[test]
fn clients_and_images_are_separate_groups() {
    let rows = [
        blob("10.0.0.1", DAY0, "p/app", 1, 200),
        blob("10.0.0.2", DAY0, "p/app", 1, 200),
        blob("10.0.0.1", DAY0 + 1000, "p/other", 3, 200),
        blob("10.0.0.1", DAY0 + 2000, "p/app/nested", 4, 200),
        blob_from("eu.gcr.io", "10.0.0.1", DAY0 + 3000, "p/app", 5, 200),
        // The host is compared case-insensitively: the same image as the row above.
        blob_from("EU.GCR.IO", "10.0.0.1", DAY0 + 4000, "p/app", 6, 200),
    ];
    let report = stats_of(&rows).report(None);
    let images: Vec<(&str, &str, u64, u64, u64)> = report
        .images
        .iter()
        .map(|i| (i.registry_host.as_str(), i.repository.as_str(), i.pulls, i.blob_downloads, i.clients))
        .collect();
    assert_eq!(
        images,
        [
            ("gcr.io", "p/app", 2, 2, 2),
            ("eu.gcr.io", "p/app", 1, 2, 1),
            ("gcr.io", "p/app/nested", 1, 1, 1),
            ("gcr.io", "p/other", 1, 1, 1),
        ]
    );
    assert_eq!(report.summary.pulls, 5);
    assert_eq!(report.summary.pulling_clients, 2);
    let top = &report.clients_by_pulls[0];
    assert_eq!((top.client_ip.as_str(), top.pulls, top.blob_downloads, top.images), ("10.0.0.1", 4, 5, 4));
    assert_eq!(top.client_families, "docker");
}

#[test]
fn failures_heads_and_unattributed_reads_are_not_downloads() {
    let mut head = blob("10.0.0.1", DAY0, "p/app", 1, 200);
    head.cs_method = "HEAD".into();
    head.cs_operation = "GET_Object_Metadata".into();
    let mut no_referer = blob("10.0.0.3", DAY0, "p/app", 2, 200);
    no_referer.cs_referer = "".into();
    let mut wrong_digest = blob("10.0.0.4", DAY0, "p/app", 3, 200);
    wrong_digest.cs_referer = format!("https://gcr.io/v2/p/app/blobs/{}", digest(9)).into();
    let rows = [
        blob("10.0.0.1", DAY0, "p/app", 1, 403),
        blob("10.0.0.1", DAY0, "p/app", 2, 404),
        blob("10.0.0.1", DAY0 + 1, "p/app", 1, 503),
        blob("10.0.0.1", DAY0 + 2, "p/app", 1, 302),
        head,
        no_referer,
        wrong_digest,
    ];
    let report = stats_of(&rows).report(None);
    assert_eq!((report.summary.pulls, report.summary.blob_downloads, report.summary.images), (0, 0, 0));
    assert!(report.images.is_empty() && report.clients_by_pulls.is_empty());
    assert_eq!((report.summary.unattributed_blob_downloads, report.summary.unattributed_bytes), (2, 1002 + 1003));
    let failures: Vec<(u16, &str, u64)> = report.failures.iter().map(|f| (f.status, f.action, f.count)).collect();
    assert_eq!(failures, [(302, "pull", 1), (403, "pull", 1), (404, "pull", 1), (503, "pull", 1)]);
    assert_eq!(report.summary.failures, 4);
    assert_eq!(report.buckets[0].failures, 4);
    assert_eq!(report.buckets[0].content_reads, 2);
}

#[test]
fn not_modified_counts_as_a_download() {
    let report = stats_of(&[blob("10.0.0.1", DAY0, "p/app", 1, 304)]).report(None);
    assert_eq!((report.summary.pulls, report.summary.blob_downloads, report.summary.failures), (1, 1, 0));
}

#[test]
fn duplicates_across_files_count_once_and_never_change_pulls() {
    let rows = [blob("10.0.0.1", DAY0, "p/app", 1, 200), blob("10.0.0.1", DAY0 + MIN, "p/app", 2, 200)];
    let source = source();
    let read = ReadStats {
        records: 2,
        rows: 2,
        malformed: 0,
        duplicates: 0,
        invalid_utf8: 0,
        repeated_headers: 0,
        header: crate::usage::reader::HeaderKind::Documented,
        malformed_samples: Vec::new(),
    };
    for (dedup, downloads) in [(true, 2), (false, 4)] {
        let mut stats = UsageStats::new(StatsOptions { dedup_across_files: dedup, ..StatsOptions::default() });
        for file in ["a", "b"] {
            for row in &rows {
                stats.add(&classify(row, &source));
            }
            stats.finish_file(file, &read);
        }
        let report = stats.report(None);
        assert_eq!((report.summary.pulls, report.summary.blob_downloads), (1, downloads), "dedup {dedup}");
        let per_file: Vec<(u64, u64)> = report.files.iter().map(|f| (f.events, f.duplicates_across_files)).collect();
        assert_eq!(per_file, if dedup { [(2, 0), (0, 2)] } else { [(2, 0), (2, 0)] });
        assert_eq!(report.summary.events, downloads);
    }
}

#[test]
fn pushes_and_buckets() {
    let mut push = blob("10.0.0.9", DAY0, "p/app", 1, 200);
    push.cs_method = "PUT".into();
    push.cs_operation = "PUT_Object".into();
    push.cs_referer = "".into();
    push.cs_bytes = 4096;
    let mut failed_push = push.clone();
    failed_push.sc_status = 403;
    failed_push.s_request_id = "other".into();
    let mut download = blob("10.0.0.9", DAY0, "p/app", 2, 200);
    download.cs_bucket = "releases".into();
    download.cs_object = "v1/tool.tar.gz".into();
    download.cs_uri = "/releases/v1/tool.tar.gz".into();
    let report = stats_of(&[push, failed_push, download]).report(None);
    let p = &report.pushes[0];
    assert_eq!(
        (p.bucket.as_str(), p.registry_host.as_deref(), p.repository.as_deref()),
        ("artifacts.demo.appspot.com", Some("gcr.io"), None)
    );
    assert_eq!((p.pushes, p.failed, p.bytes_received, p.clients), (1, 1, 4096, 1));
    assert_eq!(report.summary.pushes, 1);
    let buckets: Vec<(&str, u64, u64, u64, u64)> =
        report.buckets.iter().map(|b| (b.bucket.as_str(), b.events, b.content_reads, b.writes, b.failures)).collect();
    assert_eq!(buckets, [("artifacts.demo.appspot.com", 2, 0, 1, 1), ("releases", 1, 1, 0, 0)]);
    assert!(report.images.is_empty(), "an object download in another bucket is not an image pull");
}

#[test]
fn top_limits_the_client_lists_and_orders_them() {
    let rows = [
        blob("10.0.0.1", DAY0, "p/app", 1, 200),
        blob("10.0.0.1", DAY0 + 10 * MIN, "p/app", 1, 200),
        blob("10.0.0.2", DAY0, "p/app", 50, 200),
        blob("10.0.0.3", DAY0, "p/app", 2, 200),
    ];
    let report = stats_of(&rows).report(Some(2));
    let by_pulls: Vec<&str> = report.clients_by_pulls.iter().map(|c| c.client_ip.as_str()).collect();
    let by_bytes: Vec<&str> = report.clients_by_bytes.iter().map(|c| c.client_ip.as_str()).collect();
    assert_eq!(by_pulls, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(by_bytes, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(report.clients_by_bytes[0].bytes_served, 2002);
    assert_eq!(report.clients_by_bytes[1].bytes_served, 1050);
    assert_eq!(stats_of(&rows).report(None).clients_by_pulls.len(), 3);
}

#[test]
fn pull_timeline_buckets_pulls_by_their_first_download() {
    let rows = [
        blob("10.0.0.1", DAY0 + 59 * MIN, "p/app", 1, 200),
        blob("10.0.0.1", DAY0 + 62 * MIN, "p/app", 2, 200),
        blob("10.0.0.2", DAY0 + 61 * MIN, "p/app", 2, 200),
    ];
    let timeline = stats_of(&rows).pull_timeline(60 * MIN);
    let expected = PullSeries {
        registry_host: "gcr.io".into(),
        repository: "p/app".into(),
        buckets: vec![(DAY0, 1), (DAY0 + 60 * MIN, 1)],
    };
    assert_eq!(timeline, [expected]);
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/logs")
}

/// `fixtures/logs/README.md`'s image table: blob downloads, bytes and clients per image, and
/// its config downloads (one per pull in these fixtures) as the expected pulls.
#[test]
fn fixture_logs_give_the_readme_numbers() {
    let mut stats = UsageStats::default();
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("_usage_"))
        .collect();
    names.sort();
    for name in &names {
        let bytes = std::fs::read(fixtures().join(name)).unwrap();
        let source = ObjectRef { bucket: String::new(), name: name.clone(), generation: None };
        stats.read_log(&source, bytes.as_slice(), ReaderOptions::default()).unwrap();
    }
    let report = stats.report(None);
    let got: Vec<(String, u64, u64, u64, u64)> = report
        .images
        .iter()
        .map(|i| {
            (format!("{}/{}", i.registry_host, i.repository), i.pulls, i.blob_downloads, i.bytes_served, i.clients)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("gcr.io/demo-project/app".to_string(), 3, 8, 61307353, 3),
            ("gcr.io/demo-project/team/api/server".to_string(), 2, 4, 33822787, 2),
            ("us.gcr.io/demo-project/batch/worker".to_string(), 2, 4, 18885392, 2),
            ("eu.gcr.io/demo-project/app".to_string(), 2, 3, 18575384, 2),
            ("eu.gcr.io/demo-project/team/api/server".to_string(), 1, 1, 4198, 1),
        ]
    );
    let s = &report.summary;
    assert_eq!((s.files_read, s.records, s.rows, s.events, s.duplicates_across_files), (5, 31, 31, 30, 1));
    assert_eq!((s.unattributed_blob_downloads, s.failures), (2, 3));
    // The README's table, cross-checked so that a fixture change cannot leave this test stale.
    let readme = std::fs::read_to_string(fixtures().join("README.md")).unwrap();
    for (image, _, downloads, bytes, clients) in &got {
        let (host, repository) = image.split_once('/').unwrap();
        let line = format!("| {host} | {repository} | {downloads} | {bytes} | {clients} |");
        assert!(readme.contains(&line), "README lacks {line}");
    }
}

/// `action_name` spells out what serde derives; the failure list and the NDJSON events must
/// name an action the same way.
#[test]
fn action_names_are_the_serde_names() {
    use crate::registry_event::Action;
    for action in [
        Action::Pull,
        Action::Push,
        Action::Download,
        Action::Upload,
        Action::Delete,
        Action::List,
        Action::Admin,
        Action::Other,
    ] {
        assert_eq!(serde_json::to_value(action).unwrap(), action_name(action), "{action:?}");
    }
}

/// A usage log of `rows`, each `(time_micros, request id, object name bytes)`, as blob GETs.
fn log_text(rows: &[(i64, &str, &[u8])]) -> Vec<u8> {
    let mut out = crate::usage::reader::HEADER_LINE.as_bytes().to_vec();
    out.push(b'\n');
    for (t, id, object) in rows {
        let d = digest(7);
        out.extend_from_slice(
            format!(
                "\"{t}\",\"10.0.0.1\",\"1\",\"\",\"GET\",\"/artifacts.demo.appspot.com/containers/images/{d}\",\"200\",\
                 \"0\",\"1000\",\"10\",\"storage.googleapis.com\",\"https://gcr.io/v2/p/app/blobs/{d}\",\"docker/24.0.7\",\
                 \"{id}\",\"GET_Object\",\"artifacts.demo.appspot.com\",\""
            )
            .as_bytes(),
        );
        out.extend_from_slice(object);
        out.extend_from_slice(b"\"\n");
    }
    out
}

fn read_all(files: &[(String, Vec<u8>)], options: StatsOptions, dedup: crate::usage::Dedup) -> Report {
    let mut stats = UsageStats::new(options);
    for (name, bytes) in files {
        let source = ObjectRef { bucket: String::new(), name: name.clone(), generation: None };
        let reader = ReaderOptions { dedup, ..ReaderOptions::default() };
        stats.read_log(&source, bytes.as_slice(), reader).unwrap();
    }
    stats.report(None)
}

/// The CLI's reader keeps duplicates (`Dedup::Off`) and leaves them to the statistics' filter:
/// every number, per file too, is what a reader that drops them gives — a copy of a row with
/// invalid UTF-8 included, with and without deduplication across files.
#[test]
fn the_statistics_drop_what_a_deduplicating_reader_would() {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains("_usage_"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(p).unwrap()))
        .collect();
    files.sort();
    let bad: &[u8] = b"containers/images/\xff\xfe";
    files.push((
        "z_usage_2024_03_11_15_00_00_00_v0".into(),
        log_text(&[
            (DAY0, "a", bad),
            (DAY0 + 1, "b", b"x"),
            (DAY0, "a", bad),
            (DAY0 + 1, "b", b"x"),
            (DAY0, "c", b"y"),
        ]),
    ));
    files.push(("z_usage_2024_03_11_16_00_00_00_v0".into(), log_text(&[(DAY0, "a", bad), (DAY0, "d", bad)])));
    for across in [true, false] {
        let options = StatsOptions { dedup_across_files: across, ..StatsOptions::default() };
        let dropping = read_all(&files, options, crate::usage::Dedup::Exact);
        let keeping = read_all(&files, options, crate::usage::Dedup::Off);
        assert_eq!(keeping, dropping, "across files: {across}");
        let last = &dropping.files[dropping.files.len() - 2..];
        let counts: Vec<_> =
            last.iter().map(|f| (f.rows, f.duplicates, f.invalid_utf8, f.duplicates_across_files)).collect();
        assert_eq!(counts, if across { [(3, 2, 1, 0), (2, 0, 2, 1)] } else { [(3, 2, 1, 0), (2, 0, 2, 0)] });
    }
}

/// Past its window the filter forgets the oldest minutes: copies of recent rows are still
/// found, a copy of a forgotten one counts again, and the report says how many rows could
/// not be fully checked.
#[test]
fn a_small_dedup_window_forgets_the_oldest_minutes_and_says_so() {
    let ids: Vec<String> = (0..100).map(|n| format!("id-{n}")).collect();
    // File A: minutes 0..9, ten rows each, in time order.
    let a: Vec<(i64, &str, &[u8])> =
        (0..100).map(|n| (DAY0 + (n / 10) * MIN, ids[n as usize].as_str(), &b"o"[..])).collect();
    // File B: copies of two minute-9 rows (a late delivery), then a copy of a minute-0 row.
    let b = [a[95], a[99], a[0]];
    let files = [("a_usage_2024_03_11_14_00_00_00_v0".to_string(), log_text(&a)), ("b".to_string(), log_text(&b))];
    let exact = read_all(&files, StatsOptions::default(), crate::usage::Dedup::Off);
    assert_eq!((exact.summary.events, exact.summary.duplicates_across_files), (100, 3));
    assert_eq!(exact.summary.unverified_for_duplicates, 0);
    assert!(!serde_json::to_string(&exact.summary).unwrap().contains("unverified"), "left out when zero");

    let small = StatsOptions { dedup_window: 30, ..StatsOptions::default() };
    let windowed = read_all(&files, small, crate::usage::Dedup::Off);
    assert_eq!((windowed.summary.events, windowed.summary.duplicates_across_files), (101, 2));
    assert_eq!(windowed.summary.unverified_for_duplicates, 1, "the minute-0 copy");
    assert_eq!(windowed.files[1].events, 1);
    assert!(serde_json::to_string(&windowed.summary).unwrap().contains("\"unverified_for_duplicates\":1"));
}
