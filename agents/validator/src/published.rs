//! Which datasets the public Flight endpoint may serve: the target tables of
//! every migration in a working folder whose certificate allows it.
//!
//! A migration's tables are served when its `certificate.json` verifies
//! under the head's own public key (a certificate signed by any other key,
//! or altered, is ignored with a warning), says PASS, or says INCONCLUSIVE
//! and was accepted (`inconclusive-review.json`). Its partitions are those
//! of `transformation.json`, which must hash to the certificate's evidence,
//! each with the SHA-256 the certificate records; the endpoint checks every
//! file against that hash again before it streams it. A FAIL, an INCONCLUSIVE
//! not accepted, or a migration still being verified serves nothing.
//!
//! Each dataset's `app_metadata` carries what a client needs to check what it
//! received: the certificate's SHA-256 and key id, and the table's row count,
//! digest, Merkle root and Merkle key (see [`sensei_contracts::digest`]).

use std::path::{Path, PathBuf};

use sensei_flight::public::{Catalog, Dataset, DatasetPartition};
use sensei_flight::FlightError;
use sensei_runtime::store::sha256_hex;

use sensei_contracts::artifacts::{verify_certificate, PartitionRef, INCONCLUSIVE_REVIEW};

/// The verified datasets of one working folder.
#[derive(Debug, Clone)]
pub struct CertifiedCatalog {
    root: PathBuf,
    public_key: [u8; 32],
}

impl CertifiedCatalog {
    /// The catalog of `workdir`, trusting certificates signed by `public_key`.
    pub fn new(workdir: &Path, public_key: [u8; 32]) -> Self {
        CertifiedCatalog {
            root: workdir.to_path_buf(),
            public_key,
        }
    }

    /// The datasets of one migration folder, or why it serves none.
    fn migration(&self, dir: &Path) -> Result<Vec<Dataset>, String> {
        let cert_path = dir.join("certificate.json");
        let bytes = std::fs::read(&cert_path).map_err(|e| e.to_string())?;
        let payload = verify_certificate(
            &bytes,
            Some(self.public_key),
            &cert_path.display().to_string(),
        )
        .map_err(|e| e.to_string())?;
        let id = payload["migration_id"].as_str().unwrap_or_default();
        let status = payload["status"].as_str().unwrap_or_default();
        let accepted = status == "INCONCLUSIVE" && dir.join(INCONCLUSIVE_REVIEW).exists();
        if status != "PASS" && !accepted {
            return Ok(Vec::new());
        }
        let evidence = &payload["evidence_sha256"];
        let transformation = std::fs::read(dir.join("transformation.json"))
            .map_err(|e| format!("transformation.json: {e}"))?;
        if evidence["transformation.json"].as_str() != Some(sha256_hex(&transformation).as_str()) {
            return Err("transformation.json differs from the one the certificate covers".into());
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&transformation).map_err(|e| e.to_string())?;
        let mut partitions: Vec<PartitionRef> =
            serde_json::from_value(doc["partitions"].clone()).map_err(|e| e.to_string())?;
        partitions.sort_by(|a, b| (&a.table, a.partition).cmp(&(&b.table, b.partition)));
        let certificate_sha256 = sha256_hex(&bytes);
        let mut out = Vec::new();
        let Some(tables) = payload["tables"].as_object() else {
            return Ok(out);
        };
        for (table, t) in tables {
            let mut parts = Vec::new();
            for p in partitions.iter().filter(|p| &p.table == table) {
                if evidence[&p.id].as_str() != Some(p.sha256.as_str()) {
                    return Err(format!(
                        "partition {} is not among the certificate's evidence",
                        p.id
                    ));
                }
                parts.push(DatasetPartition {
                    id: p.id.clone(),
                    path: PathBuf::from(p.uri.trim_start_matches("file://")),
                    sha256: p.sha256.clone(),
                    rows: p.rows,
                    bytes: p.bytes,
                    location: Some(p.endpoint.clone()).filter(|e| !e.is_empty()),
                });
            }
            out.push(Dataset {
                migration: id.to_string(),
                table: table.clone(),
                rows: t["rows"].as_u64().unwrap_or(0),
                metadata: serde_json::json!({
                    "migration_id": id,
                    "table": table,
                    "status": status,
                    "certificate_sha256": certificate_sha256,
                    "key_id": payload["key_id"],
                    "rows": t["rows"],
                    "digest": t["digest"],
                    "merkle_root": t["merkle_root"],
                    "merkle_key": t["merkle_key"],
                }),
                partitions: parts,
            });
        }
        Ok(out)
    }
}

