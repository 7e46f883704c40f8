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
    pub fn parse_extra(spec: &str) -> crate::Result<Vec<(String, String)>> {
        spec.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|item| {
                item.split_once('=')
                    .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                    .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                    .ok_or_else(|| sensei_contracts::error::EngineError::Invalid {
                        what: "transformation.abbreviations".into(),
                        message: format!("{item:?} is not abbreviation=expansion"),
                    })
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

/// A light stem: verb and noun endings dropped (`hired` and `hire`,
/// `shipped`, `shipment` and `ship`, `created` and `create` agree).
fn stem(t: &str) -> &str {
    let mut s = t;
    for suffix in ["ing", "ion", "ment", "ed"] {
        if s.len() >= suffix.len() + 3 && s.ends_with(suffix) {
            s = &s[..s.len() - suffix.len()];
            break;
        }
    }
    if s.len() > 3 && s.ends_with('e') {
        s = &s[..s.len() - 1];
    }
    let b = s.as_bytes();
    if b.len() > 3 && b[b.len() - 1] == b[b.len() - 2] && !b"aeiou".contains(&b[b.len() - 1]) {
        s = &s[..s.len() - 1];
    }
    s
}

/// How well `short` abbreviates `long`: a prefix (`cust` of customer), or
/// its letters in order from the same first letter (a consonant skeleton:
/// `lst` of last, `flg` of flag, `amt` of amount), weighted by how much of
/// `long` it spells. Two-letter abbreviations count only without vowels
/// (`nm`, `dt`, not `on` or `is`).
fn abbreviates(short: &str, long: &str) -> Option<f64> {
    let (sl, ll) = (short.len(), long.len());
    if sl < 2 || sl >= ll || !short.is_ascii() || !long.is_ascii() {
        return None;
    }
    if short.as_bytes()[0] != long.as_bytes()[0] || short.bytes().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let ratio = sl as f64 / ll as f64;
    if sl >= 3 && long.starts_with(short) {
        return Some(0.75 + 0.2 * ratio);
    }
    if sl == 2 && short.bytes().any(|c| b"aeiou".contains(&c)) {
        return None;
    }
    let mut rest = long.bytes();
    short
        .bytes()
        .all(|c| rest.any(|l| l == c))
        .then_some(0.6 + 0.2 * ratio)
}

/// Similarity of two tokens in [0, 1]: equal, the same stem, one
/// abbreviating the other, or spelled nearly alike.
pub fn token_similarity(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    if stem(a) == stem(b) && a.len().min(b.len()) >= 3 {
        return 0.9;
    }
    if let Some(s) = abbreviates(a, b).or_else(|| abbreviates(b, a)) {
        return s;
    }
    // Tokens arrive with synonyms folded (`total` is `amount`): an
    // abbreviation of the word before folding counts too (`tot`).
    let unfolded = |folded: &str, short: &str| {
        SYNONYMS
            .iter()
            .filter(|(_, v)| *v == folded)
            .filter_map(|(k, _)| abbreviates(short, k))
            .fold(None, |acc: Option<f64>, x| {
                Some(acc.map_or(x, |a| a.max(x)))
            })
    };
    if let Some(s) = unfolded(b, a).or_else(|| unfolded(a, b)) {
        return 0.95 * s;
    }
    if a.len().min(b.len()) >= 5 {
        let jw = jaro_winkler(a, b);
        if jw >= 0.9 {
            return 0.7 * jw;
        }
    }
    0.0
}

/// Soft Dice coefficient of two token lists: tokens paired one to one,
/// best pairs first, each pair counting its [`token_similarity`].
fn soft_dice(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut used_a, mut used_b) = (vec![false; a.len()], vec![false; b.len()]);
    let mut sum = 0.0;
    // Acronyms first: a short token spelling the initials of a run of the
    // other side's tokens (`ln` of last name, `dob` of date of birth)
    // stands for the whole run.
    let mut extra = 0usize;
    for a_short in [true, false] {
        let (short, long) = if a_short { (a, b) } else { (b, a) };
        for (i, x) in short.iter().enumerate() {
            let k = x.len();
            let used_i = if a_short { used_a[i] } else { used_b[i] };
            if !(2..=4).contains(&k) || used_i || !x.bytes().all(|c| c.is_ascii_lowercase()) {
                continue;
            }
            if long.iter().any(|y| y == x) {
                continue;
            }
            let used_l = if a_short { &mut used_b } else { &mut used_a };
            let Some(j) = (0..long.len().saturating_sub(k - 1)).find(|&j| {
                let initials: String = long[j..j + k]
                    .iter()
                    .filter_map(|t| t.chars().next())
                    .collect();
                initials == *x && used_l[j..j + k].iter().all(|u| !u)
            }) else {
                continue;
            };
            for u in &mut used_l[j..j + k] {
                *u = true;
            }
            if a_short {
                used_a[i] = true;
            } else {
                used_b[i] = true;
            }
            sum += 0.9 * k as f64;
            extra += k - 1;
        }
    }
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            if used_a[i] || used_b[j] {
                continue;
            }
            let s = token_similarity(x, y);
            if s > 0.0 {
                pairs.push((s, i, j));
            }
        }
    }
    pairs.sort_by(|p, q| q.0.total_cmp(&p.0).then((p.1, p.2).cmp(&(q.1, q.2))));
    for (s, i, j) in pairs {
        if !used_a[i] && !used_b[j] {
            used_a[i] = true;
            used_b[j] = true;
            sum += s;
        }
    }
    (2.0 * sum / (a.len() + b.len() + extra) as f64).min(1.0)
}

