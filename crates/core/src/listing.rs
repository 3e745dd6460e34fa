//! Listing a log bucket (issue 12's backfill, in progress; no caller yet): the `objects.list`
//! request page by page, its answer, and which listed objects are log objects of the hours asked
//! for (`--since` / `--until`, read from the hour in the object's name, both log families).

use serde::Deserialize;

use crate::job::build;
use crate::log_name::LogObjectName;
use crate::object::ObjectRef;
use crate::url::{Endpoint, encode};

/// The most `objects.list` returns in one page (Cloud Storage's own cap).
pub const PAGE_SIZE: u32 = 1_000;

/// `GET …/storage/v1/b/{bucket}/o?prefix=P&maxResults=1000&pageToken=T&fields=…`: one page of
/// the listing, in lexicographic name order, with only what a backfill needs per object.
pub fn list_request(
    storage: &Endpoint,
    bucket: &str,
    prefix: &str,
    page_token: Option<&str>,
    token: Option<&str>,
) -> http::Request<Vec<u8>> {
    let mut path = format!(
        "/storage/v1/b/{}/o?maxResults={PAGE_SIZE}&fields={}",
        encode(bucket),
        encode("items(name,generation,size),nextPageToken")
    );
    if !prefix.is_empty() {
        path.push_str(&format!("&prefix={}", encode(prefix)));
    }
    if let Some(page) = page_token {
        path.push_str(&format!("&pageToken={}", encode(page)));
    }
    build(http::Method::GET, &storage.url(&path), token, None)
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub object: ObjectRef,
    pub size: u64,
}

