//! Wires the stages: Kafka input -> decode -> ingest -> accountant -> sinks, with checkpoints.
//!
//! Usage and cost topics are co-partitioned by cluster id, so partition `p` of both topics is a
//! self-contained *slot*: every namespace of the clusters keyed to it, their bills and their
//! windows. Instances share the slots through a Kafka consumer group (range assignor, so both
//! topics' partition `p` go to the same instance). An instance claims a slot in Postgres when it
//! is assigned (which fences the previous owner), restores the slot's last checkpoint and seeks
//! both partitions to the positions stored with it. A checkpoint commits a slot's records, state,
//! input positions and the Kafka messages it publishes (a transactional outbox) in one
//! transaction, refused if the slot was claimed since; the messages go to Kafka only after that
//! commit, and a new owner publishes whatever a crashed one left staged. So a (key, revision) on
//! the records topic has one content, and an instance that lost its slot publishes nothing new.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::accounting::{Accountant, Checkpoint, CostAdmission, RateCard};
use crate::allocate::{AllocationPolicy, CostAllocator};
use crate::http::{self, Health};
use crate::ingest::{self, CostScope, DeadLetterReason, Exclusions, Intake, Rejection};
use crate::kafka::{KafkaConnection, TopicSpec};
use crate::metrics::{counts, Metrics};
use crate::retry::{Backoff, Transience};
use crate::sink::kafka::{DeadLetter, KafkaSink};
use crate::sink::outbox::OutboxMessage;
use crate::sink::postgres::{CommitError, PartitionPosition, PostgresSink, RestoredState};
use crate::standard::registry::RegistryEndpoint;
use crate::standard::wire::{RecordDecoder, WireError};
use crate::standard::{CostEvent, EpochMillis, UsageEvent, WindowStatus};
use crate::time::now_ms;
use crate::window::{Admission, CostLedger, Watermarks, WindowConfig, WindowStore};

/// Topics the tracker reads and writes (`[topics]` in the configuration).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// UsageEvents in.
    pub usage_events: String,
    /// CostEvents in.
    pub cost_events: String,
    /// UsageRecords out.
    pub usage_records: String,
    /// Dead letters out.
    pub dead_letters: String,
    /// Partitions of topics the tracker creates.
    pub partitions: i32,
    /// Replication factor of topics the tracker creates.
    pub replication: i32,
}

impl Default for Topics {
    fn default() -> Self {
        use crate::standard::topics;
        Self {
            usage_events: topics::USAGE_EVENTS.into(),
            cost_events: topics::COST_EVENTS.into(),
            usage_records: topics::USAGE_RECORDS.into(),
            dead_letters: topics::DEAD_LETTERS.into(),
            partitions: 3,
            replication: 1,
        }
    }
}

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Brokers.
    pub kafka: KafkaConnection,
    /// Consumer group shared by all instances.
    pub group_id: String,
    /// Schema registry.
    pub registry: RegistryEndpoint,
    /// Postgres URL.
    pub database_url: String,
    /// Topics.
    pub topics: Topics,
    /// Time rules.
    pub window: WindowConfig,
    /// Allocation rules.
    pub policy: AllocationPolicy,
    /// Estimated prices until bills arrive.
    pub rate_card: Option<RateCard>,
    /// What stays out of the accounting.
    pub exclusions: Exclusions,
    /// Clusters of untagged bill lines.
    pub cost_scopes: Vec<CostScope>,
    /// How often records are emitted and state committed.
    pub checkpoint_interval: Duration,
    /// Stop once everything available at start is processed (CronJob mode).
    pub until_caught_up: bool,
    /// Address of `/metrics`, `/healthz`, `/readyz`; `None` serves nothing.
    pub http_listen: Option<SocketAddr>,
    /// How long the final flush on shutdown may take.
    pub shutdown_timeout: Duration,
}

