//! Faults of the tracker's peers and of the tracker itself, each against real connections:
//! - a schema registry outage: schema ids seen before keep decoding, a new id waits (never
//!   dead-lettered) and is accounted once the registry is back;
//! - a broker restart mid-stream (a broker of the test's own, Tansu on `sqlite://` storage): the
//!   figures equal an uninterrupted run's, and the records topic equals the table;
//! - a stalled former owner: an instance that stalls before its commit while another claims its
//!   slots publishes nothing after it wakes; the topic equals the table.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use apache_avro::Schema;
use common::proxy::TcpProxy;
use serde::{Deserialize, Serialize};
use usage_tracker::allocate::AllocationPolicy;
use usage_tracker::generate;
use usage_tracker::ingest::Exclusions;
use usage_tracker::kafka::{KafkaConnection, TopicSpec};
use usage_tracker::pipeline::{self, PipelineConfig, Topics};
use usage_tracker::standard::registry::RegistryEndpoint;
use usage_tracker::standard::wire::RecordEncoder;
use usage_tracker::standard::{
    Measurement, MeasurementKind, StandardRecord, UsageEvent, WorkloadSubject,
};
use usage_tracker::window::WindowConfig;

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z
const WAIT: Duration = Duration::from_secs(90);

mod v2 {
    use super::*;

    /// UsageEvent as a newer producer has it: one optional field more (a new schema id).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct UsageEvent {
        pub specversion: String,
        pub id: String,
        pub source: String,
        #[serde(rename = "type")]
        pub event_type: String,
        pub time: i64,
        pub start: i64,
        pub end: i64,
        pub subject: WorkloadSubject,
        pub measurements: Vec<Measurement>,
        pub priority_class: Option<String>,
    }
}

impl StandardRecord for v2::UsageEvent {
    const SCHEMA_JSON: &'static str = "UsageEvent with priority_class";
    const FULL_NAME: &'static str = "io.ferrisdx.usage.UsageEvent";
    const DEFAULT_TOPIC: &'static str = "usage.events.v1";

    fn schema() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            let mut schema: serde_json::Value =
                serde_json::from_str(UsageEvent::SCHEMA_JSON).unwrap();
            schema["fields"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({
                    "name": "priority_class", "type": ["null", "string"], "default": null
                }));
            Schema::parse_str(&schema.to_string()).unwrap()
        })
    }
}

/// `count` one-core-second samples of `namespace` in cluster c1.
fn samples(namespace: &str, count: usize) -> Vec<UsageEvent> {
    (0..count)
        .map(|i| {
            let start = T0 + i as i64 * 1_000;
            common::usage(
                &format!("{namespace}-{i}"),
                "c1",
                Some(namespace),
                start,
                start + 1_000,
                &[(MeasurementKind::Usage, 1.0)],
            )
        })
        .collect()
}

fn pipeline_config(
    kafka: &KafkaConnection,
    registry: RegistryEndpoint,
    database_url: &str,
    topics: &Topics,
    until_caught_up: bool,
    http: Option<std::net::SocketAddr>,
) -> PipelineConfig {
    PipelineConfig {
        kafka: kafka.clone(),
        group_id: common::unique("faults-group"),
        registry,
        database_url: database_url.to_owned(),
        topics: topics.clone(),
        window: WindowConfig::default(),
        policy: AllocationPolicy::default(),
        rate_card: None,
        exclusions: Exclusions::default(),
        aggregation: Default::default(),
        cost_scopes: vec![],
        checkpoint_interval: Duration::from_millis(300),
        until_caught_up,
        http_listen: http,
        shutdown_timeout: Duration::from_secs(20),
    }
}

fn topics(prefix: &str, partitions: i32) -> Topics {
    Topics {
        usage_events: common::unique(&format!("{prefix}-usage")),
        cost_events: common::unique(&format!("{prefix}-cost")),
        usage_records: common::unique(&format!("{prefix}-records")),
        dead_letters: common::unique(&format!("{prefix}-dlq")),
        partitions,
        replication: 1,
    }
}