/// Name similarity of two token lists in [0, 1].
pub fn name_similarity(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let jw = jaro_winkler(&a.join(" "), &b.join(" "));
    (0.75 * soft_dice(a, b) + 0.25 * jw).min(1.0)
}

/// What kind of value a column holds, as its name's suffix (or a leading
/// `is_`/`has_`) or else its type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Identifiers and numbers of things (`_id`, `_no`, `_key`).
    Id,
    /// Dates and times (`_date`, `_dt`, `_at`, `_on`, `_ts`).
    Date,
    /// Booleans and flags (`is_`, `_flag`, `_flg`, `_yn`).
    Flag,
    /// Money (`_amount`, `_price`, `_balance`).
    Amount,
    /// Names and descriptions.
    Name,
    /// Codes and categories (`_code`, `_type`, `_status`).
    Code,
    /// Counts and quantities.
    Count,
}

const FAMILY_TOKENS: &[(&str, Family)] = &[
    ("id", Family::Id),
    ("number", Family::Id),
    ("uuid", Family::Id),
    ("guid", Family::Id),
    ("date", Family::Date),
    ("time", Family::Date),
    ("on", Family::Date),
    ("flag", Family::Flag),
    ("flg", Family::Flag),
    ("indicator", Family::Flag),
    ("ind", Family::Flag),
    ("yn", Family::Flag),
    ("amount", Family::Amount),
    ("price", Family::Amount),
    ("balance", Family::Amount),
    ("salary", Family::Amount),
    ("fee", Family::Amount),
    ("name", Family::Name),
    ("description", Family::Name),
    ("title", Family::Name),
    ("label", Family::Name),
    ("code", Family::Code),
    ("type", Family::Code),
    ("status", Family::Code),
    ("category", Family::Code),
    ("class", Family::Code),
    ("quantity", Family::Count),
    ("count", Family::Count),
];

fn family_token(t: &str) -> Option<Family> {
    FAMILY_TOKENS.iter().find(|(k, _)| *k == t).map(|(_, f)| *f)
}

