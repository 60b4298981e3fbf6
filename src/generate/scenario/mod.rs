//! The three deployments the tracker serves, as synthetic input: Elastic Agent / Metricbeat
//! documents (ECS JSON) for every cluster, and the bills the platform would receive (GCP billing
//! export, Azure FOCUS export). Deterministic for a seed; the tracker configuration of each is in
//! `deploy/scenarios/<name>/`.
//!
//! - `single-user-gcp`: one GKE cluster, the ferrisDX base and one project; GCP billing.
//! - `team-databricks`: a GKE cluster with a team's projects, plus an Azure Databricks cluster that
//!   sends metrics and appears on an Azure bill, and must stay out of the accounting.
//! - `hybrid-onprem-gcp`: an on-prem cluster (Metricbeat without cluster metadata, priced by a rate
//!   card) and a GKE cluster, with per-user IDEs, JupyterHub user servers and Presto in project
//!   namespaces on both; and the UsageEvents of two extension meters (Presto query seconds,
//!   JupyterHub server hours) that small exporters publish straight to the usage topic.
//!
//! Pods carry the Kubernetes labels a real platform gives them (`app.kubernetes.io/*`, `team`,
//! the user of a JupyterHub server or an IDE ...), in the documents de-dotted as Elastic's
//! `labels.dedot` (the default) writes them: `app.kubernetes.io/name` is
//! `kubernetes.labels.app_kubernetes_io/name`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::SplitMix64;

mod bills;
mod meters;
mod platforms;

use crate::standard::{
    EpochMillis, Measurement, MeasurementKind, UsageEvent, WorkloadSubject, SPEC_VERSION,
    USAGE_EVENT_TYPE,
};
use bills::{focus_bill, gcp_bill};
use meters::extension_events;
pub use meters::{JUPYTERHUB_SERVER_HOURS, PRESTO_QUERY_SECONDS};
use platforms::clusters;

const GIB: f64 = 1_073_741_824.0;
const HOUR_MS: i64 = 3_600_000;

/// Names of the scenarios [`generate`] knows.
pub const SCENARIOS: [&str; 3] = ["single-user-gcp", "team-databricks", "hybrid-onprem-gcp"];

/// How a cluster's documents are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Elastic Agent Kubernetes integration: `data_stream.dataset`, `orchestrator.cluster.name`.
    Agent,
    /// Metricbeat kubernetes module without cluster metadata: `metricset.name`; the tracker's
    /// `[elastic] cluster_ids` names the cluster per topic.
    MetricbeatWithoutCluster,
}

/// How a cluster is paid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Billing {
    /// GCP billing export rows, JSON lines or CSV.
    Gcp { csv: bool },
    /// Azure FOCUS export.
    AzureFocus,
    /// No bill: the rate card in `deploy/scenarios/<name>/rate-card.toml` prices it.
    RateCard,
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    pool: &'static str,
    cores: f64,
    memory_gib: f64,
}

/// A container of a workload: requests, limits and how busy it is.
#[derive(Debug, Clone, Copy)]
struct ContainerSpec {
    name: &'static str,
    cpu_request: f64,
    cpu_limit: f64,
    memory_request_gib: f64,
    memory_limit_gib: f64,
    /// Mean cpu use as a share of the request; above 1 bursts towards the limit.
    busy: f64,
}

/// When a workload runs within the generated hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Always,
    /// Running only in hours `[from, to)` counted from the start (a JupyterHub user server).
    Hours(u32, u32),
    /// Running, but using (almost) nothing: an idle namespace that still reserves capacity.
    Idle,
}

#[derive(Debug, Clone)]
struct Workload {
    namespace: &'static str,
    name: String,
    kind: &'static str,
    replicas: u32,
    containers: Vec<ContainerSpec>,
    /// Persistent volume claim per replica, GiB.
    volume_gib: f64,
    activity: Activity,
    /// The first replica restarts (new pod uid) at the middle of the period.
    restarts: bool,
    /// Labels of its pods (Kubernetes keys, dotted), besides those Kubernetes adds per pod
    /// (`pod-template-hash`, `controller-revision-hash`, `statefulset.kubernetes.io/pod-name`).
    labels: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone)]
