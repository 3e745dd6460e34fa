//! Deciding what to do with an object before any I/O: allow-list, log-name check, destination.

use crate::config::Config;
use crate::log_name::{LogKind, LogObjectName};
use crate::object::ObjectRef;
use crate::outcome::{LoadError, Outcome};

/// An object that will be loaded, and into which table (the project may still be unknown when
/// it comes from the metadata server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLoad {
    pub object: ObjectRef,
    pub kind: LogKind,
    pub table_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Load(PlannedLoad),
    Ignore(Outcome),
}

/// The allow-list comes first: an event from a foreign bucket is a misrouted trigger (or a
/// forged request) and deserves a 403, whatever the object is.
pub fn plan_load(config: &Config, object: ObjectRef) -> Result<Plan, LoadError> {
    if let Err((field, message)) = object.validate("") {
        return Err(LoadError::InvalidInput(format!("{field}: {message}")));
    }
    if !config.buckets.allows(&object.bucket) {
        return Err(LoadError::BucketNotAllowed(format!("bucket {:?} is not in GCR_USAGE_BUCKETS", object.bucket)));
    }
    let name = match LogObjectName::parse(&object.name) {
        Ok(name) => name,
        Err(not_log) => return Ok(Plan::Ignore(Outcome::ignored(Some(object), not_log.0))),
    };
    // BigQuery reads `*` in a source URI as a wildcard: such a name would load other objects.
    if object.name.contains('*') {
        return Ok(Plan::Ignore(Outcome::ignored(
            Some(object),
            "object names containing * cannot be loaded by URI (BigQuery treats * as a wildcard)",
        )));
    }
    let table_id = match name.kind {
        LogKind::Usage => config.usage_table.clone(),
        LogKind::Storage => config.storage_table.clone(),
    };
    Ok(Plan::Load(PlannedLoad { object, kind: name.kind, table_id }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::OutcomeKind;

    fn config(buckets: &str) -> Config {
        Config::from_env(|k| match k {
            "GCR_USAGE_BUCKETS" => Some(buckets.to_string()),
            "GCR_USAGE_STORAGE_TABLE" => Some("sizes".to_string()),
            _ => None,
        })
        .unwrap()
    }

    fn obj(bucket: &str, name: &str) -> ObjectRef {
        ObjectRef { bucket: bucket.into(), name: name.into(), generation: Some(1) }
    }

    #[test]
    fn routes_logs_to_their_tables() {
        let c = config("demo-gcr-logs");
        let Ok(Plan::Load(p)) = plan_load(&c, obj("demo-gcr-logs", "accessLog_usage_2019_05_19_18_00_00_00cbe5_v0"))
        else {
            panic!()
        };
        assert_eq!((p.kind, p.table_id.as_str()), (LogKind::Usage, "usage"));
        let Ok(Plan::Load(p)) = plan_load(&c, obj("demo-gcr-logs", "accessLog_storage_2019_05_19_07_00_00_00cbe5_v0"))
        else {
            panic!()
        };
        assert_eq!((p.kind, p.table_id.as_str()), (LogKind::Storage, "sizes"));
    }

    #[test]
    fn foreign_buckets_are_refused_before_anything_else() {
        let e = plan_load(&config("demo-gcr-logs"), obj("other-bucket", "whatever")).unwrap_err();
        assert_eq!(e.kind(), "bucket-not-allowed");
        assert!(e.message().contains("\"other-bucket\""));
    }

    #[test]
    fn other_objects_are_ignored_with_a_reason() {
        let Ok(Plan::Ignore(o)) = plan_load(&config("*"), obj("any-bucket", "usage-report.csv")) else { panic!() };
        assert_eq!(o.outcome, OutcomeKind::Ignored);
        assert!(o.reason.unwrap().contains("not a usage or storage log object name"));
        let Ok(Plan::Ignore(o)) = plan_load(&config("*"), obj("any-bucket", "a*b_usage_2019_05_19_18_00_00_00cbe5_v0"))
        else {
            panic!()
        };
        assert!(o.reason.unwrap().contains("wildcard"));
    }

    #[test]
    fn invalid_references_are_input_errors() {
        assert_eq!(plan_load(&config("*"), obj("any-bucket", "")).unwrap_err().kind(), "invalid-input");
    }
}