/// A column's family from its tokens, then its type.
pub fn family_of(tokens: &[String], arrow_type: &str) -> Option<Family> {
    if let Some(f) = tokens.last().and_then(|t| family_token(t)) {
        return Some(f);
    }
    if tokens.first().is_some_and(|t| t == "is" || t == "has") {
        return Some(Family::Flag);
    }
    match family(arrow_type) {
        "bool" => Some(Family::Flag),
        "date" | "timestamp" => Some(Family::Date),
        _ => None,
    }
}

/// The tokens that say what a column is about, its family's words left out
/// (`hire` of `hire_dt`, `active` of `is_active`).
fn head_tokens(tokens: &[String]) -> Vec<String> {
    let n = tokens.len();
    tokens
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            !((*i == n - 1 && family_token(t).is_some())
                || (*i == 0 && n > 1 && (*t == "is" || *t == "has")))
        })
        .map(|(_, t)| t.clone())
        .collect()
}

/// Whether a text column's frequent values are those of a flag (Y/N, T/F,
/// yes/no, true/false, 1/0).
pub fn boolean_like(values: &[String]) -> bool {
    const WORDS: &[&str] = &["y", "n", "t", "f", "yes", "no", "true", "false", "0", "1"];
    !values.is_empty()
        && values.len() <= 3
        && values
            .iter()
            .all(|v| WORDS.contains(&v.trim().to_ascii_lowercase().as_str()))
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

/// The signals of a (source column, target column) pair, in the order of
/// [`Weights::0`]: bias, name, head, family, type, values, keys.
pub const FEATURES: [&str; 7] = ["bias", "name", "head", "family", "type", "values", "keys"];

/// Weights of the logistic combination, one per [`FEATURES`] entry.
#[derive(Debug, Clone, Copy)]
pub struct Weights(pub [f64; 7]);

/// Weights fitted on the corpus's fitting part (`sensei match-eval --fit`).
pub const WEIGHTS: Weights = Weights([-2.333, 2.4, 5.462, 1.116, 0.412, 2.294, 0.8]);

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
    /// The signals, in [`FEATURES`] order.
    pub features: [f64; 7],
    /// The logit the weights give them.
    pub z: f64,
    /// How far `z` stands above the best other candidate of the column.
    pub margin: f64,
    /// How alike the two tables' names are (set with the score matrix).
    pub table: f64,
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

/// The tokens of a column's name: without its table's own words
/// (`email` of `cust_email` in `customers`) and with them all.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    /// Without the table's words (all of them when nothing would be left).
    pub own: &'a [String],
    /// Every word.
    pub all: &'a [String],
}

/// Scores a source column for a target column: the names compared with
/// their tables' words left out and with them kept, the better counting
/// (`order_id` in `order_item` is about the order, `cust_email` in
/// `customers` about the e-mail).
pub fn score_names(
    s: Names<'_>,
    t: Names<'_>,
    source: &ColumnFacts,
    target: &ColumnFacts,
    w: &Weights,
) -> Score {
    if s.own.len() == s.all.len() && t.own.len() == t.all.len() {
        return score(s.own, t.own, source, target, w);
    }
    let (all, own) = (name_similarity(s.all, t.all), name_similarity(s.own, t.own));
    if all > own {
        score_with(s.all, t.all, all, source, target, w)
    } else {
        score_with(s.own, t.own, own, source, target, w)
    }
}

/// Scores a source column for a target column.
pub fn score(
    s_tokens: &[String],
    t_tokens: &[String],
    source: &ColumnFacts,
    target: &ColumnFacts,
    w: &Weights,
) -> Score {
    let name = name_similarity(s_tokens, t_tokens);
    score_with(s_tokens, t_tokens, name, source, target, w)
}

