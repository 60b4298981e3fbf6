//! The ECS document, as far as it is read, borrowed from the payload: unknown fields are skipped
//! without allocating, and a string is copied only if it has escapes ([`Text`]). [`parse`] reads
//! a payload into a [`Doc`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::UNIX_EPOCH;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
pub(super) struct Doc<'a> {
    pub(super) timestamp: Option<Text<'a>>,
    pub(super) metricset: Option<MetricsetDoc<'a>>,
    pub(super) data_stream: Option<DataStream<'a>>,
    pub(super) event: Option<EventDoc<'a>>,
    pub(super) orchestrator: Option<Orchestrator<'a>>,
    pub(super) kubernetes: Option<Kubernetes<'a>>,
    /// Labels given as dotted top-level keys (`"kubernetes.labels.app": "x"`), as some
    /// shippers and pipelines write them; keyed like the nested ones.
    pub(super) dotted_labels: Labels<'a>,
}

impl Doc<'_> {
    /// The document's labels as `subject.labels`: `kubernetes.labels`, then the dotted top-level
    /// ones (a key given both ways keeps the dotted one; a key given twice, its last value).
    pub(super) fn labels(&self) -> BTreeMap<String, String> {
        let nested = self
            .kubernetes
            .as_ref()
            .and_then(|k| k.labels.as_ref())
            .map(|l| l.0.as_slice())
            .unwrap_or_default();
        // Inserted one by one: `collect` would sort through an extra buffer.
        let mut labels = BTreeMap::new();
        for (k, v) in nested.iter().chain(&self.dotted_labels.0) {
            labels.insert(k.to_string(), v.to_string());
        }
        labels
    }
}

/// Top-level keys of the document that are read.
const DOC_FIELDS: [&str; 6] = [
    "@timestamp",
    "metricset",
    "data_stream",
    "event",
    "orchestrator",
    "kubernetes",
];

/// The prefix of labels given as dotted top-level keys.
const DOTTED_LABELS: &str = "kubernetes.labels";

impl<'de: 'a, 'a> Deserialize<'de> for Doc<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DocVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for DocVisitor<'a> {
            type Value = Doc<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ECS document")
            }
            // As `#[derive(Deserialize)]` reads a struct (unknown keys skipped, a known key twice
            // is an error), plus the dotted label keys.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'a>, A::Error> {
                let mut doc = Doc {
                    timestamp: None,
                    metricset: None,
                    data_stream: None,
                    event: None,
                    orchestrator: None,
                    kubernetes: None,
                    dotted_labels: Labels(Vec::new()),
                };
                let mut seen = [false; DOC_FIELDS.len()];
                while let Some(Text(key)) = map.next_key()? {
                    let Some(field) = DOC_FIELDS.iter().position(|f| *f == key) else {
                        match dotted_label_key(key) {
                            Some(Some(label)) => map.next_value_seed(LabelValue {
                                key: label,
                                depth: 1,
                                out: &mut doc.dotted_labels.0,
                            })?,
                            // `"kubernetes.labels": {...}`: as the nested object.
                            Some(None) => map.next_value_seed(LabelValue {
                                key: Cow::Borrowed(""),
                                depth: 0,
                                out: &mut doc.dotted_labels.0,
                            })?,
                            None => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                        continue;
                    };
                    if std::mem::replace(&mut seen[field], true) {
                        return Err(de::Error::duplicate_field(DOC_FIELDS[field]));
                    }
                    match field {
                        0 => doc.timestamp = map.next_value()?,
                        1 => doc.metricset = map.next_value()?,
                        2 => doc.data_stream = map.next_value()?,
                        3 => doc.event = map.next_value()?,
                        4 => doc.orchestrator = map.next_value()?,
                        _ => doc.kubernetes = map.next_value()?,
                    }
                }
                Ok(doc)
            }
        }
        deserializer.deserialize_map(DocVisitor(PhantomData))
    }
}

