//! The mapping of an ECS document to a [`UsageEvent`] (§4.3/§4.4 of the standard): which
//! metricset it is ([`classify`]), which fields become which measurements ([`measurements`]),
//! the cluster, namespace and workload it names, and its event id.

use super::doc::{non_empty, parse, timestamp, Bytes, Cores, CpuDoc, Doc, Kubernetes};
use super::id::event_id;
use super::{reject, CapacitySource, EcsNormaliser, EcsOutcome, UsageSource, NON_KUBERNETES};
use crate::ingest::{DeadLetterReason, Rejection};
use crate::measure::Resource;
use crate::standard::{
    Measurement, MeasurementKind, UsageEvent, WorkloadSubject, SPEC_VERSION, USAGE_EVENT_TYPE,
};

/// `kubernetes` metricsets (and log datasets) that carry nothing the tracker accounts: skipped.
const IRRELEVANT: [&str; 20] = [
    "apiserver",
    "audit_logs",
    "container_logs",
    "controllermanager",
    "event",
    "proxy",
    "scheduler",
    "state_cronjob",
    "state_daemonset",
    "state_deployment",
    "state_job",
    "state_namespace",
    "state_persistentvolume",
    "state_pod",
    "state_replicaset",
    "state_resourcequota",
    "state_service",
    "state_statefulset",
    "state_storageclass",
    "system",
];

/// The metricsets that are accounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metricset {
    Pod,
    Container,
    StateContainer,
    Node,
    StateNode,
    Volume,
    StatePvc,
}

impl Metricset {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "pod" => Metricset::Pod,
            "container" => Metricset::Container,
            "state_container" => Metricset::StateContainer,
            "node" => Metricset::Node,
            "state_node" => Metricset::StateNode,
            "volume" => Metricset::Volume,
            "state_persistentvolumeclaim" => Metricset::StatePvc,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Metricset::Pod => "pod",
            Metricset::Container => "container",
            Metricset::StateContainer => "state_container",
            Metricset::Node => "node",
            Metricset::StateNode => "state_node",
            Metricset::Volume => "volume",
            Metricset::StatePvc => "state_persistentvolumeclaim",
        }
    }

    /// Node metricsets: capacity, cluster-scoped, no namespace.
    fn is_node(self) -> bool {
        matches!(self, Metricset::Node | Metricset::StateNode)
    }
}

/// How a raw value becomes an amount over the period.
#[derive(Debug, Clone, Copy)]
enum Scale {
    /// `value × p`.
    Gauge,
    /// `value / 10⁹ × p` (nanocores to core-seconds).
    Nanocores,
}

