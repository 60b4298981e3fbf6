//! The ECS document, as far as it is read, borrowed from the payload: unknown fields are skipped
//! without allocating, and a string is copied only if it has escapes ([`Text`]). [`parse`] reads
//! a payload into a [`Doc`].

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::time::UNIX_EPOCH;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::reject;
use crate::ingest::{DeadLetterReason, Rejection};
use crate::standard::EpochMillis;

/// Parses the payload; anything but one JSON object is `not_json`, a JSON object with a field of
/// the wrong type is `invalid_event`.
pub(super) fn parse(payload: &[u8]) -> Result<Doc<'_>, Rejection> {
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(reject(DeadLetterReason::NotJson, "empty payload"));
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(reject(
                DeadLetterReason::NotJson,
                "not a JSON object: every message must be one ECS document",
            ))
        }
    }
    // A payload that is UTF-8 as a whole (every real document) is parsed as a `str`: serde_json
    // then does not check each string it reads again. Same parser, same results and errors; a
    // payload that is not UTF-8 goes through the byte parser, which rejects only invalid strings
    // that it reads (not those in skipped subtrees), exactly as before.
    let parsed = match std::str::from_utf8(payload) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(payload),
    };
    parsed.map_err(|error| {
        let detail = error.to_string();
        let reason = match error.classify() {
            serde_json::error::Category::Data => DeadLetterReason::InvalidEvent,
            // Valid JSON (numbers have no limit there), but beyond a double: serde_json tells it
            // only by its message, which is stable (`ErrorCode::NumberOutOfRange`).
            _ if detail.starts_with("number out of range") => DeadLetterReason::OutOfRange,
            _ => DeadLetterReason::NotJson,
        };
        reject(reason, detail)
    })
}

/// `@timestamp` (RFC 3339, UTC) in epoch ms.
pub(super) fn timestamp(doc: &Doc<'_>) -> Result<EpochMillis, Rejection> {
    let text = non_empty(&doc.timestamp).ok_or_else(|| {
        reject(
            DeadLetterReason::InvalidEvent,
            "no @timestamp: the sample time is required",
        )
    })?;
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| EpochMillis::try_from(d.as_millis()).ok())
        .ok_or_else(|| {
            reject(
                DeadLetterReason::InvalidEvent,
                format!("@timestamp {text:?} is not an RFC 3339 UTC time after 1970"),
            )
        })
}

/// The string, if it is there and not empty.
pub(super) fn non_empty<'s>(value: &'s Option<Text<'_>>) -> Option<&'s str> {
    value
        .as_ref()
        .map(|t| t.0.as_ref())
        .filter(|s| !s.is_empty())
}

/// The fields of an ECS document that are read.
#[derive(Deserialize)]
pub(super) struct Doc<'a> {
    #[serde(rename = "@timestamp", borrow)]
    pub(super) timestamp: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) metricset: Option<MetricsetDoc<'a>>,
    #[serde(borrow)]
    pub(super) data_stream: Option<DataStream<'a>>,
    #[serde(borrow)]
    pub(super) event: Option<EventDoc<'a>>,
    #[serde(borrow)]
    pub(super) orchestrator: Option<Orchestrator<'a>>,
    #[serde(borrow)]
    pub(super) kubernetes: Option<Kubernetes<'a>>,
}

/// `metricset`: its name, module and sample period (ms).
#[derive(Deserialize)]
pub(super) struct MetricsetDoc<'a> {
    #[serde(borrow)]
    pub(super) name: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) module: Option<Text<'a>>,
    pub(super) period: Option<f64>,
}

/// `data_stream` (Elastic Agent): its dataset, `kubernetes.<metricset>`.
#[derive(Deserialize)]
pub(super) struct DataStream<'a> {
    #[serde(borrow)]
    pub(super) dataset: Option<Text<'a>>,
}

/// `event`: dataset and module.
#[derive(Deserialize)]
pub(super) struct EventDoc<'a> {
    #[serde(borrow)]
    pub(super) dataset: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) module: Option<Text<'a>>,
}

/// `orchestrator`: the cluster.
#[derive(Deserialize)]
pub(super) struct Orchestrator<'a> {
    #[serde(borrow)]
    pub(super) cluster: Option<Cluster<'a>>,
}

/// `orchestrator.cluster`: id and name.
#[derive(Deserialize)]
pub(super) struct Cluster<'a> {
    #[serde(borrow)]
    pub(super) id: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) name: Option<Text<'a>>,
}

/// `kubernetes`: the namespace, the object sampled, its labels and its owners.
#[derive(Deserialize)]
pub(super) struct Kubernetes<'a> {
    #[serde(borrow)]
    pub(super) namespace: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) pod: Option<PodDoc<'a>>,
    #[serde(borrow)]
    pub(super) container: Option<ContainerDoc<'a>>,
    #[serde(borrow)]
    pub(super) node: Option<NodeDoc<'a>>,
    #[serde(borrow)]
    pub(super) volume: Option<VolumeDoc<'a>>,
    #[serde(borrow)]
    pub(super) persistentvolumeclaim: Option<PvcDoc<'a>>,
    #[serde(borrow)]
    pub(super) labels: Option<Labels<'a>>,
    #[serde(borrow)]
    pub(super) deployment: Option<Named<'a>>,
    #[serde(borrow)]
    pub(super) statefulset: Option<Named<'a>>,
    #[serde(borrow)]
    pub(super) daemonset: Option<Named<'a>>,
    #[serde(borrow)]
    pub(super) cronjob: Option<Named<'a>>,
    #[serde(borrow)]
    pub(super) job: Option<Named<'a>>,
    #[serde(borrow)]
    pub(super) replicaset: Option<Named<'a>>,
}

