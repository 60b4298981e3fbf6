//! Tests of the deployment scenarios.

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
    // JupyterHub's user server runs in hours 1 and 2 only.
    let bob = |docs: &[String]| docs.iter().filter(|d| d.contains("jupyter-bob")).count();
    assert_eq!(
        bob(onprem),
        2 * 6 * 3,
        "2 hours x 6 samples x (container, state_container, pod)"
    );
    assert_eq!(
        input.bills.len(),
        1,
        "only GKE has a bill; on-prem is rate-carded"
    );
}