impl EcsNormaliser {
    /// Turns one Kafka message payload into an event, a skip, or a rejection.
    pub fn normalise(&self, payload: &[u8]) -> Result<EcsOutcome, Rejection> {
        let doc = parse(payload)?;
        let metricset = match classify(&doc)? {
            Class::Accounted(metricset) => metricset,
            Class::Skipped(label) => return Ok(EcsOutcome::Skipped(label)),
        };
        match (
            metricset,
            self.settings.usage_from,
            self.settings.capacity_from,
        ) {
            (Metricset::Pod, UsageSource::Container, _) => {
                return Ok(match self.pod_network(&doc)? {
                    Some(sample) => EcsOutcome::PodNetwork(sample),
                    None => EcsOutcome::Skipped(metricset.name()),
                });
            }
            (Metricset::Container, UsageSource::Pod, _)
            | (Metricset::Node, _, CapacitySource::StateNode)
            | (Metricset::StateNode, _, CapacitySource::Node) => {
                return Ok(EcsOutcome::Skipped(metricset.name()))
            }
            _ => {}
        }
        let period_ms = match doc.metricset.as_ref().and_then(|m| m.period) {
            None => self.default_period_ms,
            Some(ms) if (1.0..1e15).contains(&ms) => ms.round() as i64,
            Some(ms) => {
                return Err(reject(
                    DeadLetterReason::InvalidEvent,
                    format!("metricset.period is {ms} ms: must be from 1 ms to 10^15 ms"),
                ))
            }
        };
        let measurements = measurements(&doc, metricset, period_ms)?;
        if measurements.is_empty() {
            return Ok(EcsOutcome::Empty(metricset.name()));
        }
        let end = timestamp(&doc)?;
        let k8s = doc.kubernetes.as_ref();
        let (cluster_id, cluster_name) = self.cluster(&doc)?;
        let namespace = if metricset.is_node() {
            None
        } else {
            Some(k8s.and_then(|k| non_empty(&k.namespace)).ok_or_else(|| {
                reject(
                    DeadLetterReason::NoNamespace,
                    format!("{} document without kubernetes.namespace", metricset.name()),
                )
            })?)
        };
        let pod = k8s.and_then(|k| k.pod.as_ref());
        let pod_name = pod.and_then(|p| non_empty(&p.name));
        let pod_uid = pod.and_then(|p| non_empty(&p.uid));
        let container_name = k8s
            .and_then(|k| k.container.as_ref())
            .and_then(|c| non_empty(&c.name));
        let node_name = k8s
            .and_then(|k| k.node.as_ref())
            .and_then(|n| non_empty(&n.name));
        let volume_name = k8s
            .and_then(|k| k.volume.as_ref())
            .and_then(|v| non_empty(&v.name));
        let pvc_name = k8s
            .and_then(|k| k.persistentvolumeclaim.as_ref())
            .and_then(|p| non_empty(&p.name));
        let (workload_kind, workload_name) = match metricset {
            Metricset::Node | Metricset::StateNode => (node_name.map(|_| "Node"), node_name),
            Metricset::StatePvc => (pvc_name.map(|_| "PersistentVolumeClaim"), pvc_name),
            _ => k8s.and_then(Kubernetes::owner).unzip(),
        };
        let id = event_id(
            &[
                Some(metricset.name()),
                Some(cluster_id),
                namespace,
                pod_uid.or(pod_name),
                container_name,
                node_name,
                volume_name,
                pvc_name,
            ],
            end,
        );
        let labels = doc.labels();
        let owned = |s: Option<&str>| s.map(str::to_owned);
        Ok(EcsOutcome::Usage(UsageEvent {
            specversion: SPEC_VERSION.to_owned(),
            id,
            source: self.settings.source.clone(),
            event_type: USAGE_EVENT_TYPE.to_owned(),
            time: end,
            start: end - period_ms,
            end,
            subject: WorkloadSubject {
                cluster_id: cluster_id.to_owned(),
                cluster_name: owned(cluster_name),
                namespace: owned(namespace),
                pod_name: owned(pod_name),
                pod_uid: owned(pod_uid),
                container_name: owned(container_name),
                node_name: owned(node_name),
                workload_kind: owned(workload_kind),
                workload_name: owned(workload_name),
                labels,
            },
            measurements,
        }))
    }
}

impl EcsNormaliser {
    /// `(cluster id, cluster name)`: `orchestrator.cluster.id`, else `.name`, else the input's
    /// default cluster id.
    pub(super) fn cluster<'d>(
        &'d self,
        doc: &'d Doc<'_>,
    ) -> Result<(&'d str, Option<&'d str>), Rejection> {
        let cluster = doc.orchestrator.as_ref().and_then(|o| o.cluster.as_ref());
        let cluster_name = cluster.and_then(|c| non_empty(&c.name));
        let cluster_id = cluster
            .and_then(|c| non_empty(&c.id))
            .or(cluster_name)
            .or(self.settings.default_cluster_id.as_deref())
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                reject(
                    DeadLetterReason::InvalidEvent,
                    "no cluster identity: orchestrator.cluster.id and .name are absent and no \
                     default cluster id is configured for this input",
                )
            })?;
        Ok((cluster_id, cluster_name))
    }
}

