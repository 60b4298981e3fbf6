//! The three records of the Usage Tracking Standard as Rust types.
//!
//! Field names and meanings mirror `schemas/*.avsc` one to one; serde maps them to Avro. Timestamps
//! are UTC epoch milliseconds (`timestamp-millis`), money is integer micro-units of the currency.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// CloudEvents `specversion` carried by every standard event.
pub const SPEC_VERSION: &str = "1.0";
/// CloudEvents `type` of a [`UsageEvent`].
pub const USAGE_EVENT_TYPE: &str = "io.ferrisdx.usage.v1";
/// CloudEvents `type` of a [`CostEvent`].
pub const COST_EVENT_TYPE: &str = "io.ferrisdx.cost.v1";

/// UTC epoch milliseconds.
pub type EpochMillis = i64;

/// Micro-units of a currency: 1 EUR = 1 000 000. Exact, never a float.
pub type Micros = i64;

/// Measured consumption of one workload over `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// CloudEvents spec version, always [`SPEC_VERSION`].
    pub specversion: String,
    /// Producer-unique, deterministic id; `(source, id)` is the dedup key.
    pub id: String,
    /// URI-reference of the producer instance.
    pub source: String,
    /// CloudEvents type, [`USAGE_EVENT_TYPE`].
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the measurement was observed.
    pub time: EpochMillis,
    /// Interval start, inclusive: the event time.
    pub start: EpochMillis,
    /// Interval end, exclusive.
    pub end: EpochMillis,
    /// What was measured.
    pub subject: WorkloadSubject,
    /// The quantities measured over the interval.
    pub measurements: Vec<Measurement>,
}

/// The measured Kubernetes object, in OpenTelemetry `k8s.*` terms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSubject {
    /// Stable cluster identity.
    pub cluster_id: String,
    /// Human-readable cluster name.
    pub cluster_name: Option<String>,
    /// Namespace; `None` only for cluster-scoped capacity (nodes).
    pub namespace: Option<String>,
    /// Pod name.
    pub pod_name: Option<String>,
    /// Pod uid.
    pub pod_uid: Option<String>,
    /// Container name.
    pub container_name: Option<String>,
    /// Node name.
    pub node_name: Option<String>,
    /// Owning workload kind (Deployment, StatefulSet, Node ...).
    pub workload_kind: Option<String>,
    /// Owning workload name.
    pub workload_name: Option<String>,
    /// Kubernetes labels of the measured object.
    pub labels: BTreeMap<String, String>,
}

/// One quantity of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// `cpu`, `memory`, `storage`, `network_rx`, `network_tx`, `gpu` or an extension.
    pub resource: String,
    /// Usage, request, limit or capacity.
    pub kind: MeasurementKind,
    /// Finite, non-negative amount in `unit` over the interval.
    pub quantity: f64,
    /// `core_seconds`, `byte_seconds`, `bytes` or `gpu_seconds`.
    pub unit: String,
}

/// What a [`Measurement`] says about its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeasurementKind {
    /// Consumed.
    Usage,
    /// Reserved (Kubernetes request).
    Request,
    /// Ceiling (Kubernetes limit).
    Limit,
    /// Allocatable on a node: cluster capacity.
    Capacity,
}

/// One bill line for a scope over a charge period (FOCUS column names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEvent {
    /// CloudEvents spec version, always [`SPEC_VERSION`].
    pub specversion: String,
    /// Bill line identity, stable across re-exports and corrections.
    pub id: String,
    /// URI-reference of the exporter and bill.
    pub source: String,
    /// CloudEvents type, [`COST_EVENT_TYPE`].
    #[serde(rename = "type")]
    pub event_type: String,
    /// When this version of the line was produced.
    pub time: EpochMillis,
    /// Version of the line: a higher revision replaces the amount of a lower one.
    pub revision: i64,
    /// FOCUS ProviderName, lower-case (`gcp`, `azure`, `onprem` ...).
    pub provider: String,
    /// FOCUS BillingAccountId.
    pub billing_account_id: String,
    /// FOCUS SubAccountId (GCP project, Azure subscription).
    pub sub_account_id: Option<String>,
    /// Cluster the line belongs to, when known.
    pub cluster_id: Option<String>,
    /// Namespace the bill itself is tagged with: allocated to it directly.
    pub namespace: Option<String>,
    /// FOCUS ChargePeriodStart, inclusive.
    pub charge_period_start: EpochMillis,
    /// FOCUS ChargePeriodEnd, exclusive.
    pub charge_period_end: EpochMillis,
    /// FOCUS BilledCost.
    pub billed_cost_micros: Micros,
    /// FOCUS EffectiveCost: the amount that is allocated.
    pub effective_cost_micros: Micros,
    /// FOCUS BillingCurrency (ISO 4217).
    pub billing_currency: String,
    /// Which usage the line is apportioned by.
    pub category: CostCategory,
    /// Estimated or final.
    pub cost_status: CostStatus,
    /// FOCUS ServiceName.
    pub service_name: Option<String>,
    /// FOCUS SkuId.
    pub sku_id: Option<String>,
    /// FOCUS ResourceId.
    pub resource_id: Option<String>,
    /// Provider labels of the line.
    pub labels: BTreeMap<String, String>,
    /// Extension resource the line is apportioned by, instead of its category.
    #[serde(default)]
    pub meter: Option<String>,
}

