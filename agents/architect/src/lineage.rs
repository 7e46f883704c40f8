//! Column lineage of a mapping, three ways: plain JSON edges (source column
//! → expression → target column), an OpenLineage run event with the
//! column-lineage facet on each output dataset, and a Cypher script that
//! loads the same graph into Neo4j.

use sensei_contracts::artifacts::MappingSpec;

const PRODUCER: &str = "https://sensei.dev/sensei";
const COLUMN_LINEAGE_SCHEMA: &str =
    "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet";

/// Where a table lives, named as OpenLineage's dataset naming conventions
/// say: PostgreSQL `postgres://host:port` with `database.schema.table`,
/// MySQL `mysql://host:port` with `database.table`, files `file` with their
/// path. SQLite, which the conventions do not name, is `sqlite://PATH` with
/// the table. Never a password: only host, port, database and path are read.
pub fn dataset(url: &str, table: &str, default_schema: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let server = |default_port: &str| {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, p),
            _ => (hostport, default_port),
        };
        let database = rest
            .split_once('/')
            .map(|(_, p)| p.split('?').next().unwrap_or(""))
            .unwrap_or("");
        (format!("{host}:{port}"), database.to_string())
    };
    match scheme {
        "postgres" | "postgresql" => {
            let (hostport, db) = server("5432");
            let qualified = if table.contains('.') {
                table.to_string()
            } else {
                let schema = if default_schema.is_empty() {
                    "public"
                } else {
                    default_schema
                };
                format!("{schema}.{table}")
            };
            (
                format!("postgres://{hostport}"),
                format!("{db}.{qualified}"),
            )
        }
        "mysql" | "mariadb" => {
            let (hostport, db) = server("3306");
            (format!("mysql://{hostport}"), format!("{db}.{table}"))
        }
        "csv" | "parquet" | "file" => {
            let path = rest.trim_end_matches('/');
            let is_file = path.ends_with(".csv") || path.ends_with(".parquet");
            let name = if is_file {
                path.to_string()
            } else {
                format!("{path}/{table}")
            };
            ("file".to_string(), name)
        }
        _ => (format!("sqlite://{rest}"), table.to_string()),
    }
}

/// Whether an expression masks or hashes what it reads.
fn masks(expression: &str) -> bool {
    expression.contains("sensei_mask(") || expression.contains("sensei_hash(")
}

/// Plain edges.
pub fn edges(spec: &MappingSpec) -> serde_json::Value {
    let edges: Vec<serde_json::Value> = spec
        .tables
        .iter()
        .flat_map(|t| {
            t.columns.iter().map(move |c| {
                serde_json::json!({
                    "source": c.sources,
                    "transformation": c.expression,
                    "target": format!("{}.{}", t.target, c.target),
                    "status": c.status,
                })
            })
        })
        .collect();
    serde_json::json!({"version": sensei_contracts::artifacts::ARTIFACT_VERSION, "edges": edges})
}

/// An OpenLineage `COMPLETE` run event for the transformation.
pub fn openlineage(
    spec: &MappingSpec,
    source_url: &str,
    target: (&str, &str),
    event_time: &str,
) -> serde_json::Value {
    let (target_url, target_schema) = target;
    let mut inputs: Vec<String> = spec.tables.iter().flat_map(|t| t.sources.clone()).collect();
    inputs.sort();
    inputs.dedup();
    let outputs: Vec<serde_json::Value> = spec
        .tables
        .iter()
        .map(|t| {
            let mut fields = serde_json::Map::new();
            for c in &t.columns {
                let input_fields: Vec<serde_json::Value> = c
                    .sources
                    .iter()
                    .map(|s| {
                        let (table, column) = s.rsplit_once('.').unwrap_or(("", s));
                        let identity = c.expression == crate::quote(column);
                        let (namespace, name) = dataset(source_url, table, "");
                        serde_json::json!({
                            "namespace": namespace,
                            "name": name,
                            "field": column,
                            "transformations": [{
                                "type": "DIRECT",
                                "subtype": if identity { "IDENTITY" } else { "TRANSFORMATION" },
                                "description": c.expression,
                                "masking": masks(&c.expression)
                            }]
                        })
                    })
                    .collect();
                fields.insert(
                    c.target.clone(),
                    serde_json::json!({"inputFields": input_fields}),
                );
            }
            let (namespace, name) = dataset(target_url, &t.target, target_schema);
            serde_json::json!({
                "namespace": namespace,
                "name": name,
                "facets": {
                    "columnLineage": {
                        "_producer": PRODUCER,
                        "_schemaURL": COLUMN_LINEAGE_SCHEMA,
                        "fields": fields
                    }
                }
            })
        })
        .collect();
    serde_json::json!({
        "eventType": "COMPLETE",
        "eventTime": event_time,
        "producer": PRODUCER,
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": run_id(&spec.migration_id)},
        "job": {"namespace": "sensei", "name": format!("{}.transformation", spec.migration_id)},
        "inputs": inputs.iter().map(|n| {
            let (namespace, name) = dataset(source_url, n, "");
            serde_json::json!({"namespace": namespace, "name": name})
        }).collect::<Vec<_>>(),
        "outputs": outputs
    })
}

