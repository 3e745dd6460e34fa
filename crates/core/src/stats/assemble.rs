//! From counters to a [`Report`]: pulls are only known per (client, image) group, so the
//! per-image, per-client and per-day pull counts are joined in here, when a report is asked
//! for, rather than kept up to date on every row. Every list gets a total order (ties broken by
//! name), so equal counts never print in hash-map order.

use std::cmp::Reverse;

use super::accumulator::UsageStats;
use super::pulls::{GroupCounts, count_groups, pulls_per_bucket};
use super::report::{
    BucketStats, ClientStats, DailyStats, FailureStats, FileSummary, ImageStats, PullSeries, PushStats, Report,
    Summary, action_name, family_name,
};
use super::tally::{DAY_MICROS, format_day};
use crate::registry_event::EventTime;

impl UsageStats {
    /// Pulls per image per time bucket of `bucket_micros` (a pull counts in the bucket of its
    /// first download), for charts: one series per image in no particular order.
    pub fn pull_timeline(&self, bucket_micros: i64) -> Vec<PullSeries> {
        // Clamped: a width below one microsecond would divide by zero or run time backwards.
        let width = bucket_micros.max(1);
        let mut series: Vec<PullSeries> = self
            .ids
            .images
            .iter()
            .map(|i| PullSeries {
                registry_host: i.host.clone(),
                repository: i.repository.clone(),
                buckets: Vec::new(),
            })
            .collect();
        // Ordered by image, then time: each series comes out ascending.
        for ((image, bucket), pulls) in pulls_per_bucket(&self.groups, width) {
            series[image as usize].buckets.push((bucket * width, pulls));
        }
        series
    }

    /// The statistics so far. `top` limits the client lists (`None`: every client).
    pub fn report(&self, top: Option<usize>) -> Report {
        let (per_image, per_client) = count_groups(&self.groups, self.ids.images.len(), self.ids.clients.len());
        let clients = self.pulling_clients(&per_client);
        let limit = top.unwrap_or(usize::MAX);
        Report {
            summary: self.summary(&per_image, clients.len()),
            files: self.files.clone(),
            images: self.image_stats(&per_image),
            daily: self.daily_stats(),
            clients_by_pulls: top_clients(clients.clone(), limit, |c| (c.pulls, c.bytes_served)),
            clients_by_bytes: top_clients(clients, limit, |c| (c.bytes_served, c.pulls)),
            pushes: self.push_stats(),
            failures: self.failure_stats(),
            buckets: self.bucket_stats(),
        }
    }

    fn summary(&self, per_image: &[GroupCounts], pulling_clients: usize) -> Summary {
        // Skipped files are listed but have nothing to add.
        let usage_files = self.files.iter().filter(|f| f.note.is_none());
        let sum = |f: fn(&FileSummary) -> u64| usage_files.clone().map(f).sum::<u64>();
        let images = &self.ids.images;
        Summary {
            files_read: usage_files.clone().count() as u64,
            files_skipped: self.files.iter().filter(|f| f.note.is_some()).count() as u64,
            records: sum(|f| f.records),
            rows: sum(|f| f.rows),
            events: self.events,
            malformed: sum(|f| f.malformed),
            duplicates: sum(|f| f.duplicates),
            duplicates_across_files: sum(|f| f.duplicates_across_files),
            unverified_for_duplicates: self.unverified,
            first_event: self.span.first.map(EventTime),
            last_event: self.span.last.map(EventTime),
            pull_gap_micros: self.options.pull_gap_micros,
            images: images.len() as u64,
            pulls: per_image.iter().map(|c| c.pulls).sum(),
            blob_downloads: images.iter().map(|i| i.transfer.downloads).sum(),
            bytes_served: images.iter().map(|i| i.transfer.bytes).sum(),
            pulling_clients: pulling_clients as u64,
            agent_pulls: self.agent_pulls,
            unattributed_blob_downloads: self.unattributed.downloads,
            unattributed_bytes: self.unattributed.bytes,
            pushes: self.pushes.values().map(|p| p.pushes).sum(),
            failures: self.failures.values().sum(),
        }
    }

    /// Most pulls first; ties by downloads, then by name.
    fn image_stats(&self, per_image: &[GroupCounts]) -> Vec<ImageStats> {
        let mut images: Vec<ImageStats> = (self.ids.images.iter().zip(per_image))
            .map(|(a, counts)| ImageStats {
                registry_host: a.host.clone(),
                repository: a.repository.clone(),
                pulls: counts.pulls,
                blob_downloads: a.transfer.downloads,
                bytes_served: a.transfer.bytes,
                clients: counts.groups,
                first_seen: a.span.first.map(EventTime),
                last_seen: a.span.last.map(EventTime),
            })
            .collect();
        fn rank(i: &ImageStats) -> (Reverse<u64>, Reverse<u64>, &str, &str) {
            (Reverse(i.pulls), Reverse(i.blob_downloads), &i.registry_host, &i.repository)
        }
        images.sort_by(|a, b| rank(a).cmp(&rank(b)));
        images
    }

