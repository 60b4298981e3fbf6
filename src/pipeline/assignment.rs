//! The consumer group side of the pipeline: joining the group on both input topics, and
//! librdkafka's rebalance callback, which pauses newly assigned partitions and hands every
//! change of the assignment to the loop.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, TopicPartitionList};
use tracing::warn;

use super::slot::PartitionKey;
use super::PipelineConfig;
use crate::metrics::Metrics;

/// A change of the consumer group's assignment, as seen by librdkafka's rebalance callback.
#[derive(Debug)]
pub(super) enum AssignmentChange {
    Assigned(Vec<PartitionKey>),
    Revoked(Vec<PartitionKey>),
}

/// Forwards rebalances to the pipeline loop. Newly assigned partitions are paused until the
/// loop has restored their slot and sought them to the checkpointed positions.
pub(super) struct AssignmentContext {
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

pub(super) type TrackerConsumer = StreamConsumer<AssignmentContext>;

/// Joins the group on both input topics, after checking they are co-partitioned.
pub(super) fn subscribe(
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
