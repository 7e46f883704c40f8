//! The phase artifacts (data contracts): the Ingestion Manifest, the mapping
//! specification and lineage, the Behavioral Equivalence Certificate and the
//! Delivery Confirmation Receipt. Each carries a `version`.

use std::collections::BTreeMap;

use sensei_connectors::table::ColumnInfo;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// Version of every artifact layout in this module.
pub const ARTIFACT_VERSION: u32 = 1;

/// A staged partition and where to get it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRef {
    /// Partition id (the Flight ticket).
    pub id: String,
    /// Table.
    pub table: String,
    /// Partition number within the table.
    pub partition: u32,
    /// Node that holds it.
    pub node_id: String,
    /// That node's Flight endpoint.
    pub endpoint: String,
    /// Staging URI of the file.
    pub uri: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// SHA-256 of the file.
    pub sha256: String,
}

/// One table in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestTable {
    /// Table name.
    pub name: String,
    /// Columns with source type, Arrow type and nullability.
    pub columns: Vec<ColumnInfo>,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// Rows extracted.
    pub rows: u64,
    /// Staged partitions.
    pub partitions: Vec<PartitionRef>,
    /// Profile of a sample of the table, with PII flags per column.
    #[serde(default)]
    pub profile: crate::profile::TableProfile,
    /// For CSV and Parquet sources: the file, its size and time at discovery,
    /// the encoding read and its detection confidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<sensei_connectors::files::FileInfo>,
    /// Malformed source records set aside instead of extracted.
    #[serde(default)]
    pub rejected_rows: u64,
    /// Where they were set aside (original bytes, with line and reason).
    #[serde(default)]
    pub quarantine: Vec<String>,
    /// Values changed on the way in: per column, per kind of change (a
    /// MySQL zero date read as NULL), how many.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub changed_values: sensei_connectors::source::Changes,
}

/// The Ingestion Manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Layout version.
    pub version: u32,
    /// Migration id.
    pub migration_id: String,
    /// Source URL, credentials redacted.
    pub source: String,
    /// When extraction was planned (RFC 3339).
    pub checkpoint_time: String,
    /// The source snapshot every partition was read at, where the engine has one.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// How the partitions agree with each other: `snapshot` (one exported
    /// snapshot, PostgreSQL), `read-lock` (MySQL sessions started under a
    /// global read lock), `per-session` (each MySQL partition its own
    /// snapshot), `unchanged-files` (SQLite, CSV, Parquet files checked unchanged).
    #[serde(default)]
    pub consistency: String,
    /// Defaults, constraints, indexes, views, routines and triggers of the source.
    #[serde(default)]
    pub catalog: sensei_connectors::catalog::Catalog,
    /// Tables.
    pub tables: Vec<ManifestTable>,
}

/// One target column's mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMapping {
    /// Target column.
    pub target: String,
    /// SQL expression over the source table.
    pub expression: String,
    /// Source columns it reads.
    pub sources: Vec<String>,
    /// Confidence in [0, 1], written with six decimals (see [`confidence_digits`]).
    #[serde(serialize_with = "confidence_digits")]
    pub confidence: f64,
    /// `auto`, `approved`, `review` or `rejected`.
    pub status: String,
    /// Why.
    pub reasons: Vec<String>,
    /// Who approved, rejected or edited it (`sensei review --by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<String>,
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at: Option<String>,
    /// The next best candidates the Architect weighed (up to 3, best first),
    /// for the reviewer of an entry that waits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Candidate>,
}

impl ColumnMapping {
    /// An entry as the Architect proposes it, before anyone reviewed it.
    pub fn proposed(
        target: &str,
        expression: String,
        sources: Vec<String>,
        confidence: f64,
        status: &str,
        reasons: Vec<String>,
    ) -> Self {
        ColumnMapping {
            target: target.to_string(),
            expression,
            sources,
            confidence,
            status: status.to_string(),
            reasons,
            reviewed_by: None,
            reviewed_at: None,
            alternatives: Vec::new(),
        }
    }
}

/// A candidate source for a target column that the Architect did not choose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The expression it would take.
    pub expression: String,
    /// Source columns (`table.column`).
    pub sources: Vec<String>,
    /// Its confidence in [0, 1], written with six decimals.
    #[serde(serialize_with = "confidence_digits")]
    pub confidence: f64,
}

/// Writes a confidence with six decimals: a decimal that short reads back as
/// exactly the number written, so a mapping spec read and written again (by
/// `sensei review`, on a resume) stays byte for byte what it was; seventeen
/// significant digits would not survive JSON parsing exactly.
pub fn confidence_digits<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((v * 1e6).round() / 1e6)
}

