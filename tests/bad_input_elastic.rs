//! `usage-tracker elastic` against hostile input (issue #9: no producer can stop or corrupt the
//! accounts).
//!
//! 1. A corpus of malformed and hostile documents (not JSON, an array, empty and null values, NUL
//!    and escape characters in names, a 1 MiB namespace, absurd timestamps, absurd and
//!    NaN-like numbers, an unknown metricset, deep nesting, network readings that would poison a
//!    pod's counters), interleaved with valid documents and a flood of one valid document: the
//!    converter exits 0, every valid document becomes exactly its events, every bad one is a
//!    dead letter with its reason under its own key, and the summary counts them.
//! 2. Two converters in one consumer group, a partition moving from one to the other and back:
//!    no pod's network bytes are counted twice.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};
use usage_tracker::kafka::TopicSpec;
use usage_tracker::standard::limits::check_usage_event;
use usage_tracker::standard::wire::RecordDecoder;
use usage_tracker::standard::{MeasurementKind, UsageEvent};

const CLUSTER: &str = "bad-input-test";

fn now_ms() -> i64 {
    usage_tracker::time::now_ms()
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

fn container(time: &str, namespace: &str, pod: &str, nanocores: i64, bytes: i64) -> Value {
    json!({
        "@timestamp": time,
        "metricset": {"name": "container", "period": 10000},
        "event": {"module": "kubernetes", "dataset": "kubernetes.container"},
        "orchestrator": {"cluster": {"name": CLUSTER}},
        "kubernetes": {
            "namespace": namespace,
            "pod": {"name": pod, "uid": format!("uid-{pod}")},
            "container": {
                "name": "main",
                "cpu": {"usage": {"nanocores": nanocores}},
                "memory": {"workingset": {"bytes": bytes}}
            },
            "node": {"name": "node-1"}
        }
    })
}

fn pod_network(time: &str, pod: &str, rx: f64, tx: f64) -> Value {
    json!({
        "@timestamp": time,
        "metricset": {"name": "pod", "period": 10000},
        "event": {"module": "kubernetes", "dataset": "kubernetes.pod"},
        "orchestrator": {"cluster": {"name": CLUSTER}},
        "kubernetes": {
            "namespace": "team-net",
            "pod": {
                "name": pod,
                "uid": format!("uid-{pod}"),
                "network": {"rx": {"bytes": rx}, "tx": {"bytes": tx}}
            },
            "node": {"name": "node-1"}
        }
    })
}

fn bytes(doc: &Value) -> Vec<u8> {
    serde_json::to_vec(doc).unwrap()
}

/// `doc` serialised with `from` replaced by `to` (for JSON a `Value` cannot hold).
fn replaced(doc: &Value, from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(bytes(doc)).unwrap();
    assert!(text.contains(from), "{from} in {text}");
    text.replacen(from, to, 1).into_bytes()
}

/// The converter's configuration for a test: its own topics, group and HTTP port.
struct Converter {
    usage: String,
    dead_letters: String,
    config: PathBuf,
}

fn converter(dir: &Path, name: &str, input: &str, group: &str, listen: &str) -> Converter {
    let usage = common::unique("bad-usage");
    let dead_letters = common::unique("bad-dlq");
    let text = format!(
        "[http]\nlisten = \"{listen}\"\n\n[kafka.consumer_properties]\n\"session.timeout.ms\" = \"6000\"\n\n\
         [topics]\nusage_events = \"{usage}\"\ndead_letters = \"{dead_letters}\"\npartitions = 2\n\n\
         [window]\nfuture_skew = \"15m\"\n\n\
         [elastic]\ntopics = [\"{input}\"]\ngroup_id = \"{group}\"\nbatch_size = 10\nbatch_timeout = \"200ms\"\n"
    );
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, text).unwrap();
    Converter {
        usage,
        dead_letters,
        config,
    }
}

