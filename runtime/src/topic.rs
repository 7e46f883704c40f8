//! Topics between phases, one trait with backends behind it.
//!
//! [`EventLog`] is what phases publish to and read from. [`EmbeddedLog`] is the
//! default backend: one append-only file per topic, each record framed as
//! `len: u32 LE | crc32(payload): u32 LE | payload`, and consumer offsets kept
//! per group in small files replaced atomically. On open, a record whose frame
//! is short or whose CRC does not match (a write torn by a crash) is cut off:
//! it is never handed out as data.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// The six topics of the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    /// Ingestion Manifest published.
    IngestionComplete,
    /// Transformation Artifact reference published.
    TransformationComplete,
    /// Certificate and verified data reference published.
    VerificationComplete,
    /// Delivery Confirmation Receipt published.
    DeliveryComplete,
    /// Progress events, errors, status changes.
    MigrationEvents,
    /// Work assignments and configuration updates.
    AgentCoordination,
}

impl Topic {
    /// All topics.
    pub const ALL: [Topic; 6] = [
        Topic::IngestionComplete,
        Topic::TransformationComplete,
        Topic::VerificationComplete,
        Topic::DeliveryComplete,
        Topic::MigrationEvents,
        Topic::AgentCoordination,
    ];

    /// The topic's name, as Kafka would know it.
    pub fn name(self) -> &'static str {
        match self {
            Topic::IngestionComplete => "ingestion.complete",
            Topic::TransformationComplete => "transformation.complete",
            Topic::VerificationComplete => "verification.complete",
            Topic::DeliveryComplete => "delivery.complete",
            Topic::MigrationEvents => "migration.events",
            Topic::AgentCoordination => "agent.coordination",
        }
    }
}

/// One record read from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Position in the topic, from 0.
    pub offset: u64,
    /// Record key (a migration id, usually).
    pub key: String,
    /// JSON payload.
    pub value: Vec<u8>,
}

/// A topic log: append, read from an offset, commit a consumer group's offset.
pub trait EventLog: Send + Sync {
    /// Appends a record and returns its offset once it is durable.
    fn append(&self, topic: Topic, key: &str, value: &[u8]) -> Result<u64>;
    /// Reads up to `max` records starting at `from`.
    fn read(&self, topic: Topic, from: u64, max: usize) -> Result<Vec<Record>>;
    /// Records that `group` has consumed everything before `next`.
    fn commit(&self, group: &str, topic: Topic, next: u64) -> Result<()>;
    /// The next offset `group` should read (0 when it never committed).
    fn committed(&self, group: &str, topic: Topic) -> Result<u64>;
}

/// Opens the topic backend `setting` names: `embedded` (files under `dir`)
/// or `kafka://HOST:PORT[,HOST:PORT]` (the `[topics]` settings apply).
pub fn open(
    setting: &str,
    topics: &crate::config::TopicsSection,
    dir: &Path,
) -> Result<std::sync::Arc<dyn EventLog>> {
    match crate::kafka::brokers_of(setting) {
        None if setting == "embedded" => Ok(std::sync::Arc::new(EmbeddedLog::open(dir)?)),
        None => Err(RuntimeError::Config {
            origin: "runtime.topics".into(),
            message: format!(
                "{setting:?} is not a known backend (known: \"embedded\", \"kafka://HOST:PORT[,HOST:PORT]\")"
            ),
        }),
        Some(brokers) => Ok(std::sync::Arc::new(crate::kafka::KafkaLog::open(
            crate::kafka::KafkaSettings {
                brokers: brokers.to_string(),
                replication: topics.replication,
                min_insync_replicas: topics.min_insync_replicas,
                retention: crate::config::parse_duration(&topics.retention_grace).ok_or_else(
                    || RuntimeError::Config {
                        origin: "topics.retention_grace".into(),
                        message: format!("{:?} is not a duration", topics.retention_grace),
                    },
                )?,
                timeout: std::time::Duration::from_millis(topics.timeout_ms.max(1)),
            },
        )?)),
    }
}

/// Appends a JSON document to a topic.
pub fn publish_json<T: Serialize>(
    log: &dyn EventLog,
    topic: Topic,
    key: &str,
    doc: &T,
) -> Result<u64> {
    let bytes = serde_json::to_vec(doc)?;
    log.append(topic, key, &bytes)
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    key: &'a str,
    #[serde(with = "b64")]
    value: Vec<u8>,
}

