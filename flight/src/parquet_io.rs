//! Partition files: zstd-compressed Parquet, written atomically (a temporary
//! name renamed into place, so a killed writer never leaves a half file under
//! the real name), with the file's SHA-256 for the manifest.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sha2::Digest;

use crate::error::{FlightError, Result};

/// What was written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileStats {
    /// Rows in the file.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
    /// SHA-256 of the file.
    pub sha256: String,
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> FlightError {
    FlightError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A Parquet writer that becomes visible under its name only on [`PartitionWriter::finish`].
pub struct PartitionWriter {
    writer: ArrowWriter<File>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    rows: u64,
}

impl PartitionWriter {
    /// Starts a partition file at `path`.
    pub fn create(path: &Path, schema: SchemaRef) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| file_err(parent, e))?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| file_err(&tmp, e))?;
        // No dictionaries: each value of every column would be hashed into
        // one (6% of a migration's CPU, for keys, amounts and timestamps
        // that hardly repeat); zstd takes the repeats of the rest.
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_dictionary_enabled(false)
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(props))?;
        Ok(PartitionWriter {
            writer,
            tmp,
            path: path.to_path_buf(),
            rows: 0,
        })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.writer.write(batch)?;
        Ok(())
    }

    /// Closes the file, syncs it and renames it into place.
    pub fn finish(self) -> Result<FileStats> {
        let file = self.writer.into_inner()?;
        file.sync_all().map_err(|e| file_err(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| file_err(&self.path, e))?;
        let (bytes, sha256) = hash_file(&self.path)?;
        Ok(FileStats {
            rows: self.rows,
            bytes,
            sha256,
        })
    }
}

/// Writes batches to a partition file.
pub fn write_partition(
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<FileStats> {
    let mut w = PartitionWriter::create(path, schema)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()
}

/// Size and SHA-256 of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(|e| file_err(path, e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| file_err(path, e))?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((n, hex::encode(h.finalize())))
}

/// Opens a partition file as a batch iterator (memory bounded by `batch_rows`).
pub fn open_partition(
    path: &Path,
    batch_rows: usize,
) -> Result<(
    SchemaRef,
    parquet::arrow::arrow_reader::ParquetRecordBatchReader,
)> {
    let file = File::open(path).map_err(|e| file_err(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?.with_batch_size(batch_rows);
    let schema = builder.schema().clone();
    Ok((schema, builder.build()?))
}

/// Reads a whole partition file.
pub fn read_partition(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let (schema, reader) = open_partition(path, 8192)?;
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((schema, batches))
}