struct Cluster {
    /// `orchestrator.cluster.name` (and the tracker's cluster id).
    name: &'static str,
    topic: &'static str,
    shape: Shape,
    billing: Billing,
    /// GCP project or Azure subscription.
    account: &'static str,
    nodes: Vec<Node>,
    workloads: Vec<Workload>,
    /// The platform's users on this cluster (hybrid only): their JupyterHub servers and Presto
    /// queries become extension meters ([`extension_events`]).
    users: Vec<User>,
}

/// A user of the platform: a JupyterHub server, maybe an IDE, Presto queries.
#[derive(Debug, Clone, Copy)]
struct User {
    name: &'static str,
    team: &'static str,
    /// Hours `[from, to)` (from the start) their JupyterHub user server runs.
    jupyter: (u32, u32),
    /// KubeSpawner profile of the server: a large one for the ML team.
    large_server: bool,
    /// Whether they have an IDE (code-server) of their own.
    ide: bool,
    /// Mean Presto query seconds per exporter interval (0: no queries).
    presto_seconds: f64,
}

/// One generated bill file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillFile {
    /// File name, e.g. `gcp-billing-export.jsonl`.
    pub name: String,
    /// The `export-costs` exporter that reads it: `gcp` or `focus`.
    pub exporter: &'static str,
    /// File contents.
    pub contents: String,
}

/// Where a scenario's [`ScenarioInput::usage_events`] go, next to its bills.
pub const USAGE_EVENTS_FILE: &str = "usage-events.jsonl";

/// A generated scenario.
#[derive(Debug, Clone)]
pub struct ScenarioInput {
    /// ECS documents (one JSON object per line) per Kafka topic, in time order.
    pub documents: BTreeMap<String, Vec<String>>,
    /// Bills.
    pub bills: Vec<BillFile>,
    /// Standard UsageEvents of extension meters (`x-presto-query-seconds`,
    /// `x-jupyterhub-server-hours`) that exporters publish straight to the usage topic, not
    /// through Elastic; empty except in `hybrid-onprem-gcp`. In time order, ids stable for the
    /// start. [`ScenarioInput::usage_events_jsonl`] is their file.
    pub usage_events: Vec<UsageEvent>,
    /// First sample window start (UTC, hour-aligned).
    pub start: EpochMillis,
    /// End of the generated period.
    pub end: EpochMillis,
}

/// Generates `hours` of scenario `name` from `start` (hour-aligned epoch ms), one sample per
/// object every `period_s` seconds.
pub fn generate(
    name: &str,
    start: EpochMillis,
    hours: u32,
    period_s: u32,
    seed: u64,
) -> Option<ScenarioInput> {
    let clusters = clusters(name)?;
    let end = start + i64::from(hours) * HOUR_MS;
    let mut rng = SplitMix64::new(seed);
    let mut documents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for cluster in &clusters {
        let docs = documents.entry(cluster.topic.to_owned()).or_default();
        cluster_documents(cluster, start, hours, period_s, &mut rng, docs);
    }
    let mut bills = Vec::new();
    let gcp: Vec<&Cluster> = clusters
        .iter()
        .filter(|c| matches!(c.billing, Billing::Gcp { .. }))
        .collect();
    if !gcp.is_empty() {
        let csv = gcp.iter().any(|c| c.billing == Billing::Gcp { csv: true });
        bills.push(gcp_bill(&gcp, start, hours, csv));
    }
    let azure: Vec<&Cluster> = clusters
        .iter()
        .filter(|c| c.billing == Billing::AzureFocus)
        .collect();
    if !azure.is_empty() {
        bills.push(focus_bill(&azure, start, hours));
    }
    let usage_events = extension_events(&clusters, start, hours, seed);
    Some(ScenarioInput {
        documents,
        bills,
        usage_events,
        start,
        end,
    })
}

