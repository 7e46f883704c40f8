//! # sensei-validator
//!
//! Phase 3, verification, as plain engines over partitions reached through
//! [`sensei_contracts::io::PartitionIo`]: [`validate`] runs one table's
//! checks in one pass (row-level [`equivalence`] by key with tolerances,
//! [`expectations`] in the Great Expectations format, distribution
//! [`stats`], the generated query [`replay`], digests and Merkle roots);
//! [`queries`] is the cross-table task (the user's source queries rewritten
//! through the mapping, foreign-key coverage, referential integrity of the
//! target). [`diff`] is `sensei diff` between two databases, and
//! [`published`] decides which target tables the public Flight endpoint may
//! serve (certificates of the head's key that allow it).
//!
//! The head's orchestrator (`sensei-agents`) plans these tasks and turns
//! their results into the signed certificate.

pub mod diff;
pub mod equivalence;
pub mod expectations;
pub mod planner;
pub mod published;
pub mod queries;
pub mod replay;
pub mod stats;
pub mod validate;
