//! Producers' messages -> validated inputs of the windowing stage. Every message either becomes a
//! [`Sample`] / [`CostLine`], is excluded by a rule (counted), or is rejected with a
//! [`DeadLetterReason`] and goes to the dead-letter topic. Pure, no I/O.

pub mod ecs;
pub mod exclusion;
mod groups;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::measure::{Quantity, Resource};
use crate::standard::limits::{self, LimitError};
use crate::standard::{CostEvent, EpochMillis, MeasurementKind, UsageEvent};
use crate::window::{CostLine, Sample};

pub use exclusion::{ExcludedBy, ExclusionRules, Exclusions};
pub use groups::{Aggregation, AggregationError, WORKLOAD};

/// Why a message went to the dead-letter topic (the `dlq.reason` header and a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeadLetterReason {
    /// Not in Confluent wire format.
    NotAvro,
    /// The schema id is unknown to the registry.
    UnknownSchema,
    /// The writer schema cannot be read as ours, or the body does not match it.
    IncompatibleSchema,
    /// Decoded, but breaks a rule of the standard.
    InvalidEvent,
    /// Usage without a namespace.
    NoNamespace,
    /// Event time too far ahead of processing time.
    FutureTimestamp,
    /// Older than the retention horizon.
    TooLate,
    /// An Elastic document that is not one JSON object (see `ecs`).
    NotJson,
    /// An Elastic `kubernetes` metricset this version does not know (see `ecs`).
    UnknownMetricset,
    /// A string with a control character, or longer than its field allows.
    InvalidString,
    /// A time, interval, quantity or amount outside the standard's limits, or a bill line that
    /// would take its windows' cost beyond them.
    OutOfRange,
    /// A bill line in another currency than the lines (or the rate card) of its windows.
    CurrencyMismatch,
}

impl DeadLetterReason {
    /// Header and label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::NotAvro => "not_avro",
            DeadLetterReason::UnknownSchema => "unknown_schema",
            DeadLetterReason::IncompatibleSchema => "incompatible_schema",
            DeadLetterReason::InvalidEvent => "invalid_event",
            DeadLetterReason::NoNamespace => "no_namespace",
            DeadLetterReason::FutureTimestamp => "future_timestamp",
            DeadLetterReason::TooLate => "too_late",
            DeadLetterReason::NotJson => "not_json",
            DeadLetterReason::UnknownMetricset => "unknown_metricset",
            DeadLetterReason::InvalidString => "invalid_string",
            DeadLetterReason::OutOfRange => "out_of_range",
            DeadLetterReason::CurrencyMismatch => "currency_mismatch",
        }
    }
}

/// A message that cannot be accounted, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Machine-readable reason.
    pub reason: DeadLetterReason,
    /// Human-readable detail.
    pub detail: String,
}

impl From<LimitError> for Rejection {
    fn from(error: LimitError) -> Self {
        let reason = if error.is_string() {
            DeadLetterReason::InvalidString
        } else {
            DeadLetterReason::OutOfRange
        };
        Rejection::new(reason, error.to_string())
    }
}

impl Rejection {
    /// A rejection for `reason`.
    pub fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

/// What became of one input event.
#[derive(Debug, Clone, PartialEq)]
pub enum Intake<T> {
    /// To be accounted.
    Accepted(T),
    /// Left out by an exclusion rule.
    Excluded(ExcludedBy),
    /// Valid, but carries no resource this version accounts (counted in a metric).
    Empty,
}

/// Where cost lines without a cluster are allocated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostScope {
    /// Billing account or sub account (GCP project, Azure subscription) id.
    pub account: String,
    /// Cluster whose namespaces share its untagged cost.
    pub cluster_id: String,
}