/// One target table's mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMapping {
    /// Target table.
    pub target: String,
    /// Source tables.
    pub sources: Vec<String>,
    /// Columns in target order.
    pub columns: Vec<ColumnMapping>,
    /// Primary key of the target.
    pub primary_key: Vec<String>,
    /// Tables joined to the source along its foreign keys, for columns the
    /// source lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joins: Vec<Join>,
}

/// A table joined by the generated SQL: `LEFT JOIN <alias> ON source.a = <alias>.b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// Alias in the SQL (`j1`, `j2`, ...); also the name the table is registered under.
    pub alias: String,
    /// Source table joined.
    pub table: String,
    /// (source column, joined table column) pairs: the foreign key.
    pub on: Vec<(String, String)>,
}

/// The mapping specification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MappingSpec {
    /// Layout version.
    pub version: u32,
    /// Migration id.
    pub migration_id: String,
    /// Auto-approval threshold.
    pub auto_approval_threshold: f64,
    /// Whether `--approve-all` approved every entry that waited for review.
    #[serde(default)]
    pub approved_all: bool,
    /// Source tables no target table takes rows from (not migrated).
    #[serde(default)]
    pub unmapped_sources: Vec<String>,
    /// Tables.
    pub tables: Vec<TableMapping>,
}

/// The artifact (next to the certificate) recording who accepted an
/// INCONCLUSIVE certificate for delivery, and when; written once.
pub const INCONCLUSIVE_REVIEW: &str = "inconclusive-review.json";

/// The foreign keys of a PostgreSQL target dropped for the load and added
/// back after it: (table, constraint, definition).
pub const DEFERRED_FOREIGN_KEYS: &str = "deferred-foreign-keys.json";

/// The secondary indexes of a PostgreSQL target dropped for the load and
/// built after it: (table, index, definition).
pub const DEFERRED_INDEXES: &str = "deferred-indexes.json";

/// Where a staged delivery loads before publication
/// (`sensei_connectors::target::StagingArea`, or null when the target is
/// written directly).
pub const STAGING_AREA: &str = "staging-area.json";

/// The target tables this migration's delivery created (names): taken
/// back when the delivery halts before any batch landed.
pub const CREATED_TABLES: &str = "created-tables.json";

/// The Behavioral Equivalence Certificate as written: a payload and its signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedCertificate {
    /// The signed document.
    pub payload: serde_json::Value,
    /// Algorithm of the signature.
    pub signature_algorithm: String,
    /// Ed25519 signature over the RFC 8785 canonical form of `payload`, hex.
    pub signature: String,
}

/// RFC 8785 (JSON Canonicalization Scheme) for the documents Sensei signs:
/// object keys sorted by UTF-16 code units, no whitespace, strings escaped as
/// ECMAScript does, integers in plain decimal. Floating-point numbers are
/// refused (certificates carry none), which keeps number formatting exact.
pub fn canonical_json(value: &serde_json::Value) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_canonical(value, &mut out)?;
    Ok(out)
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) -> Result<()> {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(EngineError::Malformed {
                    what: "certificate payload".into(),
                    message: format!(
                        "floating-point number {n} cannot be canonicalised; use a string"
                    ),
                });
            }
        }
        Value::String(s) => out.extend_from_slice(serde_json::to_string(s)?.as_bytes()),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(serde_json::to_string(k)?.as_bytes());
                out.push(b':');
                write_canonical(&map[k], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Signs a certificate payload.
pub fn sign_certificate(
    payload: serde_json::Value,
    key: &sensei_runtime::signing::SigningKey,
) -> Result<SignedCertificate> {
    let bytes = canonical_json(&payload)?;
    Ok(SignedCertificate {
        payload,
        signature_algorithm: "Ed25519 over RFC 8785 canonical JSON of payload".into(),
        signature: hex_encode(&key.sign(&bytes)),
    })
}

fn hex_encode(b: &[u8]) -> String {
    hex::encode(b)
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

/// Verifies a certificate file's bytes. With `trusted_key`, the signature must
/// be by that key; without it, by the key named in the payload (which proves
/// integrity, not origin). Returns the payload on success.
pub fn verify_certificate(
    bytes: &[u8],
    trusted_key: Option<[u8; 32]>,
    path: &str,
) -> Result<serde_json::Value> {
    let bad = |message: String| EngineError::Certificate {
        path: path.to_string(),
        message,
    };
    let cert: SignedCertificate =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a certificate: {e}")))?;
    let embedded = cert
        .payload
        .get("public_key")
        .and_then(|v| v.as_str())
        .and_then(hex_decode)
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| bad("payload has no valid public_key".into()))?;
    let key = match trusted_key {
        Some(k) if k != embedded => {
            return Err(bad(
                "signed by a different key than the trusted public key".into()
            ))
        }
        Some(k) => k,
        None => embedded,
    };
    let sig: [u8; 64] = hex_decode(&cert.signature)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("signature is not 64 hex-encoded bytes".into()))?;
    let message = canonical_json(&cert.payload)?;
    if !sensei_runtime::signing::verify(&key, &message, &sig) {
        return Err(bad("signature does not match the payload (the certificate was altered or signed by another key)".into()));
    }
    Ok(cert.payload)
}

