//! Exactly once across per-object and batched loads (issue 12's design, not yet wired to the
//! live path or a backfill command): BigQuery job ids are the only shared state.
//!
//! `jobs.insert` with a job id is create-if-absent — the first writer of an id wins, everyone
//! else gets 409 and can read what won — so a job id is a register with compare-and-set, and
//! nothing else (no table of our own, no lock service, no permission beyond `bigquery.jobs.create`)
//! is needed to agree on who loads an object:
//!
//! - Every object has its attempts `J(o, 1)`, `J(o, 2)`, … ([`crate::job::LoadSpec::job_id`]).
//!   Whoever creates a job at an attempt's id owns that attempt. A live event creates its own
//!   load there; a batch creates a [`Holder::Reservation`] (a `SELECT 1` query job, labelled
//!   with the batch's id), promising that the object's rows come from the batch job and from
//!   nowhere else at that attempt.
//! - A batch then creates its load job under its own id, with exactly the objects it reserved.
//!   Anyone who finds a reservation whose batch id holds nothing yet may, once the reservation is
//!   old enough to be abandoned, *close* the batch: create a [`Holder::Tombstone`] at the batch's
//!   id. Then the batch's load can never be created (its insert gets 409), and the reservation
//!   is spent.
//! - An attempt is spent when its load (own or batch) failed — a load job is atomic, a failed
//!   one loaded nothing — or its batch was closed or does not hold the object; then the next
//!   attempt's id is tried. Only a spent attempt lets anyone move on.
//!
//! So at every moment at most one load that includes `o` can succeed: the attempts are tried in
//! order, attempt `k + 1` is taken only when attempt `k` can no longer load `o`, and within one
//! attempt the one job id admits one load (own) or one batch (through its reservation, whose
//! batch id admits one load or a tombstone). `crates/core/tests/claims_model.rs` explores random
//! interleavings of live deliveries, redeliveries, concurrent and crashing batches against a
//! model of BigQuery's job ids and checks exactly that, and that a final run loads every object
//! exactly once.
//!
//! These functions are the decisions; reading and creating jobs is the caller's.

/// Which object a load is for: bucket, name and generation, the identity a per-object job id
/// hashes (`gs://bucket/name#generation`).
pub type ObjectKey = String;

/// A load job's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Running,
    Succeeded,
    /// DONE with `errorResult`: it loaded nothing.
    Failed,
}

/// What holds a job id, as `jobs.get` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A load job of these objects: one for a live event's load, many for a batch.
    Load { objects: Vec<ObjectKey>, status: Status },
    /// An object's attempt reserved for the batch whose job id is `batch`.
    Reservation { batch: String },
    /// A batch id closed before its load was created.
    Tombstone,
}

impl Holder {
    /// The holder a job read back at an id shows, for `object` (its `gs://` URI): a batch
    /// upload has no `sourceUris`, and holds exactly the objects whose attempts it reserved (a
    /// batch creates its load with those and no others, or closes itself), so it stands for
    /// `object` when read at the batch id of `object`'s reservation.
    pub fn from_job(job: &crate::bigquery::Job, object: &str) -> Holder {
        use crate::bigquery::{JobRole, JobState};
        let status = match &job.state {
            JobState::Pending | JobState::Running => Status::Running,
            JobState::Done { failure: None, .. } => Status::Succeeded,
            JobState::Done { failure: Some(_), .. } => Status::Failed,
        };
        match &job.role {
            JobRole::Load { source_uris } if source_uris.is_empty() => {
                Holder::Load { objects: vec![object.to_string()], status }
            }
            JobRole::Load { source_uris } => Holder::Load { objects: source_uris.clone(), status },
            JobRole::Reservation { batch, .. } => Holder::Reservation { batch: batch.clone() },
            // A tombstone, or a job of nobody's protocol: it will never load the object.
            JobRole::Tombstone | JobRole::Other => Holder::Tombstone,
        }
    }
}

/// What an object's attempt means to someone who wants the object loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// Nothing holds the id: create a job there (a load, or a reservation) and look again on 409.
    Free,
    /// The object's rows are in, from this attempt.
    Loaded,
    /// A load with the object is running at this attempt: wait, and look again.
    InFlight,
    /// This attempt can never load the object: go on to the next one.
    Spent,
    /// Reserved for this batch: what the batch's id holds decides ([`batch`]).
    Batch(String),
}

