//! `usage-tracker elastic`: Elastic Agent / Metricbeat Kubernetes documents (ECS JSON) on Kafka
//! -> UsageEvents (Avro, Confluent framing) on the usage events topic.
//!
//! At least once: documents are read in batches; a batch's events and dead letters are
//! acknowledged by the broker before the batch's offsets are committed to the consumer group.
//! After a crash the uncommitted documents are read again and become the same events (the ids are
//! derived from the documents), which the tracker counts once.
//!
//! Like `run`, it serves `/metrics`, `/healthz` and `/readyz` on `[http] listen`
//! ([`ElasticMetrics`], `usage_tracker_elastic_*`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::config::Settings;
use crate::http::{self, Health};
use crate::ingest::ecs::{check_event, Clock, EcsNormaliser, EcsOutcome, NetworkCounters};
use crate::ingest::{DeadLetterReason, Rejection};
use crate::kafka::TopicSpec;
use crate::metrics::{counts, ElasticMetrics};
use crate::retry::Transience;
use crate::sink::kafka::{cut_detail, DeadLetter, KafkaSink};
use crate::standard::wire::RecordEncoder;
use crate::standard::UsageEvent;

/// Pods whose last network reading is kept before old ones are forgotten.
const MAX_PODS_WITH_COUNTERS: usize = 100_000;
/// How long the last network reading of a silent pod is kept once that many are.
const COUNTER_MEMORY_MS: i64 = 3_600_000;
/// Longest wait for one message before the loop looks at batches, shutdown and progress.
const POLL: Duration = Duration::from_millis(200);

/// Read Elastic Agent / Metricbeat documents and publish them as UsageEvents.
#[derive(Debug, Args)]
pub struct ElasticArgs {
    /// Configuration file (TOML); see its `[elastic]` section.
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Process everything available at start, publish, commit and exit (CronJob mode).
    #[arg(long)]
    until_caught_up: bool,
}

impl ElasticArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let settings = Settings::load(self.config.as_deref())?;
        let summary = ingest(&settings, self.until_caught_up, super::shutdown_signal()).await?;
        eprintln!("{summary}");
        Ok(ExitCode::SUCCESS)
    }
}

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
    normaliser: EcsNormaliser,
    /// Last network counter reading per pod of this topic (and the partition it came from).
    network: NetworkCounters,
}

/// Collects the partitions librdkafka revokes in a rebalance, for the loop to forget their
/// network counter state and uncommitted positions before it takes the next message.
#[derive(Default)]
struct RevokeContext {
    revoked: Mutex<Vec<(String, i32)>>,
}

impl ClientContext for RevokeContext {}

impl ConsumerContext for RevokeContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            revoked.extend(
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition())),
            );
        }
    }
}

impl RevokeContext {
    fn take(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

type ElasticConsumer = StreamConsumer<RevokeContext>;

/// Forgets what this consumer knew of the partitions revoked since the last call: their pods'
/// network readings (another consumer counts their next ones; if a partition comes back, its
/// first reading is a new baseline, never a delta over bytes the other one counted), and their
/// uncommitted positions (the new owner's commits are not overwritten; documents of the open
/// batch from those partitions are read again by the owner and become the same events).
fn forget_revoked(
    consumer: &ElasticConsumer,
    inputs: &mut HashMap<String, Input>,
    positions: &mut Positions,
    catch_up: &mut CatchUp,
) {
    for (topic, partition) in consumer.context().take() {
        if let Some(input) = inputs.get_mut(&topic) {
            input.network.revoke(partition);
        }
        positions.forget(&topic, partition);
        catch_up.forget(&topic, partition);
        info!(%topic, partition, "partition revoked; its network counter state is forgotten");
    }
}

/// Next offset to read, per partition, and whether it is committed yet.
#[derive(Debug, Default)]
struct Positions(Vec<Position>);

#[derive(Debug)]
struct Position {
    topic: String,
    partition: i32,
    next: i64,
    uncommitted: bool,
}

impl Positions {
    /// Records that everything before `next` is in the current batch (no allocation once the
    /// partition is known).
    fn advance(&mut self, topic: &str, partition: i32, next: i64) {
        match self
            .0
            .iter_mut()
            .find(|p| p.partition == partition && p.topic == topic)
        {
            Some(p) => {
                p.next = p.next.max(next);
                p.uncommitted = true;
            }
            None => self.0.push(Position {
                topic: topic.to_owned(),
                partition,
                next,
                uncommitted: true,
            }),
        }
    }

    /// A position read from the group at assignment (already committed).
    fn start(&mut self, topic: &str, partition: i32, next: i64) {
        if self.get(topic, partition).is_none() {
            self.0.push(Position {
                topic: topic.to_owned(),
                partition,
                next,
                uncommitted: false,
            });
        }
    }

    /// Forgets a revoked partition: its position is neither committed nor reported any more.
    fn forget(&mut self, topic: &str, partition: i32) {
        self.0
            .retain(|p| !(p.partition == partition && p.topic == topic));
    }

    fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0
            .iter()
            .find(|p| p.partition == partition && p.topic == topic)
            .map(|p| p.next)
    }

    /// The uncommitted positions, as a commit request.
    fn to_commit(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for p in self.0.iter().filter(|p| p.uncommitted) {
            let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next));
        }
        tpl
    }

    fn mark_committed(&mut self) {
        for p in &mut self.0 {
            p.uncommitted = false;
        }
    }
}

