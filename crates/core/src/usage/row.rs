//! One usage-log record, typed: the 17 documented columns turned into numbers and strings.
//!
//! Text fields are decoded as UTF-8 and, where a field is not valid UTF-8 (real logs carry such
//! `cs_object` values), decoded *lossily*: each invalid sequence becomes U+FFFD and the row is
//! kept with `invalid_utf8` set. The row still counts and classifies (the digest and referer
//! are ASCII), and what leaves the core — NDJSON for BigQuery — must be UTF-8 anyway; BigQuery's
//! own CSV load of the raw row makes the same replacement.

use std::borrow::Cow;

use serde::Serialize;

use super::records::Record;
use crate::swar;

/// The documented columns, in order (`cloud_storage_usage_schema_v0.json`).
pub const COLUMNS: [&str; 17] = [
    "time_micros",
    "c_ip",
    "c_ip_type",
    "c_ip_region",
    "cs_method",
    "cs_uri",
    "sc_status",
    "cs_bytes",
    "sc_bytes",
    "time_taken_micros",
    "cs_host",
    "cs_referer",
    "cs_user_agent",
    "s_request_id",
    "cs_operation",
    "cs_bucket",
    "cs_object",
];

/// `s_request_id`'s index in [`COLUMNS`] (the duplicate check reads it before the row is made).
pub(crate) const REQUEST_ID: usize = 13;

/// BigQuery's TIMESTAMP range (0001-01-01 to 9999-12-31 UTC) in microseconds: a time outside
/// it could not be loaded, so the row is malformed rather than an event at a nonsense time.
pub const MIN_TIME_MICROS: i64 = -62_135_596_800_000_000;
pub const MAX_TIME_MICROS: i64 = 253_402_300_799_999_999;

/// A usage-log request record (`c_ip_region`, reserved and always empty, is not kept).
///
/// Its text borrows the reader's buffer ([`super::UsageLogReader::next_row`] lends it until the
/// next read): copying ten fields a row was a tenth of the component's instructions. A field
/// that is not valid UTF-8 is the one owned string, decoded lossily; [`UsageRow::into_owned`]
/// makes a row that outlives the reader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageRow<'a> {
    /// Physical line (1-based, the header is line 1) where the record starts.
    pub line: u64,
    /// Data record number (1-based): every record after the header counts, malformed and
    /// duplicate ones included, so the number is stable whatever the reader drops.
    pub row: u64,
    pub time_micros: i64,
    pub c_ip: Cow<'a, str>,
    /// 1 = IPv4, 2 = IPv6; `None` when empty.
    pub c_ip_type: Option<u8>,
    pub cs_method: Cow<'a, str>,
    pub cs_uri: Cow<'a, str>,
    pub sc_status: u16,
    pub cs_bytes: u64,
    pub sc_bytes: u64,
    pub time_taken_micros: u64,
    pub cs_host: Cow<'a, str>,
    pub cs_referer: Cow<'a, str>,
    pub cs_user_agent: Cow<'a, str>,
    pub s_request_id: Cow<'a, str>,
    pub cs_operation: Cow<'a, str>,
    pub cs_bucket: Cow<'a, str>,
    pub cs_object: Cow<'a, str>,
    /// Some field held invalid UTF-8 and was decoded lossily.
    pub invalid_utf8: bool,
}

/// Why a record is not a row. Always names the column, so a report says what to look at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MalformedReason {
    /// The record has a different number of fields than the header.
    ColumnCount { found: usize, expected: usize },
    /// A numeric column is empty, not a number, or out of its type's range.
    Number { column: &'static str, value: String },
    /// `time_micros` is a number but not a loadable timestamp.
    TimeOutOfRange { value: i64 },
    /// An audit-log entry that cannot be read (the message names the field).
    Entry { message: String },
}

impl std::fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MalformedReason::ColumnCount { found, expected } => {
                write!(f, "{found} columns where the header has {expected}")
            }
            MalformedReason::Number { column, value } if value.is_empty() => write!(f, "{column}: empty"),
            MalformedReason::Number { column, value } => write!(f, "{column}: {value:?} is not a valid number"),
            MalformedReason::TimeOutOfRange { value } => {
                write!(f, "time_micros: {value} is outside 0001-01-01..9999-12-31")
            }
            MalformedReason::Entry { message } => f.write_str(message),
        }
    }
}

/// Where each documented column sits in the file's records, and how wide a record must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub index: [usize; 17],
    pub width: usize,
}

impl Layout {
    pub fn documented() -> Layout {
        Layout { index: std::array::from_fn(|i| i), width: COLUMNS.len() }
    }

