//! Who really pays, end to end through the real broker, the registry stand-in and Postgres:
//! platform cost shared to projects, accounts per user inside a namespace, a meter priced by a
//! bill line that names it, and a changed sharing configuration applied to past windows by
//! `usage-tracker recompute`. Expected figures are computed here by hand (with the tests' own
//! largest-remainder `split`), independently of the tracker's code.

mod common;

use common::{cost, split, RecordKey};

use usage_tracker::kafka::TopicSpec;
use usage_tracker::standard::wire::RecordEncoder;
use usage_tracker::standard::{CostCategory, CostEvent, Measurement, MeasurementKind, UsageEvent};
use usage_tracker::time::now_ms;

const H: i64 = 3_600_000;
const USER: &str = "hub.jupyter.org/username";

/// A usage event of cluster `c1`: cpu core-seconds, a Presto meter in seconds, labels.
fn event(
    id: &str,
    namespace: Option<&str>,
    start: i64,
    cpu: &[(MeasurementKind, f64)],
    presto: f64,
    user: Option<&str>,
) -> UsageEvent {
    let mut event = common::usage(id, "c1", namespace, start, start + H, cpu);
    if presto > 0.0 {
        event.measurements.push(Measurement {
            resource: "x-ferrisdx-presto_query_seconds".into(),
            kind: MeasurementKind::Usage,
            quantity: presto,
            unit: "seconds".into(),
        });
    }
    if let Some(user) = user {
        // As Elastic writes it: dots replaced by underscores.
        event
            .subject
            .labels
            .insert(USER.replace('.', "_"), user.into());
    }
    event
}

