//! One shape for every input error: what is wrong, and where — the field of an event (a header
//! or a JSON path such as `message.data.name`), a part of an object reference (`generation`), or
//! a configuration variable (`GCR_USAGE_BUCKETS`). Messages never quote secrets.

/// A field, or variable, and the rule it breaks. Displayed as `field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), message: message.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}
