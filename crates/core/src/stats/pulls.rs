//! Rule 3: blob downloads of one (client, image) group become pulls.
//!
//! Rows inside a log object are not sorted by time, and an object can hold records of earlier
//! hours, so the rule cannot be applied row by row in arrival order. Instead of buffering and
//! sorting the downloads of each group (memory per *download*), each group keeps its pulls as a
//! sorted list of disjoint intervals `[first, last]`, each separated from the next by more than
//! the gap. A download at `t` joins the pull whose interval lies within the gap of `t`
//! (`first − gap ≤ t ≤ last + gap`), merges the two neighbouring pulls when it bridges them,
//! and otherwise starts a new pull. This yields exactly the pulls of the sorted rule whatever
//! order rows arrive in: a pull's downloads are spaced by at most the gap, so `t` is within the
//! gap of one of them exactly when it is within the gap of the interval.

use std::collections::{BTreeMap, HashMap};

use crate::registry_event::{CallerClass, RegistryEvent, SourceKind, Target};

/// What a successful `pull` event is to the pull rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPart {
    /// It joins or starts a pull of its (client, image) group (rule 3).
    Download,
    /// An audit entry's layer download: counted, but never part of a pull (rule A).
    Layer,
    /// A manifest download by one of Google's own agents: reported apart, never a pull (rule A).
    Agent,
}

/// Rule A — one `docker pull` in Artifact Registry's audit logs. Usage logs record only blob
/// reads, so there a pull is made of blob downloads (rule 3). Audit logs record the manifest
/// reads too, and every pull makes at least one — a `GetManifest` of the tag or digest (a HEAD
/// transfers nothing and a client with every layer cached downloads none) — so there a pull is
/// made of `Docker-GetManifest` entries: a multi-platform index and the platform manifest it
/// leads to, read seconds apart, fall in one pull by the same 5-minute gap; a pull by digest is
/// one. Layer downloads (`Docker-ServeBlob`) do not make pulls. Google's own agents (the
/// vulnerability scanner, Cloud Build) read manifests too: their reads are counted apart.
/// The SQL views apply the same rule (`sql/views/blob_downloads.sql`).
pub fn pull_part(event: &RegistryEvent<'_>) -> PullPart {
    match (event.source_kind, event.target, event.caller_class) {
        (SourceKind::UsageLog, ..) => PullPart::Download,
        (SourceKind::AuditLog, Target::Manifest, CallerClass::GoogleInternalOrAutomation) => PullPart::Agent,
        (SourceKind::AuditLog, Target::Manifest, _) => PullPart::Download,
        (SourceKind::AuditLog, ..) => PullPart::Layer,
    }
}

/// Rule 3's window: a blob download more than this after the previous one starts a new pull.
pub const PULL_GAP_MICROS: i64 = 5 * 60 * 1_000_000;

/// One pull: the interval of its blob downloads, and what they transferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pull {
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) downloads: u64,
    pub(super) bytes: u64,
}

/// (client id, image id) → that group's pulls, sorted by `first`, consecutive pulls more than
/// the gap apart. Keyed by ids rather than strings so a group costs two integers.
pub(super) type Groups = HashMap<(u32, u32), Vec<Pull>>;

/// Adds a blob download at `t` to a group's pulls (sorted by `first`, consecutive pulls more
/// than `gap` apart), keeping that invariant.
pub(super) fn add_download(pulls: &mut Vec<Pull>, t: i64, bytes: u64, gap: i64) {
    // pulls[..i] start at or before t, pulls[i..] after it.
    let i = pulls.partition_point(|p| p.first <= t);
    // Saturating: times are bounded by the reader, but `add` also takes events built elsewhere.
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
            // `t` may fall inside the interval (an out-of-order row): never shrink it.
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

/// What the groups say about one image or one client: its pulls, and how many groups it is
/// in — for an image its distinct clients, for a client its distinct images.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct GroupCounts {
    pub(super) pulls: u64,
    pub(super) groups: u64,
}

/// [`GroupCounts`] per image id and per client id, from one pass over the groups: pulls are
/// only known per group, so both sides are derived here rather than counted as rows arrive.
pub(super) fn count_groups(groups: &Groups, images: usize, clients: usize) -> (Vec<GroupCounts>, Vec<GroupCounts>) {
    let mut per_image = vec![GroupCounts::default(); images];
    let mut per_client = vec![GroupCounts::default(); clients];
    for (&(client, image), pulls) in groups {
        for counts in [&mut per_image[image as usize], &mut per_client[client as usize]] {
            counts.pulls += pulls.len() as u64;
            counts.groups += 1;
        }
    }
    (per_image, per_client)
}

/// Pulls per (image id, time bucket number) for buckets `width` µs wide, a pull counting in
/// the bucket of its first download — rule 4 with `width` one day, the HTML charts with any
/// width, so both count a pull the same way. Ordered by image, then time.
pub(super) fn pulls_per_bucket(groups: &Groups, width: i64) -> BTreeMap<(u32, i64), u64> {
    let mut starts = BTreeMap::new();
    for (&(_, image), pulls) in groups {
        for p in pulls {
            *starts.entry((image, p.first.div_euclid(width))).or_default() += 1;
        }
    }
    starts
}
