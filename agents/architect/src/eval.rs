//! Schema-matching evaluation on a labelled corpus (`agents/testdata/matching`,
//! described in its README): each pair is a folder with its source
//! (`source/<table>.csv`, `source.sql`, or its group's `source.sql`), its
//! target (`target/<table>.csv`, `target.sql`, or its group's `target/`) and `truth.csv`
//! (`source_table,source_column,target_table,target_column`). `splits.csv`
//! puts every pair in the fitting part or the blind part.
//!
//! Each pair is planned exactly as `sensei plan` plans a migration: CSV
//! sources read as any CSV source (types inferred from every value),
//! profiled and scanned for PII as ingestion does; DDL sources with their
//! declared types, keys and foreign keys and no values; targets with values
//! when they hold rows. Every target column's entry is then judged against
//! the truth: right when its source columns are all true sources of that
//! column, or when the column has no true source and the entry proposes
//! none.
//!
//! Reported per pair and per split: the share of target columns with a true
//! source that got one (accuracy), the precision of the proposals, recall
//! at ground-truth size as Valentine computes it (single-table pairs with
//! rows on both sides), and how well confidence predicts correctness (a
//! reliability table, the expected calibration error, the share right of
//! the proposals at or above the auto-approval threshold).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::ddl::{TargetColumn, TargetTable};
use crate::matcher::Dictionary;
use sensei_contracts::artifacts::{Manifest, ManifestTable};
use sensei_contracts::error::{EngineError, Result};

/// The default auto-approval threshold, at which the figures are read.
pub const AUTO_APPROVAL: f64 = 0.92;

/// Which part of the corpus a pair belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Split {
    /// Used to choose and fit the matcher.
    Fit,
    /// Never looked at while choosing or fitting; reported only.
    Blind,
}

impl Split {
    fn as_str(self) -> &'static str {
        match self {
            Split::Fit => "fit",
            Split::Blind => "blind",
        }
    }
}

/// One labelled pair of the corpus.
#[derive(Debug, Clone)]
pub struct Pair {
    /// `group/pair`.
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
    /// Its part.
    pub split: Split,
}

/// A corpus file that cannot be used (the user may give their own).
fn malformed(what: impl std::fmt::Display, message: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid {
        what: what.to_string(),
        message: message.to_string(),
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| malformed(path.display(), e))
}

/// The pairs listed in `root/splits.csv` (`pair,split`), in file order. A
/// pair folder that is not listed, or a listed pair without a folder, is an
/// error: no pair is left out of the figures by accident.
pub fn corpus(root: &Path) -> Result<Vec<Pair>> {
    let path = root.join("splits.csv");
    let text = read(&path)?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let (name, split) = line
            .split_once(',')
            .ok_or_else(|| malformed(format!("{}:{}", path.display(), i + 1), "not pair,split"))?;
        let split = match split.trim() {
            "fit" => Split::Fit,
            "blind" => Split::Blind,
            other => {
                return Err(malformed(
                    format!("{}:{}", path.display(), i + 1),
                    format!("split {other:?} is not fit or blind"),
                ))
            }
        };
        let dir = root.join(name.trim());
        if !dir.join("truth.csv").is_file() {
            return Err(malformed(
                format!("{}:{}", path.display(), i + 1),
                format!("{} has no truth.csv", dir.display()),
            ));
        }
        pairs.push(Pair {
            name: name.trim().to_string(),
            dir,
            split,
        });
    }
    let listed: BTreeSet<PathBuf> = pairs.iter().map(|p| p.dir.clone()).collect();
    for group in std::fs::read_dir(root).map_err(|e| malformed(root.display(), e))? {
        let group = group.map_err(|e| malformed(root.display(), e))?.path();
        if !group.is_dir() {
            continue;
        }
        for pair in std::fs::read_dir(&group).map_err(|e| malformed(group.display(), e))? {
            let pair = pair.map_err(|e| malformed(group.display(), e))?.path();
            if pair.join("truth.csv").is_file() && !listed.contains(&pair) {
                return Err(malformed(
                    path.display(),
                    format!("{} is not listed", pair.display()),
                ));
            }
        }
    }
    Ok(pairs)
}

