//! Test oracle: the line numbering the usage reader used with the csv crate, before
//! [`super::records`] replaced both. `records_tests.rs` holds the new splitter to it.
//!
//! Physical line numbers for CSV records.
//!
//! The csv crate's record positions are taken *before* it skips the `\n` of a CRLF and any
//! blank lines, so in a CRLF file every record would be reported one line early. This reader
//! sits under the csv parser, sees every byte once, and remembers where each line with content
//! begins; the record that starts at or after the previous record's end byte is on that line.
//! Memory is bounded by the parser's read-ahead (a few KiB of lines), not by the file.
//!
//! It drops a leading UTF-8 byte-order mark before the parser sees anything: csv-core strips
//! one only when its first buffer happens to hold all three bytes (and a first read of exactly
//! those three bytes then looks like the end of input), so the result depended on how the
//! stream was chunked — found by the `usage_reader` fuzz target.
//!
//! It also bounds the parser's record buffer: a line longer than [`MAX_LINE_BYTES`] (real lines
//! are a few KiB: URLs, user agents and object names all have small limits) is an I/O error
//! rather than a buffer that grows with a corrupt, newline-free object.

use std::collections::VecDeque;
use std::io::Read;

/// Longest physical line accepted.
pub const MAX_LINE_BYTES: u64 = 1 << 20;

pub(crate) struct LineTracker<R> {
    inner: R,
    offset: u64,
    line_bytes: u64,
    line: u64,
    at_line_start: bool,
    after_cr: bool,
    /// `(byte offset, line)` of the first byte of each line that has content, oldest first.
    starts: VecDeque<(u64, u64)>,
    /// The first bytes of the stream while checking for a byte-order mark: `None` until checked,
    /// then what is still to be handed out (empty once served).
    head: Option<Vec<u8>>,
}

impl<R: Read> LineTracker<R> {
    pub fn new(inner: R) -> Self {
        LineTracker {
            inner,
            offset: 0,
            line_bytes: 0,
            line: 1,
            at_line_start: true,
            after_cr: false,
            starts: VecDeque::new(),
            head: None,
        }
    }

    /// Reads up to three bytes however the stream is chunked; keeps them unless they are a BOM.
    fn check_bom(&mut self) -> std::io::Result<()> {
        let mut head = [0u8; 3];
        let mut filled = 0;
        while filled < head.len() {
            match self.inner.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let head = &head[..filled];
        self.head = Some(if head == b"\xef\xbb\xbf" { Vec::new() } else { head.to_vec() });
        Ok(())
    }

    /// Bytes from the checked head first, then from the stream.
    fn read_inner(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.head.is_none() {
            self.check_bom()?;
        }
        match self.head.as_mut() {
            Some(head) if !head.is_empty() => {
                let n = head.len().min(buf.len());
                buf[..n].copy_from_slice(&head[..n]);
                head.drain(..n);
                Ok(n)
            }
            _ => self.inner.read(buf),
        }
    }

    /// The line of the first content byte at or after `offset` (0 if none was read yet).
    /// Entries before `offset` are dropped: offsets passed in must not decrease.
    pub fn line_at_or_after(&mut self, offset: u64) -> u64 {
        while self.starts.front().is_some_and(|&(start, _)| start < offset) {
            self.starts.pop_front();
        }
        self.starts.front().map_or(0, |&(_, line)| line)
    }
}

impl<R: Read> Read for LineTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.read_inner(buf)?;
        let data = &buf[..n];
        let mut i = 0;
        while i < n {
            match data[i] {
                // CRLF ends one line, so does a lone CR or a lone LF.
                b'\n' if self.after_cr => self.after_cr = false,
                b @ (b'\n' | b'\r') => {
                    self.line += 1;
                    self.line_bytes = 0;
                    self.after_cr = b == b'\r';
                    self.at_line_start = true;
                }
                _ => {
                    if self.at_line_start {
                        self.starts.push_back((self.offset + i as u64, self.line));
                        self.at_line_start = false;
                    }
                    self.after_cr = false;
                    // The rest of the line's content in one (SIMD) search.
                    let len = memchr::memchr2(b'\n', b'\r', &data[i..]).unwrap_or(n - i);
                    self.line_bytes += len as u64;
                    if self.line_bytes > MAX_LINE_BYTES {
                        let message = format!("line {} is longer than {MAX_LINE_BYTES} bytes", self.line);
                        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message));
                    }
                    i += len;
                    continue;
                }
            }
            i += 1;
        }
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (record bytes, line) as the usage reader pairs them.
    fn lines(input: &str) -> Vec<(Vec<u8>, u64)> {
        let mut csv =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(LineTracker::new(input.as_bytes()));
        let mut record = csv::ByteRecord::new();
        let mut out = Vec::new();
        loop {
            let end = csv.position().byte();
            if !csv.read_byte_record(&mut record).unwrap() {
                return out;
            }
            out.push((record.as_slice().to_vec(), csv.get_mut().line_at_or_after(end)));
        }
    }

    #[test]
    fn lf_crlf_cr_blank_lines_and_quoted_newlines() {
        let expect = |v: &[(&str, u64)]| v.iter().map(|(s, l)| (s.as_bytes().to_vec(), *l)).collect::<Vec<_>>();
        assert_eq!(lines("h\na\nb\n"), expect(&[("h", 1), ("a", 2), ("b", 3)]));
        assert_eq!(lines("h\r\na\r\nb"), expect(&[("h", 1), ("a", 2), ("b", 3)]));
        assert_eq!(lines("h\ra\rb\r"), expect(&[("h", 1), ("a", 2), ("b", 3)]));
        assert_eq!(lines("h\n\n\r\na\n\"x\r\ny\"\nb\n\n"), expect(&[("h", 1), ("a", 4), ("x\r\ny", 5), ("b", 7)]));
        assert_eq!(lines("\"a\nb\",\"\nc\"\r\nd"), expect(&[("a\nb\nc", 1), ("d", 4)]));
    }

    #[test]
    fn lines_survive_tiny_reads() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else { return Ok(0) };
                buf[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut t = LineTracker::new(OneByte(b"h\r\n\r\nab\r\nc"));
        let mut sink = Vec::new();
        t.read_to_end(&mut sink).unwrap();
        assert_eq!((t.line_at_or_after(0), t.line_at_or_after(1), t.line_at_or_after(8)), (1, 3, 4));
    }

    #[test]
    fn an_endless_line_is_an_error() {
        let mut input = b"h\n".to_vec();
        input.resize(input.len() + MAX_LINE_BYTES as usize, b'x');
        let mut t = LineTracker::new(input.as_slice());
        t.read_to_end(&mut Vec::new()).unwrap();
        input.push(b'x');
        let err = LineTracker::new(input.as_slice()).read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), format!("line 2 is longer than {MAX_LINE_BYTES} bytes"));
    }
}
