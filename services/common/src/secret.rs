//! Credentials wrapped by type so they cannot reach a log line or an error by accident.
//!
//! `Secret<T>` prints as `[redacted]` through `Debug` and has no `Display`; the only way to
//! the value is [`Secret::expose`], which makes every use visible in review.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The wrapped value. Call it only where the value leaves the process for its
    /// intended destination (a connection string handed to a driver, a signing key).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A URL with any password replaced by `***`, safe to log to say *where* we connect.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                // set_password only fails for URLs that cannot carry credentials.
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "[unparseable url]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        let secret = Secret::new("hunter2".to_owned());
        let printed = format!("{secret:?} {:?}", Some(&secret));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn redact_url_hides_the_password_but_keeps_the_target() {
        let redacted = redact_url("postgres://shop:s3cr3t@db.internal:5432/shop");
        assert_eq!(redacted, "postgres://shop:***@db.internal:5432/shop");
        assert_eq!(redact_url("not a url at all"), "[unparseable url]");
    }
}
