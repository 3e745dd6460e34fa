//! Any string → `LogObjectName::parse` never panics; what it accepts is self-consistent.
#![no_main]

use gcr_usage_core::log_name::{LogKind, LogObjectName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|name: &str| {
    let Ok(parsed) = LogObjectName::parse(name) else { return };
    // The fixed-shape fields are taken from the right, so the accepted name must end with them.
    let kind = match parsed.kind {
        LogKind::Usage => "_usage_",
        LogKind::Storage => "_storage_",
    };
    assert!(name.starts_with(&parsed.prefix), "{name:?}: prefix {:?}", parsed.prefix);
    assert!(name[parsed.prefix.len()..].starts_with(kind), "{name:?}");
    assert!(!parsed.shard.is_empty(), "{name:?}");
    assert!(parsed.shard.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{name:?}");
    assert!(name.contains(&format!("_{}_v", parsed.shard)), "{name:?}");
    assert_eq!((parsed.hour.minute(), parsed.hour.second()), (0, 0), "{name:?}");
});
