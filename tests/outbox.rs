//! Exactly-once on the Kafka output: a tracker that dies between the Postgres commit of a
//! checkpoint and the publication of its records loses nothing and publishes no (key, revision)
//! with two contents; afterwards the topic's latest record per key equals the Postgres row.

mod common;

use common::{query_i64, tracker_config, tracker_run};

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_commit_and_publish_leaves_the_topic_equal_to_the_table() {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    let (usage_topic, cost_topic, _) =
        common::demo_input(&kafka, &registry, "outbox", 2, (T0, 2, 7)).await;
    let records_topic = common::unique("outbox-records");
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
        common::all_messages(&kafka, &records_topic)
            .await
            .is_empty(),
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

    let rows =
        common::assert_topic_equals_table(&kafka, &endpoint, &records_topic, &database_url).await;
    assert!(rows > 10, "{rows} rows");
}
