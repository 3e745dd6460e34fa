//! Splitting a stream of Cloud Logging entries into one JSON text per entry, whichever of the
//! two layouts it has — decided from the content, not the name:
//! - **JSON lines**, one `LogEntry` per line, as a Cloud Storage sink writes them;
//! - **one JSON array** of entries, as `gcloud logging read --format=json` prints them.
//!
//! Memory is bounded: one read buffer and one entry of at most [`MAX_ENTRY_BYTES`] (Cloud
//! Logging's own limit is 256 KiB–512 KiB per entry); a longer one is skipped to its end and
//! reported, never buffered. The array splitter tracks only string and nesting state, so an
//! element is handed out without being parsed twice.

use std::io::Read;

/// Longest entry accepted: Cloud Logging refuses larger entries, so a longer line is damage.
pub const MAX_ENTRY_BYTES: usize = 512 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// One entry's text, or why there is none where one was expected.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed {
    /// The entry's bytes (in [`EntryFramer::entry`]) and the line it starts on.
    Entry { line: u64 },
    /// Something that cannot be an entry; reading goes on after it.
    Damaged { line: u64, reason: String },
}

/// Which layout the stream has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    JsonLines,
    JsonArray,
}

/// What ends the stream early: the array layout cannot resynchronise after these.
#[derive(Debug)]
pub enum FramingError {
    Io(std::io::Error),
    /// The array is not closed, or text follows it.
    BrokenArray {
        line: u64,
        reason: String,
    },
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FramingError::Io(e) => write!(f, "{e}"),
            FramingError::BrokenArray { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

pub struct EntryFramer<R> {
    inner: R,
    /// The read buffer: allocated and zeroed once, then reused ([`READ_CHUNK`] bytes);
    /// `buf[pos..end]` is what is left of the last read.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// Line of `buf[pos]`.
    line: u64,
    layout: Option<Layout>,
    /// Array layout: the closing `]` was seen.
    closed: bool,
    entry: Vec<u8>,
    bytes_read: u64,
}

impl<R: Read> EntryFramer<R> {
    pub fn new(inner: R) -> Self {
        EntryFramer {
            inner,
            buf: Vec::new(),
            pos: 0,
            end: 0,
            eof: false,
            line: 1,
            layout: None,
            closed: false,
            entry: Vec::new(),
            bytes_read: 0,
        }
    }

    /// The text of the entry the last [`EntryFramer::next_entry`] framed.
    pub fn entry(&self) -> &[u8] {
        &self.entry
    }

    pub fn layout(&self) -> Option<Layout> {
        self.layout
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next entry, or `None` at the end of the stream.
    pub fn next_entry(&mut self) -> Result<Option<Framed>, FramingError> {
        if self.layout.is_none() {
            // A UTF-8 byte-order mark, however the reads split it.
            if self.peek()? == Some(0xEF) {
                for byte in [0xEF, 0xBB, 0xBF] {
                    if self.peek()? == Some(byte) {
                        self.advance(1);
                    }
                }
            }
            self.skip_whitespace()?;
            let Some(first) = self.peek()? else { return Ok(None) };
            self.layout = Some(if first == b'[' {
                self.advance(1);
                Layout::JsonArray
            } else {
                Layout::JsonLines
            });
        }
        match self.layout {
            Some(Layout::JsonArray) => self.next_element(),
            _ => self.next_line(),
        }
    }

    fn next_line(&mut self) -> Result<Option<Framed>, FramingError> {
        loop {
            self.entry.clear();
            let line = self.line;
            let mut too_long = false;
            loop {
                if self.pos == self.end && !self.fill()? {
                    break;
                }
                let available = &self.buf[self.pos..self.end];
                let (take, newline) = match memchr::memchr(b'\n', available) {
                    Some(i) => (i, true),
                    None => (available.len(), false),
                };
                if !too_long {
                    if self.entry.len() + take > MAX_ENTRY_BYTES {
                        too_long = true;
                        self.entry.clear();
                    } else {
                        self.entry.extend_from_slice(&available[..take]);
                    }
                }
                self.pos += take;
                if newline {
                    self.pos += 1;
                    self.line += 1;
                    break;
                }
            }
            if too_long {
                return Ok(Some(Framed::Damaged {
                    line,
                    reason: format!(
                        "the line is longer than {} KiB (Cloud Logging's entry limit)",
                        MAX_ENTRY_BYTES / 1024
                    ),
                }));
            }
            let text = trim(&self.entry);
            if !text.is_empty() {
                let (start, len) = (text.as_ptr() as usize - self.entry.as_ptr() as usize, text.len());
                self.entry.drain(..start);
                self.entry.truncate(len);
                return Ok(Some(Framed::Entry { line }));
            }
            if self.pos == self.end && self.eof {
                return Ok(None);
            }
        }
    }

    fn next_element(&mut self) -> Result<Option<Framed>, FramingError> {
        self.entry.clear();
        // Between elements: whitespace and one comma; then an element or the closing `]`.
        self.skip_whitespace()?;
        if self.closed {
            return match self.peek()? {
                None => Ok(None),
                Some(_) => Err(FramingError::BrokenArray {
                    line: self.line,
                    reason: "text after the closing ] of the JSON array".into(),
                }),
            };
        }
        match self.peek()? {
            None => {
                return Err(FramingError::BrokenArray {
                    line: self.line,
                    reason: "the JSON array ends without its closing ] (a truncated file?)".into(),
                });
            }
            Some(b']') => {
                self.advance(1);
                self.closed = true;
                return self.next_element();
            }
            Some(b',') => {
                self.advance(1);
                self.skip_whitespace()?;
                if self.peek()?.is_none() {
                    return Err(FramingError::BrokenArray {
                        line: self.line,
                        reason: "the JSON array ends without its closing ] (a truncated file?)".into(),
                    });
                }
            }
            Some(_) => {}
        }
        let line = self.line;
        let (mut depth, mut in_string, mut escaped, mut too_long) = (0u32, false, false, false);
        loop {
            let Some(b) = self.peek()? else {
                return Err(FramingError::BrokenArray {
                    line,
                    reason: "the JSON array ends inside an entry (a truncated file?)".into(),
                });
            };
            if !in_string && depth == 0 && (b == b',' || b == b']') {
                break;
            }
            self.advance(1);
            if b == b'\n' {
                self.line += 1;
            }
            if !too_long {
                if self.entry.len() == MAX_ENTRY_BYTES {
                    too_long = true;
                    self.entry.clear();
                } else {
                    self.entry.push(b);
                }
            }
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if too_long {
            return Ok(Some(Framed::Damaged {
                line,
                reason: format!(
                    "the entry is longer than {} KiB (Cloud Logging's entry limit)",
                    MAX_ENTRY_BYTES / 1024
                ),
            }));
        }
        let len = trim(&self.entry).len();
        self.entry.truncate(len);
        if self.entry.is_empty() {
            return Ok(Some(Framed::Damaged { line, reason: "an empty element in the JSON array".into() }));
        }
        Ok(Some(Framed::Entry { line }))
    }

    fn skip_whitespace(&mut self) -> Result<(), FramingError> {
        while let Some(b) = self.peek()? {
            match b {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => return Ok(()),
            }
            self.advance(1);
        }
        Ok(())
    }

    fn peek(&mut self) -> Result<Option<u8>, FramingError> {
        if self.pos == self.end && !self.fill()? {
            return Ok(None);
        }
        Ok(Some(self.buf[self.pos]))
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
    }

    /// Refills the buffer when it is used up; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, FramingError> {
        if self.eof {
            return Ok(false);
        }
        self.pos = 0;
        self.end = 0;
        // Zeroed once: resizing on every refill would cost READ_CHUNK bytes of writes per
        // `read`, whatever it returned (a stream handing out a few KiB at a time paid many
        // times its own size).
        if self.buf.len() != READ_CHUNK {
            self.buf.resize(READ_CHUNK, 0);
        }
        let n = loop {
            match self.inner.read(&mut self.buf) {
                Ok(n) => break n.min(READ_CHUNK),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FramingError::Io(e)),
            }
        };
        self.end = n;
        self.bytes_read += n as u64;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        Ok(true)
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b" \t\r\n".contains(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b" \t\r\n".contains(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames `input` read `chunk` bytes at a time (every split of the stream must frame alike).
    fn frame(input: &[u8], chunk: usize) -> Result<Vec<(u64, String)>, String> {
        struct Chunked<'a>(&'a [u8], usize);
        impl Read for Chunked<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut framer = EntryFramer::new(Chunked(input, chunk));
        let mut out = Vec::new();
        loop {
            match framer.next_entry() {
                Ok(Some(Framed::Entry { line })) => {
                    out.push((line, String::from_utf8_lossy(framer.entry()).into_owned()))
                }
                Ok(Some(Framed::Damaged { line, reason })) => out.push((line, format!("DAMAGED {reason}"))),
                Ok(None) => return Ok(out),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    #[test]
    fn lines_and_arrays_frame_the_same_entries_however_the_stream_is_split() {
        let lines = b"{\"a\":1}\n\n{\"b\":\"x\\\"]},\"}\r\n  {\"c\":[1,{\"d\":2}]}";
        let array = b"\xEF\xBB\xBF[\n  {\"a\":1},\n\n  {\"b\":\"x\\\"]},\"},\n  {\"c\":[1,{\"d\":2}]}\n]\n";
        for chunk in [1, 2, 3, 7, 64 * 1024] {
            let l = frame(lines, chunk).unwrap();
            let a = frame(array, chunk).unwrap();
            let texts = |v: &[(u64, String)]| v.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>();
            assert_eq!(texts(&l), [r#"{"a":1}"#, r#"{"b":"x\"]},"}"#, r#"{"c":[1,{"d":2}]}"#], "chunk {chunk}");
            assert_eq!(texts(&a), texts(&l), "chunk {chunk}");
            assert_eq!(l.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 3, 4]);
            assert_eq!(a.iter().map(|e| e.0).collect::<Vec<_>>(), [2, 4, 5]);
        }
    }

    #[test]
    fn an_overlong_line_is_reported_and_reading_goes_on() {
        let mut input = vec![b'{'; MAX_ENTRY_BYTES + 100];
        input.extend_from_slice(b"\n{\"ok\":1}\n");
        let framed = frame(&input, 4096).unwrap();
        assert!(framed[0].1.starts_with("DAMAGED the line is longer than 512 KiB"), "{:?}", framed[0].1);
        assert_eq!(framed[1], (2, r#"{"ok":1}"#.to_string()));
    }

    #[test]
    fn a_broken_array_ends_the_stream_with_a_reason() {
        let truncated = frame(b"[{\"a\":1},{\"b\":", 5).unwrap_err();
        assert!(truncated.contains("ends inside an entry"), "{truncated}");
        let unclosed = frame(b"[{\"a\":1},\n", 5).unwrap_err();
        assert!(unclosed.contains("without its closing ]"), "{unclosed}");
        let trailing = frame(b"[{\"a\":1}] {\"b\":2}", 5).unwrap_err();
        assert!(trailing.contains("text after the closing ]"), "{trailing}");
        assert_eq!(frame(b"[]", 1).unwrap(), []);
        assert_eq!(frame(b"", 1).unwrap(), []);
        assert_eq!(frame(b"  \n\n", 1).unwrap(), []);
    }
}
