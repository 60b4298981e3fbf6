//! Shared setup for end-to-end tests: a registry stand-in per test, the stack's broker and database.
#![allow(dead_code)]

pub mod proxy;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Message;
use registry_standin::RunningRegistry;
use std::time::Duration;
use usage_tracker::kafka::KafkaConnection;
use usage_tracker::standard::registry::RegistryEndpoint;
use usage_tracker::standard::wire::RecordDecoder;
use usage_tracker::standard::UsageRecord;
use usage_tracker::standard::{
    CostCategory, CostEvent, CostStatus, Measurement, MeasurementKind, UsageEvent, WorkloadSubject,
};

/// A fresh, empty registry stand-in on an ephemeral port.
pub async fn registry() -> RunningRegistry {
    registry_standin::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .expect("start registry stand-in")
}

/// Endpoint of a running stand-in.
pub fn endpoint(registry: &RunningRegistry) -> RegistryEndpoint {
    RegistryEndpoint::new(registry.url())
}

/// The broker started by `scripts/stack.sh up` (see target/stack/env).
pub fn kafka() -> KafkaConnection {
    let servers = std::env::var("KAFKA_BOOTSTRAP_SERVERS").expect(
        "KAFKA_BOOTSTRAP_SERVERS is not set: run `scripts/stack.sh up && . target/stack/env` first",
    );
    KafkaConnection::new(servers)
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A realistic pod sample: `cores` over a 10 s period ending at `t_ms`.
pub fn pod_sample(
    namespace: &str,
    pod: &str,
    t_ms: i64,
    cores: f64,
    memory_bytes: f64,
) -> UsageEvent {
    UsageEvent {
        specversion: "1.0".into(),
        id: format!("{namespace}/{pod}/{t_ms}"),
        source: "//elastic-agent/test-cluster".into(),
        event_type: usage_tracker::standard::USAGE_EVENT_TYPE.into(),
        time: t_ms,
        start: t_ms - 10_000,
        end: t_ms,
        subject: WorkloadSubject {
            cluster_id: "test-cluster".into(),
            cluster_name: Some("Test cluster".into()),
            namespace: Some(namespace.into()),
            pod_name: Some(pod.into()),
            pod_uid: Some(format!("uid-{pod}")),
            container_name: None,
            node_name: Some("node-1".into()),
            workload_kind: Some("Deployment".into()),
            workload_name: Some(pod.split('-').next().unwrap_or(pod).into()),
            labels: BTreeMap::from([("app".to_string(), pod.to_string())]),
        },
        measurements: vec![
            Measurement {
                resource: "cpu".into(),
                kind: MeasurementKind::Usage,
                quantity: cores * 10.0,
                unit: "core_seconds".into(),
            },
            Measurement {
                resource: "memory".into(),
                kind: MeasurementKind::Usage,
                quantity: memory_bytes * 10.0,
                unit: "byte_seconds".into(),
            },
        ],
    }
}

/// A new, empty database on the stack's Postgres server; returns its URL.
pub async fn fresh_database() -> String {
    use sqlx::Connection;
    let base = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL is not set: run `scripts/stack.sh up && . target/stack/env` first");
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL ends with /<database>");
    let name = unique("ut").replace('-', "_");
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    format!("{server}/{name}")
}

/// Publishes already-encoded messages in batches, as real agents do (linger 20 ms), and waits
/// for every acknowledgement.
pub async fn publish(kafka: &KafkaConnection, topic: &str, messages: &[(String, Vec<u8>)]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = kafka
        .producer_config()
        .set("linger.ms", "20")
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let sends = messages.iter().map(|(key, payload)| {
        producer.send(
            FutureRecord::to(topic).key(key).payload(payload),
            std::time::Duration::from_secs(30),
        )
    });
    for result in futures::future::join_all(sends).await {
        result.map_err(|(e, _)| e).unwrap();
    }
}

/// A consumer of `topic` from its beginning, in a group of its own.
pub async fn consumer(
    kafka: &usage_tracker::kafka::KafkaConnection,
    topic: &str,
) -> StreamConsumer {
    let consumer: StreamConsumer = kafka
        .client_config()
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// Reads the records topic until every expected key is present: the highest revision per key,
/// minus keys whose latest message is a tombstone.
pub async fn latest_records(
    kafka: &usage_tracker::kafka::KafkaConnection,
    endpoint: &usage_tracker::standard::registry::RegistryEndpoint,
    topic: &str,
    keys: usize,
) -> BTreeMap<String, UsageRecord> {
    let consumer = consumer(kafka, topic).await;
    let decoder = RecordDecoder::<UsageRecord>::new(endpoint.sr_settings().unwrap());
    let mut latest: BTreeMap<String, UsageRecord> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let wait = tokio::time::timeout(Duration::from_secs(3), consumer.recv()).await;
        match wait {
            Ok(message) => {
                let message = message.unwrap();
                let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
                let Some(payload) = message.payload() else {
                    latest.remove(&key); // A tombstone: the record was withdrawn.
                    continue;
                };
                let record = decoder.decode(payload).await.unwrap();
                // The highest revision wins; on a tie the later message (as compaction keeps).
                if latest
                    .get(&key)
                    .is_none_or(|r| r.revision <= record.revision)
                {
                    latest.insert(key, record);
                }
            }
            Err(_) if latest.len() >= keys => return latest,
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {keys} keys arrived",
                latest.len()
            ),
        }
    }
}

