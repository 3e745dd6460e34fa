//! Deciding what to do with an object before any I/O: allow-list, log-name check, destination.

use crate::config::Config;
use crate::job::LoadFormat;
use crate::log_name::{LogKind, LogObjectName};
use crate::object::ObjectRef;
use crate::outcome::{LoadError, Outcome};

/// An object that will be loaded, and into which table (the project may still be unknown when
/// it comes from the metadata server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLoad {
    pub object: ObjectRef,
    pub kind: LogKind,
    pub format: LoadFormat,
    pub table_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// One load, or two in `GCR_USAGE_MODE=both` (raw first: it needs no download).
    Load(Vec<PlannedLoad>),
    Ignore(Box<Outcome>),
}

/// The allow-list comes first: an event from a foreign bucket is a misrouted trigger (or a
/// forged request) and deserves a 403, whatever the object is.
pub fn plan_load(config: &Config, object: ObjectRef) -> Result<Plan, LoadError> {
    if let Err(error) = object.validate("") {
        return Err(LoadError::InvalidInput(error.to_string()));
    }
    if !config.buckets.allows(&object.bucket) {
        return Err(LoadError::BucketNotAllowed(format!("bucket {:?} is not in GCR_USAGE_BUCKETS", object.bucket)));
    }
    let name = match LogObjectName::parse(&object.name) {
        Ok(name) => name,
        Err(not_log) => return Ok(Plan::Ignore(Box::new(Outcome::ignored(Some(object), not_log.0)))),
    };
    let formats: &[LoadFormat] = match name.kind {
        // Storage logs hold one row a day: nothing to classify.
        LogKind::Storage => &[LoadFormat::RawCsv],
        LogKind::Usage if !config.mode.classified() => &[LoadFormat::RawCsv],
        LogKind::Usage if !config.mode.raw() => &[LoadFormat::Events],
        LogKind::Usage => &[LoadFormat::RawCsv, LoadFormat::Events],
        // Audit entries have no raw table (they are JSON, not the usage CSV): they load as
        // events whatever the mode, so turning on a sink is all it takes.
        LogKind::Audit => &[LoadFormat::Events],
    };
    // BigQuery reads `*` in a source URI as a wildcard: such a name would load other objects.
    // (Events are downloaded by exact name, so only loads by URI are affected.)
    if formats.contains(&LoadFormat::RawCsv) && object.name.contains('*') {
        return Ok(Plan::Ignore(Box::new(Outcome::ignored(
            Some(object),
            "object names containing * cannot be loaded by URI (BigQuery treats * as a wildcard)",
        ))));
    }
    let loads = formats
        .iter()
        .map(|&format| {
            let table_id = match (name.kind, format) {
                (_, LoadFormat::Events) | (LogKind::Audit, _) => config.events_table.clone(),
                (LogKind::Usage, LoadFormat::RawCsv) => config.usage_table.clone(),
                (LogKind::Storage, LoadFormat::RawCsv) => config.storage_table.clone(),
            };
            PlannedLoad { object: object.clone(), kind: name.kind, format, table_id }
        })
        .collect();
    Ok(Plan::Load(loads))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::OutcomeKind;

    fn config(buckets: &str) -> Config {
        config_mode(buckets, "raw")
    }

    fn config_mode(buckets: &str, mode: &str) -> Config {
        Config::from_env(|k| match k {
            "GCR_USAGE_BUCKETS" => Some(buckets.to_string()),
            "GCR_USAGE_MODE" => Some(mode.to_string()),
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
        let tables = |c: &Config, name: &str| match plan_load(c, obj("demo-gcr-logs", name)) {
            Ok(Plan::Load(loads)) => loads.into_iter().map(|p| (p.kind, p.format, p.table_id)).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let usage = "accessLog_usage_2019_05_19_18_00_00_00cbe5_v0";
        let storage = "accessLog_storage_2019_05_19_07_00_00_00cbe5_v0";
        let raw = (LogKind::Usage, LoadFormat::RawCsv, "usage".to_string());
        let events = (LogKind::Usage, LoadFormat::Events, "registry_events".to_string());
        let sizes = vec![(LogKind::Storage, LoadFormat::RawCsv, "sizes".to_string())];
        assert_eq!(tables(&c, usage), vec![raw.clone()]);
        assert_eq!(tables(&c, storage), sizes);
        let classified = config_mode("demo-gcr-logs", "classified");
        assert_eq!(tables(&classified, usage), vec![events.clone()]);
        assert_eq!(tables(&classified, storage), sizes, "storage logs always load raw");
        assert_eq!(tables(&config_mode("demo-gcr-logs", "both"), usage), vec![raw, events]);
    }

    #[test]
    fn wildcards_only_matter_to_loads_by_uri() {
        let name = "a*b_usage_2019_05_19_18_00_00_00cbe5_v0";
        let Ok(Plan::Load(loads)) = plan_load(&config_mode("*", "classified"), obj("any-bucket", name)) else {
            panic!()
        };
        assert_eq!(loads[0].format, LoadFormat::Events);
        assert!(matches!(plan_load(&config_mode("*", "both"), obj("any-bucket", name)), Ok(Plan::Ignore(_))));
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
