//! The bill lines known so far, each apportioned once to the windows its charge period covers.

use std::collections::{BTreeMap, BTreeSet};

use crate::allocate::money::apportion_over_windows;
use crate::allocate::Charge;
use crate::standard::limits::{
    MAX_LINES_PER_WINDOW, MAX_WINDOW_COST_MICROS, MAX_WINDOW_LINE_ID_BYTES,
};
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
    /// Extension resource the line is apportioned by, instead of its category.
    pub meter: Option<String>,
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
    /// Refused; the ledger is as before.
    Refused(LedgerRefusal),
}

/// Why a line cannot join the windows it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerRefusal {
    /// A window already holds lines in another currency: its figures could not be summed.
    CurrencyMismatch {
        /// The window.
        window_start: EpochMillis,
        /// The currency of the lines it holds.
        held: String,
        /// The line's currency.
        offered: String,
    },
    /// The window's lines would together exceed [`MAX_WINDOW_COST_MICROS`].
    WindowTotalTooLarge {
        /// The window.
        window_start: EpochMillis,
    },
    /// The window already holds [`MAX_LINES_PER_WINDOW`] lines, or their sources and ids would
    /// exceed [`MAX_WINDOW_LINE_ID_BYTES`] together.
    TooManyLines {
        /// The window.
        window_start: EpochMillis,
    },
}

impl std::fmt::Display for LedgerRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerRefusal::CurrencyMismatch {
                window_start,
                held,
                offered,
            } => write!(
                f,
                "the window starting {window_start} ms holds bill lines in {held}; a line in {offered} cannot be summed with them"
            ),
            LedgerRefusal::WindowTotalTooLarge { window_start } => write!(
                f,
                "the bill lines of the window starting {window_start} ms would exceed {MAX_WINDOW_COST_MICROS} micro-units together"
            ),
            LedgerRefusal::TooManyLines { window_start } => write!(
                f,
                "the window starting {window_start} ms already holds {MAX_LINES_PER_WINDOW} bill lines or {MAX_WINDOW_LINE_ID_BYTES} bytes of their sources and ids"
            ),
        }
    }
}

fn id_len(line: &CostLine) -> usize {
    line.source.len() + line.id.len()
}

/// The currency and the sum of amount magnitudes of one cluster window's pieces.
#[derive(Debug, Clone, Default)]
struct WindowMoney {
    currency: String,
    lines: u32,
    magnitude: u128,
    /// Sum of the lines' `source` and `id` lengths.
    id_bytes: usize,
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
    /// Per (cluster, window start): keeps one currency per window and every sum in range.
    money: BTreeMap<(String, EpochMillis), WindowMoney>,
}

