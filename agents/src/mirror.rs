//! Mirror mode (no target schema): what the target tables keep of the
//! source besides column types, NOT NULL and the primary key. Text widths
//! (`VARCHAR(n)`, `CHAR(n)` as `VARCHAR(n)`) when the source engine enforces
//! them (PostgreSQL, MySQL/MariaDB; SQLite's declared widths are not checked,
//! so its values may be longer), and the source catalog's unique
//! constraints, secondary indexes and foreign keys, renamed through the
//! mapping. Constraints touching a column the mapping does not copy as it is,
//! expression indexes and partial indexes are left out.

use std::collections::{BTreeMap, BTreeSet};

use sensei_connectors::catalog::ForeignKey;
use sensei_connectors::target::MirrorExtras;

use crate::artifacts::{Manifest, MappingSpec, TableMapping};

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

/// Per target column, the source's enforced text width.
pub fn widths(manifest: &Manifest, tm: &TableMapping) -> BTreeMap<String, u32> {
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
        .filter_map(|c| Some((cols.get(&c.name)?.clone(), declared_width(&c.source_type)?)))
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

    #[test]
    fn widths_are_read_from_declared_types() {
        assert_eq!(declared_width("varchar(40)"), Some(40));
        assert_eq!(declared_width("character varying(255)"), Some(255));
        assert_eq!(declared_width("CHAR( 3 )"), Some(3));
        assert_eq!(declared_width("text"), None);
        assert_eq!(declared_width("decimal(12,2)"), None);
        assert_eq!(declared_width("varchar"), None);
    }
}
