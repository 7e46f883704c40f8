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

/// Returns `url` with any password replaced by `***`. Strings that are not
/// URLs are returned unchanged.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for cannot-be-a-base URLs, which carry no password.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
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
}