fn elastic(registry: &registry_standin::RunningRegistry, config: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"));
    command
        .arg("elastic")
        .arg("--config")
        .arg(config)
        .args(["--log", "warn"])
        .env("SCHEMA_REGISTRY_URL", registry.url())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

fn summary_line(stderr: &[u8]) -> String {
    let stderr = String::from_utf8_lossy(stderr);
    stderr
        .lines()
        .find(|l| l.starts_with("elastic: "))
        .unwrap_or_else(|| panic!("no summary in {stderr}"))
        .to_owned()
}

async fn decode(
    registry: &registry_standin::RunningRegistry,
    messages: &[common::ReadMessage],
) -> Vec<UsageEvent> {
    let decoder =
        RecordDecoder::<UsageEvent>::new(common::endpoint(registry).sr_settings().unwrap());
    let mut events = Vec::new();
    for m in messages {
        let event = decoder
            .decode(m.payload.as_deref().expect("an event"))
            .await
            .unwrap();
        assert_eq!(
            m.key.as_deref(),
            Some(event.subject.cluster_id.as_bytes()),
            "keyed by cluster id"
        );
        assert_eq!(check_usage_event(&event), Ok(()), "within the limits");
        events.push(event);
    }
    events
}

/// `(namespace, resource, kind)` -> total quantity, each id counted once (as the tracker does).
fn totals(events: &[UsageEvent]) -> BTreeMap<(String, String, String), f64> {
    let mut by_id: BTreeMap<&str, &UsageEvent> = BTreeMap::new();
    for e in events {
        if let Some(first) = by_id.insert(&e.id, e) {
            assert_eq!(first, e, "one id, one event");
        }
    }
    let mut totals = BTreeMap::new();
    for e in by_id.values() {
        for m in &e.measurements {
            let kind = serde_json::to_value(m.kind).unwrap();
            *totals
                .entry((
                    e.subject.namespace.clone().unwrap_or_default(),
                    m.resource.clone(),
                    kind.as_str().unwrap().to_owned(),
                ))
                .or_insert(0.0) += m.quantity;
        }
    }
    totals
}

#[tokio::test]
async fn hostile_documents_are_dead_letters_and_valid_ones_are_counted_exactly() {
    let registry = common::registry().await;
    let kafka = common::kafka();
    let input = common::unique("bad-elastic-in");
    kafka
        .ensure_topics(&[TopicSpec::new(&input, 2, 1)])
        .await
        .unwrap();

    // Valid documents, three hours ago (and one five minutes ahead: within the skew).
    let base = (now_ms() - 3 * 3_600_000) / 10_000 * 10_000;
    let t = |i: i64| rfc3339(base + i * 10_000);
    let mut good: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..4 {
        let a = container(
            &t(i),
            "team-a",
            &format!("a-{i}"),
            (i + 1) * 100_000_000,
            1_000_000,
        );
        let b = container(
            &t(i),
            "team-b",
            &format!("b-{i}"),
            (i + 1) * 200_000_000,
            2_000_000,
        );
        good.push((format!("good/a-{i}"), bytes(&a)));
        good.push((format!("good/b-{i}"), bytes(&b)));
    }
    let requests = json!({
        "@timestamp": t(5),
        "metricset": {"name": "state_container", "period": 10000},
        "event": {"module": "kubernetes"},
        "orchestrator": {"cluster": {"name": CLUSTER}},
        "kubernetes": {
            "namespace": "team-a",
            "pod": {"name": "a-0"},
            "container": {
                "name": "main",
                "cpu": {"request": {"cores": 0.5}},
                "memory": {"request": {"bytes": 1_048_576}}
            }
        }
    });
    good.push(("good/requests".into(), bytes(&requests)));
    let near_future = rfc3339((now_ms() + 5 * 60_000) / 1000 * 1000);
    good.push((
        "good/near-future".into(),
        bytes(&container(&near_future, "team-c", "c-0", 1_000_000_000, 1)),
    ));

    // Hostile documents, each under its own key, with the reason it must get.
    let valid = container(&t(7), "team-x", "x-0", 100_000_000, 1_000_000);
    let with = |path: &[&str], value: Value| {
        let mut doc = valid.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut at = &mut doc;
        for key in parents {
            at = at.get_mut(*key).unwrap();
        }
        at[*last] = value;
        bytes(&doc)
    };
    let deep = format!("{}1{}", "{\"k\":".repeat(10_000), "}".repeat(10_000));
    let bad: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        ("not-json", Some(b"this is not JSON {".to_vec()), "not_json"),
        ("json-array", Some(b"[{\"a\": 1}, 2]".to_vec()), "not_json"),
        ("empty", Some(Vec::new()), "not_json"),
        ("null-value", None, "not_json"),
        (
            "nul-in-namespace",
            Some(with(&["kubernetes", "namespace"], json!("team\u{0}a"))),
            "invalid_string",
        ),
        (
            "escape-in-pod-name",
            Some(with(&["kubernetes", "pod", "name"], json!("x-0\u{1b}[2J"))),
            "invalid_string",
        ),
        (
            "mib-namespace",
            Some(with(
                &["kubernetes", "namespace"],
                json!("n".repeat(1 << 20)),
            )),
            "invalid_string",
        ),
        (
            "year-40000",
            Some(with(&["@timestamp"], json!("40000-01-01T00:00:00Z"))),
            "invalid_event",
        ),
        (
            "year-2150",
            Some(with(&["@timestamp"], json!("2150-01-01T00:00:00Z"))),
            "out_of_range",
        ),
        (
            "timestamp-epoch",
            Some(with(&["@timestamp"], json!("1970-01-01T00:00:00Z"))),
            "out_of_range",
        ),
        (
            "timestamp-number-0",
            Some(with(&["@timestamp"], json!(0))),
            "invalid_event",
        ),
        (
            "a-day-ahead",
            Some(with(&["@timestamp"], json!(rfc3339(now_ms() + 86_400_000)))),
            "future_timestamp",
        ),
        (
            "cpu-1e300",
            Some(replaced(&valid, "100000000", "1e300")),
            "out_of_range",
        ),
        (
            "cpu-1e400",
            Some(replaced(&valid, "100000000", "1e400")),
            "out_of_range",
        ),
        (
            "cpu-negative",
            Some(replaced(&valid, "100000000", "-100000000")),
            "invalid_event",
        ),
        (
            "cpu-nan-string",
            Some(replaced(&valid, "100000000", "\"NaN\"")),
            "invalid_event",
        ),
        (
            "unknown-metricset",
            Some(with(&["metricset", "name"], json!("state_flux_capacitor"))),
            "unknown_metricset",
        ),
        (
            "deep-nesting",
            Some(replaced(&valid, "\"node-1\"", &deep)),
            "invalid_event",
        ),
    ];

    // Network readings of one pod, in order on partition 0, with two poisonous readings
    // between the second and the third: one a day ahead, one with an absurd counter. Neither
    // may become the pod's last reading.
    let network: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        (
            "good/net-1",
            bytes(&pod_network(&t(10), "net-0", 1000.0, 100.0)),
            None,
        ),
        (
            "good/net-2",
            bytes(&pod_network(&t(11), "net-0", 5000.0, 300.0)),
            None,
        ),
        (
            "net-a-day-ahead",
            bytes(&pod_network(
                &rfc3339(now_ms() + 86_400_000),
                "net-0",
                1e12,
                1e12,
            )),
            Some("future_timestamp"),
        ),
        (
            "net-counter-1e300",
            bytes(&pod_network(&t(12), "net-0", 1e300, 1e300)),
            Some("out_of_range"),
        ),
        (
            "good/net-3",
            bytes(&pod_network(&t(13), "net-0", 6000.0, 1300.0)),
            None,
        ),
    ];

    // Interleaved: good, bad, good, bad ...; the network readings on partition 0; then a
    // flood of one valid document.
    let mut messages: Vec<(i32, String, Option<Vec<u8>>)> = Vec::new();
    let mut expected_letters: BTreeMap<String, (&str, Option<Vec<u8>>)> = BTreeMap::new();
    let mut good_iter = good.into_iter();
    for (i, (name, payload, reason)) in bad.into_iter().enumerate() {
        if let Some((key, payload)) = good_iter.next() {
            messages.push((i as i32 % 2, key, Some(payload)));
        }
        let key = format!("bad/{name}");
        expected_letters.insert(key.clone(), (reason, payload.clone()));
        messages.push(((i as i32 + 1) % 2, key, payload));
    }
    messages.extend(good_iter.map(|(key, payload)| (1, key, Some(payload))));
    for (name, payload, reason) in network {
        let key = match reason {
            Some(reason) => {
                let key = format!("bad/{name}");
                expected_letters.insert(key.clone(), (reason, Some(payload.clone())));
                key
            }
            None => name.to_owned(),
        };
        messages.push((0, key, Some(payload)));
    }
    let flood = bytes(&container(&t(20), "team-flood", "f-0", 300_000_000, 1000));
    for i in 0..40 {
        messages.push((i % 2, "good/flood".into(), Some(flood.clone())));
    }
    common::publish_to_partitions(&kafka, &input, &messages).await;

    let dir = tempfile::tempdir().unwrap();
    let c = converter(
        dir.path(),
        "bad",
        &input,
        &common::unique("bad-group"),
        "127.0.0.1:0",
    );
    let output = tokio::time::timeout(
        Duration::from_secs(180),
        elastic(&registry, &c.config)
            .arg("--until-caught-up")
            .output(),
    )
    .await
    .expect("the converter stops once caught up")
    .unwrap();
    let summary = summary_line(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {summary}",
        output.status
    );

    // 8 container documents, the requests, the near-future one, 2 network deltas, 40 floods.
    let published = 8 + 1 + 1 + 2 + 40;
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for (reason, _) in expected_letters.values() {
        *reasons.entry(reason).or_default() += 1;
    }
    assert_eq!(expected_letters.len(), 20);
    assert_eq!(
        summary,
        format!(
            "elastic: documents read {n}, {{{input:?}: {n}}}; events published {published}; \
             skipped {{\"pod\": 1}}; empty {{}}; dead letters {reasons:?}",
            n = messages.len()
        ),
        "every document is accounted for"
    );

    let events = decode(
        &registry,
        &common::read_messages(&kafka, &c.usage, published).await,
    )
    .await;
    assert_eq!(events.len(), published);
    let flood_ids: Vec<&str> = events
        .iter()
        .filter(|e| e.subject.namespace.as_deref() == Some("team-flood"))
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(flood_ids.len(), 40, "the flood is published as it came");
    assert!(
        flood_ids.iter().all(|id| *id == flood_ids[0]),
        "with one id, so the tracker counts it once"
    );
    let usage = |resource: &str| (resource.to_owned(), "usage".to_owned());
    let expected: BTreeMap<(String, String, String), f64> = [
        ("team-a", usage("cpu"), 10.0),
        ("team-a", usage("memory"), 40_000_000.0),
        ("team-a", ("cpu".into(), "request".into()), 5.0),
        ("team-a", ("memory".into(), "request".into()), 10_485_760.0),
        ("team-b", usage("cpu"), 20.0),
        ("team-b", usage("memory"), 80_000_000.0),
        ("team-c", usage("cpu"), 10.0),
        ("team-c", usage("memory"), 10.0),
        ("team-flood", usage("cpu"), 3.0),
        ("team-flood", usage("memory"), 10_000.0),
        // [net-1, net-2) and [net-2, net-3): the poisonous readings changed nothing.
        ("team-net", usage("network_rx"), 5000.0),
        ("team-net", usage("network_tx"), 1200.0),
    ]
    .into_iter()
    .map(|(ns, (resource, kind), q)| ((ns.to_owned(), resource, kind), q))
    .collect();
    assert_eq!(totals(&events), expected);
    let net: Vec<(i64, i64)> = events
        .iter()
        .filter(|e| e.subject.namespace.as_deref() == Some("team-net"))
        .map(|e| (e.start, e.end))
        .collect();
    let at = |i: i64| base + i * 10_000;
    assert_eq!(net, vec![(at(10), at(11)), (at(11), at(13))]);
    assert!(events.iter().all(|e| e.measurements.iter().all(|m| {
        m.kind != MeasurementKind::Capacity && m.quantity.is_finite() && m.quantity >= 0.0
    })));

    let letters = common::read_messages(&kafka, &c.dead_letters, expected_letters.len()).await;
    let mut got: BTreeMap<String, &str> = BTreeMap::new();
    for letter in &letters {
        let key = String::from_utf8(letter.key.clone().expect("the original key")).unwrap();
        let (reason, original) = &expected_letters[&key];
        got.insert(key.clone(), letter.headers["dlq.reason"].as_str());
        assert_eq!(letter.headers["dlq.topic"], input, "{key}");
        let error = &letter.headers["dlq.error"];
        assert!(!error.is_empty() && error.len() < 2048, "{key}: {error}");
        if key == "bad/mib-namespace" {
            // Larger than a dead letter may be: published without its value, saying how large.
            assert_eq!(letter.payload, None, "{key}");
            assert!(
                letter
                    .headers
                    .get("dlq.value_omitted")
                    .is_some_and(|size| size.parse::<usize>().unwrap() > 1 << 20),
                "{key}: {:?}",
                letter.headers
            );
        } else {
            let original = original.as_deref().filter(|p| !p.is_empty());
            let payload = letter.payload.as_deref().filter(|p| !p.is_empty());
            assert_eq!(payload, original, "{key}: the original bytes");
        }
        assert_eq!(*reason, got[&key], "{key}: {error}");
    }
    let expected_reasons: BTreeMap<String, &str> = expected_letters
        .iter()
        .map(|(k, (r, _))| (k.clone(), *r))
        .collect();
    assert_eq!(got, expected_reasons);
}

