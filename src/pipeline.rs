//! Wires the stages: Kafka input -> decode -> ingest -> accountant -> sinks, with checkpoints.
//!
//! Input partitions are assigned explicitly and their positions live in Postgres next to the
//! state they produced, so a restart (after a crash at any point) resumes from exactly the last
//! committed checkpoint. Records are published to Kafka before the checkpoint commits: after a
//! crash they may be published again, with the same key and a revision at least as high.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::accounting::{Accountant, CostAdmission, RateCard};
use crate::allocate::{AllocationPolicy, CostAllocator};
use crate::ingest::{self, CostScope, DeadLetterReason, Exclusions, Intake, Rejection};
use crate::kafka::{KafkaConnection, TopicSpec};
use crate::sink::kafka::{DeadLetter, KafkaSink};
use crate::sink::postgres::{PartitionPosition, PostgresSink, RestoredState};
use crate::standard::registry::RegistryEndpoint;
use crate::standard::wire::{RecordDecoder, WireError};
use crate::standard::{CostEvent, EpochMillis, UsageEvent};
use crate::window::{Admission, CostLedger, Watermarks, WindowConfig, WindowStore};

/// Topics the tracker reads and writes.
#[derive(Debug, Clone)]
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

/// Everything `run` needs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Brokers.
    pub kafka: KafkaConnection,
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
}

/// Counters of one run, also logged at the end.
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
    /// Events left out by exclusion rules, per rule.
    pub excluded: BTreeMap<&'static str, u64>,
    /// Bill lines applied (new or corrected).
    pub cost_applied: u64,
    /// Bill lines that changed nothing (replays).
    pub cost_unchanged: u64,
    /// Dead letters per reason.
    pub dead_letters: BTreeMap<&'static str, u64>,
    /// Records published.
    pub records_emitted: u64,
    /// Checkpoints committed.
    pub checkpoints: u64,
}

type PartitionKey = (String, i32);

/// How long `--until-caught-up` waits for more input after reaching the high watermarks.
const QUIET_PERIOD: Duration = Duration::from_secs(1);
/// The longest `--until-caught-up` keeps reading after reaching the high watermarks.
const CATCH_UP_GRACE: Duration = Duration::from_secs(10);

/// The running pipeline's state outside the accountant.
struct Pipeline {
    config: PipelineConfig,
    accountant: Accountant,
    watermarks: Watermarks,
    usage_decoder: RecordDecoder<UsageEvent>,
    cost_decoder: RecordDecoder<CostEvent>,
    positions: BTreeMap<PartitionKey, i64>,
    pending_dead_letters: Vec<DeadLetter>,
    kafka_sink: KafkaSink,
    postgres: PostgresSink,
    summary: RunSummary,
}

/// Runs the tracker until `shutdown` resolves (or, in `until_caught_up` mode, until the input
/// available at start is processed), then flushes and commits.
pub async fn run(
    config: PipelineConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let topics = &config.topics;
    let specs = [
        TopicSpec::new(&topics.usage_events, topics.partitions, topics.replication),
        TopicSpec::new(&topics.cost_events, topics.partitions, topics.replication),
        TopicSpec::new(&topics.usage_records, topics.partitions, topics.replication).compacted(),
        TopicSpec::new(&topics.dead_letters, topics.partitions, topics.replication),
    ];
    let created = config
        .kafka
        .ensure_topics(&specs)
        .await
        .context("creating topics")?;
    if !created.is_empty() {
        info!(?created, "created topics");
    }
    let postgres = PostgresSink::connect(&config.database_url)
        .await
        .context("connecting to Postgres")?;
    let restored = postgres
        .restore()
        .await
        .context("restoring the last checkpoint")?;
    let consumer = assign_inputs(&config, &restored).await?;
    let targets = if config.until_caught_up {
        Some(high_watermarks(&consumer)?)
    } else {
        None
    };

    let mut pipeline = Pipeline::new(config, postgres, restored)?;
    tokio::pin!(shutdown);
    let mut last_checkpoint = Instant::now();
    let mut last_message = Instant::now();
    let mut reached_targets: Option<Instant> = None;
    loop {
        // Broker quirk (Tansu 0.6): the reported high watermark can be the base offset of the
        // last batch + 1, i.e. short of the real end. So "caught up" also waits for a quiet
        // period with no message (at most CATCH_UP_GRACE once the targets are reached, so steady
        // input cannot keep a CronJob running). On Apache Kafka this only adds a second.
        if let Some(t) = &targets {
            if pipeline.caught_up(t) {
                let since = *reached_targets.get_or_insert_with(Instant::now);
                if last_message.elapsed() >= QUIET_PERIOD || since.elapsed() >= CATCH_UP_GRACE {
                    break;
                }
            }
        }
        let next = tokio::time::timeout(Duration::from_millis(200), consumer.recv());
        tokio::select! {
            _ = &mut shutdown => { info!("shutting down"); break; }
            received = next => match received {
                Ok(Ok(message)) => {
                    pipeline.process(&message).await;
                    last_message = Instant::now();
                }
                Ok(Err(error)) => { warn!(%error, "consumer error"); tokio::time::sleep(Duration::from_millis(500)).await; }
                Err(_idle) => {}
            }
        }
        if last_checkpoint.elapsed() >= pipeline.config.checkpoint_interval {
            pipeline.checkpoint().await;
            last_checkpoint = Instant::now();
        }
    }
    pipeline.checkpoint().await;
    info!(summary = ?pipeline.summary, "stopped");
    Ok(pipeline.summary)
}

