//! Fitting the matcher on the corpus's fitting part (`sensei match-eval
//! --fit`): the weights of its signals by logistic regression over every
//! candidate (source column, target column) of the labelled table pairs,
//! then the calibration that turns the best candidate's logit and its
//! margin over the runner-up into the probability that it is right. The
//! blind part is never read here.

use std::collections::BTreeMap;
use std::path::Path;

use crate::eval::{self, Split};
use crate::matcher::{self, Calibration, Dictionary, Weights};
use sensei_contracts::error::Result;

/// Weighted logistic regression by Newton's method with an L2 penalty
/// `l2` on every coefficient but the first (the intercept, whose column
/// must be all ones). Returns the coefficients.
pub fn logistic(x: &[Vec<f64>], y: &[bool], weight: &[f64], l2: f64) -> Vec<f64> {
    let k = x.first().map_or(0, Vec::len);
    let mut beta = vec![0.0; k];
    for _ in 0..100 {
        let mut grad = vec![0.0; k];
        let mut hess = vec![vec![0.0; k]; k];
        for ((xi, &yi), &wi) in x.iter().zip(y).zip(weight) {
            let z: f64 = xi.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let p = matcher::sigmoid(z);
            let r = wi * ((yi as u8 as f64) - p);
            let h = wi * p * (1.0 - p);
            for a in 0..k {
                grad[a] += r * xi[a];
                for b in 0..k {
                    hess[a][b] += h * xi[a] * xi[b];
                }
            }
        }
        for a in 1..k {
            grad[a] -= l2 * beta[a];
            hess[a][a] += l2;
        }
        let step = solve(hess, grad);
        let size: f64 = step.iter().map(|s| s.abs()).sum();
        for (b, s) in beta.iter_mut().zip(&step) {
            *b += s;
        }
        if size < 1e-9 {
            break;
        }
    }
    beta
}

