//! A line written into room set aside for it: the NDJSON writer's output path.
//!
//! Why not `extend_from_slice` for each of a line's sixty-odd pieces: in the component the
//! `Vec` lives in linear memory, so each append loaded its pointer, length and capacity, checked
//! the capacity and stored the length back (LLVM cannot keep them in registers across copies
//! that might alias them). Here [`Lines::room`] makes room for the whole line at once (a bound
//! its caller computes), the [`Cursor`]'s slice and position stay in locals, each append is one
//! bounds check and a copy, and the length is set once, at the end ([`Lines::keep`]). Safe
//! code: the room must be initialised bytes. A `Vec` zero-fills it each line (a `memory.fill`
//! of twice the line); a [`LineBuffer`] keeps every byte it ever held initialised, so it fills
//! only past its longest so far — once per upload, not once per line.
//!
//! And why pieces: in the component every copy whose length is not a constant is a
//! `memory.copy`, which Cranelift compiles to a call out of the guest into wasmtime — a bounds
//! check, then libc's `memmove` — about seventy instructions whatever the length. Most of a
//! line's strings are short (methods, numbers, enum names, IPs, buckets), so those up to
//! [`SHORT`] bytes are copied as pieces of a constant size (16, 8 or 4 bytes, the last piece
//! overlapping the one before), each a plain load and store inside the guest. Longer strings
//! still take one `memory.copy`, whose `memmove` wins there.

/// Strings longer than this are copied in one piece. Measured with `append`, the `Vec` version
/// (callgrind over the harness load, whole process): 16 → −0.9%, 32 → −1.3%, 64 → −1.2%,
/// 128 → −0.6% against no short path.
const SHORT: usize = 32;

/// Where lines are written: [`Lines::room`] for one, a [`Cursor`] over it, then
/// [`Lines::keep`] what the cursor wrote. Not a function that takes the writing as a closure:
/// LLVM does not inline a closure that large, and one that is not inlined gets the cursor by
/// reference — in memory, where each append loads and stores its position again.
pub trait Lines {
    /// `bound` bytes of room after what is kept (initialised, of any value).
    fn room(&mut self, bound: usize) -> &mut [u8];
    /// Keeps the first `written` bytes of the room last made, of `bound`.
    fn keep(&mut self, bound: usize, written: usize);
}

/// Any `Vec`: the room is zero-filled each time.
impl Lines for Vec<u8> {
    #[inline(always)]
    fn room(&mut self, bound: usize) -> &mut [u8] {
        let start = self.len();
        self.resize(start + bound, 0);
        &mut self[start..]
    }

    #[inline(always)]
    fn keep(&mut self, bound: usize, written: usize) {
        self.truncate(self.len() - bound + written);
    }
}

/// Lines in a buffer whose bytes past the kept ones stay allocated and initialised: the room
/// for a line is what the lines before left there, zero-filled only where the buffer has
/// never been. The classified upload's chunk buffer (the per-line fill of a `Vec` was 3% of
/// the component's CPU time under `wasmtime serve`).
#[derive(Debug, Default)]
pub struct LineBuffer {
    bytes: Vec<u8>,
    kept: usize,
}

impl LineBuffer {
    pub fn with_capacity(capacity: usize) -> Self {
        LineBuffer { bytes: Vec::with_capacity(capacity), kept: 0 }
    }

    /// The lines kept.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.kept]
    }

    pub fn len(&self) -> usize {
        self.kept
    }

    pub fn is_empty(&self) -> bool {
        self.kept == 0
    }

    /// Drops the first `n` bytes kept (a chunk sent), moving the rest to the front.
    pub fn consume(&mut self, n: usize) {
        self.bytes.copy_within(n..self.kept, 0);
        self.kept -= n;
    }

    pub fn clear(&mut self) {
        self.kept = 0;
    }
}

impl Lines for LineBuffer {
    #[inline(always)]
    fn room(&mut self, bound: usize) -> &mut [u8] {
        let end = self.kept + bound;
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        &mut self.bytes[self.kept..end]
    }

    #[inline(always)]
    fn keep(&mut self, bound: usize, written: usize) {
        assert!(written <= bound, "kept more than the room");
        self.kept += written;
    }
}