/// Counters of one run, read from the metrics at the end and logged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Messages read per topic.
    pub consumed: BTreeMap<String, u64>,
    /// Usage samples counted.
    pub usage_applied: u64,
    /// Of those, into windows that had closed (late data).
    pub usage_late: u64,
    /// Duplicates skipped.
    pub duplicates: u64,
    /// Valid usage events without a measurement of an accounted resource.
    pub usage_unaccounted: u64,
    /// Events left out by exclusion rules, per rule.
    pub excluded: BTreeMap<String, u64>,
    /// Bill lines per outcome (applied, unchanged).
    pub cost_lines: BTreeMap<String, u64>,
    /// Dead letters per reason.
    pub dead_letters: BTreeMap<String, u64>,
    /// Records published per window status.
    pub records_emitted: BTreeMap<String, u64>,
    /// Checkpoints committed (one per slot and interval).
    pub checkpoints: u64,
}

impl RunSummary {
    fn from_metrics(m: &Metrics) -> Self {
        Self {
            consumed: counts(&m.consumed),
            usage_applied: m.usage_applied.get(),
            usage_late: m.late.get(),
            duplicates: m.duplicates.get(),
            usage_unaccounted: m.unaccounted.get(),
            excluded: counts(&m.excluded),
            cost_lines: counts(&m.cost_lines),
            dead_letters: counts(&m.dead_letters),
            records_emitted: counts(&m.records),
            checkpoints: m.checkpoints.get(),
        }
    }
}

type PartitionKey = (String, i32);

/// Checkpoint intervals without a completed checkpoint round after which `/readyz` reports the
/// pipeline stalled (but at least [`STALL_MIN`]).
const STALL_INTERVALS: u32 = 5;
const STALL_MIN: Duration = Duration::from_secs(60);

/// A change of the consumer group's assignment, as seen by librdkafka's rebalance callback.
#[derive(Debug)]
enum AssignmentChange {
    Assigned(Vec<PartitionKey>),
    Revoked(Vec<PartitionKey>),
}

/// Forwards rebalances to the pipeline loop. Newly assigned partitions are paused until the
/// loop has restored their slot and sought them to the checkpointed positions.
struct AssignmentContext {
    changes: mpsc::Sender<AssignmentChange>,
    /// Lag per partition, from librdkafka's statistics (no extra broker round trips).
    lag: prometheus::IntGaugeVec,
}

fn partitions(tpl: &TopicPartitionList) -> Vec<PartitionKey> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for AssignmentContext {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in t.partitions.iter().filter(|(id, _)| **id >= 0) {
                if p.consumer_lag >= 0 {
                    self.lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for AssignmentContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let _ = self
                .changes
                .send(AssignmentChange::Revoked(partitions(tpl)));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if let Err(error) = consumer.pause(tpl) {
                warn!(%error, "pausing newly assigned partitions");
            }
            let _ = self
                .changes
                .send(AssignmentChange::Assigned(partitions(tpl)));
        }
    }
}

type TrackerConsumer = StreamConsumer<AssignmentContext>;

/// One slot owned by this instance.
struct Slot {
    epoch: i64,
    accountant: Accountant,
    watermarks: Watermarks,
    positions: BTreeMap<PartitionKey, i64>,
    dead_letters: Vec<DeadLetter>,
    /// High watermarks at claim time (`--until-caught-up`).
    targets: BTreeMap<PartitionKey, i64>,
    /// Restored positions not yet read from: the first record read must be at that offset.
    sought: BTreeMap<PartitionKey, i64>,
}

/// The running pipeline.
struct Pipeline {
    config: PipelineConfig,
    owner: String,
    slots: BTreeMap<i32, Slot>,
    usage_decoder: RecordDecoder<UsageEvent>,
    cost_decoder: RecordDecoder<CostEvent>,
    kafka_sink: KafkaSink,
    postgres: PostgresSink,
    metrics: Metrics,
    health: Arc<Health>,
}

