//! Kafka connection settings and topic administration, shared by every Kafka client we create.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// How to reach the brokers.
#[derive(Debug, Clone)]
pub struct KafkaConnection {
    /// `host:port,...`
    pub bootstrap_servers: String,
    /// librdkafka properties passed through unchanged (`security.protocol`, `sasl.*`, `ssl.*` ...).
    pub properties: Vec<(String, String)>,
    /// librdkafka properties for producers only (`compression.type`, `batch.num.messages` ...).
    pub producer_properties: Vec<(String, String)>,
    /// librdkafka properties for the tracker's consumer only (`session.timeout.ms` ...).
    pub consumer_properties: Vec<(String, String)>,
}

impl KafkaConnection {
    /// A plaintext connection to `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            properties: Vec::new(),
            producer_properties: Vec::new(),
            consumer_properties: Vec::new(),
        }
    }

    /// A librdkafka configuration with the connection settings applied.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// A librdkafka configuration for producers: the connection plus producer properties.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        for (key, value) in &self.producer_properties {
            config.set(key, value);
        }
        config
    }

    /// A librdkafka configuration for producers of the standard's events:
    /// [`Self::producer_config`] with `acks=all` and a short linger unless configured, and keys
    /// hashed like the Java client does (`murmur2_random`), so any producer of the standard puts a
    /// key on the same partition. The command-line producers and the Elastic converter use it.
    pub fn event_producer_config(&self) -> ClientConfig {
        let mut config = self.producer_config();
        for (key, value) in [("acks", "all"), ("linger.ms", "20")] {
            if config.get(key).is_none() {
                config.set(key, value);
            }
        }
        config.set("partitioner", "murmur2_random");
        config
    }

    /// A librdkafka configuration for consumers: the connection plus consumer properties, with
    /// a 10 s session timeout unless configured (a replaced instance's partitions move on quickly).
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config.set("session.timeout.ms", "10000");
        for (key, value) in &self.consumer_properties {
            config.set(key, value);
        }
        config
    }

    /// Creates the topics that do not exist yet; returns the names created.
    pub async fn ensure_topics(
        &self,
        topics: &[TopicSpec],
    ) -> Result<Vec<String>, rdkafka::error::KafkaError> {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let new_topics: Vec<NewTopic<'_>> = topics.iter().map(TopicSpec::new_topic).collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let mut created = Vec::new();
        for result in admin.create_topics(&new_topics, &options).await? {
            match result {
                Ok(name) => created.push(name),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(rdkafka::error::KafkaError::AdminOp(code)).inspect_err(|_| {
                        tracing::error!(topic = %name, %code, "creating topic failed");
                    })
                }
            }
        }
        Ok(created)
    }
}

/// One message read by [`KafkaConnection::read_each`].
#[derive(Debug, Clone)]
pub struct TopicMessage {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key, if any.
    pub key: Option<Vec<u8>>,
    /// Its payload (`None`: a tombstone).
    pub payload: Option<Vec<u8>>,
}

impl KafkaConnection {
    /// Hands every message of `topic`, from the beginning to the end seen at start, to `each`,
    /// one at a time, without a consumer group (nothing is committed), and returns how many it
    /// handed over. Nothing is kept: memory is the caller's. `each` returns `false` to stop
    /// early. For command-line tools that need a topic's whole content, such as the rate-card
    /// exporter; blocking, so call it from a blocking task.
    pub fn read_each(
        &self,
        topic: &str,
        mut each: impl FnMut(TopicMessage) -> bool,
    ) -> Result<u64, rdkafka::error::KafkaError> {
        let consumer: BaseConsumer = self
            .consumer_config()
            .set("group.id", "usage-tracker-read-to-end")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .create()?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
        let mut assignment = TopicPartitionList::new();
        let mut ends = Vec::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (_, high) =
                consumer.fetch_watermarks(topic, partition.id(), Duration::from_secs(30))?;
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
            ends.push((partition.id(), high));
        }
        consumer.assign(&assignment)?;
        let mut positions: std::collections::HashMap<i32, i64> = Default::default();
        let mut handed = 0u64;
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    positions.insert(message.partition(), message.offset() + 1);
                    handed += 1;
                    let going_on = each(TopicMessage {
                        partition: message.partition(),
                        offset: message.offset(),
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().map(<[u8]>::to_vec),
                    });
                    if !going_on {
                        return Ok(handed);
                    }
                }
                Some(Err(error)) => return Err(error),
                None => {}
            }
            let at_end = ends
                .iter()
                .all(|(p, high)| positions.get(p).copied().unwrap_or(0) >= *high);
            if at_end {
                return Ok(handed);
            }
        }
    }
}

/// A topic the service needs.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// Keep only the latest message per key (usage records).
    pub compacted: bool,
}

impl TopicSpec {
    /// A delete-policy topic.
    pub fn new(name: impl Into<String>, partitions: i32, replication: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication,
            compacted: false,
        }
    }

    /// The same topic with log compaction.
    pub fn compacted(mut self) -> Self {
        self.compacted = true;
        self
    }

    fn new_topic(&self) -> NewTopic<'_> {
        let topic = NewTopic::new(
            &self.name,
            self.partitions,
            TopicReplication::Fixed(self.replication),
        );
        if self.compacted {
            topic.set("cleanup.policy", "compact")
        } else {
            topic
        }
    }
}
