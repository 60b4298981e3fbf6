//! Tests of the deployment scenarios.

use std::collections::BTreeSet;

use super::*;
use crate::ingest::ecs::{EcsNormaliser, EcsOutcome, EcsSettings};

const START: EpochMillis = 1_793_491_200_000;

#[test]
fn every_scenario_is_deterministic_for_a_seed() {
    for name in SCENARIOS {
        let a = generate(name, START, 2, 60, 1).unwrap();
        let b = generate(name, START, 2, 60, 1).unwrap();
        assert_eq!(a.documents, b.documents, "{name}");
        assert_eq!(a.bills, b.bills, "{name}");
        assert_eq!(a.usage_events, b.usage_events, "{name}");
        let c = generate(name, START, 2, 60, 2).unwrap();
        assert_ne!(
            a.documents, c.documents,
            "{name}: another seed, other usage"
        );
    }
    assert!(generate("nope", START, 1, 60, 1).is_none());
}

#[test]
fn every_document_normalises() {
    for name in SCENARIOS {
        let input = generate(name, START, 1, 300, 1).unwrap();
        for (topic, docs) in &input.documents {
            let mut settings = EcsSettings::new(format!("//test/{topic}"));
            settings.default_cluster_id = Some("fallback".into());
            let n = EcsNormaliser::new(settings).unwrap();
            for doc in docs {
                match n.normalise(doc.as_bytes()) {
                    Ok(EcsOutcome::Usage(event)) => {
                        assert!(!event.measurements.is_empty());
                        assert!(event.start >= START && event.end <= input.end);
                    }
                    Ok(EcsOutcome::PodNetwork(sample)) => {
                        assert!(sample.rx > 0.0 && sample.tx > 0.0);
                    }
                    other => panic!("{name}: {doc} gave {other:?}"),
                }
            }
        }
    }
}

#[test]
fn the_hybrid_scenario_runs_both_clusters_from_two_topics() {
    let input = generate("hybrid-onprem-gcp", START, 4, 600, 1).unwrap();
    let topics: Vec<_> = input.documents.keys().cloned().collect();
    assert_eq!(
        topics,
        ["elastic.metrics.kubernetes", "metricbeat.onprem.kubernetes"]
    );
    let onprem = &input.documents["metricbeat.onprem.kubernetes"];
    assert!(onprem.iter().all(|d| !d.contains("orchestrator")));
    // Bob's JupyterHub server runs in hours 1 and 2 only, Carol's in hour 0.
    let pod = |docs: &[String], name: &str| {
        docs.iter()
            .filter(|d| d.contains(&format!("\"name\":\"{name}\"")))
            .count()
    };
    assert_eq!(
        pod(onprem, "jupyter-bob"),
        2 * 6 * 3,
        "2 hours x 6 samples x (container, state_container, pod)"
    );
    assert_eq!(pod(onprem, "jupyter-carol"), 6 * 3);
    assert_eq!(
        input.bills.len(),
        1,
        "only GKE has a bill; on-prem is rate-carded"
    );
}

/// The labels of the pods of `namespace` in the documents of `topic` (as Elastic writes them,
/// de-dotted), per pod name.
fn pod_labels_of(
    input: &ScenarioInput,
    topic: &str,
    namespace: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut pods = BTreeMap::new();
    for doc in &input.documents[topic] {
        let doc: Value = serde_json::from_str(doc).unwrap();
        let k8s = &doc["kubernetes"];
        if k8s["namespace"] != namespace || doc["metricset"]["name"] != "container" {
            continue;
        }
        let labels = serde_json::from_value(k8s["labels"].clone()).unwrap();
        pods.insert(k8s["pod"]["name"].as_str().unwrap().to_owned(), labels);
    }
    pods
}

#[test]
fn pods_carry_realistic_labels_de_dotted_as_elastic_writes_them() {
    for name in SCENARIOS {
        let input = generate(name, START, 3, 600, 1).unwrap();
        for (topic, docs) in &input.documents {
            for doc in docs {
                let doc: Value = serde_json::from_str(doc).unwrap();
                let k8s = &doc["kubernetes"];
                if k8s["pod"].is_null() {
                    continue; // nodes and claims
                }
                let labels = k8s["labels"].as_object().unwrap();
                assert!(
                    labels.keys().all(|k| !k.contains('.')),
                    "{name}/{topic}: {labels:?}"
                );
                assert!(labels.contains_key("app_kubernetes_io/name"), "{labels:?}");
                let platform =
                    labels.get("app_kubernetes_io/part-of") == Some(&json!("ferrisdx-platform"));
                let ns = k8s["namespace"].as_str().unwrap();
                assert_eq!(
                    platform,
                    [
                        "argocd",
                        "consul",
                        "minio",
                        "kafka",
                        "postgres",
                        "keycloak",
                        "vault",
                        "ferris-ui"
                    ]
                    .contains(&ns),
                    "{name}: {ns}: {labels:?}"
                );
                if ns.starts_with("project-") {
                    assert!(labels.contains_key("team"), "{name}: {ns}: {labels:?}");
                }
            }
        }
    }

    let input = generate("hybrid-onprem-gcp", START, 3, 600, 1).unwrap();
    let onprem = "metricbeat.onprem.kubernetes";
    let servers = pod_labels_of(&input, onprem, "jupyterhub");
    let users: Vec<(&str, &str)> = servers
        .values()
        .filter(|l| l["component"] == "singleuser-server")
        .map(|l| (l["hub_jupyter_org/username"].as_str(), l["team"].as_str()))
        .collect();
    assert_eq!(
        users,
        [("alice", "analytics"), ("bob", "data-eng"), ("carol", "ml")]
    );
    assert_eq!(servers["hub-5d8f7c9b4-00000"]["component"], "hub");
    let ides = pod_labels_of(&input, onprem, "project-ide");
    assert_eq!(
        ides.keys().collect::<Vec<_>>(),
        ["code-server-alice-0", "code-server-bob-0"]
    );
    let alice = &ides["code-server-alice-0"];
    assert_eq!(alice["ferrisdx_io/user"], "alice");
    assert_eq!(alice["app_kubernetes_io/name"], "code-server");
    assert_eq!(
        alice["statefulset_kubernetes_io/pod-name"],
        "code-server-alice-0"
    );
    let gke = pod_labels_of(&input, "elastic.metrics.kubernetes", "jupyterhub");
    assert!(gke.contains_key("jupyter-dave") && gke.contains_key("jupyter-erin"));

    // The converter keeps them as they are.
    let n = EcsNormaliser::new(EcsSettings {
        default_cluster_id: Some("onprem-dc1".into()),
        ..EcsSettings::new("//test")
    })
    .unwrap();
    let doc = input.documents[onprem]
        .iter()
        .find(|d| d.contains("jupyter-alice") && d.contains("\"container\",\"period\""))
        .unwrap();
    let Ok(EcsOutcome::Usage(event)) = n.normalise(doc.as_bytes()) else {
        panic!("{doc}");
    };
    assert_eq!(event.subject.labels["hub_jupyter_org/username"], "alice");
    assert_eq!(event.subject.labels["team"], "analytics");
}

