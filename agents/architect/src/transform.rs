//! Phase 2 engine (Worker): run a table's generated SQL over one partition
//! with DataFusion and stage the result.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use sensei_flight::parquet_io::PartitionWriter;
use serde::{Deserialize, Serialize};

use sensei_contracts::artifacts::PartitionRef;
use sensei_contracts::error::{EngineError, Result};
use sensei_contracts::io::PartitionIo;

/// Input of a transformation task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransformTask {
    /// Target table.
    pub target_table: String,
    /// The source partition.
    pub input: PartitionRef,
    /// Generated SQL; reads the table `source`.
    pub sql: String,
    /// Partition id of the output (without the attempt suffix).
    pub output_id: String,
    /// The key file of `sensei_hash` (a path; the key never travels).
    #[serde(default)]
    pub hash_key_file: Option<String>,
    /// Target column and expression pairs, to name the column and row when
    /// a value fails (the SQL alone would not say which).
    #[serde(default)]
    pub columns: Vec<(String, String)>,
    /// Tables the SQL joins, whole, under their aliases.
    #[serde(default)]
    pub lookups: Vec<LookupRef>,
    /// The target's primary key.
    #[serde(default)]
    pub primary_key: Vec<String>,
}

/// A joined table's staged partitions, registered under `alias`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupRef {
    /// Alias in the SQL.
    pub alias: String,
    /// Every staged partition of the table.
    pub partitions: Vec<PartitionRef>,
}

/// A joined table loaded for a session: alias, schema, rows.
pub type Lookup = (
    String,
    arrow::datatypes::SchemaRef,
    Vec<arrow::record_batch::RecordBatch>,
);

/// Fetches the joined tables of a task (every partition, from wherever they are held).
pub async fn load_lookups(ctx: &dyn PartitionIo, refs: &[LookupRef]) -> Result<Vec<Lookup>> {
    let mut out = Vec::new();
    for l in refs {
        let mut batches = Vec::new();
        let mut schema = None;
        for p in &l.partitions {
            let b = ctx.fetch(p).await?;
            if schema.is_none() {
                schema = match b.first() {
                    Some(x) => Some(x.schema()),
                    None => Some(
                        sensei_flight::parquet_io::read_partition(&ctx.staging_path(&p.id))
                            .map_err(EngineError::from)?
                            .0,
                    ),
                };
            }
            batches.extend(b);
        }
        if let Some(schema) = schema {
            out.push((l.alias.clone(), schema, batches));
        }
    }
    Ok(out)
}

async fn fails(
    schema: &arrow::datatypes::SchemaRef,
    batches: &[arrow::record_batch::RecordBatch],
    sql: &str,
    key: &Option<Arc<Vec<u8>>>,
    lookups: &[Lookup],
) -> Option<String> {
    let mut stream =
        match apply_sql(schema.clone(), batches.to_vec(), sql, key.clone(), lookups).await {
            Ok(s) => s,
            Err(e) => return Some(e.to_string()),
        };
    while let Some(b) = stream.next().await {
        if let Err(e) = b {
            return Some(e.to_string());
        }
    }
    None
}

/// After a failure: the first column whose expression fails, and the first
/// row (by halving) on which it does, with the values of that row's columns
/// that the expression reads.
async fn locate_failure(
    task: &TransformTask,
    schema: &arrow::datatypes::SchemaRef,
    batches: &[arrow::record_batch::RecordBatch],
    key: &Option<Arc<Vec<u8>>>,
    lookups: &[Lookup],
) -> Option<String> {
    let whole = arrow::compute::concat_batches(schema, batches).ok()?;
    for (column, expr) in &task.columns {
        let joins = task
            .sql
            .split_once("\nLEFT JOIN")
            .map(|(_, j)| format!("\nLEFT JOIN{}", j.trim_end()))
            .unwrap_or_default();
        let sql = format!("SELECT {expr} AS v FROM source{joins}");
        let Some(mut message) =
            fails(schema, std::slice::from_ref(&whole), &sql, key, lookups).await
        else {
            continue;
        };
        let (mut lo, mut hi) = (0usize, whole.num_rows());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match fails(schema, &[whole.slice(lo, mid - lo)], &sql, key, lookups).await {
                Some(m) => {
                    message = m;
                    hi = mid;
                }
                None => lo = mid,
            }
        }
        let row = whole.slice(lo, 1);
        let options = arrow::util::display::FormatOptions::default().with_null("NULL");
        let values: Vec<String> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| expr.contains(&format!("\"{}\"", f.name())))
            .filter_map(|(i, f)| {
                arrow::util::display::ArrayFormatter::try_new(row.column(i).as_ref(), &options)
                    .ok()
                    .map(|fmt| format!("{} = {:?}", f.name(), fmt.value(0).to_string()))
            })
            .collect();
        return Some(format!(
            "column {column} ({expr}) fails on row {} of source partition {} ({}): {message}; fix the value in the source or the expression in the mapping spec (sensei review --expression)",
            lo + 1,
            task.input.partition,
            values.join(", ")
        ));
    }
    None
}

