//! Kafka outputs: usage records (Avro, Confluent framing) and dead letters (original bytes with
//! the reason in headers), built as [`OutboxMessage`]s. Every batch is sent at once and awaited
//! as a whole.

use std::time::Duration;

use futures::future::try_join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::ingest::DeadLetterReason;
use crate::kafka::KafkaConnection;
use crate::sink::outbox::OutboxMessage;
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

/// The largest original key plus value a dead letter carries: below the 1 MB that producers and
/// brokers allow by default, with room for the headers. A larger message is dead-lettered
/// without its value (`dlq.value_omitted` says how large it was); it stays in its own topic.
pub const MAX_DEAD_LETTER_BYTES: usize = 900_000;

/// The longest `dlq.error` detail kept (a rejection may quote a value of the message, which can
/// be as long as the message).
pub const MAX_DETAIL_BYTES: usize = 1024;

/// `text` cut to at most [`MAX_DETAIL_BYTES`] (at a character boundary), marked as cut.
pub fn cut_detail(mut text: String) -> String {
    if text.len() > MAX_DETAIL_BYTES {
        let mut at = MAX_DETAIL_BYTES;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let total = text.len();
        text.truncate(at);
        text.push_str(&format!("... ({total} bytes)"));
    }
    text
}

impl DeadLetter {
    /// The dead letter as published to `topic`: original key and value, the reason, detail and
    /// origin in `dlq.*` headers (standard §6.4).
    pub fn message(&self, topic: &str) -> OutboxMessage {
        let detail = cut_detail(self.detail.clone());
        let mut headers = vec![
            ("dlq.reason".into(), self.reason.as_str().into()),
            ("dlq.error".into(), detail),
            ("dlq.topic".into(), self.topic.clone()),
            ("dlq.partition".into(), self.partition.to_string()),
            ("dlq.offset".into(), self.offset.to_string()),
        ];
        let size =
            self.key.as_ref().map_or(0, Vec::len) + self.payload.as_ref().map_or(0, Vec::len);
        let (key, payload) = if size > MAX_DEAD_LETTER_BYTES {
            headers.push(("dlq.value_omitted".into(), size.to_string()));
            (
                self.key
                    .clone()
                    .filter(|k| k.len() <= MAX_DEAD_LETTER_BYTES),
                None,
            )
        } else {
            (self.key.clone(), self.payload.clone())
        };
        OutboxMessage {
            topic: topic.to_owned(),
            key,
            payload,
            headers,
        }
    }
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

    /// Key of a record: `<cluster_id>/<namespace>/<window_start>`, and for a group's record
    /// `/<group_by>=<group_value>` after it (compaction keeps the latest of each).
    pub fn record_key(record: &UsageRecord) -> String {
        let key = format!(
            "{}/{}/{}",
            record.cluster_id, record.namespace, record.window_start
        );
        match (&record.group_by, &record.group_value) {
            (Some(by), Some(value)) => format!("{key}/{by}={value}"),
            _ => key,
        }
    }

    /// The messages of one checkpoint, encoded, in the order they are published: new record
    /// revisions, tombstones of withdrawn records (null value, so compaction forgets them), and
    /// dead letters (original bytes, the reason in headers).
    pub async fn checkpoint_messages(
        &self,
        records: &[UsageRecord],
        withdrawn: &[UsageRecord],
        dead_letters: &[DeadLetter],
    ) -> Result<Vec<OutboxMessage>, PublishError> {
        let mut messages = Vec::with_capacity(records.len() + withdrawn.len() + dead_letters.len());
        for record in records {
            messages.push(OutboxMessage {
                topic: self.records_topic.clone(),
                key: Some(Self::record_key(record).into_bytes()),
                payload: Some(self.encoder.encode(record).await?),
                headers: Vec::new(),
            });
        }
        messages.extend(withdrawn.iter().map(|record| OutboxMessage {
            topic: self.records_topic.clone(),
            key: Some(Self::record_key(record).into_bytes()),
            payload: None,
            headers: Vec::new(),
        }));
        messages.extend(
            dead_letters
                .iter()
                .map(|letter| letter.message(&self.dead_letter_topic)),
        );
        Ok(messages)
    }

    /// Publishes dead letters unchanged, with the reason in headers.
    pub async fn dead_letters(&self, letters: &[DeadLetter]) -> Result<(), PublishError> {
        let messages: Vec<OutboxMessage> = letters
            .iter()
            .map(|letter| letter.message(&self.dead_letter_topic))
            .collect();
        self.send_all(&messages).await
    }

    /// Publishes messages as they are; returns once the broker acknowledged all of them.
    pub async fn send_all(&self, messages: &[OutboxMessage]) -> Result<(), PublishError> {
        let sends = messages.iter().map(|m| {
            let mut headers = OwnedHeaders::new_with_capacity(m.headers.len());
            for (key, value) in &m.headers {
                headers = headers.insert(Header {
                    key: key.as_str(),
                    value: Some(value.as_str()),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&m.topic).headers(headers);
            if let Some(key) = &m.key {
                record = record.key(key.as_slice());
            }
            if let Some(payload) = &m.payload {
                record = record.payload(payload.as_slice());
            }
            self.send(&m.topic, record)
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
