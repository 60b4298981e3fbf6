//! Synthetic but realistic input for demos, tests and benchmarks, deterministic for a seed:
//! a GKE cluster running the ferrisDX base plus project namespaces, sampled like Elastic Agent
//! does (usage, requests and limits every period, node capacity), and the matching bill lines.

pub mod scenario;

use std::collections::BTreeMap;

use crate::standard::{
    CostCategory, CostEvent, CostStatus, EpochMillis, Measurement, MeasurementKind, UsageEvent,
    WorkloadSubject, COST_EVENT_TYPE, SPEC_VERSION, USAGE_EVENT_TYPE,
};

const GIB: f64 = 1_073_741_824.0;

/// A small, fast, deterministic PRNG (SplitMix64): the same seed gives the same data everywhere.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next value in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One pod of the demo cluster.
#[derive(Debug, Clone)]
struct Pod {
    namespace: &'static str,
    name: &'static str,
    cpu_request: f64,
    cpu_limit: f64,
    memory_request: f64,
    /// Typical share of the request actually used.
    utilisation: f64,
}

const DEMO_PODS: &[Pod] = &[
    Pod {
        namespace: "argocd",
        name: "argocd-server-0",
        cpu_request: 0.25,
        cpu_limit: 0.5,
        memory_request: 0.5,
        utilisation: 0.4,
    },
    Pod {
        namespace: "consul",
        name: "consul-server-0",
        cpu_request: 0.25,
        cpu_limit: 0.5,
        memory_request: 0.5,
        utilisation: 0.3,
    },
    Pod {
        namespace: "minio",
        name: "minio-0",
        cpu_request: 0.5,
        cpu_limit: 1.0,
        memory_request: 1.0,
        utilisation: 0.5,
    },
    Pod {
        namespace: "kafka",
        name: "kafka-0",
        cpu_request: 1.0,
        cpu_limit: 2.0,
        memory_request: 2.0,
        utilisation: 0.7,
    },
    Pod {
        namespace: "postgres",
        name: "postgres-0",
        cpu_request: 0.5,
        cpu_limit: 1.0,
        memory_request: 1.0,
        utilisation: 0.6,
    },
    Pod {
        namespace: "keycloak",
        name: "keycloak-0",
        cpu_request: 0.5,
        cpu_limit: 1.0,
        memory_request: 1.0,
        utilisation: 0.2,
    },
    Pod {
        namespace: "vault",
        name: "vault-0",
        cpu_request: 0.25,
        cpu_limit: 0.5,
        memory_request: 0.25,
        utilisation: 0.2,
    },
    Pod {
        namespace: "ferris-ui",
        name: "ferris-ui-0",
        cpu_request: 0.25,
        cpu_limit: 0.5,
        memory_request: 0.5,
        utilisation: 0.3,
    },
    // Bursts above its request: allocated follows usage there.
    Pod {
        namespace: "project-a",
        name: "jupyter-0",
        cpu_request: 0.5,
        cpu_limit: 2.0,
        memory_request: 2.0,
        utilisation: 1.6,
    },
];

/// The demo input: events in time order and the bill.
#[derive(Debug, Clone)]
pub struct DemoInput {
    /// Usage events (pods and node capacity); the last one is a resend of an earlier one.
    pub usage: Vec<UsageEvent>,
    /// Bill lines: one compute and one memory line over the period, one tagged storage line.
    pub costs: Vec<CostEvent>,
}

/// Generates `hours` of the demo cluster from `start` (UTC-aligned epoch ms), one sample per
/// pod and node every `period_s` seconds.
pub fn demo(start: EpochMillis, hours: u32, period_s: u32, seed: u64) -> DemoInput {
    let mut rng = SplitMix64::new(seed);
    let period_ms = i64::from(period_s) * 1000;
    let end = start + i64::from(hours) * 3_600_000;
    let mut usage = Vec::new();
    let mut t = start + period_ms;
    while t <= end {
        for node in ["node-a", "node-b"] {
            usage.push(node_capacity(node, t, period_s));
        }
        for pod in DEMO_PODS {
            let jitter = 0.8 + 0.4 * rng.next_f64();
            usage.push(pod_sample(
                pod,
                t,
                period_s,
                (pod.cpu_request * pod.utilisation * jitter).min(pod.cpu_limit),
            ));
        }
        t += period_ms;
    }
    if let Some(resend) = usage.get(usage.len() / 2).cloned() {
        usage.push(resend);
    }
    let core_hours = 2.0 * 4.0 * f64::from(hours);
    let gib_hours = 2.0 * 16.0 * f64::from(hours);
    let costs = vec![
        bill_line(
            "compute",
            CostCategory::Compute,
            start,
            end,
            (core_hours * 31_000.0) as i64,
            None,
        ),
        bill_line(
            "memory",
            CostCategory::Memory,
            start,
            end,
            (gib_hours * 4_100.0) as i64,
            None,
        ),
        bill_line(
            "bucket-project-a",
            CostCategory::Storage,
            start,
            end,
            1_234_567,
            Some("project-a"),
        ),
    ];
    DemoInput { usage, costs }
}

