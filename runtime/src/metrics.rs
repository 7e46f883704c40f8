//! Every metric Sensei records, named in one place. Names carry the `sensei_`
//! prefix; labels are noted beside each. [`exporter`] installs a recorder
//! that keeps them in memory and renders them in the Prometheus text format
//! (`runtime.metrics_addr` serves it at `/metrics`).

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
/// Counter: bytes of staged partitions a phase wrote (ingestion,
/// transformation) or read (verification, delivery). Labels: `phase`.
pub const BYTES: &str = "sensei_bytes_total";
/// Counter: record batches served by a node's Flight service.
pub const FLIGHT_BATCHES_SERVED: &str = "sensei_flight_batches_served_total";
/// Counter: bytes served by a node's Flight service.
pub const FLIGHT_BYTES_SERVED: &str = "sensei_flight_bytes_served_total";
/// Counter: delivered batches skipped because the ledger already held their key.
pub const DELIVERY_BATCHES_SKIPPED: &str = "sensei_delivery_batches_skipped_total";
/// Histogram: seconds to write one delivered batch with its ledger row.
pub const DELIVERY_BATCH_SECONDS: &str = "sensei_delivery_batch_seconds";
/// Counter: verification checks by outcome. Labels: `result` (pass, fail, inconclusive).
pub const VERIFICATION_CHECKS: &str = "sensei_verification_checks_total";
/// Gauge: tasks (partitions) of every migration on this head. Labels:
/// `phase`, `state` (pending, running, done, failed); set from the
/// scheduler's table each time `/metrics` is read.
pub const TASKS: &str = "sensei_tasks";

/// What kind of metric a name is, for the exposition's `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets.
    Histogram,
}

/// Every metric above with its kind and help text (the `# HELP` line).
pub const DOCUMENTED: &[(&str, Kind, &str)] = &[
    (
        TASKS_LEASED,
        Kind::Counter,
        "Tasks leased to agents, by phase.",
    ),
    (TASKS_COMPLETED, Kind::Counter, "Tasks completed, by phase."),
    (
        TASKS_FAILED,
        Kind::Counter,
        "Task attempts failed, by phase and whether they are retried.",
    ),
    (
        LEASES_EXPIRED,
        Kind::Counter,
        "Leases that lapsed and were reassigned, by phase.",
    ),
    (
        STALE_COMPLETIONS,
        Kind::Counter,
        "Completions refused because their attempt was stale.",
    ),
    (
        AGENT_RESTARTS,
        Kind::Counter,
        "Agent restarts by their supervisor, by kind.",
    ),
    (
        ROWS,
        Kind::Counter,
        "Rows of completed tasks, by phase (each task counted once, on the head).",
    ),
    (
        BYTES,
        Kind::Counter,
        "Bytes of staged partitions written (ingestion, transformation) or read (verification, delivery) by completed tasks, by phase.",
    ),
    (
        FLIGHT_BATCHES_SERVED,
        Kind::Counter,
        "Record batches served over Flight.",
    ),
    (
        FLIGHT_BYTES_SERVED,
        Kind::Counter,
        "Bytes served over Flight.",
    ),
    (
        DELIVERY_BATCHES_SKIPPED,
        Kind::Counter,
        "Delivered batches skipped because the ledger held their key.",
    ),
    (
        DELIVERY_BATCH_SECONDS,
        Kind::Histogram,
        "Seconds to write one delivered batch with its ledger row.",
    ),
    (
        VERIFICATION_CHECKS,
        Kind::Counter,
        "Verification checks, by result.",
    ),
    (
        TASKS,
        Kind::Gauge,
        "Tasks of every migration on this head, by phase and state.",
    ),
];

/// What a task measured where it ran, carried in its result (`metrics`) to
/// the scheduler, which records it once the completion is accepted: a
/// cluster's head then shows its workers' measurements, and a retried
/// attempt's are not counted twice. Only documented names are recorded.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskMetrics {
    /// Counter increments by name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub counters: std::collections::BTreeMap<String, u64>,
    /// Histogram observations by name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub histograms: std::collections::BTreeMap<String, Vec<f64>>,
}

