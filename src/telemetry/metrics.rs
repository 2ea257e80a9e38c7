//! Metrics: one registry, and small typed events the worker emits at the
//! points where outcomes are decided, so no stage code names a metric. Every legacy record is counted once as consumed and once
//! by outcome; the outcomes add up:
//! consumed = records with events + filtered + duplicate + rejected.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::pipeline::Counts;

/// Every recast metric, labelled by legacy topic.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    topic: String,
    consumed: IntCounterVec,
    events: IntCounterVec,
    outcomes: IntCounterVec,
    rejected: IntCounterVec,
    transactions: IntCounterVec,
    producer_renewals: IntCounterVec,
    mapping_info: IntGaugeVec,
    reload_failures: IntCounterVec,
    commit_seconds: HistogramVec,
    batch_records: HistogramVec,
    tap_dropped: IntCounterVec,
    taps_open: IntGaugeVec,
    assignment: Assignment,
}

/// The metrics of this instance's share of its input.
#[derive(Debug, Clone)]
struct Assignment {
    rebalances: IntCounterVec,
    partitions: IntGaugeVec,
    window_entries: IntGaugeVec,
    restore_seconds: HistogramVec,
    lag: IntGaugeVec,
}

impl Assignment {
    fn register(registry: &Registry) -> Self {
        let gauge = |name, help, labels: &[&str]| register(registry, gauge_vec(name, help, labels));
        Self {
            rebalances: register(
                registry,
                counter_vec(
                    "recast_rebalances_total",
                    "Assignment changes seen by this instance, by kind.",
                    &["topic", "kind"],
                ),
            ),
            partitions: gauge(
                "recast_partitions_assigned",
                "Partitions of its input this instance holds (0: a spare).",
                &["topic"],
            ),
            window_entries: gauge(
                "recast_dedupe_window_entries",
                "Keys held in a partition's dedupe window.",
                &["topic", "partition"],
            ),
            restore_seconds: register(
                registry,
                histogram_vec(
                    "recast_dedupe_restore_seconds",
                    "Time to rebuild dedupe windows on assignment.",
                    prometheus::exponential_buckets(0.01, 2.0, 12).expect("buckets"),
                ),
            ),
            lag: gauge(
                "recast_consumer_lag",
                "Legacy records not yet processed, per assigned partition.",
                &["topic", "partition"],
            ),
        }
    }
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn histogram_vec(name: &str, help: &str, buckets: Vec<f64>) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), &["topic"])
        .expect("valid metric")
}

/// Registers a metric, returning it for recording.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("unique metric");
    metric
}

/// The start of this process: fatal errors end the process, so starts
/// are counted instead.
fn start_time(registry: &Registry, legacy_topic: &str) {
    register(
        registry,
        gauge_vec(
            "recast_start_time_seconds",
            "When this process started, in seconds since the epoch.",
            &["topic"],
        ),
    )
    .with_label_values(&[legacy_topic])
    .set(unix_seconds());
}

/// Seconds since the epoch, now.
fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The names `/metrics` exports (what dashboards and alerts may query).
pub const NAMES: &[&str] = &[
    "recast_records_consumed_total",
    "recast_events_produced_total",
    "recast_records_total",
    "recast_records_rejected_total",
    "recast_transactions_total",
    "recast_producer_renewals_total",
    "recast_mapping_info",
    "recast_mapping_reload_failures_total",
    "recast_commit_seconds",
    "recast_batch_records",
    "recast_rebalances_total",
    "recast_partitions_assigned",
    "recast_dedupe_window_entries",
    "recast_dedupe_restore_seconds",
    "recast_consumer_lag",
    "recast_start_time_seconds",
    "recast_tap_dropped_total",
    "recast_taps_open",
];

impl Metrics {
    /// The metrics of `recast run`.
    pub(crate) fn new(legacy_topic: &str) -> Self {
        Self::with_registry(Registry::new(), legacy_topic)
    }

    /// The metrics of `recast redrive`: the same names, every one labelled
    /// `redrive="true"`, so a re-drive beside the worker adds to no series
    /// of the worker's.
    pub(crate) fn for_redrive(legacy_topic: &str) -> Self {
        let labels = std::collections::HashMap::from([("redrive".to_owned(), "true".to_owned())]);
        let registry = Registry::new_custom(None, Some(labels)).expect("a valid label");
        Self::with_registry(registry, legacy_topic)
    }