/// Parses a hex public key file.
pub fn parse_public_key(text: &str) -> Option<[u8; 32]> {
    hex_decode(text.trim()).and_then(|v| v.try_into().ok())
}

/// One batch as the target acknowledged it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// Ledger key of the partition (`table/partition`).
    pub partition: String,
    /// Batch sequence number.
    pub seq: u64,
    /// Attempt that delivered it now (0: skipped, the ledger held it).
    pub attempt: u32,
    /// Rows written now.
    pub rows: u64,
    /// Time in the target transaction, milliseconds.
    pub elapsed_ms: u64,
    /// The target's notices and warnings for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Per-table delivery figures in the receipt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeliveredTable {
    /// Rows written by this migration.
    pub rows_written: u64,
    /// Batches written.
    pub batches_written: u64,
    /// Batches skipped because the ledger already held them.
    pub batches_skipped: u64,
    /// Rows found in the target table afterwards.
    pub rows_in_target: u64,
    /// Digest of the target table read back (same algorithm as the certificate's).
    pub checksum: String,
    /// Whether it equals the certificate's digest and Merkle root for the table.
    pub matches_certificate: bool,
    /// Merkle root of the target table read back (the certificate's algorithm).
    #[serde(default)]
    pub merkle_root: String,
    /// The target's acknowledgement of every batch, in partition and batch order.
    #[serde(default)]
    pub batches: Vec<BatchRecord>,
}

/// The Delivery Confirmation Receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// Layout version.
    pub version: u32,
    /// Migration id.
    pub migration_id: String,
    /// SHA-256 of certificate.json.
    pub certificate_sha256: String,
    /// Target URL, credentials redacted.
    pub target: String,
    /// Per table.
    pub tables: BTreeMap<String, DeliveredTable>,
    /// Sum of the delivery tasks' elapsed time.
    pub elapsed_ms: u64,
    /// Warnings from the target and from post-delivery checks.
    pub warnings: Vec<String>,
    /// When (RFC 3339).
    pub delivered_at: String,
    /// Notices and warnings the target sent while batches were written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_notices: Vec<String>,
    /// Post-delivery validation: whether the query suite was replayed on
    /// the delivered data against the source snapshot (`replayed`), its
    /// counts and the differences named, or why it was not (`reason`: the
    /// rows read back are the certified rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_delivery: Option<serde_json::Value>,
    /// Values changed on the way in, per source table and column (from the manifest).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changed_values: BTreeMap<String, sensei_connectors::source::Changes>,
    /// The review that accepted an INCONCLUSIVE certificate, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_inconclusive: Option<serde_json::Value>,
    /// Where the rows were loaded and checked before publication, when the
    /// target stages a delivery (a PostgreSQL schema), and whether they
    /// were published from there into the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staging: Option<Staging>,
}

/// A staged delivery as the receipt records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Staging {
    /// The staging area (a schema of the target database).
    pub area: String,
    /// Whether its rows were published into the target (false: the
    /// post-delivery checks failed and the target is as it was).
    pub published: bool,
    /// Tables moved into the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<String>,
}

