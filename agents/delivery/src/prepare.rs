//! Target preparation, a leased task before the first partition is
//! written: the schema file's DDL run, the mapped tables created (or
//! mirrored with the source's widths, keys, indexes and foreign keys),
//! foreign keys and secondary indexes set aside for the load, the tables
//! emptied for a re-sync. Its result says which tables it created (a
//! delivery that halts before its first batch drops them again) and what
//! it set aside (put back after the load, see [`crate::post`]).

use std::collections::BTreeMap;

use arrow::datatypes::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use sensei_connectors::target::{Declared, Deferred, MirrorExtras, NewTable, StagingArea, Target};
use sensei_contracts::error::{blocking, Result};

use crate::post::TargetRef;

/// The task table of target preparation.
pub const PREPARE: &str = "delivery:prepare";

/// A table's name, certified schema, primary key and declared widths.
type TableParts = (String, SchemaRef, Vec<String>, BTreeMap<String, Declared>);

/// A mapped table as delivery creates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableShape {
    /// The table's name.
    pub name: String,
    /// Its certified columns: (name, Arrow type, nullable).
    pub columns: Vec<(String, String, bool)>,
    /// Its primary key.
    pub primary_key: Vec<String>,
    /// What the source declared of its text columns.
    pub declared: BTreeMap<String, Declared>,
}

impl TableShape {
    /// The shape of a table of certified `schema`.
    pub fn new(
        name: &str,
        schema: &Schema,
        primary_key: Vec<String>,
        declared: BTreeMap<String, Declared>,
    ) -> Self {
        TableShape {
            name: name.to_string(),
            columns: schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().to_string(), f.is_nullable()))
                .collect(),
            primary_key,
            declared,
        }
    }

    fn into_parts(self) -> Result<TableParts> {
        let columns = self
            .columns
            .iter()
            .map(|(c, ty, n)| (c.as_str(), ty.as_str(), *n));
        let schema = crate::post::certified_schema(&self.name, columns)?;
        Ok((self.name, schema, self.primary_key, self.declared))
    }
}

/// What target preparation needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrepareTask {
    /// The target.
    pub target: TargetRef,
    /// The schema file's text and name.
    pub ddl: Option<(String, String)>,
    /// The mapped tables.
    pub tables: Vec<TableShape>,
    /// Mirror mode: what the source's tables keep besides their columns.
    pub extras: BTreeMap<String, MirrorExtras>,
    /// `delivery.resync`.
    pub resync: bool,
    /// The migration (its ledger rows are forgotten on a re-sync).
    pub migration_id: String,
    /// Where a staged delivery loads (None: into the target directly): the
    /// tables are created there.
    #[serde(default)]
    pub staging: Option<StagingArea>,
}

/// What preparing the target did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prepared {
    /// Foreign keys set aside for the load.
    pub foreign_keys: Deferred,
    /// Secondary indexes set aside for the load.
    pub indexes: Deferred,
    /// What a person should know (constraints the target refused, a
    /// re-sync's emptying).
    pub notes: Vec<String>,
    /// The tables this delivery created.
    pub created: Vec<String>,
}

/// The tables a delivery writes: the `mapped` ones and those the schema
/// file (`ddl`: its text and name) creates, sorted, each once.
pub fn tables_written(
    mapped: impl IntoIterator<Item = String>,
    ddl: Option<(&str, &str)>,
) -> Vec<String> {
    let mut tables: Vec<String> = mapped.into_iter().collect();
    if let Some((text, file)) = ddl {
        tables.extend(
            sensei_architect::ddl::parse(text, file)
                .map(|ts| ts.into_iter().map(|t| t.name).collect::<Vec<_>>())
                .unwrap_or_default(),
        );
    }
    tables.sort();
    tables.dedup();
    tables
}

/// Runs target preparation on a blocking thread.
pub async fn run(task: PrepareTask) -> Result<Prepared> {
    blocking("target preparation", move || prepare(task)).await
}

