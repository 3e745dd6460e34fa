//! `gcr-usage`: the statistics of gcr-usage on a laptop, from usage-log and Artifact Registry
//! audit-log files on disk.
//!
//! A thin host over the core, like the component: files are read here and streamed through
//! the core's reader, classifier and [`gcr_usage_core::stats::UsageStats`]; this crate
//! only finds the files, shows progress, and renders the report.

mod backfill;
mod html;
mod input;
mod render;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use gcr_usage_core::stats::{DEFAULT_DEDUP_WINDOW, StatsOptions, UsageStats};

const AFTER_HELP: &str = "\
Exit status: 0 when the report was produced, 1 when an input or output file failed (missing,
unreadable, not a usage or audit log, a cut-off JSON array, HTML not writable; the message names the file), 2 for invalid
arguments.";

const REPORT_AFTER_HELP: &str = "\
Download the logs first, e.g.:
  gcloud storage cp 'gs://LOG_BUCKET/PREFIX_usage_2024_03_*' logs/
  gcr-usage report logs/
  gcr-usage report logs/ --format csv --section images > images.csv
  gcr-usage report logs/ --html report.html

Inputs: usage-log objects as written by Cloud Storage (header line, every value quoted, LF or
CRLF), and Artifact Registry audit logs (Cloud Audit Logs, Data Access): the JSON-lines objects
a log sink writes to Cloud Storage, or what
  gcloud logging read 'protoPayload.serviceName=\"artifactregistry.googleapis.com\"' \\
      --format=json --freshness=7d > ar.json