/// Runs the tracker until `shutdown` resolves (or, in `until_caught_up` mode, until the input
/// available when each slot was claimed is processed), then flushes and commits.
pub async fn run(
    config: PipelineConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    ensure_topics(&config).await?;
    let postgres = PostgresSink::connect(&config.database_url)
        .await
        .context("connecting to Postgres")?;
    let metrics = Metrics::new();
    let mut health = Health::new(
        metrics.registry().clone(),
        Some(postgres.pool().clone()),
        config.registry.clone(),
    );
    // Not ready after this long without a completed checkpoint round (an outage being retried,
    // a slot that cannot be written).
    health.stall_after = Some((config.checkpoint_interval * STALL_INTERVALS).max(STALL_MIN));
    let health = Arc::new(health);
    if let Some(listen) = config.http_listen {
        http::serve(listen, health.clone())
            .await
            .with_context(|| format!("serving http on {listen}"))?;
    }
    let (changes_tx, changes) = mpsc::channel();
    let consumer = subscribe(&config, changes_tx, &metrics)?;
    health.broker_ok.store(true, Ordering::Relaxed);
    let mut pipeline = Pipeline::new(config, postgres, metrics, health)?;
    tokio::pin!(shutdown);
    let mut last_checkpoint = Instant::now();
    loop {
        while let Ok(change) = changes.try_recv() {
            pipeline.rebalance(&consumer, change).await?;
        }
        if pipeline.config.until_caught_up && pipeline.caught_up() {
            break;
        }
        let next = tokio::time::timeout(Duration::from_millis(200), consumer.recv());
        tokio::select! {
            _ = &mut shutdown => { info!("shutting down"); break; }
            received = next => match received {
                Ok(Ok(message)) => {
                    pipeline.process(&message).await;
                    pipeline.health.broker_ok.store(true, Ordering::Relaxed);
                }
                Ok(Err(error)) => {
                    warn!(%error, "consumer error");
                    pipeline.health.broker_ok.store(false, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(_idle) => {}
            }
        }
        if last_checkpoint.elapsed() >= pipeline.config.checkpoint_interval {
            pipeline.checkpoint_all(&consumer).await?;
            last_checkpoint = Instant::now();
        }
    }
    let deadline = pipeline.config.shutdown_timeout;
    match tokio::time::timeout(deadline, pipeline.checkpoint_all(&consumer)).await {
        Ok(result) => result?,
        // Whatever was read since the last checkpoint is not written: say so with the exit
        // status (the next start resumes from the last checkpoint, so nothing is lost).
        Err(_) => anyhow::bail!(
            "the final checkpoint did not finish within {deadline:?}: what was read since the last checkpoint is not written (the next start resumes from there)"
        ),
    }
    let summary = RunSummary::from_metrics(&pipeline.metrics);
    info!(?summary, "stopped");
    Ok(summary)
}

async fn ensure_topics(config: &PipelineConfig) -> anyhow::Result<()> {
    let t = &config.topics;
    let specs = [
        TopicSpec::new(&t.usage_events, t.partitions, t.replication),
        TopicSpec::new(&t.cost_events, t.partitions, t.replication),
        TopicSpec::new(&t.usage_records, t.partitions, t.replication).compacted(),
        TopicSpec::new(&t.dead_letters, t.partitions, t.replication),
    ];
    let created = config
        .kafka
        .ensure_topics(&specs)
        .await
        .context("creating topics")?;
    if !created.is_empty() {
        info!(?created, "created topics");
    }
    Ok(())
}

/// Joins the group on both input topics, after checking they are co-partitioned.
fn subscribe(
    config: &PipelineConfig,
    changes: mpsc::Sender<AssignmentChange>,
    metrics: &Metrics,
) -> anyhow::Result<TrackerConsumer> {
    let consumer: TrackerConsumer = config
        .kafka
        .consumer_config()
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        // Range gives partition p of both topics to the same member: slots stay whole.
        .set("partition.assignment.strategy", "range")
        .set("statistics.interval.ms", "10000")
        .create_with_context(AssignmentContext {
            changes,
            lag: metrics.lag.clone(),
        })
        .context("creating the Kafka consumer")?;
    let t = &config.topics;
    let count = |topic: &str| -> anyhow::Result<usize> {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("reading metadata of {topic}"))?;
        Ok(metadata.topics().iter().map(|t| t.partitions().len()).sum())
    };
    let (usage, cost) = (count(&t.usage_events)?, count(&t.cost_events)?);
    anyhow::ensure!(
        usage == cost,
        "{} has {usage} partitions and {} has {cost}: they must be co-partitioned (same count, keyed by cluster id)",
        t.usage_events,
        t.cost_events
    );
    consumer
        .subscribe(&[&t.usage_events, &t.cost_events])
        .context("subscribing")?;
    Ok(consumer)
}

impl Pipeline {
    fn new(
        config: PipelineConfig,
        postgres: PostgresSink,
        metrics: Metrics,
        health: Arc<Health>,
    ) -> anyhow::Result<Self> {
        let registry = config.registry.sr_settings()?;
        let kafka_sink = KafkaSink::new(
            &config.kafka,
            &config.registry,
            &config.topics.usage_records,
            &config.topics.dead_letters,
        )?;
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        Ok(Self {
            owner: format!("{host}/{}/{}", std::process::id(), now_ms()),
            usage_decoder: RecordDecoder::new(registry.clone()),
            cost_decoder: RecordDecoder::new(registry),
            config,
            slots: BTreeMap::new(),
            kafka_sink,
            postgres,
            metrics,
            health,
        })
    }

    async fn rebalance(
        &mut self,
        consumer: &TrackerConsumer,
        change: AssignmentChange,
    ) -> anyhow::Result<()> {
        match change {
            AssignmentChange::Revoked(partitions) => {
                let slots: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
                for slot in slots {
                    // Best effort: if the next owner claimed it already, the commit is refused
                    // and the next owner redoes this work from the last checkpoint.
                    self.checkpoint(consumer, slot).await?;
                    self.slots.remove(&slot);
                    self.metrics
                        .watermark
                        .remove_label_values(&[&slot.to_string()])
                        .ok();
                }
                info!(?partitions, "revoked");
            }
            AssignmentChange::Assigned(partitions) => {
                self.health.assigned.store(true, Ordering::Relaxed);
                let mut slots: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
                slots.sort_unstable();
                slots.dedup();
                for slot in slots {
                    self.claim(consumer, slot).await?;
                }
                info!(?partitions, "assigned");
            }
        }
        Ok(())
    }

    /// Claims a slot, restores its state and resumes its partitions at the stored positions.
    async fn claim(&mut self, consumer: &TrackerConsumer, slot: i32) -> anyhow::Result<()> {
        let topics = [
            self.config.topics.usage_events.as_str(),
            self.config.topics.cost_events.as_str(),
        ];
        // A database outage pauses the claim (the slot's partitions stay paused) instead of
        // ending the run.
        let mut backoff = Backoff::default();
        let (epoch, restored) = loop {
            match self.postgres.claim(slot, &self.owner, &topics).await {
                Ok(claimed) => break claimed,
                Err(error) => {
                    self.metrics
                        .sink_errors
                        .with_label_values(&["postgres"])
                        .inc();
                    let retry_in = backoff.next_delay();
                    warn!(slot, %error, ?retry_in, "claiming a slot failed; retrying");
                    tokio::time::sleep(retry_in).await;
                }
            }
        };
        let positions: BTreeMap<PartitionKey, i64> = restored
            .positions
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.next_offset))
            .collect();
        let mut tpl = TopicPartitionList::new();
        let mut targets = BTreeMap::new();
        for topic in topics {
            let key = (topic.to_owned(), slot);
            let offset = positions
                .get(&key)
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            consumer
                .seek(topic, slot, offset, Duration::from_secs(10))
                .with_context(|| format!("seeking {topic}/{slot}"))?;
            tpl.add_partition(topic, slot);
            if self.config.until_caught_up {
                let (_, high) = consumer.fetch_watermarks(topic, slot, Duration::from_secs(10))?;
                targets.insert(key, high);
            }
        }
        // A former owner may have committed a checkpoint and died before publishing it.
        let mut backoff = Backoff::default();
        loop {
            match self.publish_outbox(slot, epoch).await {
                Ok(0) => break,
                Ok(count) => {
                    info!(slot, count, "published what the former owner had committed");
                    break;
                }
                Err(error) if matches!(error.downcast_ref(), Some(CommitError::Fenced { .. })) => {
                    warn!(
                        slot,
                        "slot claimed by another instance while being restored"
                    );
                    return Ok(());
                }
                Err(error) if !error.is_transient() => return Err(error),
                Err(error) => {
                    let retry_in = backoff.next_delay();
                    warn!(slot, error = %format!("{error:#}"), ?retry_in, "publishing the slot's outbox failed; retrying");
                    tokio::time::sleep(retry_in).await;
                }
            }
        }
        let slot_state = self.restore(epoch, restored, positions, targets)?;
        self.slots.insert(slot, slot_state);
        consumer.resume(&tpl).context("resuming partitions")?;
        self.metrics.slots.set(self.slots.len() as i64);
        Ok(())
    }

    fn restore(
        &self,
        epoch: i64,
        restored: RestoredState,
        positions: BTreeMap<PartitionKey, i64>,
        targets: BTreeMap<PartitionKey, i64>,
    ) -> anyhow::Result<Slot> {
        let window = self.config.window;
        let mut store = WindowStore::new(window);
        for (cluster, start, state) in restored.windows {
            store
                .import(&cluster, start, state)
                .map_err(anyhow::Error::msg)?;
        }
        for (start, key) in restored.seen {
            store.import_seen(start, key);
        }
        store.import_watermark(restored.watermark);
        let mut ledger = CostLedger::new(window.spec);
        for line in restored.cost_lines {
            ledger.upsert(line);
        }
        ledger.take_unsaved();
        let mut watermarks = Watermarks::default();
        let now = now_ms();
        for p in &restored.positions {
            if let Some(t) = p.max_event_time {
                watermarks.restore(&p.topic, p.partition, t, now);
            }
        }
        let allocator = CostAllocator::new(self.config.policy.clone());
        Ok(Slot {
            epoch,
            accountant: Accountant::new(store, ledger, allocator, self.config.rate_card.clone()),
            watermarks,
            sought: positions.clone(),
            positions,
            dead_letters: Vec::new(),
            targets,
        })
    }

    fn caught_up(&self) -> bool {
        self.health.assigned.load(Ordering::Relaxed)
            && self.slots.values().all(|slot| {
                slot.targets.iter().all(|(key, end)| {
                    *end == 0 || slot.positions.get(key).is_some_and(|p| p >= end)
                })
            })
    }

    async fn process(&mut self, message: &BorrowedMessage<'_>) {
        let topic = message.topic().to_owned();
        let slot_id = message.partition();
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return; // Fetched before a revocation: the slot's new owner reads it.
        };
        if let Some(sought) = slot.sought.remove(&(topic.clone(), slot_id)) {
            if message.offset() > sought {
                // A broker that skips records (or retention that deleted them) must not do it
                // silently. Transaction markers also take offsets, so a producer using
                // transactions can cause a harmless gap.
                warn!(
                    topic,
                    partition = slot_id,
                    sought,
                    received = message.offset(),
                    "the first record after seeking to a checkpointed position lies beyond it"
                );
                self.metrics.offset_gaps.with_label_values(&[&topic]).inc();
            }
        }
        self.metrics.consumed.with_label_values(&[&topic]).inc();
        let outcome = if topic == self.config.topics.usage_events {
            self.process_usage(slot_id, message).await
        } else {
            self.process_cost(slot_id, message).await
        };
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return;
        };
        if let Err(rejection) = outcome {
            self.metrics
                .dead_letters
                .with_label_values(&[rejection.reason.as_str()])
                .inc();
            warn!(topic, partition = slot_id, offset = message.offset(), reason = rejection.reason.as_str(), detail = %rejection.detail, "dead letter");
            slot.dead_letters.push(DeadLetter {
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                reason: rejection.reason,
                detail: rejection.detail,
                topic: topic.clone(),
                partition: slot_id,
                offset: message.offset(),
            });
        }
        slot.positions
            .insert((topic, slot_id), message.offset() + 1);
    }

    async fn process_usage(
        &mut self,
        slot_id: i32,
        message: &BorrowedMessage<'_>,
    ) -> Result<(), Rejection> {
        let mut waited = Duration::ZERO;
        let event = decode(&self.usage_decoder, message, &mut waited).await;
        self.forgive_stall(waited.as_millis() as i64);
        let event = event?;
        self.metrics
            .decoded
            .with_label_values(&[message.topic()])
            .inc();
        let now = now_ms();
        let intake = ingest::usage_sample(
            &event,
            &self.config.exclusions,
            now,
            self.config.window.future_skew_ms,
        )?;
        let Some(sample) = self.accepted(intake) else {
            return Ok(());
        };
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return Ok(());
        };
        slot.watermarks
            .observe(message.topic(), slot_id, sample.end, now);
        match slot.accountant.usage(&sample) {
            Admission::Applied => self.metrics.usage_applied.inc(),
            Admission::AppliedLate => {
                self.metrics.usage_applied.inc();
                self.metrics.late.inc();
            }
            Admission::Duplicate => self.metrics.duplicates.inc(),
            Admission::TooLate => {
                return Err(Rejection {
                    reason: DeadLetterReason::TooLate,
                    detail: format!(
                        "interval starting {} is past the retention horizon",
                        sample.start
                    ),
                })
            }
        }
        Ok(())
    }

    /// What to account of an intake; exclusions are counted.
    fn accepted<T>(&self, intake: Intake<T>) -> Option<T> {
        match intake {
            Intake::Accepted(item) => Some(item),
            Intake::Excluded(rule) => {
                self.metrics
                    .excluded
                    .with_label_values(&[rule.as_str()])
                    .inc();
                None
            }
            Intake::Empty => {
                self.metrics.unaccounted.inc();
                None
            }
        }
    }

    async fn process_cost(
        &mut self,
        slot_id: i32,
        message: &BorrowedMessage<'_>,
    ) -> Result<(), Rejection> {
        let mut waited = Duration::ZERO;
        let event = decode(&self.cost_decoder, message, &mut waited).await;
        self.forgive_stall(waited.as_millis() as i64);
        let event = event?;
        self.metrics
            .decoded
            .with_label_values(&[message.topic()])
            .inc();
        let intake = ingest::cost_line(
            &event,
            &self.config.exclusions,
            &self.config.cost_scopes,
            now_ms(),
        )?;
        let Some(line) = self.accepted(intake) else {
            return Ok(());
        };
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return Ok(());
        };
        match slot.accountant.cost(line) {
            CostAdmission::Applied => self
                .metrics
                .cost_lines
                .with_label_values(&["applied"])
                .inc(),
            CostAdmission::Unchanged => self
                .metrics
                .cost_lines
                .with_label_values(&["unchanged"])
                .inc(),
            CostAdmission::TooLate { expired, windows } => {
                return Err(Rejection::new(
                    DeadLetterReason::TooLate,
                    format!("{expired} of the {windows} windows of the charge period are past the retention horizon"),
                ))
            }
            CostAdmission::Refused(reason, detail) => return Err(Rejection::new(reason, detail)),
        }
        Ok(())
    }

    /// Publishes what committed checkpoints of the slot staged, under the slot's lock, and
    /// forgets it; returns how many messages went out.
    async fn publish_outbox(&self, slot_id: i32, epoch: i64) -> anyhow::Result<usize> {
        let pending = self.postgres.pending_outbox(slot_id, epoch).await?;
        let count = pending.messages().len();
        if count > 0 {
            timed(
                &self.metrics,
                "kafka",
                count,
                self.kafka_sink.send_all(pending.messages()),
            )
            .await?;
        }
        pending.published().await?;
        Ok(count)
    }

    /// Checkpoints every slot. Time spent here beyond a normal round (retrying an outage) is
    /// not idleness of the input: the watermarks' clocks are moved on by it, so a stall of the
    /// process itself never turns its backlog into `too_late`.
    async fn checkpoint_all(&mut self, consumer: &TrackerConsumer) -> anyhow::Result<()> {
        let started = now_ms();
        let slots: Vec<i32> = self.slots.keys().copied().collect();
        for slot in slots {
            self.checkpoint(consumer, slot).await?;
        }
        let finished = now_ms();
        self.forgive_stall(finished - started);
        self.health
            .last_checkpoint_ms
            .store(finished, Ordering::Relaxed);
        Ok(())
    }

    /// Moves every partition's idle clock on by `stalled_ms` of processing time during which
    /// this process read nothing (a retry loop), when that was longer than a second.
    fn forgive_stall(&mut self, stalled_ms: i64) {
        if stalled_ms > 1_000 {
            for slot in self.slots.values_mut() {
                slot.watermarks.forgive(stalled_ms);
            }
        }
    }

    /// Emits, publishes and commits one slot. Retries transient failures until it succeeds
    /// (consumption pauses meanwhile, nothing is dropped) or the slot turns out to belong to
    /// another instance; a permanent failure is returned.
    async fn checkpoint(&mut self, consumer: &TrackerConsumer, slot_id: i32) -> anyhow::Result<()> {
        let window = self.config.window;
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return Ok(());
        };
        if let Some(w) =
            slot.watermarks
                .advance(now_ms(), window.allowed_lateness_ms, window.idle_timeout_ms)
        {
            slot.accountant.advance_to(w);
        }
        let checkpoint = slot.accountant.take_checkpoint();
        let dead_letters = std::mem::take(&mut slot.dead_letters);
        let positions: Vec<PartitionPosition> = slot
            .positions
            .iter()
            .map(|((topic, partition), offset)| PartitionPosition {
                topic: topic.clone(),
                partition: *partition,
                next_offset: *offset,
                max_event_time: slot
                    .watermarks
                    .max_event_times()
                    .find(|(t, p, _)| t == topic && p == partition)
                    .map(|(_, _, m)| m),
            })
            .collect();
        let epoch = slot.epoch;
        let newest_event = slot.watermarks.max_event_times().map(|(_, _, t)| t).max();
        let open_keys = self
            .slots
            .values()
            .map(|s| s.accountant.store().open_keys() as i64);
        self.metrics.windows_open.set(open_keys.sum());
        let mut backoff = Backoff::default();
        // Transactional outbox: the messages are encoded once, staged in the checkpoint's own
        // transaction, and published only after it commits. A retry redoes only what is left.
        let mut messages: Option<Vec<OutboxMessage>> = None;
        let mut committed = false;
        loop {
            let attempt = async {
                if messages.is_none() {
                    messages = Some(
                        self.kafka_sink
                            .checkpoint_messages(
                                &checkpoint.records,
                                &checkpoint.withdrawn,
                                &dead_letters,
                            )
                            .await?,
                    );
                }
                if !committed {
                    let staged = messages.as_deref().unwrap_or_default();
                    if fault_requested(Fault::StallBeforeCommit) && !staged.is_empty() {
                        if let Some(stall) = stall_once() {
                            warn!(?stall, "injected fault: stalling before a commit");
                            tokio::time::sleep(stall).await;
                        }
                    }
                    timed(&self.metrics, "postgres", checkpoint.records.len(), async {
                        self.postgres
                            .commit(slot_id, epoch, &checkpoint, &positions, staged)
                            .await
                    })
                    .await?;
                    committed = true;
                    if fault_requested(Fault::AbortAfterCommit) && !staged.is_empty() {
                        std::process::abort();
                    }
                }
                self.publish_outbox(slot_id, epoch).await?;
                anyhow::Ok(())
            };
            match attempt.await {
                Ok(()) => break,
                Err(error) if matches!(error.downcast_ref(), Some(CommitError::Fenced { .. })) => {
                    warn!(
                        slot = slot_id,
                        "slot claimed by another instance; dropping its uncommitted state"
                    );
                    self.slots.remove(&slot_id);
                    return Ok(());
                }
                Err(error) if !error.is_transient() => {
                    // It would fail the same way forever: stop (the slot's input stays
                    // uncommitted, so nothing is lost) and say why, instead of hanging.
                    return Err(
                        error.context(format!("checkpoint of slot {slot_id} failed permanently"))
                    );
                }
                Err(error) => {
                    let retry_in = backoff.next_delay();
                    warn!(error = %format!("{error:#}"), ?retry_in, "checkpoint failed; consumption paused");
                    tokio::time::sleep(retry_in).await;
                }
            }
        }
        self.observe_checkpoint(slot_id, &checkpoint, newest_event);
        // Also in the group's offsets, so standard Kafka tooling shows the lag (Postgres stays
        // the source of truth).
        let mut tpl = TopicPartitionList::new();
        for p in &positions {
            let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next_offset));
        }
        if let Err(error) = consumer.commit(&tpl, CommitMode::Async) {
            warn!(%error, "committing offsets to the group (monitoring only)");
        }
        Ok(())
    }

    fn observe_checkpoint(
        &self,
        slot_id: i32,
        checkpoint: &Checkpoint,
        newest_event: Option<EpochMillis>,
    ) {
        let m = &self.metrics;
        m.checkpoints.inc();
        for record in &checkpoint.records {
            let status = if record.window_status == WindowStatus::Closed {
                "closed"
            } else {
                "open"
            };
            m.records.with_label_values(&[status]).inc();
            if record.revision > 1 {
                m.revisions.inc();
            }
        }
        m.withdrawn.inc_by(checkpoint.withdrawn.len() as u64);
        for ((currency, kind), change) in &checkpoint.cost_changes {
            m.cost_micros
                .with_label_values(&[currency.as_str(), kind])
                .add(*change);
        }
        if let Some(w) = checkpoint.watermark {
            m.watermark
                .with_label_values(&[&slot_id.to_string()])
                .set(w / 1000);
        }
        if let Some(t) = newest_event.filter(|_| !checkpoint.records.is_empty()) {
            m.freshness
                .observe(((now_ms() - t) as f64 / 1000.0).max(0.0));
        }
    }
}

