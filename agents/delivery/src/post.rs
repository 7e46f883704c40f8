//! The post-delivery check as leased tasks, run once every partition is
//! written, placed and retried like any other, in rounds: what the load set
//! aside put back and the target's foreign keys checked
//! ([`ConstraintsTask`]); each certified table read back from the target
//! with the certificate's columns and digested with its algorithms, the
//! rows staged for the replay ([`ReadBackTask`], one per table, in
//! parallel); the post-delivery queries replayed on the rows read back
//! against the source snapshot (a [`QueryTask`] run by the validator's
//! engine); for a staged delivery, when all of that agrees with the
//! certificate, the staging area published into the target in one
//! transaction ([`PublishTask`]). The head holds no table: it reads the
//! results and writes the receipt.

use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use sensei_connectors::readback::ReadBack;
use sensei_connectors::sqlite::SqliteTarget;
use sensei_connectors::target::{Deferred, StagingArea, Target};
use sensei_connectors::url::{parse, Location};
use sensei_contracts::artifacts::PartitionRef;
use sensei_contracts::digest::{MerkleDigest, TableDigest};
use sensei_contracts::error::{blocking, EngineError, Result};
use sensei_contracts::io::PartitionIo;
use sensei_flight::parquet_io::{FileStats, PartitionWriter};
use sensei_validator::queries::{QueryResult, QueryTask};

use crate::deliver::TargetConnection;

/// The task table names of the post-delivery tasks start with this; the
/// rest is the table read back, or one of [`CONSTRAINTS`] and [`REPLAY`].
pub const POST_DELIVERY: &str = "post-delivery:";
/// The task that puts back constraints and checks foreign keys.
pub const CONSTRAINTS: &str = "post-delivery:constraints";
/// The task that replays the post-delivery queries.
pub const REPLAY: &str = "post-delivery:replay";
/// The task that publishes a staged delivery.
pub const PUBLISH: &str = "post-delivery:publish";

/// Where the target is and how to open it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetRef {
    /// The target URL (any password removed: it comes from the
    /// environment or the password file).
    pub url: String,
    /// `target.namespace`.
    pub namespace: String,
    /// How the session is opened.
    pub connection: TargetConnection,
}

/// Reads one certified table back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadBackTask {
    /// The target.
    pub target: TargetRef,
    /// The table, as delivered.
    pub table: String,
    /// Its certified columns, in order: (name, Arrow type).
    pub columns: Vec<(String, String)>,
    /// The Merkle key columns.
    pub key: Vec<String>,
    /// The id the rows read are staged under for the replay (None: no
    /// post-delivery replay).
    pub copy_id: Option<String>,
}

/// What a table read back holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadBackResult {
    /// The table.
    pub table: String,
    /// Rows read.
    pub rows_in_target: u64,
    /// Their digest, with the certificate's algorithm.
    pub checksum: String,
    /// Their Merkle root.
    pub merkle_root: String,
    /// The rows staged for the replay.
    pub copy: Option<PartitionRef>,
}

/// Puts back what the load set aside; checks the target's foreign keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConstraintsTask {
    /// The target.
    pub target: TargetRef,
    /// Foreign keys set aside for the load.
    pub foreign_keys: Deferred,
    /// Secondary indexes set aside for the load.
    pub indexes: Deferred,
}

/// What putting back and checking found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConstraintsResult {
    /// What could not be put back, and why.
    pub broken: Vec<String>,
    /// Rows breaking a declared foreign key: (table, referenced table, rows).
    pub violations: Vec<(String, String, u64)>,
}

/// Publishes a staged delivery into the target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublishTask {
    /// The target, in its own namespace.
    pub target: TargetRef,
    /// The staging area.
    pub area: StagingArea,
}

/// One post-delivery task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PostTask {
    /// A table read back.
    ReadBack(ReadBackTask),
    /// Constraints put back and checked.
    Constraints(ConstraintsTask),
    /// The post-delivery queries replayed.
    Replay(QueryTask),
    /// A staged delivery published.
    Publish(PublishTask),
}

