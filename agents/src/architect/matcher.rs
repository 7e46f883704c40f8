//! Schema matching: which source column feeds each target column, with a
//! confidence in [0, 1] and the reasons for it.
//!
//! Signals, per (source column, target column):
//! - **name**: both names are split into tokens (snake_case, camelCase,
//!   digits), abbreviations expanded (`cust` → customer, `dob` → date of
//!   birth, `qty` → quantity, `nbr`/`no`/`num` → number; extensible by
//!   configuration), synonyms folded (`ts`/`at`/`datetime` → time), plurals
//!   singularised, and each table's own name tokens dropped (`cust_email` in
//!   `customers` is `email`). Similarity blends the Dice coefficient of the
//!   token sets with Jaro-Winkler over the joined tokens.
//! - **type**: how safely the source's Arrow type casts to the target's.
//! - **values**: the source's PII kind agreeing (or clashing) with the
//!   target's name; a text column whose profile found a date format, for a
//!   date target.
//! - **keys**: a primary-key column for a primary-key column.
//!
//! They combine in a logistic function (weights in [`Weights`]). Within a
//! table pair, one-to-one choices are resolved globally with the Hungarian
//! algorithm (maximum total score), not greedily. Each target table takes the
//! source table that serves it best, so one source table may feed several
//! target tables (a split).

use std::collections::{BTreeMap, BTreeSet};

/// Default abbreviations of legacy schemas (token → expansion).
pub const ABBREVIATIONS: &[(&str, &str)] = &[
    ("cust", "customer"),
    ("cus", "customer"),
    ("clnt", "client"),
    ("fname", "first name"),
    ("lname", "last name"),
    ("mname", "middle name"),
    ("fn", "first name"),
    ("nm", "name"),
    ("dob", "date of birth"),
    ("bdate", "birth date"),
    ("birthdate", "birth date"),
    ("birthday", "birth date"),
    ("qty", "quantity"),
    ("nbr", "number"),
    ("no", "number"),
    ("num", "number"),
    ("nr", "number"),
    ("amt", "amount"),
    ("desc", "description"),
    ("descr", "description"),
    ("addr", "address"),
    ("tel", "phone"),
    ("ph", "phone"),
    ("phn", "phone"),
    ("telephone", "phone"),
    ("mobile", "phone"),
    ("prod", "product"),
    ("prd", "product"),
    ("ord", "order"),
    ("cat", "category"),
    ("emp", "employee"),
    ("empl", "employee"),
    ("dept", "department"),
    ("mgr", "manager"),
    ("acct", "account"),
    ("acc", "account"),
    ("txn", "transaction"),
    ("trx", "transaction"),
    ("inv", "invoice"),
    ("pmt", "payment"),
    ("pymt", "payment"),
    ("zip", "postal code"),
    ("zipcode", "postal code"),
    ("postcode", "postal code"),
    ("sal", "salary"),
    ("stat", "status"),
    ("sts", "status"),
    ("yr", "year"),
    ("mth", "month"),
    ("cnt", "count"),
    ("pct", "percent"),
    ("prc", "price"),
    ("cd", "code"),
    ("typ", "type"),
    ("ref", "reference"),
    ("seq", "sequence"),
    ("loc", "location"),
    ("ctry", "country"),
    ("cntry", "country"),
    ("st", "street"),
    ("sup", "supplier"),
    ("supp", "supplier"),
    ("vnd", "vendor"),
    ("wh", "warehouse"),
    ("whse", "warehouse"),
    ("disc", "discount"),
    ("mail", "email"),
    ("e", "email"),
    ("crt", "created"),
    ("upd", "updated"),
    ("mod", "modified"),
];

/// Synonyms folded to one token.
const SYNONYMS: &[(&str, &str)] = &[
    ("timestamp", "time"),
    ("ts", "time"),
    ("datetime", "time"),
    ("at", "time"),
    ("tm", "time"),
    ("dt", "date"),
    ("day", "date"),
    ("identifier", "id"),
    ("key", "id"),
    ("surname", "last"),
    ("family", "last"),
    ("given", "first"),
    ("forename", "first"),
    ("modified", "updated"),
    ("changed", "updated"),
    ("inserted", "created"),
    ("cost", "price"),
    ("total", "amount"),
    ("client", "customer"),
    ("cell", "phone"),
];

const STOP: &[&str] = &["of", "the", "a", "tbl", "fld", "col", "t"];