impl CostEvent {
    /// The Kafka key of the line (standard §6.1): its cluster, else its sub account, else its
    /// billing account.
    pub fn partition_key(&self) -> &str {
        self.cluster_id
            .as_deref()
            .or(self.sub_account_id.as_deref())
            .filter(|k| !k.is_empty())
            .unwrap_or(&self.billing_account_id)
    }
}

/// Which usage a cost is apportioned by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CostCategory {
    /// Apportioned by cpu.
    Compute,
    /// Apportioned by memory.
    Memory,
    /// Apportioned by storage.
    Storage,
    /// Apportioned by network bytes.
    Network,
    /// Apportioned by configured weights.
    License,
    /// Apportioned by configured weights (the enum's default for unknown symbols).
    Other,
    /// Apportioned by gpu (schema version 2; older readers see `other`).
    Gpu,
}

/// Whether a bill line is preliminary or invoiced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CostStatus {
    /// From a rate card or a preliminary bill.
    Estimated,
    /// Invoiced.
    Final,
}

/// Usage and allocated cost of one namespace in one cluster over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Cluster identity.
    pub cluster_id: String,
    /// Last seen cluster name.
    pub cluster_name: Option<String>,
    /// Namespace, or `__idle__` / `__unallocated__`.
    pub namespace: String,
    /// Window start, inclusive.
    pub window_start: EpochMillis,
    /// Window end, exclusive.
    pub window_end: EpochMillis,
    /// Open (still growing) or closed.
    pub window_status: WindowStatus,
    /// Monotonic per key, from 1.
    pub revision: i64,
    /// Used vs reserved, per resource.
    pub resources: Vec<ResourceUsage>,
    /// Allocated cost, one entry per origin charge.
    pub costs: Vec<AllocatedCost>,
    /// Sum of `costs[].allocated_cost_micros`.
    pub cost_total_micros: Micros,
    /// Currency of all amounts; `None` when unpriced.
    pub currency: Option<String>,
    /// Unpriced, estimated or final.
    pub cost_status: RecordCostStatus,
    /// `None` for a namespace record; `label:<key>` or `workload` for a group inside it.
    #[serde(default)]
    pub group_by: Option<String>,
    /// The group's label value ([`UNLABELLED`] when missing) or `<kind>/<name>` of its workload.
    #[serde(default)]
    pub group_value: Option<String>,
    /// Cost of the record's own usage before sharing; `None` from schema version 1 writers.
    #[serde(default)]
    pub own_cost_micros: Option<Micros>,
    /// Cost received from shared namespaces and workloads.
    #[serde(default)]
    pub shared_cost_micros: Option<Micros>,
    /// Cost of idle capacity received.
    #[serde(default)]
    pub idle_cost_micros: Option<Micros>,
    /// Whether the namespace is shared platform cost (its cost moved to receivers).
    #[serde(default)]
    pub shared: bool,
}

/// Group value of workloads without the label a record groups by.
pub const UNLABELLED: &str = "__unlabelled__";

/// Used vs reserved capacity of one resource in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceUsage {
    /// Resource name, as in [`Measurement::resource`].
    pub resource: String,
    /// Unit of all quantities.
    pub unit: String,
    /// Sum of usage.
    pub used: f64,
    /// Sum of requests.
    pub requested: f64,
    /// Sum of limits.
    pub limit: f64,
    /// `max(requested, used)`.
    pub allocated: f64,
    /// `max(requested - used, 0)`.
    pub unused: f64,
}

/// The share of one origin charge given to a record (FOCUS split cost allocation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AllocatedCost {
    /// `CostEvent::source` of the origin charge.
    pub origin_source: String,
    /// `CostEvent::id` of the origin charge.
    pub origin_id: String,
    /// Category of the origin charge.
    pub category: CostCategory,
    /// Share of the charge's in-window amount.
    pub allocated_ratio: f64,
    /// Allocated amount in micro-units.
    pub allocated_cost_micros: Micros,
    /// `None`: the record's own share. Otherwise the shared namespace (or `__idle__`) whose share
    /// of the charge cost sharing moved to this record.
    #[serde(default)]
    pub shared_from: Option<String>,
    /// The extension resource the origin charge is apportioned by, if it names one.
    #[serde(default)]
    pub meter: Option<String>,
}

/// Whether a window can still grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowStatus {
    /// The watermark has not passed the window end.
    Open,
    /// The watermark passed the window end.
    Closed,
}

/// How certain the cost of a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordCostStatus {
    /// No cost known.
    Unpriced,
    /// At least one charge is estimated.
    Estimated,
    /// Every charge is final.
    Final,
}