enum Class {
    Accounted(Metricset),
    Skipped(&'static str),
}

/// Tells the metricset: `metricset.name`, else the part after the module in `data_stream.dataset`
/// or `event.dataset`. The module is `event.module`, `metricset.module`, the dataset's prefix, or
/// `kubernetes` when the document has a `kubernetes` object.
fn classify(doc: &Doc<'_>) -> Result<Class, Rejection> {
    let dataset = doc
        .data_stream
        .as_ref()
        .and_then(|d| non_empty(&d.dataset))
        .or_else(|| doc.event.as_ref().and_then(|e| non_empty(&e.dataset)));
    let (dataset_module, dataset_name) = dataset.and_then(|d| d.split_once('.')).unzip();
    let name = doc
        .metricset
        .as_ref()
        .and_then(|m| non_empty(&m.name))
        .or(dataset_name);
    let module = doc
        .event
        .as_ref()
        .and_then(|e| non_empty(&e.module))
        .or_else(|| doc.metricset.as_ref().and_then(|m| non_empty(&m.module)))
        .or(dataset_module)
        .or(doc.kubernetes.as_ref().map(|_| "kubernetes"));
    match (module, name) {
        (Some("kubernetes"), Some(name)) => {
            if let Some(metricset) = Metricset::parse(name) {
                Ok(Class::Accounted(metricset))
            } else if let Some(known) = IRRELEVANT.iter().find(|m| **m == name) {
                Ok(Class::Skipped(known))
            } else {
                Err(reject(
                    DeadLetterReason::UnknownMetricset,
                    format!("kubernetes metricset {name:?} is not known to this version"),
                ))
            }
        }
        (Some("kubernetes"), None) => Err(reject(
            DeadLetterReason::UnknownMetricset,
            "kubernetes document without metricset.name, data_stream.dataset or event.dataset",
        )),
        (Some(_), _) | (None, Some(_)) => Ok(Class::Skipped(NON_KUBERNETES)),
        (None, None) => Err(reject(
            DeadLetterReason::UnknownMetricset,
            "not a Metricbeat document: no metricset.name, data_stream.dataset, event.dataset \
             or event.module",
        )),
    }
}

/// The accounted quantities of a document, each `value × p` (see [`Scale`]).
fn measurements(
    doc: &Doc<'_>,
    metricset: Metricset,
    period_ms: i64,
) -> Result<Vec<Measurement>, Rejection> {
    use MeasurementKind::*;
    use Resource::*;
    let k8s = doc.kubernetes.as_ref();
    let pod = k8s.and_then(|k| k.pod.as_ref());
    let container = k8s.and_then(|k| k.container.as_ref());
    let node = k8s.and_then(|k| k.node.as_ref());
    let cpu_usage = |cpu: Option<&CpuDoc>| cpu?.usage.as_ref()?.nanocores;
    let cores = |c: Option<&Cores>| c?.cores;
    let bytes = |b: Option<&Bytes>| b?.bytes;
    type Raw = (Resource, MeasurementKind, Scale, &'static str, Option<f64>);
    let raw: [Option<Raw>; 4] = match metricset {
        Metricset::Pod => {
            let cpu = pod.and_then(|p| p.cpu.as_ref());
            let memory = pod.and_then(|p| p.memory.as_ref());
            let working_set = memory.and_then(|m| bytes(m.working_set.as_ref()));
            [
                Some((
                    Cpu,
                    Usage,
                    Scale::Nanocores,
                    "kubernetes.pod.cpu.usage.nanocores",
                    cpu_usage(cpu),
                )),
                Some(if working_set.is_some() {
                    (
                        Memory,
                        Usage,
                        Scale::Gauge,
                        "kubernetes.pod.memory.working_set.bytes",
                        working_set,
                    )
                } else {
                    (
                        Memory,
                        Usage,
                        Scale::Gauge,
                        "kubernetes.pod.memory.usage.bytes",
                        memory.and_then(|m| bytes(m.usage.as_ref())),
                    )
                }),
                None,
                None,
            ]
        }
        Metricset::Container => {
            let cpu = container.and_then(|c| c.cpu.as_ref());
            let memory = container.and_then(|c| c.memory.as_ref());
            let working_set = memory.and_then(|m| bytes(m.workingset.as_ref()));
            [
                Some((
                    Cpu,
                    Usage,
                    Scale::Nanocores,
                    "kubernetes.container.cpu.usage.nanocores",
                    cpu_usage(cpu),
                )),
                Some(if working_set.is_some() {
                    (
                        Memory,
                        Usage,
                        Scale::Gauge,
                        "kubernetes.container.memory.workingset.bytes",
                        working_set,
                    )
                } else {
                    (
                        Memory,
                        Usage,
                        Scale::Gauge,
                        "kubernetes.container.memory.usage.bytes",
                        memory.and_then(|m| bytes(m.usage.as_ref())),
                    )
                }),
                None,
                None,
            ]
        }
        Metricset::StateContainer => {
            let cpu = container.and_then(|c| c.cpu.as_ref());
            let memory = container.and_then(|c| c.memory.as_ref());
            [
                Some((
                    Cpu,
                    Request,
                    Scale::Gauge,
                    "kubernetes.container.cpu.request.cores",
                    cores(cpu.and_then(|c| c.request.as_ref())),
                )),
                Some((
                    Cpu,
                    Limit,
                    Scale::Gauge,
                    "kubernetes.container.cpu.limit.cores",
                    cores(cpu.and_then(|c| c.limit.as_ref())),
                )),
                Some((
                    Memory,
                    Request,
                    Scale::Gauge,
                    "kubernetes.container.memory.request.bytes",
                    bytes(memory.and_then(|m| m.request.as_ref())),
                )),
                Some((
                    Memory,
                    Limit,
                    Scale::Gauge,
                    "kubernetes.container.memory.limit.bytes",
                    bytes(memory.and_then(|m| m.limit.as_ref())),
                )),
            ]
        }
        Metricset::Node | Metricset::StateNode => [
            Some((
                Cpu,
                Capacity,
                Scale::Gauge,
                "kubernetes.node.cpu.allocatable.cores",
                cores(
                    node.and_then(|n| n.cpu.as_ref())
                        .and_then(|c| c.allocatable.as_ref()),
                ),
            )),
            Some((
                Memory,
                Capacity,
                Scale::Gauge,
                "kubernetes.node.memory.allocatable.bytes",
                bytes(
                    node.and_then(|n| n.memory.as_ref())
                        .and_then(|m| m.allocatable.as_ref()),
                ),
            )),
            None,
            None,
        ],
        Metricset::Volume => [
            Some((
                Storage,
                Usage,
                Scale::Gauge,
                "kubernetes.volume.fs.used.bytes",
                bytes(
                    k8s.and_then(|k| k.volume.as_ref())
                        .and_then(|v| v.fs.as_ref())
                        .and_then(|f| f.used.as_ref()),
                ),
            )),
            None,
            None,
            None,
        ],
        Metricset::StatePvc => [
            Some((
                Storage,
                Request,
                Scale::Gauge,
                "kubernetes.persistentvolumeclaim.request_storage.bytes",
                bytes(
                    k8s.and_then(|k| k.persistentvolumeclaim.as_ref())
                        .and_then(|p| p.request_storage.as_ref()),
                ),
            )),
            None,
            None,
            None,
        ],
    };
    let period = period_ms as f64;
    let mut out = Vec::new();
    for (resource, kind, scale, field, value) in raw.into_iter().flatten() {
        let Some(value) = value else { continue };
        // One multiplication of exact integers and one division: the quantity is the decimal
        // result correctly rounded (e.g. 15144561 nanocores over 10 s is exactly 0.15144561).
        let quantity = match scale {
            Scale::Gauge => value * period / 1e3,
            Scale::Nanocores => value * period / 1e12,
        };
        if !(value >= 0.0 && quantity.is_finite()) {
            return Err(reject(
                DeadLetterReason::InvalidEvent,
                format!("{field} is {value}: must be finite and >= 0"),
            ));
        }
        out.push(Measurement {
            resource: resource.name().to_owned(),
            kind,
            quantity,
            unit: resource.unit().to_owned(),
        });
    }
    Ok(out)
}