/// One page of the listing and where the next starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Listed>,
    pub next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageBody {
    #[serde(default)]
    items: Vec<ItemBody>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct ItemBody {
    name: String,
    // int64 as JSON strings, as everywhere in the JSON API.
    generation: String,
    #[serde(default)]
    size: Option<String>,
}

/// The page in an `objects.list` answer for `bucket`.
pub fn parse_page(bucket: &str, body: &[u8]) -> Result<Page, String> {
    let page: PageBody = serde_json::from_slice(body)
        .map_err(|e| format!("objects.list answer is not a listing ({e}); {}", crate::bigquery::quote_body(body)))?;
    let items = page
        .items
        .into_iter()
        .map(|item| {
            let generation =
                item.generation.parse::<u64>().ok().filter(|g| *g <= crate::object::MAX_GENERATION).ok_or_else(
                    || format!("objects.list: {:?} has generation {:?}, not an int64", item.name, item.generation),
                )?;
            let size = match item.size.as_deref() {
                None => 0,
                Some(s) => s.parse::<u64>().map_err(|_| format!("objects.list: {:?} has size {s:?}", item.name))?,
            };
            Ok(Listed {
                object: ObjectRef { bucket: bucket.to_string(), name: item.name, generation: Some(generation) },
                size,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Page { items, next_page_token: page.next_page_token.filter(|t| !t.is_empty()) })
}

/// The hours asked for, both ends included, in UTC: `--since` / `--until` as `YYYY-MM-DD` (a
/// whole day: from 00:00, until 23:00), `YYYY-MM-DDTHH`, or `NNh` / `NNd` before now (the hour
/// that instant falls in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourWindow {
    pub since: Option<time::PrimitiveDateTime>,
    pub until: Option<time::PrimitiveDateTime>,
}

impl HourWindow {
    /// The window, or why not (the flag named); `now_unix` anchors the relative forms.
    pub fn parse(since: Option<&str>, until: Option<&str>, now_unix: u64) -> Result<HourWindow, String> {
        let hour = |flag, text: &str, hour_of_a_day| match hours_ago(text, now_unix) {
            Some(hour) => Ok(hour),
            None => parse_hour(flag, text, hour_of_a_day),
        };
        let since = since.map(|s| hour("--since", s, 0)).transpose()?;
        let until = until.map(|s| hour("--until", s, 23)).transpose()?;
        if let (Some(from), Some(to)) = (since, until)
            && from > to
        {
            return Err(format!("--since {} is after --until {}: no hour is in between", show(from), show(to)));
        }
        Ok(HourWindow { since, until })
    }

    /// The window in words, for messages: `from 2024-03-01T00 until 2024-03-02T23`, or
    /// `in any hour`.
    pub fn describe(&self) -> String {
        match (self.since, self.until) {
            (None, None) => "in any hour".into(),
            (Some(s), None) => format!("from {}", show(s)),
            (None, Some(u)) => format!("until {}", show(u)),
            (Some(s), Some(u)) => format!("from {} until {}", show(s), show(u)),
        }
    }

    pub fn contains(&self, hour: time::PrimitiveDateTime) -> bool {
        self.since.is_none_or(|s| hour >= s) && self.until.is_none_or(|u| hour <= u)
    }
}

/// `48h` / `7d`: the hour that long before `now_unix` falls in; `None` for anything else.
fn hours_ago(text: &str, now_unix: u64) -> Option<time::PrimitiveDateTime> {
    let (count, unit) = text.split_at(text.len().checked_sub(1)?);
    let hours = match unit {
        "h" => count.parse::<u64>().ok()?,
        "d" => count.parse::<u64>().ok()?.checked_mul(24)?,
        _ => return None,
    };
    let then = now_unix.checked_sub(hours.checked_mul(3600)?)?;
    let then = time::OffsetDateTime::from_unix_timestamp(i64::try_from(then).ok()?).ok()?;
    Some(time::PrimitiveDateTime::new(then.date(), time::Time::from_hms(then.hour(), 0, 0).ok()?))
}

fn parse_hour(flag: &str, text: &str, hour_of_a_day: u8) -> Result<time::PrimitiveDateTime, String> {
    let bad = || format!("{flag} {text:?} is not YYYY-MM-DD or YYYY-MM-DDTHH (UTC)");
    let (day, hour) = match text.split_once('T') {
        Some((day, hour)) if hour.len() == 2 && hour.bytes().all(|b| b.is_ascii_digit()) => {
            (day, hour.parse::<u8>().map_err(|_| bad())?)
        }
        Some(_) => return Err(bad()),
        None => (text, hour_of_a_day),
    };
    // By hand: the core's `time` has no parsing feature (the component stays small).
    let digits = |s: &str, n: usize| {
        (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u16>().ok()).flatten()
    };
    let parts: Vec<&str> = day.split('-').collect();
    let [y, m, d] = parts[..] else { return Err(bad()) };
    let (Some(y), Some(m), Some(d)) = (digits(y, 4), digits(m, 2), digits(d, 2)) else { return Err(bad()) };
    let month = u8::try_from(m).ok().and_then(|m| time::Month::try_from(m).ok()).ok_or_else(bad)?;
    let date =
        time::Date::from_calendar_date(i32::from(y), month, u8::try_from(d).map_err(|_| bad())?).map_err(|_| bad())?;
    let time = time::Time::from_hms(hour, 0, 0).map_err(|_| bad())?;
    Ok(time::PrimitiveDateTime::new(date, time))
}

fn show(hour: time::PrimitiveDateTime) -> String {
    format!("{}T{:02}", hour.date(), hour.hour())
}

/// A listed object that is a log object of an hour in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogObject {
    pub listed: Listed,
    pub name: LogObjectName,
}

/// The log objects of the window among `items` (anything else in a log bucket is skipped).
pub fn log_objects(items: Vec<Listed>, window: &HourWindow) -> Vec<LogObject> {
    items
        .into_iter()
        .filter_map(|listed| {
            let name = LogObjectName::parse(&listed.object.name).ok()?;
            window.contains(name.hour).then_some(LogObject { listed, name })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01T18:30:00Z
    const NOW: u64 = 1_796_149_800;

    #[test]
    fn relative_hours_count_back_from_now() {
        let show = |text: &str| HourWindow::parse(Some(text), None, NOW).map(|w| super::show(w.since.unwrap()));
        assert_eq!(show("48h").as_deref(), Ok("2026-11-29T18"));
        assert_eq!(show("1d").as_deref(), Ok("2026-11-30T18"));
        assert_eq!(show("0h").as_deref(), Ok("2026-12-01T18"));
        assert_eq!(show("2026-11-01T05").as_deref(), Ok("2026-11-01T05"));
        for not_relative in ["h", "5x", "-3h"] {
            assert!(show(not_relative).unwrap_err().contains("is not YYYY-MM-DD"), "{not_relative}");
        }
    }

    fn storage() -> Endpoint {
        Endpoint::parse("https://storage.googleapis.com").unwrap()
    }

    #[test]
    fn a_page_is_asked_for_with_prefix_token_and_only_the_fields_needed() {
        let first = list_request(&storage(), "my-logs", "", None, Some("t"));
        assert_eq!(
            first.uri().to_string(),
            "https://storage.googleapis.com/storage/v1/b/my-logs/o?maxResults=1000&fields=items%28name%2Cgeneration%2Csize%29%2CnextPageToken"
        );
        assert_eq!(first.headers()["authorization"], "Bearer t");
        let next = list_request(&storage(), "my-logs", "cloudaudit.googleapis.com/", Some("CgV+/="), None);
        assert!(
            next.uri().to_string().ends_with("&prefix=cloudaudit.googleapis.com%2F&pageToken=CgV%2B%2F%3D"),
            "{}",
            next.uri()
        );
    }

    #[test]
    fn a_page_reads_names_generations_sizes_and_the_next_token() {
        let body =
            br#"{"items":[{"name":"a_usage_2024_03_11_14_00_00_0a_v0","generation":"1710170135482117","size":"2048"},
                                 {"name":"notes.txt","generation":"7"}],"nextPageToken":"tok"}"#;
        let page = parse_page("logs", body).unwrap();
        assert_eq!(page.next_page_token.as_deref(), Some("tok"));
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[0].object.generation, Some(1710170135482117));
        assert_eq!(page.items[0].size, 2048);
        assert_eq!(page.items[1].size, 0);
        // The last page has no token (an empty one counts as none); an empty bucket no items.
        assert_eq!(
            parse_page("logs", br#"{"nextPageToken":""}"#).unwrap(),
            Page { items: vec![], next_page_token: None }
        );
    }

    #[test]
    fn a_page_that_is_not_a_listing_is_an_error_naming_what() {
        assert!(parse_page("logs", b"<html>").unwrap_err().contains("not a listing"));
        let e = parse_page("logs", br#"{"items":[{"name":"x","generation":"-1"}]}"#).unwrap_err();
        assert!(e.contains("\"x\" has generation \"-1\""), "{e}");
        let e = parse_page("logs", br#"{"items":[{"name":"x","generation":"1","size":"big"}]}"#).unwrap_err();
        assert!(e.contains("size \"big\""), "{e}");
    }

    #[test]
    fn the_window_takes_days_or_hours_both_ends_included() {
        let w = HourWindow::parse(Some("2024-03-11"), Some("2024-03-11T15"), NOW).unwrap();
        let at = |s: &str| parse_hour("t", s, 0).unwrap();
        assert!(w.contains(at("2024-03-11T00")) && w.contains(at("2024-03-11T15")));
        assert!(!w.contains(at("2024-03-10T23")) && !w.contains(at("2024-03-11T16")));
        let day = HourWindow::parse(None, Some("2024-03-11"), NOW).unwrap();
        assert!(day.contains(at("2024-03-11T23")) && !day.contains(at("2024-03-12T00")));
        assert!(HourWindow::default().contains(at("1999-01-01T00")));
    }

    #[test]
    fn a_window_that_is_no_window_is_an_error_naming_the_flag() {
        let e = HourWindow::parse(Some("2024-03-12"), Some("2024-03-11"), NOW).unwrap_err();
        assert_eq!(e, "--since 2024-03-12T00 is after --until 2024-03-11T23: no hour is in between");
        for bad in ["2024-3-11", "2024-03-11T5", "2024-03-11T24", "yesterday", "2024-02-30", "2024-03-11T14:00"] {
            let e = HourWindow::parse(Some(bad), None, NOW).unwrap_err();
            assert!(e.starts_with(&format!("--since {bad:?} is not")), "{bad}: {e}");
        }
    }

    #[test]
    fn only_log_objects_of_the_window_are_kept_both_families() {
        let listed = |name: &str| Listed {
            object: ObjectRef { bucket: "logs".into(), name: name.into(), generation: Some(1) },
            size: 1,
        };
        let items = vec![
            listed("a_usage_2024_03_11_14_00_00_0a_v0"),
            listed("a_usage_2024_03_11_16_00_00_0a_v0"),
            listed("a_storage_2024_03_11_07_00_00_0b_v0"),
            listed("cloudaudit.googleapis.com/data_access/2024/03/11/15:00:00_15:59:59_S0.json"),
            listed("notes/README.txt"),
        ];
        let window = HourWindow::parse(Some("2024-03-11T07"), Some("2024-03-11T15"), NOW).unwrap();
        let kept: Vec<String> = log_objects(items, &window).into_iter().map(|l| l.listed.object.name).collect();
        assert_eq!(
            kept,
            [
                "a_usage_2024_03_11_14_00_00_0a_v0",
                "a_storage_2024_03_11_07_00_00_0b_v0",
                "cloudaudit.googleapis.com/data_access/2024/03/11/15:00:00_15:59:59_S0.json"
            ]
        );
    }
}
