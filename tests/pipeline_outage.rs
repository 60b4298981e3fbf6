//! A database outage in the middle of a run: the tracker reaches Postgres through a proxy that
//! the test cuts (the shared Postgres itself keeps running). While it is cut, `/readyz` says the
//! database is unavailable, failed writes are counted, consumption pauses and the process keeps
//! running; once it is restored, readiness comes back and the final figures in Postgres are
//! exactly those computed here from the input, including what was published during the outage.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::proxy::TcpProxy;
use common::{cost, split, usage};
use sqlx::Row;
use usage_tracker::allocate::AllocationPolicy;
use usage_tracker::ingest::{ExclusionRules, Exclusions};
use usage_tracker::kafka::TopicSpec;
use usage_tracker::pipeline::{self, PipelineConfig, Topics};
use usage_tracker::standard::{CostCategory, MeasurementKind};
use usage_tracker::window::WindowConfig;

const T0: i64 = 1_793_577_600_000; // 2026-11-02T00:00:00Z
const H: i64 = 3_600_000;
const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_database_and_nothing_is_lost_while_it_is_down() {
    use MeasurementKind::*;
    let registry = common::registry().await;
    let kafka = common::kafka();
    let topics = Topics {
        usage_events: common::unique("outage-usage"),
        cost_events: common::unique("outage-cost"),
        usage_records: common::unique("outage-records"),
        dead_letters: common::unique("outage-dlq"),
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

    // Window w0 = [T0, T0 + 1h) before the outage; w1, a duplicate, the bill and a marker that
    // closes w1 during it. One cluster, so one slot.
    let before = vec![
        usage("node-w0", "c1", None, T0, T0 + H, &[(Capacity, 14_400.0)]),
        usage(
            "a-0",
            "c1",
            Some("a"),
            T0,
            T0 + H,
            &[(Usage, 3600.0), (Request, 1800.0)],
        ),
        usage(
            "b-0",
            "c1",
            Some("b"),
            T0,
            T0 + H,
            &[(Usage, 900.0), (Request, 3600.0)],
        ),
    ];
    let during = vec![
        before[1].clone(), // resent: counted once
        usage(
            "node-w1",
            "c1",
            None,
            T0 + H,
            T0 + 2 * H,
            &[(Capacity, 14_400.0)],
        ),
        usage(
            "a-1",
            "c1",
            Some("a"),
            T0 + H,
            T0 + 2 * H,
            &[(Usage, 7200.0)],
        ),
        usage(
            "b-1",
            "c1",
            Some("b"),
            T0 + H,
            T0 + 2 * H,
            &[(Usage, 1800.0), (Request, 1800.0)],
        ),
        usage(
            "a-marker",
            "c1",
            Some("a"),
            T0 + 2 * H + 20 * 60_000,
            T0 + 2 * H + 21 * 60_000,
            &[(Usage, 60.0)],
        ),
    ];
    let bill = vec![cost(
        "compute",
        "gcp",
        "c1",
        None,
        (T0, T0 + 2 * H),
        20_000_000,
        CostCategory::Compute,
    )];
    let by_cluster = |e: &usage_tracker::standard::UsageEvent| e.subject.cluster_id.clone();
    common::publish_records(&kafka, &registry, &topics.usage_events, &before, by_cluster).await;

    let database_url = common::fresh_database().await;
    let proxy = TcpProxy::start(&common::host_and_port(&database_url)).await;
    let http = common::free_local_address();
    let config = PipelineConfig {
        kafka: kafka.clone(),
        group_id: common::unique("outage-group"),
        registry: common::endpoint(&registry),
        database_url: common::through(&database_url, proxy.addr()),
        topics: topics.clone(),
        window: WindowConfig::default(),
        policy: AllocationPolicy::default(),
        rate_card: None,
        exclusions: Exclusions::new(ExclusionRules::default()).unwrap(),
        aggregation: Default::default(),
        cost_scopes: vec![],
        checkpoint_interval: Duration::from_millis(300),
        until_caught_up: false,
        http_listen: Some(http),
        shutdown_timeout: Duration::from_secs(20),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let finished = AtomicBool::new(false);
    let run = async {
        let outcome = pipeline::run(config, async {
            let _ = stopped.await;
        })
        .await;
        finished.store(true, Ordering::SeqCst);
        outcome
    };

    let db = database_url.as_str();
    let drive = async {
        // Before: ready, and the first window's rows committed (read directly, not through the
        // proxy).
        common::eventually(WAIT, "ready before the outage", move || async move {
            (common::readyz(http).await?.0 == 200).then_some(())
        })
        .await;
        common::eventually(
            WAIT,
            "the input before the outage committed",
            move || async move { (common::committed_offsets(db).await == 3).then_some(()) },
        )
        .await;
        let rows = common::query_i64(&database_url, "SELECT count(*) FROM usage_records").await;
        assert_eq!(rows, 3, "a, b and __idle__ of w0");
        let errors_before =
            common::metric(&common::scrape(http).await, SINK_ERRORS_POSTGRES).unwrap_or(0.0);

        // Down: readiness says why, failed writes are counted, the process keeps running.
        proxy.cut();
        let body = common::eventually(
            WAIT,
            "/readyz 503 with the database down",
            move || async move {
                let (status, body) = common::readyz(http).await?;
                (status == 503).then_some(body)
            },
        )
        .await;
        assert_eq!(body["database"], "unavailable", "{body}");
        assert_eq!(body["ready"], false, "{body}");
        assert_eq!(body["broker"], "ok", "only the database is down: {body}");
        assert_eq!(body["schema_registry"], "ok", "{body}");
        common::eventually(
            WAIT,
            "a failed Postgres write counted",
            move || async move {
                let errors = common::metric(&common::scrape(http).await, SINK_ERRORS_POSTGRES);
                errors.filter(|e| *e > errors_before)
            },
        )
        .await;

        // More input while it is down: it waits in Kafka, as the checkpoint in progress retries.
        common::publish_records(&kafka, &registry, &topics.usage_events, &during, by_cluster).await;
        common::publish_records(&kafka, &registry, &topics.cost_events, &bill, |_| {
            "c1".to_string()
        })
        .await;
        assert!(
            !finished.load(Ordering::SeqCst),
            "the run ended during the outage"
        );
        let healthz = reqwest::get(format!("http://{http}/healthz"))
            .await
            .unwrap();
        assert_eq!(healthz.status(), 200, "alive while not ready");
        let metrics = common::scrape(http).await;
        let consumed = common::metric(
            &metrics,
            &format!(
                "usage_tracker_events_consumed_total{{topic=\"{}\"}}",
                topics.usage_events
            ),
        );
        assert_eq!(
            consumed,
            Some(3.0),
            "consumption pauses while the checkpoint retries"
        );
        assert_eq!(common::readyz(http).await.unwrap().0, 503, "still down");
        assert_eq!(common::committed_offsets(db).await, 3);

        // Back: ready again, and everything published meanwhile is committed.
        proxy.restore();
        common::eventually(
            WAIT,
            "/readyz 200 once the database is back",
            move || async move {
                let (status, body) = common::readyz(http).await?;
                (status == 200 && body["database"] == "ok").then_some(())
            },
        )
        .await;
        let total = (before.len() + during.len() + bill.len()) as i64;
        common::eventually(
            WAIT,
            "all input committed after the outage",
            move || async move { (common::committed_offsets(db).await == total).then_some(()) },
        )
        .await;
        assert!(!finished.load(Ordering::SeqCst), "still running");
        let _ = stop.send(());
    };

    let (outcome, ()) = tokio::join!(run, drive);
    let summary = outcome.expect("the run ends cleanly");
    assert_eq!(summary.duplicates, 1, "{summary:?}");
    assert_eq!(summary.consumed[&topics.usage_events], 8, "{summary:?}");
    assert_eq!(summary.consumed[&topics.cost_events], 1, "{summary:?}");
    assert!(summary.dead_letters.is_empty(), "{summary:?}");
    let metrics = common::scrape(http).await;
    assert!(
        common::metric(&metrics, SINK_ERRORS_POSTGRES).unwrap_or(0.0) >= 1.0,
        "{metrics}"
    );

    // Expected figures, from the input alone. cpu allocated = max(request, usage); idle is the
    // capacity (4 cores for an hour) nobody allocated; the 20 EUR compute bill is 10 EUR per hour,
    // split by allocated cpu with idle as one more receiver.
    // w0: a = max(1800, 3600) = 3600, b = max(3600, 900) = 3600, idle = 14400 - 7200 = 7200.
    // w1: a = 7200 (no request), b = 1800, idle = 14400 - 9000 = 5400.
    let w0 = split(10_000_000, &[3600, 3600, 7200]);
    let w1 = split(10_000_000, &[7200, 1800, 5400]);
    let expected: BTreeMap<(String, i64), (String, f64, f64, i64)> = [
        ("a", T0, "closed", 3600.0, 3600.0, w0[0]),
        ("b", T0, "closed", 900.0, 3600.0, w0[1]),
        ("__idle__", T0, "closed", 0.0, 7200.0, w0[2]),
        ("a", T0 + H, "closed", 7200.0, 7200.0, w1[0]),
        ("b", T0 + H, "closed", 1800.0, 1800.0, w1[1]),
        ("__idle__", T0 + H, "closed", 0.0, 5400.0, w1[2]),
        // The marker's window stays open (the watermark is 10 min behind it).
        ("a", T0 + 2 * H, "open", 60.0, 60.0, 0),
    ]
    .into_iter()
    .map(|(n, w, s, used, allocated, micros)| {
        ((n.to_string(), w), (s.to_string(), used, allocated, micros))
    })
    .collect();

    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT namespace, (extract(epoch from window_start) * 1000)::bigint, status,
                cpu_used_core_seconds, cpu_allocated_core_seconds, (cost_total * 1000000)::bigint
         FROM usage_records WHERE cluster_id = 'c1'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let actual: BTreeMap<(String, i64), (String, f64, f64, i64)> = rows
        .iter()
        .map(|r| {
            (
                (r.get(0), r.get(1)),
                (r.get(2), r.get(3), r.get(4), r.get(5)),
            )
        })
        .collect();
    assert_eq!(actual, expected);
    assert_eq!(
        actual.values().map(|v| v.3).sum::<i64>(),
        20_000_000,
        "the whole bill, once"
    );
}

const SINK_ERRORS_POSTGRES: &str = "usage_tracker_sink_errors_total{sink=\"postgres\"}";
