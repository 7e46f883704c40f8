//! Semantic checks derived from the target schema.
//!
//! The Validator replays the approved mapping over the source and compares
//! its rows with the Workers': a mapping that is wrong but approved (the
//! e-mail column fed from a date column) replays just as wrong and would
//! pass. These checks look at what the target's names and types promise
//! instead, as Great Expectations rules added to each table's suite (marked
//! in `meta` with [`MARK`], reported in the certificate as a `semantic`
//! check of their own):
//!
//! | target column | rule |
//! | --- | --- |
//! | text named `*email*`/`*mail*` | values look like e-mail addresses (90 %) |
//! | text named `*postal*`/`*zip*`/`*postcode*` | values look like postal codes (90 %) |
//! | text named `is_*`/`has_*` | values are flag words (true/false, t/f, y/n, yes/no, 1/0) |
//! | text or date named `*birth*`/`dob` | the year lies between 1900 and 2099 (95 %) |
//! | number named like an amount, price, total, cost or quantity, fed from a source column whose profiled minimum is not negative | minimum not negative |
//!
//! A column the mapping rejects, hashes or drops (its values are no longer
//! what its name says) gets no rule. `verification.semantic_checks` says
//! whether a broken rule fails the certificate (`fail`, the default), only
//! warns (`warn`), or whether no rule is made (`off`).

use serde_json::{json, Value};

use crate::ddl::TargetTable;
use sensei_contracts::artifacts::{Manifest, TableMapping};

/// The `meta` key that marks an expectation as a semantic check; its value
/// says why the rule applies.
pub const MARK: &str = "sensei_semantic";