    /// A layout from a header naming every documented column (any order, extra columns
    /// ignored, names compared ASCII case-insensitively). `Err` lists the missing names.
    pub fn from_header(names: &[&[u8]]) -> Result<Layout, Vec<&'static str>> {
        let position = |col: &str| names.iter().position(|n| n.trim_ascii().eq_ignore_ascii_case(col.as_bytes()));
        let found: Vec<Option<usize>> = COLUMNS.iter().map(|c| position(c)).collect();
        let missing: Vec<&'static str> =
            COLUMNS.iter().zip(&found).filter(|(_, f)| f.is_none()).map(|(c, _)| *c).collect();
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(Layout { index: std::array::from_fn(|i| found[i].unwrap_or(i)), width: names.len() })
    }

    /// The row of `record` (fields already split), or why it is malformed; line and row
    /// numbers are set by the caller. (The reader takes the two steps apart.)
    #[cfg(test)]
    pub fn fill<'r>(&self, record: &Record<'r>) -> Result<UsageRow<'r>, MalformedReason> {
        let numbers = self.numbers(record)?;
        Ok(self.row(record, numbers, utf8(record)))
    }

    /// Everything that can make `record` malformed: its width and its numeric columns.
    pub fn numbers(&self, record: &Record<'_>) -> Result<Numbers, MalformedReason> {
        if record.len() != self.width {
            return Err(MalformedReason::ColumnCount { found: record.len(), expected: self.width });
        }
        let field = |column: usize| self.field(record, column);
        let time_micros = number::<i64>(field(0), COLUMNS[0])?;
        if !(MIN_TIME_MICROS..=MAX_TIME_MICROS).contains(&time_micros) {
            return Err(MalformedReason::TimeOutOfRange { value: time_micros });
        }
        Ok(Numbers {
            time_micros,
            c_ip_type: match field(2) {
                b"" => None,
                v => Some(number::<u8>(v, COLUMNS[2])?),
            },
            sc_status: number::<u16>(field(6), COLUMNS[6])?,
            cs_bytes: number::<u64>(field(7), COLUMNS[7])?,
            sc_bytes: number::<u64>(field(8), COLUMNS[8])?,
            time_taken_micros: number::<u64>(field(9), COLUMNS[9])?,
        })
    }

    /// The row of a record whose `numbers` were read; `text` is the record's bytes when they
    /// are valid UTF-8 ([`utf8`]), and each field is then a slice of it (nearly always).
    pub fn row<'r>(&self, record: &Record<'r>, numbers: Numbers, text: Option<&'r str>) -> UsageRow<'r> {
        let mut valid = true;
        let mut field = |column: usize| text_field(record, self.index[column], text, &mut valid);
        let Numbers { time_micros, c_ip_type, sc_status, cs_bytes, sc_bytes, time_taken_micros } = numbers;
        UsageRow {
            line: 0,
            row: 0,
            time_micros,
            c_ip: field(1),
            c_ip_type,
            cs_method: field(4),
            cs_uri: field(5),
            sc_status,
            cs_bytes,
            sc_bytes,
            time_taken_micros,
            cs_host: field(10),
            cs_referer: field(11),
            cs_user_agent: field(12),
            s_request_id: field(13),
            cs_operation: field(14),
            cs_bucket: field(15),
            cs_object: field(16),
            invalid_utf8: !valid,
        }
    }

    /// Column `column` (an index of [`COLUMNS`]) of `record`, which has this layout's width.
    pub fn field<'r>(&self, record: &Record<'r>, column: usize) -> &'r [u8] {
        let i = self.index[column];
        record.get(i).unwrap_or_else(|| panic!("field {i} of a record of {}", record.len()))
    }
}

/// Field `i` of `record` as text: a slice of the record's `text` when it is valid UTF-8, else
/// decoded on its own (lossily: `valid` is cleared). Inline: as the closure LLVM made a call of,
/// its entry and exit were a third of its instructions in the component.
#[inline(always)]
fn text_field<'r>(record: &Record<'r>, i: usize, text: Option<&'r str>, valid: &mut bool) -> Cow<'r, str> {
    let range = record.range(i);
    // `get` also refuses a range inside a multi-byte character (fields unescaped side by side).
    match text.and_then(|t| t.get(range.clone())) {
        Some(field) => Cow::Borrowed(field),
        None => {
            let decoded = String::from_utf8_lossy(&record.as_bytes()[range]);
            *valid &= matches!(decoded, Cow::Borrowed(_));
            decoded
        }
    }
}

/// A record's numeric columns, read and range-checked: what [`Layout::row`] needs besides text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Numbers {
    time_micros: i64,
    c_ip_type: Option<u8>,
    sc_status: u16,
    cs_bytes: u64,
    sc_bytes: u64,
    time_taken_micros: u64,
}

