//! Batching a backfill (issue 12, in progress; no caller yet): the log objects of a listing, put
//! through the same decisions as a live event ([`crate::plan::plan_load`]: allow-list, log kind,
//! mode, table), grouped per destination table and format into as few load jobs as BigQuery's
//! limits allow — many `sourceUris` per raw CSV job, many objects per events upload — and counted
//! against a per-table budget of load jobs a day.
//!
//! BigQuery's figures relied on (https://cloud.google.com/bigquery/quotas, "Load jobs"): up to
//! 10,000 source URIs per load job; about 1,500 load jobs per table per day, failed ones included
//! (partitioned tables have their own partition-modification limit), refilled over a rolling
//! 24 hours; a spent quota is `quotaExceeded` (403). The budget default leaves the live path room.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::job::LoadFormat;
use crate::listing::{Listed, LogObject};
use crate::log_name::LogKind;
use crate::plan::{Plan, plan_load};

/// What one load job may carry, and how many a table may take today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Objects per load job: source URIs of a raw CSV job (BigQuery's maximum is 10,000), or
    /// objects read into one events upload. Each also costs one reservation before the load.
    pub objects_per_job: usize,
    /// Bytes of log read into one events upload (its NDJSON is larger; one upload is one job).
    pub bytes_per_upload: u64,
    /// Load jobs a backfill may spend on one table in a day: BigQuery allows about 1,500, the
    /// live path needs its share.
    pub jobs_per_table_per_day: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { objects_per_job: 1_000, bytes_per_upload: 1 << 30, jobs_per_table_per_day: 1_000 }
    }
}

/// One load job of a backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub table_id: String,
    pub format: LoadFormat,
    /// One kind per batch: a raw job has one schema, and an events batch reads each object
    /// with its own reader, but the job's labels name one kind.
    pub kind: LogKind,
    /// In name order.
    pub objects: Vec<Listed>,
    pub bytes: u64,
}

/// The whole backfill: its load jobs, and the objects it leaves alone with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillPlan {
    pub batches: Vec<Batch>,
    pub skipped: Vec<(String, String)>,
}

impl BackfillPlan {
    /// Load jobs per destination table.
    pub fn jobs_per_table(&self) -> BTreeMap<&str, usize> {
        let mut jobs = BTreeMap::new();
        for batch in &self.batches {
            *jobs.entry(batch.table_id.as_str()).or_default() += 1;
        }
        jobs
    }

    /// Tables whose jobs exceed the day's budget, with how many jobs they need: the backfill
    /// runs the first `jobs_per_table_per_day` of them today and says when to resume.
    pub fn over_budget(&self, limits: &Limits) -> Vec<(&str, usize)> {
        self.jobs_per_table().into_iter().filter(|(_, n)| *n > limits.jobs_per_table_per_day).collect()
    }
}

