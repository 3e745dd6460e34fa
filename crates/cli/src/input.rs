//! Finding the input files, reading each through the core, and what stderr shows meanwhile
//! (notes, warnings, the progress line).
//!
//! What a file is, is read from its content, not its name: gzip is refused, a storage log
//! skipped, Artifact Registry audit entries (JSON lines or one JSON array, [`source::sniff`])
//! read through the core's [`LogSource`], anything else read as a usage log. Events of both
//! go into the one [`UsageStats`].

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gcr_usage_core::ObjectRef;
use gcr_usage_core::log_name::{LogKind, LogObjectName};
use gcr_usage_core::source::{self, LogSource, SourceError};
use gcr_usage_core::stats::UsageStats;
use gcr_usage_core::usage::reader::DEFAULT_MALFORMED_SAMPLES;
use gcr_usage_core::usage::{Dedup, HeaderKind, ReadError, ReaderOptions};

use crate::Fail;

/// One file to read.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    pub size: u64,
}

/// The header of a storage log (daily bucket size), with the quotes Cloud Storage writes.
const STORAGE_HEADER: &[&[u8]] = &[b"\"bucket\",\"storage_byte_hours\"", b"bucket,storage_byte_hours"];

/// Expands the command line: files as given, directories into the log objects directly inside.
pub fn expand(paths: &[PathBuf], ui: &mut Ui) -> Result<Vec<Input>, Fail> {
    let mut inputs = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| Fail(format!("{}: {}", path.display(), describe(&e))))?;
        if meta.is_file() {
            inputs.push(Input { path: path.clone(), size: meta.len() });
        } else if meta.is_dir() {
            let found = log_objects_in(path, ui)?;
            if found.is_empty() {
                return Err(Fail(format!(
                    "{}: a directory without usage or storage log objects (files named PREFIX_usage_YYYY_MM_DD_HH_00_00_ID_v0) \
                     or audit-log sink objects (…/cloudaudit.googleapis.com/data_access/YYYY/MM/DD/HH:00:00_HH:59:59_S0.json)",
                    path.display()
                )));
            }
            inputs.extend(found);
        } else {
            return Err(Fail(format!("{}: not a regular file or directory", path.display())));
        }
    }
    Ok(inputs)
}

