//! The target schema from a DDL file, parsed with sqlparser (the parser
//! DataFusion uses): tables, columns with their SQL and Arrow types,
//! nullability, defaults, primary and foreign keys.
//!
//! Files come as users have them: hand-written DDL, `pg_dump --schema-only`
//! or `mysqldump --no-data`. [`read_schema`] splits such a file into
//! statements itself (quotes, dollar quotes, comments, psql meta-commands
//! and mysql's `DELIMITER` understood), keeps what defines tables (`CREATE
//! TABLE`, `ALTER TABLE .. ADD CONSTRAINT` primary and foreign keys, `ALTER
//! COLUMN .. SET DEFAULT`, enum and domain types, resolved to their base
//! types) and lists every other statement as skipped, never fatal. A `CREATE
//! TABLE` it cannot read is an error naming the line.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, ColumnOption, DataType, Statement, TableConstraint,
    UserDefinedTypeRepresentation,
};
use datafusion::sql::sqlparser::dialect::{
    Dialect, GenericDialect, MySqlDialect, PostgreSqlDialect,
};
use datafusion::sql::sqlparser::parser::Parser;
use serde::{Deserialize, Serialize};

use sensei_contracts::error::{EngineError, Result};

/// A target column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetColumn {
    /// Name.
    pub name: String,
    /// SQL type as written.
    pub sql_type: String,
    /// Arrow type (display form), by the SQLite connector's mapping.
    pub arrow_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Default expression, as written.
    pub default: Option<String>,
    /// Value shapes of the target's rows, when it holds any (not from DDL).
    #[serde(skip)]
    pub sample_shapes: Vec<String>,
    /// Frequent values of the target's rows, when it holds any.
    #[serde(skip)]
    pub sample_values: Vec<String>,
}

/// A target table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetTable {
    /// Name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<TargetColumn>,
    /// Primary key columns.
    pub primary_key: Vec<String>,
    /// Foreign keys: (columns, referenced table, referenced columns).
    pub foreign_keys: Vec<(Vec<String>, String, Vec<String>)>,
}

fn ident_list<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
    items
        .iter()
        .map(|c| {
            c.to_string()
                .trim_matches('"')
                .trim_matches('`')
                .to_string()
        })
        .collect()
}

/// Parses the `CREATE TABLE` statements of `sql`; other statements (indexes,
/// views, functions, dump settings) are skipped. A `CREATE TABLE` that does
/// not parse names the line and column.
pub fn parse(sql: &str, file: &str) -> Result<Vec<TargetTable>> {
    Ok(read_schema(sql, file)?.tables)
}

/// A schema file read: its tables, and the statements that define none.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFile {
    /// The tables, in file order.
    pub tables: Vec<TargetTable>,
    /// Statements skipped: line and their first words (`CREATE FUNCTION`).
    pub skipped: Vec<(usize, String)>,
}

/// One statement of a file, with the line it starts on.
struct Piece {
    line: usize,
    text: String,
}

/// Splits a SQL file into statements: `;` (or mysql's `DELIMITER`) outside
/// quotes ('..', "..", `..`, PostgreSQL's $tag$..$tag$) and comments. Client
/// directives (psql's `\connect`, mysql's `DELIMITER`) are read only where a
/// statement could start, and comments before a statement are not part of
/// it. Backslash escapes inside '..' are MySQL's (a file with backticks or
/// `DELIMITER`) or PostgreSQL's `E'..'` strings only. Works on bytes: every
/// cut falls on an ASCII byte, so any UTF-8 text is safe.
fn split_statements(sql: &str) -> Vec<Piece> {
    let b = sql.as_bytes();
    let mysql = b.contains(&b'`') || sql.to_ascii_uppercase().contains("\nDELIMITER ");
    let mut out = Vec::new();
    let mut delimiter = b";".to_vec();
    let (mut i, mut start, mut line, mut start_line) = (0usize, 0usize, 1usize, 1usize);
    // Whether the statement being read has begun (anything but whitespace
    // and comments since the last delimiter).
    let mut content = false;
    while i < b.len() {
        let c = b[i];
        let at_start = !content;
        if at_start {
            start = i;
            start_line = line;
        }
        if at_start && (i == 0 || b[i - 1] == b'\n') {
            if let Some((eol, new_delimiter)) = directive(sql, i) {
                delimiter = new_delimiter.unwrap_or(delimiter);
                (i, start) = (eol, eol);
                continue;
            }
        }
        if c == b'\n' {
            line += 1;
            i += 1;
            continue;
        }
        // The delimiter first: after `DELIMITER $$` a `$$` ends a statement.
        if b[i..].starts_with(&delimiter) {
            if content {
                out.push(Piece {
                    line: start_line,
                    text: sql[start..i].trim().to_string(),
                });
            }
            content = false;
            i += delimiter.len();
            start = i;
            continue;
        }
        if let Some(end) = comment_end(b, i, mysql) {
            line += newlines(&b[i..end]);
            i = end;
            if at_start {
                // A comment before a statement is not part of it.
                start = i;
            }
            continue;
        }
        if !c.is_ascii_whitespace() {
            content = true;
        }
        let end = if c == b'\'' || c == b'"' || c == b'`' {
            Some(quoted_end(b, i, mysql))
        } else if c == b'$' && (i == 0 || !ident(b[i - 1])) {
            dollar_quoted_end(b, i)
        } else {
            None
        };
        let end = end.unwrap_or(i + 1);
        line += newlines(&b[i..end.min(b.len())]);
        i = end;
    }
    if content {
        out.push(Piece {
            line: start_line,
            text: sql[start..].trim().to_string(),
        });
    }
    out
}