prints (one JSON array). Which is which is read from the content: JSON ({ or [ first) is an
audit log, anything else a usage log; both can be mixed in one report. A directory stands for
the log objects directly inside it (files named PREFIX_usage_… / PREFIX_storage_…, or
…/cloudaudit.googleapis.com/data_access/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json). Storage logs
(daily bucket sizes) are recognised by name or header and skipped with a note. Malformed rows
and entries are skipped and counted (warning on stderr); audit entries of other services are
skipped and counted per file.

What is counted (the same rule as the SQL views):
  blob download  a successful (2xx or 304) GET of a registry blob, containers/images/sha256:…,
                 whose Referer https://HOST/v2/REPOSITORY/blobs/DIGEST names the image
                 (HOST lower-cased + REPOSITORY, nested paths kept whole); each request id once.
  pull           blob downloads grouped per (client IP, image), ordered by time; a new pull
                 starts when the gap since that client's previous download of that image is
                 more than 5 minutes (--pull-gap). Rows may arrive in any order.
  day            a pull counts on the UTC day of its first blob download.
  clients        distinct client IPs with a blob download of the image.
  failures       requests whose status is neither 2xx nor 304, by status and action.
  pushes         blob writes in registry buckets (the repository is rarely known).
  unattributed   successful blob reads without a registry Referer (scripts, consoles, scanners).

Sections (--section): summary, files, images, daily, clients-by-pulls, clients-by-bytes,
pushes, failures, buckets, malformed. Table and CSV print every section (CSV: each after a
`# name` line naming its JSON key, e.g. `# clients_by_pulls`, sections separated by a blank
line); JSON prints one object with a key per section. Times are UTC.";

#[derive(Parser)]
#[command(
    name = "gcr-usage",
    version,
    about = "Image pulls, bytes served and clients per image from Cloud Storage usage logs and Artifact Registry audit logs",
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read local usage-log and audit-log files and print pulls per image per day, bytes, clients, pushes and failures
    #[command(after_help = REPORT_AFTER_HELP)]
    Report(ReportArgs),
    /// Load the log objects already in a log bucket into BigQuery: batched within the quotas, exactly once, resumable
    #[command(after_help = backfill::AFTER_HELP)]
    Backfill(backfill::BackfillArgs),
}

#[derive(clap::Args)]
struct ReportArgs {
    /// Usage-log or audit-log files (as downloaded with `gcloud storage cp`, or saved from `gcloud
    /// logging read --format=json`), or directories holding them
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Output format on stdout
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    /// Print only this section
    #[arg(long, value_enum, value_name = "NAME")]
    section: Option<render::Section>,

    /// Also write a self-contained HTML report (tables and a pulls-over-time chart per image)
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,

    /// How many clients the top-client lists show (0: all)
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,

    /// A blob download more than this many seconds after the same client's previous download of
    /// the same image starts a new pull (the SQL views use 300)
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    pull_gap: u32,

    /// Duplicate records (same s_request_id; audit entries: same insertId): `all` counts a request
    /// once across every file; `file` only within each file (a record repeated in two files then
    /// counts twice)
    #[arg(long, value_enum, value_name = "SCOPE", default_value_t = DedupScope::All)]
    dedup: DedupScope,

    /// How many request ids the duplicate filter remembers (~20 bytes each); past that it
    /// forgets those of the oldest minutes, and says how many rows it could not fully check
    #[arg(long, value_name = "IDS", default_value_t = DEFAULT_DEDUP_WINDOW, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    dedup_window: usize,

    /// Progress line on stderr: `auto` shows it when the inputs exceed 8 MiB and stderr is a terminal
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ProgressWhen::Auto)]
    progress: ProgressWhen,

    /// No notes or warnings on stderr (errors are still printed)
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned tables for reading
    Table,
    /// Comma-separated values, raw numbers and RFC 3339 UTC times
    Csv,
    /// One JSON object (the same numbers as CSV)
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DedupScope {
    All,
    File,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressWhen {
    Auto,
    Always,
    Never,
}

/// A failure to report: the message names the file; exit status 1.
#[derive(Debug)]
pub struct Fail(pub String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Command::Report(args) => args,
        Command::Backfill(args) => return backfill::main(&args),
    };
    match report(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(message)) => {
            eprintln!("gcr-usage: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn report(args: &ReportArgs) -> Result<(), Fail> {
    let mut ui = input::Ui::new(args.quiet);
    let inputs = input::expand(&args.files, &mut ui)?;
    let total: u64 = inputs.iter().map(|i| i.size).sum();
    let show_progress = match args.progress {
        ProgressWhen::Always => true,
        ProgressWhen::Never => false,
        ProgressWhen::Auto => total > 8 << 20 && std::io::stderr().is_terminal(),
    };
    ui.start_progress(show_progress, total);
    let options = StatsOptions {
        pull_gap_micros: i64::from(args.pull_gap) * 1_000_000,
        dedup_across_files: args.dedup == DedupScope::All,
        dedup_window: args.dedup_window,
    };
    let mut stats = UsageStats::new(options);
    for file in &inputs {
        if let Err(e) = input::read_one(file, &mut stats, &mut ui) {
            ui.clear_line();
            return Err(e);
        }
    }
    ui.finish_progress();

    let top = (args.top > 0).then_some(args.top);
    let report = stats.report(top);
    let unverified = report.summary.unverified_for_duplicates;
    if unverified > 0 {
        ui.warn(&format!(
            "{unverified} row(s) could not be fully checked for duplicates: more than {} request ids were read, so \
             the oldest minutes' were forgotten (raise --dedup-window, or read the files in time order)",
            args.dedup_window
        ));
    }
    if let Some(path) = &args.html {
        let page = html::render(&report, &stats);
        std::fs::write(path, page)
            .map_err(|e| Fail(format!("{}: cannot write the HTML report: {e}", path.display())))?;
        ui.note(&format!("HTML report written to {}", path.display()));
    }

    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match args.format {
        Format::Table => render::table(&mut out, &report, args.section),
        Format::Csv => render::csv(&mut out, &report, args.section),
        Format::Json => render::json(&mut out, &report, args.section),
    }
    .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(()),
        // `gcr-usage report … | head`: the reader left, nothing more to say.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Fail(format!("writing the report to stdout failed: {e}"))),
    }
}
