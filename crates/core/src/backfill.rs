//! `gcr-usage backfill`: load the log objects no event will announce again — list the bucket,
//! plan batches within BigQuery's quotas, and load each object exactly once whatever else is
//! loading it (live events, redeliveries, other or earlier backfill runs).
//!
//! Written once against [`crate::service::Io`], like the live path: the CLI supplies a real
//! HTTP client, the tests a fake Google. The decisions are the live path's own — log names,
//! allow-list and tables ([`crate::plan::plan_load`] through [`crate::batching`]), job ids
//! ([`crate::job`]), answers ([`crate::bigquery`]), classification ([`crate::classified`]) — and
//! the exactly-once protocol is [`crate::claims`]'s, followed step by step in [`batch`].

mod batch;
pub mod client;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use crate::batching::{Limits, plan_backfill};
use crate::bigquery::GoogleError;
use crate::config::Config;
use crate::job::build;
use crate::listing::{self, HourWindow, Listed};
use crate::metadata;
use crate::service::Io;
use crate::url::encode;

pub use batch::Pending;
pub use client::{Client, Credential};

/// What to backfill, and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The log bucket.
    pub bucket: String,
    pub prefix: String,
    pub window: HourWindow,
    pub limits: Limits,
    pub dry_run: bool,
    /// How long a batch has, from its reservations, to create its load; after that anyone may
    /// close it (a killed run's reservations are freed by then).
    pub batch_seconds: u64,
    /// How long to wait, at the end, for objects another load holds (a concurrent backfill's
    /// batch, a live event's job) before reporting them as held elsewhere.
    pub wait_for_others: Duration,
}

/// The longest a load job is polled (BigQuery's own execution limit for a load job).
const MAX_JOB_WAIT: Duration = Duration::from_secs(6 * 3600);

/// What the run did; `--json` prints it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Objects in the listing (any name).
    pub listed: u64,
    /// Log objects in the hours asked for.
    pub log_objects: u64,
    pub bytes: u64,
    /// Objects this run loaded, per destination table (in `both` mode an object counts once in
    /// each of its two tables).
    pub loaded: u64,
    /// Objects some earlier load (an event, another run) had loaded already (counted the same way).
    pub already_loaded: u64,
    /// Rows this run's jobs loaded (CSV rows, or events).
    pub rows: u64,
    pub rejected: Vec<Named>,
    /// Objects still being loaded by someone else when the run stopped waiting.
    pub held_elsewhere: Vec<String>,
    /// Listed objects that are not loaded (not a log, another bucket…), with the reason.
    pub skipped: Vec<Named>,
    /// Load jobs this run created, per table (failed ones included: they count for quotas).
    pub load_jobs: BTreeMap<String, usize>,
    /// Reservation jobs this run created (query jobs: no load quota).
    pub reservations: u64,
    /// Why the run stopped before the end (a spent quota, the job budget), and when to resume.
    pub stopped: Option<String>,
    pub dry_run: bool,
    pub plan: PlanSummary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub object: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanSummary {
    pub jobs_per_table: BTreeMap<String, usize>,
    /// Tables needing more jobs than today's budget, with how many they need.
    pub over_budget: BTreeMap<String, usize>,
    /// A rough time: one reservation per object at the mean answer time of the listing, plus
    /// a few seconds per load job.
    pub estimated_seconds: f64,
}

/// Seconds a load job takes, for the estimate only (BigQuery loads small files in a few).
const ESTIMATED_JOB_SECONDS: f64 = 5.0;

/// What can end a run early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackfillError {
    /// The user's input is wrong (bucket, prefix, hours, dataset): the message names it.
    Input(String),
    /// Credentials missing, expired, refused, or of the wrong kind.
    Credentials(String),
    /// Google refused or kept failing.
    Upstream(String),
    /// `quotaExceeded`: handled by the run (it stops cleanly), never shown as a failure.
    Quota(String),
}

impl std::fmt::Display for BackfillError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackfillError::Input(m) | BackfillError::Upstream(m) | BackfillError::Quota(m) => f.write_str(m),
            BackfillError::Credentials(m) => write!(f, "credentials: {m}"),
        }
    }
}

