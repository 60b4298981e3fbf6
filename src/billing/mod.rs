//! Billing exporters: bills as providers export them -> [`CostEvent`]s of the standard.
//!
//! Each reader turns one input row into one CostEvent or a [`RowError`] naming the row and, as
//! far as the row tells, the bill line it belongs to ([`LineScope`]). Every CostEvent a reader
//! builds is checked as the tracker checks it at its door ([`check_event`]), so nothing an
//! exporter publishes is dead-lettered later. The rows of an export are merged into bill lines
//! by a [`Consolidator`] (checked sums); whether a rejected row stops the export or only
//! withholds the lines it belongs to is the caller's decision (`--partial`). Ids are derived from
//! the columns that identify a bill line, never from its position or amount, so re-exporting a
//! file publishes the same ids (no double cost) and a corrected line, exported with a higher
//! revision, replaces the old one in the tracker.
//!
//! - [`gcp`]: the GCP Cloud Billing export (BigQuery rows as JSON lines or CSV).
//! - [`focus`]: FOCUS 1.x CSV (Azure Cost Management, GCP's FOCUS view).
//! - [`rate_card`]: on-prem prices applied to the capacity the tracker saw.
//! - [`export`]: the `export-costs` orchestration: files or the usage topic -> lines to publish.
//! - [`categories`]: which usage a provider's service or SKU is apportioned by.
//! - [`values`]: exact decimal amounts to micro-units, timestamps, currency codes.
//!
//! `docs/billing-exporters.md` describes the column mappings, ids and revisions.

pub mod categories;
pub mod export;
pub mod focus;
pub mod gcp;
pub mod rate_card;
mod table;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;

use crate::ingest::{self, Exclusions};
use crate::standard::limits::{self, MAX_CHARGE_LEAD_MS};
use crate::standard::{CostEvent, EpochMillis};

pub use categories::{CategoryRule, CategoryRules};

/// The bill line a rejected row belongs to, as far as the row tells.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LineScope {
    /// The line `(source, id)`: its identifying columns could be read.
    Line {
        /// `CostEvent.source`.
        source: String,
        /// `CostEvent.id`.
        id: String,
    },
    /// Some line of this `source` (the account could be read, the line's identity not).
    Source(String),
    /// Any line: nothing identifying could be read.
    Unknown,
}

/// A row that could not become a CostEvent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line number in the input file (for CSV: the physical line the record starts on).
    pub line: u64,
    /// What is wrong, naming the column.
    pub message: String,
    /// The bill line the row belongs to: with `--partial`, that line is not published (it would
    /// be incomplete).
    pub scope: LineScope,
}

impl RowError {
    /// An error of a row whose bill line is unknown.
    pub fn new(line: u64, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
            scope: LineScope::Unknown,
        }
    }
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

/// Checks a CostEvent as the tracker does at its door, so that nothing an exporter publishes is
/// dead-lettered there: the standard's limits ([`limits::check_cost_event`]: strings, times,
/// the charge period's length, amounts), a charge period starting at most
/// [`MAX_CHARGE_LEAD_MS`] after `now`, and the tracker's own intake rules
/// ([`ingest::cost_line`]). The message names the field.
pub fn check_event(event: &CostEvent, now: EpochMillis) -> Result<(), String> {
    limits::check_cost_event(event).map_err(|e| e.to_string())?;
    if event.charge_period_start > now.saturating_add(MAX_CHARGE_LEAD_MS) {
        return Err(format!(
            "charge_period_start {} is more than {} days after now ({}); the tracker refuses it",
            rfc3339(event.charge_period_start),
            MAX_CHARGE_LEAD_MS / 86_400_000,
            rfc3339(now),
        ));
    }
    ingest::cost_line(event, &Exclusions::default(), &[], now)
        .map(|_| ())
        .map_err(|rejection| rejection.detail)
}

/// An epoch-millis time as RFC 3339 (for messages; out-of-range times as millis).
fn rfc3339(ms: EpochMillis) -> String {
    match u64::try_from(ms) {
        Ok(ms) => humantime::format_rfc3339_millis(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string(),
        Err(_) => format!("{ms} ms"),
    }
}

/// Where a row was read: the input (its index among the export's files) and its 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowAt {
    /// Index of the input file.
    pub input: usize,
    /// 1-based line in that file.
    pub line: u64,
}

/// A bill line that is not published because of itself: the sum of its rows overflows, or the
/// merged line breaks the standard's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The line's first row.
    pub first: RowAt,
    /// How many rows the line has.
    pub rows: u64,
    /// `CostEvent.source`.
    pub source: String,
    /// `CostEvent.id`.
    pub id: String,
    /// What is wrong, naming the field.
    pub message: String,
}