/// For a top-level key `kubernetes.labels.<key>`: `Some(Some(<key>))`, de-dotted; for
/// `kubernetes.labels` itself `Some(None)`; for any other key `None`.
fn dotted_label_key(key: Cow<'_, str>) -> Option<Option<Cow<'_, str>>> {
    let rest = key.strip_prefix(DOTTED_LABELS)?;
    if rest.is_empty() {
        return Some(None);
    }
    let label = rest.strip_prefix('.').filter(|l| !l.is_empty())?;
    let start = key.len() - label.len();
    Some(Some(dedot(match key {
        Cow::Borrowed(k) => Cow::Borrowed(&k[start..]),
        Cow::Owned(k) => Cow::Owned(k[start..].to_owned()),
    })))
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

/// `kubernetes.labels`: the labels with string values, keyed as Elastic stores them, de-dotted
/// (`app.kubernetes.io/name` is `app_kubernetes_io/name`). Elastic Agent and Metricbeat de-dot
/// label keys by default (`labels.dedot: true`); with `labels.dedot: false` they nest them at
/// every dot instead (`{"app": {"kubernetes": {"io/name": "x"}}}`, a key that is also a prefix of
/// another renamed `<key>.value`), which is flattened here to the same de-dotted key
/// (`app_kubernetes_io/name`, `app_value`). Values that are not strings are skipped, and so is
/// anything nested deeper than [`MAX_LABEL_NESTING`]. A key with a dot that arrives as one key
/// is de-dotted too, so that a label has one key however the agent was configured.
pub(super) struct Labels<'a>(pub(super) Vec<(Cow<'a, str>, Cow<'a, str>)>);

/// The most levels a nested label is flattened from: `{"a": {"b": "x"}}` is a label of two levels
/// (`a_b`). A level is a dot of the original key, and real keys have a handful; anything nested
/// deeper is skipped.
pub(super) const MAX_LABEL_NESTING: usize = 16;

impl<'de: 'a, 'a> Deserialize<'de> for Labels<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut labels = Vec::new();
        deserializer.deserialize_map(LabelValue {
            key: Cow::Borrowed(""),
            depth: 0,
            out: &mut labels,
        })?;
        Ok(Labels(labels))
    }
}

/// `.` -> `_`, as Elastic's `labels.dedot` does; borrowed unless there is a dot.
fn dedot(key: Cow<'_, str>) -> Cow<'_, str> {
    if key.contains('.') {
        Cow::Owned(key.replace('.', "_"))
    } else {
        key
    }
}

/// The value of the label (or label prefix) `key`, `depth` objects below `kubernetes.labels`
/// (0: the labels object itself, whose keys are the labels): a string is a label, an object
/// holds labels whose keys continue `key` (joined by `_`), anything else is skipped.
struct LabelValue<'o, 'a> {
    key: Cow<'a, str>,
    depth: usize,
    out: &'o mut Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for LabelValue<'_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for LabelValue<'_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of labels")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.label(Cow::Borrowed(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.label(Cow::Owned(v.to_owned()));
        Ok(())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.label(Cow::Owned(v));
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let LabelValue { key, depth, out } = self;
        if depth >= MAX_LABEL_NESTING {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        while let Some(Text(name)) = map.next_key()? {
            let name = dedot(name);
            let key = if depth == 0 {
                name
            } else {
                let mut joined = String::with_capacity(key.len() + 1 + name.len());
                joined.push_str(&key);
                joined.push('_');
                joined.push_str(&name);
                Cow::Owned(joined)
            };
            map.next_value_seed(LabelValue {
                key,
                depth: depth + 1,
                out: &mut *out,
            })?;
        }
        Ok(())
    }
}

impl<'a> LabelValue<'_, 'a> {
    fn label(self, value: Cow<'a, str>) {
        // A string in place of the labels object itself is no label.
        if self.depth > 0 {
            self.out.push((self.key, value));
        }
    }
}

/// A string, borrowed from the payload unless it has escapes. (serde's own `Cow<str>` borrows
/// only as a field's whole type, never inside an `Option`: it would allocate every string.)
pub(super) struct Text<'a>(Cow<'a, str>);

struct TextVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Cow<'a, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_str(TextVisitor(PhantomData))
            .map(Text)
    }
}