/// Solves `a · x = b` by Gaussian elimination with partial pivoting
/// (a singular direction gets no step).
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        b.swap(col, pivot);
        if a[col][col].abs() < 1e-12 {
            continue;
        }
        let pivot_row = a[col].clone();
        for row in col + 1..n {
            let f = a[row][col] / pivot_row[col];
            for (x, p) in a[row].iter_mut().zip(&pivot_row).skip(col) {
                *x -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        if a[row][row].abs() < 1e-12 {
            continue;
        }
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x
}

/// One labelled table pair: per target column, every candidate's signals
/// and which candidates are true.
struct Matrix {
    features: Vec<Vec<[f64; 7]>>,
    truth: Vec<Vec<bool>>,
}

fn matrices(root: &Path, d: &Dictionary) -> Result<Vec<Matrix>> {
    let mut out = Vec::new();
    let mut cache = eval::TargetCache::default();
    for pair in eval::corpus(root)?
        .into_iter()
        .filter(|p| p.split == Split::Fit)
    {
        let (manifest, targets, truth) = eval::load(&pair, &mut cache)?;
        // Target table -> source tables its truth names.
        let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (t, ss) in &truth {
            let table = t.split('.').next().unwrap_or_default().to_string();
            for s in ss {
                let st = s.split('.').next().unwrap_or_default().to_string();
                let e = sources.entry(table.clone()).or_default();
                if !e.contains(&st) {
                    e.push(st);
                }
            }
        }
        for t in &targets {
            let Some(names) = sources.get(&t.name.to_lowercase()) else {
                continue;
            };
            for s in manifest
                .tables
                .iter()
                .filter(|s| names.contains(&s.name.to_lowercase()))
            {
                let facts = super::source_facts(s);
                let scores = super::score_matrix(d, &s.name, &facts, t);
                let mut m = Matrix {
                    features: Vec::new(),
                    truth: Vec::new(),
                };
                for (ti, row) in scores.iter().enumerate() {
                    let key = format!("{}.{}", t.name, t.columns[ti].name).to_lowercase();
                    let true_sources = truth.get(&key).cloned().unwrap_or_default();
                    m.features.push(row.iter().map(|sc| sc.features).collect());
                    m.truth.push(
                        facts
                            .iter()
                            .map(|f| {
                                true_sources
                                    .contains(&format!("{}.{}", s.name, f.name).to_lowercase())
                            })
                            .collect(),
                    );
                }
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// Calibration rows: for every target table of the fitting part, the
/// source table `sensei plan` chooses for it with the matcher as built, and
/// every candidate the one-to-one assignment picks there (below the
/// proposal threshold too, so the rows do not depend on it), as (1, logit,
/// margin, exact name, table names, name) and whether it is right; each pair
/// weighs the same.
#[allow(clippy::type_complexity)]
fn proposals(root: &Path, d: &Dictionary) -> Result<(Vec<Vec<f64>>, Vec<bool>, Vec<f64>)> {
    let (mut x, mut y, mut w) = (Vec::new(), Vec::new(), Vec::new());
    let mut cache = eval::TargetCache::default();
    for pair in eval::corpus(root)?
        .into_iter()
        .filter(|p| p.split == Split::Fit)
    {
        let (manifest, targets, truth) = eval::load(&pair, &mut cache)?;
        let spec = super::plan(
            "fit",
            &manifest,
            &targets,
            d,
            eval::AUTO_APPROVAL,
            &super::PiiPolicy::default(),
        )?;
        let start = x.len();
        for tm in &spec.tables {
            let (Some(t), [st]) = (
                targets.iter().find(|t| t.name == tm.target),
                tm.sources.as_slice(),
            ) else {
                continue;
            };
            let Some(s) = manifest.tables.iter().find(|m| &m.name == st) else {
                continue;
            };
            let facts = super::source_facts(s);
            let m = super::score_matrix(d, &s.name, &facts, t);
            let conf: Vec<Vec<f64>> = m
                .iter()
                .map(|r| r.iter().map(|c| c.confidence).collect())
                .collect();
            for (ti, sj) in matcher::assign(&conf).into_iter().enumerate() {
                let Some(sj) = sj else { continue };
                let score = &m[ti][sj];
                if !matcher::has_evidence(score) {
                    continue; // never proposed, whatever its confidence
                }
                let key = format!("{}.{}", t.name, t.columns[ti].name).to_lowercase();
                let source = format!("{}.{}", s.name, facts[sj].name).to_lowercase();
                let right = truth.get(&key).is_some_and(|ss| ss.contains(&source));
                x.push(vec![
                    1.0,
                    score.z,
                    score.margin,
                    matcher::exact(score),
                    score.table,
                    score.name,
                ]);
                y.push(right);
            }
        }
        let n = (x.len() - start).max(1) as f64;
        w.extend(std::iter::repeat_n(1.0 / n, x.len() - start));
    }
    Ok((x, y, w))
}

/// What fitting found.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// Signal weights.
    pub weights: Weights,
    /// Calibration of the chosen candidates.
    pub calibration: Calibration,
    /// Target columns with a true source the weights were fitted on.
    pub columns: usize,
    /// Candidates of those columns.
    pub candidates: usize,
    /// Proposals the calibration was fitted on.
    pub chosen: usize,
}

/// Fits weights, then calibration, on the fitting part of the corpus at
/// `root`. Weights: every candidate of every target column that has a true
/// source, its true candidates weighing 1 in all and its false ones 1 in
/// all (the question is which source column, not how many columns have
/// one). Calibration: the proposals `sensei plan` makes with the weights
/// and calibration as built ([`proposals`]); fitting again after pasting
/// the constants converges in a few rounds (the printed values stop
/// changing).
pub fn fit(root: &Path, d: &Dictionary) -> Result<Fitted> {
    let ms = matrices(root, d)?;
    let (mut x, mut y, mut w) = (Vec::new(), Vec::new(), Vec::new());
    let (mut columns, mut candidates) = (0, 0);
    for m in &ms {
        for (row, truth) in m.features.iter().zip(&m.truth) {
            let pos = truth.iter().filter(|t| **t).count();
            if pos == 0 || pos == truth.len() {
                continue;
            }
            columns += 1;
            candidates += truth.len();
            let neg = truth.len() - pos;
            for (f, &t) in row.iter().zip(truth) {
                x.push(f.to_vec());
                y.push(t);
                w.push(if t {
                    1.0 / pos as f64
                } else {
                    1.0 / neg as f64
                });
            }
        }
    }
    let beta = logistic(&x, &y, &w, 0.1);
    let mut weights = [0.0; 7];
    weights.copy_from_slice(&beta);
    // A signal the fitting part never shows (no pair has keys on both
    // sides, say) keeps its weight: no evidence is not evidence of none.
    for (k, weight) in weights.iter_mut().enumerate().skip(1) {
        if x.iter().all(|f| f[k] == 0.0) {
            *weight = matcher::WEIGHTS.0[k];
        }
    }
    let (x, y, w) = proposals(root, d)?;
    let chosen = x.len();
    let c = logistic(&x, &y, &w, 0.01);
    Ok(Fitted {
        weights: Weights(weights),
        calibration: Calibration {
            bias: c[0],
            scale: c[1],
            margin: c[2],
            exact: c[3],
            table: c[4],
            name: c[5],
        },
        columns,
        candidates,
        chosen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_regression_recovers_a_known_model() {
        // y = 1 exactly when 2x - 1 > 0 for a grid, with label noise near
        // the boundary: the fitted slope is positive and the boundary near 0.5.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let v = i as f64 / 199.0;
            x.push(vec![1.0, v]);
            y.push(if (v - 0.5).abs() < 0.05 {
                i % 2 == 0
            } else {
                v > 0.5
            });
        }
        let w = vec![1.0; x.len()];
        let b = logistic(&x, &y, &w, 0.0);
        assert!(b[1] > 10.0, "{b:?}");
        let boundary = -b[0] / b[1];
        assert!((boundary - 0.5).abs() < 0.03, "{boundary}");
    }
}