/// A local address with a port free right now (for endpoints a test scrapes).
pub fn free_local_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Encodes standard records with Confluent framing and publishes them keyed by `key`.
pub async fn publish_records<T: usage_tracker::standard::StandardRecord>(
    kafka: &KafkaConnection,
    registry: &RunningRegistry,
    topic: &str,
    records: &[T],
    key: impl Fn(&T) -> String,
) {
    let encoder = usage_tracker::standard::wire::RecordEncoder::<T>::new(
        endpoint(registry).sr_settings().unwrap(),
        topic,
    );
    let mut messages = Vec::with_capacity(records.len());
    for record in records {
        messages.push((key(record), encoder.encode(record).await.unwrap()));
    }
    publish(kafka, topic, &messages).await;
}

/// A tracker configuration for tests: its own group and HTTP port, the local stack's client
/// settings, fast checkpoints, and `topics` (`[topics]` keys and values).
pub fn tracker_config(
    dir: &std::path::Path,
    name: &str,
    partitions: i32,
    checkpoint_interval: &str,
    topics: &[(&str, &str)],
) -> std::path::PathBuf {
    let mut text = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[kafka]\ngroup_id = \"{}\"\n\n\
         [kafka.consumer_properties]\n\"session.timeout.ms\" = \"6000\"\n\n\
         [pipeline]\ncheckpoint_interval = \"{checkpoint_interval}\"\n\n[topics]\npartitions = {partitions}\n",
        unique(name)
    );
    for (key, value) in topics {
        text.push_str(&format!("{key} = \"{value}\"\n"));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `usage-tracker run` as a child process, against `registry` and `database_url`.
pub fn tracker_run(
    registry: &RunningRegistry,
    config: &std::path::Path,
    database_url: &str,
    until_caught_up: bool,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"));
    command
        .arg("run")
        .arg("--config")
        .arg(config)
        .args(until_caught_up.then_some("--until-caught-up"))
        // USAGE_TRACKER_TEST_LOG=info shows what the tracker did when a test fails.
        .args([
            "--log",
            &std::env::var("USAGE_TRACKER_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        ])
        .env("SCHEMA_REGISTRY_URL", registry.url())
        .env("DATABASE_URL", database_url)
        .kill_on_drop(true);
    command
}

/// One number from a database (0 when the query fails, e.g. before the first migration).
pub async fn query_i64(database_url: &str, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let value = sqlx::query_scalar::<_, Option<i64>>(sql)
        .fetch_one(&pool)
        .await;
    pool.close().await;
    value.ok().flatten().unwrap_or(0)
}

/// Sum of the input positions in the last committed checkpoints.
pub async fn committed_offsets(database_url: &str) -> i64 {
    query_i64(
        database_url,
        "SELECT sum(next_offset)::bigint FROM tracker_offsets",
    )
    .await
}

/// Figures of every namespace usage record (group records are left out: they share the
/// namespace's key here, see [`record_figures`]), without revision and update time (which depend
/// on checkpoint timing): key -> (status, resources, costs, cost_total).
pub async fn figures(
    database_url: &str,
) -> BTreeMap<(String, String, i64), (String, String, String, String)> {
    record_figures(database_url)
        .await
        .into_iter()
        .filter(|(key, _)| key.3.is_empty())
        .map(|((cluster, namespace, start, _, _), f)| {
            (
                (cluster, namespace, start),
                (f.status, f.resources, f.costs, f.cost_total),
            )
        })
        .collect()
}

/// The full key of a usage record: cluster, namespace, window start (epoch ms), group_by and
/// group_value (both empty for a namespace record).
pub type RecordKey = (String, String, i64, String, String);

/// What [`record_figures`] compares of a row: everything but revision and update time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFigures {
    pub status: String,
    pub resources: String,
    pub costs: String,
    /// Decimal text, 6 decimals.
    pub cost_total: String,
    /// Decimal text; `None` for NULL.
    pub own_cost: Option<String>,
    pub shared_cost: String,
    pub idle_cost: String,
    pub shared: bool,
    pub currency: Option<String>,
    pub cost_status: String,
}

/// Figures of every usage record, group records included, by full key.
pub async fn record_figures(database_url: &str) -> BTreeMap<RecordKey, RecordFigures> {
    use sqlx::Row;
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT cluster_id, namespace, (extract(epoch from window_start) * 1000)::bigint,
                group_by, group_value, status, resources::text, costs::text, cost_total::text,
                own_cost::text, shared_cost::text, idle_cost::text, shared, currency, cost_status
         FROM usage_records",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| {
            (
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)),
                RecordFigures {
                    status: r.get(5),
                    resources: r.get(6),
                    costs: r.get(7),
                    cost_total: r.get(8),
                    own_cost: r.get(9),
                    shared_cost: r.get(10),
                    idle_cost: r.get(11),
                    shared: r.get(12),
                    currency: r.get(13),
                    cost_status: r.get(14),
                },
            )
        })
        .collect()
}