/// What the run tells whoever shows progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The listing so far.
    Listed { objects: u64 },
    /// The plan: objects and bytes to go through.
    Planned { objects: u64, bytes: u64 },
    /// A batch is being loaded.
    Batch { job_id: String, table: String, objects: usize },
    /// Objects and bytes dealt with (loaded, found loaded, rejected), cumulative.
    Done { objects: u64, bytes: u64 },
    /// Something worth a line of its own.
    Note(String),
}

/// Runs the backfill. `Ok` also when it stopped early ([`Summary::stopped`]) or BigQuery
/// rejected some objects ([`Summary::rejected`]).
pub fn run(
    config: &Config,
    options: &Options,
    client: &mut Client<'_, impl Io>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary, BackfillError> {
    let mut summary = Summary { dry_run: options.dry_run, ..Summary::default() };
    let items = list(config, options, client, progress)?;
    summary.listed = items.len() as u64;
    let objects = listing::log_objects(items, &options.window);
    if objects.is_empty() {
        let window = options.window.describe();
        return Err(BackfillError::Input(format!(
            "no log objects in gs://{}/{}* {window}: {} objects listed, none named like a usage or storage log \
             (PREFIX_usage_YYYY_MM_DD_HH_…) or an audit-log sink object (…/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json)",
            options.bucket, options.prefix, summary.listed
        )));
    }
    summary.log_objects = objects.len() as u64;
    summary.bytes = objects.iter().map(|o| o.listed.size).sum();
    let plan = plan_backfill(config, objects, &options.limits);
    summary.skipped =
        plan.skipped.iter().map(|(object, reason)| Named { object: object.clone(), reason: reason.clone() }).collect();
    if plan.batches.is_empty() {
        let (object, reason) = &plan.skipped[0];
        return Err(BackfillError::Input(format!(
            "none of the {} log objects can be loaded; the first, {object}: {reason}",
            summary.log_objects
        )));
    }
    summary.plan = plan_summary(&plan, &options.limits, client.mean_answer_ms());
    let planned: u64 = plan.batches.iter().map(|b| b.objects.len() as u64).sum();
    let planned_bytes: u64 = plan.batches.iter().map(|b| b.bytes).sum();
    progress(Progress::Planned { objects: planned, bytes: planned_bytes });
    if options.dry_run {
        return Ok(summary);
    }
    let project = project(config, client)?;
    check_dataset(config, &project, client)?;

    let mut run = batch::Run::new(config, options, &project, client);
    let mut queue: VecDeque<Pending> = plan.batches.into_iter().map(Pending::from_plan).collect();
    // The wait for objects others hold starts once the run's own work is done.
    let mut waiting_since: Option<u64> = None;
    loop {
        run.drain(&mut queue, &mut summary, progress)?;
        let held = run.take_held();
        if held.is_empty() || summary.stopped.is_some() {
            summary.held_elsewhere.extend(uris(&held));
            break;
        }
        let objects: usize = held.iter().map(|p| p.members.len()).sum();
        let since = *waiting_since.get_or_insert(run.now_ms());
        if run.now_ms().saturating_sub(since) > options.wait_for_others.as_millis() as u64 {
            summary.held_elsewhere.extend(uris(&held));
            summary.stopped = Some(format!(
                "{objects} objects are still held by other loads (another backfill's batch, or live events) after \
                 waiting {} s (--wait-for-others): run the same command again later to check them; nothing is \
                 loaded twice",
                options.wait_for_others.as_secs()
            ));
            break;
        }
        progress(Progress::Note(format!(
            "{objects} objects are held by other loads (another backfill's batch, or live events): waiting for them"
        )));
        run.pause();
        queue.extend(held);
    }
    Ok(summary)
}

fn uris(pending: &[Pending]) -> Vec<String> {
    pending.iter().flat_map(|p| p.members.iter().map(|m| m.listed.object.gs_uri())).collect()
}

