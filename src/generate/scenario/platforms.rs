//! Who runs what in each scenario: the ferrisDX base, the hybrid platform's users and their
//! project workloads, the clusters with their nodes, agents and bills.

use super::*;

/// The ferrisDX base every platform runs: Helm releases named after their namespace, all
/// `app.kubernetes.io/part-of=ferrisdx-platform` (the umbrella chart's common labels).
pub(super) fn ferrisdx_base() -> Vec<Workload> {
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
pub(super) fn hybrid_users(cluster: &str) -> Vec<User> {
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
pub(super) fn hybrid_project_workloads(users: &[User]) -> Vec<Workload> {
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

pub(super) fn nodes(
    prefix: &str,
    pool: &'static str,
    count: u32,
    cores: f64,
    memory_gib: f64,
) -> Vec<Node> {
    (0..count)
        .map(|i| Node {
            name: format!("{prefix}-{i}"),
            pool,
            cores,
            memory_gib,
        })
        .collect()
}

pub(super) fn clusters(name: &str) -> Option<Vec<Cluster>> {
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