/// Faults a test can inject into a tracker process through `USAGE_TRACKER_FAULT`, to prove what
/// happens after a crash or a stall at that point (tests/outbox.rs, tests/faults.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `abort-after-commit`: die right after the first checkpoint with messages commits, before
    /// they are published.
    AbortAfterCommit,
    /// `stall-before-commit:SECONDS`: once, before the first checkpoint with messages commits,
    /// stop for that long (a process paused by its host, a long GC, a network partition).
    StallBeforeCommit,
}

fn fault_setting() -> Option<&'static str> {
    static REQUESTED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    REQUESTED
        .get_or_init(|| std::env::var("USAGE_TRACKER_FAULT").ok())
        .as_deref()
}

fn fault_requested(fault: Fault) -> bool {
    match fault {
        Fault::AbortAfterCommit => fault_setting() == Some("abort-after-commit"),
        Fault::StallBeforeCommit => {
            fault_setting().is_some_and(|f| f.starts_with("stall-before-commit:"))
        }
    }
}

/// The stall of [`Fault::StallBeforeCommit`], the first time it is asked for.
fn stall_once() -> Option<Duration> {
    static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let seconds = fault_setting()?
        .strip_prefix("stall-before-commit:")?
        .parse()
        .ok()?;
    (!DONE.swap(true, Ordering::Relaxed)).then(|| Duration::from_secs(seconds))
}

