//! The node batch store: the partitions this node holds, by id.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use crate::parquet_io::FileStats;

/// A partition held by a node.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PartitionEntry {
    /// Partition id (also the Flight ticket).
    pub id: String,
    /// The Parquet file.
    pub path: PathBuf,
    /// Rows, size and hash.
    pub stats: FileStats,
}

/// Counters of what the node's Flight service served.
#[derive(Debug, Default)]
pub struct FlightCounters {
    /// DoGet calls served.
    pub gets: AtomicU64,
    /// Batches served.
    pub batches: AtomicU64,
    /// Rows served.
    pub rows: AtomicU64,
    /// Partitions received by DoPut.
    pub puts: AtomicU64,
}

/// Partitions held by this node, served by its Flight service.
///
/// A `DashMap` because agents register partitions from the work pool while the
/// Flight service reads entries from tonic's tasks; neither side holds an entry
/// across an await.
#[derive(Debug)]
pub struct NodeStore {
    node_id: String,
    endpoint: String,
    dir: PathBuf,
    entries: DashMap<String, PartitionEntry>,
    /// What the Flight service served.
    pub counters: FlightCounters,
}

impl NodeStore {
    /// A store for node `node_id`, reachable at `endpoint`, keeping files under `dir`.
    pub fn new(node_id: &str, endpoint: &str, dir: &Path) -> Self {
        NodeStore {
            node_id: node_id.to_string(),
            endpoint: endpoint.to_string(),
            dir: dir.to_path_buf(),
            entries: DashMap::new(),
            counters: FlightCounters::default(),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This node's Flight endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sets the endpoint once the server knows its port.
    pub fn set_endpoint(&mut self, endpoint: &str) {
        self.endpoint = endpoint.to_string();
    }

    /// Where a partition's file goes.
    pub fn path_for(&self, id: &str) -> PathBuf {
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir
            .join(format!("{}.parquet", safe.replace("..", "_")))
    }

    /// Registers a partition as held here.
    pub fn register(&self, id: &str, path: PathBuf, stats: FileStats) {
        self.entries.insert(
            id.to_string(),
            PartitionEntry {
                id: id.to_string(),
                path,
                stats,
            },
        );
    }

    /// A held partition.
    pub fn get(&self, id: &str) -> Option<PartitionEntry> {
        self.entries.get(id).map(|e| e.clone())
    }

    /// All held partitions.
    pub fn list(&self) -> Vec<PartitionEntry> {
        let mut v: Vec<_> = self.entries.iter().map(|e| e.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Snapshot of the counters as JSON.
    pub fn counters_json(&self) -> serde_json::Value {
        serde_json::json!({
            "node_id": self.node_id,
            "gets": self.counters.gets.load(Ordering::Relaxed),
            "batches": self.counters.batches.load(Ordering::Relaxed),
            "rows": self.counters.rows.load(Ordering::Relaxed),
            "puts": self.counters.puts.load(Ordering::Relaxed),
            "partitions": self.entries.len(),
        })
    }
}
