//! `usage-tracker report`: usage and cost for a period, from Postgres, per namespace (default),
//! per group of workloads (`--by label:KEY`, `--by workload`) or per cluster, with a total per
//! cluster and currency and a grand total per currency. The query is [`crate::report::report`].
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
use crate::report::{ReportBy, ReportQuery, ReportRow, TotalsLevel};
use crate::sink::postgres::PostgresSink;
use crate::time::{epoch_ms_clamped, parse_utc_time};

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

/// Print usage and cost per namespace (or group, or cluster), with totals.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Windows starting at or after this time (RFC 3339, or a date YYYY-MM-DD = 00:00 UTC);
    /// default: all.
    #[arg(long, value_parser = parse_utc_time)]
    from: Option<SystemTime>,
    /// Windows starting before this time (RFC 3339, or a date YYYY-MM-DD = 00:00 UTC);
    /// default: all.
    #[arg(long, value_parser = parse_utc_time)]
    to: Option<SystemTime>,
    /// Only this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Only this namespace (totals then cover this namespace only).
    #[arg(long)]
    namespace: Option<String>,
    /// Rows: `namespace`, `cluster` (totals only), `label:KEY` (per value of the pod label KEY
    /// within each namespace) or `workload` (per owning workload); groups come from the group
    /// records the tracker writes for that label or for workloads. Totals are the same for all.
    #[arg(long, default_value = "namespace", value_parser = parse_by)]
    by: ReportBy,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

fn parse_by(text: &str) -> Result<ReportBy, String> {
    text.parse()
}

impl ReportArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let settings = Settings::load(self.config.as_deref())?;
        let sink = PostgresSink::connect(&settings.database.url)
            .await
            .context("connecting to Postgres")?;
        let query = ReportQuery {
            from: self.from.map(epoch_ms_clamped),
            to: self.to.map(epoch_ms_clamped),
            cluster: self.cluster.clone(),
            namespace: self.namespace.clone(),
            by: self.by.clone(),
        };
        let rows = crate::report::report(sink.pool(), &query).await?;
        let layout = Layout::new(&self.by, &rows);
        match self.format {
            Format::Table => print!("{}", table(&layout, &rows)),
            Format::Csv => print!("{}", csv(&layout, &rows)),
            Format::Json => println!("{}", json(&self, &layout, &rows)),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Which columns a report has: the namespace column unless `--by cluster`, a group column for
/// group reports, and the cost sharing columns (own, shared, idle cost) only when cost sharing
/// touched any selected record, so that a report without sharing looks as it always did.
struct Layout {
    namespaces: bool,
    groups: bool,
    sharing: bool,
}

impl Layout {
    fn new(by: &ReportBy, rows: &[ReportRow]) -> Self {
        Self {
            namespaces: *by != ReportBy::Cluster,
            groups: by.is_group(),
            sharing: rows.iter().any(|r| r.sharing),
        }
    }

    fn headers(&self) -> Vec<&'static str> {
        let mut headers = vec!["cluster"];
        if self.namespaces {
            headers.push("namespace");
        }
        if self.groups {
            headers.push("group");
        }
        headers.extend([
            "windows",
            "cpu_used_h",
            "cpu_req_h",
            "cpu_alloc_h",
            "mem_used_GiBh",
            "mem_alloc_GiBh",
            "cost",
        ]);
        if self.sharing {
            headers.extend(["own_cost", "shared_cost", "idle_cost"]);
        }
        headers.extend(["currency", "cost_status", "kind"]);
        headers
    }

    fn cells(&self, r: &ReportRow) -> Vec<String> {
        let (cluster, namespace) = labels(r);
        let mut cells = vec![cluster];
        if self.namespaces {
            cells.push(namespace);
        }
        if self.groups {
            cells.push(r.group_value.clone().unwrap_or_default());
        }
        cells.extend([
            r.windows.to_string(),
            format!("{:.3}", r.cpu_used_core_hours),
            format!("{:.3}", r.cpu_requested_core_hours),
            format!("{:.3}", r.cpu_allocated_core_hours),
            format!("{:.3}", r.memory_used_gib_hours),
            format!("{:.3}", r.memory_allocated_gib_hours),
            trim_decimal(&r.cost).to_owned(),
        ]);
        if self.sharing {
            cells.extend(
                [&r.own_cost, &r.shared_cost, &r.idle_cost].map(|c| trim_decimal(c).to_owned()),
            );
        }
        cells.extend([
            r.currency.clone().unwrap_or_default(),
            r.cost_status.clone(),
            r.kind().to_owned(),
        ]);
        cells
    }
}

