//! Cross-table verification, run by a Validator over the whole migration:
//!
//! * queries a user wrote against the source schema, and the generated
//!   foreign-key coverage queries of the source catalog, each run with
//!   DataFusion on the source snapshot and, rewritten through the mapping
//!   (tables and columns renamed to their targets), on the transformed rows,
//!   the two results compared type-aware within the tolerances;
//! * referential integrity between target tables: every foreign key the
//!   target schema declares must find its parent row among the transformed
//!   rows (the orphans are counted and the first ones named).
//!
//! A query that cannot be rewritten (it reads a column the mapping computes,
//! or a table merged into another) or fails on one side is inconclusive.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, visit_relations_mut, Expr, Ident, ObjectName, ObjectNamePart,
    SelectItem, Statement, TableFactor, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use serde::{Deserialize, Serialize};

use crate::equivalence::Tolerance;
use crate::replay::{compare_results, Agreement};
use sensei_contracts::artifacts::{Manifest, MappingSpec, PartitionRef};
use sensei_contracts::error::Result;
use sensei_contracts::io::PartitionIo;

/// The scheduler's table name of the cross-table task.
pub const CROSS_TABLE: &str = "(cross-table)";

/// A query of the source schema and its rewrite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryCheck {
    /// `q1`, `q2`, ... for the user's, `fk_coverage child(cols) -> parent(cols)` for generated ones.
    pub name: String,
    /// As written against the source schema.
    pub source_sql: String,
    /// Rewritten through the mapping; `Err`: why it could not be.
    pub target_sql: std::result::Result<String, NotRewritable>,
}

/// Why a query of the source schema has no rewrite through the mapping
/// (the query stays undecided, with this reason).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NotRewritable(pub String);

impl std::fmt::Display for NotRewritable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotRewritable {}

/// A foreign key between target tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Referencing table.
    pub table: String,
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table.
    pub parent: String,
    /// Referenced columns.
    pub parent_columns: Vec<String>,
}

/// Input of the cross-table task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryTask {
    /// Staged source partitions of the tables the queries read.
    pub source_tables: BTreeMap<String, Vec<PartitionRef>>,
    /// Transformed partitions of the target tables read.
    pub target_tables: BTreeMap<String, Vec<PartitionRef>>,
    /// Queries to run on both sides.
    pub queries: Vec<QueryCheck>,
    /// Foreign keys to check among the transformed rows.
    pub foreign_keys: Vec<ForeignKey>,
    /// How results compare.
    pub tolerance: Tolerance,
}

/// One query's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryOutcome {
    /// The query's name.
    pub name: String,
    /// As written.
    pub source_sql: String,
    /// As run on the target side (empty when it could not be rewritten).
    pub target_sql: String,
    /// `pass`, `fail` or `inconclusive`.
    pub result: String,
    /// Both results on a difference; the reason when undecided.
    pub detail: String,
}

/// One foreign key's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrityOutcome {
    /// The key.
    pub key: ForeignKey,
    /// Referencing rows (all key columns non-NULL).
    pub rows: u64,
    /// Of them, rows whose parent is not among the transformed rows.
    pub orphans: u64,
    /// The first orphans' key values.
    pub examples: Vec<String>,
    /// Why the check could not run, if it could not.
    pub error: Option<String>,
}

/// Output of the cross-table task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// Per query.
    pub queries: Vec<QueryOutcome>,
    /// Per foreign key of the target.
    pub integrity: Vec<IntegrityOutcome>,
}

use sensei_connectors::ident::ansi as quote;

