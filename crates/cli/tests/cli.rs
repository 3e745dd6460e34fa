//! `gcr-usage report` end to end: the real binary over `fixtures/logs/*`, compared with the
//! golden outputs in `fixtures/report/` (through `expect-test`: regenerate with `UPDATE_EXPECT=1`) and with the
//! numbers `fixtures/logs/README.md` states; the HTML report; every error path.

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

#[test]
fn invalid_arguments_exit_2() {
    assert_eq!(run(&["report"]).status.code(), Some(2));
    assert_eq!(run(&["report", "x", "--format", "xml"]).status.code(), Some(2));
    assert_eq!(run(&["report", "x", "--pull-gap", "0"]).status.code(), Some(2));
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
        "--progress",
        "--quiet",
        "gcloud storage cp",
        "more than 5 minutes",
        "Storage logs",
        "clients-by-pulls",
    ] {
        assert!(help.contains(needle), "report --help lacks {needle}:\n{help}");
    }
}