/// The full key of a record as read from the topic.
pub fn record_key(record: &UsageRecord) -> RecordKey {
    (
        record.cluster_id.clone(),
        record.namespace.clone(),
        record.window_start,
        record.group_by.clone().unwrap_or_default(),
        record.group_value.clone().unwrap_or_default(),
    )
}

/// `database_url` with its host and port replaced by `addr` (to go through a [`proxy::TcpProxy`]).
pub fn through(database_url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = database_url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let user = authority
        .rsplit_once('@')
        .map_or(String::new(), |(user, _)| format!("{user}@"));
    format!("{scheme}://{user}{addr}{path}")
}

/// `host:port` of a database URL.
pub fn host_and_port(database_url: &str) -> String {
    let rest = database_url.split_once("://").expect("a URL").1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
        .to_owned()
}

/// The text of `/metrics` at `addr`.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample whose name and labels are `series` (as written in the text format,
/// `name{label="value"}`), if present.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Value per label of the one-label metric `name` (`name{label="value"} n` lines).
pub fn metric_by_label(metrics: &str, name: &str) -> BTreeMap<String, u64> {
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            let (_, label) = labels.split_once("=\"")?;
            Some((label.trim_end_matches('"').to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Status and JSON body of `/readyz` at `addr`; `None` while nothing answers there.
pub async fn readyz(addr: std::net::SocketAddr) -> Option<(u16, serde_json::Value)> {
    let response = reqwest::get(format!("http://{addr}/readyz")).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap()))
}

/// Polls `check` every 100 ms until it returns `Some`, failing with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A UsageEvent of cluster `cluster` with cpu measurements (core seconds) over `[start, end)`.
pub fn usage(
    id: &str,
    cluster: &str,
    namespace: Option<&str>,
    start: i64,
    end: i64,
    m: &[(MeasurementKind, f64)],
) -> UsageEvent {
    UsageEvent {
        specversion: "1.0".into(),
        id: id.into(),
        source: "//test/exact".into(),
        event_type: "io.ferrisdx.usage.v1".into(),
        time: end,
        start,
        end,
        subject: WorkloadSubject {
            cluster_id: cluster.into(),
            namespace: namespace.map(str::to_owned),
            ..Default::default()
        },
        measurements: m
            .iter()
            .map(|&(kind, quantity)| Measurement {
                resource: "cpu".into(),
                kind,
                quantity,
                unit: "core_seconds".into(),
            })
            .collect(),
    }
}

/// A final EUR bill line (revision 1) of `cluster` over `start..end`.
pub fn cost(
    id: &str,
    provider: &str,
    cluster: &str,
    namespace: Option<&str>,
    (start, end): (i64, i64),
    micros: i64,
    category: CostCategory,
) -> CostEvent {
    CostEvent {
        specversion: "1.0".into(),
        id: id.into(),
        source: "//test/bill".into(),
        event_type: "io.ferrisdx.cost.v1".into(),
        time: end,
        revision: 1,
        provider: provider.into(),
        billing_account_id: "acct".into(),
        sub_account_id: None,
        cluster_id: Some(cluster.into()),
        namespace: namespace.map(str::to_owned),
        charge_period_start: start,
        charge_period_end: end,
        billed_cost_micros: micros,
        effective_cost_micros: micros,
        billing_currency: "EUR".into(),
        category,
        cost_status: CostStatus::Final,
        service_name: None,
        sku_id: None,
        resource_id: None,
        labels: BTreeMap::new(),
        meter: None,
    }
}

/// Largest-remainder split, written out independently of the tracker's implementation.
pub fn split(amount: i64, weights: &[i64]) -> Vec<i64> {
    let total: i64 = weights.iter().sum();
    let mut parts: Vec<i64> = weights.iter().map(|w| amount * w / total).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(amount * weights[i] % total), i));
    let left = amount - parts.iter().sum::<i64>();
    for &i in order.iter().take(left as usize) {
        parts[i] += 1;
    }
    parts
}

