//! No loss, no double count across crashes: a tracker killed with SIGKILL several times and
//! restarted ends with the same figures as an uninterrupted run over the same input.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::Row;
use usage_tracker::generate;
use usage_tracker::kafka::TopicSpec;
use usage_tracker::standard::wire::RecordEncoder;
use usage_tracker::standard::{CostEvent, UsageEvent};

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z

/// Figures of every row, without revision and update time (which depend on checkpoint timing).
async fn figures(
    database_url: &str,
) -> BTreeMap<(String, String, i64), (String, String, String, String)> {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    sqlx::query(
        "SELECT cluster_id, namespace, (extract(epoch from window_start) * 1000)::bigint,
                status, resources::text, costs::text, cost_total::text
         FROM usage_records",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            (r.get(0), r.get(1), r.get(2)),
            (r.get(3), r.get(4), r.get(5), r.get(6)),
        )
    })
    .collect()
}

/// Sum of the input positions in the last committed checkpoint (0 before the first).
async fn committed_offsets(database_url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let sum = sqlx::query_scalar::<_, Option<i64>>(
        "SELECT sum(next_offset)::bigint FROM tracker_offsets",
    )
    .fetch_one(&pool)
    .await;
    pool.close().await;
    sum.ok().flatten().unwrap_or(0)
}

fn config_file(dir: &std::path::Path, name: &str, topics: &[(&str, &str)]) -> std::path::PathBuf {
    let mut text = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[kafka]\ngroup_id = \"{}\"\n\n",
        common::unique(name)
    );
    text.push_str("[kafka.consumer_properties]\n\"session.timeout.ms\" = \"6000\"\n\n[kafka.producer_properties]\n\"batch.num.messages\" = \"1\"\n\n[pipeline]\ncheckpoint_interval = \"50ms\"\n\n[topics]\npartitions = 2\n");
    for (key, value) in topics {
        text.push_str(&format!("{key} = \"{value}\"\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_tracker_matches_an_uninterrupted_run() {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka_one_record_per_batch();
    let usage_topic = common::unique("crash-usage");
    let cost_topic = common::unique("crash-cost");
    kafka
        .ensure_topics(&[
            TopicSpec::new(&usage_topic, 2, 1),
            TopicSpec::new(&cost_topic, 2, 1),
        ])
        .await
        .unwrap();

    // Six hours of the demo cluster, sampled every 30 s, and its bill.
    let input = generate::demo(T0, 6, 30, 42);
    let encoder = RecordEncoder::<UsageEvent>::new(endpoint.sr_settings().unwrap(), &usage_topic);
    let mut messages = Vec::new();
    for e in &input.usage {
        messages.push((
            e.subject.cluster_id.clone(),
            encoder.encode(e).await.unwrap(),
        ));
    }
    common::publish(&kafka, &usage_topic, &messages).await;
    let encoder = RecordEncoder::<CostEvent>::new(endpoint.sr_settings().unwrap(), &cost_topic);
    let mut messages = Vec::new();
    for c in &input.costs {
        messages.push(("gke-demo".to_string(), encoder.encode(c).await.unwrap()));
    }
    common::publish(&kafka, &cost_topic, &messages).await;

    let dir = tempfile::tempdir().unwrap();
    let run = |config: std::path::PathBuf, database_url: String, until_caught_up: bool| {
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

    // The reference: one uninterrupted run.
    let reference_records = common::unique("crash-records-ref");
    let reference_config = config_file(
        dir.path(),
        "reference.toml",
        &[
            ("usage_events", &usage_topic),
            ("cost_events", &cost_topic),
            ("usage_records", &reference_records),
            ("dead_letters", &common::unique("crash-dlq-ref")),
        ],
    );
    let reference_db = common::fresh_database().await;
    let status = run(reference_config, reference_db.clone(), true)
        .status()
        .await
        .unwrap();
    assert!(status.success());

    // The same input, killed with SIGKILL at several points, then finished.
    let crashed_records = common::unique("crash-records");
    let crashed_config = config_file(
        dir.path(),
        "crashed.toml",
        &[
            ("usage_events", &usage_topic),
            ("cost_events", &cost_topic),
            ("usage_records", &crashed_records),
            ("dead_letters", &common::unique("crash-dlq")),
        ],
    );
    let crashed_db = common::fresh_database().await;
    let total_input = (input.usage.len() + input.costs.len()) as i64;
    let mut progress = Vec::new();
    for extra_delay_ms in [0, 37, 73, 111] {
        let before = committed_offsets(&crashed_db).await;
        let mut child = run(crashed_config.clone(), crashed_db.clone(), false)
            .spawn()
            .unwrap();
        // Kill once a checkpoint of this incarnation has committed, a little later each time,
        // so the kills land between and during checkpoints.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while committed_offsets(&crashed_db).await <= before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no checkpoint within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(extra_delay_ms)).await;
        child.start_kill().unwrap(); // SIGKILL
        child.wait().await.unwrap();
        progress.push(committed_offsets(&crashed_db).await);
    }
    let status = run(crashed_config, crashed_db.clone(), true)
        .status()
        .await
        .unwrap();
    assert!(status.success());

    eprintln!("input offsets committed after each kill: {progress:?} of {total_input}");
    let expected = figures(&reference_db).await;
    assert!(
        expected.len() > 50,
        "the reference produced {} rows",
        expected.len()
    );
    assert!(
        progress.iter().any(|p| *p < total_input),
        "at least one kill must land before the end of the input: {progress:?} of {total_input}"
    );
    assert_eq!(
        figures(&crashed_db).await,
        expected,
        "offsets after kills: {progress:?}"
    );

    // Kafka: the latest revision of every key carries the Postgres figure.
    let latest = common::latest_records(&kafka, &endpoint, &crashed_records, expected.len()).await;
    assert_eq!(latest.len(), expected.len());
    for ((cluster, namespace, window_start), (_, _, _, cost_total)) in &expected {
        let record = &latest[&format!("{cluster}/{namespace}/{window_start}")];
        let micros: i64 = (cost_total.parse::<f64>().unwrap() * 1e6).round() as i64;
        assert_eq!(
            record.cost_total_micros, micros,
            "{cluster}/{namespace}/{window_start}"
        );
    }
}
