//! [`UsageStats`], the accumulator. Every event passes through [`UsageStats::add`] exactly
//! once, which drops duplicates across files and updates each counter in the same pass, so the
//! rows themselves are never kept. Per-file bookkeeping lives here too, because a file's counts
//! are only complete when the accumulator closes it.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use super::pulls::{Groups, PULL_GAP_MICROS, PullPart, add_download, pull_part};
use super::report::FileSummary;
use super::tally::{BucketAcc, Ids, PushAcc, Span, Transfer, day_of, entry};
use crate::object::ObjectRef;
use crate::outcome::FileCounts;
use crate::registry_event::{Action, RegistryEvent};
use crate::usage::classify::classify_with;
use crate::usage::reader::{ReadError, ReadStats, ReaderOptions, UsageLogReader};
use crate::usage::request_ids::{Check, DEFAULT_DEDUP_WINDOW, RecentIds, hash_id};
use crate::usage::user_agent::ClientMemo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsOptions {
    /// The pull gap of rule 3 (default [`PULL_GAP_MICROS`]; the SQL views use the default).
    pub pull_gap_micros: i64,
    /// Count each request id once across all files, not only within each file.
    pub dedup_across_files: bool,
    /// How many request ids the duplicate filter holds before it forgets the oldest minutes
    /// (see the module doc, "Memory").
    pub dedup_window: usize,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions { pull_gap_micros: PULL_GAP_MICROS, dedup_across_files: true, dedup_window: DEFAULT_DEDUP_WINDOW }
    }
}

/// Counts of the file being read, until [`UsageStats::finish_file`].
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct CurrentFile {
    pub(super) events: u64,
    /// Copies of an earlier row of the same file that the reader let through (a reader that
    /// does not deduplicate, or one whose window the copy was outside of).
    pub(super) duplicates_in_file: u64,
    /// Of those, the ones with invalid UTF-8 (the reader counted them as rows that had it).
    pub(super) duplicates_in_file_invalid_utf8: u64,
    pub(super) duplicates_across_files: u64,
}

/// The statistics accumulator. Feed it events with [`UsageStats::add`] (or whole log objects
/// with [`UsageStats::read_log`]), close each file with [`UsageStats::finish_file`], then ask
/// for a [`Report`](super::Report).
#[derive(Debug, Default)]
pub struct UsageStats {
    pub(super) options: StatsOptions,
    /// Images and clients of blob downloads (and clients of pushes), by dense id.
    pub(super) ids: Ids,
    pub(super) groups: Groups,
    /// (day, image) → blob downloads and bytes on that day (rule 4).
    pub(super) days: HashMap<(i64, u32), Transfer>,
    /// (bucket, repository) → pushes.
    pub(super) pushes: BTreeMap<(String, Option<String>), PushAcc>,
    pub(super) failures: HashMap<(u16, Action), u64>,
    pub(super) buckets: HashMap<String, BucketAcc>,
    /// Hashes of the request ids counted so far (rule 1): this file's, or every file's when
    /// deduplicating across files.
    seen: RecentIds,
    /// Rows counted when the duplicate filter had already forgotten part of their past.
    pub(super) unverified: u64,
    /// Successful blob reads without a repository: not pulls, but worth showing.
    pub(super) unattributed: Transfer,
    /// Manifest downloads by Google's own agents (rule A), not pulls.
    pub(super) agent_pulls: u64,
    pub(super) events: u64,
    pub(super) span: Span,
    current: CurrentFile,
    pub(super) files: Vec<FileSummary>,
}

impl UsageStats {
    pub fn new(options: StatsOptions) -> Self {
        UsageStats { options, seen: RecentIds::new(options.dedup_window), ..UsageStats::default() }
    }

    pub fn options(&self) -> StatsOptions {
        self.options
    }

