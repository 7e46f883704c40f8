//! Connection URLs: which connector a URL names.

use std::path::PathBuf;

use sensei_runtime::secret::redact_url;

use crate::error::{ConnectorError, Result};

/// A parsed source or target location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `sqlite://PATH` (relative or absolute; `sqlite:///abs` also works).
    Sqlite(PathBuf),
    /// `postgresql://` or `postgres://` URL (sources only in this build).
    Postgres(String),
    /// `mysql://` or `mariadb://` URL (sources only in this build).
    MySql(String),
}

/// Parses a URL for `role` (`source` or `target`). Engines whose connectors
/// are not in this build are refused with the list of what is.
pub fn parse(url: &str, role: &'static str) -> Result<Location> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        if rest.is_empty() {
            return Err(ConnectorError::Unsupported {
                role,
                url: url.into(),
                hint: "a SQLite URL needs a path: sqlite://PATH".into(),
            });
        }
        return Ok(Location::Sqlite(PathBuf::from(rest)));
    }
    if url.starts_with("postgresql://") || url.starts_with("postgres://") {
        if role == "target" {
            return Err(ConnectorError::Unsupported {
                role,
                url: redact_url(url),
                hint: "PostgreSQL targets are not part of this build yet; targets supported now: sqlite://PATH".into(),
            });
        }
        return Ok(Location::Postgres(url.to_string()));
    }
    if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        if role == "target" {
            return Err(ConnectorError::Unsupported {
                role,
                url: redact_url(url),
                hint: "MySQL/MariaDB targets are not part of this build yet; targets supported now: sqlite://PATH".into(),
            });
        }
        return Ok(Location::MySql(url.to_string()));
    }
    let scheme = url.split("://").next().unwrap_or("");
    let hint = match scheme {
        "file" => {
            format!("the {scheme} connector is not part of this build yet; supported now: sqlite://PATH, postgresql://... and mysql://... (sources)")
        }
        _ => "expected sqlite://PATH, postgresql://..., mysql://... or file://PATH.csv|parquet"
            .into(),
    };
    Err(ConnectorError::Unsupported {
        role,
        url: redact_url(url),
        hint,
    })
}