/// Creates the target tables this delivery needs (recording which did not
/// exist), adds a mirror's constraints and indexes, sets foreign keys and
/// secondary indexes aside for the load, and empties the tables for a
/// re-sync. Blocking.
fn prepare(p: PrepareTask) -> Result<Prepared> {
    let PrepareTask {
        target,
        ddl,
        tables,
        mut extras,
        resync,
        migration_id,
        staging,
    } = p;
    let schemas = tables
        .into_iter()
        .map(TableShape::into_parts)
        .collect::<Result<Vec<_>>>()?;
    // The tables this delivery creates (the schema file's and the
    // mapped ones), told apart from those already there: a
    // delivery that halts before its first batch drops them again.
    let candidates = tables_written(
        schemas.iter().map(|(n, _, _, _)| n.clone()),
        ddl.as_ref()
            .map(|(text, file)| (text.as_str(), file.as_str())),
    );
    let options = target.connection.options();
    let mut target = match &staging {
        // The rest of preparation runs in the staging area, as if it were
        // the target.
        Some(area) => {
            // Always afresh: preparation runs before any batch of this
            // plan, and a delivery planned again (a rerun verifying anew,
            // a halt before the first batch) must not meet the tables the
            // schema file created last time.
            Target::begin_staging(&target.url, &options, &target.namespace, area, true)?;
            let (url, namespace) = area.loading(&target.url, &target.namespace)?;
            Target::open_in(&url, &options, &namespace)?
        }
        None => Target::open_in(&target.url, &options, &target.namespace)?,
    };
    let mut before = Vec::new();
    for n in &candidates {
        if !target.has_table(n)? {
            before.push(n.clone());
        }
    }
    if let Some((ddl, _)) = ddl {
        target.apply_ddl(&ddl)?;
    }
    let mut created = Vec::new();
    for (name, schema, pk, widths) in &schemas {
        let table = NewTable {
            name,
            schema,
            primary_key: pk,
            declared: widths,
        };
        if target.ensure_table(&table)? {
            created.push(name.clone());
        }
    }
    let mut new_tables = Vec::new();
    for n in before {
        if target.has_table(&n)? {
            new_tables.push(n);
        }
    }
    // A mirrored table gets its source's constraints and indexes once,
    // when it is created (all tables exist by now for the foreign keys);
    // unique keys and indexes of every table first, since a foreign
    // key may reference another table's unique key.
    let mut notes = Vec::new();
    let mut keys = Vec::new();
    for name in &created {
        if let Some(mut e) = extras.remove(name) {
            keys.push((name, std::mem::take(&mut e.foreign_keys)));
            notes.extend(target.add_mirror_extras(name, &e));
        }
    }
    for (name, foreign_keys) in keys {
        let e = MirrorExtras {
            foreign_keys,
            ..Default::default()
        };
        notes.extend(target.add_mirror_extras(name, &e));
    }
    // PostgreSQL enforces foreign keys row by row: tables loading in
    // parallel would trip them, so they are added back after the load
    // (MySQL sessions load with foreign-key checks off); secondary
    // indexes are built once then, not maintained per row.
    let names: Vec<String> = schemas.iter().map(|(n, _, _, _)| n.clone()).collect();
    // In a staging area every table is new and empty, and created afresh
    // by a retry: its keys, too, may be built after the load.
    let fresh = if staging.is_some() {
        new_tables.clone()
    } else {
        Vec::new()
    };
    let (fks, indexes) = target.detach_for_load(&names, &fresh)?;
    // Re-sync: the target tables emptied and their ledger rows
    // forgotten once foreign keys are detached, before any batch.
    if resync {
        for name in &names {
            let n = target.clear_for_resync(name, &migration_id)?;
            notes.push(format!(
                "re-sync: {name} emptied ({n} removed) and its ledger rows forgotten; delivering the current source"
            ));
        }
    }
    Ok(Prepared {
        foreign_keys: fks,
        indexes,
        notes,
        created: new_tables,
    })
}
