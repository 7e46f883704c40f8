//! Schema-matching evaluation on pairs in the Valentine layout:
//! `<pair>_source.csv`, `<pair>_target.csv` and `<pair>_mapping.json`
//! (`{"matches": [{"source_table", "source_column", "target_table",
//! "target_column"}]}`).
//!
//! Each CSV is read as Sensei reads any CSV source (types inferred from every
//! value), profiled and scanned for PII as ingestion does, and matched as
//! `sensei plan` does. Reported per pair, as Valentine's metrics module does:
//! precision, recall and F1 of the one-to-one matches proposed (confidence at
//! least [`super::MIN_PROPOSAL`]), and recall at ground-truth size (of the
//! first |ground truth| pairs of Sensei's ranked answer, the share that are
//! true; the answer ranks the pairs its one-to-one assignment chose first,
//! by confidence, then every other pair by confidence).

use std::collections::BTreeSet;
use std::path::Path;

use crate::architect::ddl::{TargetColumn, TargetTable};
use crate::architect::matcher::Dictionary;
use crate::artifacts::ManifestTable;
use crate::error::{AgentError, Result};

/// One pair's figures.
#[derive(Debug, Clone)]
pub struct PairScore {
    /// Pair name.
    pub pair: String,
    /// Ground-truth matches.
    pub truth: usize,
    /// Precision of the proposed matches.
    pub precision: f64,
    /// Recall of the proposed matches.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Recall at ground-truth size.
    pub recall_at_gt: f64,
    /// Each proposed match: its confidence and whether it is true.
    pub proposals: Vec<(f64, bool)>,
}

fn read_table(
    path: &Path,
) -> Result<(
    sensei_connectors::table::TableInfo,
    sensei_connectors::source::Source,
)> {
    let url = format!("csv://{}", path.display());
    let mut src = sensei_connectors::source::Source::open(&url, None)?;
    let table = src.tables()?.remove(0);
    Ok((table, src))
}

/// Scores one pair.
pub fn evaluate_pair(dir: &Path, pair: &str, dictionary: &Dictionary) -> Result<PairScore> {
    let truth_doc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join(format!("{pair}_mapping.json"))).map_err(|e| {
            AgentError::Malformed {
                what: format!("{pair}_mapping.json"),
                message: e.to_string(),
            }
        })?,
    )?;
    let matches = truth_doc["matches"].as_array().cloned().unwrap_or_default();
    let field = |m: &serde_json::Value, k: &str| m[k].as_str().unwrap_or_default().to_string();
    let truth: BTreeSet<(String, String)> = matches
        .iter()
        .map(|m| (field(m, "source_column"), field(m, "target_column")))
        .collect();
    let s_name = matches
        .first()
        .map(|m| field(m, "source_table"))
        .unwrap_or_default();
    let t_name = matches
        .first()
        .map(|m| field(m, "target_table"))
        .unwrap_or_default();

    let (s_info, mut s_src) = read_table(&dir.join(format!("{pair}_source.csv")))?;
    let profile = crate::scout::profile_table(&mut s_src, &s_info, 10_000)?;
    let manifest_table = ManifestTable {
        name: s_name.clone(),
        columns: s_info.columns.clone(),
        primary_key: Vec::new(),
        rows: s_info.rows,
        partitions: Vec::new(),
        profile,
        file: None,
        rejected_rows: 0,
        quarantine: Vec::new(),
        changed_values: Default::default(),
    };
    let (t_info, mut t_src) = read_table(&dir.join(format!("{pair}_target.csv")))?;
    // The target's own rows: their shapes and frequent values are evidence too.
    let t_profile = sensei_scout::profile::profile(&t_src.sample(&t_info, 10_000)?);
    let target = TargetTable {
        name: t_name,
        columns: t_info
            .columns
            .iter()
            .map(|c| {
                let (sample_shapes, sample_values) =
                    super::value_evidence(t_profile.iter().find(|p| p.column == c.name));
                TargetColumn {
                    name: c.name.clone(),
                    sql_type: c.source_type.clone(),
                    arrow_type: c.arrow_type.clone(),
                    nullable: true,
                    default: None,
                    sample_shapes,
                    sample_values,
                }
            })
            .collect(),
        primary_key: Vec::new(),
        foreign_keys: Vec::new(),
    };
    let facts = super::source_facts(&manifest_table);
    let (_, chosen) = super::match_pair(dictionary, &s_name, &facts, &target);
    let scored: Vec<((String, String), f64)> = chosen
        .iter()
        .enumerate()
        .filter_map(|(ti, c)| {
            c.as_ref().map(|(sj, sc)| {
                (
                    (facts[*sj].name.clone(), target.columns[ti].name.clone()),
                    sc.confidence,
                )
            })
        })
        .collect();
    let proposed: BTreeSet<(String, String)> = scored.iter().map(|(p, _)| p.clone()).collect();
    let proposals = scored
        .iter()
        .map(|(p, c)| (*c, truth.contains(p)))
        .collect();
    let hits = proposed.intersection(&truth).count() as f64;
    let precision = if proposed.is_empty() {
        0.0
    } else {
        hits / proposed.len() as f64
    };
    let recall = if truth.is_empty() {
        0.0
    } else {
        hits / truth.len() as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    // Sensei's ranked answer: the pairs its one-to-one assignment chose, by
    // confidence, then every other column pair by confidence; the first
    // |truth| are kept.
    let matrix = super::score_matrix(dictionary, &s_name, &facts, &target);
    let mut ranked: Vec<(bool, f64, (String, String))> = Vec::new();
    for (ti, row) in matrix.iter().enumerate() {
        for (sj, sc) in row.iter().enumerate() {
            let pair = (facts[sj].name.clone(), target.columns[ti].name.clone());
            ranked.push((proposed.contains(&pair), sc.confidence, pair));
        }
    }
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| b.1.total_cmp(&a.1))
            .then_with(|| a.2.cmp(&b.2))
    });
    let top_hits = ranked
        .iter()
        .take(truth.len())
        .filter(|(_, _, pair)| truth.contains(pair))
        .count() as f64;
    Ok(PairScore {
        pair: pair.to_string(),
        truth: truth.len(),
        precision,
        recall,
        f1,
        recall_at_gt: if truth.is_empty() {
            0.0
        } else {
            top_hits / truth.len() as f64
        },
        proposals,
    })
}

