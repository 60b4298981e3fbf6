//! What the converter's consumer has read and owns: the next position per partition and whether
//! it is committed ([`Positions`]), the partitions revoked in a rebalance and what is forgotten
//! with them ([`RevokeContext`], [`forget_revoked`]), and the high watermarks that
//! `--until-caught-up` reads to ([`CatchUp`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use tracing::info;

use super::Input;

/// Collects the partitions librdkafka revokes in a rebalance, for the loop to forget their
/// network counter state and uncommitted positions before it takes the next message.
#[derive(Default)]
pub(super) struct RevokeContext {
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
    /// The partitions revoked since the last call.
    pub(super) fn take(&self) -> Vec<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The converter's consumer, told of revoked partitions.
pub(super) type ElasticConsumer = StreamConsumer<RevokeContext>;

/// Forgets what this consumer knew of the partitions revoked since the last call: their pods'
/// network readings (another consumer counts their next ones; if a partition comes back, its
/// first reading is a new baseline, never a delta over bytes the other one counted), and their
/// uncommitted positions (the new owner's commits are not overwritten; documents of the open
/// batch from those partitions are read again by the owner and become the same events).
pub(super) fn forget_revoked(
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
pub(super) struct Positions(Vec<Position>);

/// One partition's next offset to read.
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
    pub(super) fn advance(&mut self, topic: &str, partition: i32, next: i64) {
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
    pub(super) fn start(&mut self, topic: &str, partition: i32, next: i64) {
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
    pub(super) fn forget(&mut self, topic: &str, partition: i32) {
        self.0
            .retain(|p| !(p.partition == partition && p.topic == topic));
    }

    /// The next offset to read of a partition, if it is known.
    pub(super) fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0
            .iter()
            .find(|p| p.partition == partition && p.topic == topic)
            .map(|p| p.next)
    }

    /// The uncommitted positions, as a commit request.
    pub(super) fn to_commit(&self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for p in self.0.iter().filter(|p| p.uncommitted) {
            let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.next));
        }
        tpl
    }

    /// Records that the positions of [`Positions::to_commit`] are committed.
    pub(super) fn mark_committed(&mut self) {
        for p in &mut self.0 {
            p.uncommitted = false;
        }
    }
}

/// The high watermarks to reach in `--until-caught-up` mode.
#[derive(Default)]
pub(super) struct CatchUp {
    targets: BTreeMap<(String, i32), i64>,
    assigned: BTreeSet<(String, i32)>,
}

impl CatchUp {
    /// Notices new partitions: their high watermark becomes a target, their committed offset
    /// (else the low watermark) their starting position.
    pub(super) fn refresh(
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
    pub(super) fn forget(&mut self, topic: &str, partition: i32) {
        let key = (topic.to_owned(), partition);
        self.targets.remove(&key);
        self.assigned.remove(&key);
    }

    /// Whether every assigned partition is read up to its target (or had nothing to read).
    pub(super) fn reached(&self, positions: &Positions) -> bool {
        !self.assigned.is_empty()
            && self.assigned.iter().all(|key| {
                let target = self.targets.get(key).copied().unwrap_or(0);
                target == 0 || positions.get(&key.0, key.1).is_some_and(|p| p >= target)
            })
    }
}