/// A stable UUID-shaped run id derived from the migration id (OpenLineage
/// wants a UUID; the same migration keeps the same run).
fn run_id(migration_id: &str) -> String {
    use sha2::Digest;
    let h = hex::encode(sha2::Sha256::digest(migration_id.as_bytes()));
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn cypher_string(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A Cypher script: `(:Table)-[:HAS_COLUMN]->(:Column)`, and
/// `(:Column)-[:FEEDS {expression, status, confidence}]->(:Column)`.
pub fn cypher(spec: &MappingSpec, source_ns: &str, target_ns: &str) -> String {
    let mut out = String::from(
        "// Column lineage of a Sensei migration; load with cypher-shell < lineage.cypher\n",
    );
    let mut columns = std::collections::BTreeSet::new();
    for t in &spec.tables {
        for c in &t.columns {
            columns.insert((target_ns.to_string(), t.target.clone(), c.target.clone()));
            for s in &c.sources {
                let (table, column) = s.rsplit_once('.').unwrap_or(("", s));
                columns.insert((source_ns.to_string(), table.to_string(), column.to_string()));
            }
        }
    }
    for (ns, table, column) in &columns {
        out.push_str(&format!(
            "MERGE (t:Table {{namespace: {ns}, name: {table}}}) MERGE (c:Column {{namespace: {ns}, table: {table}, name: {column}}}) MERGE (t)-[:HAS_COLUMN]->(c);\n",
            ns = cypher_string(ns),
            table = cypher_string(table),
            column = cypher_string(column)
        ));
    }
    for t in &spec.tables {
        for c in &t.columns {
            for s in &c.sources {
                let (table, column) = s.rsplit_once('.').unwrap_or(("", s));
                out.push_str(&format!(
                    "MATCH (s:Column {{namespace: {sn}, table: {st}, name: {sc}}}), (d:Column {{namespace: {tn}, table: {tt}, name: {tc}}}) MERGE (s)-[f:FEEDS]->(d) SET f.expression = {ex}, f.status = {status}, f.confidence = {conf};\n",
                    sn = cypher_string(source_ns),
                    st = cypher_string(table),
                    sc = cypher_string(column),
                    tn = cypher_string(target_ns),
                    tt = cypher_string(&t.target),
                    tc = cypher_string(&c.target),
                    ex = cypher_string(&c.expression),
                    status = cypher_string(&c.status),
                    conf = c.confidence
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_named_as_openlineage_says_without_passwords() {
        assert_eq!(
            dataset(
                "postgresql://app:secret@db.example:6432/shop?sslmode=require",
                "orders",
                ""
            ),
            (
                "postgres://db.example:6432".into(),
                "shop.public.orders".into()
            )
        );
        assert_eq!(
            dataset("postgresql://app@db/shop", "sales.orders", "ignored"),
            ("postgres://db:5432".into(), "shop.sales.orders".into())
        );
        assert_eq!(
            dataset("postgresql://app@db/shop", "orders", "modern"),
            ("postgres://db:5432".into(), "shop.modern.orders".into())
        );
        assert_eq!(
            dataset("mysql://root:pw@127.0.0.1:3307/legacy", "cust", ""),
            ("mysql://127.0.0.1:3307".into(), "legacy.cust".into())
        );
        assert_eq!(
            dataset("csv:///data/exports", "customers", ""),
            ("file".into(), "/data/exports/customers".into())
        );
        assert!(masks("sensei_hash(\"cust_email\")") && !masks("\"cust_email\""));
    }
}