/// Every page of the listing (a failed page is asked again with the same page token).
fn list(
    config: &Config,
    options: &Options,
    client: &mut Client<'_, impl Io>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<Listed>, BackfillError> {
    let mut items = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let what = format!("Cloud Storage objects.list of gs://{}", options.bucket);
        let page_token = page.clone();
        let response = client.call(&what, &|token| {
            listing::list_request(&config.storage, &options.bucket, &options.prefix, page_token.as_deref(), token)
        })?;
        let status = response.status().as_u16();
        if status != 200 {
            let error = GoogleError::from_response(status, response.body());
            return Err(match status {
                404 => BackfillError::Input(format!("gs://{} does not exist ({error})", options.bucket)),
                403 => BackfillError::Input(format!(
                    "cannot list gs://{}: {error}; the caller needs the storage.objects.list permission on the bucket \
                     (roles/storage.objectViewer), and a bucket that does not exist may answer this too",
                    options.bucket
                )),
                _ => BackfillError::Upstream(format!("{what} answered {error}")),
            });
        }
        let answer = listing::parse_page(&options.bucket, response.body()).map_err(BackfillError::Upstream)?;
        items.extend(answer.items);
        progress(Progress::Listed { objects: items.len() as u64 });
        match answer.next_page_token {
            Some(next) if page.as_deref() != Some(next.as_str()) => page = Some(next),
            Some(_) => return Err(BackfillError::Upstream(format!("{what}: the same page token came back twice"))),
            None => return Ok(items),
        }
    }
}

fn plan_summary(plan: &crate::batching::BackfillPlan, limits: &Limits, mean_ms: Option<u64>) -> PlanSummary {
    let objects: usize = plan.batches.iter().map(|b| b.objects.len()).sum();
    let request_seconds = mean_ms.unwrap_or(300) as f64 / 1000.0;
    PlanSummary {
        jobs_per_table: plan.jobs_per_table().into_iter().map(|(t, n)| (t.to_string(), n)).collect(),
        over_budget: plan.over_budget(limits).into_iter().map(|(t, n)| (t.to_string(), n)).collect(),
        estimated_seconds: objects as f64 * request_seconds + plan.batches.len() as f64 * ESTIMATED_JOB_SECONDS,
    }
}

/// The project: configured, or the metadata server's.
fn project(config: &Config, client: &mut Client<'_, impl Io>) -> Result<String, BackfillError> {
    if let Some(project) = &config.project {
        return Ok(project.clone());
    }
    let response = client.call("metadata server (project id)", &|_| metadata::project_request(&config.metadata))?;
    if !response.status().is_success() {
        return Err(BackfillError::Input(
            "GCR_USAGE_PROJECT: not set, and the metadata server has no project id (set GCR_USAGE_PROJECT or --project)"
                .into(),
        ));
    }
    metadata::parse_project(response.body()).map_err(BackfillError::Upstream)
}

/// A missing dataset is the user's to fix, and better said before anything is reserved.
fn check_dataset(config: &Config, project: &str, client: &mut Client<'_, impl Io>) -> Result<(), BackfillError> {
    let url = config.bigquery.url(&format!(
        "/bigquery/v2/projects/{}/datasets/{}?prettyPrint=false",
        encode(project),
        encode(&config.dataset)
    ));
    let response = client.call("BigQuery datasets.get", &|token| build(http::Method::GET, &url, token, None))?;
    let status = response.status().as_u16();
    let error = || GoogleError::from_response(status, response.body());
    match status {
        200 => Ok(()),
        404 => Err(BackfillError::Input(format!(
            "BigQuery dataset {project}:{} does not exist: create it (bq --location={} mk --dataset {project}:{}) \
             or set GCR_USAGE_DATASET / --dataset",
            config.dataset, config.location, config.dataset
        ))),
        403 => Err(BackfillError::Input(format!(
            "BigQuery refused to show dataset {project}:{} ({}): the caller needs roles/bigquery.dataEditor on it \
             and roles/bigquery.jobUser on the project",
            config.dataset,
            error()
        ))),
        _ => Err(BackfillError::Upstream(format!("BigQuery datasets.get answered {}", error()))),
    }
}

#[cfg(test)]
mod tests;
