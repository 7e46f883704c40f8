//! The topics between phases: which topic a phase's completion goes on,
//! what its record holds, and finding the record of a checkpoint. The
//! orchestrator publishes and commits; this module only reads.

use sensei_runtime::topic::{EventLog, Topic};
use sensei_scheduler::Phase;

use crate::error::Result;

/// The topic a phase's completion is published on.
pub fn completion_topic(phase: Phase) -> Topic {
    match phase {
        Phase::Ingestion => Topic::IngestionComplete,
        Phase::Transformation => Topic::TransformationComplete,
        Phase::Verification => Topic::VerificationComplete,
        Phase::Delivery => Topic::DeliveryComplete,
    }
}

/// A phase's completion record: the manifest itself for ingestion, the
/// artifact's address and SHA-256 for the others.
pub fn completion_document(
    id: &str,
    phase: Phase,
    bytes: &[u8],
    uri: &str,
    sha: &str,
) -> Result<serde_json::Value> {
    Ok(if phase == Phase::Ingestion {
        serde_json::from_slice(bytes)?
    } else {
        serde_json::json!({"migration_id": id, "artifact": uri, "sha256": sha})
    })
}

/// The offset of the last record in `[from, to)` of `previous`'s topic that
/// names migration `id`'s checkpoint (`sha256`; for ingestion, the manifest
/// itself is the record).
pub fn last_record_of(
    log: &dyn EventLog,
    (id, previous, sha256): (&str, Phase, &str),
    from: u64,
    to: u64,
) -> Result<Option<u64>> {
    let topic = completion_topic(previous);
    let mut at = from;
    let mut found = None;
    while at < to {
        let records = log.read(topic, at, 1_000)?;
        let Some(last) = records.last() else { break };
        at = last.offset + 1;
        for r in records.iter().filter(|r| r.key == id && r.offset < to) {
            let doc: serde_json::Value = serde_json::from_slice(&r.value).unwrap_or_default();
            let names_it = if previous == Phase::Ingestion {
                doc["migration_id"] == id && !doc["tables"].is_null()
            } else {
                doc["sha256"] == sha256
            };
            if names_it {
                found = Some(r.offset);
            }
        }
    }
    Ok(found)
}
