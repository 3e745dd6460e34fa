//! Secrets — access tokens, bearer tokens, shared trigger secrets — in one type that does not
//! print: `Debug` shows `<redacted>`, there is no `Display`, and the value is reached only
//! through [`Secret::expose`], at the one place that must send or compare it. (Service-account
//! keys keep their own redacted `Debug`; they are parsed into an RSA key, not kept as text.)

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the header or the comparison that needs it — never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("ya29.very-secret");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert_eq!(s.expose(), "ya29.very-secret");
    }
}
