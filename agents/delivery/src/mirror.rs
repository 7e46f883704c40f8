//! Mirror mode (no target schema): what the target tables keep of the
//! source besides column types, NOT NULL and the primary key. Text widths
//! (`VARCHAR(n)`, `CHAR(n)` as `VARCHAR(n)`) and exact decimals carried as
//! text (`DECIMAL(65,30)`, unconstrained `numeric`: an exact type in the
//! target where it has one) when the source engine enforces them
//! (PostgreSQL, MySQL/MariaDB; SQLite's declared types are not checked,
//! so its values may be anything), and the source catalog's unique
//! constraints, secondary indexes and foreign keys, renamed through the
//! mapping. Constraints touching a column the mapping does not copy as it is,
//! expression indexes and partial indexes are left out.

use std::collections::{BTreeMap, BTreeSet};

use sensei_connectors::catalog::ForeignKey;
use sensei_connectors::target::{Declared, MirrorExtras};

use sensei_contracts::artifacts::{Manifest, MappingSpec, TableMapping};

/// The width of a declared `varchar(n)`, `character varying(n)`, `char(n)`,
/// `character(n)`, `nvarchar(n)` or `nchar(n)`.
pub fn declared_width(source_type: &str) -> Option<u32> {
    let t = source_type.trim().to_ascii_lowercase();
    let (base, rest) = t.split_once('(')?;
    let base = base.trim();
    if !matches!(
        base,
        "varchar" | "character varying" | "char" | "character" | "nvarchar" | "nchar"
    ) {
        return None;
    }
    let n: u32 = rest.split_once(')')?.0.trim().parse().ok()?;
    (n > 0).then_some(n)
}

/// An exact decimal the source declared: `numeric`, `decimal(65,30)`,
/// `number(40)` (precision and scale when given).
pub fn declared_exact(source_type: &str) -> Option<Option<(u32, u32)>> {
    let t = source_type.trim().to_ascii_lowercase();
    let (base, rest) = match t.split_once('(') {
        Some((b, r)) => (b.trim().to_string(), Some(r)),
        None => (t.split_whitespace().next().unwrap_or("").to_string(), None),
    };
    if !matches!(base.as_str(), "numeric" | "decimal" | "number" | "dec") {
        return None;
    }
    let Some(rest) = rest else {
        return Some(None);
    };
    let inner = rest.split_once(')')?.0;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some(Some((p.trim().parse().ok()?, s.trim().parse().ok()?)))
}

fn unquote(e: &str) -> &str {
    let e = e.trim();
    e.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| e.strip_prefix('`').and_then(|x| x.strip_suffix('`')))
        .unwrap_or(e)
}

/// Source column → target column, for the columns a table mapping copies
/// as they are (a mapping names its sources `table.column`).
fn copied(tm: &TableMapping) -> BTreeMap<String, String> {
    let Some(table) = source_of(tm) else {
        return BTreeMap::new();
    };
    let prefix = format!("{table}.");
    tm.columns
        .iter()
        .filter_map(|c| match c.sources.as_slice() {
            [one] => {
                let col = one.strip_prefix(&prefix).unwrap_or(one);
                (unquote(&c.expression) == col).then(|| (col.to_string(), c.target.clone()))
            }
            _ => None,
        })
        .collect()
}

fn source_of(tm: &TableMapping) -> Option<&str> {
    match tm.sources.as_slice() {
        [one] if tm.joins.is_empty() => Some(one),
        _ => None,
    }
}

/// Per target column, what the source declared and enforced beyond the
/// Arrow type: a text width, or an exact decimal carried as text.
pub fn declared(manifest: &Manifest, tm: &TableMapping) -> BTreeMap<String, Declared> {
    let enforced = ["postgres", "mysql", "mariadb"]
        .iter()
        .any(|s| manifest.source.starts_with(s));
    let Some(table) = source_of(tm)
        .filter(|_| enforced)
        .and_then(|s| manifest.tables.iter().find(|t| t.name == s))
    else {
        return BTreeMap::new();
    };
    let cols = copied(tm);
    table
        .columns
        .iter()
        .filter_map(|c| {
            let target = cols.get(&c.name)?.clone();
            if let Some(n) = declared_width(&c.source_type) {
                return Some((target, Declared::Width(n)));
            }
            let exact = declared_exact(&c.source_type).filter(|_| c.arrow_type == "Utf8")?;
            Some((target, Declared::Exact(exact)))
        })
        .collect()
}

