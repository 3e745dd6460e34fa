//! The streaming, tolerant reader of Artifact Registry audit entries: frames the stream
//! ([`super::framing`]), parses each entry, skips what is not an Artifact Registry audit entry,
//! drops duplicates (same `insertId` and `timestamp`, as overlapping sinks write them), counts
//! malformed entries with their line and reason, and classifies the rest.
//!
//! Memory is flat: one entry's text, one parsed entry borrowing from it, and a window of
//! recent entry hashes. Nothing in an entry ends the read; only a JSON array that is cut off
//! (or followed by more text) does, because nothing after the break can be trusted.

use std::io::Read;

use super::classify::{Scratch, classify};
use super::entry::{ARTIFACT_REGISTRY, AUDIT_LOG_TYPE, LogEntry, diagnose, timestamp_micros};
use super::framing::{EntryFramer, Framed, FramingError, Layout};
use crate::object::ObjectRef;
use crate::registry_event::RegistryEvent;
use crate::usage::request_ids::{IdWindow, hash_id};
use crate::usage::{Malformed, MalformedReason};

/// Per-object counts. `entries = events + skipped + malformed + duplicates` once read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Every entry (or damaged line) in the object.
    pub entries: u64,
    pub events: u64,
    /// Entries of other services, and entries that are not audit entries.
    pub skipped: u64,
    pub malformed: u64,
    pub duplicates: u64,
    pub malformed_samples: Vec<Malformed>,
}

/// What ends a read early.
#[derive(Debug)]
pub enum AuditReadError {
    Io(std::io::Error),
    /// The stream is a JSON array that is cut off or followed by other text.
    BrokenArray(String),
    /// Not one line of the stream is a log entry: not an audit-log object at all (a CSV, a
    /// compressed file, …), refused whole rather than "loaded" with every line malformed.
    NoEntries(String),
}

impl std::fmt::Display for AuditReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditReadError::Io(e) => write!(f, "{e}"),
            AuditReadError::BrokenArray(why) => write!(f, "not a complete JSON array of log entries: {why}"),
            AuditReadError::NoEntries(why) => {
                write!(f, "not Cloud Logging entries (JSON lines or a JSON array): {why}")
            }
        }
    }
}

pub struct AuditLogReader<R> {
    framer: EntryFramer<R>,
    source: ObjectRef,
    samples: usize,
    /// The last `window` good entries' keys.
    seen: IdWindow,
    scratch: Scratch,
    stats: AuditStats,
    /// Entries that were JSON objects (log entries, however malformed their fields).
    objects: u64,
}

impl<R: Read> AuditLogReader<R> {
    /// `source` is the object's lineage in every event; duplicates are looked for among the
    /// last `window` entries; the first `samples` malformed entries are kept with their reasons.
    pub fn new(inner: R, source: ObjectRef, window: usize, samples: usize) -> Self {
        AuditLogReader {
            framer: EntryFramer::new(inner),
            source,
            samples,
            seen: IdWindow::new(window),
            scratch: Scratch::default(),
            stats: AuditStats::default(),
            objects: 0,
        }
    }

    pub fn stats(&self) -> &AuditStats {
        &self.stats
    }

    pub fn layout(&self) -> Option<Layout> {
        self.framer.layout()
    }

    pub fn into_parts(self) -> (R, AuditStats) {
        (self.framer.into_inner(), self.stats)
    }

    /// Classifies the next Artifact Registry entry and hands the event to `use_event` (it
    /// borrows from the reader, so it is lent rather than returned). `Ok(None)` at the end.
    pub fn next_event<T>(
        &mut self,
        use_event: impl FnOnce(&RegistryEvent<'_>) -> T,
    ) -> Result<Option<T>, AuditReadError> {
        loop {
            let line = match self.framer.next_entry() {
                // Not one JSON object: a CSV, a compressed file, a JSON document of another kind.
                Ok(None) if self.stats.entries > 0 && self.objects == 0 => {
                    let first = self.stats.malformed_samples.first();
                    let first = first.map(|m| format!(" (line {}: {})", m.line, m.reason)).unwrap_or_default();
                    let entries = self.stats.entries;
                    return Err(AuditReadError::NoEntries(format!(
                        "none of its {entries} lines is a log entry{first}"
                    )));
                }
                Ok(None) => return Ok(None),
                Ok(Some(Framed::Entry { line })) => line,
                Ok(Some(Framed::Damaged { line, reason })) => {
                    self.stats.entries += 1;
                    self.malformed(line, reason);
                    continue;
                }
                Err(FramingError::Io(e)) => return Err(AuditReadError::Io(e)),
                Err(broken @ FramingError::BrokenArray { .. }) => {
                    return Err(AuditReadError::BrokenArray(broken.to_string()));
                }
            };
            self.stats.entries += 1;
            let row = self.stats.entries;
            let text = self.framer.entry();
            let entry: LogEntry<'_> = match serde_json::from_slice(text) {
                Ok(entry) => entry,
                Err(e) => {
                    let (reason, object) = diagnose(text, &e);
                    self.objects += u64::from(object);
                    self.malformed(line, reason);
                    continue;
                }
            };
            self.objects += 1;
            let Some(payload) = entry.proto_payload.as_ref() else {
                self.stats.skipped += 1;
                continue;
            };
            let audit = payload.type_url.as_deref().is_none_or(|t| t == AUDIT_LOG_TYPE);
            if !audit || payload.service_name.as_deref() != Some(ARTIFACT_REGISTRY) {
                self.stats.skipped += 1;
                continue;
            }
            let (Some(insert_id), Some(timestamp)) = (entry.insert_id.as_deref(), entry.timestamp.as_deref()) else {
                let missing = if entry.insert_id.is_none() { "insertId" } else { "timestamp" };
                self.malformed(line, format!("{missing} is missing"));
                continue;
            };
            let micros = match timestamp_micros(timestamp) {
                Ok(micros) => micros,
                Err(why) => {
                    self.malformed(line, why);
                    continue;
                }
            };
            let key = {
                let mut key = Vec::with_capacity(insert_id.len() + timestamp.len() + 1);
                key.extend_from_slice(insert_id.as_bytes());
                key.push(0);
                key.extend_from_slice(timestamp.as_bytes());
                hash_id(&key)
            };
            let event = classify(&entry, payload, micros, &self.source, row, line, &mut self.scratch);
            match event {
                Err(why) => self.malformed(line, why),
                Ok(event) => {
                    // Only a good entry is remembered: a malformed one is not "the first" of anything.
                    if !self.seen.insert(key) {
                        self.stats.duplicates += 1;
                        continue;
                    }
                    self.stats.events += 1;
                    return Ok(Some(use_event(&event)));
                }
            }
        }
    }

    fn malformed(&mut self, line: u64, message: String) {
        self.stats.malformed += 1;
        if self.stats.malformed_samples.len() < self.samples {
            let row = self.stats.entries;
            self.stats.malformed_samples.push(Malformed { line, row, reason: MalformedReason::Entry { message } });
        }
    }
}