/// The room left for a line, and how much of it is written. Keep it a local of the function
/// that writes the line, and pass it on only to functions that are inlined: a `&mut Cursor`
/// given to a call puts the position in memory for the whole line (out-of-line helpers take
/// [`Cursor::rest`] and answer how much they wrote, for [`Cursor::advance`]). Writing past the
/// room is a bug, and panics with an index out of range.
pub struct Cursor<'a> {
    room: &'a mut [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    pub fn new(room: &'a mut [u8]) -> Self {
        Cursor { room, at: 0 }
    }

    /// How many bytes of the room are written.
    #[inline(always)]
    pub fn written(&self) -> usize {
        self.at
    }
    /// Appends `bytes`: in pieces in the component (see the module's comment); natively as
    /// one copy, which is inlined there already (the pieces cost the native writer 2% more).
    #[inline(always)]
    pub fn put(&mut self, bytes: &[u8]) {
        if cfg!(target_arch = "wasm32") && bytes.len() <= SHORT {
            self.put_short(bytes);
        } else {
            self.room[self.at..self.at + bytes.len()].copy_from_slice(bytes);
            self.at += bytes.len();
        }
    }

    /// Appends a constant: the compiler copies it in pieces of its own.
    #[inline(always)]
    pub fn put_const<const N: usize>(&mut self, bytes: &[u8; N]) {
        self.room[self.at..self.at + N].copy_from_slice(bytes);
        self.at += N;
    }

    #[inline(always)]
    pub fn byte(&mut self, b: u8) {
        self.room[self.at] = b;
        self.at += 1;
    }

    /// The unwritten room, for a helper that is not inlined.
    #[inline(always)]
    pub fn rest(&mut self) -> &mut [u8] {
        &mut self.room[self.at..]
    }

    /// Counts `n` bytes written into [`Cursor::rest`] as part of the line.
    #[inline(always)]
    pub fn advance(&mut self, n: usize) {
        assert!(n <= self.room.len() - self.at, "advanced past the room");
        self.at += n;
    }

    /// `bytes` (at most [`SHORT`]) as two overlapping pieces of 16, 8 or 4 bytes, or byte by
    /// byte under four.
    #[inline(always)]
    fn put_short(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        if let (Some(first), Some(last)) = (bytes.first_chunk::<16>(), bytes.last_chunk::<16>()) {
            self.pair(first, last, n);
        } else if let (Some(first), Some(last)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
            self.pair(first, last, n);
        } else if let (Some(first), Some(last)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
            self.pair(first, last, n);
        } else {
            for &b in bytes {
                self.byte(b);
            }
        }
    }

    /// `n` bytes (`N..=2N`) given as their first and last `N`: the two pieces overlap in
    /// the middle, where they agree.
    #[inline(always)]
    fn pair<const N: usize>(&mut self, first: &[u8; N], last: &[u8; N], n: usize) {
        let room = &mut self.room[self.at..self.at + n];
        room[..N].copy_from_slice(first);
        room[n - N..].copy_from_slice(last);
        self.at += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length up to well past the short limit, after any amount already in the buffer
    /// and in a line with other pieces: the same bytes as `extend_from_slice`.
    #[test]
    fn appends_exactly_what_extend_from_slice_does() {
        let source: Vec<u8> = (0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        for before in 0..20 {
            for len in 0..=source.len() {
                let bytes = &source[source.len() - len..];
                let mut ours = vec![0xAA; before];
                let mut expected = ours.clone();
                let mut line = Cursor::new(ours.room(len + 7));
                line.byte(b'"');
                line.put_short_or_long(bytes);
                line.put_const(b"\",");
                let n = line.rest().len().min(4);
                line.rest()[..n].copy_from_slice(&b"tail"[..n]);
                line.advance(n);
                let written = line.written();
                ours.keep(len + 7, written);
                expected.push(b'"');
                expected.extend_from_slice(bytes);
                expected.extend_from_slice(b"\",tail");
                assert_eq!(ours, expected, "{before} bytes before, {len} appended");
            }
        }
    }

    impl Cursor<'_> {
        /// Both paths, whatever the target.
        fn put_short_or_long(&mut self, bytes: &[u8]) {
            if bytes.len() <= SHORT {
                self.put_short(bytes);
            } else {
                self.put(bytes);
            }
        }
    }

    /// A line buffer keeps what a `Vec` keeps, though its room holds what earlier lines left
    /// there; consuming a chunk keeps the rest.
    #[test]
    fn a_line_buffer_keeps_what_a_vec_keeps() {
        let (mut buffer, mut vec) = (LineBuffer::default(), Vec::new());
        for (i, line) in ["a long first line", "b", "", "a line longer than all before it"].iter().enumerate() {
            for lines in [&mut buffer as &mut dyn Lines, &mut vec] {
                let bound = line.len() + 5;
                let mut cursor = Cursor::new(lines.room(bound));
                cursor.put(line.as_bytes());
                cursor.byte(b'\n');
                let written = cursor.written();
                lines.keep(bound, written);
            }
            assert_eq!(buffer.as_bytes(), &vec[..], "after line {i}");
        }
        buffer.consume(5);
        vec.drain(..5);
        assert_eq!((buffer.as_bytes(), buffer.len()), (&vec[..], vec.len()));
        buffer.clear();
        assert!(buffer.is_empty());
    }

    #[test]
    #[should_panic(expected = "kept more than the room")]
    fn keeping_more_than_the_room_panics() {
        let mut buffer = LineBuffer::default();
        buffer.room(3);
        buffer.keep(3, 4);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn writing_past_the_bound_panics() {
        Cursor::new(&mut [0; 3]).put(b"four");
    }

    #[test]
    #[should_panic(expected = "advanced past the room")]
    fn advancing_past_the_room_panics() {
        Cursor::new(&mut [0; 3]).advance(4);
    }
}
