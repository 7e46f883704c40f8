//! Parquet folder target: one folder per table, one zstd Parquet file per
//! delivered batch, named by its idempotency key
//! (`<partition>-<batch>.parquet`). A file is written under a temporary name
//! and renamed into place, so it is whole or absent; a batch whose file
//! exists is skipped: the folder is its own ledger.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;

use crate::batch::{BatchAck, BatchKey};
use crate::error::{ConnectorError, Result};

/// A Parquet folder target.
pub struct ParquetTarget {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConnectorError + '_ {
    move |e| ConnectorError::TargetNotWritable {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl ParquetTarget {
    /// Opens (creating) the folder.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(ParquetTarget {
            dir: dir.to_path_buf(),
        })
    }

    /// The folder of a table.
    pub fn table_dir(dir: &Path, table: &str) -> PathBuf {
        dir.join(safe(table))
    }

    /// Whether the table's folder exists.
    pub fn has_table(&self, table: &str) -> bool {
        Self::table_dir(&self.dir, table).is_dir()
    }

    /// Re-sync: removes the table's delivered files (the folder is its own
    /// ledger); returns the files removed.
    pub fn clear_for_resync(&self, table: &str) -> Result<u64> {
        let d = Self::table_dir(&self.dir, table);
        if !d.is_dir() {
            return Ok(0);
        }
        let files = Self::files(&self.dir, table)?;
        for f in &files {
            std::fs::remove_file(f).map_err(io(f))?;
        }
        Ok(files.len() as u64)
    }

    /// Removes the table's folder when it holds no file of data.
    pub fn remove_if_empty(&self, table: &str) -> Result<()> {
        let d = Self::table_dir(&self.dir, table);
        if d.is_dir() && Self::files(&self.dir, table)?.is_empty() {
            std::fs::remove_dir(&d).map_err(io(&d))?;
        }
        Ok(())
    }

    /// Creates the table's folder.
    pub fn ensure_table(&self, table: &str) -> Result<()> {
        let d = Self::table_dir(&self.dir, table);
        std::fs::create_dir_all(&d).map_err(io(&d))
    }

    /// Writes one batch as its own file, or skips it when the file exists.
    pub fn write_batch(&self, batch: &RecordBatch, key: &BatchKey<'_>) -> Result<BatchAck> {
        let (started, table) = (Instant::now(), key.table);
        let d = Self::table_dir(&self.dir, table);
        std::fs::create_dir_all(&d).map_err(io(&d))?;
        let file = d.join(format!("{}-{:06}.parquet", safe(key.partition), key.seq));
        if file.exists() {
            return Ok(BatchAck::skipped(started, Vec::new()));
        }
        let tmp = d.join(format!(
            ".{}-{:06}.a{}.tmp",
            safe(key.partition),
            key.seq,
            key.attempt
        ));
        let out = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(out, batch.schema(), Some(props))
            .map_err(|e| ConnectorError::TargetNotWritable {
                path: tmp.display().to_string(),
                message: e.to_string(),
            })?;
        w.write(batch)
            .and_then(|_| w.close().map(|_| ()))
            .map_err(|e| ConnectorError::TargetNotWritable {
                path: tmp.display().to_string(),
                message: e.to_string(),
            })?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &file).map_err(io(&file))?;
        Ok(BatchAck::written(
            batch.num_rows() as u64,
            started,
            Vec::new(),
        ))
    }

    /// Every delivered file of a table, in name order.
    pub fn files(dir: &Path, table: &str) -> Result<Vec<PathBuf>> {
        let d = Self::table_dir(dir, table);
        let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
            .map_err(io(&d))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Reads a table's delivered rows back, batch by batch.
    pub fn read(
        dir: &Path,
        table: &str,
        mut sink: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<Schema> {
        let mut schema = Schema::empty();
        for f in Self::files(dir, table)? {
            let file = std::fs::File::open(&f).map_err(io(&f))?;
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .and_then(|b| b.build())
                    .map_err(|e| ConnectorError::Unreadable {
                        path: f.display().to_string(),
                        message: e.to_string(),
                    })?;
            for b in reader {
                let b = b?;
                schema = b.schema().as_ref().clone();
                sink(b)?;
            }
        }
        Ok(schema)
    }
}

impl crate::target::TargetEngine for ParquetTarget {
    fn apply_ddl(&mut self, _ddl: &str) -> Result<()> {
        Ok(())
    }
    fn has_table(&mut self, table: &str) -> Result<bool> {
        Ok(ParquetTarget::has_table(self, table))
    }
    fn ensure_table(&mut self, table: &crate::target::NewTable<'_>) -> Result<()> {
        ParquetTarget::ensure_table(self, table.name)
    }
    fn write_batch(&mut self, batch: &RecordBatch, key: &BatchKey<'_>) -> Result<BatchAck> {
        ParquetTarget::write_batch(self, batch, key)
    }
    /// The folder is its own ledger: its files.
    fn clear_for_resync(&mut self, table: &str, _migration_id: &str) -> Result<u64> {
        ParquetTarget::clear_for_resync(self, table)
    }
    /// No ledger table: 0, and [`TargetEngine::drop_table`] takes back only
    /// an empty table folder.
    fn batches_delivered(&mut self, _migration_id: &str) -> Result<u64> {
        Ok(0)
    }
    fn drop_table(&mut self, table: &str) -> Result<()> {
        self.remove_if_empty(table)
    }
    fn quote(&self) -> Option<fn(&str) -> String> {
        None
    }
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}