/// Reads the `sensei_hash` key from its owner-only file.
pub fn load_hash_key(path: Option<&str>) -> Result<Option<Arc<Vec<u8>>>> {
    match path {
        None => Ok(None),
        Some(p) => {
            let secret = sensei_runtime::secret::read_secret_file(std::path::Path::new(p))
                .map_err(|e| EngineError::Invalid {
                    what: "transformation.pii_hash_key_file".into(),
                    message: e.to_string(),
                })?;
            Ok(Some(Arc::new(secret.expose().as_bytes().to_vec())))
        }
    }
}

/// Output of a transformation task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransformResult {
    /// Rows produced.
    pub rows: u64,
    /// Bytes of the staged output partition written.
    #[serde(default)]
    pub bytes: u64,
    /// Rows read.
    pub rows_in: u64,
    /// The staged output partition.
    pub partition: PartitionRef,
}

/// Runs `sql` over one all-NULL row of `schema`: unknown columns, casts
/// between types that have none, and syntax errors surface here without
/// touching data (cast kernels check their types before any value).
pub async fn plan_sql(
    schema: arrow::datatypes::SchemaRef,
    sql: &str,
    lookups: &[(String, arrow::datatypes::SchemaRef)],
) -> std::result::Result<arrow::datatypes::SchemaRef, datafusion::error::DataFusionError> {
    let null_row = |schema: &arrow::datatypes::SchemaRef| {
        let nullable = Arc::new(arrow::datatypes::Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let columns = nullable
            .fields()
            .iter()
            .map(|f| arrow::array::new_null_array(f.data_type(), 1))
            .collect();
        arrow::record_batch::RecordBatch::try_new(nullable.clone(), columns).map(|r| (nullable, r))
    };
    let (nullable, row) = null_row(&schema)?;
    let mut joined = Vec::new();
    for (alias, s) in lookups {
        let (n, r) = null_row(s)?;
        joined.push((alias.clone(), n, vec![r]));
    }
    // A stand-in key: this run checks types, not values.
    let mut stream = apply_sql(
        nullable,
        vec![row],
        sql,
        Some(Arc::new(Vec::new())),
        &joined,
    )
    .await?;
    let out = stream.schema();
    while let Some(b) = stream.next().await {
        b?;
    }
    Ok(out)
}

/// Runs `sql` over `batches` (the table `source`) as a stream of batches, in
/// input order (one DataFusion partition).
pub async fn apply_sql(
    schema: arrow::datatypes::SchemaRef,
    batches: Vec<arrow::record_batch::RecordBatch>,
    sql: &str,
    hash_key: Option<Arc<Vec<u8>>>,
    lookups: &[Lookup],
) -> std::result::Result<
    datafusion::physical_plan::SendableRecordBatchStream,
    datafusion::error::DataFusionError,
> {
    // One input partition per task, and one DataFusion partition inside it: the
    // output keeps the input's row order, so delivery batches are the same on
    // every attempt (their ledger keys depend on it). Parallelism comes from
    // running many partition tasks at once.
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(8192);
    let session = SessionContext::new_with_config(config);
    crate::udf::register(&session, hash_key);
    let table = MemTable::try_new(schema, vec![batches])?;
    session.register_table("source", Arc::new(table))?;
    for (alias, s, b) in lookups {
        session.register_table(
            alias.as_str(),
            Arc::new(MemTable::try_new(s.clone(), vec![b.clone()])?),
        )?;
    }
    session.sql(sql).await?.execute_stream().await
}

/// Runs a transformation task.
pub async fn run(
    ctx: &dyn PartitionIo,
    task: &TransformTask,
    attempt: u32,
) -> Result<TransformResult> {
    let batches = ctx.fetch(&task.input).await?;
    let rows_in: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let sql_err = |e: datafusion::error::DataFusionError| EngineError::Sql {
        table: task.target_table.clone(),
        message: e.to_string(),
    };
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            let (schema, _) =
                sensei_flight::parquet_io::read_partition(&ctx.staging_path(&task.input.id))
                    .map_err(EngineError::from)?;
            schema
        }
    };
    let key = load_hash_key(task.hash_key_file.as_deref())?;
    let lookups = load_lookups(ctx, &task.lookups).await?;
    let kept = if task.columns.is_empty() {
        Vec::new()
    } else {
        batches.clone()
    };
    let mut stream = apply_sql(schema.clone(), batches, &task.sql, key.clone(), &lookups)
        .await
        .map_err(sql_err)?;
    let out_schema = stream.schema();
    let id = format!("{}-a{attempt}", task.output_id);
    let path = ctx.staging_path(&id);
    let mut writer = PartitionWriter::create(&path, out_schema)?;
    while let Some(batch) = stream.next().await {
        match batch {
            Ok(b) => writer.write(&b)?,
            Err(e) => {
                let located = locate_failure(task, &schema, &kept, &key, &lookups).await;
                return Err(EngineError::Sql {
                    table: task.target_table.clone(),
                    message: located.unwrap_or_else(|| e.to_string()),
                });
            }
        }
    }
    let stats = writer.finish()?;
    let partition = ctx.register(
        &id,
        &task.target_table,
        task.input.partition,
        path.clone(),
        stats,
    );
    Ok(TransformResult {
        rows: partition.rows,
        bytes: partition.bytes,
        rows_in,
        partition,
    })
}