/// Runs a post-delivery task; `attempt` names its staged copy.
pub async fn run(io: &dyn PartitionIo, task: PostTask, attempt: u32) -> Result<serde_json::Value> {
    Ok(match task {
        PostTask::ReadBack(t) => {
            let copy = t.copy_id.as_ref().map(|id| format!("{id}-a{attempt}"));
            let path = copy.as_ref().map(|id| io.staging_path(id));
            let (mut result, staged) = blocking("reading a table back", move || {
                read_back_table(&t, path.as_deref())
            })
            .await?;
            if let (Some(id), Some((path, stats))) = (copy, staged) {
                result.copy = Some(io.register(&id, &result.table, 0, path, stats));
            }
            serde_json::to_value(result)?
        }
        PostTask::Constraints(t) => {
            serde_json::to_value(blocking("checking constraints", move || constraints(&t)).await?)?
        }
        PostTask::Replay(t) => serde_json::to_value(sensei_validator::queries::run(io, &t).await?)?,
        PostTask::Publish(t) => serde_json::to_value(
            blocking("publishing the staged delivery", move || {
                let options = t.target.connection.options();
                let published =
                    Target::publish(&t.target.url, &options, &t.target.namespace, &t.area)?;
                Ok(published)
            })
            .await?,
        )?,
    })
}

/// The replay's outcome, from its task's result.
pub fn replay_result(v: &serde_json::Value) -> Result<QueryResult> {
    QueryResult::deserialize(v).map_err(|e| EngineError::Malformed {
        what: "post-delivery replay result".into(),
        message: e.to_string(),
    })
}

