//! The bill lines known so far, each apportioned once to the windows its charge period covers.

use std::collections::{BTreeMap, BTreeSet};

use crate::allocate::money::apportion_over_windows;
use crate::allocate::Charge;
use crate::standard::{CostCategory, CostStatus, EpochMillis, Micros};

use super::WindowSpec;

/// One bill line, resolved to the cluster it is allocated in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostLine {
    /// `CostEvent.source`.
    pub source: String,
    /// `CostEvent.id`.
    pub id: String,
    /// Higher replaces lower.
    pub revision: i64,
    /// Cluster whose namespaces share the line.
    pub cluster_id: String,
    /// Namespace the bill is tagged with.
    pub namespace: Option<String>,
    /// What the line is apportioned by.
    pub category: CostCategory,
    /// Estimated or final.
    pub status: CostStatus,
    /// ISO 4217.
    pub currency: String,
    /// Charge period start, inclusive.
    pub start: EpochMillis,
    /// Charge period end, exclusive.
    pub end: EpochMillis,
    /// EffectiveCost in micro-units.
    pub amount: Micros,
}

/// What an upsert changed: the (cluster, window start) pairs whose cost must be re-allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerChange {
    /// A new line or a correction; these windows are affected.
    Changed(Vec<(String, EpochMillis)>),
    /// Same or older revision than what we have: nothing to do (idempotent re-export).
    Stale,
    /// A newer revision with the same content: the revision is kept, no window is affected.
    Unchanged,
}

type LineKey = (String, String);

#[derive(Debug, Clone)]
struct StoredLine {
    line: CostLine,
    pieces: Vec<(EpochMillis, Micros)>,
}

/// Bill lines by (source, id), with the latest revision only.
#[derive(Debug, Clone)]
pub struct CostLedger {
    spec: WindowSpec,
    lines: BTreeMap<LineKey, StoredLine>,
    by_cluster: BTreeMap<String, BTreeSet<LineKey>>,
    unsaved: BTreeSet<LineKey>,
}