fn last_name(n: &ObjectName) -> String {
    n.0.last()
        .and_then(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.value.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// How one source table maps: its target table, and per source column the
/// target column it is copied into (or why it is not copied as it is).
struct TableRename {
    target: String,
    columns: BTreeMap<String, std::result::Result<String, String>>,
}

/// The plain-copy column of an expression: `"col"`, `source."col"`, or a
/// CAST of one.
fn copied_column(expression: &str) -> Option<String> {
    let mut p = Parser::new(&GenericDialect {})
        .try_with_sql(expression)
        .ok()?;
    let mut e = p.parse_expr().ok()?;
    loop {
        e = match e {
            Expr::Nested(inner) => *inner,
            Expr::Cast { expr, .. } => *expr,
            Expr::Identifier(i) => return Some(i.value),
            Expr::CompoundIdentifier(parts) if parts.len() == 2 && parts[0].value == "source" => {
                return Some(parts[1].value.clone())
            }
            _ => return None,
        }
    }
}

fn renames(mapping: &MappingSpec, manifest: &Manifest) -> BTreeMap<String, TableRename> {
    let mut out = BTreeMap::new();
    for tm in &mapping.tables {
        let Some(primary) = tm.sources.first() else {
            continue;
        };
        let mut columns = BTreeMap::new();
        if let Some(t) = manifest.tables.iter().find(|t| t.name == *primary) {
            for c in &t.columns {
                columns.insert(
                    c.name.clone(),
                    Err(format!(
                        "column {primary}.{} is not migrated as it is",
                        c.name
                    )),
                );
            }
        }
        for c in &tm.columns {
            if c.status == "rejected" {
                continue;
            }
            match copied_column(&c.expression) {
                Some(src) => {
                    columns.insert(src, Ok(c.target.clone()));
                }
                None => {
                    for s in &c.sources {
                        if let Some(col) = s.strip_prefix(&format!("{primary}.")) {
                            columns.entry(col.to_string()).and_modify(|e| {
                                if e.is_err() {
                                    *e = Err(format!(
                                        "column {primary}.{col} is computed by the mapping ({}) into {}.{}",
                                        c.expression, tm.target, c.target
                                    ));
                                }
                            });
                        }
                    }
                }
            }
        }
        out.insert(
            primary.clone(),
            TableRename {
                target: tm.target.clone(),
                columns,
            },
        );
    }
    out
}

#[derive(Default)]
struct Scope {
    tables: BTreeSet<String>,
    aliases: BTreeMap<String, String>,
    wildcard: bool,
}

impl Visitor for Scope {
    type Break = ();
    fn pre_visit_table_factor(&mut self, f: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = f {
            let t = last_name(name);
            if let Some(a) = alias {
                self.aliases.insert(a.name.value.clone(), t.clone());
            }
            self.tables.insert(t);
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_select(&mut self, s: &datafusion::sql::sqlparser::ast::Select) -> ControlFlow<()> {
        if s.projection.iter().any(|p| {
            matches!(
                p,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }) {
            self.wildcard = true;
        }
        ControlFlow::Continue(())
    }
}

/// Rewrites a query of the source schema into one of the target schema:
/// every source table becomes the target table it maps to, every column the
/// target column it is copied into. Refused (with the reason) when the query
/// reads a table that is not migrated into a table of its own, a column the
/// mapping computes rather than copies, or `*` (column order differs).
pub fn rewrite(
    sql: &str,
    mapping: &MappingSpec,
    manifest: &Manifest,
) -> std::result::Result<String, NotRewritable> {
    rewritten(sql, mapping, manifest).map_err(NotRewritable)
}

fn rewritten(
    sql: &str,
    mapping: &MappingSpec,
    manifest: &Manifest,
) -> std::result::Result<String, String> {
    let mut statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| e.to_string())?;
    if statements.len() != 1 || !matches!(statements[0], Statement::Query(_)) {
        return Err("write one SELECT query".into());
    }
    let renames = renames(mapping, manifest);
    let mut scope = Scope::default();
    let _ = statements.visit(&mut scope);
    if scope.wildcard {
        return Err(
            "SELECT * depends on the column order, which the mapping may change: name the columns"
                .into(),
        );
    }
    // Names in FROM that are not source tables are common table expressions or
    // derived tables' aliases: left as they are.
    let sources: Vec<&String> = scope
        .tables
        .iter()
        .filter(|t| manifest.tables.iter().any(|m| m.name == **t))
        .collect();
    for t in &sources {
        if !renames.contains_key(*t) {
            return Err(format!(
                "table {t} is not migrated into a table of its own (merged into another, or not in the target schema)"
            ));
        }
    }
    let mut error: Option<String> = None;
    let column_of = |table: &str, col: &str| -> Option<std::result::Result<String, String>> {
        renames.get(table).and_then(|r| r.columns.get(col).cloned())
    };
    let _ = visit_expressions_mut(&mut statements, |e| {
        match e {
            Expr::Identifier(id) => {
                let found: Vec<std::result::Result<String, String>> = sources
                    .iter()
                    .filter_map(|t| column_of(t, &id.value))
                    .collect();
                let distinct: BTreeSet<String> = found
                    .iter()
                    .map(|r| r.clone().unwrap_or_else(|e| e))
                    .collect();
                match found.first() {
                    None => {}
                    Some(_) if distinct.len() > 1 => {
                        error.get_or_insert(format!(
                            "column {} is ambiguous among {}: qualify it with its table",
                            id.value,
                            sources
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                    Some(Ok(target)) => *id = Ident::with_quote('"', target.clone()),
                    Some(Err(why)) => {
                        error.get_or_insert(why.clone());
                    }
                }
            }
            Expr::CompoundIdentifier(parts) if parts.len() == 2 => {
                let q = parts[0].value.clone();
                let table = scope.aliases.get(&q).cloned().unwrap_or(q.clone());
                match column_of(&table, &parts[1].value) {
                    Some(Ok(target)) => {
                        parts[1] = Ident::with_quote('"', target);
                        if !scope.aliases.contains_key(&q) {
                            if let Some(r) = renames.get(&table) {
                                parts[0] = Ident::with_quote('"', r.target.clone());
                            }
                        }
                    }
                    Some(Err(why)) => {
                        error.get_or_insert(why);
                    }
                    None => {}
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    if let Some(e) = error {
        return Err(e);
    }
    let _ = visit_relations_mut(&mut statements, |name| {
        let t = last_name(name);
        if let Some(r) = renames.get(&t) {
            *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
                '"',
                r.target.clone(),
            ))]);
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(statements[0].to_string())
}

/// The user's queries file split into statements (`q1`, `q2`, ...).
pub fn split_queries(text: &str, file: &str) -> Result<Vec<(String, String)>> {
    let statements = Parser::parse_sql(&GenericDialect {}, text).map_err(|e| {
        sensei_contracts::error::EngineError::Invalid {
            what: format!("verification.queries_file {file}"),
            message: format!("{e}; fix the query at that line"),
        }
    })?;
    Ok(statements
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("q{}", i + 1), s.to_string()))
        .collect())
}

/// The queries of `verification.queries_file` (none when it is unset).
pub fn user_queries(
    v: &sensei_runtime::config::VerificationSection,
) -> Result<Vec<(String, String)>> {
    if v.queries_file.is_empty() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&v.queries_file).map_err(|e| {
        sensei_connectors::ConnectorError::Unreadable {
            path: v.queries_file.clone(),
            message: format!("verification.queries_file: {e}"),
        }
    })?;
    split_queries(&text, &v.queries_file)
}

/// The suite replayed between checkpoints and after delivery: the user's
/// queries, the foreign-key coverage queries and the generated suite, at
/// most `max_queries`, each rewritten through the mapping.
pub fn replay_suite(
    v: &sensei_runtime::config::VerificationSection,
    mapping: &MappingSpec,
    manifest: &Manifest,
) -> Result<Vec<QueryCheck>> {
    let mut suite = user_queries(v)?;
    suite.extend(coverage_queries(manifest));
    suite.extend(generated_suite(mapping, manifest));
    suite.truncate(v.max_queries.max(1) as usize);
    Ok(suite
        .into_iter()
        .map(|(name, sql)| QueryCheck {
            target_sql: rewrite(&sql, mapping, manifest),
            name,
            source_sql: sql,
        })
        .collect())
}

/// The join of referencing rows `c` to referenced rows `p` on a foreign
/// key's columns, and the condition that every referencing column is set.
fn key_join(columns: &[String], parent_columns: &[String]) -> (String, String) {
    let on: Vec<String> = columns
        .iter()
        .zip(parent_columns)
        .map(|(c, p)| format!("c.{} = p.{}", quote(c), quote(p)))
        .collect();
    let set: Vec<String> = columns
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", quote(c)))
        .collect();
    (on.join(" AND "), set.join(" AND "))
}

/// A suite generated in source-schema terms, for replay between recorded
/// checkpoints: per migrated table its row count, per column the mapping
/// copies its non-null and distinct counts, minimum and maximum.
pub fn generated_suite(mapping: &MappingSpec, manifest: &Manifest) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (table, r) in renames(mapping, manifest) {
        out.push((
            format!("rows {table}"),
            format!("SELECT count(*) FROM {}", quote(&table)),
        ));
        for (col, target) in &r.columns {
            if target.is_err() {
                continue;
            }
            let c = quote(col);
            out.push((
                format!("column {table}.{col}"),
                format!(
                    "SELECT count({c}), count(DISTINCT {c}), min({c}), max({c}) FROM {}",
                    quote(&table)
                ),
            ));
        }
    }
    out
}

/// The foreign-key coverage queries of the source catalog: per key, the
/// referencing rows and how many of them find their parent.
pub fn coverage_queries(manifest: &Manifest) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (table, cat) in &manifest.catalog.tables {
        for fk in &cat.foreign_keys {
            if fk.columns.is_empty() || fk.columns.len() != fk.referenced_columns.len() {
                continue;
            }
            let (on, not_null) = key_join(&fk.columns, &fk.referenced_columns);
            out.push((
                format!(
                    "fk_coverage {table}({}) -> {}({})",
                    fk.columns.join(", "),
                    fk.references,
                    fk.referenced_columns.join(", ")
                ),
                format!(
                    "SELECT count(*) AS referencing, count(p.{}) AS covered FROM {} c LEFT JOIN {} p ON {} WHERE {}",
                    quote(&fk.referenced_columns[0]),
                    quote(table),
                    quote(&fk.references),
                    on,
                    not_null
                ),
            ));
        }
    }
    out
}

/// Where partitions are read from: a node (local file or Flight), or the
/// staged files themselves (checkpoint replay, outside any node).
#[derive(Clone, Copy)]
pub enum Reader<'a> {
    /// Through a node's fetch.
    Node(&'a dyn PartitionIo),
    /// The files at the partitions' URIs, checksums checked.
    Files,
}

impl Reader<'_> {
    async fn fetch(&self, p: &PartitionRef) -> Result<Vec<RecordBatch>> {
        match self {
            Reader::Node(ctx) => ctx.fetch(p).await,
            Reader::Files => {
                let p = p.clone();
                tokio::task::spawn_blocking(move || {
                    let path = std::path::PathBuf::from(p.uri.trim_start_matches("file://"));
                    sensei_contracts::io::read_verified_file(&p, &path)
                })
                .await
                .map_err(|e| sensei_contracts::error::EngineError::Malformed {
                    what: "partition read".into(),
                    message: e.to_string(),
                })?
            }
        }
    }
}

async fn load(
    reader: Reader<'_>,
    session: &SessionContext,
    name: &str,
    parts: &[PartitionRef],
) -> Result<()> {
    // Files at hand are read as DataFusion goes (memory bounded by its
    // batches); partitions held elsewhere come whole over Flight.
    let at_hand = match reader {
        Reader::Files => true,
        Reader::Node(ctx) => parts.iter().all(|p| ctx.local_file(p).is_some()),
    };
    if let (true, Some(first)) = (at_hand, parts.first()) {
        return load_files(session, name, parts, first).await;
    }
    let mut batches = Vec::new();
    for p in parts {
        batches.extend(reader.fetch(p).await?);
    }
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => {
            let Some(p) = parts.first() else {
                return Ok(());
            };
            let path = std::path::PathBuf::from(p.uri.trim_start_matches("file://"));
            sensei_flight::parquet_io::open_partition(&path, 1)?.0
        }
    };
    let sql_err =
        |e: datafusion::error::DataFusionError| sensei_contracts::error::EngineError::Sql {
            table: name.to_string(),
            message: e.to_string(),
        };
    let table = MemTable::try_new(schema, vec![batches]).map_err(sql_err)?;
    // Bare: a table named `schema.table` is one name, not a schema and a table.
    session
        .register_table(
            datafusion::common::TableReference::bare(name.to_string()),
            Arc::new(table),
        )
        .map_err(sql_err)?;
    Ok(())
}

/// Registers staged files as a table DataFusion reads as it goes (memory
/// bounded by its batches, not the table), after checking every file's
/// SHA-256 against the recorded one.
async fn load_files(
    session: &SessionContext,
    name: &str,
    parts: &[PartitionRef],
    first: &PartitionRef,
) -> Result<()> {
    let paths: Vec<std::path::PathBuf> = parts
        .iter()
        .map(|p| std::path::PathBuf::from(p.uri.trim_start_matches("file://")))
        .collect();
    let checked = parts.to_vec();
    let files = paths.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        for (p, path) in checked.iter().zip(&files) {
            let (_, actual) = sensei_flight::parquet_io::hash_file(path)?;
            if actual != p.sha256 {
                return Err(sensei_contracts::error::EngineError::Corrupt {
                    id: p.id.clone(),
                    expected: p.sha256.clone(),
                    actual,
                });
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| sensei_contracts::error::EngineError::Malformed {
        what: "partition check".into(),
        message: e.to_string(),
    })??;
    let sql_err =
        |e: datafusion::error::DataFusionError| sensei_contracts::error::EngineError::Sql {
            table: name.to_string(),
            message: e.to_string(),
        };
    let schema = sensei_flight::parquet_io::open_partition(
        &std::path::PathBuf::from(first.uri.trim_start_matches("file://")),
        1,
    )?
    .0;
    register_parquet(session, name, &paths, schema).map_err(sql_err)
}

/// Registers Parquet files as table `name`, read as queries go (memory
/// bounded by batches, not the table).
pub fn register_parquet(
    session: &SessionContext,
    name: &str,
    paths: &[std::path::PathBuf],
    schema: arrow::datatypes::SchemaRef,
) -> datafusion::error::Result<()> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    let urls = paths
        .iter()
        .map(|p| ListingTableUrl::parse(p.display().to_string()))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension("");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config)?;
    session.register_table(
        datafusion::common::TableReference::bare(name.to_string()),
        Arc::new(table),
    )?;
    Ok(())
}

async fn collect(s: &SessionContext, sql: &str) -> std::result::Result<Vec<RecordBatch>, String> {
    let df = s.sql(sql).await.map_err(|e| e.to_string())?;
    df.collect().await.map_err(|e| e.to_string())
}

/// Both results as one batch each, rows sorted (a query without ORDER BY
/// has no order), columns of different types brought to a common one
/// (numbers as Float64, the rest as text): a source REAL summed against a
/// target DECIMAL compares by value.
fn comparable(
    a: Vec<RecordBatch>,
    b: Vec<RecordBatch>,
    sort: bool,
) -> std::result::Result<(Vec<RecordBatch>, Vec<RecordBatch>), String> {
    let (Some(sa), Some(sb)) = (a.first().map(|x| x.schema()), b.first().map(|x| x.schema()))
    else {
        return Ok((a, b));
    };
    let x = arrow::compute::concat_batches(&sa, &a).map_err(|e| e.to_string())?;
    let y = arrow::compute::concat_batches(&sb, &b).map_err(|e| e.to_string())?;
    if x.num_columns() != y.num_columns() {
        return Ok((vec![x], vec![y]));
    }
    let mut xc: Vec<ArrayRef> = Vec::new();
    let mut yc: Vec<ArrayRef> = Vec::new();
    for (p, q) in x.columns().iter().zip(y.columns()) {
        if p.data_type() == q.data_type() {
            xc.push(p.clone());
            yc.push(q.clone());
            continue;
        }
        let common = if p.data_type().is_numeric() && q.data_type().is_numeric() {
            DataType::Float64
        } else {
            DataType::Utf8
        };
        xc.push(arrow::compute::cast(p, &common).map_err(|e| e.to_string())?);
        yc.push(arrow::compute::cast(q, &common).map_err(|e| e.to_string())?);
    }
    let order = |cols: Vec<ArrayRef>| -> std::result::Result<RecordBatch, String> {
        let cols = if sort && !cols.is_empty() {
            let sorts: Vec<arrow::compute::SortColumn> = cols
                .iter()
                .map(|c| arrow::compute::SortColumn {
                    values: c.clone(),
                    options: None,
                })
                .collect();
            let idx =
                arrow::compute::lexsort_to_indices(&sorts, None).map_err(|e| e.to_string())?;
            cols.iter()
                .map(|c| arrow::compute::take(c, &idx, None))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?
        } else {
            cols
        };
        let fields: Vec<arrow::datatypes::Field> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| {
                arrow::datatypes::Field::new(format!("c{i}"), c.data_type().clone(), true)
            })
            .collect();
        RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), cols)
            .map_err(|e| e.to_string())
    };
    Ok((vec![order(xc)?], vec![order(yc)?]))
}

