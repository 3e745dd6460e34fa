//! CSV records out of a byte stream, with the physical line each one starts on: the reader's
//! hot loop (every byte of every classified log passes here).
//!
//! The dialect is the csv crate's defaults, which this module replaced and still matches
//! exactly (`records_tests.rs` holds it to `csv::ReaderBuilder::new().has_headers(false)
//! .flexible(true)` on arbitrary input, line numbers included): comma-separated, `"` quotes
//! with `""` for a quote inside them, a quoted field may hold commas and line ends, text after
//! a closing quote continues the field, a quote inside an unquoted field is literal; `\n`,
//! `\r` and `\r\n` end a record, blank lines are skipped, a missing final line end is fine, and
//! input ending inside quotes ends the field there. One UTF-8 byte-order mark at the start of
//! the stream is dropped.
//!
//! Why not the csv crate: its state machine looks at every byte, and was a third of the
//! component's time. Here each field is one `memchr` search (SIMD natively and with wasm
//! `simd128`) for its closing quote or delimiter, and a usage log's fields — every one quoted,
//! no quote inside — never leave that path.
//!
//! Lines: `\r\n` is one line end, a lone `\r` or `\n` is one; a record's line is the line of
//! its first byte. A record longer than [`MAX_RECORD_BYTES`] ends the read with an I/O error
//! (real records are a few KiB) rather than a buffer that grows with a corrupt object.

use std::io::Read;

/// Longest record accepted (real ones are a few KiB: URLs, user agents and object names all
/// have small limits).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Bytes asked of the underlying reader at a time (and the buffer's starting size).
const READ_SIZE: usize = 64 << 10;

const BOM: &[u8] = b"\xef\xbb\xbf";

/// One record's fields, unescaped, in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    bytes: Vec<u8>,
    /// `bytes[ends[i-1]..ends[i]]` is field `i`.
    ends: Vec<usize>,
}

impl Record {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        (i < self.len()).then(|| &self.bytes[self.range(i)])
    }

    /// Where field `i` lies in [`Record::as_bytes`].
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        let end = self.ends[i];
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        start..end
    }

    /// Every field's bytes, one after another (what [`Record::range`] indexes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// A record of these fields, as if read.
    #[cfg(test)]
    pub fn from_fields(fields: &[&[u8]]) -> Record {
        let mut record = Record::default();
        for f in fields {
            record.bytes.extend_from_slice(f);
            record.end_field();
        }
        record
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn end_field(&mut self) {
        self.ends.push(self.bytes.len());
    }
}

impl std::ops::Index<usize> for Record {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        self.get(i).unwrap_or_else(|| panic!("field {i} of a record of {}", self.len()))
    }
}

/// Where [`parse`] got to: a whole record, or the end of what is buffered before its end.
enum Parsed {
    /// The record and its line end (if any) take `consumed` bytes, holding `line_ends` line
    /// ends (inside quoted fields, and its own); `ends_with_cr`: the last byte was its `\r`.
    Record { consumed: usize, line_ends: u64, ends_with_cr: bool },
    /// The record runs past the `buffered` bytes.
    Incomplete { buffered: usize },
}

/// Splits records off `R`, reading it [`READ_SIZE`] bytes at a time.
pub struct RecordReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    /// The line of `buf[start]`.
    line: u64,
    /// The last byte consumed was `\r` (a `\n` right after it ends no further line).
    after_cr: bool,
    bom_checked: bool,
}

