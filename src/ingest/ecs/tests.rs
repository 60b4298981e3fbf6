//! Every document of the shared Elastic fixtures (`../shared/fixtures/elastic`, see its
//! README), plus synthetic cases. Quantities are exact: each is one product of integers
//! divided once, so the expected value is the decimal result written as a literal.

use super::doc::parse;
use super::id::{decimal, event_id, EVENT_ID_INLINE};
use super::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::de::IgnoredAny;
use serde_json::json;
use xxhash_rust::xxh3::Xxh3Default;

use crate::measure::Resource;
use crate::standard::{MeasurementKind, WorkloadSubject};

/// `USAGE_TRACKER_ELASTIC_FIXTURES`, else `shared/fixtures/elastic` next to the repository,
/// else the workplace's copy at `/work/shared/fixtures/elastic`.
fn fixture_dir() -> std::path::PathBuf {
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

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(path))
        .unwrap_or_else(|e| panic!("reading fixture {path}: {e}"))
}

fn settings() -> EcsSettings {
    EcsSettings {
        default_cluster_id: Some("fallback".into()),
        ..EcsSettings::new("//elastic-agent/test")
    }
}

fn normaliser(settings: EcsSettings) -> EcsNormaliser {
    EcsNormaliser::new(settings).unwrap()
}

fn default_normaliser() -> EcsNormaliser {
    normaliser(settings())
}

fn usage_with(n: &EcsNormaliser, payload: &[u8]) -> UsageEvent {
    match n.normalise(payload) {
        Ok(EcsOutcome::Usage(event)) => event,
        other => panic!(
            "expected an event from {}, got {other:?}",
            String::from_utf8_lossy(payload)
        ),
    }
}

fn usage(path: &str) -> UsageEvent {
    usage_with(&default_normaliser(), &fixture(path))
}

fn rejection(n: &EcsNormaliser, payload: &[u8]) -> Rejection {
    match n.normalise(payload) {
        Err(rejection) => rejection,
        Ok(outcome) => panic!(
            "expected a rejection of {}, got {outcome:?}",
            String::from_utf8_lossy(payload)
        ),
    }
}

/// `(resource, kind, quantity)`, after checking every unit is its resource's unit.
fn quantities(event: &UsageEvent) -> Vec<(&str, MeasurementKind, f64)> {
    event
        .measurements
        .iter()
        .map(|m| {
            let resource = Resource::parse(&m.resource).expect("a standard resource");
            assert_eq!(m.unit, resource.unit(), "{}", m.resource);
            (m.resource.as_str(), m.kind, m.quantity)
        })
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn subject(cluster: &str, namespace: Option<&str>) -> WorkloadSubject {
    WorkloadSubject {
        cluster_id: cluster.into(),
        namespace: namespace.map(Into::into),
        ..Default::default()
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

/// Checks the envelope and interval: `end` = `@timestamp`, `start` = `end - period`.
fn assert_envelope(event: &UsageEvent, end: EpochMillis, period_ms: i64) {
    assert_eq!(event.specversion, "1.0");
    assert_eq!(event.event_type, "io.ferrisdx.usage.v1");
    assert_eq!(event.source, "//elastic-agent/test");
    assert_eq!((event.time, event.end), (end, end));
    assert_eq!(event.start, end - period_ms);
    assert_eq!(event.id.len(), 32, "{}", event.id);
    assert!(event.id.bytes().all(|b| b.is_ascii_hexdigit()));
}

use MeasurementKind::{Capacity, Limit, Request, Usage};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Event,
    /// A pod's network counter reading.
    Network,
    Skipped(&'static str),
    Empty(&'static str),
    Rejected(DeadLetterReason),
}

/// What the default settings (usage from `container`, capacity from `state_node`) make of
/// every fixture document.
const EVERY_DOCUMENT: [(&str, Expect); 21] = [
    (
        "beats/container/data.json",
        Expect::Rejected(DeadLetterReason::NotJson),
    ),
    ("beats/container/versions/cd377bbb/data.json", Expect::Event),
    ("beats/node/data.json", Expect::Skipped("node")),
    (
        "beats/pod/data.json",
        Expect::Rejected(DeadLetterReason::NotJson),
    ),
    (
        "beats/state_container/data.json",
        Expect::Empty("state_container"),
    ),
    (
        "beats/state_container/versions/060e3176/data.json",
        Expect::Event,
    ),
    ("beats/state_node/data.json", Expect::Event),
    ("beats/state_persistentvolumeclaim/data.json", Expect::Event),
    (
        "beats/state_persistentvolumeclaim/versions/273bd5b7/data.json",
        Expect::Event,
    ),
    ("beats/state_pod/data.json", Expect::Skipped("state_pod")),
    (
        "beats/volume/data.json",
        Expect::Rejected(DeadLetterReason::NotJson),
    ),
    ("integrations/container/sample_event.json", Expect::Event),
    (
        "integrations/container/versions/1a6ce0e7/sample_event.json",
        Expect::Event,
    ),
    (
        "integrations/node/sample_event.json",
        Expect::Skipped("node"),
    ),
    ("integrations/pod/sample_event.json", Expect::Network),
    (
        "integrations/pod/versions/0bd978f9/sample_event.json",
        Expect::Network,
    ),
    (
        "integrations/state_container/sample_event.json",
        Expect::Event,
    ),
    ("integrations/state_node/sample_event.json", Expect::Event),
    (
        "integrations/state_persistentvolumeclaim/sample_event.json",
        Expect::Event,
    ),
    (
        "integrations/state_pod/sample_event.json",
        Expect::Skipped("state_pod"),
    ),
    ("integrations/volume/sample_event.json", Expect::Event),
];

fn documents_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            documents_under(&path, out);
        } else if matches!(
            path.file_name().and_then(|n| n.to_str()),
            Some("data.json" | "sample_event.json")
        ) {
            out.push(path);
        }
    }
}

#[test]
fn every_fixture_document_has_its_expected_outcome() {
    let root = fixture_dir();
    let mut found = Vec::new();
    documents_under(&root, &mut found);
    let mut found: Vec<String> = found
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    found.sort();
    let listed: Vec<&str> = EVERY_DOCUMENT.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        found, listed,
        "every fixture document is covered, and only those"
    );
    let n = default_normaliser();
    for (path, expected) in EVERY_DOCUMENT {
        let got = match n.normalise(&fixture(path)) {
            Ok(EcsOutcome::Usage(_)) => Expect::Event,
            Ok(EcsOutcome::PodNetwork(_)) => Expect::Network,
            Ok(EcsOutcome::Skipped(m)) => Expect::Skipped(m),
            Ok(EcsOutcome::Empty(m)) => Expect::Empty(m),
            Err(r) => Expect::Rejected(r.reason),
        };
        assert_eq!(got, expected, "{path}");
    }
}

#[test]
fn beats_files_with_trailing_commas_are_not_json() {
    let n = default_normaliser();
    for path in [
        "beats/pod/data.json",
        "beats/container/data.json",
        "beats/volume/data.json",
    ] {
        let r = rejection(&n, &fixture(path));
        assert_eq!(r.reason, DeadLetterReason::NotJson, "{path}");
        assert!(r.detail.contains("trailing comma"), "{path}: {}", r.detail);
    }
}

#[test]
fn agent_container_sample_is_container_usage() {
    let e = usage("integrations/container/sample_event.json");
    // @timestamp 2021-12-20T09:53:30.156Z = 1639994010156 ms; metricset.period 10000 ms.
    assert_envelope(&e, 1_639_994_010_156, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            cluster_name: some("kind"),
            pod_name: some("elasticsearch-d5cbc495-f5rjf"),
            pod_uid: some("75b5af67-2eed-42d2-8dfc-2a07a9f36c36"),
            container_name: some("elasticsearch"),
            node_name: some("kind-control-plane"),
            // kubernetes.deployment.name wins over kubernetes.replicaset.name.
            workload_kind: some("Deployment"),
            workload_name: some("elasticsearch"),
            labels: labels(&[("app", "elasticsearch"), ("pod-template-hash", "d5cbc495")]),
            // No orchestrator.cluster.id: the name is the id.
            ..subject("kind", Some("default"))
        }
    );
    assert_eq!(
        quantities(&e),
        vec![
            // 14604443 nanocores x 10000 ms / 1e12 = 0.14604443 core-seconds
            ("cpu", Usage, 0.14604443),
            // workingset 1490817024 B x 10 s = 14908170240 byte-seconds
            ("memory", Usage, 14_908_170_240.0),
        ]
    );
}

#[test]
fn old_agent_container_sample_uses_the_default_cluster() {
    let e = usage("integrations/container/versions/1a6ce0e7/sample_event.json");
    // 2020-06-25T12:32:29.748Z = 1593088349748 ms.
    assert_envelope(&e, 1_593_088_349_748, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            pod_name: some("metricbeat-g9fc6"),
            container_name: some("metricbeat"),
            node_name: some("minikube"),
            ..subject("fallback", Some("kube-system"))
        }
    );
    assert_eq!(
        quantities(&e),
        vec![
            // 611585 nanocores x 10000 ms / 1e12 = 0.00611585
            ("cpu", Usage, 0.00611585),
            // 21114880 B x 10 s = 211148800
            ("memory", Usage, 211_148_800.0),
        ]
    );
}

#[test]
fn metricbeat_7_container_ignores_its_requests_and_uses_the_default_period() {
    let e = usage("beats/container/versions/cd377bbb/data.json");
    // 2018-06-20T16:47:49.597Z = 1529513269597 ms; no metricset.period: default 10 s.
    assert_envelope(&e, 1_529_513_269_597, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            pod_name: some("kube-dns-6f4fd4bdf-wlmht"),
            container_name: some("sidecar"),
            node_name: some("minikube"),
            ..subject("fallback", Some("kube-system"))
        }
    );
    // cpu.request.cores 0.01 and memory.request.bytes in this kubelet document are not
    // requests of record: those come from state_container only.
    assert_eq!(
        quantities(&e),
        vec![
            // 4741228 nanocores x 10000 ms / 1e12 = 0.04741228
            ("cpu", Usage, 0.04741228),
            // 16404480 B x 10 s = 164044800
            ("memory", Usage, 164_044_800.0),
        ]
    );
}