/// Stable 128-bit dedup key of `(source, id)`, the same in every process and release.
pub fn dedup_key(source: &str, id: &str) -> u128 {
    // xxh3-128 of `source \0 id`. Joined on the stack when short (the usual case, and no heap
    // allocation per event); the digest is the same either way.
    const STACK: usize = 256;
    let len = source.len() + 1 + id.len();
    let mut stack = [0u8; STACK];
    let mut heap = Vec::new();
    let bytes: &mut [u8] = if len <= STACK {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    bytes[..source.len()].copy_from_slice(source.as_bytes());
    bytes[source.len()] = 0;
    bytes[source.len() + 1..].copy_from_slice(id.as_bytes());
    xxhash_rust::xxh3::xxh3_128(bytes)
}

/// Validates a usage event and turns it into a [`Sample`].
pub fn usage_sample(
    event: &UsageEvent,
    exclusions: &Exclusions,
    now: EpochMillis,
    future_skew_ms: i64,
) -> Result<Intake<Sample>, Rejection> {
    use DeadLetterReason::*;
    if event.id.is_empty() || event.source.is_empty() {
        return Err(Rejection::new(
            InvalidEvent,
            "id and source must not be empty",
        ));
    }
    if event.subject.cluster_id.is_empty() {
        return Err(Rejection::new(
            InvalidEvent,
            "subject.cluster_id must not be empty",
        ));
    }
    if event.end < event.start {
        return Err(Rejection::new(
            InvalidEvent,
            format!("end {} before start {}", event.end, event.start),
        ));
    }
    limits::check_usage_event(event)?;
    if event.end > now.saturating_add(future_skew_ms) {
        return Err(Rejection::new(
            FutureTimestamp,
            format!(
                "interval ends at {} ms, more than {future_skew_ms} ms after now ({now})",
                event.end
            ),
        ));
    }
    if let Some(rule) = exclusions.usage(event) {
        return Ok(Intake::Excluded(rule));
    }
    let namespace = event.subject.namespace.as_deref().filter(|n| !n.is_empty());
    let mut quantities = Vec::with_capacity(event.measurements.len());
    let mut meters = Vec::new();
    for m in &event.measurements {
        let quantity = Quantity::from_units(m.quantity).ok_or_else(|| {
            Rejection::new(
                InvalidEvent,
                format!(
                    "{} {:?} quantity {} is not finite and >= 0",
                    m.resource, m.kind, m.quantity
                ),
            )
        })?;
        let Some(resource) = Resource::parse(&m.resource) else {
            if is_meter(&m.resource) && m.kind != MeasurementKind::Capacity {
                if let Some(namespace) = namespace {
                    if m.unit.is_empty() {
                        return Err(Rejection::new(
                            InvalidEvent,
                            format!("{} in namespace {namespace:?} has no unit", m.resource),
                        ));
                    }
                    meters.push((
                        Arc::from(m.resource.as_str()),
                        Arc::from(m.unit.as_str()),
                        m.kind,
                        quantity,
                    ));
                }
            }
            // Other names, and cluster-scoped extension figures, are valid and not accounted.
            continue;
        };
        if m.unit != resource.unit() {
            return Err(Rejection::new(
                InvalidEvent,
                format!(
                    "{} must be in {}, not {}",
                    m.resource,
                    resource.unit(),
                    m.unit
                ),
            ));
        }
        match (namespace, m.kind) {
            (None, MeasurementKind::Capacity)
            | (
                Some(_),
                MeasurementKind::Usage | MeasurementKind::Request | MeasurementKind::Limit,
            ) => {}
            (None, kind) => {
                return Err(Rejection::new(
                    NoNamespace,
                    format!("{kind:?} of {} without a namespace", m.resource),
                ))
            }
            (Some(n), MeasurementKind::Capacity) => {
                return Err(Rejection::new(
                    InvalidEvent,
                    format!("capacity is cluster-scoped, but namespace is {n:?}"),
                ))
            }
        }
        quantities.push((resource, m.kind, quantity));
    }
    if quantities.is_empty() && meters.is_empty() {
        return Ok(Intake::Empty);
    }
    Ok(Intake::Accepted(Sample {
        dedup_key: dedup_key(&event.source, &event.id),
        cluster_id: Arc::from(event.subject.cluster_id.as_str()),
        cluster_name: event.subject.cluster_name.as_deref().map(Arc::from),
        namespace: namespace.map(Arc::from),
        start: event.start,
        end: event.end,
        quantities,
        groups: Vec::new(),
        meters,
        shared: false,
    }))
}

/// Whether `resource` names an extension the tracker accounts: `x-<vendor>-<name>` (§4.1).
pub fn is_meter(resource: &str) -> bool {
    resource
        .strip_prefix("x-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(vendor, name)| !vendor.is_empty() && !name.is_empty())
}

/// Validates a cost event and resolves the cluster it is allocated in.
pub fn cost_line(
    event: &CostEvent,
    exclusions: &Exclusions,
    scopes: &[CostScope],
    now: EpochMillis,
) -> Result<Intake<CostLine>, Rejection> {
    use DeadLetterReason::*;
    if event.id.is_empty() || event.source.is_empty() {
        return Err(Rejection::new(
            InvalidEvent,
            "id and source must not be empty",
        ));
    }
    if event.charge_period_end <= event.charge_period_start {
        return Err(Rejection::new(
            InvalidEvent,
            "charge_period_end must be after charge_period_start",
        ));
    }
    if event.billing_currency.len() != 3
        || !event
            .billing_currency
            .bytes()
            .all(|b| b.is_ascii_uppercase())
    {
        return Err(Rejection::new(
            InvalidEvent,
            format!(
                "billing_currency {:?} is not an ISO 4217 code",
                event.billing_currency
            ),
        ));
    }
    limits::check_cost_event(event)?;
    if let Some(meter) = event.meter.as_deref().filter(|m| !is_meter(m)) {
        return Err(Rejection::new(
            InvalidEvent,
            format!("meter {meter:?} is not an extension resource x-<vendor>-<name>"),
        ));
    }
    if event.charge_period_start > now.saturating_add(limits::MAX_CHARGE_LEAD_MS) {
        return Err(Rejection::new(
            FutureTimestamp,
            format!(
                "charge period starts at {} ms, more than {} ms after now ({now})",
                event.charge_period_start,
                limits::MAX_CHARGE_LEAD_MS
            ),
        ));
    }
    if let Some(rule) = exclusions.cost(event) {
        return Ok(Intake::Excluded(rule));
    }
    Ok(Intake::Accepted(CostLine {
        source: event.source.clone(),
        id: event.id.clone(),
        revision: event.revision,
        cluster_id: cost_cluster(event, scopes),
        namespace: event.namespace.clone().filter(|n| !n.is_empty()),
        category: event.category,
        status: event.cost_status,
        currency: event.billing_currency.clone(),
        start: event.charge_period_start,
        end: event.charge_period_end,
        amount: event.effective_cost_micros,
        meter: event.meter.clone(),
    }))
}

/// The line's own cluster, else the configured scope of its account, else the account itself
/// (a pseudo-cluster without usage, so the cost shows as `__unallocated__` rather than vanish).
fn cost_cluster(event: &CostEvent, scopes: &[CostScope]) -> String {
    if let Some(cluster) = event.cluster_id.as_deref().filter(|c| !c.is_empty()) {
        return cluster.to_owned();
    }
    scope_cluster(event, scopes).map_or_else(
        || {
            let account = event
                .sub_account_id
                .as_deref()
                .unwrap_or(&event.billing_account_id);
            format!("account:{account}")
        },
        str::to_owned,
    )
}

/// The cluster `[[cost_scopes]]` assigns to a bill line: its sub account's scope, else its
/// billing account's; of two entries for one account the last wins. The tracker allocates lines
/// without a cluster by it, and the exporters set it on such lines so that they are keyed (and
/// partitioned) like their cluster's usage.
pub fn scope_cluster<'s>(event: &CostEvent, scopes: &'s [CostScope]) -> Option<&'s str> {
    let scope = |account: &str| {
        scopes
            .iter()
            .rev()
            .find(|s| s.account == account)
            .map(|s| s.cluster_id.as_str())
    };
    event
        .sub_account_id
        .as_deref()
        .and_then(scope)
        .or_else(|| scope(&event.billing_account_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standard::{Measurement, WorkloadSubject};

    /// 2026-01-01T00:00:00Z.
    const T: i64 = 1_767_225_600_000;

    fn event(
        namespace: Option<&str>,
        kind: MeasurementKind,
        quantity: f64,
        unit: &str,
    ) -> UsageEvent {
        UsageEvent {
            specversion: "1.0".into(),
            id: "e1".into(),
            source: "//test".into(),
            event_type: "io.ferrisdx.usage.v1".into(),
            time: T + 10_000,
            start: T,
            end: T + 10_000,
            subject: WorkloadSubject {
                cluster_id: "c".into(),
                namespace: namespace.map(str::to_owned),
                ..Default::default()
            },
            measurements: vec![Measurement {
                resource: "cpu".into(),
                kind,
                quantity,
                unit: unit.into(),
            }],
        }
    }

    fn reason(result: Result<Intake<Sample>, Rejection>) -> DeadLetterReason {
        result.unwrap_err().reason
    }

    #[test]
    fn valid_usage_becomes_an_exact_sample() {
        let none = Exclusions::default();
        let Intake::Accepted(sample) = usage_sample(
            &event(Some("a"), MeasurementKind::Usage, 2.5, "core_seconds"),
            &none,
            T + 10_000,
            0,
        )
        .unwrap() else {
            panic!("accepted");
        };
        assert_eq!(
            sample.quantities,
            vec![(
                Resource::Cpu,
                MeasurementKind::Usage,
                Quantity::from_micros(2_500_000)
            )]
        );
        assert_eq!(sample.dedup_key, dedup_key("//test", "e1"));
        assert_ne!(
            dedup_key("a", "bc"),
            dedup_key("ab", "c"),
            "the separator keeps keys apart"
        );
    }

    #[test]
    fn dedup_keys_are_xxh3_of_source_nul_id_at_every_length() {
        // Persisted in checkpoints: the digest must never change.
        assert_eq!(
            dedup_key("//test", "e1"),
            xxhash_rust::xxh3::xxh3_128(b"//test\0e1")
        );
        for len in [0, 1, 254, 255, 256, 300, 5000] {
            let id = "x".repeat(len);
            let joined = format!("//src\0{id}");
            assert_eq!(
                dedup_key("//src", &id),
                xxhash_rust::xxh3::xxh3_128(joined.as_bytes()),
                "{len}"
            );
        }
    }

    #[test]
    fn broken_usage_is_rejected_with_its_reason() {
        let none = Exclusions::default();
        use DeadLetterReason::*;
        assert_eq!(
            reason(usage_sample(
                &event(None, MeasurementKind::Usage, 1.0, "core_seconds"),
                &none,
                T + 10_000,
                0
            )),
            NoNamespace
        );
        assert_eq!(
            reason(usage_sample(
                &event(Some("a"), MeasurementKind::Usage, f64::NAN, "core_seconds"),
                &none,
                T + 10_000,
                0
            )),
            InvalidEvent
        );
        assert_eq!(
            reason(usage_sample(
                &event(Some("a"), MeasurementKind::Usage, -1.0, "core_seconds"),
                &none,
                T + 10_000,
                0
            )),
            InvalidEvent
        );
        assert_eq!(
            reason(usage_sample(
                &event(Some("a"), MeasurementKind::Usage, 1.0, "bytes"),
                &none,
                T + 10_000,
                0
            )),
            InvalidEvent
        );
        assert_eq!(
            reason(usage_sample(
                &event(Some("a"), MeasurementKind::Capacity, 1.0, "core_seconds"),
                &none,
                T + 10_000,
                0
            )),
            InvalidEvent
        );
        assert_eq!(
            reason(usage_sample(
                &event(Some("a"), MeasurementKind::Usage, 1.0, "core_seconds"),
                &none,
                T,
                5_000
            )),
            FutureTimestamp
        );
    }

    #[test]
    fn a_line_without_a_cluster_takes_its_accounts_scope_else_the_account() {
        use std::collections::BTreeMap;

        use crate::standard::{CostCategory, CostStatus, COST_EVENT_TYPE, SPEC_VERSION};
        let line = |sub: Option<&str>, cluster: Option<&str>| CostEvent {
            specversion: SPEC_VERSION.into(),
            id: "l".into(),
            source: "//bill".into(),
            event_type: COST_EVENT_TYPE.into(),
            time: T,
            revision: 1,
            provider: "gcp".into(),
            billing_account_id: "billing".into(),
            sub_account_id: sub.map(Into::into),
            cluster_id: cluster.map(Into::into),
            namespace: None,
            charge_period_start: T,
            charge_period_end: T + 3_600_000,
            billed_cost_micros: 1,
            effective_cost_micros: 1,
            billing_currency: "EUR".into(),
            category: CostCategory::Compute,
            cost_status: CostStatus::Final,
            service_name: None,
            sku_id: None,
            resource_id: None,
            labels: BTreeMap::new(),
            meter: None,
        };
        let scope = |account: &str, cluster: &str| CostScope {
            account: account.into(),
            cluster_id: cluster.into(),
        };
        let scopes = [
            scope("project", "first"),
            scope("billing", "b"),
            scope("project", "gke"),
        ];
        for (sub, cluster, scoped, allocated) in [
            (Some("project"), None, Some("gke"), "gke"),
            (Some("other"), None, Some("b"), "b"),
            (None, None, Some("b"), "b"),
            (Some("project"), Some("own"), Some("gke"), "own"),
            (Some("project"), Some(""), Some("gke"), "gke"),
        ] {
            let line = line(sub, cluster);
            assert_eq!(scope_cluster(&line, &scopes), scoped, "{sub:?} {cluster:?}");
            assert_eq!(
                cost_cluster(&line, &scopes),
                allocated,
                "{sub:?} {cluster:?}"
            );
        }
        let unscoped = line(Some("other"), None);
        assert_eq!(scope_cluster(&unscoped, &scopes[2..]), None);
        assert_eq!(cost_cluster(&unscoped, &scopes[2..]), "account:other");
        assert_eq!(cost_cluster(&line(None, None), &[]), "account:billing");
    }
}
