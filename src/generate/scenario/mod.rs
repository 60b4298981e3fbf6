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
use crate::standard::{
    EpochMillis, Measurement, MeasurementKind, UsageEvent, WorkloadSubject, SPEC_VERSION,
    USAGE_EVENT_TYPE,
};

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

/// The ferrisDX base every platform runs: Helm releases named after their namespace, all
/// `app.kubernetes.io/part-of=ferrisdx-platform` (the umbrella chart's common labels).
fn ferrisdx_base() -> Vec<Workload> {
    let base = vec![
        workload(
            "argocd",
            "argocd-server",
            "Deployment",
            1,
            vec![container("argocd-server", (0.25, 0.5), (0.5, 1.0), 0.4)],
        )
        .labels(&[("app.kubernetes.io/component", "server")]),
        workload(
            "argocd",
            "argocd-application-controller",
            "StatefulSet",
            1,
            vec![container("controller", (0.25, 1.0), (0.5, 1.0), 0.6)],
        )
        .labels(&[("app.kubernetes.io/component", "application-controller")]),
        workload(
            "consul",
            "consul-server",
            "StatefulSet",
            1,
            vec![container("consul", (0.25, 0.5), (0.5, 0.5), 0.3)],
        )
        .volume(10.0),
        workload(
            "minio",
            "minio",
            "StatefulSet",
            1,
            vec![container("minio", (0.5, 1.0), (1.0, 2.0), 0.5)],
        )
        .volume(100.0),
        workload(
            "kafka",
            "kafka",
            "StatefulSet",
            1,
            vec![container("kafka", (1.0, 2.0), (2.0, 4.0), 0.7)],
        )
        .volume(50.0),
        workload(
            "postgres",
            "postgres",
            "StatefulSet",
            1,
            vec![container("postgres", (0.5, 1.0), (1.0, 2.0), 0.6)],
        )
        .volume(20.0),
        workload(
            "keycloak",
            "keycloak",
            "Deployment",
            1,
            vec![container("keycloak", (0.5, 1.0), (1.0, 1.5), 0.2)],
        ),
        workload(
            "vault",
            "vault",
            "StatefulSet",
            1,
            vec![container("vault", (0.25, 0.5), (0.25, 0.5), 0.2)],
        )
        .volume(5.0),
        workload(
            "ferris-ui",
            "ferris-ui",
            "Deployment",
            1,
            vec![container("flask", (0.25, 0.5), (0.5, 0.5), 0.3)],
        ),
    ];
    base.into_iter()
        .map(|w| {
            let namespace = w.namespace;
            w.labels(&[
                ("app.kubernetes.io/part-of", "ferrisdx-platform"),
                ("app.kubernetes.io/instance", namespace),
                ("app.kubernetes.io/managed-by", "Helm"),
            ])
        })
        .collect()
}

/// The hybrid platform's users, per cluster: who has a JupyterHub server when, an IDE, and
/// how much they query Presto.
fn hybrid_users(cluster: &str) -> Vec<User> {
    let user = |name, team, jupyter, ide, presto_seconds| User {
        name,
        team,
        jupyter,
        large_server: team == "ml",
        ide,
        presto_seconds,
    };
    if cluster == "onprem-dc1" {
        vec![
            user("alice", "analytics", (0, 3), true, 420.0),
            user("bob", "data-eng", (1, 3), true, 180.0),
            user("carol", "ml", (0, 1), false, 60.0),
        ]
    } else {
        vec![
            user("bob", "data-eng", (1, 3), false, 90.0),
            user("dave", "ml", (0, 2), true, 0.0),
            user("erin", "data-eng", (2, 3), true, 240.0),
        ]
    }
}