fn subject(namespace: Option<&str>, pod: Option<&str>, node: &str) -> WorkloadSubject {
    WorkloadSubject {
        cluster_id: "gke-demo".into(),
        cluster_name: Some("ferrisDX demo (GKE)".into()),
        namespace: namespace.map(str::to_owned),
        pod_name: pod.map(str::to_owned),
        pod_uid: pod.map(|p| format!("uid-{p}")),
        container_name: None,
        node_name: Some(node.into()),
        workload_kind: Some(if pod.is_some() { "StatefulSet" } else { "Node" }.into()),
        workload_name: pod
            .map(|p| p.trim_end_matches("-0").to_owned())
            .or(Some(node.into())),
        labels: BTreeMap::new(),
    }
}

fn measurement(resource: &str, kind: MeasurementKind, quantity: f64, unit: &str) -> Measurement {
    Measurement {
        resource: resource.into(),
        kind,
        quantity,
        unit: unit.into(),
    }
}

fn envelope(
    id: String,
    t: EpochMillis,
    period_s: u32,
    subject: WorkloadSubject,
    measurements: Vec<Measurement>,
) -> UsageEvent {
    UsageEvent {
        specversion: SPEC_VERSION.into(),
        id,
        source: "//generate/demo".into(),
        event_type: USAGE_EVENT_TYPE.into(),
        time: t,
        start: t - i64::from(period_s) * 1000,
        end: t,
        subject,
        measurements,
    }
}

fn node_capacity(node: &str, t: EpochMillis, period_s: u32) -> UsageEvent {
    let p = f64::from(period_s);
    envelope(
        format!("node/{node}/{t}"),
        t,
        period_s,
        subject(None, None, node),
        vec![
            measurement("cpu", MeasurementKind::Capacity, 4.0 * p, "core_seconds"),
            measurement(
                "memory",
                MeasurementKind::Capacity,
                16.0 * GIB * p,
                "byte_seconds",
            ),
        ],
    )
}

fn pod_sample(pod: &Pod, t: EpochMillis, period_s: u32, cores: f64) -> UsageEvent {
    let p = f64::from(period_s);
    let memory = pod.memory_request * GIB * pod.utilisation.min(1.0);
    envelope(
        format!("pod/{}/{}/{t}", pod.namespace, pod.name),
        t,
        period_s,
        subject(Some(pod.namespace), Some(pod.name), "node-a"),
        vec![
            measurement("cpu", MeasurementKind::Usage, cores * p, "core_seconds"),
            measurement(
                "cpu",
                MeasurementKind::Request,
                pod.cpu_request * p,
                "core_seconds",
            ),
            measurement(
                "cpu",
                MeasurementKind::Limit,
                pod.cpu_limit * p,
                "core_seconds",
            ),
            measurement("memory", MeasurementKind::Usage, memory * p, "byte_seconds"),
            measurement(
                "memory",
                MeasurementKind::Request,
                pod.memory_request * GIB * p,
                "byte_seconds",
            ),
        ],
    )
}

fn bill_line(
    id: &str,
    category: CostCategory,
    start: EpochMillis,
    end: EpochMillis,
    micros: i64,
    namespace: Option<&str>,
) -> CostEvent {
    CostEvent {
        specversion: SPEC_VERSION.into(),
        id: format!("{id}/{start}"),
        source: "//generate/demo-billing".into(),
        event_type: COST_EVENT_TYPE.into(),
        time: end,
        revision: 1,
        provider: "gcp".into(),
        billing_account_id: "0A1B2C-3D4E5F-6A7B8C".into(),
        sub_account_id: Some("ferrisdx-demo".into()),
        cluster_id: Some("gke-demo".into()),
        namespace: namespace.map(str::to_owned),
        charge_period_start: start,
        charge_period_end: end,
        billed_cost_micros: micros,
        effective_cost_micros: micros,
        billing_currency: "EUR".into(),
        category,
        cost_status: CostStatus::Final,
        service_name: Some(
            if category == CostCategory::Storage {
                "Cloud Storage"
            } else {
                "Compute Engine"
            }
            .into(),
        ),
        sku_id: None,
        resource_id: None,
        labels: BTreeMap::new(),
        meter: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_input() {
        let a = demo(0, 2, 60, 7);
        let b = demo(0, 2, 60, 7);
        assert_eq!(a.usage, b.usage);
        // 120 sample times x (2 nodes + 9 pods) + 1 resend.
        assert_eq!(a.usage.len(), 120 * 11 + 1);
        assert_ne!(demo(0, 2, 60, 8).usage, a.usage);
        assert_eq!(
            a.costs.iter().map(|c| c.effective_cost_micros).sum::<i64>(),
            496_000 + 262_400 + 1_234_567
        );
    }
}
