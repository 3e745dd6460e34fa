//! A log source: one concept, two implementations feeding one event type. A usage log (CSV,
//! [`crate::usage::UsageLogReader`] + [`crate::usage::classify`]) and an audit-log sink object
//! (JSON entries, [`crate::audit::AuditLogReader`]) both lend [`RegistryEvent`]s one at a time,
//! which the classified upload writes with the one NDJSON writer. Which one reads an object is
//! decided by its name ([`crate::log_name::LogKind`]); nothing else in the upload differs. Files
//! without a log object's name (the CLI's inputs) are told apart by their content: [`sniff`].

use std::io::Read;

use crate::audit::{AuditLogReader, AuditReadError};
use crate::log_name::LogKind;
use crate::object::ObjectRef;
use crate::outcome::FileCounts;
use crate::registry_event::RegistryEvent;
use crate::usage::{ClientMemo, Dedup, ReadError, ReaderOptions, UsageLogReader, classify_with};

/// Which reader a stream's first bytes call for: [`LogKind::Audit`] when the first byte that is
/// not JSON whitespace, after an optional UTF-8 byte-order mark, is `{` (JSON lines, as a log
/// sink writes them) or `[` (one JSON array, as `gcloud logging read --format=json` prints);
/// [`LogKind::Usage`] otherwise (a usage log's CSV starts with `"` or a digit), including an
/// empty or blank `head`. Storage logs are CSV too: telling them from usage logs is the
/// header's business, not this. `head` is what a buffered reader holds before reading.
pub fn sniff(head: &[u8]) -> LogKind {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    // The whitespace the audit framer skips (JSON's own four), so both agree on where data starts.
    match head.iter().find(|b| !b" \t\r\n".contains(b)) {
        Some(b'{' | b'[') => LogKind::Audit,
        _ => LogKind::Usage,
    }
}

// Boxed: one source per upload, so the indirection costs nothing and the enum stays small.
pub enum LogSource<R> {
    UsageLog(Box<UsageLogSource<R>>),
    AuditLog(Box<AuditLogReader<R>>),
}

/// The usage-log reader and the lineage every event names.
pub struct UsageLogSource<R> {
    reader: UsageLogReader<R>,
    object: ObjectRef,
    clients: ClientMemo,
}

/// What ends a source early.
#[derive(Debug)]
pub enum SourceError {
    /// Reading the stream failed (worth another try).
    Io(std::io::Error),
    /// The object is not what its name says (another try cannot help).
    NotThisKind(String),
}

impl<R: Read> LogSource<R> {
    /// Duplicates are looked for among the last `dedup_window` records; `samples` malformed
    /// records are kept with their reasons.
    pub fn open(kind: LogKind, inner: R, object: &ObjectRef, dedup_window: usize, samples: usize) -> Self {
        match kind {
            LogKind::Audit => {
                LogSource::AuditLog(Box::new(AuditLogReader::new(inner, object.clone(), dedup_window, samples)))
            }
            LogKind::Usage | LogKind::Storage => {
                let options = ReaderOptions { dedup: Dedup::Window(dedup_window), malformed_samples: samples };
                LogSource::UsageLog(Box::new(UsageLogSource {
                    reader: UsageLogReader::with_options(inner, options),
                    object: object.clone(),
                    clients: ClientMemo::default(),
                }))
            }
        }
    }

    /// Lends the next event to `use_event`; `Ok(None)` at the end.
    pub fn next_event<T>(&mut self, use_event: impl FnOnce(&RegistryEvent<'_>) -> T) -> Result<Option<T>, SourceError> {
        match self {
            LogSource::UsageLog(usage) => match usage.reader.next_row() {
                Ok(Some(row)) => Ok(Some(use_event(&classify_with(&row, &usage.object, &mut usage.clients)))),
                Ok(None) => Ok(None),
                Err(ReadError::Io(e)) => Err(SourceError::Io(e)),
                Err(not_usage @ ReadError::NotAUsageLog { .. }) => Err(SourceError::NotThisKind(not_usage.to_string())),
            },
            LogSource::AuditLog(reader) => reader.next_event(use_event).map_err(|e| match e {
                AuditReadError::Io(e) => SourceError::Io(e),
                broken @ (AuditReadError::BrokenArray(_) | AuditReadError::NoEntries(_)) => {
                    SourceError::NotThisKind(broken.to_string())
                }
            }),
        }
    }

    /// Records read so far (for messages).
    pub fn records(&self) -> u64 {
        match self {
            LogSource::UsageLog(usage) => usage.reader.stats().records,
            LogSource::AuditLog(reader) => reader.stats().entries,
        }
    }

    /// The stream back, and the counts of what was read (`bytes` is the object's size).
    pub fn finish(self, bytes: impl FnOnce(&R) -> u64) -> (R, FileCounts) {
        match self {
            LogSource::UsageLog(usage) => {
                let (inner, stats) = usage.reader.into_parts();
                let counts = FileCounts::new(&stats, bytes(&inner));
                (inner, counts)
            }
            LogSource::AuditLog(reader) => {
                let (inner, stats) = reader.into_parts();
                let counts = FileCounts {
                    bytes: bytes(&inner),
                    records: stats.entries,
                    events: stats.events,
                    malformed: stats.malformed,
                    duplicates: stats.duplicates,
                    skipped: stats.skipped,
                    invalid_utf8: 0,
                    first_malformed: stats.malformed_samples,
                };
                (inner, counts)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_tells_audit_entries_from_csv() {
        assert_eq!(sniff(b"{\"insertId\":\"a\"}\n"), LogKind::Audit);
        assert_eq!(sniff(b"[\n  {\n"), LogKind::Audit);
        assert_eq!(sniff(b"\xEF\xBB\xBF \r\n\t[]"), LogKind::Audit);
        assert_eq!(sniff(b"\"time_micros\",\"c_ip\""), LogKind::Usage);
        assert_eq!(sniff(b"\xEF\xBB\xBF\"time_micros\""), LogKind::Usage);
        assert_eq!(sniff(b"1710166032118406,\"192.0.2.45\""), LogKind::Usage);
        assert_eq!(sniff(b"\"bucket\",\"storage_byte_hours\""), LogKind::Usage);
        // Not JSON whitespace: the framer would not skip it either.
        assert_eq!(sniff(b"\x0c{}"), LogKind::Usage);
        assert_eq!(sniff(b""), LogKind::Usage);
        assert_eq!(sniff(b"  \n"), LogKind::Usage);
    }
}