/// A complete-looking bill line that is not published because a row that belongs (or may belong)
/// to it was rejected: published, it would replace a complete earlier revision with a smaller
/// amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    /// `CostEvent.source`.
    pub source: String,
    /// `CostEvent.id`.
    pub id: String,
    /// The first rejected row that may belong to it.
    pub rejected: RowAt,
}

/// One bill line being merged.
#[derive(Debug)]
struct Merged {
    event: CostEvent,
    first: RowAt,
    rows: u64,
    /// Why the line cannot be published (a sum out of range).
    problem: Option<String>,
}

/// Merges the rows of one export into bill lines by `(source, id)`: rows of the same line and
/// revision are parts of it (summed with checked arithmetic: a sum out of the `i64` range refuses
/// the line, it never saturates or wraps), and of several revisions the highest wins. It also
/// remembers which lines rejected rows belong to, so that [`Consolidator::finish`] can withhold
/// them. Memory is bounded by the number of lines, not rows.
#[derive(Debug, Default)]
pub struct Consolidator {
    lines: BTreeMap<(String, String), Merged>,
    /// Lines with a rejected row -> the first such row.
    rejected_lines: BTreeMap<(String, String), RowAt>,
    /// Sources with a rejected row of an unknown line -> the first such row.
    rejected_sources: BTreeMap<String, RowAt>,
    /// The first rejected row of which nothing identifying is known.
    rejected_unknown: Option<RowAt>,
}

/// What an export can publish.
#[derive(Debug, Default)]
pub struct Consolidated {
    /// Complete, checked lines, sorted by `(source, id)`.
    pub lines: Vec<CostEvent>,
    /// Lines refused because of themselves.
    pub refused: Vec<LineError>,
    /// Lines withheld because a row of theirs was rejected.
    pub withheld: Vec<Withheld>,
    /// A rejected row of which no line is known: every line is withheld.
    pub unknown_rejected: Option<RowAt>,
}

impl Consolidator {
    /// Adds one row's event, read at `at`.
    pub fn add(&mut self, event: CostEvent, at: RowAt) {
        let key = (event.source.clone(), event.id.clone());
        match self.lines.get_mut(&key) {
            None => {
                self.lines.insert(
                    key,
                    Merged {
                        event,
                        first: at,
                        rows: 1,
                        problem: None,
                    },
                );
            }
            Some(kept) if kept.event.revision == event.revision => {
                kept.rows += 1;
                if kept.problem.is_some() {
                    return;
                }
                let sum = |field: &str, a: i64, b: i64| {
                    a.checked_add(b).ok_or_else(|| {
                        format!(
                            "{field}: the sum of the line's rows leaves the i64 range at its row {} ({} + {})",
                            kept.rows, a, b
                        )
                    })
                };
                let billed = sum(
                    "billed_cost_micros",
                    kept.event.billed_cost_micros,
                    event.billed_cost_micros,
                );
                let effective = sum(
                    "effective_cost_micros",
                    kept.event.effective_cost_micros,
                    event.effective_cost_micros,
                );
                match billed.and_then(|b| effective.map(|e| (b, e))) {
                    Ok((billed, effective)) => {
                        kept.event.billed_cost_micros = billed;
                        kept.event.effective_cost_micros = effective;
                    }
                    Err(problem) => kept.problem = Some(problem),
                }
            }
            Some(kept) if kept.event.revision < event.revision => {
                *kept = Merged {
                    event,
                    first: at,
                    rows: 1,
                    problem: None,
                }
            }
            Some(_) => {}
        }
    }

    /// Notes a rejected row read at `at`: the lines of `scope` are incomplete.
    pub fn reject(&mut self, scope: &LineScope, at: RowAt) {
        match scope {
            LineScope::Line { source, id } => {
                self.rejected_lines
                    .entry((source.clone(), id.clone()))
                    .or_insert(at);
            }
            LineScope::Source(source) => {
                self.rejected_sources.entry(source.clone()).or_insert(at);
            }
            LineScope::Unknown => {
                self.rejected_unknown.get_or_insert(at);
            }
        }
    }

