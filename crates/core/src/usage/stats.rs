//! Usage statistics: a streaming accumulator fed [`UsageEvent`]s that answers "who pulled which
//! image, how often, how many bytes" — the numbers `gcr-usage report` prints and the SQL views
//! compute in BigQuery. Pure: no I/O, no clock; [`UsageStats::read_log`] takes any `io::Read`.
//!
//! # The pull rule
//!
//! A registry pull is not one request: the client fetches the image's config blob and every
//! layer it does not have, each a separate row. Rows become pulls by this rule (the SQL views
//! mirror it exactly):
//!
//! 1. **Blob download**: an event with `action = pull` (a content read of
//!    `containers/images/sha256:…` in a registry bucket; HEAD is never one), `success` (status
//!    2xx or 304) and a known `repository` (its Referer `https://HOST/v2/REPOSITORY/blobs/DIGEST`
//!    names the same digest). A request id (`s_request_id`) counts once, across every file read
//!    (an empty id never makes a row a duplicate).
//! 2. **Image**: the Referer's host, lower-cased, and the repository — the name the client
//!    asked for (`eu.gcr.io` + `demo-project/team/api/server`), not the bucket.
//! 3. **Pull**: blob downloads are grouped per (`client_ip`, image) and ordered by
//!    `time_micros`. The first download of a group starts a pull; every later one starts a new
//!    pull when it comes **more than 5 minutes** (`time_micros` difference > 300 000 000)
//!    after the previous download of the same group, and otherwise belongs to the current
//!    pull. Equal times, and a gap of exactly 5 minutes, stay in one pull.
//! 4. **Day**: a pull is counted on the UTC day of its first blob download; blob downloads and
//!    bytes on the UTC day of their own `time_micros` (a pull across midnight counts once, on
//!    its first day, while its bytes are split over both days).
//!
//! In SQL, over deduplicated blob downloads:
//! `LAG(time_micros) OVER (PARTITION BY client_ip, host, repository ORDER BY time_micros)`,
//! `new_pull = prev IS NULL OR time_micros - prev > 300000000`, pulls = `COUNTIF(new_pull)`,
//! a pull's day = the day of its `new_pull` row.
//!
//! What the rule cannot know: a client that had every blob cached fetches nothing, so its pull
//! leaves no row and is not counted (the registry's manifest requests never reach the bucket);
//! clients behind one NAT address share an IP and, pulling the same image within 5 minutes,
//! count as one pull; a pull slower than 5 minutes between two consecutive blob fetches counts
//! twice.
//!
//! # Order and memory
//!
//! Rows inside a log object are not sorted by time, and an object can hold records of earlier
//! hours, so rule 3 cannot be applied row by row in arrival order. Instead of buffering and
//! sorting the downloads of each group (memory per *download*), each group keeps its pulls as a
//! sorted list of disjoint intervals `[first, last]`, each separated from the next by more than
//! 5 minutes. A download at `t` joins the pull whose interval lies within 5 minutes of `t`
//! (`first − 5 min ≤ t ≤ last + 5 min`), merges the two neighbouring pulls when it bridges them,
//! and otherwise starts a new pull. This yields exactly the pulls of the sorted rule whatever
//! order rows arrive in: a pull's downloads are spaced by at most 5 minutes, so `t` is within
//! 5 minutes of one of them exactly when it is within 5 minutes of the interval.
//!
//! Memory is therefore 32 bytes per *pull*, not per row, plus one entry per image, client,
//! (client, image) group, (day, image), bucket, push target and (status, action) pair. Pulls
//! of one group are more than 5 minutes apart, so a group holds at most 288 pulls per day.
//! The one structure that grows with rows is the cross-file duplicate filter (rule 1): a
//! 64-bit hash per distinct request id, about 16–32 bytes per row with hash-table slack (a
//! million-row hour ≈ 30 MB). With [`StatsOptions::dedup_across_files`] off it is not kept and
//! memory is bounded by the distinct keys above; a record written twice into *different*
//! objects then counts twice in downloads and bytes (the pulls do not change: a duplicate has
//! the same time as its original). The reader still drops duplicates within one file.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::request_ids::{RequestIdSet, hash_id};
use std::io::Read;