#[test]
fn agent_state_container_sample_is_requests_and_limits() {
    let e = usage("integrations/state_container/sample_event.json");
    // 2021-12-20T10:02:04.923Z = 1639994524923 ms.
    assert_envelope(&e, 1_639_994_524_923, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            cluster_name: some("kind"),
            pod_name: some("coredns-558bd4d5db-8qp4d"),
            pod_uid: some("b5637989-65ec-4f86-a13e-b9bd02e9bac5"),
            container_name: some("coredns"),
            node_name: some("kind-control-plane"),
            workload_kind: some("Deployment"),
            workload_name: some("coredns"),
            labels: labels(&[("pod-template-hash", "558bd4d5db"), ("k8s-app", "kube-dns")]),
            ..subject("kind", Some("kube-system"))
        }
    );
    assert_eq!(
        quantities(&e),
        vec![
            // 0.1 cores x 10 s = 1 core-second (no cpu limit in the document)
            ("cpu", Request, 1.0),
            // 73400320 B x 10 s = 734003200
            ("memory", Request, 734_003_200.0),
            // 178257920 B x 10 s = 1782579200
            ("memory", Limit, 1_782_579_200.0),
        ]
    );
}

#[test]
fn metricbeat_state_container_is_requests() {
    let e = usage("beats/state_container/versions/060e3176/data.json");
    // 2019-03-01T08:05:34.853Z = 1551427534853 ms.
    assert_envelope(&e, 1_551_427_534_853, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            pod_name: some("etcd-kind-control-plane"),
            container_name: some("etcd"),
            node_name: some("kind-control-plane"),
            ..subject("fallback", Some("kube-system"))
        }
    );
    assert_eq!(
        quantities(&e),
        vec![
            // 0.1 cores x 10 s = 1
            ("cpu", Request, 1.0),
            // 104857600 B x 10 s = 1048576000
            ("memory", Request, 1_048_576_000.0),
        ]
    );
}

#[test]
fn state_node_samples_are_cluster_capacity() {
    let e = usage("integrations/state_node/sample_event.json");
    // 2020-06-25T12:37:44.457Z = 1593088664457 ms.
    assert_envelope(&e, 1_593_088_664_457, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            node_name: some("minikube"),
            workload_kind: some("Node"),
            workload_name: some("minikube"),
            labels: labels(&[
                ("kubernetes_io/arch", "amd64"),
                ("kubernetes_io/hostname", "minikube"),
                ("kubernetes_io/os", "linux"),
                ("node-role_kubernetes_io/master", ""),
                ("beta_kubernetes_io/arch", "amd64"),
                ("beta_kubernetes_io/os", "linux"),
            ]),
            ..subject("fallback", None)
        }
    );
    assert_eq!(
        quantities(&e),
        vec![
            // 4 cores x 10 s = 40
            ("cpu", Capacity, 40.0),
            // 16815325184 B x 10 s = 168153251840
            ("memory", Capacity, 168_153_251_840.0),
        ]
    );

    let e = usage("beats/state_node/data.json");
    // 2019-03-01T08:05:34.853Z = 1551427534853 ms.
    assert_envelope(&e, 1_551_427_534_853, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            node_name: some("kind-control-plane"),
            workload_kind: some("Node"),
            workload_name: some("kind-control-plane"),
            ..subject("fallback", None)
        }
    );
    assert_eq!(
        quantities(&e),
        vec![
            // 16 cores x 10 s = 160
            ("cpu", Capacity, 160.0),
            // 16769380352 B x 10 s = 167693803520
            ("memory", Capacity, 167_693_803_520.0),
        ]
    );
}

#[test]
fn volume_sample_is_storage_usage() {
    let e = usage("integrations/volume/sample_event.json");
    // 2020-06-25T12:40:19.649Z = 1593088819649 ms.
    assert_envelope(&e, 1_593_088_819_649, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            pod_name: some("metricbeat-g9fc6"),
            node_name: some("minikube"),
            ..subject("fallback", Some("kube-system"))
        }
    );
    // fs.used 12288 B x 10 s = 122880 byte-seconds
    assert_eq!(quantities(&e), vec![("storage", Usage, 122_880.0)]);
}

#[test]
fn pvc_samples_are_storage_requests() {
    let e = usage("integrations/state_persistentvolumeclaim/sample_event.json");
    // 2020-06-25T12:44:44.418Z = 1593089084418 ms.
    assert_envelope(&e, 1_593_089_084_418, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            workload_kind: some("PersistentVolumeClaim"),
            workload_name: some("task-pv-claim"),
            ..subject("fallback", Some("default"))
        }
    );
    // request_storage 3221225472 B x 10 s = 32212254720
    assert_eq!(quantities(&e), vec![("storage", Request, 32_212_254_720.0)]);

    let plain = usage("beats/state_persistentvolumeclaim/data.json");
    // 2019-03-01T08:05:34.853Z = 1551427534853 ms.
    assert_envelope(&plain, 1_551_427_534_853, 10_000);
    assert_eq!(plain.subject.cluster_id, "fallback");
    // 1024 B x 10 s = 10240
    assert_eq!(quantities(&plain), vec![("storage", Request, 10_240.0)]);

    let captured = usage("beats/state_persistentvolumeclaim/versions/273bd5b7/data.json");
    // 2023-01-25T17:15:14.818Z = 1674666914818 ms.
    assert_envelope(&captured, 1_674_666_914_818, 10_000);
    assert_eq!(
        captured.subject,
        WorkloadSubject {
            cluster_name: some("kind"),
            workload_kind: some("PersistentVolumeClaim"),
            workload_name: some("task-pv-claim"),
            ..subject("kind", Some("default"))
        }
    );
    assert_eq!(quantities(&captured), vec![("storage", Request, 10_240.0)]);
}

#[test]
fn pod_usage_when_configured_and_then_containers_are_skipped() {
    let n = normaliser(EcsSettings {
        usage_from: UsageSource::Pod,
        ..settings()
    });
    let e = usage_with(&n, &fixture("integrations/pod/sample_event.json"));
    // 2021-12-20T09:59:45.257Z = 1639994385257 ms.
    assert_envelope(&e, 1_639_994_385_257, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            cluster_name: some("kind"),
            pod_name: some("kube-controller-manager-kind-control-plane"),
            pod_uid: some("9a8de23e-5e64-462f-8576-f6591fb3f7b8"),
            node_name: some("kind-control-plane"),
            labels: labels(&[
                ("component", "kube-controller-manager"),
                ("tier", "control-plane")
            ]),
            ..subject("kind", Some("kube-system"))
        }
    );
    assert_eq!(
        quantities(&e),
        vec![
            // 15144561 nanocores x 10000 ms / 1e12 = 0.15144561
            ("cpu", Usage, 0.15144561),
            // working_set 96862208 B x 10 s = 968622080
            ("memory", Usage, 968_622_080.0),
        ]
    );
    // The older copy differs only in host.*: the very same event, id included.
    let older = usage_with(
        &n,
        &fixture("integrations/pod/versions/0bd978f9/sample_event.json"),
    );
    assert_eq!(older, e);
    for path in [
        "integrations/container/sample_event.json",
        "integrations/container/versions/1a6ce0e7/sample_event.json",
        "beats/container/versions/cd377bbb/data.json",
    ] {
        assert_eq!(
            n.normalise(&fixture(path)),
            Ok(EcsOutcome::Skipped("container")),
            "{path}"
        );
    }
}

#[test]
fn node_capacity_when_configured_and_then_state_node_is_skipped() {
    let n = normaliser(EcsSettings {
        capacity_from: CapacitySource::Node,
        ..settings()
    });
    let e = usage_with(&n, &fixture("beats/node/data.json"));
    // 2018-06-20T16:43:18.476Z = 1529512998476 ms; no period: default 10 s.
    assert_envelope(&e, 1_529_512_998_476, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            node_name: some("minikube"),
            workload_kind: some("Node"),
            workload_name: some("minikube"),
            ..subject("fallback", None)
        }
    );
    assert_eq!(
        quantities(&e),
        vec![
            // 2 cores x 10 s = 20
            ("cpu", Capacity, 20.0),
            // 1992347648 B x 10 s = 19923476480
            ("memory", Capacity, 19_923_476_480.0),
        ]
    );
    // The 2020 kubelet node document has usage but no allocatable.
    assert_eq!(
        n.normalise(&fixture("integrations/node/sample_event.json")),
        Ok(EcsOutcome::Empty("node"))
    );
    for path in [
        "integrations/state_node/sample_event.json",
        "beats/state_node/data.json",
    ] {
        assert_eq!(
            n.normalise(&fixture(path)),
            Ok(EcsOutcome::Skipped("state_node")),
            "{path}"
        );
    }
}

