//! (g) The native CLI, `gcr-usage report`, over the same log and over a 1 GiB one: the
//! release binary as a user runs it, measured by the kernel (`wait4`): wall, CPU, peak RSS.
//! The CLI reads its files one after another on one thread, so its wall time is one core's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use gcr_usage_host_test::bench_support::target_dir;
use gcr_usage_host_test::child_usage::{ChildUsage, wait_measured};

use crate::Figures;

/// One measured report.
pub struct Report {
    pub label: String,
    pub bytes: u64,
    pub figures: Figures,
    /// The last run's usage.
    pub usage: ChildUsage,
}

/// The CLI: `$GCR_USAGE_CLI`, else the release build in the target directory.
pub fn cli_path() -> Result<PathBuf, String> {
    let path = std::env::var_os("GCR_USAGE_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("release").join("gcr-usage"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("no CLI at {} (cargo build --release -p gcr-usage-cli)", path.display()))
    }
}

/// `gcr-usage report LOG --format json --quiet --progress never [EXTRA]`, `runs` times.
pub fn report_figures(cli: &Path, log: &Path, extra: &[&str], label: &str, runs: usize) -> Result<Report, String> {
    let bytes = std::fs::metadata(log).map_err(|e| format!("{}: {e}", log.display()))?.len();
    let mut seconds = Vec::new();
    let mut usage = None;
    for _ in 0..runs {
        let started = Instant::now();
        let child = Command::new(cli)
            .arg("report")
            .arg(log)
            .args(["--format", "json", "--quiet", "--progress", "never"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", cli.display()))?;
        let (status, used) = wait_measured(&child, started).map_err(|e| format!("waiting for the CLI: {e}"))?;
        if !status.success() {
            return Err(format!("gcr-usage report exited with {status}"));
        }
        seconds.push(used.wall_seconds);
        usage = Some(used);
    }
    let usage = usage.ok_or("no run")?;
    // The report counts no rows we could compare: items are bytes here (rows = 0 prints none).
    Ok(Report { label: label.to_string(), bytes, figures: Figures { seconds, rows: 0 }, usage })
}