/// Assigns every partition of both input topics, at the positions of the last checkpoint.
async fn assign_inputs(
    config: &PipelineConfig,
    restored: &RestoredState,
) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = config
        .kafka
        .client_config()
        .set("group.id", "usage-tracker")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("creating the Kafka consumer")?;
    let saved: BTreeMap<(&str, i32), i64> = restored
        .positions
        .iter()
        .map(|p| ((p.topic.as_str(), p.partition), p.next_offset))
        .collect();
    let mut assignment = TopicPartitionList::new();
    for topic in [&config.topics.usage_events, &config.topics.cost_events] {
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .with_context(|| format!("reading metadata of {topic}"))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let offset = saved
                .get(&(topic.as_str(), partition.id()))
                .map_or(Offset::Beginning, |o| Offset::Offset(*o));
            assignment.add_partition_offset(topic, partition.id(), offset)?;
        }
    }
    consumer
        .assign(&assignment)
        .context("assigning input partitions")?;
    Ok(consumer)
}

/// The end of every assigned partition now.
fn high_watermarks(consumer: &StreamConsumer) -> anyhow::Result<BTreeMap<PartitionKey, i64>> {
    let assignment = consumer.assignment()?;
    let mut ends = BTreeMap::new();
    for element in assignment.elements() {
        let (_, high) = consumer.fetch_watermarks(
            element.topic(),
            element.partition(),
            Duration::from_secs(10),
        )?;
        ends.insert((element.topic().to_owned(), element.partition()), high);
    }
    Ok(ends)
}

fn now_ms() -> EpochMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as EpochMillis)
}

impl Pipeline {
    fn new(
        config: PipelineConfig,
        postgres: PostgresSink,
        restored: RestoredState,
    ) -> anyhow::Result<Self> {
        let mut store = WindowStore::new(config.window);
        for (cluster, start, state) in restored.windows {
            store
                .import(&cluster, start, state)
                .map_err(anyhow::Error::msg)?;
        }
        for (start, key) in restored.seen {
            store.import_seen(start, key);
        }
        store.import_watermark(restored.watermark);
        let mut ledger = CostLedger::new(config.window.spec);
        for line in restored.cost_lines {
            ledger.upsert(line);
        }
        ledger.take_unsaved();
        let mut watermarks = Watermarks::default();
        let mut positions = BTreeMap::new();
        let now = now_ms();
        for p in restored.positions {
            if let Some(t) = p.max_event_time {
                watermarks.restore(&p.topic, p.partition, t, now);
            }
            positions.insert((p.topic, p.partition), p.next_offset);
        }
        let registry = config.registry.sr_settings()?;
        let kafka_sink = KafkaSink::new(
            &config.kafka,
            &config.registry,
            &config.topics.usage_records,
            &config.topics.dead_letters,
        )?;
        let accountant = Accountant::new(
            store,
            ledger,
            CostAllocator::new(config.policy.clone()),
            config.rate_card.clone(),
        );
        Ok(Self {
            usage_decoder: RecordDecoder::new(registry.clone()),
            cost_decoder: RecordDecoder::new(registry),
            config,
            accountant,
            watermarks,
            positions,
            pending_dead_letters: Vec::new(),
            kafka_sink,
            postgres,
            summary: RunSummary::default(),
        })
    }

    fn caught_up(&self, targets: &BTreeMap<PartitionKey, i64>) -> bool {
        targets
            .iter()
            .all(|(key, end)| *end == 0 || self.positions.get(key).is_some_and(|p| p >= end))
    }

    async fn process(&mut self, message: &BorrowedMessage<'_>) {
        let topic = message.topic().to_owned();
        *self.summary.consumed.entry(topic.clone()).or_default() += 1;
        let outcome = if topic == self.config.topics.usage_events {
            self.process_usage(message).await
        } else {
            self.process_cost(message).await
        };
        if let Err(rejection) = outcome {
            *self
                .summary
                .dead_letters
                .entry(rejection.reason.as_str())
                .or_default() += 1;
            warn!(topic, partition = message.partition(), offset = message.offset(), reason = rejection.reason.as_str(), detail = %rejection.detail, "dead letter");
            self.pending_dead_letters.push(DeadLetter {
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                reason: rejection.reason,
                detail: rejection.detail,
                topic: topic.clone(),
                partition: message.partition(),
                offset: message.offset(),
            });
        }
        self.positions
            .insert((topic, message.partition()), message.offset() + 1);
    }