/// The elements of beats' `*-expected.json` are shipped-shape documents without
/// `@timestamp`; the `.expected` files are Go dumps.
#[test]
fn beats_testdata_elements_need_a_timestamp_and_dumps_are_not_documents() {
    let n = default_normaliser();
    let elements =
        |path: &str| -> Vec<serde_json::Value> { serde_json::from_slice(&fixture(path)).unwrap() };
    let with_time = |mut doc: serde_json::Value| {
        doc["@timestamp"] = json!("2026-07-13T10:20:10.000Z");
        serde_json::to_vec(&doc).unwrap()
    };
    // 2026-07-13T10:20:10Z = 1783938010000 ms.
    let t = 1_783_938_010_000;

    let containers = elements("beats/state_container/ksm.v2.19.1.plain-expected.json");
    // [0] hello and [2] kube-state-metrics: no requests or limits.
    for i in [0, 2] {
        let doc = serde_json::to_vec(&containers[i]).unwrap();
        assert_eq!(n.normalise(&doc), Ok(EcsOutcome::Empty("state_container")));
    }
    let doc = serde_json::to_vec(&containers[1]).unwrap();
    let r = rejection(&n, &doc);
    assert_eq!(r.reason, DeadLetterReason::InvalidEvent);
    assert!(r.detail.contains("@timestamp"), "{}", r.detail);
    let e = usage_with(&n, &with_time(containers[1].clone()));
    assert_envelope(&e, t, 10_000);
    assert_eq!(
        e.subject,
        WorkloadSubject {
            pod_name: some("kube-controller-manager-kind-control-plane"),
            container_name: some("kube-controller-manager"),
            node_name: some("kind-control-plane"),
            ..subject("fallback", Some("kube-system"))
        }
    );
    // 0.2 cores x 10 s = 2
    assert_eq!(quantities(&e), vec![("cpu", Request, 2.0)]);

    let node = elements("beats/state_node/ksm.v2.19.1.plain-expected.json").remove(0);
    let r = rejection(&n, &serde_json::to_vec(&node).unwrap());
    assert_eq!(r.reason, DeadLetterReason::InvalidEvent);
    let e = usage_with(&n, &with_time(node));
    assert_eq!(
        quantities(&e),
        vec![
            // 12 cores x 10 s = 120
            ("cpu", Capacity, 120.0),
            // 8321232896 B x 10 s = 83212328960
            ("memory", Capacity, 83_212_328_960.0),
        ]
    );

    let pvc =
        elements("beats/state_persistentvolumeclaim/ksm.v2.19.1.plain-expected.json").remove(0);
    let r = rejection(&n, &serde_json::to_vec(&pvc).unwrap());
    assert_eq!(r.reason, DeadLetterReason::InvalidEvent);
    let e = usage_with(&n, &with_time(pvc));
    assert_eq!(e.subject.workload_name.as_deref(), Some("mnt-basic-sts-0"));
    // 1048576 B x 10 s = 10485760
    assert_eq!(quantities(&e), vec![("storage", Request, 10_485_760.0)]);

    for pod in elements("beats/state_pod/ksm.v2.19.1.plain-expected.json") {
        let doc = serde_json::to_vec(&pod).unwrap();
        assert_eq!(n.normalise(&doc), Ok(EcsOutcome::Skipped("state_pod")));
    }

    // A whole file is an array (of documents, or of Go mb.Event dumps): not one document.
    for name in [
        "state_container",
        "state_node",
        "state_persistentvolumeclaim",
        "state_pod",
    ] {
        for file in [
            "ksm.v2.19.1.plain.expected",
            "ksm.v2.19.1.plain-expected.json",
        ] {
            let path = format!("beats/{name}/{file}");
            let r = rejection(&n, &fixture(&path));
            assert_eq!(r.reason, DeadLetterReason::NotJson, "{path}");
        }
    }
}

/// A minimal Agent-shaped container document.
fn container_doc() -> serde_json::Value {
    json!({
        "@timestamp": "2025-06-02T08:00:10.000Z",
        "metricset": {"name": "container", "period": 10000},
        "event": {"module": "kubernetes", "dataset": "kubernetes.container"},
        "orchestrator": {"cluster": {"name": "gke-prod-1"}},
        "kubernetes": {
            "namespace": "project-a",
            "pod": {"name": "ingest-api-7c9d8f6b5-x2kqp", "uid": "9e1f5c1a"},
            "container": {
                "name": "api",
                "cpu": {"usage": {"nanocores": 250_000_000}},
                "memory": {"workingset": {"bytes": 536_870_912}}
            },
            "node": {"name": "node-1"},
            "deployment": {"name": "ingest-api"},
            "replicaset": {"name": "ingest-api-7c9d8f6b5"},
            "labels": {"app": "ingest-api"}
        }
    })
}

fn bytes(doc: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(doc).unwrap()
}

#[test]
fn the_standards_worked_example() {
    let e = usage_with(&default_normaliser(), &bytes(&container_doc()));
    // Standard §8.1: 2025-06-02T08:00:10Z = 1748851210000 ms, over [t - 10 s, t).
    assert_envelope(&e, 1_748_851_210_000, 10_000);
    assert_eq!(e.start, 1_748_851_200_000);
    assert_eq!(
        quantities(&e),
        vec![
            // 0.25 cores x 10 s = 2.5 core-seconds
            ("cpu", Usage, 2.5),
            // 512 MiB x 10 s = 5368709120 byte-seconds
            ("memory", Usage, 5_368_709_120.0),
        ]
    );
    assert_eq!(e.subject.cluster_id, "gke-prod-1");
    assert_eq!(e.subject.workload_kind.as_deref(), Some("Deployment"));
}

#[test]
fn negative_and_mistyped_values_are_invalid() {
    let n = default_normaliser();
    let mut doc = container_doc();
    doc["kubernetes"]["container"]["cpu"]["usage"]["nanocores"] = json!(-5);
    let r = rejection(&n, &bytes(&doc));
    assert_eq!(r.reason, DeadLetterReason::InvalidEvent);
    assert!(
        r.detail
            .contains("kubernetes.container.cpu.usage.nanocores"),
        "{}",
        r.detail
    );

    let mut doc = container_doc();
    doc["kubernetes"]["container"]["memory"]["workingset"]["bytes"] = json!("512Mi");
    let r = rejection(&n, &bytes(&doc));
    assert_eq!(r.reason, DeadLetterReason::InvalidEvent);
    assert!(r.detail.contains("invalid type"), "{}", r.detail);

    // JSON has no NaN or infinity; a finite value whose amount overflows is invalid too.
    let mut doc = container_doc();
    doc["kubernetes"]["container"]["cpu"]["usage"]["nanocores"] = json!(1e308);
    doc["metricset"]["period"] = json!(1e14);
    assert_eq!(
        rejection(&n, &bytes(&doc)).reason,
        DeadLetterReason::InvalidEvent
    );

    for period in [json!(0), json!(-10000), json!("10s")] {
        let mut doc = container_doc();
        doc["metricset"]["period"] = period.clone();
        assert_eq!(
            rejection(&n, &bytes(&doc)).reason,
            DeadLetterReason::InvalidEvent,
            "period {period}"
        );
    }
    for time in [
        json!(null),
        json!("yesterday"),
        json!("1969-12-31T23:59:59Z"),
    ] {
        let mut doc = container_doc();
        doc["@timestamp"] = time.clone();
        assert_eq!(
            rejection(&n, &bytes(&doc)).reason,
            DeadLetterReason::InvalidEvent,
            "@timestamp {time}"
        );
    }
}

#[test]
fn period_and_memory_fallback() {
    let mut doc = container_doc();
    doc["metricset"]["period"] = json!(30000);
    doc["kubernetes"]["container"]["memory"] = json!({"usage": {"bytes": 1000}});
    let e = usage_with(&default_normaliser(), &bytes(&doc));
    assert_envelope(&e, 1_748_851_210_000, 30_000);
    assert_eq!(
        quantities(&e),
        vec![
            // 0.25 cores x 30 s = 7.5
            ("cpu", Usage, 7.5),
            // no workingset: usage 1000 B x 30 s = 30000
            ("memory", Usage, 30_000.0),
        ]
    );
    let mut doc = container_doc();
    doc["metricset"].as_object_mut().unwrap().remove("period");
    let n = normaliser(EcsSettings {
        default_period: Duration::from_secs(60),
        ..settings()
    });
    let e = usage_with(&n, &bytes(&doc));
    assert_envelope(&e, 1_748_851_210_000, 60_000);
    // 0.25 cores x 60 s = 15
    assert_eq!(quantities(&e)[0], ("cpu", Usage, 15.0));
    assert!(EcsNormaliser::new(EcsSettings {
        default_period: Duration::ZERO,
        ..settings()
    })
    .is_err());
}

