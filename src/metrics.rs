//! The tracker's own Prometheus metrics. One registry per pipeline (not the global default), so
//! several pipelines in one process (tests) keep separate counts.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the tracker exports, prefixed `usage_tracker_`.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Messages read, by topic.
    pub consumed: IntCounterVec,
    /// Messages decoded into standard events, by topic.
    pub decoded: IntCounterVec,
    /// Usage samples counted.
    pub usage_applied: IntCounter,
    /// Usage samples counted into windows that had closed.
    pub late: IntCounter,
    /// Duplicates skipped.
    pub duplicates: IntCounter,
    /// Events left out by exclusion rules, by rule.
    pub excluded: IntCounterVec,
    /// Dead letters, by reason.
    pub dead_letters: IntCounterVec,
    /// Bill lines, by outcome (applied, unchanged).
    pub cost_lines: IntCounterVec,
    /// Records published, by window status.
    pub records: IntCounterVec,
    /// Records withdrawn (became empty).
    pub withdrawn: IntCounter,
    /// Highest revision emitted so far.
    pub revisions: IntCounter,
    /// Allocated cost published, in micro-units, by currency and kind (namespace, idle,
    /// unallocated); counts each emitted revision's change, so it sums to the current total.
    pub cost_micros: IntGaugeVec,
    /// Open (cluster, namespace, window) keys held.
    pub windows_open: IntGauge,
    /// Slots owned by this instance.
    pub slots: IntGauge,
    /// Watermark per slot, epoch seconds.
    pub watermark: IntGaugeVec,
    /// Consumer lag per topic and partition (high watermark - position).
    pub lag: IntGaugeVec,
    /// Processing time minus the newest event time of a slot at each checkpoint.
    pub freshness: Histogram,
    /// Items per sink write, by sink.
    pub sink_batch: HistogramVec,
    /// Duration of a sink write, by sink.
    pub sink_seconds: HistogramVec,
    /// Failed sink writes, by sink.
    pub sink_errors: IntCounterVec,
    /// Checkpoints committed.
    pub checkpoints: IntCounter,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(format!("usage_tracker_{name}"), help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(format!("usage_tracker_{name}"), help), labels)
        .expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(format!("usage_tracker_{name}"), help), labels)
        .expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(format!("usage_tracker_{name}"), help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let opts = HistogramOpts::new(format!("usage_tracker_{name}"), help).buckets(buckets);
    let h = HistogramVec::new(opts, labels).expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics in its own registry.
    pub fn new() -> Self {
        let r = Registry::new();
        let freshness = Histogram::with_opts(
            HistogramOpts::new(
                "usage_tracker_event_to_record_seconds",
                "Processing time minus the newest event time of a slot when its records are committed",
            )
            .buckets(vec![1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0]),
        )
        .expect("valid metric");
        r.register(Box::new(freshness.clone()))
            .expect("unique metric");
        Self {
            consumed: counter_vec(&r, "events_consumed_total", "Messages read", &["topic"]),
            decoded: counter_vec(
                &r,
                "events_decoded_total",
                "Messages decoded into standard events",
                &["topic"],
            ),
            usage_applied: counter(&r, "usage_applied_total", "Usage samples counted"),
            late: counter(
                &r,
                "late_events_total",
                "Usage samples counted into closed windows (new revisions)",
            ),
            duplicates: counter(
                &r,
                "duplicates_total",
                "Events whose (source, id) was seen before",
            ),
            excluded: counter_vec(
                &r,
                "excluded_total",
                "Events left out by exclusion rules",
                &["rule"],
            ),
            dead_letters: counter_vec(
                &r,
                "dead_letters_total",
                "Messages sent to the dead-letter topic",
                &["reason"],
            ),
            cost_lines: counter_vec(&r, "cost_lines_total", "Bill lines taken", &["outcome"]),
            records: counter_vec(
                &r,
                "records_emitted_total",
                "Usage records published",
                &["status"],
            ),
            withdrawn: counter(
                &r,
                "records_withdrawn_total",
                "Records withdrawn because they became empty",
            ),
            revisions: counter(
                &r,
                "revisions_emitted_total",
                "Revisions above the first published",
            ),
            cost_micros: gauge_vec(
                &r,
                "cost_allocated_micros",
                "Cost allocated in the latest revision of every record published by this instance",
                &["currency", "kind"],
            ),
            windows_open: gauge(
                &r,
                "windows_open",
                "(cluster, namespace, window) keys held in memory",
            ),
            slots: gauge(
                &r,
                "slots_owned",
                "Input slots (co-partitioned partitions) owned",
            ),
            watermark: gauge_vec(
                &r,
                "watermark_seconds",
                "Event-time watermark per slot",
                &["slot"],
            ),
            lag: gauge_vec(
                &r,
                "consumer_lag",
                "High watermark minus position (librdkafka statistics, every 10 s)",
                &["topic", "partition"],
            ),
            freshness,
            sink_batch: histogram_vec(
                &r,
                "sink_batch_size",
                "Items per sink write",
                &["sink"],
                vec![1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0],
            ),
            sink_seconds: histogram_vec(
                &r,
                "sink_write_seconds",
                "Duration of a sink write",
                &["sink"],
                vec![0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0],
            ),
            sink_errors: counter_vec(&r, "sink_errors_total", "Failed sink writes", &["sink"]),
            checkpoints: counter(&r, "checkpoints_total", "Checkpoints committed"),
            registry: r,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("text encoding never fails");
        String::from_utf8(buffer).expect("the text format is UTF-8")
    }
}