    /// The lines: `prepare` completes each (e.g. the cluster of its cost scope), then it is
    /// checked against the standard ([`check_event`], with `now`). A line is refused when its
    /// sum overflowed or the check fails, withheld when a rejected row may belong to it, and
    /// publishable otherwise.
    pub fn finish(self, mut prepare: impl FnMut(&mut CostEvent), now: EpochMillis) -> Consolidated {
        let mut out = Consolidated {
            unknown_rejected: self.rejected_unknown,
            ..Consolidated::default()
        };
        for ((source, id), mut merged) in self.lines {
            let checked = match merged.problem.take() {
                Some(problem) => Err(problem),
                None => {
                    prepare(&mut merged.event);
                    check_event(&merged.event, now)
                }
            };
            if let Err(message) = checked {
                out.refused.push(LineError {
                    first: merged.first,
                    rows: merged.rows,
                    source,
                    id,
                    message,
                });
                continue;
            }
            let rejected = self
                .rejected_lines
                .get(&(source.clone(), id.clone()))
                .or_else(|| self.rejected_sources.get(&source))
                .or(self.rejected_unknown.as_ref());
            match rejected {
                Some(&rejected) => out.withheld.push(Withheld {
                    source,
                    id,
                    rejected,
                }),
                None => out.lines.push(merged.event),
            }
        }
        out
    }
}