impl CostLedger {
    /// An empty ledger apportioning to windows of `spec`.
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            lines: BTreeMap::new(),
            by_cluster: BTreeMap::new(),
            unsaved: BTreeSet::new(),
        }
    }

    /// Adds a line or replaces an older revision of it (a correction replaces, never adds).
    pub fn upsert(&mut self, line: CostLine) -> LedgerChange {
        let key = (line.source.clone(), line.id.clone());
        let mut affected = Vec::new();
        if let Some(old) = self.lines.get(&key) {
            if old.line.revision >= line.revision {
                return LedgerChange::Stale;
            }
            if old.line
                == (CostLine {
                    revision: old.line.revision,
                    ..line.clone()
                })
            {
                // A re-export under a newer revision with nothing changed: keep the revision
                // (so an older one still loses), but re-allocate nothing.
                if let Some(stored) = self.lines.get_mut(&key) {
                    stored.line.revision = line.revision;
                }
                self.unsaved.insert(key);
                return LedgerChange::Unchanged;
            }
            affected.extend(
                old.pieces
                    .iter()
                    .map(|(w, _)| (old.line.cluster_id.clone(), *w)),
            );
            if let Some(keys) = self.by_cluster.get_mut(&old.line.cluster_id) {
                keys.remove(&key);
            }
        }
        let pieces = apportion_over_windows(line.start, line.end, line.amount, self.spec.size_ms());
        affected.extend(pieces.iter().map(|(w, _)| (line.cluster_id.clone(), *w)));
        affected.sort();
        affected.dedup();
        self.by_cluster
            .entry(line.cluster_id.clone())
            .or_default()
            .insert(key.clone());
        self.unsaved.insert(key.clone());
        self.lines.insert(key, StoredLine { line, pieces });
        LedgerChange::Changed(affected)
    }

    /// The charges of `cluster_id` that fall into the window starting at `window_start`.
    pub fn charges(&self, cluster_id: &str, window_start: EpochMillis) -> Vec<Charge> {
        let Some(keys) = self.by_cluster.get(cluster_id) else {
            return Vec::new();
        };
        keys.iter()
            .filter_map(|key| {
                let stored = &self.lines[key];
                let at = stored
                    .pieces
                    .binary_search_by_key(&window_start, |(w, _)| *w)
                    .ok()?;
                let line = &stored.line;
                Some(Charge {
                    origin_source: line.source.clone(),
                    origin_id: line.id.clone(),
                    category: line.category,
                    status: line.status,
                    currency: line.currency.clone(),
                    namespace: line.namespace.clone(),
                    amount: stored.pieces[at].1,
                })
            })
            .collect()
    }

    /// Lines added or replaced since the last call, for the checkpoint.
    pub fn take_unsaved(&mut self) -> Vec<CostLine> {
        std::mem::take(&mut self.unsaved)
            .into_iter()
            .filter_map(|key| self.lines.get(&key).map(|s| s.line.clone()))
            .collect()
    }

    /// Forgets lines whose charge period ended before `t` (their windows are gone).
    pub fn evict_ended_before(&mut self, t: EpochMillis) -> Vec<(String, String)> {
        let gone: Vec<LineKey> = self
            .lines
            .iter()
            .filter(|(_, s)| s.line.end.max(s.line.start + 1) <= t)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &gone {
            if let Some(stored) = self.lines.remove(key) {
                if let Some(keys) = self.by_cluster.get_mut(&stored.line.cluster_id) {
                    keys.remove(key);
                }
            }
            self.unsaved.remove(key);
        }
        gone
    }

    /// Number of lines held.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line is held.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const H: i64 = 3_600_000;

    fn line(id: &str, revision: i64, amount: Micros) -> CostLine {
        CostLine {
            source: "//gcp-billing/acct".into(),
            id: id.into(),
            revision,
            cluster_id: "gke-1".into(),
            namespace: None,
            category: CostCategory::Compute,
            status: CostStatus::Final,
            currency: "EUR".into(),
            start: 0,
            end: 2 * H,
            amount,
        }
    }

    fn ledger() -> CostLedger {
        CostLedger::new(WindowSpec::new(Duration::from_secs(3600)).unwrap())
    }

    #[test]
    fn a_line_is_apportioned_to_the_windows_it_covers() {
        let mut l = ledger();
        let change = l.upsert(line("a", 1, 1_000_001));
        assert_eq!(
            change,
            LedgerChange::Changed(vec![("gke-1".into(), 0), ("gke-1".into(), H)])
        );
        let total: Micros = [0, H]
            .iter()
            .flat_map(|w| l.charges("gke-1", *w))
            .map(|c| c.amount)
            .sum();
        assert_eq!(total, 1_000_001);
        assert!(l.charges("gke-1", 2 * H).is_empty());
        assert!(l.charges("other", 0).is_empty());
    }

    #[test]
    fn a_correction_replaces_and_a_replay_changes_nothing() {
        let mut l = ledger();
        l.upsert(line("a", 1, 1_000_000));
        assert_eq!(l.upsert(line("a", 1, 1_000_000)), LedgerChange::Stale);
        assert!(matches!(
            l.upsert(line("a", 2, 400_000)),
            LedgerChange::Changed(_)
        ));
        let total: Micros = [0, H]
            .iter()
            .flat_map(|w| l.charges("gke-1", *w))
            .map(|c| c.amount)
            .sum();
        assert_eq!(total, 400_000, "replaced, not added");
        assert_eq!(
            l.upsert(line("a", 1, 9_999_999)),
            LedgerChange::Stale,
            "older revisions lose"
        );
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn a_newer_revision_with_the_same_content_reallocates_nothing() {
        let mut l = ledger();
        l.upsert(line("a", 1, 1_000_000));
        l.take_unsaved();
        assert_eq!(l.upsert(line("a", 5, 1_000_000)), LedgerChange::Unchanged);
        assert_eq!(
            l.take_unsaved()
                .iter()
                .map(|s| s.revision)
                .collect::<Vec<_>>(),
            vec![5],
            "the new revision is saved"
        );
        assert_eq!(l.upsert(line("a", 4, 7)), LedgerChange::Stale);
    }
}