impl TaskMetrics {
    /// Whether nothing was measured.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.histograms.is_empty()
    }

    /// Adds `n` to counter `name`.
    pub fn count(&mut self, name: &str, n: u64) {
        *self.counters.entry(name.to_string()).or_default() += n;
    }

    /// Records an observation of histogram `name`.
    pub fn observe(&mut self, name: &str, value: f64) {
        self.histograms
            .entry(name.to_string())
            .or_default()
            .push(value);
    }

    /// Records everything in this process's recorder (names that are not
    /// documented with the right kind are ignored, with a warning).
    pub fn record(&self) {
        let documented = |name: &str, kind: Kind| {
            DOCUMENTED
                .iter()
                .find(|(n, k, _)| *n == name && *k == kind)
                .map(|(n, _, _)| *n)
        };
        for (name, n) in &self.counters {
            match documented(name, Kind::Counter) {
                Some(name) => metrics::counter!(name).increment(*n),
                None => tracing::warn!(%name, "a task reported an unknown counter"),
            }
        }
        for (name, values) in &self.histograms {
            match documented(name, Kind::Histogram) {
                Some(name) => {
                    let h = metrics::histogram!(name);
                    for v in values {
                        h.record(*v);
                    }
                }
                None => tracing::warn!(%name, "a task reported an unknown histogram"),
            }
        }
    }
}

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

