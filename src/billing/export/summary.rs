//! What one export did, as the command line prints it.

use std::collections::BTreeMap;
use std::fmt;

use super::ExportError;
use crate::standard::CostEvent;

/// What one export did. Its `Display` is the summary `export-costs` prints: one line of counts
/// and totals, then one indented line per note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// What a row is: `rows` of a bill, `usage messages` of the topic.
    pub unit: &'static str,
    /// Rows (or messages) read.
    pub rows: u64,
    /// Rows (or messages) rejected.
    pub rejected: u64,
    /// Lines built (publishable, refused and withheld).
    pub lines: u64,
    /// Lines refused because of themselves.
    pub refused: u64,
    /// Lines withheld because a row (or message) of theirs was rejected.
    pub withheld: u64,
    /// Lines published.
    pub published: u64,
    /// Currency -> (billed, effective) micro-units of the lines to publish.
    pub totals: BTreeMap<String, (i128, i128)>,
    /// What else to say, one line each.
    pub notes: Vec<String>,
}

impl ExportSummary {
    /// Nothing read yet of rows called `unit`.
    pub fn new(unit: &'static str) -> Self {
        Self {
            unit,
            rows: 0,
            rejected: 0,
            lines: 0,
            refused: 0,
            withheld: 0,
            published: 0,
            totals: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// Adds up the lines per currency (checked: an error, never a wrapped total).
    pub(super) fn total(&mut self, lines: &[CostEvent]) -> Result<(), ExportError> {
        for line in lines {
            let total = self
                .totals
                .entry(line.billing_currency.clone())
                .or_default();
            let sum = |a: i128, b: i64| {
                a.checked_add(i128::from(b))
                    .ok_or_else(|| ExportError::TotalOverflow {
                        currency: line.billing_currency.clone(),
                    })
            };
            *total = (
                sum(total.0, line.billed_cost_micros)?,
                sum(total.1, line.effective_cost_micros)?,
            );
        }
        Ok(())
    }
}

impl fmt::Display for ExportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "export-costs: {} {} read, {} rejected; {} bill lines",
            self.rows, self.unit, self.rejected, self.lines
        )?;
        if self.refused > 0 {
            write!(f, ", {} refused", self.refused)?;
        }
        if self.withheld > 0 {
            write!(f, ", {} withheld", self.withheld)?;
        }
        write!(f, ", {} published", self.published)?;
        for (currency, (billed, effective)) in &self.totals {
            write!(
                f,
                "; {currency} billed {} effective {}",
                decimal(*billed),
                decimal(*effective)
            )?;
        }
        for note in &self.notes {
            write!(f, "\n  {note}")?;
        }
        Ok(())
    }
}

/// Micro-units as an exact decimal.
pub(super) fn decimal(micros: i128) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}