/// A project namespace's services on the hybrid clusters: an IDE per user who has one
/// (`project-ide`, code-server StatefulSets that ferris-ui creates, labelled with the user),
/// JupyterHub (the hub and a KubeSpawner pod per user server) and Presto (`project-analytics`).
fn hybrid_project_workloads(users: &[User]) -> Vec<Workload> {
    let mut workloads = Vec::new();
    for u in users.iter().filter(|u| u.ide) {
        let name = format!("code-server-{}", u.name);
        workloads.push(
            workload(
                "project-ide",
                &name,
                "StatefulSet",
                1,
                vec![container("code-server", (0.5, 2.0), (1.0, 4.0), 0.6)],
            )
            .volume(10.0)
            .labels(&[
                ("app.kubernetes.io/name", "code-server"),
                ("app.kubernetes.io/instance", &name),
                ("app.kubernetes.io/managed-by", "ferris-ui"),
                ("ferrisdx.io/user", u.name),
            ])
            .team(u.team),
        );
    }
    workloads.push(
        workload(
            "jupyterhub",
            "hub",
            "Deployment",
            1,
            vec![container("hub", (0.25, 0.5), (0.5, 1.0), 0.3)],
        )
        .volume(1.0)
        .labels(&[
            ("app", "jupyterhub"),
            ("component", "hub"),
            ("release", "jupyterhub"),
            ("app.kubernetes.io/name", "jupyterhub"),
            ("app.kubernetes.io/component", "hub"),
            ("app.kubernetes.io/instance", "jupyterhub"),
            ("hub.jupyter.org/network-access-proxy-api", "true"),
        ]),
    );
    for u in users {
        // KubeSpawner names the pod `jupyter-<user>` and owns it itself (no controller);
        // the `team` label comes from the hub's pre-spawn hook (the user's Keycloak group).
        let name = format!("jupyter-{}", u.name);
        let server = if u.large_server {
            container("notebook", (2.0, 4.0), (8.0, 16.0), 0.9)
        } else {
            container("notebook", (1.0, 4.0), (4.0, 8.0), 1.5)
        };
        workloads.push(
            workload("jupyterhub", &name, "Pod", 1, vec![server])
                .activity(Activity::Hours(u.jupyter.0, u.jupyter.1))
                .labels(&[
                    ("app", "jupyterhub"),
                    ("component", "singleuser-server"),
                    ("release", "jupyterhub"),
                    ("heritage", "jupyterhub"),
                    ("app.kubernetes.io/name", "jupyterhub"),
                    ("app.kubernetes.io/component", "singleuser-server"),
                    ("app.kubernetes.io/instance", "jupyterhub"),
                    ("app.kubernetes.io/managed-by", "kubespawner"),
                    ("hub.jupyter.org/network-access-hub", "true"),
                    ("hub.jupyter.org/servername", ""),
                    ("hub.jupyter.org/username", u.name),
                ])
                .team(u.team),
        );
    }
    let presto = [
        ("app.kubernetes.io/name", "presto"),
        ("app.kubernetes.io/instance", "presto"),
    ];
    workloads.extend([
        workload(
            "project-analytics",
            "presto-coordinator",
            "Deployment",
            1,
            vec![container("presto", (1.0, 2.0), (4.0, 4.0), 0.4)],
        )
        .labels(&presto)
        .labels(&[("app.kubernetes.io/component", "coordinator")])
        .team("analytics"),
        workload(
            "project-analytics",
            "presto-worker",
            "StatefulSet",
            3,
            vec![container("presto", (2.0, 4.0), (8.0, 8.0), 0.9)],
        )
        .restarting()
        .labels(&presto)
        .labels(&[("app.kubernetes.io/component", "worker")])
        .team("analytics"),
    ]);
    workloads
}

fn nodes(prefix: &str, pool: &'static str, count: u32, cores: f64, memory_gib: f64) -> Vec<Node> {
    (0..count)
        .map(|i| Node {
            name: format!("{prefix}-{i}"),
            pool,
            cores,
            memory_gib,
        })
        .collect()
}

