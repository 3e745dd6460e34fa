//! `gcr-usage backfill gs://LOG_BUCKET`: the CLI side of [`gcr_usage_core::backfill`] — flags
//! and environment into a configuration, a credential, an HTTP client, progress on stderr, and
//! the summary on stdout. The run itself, every decision in it, is the core's.

mod credentials;
mod http;
mod progress;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use gcr_usage_core::backfill::{self, BackfillError, Client, Options, Summary};
use gcr_usage_core::batching::Limits;
use gcr_usage_core::config::{self, Config};
use gcr_usage_core::listing::HourWindow;

pub const AFTER_HELP: &str = "\
Loads the log objects already in a log bucket (usage and storage logs, Artifact Registry audit-log
sink objects) into the same tables the component loads, in as few load jobs as BigQuery's quotas
need, and exactly once: a rerun, a second run at the same time, or live events for the same
objects never load an object twice. Killed at any point, run it again: it goes on where it stopped.

Configuration: the component's GCR_USAGE_* variables (GCR_USAGE_PROJECT, GCR_USAGE_DATASET,
GCR_USAGE_LOCATION, GCR_USAGE_MODE, GCR_USAGE_USAGE_TABLE, GCR_USAGE_STORAGE_TABLE,
GCR_USAGE_EVENTS_TABLE, GCR_USAGE_BUCKETS (default: the bucket given), GCR_USAGE_BIGQUERY_ENDPOINT,
GCR_USAGE_STORAGE_ENDPOINT); flags override them.

Credentials: --token, else GCR_USAGE_AUTH when set (token, service-account, metadata, none), else
Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS (a service-account key), the file
`gcloud auth application-default login` writes, or the metadata server (Cloud Run jobs, GCE).
Roles needed: roles/storage.objectViewer on the log bucket, roles/bigquery.dataEditor on the dataset
and roles/bigquery.jobUser on the project.

Quotas: a table takes 1,500 load jobs a day (failed ones included). A run spends at most
--jobs-per-table-per-day of them (default 1,000, leaving the live path room) with up to
--objects-per-job objects each; when that budget or BigQuery's quota is spent it stops cleanly,
exit status 3: run it again later (tomorrow for the budget) and it resumes.

Exit status: 0 every log object is loaded (now or before); 1 an error (the message names it);
2 invalid arguments; 3 stopped early on a quota, the job budget, or objects other loads still
hold after --wait-for-others (run again later to resume);
4 finished, but BigQuery rejected some objects (named in the summary).

Examples:
  gcr-usage backfill gs://my-usage-logs --dry-run
  gcr-usage backfill gs://my-usage-logs --since 2026-09-01 --until 2026-11-30
  GCR_USAGE_MODE=both gcr-usage backfill gs://my-usage-logs --prefix artifacts.my-project.appspot.com_usage";

#[derive(clap::Args)]
pub struct BackfillArgs {
    /// The log bucket, as gs://LOG_BUCKET (a bare name is accepted too)
    #[arg(value_name = "gs://LOG_BUCKET")]
    bucket: String,

    /// Only objects whose names start with this (e.g. the log object prefix set with `gcloud storage buckets update --log-object-prefix`)
    #[arg(long, value_name = "PREFIX", default_value = "")]
    prefix: String,

    /// First hour to load, from the hour in the object's name: YYYY-MM-DD (from 00:00) or YYYY-MM-DDTHH, UTC; or NNh / NNd before now
    #[arg(long, value_name = "HOUR")]
    since: Option<String>,

    /// Last hour to load (included): YYYY-MM-DD (until 23:00) or YYYY-MM-DDTHH, UTC; or NNh / NNd before now
    #[arg(long, value_name = "HOUR")]
    until: Option<String>,

    /// What to load: raw rows, classified registry events, or both (default: GCR_USAGE_MODE, else raw)
    #[arg(long, value_parser = ["raw", "classified", "both"])]
    mode: Option<String>,

