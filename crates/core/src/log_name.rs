//! Log object names: Cloud Storage access logs (`PREFIX_usage_YYYY_MM_DD_HH_00_00_ID_vN` and
//! `PREFIX_storage_…`) and the objects a Cloud Logging sink writes for audit logs
//! (`[FOLDER/]cloudaudit.googleapis.com/data_access/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json`, late
//! entries in `…_An:UNIXTIME.json`; https://cloud.google.com/logging/docs/export/storage).
//!
//! The prefix is free text (it defaults to the source bucket's name, dots included, and may
//! itself contain `_usage_`), so the name is parsed from the right: the last nine
//! `_`-separated fields have a fixed shape, everything before them is the prefix. A substring
//! test such as the seed's `'usage' in name` misfiles objects like `usage-reports/data.csv`.

use serde::Serialize;

/// Which of the two log families an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// Hourly request logs (17 columns).
    Usage,
    /// Daily storage-size logs (2 columns).
    Storage,
    /// Cloud Audit Logs entries written by a log sink (JSON lines), read for Artifact Registry.
    Audit,
}

impl LogKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Usage => "usage",
            LogKind::Storage => "storage",
            LogKind::Audit => "audit",
        }
    }
}

/// A parsed log object name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObjectName {
    pub prefix: String,
    pub kind: LogKind,
    /// The hour the log covers (records can be older, never newer).
    pub hour: time::PrimitiveDateTime,
    /// Shard id: lower-case hex, several shards can exist for one hour.
    pub shard: String,
    /// The format version after `_v` (only `0` has been seen).
    pub version: u32,
}

/// Why an object name is not a log object name: said in the `ignored` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotALogName(pub String);

impl LogObjectName {
    pub fn parse(name: &str) -> Result<Self, NotALogName> {
        if let Some(at) = name.find(AUDIT_LOG_DIR) {
            return Self::parse_audit(&name[..at], &name[at + AUDIT_LOG_DIR.len()..]);
        }
        // The name may sit in a "folder" of the log bucket; only the last segment is the log name.
        let mut fields = name.rsplitn(10, '_');
        let mut next = || {
            fields.next().ok_or_else(|| {
                NotALogName(
                    "not a usage or storage log object name (PREFIX_usage|storage_YYYY_MM_DD_HH_00_00_ID_vN)".into(),
                )
            })
        };
        let version = next()?;
        let shard = next()?;
        let (sec, min, hour) = (next()?, next()?, next()?);
        let (day, month, year) = (next()?, next()?, next()?);
        let kind = next()?;
        let prefix = next()?;

        let not_log = |why: String| Err(NotALogName(why));
        let kind = match kind {
            "usage" => LogKind::Usage,
            "storage" => LogKind::Storage,
            other => {
                return not_log(format!(
                    "not a usage or storage log object (found {:?} where the log kind belongs)",
                    crate::object::truncate(other, 40)
                ));
            }
        };
        let Some(version) = version.strip_prefix('v').and_then(parse_digits::<u32>) else {
            return not_log(format!("log version suffix {version:?} is not v<number>"));
        };
        if shard.is_empty() || !shard.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return not_log(format!("shard id {shard:?} is not lower-case hex"));
        }
        if min != "00" || sec != "00" {
            return not_log("log hour must end in _00_00".into());
        }
        let date =
            fixed_digits(year, 4).zip(fixed_digits(month, 2)).zip(fixed_digits(day, 2)).and_then(|((y, m), d)| {
                let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
                time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()
            });
        let hour_of_day = fixed_digits(hour, 2).and_then(|h| time::Time::from_hms(u8::try_from(h).ok()?, 0, 0).ok());
        let (Some(date), Some(time_of_day)) = (date, hour_of_day) else {
            return not_log(format!("{year}-{month}-{day} {hour}:00 is not a valid log hour"));
        };
        Ok(LogObjectName {
            prefix: prefix.to_string(),
            kind,
            hour: time::PrimitiveDateTime::new(date, time_of_day),
            shard: shard.to_string(),
            version,
        })
    }
}

/// The folder a sink writes audit logs under (the log id `cloudaudit.googleapis.com/…`).
const AUDIT_LOG_DIR: &str = "cloudaudit.googleapis.com/";

impl LogObjectName {
    /// `LOG/YYYY/MM/DD/HH:00:00_HH:59:59_SHARD.json` after `cloudaudit.googleapis.com/`, where
    /// LOG is `data_access` or `activity` and SHARD `S<n>` or `A<n>:<unix time>` (late entries).
    fn parse_audit(folder: &str, rest: &str) -> Result<Self, NotALogName> {
        let not_log = |why: String| Err(NotALogName(why));
        let parts: Vec<&str> = rest.split('/').collect();
        let [log, year, month, day, file] = parts[..] else {
            return not_log(
                "not an audit-log sink object (cloudaudit.googleapis.com/data_access/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json)"
                    .into(),
            );
        };
        if log != "data_access" && log != "activity" {
            return not_log(format!("audit log {:?} is not data_access or activity", crate::object::truncate(log, 40)));
        }
        let Some(stem) = file.strip_suffix(".json") else {
            return not_log(format!(
                "audit-log sink object {:?} does not end in .json",
                crate::object::truncate(file, 60)
            ));
        };
        let fields: Vec<&str> = stem.splitn(3, '_').collect();
        let [from, to, shard] = fields[..] else {
            return not_log(format!("audit-log sink object {stem:?} is not HH:00:00_HH:59:59_SHARD"));
        };
        let hour = from.strip_suffix(":00:00").filter(|h| to == format!("{h}:59:59"));
        let shard_ok = match shard.split_once(':') {
            None => shard.strip_prefix('S').is_some_and(|n| parse_digits::<u32>(n).is_some()),
            Some((late, unix)) => {
                late.strip_prefix('A').is_some_and(|n| parse_digits::<u32>(n).is_some())
                    && parse_digits::<u64>(unix).is_some()
            }
        };
        if !shard_ok {
            return not_log(format!("audit-log shard {shard:?} is not S<n> or A<n>:<unix time>"));
        }
        let date =
            fixed_digits(year, 4).zip(fixed_digits(month, 2)).zip(fixed_digits(day, 2)).and_then(|((y, m), d)| {
                let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
                time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()
            });
        let time_of_day =
            hour.and_then(|h| fixed_digits(h, 2)).and_then(|h| time::Time::from_hms(u8::try_from(h).ok()?, 0, 0).ok());
        let (Some(date), Some(time_of_day)) = (date, time_of_day) else {
            return not_log(format!("{year}/{month}/{day} {stem} is not a valid audit-log hour"));
        };
        Ok(LogObjectName {
            prefix: format!("{folder}{AUDIT_LOG_DIR}{log}"),
            kind: LogKind::Audit,
            hour: time::PrimitiveDateTime::new(date, time_of_day),
            shard: shard.to_string(),
            version: 0,
        })
    }
}

