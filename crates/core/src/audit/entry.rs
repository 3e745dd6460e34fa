//! One Cloud Logging `LogEntry` with an `AuditLog` payload, as much of it as the classifier
//! reads (everything else is skipped unparsed). Strings borrow from the entry's text unless
//! JSON escapes force a copy. Field names are the LogEntry JSON's (camelCase); see
//! https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry and
//! https://cloud.google.com/logging/docs/reference/audit/auditlog/rest/Shared.Types/AuditLog.

use std::borrow::Cow;

use serde::Deserialize;

pub const AUDIT_LOG_TYPE: &str = "type.googleapis.com/google.cloud.audit.AuditLog";
pub const ARTIFACT_REGISTRY: &str = "artifactregistry.googleapis.com";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry<'a> {
    #[serde(borrow)]
    pub insert_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub proto_payload: Option<AuditLog<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditLog<'a> {
    #[serde(rename = "@type", borrow)]
    pub type_url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub service_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub method_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub resource_name: Option<Cow<'a, str>>,
    pub status: Option<Status>,
    #[serde(borrow)]
    pub authentication_info: Option<AuthenticationInfo<'a>>,
    #[serde(borrow)]
    pub request_metadata: Option<RequestMetadata<'a>>,
    #[serde(borrow)]
    pub request: Option<Request<'a>>,
}

/// `google.rpc.Status`: absent or empty (code 0) on success.
#[derive(Debug, Deserialize)]
pub struct Status {
    pub code: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationInfo<'a> {
    #[serde(borrow)]
    pub principal_email: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub principal_subject: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetadata<'a> {
    #[serde(borrow)]
    pub caller_ip: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub caller_supplied_user_agent: Option<Cow<'a, str>>,
}

/// `protoPayload.request`: for Docker calls an `HttpRequest`-like object.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    #[serde(borrow)]
    pub request_url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub request_method: Option<Cow<'a, str>>,
}

/// Why an entry's JSON does not fit the shape above, naming the field, and whether it is a
/// JSON object at all: serde's own message says only "invalid type … at column N", so the
/// JSON is looked at again (only on failure).
pub fn diagnose(text: &[u8], serde_error: &serde_json::Error) -> (String, bool) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(text) else {
        if std::str::from_utf8(text).is_err() {
            return ("the entry is not valid UTF-8".into(), false);
        }
        return (format!("not JSON: {serde_error}"), false);
    };
    if !value.is_object() {
        return (format!("a JSON {} where a LogEntry object was expected", kind(&value)), false);
    }
    (field_error(&value, serde_error), true)
}

fn field_error(value: &serde_json::Value, serde_error: &serde_json::Error) -> String {
    const PATHS: [(&str, &str); 12] = [
        ("/insertId", "string"),
        ("/timestamp", "string"),
        ("/protoPayload", "object"),
        ("/protoPayload/@type", "string"),
        ("/protoPayload/serviceName", "string"),
        ("/protoPayload/methodName", "string"),
        ("/protoPayload/resourceName", "string"),
        ("/protoPayload/status", "object"),
        ("/protoPayload/status/code", "number"),
        ("/protoPayload/authenticationInfo", "object"),
        ("/protoPayload/requestMetadata", "object"),
        ("/protoPayload/request", "object"),
    ];
    for (path, want) in PATHS {
        if let Some(found) = value.pointer(path).filter(|v| !v.is_null() && kind(v) != want) {
            let field = path.trim_start_matches('/').replace('/', ".");
            return format!("{field} is a JSON {} where a {want} was expected", kind(found));
        }
    }
    format!("unexpected entry shape: {serde_error}")
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// An RFC 3339 timestamp (`2024-07-04T23:50:15.079183701Z`, any fraction up to nanoseconds,
/// `Z` or an offset) as microseconds since the epoch, within BigQuery's TIMESTAMP range.
pub fn timestamp_micros(text: &str) -> Result<i64, String> {
    let bad = || format!("timestamp {text:?} is not an RFC 3339 time (2024-07-04T23:50:15.079183Z)");
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let digits = &text[range];
        if digits.bytes().all(|c| c.is_ascii_digit()) { digits.parse().map_err(|_| bad()) } else { Err(bad()) }
    };
    let (year, month, day) = (num(0..4)? as i32, num(5..7)? as u8, num(8..10)? as u8);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    let mut micros = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(bad());
        }
        let padded = format!("{:0<6}", &fraction[..digits.min(6)]);
        micros = padded.parse().map_err(|_| bad())?;
        rest = &fraction[digits..];
    }
    let offset_secs: i64 = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) => {
            let (h, m) = (i64::from((h1 - b'0') * 10 + (h2 - b'0')), i64::from((m1 - b'0') * 10 + (m2 - b'0')));
            if h > 23 || m > 59 {
                return Err(bad());
            }
            if *sign == b'+' { h * 3600 + m * 60 } else { -(h * 3600 + m * 60) }
        }
        _ => return Err(bad()),
    };
    if !(1..=9999).contains(&year) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let month = time::Month::try_from(month).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    // A leap second is read as the last second of its minute (BigQuery has none either).
    let seconds_of_day = i64::from(hour * 3600 + minute * 60 + second.min(59));
    let days = i64::from(
        date.to_julian_day()
            - time::Date::from_calendar_date(1970, time::Month::January, 1).expect("a date").to_julian_day(),
    );
    let unix = days * 86_400 + seconds_of_day - offset_secs;
    let micros = unix * 1_000_000 + micros;
    if !(crate::usage::row::MIN_TIME_MICROS..=crate::usage::row::MAX_TIME_MICROS).contains(&micros) {
        return Err(format!("timestamp {text:?} is outside BigQuery's range (years 0001 to 9999)"));
    }
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_rfc3339_form() {
        let t = |s| timestamp_micros(s);
        assert_eq!(t("2024-07-04T23:50:15.079183701Z"), Ok(1_720_137_015_079_183));
        assert_eq!(t("2024-07-04T23:50:15Z"), Ok(1_720_137_015_000_000));
        assert_eq!(t("2024-07-04T23:50:15.5Z"), Ok(1_720_137_015_500_000));
        assert_eq!(t("2024-07-05T01:50:15.079+02:00"), Ok(1_720_137_015_079_000));
        assert_eq!(t("0001-01-01T00:00:00Z"), Ok(crate::usage::row::MIN_TIME_MICROS));
        for bad in [
            "yesterday",
            "2024-07-04 23:50:15Z",
            "2024-13-04T23:50:15Z",
            "2024-02-30T00:00:00Z",
            "2024-07-04T23:50:15",
            "2024-07-04T23:50:15.Z",
            "2024-07-04T23:50:15.1234567890Z",
            "10000-01-01T00:00:00Z",
            "2024-07-04T24:00:00Z",
            "2024-07-04T23:50:15+2:00",
        ] {
            assert!(t(bad).is_err(), "{bad}");
        }
        assert!(t("0000-12-31T23:59:59Z").is_err());
        assert!(t("0001-01-01T00:00:00+01:00").unwrap_err().contains("outside BigQuery's range"));
    }
}
