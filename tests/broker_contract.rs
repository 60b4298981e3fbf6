//! The local broker must behave like Kafka where the tracker relies on it: a fetch at an offset
//! inside a record batch returns that batch from the offset asked for, and the high watermark is
//! the end of the log. Tansu's `memory://` engine broke the first (it answered from the next
//! batch, so a consumer resuming inside a batch silently skipped records); the local stack runs
//! the `sqlite://` engine, and this probe fails if the broker it runs ever does that again.

mod common;

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use usage_tracker::kafka::TopicSpec;

const RECORDS: i64 = 10;

/// Produces `RECORDS` messages that librdkafka puts into one batch (one partition, a long
/// linger, all sent before any is awaited).
async fn one_batch(kafka: &usage_tracker::kafka::KafkaConnection, topic: &str) {
    let producer: FutureProducer = kafka
        .producer_config()
        .set("linger.ms", "200")
        .create()
        .unwrap();
    let payloads: Vec<String> = (0..RECORDS).map(|i| format!("record-{i}")).collect();
    let sends = payloads.iter().map(|payload| {
        producer.send(
            FutureRecord::to(topic).key("k").payload(payload),
            Duration::from_secs(30),
        )
    });
    for (i, result) in futures::future::join_all(sends)
        .await
        .into_iter()
        .enumerate()
    {
        let delivery = result.map_err(|(e, _)| e).unwrap();
        assert_eq!((delivery.partition, delivery.offset), (0, i as i64));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_inside_a_batch_starts_at_the_offset_asked_for() {
    let kafka = common::kafka();
    let topic = common::unique("probe");
    kafka
        .ensure_topics(&[TopicSpec::new(&topic, 1, 1)])
        .await
        .unwrap();
    one_batch(&kafka, &topic).await;

    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", common::unique("probe"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (low, high) = consumer
        .fetch_watermarks(&topic, 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        (low, high),
        (0, RECORDS),
        "the high watermark is the end of the log"
    );
    for start in [5, RECORDS - 1, 0] {
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, Offset::Offset(start))
            .unwrap();
        consumer.assign(&assignment).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let first = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "nothing fetched from offset {start}"
            );
            if let Some(message) = consumer.poll(Duration::from_millis(200)) {
                break message.unwrap().offset();
            }
        };
        assert_eq!(
            first, start,
            "asked for offset {start} inside a {RECORDS}-record batch"
        );
    }
}