impl Catalog for CertifiedCatalog {
    fn datasets(&self) -> sensei_flight::Result<Vec<Dataset>> {
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| FlightError::Catalog(format!("{}: {e}", self.root.display())))?;
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("certificate.json").is_file())
            .collect();
        dirs.sort();
        let mut out = Vec::new();
        for dir in dirs {
            match self.migration(&dir) {
                Ok(d) => out.extend(d),
                Err(why) => {
                    tracing::warn!(migration = %dir.display(), %why, "not served");
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensei_contracts::artifacts::sign_certificate;
    use sensei_runtime::signing::SigningKey;

    /// A migration folder with one staged file of table `t`, its
    /// transformation.json and a certificate of `status` signed by `key`.
    fn migration(root: &Path, id: &str, status: &str, key: &SigningKey) -> PathBuf {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t-0.parquet");
        std::fs::write(&file, b"rows").unwrap();
        let part_id = format!("{id}/transformation/t/0");
        let transformation = serde_json::to_vec(&serde_json::json!({
            "partitions": [{
                "id": part_id, "table": "t", "partition": 0, "node_id": "n1",
                "endpoint": "grpc://127.0.0.1:1", "uri": format!("file://{}", file.display()),
                "rows": 4, "bytes": 4, "sha256": sha256_hex(b"rows"),
            }]
        }))
        .unwrap();
        std::fs::write(dir.join("transformation.json"), &transformation).unwrap();
        let payload = serde_json::json!({
            "migration_id": id,
            "status": status,
            "public_key": hex::encode(key.public_key()),
            "key_id": key.key_id(),
            "evidence_sha256": {
                "transformation.json": sha256_hex(&transformation),
                part_id: sha256_hex(b"rows"),
            },
            "tables": {"t": {"rows": 4, "digest": "d", "merkle_root": "r", "merkle_key": ["id"]}},
        });
        let cert = sign_certificate(payload, key).unwrap();
        std::fs::write(
            dir.join("certificate.json"),
            serde_json::to_vec(&cert).unwrap(),
        )
        .unwrap();
        dir
    }

    fn listed(catalog: &CertifiedCatalog) -> Vec<String> {
        catalog
            .datasets()
            .unwrap()
            .iter()
            .map(|d| format!("{}/{}", d.migration, d.table))
            .collect()
    }

    #[test]
    fn only_pass_or_accepted_certificates_of_this_head_are_served() {
        let root = tempfile::tempdir().unwrap();
        let key = SigningKey::generate(&root.path().join("keys/signing.key")).unwrap();
        let other = SigningKey::generate(&root.path().join("keys/other.key")).unwrap();
        let catalog = CertifiedCatalog::new(root.path(), key.public_key());
        assert!(listed(&catalog).is_empty());

        migration(root.path(), "a-pass", "PASS", &key);
        migration(root.path(), "b-fail", "FAIL", &key);
        let inconclusive = migration(root.path(), "c-inconclusive", "INCONCLUSIVE", &key);
        migration(root.path(), "d-foreign", "PASS", &other);
        let altered = migration(root.path(), "e-altered", "PASS", &key);
        std::fs::write(altered.join("transformation.json"), b"{\"partitions\": []}").unwrap();
        assert_eq!(listed(&catalog), ["a-pass/t"]);

        let served = &catalog.datasets().unwrap()[0];
        assert_eq!(served.rows, 4);
        assert_eq!(served.partitions.len(), 1);
        assert_eq!(served.partitions[0].sha256, sha256_hex(b"rows"));
        assert_eq!(served.metadata["merkle_root"], "r");
        assert_eq!(served.metadata["merkle_key"][0], "id");

        // An INCONCLUSIVE certificate a person accepted is served.
        std::fs::write(inconclusive.join(INCONCLUSIVE_REVIEW), b"{}").unwrap();
        assert_eq!(listed(&catalog), ["a-pass/t", "c-inconclusive/t"]);
    }
}
