//! One backfill batch through the exactly-once protocol of [`crate::claims`]:
//!
//! 1. reserve each object's current attempt for the batch (a `SELECT 1` query job at the
//!    attempt's id, labelled with the batch id and its deadline); an attempt someone else holds
//!    is read and judged — loaded already, in flight (held: looked at again later), or spent
//!    (the next attempt is tried), closing abandoned batches on the way;
//! 2. create the batch's one load job with exactly the objects it reserved — before its
//!    deadline, or it closes itself and splits;
//! 3. wait for the job: success loads them all; a failure (atomic: nothing loaded) spends the
//!    attempt, names the bad object when BigQuery does, and otherwise splits the batch in
//!    halves, each retried under the next attempt, down to the one object BigQuery rejects.
//!
//! A batch that cannot create its load (quota, upload trouble, an object gone) closes itself
//! with a tombstone first, so its reservations are free at once rather than at the deadline.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::backoff::Jitter;
use crate::batch_job::{BatchLoad, get_job_request, tombstone_request};
use crate::batching::Batch;
use crate::bigquery::{GoogleError, Job, JobRole, JobState, is_quota, parse_job};
use crate::budget::Budget;
use crate::classified::{UploadEnd, UploadPlan, UploadSource, run_upload};
use crate::config::Config;
use crate::job::{LoadFormat, LoadSpec, TableRef};
use crate::listing::Listed;
use crate::log_name::LogKind;
use crate::secret::Secret;
use crate::service::Io;
use crate::session::Reply;

use super::{BackfillError, Client, MAX_JOB_WAIT, Named, Options, Progress, Summary};

/// Upload tries per batch before it is closed and split (each try starts from the first byte).
const UPLOAD_TRIES: u32 = 3;

/// An object of a batch, and the attempt it is at.
#[derive(Debug, Clone)]
pub struct Member {
    pub listed: Listed,
    pub attempt: u32,
}

/// A batch still to be loaded: what it loads, and its objects.
#[derive(Debug, Clone)]
pub struct Pending {
    pub table_id: String,
    pub format: LoadFormat,
    pub kind: LogKind,
    pub members: Vec<Member>,
}

impl Pending {
    pub fn from_plan(batch: Batch) -> Pending {
        Pending {
            table_id: batch.table_id,
            format: batch.format,
            kind: batch.kind,
            members: batch.objects.into_iter().map(|listed| Member { listed, attempt: 1 }).collect(),
        }
    }

    fn with(&self, members: Vec<Member>) -> Pending {
        Pending { members, ..self.clone() }
    }
}

mod claiming;

/// How reserving one object's attempt ended.
enum Claim {
    /// Reserved for this batch, at this attempt.
    Ours(u32),
    /// Its rows are in already (an event's load, another batch).
    Loaded,
    /// Another load holds it at this attempt, still running or not yet created.
    Held(u32),
    /// No attempt is left.
    Exhausted(String),
}

pub(super) struct Run<'c, 'io, I: Io> {
    config: &'c Config,
    options: &'c Options,
    project: String,
    client: &'c mut Client<'io, I>,
    /// This run's random token: the `delivery` label of every job it creates and part of every
    /// batch id, so its own jobs are recognised when an answer was lost.
    token: String,
    next_batch: u32,
    held: Vec<Pending>,
    done_objects: u64,
    done_bytes: u64,
    pause: Duration,
}

impl<'c, 'io, I: Io> Run<'c, 'io, I> {
    pub(super) fn new(config: &'c Config, options: &'c Options, project: &str, client: &'c mut Client<'io, I>) -> Self {
        let token = format!("{:016x}", Jitter::new(client.io.random_u64()).next_u64());
        Run {
            config,
            options,
            project: project.to_string(),
            client,
            token,
            next_batch: 1,
            held: Vec::new(),
            done_objects: 0,
            done_bytes: 0,
            pause: Duration::from_secs(2),
        }
    }

    pub(super) fn now_ms(&mut self) -> u64 {
        self.client.io.now_ms()
    }