fn has_order_by(sql: &str) -> bool {
    match Parser::parse_sql(&GenericDialect {}, sql).ok().as_deref() {
        Some([Statement::Query(q)]) => q.order_by.is_some(),
        _ => false,
    }
}

/// Runs the cross-table task on a node.
pub async fn run(ctx: &dyn PartitionIo, task: &QueryTask) -> Result<QueryResult> {
    run_with(Reader::Node(ctx), task).await
}

/// Runs the cross-table task reading partitions with `reader`.
pub async fn run_with(reader: Reader<'_>, task: &QueryTask) -> Result<QueryResult> {
    let config = || SessionConfig::new().with_target_partitions(1);
    let source = SessionContext::new_with_config(config());
    let target = SessionContext::new_with_config(config());
    let mut out = QueryResult::default();
    // Data that cannot be read as recorded leaves every check undecided.
    let mut unreadable = None;
    for (session, tables) in [
        (&source, &task.source_tables),
        (&target, &task.target_tables),
    ] {
        for (name, parts) in tables {
            match load(reader, session, name, parts).await {
                Ok(()) => {}
                Err(e @ sensei_contracts::error::EngineError::Corrupt { .. }) => {
                    unreadable.get_or_insert(format!("data not readable: {e}"));
                }
                Err(e) => return Err(e),
            }
        }
    }
    if let Some(why) = unreadable {
        for q in &task.queries {
            out.queries.push(QueryOutcome {
                name: q.name.clone(),
                source_sql: q.source_sql.clone(),
                target_sql: q.target_sql.clone().unwrap_or_default(),
                result: "inconclusive".into(),
                detail: why.clone(),
            });
        }
        for fk in &task.foreign_keys {
            out.integrity.push(IntegrityOutcome {
                key: fk.clone(),
                rows: 0,
                orphans: 0,
                examples: Vec::new(),
                error: Some(why.clone()),
            });
        }
        return Ok(out);
    }
    sensei_architect::udf::register(&target, None);
    let (wanted, got) = both_sides(&source, &target, &task.queries).await;
    for ((q, want), got) in task.queries.iter().zip(wanted).zip(got) {
        let mut outcome = QueryOutcome {
            name: q.name.clone(),
            source_sql: q.source_sql.clone(),
            target_sql: q.target_sql.clone().unwrap_or_default(),
            result: "inconclusive".into(),
            detail: String::new(),
        };
        if let Err(why) = &q.target_sql {
            outcome.detail = format!("cannot be rewritten through the mapping: {why}");
            out.queries.push(outcome);
            continue;
        }
        let sort = !has_order_by(&q.source_sql);
        let judged = match (want, got) {
            (Ok(want), Ok(got)) => {
                comparable(want, got, sort).map(|(w, g)| compare_results(&w, &g, &task.tolerance))
            }
            (Err(e), _) => Err(format!("fails on the source snapshot: {e}")),
            (_, Err(e)) => Err(format!("fails on the transformed rows: {e}")),
        };
        match judged {
            Ok(Agreement::Same) => outcome.result = "pass".into(),
            Ok(Agreement::Differs(d)) => {
                outcome.result = "fail".into();
                outcome.detail = d;
            }
            Ok(Agreement::Doubtful(d)) => {
                outcome.detail = format!("{d} (within the undecidable band around the tolerance)")
            }
            Err(why) => outcome.detail = why,
        }
        out.queries.push(outcome);
    }
    for fk in &task.foreign_keys {
        out.integrity.push(integrity(&target, fk).await);
    }
    Ok(out)
}