/// A byte that may be part of an identifier.
fn ident(x: u8) -> bool {
    x.is_ascii_alphanumeric() || x == b'_' || x == b'$' || x >= 0x80
}

fn newlines(b: &[u8]) -> usize {
    b.iter().filter(|&&x| x == b'\n').count()
}

/// A client directive (psql's `\connect`, mysql's `DELIMITER x`) on the
/// line starting at `i`: where its line ends, and the new delimiter it sets.
fn directive(sql: &str, i: usize) -> Option<(usize, Option<Vec<u8>>)> {
    let b = sql.as_bytes();
    let eol = b[i..]
        .iter()
        .position(|&x| x == b'\n')
        .map_or(b.len(), |e| i + e);
    let text = sql[i..eol].trim();
    let is_delimiter = text
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("delimiter "));
    if is_delimiter {
        let d = text.get(10..).unwrap_or("").trim();
        return Some((eol, (!d.is_empty()).then(|| d.as_bytes().to_vec())));
    }
    text.starts_with('\\').then_some((eol, None))
}

/// Where the comment starting at `i` ends (`--`, mysql's `#`, `/* */`).
fn comment_end(b: &[u8], i: usize, mysql: bool) -> Option<usize> {
    if b[i..].starts_with(b"--") || (mysql && b[i] == b'#') {
        Some(
            b[i..]
                .iter()
                .position(|&x| x == b'\n')
                .map_or(b.len(), |e| i + e),
        )
    } else if b[i..].starts_with(b"/*") {
        Some(
            b[i + 2..]
                .windows(2)
                .position(|w| w == b"*/")
                .map_or(b.len(), |e| i + 2 + e + 2),
        )
    } else {
        None
    }
}

/// Just past the closing quote of the string or quoted name opening at
/// `i`; a doubled quote stays inside, and backslash escapes count in
/// MySQL's strings and PostgreSQL's `E'..'`.
fn quoted_end(b: &[u8], mut i: usize, mysql: bool) -> usize {
    let c = b[i];
    let escapes = c == b'\''
        && (mysql || (i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !ident(b[i - 2]))));
    i += 1;
    while i < b.len() {
        if escapes && b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == c {
            if b.get(i + 1) == Some(&c) {
                i += 2;
                continue;
            }
            break;
        }
        i += 1;
    }
    i + 1
}

/// Just past a `$tag$ ... $tag$` body opening at `i` (a tag of letters,
/// digits and _, possibly empty, not starting with a digit: `$1` is a
/// parameter); None when no tag opens there.
fn dollar_quoted_end(b: &[u8], i: usize) -> Option<usize> {
    let n = b[i + 1..]
        .iter()
        .position(|&x| !(x.is_ascii_alphanumeric() || x == b'_'))?;
    if b[i + 1 + n] != b'$' || (n > 0 && b[i + 1].is_ascii_digit()) {
        return None;
    }
    let tag = &b[i..i + n + 2];
    let body = i + n + 2;
    Some(
        b[body..]
            .windows(tag.len())
            .position(|w| w == tag)
            .map_or(b.len(), |e| body + e + tag.len()),
    )
}