/// The figures of a record: (cost total, own, shared, idle) in micro-units.
fn micros(
    rows: &std::collections::BTreeMap<RecordKey, common::RecordFigures>,
    namespace: &str,
    user: Option<&str>,
    start: i64,
) -> (i64, i64, i64, i64) {
    let key: RecordKey = (
        "c1".into(),
        namespace.into(),
        start,
        user.map_or(String::new(), |_| format!("label:{USER}")),
        user.unwrap_or_default().into(),
    );
    let row = rows
        .get(&key)
        .unwrap_or_else(|| panic!("no row {key:?} in {:?}", rows.keys()));
    let m = |text: &str| -> i64 {
        let (units, fraction) = text.split_once('.').unwrap_or((text, "0"));
        units.parse::<i64>().unwrap() * 1_000_000
            + format!("{fraction:0<6}")[..6].parse::<i64>().unwrap()
    };
    (
        m(&row.cost_total),
        m(row.own_cost.as_deref().unwrap_or("0")),
        m(&row.shared_cost),
        m(&row.idle_cost),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_and_idle_cost_reach_the_projects_and_their_users_and_recompute_applies_a_new_rule(
) {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    let dir = tempfile::tempdir().unwrap();
    let topics = [
        ("usage_events", common::unique("share-usage")),
        ("cost_events", common::unique("share-cost")),
        ("usage_records", common::unique("share-records")),
        ("dead_letters", common::unique("share-dlq")),
    ];
    let topic = |name: &str| topics.iter().find(|(k, _)| *k == name).unwrap().1.clone();
    kafka
        .ensure_topics(&[
            TopicSpec::new(topic("usage_events"), 2, 1),
            TopicSpec::new(topic("cost_events"), 2, 1),
        ])
        .await
        .unwrap();

    // A closed hour three hours ago: capacity 10 cores; argocd uses 1, project-a 3 (alice 2,
    // bob 1), project-b 1 (no user). Presto: alice 100 s, project-b 200 s.
    let t0 = (now_ms() / H - 3) * H;
    use MeasurementKind::*;
    let events = vec![
        event("node", None, t0, &[(Capacity, 36_000.0)], 0.0, None),
        event("argocd", Some("argocd"), t0, &[(Usage, 3600.0)], 0.0, None),
        event(
            "alice",
            Some("project-a"),
            t0,
            &[(Usage, 7200.0)],
            100.0,
            Some("alice"),
        ),
        event(
            "bob",
            Some("project-a"),
            t0,
            &[(Usage, 3600.0)],
            0.0,
            Some("bob"),
        ),
        event("b", Some("project-b"), t0, &[(Usage, 3600.0)], 200.0, None),
    ];
    let mut presto = cost(
        "presto",
        "onprem",
        "c1",
        None,
        (t0, t0 + H),
        30_001,
        CostCategory::License,
    );
    presto.meter = Some("x-ferrisdx-presto_query_seconds".into());
    let costs = vec![
        cost(
            "compute",
            "onprem",
            "c1",
            None,
            (t0, t0 + H),
            1_000_000,
            CostCategory::Compute,
        ),
        presto,
    ];
    let encoder =
        RecordEncoder::<UsageEvent>::new(endpoint.sr_settings().unwrap(), &topic("usage_events"));
    let mut messages = Vec::new();
    for e in &events {
        messages.push(("c1".to_owned(), encoder.encode(e).await.unwrap()));
    }
    common::publish(&kafka, &topic("usage_events"), &messages).await;
    let encoder =
        RecordEncoder::<CostEvent>::new(endpoint.sr_settings().unwrap(), &topic("cost_events"));
    let mut messages = Vec::new();
    for c in &costs {
        messages.push(("c1".to_owned(), encoder.encode(c).await.unwrap()));
    }
    common::publish(&kafka, &topic("cost_events"), &messages).await;

    let topic_pairs: Vec<(&str, &str)> = topics.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = common::tracker_config(dir.path(), "sharing", 2, "200ms", &topic_pairs);
    let base = std::fs::read_to_string(&config).unwrap();
    let write_config = |sharing: &str| {
        let text = format!(
            "{base}\n[sharing]\nnamespaces = [\"argo*\"]\n{sharing}\n\n[aggregation]\nlabels = [\"{USER}\"]\n"
        );
        std::fs::write(&config, text).unwrap();
    };
    write_config("");
    let database_url = common::fresh_database().await;
    let run = || common::tracker_run(&registry, &config, &database_url, true).output();

    let output = run().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = common::record_figures(&database_url).await;

    // Compute 1 000 000 by allocated cpu: idle 5 of 10, argocd 1, a 3, b 1. argocd's 100 000 to
    // the receivers in proportion to their own share of the line (3:1); idle stays separate.
    let [to_a, to_b] = split(100_000, &[300_000, 100_000])[..] else {
        unreachable!()
    };
    // Presto 30 001 by query seconds, a 100 : b 200; within a, all of it is alice's.
    let [presto_a, presto_b] = split(30_001, &[100, 200])[..] else {
        unreachable!()
    };
    assert_eq!(
        micros(&rows, "__idle__", None, t0),
        (500_000, 500_000, 0, 0)
    );
    assert_eq!(micros(&rows, "argocd", None, t0), (0, 100_000, 0, 0));
    assert_eq!(
        micros(&rows, "project-a", None, t0),
        (300_000 + to_a + presto_a, 300_000 + presto_a, to_a, 0)
    );
    assert_eq!(
        micros(&rows, "project-b", None, t0),
        (100_000 + to_b + presto_b, 100_000 + presto_b, to_b, 0)
    );
    // Per user, each compute entry split by cpu 2:1.
    let own = split(300_000, &[2, 1]);
    let shared = split(to_a, &[2, 1]);
    assert_eq!(
        micros(&rows, "project-a", Some("alice"), t0),
        (
            own[0] + shared[0] + presto_a,
            own[0] + presto_a,
            shared[0],
            0
        )
    );
    assert_eq!(
        micros(&rows, "project-a", Some("bob"), t0),
        (own[1] + shared[1], own[1], shared[1], 0)
    );
    assert_eq!(
        micros(&rows, "project-b", Some("__unlabelled__"), t0).0,
        100_000 + to_b + presto_b
    );
    assert!(
        rows[&(
            "c1".into(),
            "argocd".into(),
            t0,
            String::new(),
            String::new()
        )]
            .shared
    );
    let first = common::assert_topic_equals_table(
        &kafka,
        &endpoint,
        &topic("usage_records"),
        &database_url,
    )
    .await;
    assert!(first >= 8, "{first} records");

    // Idle shared evenly from now on, applied to the past hour by `recompute`.
    write_config("idle = \"share\"\nsplit = \"even\"");
    let recompute = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"))
        .args(["recompute", "--config"])
        .arg(&config)
        .args([
            "--from",
            &humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(t0 as u64),
            )
            .to_string(),
        ])
        .args([
            "--to",
            &humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis((t0 + H) as u64),
            )
            .to_string(),
        ])
        .env("DATABASE_URL", &database_url)
        .output()
        .await
        .unwrap();
    assert!(
        recompute.status.success(),
        "{}",
        String::from_utf8_lossy(&recompute.stderr)
    );
    let output = run().await.unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        common::query_i64(&database_url, "SELECT count(*) FROM tracker_recompute_done").await,
        2,
        "both slots took the request up"
    );
    let rows = common::record_figures(&database_url).await;
    // Even split now: argocd 50 000 and idle 250 000 to each project.
    assert_eq!(micros(&rows, "__idle__", None, t0), (0, 500_000, 0, 0));
    assert_eq!(
        micros(&rows, "project-a", None, t0),
        (
            300_000 + 50_000 + 250_000 + presto_a,
            300_000 + presto_a,
            50_000,
            250_000
        )
    );
    assert_eq!(
        micros(&rows, "project-b", None, t0),
        (
            100_000 + 50_000 + 250_000 + presto_b,
            100_000 + presto_b,
            50_000,
            250_000
        )
    );
    let (shared, idle) = (split(50_000, &[2, 1]), split(250_000, &[2, 1]));
    assert_eq!(
        micros(&rows, "project-a", Some("bob"), t0),
        (own[1] + shared[1] + idle[1], own[1], shared[1], idle[1])
    );
    // Every euro once: the namespace records of the hour sum to the two bills.
    let total = common::query_i64(
        &database_url,
        "SELECT (sum(cost_total) * 1000000)::bigint FROM usage_records WHERE group_by = ''",
    )
    .await;
    assert_eq!(total, 1_030_001);
    let revisions = common::query_i64(
        &database_url,
        "SELECT max(revision) FROM usage_records WHERE namespace = '__idle__'",
    )
    .await;
    assert!(revisions >= 2, "the recomputed hour got a new revision");
    common::assert_topic_equals_table(&kafka, &endpoint, &topic("usage_records"), &database_url)
        .await;
}

