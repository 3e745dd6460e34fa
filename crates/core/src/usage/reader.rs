//! Streaming usage-log reader: one record at a time from any `io::Read`, never the whole object.
//!
//! [`super::records`] splits records (RFC 4180 quoting, `""` escapes, quoted commas and
//! newlines, LF / CRLF / CR line ends, a missing final newline, blank lines skipped, exactly as
//! the csv crate does); this module decides what a record means. Nothing a single row can contain stops the read: a malformed row is
//! counted with its line number and reason and skipped. Only an I/O error, or a first line
//! that is a header of some *other* file (a storage log), ends it.
//!
//! Header rule, applied to the first record (a UTF-8 byte-order mark before it is ignored):
//! 1. equal to the documented header → skipped, columns in documented order;
//! 2. otherwise, if it *looks like* a header (every field a non-empty `[A-Za-z0-9_]` name and
//!    the first not a number): if it names all 17 documented columns, the columns are taken by
//!    name (any order; extra columns ignored: a future format version stays readable) —
//!    if it does not, the file is not a usage log → [`ReadError::NotAUsageLog`];
//! 3. otherwise there is no header: the record is data, columns in documented order.
//!
//! Later records equal to the documented header (files joined with `cat`) are skipped and
//! counted as `repeated_headers`, not reported as malformed.

use super::request_ids::{IdWindow, RequestIdSet, hash_id};
use std::io::Read;

use serde::Serialize;

use super::records::{Record, RecordReader};
use super::row::{COLUMNS, Layout, MalformedReason, Numbers, REQUEST_ID, UsageRow, utf8};

/// The documented header line, without its line end.
pub const HEADER_LINE: &str = "\"time_micros\",\"c_ip\",\"c_ip_type\",\"c_ip_region\",\"cs_method\",\"cs_uri\",\
\"sc_status\",\"cs_bytes\",\"sc_bytes\",\"time_taken_micros\",\"cs_host\",\"cs_referer\",\"cs_user_agent\",\
\"s_request_id\",\"cs_operation\",\"cs_bucket\",\"cs_object\"";

/// How many malformed rows are kept with their reasons; the rest are only counted.
pub const DEFAULT_MALFORMED_SAMPLES: usize = 20;

/// How duplicate `s_request_id`s within one file are found.
///
/// Memory trade-off: `Exact` keeps a 64-bit hash of every request id seen, about 8 bytes per
/// row plus hash-table slack (~16 bytes/row, ~16 MB for a million-row hour) — it grows with the
/// file. `Window(n)` keeps only the last `n` distinct ids (bounded memory, but a duplicate more
/// than `n` rows after its original is missed). `Off` keeps nothing. Duplicates also occur
/// *across* files (the same record delivered in two objects of an hour), so whatever this
/// reader drops, queries must still count distinct request ids; in-file dropping only keeps
/// obvious duplicates out of the table. A 64-bit hash can collide: two different ids in one
/// file collide with probability ≈ n²/2⁶⁵ (≈ 3·10⁻⁸ for a million rows), dropping one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedup {
    Exact,
    Window(usize),
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderOptions {
    pub dedup: Dedup,
    pub malformed_samples: usize,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions { dedup: Dedup::Exact, malformed_samples: DEFAULT_MALFORMED_SAMPLES }
    }
}

/// What the first record turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderKind {
    /// Nothing read yet, or the object is empty (zero records).
    None,
    /// The documented header.
    Documented,
    /// A header naming the documented columns differently ordered or with extra columns.
    ByName,
    /// No header: the first record is data.
    Missing,
}

/// A malformed record: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Malformed {
    pub line: u64,
    pub row: u64,
    pub reason: MalformedReason,
}

/// Per-file counts. `records = rows + malformed + duplicates` once the file is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    /// Data records (after the header, repeated headers excluded).
    pub records: u64,
    /// Rows handed out.
    pub rows: u64,
    pub malformed: u64,
    pub duplicates: u64,
    /// Rows handed out whose text was decoded lossily.
    pub invalid_utf8: u64,
    pub repeated_headers: u64,
    pub header: HeaderKind,
    /// The first malformed records (up to `ReaderOptions::malformed_samples`).
    pub malformed_samples: Vec<Malformed>,
}

