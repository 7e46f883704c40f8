//! Connection URLs: which connector a URL names.

use std::path::PathBuf;

use sensei_runtime::secret::redact_url;

use crate::error::{ConnectorError, Result};

/// A parsed source or target location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `sqlite://PATH` (relative or absolute; `sqlite:///abs` also works).
    Sqlite(PathBuf),
    /// `postgresql://` or `postgres://` URL.
    Postgres(String),
    /// `mysql://` or `mariadb://` URL (sources only in this build).
    MySql(String),
    /// `csv://PATH` or `file://PATH.csv`: a CSV file or a folder of them (sources).
    Csv(PathBuf),
    /// `parquet://PATH` or `file://PATH.parquet`: a Parquet file or a folder of them (sources).
    Parquet(PathBuf),
}

fn file_location(
    url: &str,
    role: &'static str,
    path: &str,
    format: Option<&str>,
) -> Result<Location> {
    if path.is_empty() {
        return Err(ConnectorError::Unsupported {
            role,
            url: url.into(),
            hint: "a file URL needs a path: csv://PATH, parquet://PATH or file://PATH.csv".into(),
        });
    }
    if role == "target" {
        // A folder of Parquet files (one folder per table) is a target; CSV is not.
        if format == Some("parquet") {
            return Ok(Location::Parquet(PathBuf::from(path)));
        }
        return Err(ConnectorError::Unsupported {
            role,
            url: url.into(),
            hint: "CSV is a source in this build; targets supported now: sqlite://PATH, postgresql://..., mysql://..., parquet://FOLDER"
                .into(),
        });
    }
    let p = PathBuf::from(path);
    let ext = |p: &std::path::Path| {
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    };
    let format = match format {
        Some(f) => f.to_string(),
        None if p.is_dir() => {
            let mut kinds: Vec<String> = std::fs::read_dir(&p)
                .map(|d| d.flatten().map(|e| ext(&e.path())).collect())
                .unwrap_or_default();
            kinds.retain(|k| matches!(k.as_str(), "csv" | "tsv" | "parquet" | "parq" | "pq"));
            kinds.sort();
            kinds.dedup();
            let csv = kinds.iter().any(|k| k == "csv" || k == "tsv");
            let pq = kinds.iter().any(|k| k.starts_with("parq") || k == "pq");
            match (csv, pq) {
                (true, false) => "csv".into(),
                (false, true) => "parquet".into(),
                _ => {
                    return Err(ConnectorError::Unsupported {
                        role,
                        url: url.into(),
                        hint: "the folder must hold .csv or .parquet files (not both); name the format with csv://PATH or parquet://PATH".into(),
                    })
                }
            }
        }
        None => ext(&p),
    };
    match format.as_str() {
        "csv" | "tsv" | "txt" => Ok(Location::Csv(p)),
        "parquet" | "parq" | "pq" => Ok(Location::Parquet(p)),
        other => Err(ConnectorError::Unsupported {
            role,
            url: url.into(),
            hint: format!("file extension {other:?} is neither .csv nor .parquet; use csv://PATH or parquet://PATH to name the format"),
        }),
    }
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
        return Ok(Location::Postgres(url.to_string()));
    }
    if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        return Ok(Location::MySql(url.to_string()));
    }
    if let Some(rest) = url.strip_prefix("csv://") {
        return file_location(url, role, rest, Some("csv"));
    }
    if let Some(rest) = url.strip_prefix("parquet://") {
        return file_location(url, role, rest, Some("parquet"));
    }
    if let Some(rest) = url.strip_prefix("file://") {
        return file_location(url, role, rest, None);
    }
    Err(ConnectorError::Unsupported {
        role,
        url: redact_url(url),
        hint: "expected sqlite://PATH, postgresql://..., mysql://..., csv://PATH, parquet://PATH or file://PATH.csv|parquet".into(),
    })
}