    fn unix(&mut self) -> u64 {
        self.client.io.unix_secs()
    }

    pub(super) fn take_held(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.held)
    }

    /// Between looks at held objects: growing, up to a minute.
    pub(super) fn pause(&mut self) {
        let pause = self.pause;
        self.client.io.sleep(pause);
        self.pause = (pause * 2).min(Duration::from_secs(60));
    }

    /// Loads the queued batches; a batch's halves and leftovers go back to the front.
    pub(super) fn drain(
        &mut self,
        queue: &mut VecDeque<Pending>,
        summary: &mut Summary,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), BackfillError> {
        // Objects left per table whose budget of load jobs this run has spent: the other
        // tables go on.
        let mut over_budget: BTreeMap<String, usize> = BTreeMap::new();
        while let Some(pending) = queue.pop_front() {
            if summary.stopped.is_some() {
                break;
            }
            let used = summary.load_jobs.get(&pending.table_id).copied().unwrap_or(0);
            if used >= self.options.limits.jobs_per_table_per_day {
                *over_budget.entry(pending.table_id.clone()).or_default() += pending.members.len();
                continue;
            }
            match self.batch(pending, queue, summary, progress) {
                Err(BackfillError::Quota(why)) => summary.stopped = Some(quota_stop(&why)),
                other => other?,
            }
        }
        if summary.stopped.is_none() && !over_budget.is_empty() {
            let tables: Vec<String> =
                over_budget.iter().map(|(table, left)| format!("{table} ({left} objects left)")).collect();
            summary.stopped = Some(format!(
                "this run used its budget of {} load jobs per table on {} (--jobs-per-table-per-day; BigQuery \
                 allows 1,500 a day per table, the live path needs the rest): run the same command again tomorrow \
                 and it resumes with what is left",
                self.options.limits.jobs_per_table_per_day,
                tables.join(", ")
            ));
        }
        Ok(())
    }

    fn spec(&self, pending: &Pending, member: &Member) -> LoadSpec {
        LoadSpec {
            object: member.listed.object.clone(),
            kind: pending.kind,
            format: pending.format,
            destination: TableRef {
                project_id: self.project.clone(),
                dataset_id: self.config.dataset.clone(),
                table_id: pending.table_id.clone(),
            },
            location: self.config.location.clone(),
        }
    }

    fn done(&mut self, member: &Member, progress: &mut dyn FnMut(Progress)) {
        self.done_objects += 1;
        self.done_bytes += member.listed.size;
        progress(Progress::Done { objects: self.done_objects, bytes: self.done_bytes });
    }

    fn batch(
        &mut self,
        pending: Pending,
        queue: &mut VecDeque<Pending>,
        summary: &mut Summary,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), BackfillError> {
        let id = BatchLoad::id(pending.format, &self.token, self.next_batch);
        self.next_batch += 1;
        let deadline = self.unix() + self.options.batch_seconds;
        let mut ours = Vec::new();
        let mut held = Vec::new();
        let specs: Vec<LoadSpec> = pending.members.iter().map(|m| self.spec(&pending, m)).collect();
        let attempts: Vec<u32> = pending.members.iter().map(|m| m.attempt).collect();
        let reserved_before = summary.reservations;
        let claims = match self.claim_all(&specs, &attempts, &id, deadline, summary) {
            Ok(claims) => claims,
            Err(error) => {
                // Free what this batch reserved at once rather than at its deadline (a failure
                // to close is only a delay: the deadline frees them too).
                if summary.reservations > reserved_before {
                    let _ = self.tombstone(&id);
                }
                return Err(error);
            }
        };
        for (member, claim) in pending.members.iter().zip(claims) {
            match claim {
                Claim::Ours(attempt) => ours.push(Member { attempt, ..member.clone() }),
                Claim::Held(attempt) => held.push(Member { attempt, ..member.clone() }),
                Claim::Loaded => {
                    summary.already_loaded += 1;
                    self.done(member, progress);
                }
                Claim::Exhausted(reason) => {
                    summary.rejected.push(Named { object: member.listed.object.gs_uri(), reason });
                    self.done(member, progress);
                }
            }
        }
        if !held.is_empty() {
            self.held.push(pending.with(held));
        }
        if ours.is_empty() {
            return Ok(());
        }
        let load = BatchLoad { id, specs: ours.iter().map(|m| self.spec(&pending, m)).collect() };
        // Past (or too near) its own deadline, a batch may already be closed by someone: close
        // it for sure, and go again in halves, which reserve faster.
        let margin = (self.options.batch_seconds / 10).max(2);
        if self.unix() + margin >= deadline {
            self.close(&load)?;
            progress(Progress::Note(format!(
                "batch {} took longer than --batch-seconds={} to reserve its {} objects: closed, and split",
                load.id,
                self.options.batch_seconds,
                ours.len()
            )));
            requeue_split(queue, &pending, &ours);
            return Ok(());
        }
        progress(Progress::Batch { job_id: load.id.clone(), table: pending.table_id.clone(), objects: ours.len() });
        let created = match pending.format {
            LoadFormat::RawCsv => {
                let (bigquery, token) = (self.config.bigquery.clone(), self.token.clone());
                let answer = self
                    .client
                    .call("BigQuery jobs.insert (batch load)", &|t| load.insert_request(&bigquery, &token, t));
                self.created(&load, answer)?
            }
            LoadFormat::Events => self.upload(&load, &pending, &mut ours, queue, summary, progress)?,
        };
        let job = match created {
            Created::Job(job) => {
                // Counted once created, failed or not: that is what BigQuery's quota counts.
                *summary.load_jobs.entry(pending.table_id.clone()).or_default() += 1;
                job
            }
            Created::Closed => {
                // Someone closed the batch first (it looked abandoned): the reservations are
                // spent, nothing loaded.
                requeue_next(queue, &pending, &ours);
                return Ok(());
            }
            Created::Quota(why) => {
                summary.stopped = Some(quota_stop(&why));
                return Ok(());
            }
            Created::Requeued => return Ok(()),
        };
        let state = self.wait(&load, job)?;
        match state {
            JobState::Done { rows, failure: None } => {
                summary.loaded += ours.len() as u64;
                summary.rows += rows.unwrap_or(0);
                for member in &ours {
                    self.done(member, progress);
                }
            }
            JobState::Done { failure: Some(failure), .. } if is_quota(&failure) => {
                summary.stopped = Some(quota_stop(&format!("batch load job {} failed: {failure}", load.id)));
            }
            JobState::Done { failure: Some(failure), .. } => {
                let named = ours.iter().position(|m| failure.message.contains(&m.listed.object.gs_uri()));
                match (named, ours.len()) {
                    (Some(_), _) | (None, 1) => {
                        let bad = named.unwrap_or(0);
                        let member = ours.remove(bad);
                        summary.rejected.push(Named {
                            object: member.listed.object.gs_uri(),
                            reason: format!("BigQuery rejected it (batch job {}): {failure}", load.id),
                        });
                        self.done(&member, progress);
                        if !ours.is_empty() {
                            requeue_next(queue, &pending, &ours);
                        }
                    }
                    _ => {
                        progress(Progress::Note(format!(
                            "batch job {} of {} objects failed ({failure}): loading it again in halves to find the object",
                            load.id,
                            ours.len()
                        )));
                        requeue_split(queue, &pending, &ours);
                    }
                }
            }
            JobState::Pending | JobState::Running => {
                return Err(BackfillError::Upstream(format!(
                    "batch load job {} is still running after {} hours; run again later to check it",
                    load.id,
                    MAX_JOB_WAIT.as_secs() / 3600
                )));
            }
        }
        Ok(())
    }

    /// `jobs.get` of a job id of this project (`None`: no such job).
    fn get(&mut self, job_id: &str) -> Result<Option<Job>, BackfillError> {
        let (bigquery, project, location) =
            (self.config.bigquery.clone(), self.project.clone(), self.config.location.clone());
        let answer =
            self.client.call("BigQuery jobs.get", &|t| get_job_request(&bigquery, &project, &location, job_id, t))?;
        claiming::read(job_id, &answer)
    }

    /// Closes the batch `batch_id` (a 409 means its load or a tombstone is there already:
    /// either way nothing can be created there any more).
    fn tombstone(&mut self, batch_id: &str) -> Result<(), BackfillError> {
        let (bigquery, project, location, token) =
            (self.config.bigquery.clone(), self.project.clone(), self.config.location.clone(), self.token.clone());
        let answer = self.client.call("BigQuery jobs.insert (closing a batch)", &|t| {
            tombstone_request(&bigquery, &project, &location, batch_id, &token, t)
        })?;
        match answer.status().as_u16() {
            200..=299 | 409 => Ok(()),
            status => Err(BackfillError::Upstream(format!(
                "BigQuery refused to close batch {batch_id}: {}",
                GoogleError::from_response(status, answer.body())
            ))),
        }
    }

    fn close(&mut self, load: &BatchLoad) -> Result<(), BackfillError> {
        self.tombstone(&load.id)
    }

    /// What the answer to creating the batch's load means.
    fn created(
        &mut self,
        load: &BatchLoad,
        answer: Result<http::Response<Vec<u8>>, BackfillError>,
    ) -> Result<Created, BackfillError> {
        let answer = match answer {
            Ok(answer) => answer,
            Err(BackfillError::Quota(why)) => {
                self.close(load)?;
                return Ok(Created::Quota(why));
            }
            Err(error) => return Err(error),
        };
        let status = answer.status().as_u16();
        if answer.status().is_success() {
            return match parse_job(answer.body()) {
                Ok(job) => Ok(Created::Job(job)),
                // Accepted, but the answer is unreadable: read the job instead.
                Err(_) => self.read_own(load),
            };
        }
        if status == 409 {
            return self.read_own(load);
        }
        let error = GoogleError::from_response(status, answer.body());
        self.close(load)?;
        Err(BackfillError::Upstream(format!("BigQuery refused batch load job {}: {error}", load.id)))
    }

    /// The batch's id holds something: this run's load (a lost answer), or a tombstone.
    fn read_own(&mut self, load: &BatchLoad) -> Result<Created, BackfillError> {
        match self.get(&load.id)? {
            Some(job) if matches!(job.role, JobRole::Load { .. }) && job.delivery.as_deref() == Some(&self.token) => {
                Ok(Created::Job(job))
            }
            Some(job) if matches!(job.role, JobRole::Load { .. }) => Err(BackfillError::Upstream(format!(
                "batch id {} holds a load job this run did not create; refusing to guess",
                load.id
            ))),
            // A tombstone (closed by someone), or nothing (a 409 for nothing: read as closed).
            _ => {
                self.close(load)?;
                Ok(Created::Closed)
            }
        }
    }

    /// The events batch: every object downloaded, classified and streamed into one upload.
    fn upload(
        &mut self,
        load: &BatchLoad,
        pending: &Pending,
        ours: &mut Vec<Member>,
        queue: &mut VecDeque<Pending>,
        summary: &mut Summary,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Created, BackfillError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let token: Option<Secret> = self.client.token()?;
            let plan = UploadPlan {
                initiate: load.upload_request(&self.config.bigquery, &self.token, token.as_ref().map(Secret::expose)),
                sources: load
                    .specs
                    .iter()
                    .map(|spec| UploadSource {
                        download: crate::storage::download_request(
                            &self.config.storage,
                            &spec.object,
                            token.as_ref().map(Secret::expose),
                        ),
                        object: spec.object.clone(),
                        kind: spec.kind,
                    })
                    .collect(),
                bigquery: self.config.bigquery.clone(),
                token,
                chunk: self.config.upload_chunk,
                budget: Budget::new(
                    Duration::from_secs(self.options.batch_seconds),
                    self.client.io.now_ms(),
                    self.client.io.random_u64(),
                ),
            };
            let report = run_upload(plan, self.client.io);
            let trouble = match report.end {
                UploadEnd::Answered(reply) => match *reply {
                    Reply::Response(response) => {
                        let quota = GoogleError::from_response(response.status().as_u16(), response.body());
                        let answer = match quota.class() {
                            crate::bigquery::ErrorClass::Quota => {
                                Err(BackfillError::Quota(format!("BigQuery upload: {quota}")))
                            }
                            _ => Ok(response),
                        };
                        return self.created(load, answer);
                    }
                    Reply::Failed(why) => why,
                    Reply::Refused { origin, why } => {
                        return Err(BackfillError::Upstream(format!("BigQuery upload: {origin} refused: {why}")));
                    }
                },
                UploadEnd::Fatal(error) if report.failed_source.is_some() => {
                    // One object cannot be read (deleted or replaced since the listing, or not
                    // the log its name says): it is left out, the rest goes again.
                    let bad = ours.remove(report.failed_source.unwrap_or(0));
                    self.close(load)?;
                    summary.rejected.push(Named { object: bad.listed.object.gs_uri(), reason: error.to_string() });
                    self.done(&bad, progress);
                    if !ours.is_empty() {
                        requeue_next(queue, pending, ours);
                    }
                    return Ok(Created::Requeued);
                }
                UploadEnd::Fatal(error) => {
                    self.close(load)?;
                    return Err(BackfillError::Upstream(format!("batch upload {}: {error}", load.id)));
                }
                UploadEnd::Transient(why) | UploadEnd::OutOfBudget(why) => why,
            };
            if tries >= UPLOAD_TRIES {
                // The job may exist after all (the last chunk's answer lost): read before closing.
                return match self.read_own(load)? {
                    Created::Job(job) => Ok(Created::Job(job)),
                    _ => {
                        progress(Progress::Note(format!(
                            "batch upload {} failed {tries} times ({trouble}): closed; its objects go again",
                            load.id
                        )));
                        requeue_split(queue, pending, ours);
                        Ok(Created::Requeued)
                    }
                };
            }
            progress(Progress::Note(format!("batch upload {} failed ({trouble}): trying again", load.id)));
            self.client.io.sleep(Duration::from_secs(2));
        }
    }

    /// Polls the batch's job until it is done.
    fn wait(&mut self, load: &BatchLoad, job: Job) -> Result<JobState, BackfillError> {
        let started = self.now_ms();
        let mut state = job.state;
        let mut delay = Duration::from_millis(500);
        while matches!(state, JobState::Pending | JobState::Running) {
            if self.now_ms().saturating_sub(started) > MAX_JOB_WAIT.as_millis() as u64 {
                break;
            }
            self.client.io.sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(10));
            state = match self.get(&load.id)? {
                Some(job) => job.state,
                None => return Err(BackfillError::Upstream(format!("batch load job {} vanished", load.id))),
            };
        }
        Ok(state)
    }
}