/// What an object's attempt `holder` (`None`: the id is unused) says about `object`.
pub fn attempt(object: &str, holder: Option<&Holder>) -> AttemptVerdict {
    match holder {
        None => AttemptVerdict::Free,
        Some(Holder::Reservation { batch }) => AttemptVerdict::Batch(batch.clone()),
        Some(Holder::Load { objects, status }) if objects.iter().any(|o| o == object) => load_verdict(*status),
        // Another object's load, or a tombstone, at this object's id: never this object's rows.
        Some(Holder::Load { .. } | Holder::Tombstone) => AttemptVerdict::Spent,
    }
}

/// What a batch's id says about `object`, whose attempt the batch reserved. `abandoned`: the
/// reservation is older than any batch takes to create its load (the caller's clock decides;
/// correctness does not depend on it, only progress does).
pub fn batch(object: &str, holder: Option<&Holder>, abandoned: bool) -> BatchVerdict {
    match holder {
        None if abandoned => BatchVerdict::Close,
        None => BatchVerdict::Attempt(AttemptVerdict::InFlight),
        Some(Holder::Load { objects, status }) if objects.iter().any(|o| o == object) => {
            BatchVerdict::Attempt(load_verdict(*status))
        }
        // Closed, or a batch that left the object out: the reservation is spent.
        Some(Holder::Load { .. } | Holder::Tombstone | Holder::Reservation { .. }) => {
            BatchVerdict::Attempt(AttemptVerdict::Spent)
        }
    }
}

/// The answer about a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchVerdict {
    /// As for an attempt: loaded, in flight or spent (never `Free` or `Batch`).
    Attempt(AttemptVerdict),
    /// The batch never created its load and its reservation is abandoned: create a tombstone at
    /// the batch's id, and look again (on 409 the load exists after all).
    Close,
}

fn load_verdict(status: Status) -> AttemptVerdict {
    match status {
        Status::Running => AttemptVerdict::InFlight,
        Status::Succeeded => AttemptVerdict::Loaded,
        Status::Failed => AttemptVerdict::Spent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(objects: &[&str], status: Status) -> Holder {
        Holder::Load { objects: objects.iter().map(|o| o.to_string()).collect(), status }
    }

    #[test]
    fn an_attempt_is_free_loaded_in_flight_spent_or_a_batchs() {
        assert_eq!(attempt("o", None), AttemptVerdict::Free);
        assert_eq!(attempt("o", Some(&load(&["o"], Status::Running))), AttemptVerdict::InFlight);
        assert_eq!(attempt("o", Some(&load(&["o"], Status::Succeeded))), AttemptVerdict::Loaded);
        assert_eq!(attempt("o", Some(&load(&["o"], Status::Failed))), AttemptVerdict::Spent);
        assert_eq!(attempt("o", Some(&load(&["p"], Status::Succeeded))), AttemptVerdict::Spent);
        assert_eq!(attempt("o", Some(&Holder::Tombstone)), AttemptVerdict::Spent);
        assert_eq!(attempt("o", Some(&Holder::Reservation { batch: "b1".into() })), AttemptVerdict::Batch("b1".into()));
    }

    #[test]
    fn a_batch_is_waited_for_closed_only_when_abandoned_and_spent_without_the_object() {
        assert_eq!(batch("o", None, false), BatchVerdict::Attempt(AttemptVerdict::InFlight));
        assert_eq!(batch("o", None, true), BatchVerdict::Close);
        assert_eq!(
            batch("o", Some(&load(&["p", "o"], Status::Succeeded)), true),
            BatchVerdict::Attempt(AttemptVerdict::Loaded)
        );
        assert_eq!(
            batch("o", Some(&load(&["o"], Status::Running)), true),
            BatchVerdict::Attempt(AttemptVerdict::InFlight)
        );
        assert_eq!(
            batch("o", Some(&load(&["o"], Status::Failed)), false),
            BatchVerdict::Attempt(AttemptVerdict::Spent)
        );
        assert_eq!(
            batch("o", Some(&load(&["p"], Status::Succeeded)), false),
            BatchVerdict::Attempt(AttemptVerdict::Spent)
        );
        assert_eq!(batch("o", Some(&Holder::Tombstone), false), BatchVerdict::Attempt(AttemptVerdict::Spent));
    }
}