#[test]
fn namespace_is_required_except_for_nodes() {
    let n = default_normaliser();
    let mut doc = container_doc();
    doc["kubernetes"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    assert_eq!(
        rejection(&n, &bytes(&doc)).reason,
        DeadLetterReason::NoNamespace
    );
    doc["kubernetes"]["namespace"] = json!("");
    assert_eq!(
        rejection(&n, &bytes(&doc)).reason,
        DeadLetterReason::NoNamespace
    );
    // A node document with a namespace (e.g. added by a processor) stays cluster-scoped.
    let mut node: serde_json::Value =
        serde_json::from_slice(&fixture("beats/state_node/data.json")).unwrap();
    node["kubernetes"]["namespace"] = json!("kube-system");
    assert_eq!(usage_with(&n, &bytes(&node)).subject.namespace, None);
}

#[test]
fn cluster_identity_id_then_name_then_default() {
    let mut doc = container_doc();
    doc["orchestrator"]["cluster"]["id"] = json!("c-123");
    let e = usage_with(&default_normaliser(), &bytes(&doc));
    assert_eq!(e.subject.cluster_id, "c-123");
    assert_eq!(e.subject.cluster_name.as_deref(), Some("gke-prod-1"));

    let mut doc = container_doc();
    doc.as_object_mut().unwrap().remove("orchestrator");
    let e = usage_with(&default_normaliser(), &bytes(&doc));
    assert_eq!(e.subject.cluster_id, "fallback");
    assert_eq!(e.subject.cluster_name, None);

    let no_default = normaliser(EcsSettings::new("//elastic-agent/test"));
    let r = rejection(&no_default, &bytes(&doc));
    assert_eq!(r.reason, DeadLetterReason::InvalidEvent);
    assert!(r.detail.contains("no cluster identity"), "{}", r.detail);
}

#[test]
fn ids_are_deterministic_and_tell_samples_apart() {
    let n = default_normaliser();
    let doc = container_doc();
    let id = |doc: &serde_json::Value| usage_with(&n, &bytes(doc)).id;
    let first = id(&doc);
    assert_eq!(first, id(&doc), "the same document, the same id");
    // Redelivered with other formatting: still the same id.
    let pretty = serde_json::to_vec_pretty(&doc).unwrap();
    assert_eq!(usage_with(&n, &pretty).id, first);
    // Another source: the same id, but another (source, id) dedup key.
    let other = normaliser(EcsSettings {
        source: "//elastic-agent/other".into(),
        ..settings()
    });
    let e = usage_with(&other, &bytes(&doc));
    assert_eq!(
        (e.id.as_str(), e.source.as_str()),
        (first.as_str(), "//elastic-agent/other")
    );

    let mut later = doc.clone();
    later["@timestamp"] = json!("2025-06-02T08:00:20.000Z");
    let mut sidecar = doc.clone();
    sidecar["kubernetes"]["container"]["name"] = json!("sidecar");
    let mut other_cluster = doc.clone();
    other_cluster["orchestrator"]["cluster"]["name"] = json!("gke-prod-2");
    let mut state = doc.clone();
    state["metricset"]["name"] = json!("state_container");
    state["kubernetes"]["container"]["cpu"] = json!({"request": {"cores": 1}});
    let mut other_value = doc.clone();
    other_value["kubernetes"]["container"]["cpu"]["usage"]["nanocores"] = json!(1);
    let ids: std::collections::BTreeSet<String> = [&doc, &later, &sidecar, &other_cluster, &state]
        .into_iter()
        .map(id)
        .collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(
        id(&other_value),
        first,
        "the id names the sample, not its value"
    );
    assert_ne!(
        usage("integrations/container/sample_event.json").id,
        usage("integrations/state_container/sample_event.json").id
    );
}

#[test]
fn the_id_is_the_hex_xxh3_128_of_the_length_prefixed_identity_and_time() {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.extend_from_slice(b"a");
    bytes.extend_from_slice(&u64::MAX.to_le_bytes()); // an absent field
    bytes.extend_from_slice(&0u64.to_le_bytes()); // an empty one
    bytes.extend_from_slice(&7i64.to_le_bytes());
    assert_eq!(
        event_id(&[Some("a"), None, Some("")], 7),
        format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
    );
}

/// The id as it was computed before the stack buffer: xxh3's streaming hasher.
fn streamed_id(fields: &[Option<&str>], end: EpochMillis) -> String {
    let mut hasher = Xxh3Default::new();
    for field in fields {
        match field {
            Some(s) => {
                hasher.update(&(s.len() as u64).to_le_bytes());
                hasher.update(s.as_bytes());
            }
            None => hasher.update(&u64::MAX.to_le_bytes()),
        }
    }
    hasher.update(&end.to_le_bytes());
    format!("{:032x}", hasher.digest128())
}

#[test]
fn ids_of_any_length_are_the_streamed_hash() {
    let long = "x".repeat(3 * EVENT_ID_INLINE);
    for a in (0..EVENT_ID_INLINE + 40).step_by(7) {
        for b in [0, 1, 8, EVENT_ID_INLINE - 17, EVENT_ID_INLINE, 1200] {
            let fields = [Some("pod"), Some(&long[..a]), None, Some(&long[..b])];
            let end = 1_767_225_600_000 + a as i64;
            assert_eq!(event_id(&fields, end), streamed_id(&fields, end), "{a} {b}");
        }
    }
    assert_eq!(event_id(&[], -1), streamed_id(&[], -1));
}

#[test]
fn decimal_is_to_string() {
    let mut buf = [0; 20];
    for v in [
        0,
        1,
        -1,
        9,
        10,
        -10,
        1_767_225_600_000,
        i64::MAX,
        i64::MIN,
        i64::MIN + 1,
    ] {
        assert_eq!(decimal(v, &mut buf), v.to_string());
    }
    for v in (-100_000..100_000).step_by(37) {
        assert_eq!(decimal(v, &mut buf), v.to_string());
    }
}

/// `payload` with an ignored field holding a byte that is not UTF-8 inserted first: parsed
/// by serde_json's byte parser instead of its `str` parser.
fn not_utf8(payload: &[u8]) -> Vec<u8> {
    let open = payload.iter().position(|b| *b == b'{').expect("an object");
    let mut out = payload[..=open].to_vec();
    out.extend_from_slice(b"\"x-not-utf8\":\"\xff\",");
    out.extend_from_slice(&payload[open + 1..]);
    out
}

#[test]
fn utf8_and_other_payloads_are_parsed_alike() {
    let n = default_normaliser();
    let mut payloads: Vec<Vec<u8>> = EVERY_DOCUMENT.iter().map(|(p, _)| fixture(p)).collect();
    payloads.extend([
        // Escapes in read strings, an object with one key twice.
        br#"{"@timestamp":"2026-01-01T00:00:10Z","metricset":{"name":"state_container","period":10000},"event":{"module":"kubernetes"},"kubernetes":{"namespace":"caf\u00e9","labels":{"a":"x\ny","a":"z","b":1},"container":{"name":"c\"1","cpu":{"request":{"cores":0.5}}}}}"#.to_vec(),
        // A surrogate pair, and a lone one (rejected).
        br#"{"@timestamp":"2026-01-01T00:00:10Z","metricset":{"name":"state_container"},"event":{"module":"kubernetes"},"kubernetes":{"namespace":"\ud83d\ude00","container":{"cpu":{"request":{"cores":1}}}}}"#.to_vec(),
        br#"{"@timestamp":"2026-01-01T00:00:10Z","metricset":{"name":"state_container"},"event":{"module":"kubernetes"},"kubernetes":{"namespace":"\ud83d","container":{"cpu":{"request":{"cores":1}}}}}"#.to_vec(),
        // A control character, a wrong type, a truncated document.
        b"{\"@timestamp\":\"2026-01-01T00:00:10Z\",\"kubernetes\":{\"namespace\":\"a\tb\"}}".to_vec(),
        br#"{"@timestamp":"2026-01-01T00:00:10Z","metricset":{"name":"state_container"},"event":{"module":"kubernetes"},"kubernetes":{"namespace":7}}"#.to_vec(),
        br#"{"@timestamp":"2026-01-01T00:00:10Z","metricset":{"name":"state_conta"#.to_vec(),
    ]);
    for payload in &payloads {
        let text = String::from_utf8_lossy(payload);
        assert!(std::str::from_utf8(payload).is_ok(), "{text}");
        let other = not_utf8(payload);
        assert!(std::str::from_utf8(&other).is_err());
        match (n.normalise(payload), n.normalise(&other)) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text}"),
            (Err(a), Err(b)) => assert_eq!(a.reason, b.reason, "{text}: {a:?} / {b:?}"),
            (a, b) => panic!("{text}: {a:?} / {b:?}"),
        }
    }
    // A byte that is not UTF-8 in a string that is read is rejected, as before.
    let mut bad = br#"{"@timestamp":"2026-01-01T00:00:10Z","metricset":{"name":"state_container"},"event":{"module":"kubernetes"},"kubernetes":{"namespace":"a"#.to_vec();
    bad.push(0xff);
    bad.extend_from_slice(br#"b","container":{"cpu":{"request":{"cores":1}}}}}"#);
    assert_eq!(rejection(&n, &bad).reason, DeadLetterReason::NotJson);
}

#[test]
fn metricsets_are_told_apart_and_unknown_ones_rejected() {
    let n = default_normaliser();
    let outcome = |doc: serde_json::Value| n.normalise(&bytes(&doc));
    assert_eq!(
        outcome(json!({"metricset": {"name": "cpu"}, "event": {"module": "system"}})),
        Ok(EcsOutcome::Skipped(NON_KUBERNETES))
    );
    assert_eq!(
        outcome(json!({"event": {"dataset": "system.cpu"}})),
        Ok(EcsOutcome::Skipped(NON_KUBERNETES))
    );
    assert_eq!(
        outcome(json!({"metricset": {"name": "event"}, "kubernetes": {"event": {}}})),
        Ok(EcsOutcome::Skipped("event"))
    );
    assert_eq!(
        outcome(json!({"data_stream": {"dataset": "kubernetes.state_deployment"}})),
        Ok(EcsOutcome::Skipped("state_deployment"))
    );
    for doc in [
        json!({"metricset": {"name": "state_foo"}, "event": {"module": "kubernetes"}}),
        json!({"kubernetes": {"namespace": "a"}}),
        json!({}),
    ] {
        assert_eq!(
            outcome(doc.clone()).unwrap_err().reason,
            DeadLetterReason::UnknownMetricset,
            "{doc}"
        );
    }
    // Without metricset.name, the dataset tells the metricset.
    let mut doc = container_doc();
    doc.as_object_mut().unwrap().remove("metricset");
    doc.as_object_mut().unwrap().remove("event");
    doc["data_stream"] = json!({"dataset": "kubernetes.container"});
    let e = usage_with(&n, &bytes(&doc));
    assert_eq!(quantities(&e)[0], ("cpu", Usage, 2.5));
    // Metricbeat state_container: event.dataset is the resource, metricset.name decides.
    let mut doc = container_doc();
    doc["metricset"]["name"] = json!("state_container");
    assert_eq!(outcome(doc), Ok(EcsOutcome::Empty("state_container")));
}

#[test]
fn payloads_that_are_not_one_json_object() {
    let n = default_normaliser();
    for payload in [
        &b""[..],
        b"  \n",
        b"[1]",
        b"not json",
        b"{\"a\": 1} {\"b\": 2}",
        b"{\"metricset\": ",
        b"\"text\"",
    ] {
        assert_eq!(
            rejection(&n, payload).reason,
            DeadLetterReason::NotJson,
            "{}",
            String::from_utf8_lossy(payload)
        );
    }
}