/// `usage-tracker` as a child process with none of the configuration variables of the test's
/// environment (`USAGE_TRACKER*`, `KAFKA_BOOTSTRAP_SERVERS`, `SCHEMA_REGISTRY_*`,
/// `DATABASE_URL`).
pub fn tracker_without_configuration_env() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"));
    for (name, _) in std::env::vars_os() {
        let configures = name.to_str().is_some_and(|name| {
            name.starts_with("USAGE_TRACKER")
                || name.starts_with("SCHEMA_REGISTRY_")
                || ["KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL"].contains(&name)
        });
        if configures {
            command.env_remove(name);
        }
    }
    command.kill_on_drop(true);
    command
}

/// A message as read back: key, payload (absent for a null value) and headers.
pub struct ReadMessage {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

/// Reads `count` messages from `topic` (within 60 s), then makes sure no more arrive for 2 s.
pub async fn read_messages(kafka: &KafkaConnection, topic: &str, count: usize) -> Vec<ReadMessage> {
    use rdkafka::message::Headers;
    let consumer = consumer(kafka, topic).await;
    let mut read = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let wait = if read.len() >= count { 2 } else { 5 };
        match tokio::time::timeout(Duration::from_secs(wait), consumer.recv()).await {
            Ok(message) => {
                let message = message.unwrap();
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                let value = h.value.unwrap_or_default();
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(value).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                read.push(ReadMessage {
                    partition: message.partition(),
                    key: message.key().map(<[u8]>::to_vec),
                    payload: message.payload().map(<[u8]>::to_vec),
                    headers,
                });
            }
            Err(_) if read.len() >= count => return read,
            Err(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {count} messages arrived on {topic}",
                read.len()
            ),
        }
    }
}

/// Publishes `(partition, key, payload)` messages one by one, in order, each in a batch of its
/// own, and waits for every acknowledgement. `None` is a null value; large messages are allowed
/// (up to 8 MiB).
pub async fn publish_to_partitions(
    kafka: &KafkaConnection,
    topic: &str,
    messages: &[(i32, String, Option<Vec<u8>>)],
) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = kafka
        .producer_config()
        .set("linger.ms", "0")
        .set("message.max.bytes", "8388608")
        .create()
        .unwrap();
    for (partition, key, payload) in messages {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic)
            .partition(*partition)
            .key(key.as_str());
        if let Some(payload) = payload {
            record = record.payload(payload.as_slice());
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("producing {key}: {e}"));
    }
}

/// Every message of `topic` from the beginning, in order: (key, raw value), until none arrives
/// for 5 s.
pub async fn all_messages(kafka: &KafkaConnection, topic: &str) -> Vec<(String, Option<Vec<u8>>)> {
    let consumer = consumer(kafka, topic).await;
    let mut messages = Vec::new();
    while let Ok(message) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await {
        let message = message.unwrap();
        messages.push((
            String::from_utf8(message.key().unwrap().to_vec()).unwrap(),
            message.payload().map(<[u8]>::to_vec),
        ));
    }
    messages
}

