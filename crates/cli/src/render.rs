//! The report as text: aligned tables, CSV, JSON. Tables and CSV share one description of
//! each section ([`grids`]); the table shows readable values (MiB, seconds), CSV the raw ones.

use std::io::{self, Write};

use clap::ValueEnum;
use gcr_usage_core::registry_event::EventTime;
use gcr_usage_core::stats::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Section {
    /// Totals: files, rows, images, pulls, bytes, clients, failures
    Summary,
    /// Per input file: records, rows, events, malformed rows, duplicates (audit logs: skipped entries)
    Files,
    /// Per image: pulls, blob downloads, bytes served, clients, first and last download
    Images,
    /// Per UTC day and image: pulls, blob downloads, bytes served
    Daily,
    /// Top clients by pulls
    ClientsByPulls,
    /// Top clients by bytes served
    ClientsByBytes,
    /// Blob writes per bucket (and repository when known)
    Pushes,
    /// Unsuccessful requests by status and action
    Failures,
    /// Per bucket: events, content reads and writes, bytes, deletes, failures
    Buckets,
    /// The first malformed rows of each file, with line numbers and reasons
    Malformed,
}

impl Section {
    pub fn name(self) -> &'static str {
        match self {
            Section::Summary => "summary",
            Section::Files => "files",
            Section::Images => "images",
            Section::Daily => "daily",
            Section::ClientsByPulls => "clients_by_pulls",
            Section::ClientsByBytes => "clients_by_bytes",
            Section::Pushes => "pushes",
            Section::Failures => "failures",
            Section::Buckets => "buckets",
            Section::Malformed => "malformed",
        }
    }
}

/// One section as a grid of cells.
pub struct Grid {
    pub section: Section,
    pub title: &'static str,
    pub headers: Vec<&'static str>,
    /// Right-aligned (numeric) columns.
    pub numeric: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

/// How values are written: readable (table, HTML) or raw (CSV).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Readable,
    Raw,
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let (mut value, mut unit) = (n as f64, 0);
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `2024-03-11 14:07:12` (readable) or `2024-03-11T14:07:12.118406Z` (raw); empty for none.
pub fn time(t: Option<EventTime>, style: Style) -> String {
    match (t, style) {
        (None, _) => String::new(),
        (Some(t), Style::Raw) => t.to_string(),
        (Some(t), Style::Readable) => t.to_string().get(..19).unwrap_or_default().replacen('T', " ", 1),
    }
}

fn num(n: u64) -> String {
    n.to_string()
}

pub fn grids(report: &Report, style: Style) -> Vec<Grid> {
    let readable = style == Style::Readable;
    let bytes = |n: u64| if readable { human_bytes(n) } else { n.to_string() };
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| if readable { "-".into() } else { String::new() });
    let s = &report.summary;
    let mut grids = Vec::new();
    let audit = report.files.iter().any(|f| f.kind == "audit");

    let mut summary_rows: Vec<(&str, &str, String)> = vec![
        (if audit { "log files read" } else { "usage logs read" }, "files_read", num(s.files_read)),
        ("files skipped", "files_skipped", num(s.files_skipped)),
        ("records", "records", num(s.records)),
        ("rows", "rows", num(s.rows)),
        ("events counted", "events", num(s.events)),
        ("malformed rows", "malformed", num(s.malformed)),
        ("duplicates in a file", "duplicates", num(s.duplicates)),
        ("duplicates across files", "duplicates_across_files", num(s.duplicates_across_files)),
        ("first event (UTC)", "first_event", time(s.first_event, style)),
        ("last event (UTC)", "last_event", time(s.last_event, style)),
        (
            "pull gap",
            "pull_gap_micros",
            if readable { format!("{} s", s.pull_gap_micros as f64 / 1e6) } else { s.pull_gap_micros.to_string() },
        ),
        ("images", "images", num(s.images)),
        ("pulls", "pulls", num(s.pulls)),
        ("blob downloads", "blob_downloads", num(s.blob_downloads)),
        ("bytes served", "bytes_served", bytes(s.bytes_served)),
        ("pulling clients", "pulling_clients", num(s.pulling_clients)),
        ("unattributed blob reads", "unattributed_blob_downloads", num(s.unattributed_blob_downloads)),
        ("unattributed bytes", "unattributed_bytes", bytes(s.unattributed_bytes)),
        ("pushes", "pushes", num(s.pushes)),
        ("failures", "failures", num(s.failures)),
    ];
    if s.unverified_for_duplicates > 0 {
        let at =
            summary_rows.iter().position(|r| r.1 == "duplicates_across_files").map_or(summary_rows.len(), |i| i + 1);
        summary_rows.insert(
            at,
            ("rows not fully checked for duplicates", "unverified_for_duplicates", num(s.unverified_for_duplicates)),
        );
    }
    // Only audit logs name Google's agents: a usage-only report stays as it was.
    if audit {
        let at = summary_rows.iter().position(|r| r.1 == "pulling_clients").map_or(summary_rows.len(), |i| i + 1);
        summary_rows.insert(at, ("agent manifest reads", "agent_pulls", num(s.agent_pulls)));
    }
    grids.push(Grid {
        section: Section::Summary,
        title: "Summary",
        headers: vec!["key", "value"],
        numeric: vec![false, true],
        rows: summary_rows
            .into_iter()
            .map(|(label, key, value)| vec![if readable { label } else { key }.to_string(), value])
            .collect(),
    });