mod exporter {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
        Recorder, SharedString, Unit,
    };

    use super::{Kind, BUCKETS, DOCUMENTED};

    #[derive(Default)]
    struct Value(AtomicU64);

    impl CounterFn for Value {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::Relaxed);
        }
        fn absolute(&self, value: u64) {
            self.0.fetch_max(value, Ordering::Relaxed);
        }
    }

    /// A gauge keeps its f64 as bits.
    #[derive(Default)]
    struct Level(AtomicU64);

    impl Level {
        fn update(&self, f: impl Fn(f64) -> f64) {
            let _ = self
                .0
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                    Some(f(f64::from_bits(bits)).to_bits())
                });
        }
    }

    impl GaugeFn for Level {
        fn increment(&self, value: f64) {
            self.update(|v| v + value);
        }
        fn decrement(&self, value: f64) {
            self.update(|v| v - value);
        }
        fn set(&self, value: f64) {
            self.0.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    #[derive(Default)]
    struct Buckets {
        counts: [AtomicU64; BUCKETS.len()],
        count: AtomicU64,
        sum: Level,
    }

    impl HistogramFn for Buckets {
        fn record(&self, value: f64) {
            for (bound, n) in BUCKETS.iter().zip(&self.counts) {
                if value <= *bound {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.count.fetch_add(1, Ordering::Relaxed);
            self.sum.increment(value);
        }
    }

    #[derive(Default)]
    struct Metrics {
        counters: BTreeMap<Key, Arc<Value>>,
        gauges: BTreeMap<Key, Arc<Level>>,
        histograms: BTreeMap<Key, Arc<Buckets>>,
    }

    /// A recorder that keeps every metric in memory and renders them in
    /// the Prometheus text exposition format.
    #[derive(Default)]
    pub struct Exporter {
        metrics: Mutex<Metrics>,
    }

    static EXPORTER: OnceLock<Arc<Exporter>> = OnceLock::new();

    /// The process's exporter, installed as the global recorder the first
    /// time it is asked for (the metrics recorded before are not seen).
    pub fn exporter() -> Arc<Exporter> {
        EXPORTER
            .get_or_init(|| {
                let e = Arc::new(Exporter::default());
                let _ = metrics::set_global_recorder(Shared(e.clone()));
                e
            })
            .clone()
    }

    struct Shared(Arc<Exporter>);

    impl Recorder for Shared {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut m = self.0.metrics.lock().unwrap_or_else(|p| p.into_inner());
            Counter::from_arc(m.counters.entry(key.clone()).or_default().clone())
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            let mut m = self.0.metrics.lock().unwrap_or_else(|p| p.into_inner());
            Gauge::from_arc(m.gauges.entry(key.clone()).or_default().clone())
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            let mut m = self.0.metrics.lock().unwrap_or_else(|p| p.into_inner());
            Histogram::from_arc(m.histograms.entry(key.clone()).or_default().clone())
        }
    }

    fn labels(key: &Key, extra: Option<(&str, String)>) -> String {
        let mut parts: Vec<String> = key
            .labels()
            .map(|l| format!("{}=\"{}\"", l.key(), escape(l.value())))
            .collect();
        if let Some((k, v)) = extra {
            parts.push(format!("{k}=\"{v}\""));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", parts.join(","))
        }
    }

    fn escape(v: &str) -> String {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }

    impl Exporter {
        /// Every metric recorded so far, in the Prometheus text format
        /// (`# HELP` and `# TYPE` for each name, from [`DOCUMENTED`]).
        pub fn render(&self) -> String {
            let m = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
            let mut out = String::new();
            let header = |out: &mut String, name: &str, kind: Kind| {
                let help = DOCUMENTED
                    .iter()
                    .find(|(n, _, _)| *n == name)
                    .map_or("", |(_, _, h)| h);
                let kind = match kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Histogram => "histogram",
                };
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            };
            let mut last = String::new();
            for (key, v) in &m.counters {
                if key.name() != last {
                    header(&mut out, key.name(), Kind::Counter);
                    last = key.name().to_string();
                }
                let n = v.0.load(Ordering::Relaxed);
                out.push_str(&format!("{}{} {n}\n", key.name(), labels(key, None)));
            }
            for (key, v) in &m.gauges {
                if key.name() != last {
                    header(&mut out, key.name(), Kind::Gauge);
                    last = key.name().to_string();
                }
                let x = f64::from_bits(v.0.load(Ordering::Relaxed));
                out.push_str(&format!("{}{} {x}\n", key.name(), labels(key, None)));
            }
            for (key, h) in &m.histograms {
                let name = key.name();
                if name != last {
                    header(&mut out, name, Kind::Histogram);
                    last = name.to_string();
                }
                for (bound, n) in BUCKETS.iter().zip(&h.counts) {
                    out.push_str(&format!(
                        "{name}_bucket{} {}\n",
                        labels(key, Some(("le", bound.to_string()))),
                        n.load(Ordering::Relaxed)
                    ));
                }
                let count = h.count.load(Ordering::Relaxed);
                out.push_str(&format!(
                    "{name}_bucket{} {count}\n",
                    labels(key, Some(("le", "+Inf".into())))
                ));
                let sum = f64::from_bits(h.sum.0.load(Ordering::Relaxed));
                out.push_str(&format!("{name}_sum{} {sum}\n", labels(key, None)));
                out.push_str(&format!("{name}_count{} {count}\n", labels(key, None)));
            }
            out
        }
    }
}

pub use exporter::{exporter, Exporter};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_metrics_render_in_the_prometheus_text_format() {
        let e = exporter();
        metrics::counter!(ROWS, "phase" => "delivery").increment(5);
        metrics::counter!(ROWS, "phase" => "delivery").increment(2);
        metrics::histogram!(DELIVERY_BATCH_SECONDS).record(0.003);
        metrics::histogram!(DELIVERY_BATCH_SECONDS).record(0.3);
        let text = e.render();
        assert!(
            text.contains("# TYPE sensei_rows_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("sensei_rows_total{phase=\"delivery\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP sensei_delivery_batch_seconds Seconds"),
            "{text}"
        );
        assert!(
            text.contains("sensei_delivery_batch_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("sensei_delivery_batch_seconds_bucket{le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("sensei_delivery_batch_seconds_count 2\n"),
            "{text}"
        );
        for (name, _, help) in DOCUMENTED {
            assert!(name.starts_with("sensei_") && !help.is_empty(), "{name}");
        }
    }
}
