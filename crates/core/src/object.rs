//! The object reference every event shape is reduced to.

use serde::Serialize;

use crate::field_error::FieldError;

/// Cloud Storage limits object names to 1,024 bytes of UTF-8.
pub const MAX_OBJECT_NAME_BYTES: usize = 1024;

/// A Cloud Storage object: what a "finalize" event names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub bucket: String,
    pub name: String,
    /// Serialised as a string, like Cloud Storage does (int64 values do not fit a JSON double).
    #[serde(serialize_with = "generation_as_string", skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

fn generation_as_string<S: serde::Serializer>(g: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match g {
        Some(g) => s.serialize_str(&g.to_string()),
        None => s.serialize_none(),
    }
}

/// Cloud Storage generations are int64 (positive in practice): anything above is no object's.
pub const MAX_GENERATION: u64 = i64::MAX as u64;

pub fn generation_out_of_range(generation: u64) -> String {
    format!("{generation} is out of range: Cloud Storage generations are int64 (at most {MAX_GENERATION})")
}

impl ObjectRef {
    /// `gs://bucket/name`, the form BigQuery load jobs and people read.
    pub fn gs_uri(&self) -> String {
        format!("gs://{}/{}", self.bucket, self.name)
    }

    /// Checks what every event shape must satisfy; `field` prefixes the field names in errors
    /// so the sender learns where in *its* payload the problem is (e.g. `message.data.name`).
    pub fn validate(&self, field: &str) -> Result<(), FieldError> {
        let at = |f: &str| {
            if field.is_empty() { f.to_string() } else { format!("{field}.{f}") }
        };
        if self.bucket.is_empty() {
            return Err(FieldError::new(at("bucket"), "must not be empty"));
        }
        if !is_valid_bucket_name(&self.bucket) {
            return Err(FieldError::new(
                at("bucket"),
                format!("{:?} is not a valid Cloud Storage bucket name", truncate(&self.bucket, 80)),
            ));
        }
        if self.name.is_empty() {
            return Err(FieldError::new(at("name"), "must not be empty"));
        }
        if self.name.len() > MAX_OBJECT_NAME_BYTES {
            return Err(FieldError::new(
                at("name"),
                format!("is {} bytes long; Cloud Storage allows at most {MAX_OBJECT_NAME_BYTES}", self.name.len()),
            ));
        }
        if self.name.chars().any(|c| c == '\r' || c == '\n') {
            return Err(FieldError::new(at("name"), "contains a line break, which Cloud Storage forbids"));
        }
        if let Some(generation) = self.generation.filter(|g| *g > MAX_GENERATION) {
            return Err(FieldError::new(at("generation"), generation_out_of_range(generation)));
        }
        Ok(())
    }
}

/// Bucket naming rules: 3–63 characters (up to 222 when dotted), lower-case letters, digits,
/// `-`, `_` and `.`, starting and ending with a letter or digit.
pub fn is_valid_bucket_name(name: &str) -> bool {
    let max = if name.contains('.') { 222 } else { 63 };
    let bytes = name.as_bytes();
    (3..=max).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(b))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Shortens a value quoted in an error message: messages stay readable and bounded.
pub fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(bucket: &str, name: &str) -> ObjectRef {
        ObjectRef { bucket: bucket.into(), name: name.into(), generation: Some(1) }
    }

    #[test]
    fn bucket_names() {
        for ok in ["abc", "my-logs", "artifacts.demo-project.appspot.com", "a_b-c.d", "123"] {
            assert!(is_valid_bucket_name(ok), "{ok}");
        }
        for bad in ["ab", "-abc", "abc-", "ABC", "a b", "a/b", &"x".repeat(64), ""] {
            assert!(!is_valid_bucket_name(bad), "{bad}");
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(obj("", "n").validate("data").unwrap_err().field, "data.bucket");
        assert_eq!(obj("logs", "").validate("").unwrap_err().field, "name");
        let e = obj("logs", &"n".repeat(1025)).validate("message.data").unwrap_err();
        assert_eq!(e.field, "message.data.name");
        assert!(e.message.contains("1025 bytes"));
        assert!(obj("logs", "a\nb").validate("").is_err());
        assert!(obj("Bad Bucket", "x").validate("").unwrap_err().message.contains("not a valid"));
        assert!(obj("logs", "dir/ü #?%+ name").validate("").is_ok());
        let mut big = obj("logs", "x");
        big.generation = Some(MAX_GENERATION);
        assert!(big.validate("").is_ok());
        big.generation = Some(MAX_GENERATION + 1);
        let crate::field_error::FieldError { field, message } = big.validate("data").unwrap_err();
        assert_eq!(field, "data.generation");
        assert!(message.contains("int64"), "{message}");
    }

    #[test]
    fn serialises_generation_as_string() {
        let v = serde_json::to_value(obj("b1c", "n")).unwrap();
        assert_eq!(v["generation"], "1");
    }
}
