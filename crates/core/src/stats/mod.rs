//! Usage statistics: a streaming accumulator fed [`RegistryEvent`]s that answers "who pulled which
//! image, how often, how many bytes" — the numbers `gcr-usage report` prints and the SQL views
//! compute in BigQuery. Pure: no I/O, no clock; [`UsageStats::read_log`] takes any `io::Read`.
//!
//! [`RegistryEvent`]: super::RegistryEvent
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
//!    (an empty id never makes a row a duplicate; see "Memory" for the window this holds in).
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
//! # Memory
//!
//! Rows arrive unsorted, so rule 3 is applied incrementally (see `pulls.rs`) at 32 bytes per
//! *pull*, not per row, plus one entry per image, client, (client, image) group,
//! (day, image), bucket, push target and (status, action) pair. Pulls of one group are more
//! than 5 minutes apart, so a group holds at most 288 pulls per day. The duplicate filter
//! (rule 1) is the one structure that would grow with rows, so it is bounded: a 64-bit hash
//! per request id with the row's minute and file (17 bytes a table slot), at most
//! [`StatsOptions::dedup_window`] ids; past that the ids of the oldest minutes of row time
//! are forgotten (`usage::request_ids::RecentIds`, which says why by time). Within the window
//! the filter is exact, as if every id were kept; a row whose minute may have lost ids counts
//! as [`Summary::unverified_for_duplicates`], so a report that could have missed a copy says
//! so. The filter drops copies within a file as well (a reader that does not deduplicate, as
//! the CLI's, leaves them to it: one lookup a row); with
//! [`StatsOptions::dedup_across_files`] off it forgets each file's ids when the file ends, and
//! a record written twice into *different* objects then counts twice in downloads and bytes
//! (the pulls do not change: a duplicate has the same time as its original).
//!
//! # Layout
//!
//! Events flow `accumulator` → (`pulls`, `tally`) → `assemble` → `report`:
//! - `accumulator.rs`: [`UsageStats`] and [`StatsOptions`]; takes each event once
//!   (deduplication, per-file counts) and routes it to the tallies.
//! - `pulls.rs`: rule 3 — blob downloads of one (client, image) group merged into pulls, in
//!   any arrival order — and what the groups say per image, per client and per time bucket.
//! - `tally.rs`: the per-image, per-client, per-day, per-push-target and per-bucket counters
//!   and the dense ids that key them.
//! - `assemble.rs`: [`UsageStats::report`] and [`UsageStats::pull_timeline`]: counters → the
//!   ordered lists of a [`Report`].
//! - `report.rs`: the public output types and how values are spelled in them.

mod accumulator;
mod assemble;
mod pulls;
mod report;
mod tally;

pub use crate::usage::request_ids::DEFAULT_DEDUP_WINDOW;
pub use accumulator::{StatsOptions, UsageStats};
pub use pulls::PULL_GAP_MICROS;
pub use report::{
    BucketStats, ClientStats, DailyStats, FailureStats, FileSummary, ImageStats, PullSeries, PushStats, Report,
    Summary, action_name,
};

#[cfg(test)]
mod tests;