mod b64 {
    use base64::Engine;
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

struct TopicFile {
    file: File,
    /// Byte position of each record's frame; `positions.len()` is the next offset.
    positions: Vec<u64>,
    end: u64,
}

/// The embedded, file-backed event log (the default backend).
///
/// One mutex per process guards all topics: appends are small and rare
/// (phase documents and events), so contention is not worth finer locks.
pub struct EmbeddedLog {
    dir: PathBuf,
    topics: Mutex<HashMap<Topic, TopicFile>>,
}

const HEADER: u64 = 8;

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir`, recovering every topic file.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(dir.join("offsets")).map_err(|source| RuntimeError::Io {
            what: "creating event log folder",
            path: dir.clone(),
            source,
        })?;
        let mut topics = HashMap::new();
        for topic in Topic::ALL {
            let path = dir.join(format!("{}.log", topic.name()));
            topics.insert(topic, Self::recover(&path, true)?);
        }
        Ok(EmbeddedLog {
            dir,
            topics: Mutex::new(topics),
        })
    }

    /// Opens the log in `dir` to read only, beside a process that may be
    /// appending to it: nothing is created, and a record still being
    /// written (a short or unchecked tail) is left alone, not cut off.
    /// Records appended after this call are seen by the next open.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let mut topics = HashMap::new();
        for topic in Topic::ALL {
            let path = dir.join(format!("{}.log", topic.name()));
            if path.exists() {
                topics.insert(topic, Self::recover(&path, false)?);
            }
        }
        Ok(EmbeddedLog {
            dir,
            topics: Mutex::new(topics),
        })
    }

    /// Indexes a topic file's records; `repair` cuts off a torn tail (the
    /// writer's open), otherwise it is only skipped (a reader's).
    fn recover(path: &Path, repair: bool) -> Result<TopicFile> {
        let io = |what: &'static str| {
            let path = path.to_path_buf();
            move |source| RuntimeError::Io { what, path, source }
        };
        let mut file = if repair {
            OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(path)
        } else {
            OpenOptions::new().read(true).open(path)
        }
        .map_err(io("opening topic file"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io("reading topic file"))?;
        let mut positions = Vec::new();
        let mut pos = 0usize;
        while pos + HEADER as usize <= bytes.len() {
            let len =
                u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
                    as usize;
            let crc = u32::from_le_bytes([
                bytes[pos + 4],
                bytes[pos + 5],
                bytes[pos + 6],
                bytes[pos + 7],
            ]);
            let start = pos + HEADER as usize;
            let Some(payload) = bytes.get(start..start + len) else {
                break;
            };
            if crc32fast::hash(payload) != crc {
                break;
            }
            positions.push(pos as u64);
            pos = start + len;
        }
        if pos != bytes.len() && repair {
            tracing::warn!(
                path = %path.display(),
                valid_bytes = pos,
                dropped_bytes = bytes.len() - pos,
                "event log: cutting a torn or corrupt tail record"
            );
            file.set_len(pos as u64)
                .map_err(io("truncating torn topic tail"))?;
            file.sync_all().map_err(io("syncing topic file"))?;
        }
        Ok(TopicFile {
            file,
            positions,
            end: pos as u64,
        })
    }

    fn offset_path(&self, group: &str, topic: Topic) -> PathBuf {
        let safe: String = group
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir
            .join("offsets")
            .join(format!("{safe}.{}", topic.name()))
    }
}

impl EventLog for EmbeddedLog {
    fn append(&self, topic: Topic, key: &str, value: &[u8]) -> Result<u64> {
        let payload = serde_json::to_vec(&Envelope {
            key,
            value: value.to_vec(),
        })?;
        let mut frame = Vec::with_capacity(payload.len() + HEADER as usize);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let tf = topics.get_mut(&topic).ok_or_else(|| RuntimeError::Io {
            what: "topic not open",
            path: self.dir.clone(),
            source: std::io::Error::other(topic.name()),
        })?;
        let path = self.dir.join(format!("{}.log", topic.name()));
        tf.file
            .write_all(&frame)
            .map_err(|source| RuntimeError::Io {
                what: "appending to topic",
                path: path.clone(),
                source,
            })?;
        tf.file.sync_data().map_err(|source| RuntimeError::Io {
            what: "syncing topic",
            path,
            source,
        })?;
        let offset = tf.positions.len() as u64;
        tf.positions.push(tf.end);
        tf.end += frame.len() as u64;
        Ok(offset)
    }

    fn read(&self, topic: Topic, from: u64, max: usize) -> Result<Vec<Record>> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tf) = topics.get_mut(&topic) else {
            return Ok(Vec::new());
        };
        let path = self.dir.join(format!("{}.log", topic.name()));
        let io = |source| RuntimeError::Io {
            what: "reading topic",
            path: path.clone(),
            source,
        };
        let mut out = Vec::new();
        let mut offset = from;
        while (offset as usize) < tf.positions.len() && out.len() < max {
            let pos = tf.positions[offset as usize];
            tf.file.seek(SeekFrom::Start(pos)).map_err(io)?;
            let mut header = [0u8; HEADER as usize];
            tf.file.read_exact(&mut header).map_err(io)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let mut payload = vec![0u8; len];
            tf.file.read_exact(&mut payload).map_err(io)?;
            let env: Envelope<'_> = serde_json::from_slice(&payload)?;
            out.push(Record {
                offset,
                key: env.key.to_string(),
                value: env.value,
            });
            offset += 1;
        }
        Ok(out)
    }

    fn commit(&self, group: &str, topic: Topic, next: u64) -> Result<()> {
        let path = self.offset_path(group, topic);
        let io = |source| RuntimeError::Io {
            what: "committing consumer offset",
            path: path.clone(),
            source,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(self.dir.join("offsets")).map_err(io)?;
        tmp.write_all(next.to_string().as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        // persist() renames atomically: a crash leaves the old or the new offset, never half of one.
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(())
    }

    fn committed(&self, group: &str, topic: Topic) -> Result<u64> {
        let path = self.offset_path(group, topic);
        match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse().map_err(|_| RuntimeError::Io {
                what: "parsing consumer offset",
                path,
                source: std::io::Error::other("not a number"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(source) => Err(RuntimeError::Io {
                what: "reading consumer offset",
                path,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_offsets_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            for i in 0..5 {
                let off = log
                    .append(Topic::MigrationEvents, "m1", format!("e{i}").as_bytes())
                    .unwrap();
                assert_eq!(off, i);
            }
            log.append(Topic::IngestionComplete, "m1", b"{}").unwrap();
            log.commit("orchestrator", Topic::MigrationEvents, 3)
                .unwrap();
        }
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let recs = log.read(Topic::MigrationEvents, 0, 100).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[4].value, b"e4");
        assert_eq!(recs[4].key, "m1");
        assert_eq!(
            log.committed("orchestrator", Topic::MigrationEvents)
                .unwrap(),
            3
        );
        assert_eq!(log.committed("other", Topic::MigrationEvents).unwrap(), 0);
        let from3 = log.read(Topic::MigrationEvents, 3, 100).unwrap();
        assert_eq!(
            from3.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(log.append(Topic::MigrationEvents, "m1", b"e5").unwrap(), 5);
        assert_eq!(log.read(Topic::IngestionComplete, 0, 10).unwrap().len(), 1);
    }

    #[test]
    fn torn_last_record_is_cut_by_crc() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            log.append(Topic::MigrationEvents, "k", b"first").unwrap();
            log.append(Topic::MigrationEvents, "k", b"second").unwrap();
        }
        let path = dir.path().join("migration.events.log");
        let len = std::fs::metadata(&path).unwrap().len();
        // Flip one byte inside the last record's payload: its CRC no longer matches.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let recs = log.read(Topic::MigrationEvents, 0, 10).unwrap();
        assert_eq!(recs.len(), 1, "the corrupt record must not be read as data");
        assert_eq!(recs[0].value, b"first");
        assert!(
            std::fs::metadata(&path).unwrap().len() < len,
            "torn tail is cut"
        );
        // New appends go where the cut record was.
        assert_eq!(
            log.append(Topic::MigrationEvents, "k", b"third").unwrap(),
            1
        );
        drop(log);
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let recs = log.read(Topic::MigrationEvents, 0, 10).unwrap();
        assert_eq!(
            recs.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
            vec![b"first".to_vec(), b"third".to_vec()]
        );
    }

    #[test]
    fn short_frame_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        {
            let log = EmbeddedLog::open(dir.path()).unwrap();
            log.append(Topic::DeliveryComplete, "k", b"whole").unwrap();
            log.append(Topic::DeliveryComplete, "k", b"torn-in-half")
                .unwrap();
        }
        let path = dir.path().join("delivery.complete.log");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        let recs = log.read(Topic::DeliveryComplete, 0, 10).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].value, b"whole");
    }
}