use serde::Serialize;

use super::classify::classify;
use super::event::{Action, EventTime, UsageEvent};
use super::reader::{HeaderKind, Malformed, ReadError, ReadStats, ReaderOptions, UsageLogReader};
use super::row::UsageRow;
use super::user_agent::ClientFamily;
use crate::object::ObjectRef;

/// Rule 3's window: a blob download more than this after the previous one starts a new pull.
pub const PULL_GAP_MICROS: i64 = 5 * 60 * 1_000_000;

const DAY_MICROS: i64 = 86_400 * 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsOptions {
    /// The pull gap of rule 3 (default [`PULL_GAP_MICROS`]; the SQL views use the default).
    pub pull_gap_micros: i64,
    /// Count each request id once across all files (memory grows with rows; see the module doc).
    pub dedup_across_files: bool,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions { pull_gap_micros: PULL_GAP_MICROS, dedup_across_files: true }
    }
}

/// One pull: the interval of its blob downloads, and what they transferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pull {
    first: i64,
    last: i64,
    downloads: u64,
    bytes: u64,
}

/// Adds a blob download at `t` to a group's pulls (sorted by `first`, consecutive pulls more
/// than `gap` apart), keeping that invariant.
fn add_download(pulls: &mut Vec<Pull>, t: i64, bytes: u64, gap: i64) {
    // pulls[..i] start at or before t, pulls[i..] after it.
    let i = pulls.partition_point(|p| p.first <= t);
    let joins_previous = i > 0 && t.saturating_sub(pulls[i - 1].last) <= gap;
    let joins_next = i < pulls.len() && pulls[i].first.saturating_sub(t) <= gap;
    match (joins_previous, joins_next) {
        (true, true) => {
            let next = pulls.remove(i);
            let p = &mut pulls[i - 1];
            p.last = next.last;
            p.downloads += next.downloads + 1;
            p.bytes += next.bytes + bytes;
        }
        (true, false) => {
            let p = &mut pulls[i - 1];
            p.last = p.last.max(t);
            p.downloads += 1;
            p.bytes += bytes;
        }
        (false, true) => {
            let p = &mut pulls[i];
            p.first = t;
            p.downloads += 1;
            p.bytes += bytes;
        }
        (false, false) => pulls.insert(i, Pull { first: t, last: t, downloads: 1, bytes }),
    }
}

#[derive(Debug, Default)]
struct ImageAcc {
    host: String,
    repository: String,
    downloads: u64,
    bytes: u64,
    first: Option<i64>,
    last: Option<i64>,
}

#[derive(Debug, Default)]
struct ClientAcc {
    ip: String,
    downloads: u64,
    bytes: u64,
    /// Client families seen in its blob downloads, in order of first appearance.
    families: Vec<ClientFamily>,
}

#[derive(Debug, Default, Clone, Copy)]
struct DayAcc {
    downloads: u64,
    bytes: u64,
}

#[derive(Debug, Default)]
struct PushAcc {
    registry_host: Option<&'static str>,
    pushes: u64,
    failed: u64,
    bytes_received: u64,
    clients: HashSet<u32>,
}

#[derive(Debug, Default)]
struct BucketAcc {
    registry_host: Option<&'static str>,
    events: u64,
    content_reads: u64,
    bytes_served: u64,
    writes: u64,
    bytes_received: u64,
    deletes: u64,
    failures: u64,
}

/// Counts of the file being read, until [`UsageStats::finish_file`].
#[derive(Debug, Default, Clone, Copy)]
struct CurrentFile {
    events: u64,
    duplicates_across_files: u64,
}