    /// Print the plan (objects, bytes, load jobs per table, estimated time) and load nothing
    #[arg(long)]
    dry_run: bool,

    /// Print the summary as one JSON object on stdout
    #[arg(long)]
    json: bool,

    /// A bearer token to use instead of Application Default Credentials (e.g. `$(gcloud auth print-access-token)`)
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,

    /// The BigQuery project (default: GCR_USAGE_PROJECT, else the credentials' project)
    #[arg(long)]
    project: Option<String>,

    /// The BigQuery dataset (default: GCR_USAGE_DATASET, else storageanalysis)
    #[arg(long)]
    dataset: Option<String>,

    /// The dataset's location (default: GCR_USAGE_LOCATION, else US)
    #[arg(long)]
    location: Option<String>,

    /// Load jobs this run may create per table (BigQuery allows 1,500 a day, failed ones included)
    #[arg(long, value_name = "N", default_value_t = Limits::default().jobs_per_table_per_day as u64,
          value_parser = clap::value_parser!(u64).range(1..=1500))]
    jobs_per_table_per_day: u64,

    /// Objects per load job (BigQuery allows 10,000 source URIs); each also costs one reservation request
    #[arg(long, value_name = "N", default_value_t = Limits::default().objects_per_job as u64,
          value_parser = clap::value_parser!(u64).range(1..=10000))]
    objects_per_job: u64,

    /// Seconds a batch has from its first reservation to creating its load; after that, another
    /// run or a live event may close it (this is also how long a killed run holds its objects)
    #[arg(long, value_name = "SECONDS", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(5..=6 * 3600))]
    batch_seconds: u64,

    /// Requests in flight at once while reserving a batch's objects (BigQuery allows 100 a second per user and method)
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=32))]
    parallel: u64,

    /// Seconds to wait at the end for objects another load holds (default: --batch-seconds + 300)
    #[arg(long, value_name = "SECONDS")]
    wait_for_others: Option<u64>,

    /// Progress on stderr: `auto` draws a bar on a terminal and prints plain lines otherwise
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = crate::ProgressWhen::Auto)]
    progress: crate::ProgressWhen,
}

/// Exit status 3: stopped early, to be resumed.
const STOPPED: u8 = 3;
/// Exit status 4: finished, but some objects were rejected.
const REJECTED: u8 = 4;

