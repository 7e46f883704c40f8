//! # sensei-contracts
//!
//! What the phases hand each other, and nothing that runs them: the
//! checkpoint artifacts ([`artifacts`]: manifest, mapping spec, signed
//! certificate, receipt, partition references), what the Scout learns of a
//! table ([`profile`]), the canonical row encoding behind every digest and
//! Merkle root ([`digest`]), the engines' error type ([`error`]), and
//! [`io::PartitionIo`], the one way an engine reads and stages partitions
//! (the node implements it over Flight; [`io::FolderIo`] over a folder, so
//! an engine runs alone in a test).
//!
//! Every engine crate (`sensei-scout`, `sensei-architect`,
//! `sensei-validator`, `sensei-delivery`) depends on this one; none depends
//! on the scheduler or on actix.

pub mod artifacts;
pub mod digest;
pub mod error;
pub mod io;
pub mod planner;
pub mod profile;

pub use error::{EngineError, Result};