/// Text columns are aligned left, numbers right.
fn is_text(header: &str) -> bool {
    matches!(
        header,
        "cluster" | "namespace" | "group" | "currency" | "cost_status" | "kind"
    )
}

/// Label of the cluster and namespace cells: a cluster total is `<cluster> TOTAL`, a grand total
/// `TOTAL` (Kubernetes names are lower case, so `TOTAL` cannot be a namespace or cluster name
/// written by the standard's producers; the `kind` column says it in any case). Without a
/// namespace column (`--by cluster`) a cluster total is just `<cluster>`.
fn labels(r: &ReportRow) -> (String, String) {
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

fn table(layout: &Layout, rows: &[ReportRow]) -> String {
    let headers = layout.headers();
    let body: Vec<Vec<String>> = rows.iter().map(|r| layout.cells(r)).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &body {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for ((cell, w), header) in cells.iter().zip(&widths).zip(&headers) {
            if is_text(header) {
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
    let header_cells: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let mut out = line(&header_cells);
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

fn csv(layout: &Layout, rows: &[ReportRow]) -> String {
    let mut out = layout.headers().join(",") + "\n";
    for row in rows {
        let quoted: Vec<String> = layout
            .cells(row)
            .into_iter()
            .map(|cell| {
                if cell.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", cell.replace('"', "\"\""))
                } else {
                    cell
                }
            })
            .collect();
        out.push_str(&quoted.join(","));
        out.push('\n');
    }
    out
}

fn json_row(layout: &Layout, r: &ReportRow) -> serde_json::Value {
    let mut row = json!({
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
    });
    let object = row.as_object_mut().expect("an object");
    if layout.groups {
        object.insert("group_by".into(), json!(r.group_by));
        object.insert("group_value".into(), json!(r.group_value));
    }
    if layout.sharing {
        object.insert("own_cost".into(), json!(r.own_cost));
        object.insert("shared_cost".into(), json!(r.shared_cost));
        object.insert("idle_cost".into(), json!(r.idle_cost));
        object.insert("shared".into(), json!(r.shared));
    }
    row
}

/// `{"from", "to", "cluster", "namespace", "rows", "cluster_totals", "totals"}`; costs are
/// decimal strings with 6 decimals, usage figures are numbers. With `--by` other than
/// `namespace` also `"by"`; with `--by cluster` no `"rows"`. Rows of group reports carry
/// `group_by` and `group_value`; with cost sharing every row carries `own_cost`, `shared_cost`,
/// `idle_cost` and `shared`.
fn json(args: &ReportArgs, layout: &Layout, rows: &[ReportRow]) -> String {
    let of = |level: TotalsLevel| -> Vec<serde_json::Value> {
        rows.iter()
            .filter(|r| r.level == level)
            .map(|r| json_row(layout, r))
            .collect()
    };
    let time = |t: Option<SystemTime>| t.map(|t| humantime::format_rfc3339(t).to_string());
    let mut report = json!({
        "from": time(args.from),
        "to": time(args.to),
        "cluster": args.cluster,
        "namespace": args.namespace,
    });
    let object = report.as_object_mut().expect("an object");
    if args.by != ReportBy::Namespace {
        object.insert("by".into(), json!(args.by.to_string()));
    }
    if layout.namespaces {
        object.insert("rows".into(), json!(of(TotalsLevel::Namespace)));
    }
    object.insert("cluster_totals".into(), json!(of(TotalsLevel::Cluster)));
    object.insert("totals".into(), json!(of(TotalsLevel::Grand)));
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
}
