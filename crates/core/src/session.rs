//! One load, as a sans-I/O state machine: it says which HTTP request to send or how long to
//! sleep, and is told what came back. Hosts drive it (see [`crate::service::drive`]); tests
//! drive it with scripted answers and a fake clock.
//!
//! The sequence: [project id from metadata] → [token from metadata] → `jobs.insert` with the
//! deterministic job id → (`409 duplicate` → `jobs.get` of that job) → poll `jobs.get` until
//! DONE or the deadline. Transient failures are retried with jittered backoff, same request,
//! same job id, until the deadline. A failed job found through 409 leads to the next attempt
//! id, so a rejected load can be re-run by redelivering the event, with nothing to clean up.
//!
//! Classified loads ([`LoadFormat::Events`]) differ in one place: instead of `jobs.insert`
//! they first *probe* with `jobs.get` (a redelivery must not download and upload the log
//! again just to hear 409), and on 404 hand the host a [`Step::Upload`]; the upload's final
//! answer then comes back as if it were the `jobs.insert` answer.

use std::time::Duration;

use crate::backoff::Jitter;
use crate::bigquery::{ErrorClass, GoogleError, JobFailure, JobRole, JobState, is_quota, parse_job};
use crate::budget::Budget;
pub use crate::budget::MIN_BUDGET;
use crate::claims::{self, AttemptVerdict, BatchVerdict, Holder};
use crate::classified::{UploadEnd, UploadPlan, UploadReport};
use crate::config::{AuthMode, Config};
use crate::credentials::{self, AccessToken, CredentialCache};
use crate::job::{LoadFormat, LoadSpec, MAX_ATTEMPTS, TableRef};
use crate::metadata;
use crate::outcome::{FileCounts, LoadError, Outcome, OutcomeKind};
use crate::plan::PlannedLoad;
use crate::secret::Secret;

/// What the host must do next.
#[derive(Debug)]
pub enum Step {
    /// Send this request; give up on it after `timeout` and report [`Reply::Failed`].
    Send { request: http::Request<Vec<u8>>, timeout: Duration },
    /// Sleep, then call [`LoadSession::on_wake`].
    Sleep(Duration),
    /// Run [`crate::classified::run_upload`] with this plan, then call [`LoadSession::on_upload`].
    Upload(Box<UploadPlan>),
    /// Finished.
    Done(Result<Outcome, LoadError>),
}

/// What came back for a [`Step::Send`].
#[derive(Debug)]
pub enum Reply {
    Response(http::Response<Vec<u8>>),
    /// No HTTP answer: connection refused, DNS, TLS, timeout… (the host's words).
    Failed(String),
    /// The host would not send it at all: its outbound policy does not allow the origin (Spin's
    /// `allowed_outbound_hosts`). A deployment error — no retry can succeed, so none is made.
    Refused {
        origin: String,
        why: String,
    },
}

/// Why a request got no HTTP answer: what a streamed request ([`crate::service::Io::open`])
/// reports instead of a response.
#[derive(Debug)]
pub enum NoAnswer {
    Failed(String),
    Refused { origin: String, why: String },
}

impl From<NoAnswer> for Reply {
    fn from(no_answer: NoAnswer) -> Reply {
        match no_answer {
            NoAnswer::Failed(why) => Reply::Failed(why),
            NoAnswer::Refused { origin, why } => Reply::Refused { origin, why },
        }
    }
}

