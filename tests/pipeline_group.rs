//! Two instances in one consumer group split the slots; state follows the assignment when the
//! second joins; together they produce exactly what one instance produces alone.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{committed_offsets, figures, query_i64, tracker_config, tracker_run};
use usage_tracker::generate;
use usage_tracker::kafka::TopicSpec;

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z
const CLUSTERS: usize = 4;

async fn owners(database_url: &str) -> BTreeSet<String> {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    sqlx::query_scalar("SELECT owner FROM tracker_slots")
        .fetch_all(&pool)
        .await
        .unwrap_or_default()
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_work_and_match_one_instance() {
    let registry = common::registry().await;
    let kafka = common::kafka();
    let usage_topic = common::unique("group-usage");
    let cost_topic = common::unique("group-cost");
    kafka
        .ensure_topics(&[
            TopicSpec::new(&usage_topic, 4, 1),
            TopicSpec::new(&cost_topic, 4, 1),
        ])
        .await
        .unwrap();

    // Four clusters keyed over four partitions, two hours each.
    let (mut usage, mut costs) = (Vec::new(), Vec::new());
    for c in 0..CLUSTERS {
        let cluster = format!("gke-{c}");
        let input = generate::demo(T0, 2, 60, c as u64);
        for mut e in input.usage {
            e.subject.cluster_id.clone_from(&cluster);
            e.source = format!("//generate/{cluster}");
            usage.push(e);
        }
        for mut line in input.costs {
            line.cluster_id = Some(cluster.clone());
            line.source = format!("//generate/{cluster}-billing");
            costs.push(line);
        }
    }
    let total_input = (usage.len() + costs.len()) as i64;
    common::publish_records(&kafka, &registry, &usage_topic, &usage, |e| {
        e.subject.cluster_id.clone()
    })
    .await;
    common::publish_records(&kafka, &registry, &cost_topic, &costs, |l| {
        l.cluster_id.clone().unwrap()
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str| {
        let (records, dead_letters) =
            (common::unique("group-records"), common::unique("group-dlq"));
        let topics = [
            ("usage_events", usage_topic.as_str()),
            ("cost_events", cost_topic.as_str()),
            ("usage_records", records.as_str()),
            ("dead_letters", dead_letters.as_str()),
        ];
        tracker_config(dir.path(), name, 4, "100ms", &topics)
    };
    let run = |config: &std::path::Path, database_url: &str, until_caught_up: bool| {
        tracker_run(&registry, config, database_url, until_caught_up)
    };

    let reference_db = common::fresh_database().await;
    assert!(run(&config("reference"), &reference_db, true)
        .status()
        .await
        .unwrap()
        .success());
    let expected = figures(&reference_db).await;
    assert!(
        expected.len() >= CLUSTERS * 2 * 10,
        "{} reference rows",
        expected.len()
    );

    // First instance takes every slot ...
    let shared_db = common::fresh_database().await;
    let shared = config("shared");
    let mut first = run(&shared, &shared_db, false).spawn().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while query_i64(&shared_db, "SELECT count(*) FROM tracker_slots").await < CLUSTERS as i64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first instance never claimed every slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... the second joins, and the group hands it half of them.
    let mut second = run(&shared, &shared_db, false).spawn().unwrap();
    while owners(&shared_db).await.len() < 2 || committed_offsets(&shared_db).await < total_input {
        assert!(
            tokio::time::Instant::now() < deadline,
            "owners {:?}",
            owners(&shared_db).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for child in [&mut first, &mut second] {
        let pid = child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
    }
    for child in [&mut first, &mut second] {
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "graceful stop on SIGTERM: {status}");
    }

    assert_eq!(
        owners(&shared_db).await.len(),
        2,
        "both instances own slots at the end"
    );
    assert_eq!(committed_offsets(&shared_db).await, total_input);
    assert_eq!(figures(&shared_db).await, expected);
}
