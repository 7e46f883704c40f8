//! A SQLite delivery staged beside its target: every batch is written into
//! a staging file in the target's folder (`.<target file>.<area>`, with its
//! ledger), checked there, and published after the certificate says PASS
//! by renaming the staging file onto the target's path: one `rename(2)`,
//! which a reader sees whole or not at all. A delivery is staged only when
//! the target file does not exist yet (or is empty); a target file that
//! holds anything is written in place, after the certificate.

use std::path::{Path, PathBuf};

use crate::error::{ConnectorError, Result};
use crate::target::{Published, StagingArea};

/// The staging file of `area` beside the target file `target`.
pub fn staged_path(target: &Path, area: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "target.db".into());
    target.with_file_name(format!(".{name}.{area}"))
}

/// Why a delivery into the SQLite file `target` cannot be staged, if it
/// cannot: the file exists and holds something.
pub fn staging_refused(target: &Path) -> Option<String> {
    let held = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
    (held > 0).then(|| {
        format!(
            "the target file {} exists (written in place, after the certificate)",
            target.display()
        )
    })
}

fn unwritable(path: &Path, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::TargetNotWritable {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Removes a SQLite file and its journal files, when there.
fn remove_database(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(unwritable(&p, e)),
            _ => {}
        }
    }
    Ok(())
}

/// Makes the staging file of `area` ready: earlier runs' staging files of
/// the same migration removed, this one too when `fresh`. The file itself
/// is created by the first session that writes it.
pub fn begin_staging(target: &Path, area: &StagingArea, fresh: bool) -> Result<()> {
    let staged = staged_path(target, &area.name);
    let stale = staged_path(target, &area.stale_prefix);
    let stale = stale.file_name().map(|n| n.to_string_lossy().to_string());
    let dir = staged
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let own = staged.file_name().map(|n| n.to_string_lossy().to_string());
    if let (Some(prefix), Ok(entries)) = (stale, std::fs::read_dir(dir)) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(&prefix)
                && own.as_deref() != Some(name.as_str())
                && !name.ends_with("-wal")
                && !name.ends_with("-shm")
                && !name.ends_with("-journal")
            {
                remove_database(&e.path())?;
            }
        }
    }
    if fresh {
        remove_database(&staged)?;
    }
    Ok(())
}

/// Publishes the staging file of `area` onto `target` (see the module
/// doc): its write-ahead log folded in first, so the one file is the whole
/// database. A staging file that is gone was published already.
pub fn publish(target: &Path, area: &StagingArea) -> Result<Published> {
    let staged = staged_path(target, &area.name);
    if !staged.exists() {
        return Ok(Published {
            already: true,
            ..Default::default()
        });
    }
    if let Some(why) = staging_refused(target) {
        return Err(unwritable(
            target,
            format!("{why} since the delivery was staged; nothing was published (the staged rows stay in {}): move it away, then rerun the same command", staged.display()),
        ));
    }
    let moved = {
        let conn = rusqlite::Connection::open(&staged).map_err(|e| unwritable(&staged, e))?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| unwritable(&staged, e))?;
        conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
            .map_err(|e| unwritable(&staged, e))?;
        let mut q = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> ?1 ORDER BY name")
            .map_err(|e| unwritable(&staged, e))?;
        let names = q
            .query_map([crate::batch::LEDGER_TABLE], |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| unwritable(&staged, e))?;
        names
    };
    std::fs::File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| unwritable(&staged, e))?;
    std::fs::rename(&staged, target).map_err(|e| unwritable(target, e))?;
    if let Some(dir) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| unwritable(dir, e))?;
    }
    Ok(Published {
        already: false,
        moved,
    })
}