#[test]
fn labels_keep_strings_and_owners_follow_the_standard() {
    let mut doc = container_doc();
    doc["kubernetes"]["labels"] = json!({
        "app": "a\"b",
        "tier": "web",
        "n": 3,
        "nested": {"x": "y"},
        "list": ["a"],
        "flag": true,
        "none": null
    });
    doc["kubernetes"]
        .as_object_mut()
        .unwrap()
        .remove("deployment");
    let e = usage_with(&default_normaliser(), &bytes(&doc));
    // Strings only; a nested object is labels too (see below).
    assert_eq!(
        e.subject.labels,
        labels(&[("app", "a\"b"), ("nested_x", "y"), ("tier", "web")])
    );
    assert_eq!(
        (
            e.subject.workload_kind.as_deref(),
            e.subject.workload_name.as_deref()
        ),
        (Some("ReplicaSet"), Some("ingest-api-7c9d8f6b5"))
    );

    let mut doc = container_doc();
    let k = doc["kubernetes"].as_object_mut().unwrap();
    k.remove("deployment");
    k.remove("replicaset");
    k.insert("job".into(), json!({"name": "backup-29000000"}));
    k.insert("cronjob".into(), json!({"name": "backup"}));
    let e = usage_with(&default_normaliser(), &bytes(&doc));
    assert_eq!(
        (
            e.subject.workload_kind.as_deref(),
            e.subject.workload_name.as_deref()
        ),
        (Some("CronJob"), Some("backup"))
    );
}

/// The container document with `labels` as its `kubernetes.labels` and `top` added at the top
/// level (dotted keys).
fn container_labelled(labels: serde_json::Value, top: &[(&str, serde_json::Value)]) -> Vec<u8> {
    let mut doc = container_doc();
    doc["kubernetes"]["labels"] = labels;
    for (key, value) in top {
        doc[*key] = value.clone();
    }
    bytes(&doc)
}

#[test]
fn labels_are_keyed_as_elastic_stores_them_however_the_agent_writes_them() {
    let n = default_normaliser();
    let want = labels(&[
        ("app", "web"),
        ("app_kubernetes_io/name", "jupyterhub"),
        ("app_kubernetes_io/component", "singleuser-server"),
        ("hub_jupyter_org/username", "alice"),
        ("team", "analytics"),
    ]);
    // `labels.dedot: true` (the default of Elastic Agent and Metricbeat): dots are underscores.
    let dedotted = usage_with(
        &n,
        &container_labelled(
            json!({
                "app": "web",
                "app_kubernetes_io/name": "jupyterhub",
                "app_kubernetes_io/component": "singleuser-server",
                "hub_jupyter_org/username": "alice",
                "team": "analytics"
            }),
            &[],
        ),
    );
    assert_eq!(dedotted.subject.labels, want);
    // `labels.dedot: false`: nested at every dot (libbeat's safemapstr.Put), a key that is also a
    // prefix renamed `<key>.value`. Flattened to the de-dotted field path: `app` is `app_value`.
    let nested = usage_with(
        &n,
        &container_labelled(
            json!({
                "app": {
                    "value": "web",
                    "kubernetes": {"io/name": "jupyterhub", "io/component": "singleuser-server"}
                },
                "hub": {"jupyter": {"org/username": "alice"}},
                "team": "analytics"
            }),
            &[],
        ),
    );
    let mut nested_want = want.clone();
    nested_want.remove("app");
    nested_want.insert("app_value".into(), "web".into());
    assert_eq!(nested.subject.labels, nested_want);
    // Original keys with dots (a shipper that keeps them): de-dotted, the same labels.
    let dotted = usage_with(
        &n,
        &container_labelled(
            json!({
                "app": "web",
                "app.kubernetes.io/name": "jupyterhub",
                "app.kubernetes.io/component": "singleuser-server",
                "hub.jupyter.org/username": "alice",
                "team": "analytics"
            }),
            &[],
        ),
    );
    assert_eq!(dotted, dedotted, "the same event, id included");
    // Dotted keys at the top level (`"kubernetes.labels.team": ...`), alone or with the
    // object; a key given both ways keeps the top-level one.
    let flat = usage_with(
        &n,
        &container_labelled(
            json!({"app": "web", "team": "overridden"}),
            &[
                ("kubernetes.labels.team", json!("analytics")),
                (
                    "kubernetes.labels.app_kubernetes_io/name",
                    json!("jupyterhub"),
                ),
                (
                    "kubernetes.labels.app.kubernetes.io/component",
                    json!("singleuser-server"),
                ),
                (
                    "kubernetes.labels.hub",
                    json!({"jupyter": {"org/username": "alice"}}),
                ),
                ("kubernetes.labels.n", json!(1)),
                // Not labels: other dotted keys are not read.
                ("kubernetes.labels.", json!("x")),
                ("kubernetes.labelsx", json!("x")),
                ("kubernetes.namespace", json!("elsewhere")),
            ],
        ),
    );
    assert_eq!(flat, dedotted);
    let mut doc = container_doc();
    doc["kubernetes"].as_object_mut().unwrap().remove("labels");
    doc["kubernetes.labels"] = json!({"app": "web", "hub": {"jupyter": {"org/username": "alice"}}});
    assert_eq!(
        usage_with(&n, &bytes(&doc)).subject.labels,
        labels(&[("app", "web"), ("hub_jupyter_org/username", "alice")])
    );

    // Nested objects are flattened down to MAX_LABEL_NESTING levels; deeper ones are skipped.
    let chain = |levels: usize| {
        let mut value = json!("deep");
        for _ in 1..levels {
            value = json!({ "k": value });
        }
        value
    };
    let deepest = usage_with(
        &n,
        &container_labelled(json!({ "k": chain(super::doc::MAX_LABEL_NESTING) }), &[]),
    );
    assert_eq!(
        deepest.subject.labels,
        labels(&[(&vec!["k"; super::doc::MAX_LABEL_NESTING].join("_"), "deep")])
    );
    let deeper = usage_with(
        &n,
        &container_labelled(
            json!({ "k": chain(super::doc::MAX_LABEL_NESTING + 1), "a": "b" }),
            &[],
        ),
    );
    assert_eq!(deeper.subject.labels, labels(&[("a", "b")]));

    // A known field twice is still an invalid document.
    let twice = String::from_utf8(bytes(&container_doc()))
        .unwrap()
        .replacen(
            "\"event\":",
            "\"event\":{\"module\":\"kubernetes\"},\"event\":",
            1,
        );
    assert_eq!(
        rejection(&n, twice.as_bytes()).reason,
        DeadLetterReason::InvalidEvent
    );
}

#[test]
fn pod_and_container_labels_of_the_fixtures_reach_every_event() {
    let n = default_normaliser();
    // The pod document (read for its network counters) keeps its pod's labels too.
    let sample = network_sample(&n, &fixture("integrations/pod/sample_event.json"));
    assert_eq!(
        sample.subject.labels,
        labels(&[
            ("component", "kube-controller-manager"),
            ("tier", "control-plane")
        ])
    );
    let mut counters = NetworkCounters::default();
    let mut later = sample.clone();
    later.time += 10_000;
    later.rx += 1.0;
    assert_eq!(delta(&mut counters, sample), None);
    let event = delta(&mut counters, later).unwrap();
    assert_eq!(event.subject.labels["tier"], "control-plane");
    // Container and state_container documents (pod labels; node and namespace labels are not
    // the pod's and are left out).
    assert_eq!(
        usage("integrations/state_container/sample_event.json")
            .subject
            .labels,
        labels(&[("pod-template-hash", "558bd4d5db"), ("k8s-app", "kube-dns")])
    );
    assert_eq!(
        usage("integrations/container/sample_event.json")
            .subject
            .labels,
        labels(&[("app", "elasticsearch"), ("pod-template-hash", "d5cbc495")])
    );
}

