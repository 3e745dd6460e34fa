//! A [`RegistryEvent`] as one NDJSON line, written by hand: this is the classified load's hot path
//! (every row of every log object becomes one line of ~1 KB).
//!
//! The derived `Serialize` of [`RegistryEvent`] stays the specification: the tests below and the
//! harness hold this writer byte-identical to `serde_json::to_writer` on every classification
//! fixture, on arbitrary field contents and on whole synthetic logs. Going through serde costs
//! about twice as much, mostly in escaping the 30 constant keys and in `collect_str`'s formatting
//! machinery for the timestamp and the image; here keys are constant bytes, strings that need no
//! escape (nearly all) are copied in one piece, and numbers go through `itoa`.

use serde::Serialize;

use crate::cursor::Cursor;
/// Where [`write_line`] writes: any `Vec<u8>`, or a [`LineBuffer`] (no fill per line).
pub use crate::cursor::{LineBuffer, Lines};
use crate::registry_event::{EventTime, ImageRef, RegistryEvent};
use crate::swar;

/// Appends `event` as one JSON object and a `\n` to `out`.
pub fn write_line(event: &RegistryEvent<'_>, out: &mut impl Lines) {
    let bound = room_for(event);
    let mut line = Cursor::new(out.room(bound));
    fields(event, &mut line);
    let written = line.written();
    out.keep(bound, written);
}

/// Room for any line of `event`: its strings escaped at their longest (`\u00XX`, six bytes a
/// byte) and [`FIXED_ROOM`] for the rest (a test holds the rest well under it).
#[inline(always)]
fn room_for(event: &RegistryEvent<'_>) -> usize {
    let len = |s: Option<&str>| s.map_or(0, str::len);
    let strings = len(event.registry_host)
        + len(event.project.as_deref())
        + len(event.repository)
        + event.image.map_or(0, |image| image.host.len() + image.repository.len())
        + len(event.digest)
        + event.method.len()
        + event.operation.len()
        + len(event.bucket)
        + len(event.object)
        + len(event.client_version)
        + event.user_agent.len()
        + event.client_ip.len()
        + event.request_id.len()
        + event.source_bucket.len()
        + event.source_object.len()
        + len(event.principal)
        + len(event.reference);
    FIXED_ROOM + 6 * strings
}

/// Keys, punctuation, numbers, enum names, the time and `null`s: a line's bytes besides its
/// strings' contents (810 at most today; the room is zero-filled, so not far more).
const FIXED_ROOM: usize = 1024;

#[inline(always)]
fn fields(event: &RegistryEvent<'_>, out: &mut Cursor<'_>) {
    out.put_const(b"{\"event_time\":");
    event_time(out, event.event_time);
    out.put_const(b",\"time_micros\":");
    int(out, event.time_micros);
    out.put_const(b",\"registry_host\":");
    opt_str(out, event.registry_host);
    out.put_const(b",\"project\":");
    opt_str(out, event.project.as_deref());
    out.put_const(b",\"repository\":");
    opt_str(out, event.repository);
    out.put_const(b",\"image\":");
    match event.image {
        Some(image) => image_ref(out, image),
        None => out.put_const(b"null"),
    }
    out.put_const(b",\"digest\":");
    opt_str(out, event.digest);
    out.put_const(b",\"target\":");
    unit(out, &event.target);
    out.put_const(b",\"action\":");
    unit(out, &event.action);
    if event.success {
        out.put_const(b",\"success\":true");
    } else {
        out.put_const(b",\"success\":false");
    }
    out.put_const(b",\"status\":");
    int(out, event.status);
    out.put_const(b",\"method\":");
    string(out, event.method);
    out.put_const(b",\"operation\":");
    string(out, event.operation);
    out.put_const(b",\"bucket\":");
    opt_str(out, event.bucket);
    out.put_const(b",\"object\":");
    opt_str(out, event.object);
    out.put_const(b",\"client_family\":");
    unit(out, &event.client_family);
    out.put_const(b",\"client_version\":");
    opt_str(out, event.client_version);
    out.put_const(b",\"user_agent\":");
    string(out, event.user_agent);
    out.put_const(b",\"caller_class\":");
    unit(out, &event.caller_class);
    out.put_const(b",\"client_ip\":");
    string(out, event.client_ip);
    out.put_const(b",\"request_bytes\":");
    int(out, event.request_bytes);
    out.put_const(b",\"response_bytes\":");
    int(out, event.response_bytes);
    out.put_const(b",\"time_taken_micros\":");
    int(out, event.time_taken_micros);
    out.put_const(b",\"request_id\":");
    string(out, event.request_id);
    if event.invalid_utf8 {
        out.put_const(b",\"invalid_utf8\":true");
    } else {
        out.put_const(b",\"invalid_utf8\":false");
    }
    out.put_const(b",\"source_bucket\":");
    string(out, event.source_bucket);
    out.put_const(b",\"source_object\":");
    string(out, event.source_object);
    out.put_const(b",\"source_generation\":");
    match event.source_generation {
        Some(generation) => int(out, generation),
        None => out.put_const(b"null"),
    }
    out.put_const(b",\"source_row\":");
    int(out, event.source_row);
    out.put_const(b",\"source_line\":");
    int(out, event.source_line);
    out.put_const(b",\"source_kind\":");
    unit(out, &event.source_kind);
    out.put_const(b",\"principal\":");
    opt_str(out, event.principal);
    out.put_const(b",\"artifact_format\":");
    match &event.artifact_format {
        Some(format) => unit(out, format),
        None => out.put_const(b"null"),
    }
    out.put_const(b",\"reference\":");
    opt_str(out, event.reference);
    out.put_const(b"}\n");
}

