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
//! component's time. Here each field is one search ([`find3`]: SIMD natively and with wasm
//! `simd128`) for its closing quote or delimiter, and a usage log's fields — every one quoted,
//! no quote inside — never leave that path. Nor are they copied: such a field's contents lie
//! between its quotes in the read buffer, and the [`Record`] hands out those ranges (every small
//! copy is a `memory.copy` call out of the component, and there were 17 a row). Only a record
//! with a field that needs unescaping is copied, by a second, general parse.
//!
//! Lines: `\r\n` is one line end, a lone `\r` or `\n` is one; a record's line is the line of
//! its first byte. A record longer than [`MAX_RECORD_BYTES`] ends the read with an I/O error
//! (real records are a few KiB) rather than a buffer that grows with a corrupt object.

use std::io::Read;
use std::ops::Range;

/// Longest record accepted (real ones are a few KiB: URLs, user agents and object names all
/// have small limits).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Bytes asked of the underlying reader at a time (and the buffer's starting size).
const READ_SIZE: usize = 64 << 10;

const BOM: &[u8] = b"\xef\xbb\xbf";

/// The first of three bytes in `haystack`: `memchr3` natively. In the component, 16 bytes at a
/// time with `simd128` compares, inlined: a field is ~35 bytes, and `memchr3`'s set-up for a
/// search that long (alignment, unrolled loops) cost ~136 instructions a call there, 8% of the
/// component's work. The haystack runs to the end of the read buffer; the search stops early.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn find3(a: u8, b: u8, c: u8, haystack: &[u8]) -> Option<usize> {
    use core::arch::wasm32::{u8x16_bitmask, u8x16_eq, u8x16_splat, v128_or};
    let (va, vb, vc) = (u8x16_splat(a), u8x16_splat(b), u8x16_splat(c));
    let (blocks, rest) = haystack.as_chunks::<16>();
    for (n, block) in blocks.iter().enumerate() {
        let v = crate::simd128::load(block);
        let found = u8x16_bitmask(v128_or(u8x16_eq(v, va), v128_or(u8x16_eq(v, vb), u8x16_eq(v, vc))));
        if found != 0 {
            return Some(n * 16 + found.trailing_zeros() as usize);
        }
    }
    let tail = blocks.len() * 16;
    rest.iter().position(|&x| x == a || x == b || x == c).map(|at| tail + at)
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn find3(a: u8, b: u8, c: u8, haystack: &[u8]) -> Option<usize> {
    memchr::memchr3(a, b, c, haystack)
}

/// One record's fields, unescaped: ranges of one byte string. Usually that string is the
/// record's bytes where they were read (no copy: a usage log's fields are quoted without quotes
/// inside, so each field's contents lie between its quotes); a record whose fields need
/// unescaping (`""`, text after a closing quote) is copied, unescaped, into a buffer of the
/// reader. Borrowed from the [`RecordReader`] until its next read.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    text: &'a [u8],
    fields: &'a [Range<usize>],
}

impl<'a> Record<'a> {
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        self.fields.get(i).map(|range| &self.text[range.clone()])
    }

    /// Where field `i` lies in [`Record::as_bytes`].
    pub fn range(&self, i: usize) -> Range<usize> {
        self.fields[i].clone()
    }

    /// The bytes [`Record::range`] indexes. Outside the fields they hold only the quotes,
    /// delimiters and line ends around them (ASCII), so they are valid UTF-8 exactly when every
    /// field is.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.text
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let text = self.text;
        self.fields.iter().map(move |range| &text[range.clone()])
    }
}

impl std::ops::Index<usize> for Record<'_> {
    type Output = [u8];

    fn index(&self, i: usize) -> &[u8] {
        self.get(i).unwrap_or_else(|| panic!("field {i} of a record of {}", self.len()))
    }
}

/// A record's fields in a buffer of their own, as if read (tests build rows from these).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct OwnedRecord {
    text: Vec<u8>,
    fields: Vec<Range<usize>>,
}

#[cfg(test)]
impl OwnedRecord {
    pub fn from_fields(fields: &[&[u8]]) -> OwnedRecord {
        let mut record = OwnedRecord::default();
        for f in fields {
            let start = record.text.len();
            record.text.extend_from_slice(f);
            record.fields.push(start..record.text.len());
        }
        record
    }

    pub fn view(&self) -> Record<'_> {
        Record { text: &self.text, fields: &self.fields }
    }
}

/// Where a parse got to: a whole record, or the end of what is buffered before its end.
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
    /// The last record: its fields, as ranges of `buf[record_start..]` or of `unescaped`.
    fields: Vec<Range<usize>>,
    record_start: usize,
    record_len: usize,
    /// The last record's fields, unescaped, when they could not be borrowed from `buf`.
    unescaped: Vec<u8>,
    copied: bool,
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
            fields: Vec::new(),
            record_start: 0,
            record_len: 0,
            unescaped: Vec::new(),
            copied: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads the next record; `None` at the end of input, else the line it starts on. The
    /// record itself is [`RecordReader::record`].
    pub fn read(&mut self) -> std::io::Result<Option<u64>> {
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
            let s = &self.buf[self.start..self.end];
            // Borrowed in place when every field allows it (nearly always), else copied.
            let parsed = match parse_in_place(s, self.eof, &mut self.fields) {
                Some(parsed) => {
                    self.copied = false;
                    parsed
                }
                None => {
                    self.copied = true;
                    parse_unescaping(s, self.eof, &mut self.unescaped, &mut self.fields)
                }
            };
            match parsed {
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
                    (self.record_start, self.record_len) = (self.start, consumed);
                    self.start += consumed;
                    return Ok(Some(line));
                }
                Parsed::Incomplete { .. } => self.fill()?,
            }
        }
    }

    /// The record the last [`RecordReader::read`] returned (empty before the first).
    pub fn record(&self) -> Record<'_> {
        let text = match self.copied {
            true => &self.unescaped[..],
            false => &self.buf[self.record_start..self.record_start + self.record_len],
        };
        Record { text, fields: &self.fields }
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

