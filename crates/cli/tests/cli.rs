//! `gcr-usage report` end to end: the real binary over `fixtures/logs/*`, compared with the
//! golden outputs in `fixtures/report/` (through `expect-test`: regenerate with `UPDATE_EXPECT=1`) and with the
//! numbers `fixtures/logs/README.md` states; the HTML report; every error path; Artifact Registry
//! audit logs (`fixtures/audit/`) alone and mixed with usage logs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use expect_test::expect_file;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Runs the binary in the workspace root, so paths in its output are `fixtures/logs/…`.
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcr-usage")).args(args).current_dir(root()).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// `fixtures/logs/*` without the README, sorted (what a shell glob passes).
fn fixture_logs() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("fixtures/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .map(|n| format!("fixtures/logs/{n}"))
        .collect();
    names.sort();
    names
}

fn report(extra: &[&str]) -> Output {
    let logs = fixture_logs();
    let mut args = vec!["report"];
    args.extend(logs.iter().map(String::as_str));
    args.extend(extra);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    out
}

#[test]
fn table_output_matches_golden() {
    let out = report(&[]);
    expect_file!["../../../fixtures/report/report.txt"].assert_eq(&stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("note: skipping fixtures/logs/gcr-usage.eu.artifacts.demo-project.appspot.com_storage_"),
        "{err}"
    );
    assert!(err.contains("a storage log"), "{err}");
}

#[test]
fn csv_output_matches_golden() {
    expect_file!["../../../fixtures/report/report.csv"].assert_eq(&stdout(&report(&["--format", "csv"])));
}

#[test]
fn json_output_matches_golden() {
    expect_file!["../../../fixtures/report/report.json"].assert_eq(&stdout(&report(&["--format", "json"])));
}

/// The markdown table between `<!-- expected:NAME -->` markers: data rows, cells trimmed.
fn readme_table(readme: &str, name: &str) -> Vec<Vec<String>> {
    let start = readme.find(&format!("<!-- expected:{name} -->")).unwrap();
    let end = start + readme[start..].find(&format!("<!-- /expected:{name} -->")).unwrap();
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().trim_matches('`').to_string()).collect())
        .collect()
}

