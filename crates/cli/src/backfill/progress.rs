//! The backfill's progress on stderr: a bar redrawn in place on a terminal (objects and bytes,
//! rate, ETA), plain lines when stderr is a file or a pipe (a CI log, Cloud Run job logs).

use std::time::{Duration, Instant};

use gcr_usage_core::backfill::Progress as Event;

use crate::render::human_bytes;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Bar,
    Lines,
    Quiet,
}

pub struct Progress {
    style: Style,
    started: Instant,
    last_draw: Option<Instant>,
    total_objects: u64,
    total_bytes: u64,
    objects: u64,
    bytes: u64,
    drawn: bool,
}

impl Progress {
    pub fn new(style: Style) -> Progress {
        Progress {
            style,
            started: Instant::now(),
            last_draw: None,
            total_objects: 0,
            total_bytes: 0,
            objects: 0,
            bytes: 0,
            drawn: false,
        }
    }

    pub fn show(&mut self, event: Event) {
        match event {
            Event::Listed { objects } => {
                if self.style == Style::Bar {
                    self.replace(&format!("listing: {objects} objects"));
                }
            }
            Event::Planned { objects, bytes } => {
                (self.total_objects, self.total_bytes) = (objects, bytes);
                self.started = Instant::now();
                self.line(&format!("{objects} log objects to go through ({})", human_bytes(bytes)));
            }
            Event::Batch { job_id, table, objects } => {
                if self.style == Style::Lines {
                    self.line(&format!("batch {job_id}: loading {objects} objects into {table}"));
                }
            }
            Event::Done { objects, bytes } => {
                (self.objects, self.bytes) = (objects, bytes);
                match self.style {
                    Style::Bar => self.draw_bar(false),
                    // A line per finished batch is enough: print when a batch's last object is done.
                    Style::Lines | Style::Quiet => {}
                }
            }
            Event::Note(note) => self.line(&note),
        }
    }

    /// Ends the bar, and in plain mode prints the last counts.
    pub fn finish(&mut self) {
        match self.style {
            Style::Bar if self.drawn => {
                self.draw_bar(true);
                eprintln!();
                self.drawn = false;
            }
            Style::Lines if self.total_objects > 0 => self.line(&self.counts()),
            _ => {}
        }
    }

    fn counts(&self) -> String {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.objects as f64 / elapsed;
        let eta = if rate > 0.0 { self.total_objects.saturating_sub(self.objects) as f64 / rate } else { 0.0 };
        format!(
            "{}/{} objects, {} / {}, {rate:.1} objects/s, ETA {eta:.0} s",
            self.objects,
            self.total_objects,
            human_bytes(self.bytes),
            human_bytes(self.total_bytes)
        )
    }

    fn draw_bar(&mut self, last: bool) {
        let now = Instant::now();
        if !last && self.last_draw.is_some_and(|t| now.duration_since(t) < Duration::from_millis(100)) {
            return;
        }
        self.last_draw = Some(now);
        const WIDTH: usize = 24;
        let fraction =
            if self.total_objects == 0 { 1.0 } else { (self.objects as f64 / self.total_objects as f64).min(1.0) };
        let filled = (fraction * WIDTH as f64).round() as usize;
        let line = format!(
            "[{}{}] {:>3.0}%  {}",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled),
            fraction * 100.0,
            self.counts()
        );
        self.replace(&line);
    }

    fn replace(&mut self, line: &str) {
        eprint!("\r\x1b[2K{line}");
        self.drawn = true;
    }

    fn line(&mut self, line: &str) {
        if self.style == Style::Quiet {
            return;
        }
        if self.drawn {
            eprint!("\r\x1b[2K");
            self.drawn = false;
        }
        eprintln!("gcr-usage: {line}");
        if self.style == Style::Bar && self.total_objects > 0 {
            self.draw_bar(true);
        }
    }
}
