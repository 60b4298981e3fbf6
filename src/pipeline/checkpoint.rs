//! Checkpoints: a slot's records, state, input positions and outgoing Kafka messages committed
//! in one Postgres transaction, then the outbox published (see the module docs of `pipeline`).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use super::assignment::TrackerConsumer;
use super::Pipeline;
use crate::accounting::Checkpoint;
use crate::fault::{fault_requested, stall_once, Fault};
use crate::metrics::Metrics;
use crate::retry::{Backoff, Transience};
use crate::sink::outbox::OutboxMessage;
use crate::sink::postgres::{CommitError, PartitionPosition};
use crate::sink::recompute::{self, RecomputeRequest};
use crate::standard::{EpochMillis, WindowStatus};
use crate::time::now_ms;

impl Pipeline {
    /// Publishes what committed checkpoints of the slot staged, under the slot's lock, and
    /// forgets it; returns how many messages went out.
    pub(super) async fn publish_outbox(&self, slot_id: i32, epoch: i64) -> anyhow::Result<usize> {
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
    pub(super) async fn checkpoint_all(
        &mut self,
        consumer: &TrackerConsumer,
    ) -> anyhow::Result<()> {
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
    pub(super) fn forgive_stall(&mut self, stalled_ms: i64) {
        if stalled_ms > 1_000 {
            for slot in self.slots.values_mut() {
                slot.watermarks.forgive(stalled_ms);
            }
        }
    }

    /// Emits, publishes and commits one slot. Retries transient failures until it succeeds
    /// (consumption pauses meanwhile, nothing is dropped) or the slot turns out to belong to
    /// another instance; a permanent failure is returned.
    pub(super) async fn checkpoint(
        &mut self,
        consumer: &TrackerConsumer,
        slot_id: i32,
    ) -> anyhow::Result<()> {
        let window = self.config.window;
        let recomputes = self.pending_recomputes(slot_id).await;
        let Some(slot) = self.slots.get_mut(&slot_id) else {
            return Ok(());
        };
        let recomputed: Vec<(i64, usize)> = recomputes
            .iter()
            .map(|r| (r.id, slot.accountant.recompute(r.from_ms, r.to_ms)))
            .collect();
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
        for (id, windows) in recomputed {
            // After the commit: a crash before this line only makes the next owner redo it,
            // which re-drafts the same content and so emits nothing new.
            match recompute::done(self.postgres.pool(), slot_id, id, windows as i64).await {
                Ok(()) => info!(slot = slot_id, request = id, windows, "recomputed"),
                Err(error) => warn!(%error, request = id, "recording a recompute as done"),
            }
        }
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

    /// Recompute requests the slot has not taken up; none when the database cannot say now
    /// (the next checkpoint asks again).
    async fn pending_recomputes(&self, slot_id: i32) -> Vec<RecomputeRequest> {
        recompute::pending(self.postgres.pool(), slot_id)
            .await
            .unwrap_or_else(|error| {
                warn!(%error, "reading recompute requests");
                Vec::new()
            })
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