#[inline(always)]
fn int(out: &mut Cursor<'_>, n: impl itoa::Integer) {
    out.put(itoa::Buffer::new().format(n).as_bytes());
}

/// A unit enum (action, target, client family …) under its serde name: the derive's renaming
/// stays the one list of names, read through [`VariantName`] rather than serde_json's
/// serialiser (six enums a line made that a tenth of the writer's time).
#[inline(always)]
fn unit(out: &mut Cursor<'_>, value: &impl Serialize) {
    let name = value.serialize(VariantName).expect("the event's enums are unit variants");
    // The names are `rename_all` spellings of Rust identifiers (`[a-z0-9_-]`), so nothing in
    // them is escaped: copied as they are, without the escape check's call (seven a line).
    debug_assert!(!name.bytes().any(needs_escape), "{name}");
    out.byte(b'"');
    out.put(name.as_bytes());
    out.byte(b'"');
}

/// A serde serialiser that accepts only a unit variant and answers its (renamed) name.
struct VariantName;

/// A value that is not a unit variant (a programming error: [`unit`]'s callers pass enums).
#[derive(Debug)]
struct NotAUnitVariant;

impl std::fmt::Display for NotAUnitVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a unit variant")
    }
}

impl std::error::Error for NotAUnitVariant {}

impl serde::ser::Error for NotAUnitVariant {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotAUnitVariant
    }
}

/// The serialiser methods [`VariantName`] refuses: `name(argument types…)`.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<&'static str, NotAUnitVariant> {
            Err(NotAUnitVariant)
        })*
    };
}

impl serde::Serializer for VariantName {
    type Ok = &'static str;
    type Error = NotAUnitVariant;
    type SerializeSeq = serde::ser::Impossible<&'static str, NotAUnitVariant>;
    type SerializeTuple = serde::ser::Impossible<&'static str, NotAUnitVariant>;
    type SerializeTupleStruct = serde::ser::Impossible<&'static str, NotAUnitVariant>;
    type SerializeTupleVariant = serde::ser::Impossible<&'static str, NotAUnitVariant>;
    type SerializeMap = serde::ser::Impossible<&'static str, NotAUnitVariant>;
    type SerializeStruct = serde::ser::Impossible<&'static str, NotAUnitVariant>;
    type SerializeStructVariant = serde::ser::Impossible<&'static str, NotAUnitVariant>;

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<&'static str, NotAUnitVariant> {
        Ok(variant)
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<&'static str, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotAUnitVariant> {
        Err(NotAUnitVariant)
    }
}

/// Inline, as [`string`] (measured: 2% fewer of the component's instructions for 10 KB of code).
#[inline(always)]
fn opt_str(out: &mut Cursor<'_>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.put_const(b"null"),
    }
}