/// The scraped value of an unlabelled metric (0 while nothing answers).
async fn scraped(addr: std::net::SocketAddr, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    common::metric(&text, name).unwrap_or(0.0)
}

async fn stop(child: tokio::process::Child) -> String {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    let summary = summary_line(&output.stderr);
    assert!(output.status.success(), "{summary}");
    summary
}

/// Every event on `topic` so far, decoded by a background reader.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<UsageEvent>>>;

fn read_in_background(
    registry: &registry_standin::RunningRegistry,
    kafka: &usage_tracker::kafka::KafkaConnection,
    topic: &str,
) -> (Seen, tokio::task::JoinHandle<()>) {
    let seen = Seen::default();
    let decoder =
        RecordDecoder::<UsageEvent>::new(common::endpoint(registry).sr_settings().unwrap());
    let (kafka, topic, into) = (kafka.clone(), topic.to_owned(), seen.clone());
    let task = tokio::spawn(async move {
        use rdkafka::Message;
        let consumer = common::consumer(&kafka, &topic).await;
        loop {
            // Errors (the topic not there yet) are retried.
            let Ok(message) = consumer.recv().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let event = decoder.decode(message.payload().unwrap()).await.unwrap();
            into.lock().unwrap().push(event);
        }
    });
    (seen, task)
}