/// Now as RFC 3339 UTC with millisecond precision.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339_ms(d.as_millis() as i64)
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC (`2026-11-30T07:05:29.123Z`).
pub fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = sensei_connectors::convert::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_and_compacts() {
        let v = serde_json::json!({"b": [1, {"z": true, "a": null}], "a": "x\"y\u{1}", "é": 2, "Z": -3});
        let c = String::from_utf8(canonical_json(&v).unwrap()).unwrap();
        assert_eq!(
            c,
            r#"{"Z":-3,"a":"x\"y\u0001","b":[1,{"a":null,"z":true}],"é":2}"#
        );
        assert!(canonical_json(&serde_json::json!({"f": 1.5})).is_err());
    }

    #[test]
    fn tampered_certificate_fails() {
        let dir = tempfile::tempdir().unwrap();
        let key = sensei_runtime::signing::SigningKey::generate(&dir.path().join("k")).unwrap();
        let payload = serde_json::json!({"status": "PASS", "rows": 10, "public_key": hex_encode(&key.public_key())});
        let cert = sign_certificate(payload, &key).unwrap();
        let bytes = serde_json::to_vec_pretty(&cert).unwrap();
        verify_certificate(&bytes, None, "c").unwrap();
        verify_certificate(&bytes, Some(key.public_key()), "c").unwrap();
        // Change one byte of the payload: "PASS" becomes "FASS".
        let text = String::from_utf8(bytes.clone())
            .unwrap()
            .replacen("PASS", "FASS", 1);
        assert!(verify_certificate(text.as_bytes(), None, "c").is_err());
        let other = sensei_runtime::signing::SigningKey::generate(&dir.path().join("k2")).unwrap();
        assert!(verify_certificate(&bytes, Some(other.public_key()), "c").is_err());
    }

    #[test]
    fn rfc3339_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }

    /// Arbitrary JSON payloads (no floats: the signed payload carries none).
    fn payload() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn column_mapping() -> impl proptest::strategy::Strategy<Value = ColumnMapping> {
        use proptest::prelude::*;
        (
            ".{1,12}",
            ".{0,40}",
            proptest::collection::vec(".{1,16}", 0..3),
            0.0f64..=1.0,
            prop_oneof![
                Just("auto"),
                Just("pending"),
                Just("approved"),
                Just("rejected")
            ],
            proptest::collection::vec(".{0,30}", 0..3),
            proptest::option::of(".{1,10}"),
        )
            .prop_map(
                |(target, expression, sources, confidence, status, reasons, reviewed_by)| {
                    ColumnMapping {
                        target,
                        expression,
                        sources,
                        confidence,
                        status: status.to_string(),
                        reasons,
                        reviewed_at: reviewed_by
                            .as_ref()
                            .map(|_| "2026-11-30T00:00:00Z".to_string()),
                        reviewed_by,
                        alternatives: Vec::new(),
                    }
                },
            )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// A mapping spec (any names, expressions, reasons, confidences)
        /// reads back exactly as written, and a spec cut short anywhere is
        /// refused, never read as a smaller spec.
        #[test]
        fn any_mapping_spec_round_trips_and_a_truncated_one_is_refused(
            columns in proptest::collection::vec(column_mapping(), 1..6),
            target in ".{1,12}",
            cut in 0usize..10_000,
        ) {
            let spec = MappingSpec {
                version: ARTIFACT_VERSION,
                migration_id: "m-1".into(),
                auto_approval_threshold: 0.92,
                approved_all: false,
                unmapped_sources: Vec::new(),
                tables: vec![TableMapping {
                    target,
                    sources: vec!["s".into()],
                    columns,
                    primary_key: Vec::new(),
                    joins: Vec::new(),
                }],
            };
            let text = serde_json::to_string_pretty(&spec).unwrap();
            let back: MappingSpec = serde_json::from_str(&text).unwrap();
            let mut rounded = spec.clone();
            for c in &mut rounded.tables[0].columns {
                c.confidence = (c.confidence * 1e6).round() / 1e6;
            }
            proptest::prop_assert_eq!(&back, &rounded);
            proptest::prop_assert_eq!(serde_json::to_string_pretty(&back).unwrap(), text.clone());
            let mut at = cut % text.len();
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            proptest::prop_assert!(serde_json::from_str::<MappingSpec>(&text[..at]).is_err());
        }

        /// Sign then verify holds for any payload; any change to a value
        /// of the payload is refused.
        #[test]
        fn any_signed_payload_verifies_and_any_change_is_refused(body in payload(), changed in ".{1,8}") {
            let dir = tempfile::tempdir().unwrap();
            let key = sensei_runtime::signing::SigningKey::generate(&dir.path().join("k")).unwrap();
            let payload = serde_json::json!({"body": body, "public_key": hex_encode(&key.public_key())});
            let cert = sign_certificate(payload, &key).unwrap();
            let bytes = serde_json::to_vec(&cert).unwrap();
            proptest::prop_assert!(verify_certificate(&bytes, Some(key.public_key()), "c").is_ok());
            let mut tampered = cert.clone();
            let before = tampered.payload["body"].clone();
            tampered.payload["body"] = serde_json::json!([before, changed]);
            let bytes = serde_json::to_vec(&tampered).unwrap();
            proptest::prop_assert!(verify_certificate(&bytes, None, "c").is_err());
        }
    }
}
