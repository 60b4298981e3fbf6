//! `usage-tracker report`: per-namespace usage and cost for a period, from Postgres, with a total
//! per cluster and currency and a grand total per currency.
//!
//! Money stays exact: costs are summed in Postgres (`numeric`) and printed from its decimal text,
//! never through `f64`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::config::Settings;
use crate::sink::postgres::{NamespaceTotals, PostgresSink, TotalsLevel};
use crate::time::epoch_ms_clamped;

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

/// Print per-namespace usage and cost, with totals.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Windows starting at or after this time (RFC 3339, or a date YYYY-MM-DD = 00:00 UTC);
    /// default: all.
    #[arg(long, value_parser = parse_time)]
    from: Option<SystemTime>,
    /// Windows starting before this time (RFC 3339, or a date YYYY-MM-DD = 00:00 UTC);
    /// default: all.
    #[arg(long, value_parser = parse_time)]
    to: Option<SystemTime>,
    /// Only this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Only this namespace (totals then cover this namespace only).
    #[arg(long)]
    namespace: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

/// RFC 3339 (`Z` or no offset = UTC), or a bare date meaning its start in UTC.
fn parse_time(text: &str) -> Result<SystemTime, humantime::TimestampError> {
    let is_date = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    if is_date {
        humantime::parse_rfc3339_weak(&format!("{text}T00:00:00Z"))
    } else {
        humantime::parse_rfc3339_weak(text)
    }
}

impl ReportArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let settings = Settings::load(self.config.as_deref())?;
        let sink = PostgresSink::connect(&settings.database.url)
            .await
            .context("connecting to Postgres")?;
        let rows = sink
            .namespace_totals(
                self.from.map(epoch_ms_clamped),
                self.to.map(epoch_ms_clamped),
                self.cluster.as_deref(),
                self.namespace.as_deref(),
            )
            .await?;
        match self.format {
            Format::Table => print!("{}", table(&rows)),
            Format::Csv => print!("{}", csv(&rows)),
            Format::Json => println!("{}", json(&self, &rows)),
        }
        Ok(ExitCode::SUCCESS)
    }
}

const HEADERS: [&str; 12] = [
    "cluster",
    "namespace",
    "windows",
    "cpu_used_h",
    "cpu_req_h",
    "cpu_alloc_h",
    "mem_used_GiBh",
    "mem_alloc_GiBh",
    "cost",
    "currency",
    "cost_status",
    "kind",
];

/// Label of the cluster and namespace cells: a cluster total is `<cluster> TOTAL`, a grand total
/// `TOTAL` (Kubernetes names are lower case, so `TOTAL` cannot be a namespace or cluster name
/// written by the standard's producers; the `kind` column says it in any case).
fn labels(r: &NamespaceTotals) -> (String, String) {
    match r.level {
        TotalsLevel::Namespace => (
            r.cluster_id.clone().unwrap_or_default(),
            r.namespace.clone().unwrap_or_default(),
        ),
        TotalsLevel::Cluster => (r.cluster_id.clone().unwrap_or_default(), "TOTAL".into()),
        TotalsLevel::Grand => ("TOTAL".into(), String::new()),
    }
}

/// A decimal string without trailing zeros after the point (`0.058800` -> `0.0588`,
/// `2.000000` -> `2`); exact, no float involved.
fn trim_decimal(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

fn cells(r: &NamespaceTotals) -> [String; 12] {
    let (cluster, namespace) = labels(r);
    [
        cluster,
        namespace,
        r.windows.to_string(),
        format!("{:.3}", r.cpu_used_core_hours),
        format!("{:.3}", r.cpu_requested_core_hours),
        format!("{:.3}", r.cpu_allocated_core_hours),
        format!("{:.3}", r.memory_used_gib_hours),
        format!("{:.3}", r.memory_allocated_gib_hours),
        trim_decimal(&r.cost).to_owned(),
        r.currency.clone().unwrap_or_default(),
        r.cost_status.clone(),
        r.kind().to_owned(),
    ]
}

fn table(rows: &[NamespaceTotals]) -> String {
    let body: Vec<[String; 12]> = rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &body {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Text left, numbers right.
            if !(2..9).contains(&i) {
                out.push_str(&format!("{cell:<w$}  "));
            } else {
                out.push_str(&format!("{cell:>w$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let rule = {
        let width: usize = widths.iter().map(|w| w + 2).sum::<usize>() - 2;
        "-".repeat(width) + "\n"
    };
    let mut out = line(&HEADERS.map(str::to_owned));
    out.push_str(&rule);
    for (i, (row, r)) in body.iter().zip(rows).enumerate() {
        // A rule before the grand totals.
        if r.level == TotalsLevel::Grand && i > 0 && rows[i - 1].level != TotalsLevel::Grand {
            out.push_str(&rule);
        }
        out.push_str(&line(row));
    }
    out
}

fn csv(rows: &[NamespaceTotals]) -> String {
    let mut out = HEADERS.join(",") + "\n";
    for row in rows {
        let quoted = cells(row).map(|cell| {
            if cell.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", cell.replace('"', "\"\""))
            } else {
                cell
            }
        });
        out.push_str(&quoted.join(","));
        out.push('\n');
    }
    out
}

fn json_row(r: &NamespaceTotals) -> serde_json::Value {
    json!({
        "kind": r.kind(),
        "cluster_id": r.cluster_id,
        "namespace": r.namespace,
        "currency": r.currency,
        "windows": r.windows,
        "open_windows": r.open_windows,
        "cpu_used_core_hours": r.cpu_used_core_hours,
        "cpu_requested_core_hours": r.cpu_requested_core_hours,
        "cpu_allocated_core_hours": r.cpu_allocated_core_hours,
        "memory_used_gib_hours": r.memory_used_gib_hours,
        "memory_requested_gib_hours": r.memory_requested_gib_hours,
        "memory_allocated_gib_hours": r.memory_allocated_gib_hours,
        "cost": r.cost,
        "cost_status": r.cost_status,
    })
}

/// `{"from", "to", "cluster", "namespace", "rows", "cluster_totals", "totals"}`; costs are
/// decimal strings with 6 decimals, usage figures are numbers.
fn json(args: &ReportArgs, rows: &[NamespaceTotals]) -> String {
    let of = |level: TotalsLevel| -> Vec<serde_json::Value> {
        rows.iter()
            .filter(|r| r.level == level)
            .map(json_row)
            .collect()
    };
    let time = |t: Option<SystemTime>| t.map(|t| humantime::format_rfc3339(t).to_string());
    let report = json!({
        "from": time(args.from),
        "to": time(args.to),
        "cluster": args.cluster,
        "namespace": args.namespace,
        "rows": of(TotalsLevel::Namespace),
        "cluster_totals": of(TotalsLevel::Cluster),
        "totals": of(TotalsLevel::Grand),
    });
    serde_json::to_string_pretty(&report).expect("json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_trimmed_exactly() {
        assert_eq!(trim_decimal("0.058800"), "0.0588");
        assert_eq!(trim_decimal("2.000000"), "2");
        assert_eq!(trim_decimal("0.000000"), "0");
        assert_eq!(trim_decimal("-1.500000"), "-1.5");
        assert_eq!(trim_decimal("100"), "100");
    }

    #[test]
    fn dates_mean_utc_midnight() {
        assert_eq!(
            epoch_ms_clamped(parse_time("2024-03-01").unwrap()),
            1_709_251_200_000
        );
        assert_eq!(
            epoch_ms_clamped(parse_time("2024-03-01T01:00:00Z").unwrap()),
            1_709_254_800_000
        );
        assert!(parse_time("yesterday").is_err());
    }
}
