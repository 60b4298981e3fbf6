//! `usage-tracker report`: per-namespace usage and cost for a period, from Postgres.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::config::Settings;
use crate::sink::postgres::{NamespaceTotals, PostgresSink};

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

/// Print per-namespace usage and cost.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Configuration file (TOML).
    #[arg(long, env = "USAGE_TRACKER_CONFIG")]
    config: Option<PathBuf>,
    /// Windows starting at or after this time (RFC 3339); default: all.
    #[arg(long)]
    from: Option<humantime::Timestamp>,
    /// Windows starting before this time (RFC 3339); default: all.
    #[arg(long)]
    to: Option<humantime::Timestamp>,
    /// Only this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Only this namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

fn epoch_ms(t: Option<humantime::Timestamp>) -> Option<i64> {
    t.map(|t| {
        let system: std::time::SystemTime = t.into();
        system
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })
}

impl ReportArgs {
    pub(super) async fn run(self) -> anyhow::Result<ExitCode> {
        let settings = Settings::load(self.config.as_deref())?;
        let sink = PostgresSink::connect(&settings.database.url)
            .await
            .context("connecting to Postgres")?;
        let rows = sink
            .namespace_totals(
                epoch_ms(self.from),
                epoch_ms(self.to),
                self.cluster.as_deref(),
                self.namespace.as_deref(),
            )
            .await?;
        match self.format {
            Format::Table => print!("{}", table(&rows)),
            Format::Csv => print!("{}", csv(&rows)),
            Format::Json => println!("{}", json(&rows)),
        }
        Ok(ExitCode::SUCCESS)
    }
}

const HEADERS: [&str; 11] = [
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
];

fn cells(r: &NamespaceTotals) -> [String; 11] {
    [
        r.cluster_id.clone(),
        r.namespace.clone(),
        r.windows.to_string(),
        format!("{:.3}", r.cpu_used_core_hours),
        format!("{:.3}", r.cpu_requested_core_hours),
        format!("{:.3}", r.cpu_allocated_core_hours),
        format!("{:.3}", r.memory_used_gib_hours),
        format!("{:.3}", r.memory_allocated_gib_hours),
        r.cost
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned(),
        r.currency.clone().unwrap_or_default(),
        r.cost_status.clone(),
    ]
}

fn table(rows: &[NamespaceTotals]) -> String {
    let body: Vec<[String; 11]> = rows.iter().map(cells).collect();
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
    let mut out = line(&HEADERS.map(str::to_owned));
    for row in &body {
        out.push_str(&line(row));
    }
    out
}

fn csv(rows: &[NamespaceTotals]) -> String {
    let mut out = HEADERS.join(",") + "\n";
    for row in rows {
        out.push_str(&cells(row).join(","));
        out.push('\n');
    }
    out
}

fn json(rows: &[NamespaceTotals]) -> String {
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::Value::Object(
                HEADERS
                    .iter()
                    .map(|h| h.to_string())
                    .zip(cells(r).map(serde_json::Value::String))
                    .collect(),
            )
        })
        .collect();
    serde_json::to_string_pretty(&items).expect("json")
}
