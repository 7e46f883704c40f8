//! How an engine reaches partitions: [`PartitionIo`] fetches a partition's
//! batches wherever it is held and stages new ones. The node (in
//! `sensei-agents`) implements it over its batch store and Flight;
//! [`FolderIo`] implements it over one local folder, for engines run alone
//! (tests, tools) without Flight or a scheduler.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use sensei_flight::parquet_io::{self, FileStats};

use crate::artifacts::PartitionRef;
use crate::error::{EngineError, Result};

/// Partition access for the phase engines.
#[async_trait::async_trait]
pub trait PartitionIo: Send + Sync {
    /// A partition's batches, its bytes checked against the recorded SHA-256
    /// (or its rows, when it comes over the network).
    async fn fetch(&self, p: &PartitionRef) -> Result<Vec<RecordBatch>>;

    /// The file of a partition held here (None: another node holds it).
    fn local_file(&self, p: &PartitionRef) -> Option<PathBuf>;

    /// Where a new partition `id` is written.
    fn staging_path(&self, id: &str) -> PathBuf;

    /// Records a written partition file as held here.
    fn hold(&self, id: &str, path: &Path, stats: &FileStats);

    /// This node's id and the endpoint its partitions are served from.
    fn location(&self) -> (String, String);

    /// A written partition file, registered as held here.
    fn register(
        &self,
        id: &str,
        table: &str,
        partition: u32,
        path: PathBuf,
        stats: FileStats,
    ) -> PartitionRef {
        self.hold(id, &path, &stats);
        let (node_id, endpoint) = self.location();
        PartitionRef {
            id: id.to_string(),
            table: table.to_string(),
            partition,
            node_id,
            endpoint,
            uri: format!("file://{}", path.display()),
            rows: stats.rows,
            bytes: stats.bytes,
            sha256: stats.sha256,
        }
    }

    /// A scratch file or folder of an engine (spilled rows, replay input).
    fn scratch_path(&self, name: &str) -> PathBuf;

    /// Writes batches as a partition held here.
    fn stage(
        &self,
        id: &str,
        table: &str,
        partition: u32,
        schema: SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<PartitionRef> {
        let path = self.staging_path(id);
        let stats = parquet_io::write_partition(&path, schema, batches)?;
        Ok(self.register(id, table, partition, path, stats))
    }
}

/// Reads a partition file after checking its SHA-256 against the recorded
/// one (a mismatch is [`EngineError::Corrupt`]).
pub fn read_verified_file(p: &PartitionRef, path: &Path) -> Result<Vec<RecordBatch>> {
    let (_, actual) = parquet_io::hash_file(path)?;
    if actual != p.sha256 {
        return Err(EngineError::Corrupt {
            id: p.id.clone(),
            expected: p.sha256.clone(),
            actual,
        });
    }
    let (_, batches) = parquet_io::read_partition(path)?;
    Ok(batches)
}

/// Partitions in one local folder: every partition is held here.
#[derive(Debug)]
pub struct FolderIo {
    dir: PathBuf,
    node_id: String,
    held: Mutex<HashMap<String, PathBuf>>,
}

impl FolderIo {
    /// Partitions under `dir` (created when missing).
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::Malformed {
            what: format!("partition folder {}", dir.display()),
            message: e.to_string(),
        })?;
        Ok(FolderIo {
            dir: dir.to_path_buf(),
            node_id: "local".into(),
            held: Mutex::new(HashMap::new()),
        })
    }
}

#[async_trait::async_trait]
impl PartitionIo for FolderIo {
    async fn fetch(&self, p: &PartitionRef) -> Result<Vec<RecordBatch>> {
        let path = self
            .local_file(p)
            .unwrap_or_else(|| PathBuf::from(p.uri.trim_start_matches("file://")));
        read_verified_file(p, &path)
    }

    fn local_file(&self, p: &PartitionRef) -> Option<PathBuf> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&p.id)
            .cloned()
            .or_else(|| Some(self.staging_path(&p.id)).filter(|f| f.is_file()))
    }

    fn staging_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.parquet"))
    }

    fn hold(&self, id: &str, path: &Path, _stats: &FileStats) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), path.to_path_buf());
    }

    fn location(&self) -> (String, String) {
        (self.node_id.clone(), String::new())
    }

    fn scratch_path(&self, name: &str) -> PathBuf {
        self.dir.join("scratch").join(name)
    }
}