/// Inline at each of the line's strings: as a function (what LLVM chose for `string` once the
/// escape check was inlined into it) its entry and exit cost the component ~40 instructions a call.
#[inline(always)]
fn string(out: &mut Cursor<'_>, s: &str) {
    out.byte(b'"');
    escaped(out, s.as_bytes());
    out.byte(b'"');
}

/// The contents of a JSON string, escaped exactly as serde_json does (`\"`, `\\`, the short
/// forms `\b \t \n \f \r`, `\u00XX` with lower-case hex for other control characters; all else,
/// including non-ASCII UTF-8, verbatim).
#[inline(always)]
fn escaped(out: &mut Cursor<'_>, bytes: &[u8]) {
    // Nearly every string needs no escape: one check, one copy (each copy is a call, and in the
    // component a `memory.copy` out of the guest, so copying piecewise costs per piece). Inline
    // at each of the ~20 strings of a line: as a function of its own, its entry and exit (five
    // saved registers, a stack check) were two thirds of its instructions in the component.
    if any_needs_escape(bytes) {
        let written = escaped_runs(out.rest(), bytes);
        out.advance(written);
    } else {
        out.put(bytes);
    }
}

/// A string that needs escapes, written into `room`; answers how many bytes it wrote. The run
/// up to the next byte to escape is copied, found a word at a time (Docker's user agents quote
/// their parentheses, `\(linux\)`, so this is not a rare path). Out of line, so it takes the
/// room rather than the line's cursor (see [`Cursor`]), with a cursor of its own over it.
#[inline(never)]
fn escaped_runs(room: &mut [u8], bytes: &[u8]) -> usize {
    let mut out = Cursor::new(room);
    let mut put = |piece: &[u8]| out.put(piece);
    let mut start = 0;
    while let Some(i) = first_escape(&bytes[start..]).map(|at| start + at) {
        put(&bytes[start..i]);
        match bytes[i] {
            b'"' => put(b"\\\""),
            b'\\' => put(b"\\\\"),
            0x08 => put(b"\\b"),
            b'\t' => put(b"\\t"),
            b'\n' => put(b"\\n"),
            0x0c => put(b"\\f"),
            b'\r' => put(b"\\r"),
            b => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                put(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            }
        }
        start = i + 1;
    }
    put(&bytes[start..]);
    out.written()
}

