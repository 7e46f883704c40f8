//! Secrets that never print. [`Secret`] masks its value in `Debug`, `Display`
//! and `Serialize`; [`redact_url`] hides the password of a connection URL so
//! URLs can go into manifests, events and errors.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::error::{Result, RuntimeError};

/// A secret value. Read it with [`Secret::expose`]; every other way of looking
/// at it shows `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// The secret value itself. Call only where it is used, never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

/// Query parameters that carry a password in connection URLs (libpq's
/// `password`, JDBC-style `pass`/`pwd`, `sslpassword` for the client key).
const PASSWORD_PARAMS: [&str; 4] = ["password", "pass", "pwd", "sslpassword"];

/// Returns `url` with every password replaced by `***`: the user-info
/// password (`user:secret@`) and password query parameters (`?password=`).
/// Text that does not parse as a URL (a bad port, say) is redacted by its
/// shape instead, so an error quoting it never shows the password.
pub fn redact_url(url: &str) -> String {
    // A password holding an unencoded `#`, `?` or `/` parses as a URL of
    // another shape (its tail a fragment, a query or a path): when the text
    // has a `user:secret@` the parser did not read as such, go by shape.
    let parsed = url::Url::parse(url);
    if let Some(candidate) = userinfo_password(url) {
        if parsed.as_ref().ok().and_then(|u| u.password()) != Some(candidate) {
            return redact_by_shape(url);
        }
    }
    match parsed {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // set_password only fails for cannot-be-a-base URLs, which carry no password.
                let _ = parsed.set_password(Some("***"));
            }
            let secret_query = parsed
                .query_pairs()
                .any(|(k, _)| PASSWORD_PARAMS.contains(&k.to_ascii_lowercase().as_str()));
            if secret_query {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| {
                        let secret = PASSWORD_PARAMS.contains(&k.to_ascii_lowercase().as_str());
                        (
                            k.into_owned(),
                            if secret { "***".into() } else { v.into_owned() },
                        )
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
                // An unencoded `#` in the password made the rest a fragment.
                parsed.set_fragment(None);
            }
            parsed.to_string()
        }
        Err(_) => redact_by_shape(url),
    }
}

/// The `secret` of `scheme://user:secret@...` as written: between the first
/// `:` after the user and the last `@` (a user holds no `/`, `?` or `#`).
fn userinfo_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let at = rest.rfind('@')?;
    let colon = rest[..at].find(':')?;
    (!rest[..colon].contains(['/', '?', '#'])).then(|| &rest[colon + 1..at])
}

/// Redacts `scheme://user:secret@...` and `password=secret` in text that is
/// not a well-formed URL.
fn redact_by_shape(text: &str) -> String {
    let mut out = text.to_string();
    if let Some(scheme_end) = out.find("://") {
        // The last `@` and the first `:` before it: a password with an
        // unencoded `/`, `?` or `#` (why the URL did not parse) still goes;
        // an `@` further on only makes more of the text hidden.
        let rest = &out[scheme_end + 3..];
        if let Some(at) = rest.rfind('@') {
            if let Some(colon) = rest[..at].find(':') {
                let (from, to) = (scheme_end + 3 + colon + 1, scheme_end + 3 + at);
                out.replace_range(from..to, "***");
            }
        }
    }
    for key in PASSWORD_PARAMS {
        let mut search = 0;
        while let Some(i) = out[search..].to_ascii_lowercase().find(&format!("{key}=")) {
            let start = search + i;
            let boundary =
                start == 0 || matches!(out.as_bytes()[start - 1], b'?' | b'&' | b';' | b' ');
            let value = start + key.len() + 1;
            let end = out[value..]
                .find(['&', ';', ' '])
                .map_or(out.len(), |e| value + e);
            if boundary && end > value {
                out.replace_range(value..end, "***");
                search = value + 3;
            } else {
                search = value;
            }
        }
    }
    out
}

/// Reads a password from a file only its owner can read (mode 0600 or 0400):
/// its first line, without the line end. A file that group or others can
/// read is refused with the fix, before its content is looked at.
pub fn read_secret_file(path: &Path) -> Result<Secret<String>> {
    let io = |source: std::io::Error| RuntimeError::Io {
        what: "reading the secrets file",
        path: path.to_path_buf(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(RuntimeError::Config {
            origin: path.display().to_string(),
            message: format!(
                "the secrets file is readable by others (mode {:o}); run chmod 600 {}",
                mode & 0o777,
                path.display()
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    Ok(Secret::new(
        text.lines().next().unwrap_or_default().to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_files_must_be_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\nignored\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_secret_file(&p).unwrap_err().to_string();
        assert!(
            err.contains("chmod 600") && !err.contains("s3cret"),
            "{err}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&p).unwrap().expose(), "s3cret");
    }

    #[test]
    fn secret_is_masked_everywhere() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s}"), "***");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn url_password_is_redacted() {
        let r = redact_url("postgresql://bob:hunter2@db:5432/app");
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("bob"));
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn query_string_passwords_are_redacted() {
        let r = redact_url("postgresql://bob@db:5432/app?sslmode=require&password=hunter2");
        assert!(!r.contains("hunter2"), "{r}");
        assert!(
            r.contains("sslmode=require") && r.contains("password=***"),
            "{r}"
        );
        let r = redact_url("mysql://bob@db/app?PWD=hunter2");
        assert!(!r.contains("hunter2"), "{r}");
    }

    #[test]
    fn text_that_is_not_a_url_is_redacted_by_shape() {
        // A bad port: url::Url refuses it, the password must still go.
        let r = redact_url("postgresql://bob:hunter2@db:99999/app");
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("bob:***@db:99999"), "{r}");
        let r = redact_url("postgresql://db:99999/app?password=hunter2&x=1");
        assert!(!r.contains("hunter2") && r.contains("x=1"), "{r}");
        assert_eq!(redact_by_shape("no secrets here"), "no secrets here");
        // Unencoded `/` in the password: why such URLs fail to parse.
        let r = redact_url("postgresql://bob:se/cr?et@db:5432/app");
        assert!(!r.contains("se/cr") && !r.contains("et@"), "{r}");
        assert!(r.starts_with("postgresql://bob:***@db"), "{r}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Whatever the URL looks like, parsable or not, a password given in
        /// its user part or as `password=` never survives redaction.
        #[test]
        fn no_password_survives_redaction(
            scheme in "(postgresql|mysql|mariadb|postgres)",
            user in "[a-z][a-z0-9_]{0,8}",
            password in "[A-Za-z0-9/?#%!]{6,16}",
            host in "[a-z0-9.-]{1,12}",
            port in 0u32..200_000,
            db in "[a-z0-9_]{0,8}",
            in_query in proptest::bool::ANY,
        ) {
            let url = if in_query {
                format!("{scheme}://{user}@{host}:{port}/{db}?sslmode=prefer&password={password}")
            } else {
                format!("{scheme}://{user}:{password}@{host}:{port}/{db}")
            };
            let shown = redact_url(&url);
            // Only a password that could not be part of the rest is checked.
            let rest = format!("{scheme}{user}{host}{port}{db}sslmodeprefer");
            proptest::prop_assume!(!rest.contains(&password));
            proptest::prop_assert!(!shown.contains(&password), "{} -> {}", url, shown);
        }

        /// Arbitrary text never panics the redaction.
        #[test]
        fn redaction_takes_any_text(text in ".{0,80}") {
            let _ = redact_url(&text);
        }
    }
}
