//! The accountant: usage windows + bill lines + allocation -> usage records. Pure; the pipeline
//! feeds it decoded input and processing time, and ships what it emits.

pub mod pricing;

use std::sync::Arc;

use crate::allocate::{Charge, ClusterWindow, CostAllocator, NamespaceShare, IDLE, UNALLOCATED};
use crate::ingest::DeadLetterReason;
use crate::measure::{Quantity, Resource, ResourceTotals};
use crate::standard::{AllocatedCost, EpochMillis, RecordCostStatus, ResourceUsage, UsageRecord};
use crate::window::{
    Admission, ClusterWindowView, CostLedger, CostLine, LedgerChange, PersistedWindow, Sample,
    WindowKey, WindowStore,
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
}

/// Outcome of offering a bill line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostAdmission {
    /// New or corrected; its windows will be re-allocated.
    Applied,
    /// Same or older revision: nothing changed.
    Unchanged,
    /// Every window it covers is past retention.
    TooLate,
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
        if self
            .store
            .is_expired(spec.start_of(line.end.max(line.start + 1) - 1))
        {
            return CostAdmission::TooLate;
        }
        match self.ledger.upsert(line) {
            LedgerChange::Stale => CostAdmission::Unchanged,
            LedgerChange::Changed(windows) => {
                for (cluster, window_start) in windows {
                    self.store.touch(&cluster, window_start);
                }
                CostAdmission::Applied
            }
        }
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
    fn emit(&mut self) -> Vec<UsageRecord> {
        let drafts: Vec<UsageRecord> = self
            .store
            .changed()
            .iter()
            .flat_map(|view| self.draft(view))
            .collect();
        let mut records = Vec::with_capacity(drafts.len());
        for mut record in drafts {
            let key = WindowKey {
                cluster_id: Arc::from(record.cluster_id.as_str()),
                namespace: Arc::from(record.namespace.as_str()),
                window_start: record.window_start,
            };
            if let Some(revision) = self.store.next_revision(&key, content_digest(&record)) {
                record.revision = revision;
                records.push(record);
            }
        }
        records
    }

    /// Everything a checkpoint must persist, with the records to publish; afterwards the
    /// state counts as saved.
    pub fn take_checkpoint(&mut self) -> Checkpoint {
        let records = self.emit();
        let checkpoint = Checkpoint {
            records,
            windows: self.store.export_changed(),
            seen: self.store.take_unsaved_seen(),
            cost_lines: self.ledger.take_unsaved(),
            evicted: std::mem::take(&mut self.evicted),
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
        let mut charges = self.ledger.charges(view.cluster_id, view.window_start);
        if charges.is_empty() {
            if let Some(card) = &self.rate_card {
                charges = card.estimate(&usage, view.capacity);
            }
        }
        let window = ClusterWindow {
            namespaces: &usage,
            capacity: view.capacity,
        };
        let shares = self.allocator.allocate(&window, &charges);

        // Every namespace that has usage, a share, or an earlier record (which must be corrected).
        let mut names: Vec<&str> = view.namespaces.iter().map(|(n, _)| n.as_ref()).collect();
        names.extend(shares.iter().map(|s| s.namespace.as_str()));
        names.sort_unstable();
        names.dedup();
        let idle = idle_usage(&usage, view);
        names
            .into_iter()
            .map(|namespace| {
                let resources = match namespace {
                    IDLE => idle.clone(),
                    _ => view
                        .namespaces
                        .iter()
                        .find(|(n, _)| n.as_ref() == namespace)
                        .map(|(_, t)| WindowStore::resource_usage(t))
                        .unwrap_or_default(),
                };
                record(view, namespace, resources, &charges, &shares)
            })
            .collect()
    }
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
    UsageRecord {
        cluster_id: view.cluster_id.to_string(),
        cluster_name: view.cluster_name.map(|n| n.to_string()),
        namespace: namespace.to_owned(),
        window_start: view.window_start,
        window_end: view.window_end,
        window_status: view.status,
        revision: 0,
        cost_total_micros: costs.iter().map(|c| c.allocated_cost_micros).sum(),
        resources,
        costs,
        currency: charges.first().map(|c| c.currency.clone()),
        cost_status,
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