/// Common words of schemas, for splitting names written without separators
/// (`HIREDATE` is hire + date, `DEPTNO` is dept + no), with the dictionary's
/// abbreviations and expansions.
const WORDS: &[&str] = &[
    "id",
    "key",
    "code",
    "name",
    "first",
    "last",
    "middle",
    "full",
    "title",
    "type",
    "status",
    "state",
    "date",
    "time",
    "year",
    "month",
    "day",
    "hour",
    "start",
    "end",
    "from",
    "to",
    "hire",
    "birth",
    "open",
    "close",
    "due",
    "paid",
    "issue",
    "ship",
    "order",
    "line",
    "item",
    "product",
    "price",
    "cost",
    "amount",
    "total",
    "tax",
    "rate",
    "discount",
    "percent",
    "quantity",
    "count",
    "number",
    "balance",
    "salary",
    "wage",
    "account",
    "bank",
    "customer",
    "client",
    "user",
    "employee",
    "manager",
    "department",
    "dept",
    "job",
    "role",
    "group",
    "team",
    "project",
    "supplier",
    "vendor",
    "invoice",
    "payment",
    "address",
    "street",
    "city",
    "zip",
    "postal",
    "country",
    "region",
    "phone",
    "mobile",
    "fax",
    "email",
    "mail",
    "web",
    "site",
    "url",
    "login",
    "password",
    "pwd",
    "active",
    "enabled",
    "deleted",
    "flag",
    "created",
    "updated",
    "modified",
    "changed",
    "by",
    "at",
    "on",
    "note",
    "notes",
    "comment",
    "description",
    "desc",
    "text",
    "value",
    "min",
    "max",
    "avg",
    "sum",
    "weight",
    "height",
    "size",
    "color",
    "category",
    "brand",
    "model",
    "serial",
    "sku",
    "stock",
    "hand",
    "unit",
    "units",
    "level",
    "score",
    "grade",
    "gender",
    "sex",
    "age",
    "nick",
    "user",
    "register",
    "reg",
    "entry",
    "work",
    "over",
    "overtime",
    "hours",
    "hrs",
    "shift",
    "week",
];

/// Splits a token written without separators into known words (longer
/// pieces preferred); None when no split covers it.
fn segment(token: &str, known: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
    let n = token.len();
    if n < 5 || !token.is_ascii() {
        return None;
    }
    // best[i]: best split of token[..i] as (score, pieces), score = sum of squared lengths.
    let mut best: Vec<Option<(usize, Vec<String>)>> = vec![None; n + 1];
    best[0] = Some((0, Vec::new()));
    for end in 2..=n {
        for start in 0..=end - 2 {
            let piece = &token[start..end];
            if let (Some((score, pieces)), true) = (&best[start], known(piece)) {
                let cand = score + piece.len() * piece.len();
                if best[end].as_ref().is_none_or(|(b, _)| cand > *b) {
                    let mut p = pieces.clone();
                    p.push(piece.to_string());
                    best[end] = Some((cand, p));
                }
            }
        }
    }
    best[n].take().map(|(_, p)| p).filter(|p| p.len() > 1)
}

/// The token dictionary: the defaults plus configured entries.
#[derive(Debug, Clone)]
pub struct Dictionary {
    expand: BTreeMap<String, Vec<String>>,
}

impl Default for Dictionary {
    fn default() -> Self {
        Self::with_extra(&[])
    }
}

impl Dictionary {
    /// The defaults and `extra` (`(abbreviation, expansion)`; later wins).
    pub fn with_extra(extra: &[(String, String)]) -> Self {
        let mut expand = BTreeMap::new();
        for (k, v) in ABBREVIATIONS {
            expand.insert(k.to_string(), v.split(' ').map(str::to_string).collect());
        }
        for (k, v) in extra {
            expand.insert(
                k.to_ascii_lowercase(),
                v.split_whitespace().map(str::to_ascii_lowercase).collect(),
            );
        }
        Dictionary { expand }
    }

