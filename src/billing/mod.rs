//! Billing exporters: bills as providers export them -> [`CostEvent`]s of the standard.
//!
//! Each reader turns one input row into one CostEvent or a [`RowError`] naming the row; the
//! caller decides whether a bad row is fatal (`--strict`) or reported and skipped. Ids are
//! derived from the columns that identify a bill line, never from its position or amount, so
//! re-exporting a file publishes the same ids (no double cost) and a corrected line, exported
//! with a higher revision, replaces the old one in the tracker.
//!
//! - [`gcp`]: the GCP Cloud Billing export (BigQuery rows as JSON lines or CSV).
//! - [`focus`]: FOCUS 1.x CSV (Azure Cost Management, GCP's FOCUS view).
//! - [`rate_card`]: on-prem prices applied to the capacity the tracker saw.
//! - [`categories`]: which usage a provider's service or SKU is apportioned by.
//! - [`values`]: exact decimal amounts to micro-units, timestamps, currency codes.
//!
//! `docs/billing-exporters.md` describes the column mappings, ids and revisions.

pub mod categories;
pub mod focus;
pub mod gcp;
pub mod rate_card;
mod table;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;

use crate::standard::{CostEvent, EpochMillis};

pub use categories::{CategoryRule, CategoryRules};

/// A row that could not become a CostEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line number in the input file (for CSV: the physical line the record starts on).
    pub line: u64,
    /// What is wrong, naming the column.
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for RowError {}

/// What every reader needs besides the rows.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Revision of every line; `None`: the row's own export time where the format has one, else
    /// [`ExportOptions::exported_at`].
    pub revision: Option<i64>,
    /// When this export runs: `CostEvent.time`, and the revision fallback.
    pub exported_at: EpochMillis,
    /// Service/SKU -> category; the first matching rule wins.
    pub categories: CategoryRules,
    /// Cluster name (as bills label it) -> cluster id (as usage reports it). Names not listed
    /// are used as ids.
    pub cluster_ids: BTreeMap<String, String>,
}

impl ExportOptions {
    /// The cluster id of a cluster named `name` on a bill.
    pub fn cluster_id(&self, name: &str) -> String {
        self.cluster_ids
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    }
}

/// Merges the events of one export by `(source, id)`: rows of the same line and revision are
/// parts of one line (summed), and of several revisions the highest wins. The result is sorted
/// by `(source, id)`, so an export publishes the same sequence every time.
pub fn consolidate(events: impl IntoIterator<Item = CostEvent>) -> Vec<CostEvent> {
    let mut lines: BTreeMap<(String, String), CostEvent> = BTreeMap::new();
    for event in events {
        let key = (event.source.clone(), event.id.clone());
        match lines.get_mut(&key) {
            None => {
                lines.insert(key, event);
            }
            Some(kept) if kept.revision == event.revision => {
                kept.billed_cost_micros += event.billed_cost_micros;
                kept.effective_cost_micros += event.effective_cost_micros;
            }
            Some(kept) if kept.revision < event.revision => *kept = event,
            Some(_) => {}
        }
    }
    lines.into_values().collect()
}

/// A stable, short line id from the columns that identify a line: the same in every process and
/// release (xxh3-128, hex).
pub fn line_id(prefix: &str, identity: &[&str]) -> String {
    let mut bytes = Vec::with_capacity(identity.iter().map(|s| s.len() + 1).sum());
    for part in identity {
        bytes.extend_from_slice(part.as_bytes());
        bytes.push(0x1f);
    }
    format!("{prefix}-{:032x}", xxhash_rust::xxh3::xxh3_128(&bytes))
}
