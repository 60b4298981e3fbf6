//! The batch of events and dead letters read since the last commit ([`Batch`]), and publishing
//! it ([`flush`]): every event and dead letter acknowledged by the broker (retried until then),
//! then the batch's offsets committed.

use crate::fault::{fault_requested, Fault};
use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tracing::warn;

use super::positions::{ElasticConsumer, Positions};
use crate::metrics::ElasticMetrics;
use crate::retry::Transience;
use crate::sink::kafka::{DeadLetter, KafkaSink};
use crate::standard::wire::RecordEncoder;
use crate::standard::UsageEvent;

/// What the current batch publishes.
#[derive(Default)]
pub(super) struct Batch {
    /// Events that passed every check.
    pub(super) events: Vec<UsageEvent>,
    /// Documents refused, with their reasons.
    pub(super) dead_letters: Vec<DeadLetter>,
    /// Documents read into the batch (events, dead letters and documents that gave neither).
    pub(super) documents: usize,
    /// When its first document was read.
    pub(super) opened: Option<Instant>,
}

impl Batch {
    /// Whether no document was read since the last flush.
    pub(super) fn is_empty(&self) -> bool {
        self.documents == 0
    }
}

/// Where a batch goes.
pub(super) struct Publisher {
    /// Producer of the events.
    pub(super) producer: FutureProducer,
    /// Encodes the events (Avro, Confluent framing).
    pub(super) encoder: RecordEncoder<UsageEvent>,
    /// The usage events topic.
    pub(super) topic: String,
    /// Producer of the dead letters.
    pub(super) dead_letters: KafkaSink,
}

/// Publishes the batch (retrying until the broker acknowledges every message), then commits the
/// offsets read so far. A failed commit is only logged and tried again with the next batch: until
/// then the documents would be read again after a restart, and become the same events.
pub(super) async fn flush(
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
        if fault_requested(Fault::AbortAfterPublish) {
            std::process::abort();
        }
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
pub(super) fn smaller(letter: &DeadLetter, error: &dyn fmt::Display) -> Option<DeadLetter> {
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