/// Every query's results on both sides: the source side's queries in one
/// task and the target side's in another, so the two sessions (one thread
/// each) run at once. A query that cannot be rewritten runs on neither.
async fn both_sides(
    source: &SessionContext,
    target: &SessionContext,
    queries: &[QueryCheck],
) -> (Vec<SideResult>, Vec<SideResult>) {
    let run_all = |session: SessionContext, sqls: Vec<Option<String>>| async move {
        let mut out = Vec::with_capacity(sqls.len());
        for sql in sqls {
            out.push(match sql {
                Some(sql) => collect(&session, &sql).await,
                None => Ok(Vec::new()),
            });
        }
        out
    };
    let target_sqls = queries.iter().map(|q| q.target_sql.clone().ok()).collect();
    let source_sqls = queries
        .iter()
        .map(|q| q.target_sql.is_ok().then(|| q.source_sql.clone()))
        .collect();
    let theirs = tokio::spawn(run_all(target.clone(), target_sqls));
    let ours = run_all(source.clone(), source_sqls).await;
    let theirs = theirs.await.unwrap_or_else(|e| {
        let stopped = format!("the query stopped: {e}");
        queries.iter().map(|_| Err(stopped.clone())).collect()
    });
    (ours, theirs)
}

/// One query's result on one side, or why it failed.
type SideResult = std::result::Result<Vec<RecordBatch>, String>;

