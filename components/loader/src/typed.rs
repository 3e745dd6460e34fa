//! `gcr-usage:loader/loader#load`: the same load path without HTTP framing.

use gcr_usage_core::contract::Answer;
use gcr_usage_core::outcome::FileCounts as CoreCounts;
use gcr_usage_core::{
    LoadError as CoreError, ObjectRef as CoreObject, Outcome as CoreOutcome, OutcomeKind as CoreKind, service,
};

use crate::bindings::exports::gcr_usage::loader::loader::{
    EventsOutcome, FileCounts, Guest, LoadError, ObjectRef, Outcome, OutcomeKind,
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
        let o = result.load.map_err(load_error)?;
        Ok(Outcome {
            kind: kind(o.outcome),
            object: o.object.as_ref().map_or_else(|| to_wit(&core_object), to_wit),
            log_kind: o.log_kind.map(|k| k.as_str().to_string()),
            destination: o.destination,
            job_id: o.job_id,
            rows: o.rows,
            reason: o.reason,
            counts: o.counts.as_ref().map(counts),
            events,
        })
    }
}

fn events_outcome(o: CoreOutcome) -> EventsOutcome {
    EventsOutcome {
        kind: kind(o.outcome),
        destination: o.destination,
        job_id: o.job_id,
        rows: o.rows,
        reason: o.reason,
        counts: o.counts.as_ref().map(counts),
    }
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

fn counts(c: &CoreCounts) -> FileCounts {
    FileCounts {
        bytes: c.bytes,
        records: c.records,
        events: c.events,
        malformed: c.malformed,
        duplicates: c.duplicates,
        invalid_utf8: c.invalid_utf8,
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
