//! The accountant: usage windows + bill lines + allocation -> usage records. Pure; the pipeline
//! feeds it decoded input and processing time, and ships what it emits.

mod groups;
pub mod pricing;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::allocate::{
    Charge, ClusterWindow, CostAllocator, NamespaceShare, SharingPolicy, IDLE, SHARED_WORKLOADS,
    UNALLOCATED,
};
use crate::ingest::DeadLetterReason;
use crate::measure::{MeterTotals, Quantity, Resource, ResourceTotals};
use crate::standard::{
    AllocatedCost, EpochMillis, Micros, RecordCostStatus, ResourceUsage, UsageRecord,
};
use crate::window::{
    Admission, ClusterWindowView, CostLedger, CostLine, LedgerChange, LedgerRefusal,
    PersistedWindow, Sample, WindowKey, WindowStore,
};

pub use pricing::RateCard;

/// Keeps the books: owns the window state and the bill lines, and emits records.
#[derive(Debug)]
pub struct Accountant {
    store: WindowStore,
    ledger: CostLedger,
    allocator: CostAllocator,
    rate_card: Option<RateCard>,
    evicted: Evicted,
    cost_changes: BTreeMap<(String, &'static str), Micros>,
}

/// State dropped since the last checkpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evicted {
    /// (cluster, window start) past retention.
    pub windows: Vec<(Arc<str>, EpochMillis)>,
    /// (source, id) of bill lines whose windows are all gone.
    pub cost_lines: Vec<(String, String)>,
}

/// What one checkpoint persists, in one database transaction.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// New revisions to publish and upsert.
    pub records: Vec<UsageRecord>,
    /// Records that became empty: deleted from Postgres, tombstoned on Kafka.
    pub withdrawn: Vec<UsageRecord>,
    /// Changed cluster windows.
    pub windows: Vec<(Arc<str>, EpochMillis, PersistedWindow)>,
    /// New dedup keys (window start, key).
    pub seen: Vec<(EpochMillis, u128)>,
    /// New or corrected bill lines.
    pub cost_lines: Vec<CostLine>,
    /// What to delete.
    pub evicted: Evicted,
    /// The watermark reached.
    pub watermark: Option<EpochMillis>,
    /// Net change of published cost, by (currency, kind: namespace | idle | unallocated).
    pub cost_changes: BTreeMap<(String, &'static str), Micros>,
}

/// Outcome of offering a bill line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostAdmission {
    /// New or corrected; its windows will be re-allocated.
    Applied,
    /// Same or older revision: nothing changed.
    Unchanged,
    /// A window it covers is past retention (the whole line is refused: accounting only its
    /// live part would lose the rest without a trace).
    TooLate {
        /// Windows past retention, of all it covers.
        expired: usize,
        /// Windows it covers.
        windows: usize,
    },
    /// Refused: it would mix currencies in a window or take a window's cost out of range.
    Refused(DeadLetterReason, String),
}

impl Accountant {
    /// An accountant over an empty or restored store and ledger.
    pub fn new(
        store: WindowStore,
        ledger: CostLedger,
        allocator: CostAllocator,
        rate_card: Option<RateCard>,
    ) -> Self {
        Self {
            store,
            ledger,
            allocator,
            rate_card,
            evicted: Evicted::default(),
            cost_changes: BTreeMap::new(),
        }
    }

    /// The window state.
    pub fn store(&self) -> &WindowStore {
        &self.store
    }

    /// The window state, for checkpoints.
    pub fn store_mut(&mut self) -> &mut WindowStore {
        &mut self.store
    }

    /// The bill lines, for checkpoints.
    pub fn ledger_mut(&mut self) -> &mut CostLedger {
        &mut self.ledger
    }

    /// Counts a usage sample.
    pub fn usage(&mut self, sample: &Sample) -> Admission {
        self.store.apply(sample)
    }