fn log_objects_in(dir: &Path, ui: &mut Ui) -> Result<Vec<Input>, Fail> {
    let cannot = |e: std::io::Error| Fail(format!("{}: cannot list the directory: {}", dir.display(), describe(&e)));
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(cannot)? {
        let entry = entry.map_err(cannot)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if name.starts_with('.') || !meta.is_file() {
            continue;
        }
        // A sink object's name is a path (`cloudaudit.googleapis.com/data_access/2024/07/04/
        // 23:00:00_23:59:59_S0.json`): downloaded with its folders, the local path still says so.
        let sink_object = || path.to_str().is_some_and(|p| p.contains("cloudaudit.googleapis.com/"));
        if LogObjectName::parse(&name).is_ok()
            || (sink_object() && LogObjectName::parse(&path.to_string_lossy()).is_ok_and(|n| n.kind == LogKind::Audit))
        {
            found.push(Input { path, size: meta.len() });
        } else {
            ui.note(&format!("skipping {}: not a log object name", path.display()));
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// What the first bytes of a file say.
#[derive(Debug, PartialEq, Eq)]
enum Sniff {
    Gzip,
    Storage,
    /// Cloud Logging entries: JSON lines or a JSON array.
    Audit,
    Other,
}

fn sniff(head: &[u8]) -> Sniff {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Sniff::Gzip;
    }
    if source::sniff(head) == LogKind::Audit {
        return Sniff::Audit;
    }
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let first_line = head.split(|b| *b == b'\n' || *b == b'\r').next().unwrap_or_default();
    if STORAGE_HEADER.iter().any(|h| first_line.trim_ascii() == *h) { Sniff::Storage } else { Sniff::Other }
}

/// Reads one file into `stats`. A storage log is skipped with a note; anything that is not a
/// usage or audit log, or cannot be read, is an error naming the file.
pub fn read_one(input: &Input, stats: &mut UsageStats, ui: &mut Ui) -> Result<(), Fail> {
    let shown = input.path.display().to_string();
    let file = File::open(&input.path).map_err(|e| Fail(format!("{shown}: cannot open: {}", describe(&e))))?;
    let mut reader = BufReader::with_capacity(256 << 10, file);
    let head = reader.fill_buf().map_err(|e| Fail(format!("{shown}: cannot read: {}", describe(&e))))?;
    let file_name = input.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let named_storage = LogObjectName::parse(&file_name).is_ok_and(|n| n.kind == LogKind::Storage);
    match sniff(head) {
        Sniff::Gzip => {
            return Err(Fail(format!("{shown}: not a usage log: the file is gzip-compressed (decompress it first)")));
        }
        Sniff::Storage => {
            ui.note(&format!("skipping {shown}: a storage log (daily bucket size), not a usage log"));
            stats.skip_file(shown, "storage", "storage log (daily bucket size), skipped");
            ui.advance(input.size);
            return Ok(());
        }
        Sniff::Other if named_storage => {
            ui.note(&format!("skipping {shown}: named as a storage log, not a usage log"));
            stats.skip_file(shown, "storage", "named as a storage log, skipped");
            ui.advance(input.size);
            return Ok(());
        }
        Sniff::Audit => {
            ui.current = file_name;
            read_audit(input, &shown, reader, stats, ui)?;
            return Ok(());
        }
        Sniff::Other => {}
    }

    ui.current = file_name;
    let source = ObjectRef { bucket: String::new(), name: shown.clone(), generation: None };
    let counted = CountingReader { inner: reader, ui: &mut *ui };
    // The statistics' own filter drops duplicates within a file too (one lookup a row instead
    // of two, and its memory is bounded): the reader keeps none.
    let options = ReaderOptions { dedup: Dedup::Off, malformed_samples: DEFAULT_MALFORMED_SAMPLES };
    let summary = match stats.read_log(&source, counted, options) {
        Ok(summary) => summary,
        Err(ReadError::NotAUsageLog { missing }) => {
            let listed: Vec<&str> = missing.iter().take(4).copied().collect();
            let more = if missing.len() > listed.len() { ", …" } else { "" };
            return Err(Fail(format!(
                "{shown}: not a usage log: its first line is a header without the usage-log columns \
                 ({} of 17 missing: {}{more})",
                missing.len(),
                listed.join(", ")
            )));
        }
        Err(ReadError::Io(e)) => return Err(Fail(format!("{shown}: reading failed: {}", describe(&e)))),
    };
    if summary.header == HeaderKind::Missing && summary.rows == 0 && summary.malformed > 0 {
        let first = summary.malformed_samples.first().map(|m| format!(": line {}: {}", m.line, m.reason));
        return Err(Fail(format!(
            "{shown}: not a usage log: no usage-log header, and none of its {} records is a usage-log row{}",
            summary.records,
            first.unwrap_or_default()
        )));
    }
    if summary.malformed > 0 {
        let samples: Vec<String> =
            summary.malformed_samples.iter().take(3).map(|m| format!("line {}: {}", m.line, m.reason)).collect();
        let more = if summary.malformed > samples.len() as u64 { "; …" } else { "" };
        ui.warn(&format!("{shown}: {} malformed row(s) skipped ({}{more})", summary.malformed, samples.join("; ")));
    }
    if summary.header == HeaderKind::None {
        ui.note(&format!("{shown}: empty file"));
    }
    Ok(())
}

/// Reads Cloud Logging entries (a sink's JSON lines, or `gcloud logging read --format=json`'s
/// array) through the core's audit source, and closes the file with the source's counts.
fn read_audit(input: &Input, shown: &str, reader: impl Read, stats: &mut UsageStats, ui: &mut Ui) -> Result<(), Fail> {
    let object = ObjectRef { bucket: String::new(), name: shown.to_string(), generation: None };
    let counted = CountingReader { inner: reader, ui: &mut *ui };
    // The reader's window (its key is insertId + timestamp, Cloud Logging's identity of an
    // entry) as large as the statistics' filter, which looks at the insertId alone.
    let window = stats.options().dedup_window;
    let mut log = LogSource::open(LogKind::Audit, counted, &object, window, DEFAULT_MALFORMED_SAMPLES);
    loop {
        match log.next_event(|event| stats.add(event)) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(SourceError::Io(e)) => {
                return Err(Fail(format!(
                    "{shown}: reading failed after {} log entries: {}",
                    log.records(),
                    describe(&e)
                )));
            }
            // A cut-off array (or text after it), or not one log entry in the file: the core
            // refuses the whole file, as the loader refuses the object.
            Err(SourceError::NotThisKind(why)) => return Err(Fail(format!("{shown}: {why}"))),
        }
    }
    let (_, counts) = log.finish(|_| input.size);
    let sample = |m: &gcr_usage_core::usage::Malformed| format!("line {}: {}", m.line, m.reason);
    stats.finish_audit_file(shown, &counts);
    if counts.malformed > 0 {
        let samples: Vec<String> = counts.first_malformed.iter().take(3).map(sample).collect();
        let more = if counts.malformed > samples.len() as u64 { "; …" } else { "" };
        let noun = if counts.malformed == 1 { "entry" } else { "entries" };
        ui.warn(&format!("{shown}: {} malformed log {noun} skipped ({}{more})", counts.malformed, samples.join("; ")));
    }
    if counts.records == 0 {
        ui.note(&format!("{shown}: no log entries"));
    } else if counts.events == 0 && counts.skipped > 0 {
        ui.note(&format!("{shown}: none of its {} log entries is an Artifact Registry audit entry", counts.records));
    }
    Ok(())
}

/// Shorter words for the common I/O errors, the OS text otherwise.
fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory".into(),
        _ => e.to_string(),
    }
}