/// `[sharing] labels`: a platform agent running inside a project namespace (labelled as
/// Elastic writes it, de-dotted) has its cost moved like a shared namespace's, while its usage
/// stays in the namespace's record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_labelled_as_platform_is_shared_wherever_it_runs() {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    let dir = tempfile::tempdir().unwrap();
    let topics = [
        ("usage_events", common::unique("agent-usage")),
        ("cost_events", common::unique("agent-cost")),
        ("usage_records", common::unique("agent-records")),
        ("dead_letters", common::unique("agent-dlq")),
    ];
    let t0 = (now_ms() / H - 3) * H;
    use MeasurementKind::*;
    let mut agent = event(
        "agent",
        Some("project-a"),
        t0,
        &[(Usage, 3600.0)],
        0.0,
        None,
    );
    agent.subject.labels.insert(
        "app_kubernetes_io/part-of".into(),
        "ferrisdx-platform".into(),
    );
    let events = [
        event(
            "a",
            Some("project-a"),
            t0,
            &[(Usage, 3.0 * 3600.0)],
            0.0,
            None,
        ),
        agent,
        event("b", Some("project-b"), t0, &[(Usage, 3600.0)], 0.0, None),
    ];
    let bill = cost(
        "compute",
        "onprem",
        "c1",
        None,
        (t0, t0 + H),
        500_000,
        CostCategory::Compute,
    );
    kafka
        .ensure_topics(&[
            TopicSpec::new(&topics[0].1, 1, 1),
            TopicSpec::new(&topics[1].1, 1, 1),
        ])
        .await
        .unwrap();
    common::publish_records(&kafka, &registry, &topics[0].1, &events, |e| {
        e.subject.cluster_id.clone()
    })
    .await;
    common::publish_records(&kafka, &registry, &topics[1].1, &[bill], |_| {
        "c1".to_owned()
    })
    .await;

    let topic_pairs: Vec<(&str, &str)> = topics.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = common::tracker_config(dir.path(), "agent", 1, "200ms", &topic_pairs);
    let text = std::fs::read_to_string(&config).unwrap()
        + "\n[sharing]\nlabels = { \"app.kubernetes.io/part-of\" = \"ferrisdx-platform\" }\n";
    std::fs::write(&config, text).unwrap();
    let database_url = common::fresh_database().await;
    let output = common::tracker_run(&registry, &config, &database_url, true)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = common::record_figures(&database_url).await;
    // Own: a 300 000, its agent 100 000 (a's own too), b 100 000; the agent's part moves 3:1.
    let [to_a, to_b] = split(100_000, &[300_000, 100_000])[..] else {
        unreachable!()
    };
    assert_eq!(
        micros(&rows, "project-a", None, t0),
        (300_000 + to_a, 400_000, to_a, 0)
    );
    assert_eq!(
        micros(&rows, "project-b", None, t0),
        (100_000 + to_b, 100_000, to_b, 0)
    );
    let a = &rows[&(
        "c1".into(),
        "project-a".into(),
        t0,
        String::new(),
        String::new(),
    )];
    assert!(
        a.resources.contains("14400"),
        "the agent's usage stays: {}",
        a.resources
    );
    assert!(
        !rows.keys().any(|k| k.1.contains('/')),
        "no record for the shared part"
    );
    common::assert_topic_equals_table(&kafka, &endpoint, &topics[2].1, &database_url).await;
}