    /// Parses `abbr=expansion, abbr2=expansion two`.
    pub fn parse_extra(spec: &str) -> std::result::Result<Vec<(String, String)>, String> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.split_once('=')
                    .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                    .ok_or_else(|| format!("{item:?} is not abbreviation=expansion"))
            })
            .collect()
    }

    /// Normalised tokens of an identifier.
    pub fn tokens(&self, name: &str) -> Vec<String> {
        let mut raw: Vec<String> = Vec::new();
        let mut cur = String::new();
        let chars: Vec<char> = name.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if !c.is_alphanumeric() {
                if !cur.is_empty() {
                    raw.push(std::mem::take(&mut cur));
                }
                continue;
            }
            let boundary = i > 0 && {
                let p = chars[i - 1];
                (p.is_lowercase() && c.is_uppercase())
                    || (p.is_alphabetic() && c.is_ascii_digit())
                    || (p.is_ascii_digit() && c.is_alphabetic())
                    || (c.is_uppercase()
                        && p.is_uppercase()
                        && chars.get(i + 1).is_some_and(|n| n.is_lowercase()))
            };
            if boundary && !cur.is_empty() {
                raw.push(std::mem::take(&mut cur));
            }
            cur.extend(c.to_lowercase());
        }
        if !cur.is_empty() {
            raw.push(cur);
        }
        let known = |w: &str| {
            WORDS.contains(&w)
                || self.expand.contains_key(w)
                || self.expand.values().any(|v| v.iter().any(|x| x == w))
        };
        let raw: Vec<String> = raw
            .into_iter()
            .flat_map(|t| {
                if known(&t) || known(&singular(&t)) {
                    vec![t]
                } else {
                    segment(&t, &known).unwrap_or_else(|| vec![t])
                }
            })
            .collect();
        let mut out = Vec::new();
        for t in raw {
            let expanded = self
                .expand
                .get(&t)
                .cloned()
                .or_else(|| self.expand.get(&singular(&t)).cloned())
                .unwrap_or_else(|| vec![t.clone()]);
            for e in expanded {
                let e = singular(&e);
                if STOP.contains(&e.as_str()) {
                    continue;
                }
                let e = SYNONYMS
                    .iter()
                    .find(|(k, _)| *k == e)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or(e);
                out.push(e);
            }
        }
        out
    }
}

fn singular(t: &str) -> String {
    if t.len() > 4 && t.ends_with("ies") {
        format!("{}y", &t[..t.len() - 3])
    } else if t.len() > 3 && t.ends_with('s') && !t.ends_with("ss") && !t.ends_with("us") {
        t[..t.len() - 1].to_string()
    } else {
        t.to_string()
    }
}

/// Jaro-Winkler similarity of two strings.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut a_match = vec![false; a.len()];
    let mut b_match = vec![false; b.len()];
    let mut matches = 0usize;
    for i in 0..a.len() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !b_match[j] && a[i] == b[j] {
                a_match[i] = true;
                b_match[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let (mut k, mut transpositions) = (0usize, 0usize);
    for i in 0..a.len() {
        if a_match[i] {
            while !b_match[k] {
                k += 1;
            }
            if a[i] != b[k] {
                transpositions += 1;
            }
            k += 1;
        }
    }
    let m = matches as f64;
    let jaro =
        (m / a.len() as f64 + m / b.len() as f64 + (m - transpositions as f64 / 2.0) / m) / 3.0;
    let prefix = a.iter().zip(&b).take(4).take_while(|(x, y)| x == y).count() as f64;
    jaro + prefix * 0.1 * (1.0 - jaro)
}

/// Name similarity of two token lists in [0, 1].
pub fn name_similarity(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let sa: BTreeSet<&String> = a.iter().collect();
    let sb: BTreeSet<&String> = b.iter().collect();
    let common = sa.intersection(&sb).count() as f64;
    let dice = 2.0 * common / (sa.len() + sb.len()) as f64;
    let jw = jaro_winkler(&a.join(" "), &b.join(" "));
    (0.75 * dice + 0.25 * jw).min(1.0)
}

/// The type family of an Arrow type's display form.
fn family(arrow: &str) -> &'static str {
    match arrow {
        "Int8" | "Int16" | "Int32" | "Int64" | "UInt8" | "UInt16" | "UInt32" | "UInt64" => "int",
        "Float16" | "Float32" | "Float64" => "float",
        "Boolean" => "bool",
        "Date32" | "Date64" => "date",
        "Binary" | "LargeBinary" => "binary",
        t if t.starts_with("Decimal") => "decimal",
        t if t.starts_with("Timestamp") => "timestamp",
        _ => "text",
    }
}

/// How safely a source type becomes a target type, in [0, 1].
pub fn type_compatibility(source: &str, target: &str, source_has_date_format: bool) -> f64 {
    match (family(source), family(target)) {
        (a, b) if a == b => 1.0,
        ("int", "decimal") | ("int", "float") => 0.9,
        ("decimal", "float") | ("float", "decimal") => 0.8,
        ("date", "timestamp") => 0.8,
        ("timestamp", "date") => 0.5,
        ("bool", "int") | ("int", "bool") => 0.6,
        ("text", "date") | ("text", "timestamp") if source_has_date_format => 0.8,
        ("text", "date") | ("text", "timestamp") => 0.15,
        ("text", "int") | ("text", "decimal") | ("text", "float") => 0.2,
        (_, "text") => 0.5,
        _ => 0.0,
    }
}