/// Counts the bytes the reader consumes, for the progress line.
struct CountingReader<'a, R> {
    inner: R,
    ui: &'a mut Ui,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ui.advance(n as u64);
        Ok(n)
    }
}

/// stderr: notes and warnings (unless quiet), and the progress line (when enabled).
pub struct Ui {
    quiet: bool,
    terminal: bool,
    progress: bool,
    total: u64,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    /// The progress line is on screen (a message must first clear it).
    drawn: bool,
    current: String,
}

impl Ui {
    pub fn new(quiet: bool) -> Self {
        Ui {
            quiet,
            terminal: std::io::stderr().is_terminal(),
            progress: false,
            total: 0,
            done: 0,
            started: Instant::now(),
            last_draw: None,
            drawn: false,
            current: String::new(),
        }
    }

    pub fn start_progress(&mut self, enabled: bool, total: u64) {
        (self.progress, self.total, self.done, self.started) = (enabled, total, 0, Instant::now());
    }

    pub fn note(&mut self, message: &str) {
        self.message("note", message);
    }

    pub fn warn(&mut self, message: &str) {
        self.message("warning", message);
    }

    fn message(&mut self, level: &str, message: &str) {
        if self.quiet {
            return;
        }
        self.clear_line();
        eprintln!("gcr-usage: {level}: {message}");
    }

    /// Removes the progress line, if one is on screen.
    pub fn clear_line(&mut self) {
        if self.drawn {
            eprint!("{}", if self.terminal { "\r\x1b[2K" } else { "\n" });
            self.drawn = false;
        }
    }

    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if !self.progress {
            return;
        }
        // Redrawn in place on a terminal; a line per second when stderr is a file or pipe.
        let every = Duration::from_millis(if self.terminal { 100 } else { 1000 });
        let now = Instant::now();
        if self.last_draw.is_none_or(|t| now.duration_since(t) >= every) {
            self.last_draw = Some(now);
            self.draw(false);
        }
    }

    fn draw(&mut self, last: bool) {
        const WIDTH: usize = 24;
        let fraction = if self.total == 0 { 1.0 } else { (self.done as f64 / self.total as f64).min(1.0) };
        let filled = (fraction * WIDTH as f64).round() as usize;
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / elapsed;
        let tail = if last {
            format!("in {elapsed:.1} s")
        } else {
            let eta = if rate > 0.0 { (self.total.saturating_sub(self.done)) as f64 / rate } else { 0.0 };
            format!("ETA {eta:.0} s  {}", self.current)
        };
        let line = format!(
            "[{}{}] {:>3.0}%  {} / {}  {}/s  {tail}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            fraction * 100.0,
            crate::render::human_bytes(self.done),
            crate::render::human_bytes(self.total),
            crate::render::human_bytes(rate as u64),
        );
        let mut err = std::io::stderr().lock();
        let start = if self.terminal {
            "\r\x1b[2K"
        } else if self.drawn {
            "\n"
        } else {
            ""
        };
        let _ = write!(err, "{start}{line}");
        let _ = err.flush();
        self.drawn = true;
    }

    /// Leaves a final progress line (when enabled) ending with a newline.
    pub fn finish_progress(&mut self) {
        if self.progress {
            self.draw(true);
            eprintln!();
            self.drawn = false;
            self.progress = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_gzip_and_storage_headers() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Sniff::Gzip);
        assert_eq!(sniff(b"\"bucket\",\"storage_byte_hours\"\n\"b\",\"1\"\n"), Sniff::Storage);
        assert_eq!(sniff(b"\xef\xbb\xbf\"bucket\",\"storage_byte_hours\"\r\n"), Sniff::Storage);
        assert_eq!(sniff(b"bucket,storage_byte_hours"), Sniff::Storage);
        assert_eq!(sniff(b"\"time_micros\",\"c_ip\""), Sniff::Other);
        assert_eq!(sniff(b""), Sniff::Other);
        assert_eq!(sniff(b"{\"insertId\":\"x\"}\n"), Sniff::Audit);
        assert_eq!(sniff(b"\xef\xbb\xbf\n  [\n"), Sniff::Audit);
        // gzip is refused as before, whatever the compressed bytes look like.
        assert_eq!(sniff(&[0x1f, 0x8b, b'{']), Sniff::Gzip);
    }
}