async fn integrity(target: &SessionContext, fk: &ForeignKey) -> IntegrityOutcome {
    let mut o = IntegrityOutcome {
        key: fk.clone(),
        rows: 0,
        orphans: 0,
        examples: Vec::new(),
        error: None,
    };
    let (on, not_null) = key_join(&fk.columns, &fk.parent_columns);
    let cols: Vec<String> = fk
        .columns
        .iter()
        .map(|c| format!("c.{}", quote(c)))
        .collect();
    let from = format!(
        "FROM {} c LEFT JOIN (SELECT DISTINCT {} FROM {}) p ON {} WHERE {}",
        quote(&fk.table),
        fk.parent_columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        quote(&fk.parent),
        on,
        not_null
    );
    let count = format!(
        "SELECT count(*), count(*) - count(p.{}) {from}",
        quote(&fk.parent_columns[0])
    );
    let first = format!(
        "SELECT {} {from} AND p.{} IS NULL ORDER BY {} LIMIT 5",
        cols.join(", "),
        quote(&fk.parent_columns[0]),
        cols.join(", ")
    );
    match collect(target, &count).await {
        Ok(b) => {
            use arrow::array::AsArray;
            if let Some(b) = b.first().filter(|b| b.num_rows() == 1) {
                let v = |i: usize| {
                    b.column(i)
                        .as_primitive_opt::<arrow::datatypes::Int64Type>()
                        .map(|a| a.value(0) as u64)
                        .unwrap_or(0)
                };
                o.rows = v(0);
                o.orphans = v(1);
            }
        }
        Err(e) => {
            o.error = Some(e);
            return o;
        }
    }
    if o.orphans > 0 {
        if let Ok(batches) = collect(target, &first).await {
            let opts = arrow::util::display::FormatOptions::default();
            for b in &batches {
                for r in 0..b.num_rows() {
                    let key: Vec<String> = fk
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let v = arrow::util::display::ArrayFormatter::try_new(
                                b.column(i).as_ref(),
                                &opts,
                            )
                            .map(|f| f.value(r).to_string())
                            .unwrap_or_default();
                            format!("{c}={v}")
                        })
                        .collect();
                    o.examples.push(key.join(", "));
                }
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensei_contracts::artifacts::{ColumnMapping, ManifestTable, TableMapping};

    fn col(target: &str, expression: &str, source: &str) -> ColumnMapping {
        ColumnMapping {
            target: target.into(),
            expression: expression.into(),
            sources: vec![source.into()],
            confidence: 1.0,
            status: "auto".into(),
            reasons: Vec::new(),
            reviewed_by: None,
            reviewed_at: None,
            alternatives: Vec::new(),
        }
    }

    fn fixture() -> (MappingSpec, Manifest) {
        let manifest: Manifest = serde_json::from_value(serde_json::json!({
            "version": 1, "migration_id": "m", "source": "s", "checkpoint_time": "t",
            "tables": [], "consistency": "snapshot"
        }))
        .unwrap();
        let mut manifest = manifest;
        for (name, cols) in [
            (
                "orders",
                vec!["ord_id", "cust_id", "ord_total_cents", "ord_status"],
            ),
            ("customers", vec!["cust_id", "cust_name"]),
        ] {
            let mut t: ManifestTable = serde_json::from_value(serde_json::json!({
                "name": name, "columns": [], "primary_key": [], "rows": 0, "partitions": []
            }))
            .unwrap();
            t.columns = cols
                .iter()
                .map(|c| {
                    serde_json::from_value(serde_json::json!({
                        "name": c, "arrow_type": "Int64", "nullable": true, "source_type": "INTEGER", "primary_key": 0
                    }))
                    .unwrap()
                })
                .collect();
            manifest.tables.push(t);
        }
        let mapping = MappingSpec {
            version: 1,
            migration_id: "m".into(),
            auto_approval_threshold: 0.9,
            approved_all: false,
            unmapped_sources: Vec::new(),
            tables: vec![
                TableMapping {
                    target: "purchase_order".into(),
                    sources: vec!["orders".into()],
                    primary_key: vec!["id".into()],
                    joins: Vec::new(),
                    columns: vec![
                        col("id", "\"ord_id\"", "orders.ord_id"),
                        col(
                            "customer_id",
                            "CAST(\"cust_id\" AS BIGINT)",
                            "orders.cust_id",
                        ),
                        col(
                            "total",
                            "\"ord_total_cents\" / 100.0",
                            "orders.ord_total_cents",
                        ),
                        col("status", "\"ord_status\"", "orders.ord_status"),
                    ],
                },
                TableMapping {
                    target: "customer".into(),
                    sources: vec!["customers".into()],
                    primary_key: vec!["id".into()],
                    joins: Vec::new(),
                    columns: vec![
                        col("id", "\"cust_id\"", "customers.cust_id"),
                        col("name", "source.\"cust_name\"", "customers.cust_name"),
                    ],
                },
            ],
        };
        (mapping, manifest)
    }

    #[test]
    fn renames_tables_columns_and_qualified_names() {
        let (m, man) = fixture();
        let sql = "SELECT o.ord_status, count(*) FROM orders o JOIN customers ON customers.cust_id = o.cust_id WHERE cust_name LIKE 'A%' GROUP BY o.ord_status";
        let out = rewrite(sql, &m, &man).unwrap();
        assert_eq!(
            out,
            "SELECT o.\"status\", count(*) FROM \"purchase_order\" o JOIN \"customer\" ON \"customer\".\"id\" = o.\"customer_id\" WHERE \"name\" LIKE 'A%' GROUP BY o.\"status\""
        );
    }

    #[test]
    fn refuses_what_it_cannot_rewrite_faithfully() {
        let (m, man) = fixture();
        let why = rewrite("SELECT sum(ord_total_cents) FROM orders", &m, &man).unwrap_err();
        assert!(
            why.0.contains("orders.ord_total_cents") && why.0.contains("computed"),
            "{why}"
        );
        let why = rewrite("SELECT * FROM orders", &m, &man).unwrap_err();
        assert!(why.0.contains("name the columns"), "{why}");
        let why = rewrite(
            "SELECT cust_id FROM orders JOIN customers USING (cust_id)",
            &m,
            &man,
        )
        .unwrap_err();
        assert!(why.0.contains("ambiguous"), "{why}");
        assert!(rewrite("DELETE FROM orders", &m, &man).is_err());
    }
}
