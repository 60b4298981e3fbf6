//! Pod network counters: a `pod` document's cumulative bytes received and sent
//! ([`PodNetworkSample`]), and [`NetworkCounters`], which turns consecutive readings of a pod into
//! network usage between them without ever counting a byte twice.

use std::collections::HashMap;

use super::doc::{non_empty, timestamp, Bytes, Doc, Kubernetes};
use super::id::{decimal, event_id};
use super::{check_event, reject, Clock, EcsNormaliser};
use crate::ingest::{DeadLetterReason, Rejection};
use crate::standard::limits::{self, LimitError};
use crate::standard::{
    EpochMillis, Measurement, MeasurementKind, UsageEvent, WorkloadSubject, SPEC_VERSION,
    USAGE_EVENT_TYPE,
};

impl EcsNormaliser {
    /// The cumulative network counters of a `pod` document, if it has any.
    pub(super) fn pod_network(&self, doc: &Doc<'_>) -> Result<Option<PodNetworkSample>, Rejection> {
        let k8s = doc.kubernetes.as_ref();
        let pod = k8s.and_then(|k| k.pod.as_ref());
        let Some(network) = pod.and_then(|p| p.network.as_ref()) else {
            return Ok(None);
        };
        let counter = |b: &Option<Bytes>, field: &str| -> Result<Option<f64>, Rejection> {
            match b.as_ref().and_then(|b| b.bytes) {
                Some(v) if !v.is_finite() || v < 0.0 => Err(reject(
                    DeadLetterReason::InvalidEvent,
                    format!("{field} is {v}: must be a finite, non-negative number"),
                )),
                v => Ok(v),
            }
        };
        let rx = counter(&network.rx, "kubernetes.pod.network.rx.bytes")?;
        let tx = counter(&network.tx, "kubernetes.pod.network.tx.bytes")?;
        if rx.is_none() && tx.is_none() {
            return Ok(None);
        }
        let time = timestamp(doc)?;
        let (cluster_id, cluster_name) = self.cluster(doc)?;
        let namespace = k8s.and_then(|k| non_empty(&k.namespace)).ok_or_else(|| {
            reject(
                DeadLetterReason::NoNamespace,
                "pod document without kubernetes.namespace",
            )
        })?;
        let pod_name = pod.and_then(|p| non_empty(&p.name));
        let pod_uid = pod.and_then(|p| non_empty(&p.uid));
        let (workload_kind, workload_name) = k8s.and_then(Kubernetes::owner).unzip();
        let owned = |s: Option<&str>| s.map(str::to_owned);
        let pod_id = pod_uid.or(pod_name).unwrap_or_default();
        let mut key = String::with_capacity(cluster_id.len() + namespace.len() + pod_id.len() + 2);
        for part in [cluster_id, "/", namespace, "/", pod_id] {
            key.push_str(part);
        }
        Ok(Some(PodNetworkSample {
            pod: key,
            time,
            rx: rx.unwrap_or(0.0),
            tx: tx.unwrap_or(0.0),
            source: self.settings.source.clone(),
            subject: WorkloadSubject {
                cluster_id: cluster_id.to_owned(),
                cluster_name: owned(cluster_name),
                namespace: Some(namespace.to_owned()),
                pod_name: owned(pod_name),
                pod_uid: owned(pod_uid),
                container_name: None,
                node_name: owned(
                    k8s.and_then(|k| k.node.as_ref())
                        .and_then(|n| non_empty(&n.name)),
                ),
                workload_kind: owned(workload_kind),
                workload_name: owned(workload_name),
                labels: doc.labels(),
            },
        }))
    }
}

/// One reading of a pod's cumulative network counters (bytes since the pod started).
#[derive(Debug, Clone, PartialEq)]
pub struct PodNetworkSample {
    /// `cluster/namespace/pod uid (or name)`: whose counters these are.
    pub pod: String,
    /// When they were read.
    pub time: EpochMillis,
    /// Bytes received since the pod started.
    pub rx: f64,
    /// Bytes sent since the pod started.
    pub tx: f64,
    /// CloudEvents source of the events made from it.
    pub source: String,
    /// The pod, as events name it.
    pub subject: WorkloadSubject,
}

impl PodNetworkSample {
    /// Whether the reading may become a pod's last reading: its names within the standard's
    /// limits, its time within 2000..2100 and not ahead of the clock, its counters at most
    /// 10²¹ bytes. A reading that fails is dead-lettered and remembered nowhere, so it cannot
    /// hold back (a time ahead) or inflate (a huge counter) the pod's later readings.
    pub fn check(&self, clock: Clock) -> Result<(), Rejection> {
        limits::check_text("source", &self.source, limits::MAX_ID_LEN)?;
        limits::check_subject(&self.subject)?;
        limits::check_time("@timestamp", self.time)?;
        for (resource, value) in [("network_rx", self.rx), ("network_tx", self.tx)] {
            if value > limits::MAX_QUANTITY_UNITS {
                return Err(LimitError::QuantityTooLarge {
                    resource: resource.to_owned(),
                    value,
                }
                .into());
            }
        }
        clock.check_end("@timestamp", self.time)
    }
}