/// The statistics accumulator. Feed it events with [`UsageStats::add`] (or whole log objects
/// with [`UsageStats::read_log`]), close each file with [`UsageStats::finish_file`], then ask
/// for a [`Report`].
#[derive(Debug)]
pub struct UsageStats {
    options: StatsOptions,
    /// host → repository → index into `images`.
    image_ids: HashMap<String, HashMap<String, u32>>,
    images: Vec<ImageAcc>,
    client_ids: HashMap<String, u32>,
    clients: Vec<ClientAcc>,
    /// (client, image) → its pulls.
    groups: HashMap<(u32, u32), Vec<Pull>>,
    /// (day, image) → downloads and bytes on that day.
    days: HashMap<(i64, u32), DayAcc>,
    /// (bucket, repository) → pushes.
    pushes: BTreeMap<(String, Option<String>), PushAcc>,
    failures: HashMap<(u16, Action), u64>,
    buckets: BTreeMap<String, BucketAcc>,
    seen: RequestIdSet,
    unattributed_downloads: u64,
    unattributed_bytes: u64,
    events: u64,
    first: Option<i64>,
    last: Option<i64>,
    current: CurrentFile,
    files: Vec<FileSummary>,
}

impl Default for UsageStats {
    fn default() -> Self {
        Self::new(StatsOptions::default())
    }
}

impl UsageStats {
    pub fn new(options: StatsOptions) -> Self {
        UsageStats {
            options,
            image_ids: HashMap::new(),
            images: Vec::new(),
            client_ids: HashMap::new(),
            clients: Vec::new(),
            groups: HashMap::new(),
            days: HashMap::new(),
            pushes: BTreeMap::new(),
            failures: HashMap::new(),
            buckets: BTreeMap::new(),
            seen: RequestIdSet::default(),
            unattributed_downloads: 0,
            unattributed_bytes: 0,
            events: 0,
            first: None,
            last: None,
            current: CurrentFile::default(),
            files: Vec::new(),
        }
    }

    pub fn options(&self) -> StatsOptions {
        self.options
    }

