//! Any string → `LogObjectName::parse` never panics; what it accepts is self-consistent (usage and
//! storage log names, and audit-log sink object names).
#![no_main]

use gcr_usage_core::log_name::{LogKind, LogObjectName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    let Ok(parsed) = LogObjectName::parse(name) else { return };
    assert!(name.starts_with(&parsed.prefix), "{name:?}: prefix {:?}", parsed.prefix);
    assert!(!parsed.shard.is_empty(), "{name:?}");
    assert_eq!((parsed.hour.minute(), parsed.hour.second()), (0, 0), "{name:?}");
    let kind = match parsed.kind {
        LogKind::Usage => "_usage_",
        LogKind::Storage => "_storage_",
        LogKind::Audit => {
            // A sink object: PREFIX = FOLDER/cloudaudit.googleapis.com/LOG, then
            // /YYYY/MM/DD/HH:00:00_HH:59:59_SHARD.json with SHARD S<n> or A<n>:<unix time>.
            let log = parsed.prefix.rsplit('/').next().unwrap_or_default();
            assert!(log == "data_access" || log == "activity", "{name:?}: log {log:?}");
            assert!(parsed.prefix.ends_with(&format!("cloudaudit.googleapis.com/{log}")), "{name:?}");
            assert!(name[parsed.prefix.len()..].starts_with('/'), "{name:?}");
            assert!(name.ends_with(&format!("_{}.json", parsed.shard)), "{name:?}");
            assert!(matches!(parsed.shard.as_bytes()[0], b'S' | b'A'), "{name:?}");
            let hour = format!("{:02}:00:00_{:02}:59:59_", parsed.hour.hour(), parsed.hour.hour());
            assert!(name.ends_with(&format!("{hour}{}.json", parsed.shard)), "{name:?}");
            return;
        }
    };
    // The fixed-shape fields are taken from the right, so the accepted name must end with them.
    assert!(name[parsed.prefix.len()..].starts_with(kind), "{name:?}");
    assert!(parsed.shard.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{name:?}");
    assert!(name.contains(&format!("_{}_v", parsed.shard)), "{name:?}");
});