    grids.push(Grid {
        section: Section::Images,
        title: "Images (pull = one client's blob downloads of one image, each within the pull gap of the previous)",
        headers: if readable {
            vec![
                "registry",
                "repository",
                "pulls",
                "blob downloads",
                "bytes served",
                "clients",
                "first (UTC)",
                "last (UTC)",
            ]
        } else {
            vec![
                "registry_host",
                "repository",
                "pulls",
                "blob_downloads",
                "bytes_served",
                "clients",
                "first_seen",
                "last_seen",
            ]
        },
        numeric: vec![false, false, true, true, true, true, false, false],
        rows: report
            .images
            .iter()
            .map(|i| {
                vec![
                    i.registry_host.clone(),
                    i.repository.clone(),
                    num(i.pulls),
                    num(i.blob_downloads),
                    bytes(i.bytes_served),
                    num(i.clients),
                    time(i.first_seen, style),
                    time(i.last_seen, style),
                ]
            })
            .collect(),
    });

    grids.push(Grid {
        section: Section::Daily,
        title: "Pulls per day (UTC; a pull counts on the day of its first blob download)",
        headers: if readable {
            vec!["day", "registry", "repository", "pulls", "blob downloads", "bytes served"]
        } else {
            vec!["day", "registry_host", "repository", "pulls", "blob_downloads", "bytes_served"]
        },
        numeric: vec![false, false, false, true, true, true],
        rows: report
            .daily
            .iter()
            .map(|d| {
                vec![
                    d.day.clone(),
                    d.registry_host.clone(),
                    d.repository.clone(),
                    num(d.pulls),
                    num(d.blob_downloads),
                    bytes(d.bytes_served),
                ]
            })
            .collect(),
    });

    for (section, title, clients) in [
        (Section::ClientsByPulls, "Top clients by pulls", &report.clients_by_pulls),
        (Section::ClientsByBytes, "Top clients by bytes served", &report.clients_by_bytes),
    ] {
        grids.push(Grid {
            section,
            title,
            headers: if readable {
                vec!["client IP", "pulls", "blob downloads", "bytes served", "images", "client software"]
            } else {
                vec!["client_ip", "pulls", "blob_downloads", "bytes_served", "images", "client_families"]
            },
            numeric: vec![false, true, true, true, true, false],
            rows: clients
                .iter()
                .map(|c| {
                    vec![
                        c.client_ip.clone(),
                        num(c.pulls),
                        num(c.blob_downloads),
                        bytes(c.bytes_served),
                        num(c.images),
                        c.client_families.clone(),
                    ]
                })
                .collect(),
        });
    }

    grids.push(Grid {
        section: Section::Pushes,
        title: "Pushes (blob writes)",
        headers: if readable {
            vec!["bucket", "registry", "repository", "pushes", "failed", "bytes received", "clients"]
        } else {
            vec!["bucket", "registry_host", "repository", "pushes", "failed", "bytes_received", "clients"]
        },
        numeric: vec![false, false, false, true, true, true, true],
        rows: report
            .pushes
            .iter()
            .map(|p| {
                vec![
                    p.bucket.clone(),
                    opt(&p.registry_host),
                    opt(&p.repository),
                    num(p.pushes),
                    num(p.failed),
                    bytes(p.bytes_received),
                    num(p.clients),
                ]
            })
            .collect(),
    });

