//! The GCP Cloud Billing export (standard or detailed usage cost table) -> [`CostEvent`]s.
//!
//! Input is the BigQuery table as rows, in either of two shapes:
//!
//! - [`GcpFormat::JsonLines`]: `EXPORT DATA ... format=JSON` or `bq extract
//!   --destination_format NEWLINE_DELIMITED_JSON`. Records nest as in the table (`service:
//!   {id, description}`, `labels: [{key, value}]`, `credits: [{amount, type, ...}]` ...); `cost` is
//!   a JSON number (a string is accepted too); unknown fields are ignored, absent or `null` optional
//!   fields are empty.
//! - [`GcpFormat::Csv`]: a flattened query result. Headers name the leaf columns with dots
//!   (`service.description`) or underscores (`service_description`); `labels`, `system_labels` and
//!   `credits` hold the JSON text of the arrays. Column order is free and optional columns may be
//!   missing; an empty cell is a missing value.
//!
//! Mapping of one row (see `docs/billing-exporters.md`):
//!
//! | CostEvent | from |
//! |---|---|
//! | `provider` | `gcp` |
//! | `source` | `//cloud.google.com/billing/<billing_account_id>` |
//! | `billing_account_id` | `billing_account_id` |
//! | `sub_account_id` | `project.id` |
//! | `cluster_id` | label `goog-k8s-cluster-name` through [`ExportOptions::cluster_id`] |
//! | `namespace` | label `k8s-namespace` (GKE cost allocation) |
//! | `charge_period_start/end` | `usage_start_time` / `usage_end_time` |
//! | `billed_cost_micros` | `cost` |
//! | `effective_cost_micros` | `cost` + the sum of `credits[].amount` (credits are negative) |
//! | `billing_currency` | `currency`, upper-cased, three letters |
//! | `category` | [`CategoryRules::category`]`("gcp", service.description, sku.description)` |
//! | `cost_status` | `final` |
//! | `service_name` / `sku_id` / `resource_id` | `service.description` / `sku.id` / `resource.name` |
//! | `labels` | `labels` (key -> value) |
//! | `time` | [`ExportOptions::exported_at`] |
//! | `revision` | [`ExportOptions::revision`], else `exported_at`: one revision per export |
//!
//! Amounts are exact: a float is written as its shortest decimal and converted with decimal
//! arithmetic, a CSV cell is converted from its text.
//!
//! The id hashes the columns that identify a line, never amounts or `export_time`: billing account,
//! project, service id, SKU id, usage start and end (epoch millis), `cost_type` (absent =
//! `regular`), region (else location), `resource.name`, `resource.global_name` and the sorted
//! labels. The export appends: late usage of an hour arrives as further rows of the same line
//! with a later `export_time`, and they add up ([`crate::billing::consolidate`] sums the rows of a
//! line within one export). Export a whole period each time (a full query, not an increment): the
//! next export of the period has the same ids and a higher revision and replaces the previous one
//! in the tracker, so a re-priced line is corrected and an unchanged one is counted once.
//!
//! [`CategoryRules::category`]: crate::billing::CategoryRules::category

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::table::{csv_records, Columns, CsvRecords, JsonLines};
use super::values::{currency, decimal_micros, float_micros, parse_time};
use super::{check_event, line_id, ExportOptions, LineScope, RowError};
use crate::standard::{CostEvent, CostStatus, EpochMillis, Micros, COST_EVENT_TYPE, SPEC_VERSION};

/// GKE cost allocation label carrying the cluster name.
pub const CLUSTER_LABEL: &str = "goog-k8s-cluster-name";
/// GKE cost allocation label carrying the namespace.
pub const NAMESPACE_LABEL: &str = "k8s-namespace";

/// The shape of a billing export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcpFormat {
    /// One JSON object per line (BigQuery `NEWLINE_DELIMITED_JSON`).
    JsonLines,
    /// A flattened query result with a header row.
    Csv,
}

impl GcpFormat {
    /// The format a file name suggests: `.json`, `.jsonl`, `.ndjson` -> JSON lines, `.csv` -> CSV
    /// (case-insensitive); `None` otherwise.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "json" | "jsonl" | "ndjson" => Some(Self::JsonLines),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }
}