enum Created {
    Job(Job),
    /// A tombstone holds the batch's id: nothing was or will be loaded under it.
    Closed,
    Quota(String),
    /// The batch was closed and its objects queued again (or rejected).
    Requeued,
}

/// The objects, each at its next attempt, as one batch at the front of the queue.
fn requeue_next(queue: &mut VecDeque<Pending>, pending: &Pending, members: &[Member]) {
    let next: Vec<Member> = members.iter().map(|m| Member { attempt: m.attempt + 1, ..m.clone() }).collect();
    queue.push_front(pending.with(next));
}

/// The objects, each at its next attempt, in two halves at the front of the queue.
fn requeue_split(queue: &mut VecDeque<Pending>, pending: &Pending, members: &[Member]) {
    if members.len() < 2 {
        return requeue_next(queue, pending, members);
    }
    let (first, second) = members.split_at(members.len() / 2);
    requeue_next(queue, pending, second);
    requeue_next(queue, pending, first);
}

fn quota_stop(why: &str) -> String {
    format!(
        "BigQuery's quota is spent ({why}). It refills over a rolling 24 hours as the jobs of the last day age \
         out: run the same command again in a few hours and it resumes where this run stopped (nothing is loaded \
         twice). Load jobs per table are limited to 1,500 a day, failed ones included."
    )
}