/// Weights of the logistic combination.
#[derive(Debug, Clone, Copy)]
pub struct Weights {
    /// Intercept.
    pub bias: f64,
    /// Name similarity.
    pub name: f64,
    /// Type compatibility.
    pub types: f64,
    /// Value evidence (-1, 0 or 1).
    pub values: f64,
    /// Key agreement (0 or 1).
    pub keys: f64,
}

/// Weights chosen on the repository's labelled pairs (`sensei match-eval`).
pub const WEIGHTS: Weights = Weights {
    bias: -6.5,
    name: 9.0,
    types: 2.5,
    values: 1.8,
    keys: 0.8,
};

/// Everything known of one side's column.
#[derive(Debug, Clone, Default)]
pub struct ColumnFacts {
    /// Name.
    pub name: String,
    /// Arrow type (display form).
    pub arrow_type: String,
    /// Part of the primary key.
    pub key: bool,
    /// PII kinds detected (source side).
    pub pii: Vec<String>,
    /// A date format its text values follow (source side).
    pub date_format: Option<String>,
    /// Its most frequent value shapes (`AAA-9999`), when values are known.
    pub shapes: Vec<String>,
    /// Its most frequent values, when values are known.
    pub values: Vec<String>,
}

fn overlap(a: &[String], b: &[String]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let sa: BTreeSet<&String> = a.iter().collect();
    let sb: BTreeSet<&String> = b.iter().collect();
    Some(sa.intersection(&sb).count() as f64 / sa.len().min(sb.len()) as f64)
}

/// A scored pair with its reasons.
#[derive(Debug, Clone)]
pub struct Score {
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// The name signal alone.
    pub name: f64,
    /// Why.
    pub reasons: Vec<String>,
}

/// PII kinds and the target name tokens that agree with them.
const PII_TOKENS: &[(&str, &[&str])] = &[
    ("email", &["email"]),
    ("phone", &["phone", "fax"]),
    ("date_of_birth", &["birth"]),
    ("person_name", &["name", "first", "last"]),
    ("street_address", &["address", "street", "line"]),
    ("postal_code", &["postal", "code"]),
    ("credit_card", &["card", "pan"]),
    ("iban", &["iban", "account"]),
    ("ssn", &["ssn", "social", "security", "national"]),
    ("ip_address", &["ip", "address"]),
];

/// Scores a source column for a target column.
pub fn score(
    s_tokens: &[String],
    t_tokens: &[String],
    source: &ColumnFacts,
    target: &ColumnFacts,
    w: &Weights,
) -> Score {
    let name = name_similarity(s_tokens, t_tokens);
    let types = type_compatibility(
        &source.arrow_type,
        &target.arrow_type,
        source.date_format.is_some(),
    );
    let mut values = 0.0;
    let mut reasons = vec![format!(
        "name {:.2} ({} ~ {})",
        name,
        s_tokens.join(" "),
        t_tokens.join(" ")
    )];
    reasons.push(format!(
        "type {:.2} ({} -> {})",
        types, source.arrow_type, target.arrow_type
    ));
    for kind in &source.pii {
        if let Some((_, words)) = PII_TOKENS.iter().find(|(k, _)| k == kind) {
            if t_tokens.iter().any(|t| words.contains(&t.as_str())) {
                values = 1.0;
                reasons.push(format!("values are {kind}, as the target name says"));
            } else if PII_TOKENS
                .iter()
                .any(|(k, ws)| k != kind && t_tokens.iter().any(|t| ws.contains(&t.as_str())))
            {
                values = -1.0;
                reasons.push(format!("values are {kind}, the target name says otherwise"));
            }
        }
    }
    if let Some(fmt) = &source.date_format {
        if matches!(family(&target.arrow_type), "date" | "timestamp")
            && family(&source.arrow_type) == "text"
        {
            reasons.push(format!("text values follow the date format {fmt}"));
        }
    }
    // Values known on both sides (a populated target, an evaluation pair):
    // the shapes they take and the values they share.
    if let Some(shape) = overlap(&source.shapes, &target.shapes) {
        values += shape - 0.5;
        reasons.push(format!("value shapes agree {shape:.2}"));
    }
    if let Some(common) = overlap(&source.values, &target.values) {
        values += common;
        if common > 0.0 {
            reasons.push(format!("frequent values shared {common:.2}"));
        }
    }
    let keys = if source.key && target.key { 1.0 } else { 0.0 };
    if keys > 0.0 {
        reasons.push("both are primary-key columns".into());
    }
    let z = w.bias + w.name * name + w.types * types + w.values * values + w.keys * keys;
    Score {
        confidence: 1.0 / (1.0 + (-z).exp()),
        name,
        reasons,
    }
}