/// Lower-case words of a column name (`dateOfBirth`, `DATE_OF_BIRTH`, `dob`).
fn words(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if !ch.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        cur.extend(ch.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn rule(ty: &str, column: &str, kwargs: Value, why: String) -> Value {
    let mut kwargs = kwargs;
    kwargs["column"] = json!(column);
    json!({"type": ty, "kwargs": kwargs, "meta": {MARK: why}})
}

/// The semantic expectations of one target table.
pub fn expectations(
    target: &TargetTable,
    mapping: &TableMapping,
    manifest: &Manifest,
) -> Vec<Value> {
    let mut out = Vec::new();
    for tc in &target.columns {
        let Some(entry) = mapping.columns.iter().find(|c| c.target == tc.name) else {
            continue;
        };
        let expr = entry.expression.to_ascii_lowercase();
        let transformed_away = entry.status == "rejected"
            || entry.sources.is_empty()
            || expr.contains("sensei_hash")
            || expr.starts_with("arrow_cast(null");
        if transformed_away {
            continue;
        }
        let w = words(&tc.name);
        let has = |x: &str| w.iter().any(|y| y == x);
        let text = tc.arrow_type == "Utf8";
        let name = &tc.name;
        if text && (has("email") || has("mail")) {
            out.push(rule(
                "expect_column_values_to_match_regex",
                name,
                json!({"regex": r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "mostly": 0.9}),
                format!("{name} is named as an e-mail address"),
            ));
        }
        if text && (has("postal") || has("zip") || has("postcode")) {
            out.push(rule(
                "expect_column_values_to_match_regex",
                name,
                json!({"regex": r"^[A-Za-z0-9][A-Za-z0-9 -]{1,9}$", "mostly": 0.9}),
                format!("{name} is named as a postal code"),
            ));
        }
        if text && matches!(w.first().map(String::as_str), Some("is" | "has")) && w.len() > 1 {
            let flags: Vec<String> = ["true", "false", "t", "f", "y", "n", "yes", "no", "1", "0"]
                .iter()
                .flat_map(|f| [f.to_string(), f.to_uppercase(), capitalised(f)])
                .collect();
            out.push(rule(
                "expect_column_values_to_be_in_set",
                name,
                json!({"value_set": flags}),
                format!("{name} is named as a yes/no flag"),
            ));
        }
        let birth = has("birth") || has("dob") || has("birthday");
        if birth && (text || tc.arrow_type == "Date32" || tc.arrow_type.starts_with("Timestamp")) {
            out.push(rule(
                "expect_column_values_to_match_regex",
                name,
                json!({"regex": r"^(19|20)[0-9][0-9]-", "mostly": 0.95}),
                format!("{name} is named as a birth date: a year from 1900 to 2099"),
            ));
        }
        let amount = ["amount", "price", "total", "cost", "qty", "quantity"]
            .iter()
            .any(|x| has(x));
        let numeric = tc.arrow_type.starts_with("Decimal")
            || tc.arrow_type.starts_with("Int")
            || tc.arrow_type.starts_with("Float");
        if amount && numeric && source_never_negative(entry, manifest) {
            out.push(rule(
                "expect_column_min_to_be_between",
                name,
                json!({"min_value": 0}),
                format!(
                    "{name} is named as an amount and its source {} held no negative value when profiled",
                    entry.sources.join(", ")
                ),
            ));
        }
    }
    out
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Whether every source column of an entry was profiled with a minimum of
/// zero or more (and at least one was profiled).
fn source_never_negative(
    entry: &sensei_contracts::artifacts::ColumnMapping,
    manifest: &Manifest,
) -> bool {
    let mut seen = false;
    for s in &entry.sources {
        let Some((table, column)) = s.rsplit_once('.') else {
            return false;
        };
        let profile = manifest
            .tables
            .iter()
            .find(|t| t.name == table)
            .and_then(|t| t.profile.columns.iter().find(|c| c.column == column));
        match profile.and_then(|p| p.min.as_deref()?.parse::<f64>().ok()) {
            Some(min) if min >= 0.0 => seen = true,
            _ => return false,
        }
    }
    seen
}

/// Adds the semantic rules to a table's suite (or makes one).
pub fn merge(suite: Option<Value>, rules: Vec<Value>, table: &str) -> Option<Value> {
    if rules.is_empty() {
        return suite;
    }
    let mut suite =
        suite.unwrap_or_else(|| json!({"name": format!("{table}.semantic"), "expectations": []}));
    // Both suite layouts keep their entries under `expectations`; each entry
    // says its own type, so the two kinds can sit side by side.
    if !suite["expectations"].is_array() {
        suite["expectations"] = json!([]);
    }
    suite["expectations"].as_array_mut()?.extend(rules);
    Some(suite)
}

/// Splits a table's validation results into the user's and the semantic
/// ones; returns the semantic check for the certificate (None without any).
pub fn check(table: &str, results: &mut Vec<Value>, severity: &str) -> Option<Value> {
    let (semantic, user): (Vec<Value>, Vec<Value>) = std::mem::take(results)
        .into_iter()
        .partition(|x| !x["expectation_config"]["meta"][MARK].is_null());
    *results = user;
    if semantic.is_empty() {
        return None;
    }
    let broken: Vec<Value> = semantic
        .iter()
        .filter(|x| x["success"] != true)
        .map(|x| {
            json!({
                "column": x["expectation_config"]["kwargs"]["column"],
                "rule": x["expectation_config"]["type"],
                "why": x["expectation_config"]["meta"][MARK],
                // Counts only: the signed payload carries no floating-point numbers.
                "unexpected": x["result"]["unexpected_count"],
                "of": x["result"]["element_count"],
                "examples": x["result"]["partial_unexpected_list"],
            })
        })
        .collect();
    let result = match (broken.is_empty(), severity) {
        (true, _) => "pass",
        (false, "warn") => "warn",
        (false, _) => "fail",
    };
    Some(
        json!({"check": "semantic", "table": table, "rules": semantic.len(),
        "broken": broken, "result": result}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_every_naming_style() {
        assert_eq!(words("dateOfBirth"), ["date", "of", "birth"]);
        assert_eq!(words("CUST_EMAIL"), ["cust", "email"]);
        assert_eq!(words("is_active"), ["is", "active"]);
        assert_eq!(words("postal-code"), ["postal", "code"]);
    }

    #[test]
    fn semantic_results_are_split_from_the_users_and_judged_by_severity() {
        let mut results = vec![
            json!({"success": true, "expectation_config": {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}, "meta": {}}}),
            json!({"success": false, "expectation_config": {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "email"}, "meta": {MARK: "email is named as an e-mail address"}},
                   "result": {"unexpected_count": 3, "element_count": 3, "partial_unexpected_list": ["1980-01-02"]}}),
        ];
        let mut again = results.clone();
        let c = check("customer", &mut results, "fail").unwrap();
        assert_eq!(results.len(), 1, "the user's rule stays");
        assert_eq!(c["result"], "fail");
        assert_eq!(c["broken"][0]["column"], "email");
        assert_eq!(c["broken"][0]["examples"][0], "1980-01-02");
        assert_eq!(
            check("customer", &mut again, "warn").unwrap()["result"],
            "warn"
        );
    }
}
