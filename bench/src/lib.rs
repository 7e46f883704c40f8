//! # sensei-bench
//!
//! Data generators for examples, tests and benchmarks. [`retail`] writes the
//! legacy retail SQLite database of `examples/retail`: customers, products,
//! orders and order lines with legacy column names (`cust_dob`, `ord_ts`,
//! `qty`), deterministic for a given seed and size.

pub mod retail;
