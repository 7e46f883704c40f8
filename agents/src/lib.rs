//! # sensei-agents
//!
//! The four phases of a migration, as plain engines and as the actix agents
//! that run them.
//!
//! ```text
//!  source ──Scout──▶ staged partitions ──Worker(SQL)──▶ transformed partitions
//!    (scout.rs)        manifest.json      (transform.rs)   mapping/lineage/sql
//!                                                             │
//!  target ◀──Worker(delivery)── certificate.json ◀──Validator─┘
//!   + ledger   (deliver.rs)       receipt.json      (validate.rs)
//! ```
//!
//! - Engines ([`scout`], [`transform`], [`validate`], [`deliver`]) take a task
//!   payload and a [`node::NodeContext`] and return a result document; they know
//!   nothing of actors or the scheduler.
//! - [`agent::TaskAgent`] is the supervised actor: lease, run on the work pool,
//!   heartbeat, report; a panic restarts it and hands its task back.
//! - [`orchestrator::Orchestrator`] runs on the head: it plans each phase's
//!   tasks, finalises its checkpoint artifact, and moves the migration through
//!   its states.
//! - [`architect`] plans the transformation: target DDL, schema matching,
//!   the mapping specification and the SQL generated from it.
//! - [`queries`] is the Validators' cross-table work: the user's source
//!   queries rewritten through the mapping, foreign-key coverage, and
//!   referential integrity of the target.
//! - [`digest`] is the canonical row encoding shared by the certificate and the
//!   receipt; [`artifacts`] holds the data contracts and certificate signing.
//! - [`published`] decides which target tables the public Flight endpoint
//!   may serve: those of migrations whose signed certificate allows it.

pub mod agent;
pub mod architect;
pub mod artifacts;
pub mod deliver;
pub mod diff;
pub mod digest;
pub mod equivalence;
mod error;
mod exec;
pub mod expectations;
pub mod mirror;
pub mod node;
pub mod orchestrator;
pub mod published;
pub mod queries;
pub mod replay;
pub mod scout;
pub mod semantic;
pub mod stats;
pub mod transform;
pub mod udf;
pub mod validate;

pub use error::{AgentError, Result};