#[cfg(test)]
mod engine_tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use sensei_contracts::io::{read_verified_file, FolderIo};

    fn staged(io: &FolderIo, names: &[&str]) -> PartitionRef {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(1..=names.len() as i64)),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap();
        io.stage("m/ingestion/people/0-a1", "people", 0, schema, &[batch])
            .unwrap()
    }

    fn task(input: PartitionRef, sql: &str) -> TransformTask {
        TransformTask {
            target_table: "customer".into(),
            input,
            sql: sql.into(),
            output_id: "m/transformation/customer/0".into(),
            hash_key_file: None,
            columns: Vec::new(),
            lookups: Vec::new(),
            primary_key: vec!["customer_id".into()],
        }
    }

    #[tokio::test]
    async fn a_partition_runs_through_the_mapping_sql_and_is_staged() {
        let dir = tempfile::tempdir().unwrap();
        let io = FolderIo::new(dir.path()).unwrap();
        let input = staged(&io, &["ada", "linus", "grace"]);
        let sql = "SELECT id AS customer_id, upper(name) AS full_name FROM source";
        let r = run(&io, &task(input, sql), 2).await.unwrap();
        assert_eq!((r.rows_in, r.rows), (3, 3));
        assert_eq!(r.partition.id, "m/transformation/customer/0-a2");
        assert_eq!(r.partition.table, "customer");
        let out = read_verified_file(&r.partition, &io.staging_path(&r.partition.id)).unwrap();
        let names = out[0]
            .column_by_name("full_name")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .iter()
            .map(|v| v.unwrap().to_string())
            .collect::<Vec<_>>();
        assert_eq!(names, ["ADA", "LINUS", "GRACE"]);
    }

    #[tokio::test]
    async fn sql_that_fails_on_a_row_names_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let io = FolderIo::new(dir.path()).unwrap();
        let input = staged(&io, &["12", "x7", "30"]);
        let sql = "SELECT id AS customer_id, arrow_cast(name, 'Int32') AS age FROM source";
        let err = run(&io, &task(input, sql), 1).await.unwrap_err();
        match &err {
            EngineError::Sql { table, .. } => assert_eq!(table, "customer"),
            other => panic!("expected an SQL error, got {other}"),
        }
        assert_eq!(err.class(), sensei_runtime::ErrorClass::User);
    }

    #[tokio::test]
    async fn a_corrupted_input_partition_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let io = FolderIo::new(dir.path()).unwrap();
        let input = staged(&io, &["ada"]);
        let path = io.staging_path(&input.id);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(&path, bytes).unwrap();
        let err = run(&io, &task(input, "SELECT * FROM source"), 1)
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Corrupt { .. }), "{err}");
        assert!(err.retryable());
    }
}
