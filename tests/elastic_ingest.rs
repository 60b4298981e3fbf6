//! `usage-tracker elastic` end to end: the shared Elastic fixture documents (and a few broken
//! ones, and one with nested and dotted labels), published as raw bytes, become exactly the
//! expected UsageEvents (labels included) on the usage topic and dead letters with their reasons; the group's offsets are committed; a second run over the
//! same input in a new group publishes the very same events (same ids), and its `/metrics`
//! counters tell the same story as its summary.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use usage_tracker::kafka::{KafkaConnection, TopicSpec};
use usage_tracker::standard::wire::RecordDecoder;
use usage_tracker::standard::UsageEvent;

/// `USAGE_TRACKER_ELASTIC_FIXTURES`, else `shared/fixtures/elastic` next to the repository, else
/// the workplace's copy at `/work/shared/fixtures/elastic`.
fn fixtures() -> std::path::PathBuf {
    let candidates = [
        std::env::var("USAGE_TRACKER_ELASTIC_FIXTURES").unwrap_or_default(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/elastic").to_string(),
        "/work/shared/fixtures/elastic".to_string(),
    ];
    candidates
        .iter()
        .map(std::path::PathBuf::from)
        .find(|dir| !dir.as_os_str().is_empty() && dir.is_dir())
        .unwrap_or_else(|| {
            panic!("the Elastic fixture documents are missing: looked in {candidates:?}")
        })
}

/// Every document of the fixtures (see its README).
const DOCUMENTS: [&str; 21] = [
    "beats/container/data.json",
    "beats/container/versions/cd377bbb/data.json",
    "beats/node/data.json",
    "beats/pod/data.json",
    "beats/state_container/data.json",
    "beats/state_container/versions/060e3176/data.json",
    "beats/state_node/data.json",
    "beats/state_persistentvolumeclaim/data.json",
    "beats/state_persistentvolumeclaim/versions/273bd5b7/data.json",
    "beats/state_pod/data.json",
    "beats/volume/data.json",
    "integrations/container/sample_event.json",
    "integrations/container/versions/1a6ce0e7/sample_event.json",
    "integrations/node/sample_event.json",
    "integrations/pod/sample_event.json",
    "integrations/pod/versions/0bd978f9/sample_event.json",
    "integrations/state_container/sample_event.json",
    "integrations/state_node/sample_event.json",
    "integrations/state_persistentvolumeclaim/sample_event.json",
    "integrations/state_pod/sample_event.json",
    "integrations/volume/sample_event.json",
];

/// Broken documents, keyed by name, with the dead-letter reason they get.
fn synthetic() -> Vec<(&'static str, Vec<u8>)> {
    let container = |namespace: serde_json::Value, nanocores: i64| {
        serde_json::to_vec(&serde_json::json!({
            "@timestamp": "2025-06-02T08:00:10.000Z",
            "metricset": {"name": "container", "period": 10000},
            "event": {"module": "kubernetes"},
            "kubernetes": {
                "namespace": namespace,
                "pod": {"name": "p"},
                "container": {"name": "c", "cpu": {"usage": {"nanocores": nanocores}}}
            }
        }))
        .unwrap()
    };
    vec![
        ("synthetic/negative", container("project-a".into(), -5)),
        (
            "synthetic/no-namespace",
            container(serde_json::Value::Null, 5),
        ),
        (
            "synthetic/unknown-metricset",
            br#"{"metricset":{"name":"state_foo"},"event":{"module":"kubernetes"}}"#.to_vec(),
        ),
        (
            "synthetic/system-cpu",
            br#"{"metricset":{"name":"cpu"},"event":{"module":"system"},"system":{"cpu":{}}}"#
                .to_vec(),
        ),
        // Labels as an agent with `labels.dedot: false` nests them, plus one as a dotted
        // top-level key: they arrive de-dotted, as Elastic stores them.
        ("synthetic/labels", {
            let mut doc: serde_json::Value =
                serde_json::from_slice(&container("jupyterhub".into(), 250_000_000)).unwrap();
            doc["kubernetes"]["labels"] = serde_json::json!({
                "component": "singleuser-server",
                "hub": {"jupyter": {"org/username": "alice"}},
                "app": {"kubernetes": {"io/name": "jupyterhub"}}
            });
            doc["kubernetes.labels.team"] = "analytics".into();
            serde_json::to_vec(&doc).unwrap()
        }),
    ]
}

/// One line per event: cluster | namespace | pod | container | node | workload | interval |
/// measurements (quantities as exact shortest decimals).
fn line(e: &UsageEvent) -> String {
    let s = &e.subject;
    let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let workload = match (&s.workload_kind, &s.workload_name) {
        (Some(k), Some(n)) => format!("{k}/{n}"),
        _ => "-".into(),
    };
    let measurements: Vec<String> = e
        .measurements
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {}",
                m.resource,
                serde_json::to_value(m.kind).unwrap().as_str().unwrap(),
                m.quantity,
                m.unit
            )
        })
        .collect();
    format!(
        "{}|{}|{}|{}|{}|{}|{}-{}|{}",
        s.cluster_id,
        o(&s.namespace),
        o(&s.pod_name),
        o(&s.container_name),
        o(&s.node_name),
        workload,
        e.start,
        e.end,
        measurements.join(", ")
    )
}