impl Reply {
    /// The load's error for a request the host refused to send, naming the fix.
    pub fn refused_error(what: &str, origin: &str, why: &str) -> LoadError {
        LoadError::UpstreamUnavailable(format!(
            "{what}: the host refused to send a request to {origin} ({why}): add \"{origin}\" to the host's \
             allowed outbound hosts (Spin: allowed_outbound_hosts in spin.toml, where an entry made from a \
             variable that is empty or not an origin makes Spin refuse every request); nothing was retried"
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    ProjectId,
    Token,
    /// The object's live generation, when the event named none: the job id depends on it.
    Generation,
    /// `jobs.get` before an upload: does this attempt's job exist already?
    Probe,
    /// `jobs.insert`, or the upload for classified loads.
    Insert,
    GetJob,
    /// `jobs.get` of the backfill batch that reserved this attempt ([`crate::claims`]).
    GetBatch,
    /// A tombstone at an abandoned batch's id, so its load can never be created.
    CloseBatch,
}

/// The backfill batch holding this object's current attempt through a reservation.
#[derive(Debug, Clone)]
struct ReservedFor {
    batch: String,
    /// Unix seconds after which the batch may be closed.
    deadline: u64,
}

#[derive(Debug)]
pub struct LoadSession {
    config: Config,
    planned: PlannedLoad,
    project: Option<String>,
    token: Option<Secret>,
    /// What the token and the project id are cached under (see [`crate::credentials`]).
    token_source: Option<String>,
    project_source: Option<String>,
    /// What this session learned for the instance's cache: a token (and the monotonic ms it
    /// arrived), a project id, and whether Google refused the cached token.
    fetched_token: Option<(AccessToken, u64)>,
    fetched_project: Option<String>,
    token_refused: bool,
    /// The request to go back to once a refused token has been replaced.
    after_token: Option<Action>,
    action: Action,
    attempt: Attempt,
    /// Set when the attempt's id holds a backfill's reservation; cleared with the attempt.
    reserved: Option<ReservedFor>,
    /// This delivery's random token, sent as the jobs' `delivery` label: a job read back with
    /// it is ours, whatever happened to the answer of the request that created it.
    delivery: String,
    /// Wall-clock seconds at the start, and the monotonic ms they correspond to: JWTs need
    /// Unix time, everything else the monotonic clock.
    unix_at_start: u64,
    ms_at_start: u64,
    /// What reading the object found, once an upload read it.
    counts: Option<FileCounts>,
    /// Every send, sleep and retry of this event is decided against it (see [`crate::budget`]).
    budget: Budget,
}

/// What belongs to one attempt (job id `…`, `…_r2`, …), replaced whole by the next.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    number: u32,
    /// Whether this delivery created the attempt's job (loaded vs duplicate, and whether a
    /// failure is ours to report or a past attempt's to supersede).
    created: bool,
    /// The job was seen PENDING/RUNNING (it exists and had not failed).
    seen_running: bool,
}

impl Attempt {
    const FIRST: Attempt = Attempt { number: 1, created: false, seen_running: false };

    fn next(self) -> Attempt {
        Attempt { number: self.number + 1, ..Attempt::FIRST }
    }
}

impl LoadSession {
    /// `now_ms` is the host's monotonic clock, `now_unix` its wall clock (seconds); `seed` its
    /// randomness (for jitter).
    pub fn new(config: Config, planned: PlannedLoad, now_ms: u64, now_unix: u64, seed: u64) -> LoadSession {
        let token = match &config.auth {
            AuthMode::Token(t) => Some(t.clone()),
            AuthMode::ServiceAccount { key, self_signed: true } => Some(Secret::new(key.self_signed(now_unix))),
            AuthMode::Metadata | AuthMode::None | AuthMode::ServiceAccount { .. } => None,
        };
        let project = config.project.clone();
        let token_source = credentials::token_source(&config);
        let project_source = credentials::project_source(&config);
        let budget = Budget::new(config.wait, now_ms, seed);
        let mut session = LoadSession {
            config,
            planned,
            project,
            token,
            token_source,
            project_source,
            fetched_token: None,
            fetched_project: None,
            token_refused: false,
            after_token: None,
            action: Action::ProjectId, // decided below, from what the session starts with
            attempt: Attempt::FIRST,
            reserved: None,
            delivery: delivery_token(seed),
            unix_at_start: now_unix,
            ms_at_start: now_ms,
            counts: None,
            budget,
        };
        session.action = session.setup_action();
        session
    }

    /// Takes the project id and a still-good token from the instance's cache, when it holds
    /// them for this configuration's credential: the requests for them are then skipped.
    pub fn with_cached(mut self, cache: &CredentialCache, now_ms: u64) -> LoadSession {
        if self.project.is_none()
            && let Some(project) = self.project_source.as_deref().and_then(|source| cache.project(source))
        {
            self.project = Some(project.to_string());
        }
        // The token must outlive the whole event (its budget), plus the usual margin.
        let needed = self.budget.total() + credentials::REFRESH_MARGIN;
        if self.token.is_none()
            && let Some(token) = self.token_source.as_deref().and_then(|source| cache.token(source, now_ms, needed))
        {
            self.token = Some(Secret::new(token));
        }
        self.action = self.setup_action();
        self
    }

    /// The first request still needed: the project id, then a token, then the object's
    /// generation if the event named none, then the job.
    fn setup_action(&self) -> Action {
        if self.project.is_none() {
            Action::ProjectId
        } else if self.token.is_none() && needs_token_request(&self.config.auth) {
            Action::Token
        } else if self.planned.object.generation.is_none() {
            Action::Generation
        } else {
            first_job_action(self.planned.format)
        }
    }

    /// Hands what this session fetched to the instance's cache (call once it is done).
    pub fn remember(&self, cache: &mut CredentialCache) {
        if let Some(source) = &self.token_source {
            if self.token_refused {
                cache.forget_token(source);
            }
            if let Some((token, at_ms)) = &self.fetched_token {
                cache.store_token(source, token, *at_ms);
            }
        }
        if let (Some(source), Some(project)) = (&self.project_source, &self.fetched_project) {
            cache.store_project(source, project);
        }
    }

    /// The first step.
    pub fn start(&mut self, now_ms: u64) -> Step {
        self.send(now_ms)
    }

    /// After a [`Step::Sleep`]: repeat (or continue with) the pending action.
    pub fn on_wake(&mut self, now_ms: u64) -> Step {
        self.send(now_ms)
    }

    /// How a [`Step::Upload`] ended.
    pub fn on_upload(&mut self, report: UploadReport, now_ms: u64) -> Step {
        if let Some(counts) = report.counts.into_iter().next() {
            self.counts = Some(counts);
        }
        // The budget comes back with what the upload spent and the chunk failures it counted.
        self.budget = report.budget;
        match report.end {
            UploadEnd::Answered(reply) => self.on_reply(*reply, now_ms),
            UploadEnd::Transient(why) => self.transient(why, now_ms),
            UploadEnd::Fatal(error) => Step::Done(Err(error)),
            UploadEnd::OutOfBudget(why) => Step::Done(Err(LoadError::UpstreamUnavailable(why))),
        }
    }

    /// The answer to the last [`Step::Send`].
    pub fn on_reply(&mut self, reply: Reply, now_ms: u64) -> Step {
        let response = match reply {
            Reply::Response(r) => r,
            Reply::Failed(why) => return self.transient(format!("{} failed: {why}", self.describe()), now_ms),
            Reply::Refused { origin, why } => {
                return Step::Done(Err(Reply::refused_error(self.describe(), &origin, &why)));
            }
        };
        let status = response.status().as_u16();
        let body = response.body();
        if self.action == Action::Generation && status == 404 {
            return Step::Done(Err(LoadError::InvalidInput(format!(
                "generation: the event names none, and {} does not exist (any more); there is nothing to load",
                self.planned.object.gs_uri()
            ))));
        }
        if self.action == Action::GetBatch && status == 404 {
            return self.batch_verdict(None, now_ms);
        }
        if self.action == Action::Probe && status == 404 {
            // No job for this attempt yet: this delivery uploads it.
            self.action = Action::Insert;
            return self.send(now_ms);
        }
        if status == 401
            && !self.token_refused
            && needs_token_request(&self.config.auth)
            && matches!(
                self.action,
                Action::Generation
                    | Action::Insert
                    | Action::GetJob
                    | Action::Probe
                    | Action::GetBatch
                    | Action::CloseBatch
            )
        {
            // The token was revoked, or expired under a long event (a cached one, or one the
            // metadata server handed out near its end): fetch one, once, and repeat the
            // request.
            self.token = None;
            self.token_refused = true;
            self.after_token = Some(self.action);
            self.action = Action::Token;
            return self.send(now_ms);
        }
        if !(200..300).contains(&status) {
            let error = GoogleError::from_response(status, body);
            return match (error.class(), self.action) {
                (ErrorClass::AlreadyExists, Action::Insert) => {
                    // Delivered before: adopt the existing job instead of failing (the Python
                    // client raises here; that is what made the seed unsafe to redeliver).
                    // Whose job it is, the job's delivery label tells once it is read.
                    self.attempt.created = false;
                    self.action = Action::GetJob;
                    self.send(now_ms)
                }
                // Someone created the batch's load or a tombstone first: read which.
                (ErrorClass::AlreadyExists, Action::CloseBatch) => {
                    self.action = Action::GetBatch;
                    self.send(now_ms)
                }
                (ErrorClass::Quota, _) => Step::Done(Err(quota_error(&self.rejected_message(&error)))),
                (ErrorClass::Transient, _) => self.transient(format!("{} answered {error}", self.describe()), now_ms),
                _ => Step::Done(Err(LoadError::UpstreamRejected(self.rejected_message(&error)))),
            };
        }
        match self.action {
            Action::ProjectId => match metadata::parse_project(body) {
                Ok(project) => {
                    self.fetched_project = Some(project.clone());
                    self.project = Some(project);
                    self.action = self.setup_action();
                    self.send(now_ms)
                }
                Err(why) => Step::Done(Err(LoadError::UpstreamRejected(why))),
            },
            Action::Token => match metadata::parse_token(body) {
                Ok(token) => {
                    self.token = Some(token.value.clone());
                    self.fetched_token = Some((token, now_ms));
                    self.action = self.after_token.take().unwrap_or_else(|| self.setup_action());
                    self.send(now_ms)
                }
                // A garbled token answer is most likely a flaky proxy: worth another try.
                Err(why) => self.transient(format!("metadata server: {why}"), now_ms),
            },
            Action::Generation => match crate::storage::parse_generation(body) {
                Ok(generation) => {
                    self.planned.object.generation = Some(generation);
                    self.action = first_job_action(self.planned.format);
                    self.send(now_ms)
                }
                // A 200 without a generation is not Cloud Storage's answer: most likely a proxy.
                Err(why) => self.transient(format!("Cloud Storage objects.get: {why}"), now_ms),
            },
            Action::Insert => {
                self.attempt.created = true;
                match parse_job(body) {
                    Ok(job) => self.job_state(job.state, now_ms),
                    // The job was accepted but the answer is unreadable: read the job instead.
                    Err(_) => {
                        self.action = Action::GetJob;
                        self.send(now_ms)
                    }
                }
            }
            Action::CloseBatch => {
                self.action = Action::GetBatch;
                self.send(now_ms)
            }
            Action::GetBatch => match parse_job(body) {
                Ok(job) => {
                    let holder = Holder::from_job(&job, &self.planned.object.gs_uri());
                    self.batch_verdict(Some((holder, job.state)), now_ms)
                }
                Err(why) => self.transient(format!("BigQuery jobs.get (backfill batch): {why}"), now_ms),
            },
            Action::GetJob | Action::Probe => match parse_job(body) {
                Ok(job)
                    if !matches!(job.role, JobRole::Load { .. }) || !job_holds(&job, &self.planned.object.gs_uri()) =>
                {
                    // Not this object's own load: a backfill's reservation, or something that
                    // can never load it at this attempt.
                    match claims::attempt(
                        &self.planned.object.gs_uri(),
                        Some(&Holder::from_job(&job, &self.planned.object.gs_uri())),
                    ) {
                        AttemptVerdict::Batch(batch) => {
                            let deadline = match job.role {
                                JobRole::Reservation { deadline, .. } => deadline,
                                _ => 0,
                            };
                            self.reserved = Some(ReservedFor { batch, deadline });
                            self.action = Action::GetBatch;
                            self.send(now_ms)
                        }
                        _ => self.spent("its id holds a job that is not this object's load", now_ms),
                    }
                }
                Ok(job) => {
                    // Every job this loader creates carries its delivery's label, so a job
                    // without ours — another delivery's, or an older loader's without any — is
                    // never ours, whatever happened to our own requests. (A guess from "our
                    // first insert failed ambiguously" was wrong whenever that insert never
                    // arrived: the session property test found the case.)
                    if !self.attempt.created || job.delivery.is_some() {
                        self.attempt.created = job.delivery.as_deref() == Some(self.delivery.as_str());
                    }
                    self.job_state(job.state, now_ms)
                }
                Err(why) => self.transient(format!("BigQuery jobs.get: {why}"), now_ms),
            },
        }
    }

    fn describe(&self) -> &'static str {
        match (self.action, self.planned.format) {
            (Action::ProjectId, _) => "metadata server (project id)",
            (Action::Token, _) if matches!(self.config.auth, AuthMode::ServiceAccount { .. }) => {
                "OAuth token endpoint (service-account key)"
            }
            (Action::Token, _) => "metadata server (access token)",
            (Action::Generation, _) => "Cloud Storage objects.get (generation)",
            (Action::Insert, LoadFormat::RawCsv) => "BigQuery jobs.insert",
            (Action::Insert, LoadFormat::Events) => "BigQuery upload (jobs.insert)",
            (Action::GetJob | Action::Probe, _) => "BigQuery jobs.get",
            (Action::GetBatch, _) => "BigQuery jobs.get (backfill batch)",
            (Action::CloseBatch, _) => "BigQuery jobs.insert (closing an abandoned backfill batch)",
        }
    }

    fn spec(&self) -> LoadSpec {
        LoadSpec {
            object: self.planned.object.clone(),
            kind: self.planned.kind,
            format: self.planned.format,
            destination: TableRef {
                project_id: self.project.clone().unwrap_or_default(),
                dataset_id: self.config.dataset.clone(),
                table_id: self.planned.table_id.clone(),
            },
            location: self.config.location.clone(),
        }
    }

    fn send(&mut self, now_ms: u64) -> Step {
        let Some(timeout) = self.budget.request_timeout(now_ms) else { return self.out_of_time() };
        let token = self.token.as_ref().map(Secret::expose);
        let request = match (self.action, self.planned.format) {
            (Action::ProjectId, _) => metadata::project_request(&self.config.metadata),
            (Action::Token, _) => match &self.config.auth {
                AuthMode::ServiceAccount { key, .. } => {
                    key.token_request(self.unix_at_start + now_ms.saturating_sub(self.ms_at_start) / 1000)
                }
                _ => metadata::token_request(&self.config.metadata),
            },
            (Action::Generation, _) => {
                crate::storage::generation_request(&self.config.storage, &self.planned.object, token)
            }
            (Action::Insert, LoadFormat::RawCsv) => {
                self.spec().insert_request(&self.config.bigquery, self.attempt.number, &self.delivery, token)
            }
            (Action::Insert, LoadFormat::Events) => {
                return Step::Upload(Box::new(UploadPlan {
                    initiate: self.spec().upload_request(
                        &self.config.bigquery,
                        self.attempt.number,
                        &self.delivery,
                        token,
                    ),
                    sources: vec![crate::classified::UploadSource {
                        download: crate::storage::download_request(&self.config.storage, &self.planned.object, token),
                        object: self.planned.object.clone(),
                        kind: self.planned.kind,
                    }],
                    bigquery: self.config.bigquery.clone(),
                    token: self.token.clone(),
                    chunk: self.config.upload_chunk,
                    budget: self.budget.clone(),
                }));
            }
            (Action::GetJob | Action::Probe, _) => {
                self.spec().get_request(&self.config.bigquery, self.attempt.number, token)
            }
            (Action::GetBatch | Action::CloseBatch, _) => {
                let batch = &self.reserved.as_ref().expect("a batch is known before it is read").batch;
                let spec = self.spec();
                let (project, location) = (&spec.destination.project_id, &spec.location);
                if self.action == Action::GetBatch {
                    crate::batch_job::get_job_request(&self.config.bigquery, project, location, batch, token)
                } else {
                    crate::batch_job::tombstone_request(
                        &self.config.bigquery,
                        project,
                        location,
                        batch,
                        &self.delivery,
                        token,
                    )
                }
            }
        };
        Step::Send { request, timeout }
    }

    fn transient(&mut self, what: String, now_ms: u64) -> Step {
        match self.budget.retry(what, now_ms) {
            Ok(delay) => Step::Sleep(delay),
            Err(give_up) => Step::Done(Err(LoadError::UpstreamUnavailable(give_up))),
        }
    }

    /// The budget is spent before the next request: say what is known, and let the trigger
    /// redeliver whenever the job's fate is unknown.
    fn out_of_time(&self) -> Step {
        match self.action {
            Action::GetJob if self.attempt.created => Step::Done(Ok(self.outcome(
                OutcomeKind::Submitted,
                None,
                Some("the load job was submitted but GCR_USAGE_WAIT_SECONDS ran out before it finished; BigQuery finishes it on its own".into()),
            ))),
            Action::GetJob if self.attempt.seen_running => Step::Done(Ok(self.outcome(
                OutcomeKind::Duplicate,
                None,
                Some("the load job already existed (redelivered event) and is still running".into()),
            ))),
            _ => Step::Done(Err(LoadError::UpstreamUnavailable(format!(
                "GCR_USAGE_WAIT_SECONDS={} ran out before {} could be asked; the trigger should redeliver",
                self.config.wait.as_secs(),
                self.describe()
            )))),
        }
    }

    fn job_state(&mut self, state: JobState, now_ms: u64) -> Step {
        self.budget.progressed();
        self.attempt.seen_running = matches!(state, JobState::Pending | JobState::Running);
        match state {
            JobState::Pending | JobState::Running => {
                let Some(delay) = self.budget.poll(now_ms) else {
                    let (kind, reason) = if self.attempt.created {
                        (
                            OutcomeKind::Submitted,
                            "the load job was still running when GCR_USAGE_WAIT_SECONDS ran out; BigQuery finishes it on its own",
                        )
                    } else {
                        (
                            OutcomeKind::Duplicate,
                            "the load job already existed (redelivered event) and is still running",
                        )
                    };
                    return Step::Done(Ok(self.outcome(kind, None, Some(reason.to_string()))));
                };
                self.action = if self.reserved.is_some() { Action::GetBatch } else { Action::GetJob };
                Step::Sleep(delay)
            }
            JobState::Done { rows, failure: None } => {
                let (kind, reason) = if self.attempt.created {
                    (OutcomeKind::Loaded, None)
                } else {
                    (
                        OutcomeKind::Duplicate,
                        Some("the load job already existed (redelivered event); nothing was loaded twice".to_string()),
                    )
                };
                Step::Done(Ok(self.outcome(kind, rows, reason)))
            }
            JobState::Done { failure: Some(failure), .. } => self.failed(failure, now_ms),
        }
    }

    /// What the backfill batch that reserved this attempt says (`None`: its id holds nothing).
    fn batch_verdict(&mut self, read: Option<(Holder, JobState)>, now_ms: u64) -> Step {
        let reserved = self.reserved.clone().expect("a batch is known before it is read");
        let now_unix = self.unix_at_start + now_ms.saturating_sub(self.ms_at_start) / 1000;
        let abandoned = now_unix > reserved.deadline;
        let object = self.planned.object.gs_uri();
        match (claims::batch(&object, read.as_ref().map(|(holder, _)| holder), abandoned), read) {
            (BatchVerdict::Close, _) => {
                self.action = Action::CloseBatch;
                self.send(now_ms)
            }
            // The batch's load includes the object: its state is this attempt's.
            (BatchVerdict::Attempt(AttemptVerdict::Loaded | AttemptVerdict::InFlight), Some((_, state))) => {
                self.attempt.created = false;
                self.job_state(state, now_ms)
            }
            (BatchVerdict::Attempt(AttemptVerdict::InFlight), None) => {
                Step::Done(Err(LoadError::UpstreamUnavailable(format!(
                    "a backfill (batch job {}) has reserved {object} and may load it until {}; redeliver the event \
                     later: it then finds the batch's load, or closes the abandoned batch and loads the object itself",
                    reserved.batch,
                    crate::registry_event::EventTime(reserved.deadline as i64 * 1_000_000)
                ))))
            }
            _ => self.spent("the backfill batch that reserved it was closed or failed", now_ms),
        }
    }

    /// This attempt can never load the object (see [`crate::claims`]): go on to the next one.
    fn spent(&mut self, why: &str, now_ms: u64) -> Step {
        if self.attempt.number >= MAX_ATTEMPTS {
            let reason = format!("all {MAX_ATTEMPTS} load job attempts for this object are spent; the last: {why}");
            return Step::Done(Ok(self.outcome(OutcomeKind::Failed, None, Some(reason))));
        }
        self.next_attempt(now_ms)
    }

    fn next_attempt(&mut self, now_ms: u64) -> Step {
        self.attempt = self.attempt.next();
        self.reserved = None;
        self.budget.new_attempt();
        self.action = first_job_action(self.planned.format);
        self.send(now_ms)
    }

    fn failed(&mut self, failure: JobFailure, now_ms: u64) -> Step {
        if self.attempt.created && is_quota(&failure) {
            // The job counted against the quota and loaded nothing; the next delivery, once the
            // quota has refilled, submits the next attempt.
            return Step::Done(Err(quota_error(&format!(
                "BigQuery failed load job {}: {failure}",
                self.spec().job_id(self.attempt.number)
            ))));
        }
        if self.attempt.created {
            let reason = format!(
                "BigQuery rejected load job attempt {}/{MAX_ATTEMPTS}: {failure}; redelivering the event submits a fresh attempt",
                self.attempt.number
            );
            return Step::Done(Ok(self.outcome(OutcomeKind::Failed, None, Some(reason))));
        }
        if self.attempt.number >= MAX_ATTEMPTS {
            let reason = format!("all {MAX_ATTEMPTS} load job attempts for this object failed; the last: {failure}");
            return Step::Done(Ok(self.outcome(OutcomeKind::Failed, None, Some(reason))));
        }
        // A past delivery's job failed (bad data then, or a table fixed since): try afresh
        // under the next id; load jobs are atomic, so the failed one loaded nothing.
        self.next_attempt(now_ms)
    }

    fn outcome(&self, kind: OutcomeKind, rows: Option<u64>, reason: Option<String>) -> Outcome {
        let spec = self.spec();
        Outcome {
            outcome: kind,
            object: Some(spec.object.clone()),
            log_kind: Some(spec.kind),
            destination: Some(spec.destination.to_string()),
            job_id: Some(spec.job_id(self.attempt.number)),
            rows,
            reason,
            counts: self.counts.clone(),
            retries: self.budget.retries(),
        }
    }

    fn rejected_message(&self, error: &GoogleError) -> String {
        match self.action {
            Action::Insert | Action::GetJob | Action::Probe | Action::GetBatch | Action::CloseBatch => {
                format!(
                    "{} refused job {} for {}: {error}",
                    self.describe(),
                    self.spec().job_id(self.attempt.number),
                    self.spec().destination
                )
            }
            _ => format!("{} refused: {error}", self.describe()),
        }
    }
}

/// The delivery label's value for a session seeded with `seed`: drawn from a stream of its own
/// so the retry jitter stays what the seed always gave.
fn delivery_token(seed: u64) -> String {
    format!("{:016x}", Jitter::new(!seed).next_u64())
}

/// A spent quota: answered at once (503, so the trigger redelivers later) and never retried
/// here, since a retry storm would only burn what refills.
fn quota_error(what: &str) -> LoadError {
    LoadError::UpstreamUnavailable(format!(
        "{what}; a BigQuery quota is spent (load jobs per table: 1,500 a day, failed ones included, \
         refilled over a rolling 24 hours): nothing was retried, and a later delivery loads the object"
    ))
}

/// Whether a load job read back holds `object` (an upload, with no `sourceUris`, holds the
/// object whose id it was created under).
fn job_holds(job: &crate::bigquery::Job, object: &str) -> bool {
    match &job.role {
        JobRole::Load { source_uris } => source_uris.is_empty() || source_uris.iter().any(|u| u == object),
        _ => false,
    }
}

/// Whether an access token must be fetched before the first Google API call.
fn needs_token_request(auth: &AuthMode) -> bool {
    matches!(auth, AuthMode::Metadata | AuthMode::ServiceAccount { self_signed: false, .. })
}

/// Loads by URI insert the job straight away (a duplicate costs one 409); uploads look first.
fn first_job_action(format: LoadFormat) -> Action {
    match format {
        LoadFormat::RawCsv => Action::Insert,
        LoadFormat::Events => Action::Probe,
    }
}

#[cfg(test)]
mod tests;