/// Per target table, the source's constraints and indexes in target names.
pub fn extras(manifest: &Manifest, mapping: &MappingSpec) -> BTreeMap<String, MirrorExtras> {
    let by_source: BTreeMap<&str, &TableMapping> = mapping
        .tables
        .iter()
        .filter_map(|tm| Some((source_of(tm)?, tm)))
        .collect();
    let rename = |cols: &[String], map: &BTreeMap<String, String>| -> Option<Vec<String>> {
        let out: Option<Vec<String>> = cols.iter().map(|c| map.get(c).cloned()).collect();
        out.filter(|o| !o.is_empty())
    };
    // Index names are unique per schema in PostgreSQL (per table in MySQL),
    // as are constraint names: a name already taken gets its table's name in
    // front. Indexes with unique constraints share one namespace, foreign keys another.
    fn unique_name(taken: &mut BTreeSet<String>, table: &str, n: &str) -> String {
        let mut candidate = n.to_string();
        let mut i = 1;
        while !taken.insert(candidate.clone()) {
            candidate = if i == 1 {
                format!("{table}_{n}")
            } else {
                format!("{table}_{n}_{i}")
            };
            i += 1;
        }
        candidate
    }
    let (mut relations, mut keys) = (BTreeSet::new(), BTreeSet::new());
    let mut out = BTreeMap::new();
    for (source, tm) in &by_source {
        let Some(catalog) = manifest.catalog.tables.get(*source) else {
            continue;
        };
        let cols = copied(tm);
        let mut e = MirrorExtras::default();
        let mut keyed: BTreeSet<Vec<String>> = BTreeSet::new();
        keyed.insert(tm.primary_key.clone());
        for u in &catalog.unique {
            if let Some(c) = rename(&u.columns, &cols) {
                if keyed.insert(c.clone()) {
                    e.unique
                        .push((unique_name(&mut relations, &tm.target, &u.name), c));
                }
            }
        }
        // Partial indexes (a WHERE) are left out: without their predicate a
        // unique one would refuse rows the source holds.
        let partial = |d: &str| d.to_ascii_uppercase().contains(" WHERE ");
        for i in catalog
            .indexes
            .iter()
            .filter(|i| !i.primary && !partial(&i.definition))
        {
            if let Some(c) = rename(&i.columns, &cols) {
                // A unique constraint's own index is already there.
                if !(i.unique && keyed.contains(&c)) {
                    e.indexes.push((
                        unique_name(&mut relations, &tm.target, &i.name),
                        c,
                        i.unique,
                    ));
                }
            }
        }
        for fk in &catalog.foreign_keys {
            let Some(parent) = by_source.get(fk.references.as_str()) else {
                continue;
            };
            // `REFERENCES parent` without columns names its primary key.
            let referenced = if fk.referenced_columns.iter().all(|c| c.is_empty()) {
                Some(parent.primary_key.clone()).filter(|k| k.len() == fk.columns.len())
            } else {
                rename(&fk.referenced_columns, &copied(parent))
            };
            if let (Some(c), Some(p)) = (rename(&fk.columns, &cols), referenced) {
                e.foreign_keys.push(ForeignKey {
                    name: unique_name(&mut keys, &tm.target, &fk.name),
                    columns: c,
                    references: parent.target.clone(),
                    referenced_columns: p,
                    on_delete: fk.on_delete.clone(),
                    on_update: fk.on_update.clone(),
                });
            }
        }
        out.insert(tm.target.clone(), e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parent(id, code UNIQUE)`, `child(id, parent_id, parent_code)` with a
    /// foreign key to parent's unique code, one to its primary key written
    /// without columns, a plain index and a partial one; a PostgreSQL source.
    fn shop() -> (Manifest, MappingSpec) {
        let col = |n: &str, t: &str| {
            serde_json::json!({"name": n, "source_type": t,
            "arrow_type": "Utf8", "nullable": true, "primary_key": 0})
        };
        let table = |n: &str, cols: Vec<serde_json::Value>| {
            serde_json::json!({"name": n,
            "columns": cols, "primary_key": ["id"], "rows": 0, "partitions": []})
        };
        let index = |n: &str, c: &str, def: &str| {
            serde_json::json!({"name": n, "columns": [c],
            "unique": false, "primary": false, "method": "btree", "definition": def})
        };
        let fk = |n: &str, c: &str, r: &str| {
            serde_json::json!({"name": n, "columns": [c],
            "references": "parent", "referenced_columns": [r], "on_delete": "CASCADE", "on_update": "NO ACTION"})
        };
        let manifest = serde_json::json!({
            "version": 1, "migration_id": "m", "source": "postgresql://h/db", "checkpoint_time": "t",
            "tables": [
                table("parent", vec![col("id", "integer"), col("code", "character varying(8)")]),
                table("child", vec![col("id", "integer"), col("parent_id", "integer"),
                    col("parent_code", "varchar(8)"), col("note", "text")]),
            ],
            "catalog": {"tables": {
                "parent": {"defaults": {}, "foreign_keys": [], "checks": [], "indexes": [],
                    "unique": [{"name": "parent_code_key", "columns": ["code"]}]},
                "child": {"defaults": {}, "unique": [], "checks": [],
                    "foreign_keys": [fk("child_code_fk", "parent_code", "code"), fk("child_parent_fk", "parent_id", "")],
                    "indexes": [
                        index("child_note", "note", "CREATE INDEX child_note ON child (note)"),
                        index("child_open", "parent_id", "CREATE INDEX child_open ON child (parent_id) WHERE note IS NULL"),
                    ]},
            }, "views": [], "routines": [], "triggers": []},
        });
        let mapping = |t: &str, cols: &[&str]| {
            serde_json::json!({"target": t, "sources": [t],
            "primary_key": ["id"], "joins": [],
            "columns": cols.iter().map(|c| serde_json::json!({"target": c, "expression": format!("\"{c}\""),
                "sources": [format!("{t}.{c}")], "confidence": 1.0, "status": "auto", "reasons": []})).collect::<Vec<_>>()})
        };
        let spec = serde_json::json!({"version": 1, "migration_id": "m", "auto_approval_threshold": 0.9,
            "tables": [mapping("parent", &["id", "code"]), mapping("child", &["id", "parent_id", "parent_code", "note"])]});
        (
            serde_json::from_value(manifest).unwrap(),
            serde_json::from_value(spec).unwrap(),
        )
    }

    #[test]
    fn extras_follow_the_source_catalog() {
        let (manifest, mapping) = shop();
        let e = extras(&manifest, &mapping);
        assert_eq!(
            e["parent"].unique,
            vec![("parent_code_key".to_string(), vec!["code".to_string()])]
        );
        // The partial index is left out; the plain one kept.
        assert_eq!(
            e["child"].indexes,
            vec![("child_note".to_string(), vec!["note".to_string()], false)]
        );
        let fks: Vec<(&str, &[String])> = e["child"]
            .foreign_keys
            .iter()
            .map(|k| (k.name.as_str(), k.referenced_columns.as_slice()))
            .collect();
        assert_eq!(
            fks,
            vec![
                ("child_code_fk", &["code".to_string()][..]),
                // No columns in the source: the parent's primary key.
                ("child_parent_fk", &["id".to_string()][..]),
            ]
        );
        let w = declared(&manifest, &mapping.tables[1]);
        assert_eq!(w.get("parent_code"), Some(&Declared::Width(8)));
        assert_eq!(w.get("note"), None);
    }

    #[test]
    fn widths_are_read_from_declared_types() {
        assert_eq!(declared_width("varchar(40)"), Some(40));
        assert_eq!(declared_width("character varying(255)"), Some(255));
        assert_eq!(declared_width("CHAR( 3 )"), Some(3));
        assert_eq!(declared_width("text"), None);
        assert_eq!(declared_width("decimal(12,2)"), None);
        assert_eq!(declared_width("varchar"), None);
        assert_eq!(declared_exact("decimal(65,30)"), Some(Some((65, 30))));
        assert_eq!(declared_exact("numeric"), Some(None));
        assert_eq!(declared_exact("NUMERIC(40)"), Some(Some((40, 0))));
        assert_eq!(declared_exact("varchar(10)"), None);
    }
}