/// One target column's entry, judged.
#[derive(Debug, Clone)]
pub struct Judged {
    /// `table.column` of the target.
    pub target: String,
    /// The source columns the plan reads for it (`table.column`).
    pub proposed: Vec<String>,
    /// The plan's confidence.
    pub confidence: f64,
    /// The true source columns.
    pub truth: Vec<String>,
    /// Whether the entry is right.
    pub right: bool,
}

/// One pair's figures.
#[derive(Debug, Clone)]
pub struct PairScore {
    /// `group/pair`.
    pub pair: String,
    /// Its part.
    pub split: Split,
    /// The target is DDL only (no rows to compare).
    pub ddl_target: bool,
    /// Every target column's entry.
    pub entries: Vec<Judged>,
    /// Recall at ground-truth size (single-table pairs with rows on both sides).
    pub recall_at_gt: Option<f64>,
}

impl PairScore {
    /// Target columns with a true source, and how many got one.
    pub fn accuracy(&self) -> (usize, usize) {
        let with: Vec<&Judged> = self
            .entries
            .iter()
            .filter(|e| !e.truth.is_empty())
            .collect();
        (with.len(), with.iter().filter(|e| e.right).count())
    }

    /// Proposals (entries with a source) and how many are right.
    pub fn precision(&self) -> (usize, usize) {
        let p: Vec<&Judged> = self
            .entries
            .iter()
            .filter(|e| !e.proposed.is_empty())
            .collect();
        (p.len(), p.iter().filter(|e| e.right).count())
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn csv_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| malformed(dir.display(), e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    Ok(files)
}

fn open_csv(
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

/// A CSV table as a target with its rows' value evidence.
fn target_from_csv(path: &Path) -> Result<TargetTable> {
    let (info, mut src) = open_csv(path)?;
    let profile = sensei_scout::profile::profile(&src.sample(&info, 10_000)?);
    Ok(TargetTable {
        name: info.name.clone(),
        columns: info
            .columns
            .iter()
            .map(|c| {
                let (sample_shapes, sample_values) =
                    super::value_evidence(profile.iter().find(|p| p.column == c.name));
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
    })
}

fn ddl_tables(path: &Path) -> Result<Vec<TargetTable>> {
    Ok(super::ddl::read_schema(&read(path)?, &path.display().to_string())?.tables)
}

/// Targets of a pair, read once per file (a group's shared target is read
/// for its first pair only).
#[derive(Default)]
pub struct TargetCache {
    read: BTreeMap<PathBuf, (Vec<TargetTable>, bool)>,
}

impl TargetCache {
    /// Whether the pair's target is DDL only.
    fn ddl(&self, pair: &Path) -> bool {
        pair.join("target.sql").is_file()
    }

    fn targets(&mut self, pair: &Path) -> Result<(Vec<TargetTable>, bool)> {
        let (path, ddl) = if pair.join("target.sql").is_file() {
            (pair.join("target.sql"), true)
        } else if pair.join("target").is_dir() {
            (pair.join("target"), false)
        } else {
            let group = pair.parent().unwrap_or(pair).join("target");
            if !group.is_dir() {
                return Err(malformed(
                    pair.display(),
                    "no target.sql, target/ or group target/",
                ));
            }
            (group, false)
        };
        if let Some(hit) = self.read.get(&path) {
            return Ok(hit.clone());
        }
        let tables = if ddl {
            ddl_tables(&path)?
        } else {
            csv_files(&path)?
                .iter()
                .map(|p| target_from_csv(p))
                .collect::<Result<Vec<_>>>()?
        };
        self.read.insert(path, (tables.clone(), ddl));
        Ok((tables, ddl))
    }
}

/// The pair's source as a manifest: CSV tables profiled, DDL tables with
/// their keys and foreign keys.
fn source_manifest(pair: &Path) -> Result<Manifest> {
    let mut tables = Vec::new();
    let mut catalog = sensei_connectors::catalog::Catalog::default();
    // The pair's own source, else its group's (one DDL shared by pairs).
    let group_sql = pair.parent().unwrap_or(pair).join("source.sql");
    let ddl = if pair.join("source.sql").is_file() {
        Some(pair.join("source.sql"))
    } else if !pair.join("source").is_dir() && group_sql.is_file() {
        Some(group_sql)
    } else {
        None
    };
    if let Some(ddl) = ddl {
        for t in ddl_tables(&ddl)? {
            let columns = t
                .columns
                .iter()
                .map(|c| sensei_connectors::table::ColumnInfo {
                    name: c.name.clone(),
                    source_type: c.sql_type.clone(),
                    arrow_type: c.arrow_type.clone(),
                    nullable: c.nullable,
                    primary_key: t
                        .primary_key
                        .iter()
                        .position(|k| k == &c.name)
                        .map_or(0, |i| i as u32 + 1),
                })
                .collect();
            let entry = catalog.tables.entry(t.name.clone()).or_default();
            for (i, (cols, references, referenced)) in t.foreign_keys.iter().enumerate() {
                entry
                    .foreign_keys
                    .push(sensei_connectors::catalog::ForeignKey {
                        name: format!("fk_{i}"),
                        columns: cols.clone(),
                        references: references.clone(),
                        referenced_columns: referenced.clone(),
                        on_delete: String::new(),
                        on_update: String::new(),
                    });
            }
            tables.push(ManifestTable {
                name: t.name.clone(),
                columns,
                primary_key: t.primary_key.clone(),
                rows: 0,
                partitions: Vec::new(),
                profile: Default::default(),
                file: None,
                rejected_rows: 0,
                quarantine: Vec::new(),
                changed_values: Default::default(),
            });
        }
    } else {
        for path in csv_files(&pair.join("source"))? {
            let (info, mut src) = open_csv(&path)?;
            let profile = sensei_scout::ingest::profile_table(&mut src, &info, 10_000)?;
            tables.push(ManifestTable {
                name: info.name.clone(),
                columns: info.columns.clone(),
                primary_key: Vec::new(),
                rows: info.rows,
                partitions: Vec::new(),
                profile,
                file: None,
                rejected_rows: 0,
                quarantine: Vec::new(),
                changed_values: Default::default(),
            });
        }
    }
    if tables.is_empty() {
        return Err(malformed(pair.display(), "no source tables"));
    }
    Ok(Manifest {
        version: sensei_contracts::artifacts::ARTIFACT_VERSION,
        migration_id: "match-eval".into(),
        source: pair.display().to_string(),
        checkpoint_time: String::new(),
        snapshot_id: None,
        consistency: String::new(),
        catalog,
        tables,
    })
}

fn truth_of(pair: &Path) -> Result<BTreeMap<String, Vec<String>>> {
    let path = pair.join("truth.csv");
    let mut truth: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, line) in read(&path)?.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 4 {
            return Err(malformed(
                format!("{}:{}", path.display(), i + 1),
                "not source_table,source_column,target_table,target_column",
            ));
        }
        truth
            .entry(format!("{}.{}", f[2], f[3]).to_lowercase())
            .or_default()
            .push(format!("{}.{}", f[0], f[1]).to_lowercase());
    }
    Ok(truth)
}

/// A pair's source (as a manifest), its targets and its truth (target
/// `table.column` to source `table.column`s, lower case).
pub type Loaded = (Manifest, Vec<TargetTable>, BTreeMap<String, Vec<String>>);

/// Reads a pair.
pub fn load(pair: &Pair, cache: &mut TargetCache) -> Result<Loaded> {
    Ok((
        source_manifest(&pair.dir)?,
        cache.targets(&pair.dir)?.0,
        truth_of(&pair.dir)?,
    ))
}

/// Scores one pair.
pub fn evaluate_pair(
    pair: &Pair,
    dictionary: &Dictionary,
    cache: &mut TargetCache,
) -> Result<PairScore> {
    let (manifest, targets, truth) = load(pair, cache)?;
    let ddl_target = cache.ddl(&pair.dir);
    let spec = super::plan(
        "match-eval",
        &manifest,
        &targets,
        dictionary,
        AUTO_APPROVAL,
        &super::PiiPolicy::default(),
    )?;
    let mut entries = Vec::new();
    for t in &spec.tables {
        for c in &t.columns {
            let key = format!("{}.{}", t.target, c.target).to_lowercase();
            let truth = truth.get(&key).cloned().unwrap_or_default();
            let proposed: Vec<String> = c.sources.iter().map(|s| s.to_lowercase()).collect();
            let right = if proposed.is_empty() {
                truth.is_empty()
            } else {
                proposed.iter().all(|p| truth.contains(p))
            };
            entries.push(Judged {
                target: key,
                proposed,
                confidence: c.confidence,
                truth,
                right,
            });
        }
    }
    let recall_at_gt = if !ddl_target && manifest.tables.len() == 1 && targets.len() == 1 {
        Some(recall_at_gt(
            dictionary,
            &manifest.tables[0],
            &targets[0],
            &truth,
        ))
    } else {
        None
    };
    Ok(PairScore {
        pair: pair.name.clone(),
        split: pair.split,
        ddl_target,
        entries,
        recall_at_gt,
    })
}

/// Valentine's recall at ground-truth size: of the first |truth| pairs of
/// the ranked answer, the share that are true. The answer ranks the pairs
/// the one-to-one assignment chose first, by confidence, then every other
/// column pair by confidence.
fn recall_at_gt(
    d: &Dictionary,
    source: &ManifestTable,
    target: &TargetTable,
    truth: &BTreeMap<String, Vec<String>>,
) -> f64 {
    let truth: BTreeSet<(String, String)> = truth
        .iter()
        .flat_map(|(t, ss)| ss.iter().map(move |s| (s.clone(), t.clone())))
        .collect();
    let facts = super::source_facts(source);
    let matrix = super::score_matrix(d, &source.name, &facts, target);
    let (_, chosen) = super::choose(d, &source.name, target, &matrix);
    let key = |sj: usize, ti: usize| {
        (
            format!("{}.{}", source.name, facts[sj].name).to_lowercase(),
            format!("{}.{}", target.name, target.columns[ti].name).to_lowercase(),
        )
    };
    let picked: BTreeSet<(usize, usize)> = chosen
        .iter()
        .enumerate()
        .filter_map(|(ti, c)| c.as_ref().map(|(sj, _)| (*sj, ti)))
        .collect();
    let mut ranked: Vec<(bool, f64, (String, String))> = Vec::new();
    for (ti, row) in matrix.iter().enumerate() {
        for (sj, sc) in row.iter().enumerate() {
            ranked.push((picked.contains(&(sj, ti)), sc.confidence, key(sj, ti)));
        }
    }
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| b.1.total_cmp(&a.1))
            .then_with(|| a.2.cmp(&b.2))
    });
    let hits = ranked
        .iter()
        .take(truth.len())
        .filter(|(_, _, p)| truth.contains(p))
        .count();
    ratio(hits, truth.len())
}