    /// Counts one event. `false` when it was dropped as a duplicate of a request already
    /// counted (in this file, when the reader did not drop it, or in an earlier one).
    pub fn add(&mut self, event: &RegistryEvent<'_>) -> bool {
        // An empty id names no request, so it never makes a row a duplicate (rule 1).
        if !event.request_id.is_empty() {
            match self.seen.check(event.time_micros, hash_id(event.request_id.as_bytes())) {
                Check::New => {}
                Check::Unverified => self.unverified += 1,
                Check::InThisFile => {
                    self.current.duplicates_in_file += 1;
                    self.current.duplicates_in_file_invalid_utf8 += u64::from(event.invalid_utf8);
                    return false;
                }
                Check::InEarlierFile => {
                    self.current.duplicates_across_files += 1;
                    return false;
                }
            }
        }
        self.current.events += 1;
        self.events += 1;
        self.span.include(event.time_micros);

        entry(&mut self.buckets, event.bucket.unwrap_or_default(), BucketAcc::default).add(event);
        if !event.success {
            *self.failures.entry((event.status, event.action)).or_default() += 1;
        }
        match event.action {
            Action::Pull if event.success => match (event.image, event.repository, pull_part(event)) {
                (_, _, PullPart::Agent) => self.agent_pulls += 1,
                (_, _, PullPart::Layer) => {}
                (Some(image), Some(_), PullPart::Download) => self.count_download(event, image.host, image.repository),
                _ => self.unattributed.add(event.response_bytes),
            },
            Action::Push => {
                let client = self.ids.client(event.client_ip);
                let key = (event.bucket.unwrap_or_default().to_string(), event.repository.map(str::to_string));
                self.pushes.entry(key).or_default().add(event, client);
            }
            _ => {}
        }
        true
    }

    /// A blob download (rule 1) of the image `host` + `repository` (rule 2).
    fn count_download(&mut self, event: &RegistryEvent<'_>, host: &str, repository: &str) {
        let (t, bytes) = (event.time_micros, event.response_bytes);
        let image = self.ids.image(host, repository);
        // Audit entries say who: a client is the principal at its address, so the many callers
        // behind one redacted address (`private`, `gce-internal-ip`) stay apart.
        let client = match event.principal {
            Some(principal) => self.ids.client(&format!("{principal} @ {}", event.client_ip)),
            None => self.ids.client(event.client_ip),
        };
        let acc = &mut self.ids.images[image as usize];
        acc.transfer.add(bytes);
        acc.span.include(t);
        self.ids.clients[client as usize].add_download(bytes, event.client_family);
        self.days.entry((day_of(t), image)).or_default().add(bytes);
        add_download(self.groups.entry((client, image)).or_default(), t, bytes, self.options.pull_gap_micros);
    }

    /// Closes the file whose events were just added, with the reader's counts.
    pub fn finish_file(&mut self, file: impl Into<String>, read: &ReadStats) {
        let current = self.end_file();
        self.files.push(FileSummary::read(file.into(), read, &current));
    }

    /// Closes the audit log whose events were just added, with its source's counts.
    pub fn finish_audit_file(&mut self, file: impl Into<String>, counts: &FileCounts) {
        let current = self.end_file();
        self.files.push(FileSummary::audit(file.into(), counts, &current));
    }

    fn end_file(&mut self) -> CurrentFile {
        if self.options.dedup_across_files {
            self.seen.end_file();
        } else {
            self.seen.clear();
        }
        std::mem::take(&mut self.current)
    }

    /// Records a file that was not read (e.g. a storage log), with the reason.
    pub fn skip_file(&mut self, file: impl Into<String>, kind: &'static str, note: impl Into<String>) {
        self.files.push(FileSummary::skipped(file.into(), kind, note.into()));
    }

    /// Reads one usage-log object from `input`, classifies and counts every row, and closes the
    /// file as `source.name`. On an error the events read so far stay counted; the file is not
    /// listed.
    pub fn read_log<R: Read>(
        &mut self,
        source: &ObjectRef,
        input: R,
        options: ReaderOptions,
    ) -> Result<&FileSummary, ReadError> {
        let mut reader = UsageLogReader::with_options(input, options);
        let mut clients = ClientMemo::default();
        while let Some(row) = reader.next_row()? {
            self.add(&classify_with(&row, source, &mut clients));
        }
        self.finish_file(source.name.clone(), reader.stats());
        Ok(self.files.last().expect("just pushed"))
    }
}