fn fixed_digits(s: &str, len: usize) -> Option<u32> {
    (s.len() == len).then_some(())?;
    parse_digits(s)
}

fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_names() {
        let n = LogObjectName::parse("accessLog_usage_2019_05_19_18_00_00_00cbe51e4b703105e9_v0").unwrap();
        assert_eq!(n.prefix, "accessLog");
        assert_eq!(n.kind, LogKind::Usage);
        assert_eq!(n.shard, "00cbe51e4b703105e9");
        assert_eq!(n.version, 0);
        assert_eq!(n.hour.to_string(), "2019-05-19 18:00:00.0");

        let n = LogObjectName::parse("example-bucket_storage_2022_06_18_14_00_00_1702e6_v0").unwrap();
        assert_eq!((n.prefix.as_str(), n.kind), ("example-bucket", LogKind::Storage));
    }

    #[test]
    fn prefix_with_dots_underscores_and_the_word_usage() {
        let n =
            LogObjectName::parse("us.artifacts.k8s_usage_prod.appspot.com_usage_2024_02_29_23_00_00_ab_v0").unwrap();
        assert_eq!(n.prefix, "us.artifacts.k8s_usage_prod.appspot.com");
        assert_eq!(n.kind, LogKind::Usage);
        let n = LogObjectName::parse("my_storage_logs_usage_2024_01_01_00_00_00_0_v12").unwrap();
        assert_eq!((n.prefix.as_str(), n.kind, n.version), ("my_storage_logs", LogKind::Usage, 12));
        let n = LogObjectName::parse("logs/2024/accessLog_usage_2024_01_01_00_00_00_ff_v0").unwrap();
        assert_eq!(n.prefix, "logs/2024/accessLog");
    }

    #[test]
    fn rejects_what_the_seed_accepted() {
        for name in [
            "usage-reports/summary.csv",
            "accessLog_usage_2019_05_19_18_00_00_00cbe51e4b703105e9_v0.tmp",
            "accessLog_usage_2019_05_19_18_00_00_00CBE5_v0",
            "accessLog_usage_2019_13_19_18_00_00_00cbe5_v0",
            "accessLog_usage_2019_02_30_18_00_00_00cbe5_v0",
            "accessLog_usage_2019_05_19_24_00_00_00cbe5_v0",
            "accessLog_usage_2019_05_19_18_30_00_00cbe5_v0",
            "accessLog_usage_19_05_19_18_00_00_00cbe5_v0",
            "accessLog_usages_2019_05_19_18_00_00_00cbe5_v0",
            "accessLog_usage_2019_05_19_18_00_00__v0",
            "accessLog_usage_2019_05_19_18_00_00_00cbe5_x0",
            "usage_2019_05_19_18_00_00_00cbe5_v0",
            "",
        ] {
            assert!(LogObjectName::parse(name).is_err(), "{name}");
        }
    }

    #[test]
    fn audit_log_sink_objects() {
        let n =
            LogObjectName::parse("cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json").unwrap();
        assert_eq!(
            (n.kind, n.prefix.as_str(), n.shard.as_str()),
            (LogKind::Audit, "cloudaudit.googleapis.com/data_access", "S0")
        );
        assert_eq!(n.hour.to_string(), "2024-07-04 23:00:00.0");
        let late = LogObjectName::parse(
            "sinks/ar/cloudaudit.googleapis.com/activity/2024/07/04/09:00:00_09:59:59_A1:1720140000.json",
        )
        .unwrap();
        assert_eq!(
            (late.prefix.as_str(), late.shard.as_str()),
            ("sinks/ar/cloudaudit.googleapis.com/activity", "A1:1720140000")
        );
        for bad in [
            "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59.json",
            "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S.json",
            "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_22:59:59_S0.json",
            "cloudaudit.googleapis.com/data_access/2024/02/30/23:00:00_23:59:59_S0.json",
            "cloudaudit.googleapis.com/data_access/2024/07/04/24:00:00_24:59:59_S0.json",
            "cloudaudit.googleapis.com/data_access/2024/07/23:00:00_23:59:59_S0.json",
            "cloudaudit.googleapis.com/system_event/2024/07/04/23:00:00_23:59:59_S0.json",
            "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_S0.json.gz",
            "cloudaudit.googleapis.com/data_access/2024/07/04/23:00:00_23:59:59_A1.json",
        ] {
            assert!(LogObjectName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_prefix_is_a_log() {
        assert!(LogObjectName::parse("_usage_2019_05_19_18_00_00_00cbe5_v0").is_ok());
    }
}
