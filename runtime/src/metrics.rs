//! Every metric Sensei records, named in one place. Names carry the `sensei_`
//! prefix; labels are noted beside each.

/// Counter: tasks leased to agents. Labels: `phase`.
pub const TASKS_LEASED: &str = "sensei_tasks_leased_total";
/// Counter: tasks completed. Labels: `phase`.
pub const TASKS_COMPLETED: &str = "sensei_tasks_completed_total";
/// Counter: task attempts failed. Labels: `phase`, `retryable`.
pub const TASKS_FAILED: &str = "sensei_tasks_failed_total";
/// Counter: leases that lapsed and were reassigned. Labels: `phase`.
pub const LEASES_EXPIRED: &str = "sensei_leases_expired_total";
/// Counter: completions refused because their attempt was stale.
pub const STALE_COMPLETIONS: &str = "sensei_stale_completions_total";
/// Counter: agent restarts by their supervisor. Labels: `kind`.
pub const AGENT_RESTARTS: &str = "sensei_agent_restarts_total";
/// Counter: rows processed by a phase. Labels: `phase`.
pub const ROWS: &str = "sensei_rows_total";
/// Counter: record batches served by a node's Flight service.
pub const FLIGHT_BATCHES_SERVED: &str = "sensei_flight_batches_served_total";
/// Counter: bytes served by a node's Flight service.
pub const FLIGHT_BYTES_SERVED: &str = "sensei_flight_bytes_served_total";
/// Counter: delivered batches skipped because the ledger already held their key.
pub const DELIVERY_BATCHES_SKIPPED: &str = "sensei_delivery_batches_skipped_total";
