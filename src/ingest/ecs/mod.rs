//! Elastic Agent and Metricbeat Kubernetes documents (ECS JSON, one document per Kafka message)
//! -> [`UsageEvent`]s, by §4.3/§4.4 of the Usage Tracking Standard. Pure, no I/O.
//!
//! Every document becomes exactly one [`EcsOutcome`] or a [`Rejection`]:
//!
//! | document | outcome |
//! |---|---|
//! | `pod` / `container` (kubelet, the one chosen by [`UsageSource`]) | cpu and memory `usage` |
//! | `state_container` | cpu and memory `request` / `limit` |
//! | `state_node` (or `node`, by [`CapacitySource`]) | cpu and memory `capacity`, no namespace |
//! | `volume` | storage `usage` |
//! | `state_persistentvolumeclaim` | storage `request` |
//! | one of those, without any accounted field | [`EcsOutcome::Empty`] |
//! | the other source of usage or capacity, a known but irrelevant `kubernetes` metricset | [`EcsOutcome::Skipped`] |
//! | another module (`system.cpu` ...) | [`EcsOutcome::Skipped`]`(`[`NON_KUBERNETES`]`)` |
//! | not one JSON object | `not_json` |
//! | an unknown `kubernetes` metricset, or no metricset at all | `unknown_metricset` |
//! | a wrong type, a negative amount, no `@timestamp`, no cluster identity | `invalid_event` |
//! | usage, request or limit without `kubernetes.namespace` | `no_namespace` |
//! | a number JSON cannot hold in a double (`1e400`) | `out_of_range` |
//!
//! Before an event is published, [`check_event`] holds it to the standard's limits
//! ([`limits::check_usage_event`]: a control character or an over-long string is
//! `invalid_string`; a time outside 2000..2100, an interval over a day or a quantity over 10²¹ is
//! `out_of_range`) and to the clock (ending more than the future skew after now:
//! `future_timestamp`). The normaliser itself never panics, whatever the payload.
//!
//! A gauge `v` sampled every `p` seconds at `t` is `v × p` over `[t − p, t)`; `p` is
//! `metricset.period` (ms) or the configured default. The event id is a hash of the document's
//! identity and time, so a redelivered document gets the same id and is counted once downstream.
//! Pod network counters are cumulative: [`NetworkCounters`] turns consecutive readings into usage.
//!
//! Parsing borrows from the payload: a document costs no allocation until it becomes an event.
//!
//! Files: `doc.rs` the borrowed document types and parsing, `measure.rs` the mapping of a
//! document to an event, `network.rs` pod network counters, `id.rs` event ids, `tests.rs` the unit
//! tests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DeadLetterReason, Rejection};
use crate::standard::limits;
use crate::standard::{EpochMillis, UsageEvent};

mod doc;
mod id;
mod measure;
mod network;
#[cfg(test)]
mod tests;

pub use network::{NetworkCounters, PodNetworkSample};

/// [`EcsOutcome::Skipped`] label of documents from modules other than `kubernetes`.
pub const NON_KUBERNETES: &str = "non_kubernetes";

/// Which kubelet metricset cpu and memory usage come from. A pod's `pod` sample and its
/// containers' `container` samples measure the same consumption, so only one is accounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// `container` (the level requests and limits are set on); `pod` documents are skipped.
    #[default]
    Container,
    /// `pod`; `container` documents are skipped.
    Pod,
}

/// Which metricset node allocatable (cluster capacity) comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacitySource {
    /// kube-state-metrics `state_node`; kubelet `node` documents are skipped.
    #[default]
    StateNode,
    /// kubelet `node`, which carried allocatable up to Metricbeat 7.0; `state_node` is skipped.
    Node,
}

/// How documents of one input become events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsSettings {
    /// Cluster id of documents without `orchestrator.cluster.id` or `.name`.
    pub default_cluster_id: Option<String>,
    /// Sample period of documents without `metricset.period`.
    pub default_period: Duration,
    /// CloudEvents `source` of the events, e.g. `//elastic-agent/elastic.metrics.kubernetes`.
    pub source: String,
    /// Where cpu and memory usage come from.
    pub usage_from: UsageSource,
    /// Where node capacity comes from.
    pub capacity_from: CapacitySource,
}

impl EcsSettings {
    /// Settings with `source`, a 10 s default period, no default cluster and the default sources.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            default_cluster_id: None,
            default_period: Duration::from_secs(10),
            source: source.into(),
            usage_from: UsageSource::default(),
            capacity_from: CapacitySource::default(),
        }
    }
}

/// What became of one document.
#[derive(Debug, Clone, PartialEq)]
// Returned and consumed at once: boxing the event would cost an allocation per document.
#[allow(clippy::large_enum_variant)]
pub enum EcsOutcome {
    /// An event to publish.
    Usage(UsageEvent),
    /// A metricset that is not accounted (or accounted from another metricset); the label is the
    /// metricset name, or [`NON_KUBERNETES`].
    Skipped(&'static str),
    /// An accounted metricset whose document carries none of the accounted fields (e.g. a
    /// container without requests or limits); the label is the metricset name.
    Empty(&'static str),
    /// A `pod` document read for its cumulative network counters only (cpu and memory come from
    /// `container`): [`NetworkCounters`] makes usage of consecutive readings.
    PodNetwork(PodNetworkSample),
}

/// Turns ECS documents into [`UsageEvent`]s.
#[derive(Debug, Clone)]
pub struct EcsNormaliser {
    settings: EcsSettings,
    default_period_ms: i64,
}

/// A document's rejection for `reason`.
fn reject(reason: DeadLetterReason, detail: impl Into<String>) -> Rejection {
    Rejection::new(reason, detail)
}

impl EcsNormaliser {
    /// A normaliser; fails if the default period is under a millisecond.
    pub fn new(settings: EcsSettings) -> anyhow::Result<Self> {
        let default_period_ms = i64::try_from(settings.default_period.as_millis())?;
        anyhow::ensure!(
            default_period_ms >= 1,
            "the default period must be at least 1 ms, not {:?}",
            settings.default_period
        );
        Ok(Self {
            settings,
            default_period_ms,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &EcsSettings {
        &self.settings
    }
}

/// The clock-dependent rule of the standard (§6.4 `future_timestamp`): an event may end at most
/// `future_skew_ms` after `now`. The normaliser has no clock; the caller passes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Processing time, epoch ms.
    pub now: EpochMillis,
    /// How far ahead of `now` an event may end (`[window] future_skew`).
    pub future_skew_ms: i64,
}

impl Clock {
    /// Refuses `end` if it is more than the skew ahead of now (`future_timestamp`).
    fn check_end(self, what: &str, end: EpochMillis) -> Result<(), Rejection> {
        let latest = self.now.saturating_add(self.future_skew_ms);
        if end > latest {
            return Err(reject(
                DeadLetterReason::FutureTimestamp,
                format!(
                    "{what} {end} ms is more than {} ms after now ({})",
                    self.future_skew_ms, self.now
                ),
            ));
        }
        Ok(())
    }
}

/// Checks an event built from a document before it is published: the standard's limits on every
/// string, time, interval and quantity ([`limits::check_usage_event`]: `invalid_string` or
/// `out_of_range`), and an end not more than the skew ahead of the clock (`future_timestamp`).
pub fn check_event(event: &UsageEvent, clock: Clock) -> Result<(), Rejection> {
    limits::check_usage_event(event)?;
    clock.check_end("the interval ends at", event.end)
}