    fn with_registry(registry: Registry, legacy_topic: &str) -> Self {
        let counter =
            |name, help, labels: &[&str]| register(&registry, counter_vec(name, help, labels));
        let gauge =
            |name, help, labels: &[&str]| register(&registry, gauge_vec(name, help, labels));
        let histogram =
            |name, help, buckets| register(&registry, histogram_vec(name, help, buckets));
        let consumed = counter(
            "recast_records_consumed_total",
            "Legacy records read and processed in a committed transaction.",
            &["topic"],
        );
        let events = counter(
            "recast_events_produced_total",
            "Events committed to the ledger.",
            &["topic", "event_type"],
        );
        let outcomes = counter(
            "recast_records_total",
            "Committed legacy records by outcome: event, filtered, duplicate, rejected \
             (and, re-driving, skipped).",
            &["topic", "outcome"],
        );
        let rejected = counter(
            "recast_records_rejected_total",
            "Legacy records committed to the dead-letter topic, by rejecting stage.",
            &["topic", "stage"],
        );
        let transactions = counter(
            "recast_transactions_total",
            "Transactions by result: committed or aborted.",
            &["topic", "result"],
        );
        let producer_renewals = counter(
            "recast_producer_renewals_total",
            "Producers replaced after failing fatally without being fenced.",
            &["topic"],
        );
        let mapping_info = gauge(
            "recast_mapping_info",
            "1 for the mapping version that runs.",
            &["topic", "version"],
        );
        let reload_failures = counter(
            "recast_mapping_reload_failures_total",
            "Reloads refused: the new mapping failed a check; the running one stayed.",
            &["topic"],
        );
        let commit_seconds = histogram(
            "recast_commit_seconds",
            "Time from beginning a transaction to its commit.",
            prometheus::exponential_buckets(0.002, 2.0, 14).expect("buckets"),
        );
        let batch_records = histogram(
            "recast_batch_records",
            "Legacy records per transaction.",
            prometheus::exponential_buckets(1.0, 4.0, 10).expect("buckets"),
        );
        let tap_dropped = counter(
            "recast_tap_dropped_total",
            "Decision traces a live tap was too slow to take, dropped.",
            &["topic"],
        );
        let taps_open = gauge(
            "recast_taps_open",
            "Live taps (GET /tap) open on this instance.",
            &["topic"],
        );
        let assignment = Assignment::register(&registry);
        start_time(&registry, legacy_topic);
        // Counted from 0, so `increase()` sees the first one.
        for counter in [&producer_renewals, &reload_failures, &tap_dropped] {
            counter.with_label_values(&[legacy_topic]);
        }
        // 0 until the group says otherwise, or a tap opens.
        assignment.partitions.with_label_values(&[legacy_topic]);
        taps_open.with_label_values(&[legacy_topic]);
        Self {
            registry,
            topic: legacy_topic.to_owned(),
            consumed,
            events,
            outcomes,
            rejected,
            transactions,
            producer_renewals,
            mapping_info,
            reload_failures,
            commit_seconds,
            batch_records,
            tap_dropped,
            taps_open,
            assignment,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding never fails");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }

    /// A transaction committed with these outcomes.
    pub(crate) fn batch_committed(&self, batch: &Counts, elapsed: Duration) {
        let t = self.topic.as_str();
        self.consumed.with_label_values(&[t]).inc_by(batch.records);
        for (event_type, count) in &batch.events {
            self.events
                .with_label_values(&[t, event_type])
                .inc_by(*count);
        }
        for (outcome, count) in [
            ("event", batch.with_events),
            ("filtered", batch.filtered),
            ("duplicate", batch.duplicates),
            ("rejected", batch.rejected_total()),
            ("skipped", batch.skipped_total()),
        ] {
            self.outcomes.with_label_values(&[t, outcome]).inc_by(count);
        }
        for (stage, count) in &batch.rejected {
            self.rejected
                .with_label_values(&[t, stage.as_str()])
                .inc_by(*count);
        }
        self.transactions.with_label_values(&[t, "committed"]).inc();
        self.commit_seconds
            .with_label_values(&[t])
            .observe(elapsed.as_secs_f64());
        self.batch_records
            .with_label_values(&[t])
            .observe(batch.records as f64);
    }

    /// A transaction aborted; its records will be processed again.
    pub(crate) fn batch_aborted(&self) {
        self.transactions
            .with_label_values(&[&self.topic, "aborted"])
            .inc();
    }

    /// A live tap's queue was full: a trace was dropped.
    pub(crate) fn tap_dropped(&self) {
        self.tap_dropped.with_label_values(&[&self.topic]).inc();
    }

    /// `open` live taps are open now.
    pub(crate) fn taps_open(&self, open: usize) {
        self.taps_open
            .with_label_values(&[&self.topic])
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// A failed producer was replaced by a new one.
    pub(crate) fn producer_renewed(&self) {
        self.producer_renewals
            .with_label_values(&[&self.topic])
            .inc();
    }

    /// `version` is the mapping that runs from now on.
    pub(crate) fn mapping_running(&self, version: &str) {
        self.mapping_info.reset();
        self.mapping_info
            .with_label_values(&[&self.topic, version])
            .set(1);
    }

    /// A reload was refused.
    pub(crate) fn reload_refused(&self) {
        self.reload_failures.with_label_values(&[&self.topic]).inc();
    }

    pub(crate) fn rebalanced(&self, kind: &str) {
        self.assignment
            .rebalances
            .with_label_values(&[&self.topic, kind])
            .inc();
    }

    pub(crate) fn partitions_assigned(&self, count: usize) {
        self.assignment
            .partitions
            .with_label_values(&[&self.topic])
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub(crate) fn window_size(&self, partition: i32, entries: u64) {
        self.assignment
            .window_entries
            .with_label_values(&[&self.topic, &partition.to_string()])
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    pub(crate) fn lag(&self, partition: i32, records: i64) {
        self.assignment
            .lag
            .with_label_values(&[&self.topic, &partition.to_string()])
            .set(records);
    }

    /// A partition left this instance: its per-partition series go.
    pub(crate) fn partition_revoked(&self, partition: i32) {
        let labels = [self.topic.as_str(), &partition.to_string()];
        let _ = self.assignment.window_entries.remove_label_values(&labels);
        let _ = self.assignment.lag.remove_label_values(&labels);
    }

    pub(crate) fn window_restored(&self, elapsed: Duration) {
        self.assignment
            .restore_seconds
            .with_label_values(&[&self.topic])
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Stage;

    #[test]
    fn a_committed_batch_is_counted_by_outcome() {
        let metrics = Metrics::new("legacy-cart");
        let batch = Counts {
            records: 5,
            with_events: 2,
            events: [("AddedToCart".to_owned(), 2)].into(),
            duplicates: 1,
            filtered: 1,
            rejected: [(Stage::Decode, 1)].into(),
            skipped: std::collections::BTreeMap::new(),
        };
        metrics.batch_committed(&batch, Duration::from_millis(12));
        metrics.mapping_running("4ef906e1411ab8a6");
        let text = metrics.render();
        for line in [
            r#"recast_records_consumed_total{topic="legacy-cart"} 5"#,
            r#"recast_events_produced_total{event_type="AddedToCart",topic="legacy-cart"} 2"#,
            r#"recast_records_total{outcome="rejected",topic="legacy-cart"} 1"#,
            r#"recast_records_rejected_total{stage="decode",topic="legacy-cart"} 1"#,
            r#"recast_transactions_total{result="committed",topic="legacy-cart"} 1"#,
            r#"recast_mapping_info{topic="legacy-cart",version="4ef906e1411ab8a6"} 1"#,
            r#"recast_producer_renewals_total{topic="legacy-cart"} 0"#,
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        // Per-partition and per-rebalance series appear once those happen.
        for name in NAMES
            .iter()
            .filter(|n| !n.contains("dedupe") && !n.contains("rebalances") && !n.contains("lag"))
        {
            assert!(text.contains(name), "{name} not exported");
        }
    }

    #[test]
    fn a_redrive_labels_every_series() {
        let metrics = Metrics::for_redrive("legacy-cart");
        metrics.batch_committed(&Counts::default(), Duration::from_millis(1));
        let text = metrics.render();
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(!samples.is_empty());
        for sample in samples {
            assert!(sample.contains(r#"redrive="true""#), "{sample}");
        }
    }
}