    /// By day, then most pulls, then by name. Every (day, image) with a download is listed: a
    /// pull across midnight leaves its second day with downloads but no pull.
    fn daily_stats(&self) -> Vec<DailyStats> {
        let pulls = pulls_per_bucket(&self.groups, DAY_MICROS);
        // A pull's first download is itself a download, so the days of `pulls` are among
        // `days`' keys and iterating `days` misses no pull.
        debug_assert!(pulls.keys().all(|&(image, day)| self.days.contains_key(&(day, image))));
        let mut daily: Vec<DailyStats> = self
            .days
            .iter()
            .map(|(&(day, image), d)| {
                let a = &self.ids.images[image as usize];
                DailyStats {
                    day: format_day(day),
                    registry_host: a.host.clone(),
                    repository: a.repository.clone(),
                    pulls: pulls.get(&(image, day)).copied().unwrap_or(0),
                    blob_downloads: d.downloads,
                    bytes_served: d.bytes,
                }
            })
            .collect();
        fn rank(d: &DailyStats) -> (&str, Reverse<u64>, &str, &str) {
            (&d.day, Reverse(d.pulls), &d.registry_host, &d.repository)
        }
        daily.sort_by(|a, b| rank(a).cmp(&rank(b)));
        daily
    }

    /// Clients with at least one blob download; a client seen only pushing has an id but no
    /// place in the pull lists.
    fn pulling_clients(&self, per_client: &[GroupCounts]) -> Vec<ClientStats> {
        (self.ids.clients.iter().zip(per_client))
            .filter(|(c, _)| c.transfer.downloads > 0)
            .map(|(c, counts)| ClientStats {
                client_ip: c.ip.clone(),
                pulls: counts.pulls,
                blob_downloads: c.transfer.downloads,
                bytes_served: c.transfer.bytes,
                images: counts.groups,
                client_families: c.families.iter().map(|f| family_name(*f)).collect::<Vec<_>>().join(" "),
            })
            .collect()
    }

    /// Most pushes first, then by bucket and repository.
    fn push_stats(&self) -> Vec<PushStats> {
        let mut pushes: Vec<PushStats> = self
            .pushes
            .iter()
            .map(|((bucket, repository), p)| PushStats {
                bucket: bucket.clone(),
                registry_host: p.registry_host.as_deref().map(str::to_string),
                repository: repository.clone(),
                pushes: p.pushes,
                failed: p.failed,
                bytes_received: p.bytes_received,
                clients: p.clients.len() as u64,
            })
            .collect();
        fn rank(p: &PushStats) -> (Reverse<u64>, &str, Option<&str>) {
            (Reverse(p.pushes), &p.bucket, p.repository.as_deref())
        }
        pushes.sort_by(|a, b| rank(a).cmp(&rank(b)));
        pushes
    }

    /// Most frequent first, then by status and action.
    fn failure_stats(&self) -> Vec<FailureStats> {
        let mut failures: Vec<FailureStats> = self
            .failures
            .iter()
            .map(|(&(status, action), &count)| FailureStats { status, action: action_name(action), count })
            .collect();
        failures.sort_by_key(|f| (Reverse(f.count), f.status, f.action));
        failures
    }

    /// By bucket name.
    fn bucket_stats(&self) -> Vec<BucketStats> {
        let mut buckets: Vec<BucketStats> = self
            .buckets
            .iter()
            .map(|(name, b)| BucketStats {
                bucket: name.clone(),
                registry_host: b.registry_host.as_deref().map(str::to_string),
                events: b.events,
                content_reads: b.content_reads,
                bytes_served: b.bytes_served,
                writes: b.writes,
                bytes_received: b.bytes_received,
                deletes: b.deletes,
                failures: b.failures,
            })
            .collect();
        buckets.sort_by(|a, b| a.bucket.cmp(&b.bucket));
        buckets
    }
}

/// The first `limit` clients by `key`, largest first, ties by IP: both top lists rank the same
/// clients, each by its own measure with the other as tie-break.
fn top_clients(mut clients: Vec<ClientStats>, limit: usize, key: fn(&ClientStats) -> (u64, u64)) -> Vec<ClientStats> {
    clients.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.client_ip.cmp(&b.client_ip)));
    clients.truncate(limit);
    clients
}