/// Reads a billing export row by row: one CostEvent with the 1-based line it starts on, or one
/// [`RowError`] (with its line and, as far as the row tells, its bill line) per row, streaming,
/// so a bad row never stops the rows after it. Every CostEvent is checked as the tracker checks it ([`check_event`], with
/// [`ExportOptions::exported_at`] as now); one that fails is a row error too.
pub fn read_gcp<'a, R: Read + 'a>(
    input: R,
    format: GcpFormat,
    options: &'a ExportOptions,
) -> impl Iterator<Item = Result<(u64, CostEvent), RowError>> + 'a {
    let rows: Box<dyn Iterator<Item = Result<(u64, GcpRow), RowError>> + 'a> = match format {
        GcpFormat::JsonLines => Box::new(JsonRows {
            lines: JsonLines::new(input),
        }),
        GcpFormat::Csv => csv_rows(input),
    };
    rows.map(move |row| {
        let (line, row) = row?;
        to_event(&row, options)
            .and_then(|event| check_event(&event, options.exported_at).map(|()| (line, event)))
            .map_err(|message| RowError {
                line,
                message,
                scope: scope(&row),
            })
    })
}

/// One row of the export, as far as the mapping needs it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GcpRow {
    billing_account_id: Option<String>,
    #[serde(deserialize_with = "nullable")]
    service: IdDescription,
    #[serde(deserialize_with = "nullable")]
    sku: IdDescription,
    #[serde(deserialize_with = "nullable")]
    project: Project,
    #[serde(deserialize_with = "nullable")]
    labels: Vec<Label>,
    #[serde(deserialize_with = "nullable")]
    location: Location,
    #[serde(deserialize_with = "nullable")]
    resource: Resource,
    #[serde(deserialize_with = "nullable")]
    credits: Vec<Credit>,
    cost: Option<Amount>,
    currency: Option<String>,
    usage_start_time: Option<String>,
    usage_end_time: Option<String>,
    export_time: Option<String>,
    cost_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IdDescription {
    id: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Project {
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Label {
    key: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Location {
    location: Option<String>,
    region: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Resource {
    name: Option<String>,
    global_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Credit {
    amount: Option<Amount>,
}

/// `null` as the type's default (BigQuery writes `null` for empty records and arrays).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// An amount as the input wrote it: a JSON number (a float) or decimal text.
#[derive(Debug, Clone, PartialEq)]
enum Amount {
    Float(f64),
    Text(String),
}

impl Amount {
    fn micros(&self) -> Result<Micros, String> {
        match self {
            Amount::Float(value) => float_micros(*value),
            Amount::Text(text) => decimal_micros(text),
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AmountVisitor)
    }
}

struct AmountVisitor;

impl Visitor<'_> for AmountVisitor {
    type Value = Amount;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number or a decimal string")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Amount, E> {
        Ok(Amount::Float(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Amount, E> {
        Ok(Amount::Text(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Amount, E> {
        Ok(Amount::Text(value.to_string()))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Amount, E> {
        Ok(Amount::Text(value.to_owned()))
    }
}

/// JSON lines -> rows.
struct JsonRows<R> {
    lines: JsonLines<R>,
}

impl<R: Read> Iterator for JsonRows<R> {
    type Item = Result<(u64, GcpRow), RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (line, bytes) = match self.lines.next_line()? {
            Ok(line) => line,
            Err(e) => return Some(Err(e)),
        };
        let row = serde_json::from_slice::<GcpRow>(bytes).map_err(|e| RowError {
            line,
            message: format!("not a valid billing export JSON row: {e}"),
            scope: json_scope(bytes),
        });
        Some(row.map(|row| (line, row)))
    }
}

/// CSV -> rows; a header that cannot be read is one error.
fn csv_rows<'a, R: Read + 'a>(
    input: R,
) -> Box<dyn Iterator<Item = Result<(u64, GcpRow), RowError>> + 'a> {
    match csv_records(input) {
        Err(e) => Box::new(std::iter::once(Err(e))),
        Ok((headers, records)) => Box::new(CsvRows {
            columns: Columns::new(&headers, csv_column),
            records,
        }),
    }
}

/// `Service.Description` and `service_description` both name `service.description`.
fn csv_column(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('.', "_")
}

struct CsvRows<R> {
    columns: Columns,
    records: CsvRecords<R>,
}

impl<R: Read> Iterator for CsvRows<R> {
    type Item = Result<(u64, GcpRow), RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (line, record) = match self.records.next()? {
            Ok(row) => row,
            Err(e) => return Some(Err(e)),
        };
        let row = csv_row(&self.columns, &record).map_err(|message| RowError {
            line,
            message,
            scope: account_scope(self.columns.get(&record, "billing_account_id")),
        });
        Some(row.map(|row| (line, row)))
    }
}

fn csv_row(columns: &Columns, record: &csv::StringRecord) -> Result<GcpRow, String> {
    let cell = |name: &str| columns.get(record, name).map(str::to_owned);
    Ok(GcpRow {
        billing_account_id: cell("billing_account_id"),
        service: IdDescription {
            id: cell("service.id"),
            description: cell("service.description"),
        },
        sku: IdDescription {
            id: cell("sku.id"),
            description: cell("sku.description"),
        },
        project: Project {
            id: cell("project.id"),
        },
        labels: json_cell(columns, record, "labels")?,
        location: Location {
            location: cell("location.location"),
            region: cell("location.region"),
        },
        resource: Resource {
            name: cell("resource.name"),
            global_name: cell("resource.global_name"),
        },
        credits: json_cell(columns, record, "credits")?,
        cost: cell("cost").map(Amount::Text),
        currency: cell("currency"),
        usage_start_time: cell("usage_start_time"),
        usage_end_time: cell("usage_end_time"),
        export_time: cell("export_time"),
        cost_type: cell("cost_type"),
    })
}

/// A cell holding the JSON text of an array; empty or `null` is an empty array.
fn json_cell<T: for<'de> Deserialize<'de>>(
    columns: &Columns,
    record: &csv::StringRecord,
    name: &str,
) -> Result<Vec<T>, String> {
    match columns.get(record, name) {
        None | Some("null") => Ok(Vec::new()),
        Some(text) => serde_json::from_str::<Vec<T>>(text)
            .map_err(|e| format!("{name}: {text:?} is not a JSON array of {name}: {e}")),
    }
}

/// The source of an account's lines.
fn source(account: &str) -> String {
    format!("//cloud.google.com/billing/{account}")
}

/// The bill line of a row that failed, as far as its identifying columns can be read.
fn scope(row: &GcpRow) -> LineScope {
    let Ok(account) = required(&row.billing_account_id, "billing_account_id") else {
        return LineScope::Unknown;
    };
    let period = time(&row.usage_start_time, "usage_start_time")
        .and_then(|start| Ok((start, time(&row.usage_end_time, "usage_end_time")?)));
    match period {
        Ok((start, end)) => LineScope::Line {
            source: source(account),
            id: identity(row, account, start, end, &labels(&row.labels)),
        },
        Err(_) => LineScope::Source(source(account)),
    }
}

/// Some line of the account, if the row names one.
fn account_scope(account: Option<&str>) -> LineScope {
    match account.map(str::trim).filter(|a| !a.is_empty()) {
        Some(account) => LineScope::Source(source(account)),
        None => LineScope::Unknown,
    }
}

/// The scope of a JSON line that is not a row: its account, if it is a JSON object naming one.
fn json_scope(bytes: &[u8]) -> LineScope {
    let value = serde_json::from_slice::<serde_json::Value>(bytes).ok();
    let account = value
        .as_ref()
        .and_then(|v| v.get("billing_account_id"))
        .and_then(serde_json::Value::as_str);
    account_scope(account)
}

/// Maps one row; the error names the column and the bad value.
fn to_event(row: &GcpRow, options: &ExportOptions) -> Result<CostEvent, String> {
    let account = required(&row.billing_account_id, "billing_account_id")?;
    let service = required(&row.service.description, "service.description")?;
    let sku = required(&row.sku.description, "sku.description")?;
    let (start, end) = charge_period(row)?;
    let billed = amount(&row.cost, "cost")?;
    let effective = effective_cost(billed, &row.credits)?;
    let billing_currency = required(&row.currency, "currency")
        .and_then(|c| currency(c).map_err(|e| format!("currency: {e}")))?;
    let labels = labels(&row.labels);
    let cluster_id = labels
        .get(CLUSTER_LABEL)
        .map(|name| options.cluster_id(name));
    let namespace = labels.get(NAMESPACE_LABEL).cloned();
    Ok(CostEvent {
        specversion: SPEC_VERSION.into(),
        id: identity(row, account, start, end, &labels),
        source: source(account),
        event_type: COST_EVENT_TYPE.into(),
        time: options.exported_at,
        revision: revision(row, options)?,
        provider: "gcp".into(),
        billing_account_id: account.to_owned(),
        sub_account_id: non_empty(&row.project.id),
        cluster_id,
        namespace,
        charge_period_start: start,
        charge_period_end: end,
        billed_cost_micros: billed,
        effective_cost_micros: effective,
        billing_currency,
        category: options.categories.category("gcp", service, sku),
        cost_status: CostStatus::Final,
        service_name: Some(service.to_owned()),
        sku_id: non_empty(&row.sku.id),
        resource_id: non_empty(&row.resource.name),
        labels,
        meter: None,
    })
}

fn required<'r>(value: &'r Option<String>, column: &str) -> Result<&'r str, String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("missing column {column}"))
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn time(value: &Option<String>, column: &str) -> Result<EpochMillis, String> {
    let text = required(value, column)?;
    parse_time(text).map_err(|e| format!("{column}: {e}"))
}

fn charge_period(row: &GcpRow) -> Result<(EpochMillis, EpochMillis), String> {
    let start = time(&row.usage_start_time, "usage_start_time")?;
    let end = time(&row.usage_end_time, "usage_end_time")?;
    if end <= start {
        return Err(format!(
            "usage_end_time {:?} is not after usage_start_time {:?}",
            row.usage_end_time.as_deref().unwrap_or_default(),
            row.usage_start_time.as_deref().unwrap_or_default(),
        ));
    }
    Ok((start, end))
}

fn amount(value: &Option<Amount>, column: &str) -> Result<Micros, String> {
    let value = value
        .as_ref()
        .ok_or_else(|| format!("missing column {column}"))?;
    value.micros().map_err(|e| format!("{column}: {e}"))
}

/// `cost` plus every credit amount (credits are negative).
fn effective_cost(billed: Micros, credits: &[Credit]) -> Result<Micros, String> {
    credits.iter().try_fold(billed, |sum, credit| {
        let micros = match &credit.amount {
            None => 0,
            Some(amount) => amount
                .micros()
                .map_err(|e| format!("credits.amount: {e}"))?,
        };
        sum.checked_add(micros)
            .ok_or_else(|| "credits: the sum is out of range".to_owned())
    })
}

fn labels(labels: &[Label]) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter_map(|l| Some((l.key.clone()?, l.value.clone().unwrap_or_default())))
        .collect()
}

/// The export's revision, the same for every row: the Cloud Billing export appends, so rows of a
/// line with different `export_time`s (late usage, re-priced hours) add up rather than replace one
/// another. `export_time` is still checked, so a malformed one is reported.
fn revision(row: &GcpRow, options: &ExportOptions) -> Result<i64, String> {
    if let Some(text) = non_empty(&row.export_time) {
        parse_time(&text).map_err(|e| format!("export_time: {e}"))?;
    }
    Ok(options.revision.unwrap_or(options.exported_at))
}

/// The line id: identifying columns only, never amounts or `export_time`.
fn identity(
    row: &GcpRow,
    account: &str,
    start: EpochMillis,
    end: EpochMillis,
    labels: &BTreeMap<String, String>,
) -> String {
    let text = |v: &Option<String>| v.as_deref().map(str::trim).unwrap_or_default().to_owned();
    let cost_type = non_empty(&row.cost_type).unwrap_or_else(|| "regular".into());
    let region = non_empty(&row.location.region).unwrap_or_else(|| text(&row.location.location));
    let mut parts = vec![
        account.to_owned(),
        text(&row.project.id),
        text(&row.service.id),
        text(&row.sku.id),
        start.to_string(),
        end.to_string(),
        cost_type.to_ascii_lowercase(),
        region,
        text(&row.resource.name),
        text(&row.resource.global_name),
    ];
    parts.extend(labels.iter().map(|(k, v)| format!("{k}={v}")));
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    line_id("gcp", &parts)
}

#[cfg(test)]
mod tests;