/// The labels of the events that have any, by pod (else node) name: the pods' own labels from
/// the fixtures (the node's for node capacity), keys as Elastic stores them (de-dotted).
fn expected_labels() -> BTreeMap<String, BTreeMap<String, String>> {
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    BTreeMap::from([
        (
            "elasticsearch-d5cbc495-f5rjf".to_owned(),
            labels(&[("app", "elasticsearch"), ("pod-template-hash", "d5cbc495")]),
        ),
        (
            "coredns-558bd4d5db-8qp4d".to_owned(),
            labels(&[("k8s-app", "kube-dns"), ("pod-template-hash", "558bd4d5db")]),
        ),
        (
            "minikube".to_owned(),
            labels(&[
                ("beta_kubernetes_io/arch", "amd64"),
                ("beta_kubernetes_io/os", "linux"),
                ("kubernetes_io/arch", "amd64"),
                ("kubernetes_io/hostname", "minikube"),
                ("kubernetes_io/os", "linux"),
                ("node-role_kubernetes_io/master", ""),
            ]),
        ),
        (
            "p".to_owned(),
            labels(&[
                ("app_kubernetes_io/name", "jupyterhub"),
                ("component", "singleuser-server"),
                ("hub_jupyter_org/username", "alice"),
                ("team", "analytics"),
            ]),
        ),
    ])
}