/// Whether both pods have an event ending at reading `i`.
fn counted_up_to(seen: &Seen, base: i64, i: i64) -> bool {
    let seen = seen.lock().unwrap();
    ["p0", "p1"].iter().all(|pod| {
        seen.iter()
            .any(|e| e.subject.pod_name.as_deref() == Some(*pod) && e.end == base + i * 10_000)
    })
}

#[tokio::test]
async fn a_partition_moving_between_converters_never_counts_network_bytes_twice() {
    const PUBLISHED: &str = "usage_tracker_elastic_events_published_total";
    let registry = common::registry().await;
    let kafka = common::kafka();
    let input = common::unique("rebalance-elastic-in");
    kafka
        .ensure_topics(&[TopicSpec::new(&input, 2, 1)])
        .await
        .unwrap();
    // Pod p0's documents on partition 0, pod p1's on partition 1; reading i at base + 10 i s,
    // its counters at 1000 i (rx) and 100 i (tx) bytes.
    let base = (now_ms() - 3_600_000) / 10_000 * 10_000;
    let readings = |from: i64, to: i64| -> Vec<(i32, String, Option<Vec<u8>>)> {
        (from..=to)
            .flat_map(|i| {
                (0..2).map(move |p| {
                    let doc = pod_network(
                        &rfc3339(base + i * 10_000),
                        &format!("p{p}"),
                        1000.0 * i as f64,
                        100.0 * i as f64,
                    );
                    (p, format!("p{p}/{i}"), Some(bytes(&doc)))
                })
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let group = common::unique("rebalance-group");
    let (http_a, http_b) = (common::free_local_address(), common::free_local_address());
    let a = converter(dir.path(), "a", &input, &group, &http_a.to_string());
    // B publishes to A's topics.
    let b = converter(dir.path(), "b", &input, &group, &http_b.to_string());
    let text = std::fs::read_to_string(&b.config)
        .unwrap()
        .replace(&b.usage, &a.usage)
        .replace(&b.dead_letters, &a.dead_letters);
    std::fs::write(&b.config, text).unwrap();
    kafka
        .ensure_topics(&[TopicSpec::new(&a.usage, 2, 1)])
        .await
        .unwrap();
    let (seen, reader) = read_in_background(&registry, &kafka, &a.usage);
    let wait = |what: &'static str, i: i64| {
        let seen = seen.clone();
        common::eventually(Duration::from_secs(120), what, move || {
            let done = counted_up_to(&seen, base, i);
            async move { done.then_some(()) }
        })
    };

    // A alone: readings 1..5 of both pods.
    common::publish_to_partitions(&kafka, &input, &readings(1, 5)).await;
    let first = elastic(&registry, &a.config).spawn().unwrap();
    wait("A counts readings 1..5", 5).await;

    // B joins: the group gives it one of the two partitions. Readings 6..10.
    let second = elastic(&registry, &b.config).spawn().unwrap();
    common::eventually(Duration::from_secs(120), "B gets a partition", || async {
        let (_, body) = common::readyz(http_b).await?;
        (body["assignment"] == "assigned").then_some(())
    })
    .await;
    common::publish_to_partitions(&kafka, &input, &readings(6, 10)).await;
    wait("A and B count readings 6..10", 10).await;
    assert!(
        scraped(http_b, PUBLISHED).await > 0.0,
        "B counted a moved pod"
    );

    // B leaves: its partition goes back to A. Readings 11..15.
    stop(second).await;
    common::publish_to_partitions(&kafka, &input, &readings(11, 15)).await;
    wait("A counts readings 11..15", 15).await;
    // Let A settle (a late delta would show as an overlap below), then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(first).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    reader.abort();

    let events = seen.lock().unwrap().clone();
    // Per pod, per event id: (from, to, rx, tx), in reading steps and bytes.
    type Interval = (i64, i64, f64, f64);
    let mut by_pod: BTreeMap<String, BTreeMap<String, Interval>> = BTreeMap::new();
    for e in &events {
        assert_eq!(check_usage_event(e), Ok(()));
        let (from, to) = ((e.start - base) / 10_000, (e.end - base) / 10_000);
        let q = |r: &str| {
            e.measurements
                .iter()
                .find(|m| m.resource == r)
                .unwrap()
                .quantity
        };
        // One id, one interval: re-published events (after a rebalance) are the same.
        let interval = (from, to, q("network_rx"), q("network_tx"));
        let previous = by_pod
            .entry(e.subject.pod_name.clone().unwrap())
            .or_default()
            .insert(e.id.clone(), interval);
        assert!(previous.is_none_or(|p| p == interval), "{}", e.id);
    }
    assert_eq!(by_pod.len(), 2, "{by_pod:?}");
    for (pod, events) in &by_pod {
        let mut intervals: Vec<Interval> = events.values().copied().collect();
        intervals.sort_by_key(|i| i.0);
        let mut covered = 0;
        for (n, &(from, to, rx, tx)) in intervals.iter().enumerate() {
            assert_eq!(
                (rx, tx),
                (1000.0 * (to - from) as f64, 100.0 * (to - from) as f64),
                "{pod}: exactly the growth over [{from}, {to})"
            );
            if n > 0 {
                assert!(
                    from >= intervals[n - 1].1,
                    "{pod}: [{from}, {to}) overlaps {:?}: bytes counted twice",
                    intervals[n - 1]
                );
            }
            covered += to - from;
        }
        // Each change of owner costs a pod at most one step (the new owner's baseline).
        assert!(covered >= 8, "{pod}: {intervals:?}");
        assert_eq!(intervals.last().unwrap().1, 15, "{pod}: {intervals:?}");
    }
}