    grids.push(Grid {
        section: Section::Failures,
        title: "Failures (status neither 2xx nor 304)",
        headers: vec!["status", "action", "count"],
        numeric: vec![true, false, true],
        rows: report.failures.iter().map(|f| vec![f.status.to_string(), f.action.to_string(), num(f.count)]).collect(),
    });

    grids.push(Grid {
        section: Section::Buckets,
        title: "Buckets",
        headers: if readable {
            vec![
                "bucket",
                "registry",
                "events",
                "reads",
                "bytes served",
                "writes",
                "bytes received",
                "deletes",
                "failures",
            ]
        } else {
            vec![
                "bucket",
                "registry_host",
                "events",
                "content_reads",
                "bytes_served",
                "writes",
                "bytes_received",
                "deletes",
                "failures",
            ]
        },
        numeric: vec![false, false, true, true, true, true, true, true, true],
        rows: report
            .buckets
            .iter()
            .map(|b| {
                vec![
                    b.bucket.clone(),
                    opt(&b.registry_host),
                    num(b.events),
                    num(b.content_reads),
                    bytes(b.bytes_served),
                    num(b.writes),
                    bytes(b.bytes_received),
                    num(b.deletes),
                    num(b.failures),
                ]
            })
            .collect(),
    });

    // Audit logs: records are entries, rows the events read, and a `skipped` column (only when
    // an audit log was read, so a usage-log report keeps its columns) holds the other entries.
    let mut files = Grid {
        section: Section::Files,
        title: "Files",
        headers: if readable {
            vec!["file", "records", "rows", "events", "malformed", "dup. in file", "dup. across files", "note"]
        } else {
            vec![
                "file",
                "kind",
                "header",
                "records",
                "rows",
                "events",
                "malformed",
                "duplicates",
                "duplicates_across_files",
                "invalid_utf8",
                "note",
            ]
        },
        numeric: if readable {
            vec![false, true, true, true, true, true, true, false]
        } else {
            vec![false, false, false, true, true, true, true, true, true, true, false]
        },
        rows: report
            .files
            .iter()
            .map(|f| {
                let counts = [f.records, f.rows, f.events, f.malformed, f.duplicates, f.duplicates_across_files];
                let counts = counts.iter().map(|n| num(*n));
                if readable {
                    let note = match (&f.note, f.invalid_utf8) {
                        (Some(note), _) => note.clone(),
                        (None, _) if f.kind == "audit" => "audit log".to_string(),
                        (None, 0) => String::new(),
                        (None, n) => format!("{n} rows with invalid UTF-8"),
                    };
                    std::iter::once(f.file.clone()).chain(counts).chain([note]).collect()
                } else {
                    let header = serde_json::to_value(f.header).ok().and_then(|v| v.as_str().map(str::to_string));
                    [f.file.clone(), f.kind.to_string(), header.unwrap_or_default()]
                        .into_iter()
                        .chain(counts)
                        .chain([num(f.invalid_utf8), f.note.clone().unwrap_or_default()])
                        .collect()
                }
            })
            .collect(),
    };
    if audit {
        let before_note = files.headers.len() - 1;
        files.headers.insert(before_note, "skipped");
        files.numeric.insert(before_note, true);
        for (row, f) in files.rows.iter_mut().zip(&report.files) {
            row.insert(before_note, opt(&f.skipped.map(num)));
        }
    }
    grids.push(files);

    grids.push(Grid {
        section: Section::Malformed,
        title: "Malformed rows (first of each file)",
        headers: vec!["file", "line", "row", "reason"],
        numeric: vec![false, true, true, false],
        rows: report
            .files
            .iter()
            .flat_map(|f| {
                f.malformed_samples.iter().map(|m| vec![f.file.clone(), num(m.line), num(m.row), m.reason.to_string()])
            })
            .collect(),
    });
    grids
}

fn selected(grids: Vec<Grid>, section: Option<Section>) -> Vec<Grid> {
    grids.into_iter().filter(|g| section.is_none_or(|s| s == g.section)).collect()
}

fn width(s: &str) -> usize {
    s.chars().count()
}

