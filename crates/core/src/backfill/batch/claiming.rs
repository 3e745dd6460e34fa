//! Reserving a batch's objects, all at once: each object is a small state machine — reserve its
//! attempt, read what holds it on 409, read the batch a reservation names, close an abandoned
//! batch — and every round sends one request per object still open through
//! [`Client::call_all`], which the host may send in parallel (the CLI does: a reservation is a
//! round trip to BigQuery, and a batch has up to 10,000 of them).
//!
//! The decisions are [`crate::claims`]'s, exactly as for one object at a time.

use crate::batch_job::{get_job_request, tombstone_request};
use crate::bigquery::{ErrorClass, GoogleError, Job, JobRole, parse_job};
use crate::claims::{self, AttemptVerdict, BatchVerdict, Holder};
use crate::job::{LoadSpec, MAX_ATTEMPTS};
use crate::service::Io;

use super::{Claim, Run};
use crate::backfill::client::MakeRequest;
use crate::backfill::{BackfillError, Summary};

/// Where one object's claim is.
#[derive(Debug, Clone)]
enum Step {
    /// Create the reservation at this attempt's id.
    Reserve(u32),
    /// The id is taken: read what holds it.
    Read(u32),
    /// A reservation for another batch holds it: read that batch's id.
    ReadBatch { attempt: u32, batch: String, deadline: u64 },
    /// That batch is abandoned: close it, then try the attempt again.
    Close { attempt: u32, batch: String },
}

struct Open {
    index: usize,
    step: Step,
    /// 409s whose job then read as absent (not BigQuery's create-if-absent: a location
    /// mismatch, a proxy): three make an error instead of an endless loop.
    vanished: u32,
}

enum Next {
    Done(Claim),
    Again(Step),
}