/// [`score`] with the name similarity of the tokens already known.
fn score_with(
    s_tokens: &[String],
    t_tokens: &[String],
    name: f64,
    source: &ColumnFacts,
    target: &ColumnFacts,
    w: &Weights,
) -> Score {
    let (s_head, t_head) = (head_tokens(s_tokens), head_tokens(t_tokens));
    // Without head words on one side (`date` of `procedure_date` in
    // `procedure`), the whole name says what there is to say.
    let head = if s_head.is_empty() || t_head.is_empty() {
        name
    } else if s_head.len() < s_tokens.len() || t_head.len() < t_tokens.len() {
        name_similarity(&s_head, &t_head)
    } else {
        name
    };
    let flag_text = family(&source.arrow_type) == "text" && boolean_like(&source.values);
    let s_family = if flag_text {
        Some(Family::Flag)
    } else {
        family_of(s_tokens, &source.arrow_type)
    };
    let t_family = family_of(t_tokens, &target.arrow_type);
    let fam = match (s_family, t_family) {
        (Some(a), Some(b)) if a == b => 1.0,
        (Some(Family::Id), Some(Family::Code)) | (Some(Family::Code), Some(Family::Id)) => 0.0,
        (Some(_), Some(_)) => -1.0,
        _ => 0.0,
    };
    let types = if flag_text && family(&target.arrow_type) == "bool" {
        0.9
    } else {
        type_compatibility(
            &source.arrow_type,
            &target.arrow_type,
            source.date_format.is_some(),
        )
    };
    let mut values = 0.0;
    let mut reasons = vec![format!(
        "name {:.2} ({} ~ {})",
        name,
        s_tokens.join(" "),
        t_tokens.join(" ")
    )];
    if let (Some(a), true) = (s_family, fam > 0.0) {
        reasons.push(format!("both are {a:?} columns").to_lowercase());
    }
    reasons.push(format!(
        "type {:.2} ({} -> {})",
        types, source.arrow_type, target.arrow_type
    ));
    if flag_text {
        reasons.push(format!(
            "text values are a flag ({})",
            source.values.join("/")
        ));
    }
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
    let features = [1.0, name, head, fam, types, values, keys];
    let z: f64 = features.iter().zip(&w.0).map(|(f, w)| f * w).sum();
    Score {
        confidence: sigmoid(z),
        z,
        margin: 0.0,
        table: 0.0,
        name,
        features,
        reasons,
    }
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// How a candidate's score becomes the probability that it is right:
/// σ(scale·z + margin·m + exact·e + table·t + name·n + bias), where z is its logit,
/// m how far it stands above the best other candidate for the same target
/// column (clamped to ±[`MARGIN_CAP`]), e is 1 when both names are the same
/// once normalised and t how alike the tables' names are (a generic `id`
/// or `name` in the wrong table is the commonest confident mistake) and n
/// the name signal (a weak name in the right table is still weak).
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    /// Weight of the candidate's logit.
    pub scale: f64,
    /// Weight of its margin over the runner-up.
    pub margin: f64,
    /// Weight of the names being equal once normalised.
    pub exact: f64,
    /// Weight of the similarity of the two tables' names.
    pub table: f64,
    /// Weight of the name signal itself.
    pub name: f64,
    /// Intercept.
    pub bias: f64,
}

/// Margins beyond this are all alike.
pub const MARGIN_CAP: f64 = 8.0;

/// Fitted on the corpus's fitting part (`sensei match-eval --fit`).
pub const CALIBRATION: Calibration = Calibration {
    scale: 0.601,
    margin: 0.271,
    exact: -1.103,
    table: 3.622,
    name: -3.070,
    bias: -1.955,
};

/// Each candidate's margin over the best other candidate of its row.
pub fn margins(zs: &[f64]) -> Vec<f64> {
    // The best and second-best logits: each candidate's best other is the
    // best, or the second best for the best itself.
    let (mut best, mut second, mut at) = (f64::NEG_INFINITY, f64::NEG_INFINITY, usize::MAX);
    for (j, &z) in zs.iter().enumerate() {
        if z > best {
            (second, best, at) = (best, z, j);
        } else if z > second {
            second = z;
        }
    }
    zs.iter()
        .enumerate()
        .map(|(j, z)| {
            let other = if j == at { second } else { best };
            (z - other).clamp(-MARGIN_CAP, MARGIN_CAP)
        })
        .collect()
}