    async fn process_usage(&mut self, message: &BorrowedMessage<'_>) -> Result<(), Rejection> {
        let event = decode(&self.usage_decoder, message).await?;
        let now = now_ms();
        let intake = ingest::usage_sample(
            &event,
            &self.config.exclusions,
            now,
            self.config.window.future_skew_ms,
        )?;
        let sample = match intake {
            Intake::Accepted(sample) => sample,
            Intake::Excluded(rule) => {
                *self.summary.excluded.entry(rule.as_str()).or_default() += 1;
                return Ok(());
            }
            Intake::Empty => return Ok(()),
        };
        self.watermarks
            .observe(message.topic(), message.partition(), sample.end, now);
        match self.accountant.usage(&sample) {
            Admission::Applied => self.summary.usage_applied += 1,
            Admission::AppliedLate => {
                self.summary.usage_applied += 1;
                self.summary.usage_late += 1;
            }
            Admission::Duplicate => self.summary.duplicates += 1,
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

    async fn process_cost(&mut self, message: &BorrowedMessage<'_>) -> Result<(), Rejection> {
        let event = decode(&self.cost_decoder, message).await?;
        let line =
            match ingest::cost_line(&event, &self.config.exclusions, &self.config.cost_scopes)? {
                Intake::Accepted(line) => line,
                Intake::Excluded(rule) => {
                    *self.summary.excluded.entry(rule.as_str()).or_default() += 1;
                    return Ok(());
                }
                Intake::Empty => return Ok(()),
            };
        match self.accountant.cost(line) {
            CostAdmission::Applied => self.summary.cost_applied += 1,
            CostAdmission::Unchanged => self.summary.cost_unchanged += 1,
            CostAdmission::TooLate => {
                return Err(Rejection {
                    reason: DeadLetterReason::TooLate,
                    detail: "the charge period is past the retention horizon".into(),
                })
            }
        }
        Ok(())
    }

    /// Emits, publishes and commits. Retries until it succeeds: consumption pauses meanwhile,
    /// nothing is dropped.
    async fn checkpoint(&mut self) {
        let window = self.config.window;
        if let Some(w) =
            self.watermarks
                .advance(now_ms(), window.allowed_lateness_ms, window.idle_timeout_ms)
        {
            self.accountant.advance_to(w);
        }
        let checkpoint = self.accountant.take_checkpoint();
        let dead_letters = std::mem::take(&mut self.pending_dead_letters);
        let positions: Vec<PartitionPosition> = self
            .positions
            .iter()
            .map(|((topic, partition), offset)| PartitionPosition {
                topic: topic.clone(),
                partition: *partition,
                next_offset: *offset,
                max_event_time: self
                    .watermarks
                    .max_event_times()
                    .find(|(t, p, _)| t == topic && p == partition)
                    .map(|(_, _, m)| m),
            })
            .collect();
        let mut backoff = Duration::from_millis(200);
        loop {
            let attempt = async {
                self.kafka_sink.publish(&checkpoint.records).await?;
                self.kafka_sink.dead_letters(&dead_letters).await?;
                self.postgres.commit(&checkpoint, &positions).await?;
                anyhow::Ok(())
            };
            match attempt.await {
                Ok(()) => break,
                Err(error) => {
                    warn!(error = %format!("{error:#}"), retry_in = ?backoff, "checkpoint failed; consumption paused");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        self.summary.records_emitted += checkpoint.records.len() as u64;
        self.summary.checkpoints += 1;
    }
}

/// Decodes a payload; a registry outage is retried (never dead-lettered), anything else becomes
/// a rejection with its reason.
async fn decode<T: crate::standard::StandardRecord>(
    decoder: &RecordDecoder<T>,
    message: &BorrowedMessage<'_>,
) -> Result<T, Rejection> {
    let Some(payload) = message.payload() else {
        return Err(Rejection {
            reason: DeadLetterReason::NotAvro,
            detail: "empty payload".into(),
        });
    };
    let mut backoff = Duration::from_millis(200);
    loop {
        match decoder.decode(payload).await {
            Ok(event) => return Ok(event),
            Err(error) if error.is_retriable() => {
                warn!(%error, retry_in = ?backoff, "schema registry unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(error) => {
                let reason = match &error {
                    WireError::NotFramed(_) => DeadLetterReason::NotAvro,
                    WireError::Registry(_) => DeadLetterReason::UnknownSchema,
                    WireError::Incompatible { .. } | WireError::Avro { .. } => {
                        DeadLetterReason::IncompatibleSchema
                    }
                };
                return Err(Rejection {
                    reason,
                    detail: error.to_string(),
                });
            }
        }
    }
}