/// The first words of a statement, to list it when skipped.
fn kind_of(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_alphabetic() || c == '_'))
        .take(3)
        .map(|w| w.to_ascii_uppercase())
        .collect();
    if words.is_empty() {
        text.chars().take(30).collect()
    } else {
        words.join(" ")
    }
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').trim_matches('`').to_string()
}

/// The last part of a possibly schema-qualified name, unquoted.
fn last_name(name: &datafusion::sql::sqlparser::ast::ObjectName) -> String {
    name.0
        .last()
        .map(|p| unquote(&p.to_string()))
        .unwrap_or_default()
}

/// A declared type as a base SQL type: enum and set types become TEXT,
/// domains their base type; engine types without an Arrow counterpart of
/// their own travel as text, binary strings as BLOB.
fn base_type(dt: &DataType, user_types: &BTreeMap<String, String>) -> String {
    let written = dt.to_string();
    let key = written
        .rsplit('.')
        .next()
        .unwrap_or(&written)
        .trim_matches('"')
        .to_ascii_lowercase();
    if let Some(base) = user_types.get(&key) {
        return base.clone();
    }
    match dt {
        DataType::Enum(..) | DataType::Set(..) => return "TEXT".into(),
        _ => {}
    }
    let upper = written.to_ascii_uppercase();
    let head = upper.split(['(', ' ']).next().unwrap_or("");
    match head {
        "UUID" | "JSON" | "JSONB" | "XML" | "INET" | "CIDR" | "MACADDR" | "INTERVAL" | "MONEY"
        | "CITEXT" | "NAME" | "BIT" | "VARBIT" | "TSVECTOR" => "TEXT".into(),
        "BYTEA" | "BINARY" | "VARBINARY" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" => "BLOB".into(),
        "TIME" if !upper.contains("STAMP") => "TEXT".into(),
        // An unconstrained numeric keeps every digit as text (as the
        // PostgreSQL connector reads it), not a float.
        "NUMERIC" | "DECIMAL" if !upper.contains('(') => "TEXT".into(),
        "YEAR" => "INTEGER".into(),
        // MySQL's BOOLEAN, as mysqldump writes it.
        "TINYINT" if upper.starts_with("TINYINT(1)") => "BOOLEAN".into(),
        _ if upper.ends_with("[]") || upper.contains("ARRAY") => "TEXT".into(),
        _ => written,
    }
}

/// The Arrow type a target column is matched and transformed as: integers
/// of every width as Int64 and floats as Float64 (the target casts to its
/// declared width on the way in, refusing what overflows), so that a schema
/// read from a live database and from its dump give the same plan.
pub fn matching_type(dt: arrow::datatypes::DataType) -> arrow::datatypes::DataType {
    use arrow::datatypes::DataType as A;
    match dt {
        A::Int8 | A::Int16 | A::Int32 | A::UInt8 | A::UInt16 | A::UInt32 | A::UInt64 => A::Int64,
        A::Float16 | A::Float32 => A::Float64,
        other => other,
    }
}

/// Parses one statement with the dialects a schema file may be written in.
fn parse_statement(text: &str) -> std::result::Result<Statement, String> {
    let dialects: [&dyn Dialect; 3] = [&GenericDialect {}, &PostgreSqlDialect {}, &MySqlDialect {}];
    let mut first_error = None;
    for d in dialects {
        match Parser::parse_sql(d, text) {
            Ok(mut v) if v.len() == 1 => return Ok(v.remove(0)),
            Ok(v) => first_error.get_or_insert_with(|| format!("{} statements", v.len())),
            Err(e) => first_error.get_or_insert_with(|| e.to_string()),
        };
    }
    Err(first_error.unwrap_or_default())
}

/// Reads a schema file (hand-written DDL or a dump): see the module doc.
pub fn read_schema(sql: &str, file: &str) -> Result<SchemaFile> {
    let mut user_types: BTreeMap<String, String> = BTreeMap::new();
    let mut tables: Vec<TargetTable> = Vec::new();
    let mut skipped = Vec::new();
    // Editors on Windows start files with a byte-order mark.
    let sql = sql.strip_prefix('\u{feff}').unwrap_or(sql);
    for piece in split_statements(sql) {
        let kind = kind_of(&piece.text);
        let st = match parse_statement(&piece.text) {
            Ok(st) => st,
            Err(e) if kind.starts_with("CREATE TABLE") || kind.starts_with("CREATE TEMPORARY") => {
                return Err(EngineError::Invalid {
                    what: format!("target schema {file}"),
                    message: format!(
                        "the CREATE TABLE at line {} does not parse: {e} (Line: {} of the file); fix the statement",
                        piece.line, piece.line
                    ),
                })
            }
            Err(_) => {
                skipped.push((piece.line, kind));
                continue;
            }
        };
        match st {
            Statement::CreateTable(ct) => {
                let mut t = table_of(&ct, &user_types);
                // A later definition of the same table replaces an earlier one.
                tables.retain(|x| x.name != t.name);
                t.columns.iter_mut().for_each(|c| {
                    c.arrow_type =
                        matching_type(sensei_connectors::sqlite::arrow_type_for(&c.sql_type))
                            .to_string()
                });
                tables.push(t);
            }
            Statement::CreateType {
                name,
                representation: Some(UserDefinedTypeRepresentation::Enum { .. }),
            } => {
                user_types.insert(last_name(&name).to_ascii_lowercase(), "TEXT".into());
            }
            Statement::CreateDomain(d) => {
                let base = base_type(&d.data_type, &user_types);
                user_types.insert(last_name(&d.name).to_ascii_lowercase(), base);
            }
            Statement::AlterTable(at) => {
                let name = last_name(&at.name);
                let Some(t) = tables.iter_mut().find(|t| t.name == name) else {
                    skipped.push((piece.line, kind));
                    continue;
                };
                let mut used = false;
                for op in &at.operations {
                    match op {
                        AlterTableOperation::AddConstraint { constraint, .. } => {
                            used |= add_constraint(t, constraint);
                        }
                        AlterTableOperation::AlterColumn {
                            column_name,
                            op: AlterColumnOperation::SetDefault { value },
                        } => {
                            if let Some(c) =
                                t.columns.iter_mut().find(|c| c.name == column_name.value)
                            {
                                c.default = Some(value.to_string());
                                used = true;
                            }
                        }
                        _ => {}
                    }
                }
                if !used {
                    skipped.push((piece.line, kind));
                }
            }
            _ => skipped.push((piece.line, kind)),
        }
    }
    Ok(SchemaFile { tables, skipped })
}

/// Applies a primary or foreign key to `t`; false for other constraints.
fn add_constraint(t: &mut TargetTable, k: &TableConstraint) -> bool {
    match k {
        TableConstraint::PrimaryKey(pk) => {
            t.primary_key = pk
                .columns
                .iter()
                .map(|c| unquote(&c.column.expr.to_string()))
                .collect();
            for c in &mut t.columns {
                if t.primary_key.contains(&c.name) {
                    c.nullable = false;
                }
            }
            true
        }
        TableConstraint::ForeignKey(fk) => {
            t.foreign_keys.push((
                ident_list(&fk.columns),
                last_name(&fk.foreign_table),
                ident_list(&fk.referred_columns),
            ));
            true
        }
        _ => false,
    }
}

fn table_of(
    ct: &datafusion::sql::sqlparser::ast::CreateTable,
    user_types: &BTreeMap<String, String>,
) -> TargetTable {
    let mut t = TargetTable {
        name: last_name(&ct.name),
        columns: Vec::new(),
        primary_key: Vec::new(),
        foreign_keys: Vec::new(),
    };
    for c in &ct.columns {
        let sql_type = base_type(&c.data_type, user_types);
        let mut col = TargetColumn {
            name: c.name.value.clone(),
            arrow_type: String::new(),
            sql_type,
            nullable: true,
            default: None,
            sample_shapes: Vec::new(),
            sample_values: Vec::new(),
        };
        for o in &c.options {
            match &o.option {
                ColumnOption::NotNull => col.nullable = false,
                ColumnOption::Default(e) => col.default = Some(e.to_string()),
                ColumnOption::PrimaryKey(_) => {
                    col.nullable = false;
                    t.primary_key.push(col.name.clone());
                }
                ColumnOption::ForeignKey(fk) => t.foreign_keys.push((
                    vec![col.name.clone()],
                    last_name(&fk.foreign_table),
                    ident_list(&fk.referred_columns),
                )),
                _ => {}
            }
        }
        t.columns.push(col);
    }
    for k in &ct.constraints {
        add_constraint(&mut t, k);
    }
    t
}

/// The target schema as an existing target database holds it (its tables,
/// columns, types, keys, defaults and foreign keys), for a migration into
/// tables that are already there.
pub fn from_database(
    tables: &[sensei_connectors::table::TableInfo],
    catalog: &sensei_connectors::catalog::Catalog,
) -> Vec<TargetTable> {
    tables
        .iter()
        .map(|t| {
            let tc = catalog.tables.get(&t.name);
            TargetTable {
                name: t.name.clone(),
                columns: t
                    .columns
                    .iter()
                    .map(|c| TargetColumn {
                        name: c.name.clone(),
                        sql_type: c.source_type.clone(),
                        arrow_type: matching_type(
                            c.arrow_type
                                .parse()
                                .unwrap_or(arrow::datatypes::DataType::Utf8),
                        )
                        .to_string(),
                        nullable: c.nullable,
                        default: tc.and_then(|k| k.defaults.get(&c.name).cloned()),
                        sample_shapes: Vec::new(),
                        sample_values: Vec::new(),
                    })
                    .collect(),
                primary_key: t.primary_key(),
                foreign_keys: tc
                    .map(|k| {
                        k.foreign_keys
                            .iter()
                            .map(|f| {
                                (
                                    f.columns.clone(),
                                    f.references.clone(),
                                    f.referenced_columns.clone(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// The tables a target database already holds (`target.schema = @target`),
/// as a target schema: SQLite, PostgreSQL (inside `target.namespace`, else
/// `public`) and MySQL/MariaDB; enum, set and domain types come as their
/// base types, Sensei's own ledger is left out.
pub fn from_target(
    url: &str,
    options: &sensei_connectors::files::SourceOptions,
    namespace: &str,
) -> Result<Vec<TargetTable>> {
    let shown = sensei_runtime::secret::redact_url(url);
    let empty = || {
        EngineError::Invalid {
        what: "target.schema = @target".into(),
        message: format!(
            "the target {shown} holds no tables to map onto; create them first (the new application's migrations) or give a DDL file"
        ),
    }
    };
    let mut db = match sensei_connectors::url::parse(url, "target")? {
        sensei_connectors::url::Location::Sqlite(path) if !path.exists() => return Err(empty()),
        sensei_connectors::url::Location::Sqlite(_) | sensei_connectors::url::Location::Postgres(_) | sensei_connectors::url::Location::MySql(_) => {
            sensei_connectors::source::Source::open_with(url, None, options)?
        }
        sensei_connectors::url::Location::Csv(_) | sensei_connectors::url::Location::Parquet(_) => {
            return Err(sensei_connectors::ConnectorError::Unsupported {
                role: "target",
                url: shown,
                hint: "@target reads the tables of a database target: sqlite://, postgresql://, mysql://".into(),
            }
            .into())
        }
    };
    let prefix = if namespace.is_empty() || namespace == "public" {
        None
    } else {
        Some(format!("{namespace}."))
    };
    let tables: Vec<_> = db
        .tables()?
        .into_iter()
        .filter(|t| t.name.rsplit('.').next() != Some(sensei_connectors::batch::LEDGER_TABLE))
        .filter(|t| match &prefix {
            // PostgreSQL names tables outside `public` as schema.table.
            Some(p) => t.name.starts_with(p.as_str()),
            None => !t.name.contains('.'),
        })
        .collect();
    if tables.is_empty() {
        return Err(empty());
    }
    let catalog = db.catalog(&tables)?;
    let mut schema = from_database(&tables, &catalog);
    if let Some(p) = &prefix {
        for t in &mut schema {
            t.name = t.name.trim_start_matches(p.as_str()).to_string();
            for fk in &mut t.foreign_keys {
                fk.1 = fk.1.trim_start_matches(p.as_str()).to_string();
            }
        }
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_columns_keys_and_defaults() {
        let t = parse(
            "CREATE TABLE customer (id BIGINT PRIMARY KEY, email VARCHAR(120) NOT NULL,
               tier TEXT DEFAULT 'basic', born DATE);
             CREATE TABLE purchase (id BIGINT, customer_id BIGINT NOT NULL, amount DECIMAL(12,2),
               PRIMARY KEY (id), FOREIGN KEY (customer_id) REFERENCES customer (id));",
            "t.sql",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].primary_key, ["id"]);
        assert!(!t[0].columns[1].nullable);
        assert_eq!(t[0].columns[2].default.as_deref(), Some("'basic'"));
        assert_eq!(t[0].columns[3].arrow_type, "Date32");
        assert_eq!(t[1].columns[2].arrow_type, "Decimal128(12, 2)");
        assert_eq!(t[1].primary_key, ["id"]);
        assert_eq!(
            t[1].foreign_keys,
            [(
                vec!["customer_id".to_string()],
                "customer".to_string(),
                vec!["id".to_string()]
            )]
        );
    }

    #[test]
    fn a_pg_dump_keeps_its_tables_keys_and_base_types_and_lists_the_rest() {
        let dump = r#"
--
-- PostgreSQL database dump
--
\restrict abc123
SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
CREATE OR REPLACE PROCEDURAL LANGUAGE plpgsql;
CREATE TYPE public.mood AS ENUM (
    'sad',
    'happy'
);
CREATE DOMAIN public.amount AS numeric(12,2)
    CONSTRAINT amount_check CHECK ((VALUE >= (0)::numeric));
CREATE FUNCTION public.stamp() RETURNS trigger
    LANGUAGE plpgsql
    AS $_$
BEGIN
  NEW.note := 'a;b';  -- a ; inside the body
  RETURN NEW;
END $_$;
CREATE TABLE public.person (
    id integer NOT NULL,
    feeling public.mood,
    paid public.amount NOT NULL,
    born date
);
CREATE SEQUENCE public.person_id_seq AS integer START WITH 1;
ALTER TABLE ONLY public.person ALTER COLUMN id SET DEFAULT nextval('public.person_id_seq'::regclass);
CREATE TABLE public.visit (id bigint NOT NULL, person_id integer NOT NULL);
CREATE VIEW public.sad AS SELECT person.id FROM public.person WHERE (person.feeling = 'sad'::public.mood);
ALTER TABLE ONLY public.person ADD CONSTRAINT person_pkey PRIMARY KEY (id);
ALTER TABLE ONLY public.visit
    ADD CONSTRAINT visit_person_id_fkey FOREIGN KEY (person_id) REFERENCES public.person(id);
CREATE TRIGGER t BEFORE INSERT ON public.person FOR EACH ROW EXECUTE FUNCTION public.stamp();
COMMENT ON TABLE public.person IS 'people; with a semicolon';
\unrestrict abc123
"#;
        let read = read_schema(dump, "dump.sql").unwrap();
        let names: Vec<&str> = read.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["person", "visit"]);
        let person = &read.tables[0];
        assert_eq!(person.primary_key, ["id"]);
        assert!(!person.columns[0].nullable);
        assert_eq!(person.columns[0].arrow_type, "Int64");
        assert!(person.columns[0]
            .default
            .as_deref()
            .unwrap()
            .contains("nextval"));
        assert_eq!(person.columns[1].arrow_type, "Utf8", "enum as text");
        assert_eq!(
            person.columns[2].arrow_type, "Decimal128(12, 2)",
            "domain as its base"
        );
        assert_eq!(
            read.tables[1].foreign_keys,
            [(
                vec!["person_id".to_string()],
                "person".to_string(),
                vec!["id".to_string()]
            )]
        );
        let kinds: Vec<&str> = read.skipped.iter().map(|(_, k)| k.as_str()).collect();
        for k in [
            "SET",
            "SELECT",
            "CREATE OR REPLACE",
            "CREATE FUNCTION",
            "CREATE SEQUENCE",
            "CREATE VIEW",
            "CREATE TRIGGER",
            "COMMENT ON TABLE",
        ] {
            assert!(
                kinds.iter().any(|x| x.starts_with(k)),
                "{k} not listed: {kinds:?}"
            );
        }
        // Lines are those of the file.
        let func = read
            .skipped
            .iter()
            .find(|(_, k)| k == "CREATE FUNCTION")
            .unwrap();
        assert_eq!(func.0, 15);
    }

    #[test]
    fn a_mysqldump_with_conditional_comments_and_delimiters() {
        let dump = "-- MySQL dump 10.19
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
DROP TABLE IF EXISTS `purchase`;
/*!40101 SET @saved_cs_client     = @@character_set_client */;
CREATE TABLE `purchase` (
  `id` bigint(20) NOT NULL,
  `status` enum('new','paid') NOT NULL DEFAULT 'new',
  `tags` set('a','b') DEFAULT NULL,
  `paid` tinyint(1) NOT NULL,
  `note` text DEFAULT NULL COMMENT 'it''s; free text',
  PRIMARY KEY (`id`),
  KEY `by_status` (`status`),
  CONSTRAINT `fk_x` FOREIGN KEY (`id`) REFERENCES `other` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
DELIMITER ;;
/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER t BEFORE INSERT ON purchase FOR EACH ROW BEGIN SET NEW.note = ''; END */;;
DELIMITER ;
";
        let read = read_schema(dump, "dump.sql").unwrap();
        assert_eq!(read.tables.len(), 1);
        let t = &read.tables[0];
        assert_eq!(t.primary_key, ["id"]);
        let types: Vec<&str> = t.columns.iter().map(|c| c.arrow_type.as_str()).collect();
        assert_eq!(types, ["Int64", "Utf8", "Utf8", "Boolean", "Utf8"]);
        assert_eq!(t.foreign_keys.len(), 1);
        assert!(read.skipped.iter().any(|(_, k)| k == "DROP TABLE IF"));
    }

    #[test]
    fn the_splitter_holds_on_what_real_files_contain() {
        // A byte-order mark and non-ASCII names; a column named `delimiter`;
        // comments before statements; a PostgreSQL string ending in a
        // backslash; `$1` inside a function; mysql's DELIMITER $$.
        let sql = "\u{feff}CREATE TABLE größe (maß int);
CREATE TABLE import_format (
  id int,
  delimiter char(1) NOT NULL
);
--
-- Name: dir; Type: TABLE
--
CREATE TABLE dir (path text);
COMMENT ON COLUMN dir.path IS 'C:\\';
CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS 'SELECT $1 + 1';
CREATE TABLE after_all (x int);
";
        let read = read_schema(sql, "f.sql").unwrap();
        let names: Vec<&str> = read.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["größe", "import_format", "dir", "after_all"]);
        assert_eq!(read.tables[1].columns[1].name, "delimiter");
        let pieces = split_statements(sql);
        let dir = pieces
            .iter()
            .find(|p| p.text.starts_with("CREATE TABLE dir"))
            .unwrap();
        assert_eq!(dir.line, 9, "the line of the statement, not of its comment");

        let my = "CREATE TABLE a (x int);
DELIMITER $$
CREATE PROCEDURE p() BEGIN SELECT 1; END$$
DELIMITER ;
CREATE TABLE `b` (y int);
";
        let read = read_schema(my, "m.sql").unwrap();
        let names: Vec<&str> = read.tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(
            read.skipped
                .iter()
                .any(|(l, k)| *l == 3 && k == "CREATE PROCEDURE"),
            "{:?}",
            read.skipped
        );
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let err = parse(
            "CREATE TABLE a (x INT);\nCREATE TABLE b (y INT,, z INT);",
            "bad.sql",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad.sql") && err.contains("Line: 2"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Any text, however broken (quotes, dollar signs, comments,
        /// DELIMITER lines, multi-byte characters), is split without a panic
        /// into pieces that are each a part of the text.
        #[test]
        fn the_splitter_takes_any_text(
            text in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("CREATE TABLE t (x int);".to_string()),
                    proptest::strategy::Just("'".to_string()),
                    proptest::strategy::Just("\"".to_string()),
                    proptest::strategy::Just("`".to_string()),
                    proptest::strategy::Just("$$".to_string()),
                    proptest::strategy::Just("$tag$".to_string()),
                    proptest::strategy::Just("--".to_string()),
                    proptest::strategy::Just("/*".to_string()),
                    proptest::strategy::Just("*/".to_string()),
                    proptest::strategy::Just("\nDELIMITER ;;\n".to_string()),
                    proptest::strategy::Just("\n\\connect x\n".to_string()),
                    proptest::strategy::Just(";".to_string()),
                    proptest::strategy::Just("\\".to_string()),
                    ".{0,6}",
                ],
                0..24,
            )
        ) {
            let sql = text.concat();
            for piece in split_statements(&sql) {
                proptest::prop_assert!(sql.contains(&piece.text));
                proptest::prop_assert!(piece.line >= 1);
            }
            let _ = read_schema(&sql, "any.sql");
        }
    }
}
