//! Exactly-once on the Kafka output: a tracker that dies between the Postgres commit of a
//! checkpoint and the publication of its records loses nothing and publishes no (key, revision)
//! with two contents; afterwards the topic's latest record per key equals the Postgres row.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{query_i64, tracker_config, tracker_run};
use rdkafka::Message;
use sqlx::Row;
use usage_tracker::generate;
use usage_tracker::kafka::TopicSpec;
use usage_tracker::standard::wire::RecordDecoder;
use usage_tracker::standard::UsageRecord;

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z

/// Every message of `topic`, in order: (key, raw value).
async fn all_messages(
    kafka: &usage_tracker::kafka::KafkaConnection,
    topic: &str,
) -> Vec<(String, Option<Vec<u8>>)> {
    let consumer = common::consumer(kafka, topic).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_publish_leaves_the_topic_equal_to_the_table() {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    let usage_topic = common::unique("outbox-usage");
    let cost_topic = common::unique("outbox-cost");
    let records_topic = common::unique("outbox-records");
    kafka
        .ensure_topics(&[
            TopicSpec::new(&usage_topic, 2, 1),
            TopicSpec::new(&cost_topic, 2, 1),
        ])
        .await
        .unwrap();
    let input = generate::demo(T0, 2, 10, 7);
    common::publish_records(&kafka, &registry, &usage_topic, &input.usage, |e| {
        e.subject.cluster_id.clone()
    })
    .await;
    common::publish_records(&kafka, &registry, &cost_topic, &input.costs, |_| {
        "gke-demo".to_string()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let dead_letters = common::unique("outbox-dlq");
    let topics = [
        ("usage_events", usage_topic.as_str()),
        ("cost_events", cost_topic.as_str()),
        ("usage_records", records_topic.as_str()),
        ("dead_letters", dead_letters.as_str()),
    ];
    let config = tracker_config(dir.path(), "outbox", 2, "200ms", &topics);
    let database_url = common::fresh_database().await;

    // The first incarnation dies right after its first checkpoint with records commits.
    let status = tracker_run(&registry, &config, &database_url, true)
        .env("USAGE_TRACKER_FAULT", "abort-after-commit")
        .env("USAGE_TRACKER__KAFKA__GROUP_ID", common::unique("outbox-1"))
        .status()
        .await
        .unwrap();
    assert!(!status.success(), "the fault ends the process: {status}");
    let committed = query_i64(&database_url, "SELECT count(*) FROM usage_records").await;
    let staged = query_i64(&database_url, "SELECT count(*) FROM tracker_outbox").await;
    assert!(committed > 0, "the checkpoint committed its records");
    assert!(
        staged >= committed,
        "and staged them: {staged} of {committed}"
    );
    assert!(
        all_messages(&kafka, &records_topic).await.is_empty(),
        "nothing is published before the commit, nor after it by the dead process"
    );

    // The next incarnation publishes what was staged, then carries on to the end.
    let status = tracker_run(&registry, &config, &database_url, true)
        .env("USAGE_TRACKER__KAFKA__GROUP_ID", common::unique("outbox-2"))
        .status()
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        query_i64(&database_url, "SELECT count(*) FROM tracker_outbox").await,
        0,
        "the outbox is drained"
    );

    // One content per (key, revision), and the latest per key equals the table.
    let decoder = RecordDecoder::<UsageRecord>::new(endpoint.sr_settings().unwrap());
    let mut contents: BTreeMap<(String, i64), Vec<u8>> = BTreeMap::new();
    let mut latest: BTreeMap<String, UsageRecord> = BTreeMap::new();
    for (key, payload) in all_messages(&kafka, &records_topic).await {
        let Some(payload) = payload else {
            latest.remove(&key);
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
        if latest
            .get(&key)
            .is_none_or(|r| r.revision <= record.revision)
        {
            latest.insert(key, record);
        }
    }
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT cluster_id || '/' || namespace || '/' || (extract(epoch from window_start) * 1000)::bigint,
                revision, (cost_total * 1000000)::bigint FROM usage_records",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let table: BTreeMap<String, (i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let topic: BTreeMap<String, (i64, i64)> = latest
        .iter()
        .map(|(k, r)| (k.clone(), (r.revision, r.cost_total_micros)))
        .collect();
    assert!(table.len() > 10, "{} rows", table.len());
    assert_eq!(topic, table);
}
