//! Remembering request ids cheaply: duplicate records (same `s_request_id`) are dropped within
//! a file by the reader and across files by the statistics, both with sets of 64-bit hashes
//! (8 bytes a key plus table overhead instead of the ~60-byte id). [`RecentIds`] is the
//! statistics' filter: bounded memory over any number of files.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A set of [`hash_id`] values; the keys are already well mixed, so no second hash is applied.
pub type RequestIdSet = HashSet<u64, BuildHasherDefault<PassThrough>>;

/// Eight bytes at a time (multiply by an odd constant, rotate), the last word overlapping the
/// one before, the length mixed in first (so ids that differ only in a zero tail differ), then
/// MurmurHash3's 64-bit finaliser so every bit of the result is mixed. Deterministic across runs
/// and targets (no random seed needed inside the component), and request ids are not
/// attacker-chosen keys. Only 64-bit multiplies: a 128-bit one is a library call in wasm32.
/// (FNV-1a, a multiply per byte over ~70-byte ids, was 3% of the component's instructions.)
pub fn hash_id(id: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let step = |h: u64, word: u64| (h ^ word).wrapping_mul(K).rotate_left(29);
    let mut h = (id.len() as u64 ^ 0xcbf2_9ce4_8422_2325).wrapping_mul(K);
    match id.last_chunk::<8>() {
        Some(last) => {
            let (words, _) = id.as_chunks::<8>();
            h = words.iter().fold(h, |h, word| step(h, u64::from_le_bytes(*word)));
            h = step(h, u64::from_le_bytes(*last));
        }
        None => {
            let mut word = [0u8; 8];
            for (w, &b) in word.iter_mut().zip(id) {
                *w = b;
            }
            h = step(h, u64::from_le_bytes(word));
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// A hasher for keys that already are well-mixed 64-bit hashes.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `HashSet<u64>`; fold anything else in for correctness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The ids of the last `n` first sightings: the reader's [`Dedup::Window`](super::Dedup).
/// Each id maps to the number of its first sighting; one older than the last `n` reads as
/// absent (and is renumbered when seen again), and a sweep every `n/2` sightings drops those,
/// so at most 1.5·n are held. One hash probe a row, where a set plus a queue of the order
/// needed an insertion and a removal (the removal alone was 4% of the component's CPU time
/// under `wasmtime serve`); `window_tests` holds it to that model.
#[derive(Debug)]
pub struct IdWindow {
    first_seen: HashMap<u64, u64, BuildHasherDefault<PassThrough>>,
    /// First sightings so far.
    sightings: u64,
    n: u64,
}

impl IdWindow {
    pub fn new(n: usize) -> Self {
        let n = n.max(1);
        // Room for twice the most ever held (1.5·n): a table more than half full of live ids
        // grows when its removed slots run out, where one at most half full is only rehashed
        // in place. So the table is as large from the start as it would become — memory that
        // does not grow with the file — and never doubles mid-read.
        let first_seen = HashMap::with_capacity_and_hasher(3 * n + 2, Default::default());
        IdWindow { first_seen, sightings: 0, n: n as u64 }
    }

    /// Whether `hash` is new — not among the last `n` first sightings — which makes it the latest.
    pub fn insert(&mut self, hash: u64) -> bool {
        let latest = self.sightings;
        match self.first_seen.entry(hash) {
            Entry::Occupied(held) if latest - *held.get() <= self.n => return false,
            Entry::Occupied(mut expired) => *expired.get_mut() = latest,
            Entry::Vacant(slot) => {
                slot.insert(latest);
            }
        }
        self.sightings += 1;
        if self.sightings.is_multiple_of((self.n / 2).max(1)) {
            // Held after this sighting: the last `n`, numbers sightings - n and later.
            let oldest = self.sightings.saturating_sub(self.n);
            self.first_seen.retain(|_, &mut seen| seen >= oldest);
        }
        true
    }
}

/// What [`RecentIds::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not held: the first copy (as far as anything held can tell).
    New,
    /// Not held, but rows of the row's minute (or of a later one) have been forgotten, so a
    /// copy read before that would not have been noticed. Counted like [`Check::New`], and
    /// reported.
    Unverified,
    /// A copy of a row of the file being read.
    InThisFile,
    /// A copy of a row of a file read earlier.
    InEarlierFile,
}

/// What is kept of one id: when its row was (for forgetting the oldest first) and which file
/// it came from (to tell a copy within a file from one across files). 8 bytes, so an entry with
/// its key is 16: the same as a bare `(u64, u32)` would take with padding.
#[derive(Debug, Clone, Copy)]
struct Held {
    minute: i32,
    file: u32,
}

/// The minute of a row time, saturated to ±4,000 years around 1970 (a time out there is
/// nonsense anyway; it only decides when its id is forgotten, never whether it is found).
fn minute_of(time_micros: i64) -> i32 {
    time_micros.div_euclid(60_000_000).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The request ids of the rows counted so far — exact, like a set of every id, until it holds
/// `capacity` of them; past that, the ids of the oldest row minutes are forgotten first. Why
/// by row time: a duplicate record is the same record written twice, `time_micros` included,
/// and logs are read in time order (hourly objects; directories are listed sorted by name),
/// so the oldest minutes are the ones no copy will still come for. Memory is bounded by the
/// capacity (17 bytes a table slot, at most 8/7 slots an id before the table doubles) instead
/// of growing with the rows read, and a row that could only be checked against a partly
/// forgotten past says so ([`Check::Unverified`]). The bound is soft by one minute: the
/// minute of the row just checked is never forgotten.
/// The filter's default capacity: 7/8 of 2²² ids, the most a 2²²-slot table holds (~70 MiB),
/// two hours of a registry serving 1.8 million requests an hour.
pub const DEFAULT_DEDUP_WINDOW: usize = (1 << 22) / 8 * 7;

#[derive(Debug)]
pub struct RecentIds {
    ids: HashMap<u64, Held, BuildHasherDefault<PassThrough>>,
    /// How many held ids each minute has: which minutes to forget without sorting the table.
    minutes: BTreeMap<i32, usize>,
    capacity: usize,
    file: u32,
    /// Ids of this minute and older ones may have been forgotten (conservative: a minute older
    /// than a forgotten one counts as forgotten even if it was not).
    forgotten_through: Option<i32>,
}

impl Default for RecentIds {
    fn default() -> Self {
        RecentIds::new(DEFAULT_DEDUP_WINDOW)
    }
}

impl RecentIds {
    pub fn new(capacity: usize) -> Self {
        RecentIds {
            ids: Default::default(),
            minutes: BTreeMap::new(),
            capacity: capacity.max(1),
            file: 0,
            forgotten_through: None,
        }
    }

    /// Ids held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Looks for `hash` (of a row at `time_micros`); remembers it as the current file's when
    /// it is not held.
    pub fn check(&mut self, time_micros: i64, hash: u64) -> Check {
        let minute = minute_of(time_micros);
        let file = self.file;
        match self.ids.entry(hash) {
            Entry::Occupied(held) => {
                return if held.get().file == file { Check::InThisFile } else { Check::InEarlierFile };
            }
            Entry::Vacant(slot) => {
                slot.insert(Held { minute, file });
            }
        }
        *self.minutes.entry(minute).or_default() += 1;
        let found = match self.forgotten_through {
            Some(forgotten) if minute <= forgotten => Check::Unverified,
            _ => Check::New,
        };
        if self.ids.len() > self.capacity {
            self.forget_oldest(minute);
        }
        found
    }

    /// Forgets the oldest minutes but `keep` until at most 7/8 of the capacity is held: one
    /// sweep of the table per capacity/8 new ids, not one per id.
    fn forget_oldest(&mut self, keep: i32) {
        let excess = self.ids.len() - (self.capacity - self.capacity / 8);
        let (mut dropping, mut through) = (0, None);
        for (&minute, &count) in &self.minutes {
            if minute != keep {
                dropping += count;
                through = Some(minute);
                if dropping >= excess {
                    break;
                }
            }
        }
        let Some(through) = through else { return };
        self.ids.retain(|_, held| held.minute > through || held.minute == keep);
        self.minutes.retain(|&minute, _| minute > through || minute == keep);
        self.forgotten_through = Some(self.forgotten_through.map_or(through, |f| f.max(through)));
    }

    /// The file being read is done: its ids become an earlier file's.
    pub fn end_file(&mut self) {
        self.file = self.file.wrapping_add(1);
    }

    /// Forgets everything, as if new (no row is unverified after it).
    pub fn clear(&mut self) {
        *self = RecentIds::new(self.capacity);
    }
}

#[cfg(test)]
mod window_tests {
    use super::IdWindow;
    use proptest::prelude::*;
    use std::collections::{HashSet, VecDeque};

    /// The model: a set of the last `n` ids first seen, and their order to forget the oldest.
    struct SetAndQueue {
        seen: HashSet<u64>,
        order: VecDeque<u64>,
        n: usize,
    }

    impl SetAndQueue {
        fn insert(&mut self, id: u64) -> bool {
            if !self.seen.insert(id) {
                return false;
            }
            self.order.push_back(id);
            if self.order.len() > self.n.max(1)
                && let Some(old) = self.order.pop_front()
            {
                self.seen.remove(&old);
            }
            true
        }
    }

    proptest! {
        /// Any stream of ids (few distinct ones, so they repeat at every distance), any window.
        #[test]
        fn finds_what_a_set_and_a_queue_find(n in 0usize..40, ids in prop::collection::vec(0u64..60, 0..2000)) {
            let mut window = IdWindow::new(n);
            let mut model = SetAndQueue { seen: HashSet::new(), order: VecDeque::new(), n };
            for (i, &id) in ids.iter().enumerate() {
                prop_assert_eq!(window.insert(id), model.insert(id), "id {} at {}", id, i);
                prop_assert!(window.first_seen.len() as u64 <= window.n + window.n / 2 + 1);
            }
        }
    }

    #[test]
    fn a_copy_within_the_window_is_found_and_one_past_it_is_not() {
        let mut window = IdWindow::new(2);
        assert!(window.insert(1) && window.insert(2));
        assert!(!window.insert(1), "two sightings back: held");
        assert!(window.insert(3));
        assert!(window.insert(1), "three sightings back: forgotten");
        assert!(!window.insert(3) && !window.insert(1));
    }
}

#[cfg(test)]
mod tests {
    use super::{Check, RecentIds, hash_id};
    use std::collections::HashSet;

    #[test]
    fn ids_that_differ_anywhere_hash_apart() {
        // Every length around the word size, one byte changed at each position, zero tails.
        let base: Vec<u8> = (0..40u8).map(|i| b'A' + i % 26).collect();
        let mut seen = HashSet::new();
        for len in 0..=base.len() {
            assert!(seen.insert(hash_id(&base[..len])), "length {len}");
            for at in 0..len {
                let mut id = base[..len].to_vec();
                id[at] ^= 0x20;
                assert!(seen.insert(hash_id(&id)), "length {len}, byte {at}");
            }
        }
        for zeros in 1..=9 {
            assert!(seen.insert(hash_id(&vec![0; zeros])), "{zeros} zero bytes");
        }
    }

    const MINUTE: i64 = 60_000_000;

    #[test]
    fn copies_are_found_in_this_file_and_in_earlier_ones() {
        let mut ids = RecentIds::new(100);
        assert_eq!(ids.check(5, 1), Check::New);
        assert_eq!(ids.check(5, 1), Check::InThisFile);
        // The id decides, not the time (as the SQL views' `PARTITION BY s_request_id`).
        assert_eq!(ids.check(5 + 7 * MINUTE, 1), Check::InThisFile);
        ids.end_file();
        assert_eq!(ids.check(5, 1), Check::InEarlierFile);
        assert_eq!(ids.check(-5, 2), Check::New);
        assert_eq!(ids.check(-5, 2), Check::InThisFile);
        ids.end_file();
        assert_eq!(ids.check(i64::MIN, 2), Check::InEarlierFile);
        assert_eq!(ids.len(), 2);
        ids.clear();
        assert_eq!((ids.check(5, 1), ids.len()), (Check::New, 1));
    }

    #[test]
    fn the_oldest_minutes_are_forgotten_past_the_capacity() {
        let mut ids = RecentIds::new(75);
        // Minutes 0..9, ten ids each, in time order: each time the 76th id arrives the oldest
        // minute goes (down to 66 held), so minutes 0, 1 and 2 go, one at a time.
        for minute in 0..10i64 {
            for n in 0..10 {
                let id = (minute * 10 + n) as u64;
                assert_eq!(ids.check(minute * MINUTE, id), Check::New, "minute {minute}, id {id}");
            }
        }
        assert_eq!(ids.len(), 70);
        // Kept minutes still find their copies; forgotten ones cannot, and say so.
        assert_eq!(ids.check(3 * MINUTE, 30), Check::InThisFile);
        assert_eq!(ids.check(2 * MINUTE, 20), Check::Unverified);
        assert_eq!(ids.check(2 * MINUTE, 20), Check::InThisFile, "remembered again once checked");
        assert_eq!(ids.check(10 * MINUTE, 999), Check::New);
        // Out of order, under the capacity again: nothing more is forgotten.
        assert_eq!(ids.check(MINUTE, 10), Check::Unverified);
        assert_eq!(ids.len(), 73);
    }

    #[test]
    fn the_minute_being_checked_is_never_forgotten() {
        let mut ids = RecentIds::new(8);
        for n in 0..20 {
            assert_eq!(ids.check(0, n), Check::New);
        }
        assert_eq!(ids.len(), 20, "one minute over the capacity stays whole");
        // A late row (an older minute) forgets the newer minute, not its own.
        assert_eq!(ids.check(-MINUTE, 100), Check::New);
        assert_eq!(ids.len(), 1);
        assert_eq!(ids.check(0, 3), Check::Unverified);
        assert_eq!(ids.check(-MINUTE, 100), Check::InThisFile);
    }

    /// Under the capacity the filter is exact: it agrees with a map of every id to the file
    /// that first held it, whatever the times and however the rows are split into files.
    #[test]
    fn under_the_capacity_it_is_an_exact_set() {
        use proptest::prelude::*;
        use std::collections::HashMap;
        let rows = proptest::collection::vec((any::<i64>(), 0u64..40, proptest::bool::weighted(0.1)), 0..300);
        proptest!(ProptestConfig::with_cases(200), |(rows in rows)| {
            let mut ids = RecentIds::new(300);
            let (mut first_file, mut file) = (HashMap::new(), 0);
            for (time, id, file_ends) in rows {
                let expected = match first_file.get(&id) {
                    Some(&f) if f == file => Check::InThisFile,
                    Some(_) => Check::InEarlierFile,
                    None => {
                        first_file.insert(id, file);
                        Check::New
                    }
                };
                prop_assert_eq!(ids.check(time, id), expected);
                if file_ends {
                    ids.end_file();
                    file += 1;
                }
            }
            prop_assert_eq!(ids.len(), first_file.len());
        });
    }
}