impl ScenarioInput {
    /// [`ScenarioInput::usage_events`] as JSON lines ([`USAGE_EVENTS_FILE`]): one `UsageEvent`
    /// per line, its fields named as in `schemas/usage_event.avsc`, optional fields `null` or
    /// their value (serde's form of the record, not Avro's JSON encoding of unions).
    pub fn usage_events_jsonl(&self) -> String {
        self.usage_events
            .iter()
            .map(|e| serde_json::to_string(e).expect("a UsageEvent serialises") + "\n")
            .collect()
    }
}

fn container(
    name: &'static str,
    cpu: (f64, f64),
    memory_gib: (f64, f64),
    busy: f64,
) -> ContainerSpec {
    ContainerSpec {
        name,
        cpu_request: cpu.0,
        cpu_limit: cpu.1,
        memory_request_gib: memory_gib.0,
        memory_limit_gib: memory_gib.1,
        busy,
    }
}

fn workload(
    namespace: &'static str,
    name: &str,
    kind: &'static str,
    replicas: u32,
    containers: Vec<ContainerSpec>,
) -> Workload {
    Workload {
        namespace,
        name: name.to_owned(),
        kind,
        replicas,
        containers,
        volume_gib: 0.0,
        activity: Activity::Always,
        restarts: false,
        labels: BTreeMap::from([("app.kubernetes.io/name", name.to_owned())]),
    }
}

impl Workload {
    fn volume(mut self, gib: f64) -> Self {
        self.volume_gib = gib;
        self
    }
    fn activity(mut self, activity: Activity) -> Self {
        self.activity = activity;
        self
    }
    fn restarting(mut self) -> Self {
        self.restarts = true;
        self
    }
    /// Adds (or replaces) pod labels.
    fn labels(mut self, labels: &[(&'static str, &str)]) -> Self {
        for (key, value) in labels {
            self.labels.insert(key, (*value).to_owned());
        }
        self
    }
    /// A project team's workload.
    fn team(self, team: &str) -> Self {
        self.labels(&[("team", team)])
    }
}

fn rfc3339(t: EpochMillis) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(t as u64)).to_string()
}

/// The parts every document of a cluster shares.
fn base_document(cluster: &Cluster, metricset: &str, t: EpochMillis, period_s: u32) -> Value {
    let mut doc = json!({
        "@timestamp": rfc3339(t),
        "event": {"module": "kubernetes", "dataset": format!("kubernetes.{metricset}")},
        "metricset": {"name": metricset, "period": period_s * 1000},
        "service": {"type": "kubernetes"},
    });
    match cluster.shape {
        Shape::Agent => {
            doc["data_stream"] = json!({"type": "metrics", "dataset": format!("kubernetes.{metricset}"), "namespace": "default"});
            doc["agent"] = json!({"type": "metricbeat", "version": "8.15.0"});
            doc["orchestrator"] = json!({"cluster": {"name": cluster.name}});
        }
        Shape::MetricbeatWithoutCluster => {
            doc["agent"] = json!({"type": "metricbeat", "version": "7.17.22"});
        }
    }
    doc
}