/// Scores every pair of a folder, in name order.
pub fn evaluate_dir(dir: &Path, dictionary: &Dictionary) -> Result<Vec<PairScore>> {
    let mut pairs: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| AgentError::Malformed {
            what: dir.display().to_string(),
            message: e.to_string(),
        })?
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix("_mapping.json"))
                .map(str::to_string)
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|p| evaluate_pair(dir, p, dictionary))
        .collect()
}

/// The figures as a table, with the averages last.
pub fn render(scores: &[PairScore]) -> String {
    let mut out = format!(
        "{:<22} {:>5} {:>9} {:>6} {:>6} {:>9}\n",
        "pair", "truth", "precision", "recall", "f1", "recall@gt"
    );
    let n = scores.len().max(1) as f64;
    let mut sums = [0.0; 4];
    for s in scores {
        out.push_str(&format!(
            "{:<22} {:>5} {:>9.3} {:>6.3} {:>6.3} {:>9.3}\n",
            s.pair, s.truth, s.precision, s.recall, s.f1, s.recall_at_gt
        ));
        for (acc, v) in sums
            .iter_mut()
            .zip([s.precision, s.recall, s.f1, s.recall_at_gt])
        {
            *acc += v;
        }
    }
    out.push_str(&format!(
        "{:<22} {:>5} {:>9.3} {:>6.3} {:>6.3} {:>9.3}\n",
        "average",
        "",
        sums[0] / n,
        sums[1] / n,
        sums[2] / n,
        sums[3] / n
    ));
    out.push_str(&calibration(scores));
    out
}

/// How well confidence predicts correctness: proposals by confidence band,
/// their mean confidence against the share that are right, and the expected
/// calibration error (the bands' gaps weighted by their size).
pub fn calibration(scores: &[PairScore]) -> String {
    let all: Vec<(f64, bool)> = scores.iter().flat_map(|s| s.proposals.clone()).collect();
    let bands = [
        (0.0, 0.5),
        (0.5, 0.7),
        (0.7, 0.9),
        (0.9, 0.97),
        (0.97, 1.01),
    ];
    let mut out = String::from(
        "\ncalibration of proposed matches\nconfidence    count  mean conf  correct\n",
    );
    let mut ece = 0.0;
    for (lo, hi) in bands {
        let inb: Vec<&(f64, bool)> = all.iter().filter(|(c, _)| *c >= lo && *c < hi).collect();
        if inb.is_empty() {
            continue;
        }
        let n = inb.len() as f64;
        let mean = inb.iter().map(|(c, _)| c).sum::<f64>() / n;
        let acc = inb.iter().filter(|(_, ok)| *ok).count() as f64 / n;
        ece += n / all.len().max(1) as f64 * (mean - acc).abs();
        out.push_str(&format!(
            "[{lo:.2}, {:.2})  {:>5}  {mean:>9.3}  {acc:>7.3}\n",
            hi.min(1.0),
            inb.len()
        ));
    }
    out.push_str(&format!("expected calibration error {ece:.3}\n"));
    out
}
