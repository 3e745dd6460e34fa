//! Properties that must hold for *any* input: parsers never panic, job ids are always valid
//! and deterministic, percent-encoding round-trips, and backoff stays within its bounds.

use gcr_usage_core::job::{LoadFormat, LoadSpec, TableRef};
use gcr_usage_core::log_name::{LogKind, LogObjectName};
use gcr_usage_core::trigger_event::parse_event;
use gcr_usage_core::{Config, ObjectRef};
use proptest::prelude::*;

fn spec(bucket: String, name: String, generation: Option<u64>) -> LoadSpec {
    LoadSpec {
        object: ObjectRef { bucket, name, generation },
        kind: LogKind::Usage,
        format: LoadFormat::RawCsv,
        destination: TableRef {
            project_id: "demo-project".into(),
            dataset_id: "storageanalysis".into(),
            table_id: "usage".into(),
        },
        location: "US".into(),
    }
}

/// JSON documents shaped like events, with arbitrary values in the interesting places.
fn eventish() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<String>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        Just(serde_json::json!({})),
    ];
    (value.clone(), value.clone(), value.clone(), value).prop_map(|(a, b, c, d)| {
        let resource = serde_json::json!({"bucket": a, "name": b, "generation": c});
        let variants = [
            resource.clone(),
            serde_json::json!({"message": {"data": d, "attributes": {"eventType": "OBJECT_FINALIZE", "payloadFormat": "NONE", "bucketId": a, "objectId": b, "objectGeneration": c}}}),
            serde_json::json!({"context": {"eventType": "google.storage.object.finalize"}, "data": resource}),
            serde_json::json!({"specversion": "1.0", "id": "1", "source": "s", "type": "google.cloud.storage.object.v1.finalized", "data": resource}),
        ];
        variants[usize::try_from(a_hash(&d) % 4).unwrap_or(0)].to_string()
    })
}

fn a_hash(v: &serde_json::Value) -> u64 {
    v.to_string().bytes().map(u64::from).sum()
}

proptest! {
    #[test]
    fn event_parser_never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_event(&http::HeaderMap::new(), &body);
    }

    #[test]
    fn event_parser_never_panics_on_eventish_json(body in eventish()) {
        if let Ok((_, gcr_usage_core::trigger_event::EventDecision::Object(o))) = parse_event(&http::HeaderMap::new(), body.as_bytes()) {
            // Whatever it accepts is a valid object reference.
            prop_assert!(o.validate("").is_ok());
        }
    }

    #[test]
    fn log_name_parser_never_panics(name in ".{0,200}") {
        if let Ok(parsed) = LogObjectName::parse(&name) {
            // Parsing from the right: the prefix is everything before the fixed-shape fields.
            let head = format!("{}_{}_", parsed.prefix, parsed.kind.as_str());
            prop_assert!(name.starts_with(&head));
        }
    }

    #[test]
    fn job_ids_are_always_valid_and_deterministic(
        bucket in "[a-z0-9][a-z0-9._-]{1,60}[a-z0-9]",
        name in "\\PC{1,300}",
        generation in proptest::option::of(any::<u64>()),
        attempt in 1u32..=5,
    ) {
        let s = spec(bucket, name, generation);
        let id = s.job_id(attempt);
        prop_assert!(!id.is_empty() && id.len() <= 1024);
        prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{}", id);
        prop_assert_eq!(id, s.clone().job_id(attempt));
    }

    #[test]
    fn object_names_encode_to_one_reversible_path_segment(name in "\\PC{0,100}") {
        let encoded = gcr_usage_core::url::encode(&name);
        prop_assert!(!encoded.contains('/') && !encoded.contains('?') && !encoded.contains('#') && !encoded.contains(' '));
        let decoded = percent_encoding::percent_decode_str(&encoded).decode_utf8().unwrap();
        prop_assert_eq!(decoded, name);
    }

    #[test]
    fn config_never_panics(values in proptest::collection::vec(proptest::option::of(".{0,40}"), 12)) {
        let names = [
            "GCR_USAGE_PROJECT", "GCR_USAGE_DATASET", "GCR_USAGE_USAGE_TABLE", "GCR_USAGE_STORAGE_TABLE",
            "GCR_USAGE_LOCATION", "GCR_USAGE_BUCKETS", "GCR_USAGE_AUTH", "GCR_USAGE_TOKEN",
            "GCR_USAGE_WAIT_SECONDS", "GCR_USAGE_BIGQUERY_ENDPOINT", "GCR_USAGE_STORAGE_ENDPOINT", "GCE_METADATA_HOST",
        ];
        let _ = Config::from_env(|k| names.iter().position(|n| *n == k).and_then(|i| values[i].clone()));
    }

    #[test]
    fn backoff_delays_stay_within_bounds(randoms in proptest::collection::vec(any::<u64>(), 1..20)) {
        let mut b = gcr_usage_core::backoff::Backoff::retries();
        for r in randoms {
            let d = b.next_delay(r);
            prop_assert!(d >= std::time::Duration::from_millis(500) && d <= std::time::Duration::from_secs(16));
        }
    }
}