/// What the fixtures must become, with the topic's fallback cluster `minikube-test` for
/// documents without `orchestrator.cluster.*` (the arithmetic is in src/ingest/ecs/tests.rs).
fn expected_lines() -> Vec<String> {
    let mut lines: Vec<String> = [
        "minikube-test|kube-system|kube-dns-6f4fd4bdf-wlmht|sidecar|minikube|-|1529513259597-1529513269597|cpu usage 0.04741228 core_seconds, memory usage 164044800 byte_seconds",
        "minikube-test|kube-system|etcd-kind-control-plane|etcd|kind-control-plane|-|1551427524853-1551427534853|cpu request 1 core_seconds, memory request 1048576000 byte_seconds",
        "minikube-test|-|-|-|kind-control-plane|Node/kind-control-plane|1551427524853-1551427534853|cpu capacity 160 core_seconds, memory capacity 167693803520 byte_seconds",
        "minikube-test|default|-|-|-|PersistentVolumeClaim/task-pv-claim|1551427524853-1551427534853|storage request 10240 byte_seconds",
        "kind|default|-|-|-|PersistentVolumeClaim/task-pv-claim|1674666904818-1674666914818|storage request 10240 byte_seconds",
        "kind|default|elasticsearch-d5cbc495-f5rjf|elasticsearch|kind-control-plane|Deployment/elasticsearch|1639994000156-1639994010156|cpu usage 0.14604443 core_seconds, memory usage 14908170240 byte_seconds",
        "minikube-test|kube-system|metricbeat-g9fc6|metricbeat|minikube|-|1593088339748-1593088349748|cpu usage 0.00611585 core_seconds, memory usage 211148800 byte_seconds",
        "kind|kube-system|coredns-558bd4d5db-8qp4d|coredns|kind-control-plane|Deployment/coredns|1639994514923-1639994524923|cpu request 1 core_seconds, memory request 734003200 byte_seconds, memory limit 1782579200 byte_seconds",
        "minikube-test|-|-|-|minikube|Node/minikube|1593088654457-1593088664457|cpu capacity 40 core_seconds, memory capacity 168153251840 byte_seconds",
        "minikube-test|default|-|-|-|PersistentVolumeClaim/task-pv-claim|1593089074418-1593089084418|storage request 32212254720 byte_seconds",
        "minikube-test|kube-system|metricbeat-g9fc6|-|minikube|-|1593088809649-1593088819649|storage usage 122880 byte_seconds",
        "minikube-test|jupyterhub|p|c|-|-|1748851200000-1748851210000|cpu usage 2.5 core_seconds",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    lines.sort();
    lines
}

/// A message as read back: key, payload and headers.
struct Read {
    key: String,
    payload: Vec<u8>,
    headers: BTreeMap<String, String>,
}

/// Reads `count` messages from `topic`, then makes sure no more arrive for 2 s.
async fn read_all(kafka: &KafkaConnection, topic: &str, count: usize) -> Vec<Read> {
    common::read_messages(kafka, topic, count)
        .await
        .into_iter()
        .map(|m| Read {
            key: String::from_utf8(m.key.unwrap_or_default()).unwrap(),
            payload: m.payload.unwrap_or_default(),
            headers: m.headers,
        })
        .collect()
}

async fn decode_events(
    decoder: &RecordDecoder<UsageEvent>,
    messages: &[Read],
) -> BTreeMap<String, UsageEvent> {
    let mut events = BTreeMap::new();
    for m in messages {
        let event = decoder.decode(&m.payload).await.unwrap();
        assert_eq!(m.key, event.subject.cluster_id, "keyed by cluster id");
        assert!(
            events.insert(event.id.clone(), event).is_none(),
            "ids are unique"
        );
    }
    events
}

#[tokio::test]
async fn elastic_documents_become_usage_events_and_dead_letters() {
    let fixtures = fixtures();
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    let input = common::unique("elastic-in");
    kafka
        .ensure_topics(&[TopicSpec::new(&input, 2, 1)])
        .await
        .unwrap();
    let mut messages: Vec<(String, Vec<u8>)> = DOCUMENTS
        .iter()
        .map(|path| {
            let bytes = std::fs::read(fixtures.join(path))
                .unwrap_or_else(|e| panic!("reading fixture {path}: {e}"));
            (path.to_string(), bytes)
        })
        .collect();
    messages.extend(
        synthetic()
            .into_iter()
            .map(|(name, bytes)| (name.to_string(), bytes)),
    );
    common::publish(&kafka, &input, &messages).await;
    let original: BTreeMap<&str, &[u8]> = messages
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str, group: &str, usage: &str, dlq: &str, listen: &str| {
        let text = format!(
            "[http]\nlisten = \"{listen}\"\n\n[kafka.consumer_properties]\n\"session.timeout.ms\" = \"6000\"\n\n\
             [topics]\nusage_events = \"{usage}\"\ndead_letters = \"{dlq}\"\npartitions = 2\n\n\
             [elastic]\ntopics = [\"{input}\"]\ngroup_id = \"{group}\"\n\
             default_cluster_id = \"not-this-one\"\nbatch_size = 7\n\n\
             [elastic.cluster_ids]\n\"{input}\" = \"minikube-test\"\n"
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let run = |config: std::path::PathBuf| {
        let url = registry.url();
        async move {
            let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"))
                .arg("elastic")
                .arg("--config")
                .arg(&config)
                .args(["--until-caught-up", "--log", "warn"])
                .env("SCHEMA_REGISTRY_URL", url)
                .kill_on_drop(true)
                .output()
                .await
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert!(output.status.success(), "elastic failed: {stderr}");
            stderr
                .lines()
                .find(|l| l.starts_with("elastic: "))
                .unwrap_or_else(|| panic!("no summary in {stderr}"))
                .to_owned()
        }
    };

    let (group, usage, dlq) = (
        common::unique("elastic-group"),
        common::unique("elastic-usage"),
        common::unique("elastic-dlq"),
    );
    let first_config = config("first", &group, &usage, &dlq, "127.0.0.1:0");
    let summary = tokio::time::timeout(Duration::from_secs(120), run(first_config.clone()))
        .await
        .expect("the first run stops once caught up");
    assert!(
        summary.contains("documents read 26,")
            && summary.contains("events published 12;")
            && summary.contains(
                r#"skipped {"node": 2, "non_kubernetes": 1, "pod": 2, "state_pod": 2}"#
            )
            && summary.contains(r#"empty {"state_container": 1}"#)
            && summary.contains(
                r#"dead letters {"invalid_event": 1, "no_namespace": 1, "not_json": 3, "unknown_metricset": 1}"#
            ),
        "{summary}"
    );

    let decoder = RecordDecoder::<UsageEvent>::new(endpoint.sr_settings().unwrap());
    let events = decode_events(&decoder, &read_all(&kafka, &usage, 12).await).await;
    let mut lines: Vec<String> = events.values().map(line).collect();
    lines.sort();
    assert_eq!(lines, expected_lines());
    let labelled: BTreeMap<String, BTreeMap<String, String>> = events
        .values()
        .filter(|e| !e.subject.labels.is_empty())
        .map(|e| {
            let s = &e.subject;
            let name = s.pod_name.clone().or(s.node_name.clone()).unwrap();
            (name, s.labels.clone())
        })
        .collect();
    assert_eq!(labelled, expected_labels());
    for event in events.values() {
        assert_eq!(event.source, format!("//elastic-agent/{input}"));
        assert_eq!(event.event_type, "io.ferrisdx.usage.v1");
        assert_eq!(event.time, event.end);
    }

    let letters = read_all(&kafka, &dlq, 6).await;
    let reasons: BTreeMap<&str, &str> = letters
        .iter()
        .map(|l| (l.key.as_str(), l.headers["dlq.reason"].as_str()))
        .collect();
    assert_eq!(
        reasons,
        BTreeMap::from([
            ("beats/container/data.json", "not_json"),
            ("beats/pod/data.json", "not_json"),
            ("beats/volume/data.json", "not_json"),
            ("synthetic/negative", "invalid_event"),
            ("synthetic/no-namespace", "no_namespace"),
            ("synthetic/unknown-metricset", "unknown_metricset"),
        ])
    );
    for letter in &letters {
        assert_eq!(
            letter.payload,
            original[letter.key.as_str()],
            "{} unchanged",
            letter.key
        );
        assert_eq!(letter.headers["dlq.topic"], input);
        assert!(!letter.headers["dlq.error"].is_empty());
    }

    // The group committed its offsets: the same group has nothing left to read.
    let again = tokio::time::timeout(Duration::from_secs(120), run(first_config))
        .await
        .expect("the rerun stops once caught up");
    assert!(
        again.contains("documents read 0,") && again.contains("events published 0;"),
        "{again}"
    );

    // A new group reads everything again and publishes the very same events; this time the run
    // is stopped with SIGTERM once its metrics show the whole input, and they match its summary.
    let usage2 = common::unique("elastic-usage2");
    let http = common::free_local_address();
    let second = config(
        "second",
        &common::unique("elastic-group2"),
        &usage2,
        &common::unique("elastic-dlq2"),
        &http.to_string(),
    );
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"))
        .arg("elastic")
        .arg("--config")
        .arg(&second)
        .args(["--log", "warn"])
        .env("SCHEMA_REGISTRY_URL", registry.url())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Every document read, every event published, and (batches hold at most 7 documents) at
    // least 4 batches timed by the latency histogram.
    let published = "usage_tracker_elastic_events_published_total";
    let batches = "usage_tracker_elastic_batch_seconds_count";
    let metrics = common::eventually(
        Duration::from_secs(120),
        "the second run's metrics show every document",
        move || async move {
            let metrics = reqwest::get(format!("http://{http}/metrics")).await.ok()?;
            let metrics = metrics.text().await.ok()?;
            let read: u64 =
                common::metric_by_label(&metrics, "usage_tracker_elastic_documents_read_total")
                    .values()
                    .sum();
            let done = read == 26
                && common::metric(&metrics, published) == Some(12.0)
                && common::metric(&metrics, batches).is_some_and(|n| n >= 4.0);
            done.then_some(metrics)
        },
    )
    .await;
    let (status, body) = common::readyz(http).await.expect("/readyz answers");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("database").is_none(),
        "elastic has no database: {body}"
    );
    let series = |name: &str| common::metric_by_label(&metrics, name);
    let by_label = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    let read = series("usage_tracker_elastic_documents_read_total");
    let skipped = series("usage_tracker_elastic_skipped_total");
    let empty = series("usage_tracker_elastic_empty_total");
    let dead_letters = series("usage_tracker_elastic_dead_letters_total");
    assert_eq!(read, by_label(&[(input.as_str(), 26)]));
    assert_eq!(
        skipped,
        by_label(&[
            ("node", 2),
            ("non_kubernetes", 1),
            ("pod", 2),
            ("state_pod", 2)
        ])
    );
    assert_eq!(empty, by_label(&[("state_container", 1)]));
    assert_eq!(
        dead_letters,
        by_label(&[
            ("invalid_event", 1),
            ("no_namespace", 1),
            ("not_json", 3),
            ("unknown_metricset", 1)
        ])
    );

    let pid = child.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary2 = stderr
        .lines()
        .find(|l| l.starts_with("elastic: "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let expected_summary = format!(
        "elastic: documents read 26, {read:?}; events published 12; skipped {skipped:?}; empty {empty:?}; dead letters {dead_letters:?}"
    );
    assert_eq!(summary2, expected_summary, "the summary and /metrics agree");
    let events2 = decode_events(&decoder, &read_all(&kafka, &usage2, 12).await).await;
    assert_eq!(events2, events, "same ids, same events");
}