#[test]
fn labels_are_held_to_the_standards_limits() {
    use crate::standard::limits::{MAX_LABELS, MAX_LABEL_KEY_LEN, MAX_LABEL_VALUE_LEN};
    let n = default_normaliser();
    let outcome = |payload: Vec<u8>| -> Result<usize, DeadLetterReason> {
        match n.normalise(&payload).map_err(|r| r.reason)? {
            EcsOutcome::Usage(event) => {
                check_event(&event, CLOCK).map_err(|r| r.reason)?;
                Ok(event.subject.labels.len())
            }
            EcsOutcome::PodNetwork(sample) => {
                sample.check(CLOCK).map_err(|r| r.reason)?;
                Ok(sample.subject.labels.len())
            }
            other => panic!("{other:?}"),
        }
    };
    let many = |count: usize| -> serde_json::Value {
        (0..count)
            .map(|i| (format!("l{i:03}"), json!("v")))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    use DeadLetterReason::{InvalidString, OutOfRange};
    // At most 128 labels: counted as they end up, nested and dotted ones included.
    assert_eq!(outcome(container_labelled(many(MAX_LABELS), &[])), Ok(128));
    assert_eq!(
        outcome(container_labelled(many(MAX_LABELS + 1), &[])),
        Err(OutOfRange)
    );
    assert_eq!(
        outcome(container_labelled(
            json!({ "nested": many(MAX_LABELS + 1) }),
            &[]
        )),
        Err(OutOfRange)
    );
    assert_eq!(
        outcome(container_labelled(
            many(MAX_LABELS),
            &[("kubernetes.labels.one-more", json!("v"))]
        )),
        Err(OutOfRange)
    );
    // Keys of at most 317 bytes (also once flattened), values of at most 256.
    let key = |len: usize| "k".repeat(len);
    assert_eq!(
        outcome(container_labelled(
            json!({ key(MAX_LABEL_KEY_LEN): "v" }),
            &[]
        )),
        Ok(1)
    );
    assert_eq!(
        outcome(container_labelled(
            json!({ key(MAX_LABEL_KEY_LEN + 1): "v" }),
            &[]
        )),
        Err(InvalidString)
    );
    assert_eq!(
        outcome(container_labelled(
            json!({ key(200): { key(MAX_LABEL_KEY_LEN - 200): "v" } }),
            &[]
        )),
        Err(InvalidString),
        "200 + '_' + 117 bytes"
    );
    assert_eq!(
        outcome(container_labelled(
            json!({ "a": "v".repeat(MAX_LABEL_VALUE_LEN) }),
            &[]
        )),
        Ok(1)
    );
    assert_eq!(
        outcome(container_labelled(
            json!({ "a": "v".repeat(MAX_LABEL_VALUE_LEN + 1) }),
            &[]
        )),
        Err(InvalidString)
    );
    assert_eq!(
        outcome(container_labelled(json!({ "a": "x\u{1b}y" }), &[])),
        Err(InvalidString)
    );
    // The pod document's network reading: the same limits, before it is remembered.
    let mut pod: serde_json::Value =
        serde_json::from_slice(&pod_network_doc("2025-06-02T08:00:10Z", 1.0, 1.0)).unwrap();
    pod["kubernetes"]["labels"] = many(MAX_LABELS);
    assert_eq!(outcome(bytes(&pod)), Ok(128));
    pod["kubernetes"]["labels"] = many(MAX_LABELS + 1);
    assert_eq!(outcome(bytes(&pod)), Err(OutOfRange));
}

/// Counts the allocations of the current thread (in this test binary only).
mod allocations {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<usize> = const { Cell::new(0) };
    }

    pub struct Counting;

    // SAFETY: forwards to the system allocator; only counts.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            // SAFETY: the caller's contract is passed on unchanged.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract is passed on unchanged.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    pub fn count() -> usize {
        COUNT.with(Cell::get)
    }
}

#[global_allocator]
static ALLOCATOR: allocations::Counting = allocations::Counting;

/// As the Kafka output sends it (`codec.json`, not pretty).
fn compact(pretty: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::from_slice::<serde_json::Value>(pretty).unwrap()).unwrap()
}

#[test]
fn parsing_borrows_from_the_payload() {
    // Strings are borrowed, never copied: what allocates is serde_json's stack for skipping
    // nested objects (once per document) and the list of labels, if any. (Before `Text`,
    // serde's `Option<Cow<str>>` copied every string: 9 and 15 allocations here.)
    let n = default_normaliser();
    for (path, most) in [
        ("integrations/container/sample_event.json", 2),
        ("integrations/state_container/sample_event.json", 2),
        ("beats/state_node/data.json", 1),
    ] {
        let doc = compact(&fixture(path));
        let before = allocations::count();
        let parsed = parse(&doc).unwrap();
        let allocated = allocations::count() - before;
        drop(parsed);
        assert!(
            allocated <= most,
            "{path}: parsing allocated {allocated} times"
        );
    }
    // A skipped document costs no more.
    let doc = compact(&fixture("integrations/state_pod/sample_event.json"));
    let before = allocations::count();
    assert_eq!(n.normalise(&doc), Ok(EcsOutcome::Skipped("state_pod")));
    let allocated = allocations::count() - before;
    assert!(allocated <= 2, "skipping allocated {allocated} times");
}

/// `cargo test --release --lib ecs::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn throughput() {
    let n = default_normaliser();
    for path in [
        "integrations/container/sample_event.json",
        "integrations/pod/sample_event.json",
        "beats/state_container/versions/060e3176/data.json",
    ] {
        let doc = compact(&fixture(path));
        let rounds = 200_000;
        let started = std::time::Instant::now();
        let mut events = 0;
        for _ in 0..rounds {
            if let Ok(EcsOutcome::Usage(e)) = n.normalise(std::hint::black_box(&doc)) {
                events += e.measurements.len();
            }
        }
        let elapsed = started.elapsed();
        // Baseline: serde_json only validating and skipping the same bytes.
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            let skipped: IgnoredAny = serde_json::from_slice(std::hint::black_box(&doc)).unwrap();
            std::hint::black_box(skipped);
        }
        let baseline = started.elapsed();
        println!(
            "{path} ({} bytes): {:.0} docs/s ({events} measurements); serde_json skipping \
             alone: {:.0} docs/s",
            doc.len(),
            rounds as f64 / elapsed.as_secs_f64(),
            rounds as f64 / baseline.as_secs_f64()
        );
    }
}

fn pod_network_doc(time: &str, rx: f64, tx: f64) -> Vec<u8> {
    bytes(&json!({
        "@timestamp": time,
        "metricset": {"name": "pod", "period": 10000},
        "event": {"module": "kubernetes"},
        "orchestrator": {"cluster": {"name": "gke-prod-1"}},
        "kubernetes": {
            "namespace": "project-a",
            "pod": {
                "name": "api-0",
                "uid": "9e1f5c1a",
                "cpu": {"usage": {"nanocores": 1_000_000}},
                "network": {"rx": {"bytes": rx, "errors": 0}, "tx": {"bytes": tx, "errors": 0}}
            },
            "statefulset": {"name": "api"}
        }
    }))
}

fn network_sample(n: &EcsNormaliser, doc: &[u8]) -> PodNetworkSample {
    match n.normalise(doc) {
        Ok(EcsOutcome::PodNetwork(sample)) => sample,
        other => panic!("expected a network reading, got {other:?}"),
    }
}

/// The clock of the network tests: 2026-01-01 (the readings of 2025 are in its past).
const CLOCK: Clock = Clock {
    now: 1_767_225_600_000,
    future_skew_ms: 900_000,
};

/// The delta of a reading from partition 0 that passes the checks.
fn delta(counters: &mut NetworkCounters, sample: PodNetworkSample) -> Option<UsageEvent> {
    counters.delta(0, sample, CLOCK).expect("a valid reading")
}

#[test]
fn pod_network_counters_become_usage_between_readings() {
    let n = default_normaliser();
    let mut counters = NetworkCounters::default();
    let read = |t: &str, rx: f64, tx: f64| network_sample(&n, &pod_network_doc(t, rx, tx));
    assert_eq!(
        delta(&mut counters, read("2025-06-02T08:00:10Z", 1000.0, 500.0)),
        None,
        "the first reading is the baseline"
    );
    let e = delta(&mut counters, read("2025-06-02T08:00:20Z", 4000.0, 700.0)).unwrap();
    assert_eq!((e.start, e.end), (1_748_851_210_000, 1_748_851_220_000));
    assert_eq!(
        quantities(&e),
        vec![("network_rx", Usage, 3000.0), ("network_tx", Usage, 200.0)]
    );
    assert!(e.measurements.iter().all(|m| m.unit == "bytes"));
    assert_eq!(e.subject.namespace.as_deref(), Some("project-a"));
    assert_eq!(e.subject.workload_kind.as_deref(), Some("StatefulSet"));
    // A redelivered older reading changes nothing; a reset counter counts from zero.
    assert_eq!(
        delta(&mut counters, read("2025-06-02T08:00:10Z", 1000.0, 500.0)),
        None
    );
    let reset = delta(&mut counters, read("2025-06-02T08:00:30Z", 50.0, 10.0)).unwrap();
    assert_eq!(
        quantities(&reset),
        vec![("network_rx", Usage, 50.0), ("network_tx", Usage, 10.0)]
    );
    // The same readings in another process give the same event ids (dedup downstream).
    let mut again = NetworkCounters::default();
    delta(&mut again, read("2025-06-02T08:00:10Z", 1000.0, 500.0));
    assert_eq!(
        delta(&mut again, read("2025-06-02T08:00:20Z", 4000.0, 700.0))
            .unwrap()
            .id,
        e.id
    );
    counters.forget_older_than(1_748_851_230_001);
    assert!(counters.is_empty());
}

#[test]
fn bad_network_counters_are_invalid_and_pods_without_them_are_skipped() {
    let n = default_normaliser();
    let r = rejection(&n, &pod_network_doc("2025-06-02T08:00:10Z", -1.0, 0.0));
    assert_eq!(r.reason, DeadLetterReason::InvalidEvent);
    assert!(
        r.detail.contains("kubernetes.pod.network.rx.bytes"),
        "{}",
        r.detail
    );
    let mut doc: serde_json::Value =
        serde_json::from_slice(&pod_network_doc("2025-06-02T08:00:10Z", 1.0, 1.0)).unwrap();
    doc["kubernetes"]["pod"]
        .as_object_mut()
        .unwrap()
        .remove("network");
    assert_eq!(n.normalise(&bytes(&doc)), Ok(EcsOutcome::Skipped("pod")));
}

/// Hostile input: documents that break the standard's limits or JSON's, readings that would
/// poison a pod's counters, rebalances. Nothing panics; everything that is refused is refused
/// with its reason, and no byte is counted twice.
mod hostile {
    use super::*;

    use proptest::prelude::*;
    use serde_json::{json, Value};
    use DeadLetterReason::*;

    /// What the converter makes of a document: the outcome if it passes [`check_event`] at
    /// [`CLOCK`], else the dead-letter reason.
    fn converted(n: &EcsNormaliser, payload: &[u8]) -> Result<EcsOutcome, DeadLetterReason> {
        let outcome = n.normalise(payload).map_err(|r| r.reason)?;
        if let EcsOutcome::Usage(event) = &outcome {
            check_event(event, CLOCK).map_err(|r| r.reason)?;
        }
        Ok(outcome)
    }

    /// `doc` with `value` at `path` (objects created on the way, other values replaced).
    fn set(doc: &mut Value, path: &[&str], value: Value) {
        let (last, parents) = path.split_last().expect("a path");
        let mut at = doc;
        for key in parents {
            if !at.get(*key).is_some_and(Value::is_object) {
                at[*key] = json!({});
            }
            at = at.get_mut(*key).expect("just set");
        }
        at[*last] = value;
    }