/// Runs one sink write, recording its failure and, when it has items, its size and duration.
/// (A Postgres commit without records still writes the checkpoint, so its failure counts.)
async fn timed<T, E>(
    metrics: &Metrics,
    sink: &str,
    items: usize,
    write: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let result = write.await;
    if items > 0 {
        metrics
            .sink_batch
            .with_label_values(&[sink])
            .observe(items as f64);
        metrics
            .sink_seconds
            .with_label_values(&[sink])
            .observe(started.elapsed().as_secs_f64());
    }
    if result.is_err() {
        metrics.sink_errors.with_label_values(&[sink]).inc();
    }
    result
}

/// Decodes a payload; a registry outage is retried (never dead-lettered), anything else becomes
/// a rejection with its reason.
async fn decode<T: crate::standard::StandardRecord>(
    decoder: &RecordDecoder<T>,
    message: &BorrowedMessage<'_>,
    waited: &mut Duration,
) -> Result<T, Rejection> {
    let Some(payload) = message.payload() else {
        return Err(Rejection {
            reason: DeadLetterReason::NotAvro,
            detail: "empty payload".into(),
        });
    };
    let mut backoff = Backoff::default();
    loop {
        match decoder.decode(payload).await {
            Ok(event) => return Ok(event),
            Err(error) if error.is_retriable() => {
                let retry_in = backoff.next_delay();
                warn!(%error, ?retry_in, "schema registry unavailable; retrying");
                tokio::time::sleep(retry_in).await;
                *waited += retry_in;
            }
            Err(error) => {
                let reason = match &error {
                    WireError::NotFramed(_) => DeadLetterReason::NotAvro,
                    WireError::Registry(_) => DeadLetterReason::UnknownSchema,
                    WireError::Incompatible { .. }
                    | WireError::Avro { .. }
                    | WireError::Malformed { .. } => DeadLetterReason::IncompatibleSchema,
                };
                return Err(Rejection {
                    reason,
                    detail: error.to_string(),
                });
            }
        }
    }
}