/// Reads the table back as its certified columns, digests it, and copies
/// its rows to `copy` when given. Streaming: the table is never held whole.
fn read_back_table(
    t: &ReadBackTask,
    copy: Option<&Path>,
) -> Result<(ReadBackResult, Option<(PathBuf, FileStats)>)> {
    let mut target = ReadBack::open(
        &t.target.url,
        &t.target.connection.options(),
        &t.target.namespace,
    )?;
    let certified = certified_schema(
        &t.table,
        t.columns
            .iter()
            .map(|(c, ty)| (c.as_str(), ty.as_str(), true)),
    )?;
    let order: Vec<String> = t.columns.iter().map(|(c, _)| c.clone()).collect();
    let mut writer: Option<PartitionWriter> = None;
    let mut tap = |b: &RecordBatch| -> sensei_connectors::Result<()> {
        let Some(path) = copy else {
            return Ok(());
        };
        let unwritable =
            |e: sensei_flight::FlightError| sensei_connectors::ConnectorError::TargetNotWritable {
                path: path.display().to_string(),
                message: e.to_string(),
            };
        if writer.is_none() {
            writer = Some(PartitionWriter::create(path, b.schema()).map_err(unwritable)?);
        }
        match writer.as_mut() {
            Some(w) => w.write(b).map_err(unwritable),
            None => Ok(()),
        }
    };
    let (digest, root) = read_back(
        &mut target,
        &t.table,
        &order,
        Some(&certified),
        &t.key,
        copy.map(|_| &mut tap as Tap<'_>),
    )?;
    let staged = match (writer, copy) {
        (Some(w), Some(path)) => Some((path.to_path_buf(), w.finish()?)),
        _ => None,
    };
    let result = ReadBackResult {
        table: t.table.clone(),
        rows_in_target: digest.rows,
        checksum: digest.hex(),
        merkle_root: root,
        copy: None,
    };
    Ok((result, staged))
}

/// The schema of `table`'s certified columns: (name, Arrow type as the
/// certificate writes it, nullable). A type that does not parse is named.
pub fn certified_schema<'a>(
    table: &str,
    columns: impl IntoIterator<Item = (&'a str, &'a str, bool)>,
) -> Result<SchemaRef> {
    let fields = columns
        .into_iter()
        .map(|(name, ty, nullable)| {
            let ty: DataType = ty.parse().map_err(|e| EngineError::Malformed {
                what: format!("certified type of column {name} of table {table}"),
                message: format!("{e}"),
            })?;
            Ok(Field::new(name, ty, nullable))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(std::sync::Arc::new(Schema::new(fields)))
}

/// A batch read back, seen by the post-delivery copy (on a thread of its own).
pub type Tap<'a> = &'a mut (dyn FnMut(&RecordBatch) -> sensei_connectors::Result<()> + Send);

/// Batches read back waiting for the digest or the copy, at most.
const READ_AHEAD: usize = 4;

/// Reads a delivered table back from `target` as the certified columns and
/// types (`certified`, or the columns of `order` as stored) and computes its
/// digest and Merkle root with the certificate's algorithms; each batch is
/// also shown to `tap`. Streaming: the table is never held whole. Three
/// threads share the work: this one reads and decodes, one digests (one
/// SHA-256 of each row serves the digest and its Merkle bucket) and, when
/// there is a `tap`, one runs it (the copy for the replay).
pub fn read_back(
    target: &mut ReadBack,
    table: &str,
    order: &[String],
    certified: Option<&SchemaRef>,
    key: &[String],
    tap: Option<Tap<'_>>,
) -> Result<(TableDigest, String)> {
    use std::sync::mpsc::sync_channel;
    std::thread::scope(|s| {
        let (to_digest, digest_in) = sync_channel::<RecordBatch>(READ_AHEAD);
        let digester = s.spawn(move || {
            let (mut d, mut m) = (TableDigest::default(), MerkleDigest::default());
            for b in digest_in {
                m.add_batch_also(&b, key, Some(&mut d));
            }
            (d, m)
        });
        // The copy's thread only when there is a copy to make.
        let (to_tap, copier) = match tap {
            Some(tap) => {
                let (to_tap, tap_in) = sync_channel::<RecordBatch>(READ_AHEAD);
                let copier = s.spawn(move || -> sensei_connectors::Result<()> {
                    for b in tap_in {
                        tap(&b)?;
                    }
                    Ok(())
                });
                (Some(to_tap), Some(copier))
            }
            None => (None, None),
        };
        // A send fails only when a consumer has stopped: its own outcome
        // says why (a panic, or the copy's error).
        let stopped = || sensei_connectors::ConnectorError::TargetNotWritable {
            path: table.to_string(),
            message: "the read-back's digest or copy stopped".into(),
        };
        let read = target.read(table, order, certified, 8192, |b| {
            if let Some(to_tap) = &to_tap {
                to_tap.send(b.clone()).map_err(|_| stopped())?;
            }
            to_digest.send(b).map_err(|_| stopped())
        });
        drop((to_digest, to_tap));
        let gone = |what: &str| EngineError::Malformed {
            what: format!("reading table {table} back"),
            message: format!("the {what} thread panicked"),
        };
        let (d, m) = digester.join().map_err(|_| gone("digest"))?;
        if let Some(copier) = copier {
            copier.join().map_err(|_| gone("copy"))??;
        }
        read?;
        Ok((d, m.root()))
    })
}

/// Puts back what the load set aside (the server validates the foreign
/// keys against the rows), then, in a SQLite target, lists the rows that
/// break a declared foreign key.
fn constraints(t: &ConstraintsTask) -> Result<ConstraintsResult> {
    let options = t.target.connection.options();
    let broken = if t.foreign_keys.is_empty() && t.indexes.is_empty() {
        Vec::new()
    } else {
        Target::open_in(&t.target.url, &options, &t.target.namespace)?
            .reattach(&t.foreign_keys, &t.indexes)
    };
    let violations = match parse(&t.target.url, "target")? {
        Location::Sqlite(path) => SqliteTarget::open(&path)?.foreign_key_violations()?,
        _ => Vec::new(),
    };
    Ok(ConstraintsResult { broken, violations })
}
