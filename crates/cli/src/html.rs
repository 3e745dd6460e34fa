//! The self-contained HTML report: one file, inline CSS and SVG, no scripts, no external
//! assets. A pulls-over-time bar chart per image (shared time axis, hourly, daily or weekly
//! bars depending on the span), then the same tables as the text report.

use std::collections::HashMap;
use std::fmt::Write as _;

use gcr_usage_core::registry_event::EventTime;
use gcr_usage_core::stats::{Report, UsageStats};

use crate::render::{Section, Style, grids, human_bytes, time};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// Fewer bars than this and the axis is widened (a one-hour report is not one giant bar).
const MIN_BARS: i64 = 12;

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;padding:0 1rem;color:#1f2328}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
.meta{color:#59636e}.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:.5rem .9rem;min-width:8rem}.card b{display:block;font-size:1.35rem}
table{border-collapse:collapse;margin:.5rem 0;font-variant-numeric:tabular-nums}th,td{padding:.2rem .6rem;border-bottom:1px solid #eaeef2;text-align:left}
th{background:#f6f8fa}td.num,th.num{text-align:right}figure{margin:1rem 0}figcaption{font-weight:600}
svg.chart{display:block;max-width:100%;height:auto}svg.chart rect.bar{fill:#2f81f7}svg.chart rect.bar:hover{fill:#0a3069}
svg.chart text{font-size:11px;fill:#59636e}svg.chart line{stroke:#d0d7de}.none{color:#59636e}.warn{color:#9a6700}
";

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The bar width for a report spanning `span` microseconds.
fn bucket_for(span: i64) -> i64 {
    if span <= 4 * DAY {
        HOUR
    } else if span <= 366 * DAY {
        DAY
    } else {
        WEEK
    }
}

fn bucket_label(start: i64, bucket: i64) -> String {
    let t = time(Some(EventTime(start)), Style::Readable);
    match bucket {
        HOUR => format!("{} UTC", &t[..16.min(t.len())]),
        DAY => t[..10.min(t.len())].to_string(),
        _ => format!("week of {}", &t[..10.min(t.len())]),
    }
}

pub fn render(report: &Report, stats: &UsageStats) -> String {
    let s = &report.summary;
    let mut html = String::new();
    let range = match (s.first_event, s.last_event) {
        (Some(a), Some(b)) => {
            format!("{} – {} UTC", time(Some(a), Style::Readable), time(Some(b), Style::Readable))
        }
        _ => "no events".to_string(),
    };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>gcr-usage report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>gcr-usage report</h1>\n<p class=\"meta\">{files} {logs}, {rows} rows, {range}. \
         A pull is one client's blob downloads of one image, each within {gap} s of the previous one.</p>\n",
        files = s.files_read,
        logs = if report.files.iter().any(|f| f.kind == "audit") { "log file(s)" } else { "usage log(s)" },
        rows = s.rows,
        range = esc(&range),
        gap = s.pull_gap_micros as f64 / 1e6,
    );
    if s.unverified_for_duplicates > 0 {
        let _ = writeln!(
            html,
            "<p class=\"warn\">{} row(s) could not be fully checked for duplicates: the duplicate \
             filter's window (--dedup-window) was smaller than the request ids read.</p>",
            s.unverified_for_duplicates
        );
    }
    html.push_str("<div class=\"cards\">\n");
    for (label, value) in [
        ("pulls", s.pulls.to_string()),
        ("images", s.images.to_string()),
        ("pulling clients", s.pulling_clients.to_string()),
        ("blob downloads", s.blob_downloads.to_string()),
        ("bytes served", human_bytes(s.bytes_served)),
        ("failures", s.failures.to_string()),
    ] {
        let _ = writeln!(html, "<div class=\"card\"><b>{}</b>{}</div>", esc(&value), esc(label));
    }
    html.push_str("</div>\n");

    html.push_str("<h2>Pulls over time</h2>\n");
    charts(&mut html, report, stats);

    for grid in grids(report, Style::Readable) {
        if grid.section == Section::Summary || (grid.section == Section::Malformed && grid.rows.is_empty()) {
            continue;
        }
        let _ = writeln!(html, "<h2>{}</h2>", esc(grid.title));
        if grid.rows.is_empty() {
            html.push_str("<p class=\"none\">none</p>\n");
            continue;
        }
        let class = |i: usize| if grid.numeric[i] { " class=\"num\"" } else { "" };
        html.push_str("<table>\n<thead><tr>");
        for (i, h) in grid.headers.iter().enumerate() {
            let _ = write!(html, "<th{}>{}</th>", class(i), esc(h));
        }
        html.push_str("</tr></thead>\n<tbody>\n");
        for row in &grid.rows {
            html.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                let _ = write!(html, "<td{}>{}</td>", class(i), esc(cell));
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</tbody>\n</table>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// One `<figure>` with an SVG bar chart per image, in the report's image order.
fn charts(html: &mut String, report: &Report, stats: &UsageStats) {
    if report.images.is_empty() {
        html.push_str("<p class=\"none\">No image pulls.</p>\n");
        return;
    }
    let span = match (report.summary.first_event, report.summary.last_event) {
        (Some(a), Some(b)) => b.0 - a.0,
        _ => 0,
    };
    let bucket = bucket_for(span);
    let timeline: HashMap<(String, String), Vec<(i64, u64)>> =
        stats.pull_timeline(bucket).into_iter().map(|s| ((s.registry_host, s.repository), s.buckets)).collect();
    let starts = timeline.values().flatten().map(|(t, _)| *t);
    let (Some(min), Some(max)) = (starts.clone().min(), starts.max()) else { return };
    let mut count = (max - min) / bucket + 1;
    let mut first = min;
    if count < MIN_BARS {
        first -= (MIN_BARS - count) / 2 * bucket;
        count = MIN_BARS;
    }
    let unit = match bucket {
        HOUR => "hour",
        DAY => "day",
        _ => "week",
    };

    let (width, height) = (760.0_f64, 170.0_f64);
    let (left, right, top, bottom) = (44.0, 12.0, 12.0, 30.0);
    let (plot_w, plot_h) = (width - left - right, height - top - bottom);
    let bar_w = plot_w / count as f64;
    for (n, image) in report.images.iter().enumerate() {
        let name = format!("{}/{}", image.registry_host, image.repository);
        let empty = Vec::new();
        let series = timeline.get(&(image.registry_host.clone(), image.repository.clone())).unwrap_or(&empty);
        let peak = series.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
        let _ = write!(
            html,
            "<figure id=\"image-{n}\">\n<figcaption>{name_e} — {pulls} pull(s), {downloads} blob download(s), \
             {bytes}, {clients} client(s)</figcaption>\n\
             <svg class=\"chart\" data-image=\"{name_e}\" xmlns=\"http://www.w3.org/2000/svg\" \
             viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" \
             aria-label=\"Pulls per {unit} of {name_e}\">\n",
            name_e = esc(&name),
            pulls = image.pulls,
            downloads = image.blob_downloads,
            bytes = human_bytes(image.bytes_served),
            clients = image.clients,
        );
        let base = top + plot_h;
        let _ = writeln!(
            html,
            "<line x1=\"{left}\" y1=\"{base}\" x2=\"{x2}\" y2=\"{base}\"/><line x1=\"{left}\" y1=\"{top}\" x2=\"{x2}\" y2=\"{top}\"/>\
             <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{peak}</text><text x=\"{lx}\" y=\"{by}\" text-anchor=\"end\">0</text>",
            x2 = left + plot_w,
            lx = left - 6.0,
            ty = top + 4.0,
            by = base,
        );
        for &(start, pulls) in series {
            let i = (start - first) / bucket;
            let h = plot_h * pulls as f64 / peak as f64;
            let _ = writeln!(
                html,
                "<rect class=\"bar\" x=\"{x:.2}\" y=\"{y:.2}\" width=\"{w:.2}\" height=\"{h:.2}\">\
                 <title>{label}: {pulls} pull(s)</title></rect>",
                x = left + i as f64 * bar_w + bar_w * 0.1,
                y = base - h,
                w = (bar_w * 0.8).max(0.5),
                label = esc(&bucket_label(start, bucket)),
            );
        }
        let last = first + (count - 1) * bucket;
        let _ = write!(
            html,
            "<text x=\"{left}\" y=\"{ly}\">{from}</text><text x=\"{rx}\" y=\"{ly}\" text-anchor=\"end\">{to}</text>\n\
             </svg>\n</figure>\n",
            ly = height - 10.0,
            rx = left + plot_w,
            from = esc(&bucket_label(first, bucket)),
            to = esc(&bucket_label(last, bucket)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn bucket_width_follows_the_span() {
        assert_eq!(bucket_for(0), HOUR);
        assert_eq!(bucket_for(4 * DAY), HOUR);
        assert_eq!(bucket_for(30 * DAY), DAY);
        assert_eq!(bucket_for(400 * DAY), WEEK);
        assert_eq!(bucket_label(1_710_165_600_000_000, HOUR), "2024-03-11 14:00 UTC");
        assert_eq!(bucket_label(1_710_115_200_000_000, DAY), "2024-03-11");
    }
}
