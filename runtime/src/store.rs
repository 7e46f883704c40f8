//! The artifact store: where manifests, mappings, certificates, receipts and
//! staged partitions live. It wraps `object_store` so that a local folder (the
//! default) and an S3-compatible bucket are used the same way.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use sha2::Digest;

use crate::error::{Result, RuntimeError};

/// Artifact store rooted at one location.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    inner: Arc<dyn ObjectStore>,
    root: PathBuf,
}

/// SHA-256 of some bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

impl ArtifactStore {
    /// A store on a local folder, created if absent.
    pub fn local(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|source| RuntimeError::Io {
            what: "creating artifact folder",
            path: root.to_path_buf(),
            source,
        })?;
        let root = root.canonicalize().map_err(|source| RuntimeError::Io {
            what: "resolving artifact folder",
            path: root.to_path_buf(),
            source,
        })?;
        let fs = LocalFileSystem::new_with_prefix(&root)?;
        Ok(ArtifactStore {
            inner: Arc::new(fs),
            root,
        })
    }

    /// The folder backing the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A local path for an artifact, for readers that want a file (Parquet, SQLite).
    pub fn local_path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// A URI naming an artifact, for manifests.
    pub fn uri(&self, path: &str) -> String {
        format!("file://{}", self.root.join(path).display())
    }

    /// Writes (or replaces) an artifact and returns its SHA-256.
    pub async fn put(&self, path: &str, bytes: Bytes) -> Result<String> {
        let hash = sha256_hex(&bytes);
        self.inner
            .put(&ObjectPath::from(path), PutPayload::from(bytes))
            .await?;
        Ok(hash)
    }

    /// Writes an artifact that must never change: refused if it already exists.
    pub async fn put_once(&self, path: &str, bytes: Bytes) -> Result<String> {
        let hash = sha256_hex(&bytes);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&ObjectPath::from(path), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) => Ok(hash),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(RuntimeError::AlreadyExists(path.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads an artifact.
    pub async fn get(&self, path: &str) -> Result<Bytes> {
        Ok(self
            .inner
            .get(&ObjectPath::from(path))
            .await?
            .bytes()
            .await?)
    }

    /// Whether an artifact exists.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        match self.inner.head(&ObjectPath::from(path)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every artifact under a prefix (used by `--restart`).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        let dir = self.root.join(prefix);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RuntimeError::Io {
                what: "deleting artifacts",
                path: dir,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_and_write_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let h = store
            .put("m/manifest.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        assert_eq!(h, sha256_hex(b"{}"));
        assert_eq!(
            store.get("m/manifest.json").await.unwrap(),
            Bytes::from_static(b"{}")
        );
        store
            .put_once("m/cert.json", Bytes::from_static(b"1"))
            .await
            .unwrap();
        let err = store
            .put_once("m/cert.json", Bytes::from_static(b"2"))
            .await
            .unwrap_err();
        assert!(matches!(err, RuntimeError::AlreadyExists(_)), "{err}");
        assert_eq!(
            store.get("m/cert.json").await.unwrap(),
            Bytes::from_static(b"1")
        );
        assert!(store.exists("m/cert.json").await.unwrap());
        store.delete_prefix("m").await.unwrap();
        assert!(!store.exists("m/cert.json").await.unwrap());
    }
}