/// The record's bytes as UTF-8, if they are: one check for the whole record instead of one per
/// field (outside its fields a record holds only ASCII quotes, commas and line ends).
pub(crate) fn utf8<'r>(record: &Record<'r>) -> Option<&'r str> {
    simdutf8::basic::from_utf8(record.as_bytes()).ok()
}

impl UsageRow<'_> {
    /// The same row, owning its text (to keep it past the reader's next read).
    pub fn into_owned(self) -> UsageRow<'static> {
        let own = |text: Cow<'_, str>| Cow::Owned(text.into_owned());
        UsageRow {
            line: self.line,
            row: self.row,
            time_micros: self.time_micros,
            c_ip_type: self.c_ip_type,
            sc_status: self.sc_status,
            cs_bytes: self.cs_bytes,
            sc_bytes: self.sc_bytes,
            time_taken_micros: self.time_taken_micros,
            invalid_utf8: self.invalid_utf8,
            c_ip: own(self.c_ip),
            cs_method: own(self.cs_method),
            cs_uri: own(self.cs_uri),
            cs_host: own(self.cs_host),
            cs_referer: own(self.cs_referer),
            cs_user_agent: own(self.cs_user_agent),
            s_request_id: own(self.s_request_id),
            cs_operation: own(self.cs_operation),
            cs_bucket: own(self.cs_bucket),
            cs_object: own(self.cs_object),
        }
    }
}

/// Decimal integers only: no sign for unsigned types, no spaces, no `+`, no exponent (what
/// `str::parse` accepts, less its `+`; tests hold it to that), read without `str::parse`: its
/// `u64` `checked_mul` per digit is, in the 32-bit component, a call to a 128-bit multiply
/// (`__multi3`), and with the parse around it was 8% of the component's instructions.
fn number<T: Decimal>(bytes: &[u8], column: &'static str) -> Result<T, MalformedReason> {
    let (negative, digits) = match bytes.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, bytes),
    };
    magnitude(digits).and_then(|m| T::from_magnitude(negative, m)).ok_or_else(|| MalformedReason::Number {
        column,
        value: crate::object::truncate(&String::from_utf8_lossy(bytes), 40),
    })
}

