//! Kafka outputs: usage records (Avro, Confluent framing) and dead letters (original bytes with
//! the reason in headers). Every batch is sent at once and awaited as a whole.

use std::time::Duration;

use futures::future::try_join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::ingest::DeadLetterReason;
use crate::kafka::KafkaConnection;
use crate::standard::registry::RegistryEndpoint;
use crate::standard::wire::RecordEncoder;
use crate::standard::UsageRecord;

/// A message that could not be accounted, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Original key.
    pub key: Option<Vec<u8>>,
    /// Original payload.
    pub payload: Option<Vec<u8>>,
    /// Why.
    pub reason: DeadLetterReason,
    /// Details for humans.
    pub detail: String,
    /// Where it came from.
    pub topic: String,
    /// Partition it came from.
    pub partition: i32,
    /// Offset it had.
    pub offset: i64,
}

/// Publishes records and dead letters.
pub struct KafkaSink {
    producer: FutureProducer,
    encoder: RecordEncoder<UsageRecord>,
    records_topic: String,
    dead_letter_topic: String,
}

/// A failed publish.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The record could not be encoded (registry unreachable or refused the schema).
    #[error("encoding a usage record: {0}")]
    Encode(#[from] crate::standard::wire::WireError),
    /// The broker did not take the message.
    #[error("producing to {topic}: {source}")]
    Produce {
        /// Topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

impl KafkaSink {
    /// A sink producing to `records_topic` and `dead_letter_topic`.
    pub fn new(
        kafka: &KafkaConnection,
        registry: &RegistryEndpoint,
        records_topic: &str,
        dead_letter_topic: &str,
    ) -> anyhow::Result<Self> {
        let producer = kafka
            .producer_config()
            .set("acks", "all")
            .set("linger.ms", "20")
            // The Java client's partitioner, so keys land where other producers put them.
            .set("partitioner", "murmur2_random")
            .create()?;
        Ok(Self {
            producer,
            encoder: RecordEncoder::new(registry.sr_settings()?, records_topic),
            records_topic: records_topic.to_owned(),
            dead_letter_topic: dead_letter_topic.to_owned(),
        })
    }

    /// Key of a record: `<cluster_id>/<namespace>/<window_start>` (compaction keeps the latest).
    pub fn record_key(record: &UsageRecord) -> String {
        format!(
            "{}/{}/{}",
            record.cluster_id, record.namespace, record.window_start
        )
    }

    /// Publishes records; returns once the broker acknowledged all of them.
    pub async fn publish(&self, records: &[UsageRecord]) -> Result<(), PublishError> {
        let mut encoded = Vec::with_capacity(records.len());
        for record in records {
            encoded.push((Self::record_key(record), self.encoder.encode(record).await?));
        }
        let sends = encoded.iter().map(|(key, payload)| {
            let message = FutureRecord::to(&self.records_topic)
                .key(key)
                .payload(payload);
            self.send(&self.records_topic, message)
        });
        try_join_all(sends).await.map(drop)
    }

    /// Publishes tombstones (null payload) for withdrawn records, so compaction forgets them.
    pub async fn tombstones(&self, withdrawn: &[UsageRecord]) -> Result<(), PublishError> {
        let keys: Vec<String> = withdrawn.iter().map(Self::record_key).collect();
        let sends = keys.iter().map(|key| {
            let message: FutureRecord<'_, str, [u8]> =
                FutureRecord::to(&self.records_topic).key(key.as_str());
            self.send(&self.records_topic, message)
        });
        try_join_all(sends).await.map(drop)
    }

    /// Publishes dead letters unchanged, with the reason in headers.
    pub async fn dead_letters(&self, letters: &[DeadLetter]) -> Result<(), PublishError> {
        let sends = letters.iter().map(|letter| {
            let partition = letter.partition.to_string();
            let offset = letter.offset.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "dlq.reason",
                    value: Some(letter.reason.as_str()),
                })
                .insert(Header {
                    key: "dlq.error",
                    value: Some(letter.detail.as_str()),
                })
                .insert(Header {
                    key: "dlq.topic",
                    value: Some(letter.topic.as_str()),
                })
                .insert(Header {
                    key: "dlq.partition",
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: "dlq.offset",
                    value: Some(offset.as_str()),
                });
            let mut message: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&self.dead_letter_topic).headers(headers);
            if let Some(key) = &letter.key {
                message = message.key(key.as_slice());
            }
            if let Some(payload) = &letter.payload {
                message = message.payload(payload.as_slice());
            }
            self.send(&self.dead_letter_topic, message)
        });
        try_join_all(sends).await.map(drop)
    }

    async fn send<K, P>(
        &self,
        topic: &str,
        message: FutureRecord<'_, K, P>,
    ) -> Result<(), PublishError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        self.producer
            .send(message, Duration::from_secs(30))
            .await
            .map(drop)
            .map_err(|(source, _)| PublishError::Produce {
                topic: topic.to_owned(),
                source,
            })
    }
}