/// Scores every pair of the corpus at `root`, in `splits.csv` order.
pub fn evaluate(root: &Path, dictionary: &Dictionary) -> Result<Vec<PairScore>> {
    let mut cache = TargetCache::default();
    corpus(root)?
        .iter()
        .map(|p| evaluate_pair(p, dictionary, &mut cache))
        .collect()
}

/// The figures of one split.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Pairs.
    pub pairs: usize,
    /// Mean accuracy over pairs whose target is DDL only (None without any).
    pub ddl_accuracy: Option<f64>,
    /// Mean accuracy over pairs whose target has rows.
    pub rows_accuracy: Option<f64>,
    /// Mean recall at ground-truth size over the pairs that have it.
    pub recall_at_gt: Option<f64>,
    /// Precision of all proposals.
    pub precision: f64,
    /// Proposals at or above [`AUTO_APPROVAL`], and the share right.
    pub auto: (usize, f64),
    /// Expected calibration error of the proposals.
    pub ece: f64,
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = xs.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Bands of the reliability table.
const BANDS: [(f64, f64); 6] = [
    (0.0, 0.5),
    (0.5, 0.7),
    (0.7, 0.85),
    (0.85, 0.92),
    (0.92, 0.97),
    (0.97, 1.01),
];

fn proposals(scores: &[&PairScore]) -> Vec<(f64, bool)> {
    scores
        .iter()
        .flat_map(|s| s.entries.iter())
        .filter(|e| !e.proposed.is_empty())
        .map(|e| (e.confidence, e.right))
        .collect()
}