#[test]
fn numbers_agree_with_the_fixture_readme() {
    let json: Value = serde_json::from_str(&stdout(&report(&["--format", "json"]))).unwrap();
    let readme = std::fs::read_to_string(root().join("fixtures/logs/README.md")).unwrap();
    let images = json["images"].as_array().unwrap();
    let expected = readme_table(&readme, "image_pulls");
    assert_eq!(images.len(), expected.len());
    for row in &expected {
        let image = images
            .iter()
            .find(|i| i["registry_host"] == row[0].as_str() && i["repository"] == row[1].as_str())
            .unwrap_or_else(|| panic!("no image {}/{}", row[0], row[1]));
        let got = [
            image["blob_downloads"].to_string(),
            image["bytes_served"].to_string(),
            image["clients"].to_string(),
            image["first_seen"].as_str().unwrap().to_string(),
            image["last_seen"].as_str().unwrap().to_string(),
        ];
        assert_eq!(got.as_slice(), &row[2..7], "{}/{}", row[0], row[1]);
    }
    // "Config downloads (= image pulls by a client without the image cached): `IMAGE` N, …":
    // in these fixtures every pull fetches its config, so the pull rule must give these counts.
    let para = &readme[readme.find("Config downloads").unwrap()..];
    let para = &para[..para.find("\n\n").unwrap()];
    let parts: Vec<&str> = para.split('`').collect();
    let stated: Vec<(String, u64)> = parts[1..]
        .chunks(2)
        .map(|c| (c[0].to_string(), c[1].trim_start().split([',', '.']).next().unwrap().trim().parse().unwrap()))
        .collect();
    assert_eq!(stated.len(), images.len());
    for (image, pulls) in stated {
        let got = images
            .iter()
            .find(|i| {
                format!("{}/{}", i["registry_host"].as_str().unwrap(), i["repository"].as_str().unwrap()) == image
            })
            .unwrap_or_else(|| panic!("no image {image}"));
        assert_eq!(got["pulls"], pulls, "{image}");
    }
    // Files table of the README: data rows per usage file; the storage log is skipped.
    for row in readme_table(&readme, "files") {
        let file = json["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["file"].as_str().unwrap().ends_with(&row[0]))
            .unwrap_or_else(|| panic!("no file {}", row[0]));
        assert_eq!(file["kind"], row[1].as_str());
        if row[1] == "usage" {
            assert_eq!(file["records"].to_string(), row[3], "{}", row[0]);
        }
    }
    let s = &json["summary"];
    assert_eq!((s["rows"].as_u64(), s["duplicates_across_files"].as_u64()), (Some(31), Some(1)));
}

#[test]
fn a_directory_stands_for_the_log_objects_in_it() {
    let listed = report(&["--format", "json", "--quiet"]);
    let dir = run(&["report", "fixtures/logs", "--format", "json"]);
    assert_eq!(dir.status.code(), Some(0), "{}", stderr(&dir));
    assert_eq!(stdout(&dir), stdout(&listed));
    assert!(stderr(&dir).contains("skipping fixtures/logs/README.md: not a log object name"), "{}", stderr(&dir));
    assert!(stderr(&listed).is_empty(), "--quiet: {}", stderr(&listed));
}

#[test]
fn sections_and_options() {
    let csv = stdout(&report(&["--format", "csv", "--section", "images"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "registry_host,repository,pulls,blob_downloads,bytes_served,clients,first_seen,last_seen");
    assert_eq!(lines.len(), 6);
    let json: Value =
        serde_json::from_str(&stdout(&report(&["--format", "json", "--section", "clients-by-bytes", "--top", "2"])))
            .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[0]["client_ip"], "192.0.2.45");
    // Every (client, image) group of the fixtures holds one pull, so only a shorter gap changes
    // the count: at 1 s, containerd's 1.6 s and crane's 1.2 s pauses between blobs split pulls.
    let pulls_with_gap = |gap: &str| {
        let out = report(&["--format", "json", "--section", "summary", "--pull-gap", gap]);
        serde_json::from_str::<Value>(&stdout(&out)).unwrap()["pulls"].as_u64().unwrap()
    };
    assert_eq!(pulls_with_gap("86400"), 10);
    assert!(pulls_with_gap("1") > 10);
    let json: Value =
        serde_json::from_str(&stdout(&report(&["--format", "json", "--section", "summary", "--dedup", "file"])))
            .unwrap();
    assert_eq!((json["blob_downloads"].as_u64(), json["duplicates_across_files"].as_u64()), (Some(21), Some(0)));
    let table = stdout(&report(&["--section", "failures"]));
    assert!(table.starts_with("Failures"), "{table}");
    assert!(table.contains("403  pull"), "{table}");
}

#[test]
fn html_report_has_one_chart_per_image_and_no_external_assets() {
    let dir = scratch("html");
    let path = dir.join("report.html");
    let out = report(&["--html", path.to_str().unwrap(), "--format", "json"]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    let images: Vec<String> = json["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{}/{}", i["registry_host"].as_str().unwrap(), i["repository"].as_str().unwrap()))
        .collect();
    assert_eq!(html.matches("<svg class=\"chart\"").count(), images.len());
    for image in &images {
        assert_eq!(html.matches(&format!("data-image=\"{image}\"")).count(), 1, "{image}");
    }
    // Every pull is a bar's worth: the bars' pull counts add up to the total.
    let bar_pulls: u64 = html
        .split("<title>")
        .skip(2) // the page title, then one per bar
        .map(|t| t.split(": ").nth(1).unwrap().split(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(bar_pulls, json["summary"]["pulls"].as_u64().unwrap());
    for external in ["<script", "<link", " src=", "url(", "https://", "@import"] {
        assert!(!html.contains(external), "self-contained: found {external}");
    }
    assert!(stderr(&out).contains("HTML report written to"));
    std::fs::remove_dir_all(dir).unwrap();
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gcr-usage-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Exit status 1, nothing on stdout, and exactly one error line naming `file`.
fn assert_fails(out: &Output, file: &str, says: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(out.stdout.is_empty(), "no report on failure: {}", stdout(out));
    let line = err.lines().find(|l| l.starts_with("gcr-usage: error: ")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains(file), "names {file}: {line}");
    assert!(line.contains(says), "says {says:?}: {line}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let out =
        run(&["report", "fixtures/logs/accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0", "no/such/log"]);
    assert_fails(&out, "no/such/log", "no such file or directory");
}

#[test]
fn an_unreadable_file_is_an_error_naming_it() {
    let dir = scratch("unreadable");
    let path = dir.join("locked_usage_2024_03_11_14_00_00_00_v0");
    std::fs::write(&path, "\"time_micros\"\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let path = if std::fs::read(&path).is_ok() {
        // Privileged (root ignores permissions): a file whose read fails with EIO instead.
        if !cfg!(target_os = "linux") {
            return;
        }
        PathBuf::from("/proc/self/mem")
    } else {
        path
    };
    let shown = path.to_str().unwrap();
    let out = run(&["report", shown]);
    assert_fails(&out, shown, "cannot");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn files_that_are_not_usage_logs_are_errors_naming_them() {
    let out = run(&["report", "fixtures/logs/README.md"]);
    assert_fails(&out, "fixtures/logs/README.md", "not a usage log: no usage-log header");

    let dir = scratch("not-usage");
    let other = dir.join("export.csv");
    std::fs::write(&other, "\"name\",\"size\"\n\"a\",\"1\"\n").unwrap();
    let out = run(&["report", other.to_str().unwrap()]);
    assert_fails(
        &out,
        other.to_str().unwrap(),
        "not a usage log: its first line is a header without the usage-log columns (17 of 17 missing",
    );

    let gz = dir.join("x_usage_2024_03_11_14_00_00_00_v0.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    let out = run(&["report", gz.to_str().unwrap()]);
    assert_fails(&out, gz.to_str().unwrap(), "gzip-compressed");

    let empty_dir = dir.join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    let out = run(&["report", empty_dir.to_str().unwrap()]);
    assert_fails(&out, empty_dir.to_str().unwrap(), "a directory without usage or storage log objects");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_unwritable_html_path_is_an_error_naming_it() {
    let out = run(&[
        "report",
        "fixtures/logs/accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0",
        "--html",
        "no/such/dir/report.html",
    ]);
    assert_fails(&out, "no/such/dir/report.html", "cannot write the HTML report");
}

#[test]
fn malformed_rows_are_skipped_with_a_warning() {
    let dir = scratch("malformed");
    let good = std::fs::read_to_string(
        root().join("fixtures/logs/us.artifacts.demo-project.appspot.com_usage_2024_03_11_15_00_00_1702e6_v0"),
    )
    .unwrap();
    let mut lines: Vec<&str> = good.lines().collect();
    lines.insert(2, "\"not\",\"enough\",\"columns\"");
    let path = dir.join("bad_usage_2024_03_11_15_00_00_00_v0");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = run(&["report", path.to_str().unwrap(), "--format", "json", "--section", "files"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 malformed row(s) skipped (line 3: 3 columns where the header has 17)"),
        "{}",
        stderr(&out)
    );
    let files: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((files[0]["rows"].as_u64(), files[0]["malformed"].as_u64()), (Some(5), Some(1)));
    let table = stdout(&run(&["report", path.to_str().unwrap()]));
    assert!(table.contains("Malformed rows"), "{table}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_storage_log_alone_is_skipped_not_an_error() {
    let file = "fixtures/logs/gcr-usage.eu.artifacts.demo-project.appspot.com_storage_2024_03_11_07_00_00_0655cc_v0";
    let out = run(&["report", file, "--format", "json", "--section", "summary"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((summary["files_read"].as_u64(), summary["files_skipped"].as_u64()), (Some(0), Some(1)));
    assert!(stderr(&out).contains("a storage log"));
}

#[test]
fn progress_line_when_forced() {
    let out = report(&["--progress", "always", "--format", "csv"]);
    let err = stderr(&out);
    assert!(err.contains("100%") && err.contains("[########################]"), "{err}");
    let quiet = report(&["--progress", "never", "-q"]);
    assert!(stderr(&quiet).is_empty());
}

/// A window smaller than the fixtures' request ids: the oldest minutes are forgotten, the
/// cross-file copy (the fixtures' one) is then counted twice, and the report says how many rows
/// were not fully checked, on stderr, in the table and in the JSON. A window as large as the
/// input changes nothing.
#[test]
fn a_dedup_window_smaller_than_the_input_is_reported() {
    let summary = |extra: &[&str]| {
        let out = report(&[&["--format", "json", "--section", "summary"], extra].concat());
        assert!(out.status.success(), "{}", stderr(&out));
        (serde_json::from_str::<Value>(&stdout(&out)).unwrap(), stderr(&out))
    };
    let (exact, said) = summary(&[]);
    assert_eq!(exact["duplicates_across_files"], 1);
    assert!(exact.get("unverified_for_duplicates").is_none() && !said.contains("duplicates"), "{said}");
    assert_eq!(summary(&["--dedup-window", "31"]).0, exact);

    let (small, said) = summary(&["--dedup-window", "1"]);
    let unverified = small["unverified_for_duplicates"].as_u64().unwrap();
    assert!(unverified > 0 && small["duplicates_across_files"] == 0, "{small}");
    assert_eq!(small["events"].as_u64(), exact["events"].as_u64().map(|n| n + 1));
    assert!(
        said.contains(&format!("warning: {unverified} row(s) could not be fully checked for duplicates")),
        "{said}"
    );
    assert!(said.contains("--dedup-window"), "{said}");
    let table = stdout(&report(&["--section", "summary", "--dedup-window", "1", "--quiet"]));
    assert!(table.contains("rows not fully checked for duplicates"), "{table}");
    let page = scratch("dedup-window").join("report.html");
    assert!(report(&["--quiet", "--dedup-window", "1", "--html", page.to_str().unwrap()]).status.success());
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains(&format!("<p class=\"warn\">{unverified} row(s) could not be fully checked")), "{html}");
    assert!(report(&["--quiet", "--html", page.to_str().unwrap()]).status.success());
    assert!(!std::fs::read_to_string(&page).unwrap().contains("class=\"warn\""));
}

#[test]
fn invalid_arguments_exit_2() {
    assert_eq!(run(&["report"]).status.code(), Some(2));
    assert_eq!(run(&["report", "x", "--format", "xml"]).status.code(), Some(2));
    assert_eq!(run(&["report", "x", "--pull-gap", "0"]).status.code(), Some(2));
    assert_eq!(run(&["report", "x", "--dedup-window", "0"]).status.code(), Some(2));
    assert_eq!(run(&[]).status.code(), Some(2));
}

#[test]
fn help_documents_everything() {
    let top = stdout(&run(&["--help"]));
    assert!(top.contains("report") && top.contains("Exit status"), "{top}");
    let help = stdout(&run(&["report", "--help"]));
    for needle in [
        "--format",
        "--section",
        "--html",
        "--top",
        "--pull-gap",
        "--dedup",
        "--dedup-window",
        "--progress",
        "--quiet",
        "gcloud storage cp",
        "gcloud logging read",
        "audit",
        "more than 5 minutes",
        "Storage logs",
        "clients-by-pulls",
    ] {
        assert!(help.contains(needle), "report --help lacks {needle}:\n{help}");
    }
}

// Artifact Registry audit logs: read by content, beside usage logs, in the same statistics.

const SINK_S0: &str = "fixtures/audit/sink/cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json";
const GCLOUD_READ: &str = "fixtures/audit/gcloud/read.json";

fn json_report(args: &[&str]) -> Value {
    let mut all = vec!["report"];
    all.extend(args);
    all.extend(["--format", "json"]);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn file<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["files"].as_array().unwrap().iter().find(|f| f["file"] == name).unwrap_or_else(|| panic!("no file {name}"))
}

fn images(report: &Value) -> Vec<(String, u64)> {
    let images = report["images"].as_array().unwrap().iter();
    let mut images: Vec<(String, u64)> = images
        .map(|i| {
            let name = format!("{}/{}", i["registry_host"].as_str().unwrap(), i["repository"].as_str().unwrap());
            (name, i["pulls"].as_u64().unwrap())
        })
        .collect();
    images.sort();
    images
}

#[test]
fn an_audit_sink_object_is_read_with_its_own_counts() {
    let out = run(&["report", SINK_S0, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    // The counts the fixture states: entries, events, skipped, malformed (with lines), duplicates.
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("fixtures/audit/sink/expected.json")).unwrap())
            .unwrap();
    let f = file(&json, SINK_S0);
    assert_eq!(f["kind"], "audit");
    assert_eq!(f["note"], Value::Null);
    assert_eq!(f["records"], expected["entries"]);
    assert_eq!(f["rows"], expected["events"]);
    assert_eq!(f["events"], expected["events"]);
    assert_eq!(f["skipped"], expected["skipped"]);
    assert_eq!(f["malformed"], expected["malformed"]);
    assert_eq!(f["duplicates"], expected["duplicates"]);
    let lines: Vec<&Value> = f["malformed_samples"].as_array().unwrap().iter().map(|m| &m["line"]).collect();
    assert_eq!(Value::from(lines.into_iter().cloned().collect::<Vec<_>>()), expected["malformed_lines"]);
    let s = &json["summary"];
    assert_eq!((s["files_read"].as_u64(), s["files_skipped"].as_u64()), (Some(1), Some(0)));
    assert_eq!((s["records"].as_u64(), s["events"].as_u64()), (Some(40), Some(35)));
    // Its pulls are images of Artifact Registry (and gcr.io repositories in it), counted as pulls.
    let images = images(&json);
    assert!(!images.is_empty() && s["pulls"].as_u64().unwrap() > 0, "{json}");
    for (image, _) in &images {
        assert!(
            image.starts_with("europe-west2-docker.pkg.dev/demo-project/") || image.starts_with("gcr.io/"),
            "{image}"
        );
    }
    let err = stderr(&out);
    assert!(
        err.contains(&format!("warning: {SINK_S0}: 2 malformed log entries skipped (line 20: not JSON: ")),
        "{err}"
    );
    assert!(err.contains("; line 32: a JSON array where a LogEntry object was expected)"), "{err}");

    // The table: a `skipped` column (only with an audit log), the file marked, the malformed lines.
    let table = stdout(&run(&["report", SINK_S0]));
    assert!(table.contains("log files read           1"), "{table}");
    let header = table.lines().find(|l| l.trim_start().starts_with("file ")).unwrap();
    assert!(header.contains("dup. across files  skipped  note"), "{header}");
    let row = table.lines().find(|l| l.trim_start().starts_with(SINK_S0) && l.ends_with("audit log")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1..8], ["40", "35", "35", "2", "1", "0", "2"], "{row}");
    assert!(
        table.contains("Malformed rows") && table.contains(&format!("{SINK_S0}    32   32  a JSON array")),
        "{table}"
    );
    // CSV: kind `audit` and the `skipped` column before the note.
    let csv = stdout(&run(&["report", SINK_S0, "--format", "csv", "--section", "files"]));
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].ends_with(",invalid_utf8,skipped,note"), "{csv}");
    assert_eq!(lines[1], format!("{SINK_S0},audit,none,40,35,35,2,1,0,0,2,"));
}

#[test]
fn audit_logs_are_recognised_by_content_not_name() {
    let dir = scratch("audit-content");
    // No log name, no .json, a byte-order mark first: still the same entries.
    let path = dir.join("exported-entries");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(std::fs::read(root().join(SINK_S0)).unwrap());
    std::fs::write(&path, bytes).unwrap();
    let shown = path.to_str().unwrap();
    let renamed = json_report(&[shown, "--quiet"]);
    let original = json_report(&[SINK_S0, "--quiet"]);
    let counts = |r: &Value, name: &str| {
        let f = file(r, name);
        ["kind", "records", "rows", "events", "malformed", "duplicates", "skipped"].map(|k| f[k].clone())
    };
    assert_eq!(counts(&renamed, shown), counts(&original, SINK_S0));
    assert_eq!(renamed["summary"], original["summary"]);
    assert_eq!(renamed["images"], original["images"]);
    // A sink object downloaded with its folders is found in its directory like a usage log.
    let hour = "fixtures/audit/sink/cloudaudit.googleapis.com/data_access/2024/07/04";
    let listed = json_report(&[hour, "--quiet"]);
    let names: Vec<&str> = listed["files"].as_array().unwrap().iter().map(|f| f["file"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [format!("{hour}/23:00:00_23:59:59_A1:1720140000.json"), format!("{hour}/23:00:00_23:59:59_S0.json")]
    );
    assert_eq!(listed["summary"]["events"], 3 + 35);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn gcloud_logging_read_output_is_read_as_an_audit_log() {
    let json = json_report(&[GCLOUD_READ]);
    let f = file(&json, GCLOUD_READ);
    assert_eq!(f["kind"], "audit");
    let counts: Vec<u64> = ["records", "rows", "events", "malformed", "duplicates", "skipped"]
        .iter()
        .map(|k| f[*k].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [10, 10, 10, 0, 0, 0]);
    assert_eq!(json["summary"]["events"], 10);
    // The same entries as the first 10 lines of the sink object: their pulls are among its own.
    let sink = images(&json_report(&[SINK_S0, "--quiet"]));
    for (image, pulls) in images(&json) {
        let in_sink = sink.iter().find(|(i, _)| *i == image).unwrap_or_else(|| panic!("{image} not in the sink"));
        assert!(pulls <= in_sink.1, "{image}");
    }
    // Read with the sink object, the same entries (same insertId) count once.
    let both = json_report(&[SINK_S0, GCLOUD_READ, "--quiet"]);
    let again = file(&both, GCLOUD_READ);
    assert_eq!((again["rows"].as_u64(), again["events"].as_u64()), (Some(10), Some(0)));
    assert_eq!(again["duplicates_across_files"], 10);
    assert_eq!(both["summary"]["events"], 35);
    let per_file = json_report(&[SINK_S0, GCLOUD_READ, "--quiet", "--dedup", "file"]);
    assert_eq!(per_file["summary"]["events"], 45);
}

#[test]
fn usage_and_audit_logs_mix_in_one_report() {
    let logs = fixture_logs();
    let mut args: Vec<&str> = logs.iter().map(String::as_str).collect();
    let usage = json_report(&[&args[..], &["--quiet"]].concat());
    let audit = json_report(&[SINK_S0, "--quiet"]);
    args.push(SINK_S0);
    let mixed = json_report(&[&args[..], &["--quiet"]].concat());
    let (u, a, m) = (&usage["summary"], &audit["summary"], &mixed["summary"]);
    let sum = |key: &str| u[key].as_u64().unwrap() + a[key].as_u64().unwrap();
    for key in ["files_read", "files_skipped", "records", "rows", "events", "malformed", "duplicates", "pulls"] {
        assert_eq!(m[key].as_u64().unwrap(), sum(key), "summary {key}");
    }
    assert_eq!((u["events"].as_u64(), a["events"].as_u64()), (Some(30), Some(35)));
    // Both sources' images with their pulls; an image in both (`gcr.io/demo-project/app`, a
    // Container Registry bucket then, an Artifact Registry gcr.io repository now) is one image
    // whose pulls add up (months apart: no pull spans the two).
    let mut both: std::collections::BTreeMap<String, u64> = images(&usage).into_iter().collect();
    for (image, pulls) in images(&audit) {
        *both.entry(image).or_default() += pulls;
    }
    assert!(images(&usage).iter().any(|(i, _)| i == "gcr.io/demo-project/app"));
    assert!(images(&audit).iter().any(|(i, _)| i == "gcr.io/demo-project/app"));
    assert_eq!(images(&mixed), both.clone().into_iter().collect::<Vec<_>>());
    assert_eq!(m["first_event"], u["first_event"]);
    assert_eq!(m["last_event"], a["last_event"]);
    let kinds: Vec<&str> = mixed["files"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["usage", "usage", "usage", "storage", "usage", "usage", "audit"]);
    // Usage files carry no `skipped` (it is the audit reader's count).
    assert!(mixed["files"][0].get("skipped").is_none());
    assert_eq!(file(&mixed, SINK_S0)["skipped"], 2);

    // The other outputs take the mix too: every CSV section, the table, the HTML, the progress line.
    let dir = scratch("mixed");
    let html = dir.join("report.html");
    let out =
        run(&[&["report"], &args[..], &["--format", "csv", "--progress", "always", "--html", html.to_str().unwrap()]]
            .concat());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let csv = stdout(&out);
    assert!(csv.contains(&format!("\n{SINK_S0},audit,none,40,35,35,2,1,0,0,2,\n")), "{csv}");
    assert!(csv.contains("\neurope-west2-docker.pkg.dev,demo-project/apps/team/api,"), "{csv}");
    assert!(csv.contains("\ngcr.io,demo-project/app,"), "{csv}");
    let err = stderr(&out);
    assert!(err.contains("100%") && err.contains("[########################]"), "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg class=\"chart\"").count(), both.len());
    assert!(page.contains("6 log file(s)"), "files read: 5 usage logs and the audit log; the storage log skipped");
    let table = stdout(&run(&[&["report"], &args[..], &["--section", "summary", "-q"]].concat()));
    assert!(table.contains(&format!("events counted           {}", sum("events"))), "{table}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_cut_off_json_array_is_an_error_naming_the_file() {
    let dir = scratch("audit-broken");
    let whole = std::fs::read_to_string(root().join(GCLOUD_READ)).unwrap();
    let usage = "fixtures/logs/accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0";

    // Cut inside the third entry, as an interrupted `gcloud logging read > ar.json` leaves it.
    let third = whole.match_indices("\n  {").nth(2).unwrap().0;
    let cut = dir.join("ar.json");
    std::fs::write(&cut, &whole[..third + 200]).unwrap();
    let line = whole[..third + 1].lines().count() + 1;
    let out = run(&["report", usage, cut.to_str().unwrap()]);
    assert_fails(&out, cut.to_str().unwrap(), &format!("not a complete JSON array of log entries: line {line}: "));
    assert!(stderr(&out).contains("the JSON array ends inside an entry (a truncated file?)"), "{}", stderr(&out));

    // Cut after an element: the closing ] is missing.
    let unclosed = dir.join("unclosed.json");
    std::fs::write(&unclosed, format!("{},\n", &whole[..third])).unwrap();
    assert_fails(&run(&["report", unclosed.to_str().unwrap()]), unclosed.to_str().unwrap(), "without its closing ]");

    // Two arrays joined: text after the closing ].
    let joined = dir.join("joined.json");
    std::fs::write(&joined, format!("{whole}{whole}")).unwrap();
    assert_fails(&run(&["report", joined.to_str().unwrap()]), joined.to_str().unwrap(), "text after the closing ]");

    // JSON that holds no log entry at all (here the fixture's own expectations) is no audit log.
    let expected = "fixtures/audit/sink/expected.json";
    assert_fails(
        &run(&["report", expected]),
        expected,
        "not Cloud Logging entries (JSON lines or a JSON array): none of its 40 lines is a log entry",
    );

    // An empty array is an empty audit log, not an error.
    let empty = dir.join("empty.json");
    std::fs::write(&empty, "[]\n").unwrap();
    let out = run(&["report", empty.to_str().unwrap(), "--format", "json", "--section", "files"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let files: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((files[0]["kind"].as_str(), files[0]["records"].as_u64()), (Some("audit"), Some(0)));
    assert!(stderr(&out).contains("no log entries"), "{}", stderr(&out));
    std::fs::remove_dir_all(dir).unwrap();
}
