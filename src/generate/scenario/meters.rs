//! The extension meters' exporters of the hybrid scenario: UsageEvents published straight to
//! the usage topic (Presto query seconds, JupyterHub server hours).

use super::*;

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
pub(super) fn extension_events(
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