    fn container_with(path: &[&str], value: Value) -> Vec<u8> {
        let mut doc = container_doc();
        set(&mut doc, path, value);
        bytes(&doc)
    }

    /// The container document with its nanocores written as `text` (JSON a `Value` cannot hold).
    fn container_with_nanocores_text(text: &str) -> Vec<u8> {
        let doc = String::from_utf8(bytes(&container_doc())).unwrap();
        let replaced = doc.replace("\"nanocores\":250000000", &format!("\"nanocores\":{text}"));
        assert_ne!(doc, replaced);
        replaced.into_bytes()
    }

    /// `{"k":` `depth` times around `inner`, closed again.
    fn nested(depth: usize, inner: &str) -> String {
        format!("{}{inner}{}", "{\"k\":".repeat(depth), "}".repeat(depth))
    }

    #[test]
    fn hostile_documents_are_dead_letters_with_their_reason() {
        let n = default_normaliser();
        assert!(matches!(
            converted(&n, &bytes(&container_doc())),
            Ok(EcsOutcome::Usage(_))
        ));
        let mib = "n".repeat(1 << 20);
        let many_labels: serde_json::Map<String, Value> = (0..=limits::MAX_LABELS)
            .map(|i| (format!("l{i}"), json!("v")))
            .collect();
        let deep_doc = |inner: &str| {
            let doc = String::from_utf8(bytes(&container_doc())).unwrap();
            // kubernetes.node.name: a string expected, an object found.
            doc.replace("\"node-1\"", inner).into_bytes()
        };
        let cases: Vec<(&str, Vec<u8>, DeadLetterReason)> = vec![
            ("not JSON", b"this is not JSON".to_vec(), NotJson),
            ("a JSON array", b"[{\"a\":1}]".to_vec(), NotJson),
            ("empty", Vec::new(), NotJson),
            ("NUL", b"\0".to_vec(), NotJson),
            (
                "NUL in the namespace",
                container_with(&["kubernetes", "namespace"], json!("project\u{0}a")),
                InvalidString,
            ),
            (
                "ESC in the pod name",
                container_with(&["kubernetes", "pod", "name"], json!("api\u{1b}[31m")),
                InvalidString,
            ),
            (
                "DEL in the cluster name",
                container_with(&["orchestrator", "cluster", "name"], json!("gke\u{7f}")),
                InvalidString,
            ),
            (
                "a 1 MiB namespace",
                container_with(&["kubernetes", "namespace"], json!(mib)),
                InvalidString,
            ),
            (
                "a 1 MiB label value",
                container_with(&["kubernetes", "labels", "app"], json!(mib)),
                InvalidString,
            ),
            (
                "a 1 MiB metricset name",
                container_with(&["metricset", "name"], json!(mib)),
                UnknownMetricset,
            ),
            (
                "too many labels",
                container_with(&["kubernetes", "labels"], Value::Object(many_labels)),
                OutOfRange,
            ),
            (
                "@timestamp in year 40000",
                container_with(&["@timestamp"], json!("40000-01-01T00:00:00Z")),
                InvalidEvent,
            ),
            (
                "@timestamp in year 9999",
                container_with(&["@timestamp"], json!("9999-12-31T23:59:59Z")),
                OutOfRange,
            ),
            (
                "@timestamp in 2150",
                container_with(&["@timestamp"], json!("2150-01-01T00:00:00Z")),
                OutOfRange,
            ),
            (
                "@timestamp half a year ahead of the clock",
                container_with(&["@timestamp"], json!("2026-07-01T00:00:00Z")),
                FutureTimestamp,
            ),
            (
                "@timestamp at the epoch",
                container_with(&["@timestamp"], json!("1970-01-01T00:00:00Z")),
                OutOfRange,
            ),
            (
                "@timestamp 0 (a number)",
                container_with(&["@timestamp"], json!(0)),
                InvalidEvent,
            ),
            (
                "@timestamp before 1970",
                container_with(&["@timestamp"], json!("1969-12-31T23:59:59Z")),
                InvalidEvent,
            ),
            (
                "1e300 nanocores",
                container_with_nanocores_text("1e300"),
                OutOfRange,
            ),
            (
                "1e400 nanocores (beyond a double)",
                container_with_nanocores_text("1e400"),
                OutOfRange,
            ),
            (
                "a 40-digit integer",
                container_with_nanocores_text(&"9".repeat(40)),
                OutOfRange,
            ),
            (
                "a 400-digit integer",
                container_with_nanocores_text(&"9".repeat(400)),
                OutOfRange,
            ),
            (
                "negative nanocores",
                container_with_nanocores_text("-1"),
                InvalidEvent,
            ),
            (
                "\"NaN\" nanocores",
                container_with_nanocores_text("\"NaN\""),
                InvalidEvent,
            ),
            (
                "NaN nanocores (not JSON)",
                container_with_nanocores_text("NaN"),
                NotJson,
            ),
            (
                "\"Infinity\" memory",
                container_with(
                    &["kubernetes", "container", "memory", "workingset", "bytes"],
                    json!("Infinity"),
                ),
                InvalidEvent,
            ),
            (
                "a period of 1e300 ms",
                container_with(&["metricset", "period"], json!(1e300)),
                InvalidEvent,
            ),
            (
                "an unknown metricset",
                container_with(&["metricset", "name"], json!("state_foo")),
                UnknownMetricset,
            ),
            (
                "a used field nested 100 000 deep",
                deep_doc(&nested(100_000, "1")),
                InvalidEvent,
            ),
            (
                "a document nested 100 000 deep",
                nested(100_000, "1").into_bytes(),
                UnknownMetricset,
            ),
            (
                "arrays nested 100 000 deep",
                format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
                NotJson,
            ),
            (
                "an unclosed nesting of 1 000 000",
                "{\"k\":".repeat(1_000_000).into_bytes(),
                NotJson,
            ),
        ];
        for (what, payload, reason) in cases {
            let got = converted(&n, &payload);
            assert_eq!(got.as_ref().err(), Some(&reason), "{what}: {got:?}");
        }
        // A label nested deep is not a string: left out, the document is fine.
        let deep_label = container_with(&["kubernetes", "labels", "app"], json!(null));
        let deep_label = String::from_utf8(deep_label)
            .unwrap()
            .replace("\"app\":null", &format!("\"app\":{}", nested(100_000, "1")));
        let Ok(EcsOutcome::Usage(event)) = converted(&n, deep_label.as_bytes()) else {
            panic!("a deep label is skipped");
        };
        assert!(event.subject.labels.is_empty());
        // An event exactly at the edge of the clock's skew passes.
        let edge = humantime::format_rfc3339_millis(
            UNIX_EPOCH + Duration::from_millis((CLOCK.now + CLOCK.future_skew_ms) as u64),
        )
        .to_string();
        assert!(matches!(
            converted(&n, &container_with(&["@timestamp"], json!(edge))),
            Ok(EcsOutcome::Usage(_))
        ));
    }

    /// A network reading of pod `pod` on `partition` at `CLOCK.now - 1 day + i × 10 s`, with
    /// counters growing by 1000 (rx) and 100 (tx) bytes per step.
    fn reading(n: &EcsNormaliser, pod: &str, i: i64) -> PodNetworkSample {
        let mut sample = network_sample(n, &pod_network_doc("2025-06-02T08:00:10Z", 0.0, 0.0));
        sample.pod = format!("gke-prod-1/project-a/{pod}");
        sample.subject.pod_uid = Some(pod.to_owned());
        sample.time = T0 + i * 10_000;
        sample.rx = 1000.0 * i as f64;
        sample.tx = 100.0 * i as f64;
        sample
    }

    const T0: EpochMillis = CLOCK.now - 86_400_000;

    /// Checks that no two events of a pod overlap and that each counts exactly the growth of the
    /// counters over its interval; returns the steps `(start, end)` counted per pod.
    fn counted(events: &[UsageEvent]) -> BTreeMap<String, Vec<(i64, i64)>> {
        let mut by_pod: BTreeMap<String, Vec<&UsageEvent>> = BTreeMap::new();
        for e in events {
            by_pod
                .entry(e.subject.pod_uid.clone().unwrap())
                .or_default()
                .push(e);
        }
        let mut steps = BTreeMap::new();
        for (pod, mut events) in by_pod {
            events.sort_by_key(|e| e.start);
            let mut intervals = Vec::new();
            for e in &events {
                let (from, to) = ((e.start - T0) / 10_000, (e.end - T0) / 10_000);
                assert_eq!(
                    quantities(e),
                    vec![
                        ("network_rx", Usage, 1000.0 * (to - from) as f64),
                        ("network_tx", Usage, 100.0 * (to - from) as f64)
                    ],
                    "{pod}: exactly the growth over [{from}, {to})"
                );
                if let Some(&(_, previous_end)) = intervals.last() {
                    assert!(from >= previous_end, "{pod}: [{from}, {to}) counted twice");
                }
                intervals.push((from, to));
            }
            steps.insert(pod, intervals);
        }
        steps
    }

