//! # sensei-delivery
//!
//! Phase 4, delivery, as a plain engine: [`deliver`] writes one verified
//! partition into the target in batches, each in one transaction with its
//! ledger row (so a retried task skips what landed: exactly once), and
//! [`mirror`] carries what the target keeps of the source in mirror mode
//! (text widths, exact decimals, unique keys, indexes, foreign keys). It
//! reads partitions through [`sensei_contracts::io::PartitionIo`] and knows
//! nothing of the scheduler; the head's orchestrator plans its tasks and
//! writes the receipt. [`post`] reads the delivered target back, one task
//! per table, and replays the post-delivery queries, on the workers.

pub mod deliver;
pub mod mirror;
pub mod planner;
pub mod post;
pub mod prepare;