/// Expected calibration error: the bands' gaps between mean confidence and
/// the share right, weighted by their size.
pub fn ece(all: &[(f64, bool)]) -> f64 {
    BANDS
        .iter()
        .map(|(lo, hi)| {
            let inb: Vec<&(f64, bool)> = all.iter().filter(|(c, _)| c >= lo && c < hi).collect();
            if inb.is_empty() {
                return 0.0;
            }
            let n = inb.len() as f64;
            let mean = inb.iter().map(|(c, _)| c).sum::<f64>() / n;
            let acc = inb.iter().filter(|(_, ok)| *ok).count() as f64 / n;
            n / all.len() as f64 * (mean - acc).abs()
        })
        .sum()
}

/// The figures of the pairs of one split.
pub fn summarize(scores: &[PairScore], split: Split) -> Summary {
    let part: Vec<&PairScore> = scores.iter().filter(|s| s.split == split).collect();
    let acc = |s: &&PairScore| {
        let (n, r) = s.accuracy();
        ratio(r, n)
    };
    let all = proposals(&part);
    let auto: Vec<&(f64, bool)> = all.iter().filter(|(c, _)| *c >= AUTO_APPROVAL).collect();
    Summary {
        pairs: part.len(),
        ddl_accuracy: mean(part.iter().filter(|s| s.ddl_target).map(acc)),
        rows_accuracy: mean(part.iter().filter(|s| !s.ddl_target).map(acc)),
        recall_at_gt: mean(part.iter().filter_map(|s| s.recall_at_gt)),
        precision: ratio(all.iter().filter(|(_, ok)| *ok).count(), all.len()),
        auto: (
            auto.len(),
            ratio(auto.iter().filter(|(_, ok)| *ok).count(), auto.len()),
        ),
        ece: ece(&all),
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.3}"))
}

