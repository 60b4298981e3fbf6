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

mod assignment;
mod checkpoint;
mod slot;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::Consumer;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::accounting::CostAdmission;
use crate::http::{self, Health};
use crate::ingest::{self, DeadLetterReason, Intake, Rejection};
use crate::kafka::TopicSpec;
use crate::metrics::{counts, Metrics};
use crate::retry::{Backoff, Transience};
use crate::sink::kafka::{DeadLetter, KafkaSink};
use crate::sink::postgres::{CommitError, PostgresSink};
use crate::standard::wire::{RecordDecoder, WireError};
use crate::standard::{CostEvent, UsageEvent};
use crate::time::now_ms;
use crate::window::{Admission, MeterRefusal, MAX_METERS_PER_CLUSTER_WINDOW};

use assignment::{subscribe, AssignmentChange, TrackerConsumer};
use slot::{PartitionKey, Slot};

pub use crate::config::{PipelineConfig, Topics};

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

/// Checkpoint intervals without a completed checkpoint round after which `/readyz` reports the
/// pipeline stalled (but at least [`STALL_MIN`]).
const STALL_INTERVALS: u32 = 5;
const STALL_MIN: Duration = Duration::from_secs(60);

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
        let slot_state = Slot::restore(
            self.config.window,
            self.config.policy.clone(),
            self.config.rate_card.clone(),
            epoch,
            restored,
            targets,
            now_ms(),
        )?;
        self.slots.insert(slot, slot_state);
        consumer.resume(&tpl).context("resuming partitions")?;
        self.metrics.slots.set(self.slots.len() as i64);
        Ok(())
    }

    fn caught_up(&self) -> bool {
        self.health.assigned.load(Ordering::Relaxed) && self.slots.values().all(Slot::caught_up)
    }

    async fn process(&mut self, message: &BorrowedMessage<'_>) {
        let slot_id = message.partition();
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return; // Fetched before a revocation: the slot's new owner reads it.
        };
        let key = (message.topic().to_owned(), slot_id);
        let topic = key.0.as_str();
        if let Some(sought) = slot.first_read_gap(&key, message.offset()) {
            // A broker that skips records (or retention that deleted them) must not do it
            // silently. Transaction markers also take offsets, so a producer using transactions
            // can cause a harmless gap.
            warn!(
                topic,
                partition = slot_id,
                sought,
                received = message.offset(),
                "the first record after seeking to a checkpointed position lies beyond it"
            );
            self.metrics.offset_gaps.with_label_values(&[topic]).inc();
        }
        self.metrics.consumed.with_label_values(&[topic]).inc();
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
                topic: topic.to_owned(),
                partition: slot_id,
                offset: message.offset(),
            });
        }
        slot.positions.insert(key, message.offset() + 1);
    }

    /// Decodes a message with the decoder `pick` chooses and counts it; time spent waiting for
    /// the registry is a stall of the process, not idle input.
    async fn decode<T: crate::standard::StandardRecord>(
        &mut self,
        pick: fn(&Self) -> &RecordDecoder<T>,
        message: &BorrowedMessage<'_>,
    ) -> Result<T, Rejection> {
        let mut waited = Duration::ZERO;
        let event = decode(pick(self), message, &mut waited).await;
        self.forgive_stall(waited.as_millis() as i64);
        let event = event?;
        self.metrics
            .decoded
            .with_label_values(&[message.topic()])
            .inc();
        Ok(event)
    }

    async fn process_usage(
        &mut self,
        slot_id: i32,
        message: &BorrowedMessage<'_>,
    ) -> Result<(), Rejection> {
        let event = self.decode(|p| &p.usage_decoder, message).await?;
        let now = now_ms();
        let intake = ingest::usage_sample(
            &event,
            &self.config.exclusions,
            now,
            self.config.window.future_skew_ms,
        )?;
        let Some(mut sample) = self.accepted(intake) else {
            return Ok(());
        };
        if sample.namespace.is_some() {
            // Both cost nothing when `[aggregation]` and `[sharing] labels` are not configured.
            sample.groups = self.config.aggregation.groups(&event.subject);
            let sharing = &self.config.policy.sharing;
            sample.shared = sharing.is_shared_workload(&event.subject.labels);
        }
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
            Admission::MeterRefused(refusal) => {
                let meters: Vec<String> = sample
                    .meters
                    .iter()
                    .map(|(meter, unit, _, _)| format!("{meter} ({unit})"))
                    .collect();
                let (reason, rule) = match refusal {
                    MeterRefusal::UnitMismatch => (
                        DeadLetterReason::InvalidEvent,
                        "an extension resource has one unit per cluster window".to_owned(),
                    ),
                    MeterRefusal::TooMany => (
                        DeadLetterReason::OutOfRange,
                        format!(
                            "a cluster window holds at most {MAX_METERS_PER_CLUSTER_WINDOW} extension resources"
                        ),
                    ),
                };
                return Err(Rejection {
                    reason,
                    detail: format!("{rule}; this event measures {}", meters.join(", ")),
                });
            }
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
        let event = self.decode(|p| &p.cost_decoder, message).await?;
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
        slot.watermarks.observe_cost(line.start, now_ms());
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