/// What ends a read.
#[derive(Debug)]
pub enum ReadError {
    /// The underlying reader failed.
    Io(std::io::Error),
    /// The first line is a header of another kind of file; `missing` are the usage columns it lacks.
    NotAUsageLog { missing: Vec<&'static str> },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "reading the log object failed: {e}"),
            ReadError::NotAUsageLog { missing } => {
                write!(f, "line 1: not a usage log header (missing columns: {})", missing.join(", "))
            }
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads usage-log rows incrementally from `R` (memory: one record, plus the dedup set).
pub struct UsageLogReader<R> {
    records: RecordReader<R>,
    layout: Option<Layout>,
    options: ReaderOptions,
    seen: SeenIds,
    stats: ReadStats,
    done: bool,
}

impl<R: Read> UsageLogReader<R> {
    pub fn new(input: R) -> Self {
        Self::with_options(input, ReaderOptions::default())
    }

    pub fn with_options(input: R, options: ReaderOptions) -> Self {
        UsageLogReader {
            records: RecordReader::new(input),
            layout: None,
            options,
            seen: SeenIds::new(options.dedup),
            stats: ReadStats {
                records: 0,
                rows: 0,
                malformed: 0,
                duplicates: 0,
                invalid_utf8: 0,
                repeated_headers: 0,
                header: HeaderKind::None,
                malformed_samples: Vec::new(),
            },
            done: false,
        }
    }

    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    pub fn into_stats(self) -> ReadStats {
        self.stats
    }

    /// The input back (e.g. to verify a checksum over everything read), with the counts.
    pub fn into_parts(self) -> (R, ReadStats) {
        (self.records.into_inner(), self.stats)
    }

    /// The next good row, lent until the next read: its text borrows the reader's buffer
    /// ([`UsageRow::into_owned`] keeps it longer). `Ok(None)` at the end; after an `Err` the
    /// reader stays ended.
    pub fn next_row(&mut self) -> Result<Option<UsageRow<'_>>, ReadError> {
        let Some(good) = self.next_good_record()? else {
            return Ok(None);
        };
        let layout = self.layout.as_ref().expect("a record was accepted under a layout");
        let record = self.records.record();
        let mut row = layout.row(&record, good.numbers, utf8(&record));
        (row.line, row.row) = (good.line, good.row);
        self.stats.invalid_utf8 += u64::from(row.invalid_utf8);
        Ok(Some(row))
    }

    /// Reads on to the next record that is a row (not a header, not malformed, not a
    /// duplicate) and leaves it in `records`. Apart from [`UsageLogReader::next_row`] because
    /// a borrow handed out from inside a loop that reads again is one the borrow checker
    /// refuses: this loop holds none past an iteration.
    fn next_good_record(&mut self) -> Result<Option<GoodRecord>, ReadError> {
        while !self.done {
            let read = self.records.read().map_err(|e| {
                self.done = true;
                ReadError::Io(e)
            })?;
            let Some(line) = read else {
                self.done = true;
                break;
            };
            let record = self.records.record();
            let layout = match &self.layout {
                Some(layout) => {
                    if is_documented_header(&record) {
                        self.stats.repeated_headers += 1;
                        continue;
                    }
                    layout
                }
                None => match first_record(&record) {
                    Ok(first) => {
                        self.stats.header = first.kind;
                        let layout = self.layout.insert(first.layout);
                        if first.kind != HeaderKind::Missing {
                            continue; // it was a header
                        }
                        layout
                    }
                    Err(e) => {
                        self.done = true;
                        return Err(e);
                    }
                },
            };
            self.stats.records += 1;
            let row = self.stats.records;
            let numbers = match layout.numbers(&record) {
                Ok(numbers) => numbers,
                Err(reason) => {
                    self.stats.malformed += 1;
                    if self.stats.malformed_samples.len() < self.options.malformed_samples {
                        self.stats.malformed_samples.push(Malformed { line, row, reason });
                    }
                    continue;
                }
            };
            // The id as the row will hold it: decoded lossily if it must be (request ids are
            // ASCII, and `from_utf8_lossy` on every id was 4% of the component's instructions).
            let id = layout.field(&record, REQUEST_ID);
            let hash = match id {
                [] => None, // an empty id identifies nothing
                ascii if ascii.is_ascii() => Some(hash_id(ascii)),
                other => Some(hash_id(String::from_utf8_lossy(other).as_bytes())),
            };
            if self.is_duplicate(hash) {
                self.stats.duplicates += 1;
                continue;
            }
            self.stats.rows += 1;
            return Ok(Some(GoodRecord { line, row, numbers }));
        }
        Ok(None)
    }

    fn is_duplicate(&mut self, hash: Option<u64>) -> bool {
        hash.is_some_and(|hash| !self.seen.insert(hash))
    }
}

/// The request ids a reader remembers, as its [`Dedup`] says.
enum SeenIds {
    Exact(RequestIdSet),
    Window(IdWindow),
    Off,
}

impl SeenIds {
    fn new(dedup: Dedup) -> Self {
        match dedup {
            Dedup::Exact => SeenIds::Exact(RequestIdSet::default()),
            Dedup::Window(n) => SeenIds::Window(IdWindow::new(n)),
            Dedup::Off => SeenIds::Off,
        }
    }

    /// Whether `hash` is new (always, with nothing remembered); remembers it.
    fn insert(&mut self, hash: u64) -> bool {
        match self {
            SeenIds::Exact(set) => set.insert(hash),
            SeenIds::Window(window) => window.insert(hash),
            SeenIds::Off => true,
        }
    }
}

/// A record [`UsageLogReader::next_good_record`] accepted: where it is, and its numbers.
struct GoodRecord {
    line: u64,
    row: u64,
    numbers: Numbers,
}

impl<R: Read> Iterator for UsageLogReader<R> {
    type Item = Result<UsageRow<'static>, ReadError>;

    /// Each row owned ([`UsageRow::into_owned`]); [`UsageLogReader::next_row`] lends them instead.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().map(|row| row.map(UsageRow::into_owned)).transpose()
    }
}

/// What the header rule makes of a file's first record.
struct FirstRecord {
    kind: HeaderKind,
    layout: Layout,
}

/// Applies the header rule to the first record (`HeaderKind::Missing`: it is data).
fn first_record(record: &Record<'_>) -> Result<FirstRecord, ReadError> {
    if is_documented_header(record) {
        return Ok(FirstRecord { kind: HeaderKind::Documented, layout: Layout::documented() });
    }
    let fields: Vec<&[u8]> = record.iter().collect();
    let is_name = |f: &&[u8]| !f.is_empty() && f.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
    if fields.iter().all(is_name) && !fields[0].iter().all(u8::is_ascii_digit) {
        let layout = Layout::from_header(&fields).map_err(|missing| ReadError::NotAUsageLog { missing })?;
        return Ok(FirstRecord { kind: HeaderKind::ByName, layout });
    }
    Ok(FirstRecord { kind: HeaderKind::Missing, layout: Layout::documented() })
}

/// Field-by-field comparison with the documented names (the quotes are already gone).
fn is_documented_header(record: &Record<'_>) -> bool {
    record.len() == COLUMNS.len() && record.iter().zip(COLUMNS).all(|(f, c)| f == c.as_bytes())
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