    /// Takes a bill line (or a correction of one).
    pub fn cost(&mut self, line: CostLine) -> CostAdmission {
        let spec = self.store.config().spec;
        let first = spec.start_of(line.start);
        let last = spec.start_of(line.end.max(line.start + 1) - 1);
        if self.store.is_expired(first) {
            let size = spec.size_ms();
            let windows = ((last - first) / size + 1) as usize;
            let expired = (first..=last)
                .step_by(size as usize)
                .take_while(|w| self.store.is_expired(*w))
                .count();
            return CostAdmission::TooLate { expired, windows };
        }
        if let Some(card) = self
            .rate_card
            .as_ref()
            .filter(|c| c.currency != line.currency)
        {
            return CostAdmission::Refused(
                DeadLetterReason::CurrencyMismatch,
                format!(
                    "the rate card prices in {}; a bill line in {} cannot be summed with its estimates",
                    card.currency, line.currency
                ),
            );
        }
        match self.ledger.upsert(line) {
            LedgerChange::Stale | LedgerChange::Unchanged => CostAdmission::Unchanged,
            LedgerChange::Refused(refusal) => {
                let reason = match refusal {
                    LedgerRefusal::CurrencyMismatch { .. } => DeadLetterReason::CurrencyMismatch,
                    LedgerRefusal::WindowTotalTooLarge { .. }
                    | LedgerRefusal::TooManyLines { .. } => DeadLetterReason::OutOfRange,
                };
                CostAdmission::Refused(reason, refusal.to_string())
            }
            LedgerChange::Changed(windows) => {
                for (cluster, window_start) in windows {
                    self.store.touch(&cluster, window_start);
                }
                CostAdmission::Applied
            }
        }
    }

    /// Re-drafts every window starting in `[from, to)` that is still held (within retention) at
    /// the next checkpoint, under the allocation rules in force now; returns how many.
    pub fn recompute(&mut self, from: EpochMillis, to: EpochMillis) -> usize {
        self.store.touch_range(from, to)
    }

    /// Moves the watermark: closes windows, evicts expired ones and the bills only they used.
    pub fn advance_to(&mut self, watermark: EpochMillis) -> Vec<(Arc<str>, EpochMillis)> {
        let evicted = self.store.advance_to(watermark);
        let retention = self.store.config().retention_ms;
        let lines = self.ledger.evict_ended_before(watermark - retention);
        self.evicted.windows.extend(evicted.iter().cloned());
        self.evicted.cost_lines.extend(lines);
        evicted
    }

    /// Records for every cluster window that changed since the last emission; each record whose
    /// content changed gets the next revision.
    fn emit(&mut self) -> (Vec<UsageRecord>, Vec<UsageRecord>) {
        let drafts: Vec<UsageRecord> = self
            .store
            .changed()
            .iter()
            .flat_map(|view| self.draft(view))
            .collect();
        let (mut records, mut withdrawn) = (Vec::with_capacity(drafts.len()), Vec::new());
        for mut record in drafts {
            let key = WindowKey {
                cluster_id: Arc::from(record.cluster_id.as_str()),
                namespace: Arc::from(record.namespace.as_str()),
                window_start: record.window_start,
                group: record
                    .group_by
                    .as_deref()
                    .zip(record.group_value.as_deref())
                    .map(|(by, value)| (Arc::from(by), Arc::from(value))),
            };
            let digest = content_digest(&record);
            let Some(revision) = self
                .store
                .next_revision(&key, digest, record.cost_total_micros)
            else {
                continue;
            };
            record.revision = revision.revision;
            let is_group = record.group_by.is_some();
            if let Some(currency) = record.currency.as_ref().filter(|_| !is_group) {
                let change = record.cost_total_micros - revision.previous_cost_micros;
                *self
                    .cost_changes
                    .entry((currency.clone(), cost_kind(&record.namespace)))
                    .or_default() += change;
            }
            let revision = revision.revision;
            if !is_empty(&record) || is_group {
                records.push(record);
            } else if revision > 1 {
                // An `__idle__` or `__unallocated__` share that vanished (usage arrived after
                // the bill, say): withdraw it, so the result does not depend on arrival order.
                withdrawn.push(record);
            }
        }
        (records, withdrawn)
    }

