//! The counters behind the report's lists — per image, client, UTC day, push target and
//! bucket — and the dense ids that key them. Each is updated once per event, so the
//! accumulator's memory grows with distinct keys, not rows.

use std::collections::{HashMap, HashSet};

use crate::registry_event::{Action, RegistryEvent};
use crate::usage::user_agent::ClientFamily;

pub(super) const DAY_MICROS: i64 = 86_400 * 1_000_000;

/// The UTC day number (days since 1970-01-01) of a time: rule 4's key.
pub(super) fn day_of(t: i64) -> i64 {
    t.div_euclid(DAY_MICROS)
}

/// `YYYY-MM-DD` of a [`day_of`] number.
pub(super) fn format_day(day: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(day * (DAY_MICROS / 1_000_000)) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        // Unreachable for the reader's times; an odd event from elsewhere still gets a label.
        Err(_) => format!("day {day}"),
    }
}

/// Blob downloads and the bytes they served; images, clients, days and the unattributed reads
/// all count the same pair.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Transfer {
    pub(super) downloads: u64,
    pub(super) bytes: u64,
}

impl Transfer {
    pub(super) fn add(&mut self, bytes: u64) {
        self.downloads += 1;
        self.bytes += bytes;
    }
}

/// The earliest and latest time seen. Rows arrive unsorted, so both ends move.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Span {
    pub(super) first: Option<i64>,
    pub(super) last: Option<i64>,
}

impl Span {
    pub(super) fn include(&mut self, t: i64) {
        self.first = Some(self.first.map_or(t, |f| f.min(t)));
        self.last = Some(self.last.map_or(t, |l| l.max(t)));
    }
}

#[derive(Debug)]
pub(super) struct ImageAcc {
    /// Lower-cased (rule 2).
    pub(super) host: String,
    pub(super) repository: String,
    pub(super) transfer: Transfer,
    pub(super) span: Span,
}

#[derive(Debug)]
pub(super) struct ClientAcc {
    pub(super) ip: String,
    /// Zero for a client seen only pushing: it has an id (pushes count distinct clients) but
    /// is not a pulling client.
    pub(super) transfer: Transfer,
    /// Client families seen in its blob downloads, in order of first appearance.
    pub(super) families: Vec<ClientFamily>,
}

impl ClientAcc {
    pub(super) fn add_download(&mut self, bytes: u64, family: ClientFamily) {
        self.transfer.add(bytes);
        // A handful of families at most, so a Vec beats a set.
        if !self.families.contains(&family) {
            self.families.push(family);
        }
    }
}

/// Blob writes to one (bucket, repository).
#[derive(Debug, Default)]
pub(super) struct PushAcc {
    pub(super) registry_host: Option<Box<str>>,
    pub(super) pushes: u64,
    pub(super) failed: u64,
    pub(super) bytes_received: u64,
    /// Client ids, so that a client pushing many blobs counts once.
    pub(super) clients: HashSet<u32>,
}

impl PushAcc {
    pub(super) fn add(&mut self, event: &RegistryEvent<'_>, client: u32) {
        if self.registry_host.as_deref() != event.registry_host {
            self.registry_host = event.registry_host.map(Box::from);
        }
        if event.success {
            self.pushes += 1;
            self.bytes_received += event.request_bytes;
            self.clients.insert(client);
        } else {
            self.failed += 1;
        }
    }
}

/// Every event of one bucket, registry or not: the overview that shows what else a bucket
/// serves besides image blobs.
#[derive(Debug, Default)]
pub(super) struct BucketAcc {
    pub(super) registry_host: Option<Box<str>>,
    pub(super) events: u64,
    pub(super) content_reads: u64,
    pub(super) bytes_served: u64,
    pub(super) writes: u64,
    pub(super) bytes_received: u64,
    pub(super) deletes: u64,
    pub(super) failures: u64,
}

impl BucketAcc {
    pub(super) fn add(&mut self, event: &RegistryEvent<'_>) {
        if self.registry_host.as_deref() != event.registry_host {
            self.registry_host = event.registry_host.map(Box::from);
        }
        self.events += 1;
        if !event.success {
            self.failures += 1;
            return;
        }
        match event.action {
            Action::Pull | Action::Download => {
                self.content_reads += 1;
                self.bytes_served += event.response_bytes;
            }
            Action::Push | Action::Upload => {
                self.writes += 1;
                self.bytes_received += event.request_bytes;
            }
            Action::Delete => self.deletes += 1,
            _ => {}
        }
    }
}

/// Dense ids for images and clients: the (client, image) groups and (day, image) counters are
/// keyed by two integers instead of strings, and each name is stored once.
#[derive(Debug, Default)]
pub(super) struct Ids {
    /// Lower-cased host → repository → index into `images`. Two levels so that a lookup
    /// borrows the event's strings instead of building a joined key per row.
    image_ids: HashMap<String, HashMap<String, u32>>,
    pub(super) images: Vec<ImageAcc>,
    client_ids: HashMap<String, u32>,
    pub(super) clients: Vec<ClientAcc>,
}

impl Ids {
    pub(super) fn image(&mut self, host: &str, repository: &str) -> u32 {
        // Lower-case only when needed: the common all-lower-case host then costs no allocation.
        let host: std::borrow::Cow<'_, str> =
            if host.bytes().any(|b| b.is_ascii_uppercase()) { host.to_ascii_lowercase().into() } else { host.into() };
        let repositories = entry(&mut self.image_ids, &host, HashMap::new);
        intern(repositories, &mut self.images, repository, || ImageAcc {
            host: host.to_string(),
            repository: repository.to_string(),
            transfer: Transfer::default(),
            span: Span::default(),
        })
    }

    pub(super) fn client(&mut self, ip: &str) -> u32 {
        intern(&mut self.client_ids, &mut self.clients, ip, || ClientAcc {
            ip: ip.to_string(),
            transfer: Transfer::default(),
            families: Vec::new(),
        })
    }
}

/// `map[key]`, inserted with `new()` when missing. The key is copied only then: this runs for
/// every row, and `HashMap::entry` would need an owned key each time.
pub(super) fn entry<'m, V>(map: &'m mut HashMap<String, V>, key: &str, new: impl FnOnce() -> V) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), new());
    }
    map.get_mut(key).expect("inserted above")
}

/// The id of `key`: its index in `items`, where `new()` is pushed the first time it is seen.
fn intern<T>(ids: &mut HashMap<String, u32>, items: &mut Vec<T>, key: &str, new: impl FnOnce() -> T) -> u32 {
    *entry(ids, key, || {
        items.push(new());
        (items.len() - 1) as u32
    })
}
