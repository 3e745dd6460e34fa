//! The official BigQuery schemas of the two log families (`cloud_storage_usage_schema_v0.json`,
//! `cloud_storage_storage_schema_v0.json`). Sending them with every load job means a missing
//! table is created with the right types instead of failing (the seed needed `bq mk` first).

use serde::Serialize;

use crate::log_name::LogKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub field_type: &'static str,
    pub mode: &'static str,
}

const fn field(name: &'static str, field_type: &'static str, mode: &'static str) -> Field {
    Field { name, field_type, mode }
}

/// Usage logs: 17 columns, all NULLABLE, in file order.
pub const USAGE: [Field; 17] = [
    field("time_micros", "INTEGER", "NULLABLE"),
    field("c_ip", "STRING", "NULLABLE"),
    field("c_ip_type", "INTEGER", "NULLABLE"),
    field("c_ip_region", "STRING", "NULLABLE"),
    field("cs_method", "STRING", "NULLABLE"),
    field("cs_uri", "STRING", "NULLABLE"),
    field("sc_status", "INTEGER", "NULLABLE"),
    field("cs_bytes", "INTEGER", "NULLABLE"),
    field("sc_bytes", "INTEGER", "NULLABLE"),
    field("time_taken_micros", "INTEGER", "NULLABLE"),
    field("cs_host", "STRING", "NULLABLE"),
    field("cs_referer", "STRING", "NULLABLE"),
    field("cs_user_agent", "STRING", "NULLABLE"),
    field("s_request_id", "STRING", "NULLABLE"),
    field("cs_operation", "STRING", "NULLABLE"),
    field("cs_bucket", "STRING", "NULLABLE"),
    field("cs_object", "STRING", "NULLABLE"),
];

/// Storage logs: bucket and average byte-hours over the day.
pub const STORAGE: [Field; 2] =
    [field("bucket", "STRING", "REQUIRED"), field("storage_byte_hours", "INTEGER", "REQUIRED")];

/// Classified usage events (`registry_events`): one field per [`crate::usage::RegistryEvent`]
/// member, in its serialisation order. `sql/registry_events.sql` is the DDL of the same table;
/// a test keeps the three in step.
pub const EVENTS: [Field; 34] = [
    field("event_time", "TIMESTAMP", "NULLABLE"),
    field("time_micros", "INTEGER", "NULLABLE"),
    field("registry_host", "STRING", "NULLABLE"),
    field("project", "STRING", "NULLABLE"),
    field("repository", "STRING", "NULLABLE"),
    field("image", "STRING", "NULLABLE"),
    field("digest", "STRING", "NULLABLE"),
    field("target", "STRING", "NULLABLE"),
    field("action", "STRING", "NULLABLE"),
    field("success", "BOOLEAN", "NULLABLE"),
    field("status", "INTEGER", "NULLABLE"),
    field("method", "STRING", "NULLABLE"),
    field("operation", "STRING", "NULLABLE"),
    field("bucket", "STRING", "NULLABLE"),
    field("object", "STRING", "NULLABLE"),
    field("client_family", "STRING", "NULLABLE"),
    field("client_version", "STRING", "NULLABLE"),
    field("user_agent", "STRING", "NULLABLE"),
    field("caller_class", "STRING", "NULLABLE"),
    field("client_ip", "STRING", "NULLABLE"),
    field("request_bytes", "INTEGER", "NULLABLE"),
    field("response_bytes", "INTEGER", "NULLABLE"),
    field("time_taken_micros", "INTEGER", "NULLABLE"),
    field("request_id", "STRING", "NULLABLE"),
    field("invalid_utf8", "BOOLEAN", "NULLABLE"),
    field("source_bucket", "STRING", "NULLABLE"),
    field("source_object", "STRING", "NULLABLE"),
    field("source_generation", "INTEGER", "NULLABLE"),
    field("source_row", "INTEGER", "NULLABLE"),
    field("source_line", "INTEGER", "NULLABLE"),
    // Added with the audit-log source, last: a table of an earlier release takes them through
    // the load's `ALLOW_FIELD_ADDITION`.
    field("source_kind", "STRING", "NULLABLE"),
    field("principal", "STRING", "NULLABLE"),
    field("artifact_format", "STRING", "NULLABLE"),
    field("reference", "STRING", "NULLABLE"),
];

/// Day partitions on the event time: "pulls per image per day" reads one partition a day.
pub const EVENTS_PARTITION_FIELD: &str = "event_time";
/// Clustering for the common filters (which registry, which repository, which client). A load
/// into an existing table must name exactly the table's clustering, so this mirrors the DDL.
pub const EVENTS_CLUSTERING: [&str; 3] = ["registry_host", "repository", "client_ip"];

pub fn fields(kind: LogKind) -> &'static [Field] {
    match kind {
        LogKind::Usage => &USAGE,
        LogKind::Storage => &STORAGE,
        LogKind::Audit => &EVENTS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The DDL in `sql/registry_events.sql` declares the same columns, types, partitioning and
    /// clustering as the load job (a table created by either must accept the other's rows).
    #[test]
    fn events_schema_matches_the_ddl() {
        let ddl = include_str!("../../../sql/registry_events.sql");
        let body = ddl.split("registry_events` (").nth(1).expect("CREATE TABLE registry_events");
        let columns: Vec<(String, String)> = body
            .lines()
            .map(str::trim)
            .take_while(|l| !l.starts_with(')'))
            .filter(|l| !l.is_empty() && !l.starts_with("--"))
            .map(|l| {
                let mut words = l.split_whitespace();
                (words.next().unwrap().to_string(), words.next().unwrap().trim_end_matches(',').to_string())
            })
            .collect();
        let sql_type = |t: &'static str| match t {
            "INTEGER" => "INT64",
            "BOOLEAN" => "BOOL",
            other => other,
        };
        let expected: Vec<(String, String)> =
            EVENTS.iter().map(|f| (f.name.to_string(), sql_type(f.field_type).to_string())).collect();
        assert_eq!(columns, expected);
        assert!(ddl.contains(&format!("PARTITION BY DATE({EVENTS_PARTITION_FIELD})")));
        assert!(ddl.contains(&format!("CLUSTER BY {}", EVENTS_CLUSTERING.join(", "))));
    }
}
