//! Publishing standard events from the command-line tools (`generate`, `export-costs`).

use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::Settings;
use crate::kafka::TopicSpec;
use crate::standard::wire::RecordEncoder;
use crate::standard::StandardRecord;

/// Encodes events in the Confluent wire format and publishes them keyed, waiting for every
/// acknowledgement (`acks=all`), so a tool that exits 0 has delivered everything.
pub(crate) struct EventPublisher<'a> {
    settings: &'a Settings,
    producer: FutureProducer,
}

impl<'a> EventPublisher<'a> {
    /// A producer for the configured brokers
    /// ([`KafkaConnection::event_producer_config`](crate::kafka::KafkaConnection::event_producer_config)).
    pub(crate) fn new(settings: &'a Settings) -> anyhow::Result<Self> {
        let producer = settings
            .kafka()
            .event_producer_config()
            .create()
            .context("creating the Kafka producer")?;
        Ok(Self { settings, producer })
    }

    /// Creates `topic` when missing, with the configured partitions and replication.
    pub(crate) async fn ensure_topic(&self, topic: &str) -> anyhow::Result<()> {
        let t = &self.settings.topics;
        self.settings
            .kafka()
            .ensure_topics(&[TopicSpec::new(topic, t.partitions, t.replication)])
            .await
            .with_context(|| format!("creating topic {topic}"))?;
        Ok(())
    }

    /// Encodes and publishes `(key, event)` pairs to `topic`; `progress` is called per
    /// acknowledged event.
    pub(crate) async fn publish<T: StandardRecord>(
        &self,
        topic: &str,
        events: impl IntoIterator<Item = (String, &T)>,
        progress: impl FnMut(),
    ) -> anyhow::Result<u64> {
        let encoder = RecordEncoder::<T>::new(self.settings.registry()?.sr_settings()?, topic);
        let mut messages = Vec::new();
        for (key, event) in events {
            let payload = encoder
                .encode(event)
                .await
                .with_context(|| format!("encoding for {topic}"))?;
            messages.push((key, payload));
        }
        self.send(
            topic,
            messages
                .iter()
                .map(|(k, p)| (Some(k.as_str()), p.as_slice())),
            progress,
        )
        .await
    }

    /// Publishes raw payloads (keyed or not) to `topic`; `progress` is called per
    /// acknowledged message. Returns how many were acknowledged.
    pub(crate) async fn send<'m>(
        &self,
        topic: &str,
        messages: impl IntoIterator<Item = (Option<&'m str>, &'m [u8])>,
        mut progress: impl FnMut(),
    ) -> anyhow::Result<u64> {
        let messages: Vec<_> = messages.into_iter().collect();
        // Bounded chunks: the producer queue stays small and acknowledgements flow back early.
        for chunk in messages.chunks(10_000) {
            let sends = chunk.iter().map(|(key, payload)| {
                let mut record = FutureRecord::<str, [u8]>::to(topic).payload(payload);
                if let Some(key) = key {
                    record = record.key(key);
                }
                self.producer.send(record, Duration::from_secs(30))
            });
            for result in futures::future::join_all(sends).await {
                result
                    .map_err(|(e, _)| e)
                    .with_context(|| format!("producing to {topic}"))?;
                progress();
            }
        }
        Ok(messages.len() as u64)
    }
}
