//! # sensei-scout
//!
//! Phase 1, ingestion. [`ingest`] extracts one partition of a source table
//! into a staged Parquet partition (through
//! [`sensei_contracts::io::PartitionIo`]) and, for a table's first
//! partition, samples it for its profile and PII flags. Those are plain
//! libraries over Arrow batches: [`profile`]
//! computes a column profile on a sample (cardinality, null ratio, histogram
//! or top values, min/max, lengths, value shapes, date format), and [`pii`]
//! flags columns holding personal data, with a kind, a confidence and its
//! reasons. [`eval`] measures the detector against a labelled set of columns
//! (`agents/testdata/pii/columns.jsonl`). [`sample`] measures the row size
//! of every table when partitions are sized in bytes (the phase's first
//! round), and [`planner`] plans the phase from what discovery and the
//! sample found. The head's orchestrator
//! (`sensei-agents`) writes the results into the Ingestion Manifest.
//!
//! ```
//! use sensei_scout::pii::{detect, ColumnEvidence, PiiKind};
//! let samples = vec![Some("ada@example.com".to_string()), Some("linus@example.org".to_string())];
//! let flags = detect(&ColumnEvidence { table: "customer", column: "e_mail", neighbours: &[], samples: &samples });
//! assert_eq!(flags[0].kind, PiiKind::Email);
//! ```

pub mod eval;
pub mod ingest;
pub mod pii;
pub mod planner;
pub mod profile;
pub mod sample;