    /// Everything a checkpoint must persist, with the records to publish; afterwards the
    /// state counts as saved.
    pub fn take_checkpoint(&mut self) -> Checkpoint {
        let (records, withdrawn) = self.emit();
        let checkpoint = Checkpoint {
            records,
            withdrawn,
            windows: self.store.export_changed(),
            seen: self.store.take_unsaved_seen(),
            cost_lines: self.ledger.take_unsaved(),
            evicted: std::mem::take(&mut self.evicted),
            cost_changes: std::mem::take(&mut self.cost_changes),
            watermark: self.store.watermark(),
        };
        self.store.mark_emitted();
        checkpoint
    }

    /// Unrevisioned records of one cluster window: every namespace, `__idle__`, `__unallocated__`.
    fn draft(&self, view: &ClusterWindowView<'_>) -> Vec<UsageRecord> {
        let usage: Vec<(&str, &ResourceTotals)> = view
            .namespaces
            .iter()
            .filter(|(n, _)| !is_reserved(n))
            .map(|(n, t)| (n.as_ref(), *t))
            .collect();
        let parts = shared_parts(&usage, view);
        let basis = allocation_basis(&usage, &parts);
        let meters: Vec<(&str, &BTreeMap<Arc<str>, MeterTotals>)> =
            view.meters.iter().map(|(n, m)| (n.as_ref(), *m)).collect();
        let charges = self.charges(view, &usage, &meters);
        let window = ClusterWindow {
            namespaces: &basis,
            capacity: view.capacity,
            meters: &meters,
        };
        let own = self.allocator.allocate(&window, &charges);
        let present: Vec<&str> = usage.iter().map(|(n, _)| *n).collect();
        let sharing = &self.allocator.policy().sharing;
        let mut shares = sharing.share(own.clone(), &present);
        // What shared workloads kept (no receiver) stays with their namespace, and before
        // sharing their cost is their namespace's own.
        let own: Vec<NamespaceShare> = own.into_iter().map(to_namespace).collect();
        shares = shares.into_iter().map(to_namespace).collect();

        // Every namespace that has usage, a share, or an earlier record (which must be corrected).
        let mut names: Vec<&str> = view.namespaces.iter().map(|(n, _)| n.as_ref()).collect();
        names.extend(own.iter().map(|s| s.namespace.as_str()));
        names.extend(shares.iter().map(|s| s.namespace.as_str()));
        let idle = idle_usage(&usage, view);
        if !idle.is_empty() {
            names.push(IDLE); // Idle capacity is reported even before it is priced.
        }
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|namespace| {
                let resources = match namespace {
                    IDLE => idle.clone(),
                    _ => {
                        let mut lines = view
                            .namespaces
                            .iter()
                            .find(|(n, _)| n.as_ref() == namespace)
                            .map(|(_, t)| WindowStore::resource_usage(t))
                            .unwrap_or_default();
                        if let Some((_, m)) = meters.iter().find(|(n, _)| *n == namespace) {
                            lines.extend(WindowStore::meter_usage(m));
                        }
                        lines
                    }
                };
                let mut record = record(view, namespace, resources, &charges, &shares);
                let own_cost = own
                    .iter()
                    .filter(|s| s.namespace == namespace)
                    .map(|s| s.cost.allocated_cost_micros)
                    .sum();
                record.own_cost_micros = Some(own_cost);
                record.shared = sharing.is_shared(namespace);
                record
            })
            .flat_map(|record| {
                let own: Vec<AllocatedCost> = own
                    .iter()
                    .filter(|s| s.namespace == record.namespace)
                    .map(|s| s.cost.clone())
                    .collect();
                let groups = self.group_records(view, &record, &own);
                std::iter::once(record).chain(groups)
            })
            .collect()
    }

    /// The window's in-window bill pieces, and rate-card estimates for the categories and meters
    /// no bill line covers yet.
    fn charges(
        &self,
        view: &ClusterWindowView<'_>,
        usage: &[(&str, &ResourceTotals)],
        meters: &[(&str, &BTreeMap<Arc<str>, MeterTotals>)],
    ) -> Vec<Charge> {
        let mut charges = self.ledger.charges(view.cluster_id, view.window_start);
        if let Some(card) = &self.rate_card {
            let billed: Vec<_> = charges
                .iter()
                .map(|c| (c.meter.clone(), c.category))
                .collect();
            let estimates = card.estimate(usage, view.capacity, meters);
            charges.extend(estimates.into_iter().filter(|e| match &e.meter {
                Some(_) => !billed.iter().any(|(meter, _)| meter == &e.meter),
                None => !billed.contains(&(None, e.category)),
            }));
        }
        charges
    }

    /// The records of the groups of a namespace record, dimension by dimension.
    fn group_records(
        &self,
        view: &ClusterWindowView<'_>,
        record: &UsageRecord,
        own: &[AllocatedCost],
    ) -> Vec<UsageRecord> {
        let mine: Vec<groups::Group<'_>> = view
            .groups
            .iter()
            .filter(|(n, _, _, _)| n.as_ref() == record.namespace)
            .map(|&(_, key, totals, meters)| groups::Group {
                key,
                totals,
                meters,
            })
            .collect();
        let weights = &self.allocator.policy().other_weights;
        mine.chunk_by(|a, b| a.key.0 == b.key.0)
            .flat_map(|dimension| groups::group_records(record, own, dimension, weights))
            .collect()
    }
}

