//! The tracker's own Prometheus metrics: [`Metrics`] for `usage-tracker run`, [`ElasticMetrics`]
//! for `usage-tracker elastic`. One registry per pipeline (not the global default), so several
//! pipelines in one process (tests) keep separate counts. Every name starts with `usage_tracker_`.

use std::collections::BTreeMap;

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
    /// Valid usage events none of whose measurements is a resource this version accounts.
    pub unaccounted: IntCounter,
    /// Times the first record read after a seek lay beyond the position sought, by topic: the
    /// broker skipped records.
    pub offset_gaps: IntCounterVec,
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

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let opts = HistogramOpts::new(format!("usage_tracker_{name}"), help).buckets(buckets);
    let h = Histogram::with_opts(opts).expect("valid metric");
    registry
        .register(Box::new(h.clone()))
        .expect("unique metric");
    h
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
        let freshness = histogram(
            &r,
            "event_to_record_seconds",
            "Processing time minus the newest event time of a slot when its records are committed",
            vec![1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0],
        );
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
            unaccounted: counter(
                &r,
                "usage_unaccounted_total",
                "Valid usage events with no measurement of an accounted resource",
            ),
            offset_gaps: counter_vec(
                &r,
                "offset_gaps_total",
                "First record after a seek beyond the position sought (records skipped by the broker)",
                &["topic"],
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
                WRITE_SECONDS.to_vec(),
            ),
            sink_errors: counter_vec(&r, "sink_errors_total", "Failed sink writes", &["sink"]),
            checkpoints: counter(&r, "checkpoints_total", "Checkpoints committed"),
            registry: r,
        }
    }

    /// The registry holding these metrics (what `/metrics` renders).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// Buckets of write and batch durations, in seconds.
const WRITE_SECONDS: [f64; 7] = [0.001, 0.005, 0.02, 0.1, 0.5, 2.0, 10.0];

/// The Prometheus text exposition of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut buffer)
        .expect("text encoding never fails");
    String::from_utf8(buffer).expect("the text format is UTF-8")
}

/// Value per label of a one-label counter (for run summaries).
pub fn counts(counter: &IntCounterVec) -> BTreeMap<String, u64> {
    use prometheus::core::Collector;
    counter
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .filter_map(|m| {
            let label = m.get_label().first()?.value().to_owned();
            Some((label, m.get_counter().get_value() as u64))
        })
        .collect()
}

/// The metrics of `usage-tracker elastic`, prefixed `usage_tracker_elastic_`.
#[derive(Clone)]
pub struct ElasticMetrics {
    registry: Registry,
    /// Documents read, by topic.
    pub read: IntCounterVec,
    /// UsageEvents published and acknowledged.
    pub published: IntCounter,
    /// Documents of metricsets that are not accounted, by metricset.
    pub skipped: IntCounterVec,
    /// Documents of accounted metricsets without any accounted field, by metricset.
    pub empty: IntCounterVec,
    /// Dead letters, by reason.
    pub dead_letters: IntCounterVec,
    /// Duration of publishing a batch (events and dead letters acknowledged, offsets committed).
    pub batch_seconds: Histogram,
}

impl Default for ElasticMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ElasticMetrics {
    /// A fresh set of metrics in its own registry.
    pub fn new() -> Self {
        let r = Registry::new();
        Self {
            read: counter_vec(
                &r,
                "elastic_documents_read_total",
                "Elastic Agent / Metricbeat documents read",
                &["topic"],
            ),
            published: counter(
                &r,
                "elastic_events_published_total",
                "UsageEvents published and acknowledged by the broker",
            ),
            skipped: counter_vec(
                &r,
                "elastic_skipped_total",
                "Documents of metricsets that are not accounted",
                &["metricset"],
            ),
            empty: counter_vec(
                &r,
                "elastic_empty_total",
                "Documents of accounted metricsets without any accounted field",
                &["metricset"],
            ),
            dead_letters: counter_vec(
                &r,
                "elastic_dead_letters_total",
                "Documents sent to the dead-letter topic",
                &["reason"],
            ),
            batch_seconds: histogram(
                &r,
                "elastic_batch_seconds",
                "Duration of publishing a batch: events and dead letters acknowledged, offsets committed",
                WRITE_SECONDS.to_vec(),
            ),
            registry: r,
        }
    }

    /// The registry holding these metrics (what `/metrics` renders).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
