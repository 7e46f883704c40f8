//! # sensei-agents
//!
//! The actor layer over the phase engines, and the head that drives a
//! migration.
//!
//! ```text
//!  source ──Scout──▶ staged partitions ──Worker(SQL)──▶ transformed partitions
//!   (sensei-scout)    manifest.json    (sensei-architect)  mapping/lineage/sql
//!                                                             │
//!  target ◀──Worker(delivery)── certificate.json ◀──Validator─┘
//!   + ledger (sensei-delivery)    receipt.json    (sensei-validator)
//! ```
//!
//! - The engines live in their own crates under `agents/` and reach
//!   partitions through [`sensei_contracts::io::PartitionIo`]; they know
//!   nothing of actors or the scheduler. [`node::NodeContext`] is that
//!   `PartitionIo` on a node: its batch store, Flight to its peers.
//! - [`agent::TaskAgent`] is the supervised actor: lease, run on the work
//!   pool (`exec` dispatches the task to its engine), heartbeat, report; a
//!   panic restarts it and hands its task back.
//! - [`rerun`] decides what running a migration again with other settings
//!   does.
//! - [`orchestrator::Orchestrator`] runs on the head: it plans each phase's
//!   tasks, finalises its checkpoint artifact, and moves the migration
//!   through its states.
//!
//! The engine modules are re-exported under their old names (`architect`,
//! `artifacts`, `validate`, ...) so callers may reach everything from here.

pub mod agent;
mod error;
pub mod exec;
mod handoff;
pub mod node;
pub mod orchestrator;
pub mod preflight;
pub mod rerun;
mod status;

pub use sensei_architect as architect;
pub use sensei_architect::{semantic, transform, udf};
pub use sensei_contracts::{artifacts, digest};
pub use sensei_delivery::{deliver, mirror};
pub use sensei_scout::ingest as scout;
pub use sensei_validator::{
    diff, equivalence, expectations, published, queries, replay, stats, validate,
};

pub use error::{AgentError, Result};