/// The value of one or more ASCII digits, if it fits in a `u64`. Inline: it is small, and a
/// call of its own (six a row) cost more in the component than the eight-digit steps save.
#[inline(always)]
fn magnitude(digits: &[u8]) -> Option<u64> {
    // Nineteen digits cannot overflow (10^19 - 1 < 2^64): no check per digit.
    const UNCHECKED: usize = 19;
    if digits.len() <= UNCHECKED {
        // Nearly every column: eight digits at a time while there are eight (a time is sixteen),
        // then one pass, each digit checked as it is added (a check of every digit first, then
        // the sum, was two loops a field in the component). At most 10^16 before the pass.
        let (words, rest) = digits.as_chunks::<8>();
        let mut n = 0u64;
        for word in words {
            n = n * 100_000_000 + u64::from(swar::eight_digits(*word)?);
        }
        for &d in rest {
            let digit = d.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            n = n * 10 + u64::from(digit);
        }
        return (!digits.is_empty()).then_some(n);
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let (head, tail) = digits.split_at(digits.len().saturating_sub(UNCHECKED));
    // Longer numbers are rare (leading zeros, or too large): checked, digit by digit.
    let high = head.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
    let low = tail.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    match high {
        0 => Some(low),
        _ => high.checked_mul(10u64.pow(UNCHECKED as u32))?.checked_add(low),
    }
}

/// An integer column's type, from a sign and a magnitude.
trait Decimal: Sized {
    fn from_magnitude(negative: bool, magnitude: u64) -> Option<Self>;
}

macro_rules! unsigned_decimal {
    ($($t:ty),*) => {$(
        impl Decimal for $t {
            fn from_magnitude(negative: bool, magnitude: u64) -> Option<Self> {
                if negative { None } else { magnitude.try_into().ok() }
            }
        }
    )*};
}
unsigned_decimal!(u8, u16, u64);

impl Decimal for i64 {
    fn from_magnitude(negative: bool, magnitude: u64) -> Option<Self> {
        match negative {
            false => magnitude.try_into().ok(),
            true => 0i64.checked_sub_unsigned(magnitude),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::OwnedRecord;
    use super::*;

    fn sample() -> Vec<Vec<u8>> {
        let v = [
            "1710166032118406",
            "198.51.100.23",
            "1",
            "",
            "GET",
            "/b/o",
            "200",
            "0",
            "7023",
            "1002",
            "storage.googleapis.com",
            "",
            "ua",
            "id-1",
            "GET_Object",
            "b",
            "o",
        ];
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn fill(fields: &[Vec<u8>]) -> Result<UsageRow<'static>, MalformedReason> {
        let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        Layout::documented().fill(&OwnedRecord::from_fields(&refs).view()).map(UsageRow::into_owned)
    }

    #[test]
    fn the_request_id_column_is_named() {
        assert_eq!(COLUMNS[REQUEST_ID], "s_request_id");
    }

    #[test]
    fn typed_fields() {
        let row = fill(&sample()).unwrap();
        assert_eq!((row.time_micros, row.c_ip_type, row.sc_status), (1710166032118406, Some(1), 200));
        assert_eq!((row.cs_bytes, row.sc_bytes, row.time_taken_micros), (0, 7023, 1002));
        assert_eq!((&*row.cs_method, &*row.cs_object, row.invalid_utf8), ("GET", "o", false));
    }

    #[test]
    fn numbers_name_their_column() {
        for (i, value, column) in [
            (0, "", "time_micros"),
            (0, "17e9", "time_micros"),
            (6, "20O", "sc_status"),
            (6, "70000", "sc_status"),
            (7, "-1", "cs_bytes"),
            (8, " 12", "sc_bytes"),
            (9, "+5", "time_taken_micros"),
            (2, "x", "c_ip_type"),
            (8, "18446744073709551616", "sc_bytes"),
        ] {
            let mut f = sample();
            f[i] = value.as_bytes().to_vec();
            let err = fill(&f).unwrap_err();
            assert_eq!(err, MalformedReason::Number { column, value: value.into() }, "{column}={value}");
            assert!(err.to_string().starts_with(column), "{err}");
        }
    }

    /// `number` accepts and refuses exactly what `str::parse` does without a `+`, for every
    /// column type.
    #[test]
    fn numbers_read_as_str_parse_reads_them() {
        fn same<T: Decimal + std::str::FromStr + PartialEq + std::fmt::Debug>(text: &str) {
            let ours = number::<T>(text.as_bytes(), "c").ok();
            let digits = text.strip_prefix('-').unwrap_or(text);
            let reference = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse::<T>().ok())
                .flatten();
            assert_eq!(ours, reference, "{text:?} as {}", std::any::type_name::<T>());
        }
        fn all(text: &str) {
            same::<u8>(text);
            same::<u16>(text);
            same::<u64>(text);
            same::<i64>(text);
        }
        for text in [
            "",
            "-",
            "0",
            "-0",
            "00",
            "7",
            "-7",
            "255",
            "256",
            "65535",
            "65536",
            "1710166032118406",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "0000000000000000000000042",
            "-00000000000000000000009223372036854775808",
            "1000000000000000000000",
            "1 ",
            "+1",
            "1e3",
            "--1",
            "0x10",
            "１",
        ] {
            all(text);
        }
        // `/` and `:` are the bytes on either side of the digits.
        proptest::proptest!(|(text in "-?[0-9]{0,24}", near in "[/0-9:]{0,20}", n: u64, i: i64)| {
            all(&text);
            all(&near);
            all(&n.to_string());
            all(&i.to_string());
        });
    }

    #[test]
    fn time_outside_bigquery_range() {
        let mut f = sample();
        f[0] = b"253402300800000000".to_vec();
        assert_eq!(fill(&f).unwrap_err(), MalformedReason::TimeOutOfRange { value: 253402300800000000 });
        f[0] = b"-1".to_vec(); // before 1970 is fine
        assert_eq!(fill(&f).unwrap().time_micros, -1);
    }

    #[test]
    fn empty_ip_type_and_lossy_text() {
        let mut f = sample();
        f[2] = Vec::new();
        f[16] = b"containers/\xff\xfeobj".to_vec();
        let row = fill(&f).unwrap();
        assert_eq!((row.c_ip_type, &*row.cs_object, row.invalid_utf8), (None, "containers/\u{fffd}\u{fffd}obj", true));
    }

    #[test]
    fn column_count() {
        let mut f = sample();
        f.pop();
        assert_eq!(fill(&f).unwrap_err(), MalformedReason::ColumnCount { found: 16, expected: 17 });
        f.extend([b"o".to_vec(), b"".to_vec()]);
        assert_eq!(fill(&f).unwrap_err().to_string(), "18 columns where the header has 17");
    }

    #[test]
    fn header_by_name() {
        let mut names: Vec<&[u8]> = COLUMNS.iter().rev().map(|c| c.as_bytes()).collect();
        names.push(b"future_column");
        let layout = Layout::from_header(&names).unwrap();
        assert_eq!((layout.index[0], layout.index[16], layout.width), (16, 0, 18));
        assert_eq!(Layout::from_header(&[b"bucket", b"storage_byte_hours"]).unwrap_err().len(), 17);
    }
}