pub fn main(args: &BackfillArgs) -> ExitCode {
    match run(args) {
        Ok(summary) if summary.stopped.is_some() => ExitCode::from(STOPPED),
        Ok(summary) if !summary.rejected.is_empty() => ExitCode::from(REJECTED),
        Ok(_) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gcr-usage: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &BackfillArgs) -> Result<Summary, String> {
    let bucket = args.bucket.strip_prefix("gs://").unwrap_or(&args.bucket).trim_end_matches('/').to_string();
    if bucket.is_empty() || bucket.contains('/') {
        return Err(format!("{:?} is not a bucket: give gs://LOG_BUCKET (and --prefix for a part of it)", args.bucket));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let window = HourWindow::parse(args.since.as_deref(), args.until.as_deref(), now)?;
    let auth_variable_set = args.token.is_some() || nonempty(config::AUTH).is_some();
    let env = |name: &str| -> Option<String> {
        let flag = match name {
            config::PROJECT => args.project.clone(),
            config::DATASET => args.dataset.clone(),
            config::LOCATION => args.location.clone(),
            config::MODE => args.mode.clone(),
            config::AUTH if args.token.is_some() => Some("token".into()),
            config::TOKEN => args.token.clone(),
            _ => None,
        };
        flag.or_else(|| nonempty(name)).or_else(|| match name {
            config::BUCKETS => Some(bucket.clone()),
            // Without GCR_USAGE_AUTH the credentials are Application Default Credentials, and
            // the project may come from them: parse as "metadata", which does not require one.
            config::AUTH => Some("metadata".into()),
            _ => None,
        })
    };
    let mut config = Config::from_env(env).map_err(|e| e.to_string())?;
    let (credential, file_project) =
        credentials::resolve(&config, auth_variable_set, &|name| std::env::var(name).ok())?;
    if config.project.is_none() {
        config.project = file_project;
    }
    if config.project.is_none() && !matches!(credential, backfill::Credential::Metadata(_)) {
        return Err(format!(
            "{}: not set, and the credentials name no project: set it or pass --project",
            config::PROJECT
        ));
    }
    let options = Options {
        bucket,
        prefix: args.prefix.clone(),
        window,
        limits: Limits {
            objects_per_job: args.objects_per_job as usize,
            jobs_per_table_per_day: args.jobs_per_table_per_day as usize,
            ..Limits::default()
        },
        dry_run: args.dry_run,
        batch_seconds: args.batch_seconds,
        wait_for_others: Duration::from_secs(args.wait_for_others.unwrap_or(args.batch_seconds + 300)),
    };
    let mut io = http::UreqIo::new(args.parallel as usize);
    let mut client = Client::new(&mut io, credential);
    let terminal = std::io::stderr().is_terminal();
    let mut shown = progress::Progress::new(match args.progress {
        crate::ProgressWhen::Always => progress::Style::Bar,
        crate::ProgressWhen::Never => progress::Style::Quiet,
        crate::ProgressWhen::Auto if terminal => progress::Style::Bar,
        crate::ProgressWhen::Auto => progress::Style::Lines,
    });
    let result = backfill::run(&config, &options, &mut client, &mut |event| shown.show(event));
    shown.finish();
    let summary = result.map_err(|e| match e {
        BackfillError::Input(m) | BackfillError::Upstream(m) | BackfillError::Quota(m) => m,
        BackfillError::Credentials(m) => format!("credentials: {m}"),
    })?;
    print_summary(&summary, args.json).map_err(|e| format!("writing the summary to stdout failed: {e}"))?;
    Ok(summary)
}

fn nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn print_summary(summary: &Summary, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, summary)?;
        writeln!(out)?;
        return out.flush();
    }
    let bytes = crate::render::human_bytes(summary.bytes);
    writeln!(
        out,
        "{} objects listed, {} log objects ({bytes}) in the hours asked for",
        summary.listed, summary.log_objects
    )?;
    if summary.dry_run {
        writeln!(out, "plan (nothing loaded: --dry-run):")?;
        for (table, jobs) in &summary.plan.jobs_per_table {
            writeln!(out, "  table {table}: {jobs} load jobs")?;
        }
        for (table, jobs) in &summary.plan.over_budget {
            writeln!(
                out,
                "  table {table} needs {jobs} jobs, more than one day's budget: the run stops at the budget; rerun the next day"
            )?;
        }
        writeln!(
            out,
            "  estimated time: about {:.0} s (one reservation request per object, a few seconds per load job)",
            summary.plan.estimated_seconds
        )?;
    } else {
        writeln!(
            out,
            "loaded {} objects ({} rows), {} were loaded already; {} reservations, load jobs: {}",
            summary.loaded,
            summary.rows,
            summary.already_loaded,
            summary.reservations,
            if summary.load_jobs.is_empty() {
                "none".to_string()
            } else {
                summary.load_jobs.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ")
            }
        )?;
    }
    for skipped in summary.skipped.iter().take(5) {
        writeln!(out, "skipped {}: {}", skipped.object, skipped.reason)?;
    }
    if summary.skipped.len() > 5 {
        writeln!(out, "… and {} more skipped (--json lists them all)", summary.skipped.len() - 5)?;
    }
    for rejected in &summary.rejected {
        writeln!(out, "REJECTED {}: {}", rejected.object, rejected.reason)?;
    }
    if !summary.held_elsewhere.is_empty() {
        writeln!(
            out,
            "{} objects are still being loaded elsewhere; run again later to check them",
            summary.held_elsewhere.len()
        )?;
    }
    if let Some(stopped) = &summary.stopped {
        writeln!(out, "STOPPED: {stopped}")?;
    }
    out.flush()
}
