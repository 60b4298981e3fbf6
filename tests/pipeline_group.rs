//! Two instances in one consumer group split the slots; state follows the assignment when the
//! second joins; together they produce exactly what one instance produces alone.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sqlx::Row;
use usage_tracker::generate;
use usage_tracker::kafka::TopicSpec;
use usage_tracker::standard::wire::RecordEncoder;
use usage_tracker::standard::{CostEvent, UsageEvent};

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z
const CLUSTERS: usize = 4;

async fn query_i64(database_url: &str, sql: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let value = sqlx::query_scalar::<_, Option<i64>>(sql)
        .fetch_one(&pool)
        .await;
    pool.close().await;
    value.ok().flatten().unwrap_or(0)
}

async fn figures(database_url: &str) -> BTreeMap<(String, String, i64), (String, String, String)> {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    sqlx::query(
        "SELECT cluster_id, namespace, (extract(epoch from window_start) * 1000)::bigint,
                resources::text, costs::text, cost_total::text FROM usage_records",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            (r.get(0), r.get(1), r.get(2)),
            (r.get(3), r.get(4), r.get(5)),
        )
    })
    .collect()
}

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
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka_one_record_per_batch();
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
    let usage_encoder =
        RecordEncoder::<UsageEvent>::new(endpoint.sr_settings().unwrap(), &usage_topic);
    let cost_encoder =
        RecordEncoder::<CostEvent>::new(endpoint.sr_settings().unwrap(), &cost_topic);
    let (mut usage, mut costs) = (Vec::new(), Vec::new());
    for c in 0..CLUSTERS {
        let cluster = format!("gke-{c}");
        let input = generate::demo(T0, 2, 60, c as u64);
        for mut e in input.usage {
            e.subject.cluster_id.clone_from(&cluster);
            e.source = format!("//generate/{cluster}");
            usage.push((cluster.clone(), usage_encoder.encode(&e).await.unwrap()));
        }
        for mut line in input.costs {
            line.cluster_id = Some(cluster.clone());
            line.source = format!("//generate/{cluster}-billing");
            costs.push((cluster.clone(), cost_encoder.encode(&line).await.unwrap()));
        }
    }
    let total_input = (usage.len() + costs.len()) as i64;
    common::publish(&kafka, &usage_topic, &usage).await;
    common::publish(&kafka, &cost_topic, &costs).await;

    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str| {
        let text = format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n[kafka]\ngroup_id = \"{}\"\n\n[kafka.consumer_properties]\n\"session.timeout.ms\" = \"6000\"\n\n\
             [kafka.producer_properties]\n\"batch.num.messages\" = \"1\"\n\n[pipeline]\ncheckpoint_interval = \"100ms\"\n\n\
             [topics]\npartitions = 4\nusage_events = \"{usage_topic}\"\ncost_events = \"{cost_topic}\"\n\
             usage_records = \"{}\"\ndead_letters = \"{}\"\n",
            common::unique(name),
            common::unique("group-records"),
            common::unique("group-dlq"),
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let run = |config: &std::path::Path, database_url: &str, until_caught_up: bool| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"));
        command
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(until_caught_up.then_some("--until-caught-up"))
            .args(["--log", "warn"])
            .env("SCHEMA_REGISTRY_URL", registry.url())
            .env("DATABASE_URL", database_url)
            .kill_on_drop(true);
        command
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
    while owners(&shared_db).await.len() < 2
        || query_i64(
            &shared_db,
            "SELECT sum(next_offset)::bigint FROM tracker_offsets",
        )
        .await
            < total_input
    {
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
    assert_eq!(
        query_i64(
            &shared_db,
            "SELECT sum(next_offset)::bigint FROM tracker_offsets"
        )
        .await,
        total_input
    );
    assert_eq!(figures(&shared_db).await, expected);
}