/// The figures as text: one line per pair, then per split its summary and
/// reliability table.
pub fn render(scores: &[PairScore]) -> String {
    let mut out = format!(
        "{:<40} {:<5} {:<6} {:>9} {:>9} {:>9}\n",
        "pair", "split", "target", "accuracy", "precision", "recall@gt"
    );
    for s in scores {
        let (n, r) = s.accuracy();
        let (pn, pr) = s.precision();
        out.push_str(&format!(
            "{:<40} {:<5} {:<6} {:>4}/{:<4} {:>9.3} {:>9}\n",
            s.pair,
            s.split.as_str(),
            if s.ddl_target { "ddl" } else { "rows" },
            r,
            n,
            ratio(pr, pn),
            opt(s.recall_at_gt)
        ));
    }
    for split in [Split::Fit, Split::Blind] {
        let m = summarize(scores, split);
        if m.pairs == 0 {
            continue;
        }
        out.push_str(&format!(
            "\n{} part: {} pairs\n  accuracy, DDL-only targets   {}\n  accuracy, targets with rows  {}\n  recall@gt (Valentine)        {}\n  precision of proposals       {:.3}\n  auto-approved (>= {AUTO_APPROVAL}) {:>5}, right {:.3}\n  expected calibration error   {:.3}\n",
            split.as_str(),
            m.pairs,
            opt(m.ddl_accuracy),
            opt(m.rows_accuracy),
            opt(m.recall_at_gt),
            m.precision,
            m.auto.0,
            m.auto.1,
            m.ece
        ));
        let part: Vec<&PairScore> = scores.iter().filter(|s| s.split == split).collect();
        let all = proposals(&part);
        out.push_str("  confidence     count  mean conf  right\n");
        for (lo, hi) in BANDS {
            let inb: Vec<&(f64, bool)> = all.iter().filter(|(c, _)| *c >= lo && *c < hi).collect();
            if inb.is_empty() {
                continue;
            }
            let n = inb.len() as f64;
            out.push_str(&format!(
                "  [{lo:.2}, {:.2})  {:>5}  {:>9.3}  {:>5.3}\n",
                hi.min(1.0),
                inb.len(),
                inb.iter().map(|(c, _)| c).sum::<f64>() / n,
                inb.iter().filter(|(_, ok)| *ok).count() as f64 / n
            ));
        }
    }
    out
}
