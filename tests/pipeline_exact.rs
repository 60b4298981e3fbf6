//! End to end through the real broker, the registry stand-in and Postgres: a small, hand-made
//! input whose expected rows are computed here, independently of the tracker's code.

mod common;

use common::{cost, split, usage};

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::message::Headers;
use rdkafka::Message;
use sqlx::Row;
use usage_tracker::allocate::AllocationPolicy;
use usage_tracker::ingest::{ExclusionRules, Exclusions};
use usage_tracker::kafka::TopicSpec;
use usage_tracker::pipeline::{self, PipelineConfig, Topics};
use usage_tracker::standard::wire::RecordEncoder;
use usage_tracker::standard::{CostCategory, CostEvent, MeasurementKind, UsageEvent};
use usage_tracker::window::WindowConfig;

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z
const H: i64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_input_gives_exact_rows_in_postgres_and_kafka() {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    let topics = Topics {
        usage_events: common::unique("exact-usage"),
        cost_events: common::unique("exact-cost"),
        usage_records: common::unique("exact-records"),
        dead_letters: common::unique("exact-dlq"),
        partitions: 2,
        replication: 1,
    };
    kafka
        .ensure_topics(&[
            TopicSpec::new(&topics.usage_events, 2, 1),
            TopicSpec::new(&topics.cost_events, 2, 1),
        ])
        .await
        .unwrap();

    use MeasurementKind::*;
    let events = vec![
        usage(
            "node-w0",
            "c1",
            None,
            T0,
            T0 + H,
            &[(Capacity, 4.0 * 3600.0)],
        ),
        usage(
            "node-w1",
            "c1",
            None,
            T0 + H,
            T0 + 2 * H,
            &[(Capacity, 4.0 * 3600.0)],
        ),
        usage(
            "a-1",
            "c1",
            Some("a"),
            T0,
            T0 + H,
            &[(Usage, 3600.0), (Request, 1800.0)],
        ),
        usage(
            "a-1",
            "c1",
            Some("a"),
            T0,
            T0 + H,
            &[(Usage, 3600.0), (Request, 1800.0)],
        ), // resent
        usage(
            "b-1",
            "c1",
            Some("b"),
            T0,
            T0 + H,
            &[(Usage, 900.0), (Request, 3600.0)],
        ),
        usage(
            "a-cross",
            "c1",
            Some("a"),
            T0 + H - 30_000,
            T0 + H + 30_000,
            &[(Usage, 60.0)],
        ),
        usage(
            "b-2",
            "c1",
            Some("b"),
            T0 + H,
            T0 + 2 * H,
            &[(Usage, 1800.0), (Request, 1800.0)],
        ),
        usage(
            "dbx-1",
            "databricks",
            Some("jobs"),
            T0,
            T0 + H,
            &[(Usage, 99_999.0)],
        ),
        usage("a-bad", "c1", Some("a"), T0, T0 + H, &[(Usage, -5.0)]),
        usage(
            "a-late-marker",
            "c1",
            Some("a"),
            T0 + 2 * H + 20 * 60_000,
            T0 + 2 * H + 21 * 60_000,
            &[(Usage, 60.0)],
        ),
    ];
    let costs = vec![
        cost(
            "compute",
            "gcp",
            "c1",
            None,
            (T0, T0 + 2 * H),
            20_000_000,
            CostCategory::Compute,
        ),
        cost(
            "bucket-b",
            "gcp",
            "c1",
            Some("b"),
            (T0, T0 + H),
            1_000_000,
            CostCategory::Storage,
        ),
        cost(
            "dbx",
            "azure",
            "databricks",
            None,
            (T0, T0 + H),
            7_000_000,
            CostCategory::Compute,
        ),
    ];
    let usage_encoder =
        RecordEncoder::<UsageEvent>::new(endpoint.sr_settings().unwrap(), &topics.usage_events);
    let mut messages = Vec::new();
    for e in &events {
        messages.push((
            e.subject.cluster_id.clone(),
            usage_encoder.encode(e).await.unwrap(),
        ));
    }
    messages.push(("c1".into(), br#"{"kubernetes":{"namespace":"a"}}"#.to_vec()));
    common::publish(&kafka, &topics.usage_events, &messages).await;
    let cost_encoder =
        RecordEncoder::<CostEvent>::new(endpoint.sr_settings().unwrap(), &topics.cost_events);
    let mut messages = Vec::new();
    for c in &costs {
        messages.push(("c1".into(), cost_encoder.encode(c).await.unwrap()));
    }
    common::publish(&kafka, &topics.cost_events, &messages).await;

    let database_url = common::fresh_database().await;
    let http_listen = common::free_local_address();
    let config = PipelineConfig {
        kafka: kafka.clone(),
        group_id: common::unique("exact-group"),
        registry: endpoint.clone(),
        database_url: database_url.clone(),
        topics: topics.clone(),
        window: WindowConfig::default(),
        policy: AllocationPolicy::default(),
        rate_card: None,
        exclusions: Exclusions::new(ExclusionRules {
            cluster_ids: vec!["databricks".into()],
            providers: vec!["azure".into()],
            ..Default::default()
        })
        .unwrap(),
        aggregation: Default::default(),
        cost_scopes: vec![],
        checkpoint_interval: Duration::from_millis(300),
        until_caught_up: true,
        http_listen: Some(http_listen),
        shutdown_timeout: Duration::from_secs(10),
    };
    let summary = pipeline::run(config, std::future::pending()).await.unwrap();
    assert_eq!(summary.duplicates, 1);
    assert_eq!(
        summary.excluded.values().sum::<u64>(),
        2,
        "{:?}",
        summary.excluded
    );
    assert_eq!(
        summary.dead_letters,
        BTreeMap::from([
            ("invalid_event".to_string(), 1),
            ("not_avro".to_string(), 1)
        ])
    );

    // The metrics endpoint (still served after the run) tells the same story.
    let metrics = common::scrape(http_listen).await;
    let value = |series: &str| -> f64 {
        common::metric(&metrics, series).unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert_eq!(
        value(&format!(
            "usage_tracker_events_consumed_total{{topic=\"{}\"}}",
            topics.usage_events
        )),
        11.0
    );
    assert_eq!(
        value(&format!(
            "usage_tracker_events_consumed_total{{topic=\"{}\"}}",
            topics.cost_events
        )),
        3.0
    );
    assert_eq!(value("usage_tracker_duplicates_total"), 1.0);
    assert_eq!(
        value("usage_tracker_dead_letters_total{reason=\"not_avro\"}"),
        1.0
    );
    assert_eq!(
        value("usage_tracker_dead_letters_total{reason=\"invalid_event\"}"),
        1.0
    );
    assert_eq!(value("usage_tracker_excluded_total{rule=\"cluster\"}"), 1.0);
    assert_eq!(
        value("usage_tracker_excluded_total{rule=\"provider\"}"),
        1.0
    );
    assert_eq!(
        value("usage_tracker_cost_allocated_micros{currency=\"EUR\",kind=\"namespace\"}")
            + value("usage_tracker_cost_allocated_micros{currency=\"EUR\",kind=\"idle\"}"),
        21_000_000.0
    );
    assert!(value("usage_tracker_records_emitted_total{status=\"closed\"}") >= 6.0);
    let ready = reqwest::get(format!("http://{http_listen}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    // Expected figures, from the input above.
    // w0: allocated cpu a = max(1800, 3600 + 30) = 3630, b = max(3600, 900) = 3600, idle = 14400 - 7230.
    // w1: a = 30 (no request), b = 1800, idle = 14400 - 1830. The compute bill is 10 EUR per hour.
    let w0 = split(10_000_000, &[3630, 3600, 14_400 - 7230]);
    let w1 = split(10_000_000, &[30, 1800, 14_400 - 1830]);
    let expected: BTreeMap<(&str, i64), (&str, f64, f64, i64)> = BTreeMap::from([
        (("a", T0), ("closed", 3630.0, 3630.0, w0[0])),
        (("b", T0), ("closed", 900.0, 3600.0, w0[1] + 1_000_000)),
        (("__idle__", T0), ("closed", 0.0, 7170.0, w0[2])),
        (("a", T0 + H), ("closed", 30.0, 30.0, w1[0])),
        (("b", T0 + H), ("closed", 1800.0, 1800.0, w1[1])),
        (("__idle__", T0 + H), ("closed", 0.0, 12_570.0, w1[2])),
        (("a", T0 + 2 * H), ("open", 60.0, 60.0, 0)),
    ]);

    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT namespace, (extract(epoch from window_start) * 1000)::bigint, status, cpu_used_core_seconds,
                cpu_allocated_core_seconds, (cost_total * 1000000)::bigint, cluster_id FROM usage_records ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let actual: BTreeMap<(String, i64), (String, f64, f64, i64)> = rows
        .iter()
        .map(|r| {
            assert_eq!(
                r.get::<String, _>(6),
                "c1",
                "nothing of the excluded cluster is accounted"
            );
            (
                (r.get(0), r.get(1)),
                (r.get(2), r.get(3), r.get(4), r.get(5)),
            )
        })
        .collect();
    let expected_owned: BTreeMap<(String, i64), (String, f64, f64, i64)> = expected
        .iter()
        .map(|((n, w), (s, u, a, c))| ((n.to_string(), *w), (s.to_string(), *u, *a, *c)))
        .collect();
    assert_eq!(actual, expected_owned);
    let billed: i64 = actual.values().map(|v| v.3).sum();
    assert_eq!(
        billed, 21_000_000,
        "every micro of the c1 bills is allocated exactly once"
    );

    // Kafka: the highest revision per key carries the same figures as Postgres.
    let latest =
        common::latest_records(&kafka, &endpoint, &topics.usage_records, expected.len()).await;
    for ((namespace, window_start), (status, _, _, cost_micros)) in &expected_owned {
        let record = &latest[&format!("c1/{namespace}/{window_start}")];
        assert_eq!(
            record.cost_total_micros, *cost_micros,
            "{namespace} {window_start}"
        );
        assert_eq!(serde_json::to_value(record.window_status).unwrap(), *status);
    }

    // Dead letters keep the original bytes and say why.
    let reasons = dead_letter_reasons(&kafka, &topics.dead_letters, 2).await;
    assert_eq!(
        reasons,
        vec!["invalid_event".to_string(), "not_avro".to_string()]
    );
}

async fn dead_letter_reasons(
    kafka: &usage_tracker::kafka::KafkaConnection,
    topic: &str,
    count: usize,
) -> Vec<String> {
    let consumer = common::consumer(kafka, topic).await;
    let mut reasons = Vec::new();
    while reasons.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(message.payload().is_some(), "the original payload is kept");
        let headers = message.headers().unwrap();
        let reason = headers
            .iter()
            .find(|h| h.key == "dlq.reason")
            .and_then(|h| h.value)
            .unwrap();
        reasons.push(String::from_utf8(reason.to_vec()).unwrap());
    }
    reasons.sort();
    reasons
}