/// One record from the start of `s` (which is not a line end), its fields as ranges of `s`:
/// `None` as soon as a field's contents are not one piece of `s` (a doubled quote, or text
/// after a closing quote), for [`parse_unescaping`] to do. `eof`: nothing follows `s`, so a
/// record running to its end ends there; otherwise that is [`Parsed::Incomplete`].
fn parse_in_place(s: &[u8], eof: bool, fields: &mut Vec<Range<usize>>) -> Option<Parsed> {
    fields.clear();
    let mut line_ends = 0;
    let mut i = 0;
    // Each turn is one field, starting at `i`.
    loop {
        if i == s.len() {
            // After a delimiter: an empty last field (a record never starts at the end).
            return Some(finish(fields, i..i, eof, i, line_ends));
        }
        let (field, stop) = if s[i] == b'"' {
            let open = i + 1;
            let mut j = open;
            let close = loop {
                let Some(p) = find3(b'"', b'\n', b'\r', &s[j..]) else {
                    // Input ending inside quotes ends the field there.
                    return Some(finish(fields, open..s.len(), eof, s.len(), line_ends));
                };
                let at = j + p;
                match s[at] {
                    b'\n' if s[at - 1] == b'\r' => {}
                    b'\n' | b'\r' => line_ends += 1,
                    _ if s.get(at + 1) == Some(&b'"') => return None, // `""`: unescape
                    _ => break at,
                }
                j = at + 1;
            };
            match s.get(close + 1) {
                None => return Some(finish(fields, open..close, eof, s.len(), line_ends)),
                Some(b',' | b'\n' | b'\r') => (open..close, close + 1),
                Some(_) => return None, // text after the closing quote joins the field
            }
        } else {
            match find3(b',', b'\n', b'\r', &s[i..]) {
                None => return Some(finish(fields, i..s.len(), eof, s.len(), line_ends)),
                Some(p) => (i..i + p, i + p),
            }
        };
        fields.push(field);
        i = stop + 1;
        match s[stop] {
            b',' => {}
            b => return Some(Parsed::Record { consumed: i, line_ends: line_ends + 1, ends_with_cr: b == b'\r' }),
        }
    }
}

/// One record from the start of `s`, as [`parse_in_place`] but for any record: the fields are
/// unescaped into `text` and `fields` are ranges of it.
fn parse_unescaping(s: &[u8], eof: bool, text: &mut Vec<u8>, fields: &mut Vec<Range<usize>>) -> Parsed {
    text.clear();
    fields.clear();
    let mut line_ends = 0;
    let mut i = 0;
    // Each turn is one field, starting at `i`; it starts at `text.len()` in `text`.
    loop {
        let start = text.len();
        if i == s.len() {
            return finish(fields, start..start, eof, i, line_ends);
        }
        let quoted = s[i] == b'"';
        if quoted {
            // A quoted field: up to a quote that is not doubled. Line ends inside count.
            i += 1;
            loop {
                let Some(p) = find3(b'"', b'\n', b'\r', &s[i..]) else {
                    text.extend_from_slice(&s[i..]);
                    return finish(fields, start..text.len(), eof, s.len(), line_ends);
                };
                let at = i + p;
                match s[at] {
                    b'\n' if at > 0 && s[at - 1] == b'\r' => {}
                    b'\n' | b'\r' => line_ends += 1,
                    _ => {
                        text.extend_from_slice(&s[i..at]);
                        i = at + 1;
                        if s.get(i) == Some(&b'"') {
                            text.push(b'"');
                            i += 1;
                            continue;
                        }
                        break;
                    }
                }
                text.extend_from_slice(&s[i..=at]);
                i = at + 1;
            }
        }
        // Unquoted text (or text after a closing quote): up to a delimiter or a line end.
        let rest = &s[i..];
        let stop = if quoted && rest.first().is_some_and(|b| matches!(b, b',' | b'\n' | b'\r')) {
            Some(0) // the closing quote ends the field
        } else {
            find3(b',', b'\n', b'\r', rest)
        };
        let Some(p) = stop else {
            text.extend_from_slice(rest);
            return finish(fields, start..text.len(), eof, s.len(), line_ends);
        };
        text.extend_from_slice(&rest[..p]);
        fields.push(start..text.len());
        i += p + 1;
        match rest[p] {
            b',' => {}
            b => return Parsed::Record { consumed: i, line_ends: line_ends + 1, ends_with_cr: b == b'\r' },
        }
    }
}

/// The record ends with the input, its last field being `last`: whole only at the end of the
/// stream.
fn finish(fields: &mut Vec<Range<usize>>, last: Range<usize>, eof: bool, consumed: usize, line_ends: u64) -> Parsed {
    if !eof {
        return Parsed::Incomplete { buffered: consumed };
    }
    fields.push(last);
    Parsed::Record { consumed, line_ends, ends_with_cr: false }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