/// A pod's last reading, and the input partition it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    time: EpochMillis,
    rx: f64,
    tx: f64,
    partition: i32,
}

/// Turns cumulative pod network counters into network usage between consecutive readings.
///
/// Keeps the last reading per pod: the first reading of a pod (or the first after a restart of
/// this process) gives nothing, each later one the bytes since the previous one, over
/// `[previous time, time)`. A counter that went down was reset (the pod's network namespace was
/// recreated): the delta is then the new value. Readings no newer than the last are ignored (a
/// redelivery), so as long as a pod's documents arrive in order (one Kafka partition per pod:
/// `partition.hash` on `kubernetes.pod.uid` in the agent's Kafka output), every byte is counted
/// once; event ids depend on the pod and both readings' times, so a re-read after a crash
/// publishes the same events.
///
/// Never counted twice, whatever the input:
/// - a reading that breaks a limit or lies ahead of the clock ([`PodNetworkSample::check`]) is
///   refused and not remembered;
/// - a reading more than a day ([`limits::MAX_USAGE_INTERVAL_MS`]) after the pod's last one is a
///   new baseline (the gap is not counted: one event may not cover more than a day);
/// - [`NetworkCounters::revoke`] forgets the pods last read from a partition this consumer no
///   longer owns: another consumer counts their next readings, and should the partition come
///   back, its first reading is a new baseline, not a delta over what the other one counted.
#[derive(Debug, Default)]
pub struct NetworkCounters {
    last: HashMap<String, Reading>,
}

impl NetworkCounters {
    /// The network usage since the pod's previous reading, if there is one; a rejection (and
    /// nothing remembered) if the reading fails [`PodNetworkSample::check`]. `partition` is the
    /// input partition the document came from (see [`NetworkCounters::revoke`]).
    pub fn delta(
        &mut self,
        partition: i32,
        sample: PodNetworkSample,
        clock: Clock,
    ) -> Result<Option<UsageEvent>, Rejection> {
        sample.check(clock)?;
        let reading = Reading {
            time: sample.time,
            rx: sample.rx,
            tx: sample.tx,
            partition,
        };
        let previous = match self.last.get_mut(&sample.pod) {
            Some(last) if last.time >= sample.time => return Ok(None),
            Some(last) => std::mem::replace(last, reading),
            None => {
                self.last.insert(sample.pod, reading);
                return Ok(None);
            }
        };
        if sample.time - previous.time > limits::MAX_USAGE_INTERVAL_MS {
            return Ok(None); // Too long a gap for one event: this reading is a new baseline.
        }
        let start = previous.time;
        let grown = |now: f64, before: f64| if now >= before { now - before } else { now };
        let (rx, tx) = (grown(sample.rx, previous.rx), grown(sample.tx, previous.tx));
        let mut digits = [0; 20];
        let start_text = decimal(start, &mut digits);
        let id = event_id(
            &[Some("pod_network"), Some(&sample.pod), Some(start_text)],
            sample.time,
        );
        let measurement = |resource: &str, quantity: f64| Measurement {
            resource: resource.to_owned(),
            kind: MeasurementKind::Usage,
            quantity,
            unit: "bytes".to_owned(),
        };
        let event = UsageEvent {
            specversion: SPEC_VERSION.to_owned(),
            id,
            source: sample.source,
            event_type: USAGE_EVENT_TYPE.to_owned(),
            time: sample.time,
            start,
            end: sample.time,
            subject: sample.subject,
            measurements: vec![measurement("network_rx", rx), measurement("network_tx", tx)],
        };
        check_event(&event, clock)?;
        Ok(Some(event))
    }

    /// Forgets every pod last read from `partition` (revoked from this consumer in a
    /// rebalance).
    pub fn revoke(&mut self, partition: i32) {
        self.last.retain(|_, r| r.partition != partition);
    }

    /// Forgets pods not read since `before` (deleted pods), bounding the state.
    pub fn forget_older_than(&mut self, before: EpochMillis) {
        self.last.retain(|_, r| r.time >= before);
    }

    /// Keeps at most `max` pods: first forgets those not read within `memory_ms` before
    /// `latest`, then, if that is not enough (a flood of pods), the least recently read down to
    /// nine tenths of `max`. A forgotten pod's next reading is a new baseline.
    pub fn bound(&mut self, max: usize, latest: EpochMillis, memory_ms: i64) {
        if self.last.len() <= max {
            return;
        }
        self.forget_older_than(latest.saturating_sub(memory_ms));
        if self.last.len() <= max {
            return;
        }
        let keep = max - max / 10;
        if keep == 0 {
            self.last.clear();
            return;
        }
        let mut times: Vec<EpochMillis> = self.last.values().map(|r| r.time).collect();
        let cut = times.len() - keep;
        let (_, threshold, _) = times.select_nth_unstable(cut);
        let threshold = *threshold;
        // Everything newer than the threshold, and as many read at it as there is room for.
        let mut ties = keep - times.iter().filter(|t| **t > threshold).count();
        self.last.retain(|_, r| {
            if r.time > threshold {
                true
            } else if r.time == threshold && ties > 0 {
                ties -= 1;
                true
            } else {
                false
            }
        });
    }

    /// Pods with a reading.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    /// Whether no pod has a reading.
    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}