fn cluster_documents(
    cluster: &Cluster,
    start: EpochMillis,
    hours: u32,
    period_s: u32,
    rng: &mut SplitMix64,
    out: &mut Vec<String>,
) {
    let period_ms = i64::from(period_s) * 1000;
    let end = start + i64::from(hours) * HOUR_MS;
    // Cumulative network bytes per pod incarnation, as the kubelet counts them.
    let mut network: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    let mut t = start + period_ms;
    while t <= end {
        for node in &cluster.nodes {
            let mut doc = base_document(cluster, "state_node", t, period_s);
            doc["kubernetes"] = json!({
                "node": {
                    "name": node.name,
                    "cpu": {"allocatable": {"cores": node.cores}, "capacity": {"cores": node.cores}},
                    "memory": {"allocatable": {"bytes": node.memory_gib * GIB}, "capacity": {"bytes": node.memory_gib * GIB}},
                    "status": {"ready": "true", "unschedulable": false},
                },
                "labels": {"node-pool": node.pool, "kubernetes_io/hostname": node.name},
            });
            out.push(doc.to_string());
        }
        let hour = ((t - 1 - start) / HOUR_MS) as u32;
        for (w, workload) in cluster.workloads.iter().enumerate() {
            if let Activity::Hours(from, to) = workload.activity {
                if hour < from || hour >= to {
                    continue;
                }
            }
            for replica in 0..workload.replicas {
                let restarted = workload.restarts && replica == 0 && t > start + (end - start) / 2;
                let pod = pod(workload, replica, restarted);
                let node = &cluster.nodes[(w + replica as usize) % cluster.nodes.len()];
                let mut pod_busy = 0.0;
                for spec in &workload.containers {
                    let busy = match workload.activity {
                        Activity::Idle => 0.001,
                        _ => spec.busy * (0.75 + 0.5 * rng.next_f64()),
                    };
                    pod_busy += busy;
                    let cores = (spec.cpu_request * busy).min(spec.cpu_limit);
                    let memory = (spec.memory_request_gib * (0.6 + 0.5 * busy.min(1.0)))
                        .min(spec.memory_limit_gib)
                        * GIB;
                    let at = PodAt {
                        cluster,
                        workload,
                        pod: &pod,
                        node: &node.name,
                        t,
                        period_s,
                    };
                    out.push(at.document("container", |k8s| {
                        k8s["container"] = json!({
                            "name": spec.name,
                            "cpu": {"usage": {"nanocores": (cores * 1e9).round() as u64, "core": {"ns": 0}}},
                            "memory": {"workingset": {"bytes": memory.round() as u64}, "usage": {"bytes": (memory * 1.1) as u64}},
                        });
                    }));
                    out.push(at.document("state_container", |k8s| {
                        k8s["container"] = json!({
                            "name": spec.name,
                            "cpu": {"request": {"cores": spec.cpu_request}, "limit": {"cores": spec.cpu_limit}},
                            "memory": {"request": {"bytes": spec.memory_request_gib * GIB}, "limit": {"bytes": spec.memory_limit_gib * GIB}},
                            "status": {"ready": true, "phase": "running", "restarts": u32::from(restarted)},
                        });
                    }));
                }
                let uid = pod_uid(cluster, workload.namespace, &pod.name, pod.incarnation);
                let counters = network.entry(uid).or_insert_with(|| {
                    // Bytes already counted when the pod was first seen.
                    (
                        (rng.next_f64() * 1e6).round(),
                        (rng.next_f64() * 1e5).round(),
                    )
                });
                counters.0 += (pod_busy * 200_000.0 * f64::from(period_s)).round();
                counters.1 += (pod_busy * 50_000.0 * f64::from(period_s)).round();
                let (rx, tx) = *counters;
                let at = PodAt {
                    cluster,
                    workload,
                    pod: &pod,
                    node: &node.name,
                    t,
                    period_s,
                };
                // The kubelet's `pod` document, read for its cumulative network counters.
                out.push(at.document("pod", |k8s| {
                    k8s["pod"]["network"] =
                        json!({"rx": {"bytes": rx, "errors": 0}, "tx": {"bytes": tx, "errors": 0}});
                    k8s["pod"]["status"] = json!({"phase": "running", "ready": "true"});
                }));
                if workload.volume_gib > 0.0 {
                    out.push(pvc_document(cluster, workload, replica, t, period_s));
                }
            }
        }
        t += period_ms;
    }
}

/// A running pod: its name and how often it was replaced.
struct Pod {
    name: String,
    incarnation: u32,
}

