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

pub fn fields(kind: LogKind) -> &'static [Field] {
    match kind {
        LogKind::Usage => &USAGE,
        LogKind::Storage => &STORAGE,
    }
}