    #[test]
    fn a_revoked_partition_forgets_its_pods_so_no_byte_is_counted_twice() {
        let n = default_normaliser();
        let r = |pod: &str, i: i64| reading(&n, pod, i);
        let mut published = Vec::new();
        let mut a = NetworkCounters::default();
        let mut b = NetworkCounters::default();
        // Consumer A owns both partitions: pod "a" is on partition 0, pod "b" on partition 1.
        for i in 1..=3 {
            published.extend(a.delta(0, r("a", i), CLOCK).unwrap());
            published.extend(a.delta(1, r("b", i), CLOCK).unwrap());
        }
        // A rebalance gives partition 1 to consumer B.
        let mut stale = NetworkCounters::default(); // A as it would be without `revoke`
        for i in 1..=3 {
            stale.delta(1, r("b", i), CLOCK).unwrap();
        }
        a.revoke(1);
        assert_eq!(a.len(), 1, "only pod b is forgotten");
        for i in 4..=6 {
            published.extend(a.delta(0, r("a", i), CLOCK).unwrap());
            published.extend(b.delta(1, r("b", i), CLOCK).unwrap());
        }
        // B leaves; partition 1 comes back to A.
        b.revoke(1);
        assert!(b.is_empty());
        for i in 7..=9 {
            published.extend(a.delta(0, r("a", i), CLOCK).unwrap());
            published.extend(a.delta(1, r("b", i), CLOCK).unwrap());
        }
        let steps = counted(&published);
        assert_eq!(
            steps["a"],
            (1..9).map(|i| (i, i + 1)).collect::<Vec<_>>(),
            "pod a never moved: every step counted once"
        );
        assert_eq!(
            steps["b"],
            vec![(1, 2), (2, 3), (4, 5), (5, 6), (7, 8), (8, 9)],
            "each owner's first reading of pod b is a baseline: [3, 4) and [6, 7) are not counted"
        );
        // Without the revocation, A's first reading after getting partition 1 back would have
        // counted [3, 7) again, over B's [4, 5) and [5, 6).
        let again = stale.delta(1, r("b", 7), CLOCK).unwrap().unwrap();
        assert_eq!((again.start, again.end), (T0 + 30_000, T0 + 70_000));
    }

    #[test]
    fn a_reading_far_from_the_clock_or_beyond_the_limits_does_not_poison_the_pod() {
        let n = default_normaliser();
        let r = |i: i64| reading(&n, "a", i);
        let mut c = NetworkCounters::default();
        assert_eq!(c.delta(0, r(1), CLOCK), Ok(None), "baseline");
        let refused = |sample: PodNetworkSample, c: &mut NetworkCounters| {
            c.delta(0, sample, CLOCK).unwrap_err().reason
        };
        // A year ahead (within the standard's range, beyond the clock), far beyond the range,
        // an absurd counter, a broken name: refused, and not remembered.
        let mut ahead = r(2);
        ahead.time = CLOCK.now + 365 * 86_400_000;
        ahead.rx = 1e12;
        assert_eq!(refused(ahead, &mut c), FutureTimestamp);
        let mut beyond = r(2);
        beyond.time = 253_402_300_799_000; // 9999-12-31T23:59:59Z
        assert_eq!(refused(beyond, &mut c), OutOfRange);
        let mut huge = r(2);
        huge.rx = 1e300;
        assert_eq!(refused(huge, &mut c), OutOfRange);
        let mut nul = r(2);
        nul.subject.namespace = Some("project\0a".into());
        assert_eq!(refused(nul, &mut c), InvalidString);
        let mut nul_pod = r(2);
        nul_pod.pod.push('x');
        nul_pod.subject.pod_name = Some("\u{1b}[2J".into());
        assert_eq!(refused(nul_pod, &mut c), InvalidString);
        assert_eq!(c.len(), 1, "nothing of them is kept");
        // The next real reading counts from the last real one.
        let e = c.delta(0, r(2), CLOCK).unwrap().unwrap();
        assert_eq!((e.start, e.end), (T0 + 10_000, T0 + 20_000));
        // A reading far behind the pod's last one (a replay of 2001) is ignored and changes
        // nothing: the next real reading counts from the last real one.
        let mut old = r(3);
        old.time = 978_307_200_000; // 2001-01-01
        old.rx = 5.0;
        assert_eq!(c.delta(0, old.clone(), CLOCK), Ok(None));
        let e = c.delta(0, r(3), CLOCK).unwrap().unwrap();
        assert_eq!((e.start, e.end), (T0 + 20_000, T0 + 30_000));
        assert_eq!(quantities(&e)[0].2, 1000.0);
        // A first reading from long ago becomes a baseline; a real reading more than a day
        // after it is a new baseline, not a delta over years.
        let mut c = NetworkCounters::default();
        assert_eq!(c.delta(0, old, CLOCK), Ok(None));
        assert_eq!(c.delta(0, r(4), CLOCK), Ok(None));
        let e = c.delta(0, r(5), CLOCK).unwrap().unwrap();
        assert_eq!((e.start, e.end), (T0 + 40_000, T0 + 50_000));
        // A day exactly is still one event; the reading at the edge of the skew is accepted.
        let mut day = r(5 + 8640);
        day.time = T0 + 50_000 + limits::MAX_USAGE_INTERVAL_MS;
        let e = c.delta(0, day, CLOCK).unwrap().unwrap();
        assert_eq!(e.end - e.start, limits::MAX_USAGE_INTERVAL_MS);
        let mut edge = r(10_000);
        edge.time = CLOCK.now + CLOCK.future_skew_ms;
        assert!(c.delta(0, edge, CLOCK).unwrap().is_some());
    }

    #[test]
    fn the_counter_state_stays_bounded_even_under_a_flood_of_pods() {
        let n = default_normaliser();
        let mut c = NetworkCounters::default();
        for p in 0..1000 {
            c.delta(0, reading(&n, &format!("p{p}"), 1), CLOCK).unwrap();
        }
        c.bound(1000, T0, 3_600_000);
        assert_eq!(c.len(), 1000, "at the limit: kept");
        // All read at the same time (within the memory): the flood is cut to 9/10 of the limit.
        c.bound(100, T0 + 10_000, 3_600_000);
        assert_eq!(c.len(), 90);
        // The most recently read are kept.
        for p in 0..50 {
            c.delta(0, reading(&n, &format!("new{p}"), 2), CLOCK)
                .unwrap();
        }
        c.bound(100, T0 + 20_000, 3_600_000);
        assert_eq!(c.len(), 90);
        for p in 0..50 {
            let next = c
                .delta(0, reading(&n, &format!("new{p}"), 3), CLOCK)
                .unwrap();
            assert!(next.is_some(), "new{p} kept");
        }
        // Readings older than the memory go first.
        c.bound(10, T0 + 3_700_000, 3_600_000);
        assert_eq!(c.len(), 0, "nothing was read within the hour before");
        c.bound(0, T0, 0);
        assert!(c.is_empty());
    }

    /// Any JSON value: scalars of every kind (numbers at the edges, strings with control
    /// characters, times out of range), arrays and objects of them.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
            prop::sample::select(vec![1e300, -1e300, f64::MAX, 5e-324, -0.0, 1e21, 1e22])
                .prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            prop::sample::select(vec![
                "NaN",
                "Infinity",
                "",
                "kubernetes",
                "container",
                "pod",
                "state_node",
                "40000-01-01T00:00:00Z",
                "9999-12-31T23:59:59Z",
                "1970-01-01T00:00:00Z",
                "2025-06-02T08:00:10Z",
                "2026-12-01T00:00:00Z",
                "a\u{0}b",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_@.]{0,10}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Where a hostile value goes: every field the normaliser reads, and a few it skips.
    const PATHS: [&[&str]; 24] = [
        &["@timestamp"],
        &["metricset"],
        &["metricset", "name"],
        &["metricset", "period"],
        &["metricset", "module"],
        &["event", "module"],
        &["event", "dataset"],
        &["data_stream", "dataset"],
        &["orchestrator", "cluster", "id"],
        &["orchestrator", "cluster", "name"],
        &["kubernetes"],
        &["kubernetes", "namespace"],
        &["kubernetes", "pod"],
        &["kubernetes", "pod", "name"],
        &["kubernetes", "pod", "network", "rx", "bytes"],
        &["kubernetes", "container", "cpu", "usage", "nanocores"],
        &["kubernetes", "container", "memory", "workingset", "bytes"],
        &["kubernetes", "labels"],
        &["kubernetes", "labels", "app"],
        &["kubernetes.labels"],
        &["kubernetes.labels.app"],
        &["kubernetes", "deployment", "name"],
        &["host"],
        &["kubernetes", "node", "labels"],
    ];

    /// Runs a payload through everything the converter does with it.
    fn convert_all(n: &EcsNormaliser, counters: &mut NetworkCounters, payload: &[u8]) {
        match n.normalise(payload) {
            Ok(EcsOutcome::Usage(event)) => drop(check_event(&event, CLOCK)),
            Ok(EcsOutcome::PodNetwork(sample)) => drop(counters.delta(0, sample, CLOCK)),
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever value is put wherever in a container or pod document, and whatever bytes
        /// are spliced into one, the normaliser, the checks and the counters answer without
        /// panicking.
        #[test]
        fn the_converter_never_panics(
            values in prop::collection::vec((0..PATHS.len(), any_json()), 1..4),
            pod in any::<bool>(),
            splice in (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..8)),
        ) {
            let n = default_normaliser();
            let mut counters = NetworkCounters::default();
            let mut doc: Value = if pod {
                serde_json::from_slice(&pod_network_doc("2025-06-02T08:00:10Z", 1.0, 1.0))
                    .unwrap()
            } else {
                container_doc()
            };
            for (path, value) in values {
                set(&mut doc, PATHS[path], value);
            }
            let payload = bytes(&doc);
            convert_all(&n, &mut counters, &payload);
            convert_all(&n, &mut counters, &payload);
            let (at, inserted) = splice;
            let mut spliced = payload.clone();
            let at = at.index(spliced.len() + 1);
            spliced.splice(at..at, inserted);
            convert_all(&n, &mut counters, &spliced);
        }

        /// Arbitrary bytes, too.
        #[test]
        fn the_converter_never_panics_on_bytes(payload in prop::collection::vec(any::<u8>(), 0..256)) {
            let n = default_normaliser();
            convert_all(&n, &mut NetworkCounters::default(), &payload);
        }
    }
}