    /// Counts one event. `false` when it was dropped as a duplicate of a request already
    /// counted (from another file: the reader drops duplicates within a file).
    pub fn add(&mut self, event: &UsageEvent<'_>) -> bool {
        if self.options.dedup_across_files && !event.request_id.is_empty() {
            let hash = hash_id(event.request_id.as_bytes());
            if !self.seen.insert(hash) {
                self.current.duplicates_across_files += 1;
                return false;
            }
        }
        self.current.events += 1;
        self.events += 1;
        let t = event.time_micros;
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));

        self.count_bucket(event);
        if !event.success {
            *self.failures.entry((event.status, event.action)).or_default() += 1;
        }
        match event.action {
            Action::Pull if event.success => match (event.image, event.repository) {
                (Some(image), Some(_)) => self.count_download(event, image.host, image.repository),
                _ => {
                    self.unattributed_downloads += 1;
                    self.unattributed_bytes += event.response_bytes;
                }
            },
            Action::Push => self.count_push(event),
            _ => {}
        }
        true
    }

    fn count_bucket(&mut self, event: &UsageEvent<'_>) {
        if !self.buckets.contains_key(event.bucket) {
            self.buckets.insert(event.bucket.to_string(), BucketAcc::default());
        }
        let Some(bucket) = self.buckets.get_mut(event.bucket) else { return };
        bucket.registry_host = event.registry_host;
        bucket.events += 1;
        if !event.success {
            bucket.failures += 1;
            return;
        }
        match event.action {
            Action::Pull | Action::Download => {
                bucket.content_reads += 1;
                bucket.bytes_served += event.response_bytes;
            }
            Action::Push | Action::Upload => {
                bucket.writes += 1;
                bucket.bytes_received += event.request_bytes;
            }
            Action::Delete => bucket.deletes += 1,
            _ => {}
        }
    }

    fn count_download(&mut self, event: &UsageEvent<'_>, host: &str, repository: &str) {
        let (t, bytes) = (event.time_micros, event.response_bytes);
        let image = self.image_id(host, repository);
        let client = self.client_id(event.client_ip);
        let acc = &mut self.images[image as usize];
        acc.downloads += 1;
        acc.bytes += bytes;
        acc.first = Some(acc.first.map_or(t, |f| f.min(t)));
        acc.last = Some(acc.last.map_or(t, |l| l.max(t)));
        let c = &mut self.clients[client as usize];
        c.downloads += 1;
        c.bytes += bytes;
        if !c.families.contains(&event.client_family) {
            c.families.push(event.client_family);
        }
        let day = self.days.entry((t.div_euclid(DAY_MICROS), image)).or_default();
        day.downloads += 1;
        day.bytes += bytes;
        add_download(self.groups.entry((client, image)).or_default(), t, bytes, self.options.pull_gap_micros);
    }

    fn count_push(&mut self, event: &UsageEvent<'_>) {
        let client = self.client_id(event.client_ip);
        let key = (event.bucket.to_string(), event.repository.map(str::to_string));
        let acc = self.pushes.entry(key).or_default();
        acc.registry_host = event.registry_host;
        if event.success {
            acc.pushes += 1;
            acc.bytes_received += event.request_bytes;
            acc.clients.insert(client);
        } else {
            acc.failed += 1;
        }
    }

    fn image_id(&mut self, host: &str, repository: &str) -> u32 {
        let host_key: std::borrow::Cow<'_, str> =
            if host.bytes().any(|b| b.is_ascii_uppercase()) { host.to_ascii_lowercase().into() } else { host.into() };
        if let Some(id) = self.image_ids.get(host_key.as_ref()).and_then(|r| r.get(repository)) {
            return *id;
        }
        let id = self.images.len() as u32;
        let host = host_key.into_owned();
        self.image_ids.entry(host.clone()).or_default().insert(repository.to_string(), id);
        self.images.push(ImageAcc { host, repository: repository.to_string(), ..ImageAcc::default() });
        id
    }

    fn client_id(&mut self, ip: &str) -> u32 {
        if let Some(id) = self.client_ids.get(ip) {
            return *id;
        }
        let id = self.clients.len() as u32;
        self.client_ids.insert(ip.to_string(), id);
        self.clients.push(ClientAcc { ip: ip.to_string(), ..ClientAcc::default() });
        id
    }

    /// Closes the file whose events were just added, with the reader's counts.
    pub fn finish_file(&mut self, file: impl Into<String>, read: &ReadStats) {
        let current = std::mem::take(&mut self.current);
        self.files.push(FileSummary {
            file: file.into(),
            kind: "usage",
            note: None,
            header: read.header,
            records: read.records,
            rows: read.rows,
            events: current.events,
            malformed: read.malformed,
            duplicates: read.duplicates,
            duplicates_across_files: current.duplicates_across_files,
            invalid_utf8: read.invalid_utf8,
            malformed_samples: read.malformed_samples.clone(),
        });
    }

    /// Records a file that was not read (e.g. a storage log), with the reason.
    pub fn skip_file(&mut self, file: impl Into<String>, kind: &'static str, note: impl Into<String>) {
        self.files.push(FileSummary {
            file: file.into(),
            kind,
            note: Some(note.into()),
            header: HeaderKind::None,
            records: 0,
            rows: 0,
            events: 0,
            malformed: 0,
            duplicates: 0,
            duplicates_across_files: 0,
            invalid_utf8: 0,
            malformed_samples: Vec::new(),
        });
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
        let mut row = UsageRow::default();
        while reader.read_row(&mut row)? {
            self.add(&classify(&row, source));
        }
        self.finish_file(source.name.clone(), reader.stats());
        Ok(self.files.last().expect("just pushed"))
    }

    /// Pulls per image per time bucket of `bucket_micros` (a pull counts in the bucket of its
    /// first download), for charts: one series per image in no particular order.
    pub fn pull_timeline(&self, bucket_micros: i64) -> Vec<PullSeries> {
        let bucket_micros = bucket_micros.max(1);
        let mut per_image: Vec<BTreeMap<i64, u64>> = vec![BTreeMap::new(); self.images.len()];
        for (&(_, image), pulls) in &self.groups {
            for p in pulls {
                *per_image[image as usize].entry(p.first.div_euclid(bucket_micros) * bucket_micros).or_default() += 1;
            }
        }
        self.images
            .iter()
            .zip(per_image)
            .map(|(i, series)| PullSeries {
                registry_host: i.host.clone(),
                repository: i.repository.clone(),
                buckets: series.into_iter().collect(),
            })
            .collect()
    }

    /// The statistics so far. `top` limits the client lists (`None`: every client).
    pub fn report(&self, top: Option<usize>) -> Report {
        let image_count = self.images.len();
        let mut image_pulls = vec![0u64; image_count];
        let mut image_clients = vec![0u64; image_count];
        let mut client_pulls = vec![0u64; self.clients.len()];
        let mut client_images = vec![0u64; self.clients.len()];
        let mut day_pulls: HashMap<(i64, u32), u64> = HashMap::new();
        for (&(client, image), pulls) in &self.groups {
            image_pulls[image as usize] += pulls.len() as u64;
            image_clients[image as usize] += 1;
            client_pulls[client as usize] += pulls.len() as u64;
            client_images[client as usize] += 1;
            for p in pulls {
                *day_pulls.entry((p.first.div_euclid(DAY_MICROS), image)).or_default() += 1;
            }
        }

        let mut images: Vec<ImageStats> = self
            .images
            .iter()
            .enumerate()
            .map(|(i, a)| ImageStats {
                registry_host: a.host.clone(),
                repository: a.repository.clone(),
                pulls: image_pulls[i],
                blob_downloads: a.downloads,
                bytes_served: a.bytes,
                clients: image_clients[i],
                first_seen: a.first.map(EventTime),
                last_seen: a.last.map(EventTime),
            })
            .collect();
        images.sort_by(|a, b| {
            (b.pulls, b.blob_downloads)
                .cmp(&(a.pulls, a.blob_downloads))
                .then_with(|| (&a.registry_host, &a.repository).cmp(&(&b.registry_host, &b.repository)))
        });

        let mut daily_keys: Vec<(i64, u32)> = self.days.keys().copied().collect();
        daily_keys.extend(day_pulls.keys().filter(|k| !self.days.contains_key(k)));
        let mut daily: Vec<DailyStats> = daily_keys
            .into_iter()
            .map(|key @ (day, image)| {
                let d = self.days.get(&key).copied().unwrap_or_default();
                let a = &self.images[image as usize];
                DailyStats {
                    day: format_day(day),
                    registry_host: a.host.clone(),
                    repository: a.repository.clone(),
                    pulls: day_pulls.get(&key).copied().unwrap_or(0),
                    blob_downloads: d.downloads,
                    bytes_served: d.bytes,
                }
            })
            .collect();
        daily.sort_by(|a, b| {
            a.day
                .cmp(&b.day)
                .then(b.pulls.cmp(&a.pulls))
                .then_with(|| (&a.registry_host, &a.repository).cmp(&(&b.registry_host, &b.repository)))
        });

        let clients: Vec<ClientStats> = self
            .clients
            .iter()
            .enumerate()
            .filter(|(_, c)| c.downloads > 0)
            .map(|(i, c)| ClientStats {
                client_ip: c.ip.clone(),
                pulls: client_pulls[i],
                blob_downloads: c.downloads,
                bytes_served: c.bytes,
                images: client_images[i],
                client_families: c.families.iter().map(|f| family_name(*f)).collect::<Vec<_>>().join(" "),
            })
            .collect();
        let limit = top.unwrap_or(usize::MAX);
        let mut clients_by_pulls = clients.clone();
        clients_by_pulls.sort_by(|a, b| {
            (b.pulls, b.bytes_served).cmp(&(a.pulls, a.bytes_served)).then_with(|| a.client_ip.cmp(&b.client_ip))
        });
        clients_by_pulls.truncate(limit);
        let mut clients_by_bytes = clients;
        clients_by_bytes.sort_by(|a, b| {
            (b.bytes_served, b.pulls).cmp(&(a.bytes_served, a.pulls)).then_with(|| a.client_ip.cmp(&b.client_ip))
        });
        clients_by_bytes.truncate(limit);

        let mut pushes: Vec<PushStats> = self
            .pushes
            .iter()
            .map(|((bucket, repository), p)| PushStats {
                bucket: bucket.clone(),
                registry_host: p.registry_host.map(str::to_string),
                repository: repository.clone(),
                pushes: p.pushes,
                failed: p.failed,
                bytes_received: p.bytes_received,
                clients: p.clients.len() as u64,
            })
            .collect();
        pushes.sort_by(|a, b| {
            b.pushes.cmp(&a.pushes).then_with(|| (&a.bucket, &a.repository).cmp(&(&b.bucket, &b.repository)))
        });

        let mut failures: Vec<FailureStats> = self
            .failures
            .iter()
            .map(|(&(status, action), &count)| FailureStats { status, action: action_name(action), count })
            .collect();
        failures.sort_by(|a, b| b.count.cmp(&a.count).then(a.status.cmp(&b.status)).then(a.action.cmp(b.action)));

        let buckets = self
            .buckets
            .iter()
            .map(|(name, b)| BucketStats {
                bucket: name.clone(),
                registry_host: b.registry_host.map(str::to_string),
                events: b.events,
                content_reads: b.content_reads,
                bytes_served: b.bytes_served,
                writes: b.writes,
                bytes_received: b.bytes_received,
                deletes: b.deletes,
                failures: b.failures,
            })
            .collect();

        let usage_files = self.files.iter().filter(|f| f.note.is_none());
        let sum = |f: fn(&FileSummary) -> u64| usage_files.clone().map(f).sum::<u64>();
        let summary = Summary {
            files_read: usage_files.clone().count() as u64,
            files_skipped: self.files.iter().filter(|f| f.note.is_some()).count() as u64,
            records: sum(|f| f.records),
            rows: sum(|f| f.rows),
            events: self.events,
            malformed: sum(|f| f.malformed),
            duplicates: sum(|f| f.duplicates),
            duplicates_across_files: sum(|f| f.duplicates_across_files),
            first_event: self.first.map(EventTime),
            last_event: self.last.map(EventTime),
            pull_gap_micros: self.options.pull_gap_micros,
            images: image_count as u64,
            pulls: image_pulls.iter().sum(),
            blob_downloads: self.images.iter().map(|i| i.downloads).sum(),
            bytes_served: self.images.iter().map(|i| i.bytes).sum(),
            pulling_clients: self.clients.iter().filter(|c| c.downloads > 0).count() as u64,
            unattributed_blob_downloads: self.unattributed_downloads,
            unattributed_bytes: self.unattributed_bytes,
            pushes: self.pushes.values().map(|p| p.pushes).sum(),
            failures: self.failures.values().sum(),
        };

        Report {
            summary,
            files: self.files.clone(),
            images,
            daily,
            clients_by_pulls,
            clients_by_bytes,
            pushes,
            failures,
            buckets,
        }
    }
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
fn format_day(day: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(day * 86_400) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => format!("day {day}"),
    }
}

