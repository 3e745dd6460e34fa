//! `gcr-usage:loader/loader#load`: the same load path without HTTP framing.

use gcr_usage_core::contract::Answer;
use gcr_usage_core::{LoadError as CoreError, ObjectRef as CoreObject, OutcomeKind as CoreKind, service};

use crate::bindings::exports::gcr_usage::loader::loader::{Guest, LoadError, ObjectRef, Outcome, OutcomeKind};
use crate::wasi_io::{WasiIo, now_ms};

impl Guest for crate::Component {
    fn load(object: ObjectRef) -> Result<Outcome, LoadError> {
        let started = now_ms();
        let core_object = CoreObject { bucket: object.bucket, name: object.name, generation: object.generation };
        let result = service::load_object(crate::config(), core_object.clone(), &mut WasiIo);
        let answer = match &result {
            Ok(outcome) => Answer::from_outcome(outcome),
            Err(error) => Answer::from_error(error, Some(&core_object)),
        };
        crate::log(&answer.log_line(&[
            ("durationMs", serde_json::json!(now_ms().saturating_sub(started))),
            ("eventShape", "wit-call".into()),
        ]));
        match result {
            Ok(o) => Ok(Outcome {
                kind: match o.outcome {
                    CoreKind::Loaded => OutcomeKind::Loaded,
                    CoreKind::Duplicate => OutcomeKind::Duplicate,
                    CoreKind::Submitted => OutcomeKind::Submitted,
                    CoreKind::Ignored => OutcomeKind::Ignored,
                    CoreKind::Failed => OutcomeKind::Failed,
                },
                object: o.object.map_or_else(|| to_wit(&core_object), |obj| to_wit(&obj)),
                log_kind: o.log_kind.map(|k| k.as_str().to_string()),
                destination: o.destination,
                job_id: o.job_id,
                rows: o.rows,
                reason: o.reason,
            }),
            Err(e) => Err(match e {
                CoreError::InvalidInput(m) => LoadError::InvalidInput(m),
                CoreError::BucketNotAllowed(m) => LoadError::BucketNotAllowed(m),
                CoreError::Configuration(m) => LoadError::Configuration(m),
                CoreError::UpstreamUnavailable(m) => LoadError::UpstreamUnavailable(m),
                CoreError::UpstreamRejected(m) => LoadError::UpstreamRejected(m),
            }),
        }
    }
}

fn to_wit(o: &CoreObject) -> ObjectRef {
    ObjectRef { bucket: o.bucket.clone(), name: o.name.clone(), generation: o.generation }
}