/// Merges the events of one export by `(source, id)` as a [`Consolidator`] does, without the
/// standard's checks: rows of the same line and revision are summed, and of several revisions the
/// highest wins. The result is sorted by `(source, id)`, so an export publishes the same sequence
/// every time. Errors when the rows of a line sum beyond the `i64` range (its `first.line` is the
/// 1-based position of the line's first event).
pub fn consolidate(
    events: impl IntoIterator<Item = CostEvent>,
) -> Result<Vec<CostEvent>, LineError> {
    let mut lines = Consolidator::default();
    for (line, event) in (1u64..).zip(events) {
        lines.add(event, RowAt { input: 0, line });
    }
    let mut out = Vec::with_capacity(lines.lines.len());
    for ((source, id), merged) in lines.lines {
        match merged.problem {
            None => out.push(merged.event),
            Some(message) => {
                return Err(LineError {
                    first: merged.first,
                    rows: merged.rows,
                    source,
                    id,
                    message,
                })
            }
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standard::limits::{MAX_AMOUNT_MICROS, MAX_CHARGE_PERIOD_MS};
    use crate::standard::{CostCategory, CostStatus, COST_EVENT_TYPE, SPEC_VERSION};

    /// 2026-11-20T10:00:00Z
    const TEN: EpochMillis = 1_795_168_800_000;
    const NOW: EpochMillis = TEN + 86_400_000;
    const HOUR: EpochMillis = 3_600_000;

    fn event(id: &str, micros: i64) -> CostEvent {
        CostEvent {
            specversion: SPEC_VERSION.into(),
            id: id.into(),
            source: "//bill/acct".into(),
            event_type: COST_EVENT_TYPE.into(),
            time: NOW,
            revision: 7,
            provider: "gcp".into(),
            billing_account_id: "acct".into(),
            sub_account_id: None,
            cluster_id: Some("c".into()),
            namespace: None,
            charge_period_start: TEN,
            charge_period_end: TEN + HOUR,
            billed_cost_micros: micros,
            effective_cost_micros: micros,
            billing_currency: "EUR".into(),
            category: CostCategory::Compute,
            cost_status: CostStatus::Final,
            service_name: None,
            sku_id: None,
            resource_id: None,
            labels: BTreeMap::new(),
            meter: None,
        }
    }

    fn at(line: u64) -> RowAt {
        RowAt { input: 0, line }
    }

    fn line(id: &str) -> LineScope {
        LineScope::Line {
            source: "//bill/acct".into(),
            id: id.into(),
        }
    }

    #[test]
    fn check_event_names_the_field_the_tracker_would_refuse() {
        assert_eq!(check_event(&event("l", 1), NOW), Ok(()));
        let mut e = event("l", 1);
        e.labels.insert("team".into(), "a\0b".into());
        let error = check_event(&e, NOW).unwrap_err();
        assert!(error.contains("labels[\"team\"]"), "{error}");
        let mut e = event("l", 1);
        e.charge_period_end = e.charge_period_start + MAX_CHARGE_PERIOD_MS + 1;
        assert!(check_event(&e, NOW).unwrap_err().contains("charge period"));
        let mut e = event("l", MAX_AMOUNT_MICROS + 1);
        e.billed_cost_micros = 1;
        let error = check_event(&e, NOW).unwrap_err();
        assert!(error.contains("effective_cost_micros"), "{error}");
        // 32 days ahead of now: the tracker refuses a period starting that far ahead.
        let mut e = event("l", 1);
        e.charge_period_start = NOW + 32 * 86_400_000;
        e.charge_period_end = e.charge_period_start + HOUR;
        let error = check_event(&e, NOW).unwrap_err();
        assert!(error.contains("charge_period_start"), "{error}");
        // And what only the tracker's intake checks (not the limits) is caught too.
        let mut e = event("l", 1);
        e.billing_currency = "euro".into();
        assert!(check_event(&e, NOW)
            .unwrap_err()
            .contains("billing_currency"));
    }

    #[test]
    fn rows_of_a_line_add_up_and_the_highest_revision_wins() {
        let mut lines = Consolidator::default();
        lines.add(event("a", 1), at(2));
        lines.add(event("b", 10), at(3));
        lines.add(event("a", 2), at(4));
        let mut newer = event("b", 5);
        newer.revision = 8;
        lines.add(newer, at(5));
        lines.add(event("b", 100), at(6)); // an older revision: ignored
        let out = lines.finish(|_| {}, NOW);
        let amounts: Vec<(&str, i64)> = out
            .lines
            .iter()
            .map(|l| (l.id.as_str(), l.effective_cost_micros))
            .collect();
        assert_eq!(amounts, [("a", 3), ("b", 5)]);
        assert!(out.refused.is_empty() && out.withheld.is_empty());
        assert_eq!(
            consolidate([event("a", 1), event("a", 2)]).unwrap()[0].billed_cost_micros,
            3
        );
    }

    #[test]
    fn a_sum_out_of_range_refuses_the_line_and_names_it() {
        let mut lines = Consolidator::default();
        lines.add(event("big", i64::MAX - 1), at(2));
        lines.add(event("ok", 1), at(3));
        lines.add(event("big", 2), at(4));
        lines.add(event("big", -5), at(5)); // no wrap back into range
        let out = lines.finish(|_| {}, NOW);
        assert_eq!(out.lines.len(), 1);
        assert_eq!(out.lines[0].id, "ok");
        let refused = &out.refused[0];
        assert_eq!(
            (refused.id.as_str(), refused.first, refused.rows),
            ("big", at(2), 3)
        );
        assert!(
            refused.message.contains("billed_cost_micros") && refused.message.contains("i64"),
            "{}",
            refused.message
        );
        let error = consolidate([event("x", i64::MIN), event("x", -1)]).unwrap_err();
        assert_eq!(error.id, "x");
    }

    #[test]
    fn a_merged_line_beyond_the_standards_limits_is_refused() {
        // Each row is within the limit, their sum is not.
        let half = MAX_AMOUNT_MICROS / 2 + 1;
        let mut lines = Consolidator::default();
        lines.add(event("a", half), at(2));
        lines.add(event("a", half), at(3));
        let out = lines.finish(|_| {}, NOW);
        assert!(out.lines.is_empty());
        assert!(out.refused[0].message.contains("billed_cost_micros"));
        // `prepare` runs before the check (a scope's cluster id is checked too).
        let mut lines = Consolidator::default();
        lines.add(event("a", 1), at(2));
        let out = lines.finish(|e| e.cluster_id = Some("c\u{1b}".into()), NOW);
        assert!(out.refused[0].message.contains("cluster_id"));
    }

    #[test]
    fn rejected_rows_withhold_exactly_the_lines_they_may_belong_to() {
        let mut other = event("c", 1);
        other.source = "//bill/other".into();
        let fill = |lines: &mut Consolidator| {
            lines.add(event("a", 1), at(2));
            lines.add(event("b", 1), at(3));
            lines.add(other.clone(), at(4));
        };
        let ids = |out: &Consolidated| -> Vec<String> {
            out.lines.iter().map(|l| l.id.clone()).collect()
        };

        let mut lines = Consolidator::default();
        fill(&mut lines);
        lines.reject(&line("a"), at(5));
        lines.reject(&line("a"), at(6));
        lines.reject(&line("gone"), at(7)); // a line without valid rows: nothing to withhold
        let out = lines.finish(|_| {}, NOW);
        assert_eq!(ids(&out), ["b", "c"]);
        assert_eq!(
            out.withheld,
            [Withheld {
                source: "//bill/acct".into(),
                id: "a".into(),
                rejected: at(5)
            }]
        );

        let mut lines = Consolidator::default();
        fill(&mut lines);
        lines.reject(&LineScope::Source("//bill/acct".into()), at(5));
        let out = lines.finish(|_| {}, NOW);
        assert_eq!(ids(&out), ["c"], "every line of the account is withheld");

        let mut lines = Consolidator::default();
        fill(&mut lines);
        lines.reject(&LineScope::Unknown, at(5));
        let out = lines.finish(|_| {}, NOW);
        assert!(out.lines.is_empty());
        assert_eq!((out.withheld.len(), out.unknown_rejected), (3, Some(at(5))));
    }
}