#[test]
fn the_hybrid_scenario_has_extension_meters_that_the_tracker_takes() {
    let input = generate("hybrid-onprem-gcp", START, 3, 60, 1).unwrap();
    let events = &input.usage_events;
    assert!(!events.is_empty());
    for other in ["single-user-gcp", "team-databricks"] {
        assert!(generate(other, START, 3, 60, 1)
            .unwrap()
            .usage_events
            .is_empty());
    }
    let now = input.end;
    let mut ids = BTreeSet::new();
    // (cluster, user) -> server hours; (cluster, team) -> query seconds.
    let mut hours: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut teams: BTreeSet<(String, String)> = BTreeSet::new();
    for e in events {
        assert!(ids.insert((e.source.clone(), e.id.clone())), "{e:?}");
        crate::standard::limits::check_usage_event(e).unwrap();
        assert!(e.start >= input.start && e.end <= input.end);
        let [m] = e.measurements.as_slice() else {
            panic!("{e:?}")
        };
        // Extension resources (standard §4.1): x-<vendor>-<name>.
        let (resource, unit) = (m.resource.as_str(), m.unit.as_str());
        let (vendor, name) = resource
            .strip_prefix("x-")
            .and_then(|r| r.split_once('-'))
            .unwrap();
        assert!(!vendor.is_empty() && !name.is_empty());
        assert!(crate::measure::Resource::parse(resource).is_none());
        let cluster = e.subject.cluster_id.clone();
        let labels = &e.subject.labels;
        match (resource, unit) {
            ("x-jupyterhub-server-hours", "hours") => {
                assert_eq!(e.subject.namespace.as_deref(), Some("jupyterhub"));
                let user = labels["hub.jupyter.org/username"].clone();
                assert_eq!(e.subject.pod_name, Some(format!("jupyter-{user}")));
                *hours.entry((cluster, user)).or_default() += m.quantity;
            }
            ("x-presto-query-seconds", "seconds") => {
                assert_eq!(e.subject.namespace.as_deref(), Some("project-analytics"));
                assert!(m.quantity > 0.0);
                assert!(labels.contains_key("ferrisdx.io/user"));
                teams.insert((cluster, labels["team"].clone()));
            }
            other => panic!("{other:?}"),
        }
        // Valid for the tracker: never a dead letter (accounted as an extension meter, or
        // counted as unaccounted by a tracker that does not account them).
        let intake = crate::ingest::usage_sample(
            e,
            &crate::ingest::exclusion::Exclusions::default(),
            now,
            900_000,
        );
        assert!(
            matches!(
                intake,
                Ok(crate::ingest::Intake::Empty | crate::ingest::Intake::Accepted(_))
            ),
            "{e:?}"
        );
    }
    let h = |cluster: &str, user: &str| hours[&(cluster.to_owned(), user.to_owned())];
    assert_eq!(h("onprem-dc1", "alice"), 3.0);
    assert_eq!(h("onprem-dc1", "bob"), 2.0);
    assert_eq!(h("onprem-dc1", "carol"), 1.0);
    assert_eq!(h("gke-hybrid", "bob"), 2.0);
    assert_eq!(h("gke-hybrid", "dave"), 2.0);
    assert_eq!(h("gke-hybrid", "erin"), 1.0);
    assert_eq!(hours.len(), 6);
    assert!(teams.contains(&("onprem-dc1".into(), "analytics".into())));
    assert!(teams.contains(&("gke-hybrid".into(), "data-eng".into())));

    // The file: one event per line, read back as they were.
    let text = input.usage_events_jsonl();
    let back: Vec<UsageEvent> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(&back, events);
    // Ids are stable: the same start gives the same events, whatever the sampling period.
    let again = generate("hybrid-onprem-gcp", START, 3, 300, 1).unwrap();
    assert_eq!(&again.usage_events, events);
}
