use std::io::Read;

use proptest::prelude::*;

use super::super::lines::LineTracker;
use super::*;

/// Every record with its line, as this module reads `input` in reads of at most `chunk` bytes.
fn split(input: &[u8], chunk: usize) -> std::io::Result<Vec<(Vec<Vec<u8>>, u64)>> {
    let mut reader = RecordReader::new(Chunked { rest: input, chunk });
    let mut out = Vec::new();
    while let Some(line) = reader.read()? {
        out.push((reader.record().iter().map(<[u8]>::to_vec).collect(), line));
    }
    Ok(out)
}

/// The same through the csv crate and the line tracker the reader used with it: the oracle.
fn oracle(input: &[u8]) -> Vec<(Vec<Vec<u8>>, u64)> {
    let mut csv = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(LineTracker::new(input));
    let mut record = csv::ByteRecord::new();
    let mut out = Vec::new();
    loop {
        let end = csv.position().byte();
        if !csv.read_byte_record(&mut record).expect("no I/O error from a slice") {
            return out;
        }
        out.push((record.iter().map(<[u8]>::to_vec).collect(), csv.get_mut().line_at_or_after(end)));
    }
}

/// A reader handing out at most `chunk` bytes per call: record ends fall anywhere.
struct Chunked<'a> {
    rest: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.rest.len().min(buf.len()).min(self.chunk.max(1));
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

fn fields(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// An input and the records (fields, line) it holds.
type Case = (&'static str, &'static [(&'static [&'static str], u64)]);

#[test]
fn the_dialect() {
    let cases: &[Case] = &[
        ("\"a\",\"b\"\n\"c\",\"d\"\n", &[(&["a", "b"], 1), (&["c", "d"], 2)]),
        ("a,b\r\nc,d", &[(&["a", "b"], 1), (&["c", "d"], 2)]),
        ("a\rb\r", &[(&["a"], 1), (&["b"], 2)]),
        ("h\n\n\r\na\n\"x\r\ny\"\nb\n\n", &[(&["h"], 1), (&["a"], 4), (&["x\r\ny"], 5), (&["b"], 7)]),
        ("\"a\nb\",\"\nc\"\r\nd", &[(&["a\nb", "\nc"], 1), (&["d"], 4)]),
        // A doubled quote, text after a closing quote, a quote inside an unquoted field.
        ("\"say \"\"hi\"\"\",\"ab\"cd,e\"f\n", &[(&["say \"hi\"", "abcd", "e\"f"], 1)]),
        // Empty fields, a trailing delimiter at the end of input, input ending inside quotes.
        (",,\n\"\",x,", &[(&["", "", ""], 1), (&["", "x", ""], 2)]),
        ("a\n\"open,\nend", &[(&["a"], 1), (&["open,\nend"], 2)]),
        ("\u{feff}\"a\"\n", &[(&["a"], 1)]),
        ("", &[]),
        ("\r\n\n", &[]),
    ];
    for (input, expected) in cases {
        let expected: Vec<(Vec<Vec<u8>>, u64)> = expected.iter().map(|(f, l)| (fields(f), *l)).collect();
        for chunk in [1, 2, 3, 7, 1 << 20] {
            assert_eq!(split(input.as_bytes(), chunk).unwrap(), expected, "{input:?} in reads of {chunk}");
        }
        assert_eq!(oracle(input.as_bytes()), expected, "the csv crate reads {input:?} so too");
    }
}

#[test]
fn a_record_past_the_limit_is_an_error_naming_its_line() {
    let mut input = b"a\n\"".to_vec();
    input.resize(input.len() + MAX_RECORD_BYTES, b'x');
    input.extend_from_slice(b"\"\n");
    let err = match split(&input, 1 << 16) {
        Err(e) => e,
        Ok(records) => panic!("read {} records, the second of {} bytes", records.len(), input.len()),
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(err.to_string(), format!("line 2: a record longer than {MAX_RECORD_BYTES} bytes"));
    // Just under the limit is fine, and needs the buffer to grow past its first size.
    let mut input = b"\"".to_vec();
    input.resize(MAX_RECORD_BYTES - 2, b'y');
    input.extend_from_slice(b"\"\n");
    let records = split(&input, 1 << 16).map_err(|e| e.to_string());
    assert_eq!(records.map(|r| r[0].0[0].len()), Ok(MAX_RECORD_BYTES - 3));
}

#[test]
fn a_failing_read_is_handed_on() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"))
        }
    }
    let err = RecordReader::new(Failing).read().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

/// Bytes biased towards what the dialect branches on.
fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => Just(b'"'),
        3 => Just(b','),
        2 => Just(b'\n'),
        2 => Just(b'\r'),
        3 => Just(b'a'),
        1 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..400)
}

/// Usage-log-shaped lines (every field quoted) with damage sprinkled in.
fn log_like() -> impl Strategy<Value = Vec<u8>> {
    let field = proptest::string::string_regex("[a-z0-9 /:.\"\n,-]{0,12}").expect("a valid regex");
    let line = proptest::collection::vec(field, 1..6).prop_map(|fields| {
        let quoted: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.replace('"', "\"\""))).collect();
        quoted.join(",")
    });
    let end = prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("\n\n"), Just("")];
    proptest::collection::vec((line, end), 0..20)
        .prop_map(|lines| lines.into_iter().flat_map(|(l, e)| format!("{l}{e}").into_bytes()).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn equals_the_csv_crate_on_any_input(input in csv_bytes(), chunk in 1usize..70) {
        // A second byte-order mark right after the first is one the csv crate drops too, but
        // only when its first buffer holds it (chunking-dependent): not a dialect to copy.
        prop_assume!(!input.starts_with(b"\xef\xbb\xbf\xef\xbb\xbf"));
        prop_assert_eq!(split(&input, chunk).unwrap(), oracle(&input));
        prop_assert_eq!(split(&input, 1 << 20).unwrap(), oracle(&input));
    }

    #[test]
    fn equals_the_csv_crate_on_log_like_input(input in log_like(), chunk in 1usize..200) {
        prop_assert_eq!(split(&input, chunk).unwrap(), oracle(&input));
    }
}

#[test]
fn plain_fields_are_borrowed_and_only_records_needing_unescaping_are_copied() {
    let input = b"\"1710166032118406\",\"a,b\",\"x\r\ny\",,plain\n\"say \"\"hi\"\"\",\"ab\"cd\n\"q\",e\"f\n";
    let mut reader = RecordReader::new(&input[..]);
    let mut copied = Vec::new();
    while reader.read().unwrap().is_some() {
        copied.push(reader.copied);
    }
    // The third record's quote inside an unquoted field is literal: still one piece.
    assert_eq!(copied, [false, true, false]);
}
