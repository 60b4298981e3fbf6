//! The Elastic converter (`usage-tracker elastic`): Elastic Agent / Metricbeat Kubernetes
//! documents (ECS JSON) on Kafka -> UsageEvents (Avro, Confluent framing) on the usage events
//! topic. A streaming service beside [`crate::pipeline`]; the mapping itself is
//! [`crate::ingest::ecs`] (pure).
//!
//! At least once: documents are read in batches; a batch's events and dead letters are
//! acknowledged by the broker before the batch's offsets are committed to the consumer group.
//! After a crash the uncommitted documents are read again and become the same events (the ids are
//! derived from the documents), which the tracker counts once.
//!
//! Like `run`, it serves `/metrics`, `/healthz` and `/readyz` on `[http] listen`
//! ([`ElasticMetrics`], `usage_tracker_elastic_*`).
//!
//! Files: this one the loop ([`run`]) and what one document becomes (`take`); `positions.rs` the
//! positions to commit, the partitions revoked in a rebalance and the high watermarks of
//! `--until-caught-up`; `publish.rs` the batch and its publishing (events, dead letters, then the
//! commit); `tests.rs` the unit tests.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;
use rdkafka::Message;
use tracing::{info, warn};

use crate::config::Settings;
use crate::http::{self, Health};
use crate::ingest::ecs::{check_event, Clock, EcsNormaliser, EcsOutcome, NetworkCounters};
use crate::ingest::{DeadLetterReason, Rejection};
use crate::kafka::TopicSpec;
use crate::metrics::{counts, ElasticMetrics};
use crate::sink::kafka::{cut_detail, DeadLetter, KafkaSink};
use crate::standard::wire::RecordEncoder;

mod positions;
mod publish;
#[cfg(test)]
mod tests;

use positions::{forget_revoked, CatchUp, ElasticConsumer, Positions, RevokeContext};
use publish::{flush, Batch, Publisher};

/// Pods whose last network reading is kept before old ones are forgotten.
const MAX_PODS_WITH_COUNTERS: usize = 100_000;
/// How long the last network reading of a silent pod is kept once that many are.
const COUNTER_MEMORY_MS: i64 = 3_600_000;
/// Longest wait for one message before the loop looks at batches, shutdown and progress.
const POLL: Duration = Duration::from_millis(200);

/// Counters of one run, read from the metrics at the end and printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElasticSummary {
    /// Documents read, per topic.
    pub read: BTreeMap<String, u64>,
    /// UsageEvents published (and acknowledged).
    pub published: u64,
    /// Documents of metricsets that are not accounted, per metricset.
    pub skipped: BTreeMap<String, u64>,
    /// Documents of accounted metricsets without any accounted field, per metricset.
    pub empty: BTreeMap<String, u64>,
    /// Dead letters, per reason.
    pub dead_letters: BTreeMap<String, u64>,
}

impl ElasticSummary {
    /// The counters of `m`.
    fn from_metrics(m: &ElasticMetrics) -> Self {
        Self {
            read: counts(&m.read),
            published: m.published.get(),
            skipped: counts(&m.skipped),
            empty: counts(&m.empty),
            dead_letters: counts(&m.dead_letters),
        }
    }
}

impl fmt::Display for ElasticSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "elastic: documents read {}, {:?}; events published {}; skipped {:?}; empty {:?}; dead letters {:?}",
            self.read.values().sum::<u64>(),
            self.read,
            self.published,
            self.skipped,
            self.empty,
            self.dead_letters
        )
    }
}

/// One input topic.
struct Input {
    /// Turns the topic's documents into events.
    normaliser: EcsNormaliser,
    /// Last network counter reading per pod of this topic (and the partition it came from).
    network: NetworkCounters,
}