fn clusters(name: &str) -> Option<Vec<Cluster>> {
    let agent_topic = "elastic.metrics.kubernetes";
    match name {
        "single-user-gcp" => {
            let mut workloads = ferrisdx_base();
            workloads.push(
                workload(
                    "project-alice",
                    "notebook",
                    "Deployment",
                    1,
                    vec![container("jupyter", (0.5, 2.0), (2.0, 4.0), 1.6)],
                )
                .volume(10.0)
                .labels(&[
                    ("app.kubernetes.io/name", "jupyterlab"),
                    ("app.kubernetes.io/instance", "notebook"),
                    ("ferrisdx.io/user", "alice"),
                ])
                .team("analytics"),
            );
            Some(vec![Cluster {
                name: "gke-single",
                topic: agent_topic,
                shape: Shape::Agent,
                billing: Billing::Gcp { csv: false },
                account: "ferrisdx-alice",
                nodes: nodes("gke-single-default-pool", "default-pool", 2, 4.0, 16.0),
                workloads,
                users: Vec::new(),
            }])
        }
        "team-databricks" => {
            let mut workloads = ferrisdx_base();
            workloads.extend([
                workload(
                    "project-ingest",
                    "ingest-api",
                    "Deployment",
                    2,
                    vec![container("api", (0.5, 1.0), (1.0, 2.0), 0.8)],
                )
                .labels(&[
                    ("app.kubernetes.io/part-of", "ingest"),
                    ("app.kubernetes.io/component", "api"),
                ])
                .team("data-eng"),
                workload(
                    "project-ingest",
                    "ingest-worker",
                    "Deployment",
                    2,
                    vec![container("worker", (1.0, 2.0), (2.0, 4.0), 1.3)],
                )
                .restarting()
                .labels(&[
                    ("app.kubernetes.io/part-of", "ingest"),
                    ("app.kubernetes.io/component", "worker"),
                ])
                .team("data-eng"),
                workload(
                    "project-reports",
                    "report-builder",
                    "Deployment",
                    1,
                    vec![container("builder", (0.5, 1.0), (1.0, 2.0), 0.5)],
                )
                .volume(20.0)
                .team("analytics"),
                // Reserved, unused: the team's forgotten sandbox.
                workload(
                    "project-sandbox",
                    "sandbox",
                    "Deployment",
                    1,
                    vec![container("shell", (1.0, 1.0), (2.0, 2.0), 0.0)],
                )
                .activity(Activity::Idle)
                .team("ml"),
            ]);
            Some(vec![
                Cluster {
                    name: "gke-team",
                    topic: agent_topic,
                    shape: Shape::Agent,
                    billing: Billing::Gcp { csv: true },
                    account: "ferrisdx-team",
                    nodes: nodes("gke-team-default-pool", "default-pool", 3, 8.0, 32.0),
                    workloads,
                    users: Vec::new(),
                },
                Cluster {
                    name: "azure-databricks",
                    topic: agent_topic,
                    shape: Shape::Agent,
                    billing: Billing::AzureFocus,
                    account: "7f4c2a9e-1b3d-4e5f-8a6b-0c1d2e3f4a5b",
                    nodes: nodes("adb-worker", "Standard_DS3_v2", 2, 4.0, 14.0),
                    workloads: vec![workload(
                        "databricks",
                        "spark-executor",
                        "StatefulSet",
                        2,
                        vec![container("executor", (3.0, 4.0), (10.0, 12.0), 0.8)],
                    )
                    .labels(&[("spark-role", "executor")])],
                    users: Vec::new(),
                },
            ])
        }
        "hybrid-onprem-gcp" => {
            let (onprem_users, gke_users) =
                (hybrid_users("onprem-dc1"), hybrid_users("gke-hybrid"));
            let mut onprem = ferrisdx_base();
            onprem.extend(hybrid_project_workloads(&onprem_users));
            Some(vec![
                Cluster {
                    name: "onprem-dc1",
                    topic: "metricbeat.onprem.kubernetes",
                    shape: Shape::MetricbeatWithoutCluster,
                    billing: Billing::RateCard,
                    account: "dc1",
                    nodes: [
                        nodes("dc1-std", "standard", 3, 16.0, 32.0),
                        nodes("dc1-mem", "highmem", 1, 8.0, 64.0),
                    ]
                    .concat(),
                    workloads: onprem,
                    users: onprem_users,
                },
                Cluster {
                    name: "gke-hybrid",
                    topic: agent_topic,
                    shape: Shape::Agent,
                    billing: Billing::Gcp { csv: false },
                    account: "ferrisdx-hybrid",
                    nodes: nodes("gke-hybrid-burst-pool", "burst-pool", 2, 8.0, 32.0),
                    workloads: hybrid_project_workloads(&gke_users),
                    users: gke_users,
                },
            ])
        }
        _ => None,
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

/// How often the extension meters' exporters publish: every 15 minutes, for the 15 minutes
/// before (a CronJob `*/15`).
const EXPORTER_INTERVAL_MS: i64 = 900_000;
/// Presto query seconds: the wall-clock execution time of a user's queries that finished in the
/// interval, summed (Presto's `QueryCompletedEvent`), per (cluster, user).
pub const PRESTO_QUERY_SECONDS: (&str, &str) = ("x-presto-query-seconds", "seconds");
/// JupyterHub server hours: how long a user's server ran in the interval, per (cluster, user),
/// from the hub's REST API (`/hub/api/users`: each server's `started`).
pub const JUPYTERHUB_SERVER_HOURS: (&str, &str) = ("x-jupyterhub-server-hours", "hours");

/// The UsageEvents two small exporters publish straight to the usage topic for the clusters'
/// [`User`]s (the meters are not in any Elastic document): Presto query seconds in
/// `project-analytics`, labelled with the querying user and their team, and JupyterHub server
/// hours in `jupyterhub`, labelled like the user's server pod. Deterministic for the seed (a
/// stream of its own: the documents are the same with or without them); ids are
/// `<user>/<interval start ms>`, unique per exporter (`source`).
fn extension_events(
    clusters: &[Cluster],
    start: EpochMillis,
    hours: u32,
    seed: u64,
) -> Vec<UsageEvent> {
    let mut rng = SplitMix64::new(seed ^ 0x7072_6573_746f_6a68);
    let end = start + i64::from(hours) * HOUR_MS;
    let mut events = Vec::new();
    let mut from = start;
    while from < end {
        let to = from + EXPORTER_INTERVAL_MS;
        let hour = ((from - start) / HOUR_MS) as u32;
        for cluster in clusters {
            for user in &cluster.users {
                let event =
                    |exporter: &str, (resource, unit): (&str, &str), quantity: f64| UsageEvent {
                        specversion: SPEC_VERSION.to_owned(),
                        id: format!("{}/{from}", user.name),
                        source: format!("//{exporter}/{}", cluster.name),
                        event_type: USAGE_EVENT_TYPE.to_owned(),
                        time: to,
                        start: from,
                        end: to,
                        subject: WorkloadSubject {
                            cluster_id: cluster.name.to_owned(),
                            cluster_name: Some(cluster.name.to_owned()),
                            ..WorkloadSubject::default()
                        },
                        measurements: vec![Measurement {
                            resource: resource.to_owned(),
                            kind: MeasurementKind::Usage,
                            quantity,
                            unit: unit.to_owned(),
                        }],
                    };
                let label = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
                    pairs
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect()
                };
                if (user.jupyter.0..user.jupyter.1).contains(&hour) {
                    let mut e = event(
                        "jupyterhub-usage-exporter",
                        JUPYTERHUB_SERVER_HOURS,
                        EXPORTER_INTERVAL_MS as f64 / HOUR_MS as f64,
                    );
                    e.subject.namespace = Some("jupyterhub".into());
                    e.subject.pod_name = Some(format!("jupyter-{}", user.name));
                    e.subject.labels = label(&[
                        ("app.kubernetes.io/name", "jupyterhub"),
                        ("component", "singleuser-server"),
                        ("hub.jupyter.org/username", user.name),
                        ("team", user.team),
                    ]);
                    events.push(e);
                }
                if user.presto_seconds > 0.0 {
                    // Some intervals without a query: then the exporter publishes nothing.
                    let queried = rng.next_f64() >= 0.2;
                    let seconds = user.presto_seconds * (0.5 + rng.next_f64());
                    if queried {
                        let mut e = event(
                            "presto-usage-exporter",
                            PRESTO_QUERY_SECONDS,
                            (seconds * 1000.0).round() / 1000.0,
                        );
                        e.subject.namespace = Some("project-analytics".into());
                        e.subject.workload_kind = Some("Deployment".into());
                        e.subject.workload_name = Some("presto-coordinator".into());
                        e.subject.labels = label(&[
                            ("app.kubernetes.io/name", "presto"),
                            ("ferrisdx.io/user", user.name),
                            ("team", user.team),
                        ]);
                        events.push(e);
                    }
                }
            }
        }
        from = to;
    }
    events
}

/// GCP list prices per hour the generated bills use (EUR).
const GCP_CORE_HOUR: f64 = 0.031_611;
const GCP_GIB_HOUR: f64 = 0.004_237;
const GCP_PD_GIB_HOUR: f64 = 0.000_054_8;
const GKE_FEE_HOUR: f64 = 0.1;

/// One GCP billing export row.
struct GcpRow<'a> {
    cluster: &'a Cluster,
    service: (&'a str, &'a str),
    sku: (&'a str, &'a str),
    hour: EpochMillis,
    cost: f64,
    credits: Vec<(&'a str, f64)>,
    namespace: Option<&'a str>,
    export_delay_h: i64,
}

fn gcp_bill(clusters: &[&Cluster], start: EpochMillis, hours: u32, csv: bool) -> BillFile {
    let mut rows = Vec::new();
    for cluster in clusters {
        let cores: f64 = cluster.nodes.iter().map(|n| n.cores).sum();
        let memory: f64 = cluster.nodes.iter().map(|n| n.memory_gib).sum();
        for h in 0..i64::from(hours) {
            let hour = start + h * HOUR_MS;
            let compute = (cores * GCP_CORE_HOUR * 1e6).round() / 1e6;
            rows.push(GcpRow {
                cluster,
                service: ("6F81-5844-456A", "Compute Engine"),
                sku: ("CF4E-A0C7-E3BF", "N2 Instance Core running in Frankfurt"),
                hour,
                cost: compute,
                credits: vec![(
                    "SUSTAINED_USAGE_DISCOUNT",
                    -(compute * 0.2 * 1e6).round() / 1e6,
                )],
                namespace: None,
                export_delay_h: 2,
            });
            rows.push(GcpRow {
                cluster,
                service: ("6F81-5844-456A", "Compute Engine"),
                sku: ("F268-6CE7-AC00", "N2 Instance Ram running in Frankfurt"),
                hour,
                cost: (memory * GCP_GIB_HOUR * 1e6).round() / 1e6,
                credits: Vec::new(),
                namespace: None,
                export_delay_h: 2,
            });
            rows.push(GcpRow {
                cluster,
                service: ("CCD8-9BF1-090E", "Kubernetes Engine"),
                sku: ("B561-BFBD-1264", "Regional Kubernetes Clusters"),
                hour,
                cost: GKE_FEE_HOUR,
                credits: Vec::new(),
                namespace: None,
                export_delay_h: 2,
            });
            // GKE cost allocation labels persistent disks with the namespace of their claim.
            for w in cluster.workloads.iter().filter(|w| w.volume_gib > 0.0) {
                let gib = w.volume_gib * f64::from(w.replicas);
                rows.push(GcpRow {
                    cluster,
                    service: ("6F81-5844-456A", "Compute Engine"),
                    sku: ("D973-5D65-BAB2", "Balanced PD Capacity in Frankfurt"),
                    hour,
                    cost: (gib * GCP_PD_GIB_HOUR * 1e6).round() / 1e6,
                    credits: Vec::new(),
                    namespace: Some(w.namespace),
                    export_delay_h: 2,
                });
            }
        }
        // Late usage: more of the first hour's compute, exported a day later as a further row
        // of the same line (the export appends; the rows add up).
        if let Some(first) = rows.iter().position(|r| std::ptr::eq(r.cluster, *cluster)) {
            let original = &rows[first];
            let late = GcpRow {
                cluster,
                service: original.service,
                sku: original.sku,
                hour: original.hour,
                cost: (original.cost * 0.03 * 1e6).round() / 1e6,
                credits: original
                    .credits
                    .iter()
                    .map(|(n, a)| (*n, (a * 0.03 * 1e6).round() / 1e6))
                    .collect(),
                namespace: None,
                export_delay_h: 26,
            };
            rows.push(late);
        }
    }
    let contents = if csv {
        gcp_csv(&rows)
    } else {
        rows.iter()
            .map(|r| gcp_json(r).to_string() + "\n")
            .collect()
    };
    BillFile {
        name: if csv {
            "gcp-billing-export.csv"
        } else {
            "gcp-billing-export.jsonl"
        }
        .into(),
        exporter: "gcp",
        contents,
    }
}

fn gcp_labels(row: &GcpRow<'_>) -> Vec<(String, String)> {
    let mut labels = vec![
        (
            "goog-k8s-cluster-name".to_owned(),
            row.cluster.name.to_owned(),
        ),
        (
            "goog-k8s-cluster-location".to_owned(),
            "europe-west3".to_owned(),
        ),
    ];
    if let Some(ns) = row.namespace {
        labels.push(("k8s-namespace".into(), ns.into()));
    }
    labels
}

/// BigQuery's JSON timestamp format.
fn bq_time(t: EpochMillis) -> String {
    rfc3339(t).replace('T', " ").replace(".000Z", " UTC")
}

fn gcp_json(row: &GcpRow<'_>) -> Value {
    json!({
        "billing_account_id": "01A2B3-C4D5E6-F7A8B9",
        "service": {"id": row.service.0, "description": row.service.1},
        "sku": {"id": row.sku.0, "description": row.sku.1},
        "usage_start_time": bq_time(row.hour),
        "usage_end_time": bq_time(row.hour + HOUR_MS),
        "project": {"id": row.cluster.account, "number": "123456789012", "name": row.cluster.account, "labels": []},
        "labels": gcp_labels(row).into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        "system_labels": [],
        "location": {"location": "europe-west3", "country": "DE", "region": "europe-west3", "zone": null},
        "export_time": bq_time(row.hour + (1 + row.export_delay_h) * HOUR_MS),
        "cost": row.cost,
        "currency": "EUR",
        "currency_conversion_rate": 1.0,
        "usage": {"amount": 3600.0, "unit": "seconds", "amount_in_pricing_units": 1.0, "pricing_unit": "hour"},
        "credits": row.credits.iter().map(|(name, amount)| json!({"name": name, "amount": amount, "full_name": null, "id": name, "type": name})).collect::<Vec<_>>(),
        "invoice": {"month": "202611"},
        "cost_type": "regular",
        "adjustment_info": null,
    })
}

fn gcp_csv(rows: &[GcpRow<'_>]) -> String {
    let mut out = String::from(
        "billing_account_id,service.id,service.description,sku.id,sku.description,usage_start_time,usage_end_time,project.id,labels,location.region,export_time,cost,currency,credits,cost_type\n",
    );
    for row in rows {
        let labels: Vec<Value> = gcp_labels(row)
            .into_iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let credits: Vec<Value> = row
            .credits
            .iter()
            .map(|(name, amount)| json!({"name": name, "amount": amount, "type": name}))
            .collect();
        let quote = |s: String| format!("\"{}\"", s.replace('"', "\"\""));
        let _ = writeln!(
            out,
            "01A2B3-C4D5E6-F7A8B9,{},{},{},{},{},{},{},{},europe-west3,{},{},EUR,{},regular",
            row.service.0,
            row.service.1,
            row.sku.0,
            row.sku.1,
            bq_time(row.hour),
            bq_time(row.hour + HOUR_MS),
            row.cluster.account,
            quote(Value::from(labels).to_string()),
            bq_time(row.hour + (1 + row.export_delay_h) * HOUR_MS),
            row.cost,
            quote(Value::from(credits).to_string()),
        );
    }
    out
}

/// Azure FOCUS export: the Databricks cluster's VMs and DBUs, per hour.
fn focus_bill(clusters: &[&Cluster], start: EpochMillis, hours: u32) -> BillFile {
    let mut out = String::from(
        "BilledCost,EffectiveCost,ListCost,BillingAccountId,BillingAccountName,SubAccountId,SubAccountName,BillingCurrency,BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ChargeClass,ChargeDescription,ProviderName,PublisherName,ResourceId,ResourceName,RegionId,ServiceCategory,ServiceName,SkuId,SkuPriceId,Tags\n",
    );
    for cluster in clusters {
        for h in 0..i64::from(hours) {
            let hour = start + h * HOUR_MS;
            let period = |t: EpochMillis| rfc3339(t).replace(".000Z", "Z");
            let tags = quote_csv(&json!({"ClusterName": cluster.name, "Vendor": "Databricks", "DatabricksEnvironment": "team"}).to_string());
            for (i, node) in cluster.nodes.iter().enumerate() {
                let cost = 0.293;
                let _ = writeln!(
                    out,
                    "{cost},{cost},{cost},8611537,Contoso Ltd,{acct},team-analytics,EUR,2026-11-01T00:00:00Z,{},{},Usage,,DS3 v2 VM hour,Microsoft,Microsoft,/subscriptions/{acct}/resourceGroups/databricks-rg/providers/Microsoft.Compute/virtualMachines/{},{},westeurope,Compute,Virtual Machines,DZH318Z0BQ4Z,DZH318Z0BQ4Z/00{i},{tags}",
                    period(hour),
                    period(hour + HOUR_MS),
                    node.name,
                    node.name,
                    acct = cluster.account,
                );
            }
            let dbu = 0.55 * cluster.nodes.len() as f64;
            let _ = writeln!(
                out,
                "{dbu},{dbu},{dbu},8611537,Contoso Ltd,{acct},team-analytics,EUR,2026-11-01T00:00:00Z,{},{},Usage,,Premium All-purpose Compute DBU,Microsoft,Databricks,/subscriptions/{acct}/resourceGroups/databricks-rg/providers/Microsoft.Databricks/workspaces/team-analytics,team-analytics,westeurope,Analytics,Azure Databricks,DZH318Z0BWQ6,DZH318Z0BWQ6/001,{tags}",
                period(hour),
                period(hour + HOUR_MS),
                acct = cluster.account,
            );
        }
    }
    BillFile {
        name: "azure-focus-export.csv".into(),
        exporter: "focus",
        contents: out,
    }
}

fn quote_csv(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests;