/// What the current batch publishes.
#[derive(Default)]
struct Batch {
    events: Vec<UsageEvent>,
    dead_letters: Vec<DeadLetter>,
    documents: usize,
    opened: Option<Instant>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.documents == 0
    }
}

/// The high watermarks to reach in `--until-caught-up` mode.
#[derive(Default)]
struct CatchUp {
    targets: BTreeMap<(String, i32), i64>,
    assigned: BTreeSet<(String, i32)>,
}

impl CatchUp {
    /// Notices new partitions: their high watermark becomes a target, their committed offset
    /// (else the low watermark) their starting position.
    fn refresh(
        &mut self,
        consumer: &ElasticConsumer,
        positions: &mut Positions,
    ) -> anyhow::Result<()> {
        let assignment = consumer.assignment().context("reading the assignment")?;
        let assigned: BTreeSet<(String, i32)> = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        if assigned == self.assigned {
            return Ok(());
        }
        let new: Vec<&(String, i32)> = assigned
            .iter()
            .filter(|k| !self.targets.contains_key(*k))
            .collect();
        if !new.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (topic, partition) in &new {
                tpl.add_partition(topic, *partition);
            }
            let committed = consumer
                .committed_offsets(tpl, Duration::from_secs(10))
                .context("reading committed offsets")?;
            for (topic, partition) in new {
                let (low, high) = consumer
                    .fetch_watermarks(topic, *partition, Duration::from_secs(10))
                    .with_context(|| format!("reading the watermarks of {topic}/{partition}"))?;
                let start = match committed
                    .find_partition(topic, *partition)
                    .map(|e| e.offset())
                {
                    Some(Offset::Offset(o)) => o,
                    _ => low,
                };
                positions.start(topic, *partition, start);
                self.targets.insert((topic.clone(), *partition), high);
            }
            info!(targets = ?self.targets, "high watermarks to reach");
        }
        self.assigned = assigned;
        Ok(())
    }

    /// Forgets a revoked partition; if it is assigned again, its committed offset and high
    /// watermark are read again.
    fn forget(&mut self, topic: &str, partition: i32) {
        let key = (topic.to_owned(), partition);
        self.targets.remove(&key);
        self.assigned.remove(&key);
    }

    fn reached(&self, positions: &Positions) -> bool {
        !self.assigned.is_empty()
            && self.assigned.iter().all(|key| {
                let target = self.targets.get(key).copied().unwrap_or(0);
                target == 0 || positions.get(&key.0, key.1).is_some_and(|p| p >= target)
            })
    }
}