/// The part of a namespace's usage from workloads shared wherever they run, allocated apart
/// under `<namespace>/shared-workloads` so that sharing can move its cost.
struct SharedPart {
    /// `<namespace>/shared-workloads`.
    name: String,
    /// The namespace's usage without the part.
    rest: ResourceTotals,
    /// The part.
    part: ResourceTotals,
}

fn shared_parts(
    usage: &[(&str, &ResourceTotals)],
    view: &ClusterWindowView<'_>,
) -> Vec<SharedPart> {
    view.shared
        .iter()
        .filter_map(|(n, part)| {
            let (_, totals) = usage.iter().find(|(u, _)| *u == n.as_ref())?;
            Some(SharedPart {
                name: format!("{n}{SHARED_WORKLOADS}"),
                rest: without(totals, part),
                part: **part,
            })
        })
        .collect()
}

/// What the allocator splits by: each namespace's usage, its shared part apart.
fn allocation_basis<'a>(
    usage: &[(&'a str, &'a ResourceTotals)],
    parts: &'a [SharedPart],
) -> Vec<(&'a str, &'a ResourceTotals)> {
    usage
        .iter()
        .map(|&(n, t)| {
            match parts
                .iter()
                .find(|p| SharingPolicy::namespace_of(&p.name) == n)
            {
                Some(p) => (n, &p.rest),
                None => (n, t),
            }
        })
        .chain(parts.iter().map(|p| (p.name.as_str(), &p.part)))
        .collect()
}

/// A share of `<namespace>/shared-workloads` as its namespace's.
fn to_namespace(mut share: NamespaceShare) -> NamespaceShare {
    let namespace = SharingPolicy::namespace_of(&share.namespace);
    if namespace.len() != share.namespace.len() {
        share.namespace = namespace.to_owned();
    }
    share
}