/// Maximum-weight assignment of rows to columns (Hungarian algorithm on the
/// negated matrix, rectangular allowed). Returns, per row, its column.
pub fn assign(scores: &[Vec<f64>]) -> Vec<Option<usize>> {
    let n = scores.len();
    let m = scores.first().map_or(0, Vec::len);
    if n == 0 || m == 0 {
        return vec![None; n];
    }
    let size = n.max(m);
    // Square cost matrix, 1-indexed as in the classic formulation.
    let cost = |i: usize, j: usize| -> f64 {
        if i <= n && j <= m {
            -scores[i - 1][j - 1]
        } else {
            0.0
        }
    };
    let inf = f64::INFINITY;
    let mut u = vec![0.0; size + 1];
    let mut v = vec![0.0; size + 1];
    let mut p = vec![0usize; size + 1];
    let mut way = vec![0usize; size + 1];
    for i in 1..=size {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![inf; size + 1];
        let mut used = vec![false; size + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0usize;
            for j in 1..=size {
                if !used[j] {
                    let cur = cost(i0, j) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=size {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; n];
    for (j, &i) in p.iter().enumerate().skip(1) {
        if i >= 1 && i <= n && j <= m {
            out[i - 1] = Some(j - 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_names_become_modern_tokens() {
        let d = Dictionary::default();
        assert_eq!(d.tokens("cust_dob"), ["customer", "date", "birth"]);
        assert_eq!(d.tokens("dateOfBirth"), ["date", "birth"]);
        assert_eq!(d.tokens("ORD_TS"), ["order", "time"]);
        assert_eq!(d.tokens("placed_at"), ["placed", "time"]);
        assert_eq!(d.tokens("qty_on_hand"), ["quantity", "on", "hand"]);
        assert_eq!(d.tokens("HTTPStatus2xx"), ["http", "status", "2", "xx"]);
        assert_eq!(d.tokens("HIREDATE"), ["hire", "date"]);
        assert_eq!(d.tokens("deptno"), ["department", "number"]);
        assert_eq!(d.tokens("discontinued"), ["discontinued"]);
        let extra = Dictionary::parse_extra("zz=zone code").unwrap();
        assert_eq!(
            Dictionary::with_extra(&extra).tokens("zz"),
            ["zone", "code"]
        );
    }

    #[test]
    fn hungarian_is_global_not_greedy() {
        // Greedy would give row 0 column 0 (0.9) and row 1 column 1 (0.1): 1.0.
        // The best total is row 0 -> 1 and row 1 -> 0: 0.8 + 0.85 = 1.65.
        let s = vec![vec![0.9, 0.8], vec![0.85, 0.1]];
        assert_eq!(assign(&s), [Some(1), Some(0)]);
        // Rectangular: three rows, two columns.
        let s = vec![vec![0.1, 0.9], vec![0.8, 0.2], vec![0.3, 0.3]];
        assert_eq!(assign(&s), [Some(1), Some(0), None]);
    }

    #[test]
    fn scores_are_ordered_sensibly() {
        let d = Dictionary::default();
        let facts = |n: &str, t: &str| ColumnFacts {
            name: n.into(),
            arrow_type: t.into(),
            ..Default::default()
        };
        let w = WEIGHTS;
        let exact = score(
            &d.tokens("date_birth"),
            &d.tokens("date_of_birth"),
            &facts("a", "Date32"),
            &facts("b", "Date32"),
            &w,
        );
        let weak = score(
            &d.tokens("note"),
            &d.tokens("date_of_birth"),
            &facts("a", "Utf8"),
            &facts("b", "Date32"),
            &w,
        );
        assert!(exact.confidence > 0.92, "{exact:?}");
        assert!(weak.confidence < 0.1, "{weak:?}");
        assert!((jaro_winkler("martha", "marhta") - 0.961).abs() < 0.001);
    }
}