/// Consumes the `[elastic]` topics until `shutdown` (or, with `until_caught_up`, until the input
/// available at start is processed); publishes and commits what it read.
async fn ingest(
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
        producer: super::publish::producer_config(settings)
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

/// Where a batch goes.
struct Publisher {
    producer: FutureProducer,
    encoder: RecordEncoder<UsageEvent>,
    topic: String,
    dead_letters: KafkaSink,
}

/// Publishes the batch (retrying until the broker acknowledges every message), then commits the
/// offsets read so far. A failed commit is only logged and tried again with the next batch: until
/// then the documents would be read again after a restart, and become the same events.
async fn flush(
    publisher: &Publisher,
    consumer: &ElasticConsumer,
    batch: &mut Batch,
    positions: &mut Positions,
    metrics: &ElasticMetrics,
) -> anyhow::Result<()> {
    let started = (!batch.is_empty()).then(Instant::now);
    if !batch.is_empty() {
        let batch = std::mem::take(batch);
        metrics
            .published
            .inc_by(publisher.publish(&batch).await? as u64);
    }
    let tpl = positions.to_commit();
    if tpl.count() > 0 {
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => positions.mark_committed(),
            Err(error) => {
                warn!(%error, "committing offsets failed; retried with the next batch")
            }
        }
    }
    if let Some(started) = started {
        metrics
            .batch_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(())
}

impl Publisher {
    /// Produces the batch's events and dead letters and waits for every acknowledgement; returns
    /// the number of events.
    async fn publish(&self, batch: &Batch) -> anyhow::Result<usize> {
        let mut encoded = Vec::with_capacity(batch.events.len());
        for event in &batch.events {
            let mut backoff = Duration::from_millis(200);
            let payload = loop {
                match self.encoder.encode(event).await {
                    Ok(payload) => break payload,
                    Err(error) if error.is_retriable() => {
                        warn!(%error, retry_in = ?backoff, "schema registry unavailable; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                    Err(error) => {
                        return Err(error)
                            .context("encoding a UsageEvent (is the schema registered?)")
                    }
                }
            };
            encoded.push((event.subject.cluster_id.as_str(), payload));
        }
        let mut pending: Vec<usize> = (0..encoded.len()).collect();
        let mut backoff = Duration::from_millis(200);
        while !pending.is_empty() {
            let sends = pending.iter().map(|&i| {
                let (key, payload) = &encoded[i];
                self.producer.send(
                    FutureRecord::to(&self.topic).key(*key).payload(payload),
                    Duration::from_secs(30),
                )
            });
            let results = futures::future::join_all(sends).await;
            let mut failed = Vec::new();
            for (&i, result) in pending.iter().zip(results) {
                if let Err((error, _)) = result {
                    if !error.is_transient() {
                        // Events are within the standard's limits: this is the configuration
                        // (authorization, topic), and retrying would hang.
                        return Err(error).with_context(|| {
                            format!(
                                "producing an event to {}: the broker refuses it",
                                self.topic
                            )
                        });
                    }
                    warn!(%error, topic = %self.topic, "producing an event failed");
                    failed.push(i);
                }
            }
            if !failed.is_empty() {
                warn!(failed = failed.len(), retry_in = ?backoff, "retrying unacknowledged events");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            pending = failed;
        }
        // Dead letters one by one, so that one the broker will never take (a document as large
        // as the topic's limit, plus headers) cannot hold up the run: it goes again without its
        // payload, then without its key, saying so in `dlq.error`.
        let mut pending: Vec<Cow<'_, DeadLetter>> =
            batch.dead_letters.iter().map(Cow::Borrowed).collect();
        let mut backoff = Duration::from_millis(200);
        while !pending.is_empty() {
            let sends = pending
                .iter()
                .map(|letter| self.dead_letters.dead_letters(std::slice::from_ref(letter)));
            let results = futures::future::join_all(sends).await;
            let mut failed = Vec::new();
            let mut transient = false;
            for (letter, result) in pending.into_iter().zip(results) {
                match result {
                    Ok(()) => {}
                    Err(error) if error.is_transient() => {
                        warn!(%error, "producing a dead letter failed");
                        transient = true;
                        failed.push(letter);
                    }
                    Err(error) => match smaller(&letter, &error) {
                        Some(smaller) => {
                            warn!(%error, topic = %letter.topic, partition = letter.partition, offset = letter.offset, "the broker refuses a dead letter; sending it without its payload or key");
                            failed.push(Cow::Owned(smaller));
                        }
                        None => return Err(error).context("producing a dead letter"),
                    },
                }
            }
            if transient {
                warn!(retry_in = ?backoff, "retrying unacknowledged dead letters");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            pending = failed;
        }
        Ok(encoded.len())
    }
}

/// A dead letter the broker refused for good, without its payload (or, if it had none any more,
/// without its key), the omission noted in its detail; `None` when nothing is left to take out.
fn smaller(letter: &DeadLetter, error: &dyn fmt::Display) -> Option<DeadLetter> {
    let mut smaller = letter.clone();
    let left_out = if let Some(payload) = smaller.payload.take() {
        format!("payload of {} bytes", payload.len())
    } else if let Some(key) = smaller.key.take() {
        format!("key of {} bytes", key.len())
    } else {
        return None;
    };
    smaller.detail = format!(
        "{}; the original {left_out} is left out: the dead-letter topic refused it ({error})",
        letter.detail
    );
    Some(smaller)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::ecs::{CapacitySource, UsageSource};

    #[test]
    fn the_elastic_section_parses_with_defaults_and_refuses_unknown_keys() {
        let settings: Settings = toml::from_str(
            r#"
            [elastic]
            topics = ["metrics-a", "metrics-b"]
            default_cluster_id = "gke-prod-1"
            cluster_ids = { "metrics-b" = "aks-prod-2" }
            default_period = "30s"
            usage_from = "pod"
            "#,
        )
        .unwrap();
        let e = &settings.elastic;
        assert_eq!(e.group_id, "usage-tracker-elastic");
        assert_eq!(e.usage_from, UsageSource::Pod);
        assert_eq!(e.capacity_from, CapacitySource::StateNode);
        let a = e.ecs_settings("metrics-a");
        assert_eq!(a.default_cluster_id.as_deref(), Some("gke-prod-1"));
        assert_eq!(a.source, "//elastic-agent/metrics-a");
        assert_eq!(a.default_period, Duration::from_secs(30));
        let b = e.ecs_settings("metrics-b");
        assert_eq!(b.default_cluster_id.as_deref(), Some("aks-prod-2"));

        let defaults = Settings::default().elastic;
        assert_eq!(defaults.topics, vec!["elastic.metrics.kubernetes"]);
        assert_eq!(defaults.default_period, Duration::from_secs(10));
        assert_eq!(defaults.usage_from, UsageSource::Container);

        for bad in [
            "[elastic]\ntopic = [\"x\"]",
            "[elastic]\nusage_from = \"node\"",
            "[elastic]\ncapacity_from = \"kubelet\"",
        ] {
            assert!(toml::from_str::<Settings>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn positions_commit_only_what_advanced() {
        let mut p = Positions::default();
        p.start("a", 0, 5);
        p.advance("a", 1, 3);
        p.advance("a", 1, 4);
        p.advance("a", 1, 2);
        assert_eq!(p.get("a", 1), Some(4), "never moves back");
        let tpl = p.to_commit();
        assert_eq!(tpl.count(), 1);
        assert_eq!(
            tpl.find_partition("a", 1).unwrap().offset(),
            Offset::Offset(4)
        );
        p.mark_committed();
        assert_eq!(p.to_commit().count(), 0);
        assert_eq!(p.get("a", 0), Some(5));
        // A revoked partition is neither committed nor known any more.
        p.advance("a", 1, 9);
        p.advance("a", 0, 6);
        p.forget("a", 1);
        let tpl = p.to_commit();
        assert_eq!(tpl.count(), 1);
        assert!(tpl.find_partition("a", 1).is_none());
        assert_eq!(p.get("a", 1), None);
    }

    #[test]
    fn details_are_cut_and_refused_dead_letters_shrink() {
        assert_eq!(cut_detail("short".into()), "short");
        let cut = cut_detail(format!("x{}", "é".repeat(1000)));
        assert!(
            cut.starts_with(&format!("x{}", "é".repeat(511))) && cut.ends_with("... (2001 bytes)")
        );
        let letter = DeadLetter {
            key: Some(b"k".to_vec()),
            payload: Some(vec![b'x'; 2_000_000]),
            reason: DeadLetterReason::InvalidString,
            detail: "namespace too long".into(),
            topic: "t".into(),
            partition: 1,
            offset: 7,
        };
        let first = smaller(&letter, &"Broker: Message size too large").unwrap();
        assert_eq!(
            (first.payload.as_ref(), first.key.as_deref()),
            (None, Some(&b"k"[..]))
        );
        assert!(
            first.detail.starts_with(
                "namespace too long; the original payload of 2000000 bytes is left out"
            ),
            "{}",
            first.detail
        );
        assert_eq!((first.reason, first.offset), (letter.reason, letter.offset));
        let second = smaller(&first, &"again").unwrap();
        assert_eq!(second.key, None);
        assert!(smaller(&second, &"again").is_none());
    }
}