impl<R: Read> RecordReader<R> {
    pub fn new(inner: R) -> Self {
        RecordReader {
            inner,
            buf: vec![0; READ_SIZE],
            start: 0,
            end: 0,
            eof: false,
            line: 1,
            after_cr: false,
            bom_checked: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next record into `record` and the line it starts on; `None` at the end of input.
    pub fn read(&mut self, record: &mut Record) -> std::io::Result<Option<u64>> {
        if !self.bom_checked {
            while self.end - self.start < BOM.len() && !self.eof {
                self.fill()?;
            }
            if self.buf[self.start..self.end].starts_with(BOM) {
                self.start += BOM.len();
            }
            self.bom_checked = true;
        }
        loop {
            self.skip_blank_lines();
            if self.start == self.end {
                if self.eof {
                    return Ok(None);
                }
                self.fill()?;
                continue;
            }
            match parse(&self.buf[self.start..self.end], self.eof, record) {
                Parsed::Record { consumed, .. } | Parsed::Incomplete { buffered: consumed }
                    if consumed > MAX_RECORD_BYTES =>
                {
                    let message = format!("line {}: a record longer than {MAX_RECORD_BYTES} bytes", self.line);
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message));
                }
                Parsed::Record { consumed, line_ends, ends_with_cr } => {
                    let line = self.line;
                    self.line += line_ends;
                    self.after_cr = ends_with_cr;
                    self.start += consumed;
                    return Ok(Some(line));
                }
                Parsed::Incomplete { .. } => self.fill()?,
            }
        }
    }

    /// Blank lines between records: skipped, counted.
    fn skip_blank_lines(&mut self) {
        while self.start < self.end {
            match self.buf[self.start] {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' => self.line += 1,
                b'\r' => {
                    self.line += 1;
                    self.after_cr = true;
                }
                _ => return,
            }
            self.start += 1;
        }
    }

    /// Reads more at the end of the buffer, first moving what is unconsumed to its front and
    /// growing it when a record fills it; sets `eof` when the input has no more.
    fn fill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// One record from the start of `s` (which is not a line end). `eof`: nothing follows `s`, so
/// a record running to its end ends there; otherwise that is [`Parsed::Incomplete`].
fn parse(s: &[u8], eof: bool, record: &mut Record) -> Parsed {
    record.clear();
    let mut line_ends = 0;
    let mut i = 0;
    // Each turn is one field, starting at `i`.
    loop {
        if i == s.len() {
            // After a delimiter: an empty last field (a record never starts at the end).
            return finish(record, eof, i, line_ends);
        }
        let quoted = s[i] == b'"';
        if quoted {
            // A quoted field: up to a quote that is not doubled. Line ends inside count.
            i += 1;
            loop {
                let Some(p) = memchr::memchr3(b'"', b'\n', b'\r', &s[i..]) else {
                    record.bytes.extend_from_slice(&s[i..]);
                    return finish(record, eof, s.len(), line_ends);
                };
                let at = i + p;
                match s[at] {
                    b'\n' if at > 0 && s[at - 1] == b'\r' => {}
                    b'\n' | b'\r' => line_ends += 1,
                    _ => {
                        record.bytes.extend_from_slice(&s[i..at]);
                        i = at + 1;
                        if s.get(i) == Some(&b'"') {
                            record.bytes.push(b'"');
                            i += 1;
                            continue;
                        }
                        break;
                    }
                }
                record.bytes.extend_from_slice(&s[i..=at]);
                i = at + 1;
            }
        }
        // Unquoted text (or text after a closing quote): up to a delimiter or a line end.
        let rest = &s[i..];
        let stop = if quoted && rest.first().is_some_and(|b| matches!(b, b',' | b'\n' | b'\r')) {
            Some(0) // the usual case: the closing quote ends the field
        } else {
            memchr::memchr3(b',', b'\n', b'\r', rest)
        };
        let Some(p) = stop else {
            record.bytes.extend_from_slice(rest);
            return finish(record, eof, s.len(), line_ends);
        };
        record.bytes.extend_from_slice(&rest[..p]);
        record.end_field();
        i += p + 1;
        match rest[p] {
            b',' => {}
            b => return Parsed::Record { consumed: i, line_ends: line_ends + 1, ends_with_cr: b == b'\r' },
        }
    }
}

/// The record ends with the input: whole only at the end of the stream.
fn finish(record: &mut Record, eof: bool, consumed: usize, line_ends: u64) -> Parsed {
    if !eof {
        return Parsed::Incomplete { buffered: consumed };
    }
    record.end_field();
    Parsed::Record { consumed, line_ends, ends_with_cr: false }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