/// `totals` without `part` (a part of it), per resource and kind.
fn without(totals: &ResourceTotals, part: &ResourceTotals) -> ResourceTotals {
    let mut rest = *totals;
    for r in Resource::ALL {
        let (t, p) = (rest.get_mut(r), part.get(r));
        t.used = t.used.saturating_sub(p.used);
        t.requested = t.requested.saturating_sub(p.requested);
        t.limit = t.limit.saturating_sub(p.limit);
    }
    rest
}

/// Metric label of a record's namespace.
fn cost_kind(namespace: &str) -> &'static str {
    match namespace {
        IDLE => "idle",
        UNALLOCATED => "unallocated",
        _ => "namespace",
    }
}

/// A record with nothing to say: no resources and no cost.
fn is_empty(record: &UsageRecord) -> bool {
    record.resources.is_empty() && record.costs.is_empty()
}

fn is_reserved(namespace: &str) -> bool {
    namespace == IDLE || namespace == UNALLOCATED
}

/// Capacity nobody allocated, per resource, shown on the `__idle__` record as `allocated`.
fn idle_usage(
    usage: &[(&str, &ResourceTotals)],
    view: &ClusterWindowView<'_>,
) -> Vec<ResourceUsage> {
    Resource::ALL
        .iter()
        .filter_map(|&r| {
            let allocated = usage
                .iter()
                .fold(Quantity::ZERO, |s, (_, t)| s + t.get(r).allocated());
            let idle = view.capacity.get(r).saturating_sub(allocated);
            (idle != Quantity::ZERO).then(|| ResourceUsage {
                resource: r.name().into(),
                unit: r.unit().into(),
                used: 0.0,
                requested: 0.0,
                limit: 0.0,
                allocated: idle.units(),
                unused: idle.units(),
            })
        })
        .collect()
}

fn record(
    view: &ClusterWindowView<'_>,
    namespace: &str,
    resources: Vec<ResourceUsage>,
    charges: &[Charge],
    shares: &[NamespaceShare],
) -> UsageRecord {
    let costs: Vec<AllocatedCost> = shares
        .iter()
        .filter(|s| s.namespace == namespace)
        .map(|s| s.cost.clone())
        .collect();
    let cost_status = if charges.is_empty() {
        RecordCostStatus::Unpriced
    } else if charges
        .iter()
        .any(|c| c.status == crate::standard::CostStatus::Estimated)
    {
        RecordCostStatus::Estimated
    } else {
        RecordCostStatus::Final
    };
    let received = |idle: bool| {
        costs
            .iter()
            .filter(|c| {
                c.shared_from
                    .as_deref()
                    .is_some_and(|from| (from == IDLE) == idle)
            })
            .map(|c| c.allocated_cost_micros)
            .sum::<Micros>()
    };
    UsageRecord {
        cluster_id: view.cluster_id.to_string(),
        cluster_name: view.cluster_name.map(|n| n.to_string()),
        namespace: namespace.to_owned(),
        window_start: view.window_start,
        window_end: view.window_end,
        window_status: view.status,
        revision: 0,
        cost_total_micros: costs.iter().map(|c| c.allocated_cost_micros).sum(),
        shared_cost_micros: Some(received(false)),
        idle_cost_micros: Some(received(true)),
        resources,
        costs,
        currency: charges.first().map(|c| c.currency.clone()),
        cost_status,
        group_by: None,
        group_value: None,
        own_cost_micros: None,
        shared: false,
    }
}

/// Digest of everything in a record but its revision.
fn content_digest(record: &UsageRecord) -> u64 {
    let json = serde_json::to_vec(record).expect("records serialise");
    xxhash_rust::xxh3::xxh3_64(&json)
}

/// Why a usage sample was not counted, as a dead-letter reason (`None` when it was counted or
/// is a duplicate, which is counted in metrics only).
pub fn rejection_of(admission: Admission) -> Option<DeadLetterReason> {
    matches!(admission, Admission::TooLate).then_some(DeadLetterReason::TooLate)
}

#[cfg(test)]
mod tests;