/// What [`assert_topic_equals_table`] compares of the latest record per key: revision,
/// cost_total, own, shared and idle cost (micros; shared and idle 0 when absent), shared.
type Compared = (i64, i64, Option<i64>, i64, i64, bool);

/// Asserts that the records topic is exact: one content per (message key, revision), one record
/// identity (cluster, namespace, window start, group_by, group_value) per message key, and the
/// latest message per record is the `usage_records` row (revision, cost, own / shared / idle
/// cost, shared), group records included; returns the row count.
pub async fn assert_topic_equals_table(
    kafka: &KafkaConnection,
    endpoint: &RegistryEndpoint,
    topic: &str,
    database_url: &str,
) -> usize {
    use sqlx::Row;
    let decoder = RecordDecoder::<UsageRecord>::new(endpoint.sr_settings().unwrap());
    let mut contents: BTreeMap<(String, i64), Vec<u8>> = BTreeMap::new();
    // Message key -> the record it identifies (a tombstone has only the message key).
    let mut identities: BTreeMap<String, RecordKey> = BTreeMap::new();
    let mut latest: BTreeMap<RecordKey, Compared> = BTreeMap::new();
    for (key, payload) in all_messages(kafka, topic).await {
        let Some(payload) = payload else {
            if let Some(record) = identities.get(&key) {
                latest.remove(record);
            }
            continue;
        };
        let record = decoder.decode(&payload).await.unwrap();
        let first = contents
            .entry((key.clone(), record.revision))
            .or_insert_with(|| payload.clone());
        assert_eq!(
            *first, payload,
            "{key} revision {} has two contents",
            record.revision
        );
        let identity = record_key(&record);
        let known = identities
            .entry(key.clone())
            .or_insert_with(|| identity.clone());
        assert_eq!(
            *known, identity,
            "message key {key} is used by two records (compaction would keep one)"
        );
        let compared = (
            record.revision,
            record.cost_total_micros,
            record.own_cost_micros,
            record.shared_cost_micros.unwrap_or(0),
            record.idle_cost_micros.unwrap_or(0),
            record.shared,
        );
        let previous = latest.insert(identity, compared);
        assert!(
            previous.is_none_or(|(revision, ..)| revision <= record.revision),
            "{key}: revision {} after {previous:?}",
            record.revision
        );
    }
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT cluster_id, namespace, (extract(epoch from window_start) * 1000)::bigint,
                group_by, group_value, revision, (cost_total * 1000000)::bigint,
                (own_cost * 1000000)::bigint, (shared_cost * 1000000)::bigint,
                (idle_cost * 1000000)::bigint, shared
         FROM usage_records",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let table: BTreeMap<RecordKey, Compared> = rows
        .iter()
        .map(|r| {
            (
                (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)),
                (r.get(5), r.get(6), r.get(7), r.get(8), r.get(9), r.get(10)),
            )
        })
        .collect();
    assert_eq!(
        latest, table,
        "the topic's latest record per key is the table's row"
    );
    table.len()
}

/// Two fresh input topics of `partitions` each (usage, cost), named after `prefix`, holding
/// `hours` of the demo cluster from `start` (seeded) and its bill, keyed as the standard says.
pub async fn demo_input(
    kafka: &KafkaConnection,
    registry: &RunningRegistry,
    prefix: &str,
    partitions: i32,
    (start, hours, seed): (i64, u32, u64),
) -> (String, String, usage_tracker::generate::DemoInput) {
    use usage_tracker::kafka::TopicSpec;
    let usage_topic = unique(&format!("{prefix}-usage"));
    let cost_topic = unique(&format!("{prefix}-cost"));
    kafka
        .ensure_topics(&[
            TopicSpec::new(&usage_topic, partitions, 1),
            TopicSpec::new(&cost_topic, partitions, 1),
        ])
        .await
        .unwrap();
    let input = usage_tracker::generate::demo(start, hours, 10, seed);
    publish_records(kafka, registry, &usage_topic, &input.usage, |e| {
        e.subject.cluster_id.clone()
    })
    .await;
    publish_records(kafka, registry, &cost_topic, &input.costs, |_| {
        "gke-demo".to_string()
    })
    .await;
    (usage_topic, cost_topic, input)
}