/// The snake_case name an [`Action`] serialises to.
pub fn action_name(action: Action) -> &'static str {
    match action {
        Action::Pull => "pull",
        Action::Push => "push",
        Action::Download => "download",
        Action::Upload => "upload",
        Action::Delete => "delete",
        Action::List => "list",
        Action::Admin => "admin",
        Action::Other => "other",
    }
}

/// The kebab-case name a [`ClientFamily`] serialises to.
fn family_name(family: ClientFamily) -> String {
    match serde_json::to_value(family) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{family:?}"),
    }
}

/// One image's pulls over time: `(bucket start in µs since the epoch, pulls)`, ascending,
/// empty buckets left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSeries {
    pub registry_host: String,
    pub repository: String,
    pub buckets: Vec<(i64, u64)>,
}

/// Everything `gcr-usage report` prints. Times are RFC 3339 UTC strings in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub summary: Summary,
    pub files: Vec<FileSummary>,
    /// Per image: pulls (rule 3), blob downloads, bytes, distinct pulling clients.
    pub images: Vec<ImageStats>,
    /// Per UTC day and image (rule 4).
    pub daily: Vec<DailyStats>,
    pub clients_by_pulls: Vec<ClientStats>,
    pub clients_by_bytes: Vec<ClientStats>,
    pub pushes: Vec<PushStats>,
    /// Unsuccessful requests (status neither 2xx nor 304) by status and action.
    pub failures: Vec<FailureStats>,
    pub buckets: Vec<BucketStats>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Usage logs read.
    pub files_read: u64,
    /// Files recognised and skipped (storage logs).
    pub files_skipped: u64,
    pub records: u64,
    pub rows: u64,
    /// Rows counted: rows minus duplicates across files.
    pub events: u64,
    pub malformed: u64,
    /// Duplicate records dropped within a file.
    pub duplicates: u64,
    /// Records dropped because another file held the same request id.
    pub duplicates_across_files: u64,
    pub first_event: Option<EventTime>,
    pub last_event: Option<EventTime>,
    /// The pull gap of rule 3 in microseconds (300000000 unless changed).
    pub pull_gap_micros: i64,
    pub images: u64,
    pub pulls: u64,
    pub blob_downloads: u64,
    pub bytes_served: u64,
    pub pulling_clients: u64,
    /// Successful blob reads whose repository is unknown (no registry Referer).
    pub unattributed_blob_downloads: u64,
    pub unattributed_bytes: u64,
    pub pushes: u64,
    pub failures: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    pub file: String,
    /// `usage`, or what a skipped file was (`storage`).
    pub kind: &'static str,
    /// Why the file was skipped; `None` for a file that was read.
    pub note: Option<String>,
    /// What the first record was (`none` for an empty or skipped file).
    pub header: HeaderKind,
    pub records: u64,
    pub rows: u64,
    pub events: u64,
    pub malformed: u64,
    pub duplicates: u64,
    pub duplicates_across_files: u64,
    pub invalid_utf8: u64,
    pub malformed_samples: Vec<Malformed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageStats {
    pub registry_host: String,
    pub repository: String,
    pub pulls: u64,
    pub blob_downloads: u64,
    pub bytes_served: u64,
    /// Distinct client IPs with at least one blob download of the image.
    pub clients: u64,
    pub first_seen: Option<EventTime>,
    pub last_seen: Option<EventTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyStats {
    pub day: String,
    pub registry_host: String,
    pub repository: String,
    pub pulls: u64,
    pub blob_downloads: u64,
    pub bytes_served: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    pub client_ip: String,
    pub pulls: u64,
    pub blob_downloads: u64,
    pub bytes_served: u64,
    /// Distinct images it pulled.
    pub images: u64,
    /// Client families of its blob downloads, space-separated, in order of appearance.
    pub client_families: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushStats {
    pub bucket: String,
    pub registry_host: Option<String>,
    /// Known only when the push row names it (pushes rarely carry a registry Referer).
    pub repository: Option<String>,
    /// Successful blob writes.
    pub pushes: u64,
    pub failed: u64,
    pub bytes_received: u64,
    pub clients: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureStats {
    pub status: u16,
    pub action: &'static str,
    pub count: u64,
}

/// Per bucket, every event (registry buckets and any other bucket alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BucketStats {
    pub bucket: String,
    pub registry_host: Option<String>,
    pub events: u64,
    /// Successful content reads (blob pulls and object downloads).
    pub content_reads: u64,
    pub bytes_served: u64,
    /// Successful content writes (blob pushes and object uploads).
    pub writes: u64,
    pub bytes_received: u64,
    pub deletes: u64,
    pub failures: u64,
}

#[cfg(test)]
#[path = "stats_tests.rs"]
mod tests;
