//! `gcr-usage:loader/loader#load`: the same load path without HTTP framing.

use gcr_usage_core::contract::Answer;
use gcr_usage_core::outcome::FileCounts as CoreCounts;
use gcr_usage_core::{
    LoadError as CoreError, ObjectRef as CoreObject, Outcome as CoreOutcome, OutcomeKind as CoreKind,
    Retries as CoreRetries, service,
};

use crate::bindings::exports::gcr_usage::loader::loader::{
    EventsOutcome, FileCounts, Guest, LoadError, MalformedRow, ObjectRef, Outcome, OutcomeKind, Retries,
};
use crate::wasi_io::{WasiIo, now_ms};

impl Guest for crate::Component {
    fn load(object: ObjectRef) -> Result<Outcome, LoadError> {
        let started = now_ms();
        let core_object = CoreObject { bucket: object.bucket, name: object.name, generation: object.generation };
        let result = crate::with_instance_state(|instance| {
            service::load_object(crate::config(), core_object.clone(), &mut WasiIo, &mut instance.credentials)
        });
        let answer = Answer::from_object_result(&result, &core_object);
        crate::log(&answer.log_line(&[
            ("durationMs", serde_json::json!(now_ms().saturating_sub(started))),
            ("eventShape", "wit-call".into()),
        ]));
        let events = result.events.map(|events| events.map(events_outcome).map_err(load_error));
        // Destructured without `..`: a field the core's outcome gains must be mapped here too,
        // or this does not compile — nothing is dropped between the answer and the WIT record.
        let CoreOutcome { outcome, object: loaded, log_kind, destination, job_id, rows, reason, counts, retries } =
            result.load.map_err(load_error)?;
        Ok(Outcome {
            kind: kind(outcome),
            object: loaded.as_ref().map_or_else(|| to_wit(&core_object), to_wit),
            log_kind: log_kind.map(|k| k.as_str().to_string()),
            destination,
            job_id,
            rows,
            reason,
            counts: counts.as_ref().map(file_counts),
            retries: retries.map(to_wit_retries),
            events,
        })
    }
}

fn events_outcome(o: CoreOutcome) -> EventsOutcome {
    // The object and log kind are the raw load's (same object); the rest is this load's own.
    let CoreOutcome { outcome, object: _, log_kind: _, destination, job_id, rows, reason, counts, retries } = o;
    EventsOutcome {
        kind: kind(outcome),
        destination,
        job_id,
        rows,
        reason,
        counts: counts.as_ref().map(file_counts),
        retries: retries.map(to_wit_retries),
    }
}

fn to_wit_retries(r: CoreRetries) -> Retries {
    let CoreRetries { count, last } = r;
    Retries { count, last }
}

fn kind(kind: CoreKind) -> OutcomeKind {
    match kind {
        CoreKind::Loaded => OutcomeKind::Loaded,
        CoreKind::Duplicate => OutcomeKind::Duplicate,
        CoreKind::Submitted => OutcomeKind::Submitted,
        CoreKind::Ignored => OutcomeKind::Ignored,
        CoreKind::Failed => OutcomeKind::Failed,
    }
}

fn file_counts(c: &CoreCounts) -> FileCounts {
    let CoreCounts { bytes, records, events, malformed, duplicates, skipped, invalid_utf8, first_malformed } = c;
    FileCounts {
        bytes: *bytes,
        records: *records,
        events: *events,
        malformed: *malformed,
        duplicates: *duplicates,
        skipped: *skipped,
        invalid_utf8: *invalid_utf8,
        first_malformed: first_malformed
            .iter()
            .map(|m| MalformedRow { line: m.line, row: m.row, reason: m.reason.to_string() })
            .collect(),
    }
}

fn load_error(e: CoreError) -> LoadError {
    match e {
        CoreError::InvalidInput(m) => LoadError::InvalidInput(m),
        CoreError::BucketNotAllowed(m) => LoadError::BucketNotAllowed(m),
        CoreError::Configuration(m) => LoadError::Configuration(m),
        CoreError::UpstreamUnavailable(m) => LoadError::UpstreamUnavailable(m),
        CoreError::UpstreamRejected(m) => LoadError::UpstreamRejected(m),
    }
}

fn to_wit(o: &CoreObject) -> ObjectRef {
    ObjectRef { bucket: o.bucket.clone(), name: o.name.clone(), generation: o.generation }
}
