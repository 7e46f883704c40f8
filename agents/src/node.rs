//! What an agent can reach on its node: the node's batch store and Flight
//! endpoint, the artifact store, the work pool, and Flight clients to peers.
//! The node is the engines' [`PartitionIo`]: a partition held here is read
//! from its file, one held elsewhere comes over Flight from its holder.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::TryStreamExt;
use peers::ClientCache;
use sensei_flight::parquet_io::FileStats;
use sensei_flight::{NodeStore, PartitionClient};
use sensei_runtime::store::ArtifactStore;
use sensei_runtime::supervise::WorkPool;

use sensei_contracts::artifacts::PartitionRef;
use sensei_contracts::error::{EngineError, Result};
use sensei_contracts::io::{read_verified_file, PartitionIo};

mod peers {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use sensei_flight::PartitionClient;

    /// Flight clients by endpoint. A plain mutex: it is held only to clone or
    /// insert a client, never across a connection attempt.
    #[derive(Default, Debug)]
    pub struct ClientCache(Mutex<HashMap<String, PartitionClient>>);

    impl ClientCache {
        pub fn get(&self, endpoint: &str) -> Option<PartitionClient> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(endpoint)
                .cloned()
        }
        pub fn put(&self, endpoint: &str, c: PartitionClient) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(endpoint.to_string(), c);
        }
        pub fn forget(&self, endpoint: &str) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(endpoint);
        }
    }
}

/// Everything an agent on this node needs.
#[derive(Debug)]
pub struct NodeContext {
    /// This node's id.
    pub node_id: String,
    /// Partitions held here, served over Flight.
    pub store: Arc<NodeStore>,
    /// Where artifacts and staged partitions are written.
    pub artifacts: ArtifactStore,
    /// Where heavy work runs.
    pub pool: WorkPool,
    clients: ClientCache,
    /// Presented to the other nodes' Flight services.
    secret: sensei_runtime::tokens::ClusterSecret,
}

impl NodeContext {
    /// A context for node `node_id`.
    pub fn new(
        node_id: &str,
        store: Arc<NodeStore>,
        artifacts: ArtifactStore,
        pool: WorkPool,
        secret: sensei_runtime::tokens::ClusterSecret,
    ) -> Self {
        NodeContext {
            node_id: node_id.to_string(),
            store,
            artifacts,
            pool,
            clients: ClientCache::default(),
            secret,
        }
    }

    async fn client(&self, endpoint: &str) -> Result<PartitionClient> {
        if let Some(c) = self.clients.get(endpoint) {
            return Ok(c);
        }
        let c = PartitionClient::connect(endpoint, &self.secret).await?;
        self.clients.put(endpoint, c.clone());
        Ok(c)
    }

    async fn read_verified(&self, p: &PartitionRef, path: PathBuf) -> Result<Vec<RecordBatch>> {
        let p = p.clone();
        tokio::task::spawn_blocking(move || read_verified_file(&p, &path))
            .await
            .map_err(|e| EngineError::Malformed {
                what: "partition read".into(),
                message: e.to_string(),
            })?
    }
}

#[async_trait::async_trait]
impl PartitionIo for NodeContext {
    /// The staging file of a partition id.
    fn staging_path(&self, id: &str) -> PathBuf {
        self.artifacts.local_path(&format!("{id}.parquet"))
    }

    fn hold(&self, id: &str, path: &std::path::Path, stats: &FileStats) {
        self.store.register(id, path.to_path_buf(), stats.clone());
    }

    fn location(&self) -> (String, String) {
        (self.node_id.clone(), self.store.endpoint().to_string())
    }

    /// The file of a partition held on this node (None: another node holds it).
    fn local_file(&self, p: &PartitionRef) -> Option<PathBuf> {
        let local = self.store.get(&p.id).map(|e| e.path);
        if p.node_id == self.node_id || local.is_some() {
            Some(local.unwrap_or_else(|| self.staging_path(&p.id)))
        } else {
            None
        }
    }

    /// Reads a partition: from this node's store when held here, else over
    /// Flight from the node that holds it. When that node is gone, the staged
    /// file is read instead, after checking its SHA-256 against the reference.
    async fn fetch(&self, p: &PartitionRef) -> Result<Vec<RecordBatch>> {
        if let Some(path) = self.local_file(p) {
            return self.read_verified(p, path).await;
        }
        let remote = async {
            let client = self.client(&p.endpoint).await?;
            let batches: Vec<RecordBatch> = client.stream(&p.id).await?.try_collect().await?;
            Ok::<_, EngineError>(batches)
        }
        .await;
        match remote {
            Ok(batches) => {
                let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
                if rows != p.rows {
                    return Err(EngineError::Corrupt {
                        id: p.id.clone(),
                        expected: format!("{} rows", p.rows),
                        actual: format!("{rows} rows over Flight"),
                    });
                }
                Ok(batches)
            }
            Err(e) => {
                self.clients.forget(&p.endpoint);
                let path = PathBuf::from(p.uri.trim_start_matches("file://"));
                if path.exists() {
                    // Normal after a resume (the process that staged it is
                    // gone) and on shared storage: nothing for a person to do,
                    // and the file's SHA-256 is checked as it is read.
                    tracing::debug!(partition = %p.id, node = %p.node_id, error = %e,
                        "holder unreachable over Flight; reading the staged file");
                    self.read_verified(p, path).await
                } else {
                    Err(e)
                }
            }
        }
    }

    fn scratch_path(&self, name: &str) -> PathBuf {
        self.artifacts.local_path(&format!("scratch/{name}"))
    }
}