/// A candidate's calibrated probability, its margin and table set.
pub fn calibrated(s: &Score, c: &Calibration) -> f64 {
    sigmoid(
        c.scale * s.z
            + c.margin * s.margin
            + c.exact * exact(s)
            + c.table * s.table
            + c.name * s.name
            + c.bias,
    )
}

/// Whether a candidate has any evidence of its own: a name that is at
/// least partly alike, a family both names agree on, or values that agree.
/// Without any, the plan proposes nothing however the two tables compare
/// (`loyalty_tier` has no source in a customer table that lacks one).
pub fn has_evidence(s: &Score) -> bool {
    s.name >= 0.3 || s.features[3] > 0.0 || s.features[5] > 0.0
}

/// 1 when both names are the same once normalised (name signal 1), else 0.
pub fn exact(s: &Score) -> f64 {
    if s.name >= 0.999 {
        1.0
    } else {
        0.0
    }
}

/// Sets every candidate's confidence of one target column (a row of the
/// score matrix) to its calibrated probability.
pub fn calibrate(row: &mut [Score], c: &Calibration) {
    let zs: Vec<f64> = row.iter().map(|s| s.z).collect();
    for (s, m) in row.iter_mut().zip(margins(&zs)) {
        s.margin = m;
        s.confidence = calibrated(s, c);
    }
}