/// The backfill of `objects` under `config` (mode, tables, allow-list) and `limits`.
pub fn plan_backfill(config: &Config, objects: Vec<LogObject>, limits: &Limits) -> BackfillPlan {
    let mut plan = BackfillPlan::default();
    // (table, format) → objects, in name order: the grouping is deterministic, so two runs over
    // the same listing plan the same batches.
    let mut groups: BTreeMap<(String, LoadFormat, LogKind), Vec<Listed>> = BTreeMap::new();
    let mut objects = objects;
    objects.sort_by(|a, b| a.listed.object.name.cmp(&b.listed.object.name));
    for object in objects {
        match plan_load(config, object.listed.object.clone()) {
            Ok(Plan::Load(loads)) => {
                for load in loads {
                    groups.entry((load.table_id, load.format, load.kind)).or_default().push(object.listed.clone());
                }
            }
            Ok(Plan::Ignore(outcome)) => {
                plan.skipped.push((object.listed.object.name, outcome.reason.unwrap_or_default()))
            }
            Err(error) => plan.skipped.push((object.listed.object.name, error.message().to_string())),
        }
    }
    for ((table_id, format, kind), listed) in groups {
        let mut batch = Batch { table_id: table_id.clone(), format, kind, objects: Vec::new(), bytes: 0 };
        for item in listed {
            let full = batch.objects.len() >= limits.objects_per_job
                || (format == LoadFormat::Events
                    && !batch.objects.is_empty()
                    && batch.bytes + item.size > limits.bytes_per_upload);
            if full {
                let next = Batch { table_id: table_id.clone(), format, kind, objects: Vec::new(), bytes: 0 };
                plan.batches.push(std::mem::replace(&mut batch, next));
            }
            batch.bytes += item.size;
            batch.objects.push(item);
        }
        if !batch.objects.is_empty() {
            plan.batches.push(batch);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::{HourWindow, log_objects};
    use crate::object::ObjectRef;

    fn config(mode: &str) -> Config {
        Config::from_env(|name| match name {
            "GCR_USAGE_BUCKETS" => Some("demo-logs".into()),
            "GCR_USAGE_PROJECT" => Some("demo-project".into()),
            "GCR_USAGE_MODE" => Some(mode.into()),
            _ => None,
        })
        .unwrap()
    }

    fn listing(names: &[String], size: u64) -> Vec<LogObject> {
        let items = names
            .iter()
            .map(|name| Listed {
                object: ObjectRef { bucket: "demo-logs".into(), name: name.clone(), generation: Some(1) },
                size,
            })
            .collect();
        log_objects(items, &HourWindow::default())
    }

    fn usage_logs(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("a_usage_2024_03_{:02}_{:02}_00_00_{i:x}_v0", 1 + i / 24 % 28, i % 24)).collect()
    }

    #[test]
    fn raw_objects_go_up_to_the_limit_of_uris_to_a_job_per_table() {
        let mut names = usage_logs(25_000);
        names.push("a_storage_2024_03_11_07_00_00_0b_v0".into());
        // BigQuery's own maximum per job; the default is lower (reservations take time).
        let limits = Limits { objects_per_job: 10_000, ..Limits::default() };
        let plan = plan_backfill(&config("raw"), listing(&names, 100), &limits);
        let sizes: Vec<(&str, usize)> = plan.batches.iter().map(|b| (b.table_id.as_str(), b.objects.len())).collect();
        assert_eq!(sizes, [("storage", 1), ("usage", 10_000), ("usage", 10_000), ("usage", 5_000)]);
        assert_eq!(plan.jobs_per_table(), BTreeMap::from([("storage", 1), ("usage", 3)]));
        // In name order, each object exactly once.
        let usage: Vec<&str> =
            plan.batches[1..].iter().flat_map(|b| &b.objects).map(|l| l.object.name.as_str()).collect();
        let mut sorted = usage.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(usage, sorted);
        assert_eq!(usage.len(), 25_000);
    }

    #[test]
    fn both_mode_plans_the_raw_and_the_events_jobs_and_uploads_are_cut_by_bytes() {
        let limits = Limits { bytes_per_upload: 250, ..Limits::default() };
        let plan = plan_backfill(&config("both"), listing(&usage_logs(5), 100), &limits);
        let shape: Vec<(&str, LoadFormat, usize)> =
            plan.batches.iter().map(|b| (b.table_id.as_str(), b.format, b.objects.len())).collect();
        assert_eq!(
            shape,
            [
                ("registry_events", LoadFormat::Events, 2),
                ("registry_events", LoadFormat::Events, 2),
                ("registry_events", LoadFormat::Events, 1),
                ("usage", LoadFormat::RawCsv, 5),
            ]
        );
        // One object bigger than the limit still travels, alone.
        let plan = plan_backfill(&config("classified"), listing(&usage_logs(2), 1_000), &limits);
        assert_eq!(plan.batches.iter().map(|b| b.objects.len()).collect::<Vec<_>>(), [1, 1]);
    }

    #[test]
    fn audit_objects_are_events_whatever_the_mode_and_foreign_buckets_are_skipped_with_the_reason() {
        let mut objects =
            listing(&["cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json".into()], 10);
        let mut foreign = listing(&usage_logs(1), 10);
        foreign[0].listed.object.bucket = "other".into();
        objects.append(&mut foreign);
        let plan = plan_backfill(&config("raw"), objects, &Limits::default());
        assert_eq!(plan.batches.len(), 1);
        assert_eq!(
            (plan.batches[0].table_id.as_str(), plan.batches[0].format),
            ("registry_events", LoadFormat::Events)
        );
        assert_eq!(plan.skipped.len(), 1);
        assert!(plan.skipped[0].1.contains("\"other\" is not in GCR_USAGE_BUCKETS"), "{:?}", plan.skipped);
    }

    #[test]
    fn a_table_over_the_days_budget_is_reported() {
        let limits = Limits { objects_per_job: 10, jobs_per_table_per_day: 2, ..Limits::default() };
        let plan = plan_backfill(&config("raw"), listing(&usage_logs(35), 1), &limits);
        assert_eq!(plan.over_budget(&limits), [("usage", 4)]);
        assert!(plan_backfill(&config("raw"), listing(&usage_logs(20), 1), &limits).over_budget(&limits).is_empty());
    }

    #[test]
    fn the_same_listing_plans_the_same_batches_in_any_order() {
        let names = usage_logs(300);
        let mut reversed = listing(&names, 7);
        reversed.reverse();
        let limits = Limits { objects_per_job: 64, ..Limits::default() };
        assert_eq!(
            plan_backfill(&config("raw"), listing(&names, 7), &limits),
            plan_backfill(&config("raw"), reversed, &limits)
        );
    }
}