impl CostLedger {
    /// An empty ledger apportioning to windows of `spec`.
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            lines: BTreeMap::new(),
            by_cluster: BTreeMap::new(),
            unsaved: BTreeSet::new(),
            money: BTreeMap::new(),
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
        }
        let pieces = apportion_over_windows(line.start, line.end, line.amount, self.spec.size_ms());
        if let Err(refusal) = self.admit(&key, &line, &pieces) {
            return LedgerChange::Refused(refusal);
        }
        if let Some(old) = self.lines.remove(&key) {
            affected.extend(
                old.pieces
                    .iter()
                    .map(|(w, _)| (old.line.cluster_id.clone(), *w)),
            );
            if let Some(keys) = self.by_cluster.get_mut(&old.line.cluster_id) {
                keys.remove(&key);
            }
            self.count_money(&old.line, &old.pieces, false);
        }
        self.count_money(&line, &pieces, true);
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

    /// Whether `line` (replacing the stored line under `key`, if any) keeps each of its
    /// windows in one currency and within [`MAX_WINDOW_COST_MICROS`].
    fn admit(
        &self,
        key: &LineKey,
        line: &CostLine,
        pieces: &[(EpochMillis, Micros)],
    ) -> Result<(), LedgerRefusal> {
        let old = self.lines.get(key);
        for &(window_start, amount) in pieces {
            let Some(money) = self.money.get(&(line.cluster_id.clone(), window_start)) else {
                if u128::from(amount.unsigned_abs()) > MAX_WINDOW_COST_MICROS {
                    return Err(LedgerRefusal::WindowTotalTooLarge { window_start });
                }
                continue;
            };
            // What the stored revision contributes to this window is replaced, not added.
            let replaced = old
                .filter(|o| o.line.cluster_id == line.cluster_id)
                .and_then(|o| o.pieces.iter().find(|(w, _)| *w == window_start))
                .map(|(_, a)| u128::from(a.unsigned_abs()));
            let others = money.lines - u32::from(replaced.is_some());
            if others > 0 && money.currency != line.currency {
                return Err(LedgerRefusal::CurrencyMismatch {
                    window_start,
                    held: money.currency.clone(),
                    offered: line.currency.clone(),
                });
            }
            // A replaced revision has the same source and id: only a new line adds bytes.
            let id_bytes = money.id_bytes + replaced.map_or(id_len(line), |_| 0);
            if others >= MAX_LINES_PER_WINDOW || id_bytes > MAX_WINDOW_LINE_ID_BYTES {
                return Err(LedgerRefusal::TooManyLines { window_start });
            }
            let total = money.magnitude - replaced.unwrap_or(0) + u128::from(amount.unsigned_abs());
            if total > MAX_WINDOW_COST_MICROS {
                return Err(LedgerRefusal::WindowTotalTooLarge { window_start });
            }
        }
        Ok(())
    }

    /// Adds (or takes away) a line's pieces to (from) its windows' money.
    fn count_money(&mut self, line: &CostLine, pieces: &[(EpochMillis, Micros)], add: bool) {
        for &(window_start, amount) in pieces {
            let key = (line.cluster_id.clone(), window_start);
            let magnitude = u128::from(amount.unsigned_abs());
            if add {
                let money = self.money.entry(key).or_default();
                money.currency.clone_from(&line.currency);
                money.lines += 1;
                money.magnitude += magnitude;
                money.id_bytes += id_len(line);
            } else if let Some(money) = self.money.get_mut(&key) {
                money.lines -= 1;
                money.magnitude -= magnitude;
                money.id_bytes -= id_len(line);
                if money.lines == 0 {
                    self.money.remove(&key);
                }
            }
        }
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
                    meter: line.meter.clone(),
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
                self.count_money(&stored.line, &stored.pieces, false);
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
            meter: None,
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

    #[test]
    fn a_window_keeps_one_currency() {
        let mut l = ledger();
        l.upsert(line("a", 1, 1_000_000));
        let usd = CostLine {
            currency: "USD".into(),
            ..line("b", 1, 5)
        };
        assert!(matches!(
            l.upsert(usd.clone()),
            LedgerChange::Refused(LedgerRefusal::CurrencyMismatch { .. })
        ));
        assert_eq!(l.len(), 1, "refused lines are not kept");
        // Elsewhere in time, or in another cluster, USD is fine.
        let later = CostLine {
            id: "b-later".into(),
            start: 10 * H,
            end: 11 * H,
            ..usd.clone()
        };
        assert!(matches!(l.upsert(later), LedgerChange::Changed(_)));
        // A correction of the only line of a window may change its currency.
        let corrected = CostLine {
            currency: "USD".into(),
            ..line("a", 2, 1_000_000)
        };
        assert!(matches!(l.upsert(corrected), LedgerChange::Changed(_)));
        assert!(matches!(l.upsert(usd), LedgerChange::Changed(_)));
    }

    #[test]
    fn a_window_total_stays_in_range_and_corrections_replace_their_share() {
        use crate::standard::limits::MAX_AMOUNT_MICROS;
        let mut l = ledger();
        // Ten lines at the per-line maximum (one window each) reach the window maximum.
        for i in 0..10 {
            let change = l.upsert(CostLine {
                end: H,
                ..line(&format!("l{i}"), 1, -MAX_AMOUNT_MICROS)
            });
            assert!(matches!(change, LedgerChange::Changed(_)), "{i}");
        }
        let one_more = l.upsert(CostLine {
            end: H,
            ..line("l10", 1, 1)
        });
        assert!(matches!(
            one_more,
            LedgerChange::Refused(LedgerRefusal::WindowTotalTooLarge { window_start: 0 })
        ));
        // Replacing a line's amount is counted as a replacement, not on top.
        let corrected = l.upsert(CostLine {
            end: H,
            ..line("l0", 2, MAX_AMOUNT_MICROS)
        });
        assert!(matches!(corrected, LedgerChange::Changed(_)));
        // Eviction gives the room back.
        l.evict_ended_before(H);
        assert!(l.is_empty());
        assert!(matches!(
            l.upsert(CostLine {
                end: H,
                ..line("l11", 1, 1)
            }),
            LedgerChange::Changed(_)
        ));
    }

    #[test]
    fn the_ids_a_window_quotes_stay_bounded() {
        let mut l = ledger();
        let long = |i: usize| CostLine {
            end: H,
            ..line(&format!("{i:0>1000}"), 1, 1)
        };
        let fit = MAX_WINDOW_LINE_ID_BYTES / (1000 + "//gcp-billing/acct".len());
        for i in 0..fit {
            assert!(matches!(l.upsert(long(i)), LedgerChange::Changed(_)), "{i}");
        }
        assert!(matches!(
            l.upsert(long(fit)),
            LedgerChange::Refused(LedgerRefusal::TooManyLines { window_start: 0 })
        ));
        // A correction of a line already there adds no bytes.
        let corrected = CostLine {
            revision: 2,
            amount: 5,
            ..long(0)
        };
        assert!(matches!(l.upsert(corrected), LedgerChange::Changed(_)));
    }
}