/// Consumes the `[elastic]` topics until `shutdown` (or, with `until_caught_up`, until the input
/// available at start is processed); publishes and commits what it read. Returns the counters of
/// the run.
pub async fn run(
    settings: &Settings,
    until_caught_up: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<ElasticSummary> {
    let elastic = &settings.elastic;
    anyhow::ensure!(!elastic.topics.is_empty(), "[elastic] topics is empty");
    anyhow::ensure!(elastic.batch_size >= 1, "[elastic] batch_size must be >= 1");
    let mut inputs = HashMap::new();
    for topic in &elastic.topics {
        let normaliser = EcsNormaliser::new(elastic.ecs_settings(topic))
            .with_context(|| format!("[elastic] settings of {topic}"))?;
        inputs.insert(
            topic.clone(),
            Input {
                normaliser,
                network: NetworkCounters::default(),
            },
        );
    }
    let metrics = ElasticMetrics::new();
    for topic in &elastic.topics {
        metrics.read.with_label_values(&[topic]); // Shown from the start, at 0.
    }
    let registry = settings.registry()?;
    let health = Arc::new(Health::new(
        metrics.registry().clone(),
        None,
        registry.clone(),
    ));
    if let Some(listen) = settings.http_listen()? {
        http::serve(listen, health.clone())
            .await
            .with_context(|| format!("serving http on {listen}"))?;
    }
    let kafka = settings.kafka();
    let t = &settings.topics;
    let mut specs: Vec<TopicSpec> = elastic
        .topics
        .iter()
        .map(|topic| TopicSpec::new(topic, t.partitions, t.replication))
        .collect();
    specs.push(TopicSpec::new(&t.usage_events, t.partitions, t.replication));
    specs.push(TopicSpec::new(&t.dead_letters, t.partitions, t.replication));
    let created = kafka
        .ensure_topics(&specs)
        .await
        .context("creating topics")?;
    if !created.is_empty() {
        info!(?created, "created topics");
    }
    let publisher = Publisher {
        producer: kafka
            .event_producer_config()
            .create()
            .context("creating the Kafka producer")?,
        encoder: RecordEncoder::new(registry.sr_settings()?, &t.usage_events),
        topic: t.usage_events.clone(),
        // Only its dead-letter half is used; it encodes no records.
        dead_letters: KafkaSink::new(&kafka, &registry, &t.usage_records, &t.dead_letters)?,
    };
    let consumer: ElasticConsumer = kafka
        .consumer_config()
        .set("group.id", &elastic.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(RevokeContext::default())
        .context("creating the Kafka consumer")?;
    let future_skew_ms = i64::try_from(settings.window.future_skew.as_millis())
        .context("[window] future_skew is too long")?;
    let topics: Vec<&str> = elastic.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("subscribing")?;
    info!(?topics, group = %elastic.group_id, to = %t.usage_events, "reading Elastic documents");

    let mut positions = Positions::default();
    let mut batch = Batch::default();
    let mut catch_up = CatchUp::default();
    let mut last_check: Option<Instant> = None;
    let mut last_assignment_check: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        forget_revoked(&consumer, &mut inputs, &mut positions, &mut catch_up);
        if last_assignment_check.is_none_or(|t| t.elapsed() >= POLL) {
            last_assignment_check = Some(Instant::now());
            let assigned = consumer.assignment().is_ok_and(|a| a.count() > 0);
            health.assigned.store(assigned, Ordering::Relaxed);
        }
        if until_caught_up && last_check.is_none_or(|t| t.elapsed() >= POLL) {
            last_check = Some(Instant::now());
            catch_up.refresh(&consumer, &mut positions)?;
            if catch_up.reached(&positions) {
                break;
            }
        }
        let wait = match batch.opened {
            Some(opened) => elastic
                .batch_timeout
                .saturating_sub(opened.elapsed())
                .min(POLL),
            None => POLL,
        };
        tokio::select! {
            _ = &mut shutdown => { info!("shutting down"); break; }
            received = tokio::time::timeout(wait, consumer.recv()) => match received {
                Ok(Ok(message)) => {
                    // A rebalance is handled inside `recv`, before the message it returns.
                    forget_revoked(&consumer, &mut inputs, &mut positions, &mut catch_up);
                    let clock = Clock { now: crate::time::now_ms(), future_skew_ms };
                    take(&message, &mut inputs, &mut batch, &mut positions, &metrics, clock);
                    health.broker_ok.store(true, Ordering::Relaxed);
                }
                Ok(Err(error)) => {
                    warn!(%error, "consumer error");
                    health.broker_ok.store(false, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(_idle) => {}
            }
        }
        let due = batch
            .opened
            .is_some_and(|o| o.elapsed() >= elastic.batch_timeout);
        if batch.documents >= elastic.batch_size || due {
            flush(&publisher, &consumer, &mut batch, &mut positions, &metrics).await?;
        }
    }
    flush(&publisher, &consumer, &mut batch, &mut positions, &metrics).await?;
    let summary = ElasticSummary::from_metrics(&metrics);
    info!(?summary, "stopped");
    Ok(summary)
}

/// Normalises one message into the batch: an event only if it passes the standard's limits and
/// the clock ([`check_event`]); anything else is a dead letter (never an error of the run).
fn take(
    message: &BorrowedMessage<'_>,
    inputs: &mut HashMap<String, Input>,
    batch: &mut Batch,
    positions: &mut Positions,
    metrics: &ElasticMetrics,
    clock: Clock,
) {
    let topic = message.topic();
    let Some(input) = inputs.get_mut(topic) else {
        return;
    };
    metrics.read.with_label_values(&[topic]).inc();
    batch.documents += 1;
    batch.opened.get_or_insert_with(Instant::now);
    let outcome = match message.payload() {
        Some(payload) => input.normaliser.normalise(payload),
        None => Err(Rejection {
            reason: DeadLetterReason::NotJson,
            detail: "empty payload".into(),
        }),
    };
    let built = match outcome {
        Ok(EcsOutcome::Usage(event)) => check_event(&event, clock).map(|()| Some(event)),
        Ok(EcsOutcome::Skipped(metricset)) => {
            metrics.skipped.with_label_values(&[metricset]).inc();
            Ok(None)
        }
        Ok(EcsOutcome::Empty(metricset)) => {
            metrics.empty.with_label_values(&[metricset]).inc();
            Ok(None)
        }
        Ok(EcsOutcome::PodNetwork(sample)) => {
            let time = sample.time;
            let delta = input.network.delta(message.partition(), sample, clock);
            if let Ok(event) = &delta {
                if event.is_none() {
                    // The pod's first reading (or a redelivery): the baseline for the next.
                    metrics.skipped.with_label_values(&["pod"]).inc();
                }
                // Only a reading that passed the checks moves the horizon of what is kept.
                input
                    .network
                    .bound(MAX_PODS_WITH_COUNTERS, time, COUNTER_MEMORY_MS);
            }
            delta
        }
        Err(rejection) => Err(rejection),
    };
    match built {
        Ok(Some(event)) => batch.events.push(event),
        Ok(None) => {}
        Err(rejection) => {
            let detail = cut_detail(rejection.detail);
            metrics
                .dead_letters
                .with_label_values(&[rejection.reason.as_str()])
                .inc();
            warn!(topic, partition = message.partition(), offset = message.offset(), reason = rejection.reason.as_str(), %detail, "dead letter");
            batch.dead_letters.push(DeadLetter {
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                reason: rejection.reason,
                detail,
                topic: topic.to_owned(),
                partition: message.partition(),
                offset: message.offset(),
            });
        }
    }
    positions.advance(topic, message.partition(), message.offset() + 1);
}