/// Core-seconds used per namespace, from Postgres.
async fn used(database_url: &str) -> BTreeMap<String, f64> {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let rows: Vec<(String, f64)> = sqlx::query_as(
        "SELECT namespace, sum(cpu_used_core_seconds) FROM usage_records
         WHERE namespace NOT LIKE '\\_\\_%' GROUP BY namespace",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    pool.close().await;
    rows.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_outage_keeps_known_ids_decoding_and_new_ids_waiting() {
    let registry = common::registry().await;
    let direct = common::endpoint(&registry);
    let upstream = registry.url().trim_start_matches("http://").to_owned();
    let proxy = TcpProxy::start(&upstream).await;
    let kafka = common::kafka();
    let topics = topics("registry-outage", 1);
    kafka
        .ensure_topics(&[
            TopicSpec::new(&topics.usage_events, 1, 1),
            TopicSpec::new(&topics.cost_events, 1, 1),
        ])
        .await
        .unwrap();
    let key = |e: &UsageEvent| e.subject.cluster_id.clone();
    common::publish_records(
        &kafka,
        &registry,
        &topics.usage_events,
        &samples("a", 10),
        key,
    )
    .await;

    let database_url = common::fresh_database().await;
    let http = common::free_local_address();
    let through_proxy = RegistryEndpoint::new(format!("http://{}", proxy.addr()));
    let config = pipeline_config(
        &kafka,
        through_proxy,
        &database_url,
        &topics,
        false,
        Some(http),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(pipeline::run(config, async {
        let _ = stopped.await;
    }));
    let counted = |namespace: &'static str, expected: f64| {
        let database_url = database_url.clone();
        async move {
            common::eventually(WAIT, &format!("{namespace} counted"), || {
                let database_url = database_url.clone();
                async move {
                    (used(&database_url).await.get(namespace) == Some(&expected)).then_some(())
                }
            })
            .await
        }
    };
    counted("a", 10.0).await;

    // The registry goes away. Messages with the id seen before still decode and are committed.
    proxy.cut();
    common::publish_records(
        &kafka,
        &registry,
        &topics.usage_events,
        &samples("b", 5),
        key,
    )
    .await;
    counted("b", 5.0).await;

    // A new producer's schema (a new id, registered while the tracker cannot see the registry),
    // then more of the known one behind it: the tracker waits at the new id.
    let encoder =
        RecordEncoder::<v2::UsageEvent>::new(direct.sr_settings().unwrap(), &topics.usage_events);
    let mut messages = Vec::new();
    for e in samples("c", 3) {
        let newer = v2::UsageEvent {
            specversion: e.specversion,
            id: e.id,
            source: e.source,
            event_type: e.event_type,
            time: e.time,
            start: e.start,
            end: e.end,
            subject: e.subject,
            measurements: e.measurements,
            priority_class: Some("high".into()),
        };
        messages.push(("c1".to_string(), encoder.encode(&newer).await.unwrap()));
    }
    common::publish(&kafka, &topics.usage_events, &messages).await;
    common::publish_records(
        &kafka,
        &registry,
        &topics.usage_events,
        &samples("d", 2),
        key,
    )
    .await;
    let unready = common::eventually(WAIT, "/readyz says the registry is unavailable", || async {
        let (status, body) = common::readyz(http).await?;
        (status == 503 && body["schema_registry"] == "unavailable").then_some(body)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = used(&database_url).await;
    assert!(
        !during.contains_key("c") && !during.contains_key("d"),
        "nothing after the new id is counted while it cannot be read: {during:?} ({unready})"
    );
    let metrics = common::scrape(http).await;
    assert_eq!(
        common::metric_by_label(&metrics, "usage_tracker_dead_letters_total"),
        BTreeMap::new(),
        "nothing is dead-lettered for an outage"
    );

    // Back: the new id is fetched, and everything is counted.
    proxy.restore();
    counted("c", 3.0).await;
    counted("d", 2.0).await;
    let metrics = common::scrape(http).await;
    assert_eq!(
        common::metric_by_label(&metrics, "usage_tracker_dead_letters_total"),
        BTreeMap::new()
    );
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
}

/// A Tansu broker of the test's own, on `sqlite://` storage in `dir`, at `port`.
fn start_broker(dir: &std::path::Path, port: u16) -> std::process::Child {
    let listener = format!("tcp://127.0.0.1:{port}");
    std::process::Command::new("tansu")
        .args([
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &listener,
        ])
        .args(["--storage-engine", "sqlite://tansu.db"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tansu is installed by scripts/stack.sh")
}

async fn wait_for_port(port: u16) {
    common::eventually(Duration::from_secs(30), "the broker listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(drop)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_local_address().port();
    let mut broker = start_broker(dir.path(), port);
    wait_for_port(port).await;
    let kafka = KafkaConnection::new(format!("127.0.0.1:{port}"));
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let topics = topics("broker-restart", 2);
    kafka
        .ensure_topics(&[
            TopicSpec::new(&topics.usage_events, 2, 1),
            TopicSpec::new(&topics.cost_events, 2, 1),
        ])
        .await
        .unwrap();
    let input = generate::demo(T0, 2, 10, 11);
    let half = input.usage.len() / 2;
    let key = |e: &UsageEvent| e.subject.cluster_id.clone();
    common::publish_records(
        &kafka,
        &registry,
        &topics.usage_events,
        &input.usage[..half],
        key,
    )
    .await;

    let database_url = common::fresh_database().await;
    let config = pipeline_config(
        &kafka,
        endpoint.clone(),
        &database_url,
        &topics,
        false,
        None,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(pipeline::run(config, async {
        let _ = stopped.await;
    }));
    let offsets = |expected: i64| {
        let database_url = database_url.clone();
        async move {
            common::eventually(WAIT, &format!("{expected} input offsets committed"), || {
                let database_url = database_url.clone();
                async move { (common::committed_offsets(&database_url).await == expected).then_some(()) }
            })
            .await
        }
    };
    offsets(half as i64).await;

    // The broker dies (SIGKILL) and comes back on the same storage a few seconds later.
    broker.kill().unwrap();
    broker.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut broker = start_broker(dir.path(), port);
    wait_for_port(port).await;
    common::publish_records(
        &kafka,
        &registry,
        &topics.usage_events,
        &input.usage[half..],
        key,
    )
    .await;
    common::publish_records(&kafka, &registry, &topics.cost_events, &input.costs, |_| {
        "gke-demo".to_string()
    })
    .await;
    offsets((input.usage.len() + input.costs.len()) as i64).await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();

    // The reference: one uninterrupted run over the same input, on the restarted broker.
    let reference_db = common::fresh_database().await;
    let reference_topics = Topics {
        usage_records: common::unique("broker-restart-records-ref"),
        dead_letters: common::unique("broker-restart-dlq-ref"),
        ..topics.clone()
    };
    let reference = pipeline_config(
        &kafka,
        endpoint.clone(),
        &reference_db,
        &reference_topics,
        true,
        None,
    );
    pipeline::run(reference, std::future::pending())
        .await
        .unwrap();
    let expected = common::figures(&reference_db).await;
    assert!(expected.len() > 10, "{} rows", expected.len());
    assert_eq!(common::figures(&database_url).await, expected);
    common::assert_topic_equals_table(&kafka, &endpoint, &topics.usage_records, &database_url)
        .await;
    broker.kill().unwrap();
    broker.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_former_owner_publishes_nothing_after_losing_its_slots() {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    let (usage_topic, cost_topic, _) =
        common::demo_input(&kafka, &registry, "stall", 2, (T0, 2, 5)).await;
    let records_topic = common::unique("stall-records");
    let dir = tempfile::tempdir().unwrap();
    let dead_letters = common::unique("stall-dlq");
    let names = [
        ("usage_events", usage_topic.as_str()),
        ("cost_events", cost_topic.as_str()),
        ("usage_records", records_topic.as_str()),
        ("dead_letters", dead_letters.as_str()),
    ];
    let config = common::tracker_config(dir.path(), "stall", 2, "200ms", &names);
    let database_url = common::fresh_database().await;
    const STALL_SECONDS: u64 = 20;

    // The first owner claims the slots, computes a checkpoint, and stalls before committing it.
    let mut stalled = common::tracker_run(&registry, &config, &database_url, false)
        .env(
            "USAGE_TRACKER_FAULT",
            format!("stall-before-commit:{STALL_SECONDS}"),
        )
        .env(
            "USAGE_TRACKER__KAFKA__GROUP_ID",
            common::unique("stall-first"),
        )
        .spawn()
        .unwrap();
    let stalled_at = tokio::time::Instant::now();
    common::eventually(WAIT, "the first owner claims its slots", || async {
        (common::query_i64(&database_url, "SELECT count(*) FROM tracker_slots").await > 0)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Meanwhile a new owner claims both slots and does all the work.
    let status = common::tracker_run(&registry, &config, &database_url, true)
        .env(
            "USAGE_TRACKER__KAFKA__GROUP_ID",
            common::unique("stall-second"),
        )
        .status()
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let published = common::all_messages(&kafka, &records_topic).await.len();
    assert!(published > 10, "{published} messages");
    assert!(
        stalled_at.elapsed() < Duration::from_secs(STALL_SECONDS),
        "the second owner finished while the first was still stalled"
    );

    // The first owner wakes: its commit is fenced, it publishes nothing.
    tokio::time::sleep(Duration::from_secs(STALL_SECONDS).saturating_sub(stalled_at.elapsed()))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        stalled.try_wait().unwrap().is_none(),
        "the first owner is alive"
    );
    stalled.start_kill().unwrap();
    stalled.wait().await.unwrap();
    assert_eq!(
        common::all_messages(&kafka, &records_topic).await.len(),
        published,
        "the former owner published nothing after waking"
    );
    common::assert_topic_equals_table(&kafka, &endpoint, &records_topic, &database_url).await;
}

/// A Metricbeat `container` document: `nanocores` of one container of `pod` at `t_ms`.
fn container_document(namespace: &str, pod: &str, t_ms: i64, nanocores: i64) -> Vec<u8> {
    let timestamp = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(t_ms as u64),
    )
    .to_string();
    serde_json::to_vec(&serde_json::json!({
        "@timestamp": timestamp,
        "metricset": {"name": "container", "period": 10000},
        "event": {"module": "kubernetes"},
        "kubernetes": {
            "namespace": namespace,
            "pod": {"name": pod},
            "container": {"name": "c", "cpu": {"usage": {"nanocores": nanocores}}}
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elastic_killed_between_publish_and_commit_counts_nothing_twice() {
    const DOCUMENTS: i64 = 30;
    const BATCH: i64 = 10;
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    let input = common::unique("elastic-crash-in");
    let crashed = topics("elastic-crash", 1);
    let reference = topics("elastic-crash-ref", 1);
    let mut specs = vec![TopicSpec::new(&input, 1, 1)];
    for t in [&crashed, &reference] {
        specs.push(TopicSpec::new(&t.usage_events, 1, 1));
        specs.push(TopicSpec::new(&t.cost_events, 1, 1));
    }
    kafka.ensure_topics(&specs).await.unwrap();
    let documents: Vec<(String, Vec<u8>)> = (0..DOCUMENTS)
        .map(|i| {
            let (namespace, pod) = if i % 2 == 0 {
                ("a", "a-0")
            } else {
                ("b", "b-0")
            };
            let t = T0 + (i / 2) * 10_000 + 10_000;
            (
                pod.to_string(),
                container_document(namespace, pod, t, 250_000_000 + i),
            )
        })
        .collect();
    common::publish(&kafka, &input, &documents).await;

    let dir = tempfile::tempdir().unwrap();
    let elastic = |name: &str, group: &str, usage: &str, fault: Option<&str>| {
        let text = format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n[kafka.consumer_properties]\n\"session.timeout.ms\" = \"6000\"\n\n\
             [topics]\nusage_events = \"{usage}\"\npartitions = 1\n\n\
             [elastic]\ntopics = [\"{input}\"]\ngroup_id = \"{group}\"\nbatch_size = {BATCH}\n\
             default_cluster_id = \"c-elastic\"\n"
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"));
        command
            .arg("elastic")
            .arg("--config")
            .arg(&path)
            .args(["--until-caught-up", "--log", "warn"])
            .env("SCHEMA_REGISTRY_URL", registry.url())
            .kill_on_drop(true);
        if let Some(fault) = fault {
            command.env("USAGE_TRACKER_FAULT", fault);
        }
        command
    };

    // Killed after the broker acknowledged the first batch, before its offsets were committed;
    // restarted in the same group, it reads that batch again and publishes the same events.
    let group = common::unique("elastic-crash-group");
    let status = elastic(
        "crash",
        &group,
        &crashed.usage_events,
        Some("abort-after-publish"),
    )
    .status()
    .await
    .unwrap();
    assert!(!status.success(), "the fault ends the process: {status}");
    let status = elastic("restart", &group, &crashed.usage_events, None)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let published = common::all_messages(&kafka, &crashed.usage_events).await;
    assert_eq!(
        published.len() as i64,
        DOCUMENTS + BATCH,
        "the first batch went out twice"
    );
    let status = elastic(
        "reference",
        &common::unique("elastic-ref"),
        &reference.usage_events,
        None,
    )
    .status()
    .await
    .unwrap();
    assert!(status.success(), "{status}");

    // The tracker counts the repeated events once: the same figures as from the clean run.
    let mut figures = Vec::new();
    for (topics, duplicates) in [(&crashed, BATCH as u64), (&reference, 0)] {
        let database_url = common::fresh_database().await;
        let config = pipeline_config(&kafka, endpoint.clone(), &database_url, topics, true, None);
        let summary = pipeline::run(config, std::future::pending()).await.unwrap();
        assert_eq!(summary.duplicates, duplicates);
        assert_eq!(summary.usage_applied, DOCUMENTS as u64);
        figures.push(common::figures(&database_url).await);
    }
    assert!(!figures[0].is_empty());
    assert_eq!(figures[0], figures[1]);
}