impl<I: Io> Run<'_, '_, I> {
    /// Claims every object of `specs` (each from its attempt in `attempts`) for the batch
    /// `batch_id`, whose load will be created before `deadline`.
    pub(super) fn claim_all(
        &mut self,
        specs: &[LoadSpec],
        attempts: &[u32],
        batch_id: &str,
        deadline: u64,
        summary: &mut Summary,
    ) -> Result<Vec<Claim>, BackfillError> {
        let mut claims: Vec<Option<Claim>> = (0..specs.len()).map(|_| None).collect();
        let mut open: Vec<Open> = attempts
            .iter()
            .enumerate()
            .map(|(index, &a)| Open { index, step: Step::Reserve(a), vanished: 0 })
            .collect();
        while !open.is_empty() {
            // One tombstone per batch and round: two at once for one id would race each other.
            let mut closing = std::collections::BTreeSet::new();
            for o in &mut open {
                if let Step::Close { attempt, batch } = &o.step
                    && !closing.insert(batch.clone())
                {
                    o.step = Step::Reserve(*attempt);
                }
            }
            let (bigquery, project, location, token) =
                (self.config.bigquery.clone(), self.project.clone(), self.config.location.clone(), self.token.clone());
            let requests: Vec<Box<MakeRequest<'_>>> = open
                .iter()
                .map(|o| {
                    let spec = &specs[o.index];
                    let (bigquery, project, location, token) = (&bigquery, &project, &location, &token);
                    let step = o.step.clone();
                    Box::new(move |t: Option<&str>| match &step {
                        Step::Reserve(a) => spec.reservation_request(bigquery, *a, batch_id, deadline, token, t),
                        Step::Read(a) => spec.get_request(bigquery, *a, t),
                        Step::ReadBatch { batch, .. } => get_job_request(bigquery, project, location, batch, t),
                        Step::Close { batch, .. } => tombstone_request(bigquery, project, location, batch, token, t),
                    }) as Box<MakeRequest<'_>>
                })
                .collect();
            let answers = self.client.call_all("BigQuery (reserving a batch's objects)", &requests)?;
            drop(requests);
            let mut still = Vec::new();
            // Every answer is read before an error ends the claim, so each reservation that
            // went through is counted (and the batch closed over it).
            let mut failed = None;
            for (mut o, answer) in open.into_iter().zip(answers) {
                match self.advance(&specs[o.index], &mut o, answer, batch_id, summary) {
                    Ok(Next::Done(claim)) => claims[o.index] = Some(claim),
                    Ok(Next::Again(step)) => {
                        o.step = step;
                        still.push(o);
                    }
                    Err(error) => {
                        failed.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = failed {
                return Err(error);
            }
            open = still;
        }
        Ok(claims.into_iter().map(|c| c.expect("every object's claim ended")).collect())
    }

    fn advance(
        &mut self,
        spec: &LoadSpec,
        open: &mut Open,
        answer: http::Response<Vec<u8>>,
        batch_id: &str,
        summary: &mut Summary,
    ) -> Result<Next, BackfillError> {
        let uri = spec.object.gs_uri();
        let status = answer.status().as_u16();
        let spent = |attempt: u32| {
            if attempt >= MAX_ATTEMPTS {
                Next::Done(Claim::Exhausted(format!("all {MAX_ATTEMPTS} load job attempts for this object are spent")))
            } else {
                Next::Again(Step::Reserve(attempt + 1))
            }
        };
        match open.step.clone() {
            Step::Reserve(attempt) => match status {
                200..=299 => {
                    summary.reservations += 1;
                    Ok(Next::Done(Claim::Ours(attempt)))
                }
                409 => Ok(Next::Again(Step::Read(attempt))),
                _ if GoogleError::from_response(status, answer.body()).class() == ErrorClass::Quota => {
                    Err(BackfillError::Quota(format!(
                        "BigQuery jobs.insert (reservation): {}",
                        GoogleError::from_response(status, answer.body())
                    )))
                }
                _ => Err(BackfillError::Upstream(format!(
                    "BigQuery refused the reservation job {} for {uri}: {}",
                    spec.job_id(attempt),
                    GoogleError::from_response(status, answer.body())
                ))),
            },
            Step::Read(attempt) => {
                let Some(job) = read(&spec.job_id(attempt), &answer)? else {
                    open.vanished += 1;
                    if open.vanished >= 3 {
                        return Err(BackfillError::Upstream(format!(
                            "BigQuery answers 409 for job {} but jobs.get does not find it (location {}?)",
                            spec.job_id(attempt),
                            self.config.location
                        )));
                    }
                    return Ok(Next::Again(Step::Reserve(attempt)));
                };
                if let JobRole::Reservation { batch, .. } = &job.role
                    && batch == batch_id
                {
                    // Ours: the answer to our own reservation was lost, and the retry met it.
                    summary.reservations += 1;
                    return Ok(Next::Done(Claim::Ours(attempt)));
                }
                Ok(match claims::attempt(&uri, Some(&Holder::from_job(&job, &uri))) {
                    AttemptVerdict::Loaded => Next::Done(Claim::Loaded),
                    AttemptVerdict::InFlight => Next::Done(Claim::Held(attempt)),
                    AttemptVerdict::Spent => spent(attempt),
                    AttemptVerdict::Free => Next::Again(Step::Reserve(attempt)),
                    AttemptVerdict::Batch(batch) => {
                        let deadline = match job.role {
                            JobRole::Reservation { deadline, .. } => deadline,
                            _ => 0,
                        };
                        Next::Again(Step::ReadBatch { attempt, batch, deadline })
                    }
                })
            }
            Step::ReadBatch { attempt, batch, deadline } => {
                let read = read(&batch, &answer)?;
                let holder = read.as_ref().map(|j| Holder::from_job(j, &uri));
                let abandoned = self.unix() > deadline;
                Ok(match claims::batch(&uri, holder.as_ref(), abandoned) {
                    BatchVerdict::Attempt(AttemptVerdict::Loaded) => Next::Done(Claim::Loaded),
                    BatchVerdict::Attempt(AttemptVerdict::InFlight) => Next::Done(Claim::Held(attempt)),
                    BatchVerdict::Close => Next::Again(Step::Close { attempt, batch }),
                    // Closed, failed, or without the object: this attempt is spent.
                    BatchVerdict::Attempt(_) => spent(attempt),
                })
            }
            Step::Close { attempt, batch } => match status {
                // Closed now, or something got there first: either way, look again.
                200..=299 | 409 => Ok(Next::Again(Step::Reserve(attempt))),
                _ => Err(BackfillError::Upstream(format!(
                    "BigQuery refused to close batch {batch}: {}",
                    GoogleError::from_response(status, answer.body())
                ))),
            },
        }
    }
}

/// A `jobs.get` answer: the job, or `None` for 404.
pub(super) fn read(job_id: &str, answer: &http::Response<Vec<u8>>) -> Result<Option<Job>, BackfillError> {
    match answer.status().as_u16() {
        200 => {
            parse_job(answer.body()).map(Some).map_err(|why| BackfillError::Upstream(format!("job {job_id}: {why}")))
        }
        404 => Ok(None),
        status => Err(BackfillError::Upstream(format!(
            "BigQuery jobs.get of {job_id} answered {}",
            GoogleError::from_response(status, answer.body())
        ))),
    }
}