/// Where the first byte that needs an escape is: eight bytes at a time. [`escape_bits`] can
/// flag a byte above a true one (a borrow carries upwards), never below it, so its lowest flag
/// is exact.
fn first_escape(bytes: &[u8]) -> Option<usize> {
    let (words, rest) = bytes.as_chunks::<8>();
    for (n, word) in words.iter().enumerate() {
        let bits = escape_bits(swar::word(*word));
        if bits != 0 {
            return Some(n * 8 + swar::first(bits));
        }
    }
    let tail = words.len() * 8;
    rest.iter().position(|&b| needs_escape(b)).map(|at| tail + at)
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any byte of `bytes` needs an escape. In the component, sixteen bytes at a time with
/// `simd128` compares (with the eight-byte word test below, `escaped` was the component's
/// largest function after the CRC32C); strings shorter than a vector, and native builds, use
/// the word test.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
fn any_needs_escape(bytes: &[u8]) -> bool {
    use core::arch::wasm32::{u8x16_eq, u8x16_lt, u8x16_splat, v128, v128_any_true, v128_or};
    fn test(block: &[u8; 16]) -> v128 {
        let v = crate::simd128::load(block);
        let control = u8x16_lt(v, u8x16_splat(0x20));
        let quote = u8x16_eq(v, u8x16_splat(b'"'));
        let backslash = u8x16_eq(v, u8x16_splat(b'\\'));
        v128_or(control, v128_or(quote, backslash))
    }
    let Some(last) = bytes.last_chunk::<16>() else {
        return any_needs_escape_by_words(bytes);
    };
    let (blocks, _) = bytes.as_chunks::<16>();
    v128_any_true(blocks.iter().fold(test(last), |found, block| v128_or(found, test(block))))
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
fn any_needs_escape(bytes: &[u8]) -> bool {
    any_needs_escape_by_words(bytes)
}

/// Whether any byte of `bytes` needs an escape: eight bytes at a time ([`escape_bits`]), the
/// last word overlapping the one before rather than a byte loop, and no branch per word. (A
/// per-byte test folded over a block looks vectorisable, but LLVM turns it back into a branch
/// per byte for wasm: eighteen instructions a byte in the component.)
fn any_needs_escape_by_words(bytes: &[u8]) -> bool {
    swar::any_word(bytes, escape_bits).map_or_else(|| bytes.iter().any(|&b| needs_escape(b)), |bits| bits != 0)
}

/// The top bit of each byte of `word` that is below 0x20, `"` or `\\`, and no other bit (the
/// lowest flag exact: see [`swar::eq`]).
fn escape_bits(word: u64) -> u64 {
    swar::below(word, 0x20) | swar::eq(word, b'"') | swar::eq(word, b'\\')
}

/// `"HOST/REPOSITORY"` with the host lower-cased, as [`ImageRef`]'s `Display`.
#[inline(always)]
fn image_ref(out: &mut Cursor<'_>, image: ImageRef<'_>) {
    out.byte(b'"');
    if image.host.bytes().any(|b| b.is_ascii_uppercase()) {
        escaped(out, image.host.to_ascii_lowercase().as_bytes());
    } else {
        escaped(out, image.host.as_bytes());
    }
    out.byte(b'/');
    escaped(out, image.repository.as_bytes());
    out.byte(b'"');
}

/// `"YYYY-MM-DDTHH:MM:SS.ffffffZ"`, as [`EventTime`]'s `Display`.
#[inline(always)]
fn event_time(out: &mut Cursor<'_>, time: EventTime) {
    let (secs, micros) = (time.0.div_euclid(1_000_000), time.0.rem_euclid(1_000_000));
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(secs) else {
        // Out of `time`'s range (the reader never hands such a row out): Display's fallback.
        return string(out, &time.to_string());
    };
    // One calendar computation for the three (each of `month()` and `day()` redoes it).
    let ((year, month, day), (hour, minute, second)) = (t.to_calendar_date(), t.to_hms());
    if !(0..=9999).contains(&year) {
        return string(out, &time.to_string());
    }
    let (year, micros) = (year as usize, micros as usize);
    let mut text = *b"\"0000-00-00T00:00:00.000000Z\"";
    // Two digits at a time from a table: a division by 100 per pair rather than by 10 per digit.
    let mut two = |at: usize, n: usize| text[at..at + 2].copy_from_slice(&DIGIT_PAIRS[n % 100]);
    two(1, year / 100);
    two(3, year);
    two(6, usize::from(u8::from(month)));
    two(9, usize::from(day));
    two(12, usize::from(hour));
    two(15, usize::from(minute));
    two(18, usize::from(second));
    two(21, micros / 10_000);
    two(23, micros / 100);
    two(25, micros);
    out.put_const(&text);
}

/// `DIGIT_PAIRS[n]`: `n` (below 100) as two ASCII digits.
const DIGIT_PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0u8; 2]; 100];
    let mut n = 0;
    while n < 100 {
        pairs[n] = [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        n += 1;
    }
    pairs
};

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ObjectRef;
    use crate::usage::{UsageRow, classify};

    fn serde_line(event: &RegistryEvent<'_>) -> Vec<u8> {
        let mut line = serde_json::to_vec(event).unwrap();
        line.push(b'\n');
        line
    }

    fn ours(event: &RegistryEvent<'_>) -> Vec<u8> {
        let mut line = Vec::new();
        write_line(event, &mut line);
        line
    }

    fn source() -> ObjectRef {
        ObjectRef {
            bucket: "demo-gcr-logs".into(),
            name: "accessLog_usage_2024_03_11_14_00_00_00cbe5_v0".into(),
            generation: Some(7),
        }
    }

    #[test]
    fn every_classification_fixture_serialises_as_serde_does() {
        let mut checked = 0;
        let source = source();
        for row in crate::usage::fixture_tests::fixture_rows() {
            let event = classify(&row, &source);
            assert_eq!(String::from_utf8(ours(&event)).unwrap(), String::from_utf8(serde_line(&event)).unwrap());
            checked += 1;
        }
        assert!(checked >= 60, "{checked} fixture rows");
    }

    #[test]
    fn escapes_and_edge_values_match_serde() {
        let mut row = UsageRow {
            cs_user_agent: "a\"b\\c\u{8}\t\n\u{c}\r\u{1}\u{1f}\u{7f}é😀".into(),
            cs_object: "containers/images/x\u{0}".into(),
            cs_bucket: "artifacts.demo-project.appspot.com".into(),
            time_micros: crate::usage::row::MIN_TIME_MICROS,
            cs_bytes: u64::MAX,
            ..UsageRow::default()
        };
        for time in
            [crate::usage::row::MIN_TIME_MICROS, -1, 0, 1_710_166_032_118_406, crate::usage::row::MAX_TIME_MICROS]
        {
            row.time_micros = time;
            let mut source = source();
            for generation in [None, Some(u64::MAX)] {
                source.generation = generation;
                let event = classify(&row, &source);
                assert_eq!(ours(&event), serde_line(&event), "{time} {generation:?}");
            }
        }
        let source = source();
        let image = RegistryEvent {
            image: Some(ImageRef { host: "EU.GCR.io", repository: "p/a\"pp" }),
            ..classify(&row, &source)
        };
        assert_eq!(ours(&image), serde_line(&image));
    }

    /// The room set aside for a line is enough: a line whose strings are all empty, and whose
    /// numbers, time, enum names and `null`s are the longest there are, takes well under
    /// [`FIXED_ROOM`] (the strings' contents are bounded separately, at their worst escape).
    #[test]
    fn the_room_holds_the_longest_line() {
        use crate::registry_event::{Action, ArtifactFormat, CallerClass, SourceKind, Target};
        use crate::usage::ClientFamily;
        let source = ObjectRef { bucket: String::new(), name: String::new(), generation: Some(u64::MAX) };
        let row =
            UsageRow { cs_bytes: u64::MAX, sc_bytes: u64::MAX, time_taken_micros: u64::MAX, ..UsageRow::default() };
        let longest = RegistryEvent {
            event_time: EventTime(i64::MIN),
            time_micros: i64::MIN,
            target: Target::Repository,
            action: Action::Download,
            success: false,
            status: u16::MAX,
            client_family: ClientFamily::GoContainerregistry,
            caller_class: CallerClass::GoogleInternalOrAutomation,
            invalid_utf8: false,
            source_row: u64::MAX,
            source_line: u64::MAX,
            source_kind: SourceKind::UsageLog,
            artifact_format: Some(ArtifactFormat::Generic),
            registry_host: None,
            project: None,
            repository: None,
            image: None,
            digest: None,
            bucket: None,
            object: None,
            client_version: None,
            principal: None,
            reference: None,
            ..classify(&row, &source)
        };
        let line = ours(&longest);
        assert_eq!(line, serde_line(&longest));
        assert!(line.len() + 128 <= FIXED_ROOM, "{} bytes", line.len());
        let names = [
            serde_json::to_string(&CallerClass::GoogleInternalOrAutomation).unwrap(),
            serde_json::to_string(&ClientFamily::GoContainerregistry).unwrap(),
        ];
        // Longer enum names than these would need a look at FIXED_ROOM.
        assert!(names.iter().all(|n| n.len() < 40), "{names:?}");

        // And every string at its worst escape (`\u0001`, six bytes a byte) on top.
        let worst = "\u{1}".repeat(40);
        let w = worst.as_str();
        let escaped = RegistryEvent {
            registry_host: Some(w),
            project: Some(w.into()),
            repository: Some(w),
            image: Some(ImageRef { host: w, repository: w }),
            digest: Some(w),
            method: w,
            operation: w,
            bucket: Some(w),
            object: Some(w),
            client_version: Some(w),
            user_agent: w,
            client_ip: w,
            request_id: w,
            source_bucket: w,
            source_object: w,
            principal: Some(w),
            reference: Some(w),
            ..longest
        };
        assert_eq!(ours(&escaped), serde_line(&escaped));
    }

    #[test]
    fn variant_names_are_serdes_and_nothing_else_passes() {
        use crate::registry_event::{Action, CallerClass, Target};
        use crate::usage::ClientFamily;
        let name = |v: &dyn erased::Unit| v.name();
        for (value, json) in [
            (name(&Action::Pull), serde_json::to_string(&Action::Pull).unwrap()),
            (name(&Target::Blob), serde_json::to_string(&Target::Blob).unwrap()),
            (
                name(&CallerClass::GoogleInternalOrAutomation),
                serde_json::to_string(&CallerClass::GoogleInternalOrAutomation).unwrap(),
            ),
            (
                name(&ClientFamily::GoContainerregistry),
                serde_json::to_string(&ClientFamily::GoContainerregistry).unwrap(),
            ),
        ] {
            assert_eq!(format!("\"{value}\""), json);
        }
        assert!(7u8.serialize(VariantName).is_err());
        assert!("pull".serialize(VariantName).is_err());
        assert!(Some(Action::Pull).serialize(VariantName).is_err());
    }

    /// `dyn`-compatible access to a unit enum's name, for the table above.
    mod erased {
        pub trait Unit {
            fn name(&self) -> &'static str;
        }
        impl<T: serde::Serialize> Unit for T {
            fn name(&self) -> &'static str {
                self.serialize(super::VariantName).unwrap()
            }
        }
    }

    #[test]
    fn the_block_test_finds_exactly_the_bytes_to_escape() {
        // Every byte value at every position of strings around the block size, among ASCII
        // and among non-ASCII bytes (UTF-8 continuation and lead bytes).
        for len in [1, 7, 15, 16, 17, 31, 32, 33, 40] {
            for filler in [b'a', 0xc3, 0x9f, 0xff] {
                for b in 0..=255u8 {
                    for at in 0..len {
                        let mut s = vec![filler; len];
                        s[at] = b;
                        assert_eq!(any_needs_escape(&s), needs_escape(b), "byte {b:#04x} at {at} of {len}");
                    }
                }
                assert!(!any_needs_escape(&vec![filler; len]));
            }
        }
        assert!(!any_needs_escape(b""));
    }

    #[test]
    fn the_first_byte_to_escape_is_found_exactly() {
        for len in [1, 7, 8, 9, 15, 16, 17, 24, 33] {
            for b in 0..=255u8 {
                for at in 0..len {
                    // A byte to escape below `at` would be found first: put them only above.
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    for later in s.iter_mut().skip(at + 1).step_by(3) {
                        *later = [b'"', 0x01, b'\\', 0xc3][usize::from(b) % 4];
                    }
                    let expected = s.iter().position(|&c| needs_escape(c));
                    assert_eq!(first_escape(&s), expected, "byte {b:#04x} at {at} of {len}: {s:?}");
                }
            }
        }
        assert_eq!(first_escape(b""), None);
    }

    proptest! {
        /// Strings dense with bytes to escape, of any length: escaped as serde_json does.
        #[test]
        fn escape_heavy_strings_match_serde(text in "[a\"\\\\\n\t\x01\x1fé😀]{0,80}") {
            let mut out = vec![0; 2 + 6 * text.len()];
            let mut line = Cursor::new(&mut out);
            string(&mut line, &text);
            let written = line.written();
            out.truncate(written);
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&text).unwrap());
        }

        #[test]
        fn arbitrary_rows_serialise_as_serde_does(
            text in proptest::collection::vec("\\PC{0,12}|[\\x00-\\x7f]{0,12}", 8),
            time in crate::usage::row::MIN_TIME_MICROS..=crate::usage::row::MAX_TIME_MICROS,
            numbers in proptest::array::uniform3(any::<u64>()),
            status in any::<u16>(),
        ) {
            let referer = format!("https://{}gcr.io/v2/{}/blobs/sha256:{}", text[0], text[1], "a".repeat(64));
            let row = UsageRow {
                time_micros: time,
                c_ip: text[2].clone().into(),
                cs_method: text[3].clone().into(),
                cs_uri: text[4].clone().into(),
                sc_status: status,
                cs_bytes: numbers[0],
                sc_bytes: numbers[1],
                time_taken_micros: numbers[2],
                cs_referer: referer.into(),
                cs_user_agent: text[5].clone().into(),
                s_request_id: text[6].clone().into(),
                cs_operation: text[7].clone().into(),
                cs_bucket: "artifacts.demo-project.appspot.com".into(),
                cs_object: format!("containers/images/sha256:{}", "a".repeat(64)).into(),
                ..UsageRow::default()
            };
            let source = source();
            let event = classify(&row, &source);
            prop_assert_eq!(ours(&event), serde_line(&event));
        }
    }
}