fn pod(workload: &Workload, replica: u32, restarted: bool) -> Pod {
    let name = match (workload.kind, restarted) {
        ("StatefulSet", _) => format!("{}-{replica}", workload.name),
        ("Pod", _) => workload.name.clone(),
        (_, false) => format!("{}-5d8f7c9b4-{replica:05}", workload.name),
        (_, true) => format!("{}-5d8f7c9b4-r{replica:04}", workload.name),
    };
    Pod {
        name,
        incarnation: u32::from(restarted),
    }
}

/// A stable uid per pod incarnation: a restarted StatefulSet pod keeps its name, not its uid.
fn pod_uid(cluster: &Cluster, namespace: &str, pod: &str, incarnation: u32) -> String {
    let h = xxhash_rust::xxh3::xxh3_128(
        format!("{}/{namespace}/{pod}/{incarnation}", cluster.name).as_bytes(),
    );
    let hex = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The pod's labels, keyed as Elastic writes them: de-dotted (`labels.dedot`, the default of
/// both Elastic Agent and Metricbeat), so `app.kubernetes.io/name` is `app_kubernetes_io/name`.
fn pod_labels(workload: &Workload, pod: &Pod) -> serde_json::Map<String, Value> {
    let mut labels: BTreeMap<&str, String> = workload
        .labels
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    // What the controllers add to each pod.
    match workload.kind {
        "Deployment" => {
            labels.insert("pod-template-hash", "5d8f7c9b4".into());
        }
        "StatefulSet" => {
            labels.insert(
                "controller-revision-hash",
                format!("{}-7b9c6d5f8d", workload.name),
            );
            labels.insert("statefulset.kubernetes.io/pod-name", pod.name.clone());
        }
        _ => {}
    }
    labels
        .into_iter()
        .map(|(k, v)| (k.replace('.', "_"), Value::String(v)))
        .collect()
}

fn workload_metadata(cluster: &Cluster, workload: &Workload, pod: &Pod, node: &str) -> Value {
    let mut k8s = json!({
        "namespace": workload.namespace,
        "pod": {"name": pod.name, "uid": pod_uid(cluster, workload.namespace, &pod.name, pod.incarnation)},
        "node": {"name": node},
        "labels": pod_labels(workload, pod),
    });
    match workload.kind {
        "Deployment" => {
            k8s["deployment"] = json!({"name": workload.name});
            k8s["replicaset"] = json!({"name": format!("{}-5d8f7c9b4", workload.name)});
        }
        "StatefulSet" => k8s["statefulset"] = json!({"name": workload.name}),
        _ => {}
    }
    k8s
}

/// One sample of one pod of a workload, on its node.
struct PodAt<'a> {
    cluster: &'a Cluster,
    workload: &'a Workload,
    pod: &'a Pod,
    node: &'a str,
    t: EpochMillis,
    period_s: u32,
}

impl PodAt<'_> {
    /// A `metricset` document with the pod's metadata; `fill` adds the metricset's fields to
    /// the `kubernetes` object.
    fn document(&self, metricset: &str, fill: impl FnOnce(&mut Value)) -> String {
        let mut doc = base_document(self.cluster, metricset, self.t, self.period_s);
        let mut k8s = workload_metadata(self.cluster, self.workload, self.pod, self.node);
        fill(&mut k8s);
        doc["kubernetes"] = k8s;
        doc.to_string()
    }
}

fn pvc_document(
    cluster: &Cluster,
    workload: &Workload,
    replica: u32,
    t: EpochMillis,
    period_s: u32,
) -> String {
    let mut doc = base_document(cluster, "state_persistentvolumeclaim", t, period_s);
    doc["kubernetes"] = json!({
        "namespace": workload.namespace,
        "persistentvolumeclaim": {
            "name": format!("data-{}-{replica}", workload.name),
            "phase": "Bound",
            "storage_class": "standard",
            "request_storage": {"bytes": workload.volume_gib * GIB},
        },
    });
    doc.to_string()
}

#[cfg(test)]
mod tests;