/// Maximum-weight assignment of rows to columns (Hungarian algorithm on the
/// negated matrix, rectangular allowed). Returns, per row, its column.
/// Runs in O(k²·l) for k = the smaller side and l = the larger (the
/// smaller side is the one assigned), so a 736-column target against a
/// 50-column source costs 50²·736, not 736³.
pub fn assign(scores: &[Vec<f64>]) -> Vec<Option<usize>> {
    let n = scores.len();
    let m = scores.first().map_or(0, Vec::len);
    if n == 0 || m == 0 {
        return vec![None; n];
    }
    if n > m {
        // Assign the columns to rows instead, then read it back per row.
        let t: Vec<Vec<f64>> = (0..m)
            .map(|j| (0..n).map(|i| scores[i][j]).collect())
            .collect();
        let mut out = vec![None; n];
        for (j, i) in assign(&t).into_iter().enumerate() {
            if let Some(i) = i {
                out[i] = Some(j);
            }
        }
        return out;
    }
    // n <= m: every row gets a column. Potentials u (rows), v (columns),
    // p[j] the row holding column j, 1-indexed as in the classic form.
    let cost = |i: usize, j: usize| -scores[i - 1][j - 1];
    let inf = f64::INFINITY;
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![inf; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0usize;
            for j in 1..=m {
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
            for j in 0..=m {
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
        if i >= 1 {
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
    fn abbreviations_are_inferred_not_looked_up() {
        // Consonant skeletons, prefixes and verb forms, none in the dictionary.
        assert!(token_similarity("lst", "last") > 0.7);
        assert!(token_similarity("flg", "flag") > 0.7);
        assert!(token_similarity("shpd", "shipped") > 0.6);
        assert!(token_similarity("hired", "hire") >= 0.9);
        assert!(token_similarity("shipment", "ship") >= 0.9);
        assert!(token_similarity("warr", "warranty") > 0.75);
        // Vowel-bearing two-letter words are not abbreviations of anything.
        assert_eq!(token_similarity("on", "order"), 0.0);
        assert_eq!(token_similarity("is", "issue"), 0.0);
        assert_eq!(token_similarity("city", "country"), 0.0);
        let d = Dictionary::default();
        let sim = |a: &str, b: &str| name_similarity(&d.tokens(a), &d.tokens(b));
        assert!(sim("cust_lst_nm", "last_name") > sim("cust_frst_nm", "last_name"));
    }

    #[test]
    fn suffix_families_come_from_names_or_types() {
        let d = Dictionary::default();
        let fam = |n: &str, t: &str| family_of(&d.tokens(n), t);
        assert_eq!(fam("ORDER_NO", "Utf8"), Some(Family::Id));
        assert_eq!(fam("order_id", "Int64"), Some(Family::Id));
        assert_eq!(fam("shipped_on", "Date32"), Some(Family::Date));
        assert_eq!(fam("SHIP_DT", "Utf8"), Some(Family::Date));
        assert_eq!(fam("is_active", "Boolean"), Some(Family::Flag));
        assert_eq!(fam("ACTV_FLG", "Utf8"), Some(Family::Flag));
        assert_eq!(fam("whatever", "Date32"), Some(Family::Date));
        assert_eq!(fam("qty_on_hand", "Int64"), None);
        assert!(boolean_like(&["Y".into(), "N".into()]));
        assert!(!boolean_like(&["Y".into(), "N".into(), "maybe".into()]));
        // A flag column for an is_ target: the head words and the family agree.
        let facts = |n: &str, t: &str, values: &[&str]| ColumnFacts {
            name: n.into(),
            arrow_type: t.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        };
        let s = score(
            &d.tokens("ACTV_FLG"),
            &d.tokens("is_active"),
            &facts("ACTV_FLG", "Utf8", &["Y", "N"]),
            &facts("is_active", "Boolean", &[]),
            &WEIGHTS,
        );
        assert_eq!(s.features[3], 1.0, "{s:?}");
        assert!(s.features[2] > 0.7, "{s:?}");
    }

    #[test]
    fn margins_are_against_the_best_other_candidate() {
        assert_eq!(margins(&[1.0, 3.0, 2.0]), [-2.0, 1.0, -1.0]);
        assert_eq!(margins(&[2.0, 2.0]), [0.0, 0.0]);
        assert_eq!(margins(&[0.0, 20.0]), [-MARGIN_CAP, MARGIN_CAP]);
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
        // Against brute force on small rectangles of both shapes.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as f64 / (1u64 << 31) as f64
        };
        fn best(s: &[Vec<f64>], i: usize, used: &mut Vec<bool>) -> f64 {
            if i == s.len() {
                return 0.0;
            }
            let mut b = best(s, i + 1, used); // row i unassigned
            for j in 0..used.len() {
                if !used[j] {
                    used[j] = true;
                    b = b.max(s[i][j] + best(s, i + 1, used));
                    used[j] = false;
                }
            }
            b
        }
        for (n, m) in [(3, 5), (5, 3), (4, 4), (6, 2), (2, 6)] {
            let s: Vec<Vec<f64>> = (0..n).map(|_| (0..m).map(|_| next()).collect()).collect();
            let got: f64 = assign(&s)
                .iter()
                .enumerate()
                .filter_map(|(i, j)| j.map(|j| s[i][j]))
                .sum();
            let want = best(&s, 0, &mut vec![false; m]);
            assert!((got - want).abs() < 1e-9, "{n}x{m}: {got} vs {want}");
        }
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
        assert!(exact.z - weak.z > 5.0, "{exact:?} {weak:?}");
        // Calibrated as candidates for the same target column: the exact
        // one stands far above the runner-up, the weak one far below.
        let mut row = vec![exact, weak];
        for s in &mut row {
            s.table = 1.0; // the same table on both sides
        }
        calibrate(&mut row, &CALIBRATION);
        assert!(row[0].confidence > 0.8, "{:?}", row[0]);
        assert!(
            row[1].confidence < crate::MIN_PROPOSAL,
            "never proposed: {:?}",
            row[1]
        );
        assert!((jaro_winkler("martha", "marhta") - 0.961).abs() < 0.001);
    }
}