impl Kubernetes<'_> {
    /// The top-level owner: Deployment over ReplicaSet, CronJob over Job (standard §2.2).
    pub(super) fn owner(&self) -> Option<(&'static str, &str)> {
        [
            ("Deployment", &self.deployment),
            ("StatefulSet", &self.statefulset),
            ("DaemonSet", &self.daemonset),
            ("CronJob", &self.cronjob),
            ("Job", &self.job),
            ("ReplicaSet", &self.replicaset),
        ]
        .into_iter()
        .find_map(|(kind, named)| Some((kind, non_empty(&named.as_ref()?.name)?)))
    }
}

/// An object known by its name only (an owner: deployment, job ...).
#[derive(Deserialize)]
pub(super) struct Named<'a> {
    #[serde(borrow)]
    pub(super) name: Option<Text<'a>>,
}

/// `kubernetes.pod`.
#[derive(Deserialize)]
pub(super) struct PodDoc<'a> {
    #[serde(borrow)]
    pub(super) name: Option<Text<'a>>,
    #[serde(borrow)]
    pub(super) uid: Option<Text<'a>>,
    pub(super) cpu: Option<CpuDoc>,
    pub(super) memory: Option<MemoryDoc>,
    pub(super) network: Option<NetworkDoc>,
}

/// `kubernetes.pod.network`: bytes received and sent since the pod started.
#[derive(Deserialize)]
pub(super) struct NetworkDoc {
    pub(super) rx: Option<Bytes>,
    pub(super) tx: Option<Bytes>,
}

/// `kubernetes.container`.
#[derive(Deserialize)]
pub(super) struct ContainerDoc<'a> {
    #[serde(borrow)]
    pub(super) name: Option<Text<'a>>,
    pub(super) cpu: Option<CpuDoc>,
    pub(super) memory: Option<MemoryDoc>,
}

/// `kubernetes.node`.
#[derive(Deserialize)]
pub(super) struct NodeDoc<'a> {
    #[serde(borrow)]
    pub(super) name: Option<Text<'a>>,
    pub(super) cpu: Option<CpuDoc>,
    pub(super) memory: Option<MemoryDoc>,
}

/// `kubernetes.volume`.
#[derive(Deserialize)]
pub(super) struct VolumeDoc<'a> {
    #[serde(borrow)]
    pub(super) name: Option<Text<'a>>,
    pub(super) fs: Option<Fs>,
}

/// `kubernetes.volume.fs`.
#[derive(Deserialize)]
pub(super) struct Fs {
    pub(super) used: Option<Bytes>,
}

/// `kubernetes.persistentvolumeclaim`.
#[derive(Deserialize)]
pub(super) struct PvcDoc<'a> {
    #[serde(borrow)]
    pub(super) name: Option<Text<'a>>,
    pub(super) request_storage: Option<Bytes>,
}

/// The `cpu` of a pod, container or node.
#[derive(Deserialize)]
pub(super) struct CpuDoc {
    pub(super) usage: Option<CpuUsage>,
    pub(super) request: Option<Cores>,
    pub(super) limit: Option<Cores>,
    pub(super) allocatable: Option<Cores>,
}

/// `cpu.usage`, in nanocores.
#[derive(Deserialize)]
pub(super) struct CpuUsage {
    pub(super) nanocores: Option<f64>,
}

/// A number of cores.
#[derive(Deserialize)]
pub(super) struct Cores {
    pub(super) cores: Option<f64>,
}

/// The `memory` of a pod, container or node (the working set is spelt both ways).
#[derive(Deserialize)]
pub(super) struct MemoryDoc {
    pub(super) usage: Option<Bytes>,
    pub(super) working_set: Option<Bytes>,
    pub(super) workingset: Option<Bytes>,
    pub(super) request: Option<Bytes>,
    pub(super) limit: Option<Bytes>,
    pub(super) allocatable: Option<Bytes>,
}

/// A number of bytes.
#[derive(Deserialize)]
pub(super) struct Bytes {
    pub(super) bytes: Option<f64>,
}

/// `kubernetes.labels`: the string values, one level deep; other values are skipped.
pub(super) struct Labels<'a>(pub(super) Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelsVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for LabelsVisitor<'a> {
            type Value = Labels<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of labels")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels<'a>, A::Error> {
                let mut labels = Vec::new();
                while let Some(Text(key)) = map.next_key()? {
                    if let MaybeText(Some(value)) = map.next_value()? {
                        labels.push((key, value));
                    }
                }
                Ok(Labels(labels))
            }
        }
        deserializer.deserialize_map(LabelsVisitor(PhantomData))
    }
}

/// A string, borrowed from the payload unless it has escapes. (serde's own `Cow<str>` borrows
/// only as a field's whole type, never inside an `Option`: it would allocate every string.)
pub(super) struct Text<'a>(Cow<'a, str>);

struct TextVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Option<Cow<'a, str>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    // Anything else: not a string (only reached through `deserialize_any`, by `MaybeText`).
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_str(TextVisitor(PhantomData))?
            .map(Text)
            .ok_or_else(|| de::Error::custom("expected a string"))
    }
}

/// A label value: the string, or `None` for any other JSON value.
struct MaybeText<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(TextVisitor(PhantomData))
            .map(MaybeText)
    }
}