pub fn table(out: &mut impl Write, report: &Report, section: Option<Section>) -> io::Result<()> {
    let mut first = true;
    for grid in selected(grids(report, Style::Readable), section) {
        // Only worth a section when something was malformed, unless asked for.
        if grid.section == Section::Malformed && grid.rows.is_empty() && section.is_none() {
            continue;
        }
        if !first {
            writeln!(out)?;
        }
        first = false;
        writeln!(out, "{}", grid.title)?;
        if grid.section == Section::Summary {
            let w = grid.rows.iter().map(|r| width(&r[0])).max().unwrap_or(0);
            for row in &grid.rows {
                writeln!(out, "  {:<w$}  {}", row[0], row[1])?;
            }
            continue;
        }
        if grid.rows.is_empty() {
            writeln!(out, "  (none)")?;
            continue;
        }
        let mut widths: Vec<usize> = grid.headers.iter().map(|h| width(h)).collect();
        for row in &grid.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let line = |cells: &[String]| -> String {
            let mut s = String::from(" ");
            for (i, cell) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(width(cell));
                s.push(' ');
                if grid.numeric[i] {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    s.extend(std::iter::repeat_n(' ', pad));
                }
                s.push(' ');
            }
            s.trim_end().to_string()
        };
        let headers: Vec<String> = grid.headers.iter().map(|h| h.to_string()).collect();
        writeln!(out, "{}", line(&headers))?;
        writeln!(out, "{}", line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>()))?;
        for row in &grid.rows {
            writeln!(out, "{}", line(row))?;
        }
    }
    Ok(())
}

fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")).into() } else { s.into() }
}

fn csv_line(out: &mut impl Write, cells: &[impl AsRef<str>]) -> io::Result<()> {
    let line: Vec<_> = cells.iter().map(|c| csv_field(c.as_ref())).collect();
    writeln!(out, "{}", line.join(","))
}

/// Every section (each after a `# name` line, blank line between), or one section alone as
/// plain CSV with a header row.
pub fn csv(out: &mut impl Write, report: &Report, section: Option<Section>) -> io::Result<()> {
    for (i, grid) in selected(grids(report, Style::Raw), section).into_iter().enumerate() {
        if section.is_none() {
            if i > 0 {
                writeln!(out)?;
            }
            writeln!(out, "# {}", grid.section.name())?;
        }
        csv_line(out, &grid.headers)?;
        for row in &grid.rows {
            csv_line(out, row)?;
        }
    }
    Ok(())
}

/// The whole report as one JSON object (fields in declaration order), or one section's value.
pub fn json(out: &mut impl Write, report: &Report, section: Option<Section>) -> io::Result<()> {
    let malformed = || -> Vec<serde_json::Value> {
        report
            .files
            .iter()
            .flat_map(|f| {
                f.malformed_samples.iter().map(|m| {
                    serde_json::json!({"file": f.file, "line": m.line, "row": m.row, "reason": m.reason.to_string()})
                })
            })
            .collect()
    };
    let mut out = &mut *out;
    let written = match section {
        None => serde_json::to_writer_pretty(&mut out, report),
        Some(Section::Summary) => serde_json::to_writer_pretty(&mut out, &report.summary),
        Some(Section::Files) => serde_json::to_writer_pretty(&mut out, &report.files),
        Some(Section::Images) => serde_json::to_writer_pretty(&mut out, &report.images),
        Some(Section::Daily) => serde_json::to_writer_pretty(&mut out, &report.daily),
        Some(Section::ClientsByPulls) => serde_json::to_writer_pretty(&mut out, &report.clients_by_pulls),
        Some(Section::ClientsByBytes) => serde_json::to_writer_pretty(&mut out, &report.clients_by_bytes),
        Some(Section::Pushes) => serde_json::to_writer_pretty(&mut out, &report.pushes),
        Some(Section::Failures) => serde_json::to_writer_pretty(&mut out, &report.failures),
        Some(Section::Buckets) => serde_json::to_writer_pretty(&mut out, &report.buckets),
        Some(Section::Malformed) => serde_json::to_writer_pretty(&mut out, &malformed()),
    };
    written.map_err(io::Error::other)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(61_307_353), "58.5 MiB");
        assert_eq!(human_bytes(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn readable_times_drop_the_fraction() {
        let t = Some(EventTime(1_710_166_032_118_406));
        assert_eq!(time(t, Style::Readable), "2024-03-11 14:07:12");
        assert_eq!(time(t, Style::Raw), "2024-03-11T14:07:12.118406Z");
        assert_eq!(time(None, Style::Raw), "");
    }
}
