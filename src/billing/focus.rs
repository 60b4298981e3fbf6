//! FOCUS 1.0 / 1.1 / 1.2 cost and usage CSV -> [`CostEvent`]s.
//!
//! Azure Cost Management's FOCUS export and GCP's FOCUS BigQuery view both write these columns.
//! Columns are found by their FOCUS name (case-insensitive, any order); vendor columns (`x_*`) and
//! other FOCUS columns are ignored. An empty cell is a missing value.
//!
//! | CostEvent | from |
//! |---|---|
//! | `provider` | ProviderName (else ServiceProviderName), see [`provider_of`]: `Microsoft` -> `azure`, `Google Cloud` -> `gcp` |
//! | `source` | `//focus/<provider>/<BillingAccountId>` |
//! | `billing_account_id` / `sub_account_id` | BillingAccountId / SubAccountId |
//! | `cluster_id` | the first of [`CLUSTER_TAGS`] in Tags, through [`ExportOptions::cluster_id`] |
//! | `namespace` | the first of [`NAMESPACE_TAGS`] in Tags |
//! | `charge_period_start/end` | ChargePeriodStart / ChargePeriodEnd (ISO 8601, date-only allowed) |
//! | `billed_cost_micros` / `effective_cost_micros` | BilledCost / EffectiveCost, exact from the decimal text |
//! | `billing_currency` | BillingCurrency, upper-cased, three letters |
//! | `category` | [`CategoryRules::category`]`(provider, ServiceName, ChargeDescription, else SkuMeter, else x_SkuMeterName, else SkuId)` |
//! | `cost_status` | `final` |
//! | `service_name` / `sku_id` / `resource_id` | ServiceName / SkuId / ResourceId |
//! | `labels` | Tags (a JSON object; values that are not strings as their JSON text) |
//! | `time` | [`ExportOptions::exported_at`] |
//! | `revision` | [`ExportOptions::revision`], else `exported_at` |
//!
//! The category is looked up by ChargeDescription because that is the readable SKU text that the
//! rules match: GCP's FOCUS view puts `sku.description` there ("N2 Instance Core running in
//! Frankfurt"), while SkuId is an opaque id on both clouds (Azure: a meter GUID). When
//! ChargeDescription is empty the meter name is used (SkuMeter, or Azure's x_SkuMeterName: "NC6s
//! v3", which is what the Azure GPU VM rules match), and SkuId only without one.
//!
//! The id hashes BillingAccountId, SubAccountId, ResourceId, ServiceName, SkuId, SkuPriceId,
//! ChargeCategory, ChargeClass, ChargeDescription, ChargePeriodStart/End (epoch millis), RegionId
//! and the sorted Tags, never an amount. Re-exporting a file gives the same ids; a re-export with
//! a higher revision replaces the lines. A FOCUS 1.1+ `ChargeClass = Correction` row is a delta to
//! an earlier period's line: ChargeClass is part of the id, so it is a line of its own and adds to
//! the original instead of replacing it.
//!
//! [`CategoryRules::category`]: crate::billing::CategoryRules::category

use std::collections::BTreeMap;
use std::io::Read;

use super::table::{csv_records, Columns, CsvRecords};
use super::values::{currency, decimal_micros, parse_time};
use super::{check_event, line_id, ExportOptions, LineScope, RowError};
use crate::standard::{CostEvent, CostStatus, EpochMillis, Micros, COST_EVENT_TYPE, SPEC_VERSION};

/// Tags naming the Kubernetes cluster of a line, in order of preference (case-insensitive).
pub const CLUSTER_TAGS: &[&str] = &[
    "kubernetes-cluster",
    "k8s-cluster",
    "aks-managed-cluster-name",
    "goog-k8s-cluster-name",
];

/// Tags naming the Kubernetes namespace of a line, in order of preference (case-insensitive).
pub const NAMESPACE_TAGS: &[&str] = &["kubernetes-namespace", "k8s-namespace"];

/// Reads a FOCUS CSV file row by row: one CostEvent with the 1-based line it starts on, or one
/// [`RowError`] (with its line and, as far as the row tells, its bill line) per row, streaming,
/// so a bad row never stops the rows after it. A header that cannot be read or lacks a required column is a single error on
/// line 1. Every CostEvent is checked as the tracker checks it ([`check_event`], with
/// [`ExportOptions::exported_at`] as now); one that fails is a row error too.
pub fn read_focus<'a, R: Read + 'a>(
    input: R,
    options: &'a ExportOptions,
) -> impl Iterator<Item = Result<(u64, CostEvent), RowError>> + 'a {
    focus_rows(input, options)
}

fn focus_rows<'a, R: Read + 'a>(
    input: R,
    options: &'a ExportOptions,
) -> Box<dyn Iterator<Item = Result<(u64, CostEvent), RowError>> + 'a> {
    match csv_records(input).and_then(checked_header) {
        Err(e) => Box::new(std::iter::once(Err(e))),
        Ok((columns, records)) => Box::new(FocusRows {
            columns,
            records,
            options,
        }),
    }
}

/// The lower-case provider of a FOCUS ProviderName: `Microsoft` -> `azure`, `Google Cloud` ->
/// `gcp`, `Amazon Web Services` / `AWS` -> `aws`, otherwise lower-case without spaces.
pub fn provider_of(provider_name: &str) -> String {
    let name: String = provider_name
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect();
    match name.as_str() {
        "microsoft" | "microsoftazure" | "azure" => "azure".into(),
        "googlecloud" | "google" | "googlecloudplatform" | "gcp" => "gcp".into(),
        "amazonwebservices" | "aws" => "aws".into(),
        _ => name,
    }
}

/// Columns without which no row can map.
const REQUIRED: &[&str] = &[
    "BillingAccountId",
    "BillingCurrency",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "BilledCost",
    "EffectiveCost",
];

fn focus_column(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}

fn checked_header<R>(
    (headers, records): (csv::StringRecord, CsvRecords<R>),
) -> Result<(Columns, CsvRecords<R>), RowError> {
    let columns = Columns::new(&headers, focus_column);
    let mut missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|c| !columns.has(c))
        .collect();
    if !columns.has("ProviderName") && !columns.has("ServiceProviderName") {
        missing.push("ProviderName");
    }
    if missing.is_empty() {
        Ok((columns, records))
    } else {
        Err(RowError::new(
            1,
            format!("not a FOCUS file: missing column {}", missing.join(", ")),
        ))
    }
}

struct FocusRows<'a, R> {
    columns: Columns,
    records: CsvRecords<R>,
    options: &'a ExportOptions,
}

impl<R: Read> Iterator for FocusRows<'_, R> {
    type Item = Result<(u64, CostEvent), RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (line, record) = match self.records.next()? {
            Ok(row) => row,
            Err(e) => return Some(Err(e)),
        };
        let row = Row {
            columns: &self.columns,
            record: &record,
        };
        let event = to_event(&row, self.options).and_then(|event| {
            check_event(&event, self.options.exported_at).map(|()| (line, event))
        });
        Some(event.map_err(|message| RowError {
            line,
            message,
            scope: scope(&row),
        }))
    }
}

/// One CSV record with its header.
struct Row<'r> {
    columns: &'r Columns,
    record: &'r csv::StringRecord,
}

impl Row<'_> {
    fn get(&self, column: &str) -> Option<&str> {
        self.columns.get(self.record, column)
    }

    fn text(&self, column: &str) -> &str {
        self.get(column).unwrap_or_default()
    }

    fn owned(&self, column: &str) -> Option<String> {
        self.get(column).map(str::to_owned)
    }

    fn required(&self, column: &str) -> Result<&str, String> {
        self.get(column)
            .ok_or_else(|| format!("missing value in column {column}"))
    }

    fn time(&self, column: &str) -> Result<EpochMillis, String> {
        parse_time(self.required(column)?).map_err(|e| format!("{column}: {e}"))
    }

    fn micros(&self, column: &str) -> Result<Micros, String> {
        decimal_micros(self.required(column)?).map_err(|e| format!("{column}: {e}"))
    }
}

/// The bill line of a row that failed, as far as its identifying columns can be read.
fn scope(row: &Row<'_>) -> LineScope {
    let provider = row
        .get("ProviderName")
        .or_else(|| row.get("ServiceProviderName"));
    let (Some(account), Some(provider)) = (row.get("BillingAccountId"), provider) else {
        return LineScope::Unknown;
    };
    let source = format!("//focus/{}/{account}", provider_of(provider));
    let identified = row.time("ChargePeriodStart").and_then(|start| {
        let end = row.time("ChargePeriodEnd")?;
        Ok(identity(row, start, end, &tags(row.get("Tags"))?))
    });
    match identified {
        Ok(id) => LineScope::Line { source, id },
        Err(_) => LineScope::Source(source),
    }
}

fn to_event(row: &Row<'_>, options: &ExportOptions) -> Result<CostEvent, String> {
    let account = row.required("BillingAccountId")?;
    let provider_name = row
        .get("ProviderName")
        .or_else(|| row.get("ServiceProviderName"))
        .ok_or("missing value in column ProviderName")?;
    let provider = provider_of(provider_name);
    let (start, end) = charge_period(row)?;
    let billed = row.micros("BilledCost")?;
    let effective = row.micros("EffectiveCost")?;
    let billing_currency =
        currency(row.required("BillingCurrency")?).map_err(|e| format!("BillingCurrency: {e}"))?;
    let tags = tags(row.get("Tags"))?;
    let cluster_id = first_tag(&tags, CLUSTER_TAGS).map(|name| options.cluster_id(name));
    let namespace = first_tag(&tags, NAMESPACE_TAGS).map(str::to_owned);
    let category = options
        .categories
        .category(&provider, row.text("ServiceName"), sku_text(row));
    Ok(CostEvent {
        specversion: SPEC_VERSION.into(),
        id: identity(row, start, end, &tags),
        source: format!("//focus/{provider}/{account}"),
        event_type: COST_EVENT_TYPE.into(),
        time: options.exported_at,
        revision: options.revision.unwrap_or(options.exported_at),
        provider,
        billing_account_id: account.to_owned(),
        sub_account_id: row.owned("SubAccountId"),
        cluster_id,
        namespace,
        charge_period_start: start,
        charge_period_end: end,
        billed_cost_micros: billed,
        effective_cost_micros: effective,
        billing_currency,
        category,
        cost_status: CostStatus::Final,
        service_name: row.owned("ServiceName"),
        sku_id: row.owned("SkuId"),
        resource_id: row.owned("ResourceId"),
        labels: tags,
        meter: None,
    })
}

/// The SKU text the category rules match: ChargeDescription, else the meter name (FOCUS 1.1+
/// SkuMeter, Azure's FOCUS 1.0 x_SkuMeterName: "NC6s v3"), else SkuId.
fn sku_text<'r>(row: &'r Row<'_>) -> &'r str {
    ["ChargeDescription", "SkuMeter", "x_SkuMeterName", "SkuId"]
        .into_iter()
        .find_map(|column| row.get(column))
        .unwrap_or_default()
}

fn charge_period(row: &Row<'_>) -> Result<(EpochMillis, EpochMillis), String> {
    let start = row.time("ChargePeriodStart")?;
    let end = row.time("ChargePeriodEnd")?;
    if end <= start {
        return Err(format!(
            "ChargePeriodEnd {:?} is not after ChargePeriodStart {:?}",
            row.text("ChargePeriodEnd"),
            row.text("ChargePeriodStart"),
        ));
    }
    Ok((start, end))
}

/// The Tags cell: a JSON object. Azure's older exports drop the braces (`"a": "1","b": "2"`);
/// those are accepted too. Values that are not strings keep their JSON text, `null` is empty.
fn tags(cell: Option<&str>) -> Result<BTreeMap<String, String>, String> {
    let Some(text) = cell else {
        return Ok(BTreeMap::new());
    };
    let object =
        parse_object(text).ok_or_else(|| format!("Tags: {text:?} is not a JSON object"))?;
    Ok(object
        .into_iter()
        .map(|(key, value)| (key, tag_value(value)))
        .collect())
}

fn parse_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    if text == "null" {
        return Some(serde_json::Map::new());
    }
    serde_json::from_str(text)
        .or_else(|_| serde_json::from_str(&format!("{{{text}}}")))
        .ok()
}

fn tag_value(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The value of the first of `keys` present in `tags` (keys compared case-insensitively).
fn first_tag<'t>(tags: &'t BTreeMap<String, String>, keys: &[&str]) -> Option<&'t str> {
    keys.iter().find_map(|wanted| {
        tags.iter()
            .find(|(key, value)| key.eq_ignore_ascii_case(wanted) && !value.is_empty())
            .map(|(_, value)| value.as_str())
    })
}

/// The line id: identifying columns only, never amounts.
fn identity(
    row: &Row<'_>,
    start: EpochMillis,
    end: EpochMillis,
    tags: &BTreeMap<String, String>,
) -> String {
    let (start, end) = (start.to_string(), end.to_string());
    let mut parts: Vec<String> = [
        row.text("BillingAccountId"),
        row.text("SubAccountId"),
        row.text("ResourceId"),
        row.text("ServiceName"),
        row.text("SkuId"),
        row.text("SkuPriceId"),
        row.text("ChargeCategory"),
        row.text("ChargeClass"),
        row.text("ChargeDescription"),
        start.as_str(),
        end.as_str(),
        row.text("RegionId"),
    ]
    .iter()
    .map(|part| (*part).to_owned())
    .collect();
    parts.extend(tags.iter().map(|(k, v)| format!("{k}={v}")));
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    line_id("focus", &parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::consolidate;
    use crate::standard::CostCategory;

    const EXPORTED_AT: EpochMillis = 1_795_200_000_000;
    /// 2026-11-20T00:00:00Z
    const DAY: EpochMillis = 1_795_132_800_000;
    const DAY_MS: EpochMillis = 86_400_000;

    const AZURE_HEADER: &str = "AvailabilityZone,BilledCost,BillingAccountId,BillingAccountName,BillingAccountType,BillingCurrency,BillingPeriodEnd,BillingPeriodStart,ChargeCategory,ChargeClass,ChargeDescription,ChargeFrequency,ChargePeriodEnd,ChargePeriodStart,ContractedCost,EffectiveCost,InvoiceIssuerName,ListCost,ProviderName,PublisherName,RegionId,RegionName,ResourceId,ResourceName,ResourceType,ServiceCategory,ServiceName,SkuId,SkuPriceId,SubAccountId,SubAccountName,Tags,x_SkuMeterCategory,x_SkuMeterName";
    const ACCOUNT: &str = "/providers/Microsoft.Billing/billingAccounts/12345678";
    const SUBSCRIPTION: &str = "/subscriptions/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";

    fn options() -> ExportOptions {
        ExportOptions {
            exported_at: EXPORTED_AT,
            cluster_ids: [("aks-team".to_owned(), "aks-team-uid".to_owned())].into(),
            ..ExportOptions::default()
        }
    }

    /// An AKS node VM line as Azure Cost Management's FOCUS export writes it.
    fn azure_vm_row(billed: &str, charge_class: &str, tags: &str) -> String {
        format!(
            "1,{billed},{ACCOUNT},Contoso,Microsoft Customer Agreement,EUR,2026-12-01T00:00:00.0000000Z,2026-11-01T00:00:00.0000000Z,Usage,{charge_class},D4s v5,Usage-Based,2026-11-21T00:00:00.0000000Z,2026-11-20T00:00:00.0000000Z,{billed},{billed},Microsoft,{billed},Microsoft,Microsoft,westeurope,West Europe,{SUBSCRIPTION}/resourcegroups/mc_team_aks-team_westeurope/providers/microsoft.compute/virtualmachinescalesets/aks-nodepool1-123-vmss,aks-nodepool1-123-vmss,Virtual machine scale set,Compute,Virtual Machines,DZH318Z0BQ4L,DZH318Z0BQ4L/0001,{SUBSCRIPTION},team-sub,\"{tags}\",Virtual Machines,D4s v5"
        )
    }

    const AKS_TAGS: &str = r#"{""aks-managed-cluster-name"":""aks-team"",""aks-managed-cluster-rg"":""team"",""aks-managed-poolName"":""nodepool1""}"#;

    fn read(text: &str, options: &ExportOptions) -> Vec<Result<CostEvent, RowError>> {
        read_focus(text.as_bytes(), options)
            .map(|row| row.map(|(_, event)| event))
            .collect()
    }

    fn all_ok(text: &str) -> Vec<CostEvent> {
        read(text, &options())
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("all rows map")
    }

    #[test]
    fn an_azure_vm_row_maps_every_field() {
        let events = all_ok(&format!(
            "{AZURE_HEADER}\n{}\n",
            azure_vm_row("4.608", "", AKS_TAGS)
        ));
        let event = &events[0];
        assert_eq!(event.provider, "azure");
        assert_eq!(event.source, format!("//focus/azure/{ACCOUNT}"));
        assert!(event.id.starts_with("focus-"));
        assert_eq!(event.billing_account_id, ACCOUNT);
        assert_eq!(event.sub_account_id.as_deref(), Some(SUBSCRIPTION));
        assert_eq!(event.cluster_id.as_deref(), Some("aks-team-uid"));
        assert_eq!(event.namespace, None);
        assert_eq!(
            (event.charge_period_start, event.charge_period_end),
            (DAY, DAY + DAY_MS)
        );
        assert_eq!(
            (event.billed_cost_micros, event.effective_cost_micros),
            (4_608_000, 4_608_000)
        );
        assert_eq!(event.billing_currency, "EUR");
        assert_eq!(event.category, CostCategory::Compute);
        assert_eq!(event.cost_status, CostStatus::Final);
        assert_eq!(event.service_name.as_deref(), Some("Virtual Machines"));
        assert_eq!(event.sku_id.as_deref(), Some("DZH318Z0BQ4L"));
        assert!(event
            .resource_id
            .as_deref()
            .is_some_and(|r| r.ends_with("aks-nodepool1-123-vmss")));
        assert_eq!(event.labels["aks-managed-poolName"], "nodepool1");
        assert_eq!((event.time, event.revision), (EXPORTED_AT, EXPORTED_AT));
    }

    #[test]
    fn a_databricks_line_keeps_its_tags_as_labels_only() {
        let header = "BillingAccountId,SubAccountId,ProviderName,ServiceName,ChargeDescription,SkuId,ChargeCategory,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,BillingCurrency,ResourceId,Tags";
        let row = format!("{ACCOUNT},{SUBSCRIPTION},Microsoft,Azure Databricks,Premium All-purpose Compute DBU,DZH318Z0BPVW,Usage,2026-11-20T00:00:00Z,2026-11-21T00:00:00Z,12.0000000001,11.25,EUR,{SUBSCRIPTION}/resourceGroups/dbx/providers/Microsoft.Databricks/workspaces/analytics,\"{{\"\"Vendor\"\":\"\"Databricks\"\",\"\"ClusterName\"\":\"\"etl-nightly\"\",\"\"ClusterId\"\":\"\"1120-083012-abcd123\"\",\"\"DatabricksInstancePoolId\"\":null}}\"");
        let event = &all_ok(&format!("{header}\n{row}\n"))[0];
        assert_eq!(event.category, CostCategory::Compute);
        assert_eq!(
            (event.cluster_id.as_ref(), event.namespace.as_ref()),
            (None, None)
        );
        assert_eq!(event.labels["Vendor"], "Databricks");
        assert_eq!(event.labels["ClusterName"], "etl-nightly");
        assert_eq!(event.labels["DatabricksInstancePoolId"], "");
        assert_eq!(
            (event.billed_cost_micros, event.effective_cost_micros),
            (12_000_000, 11_250_000)
        );
    }

    #[test]
    fn a_gcp_focus_view_row() {
        let header = "BilledCost,EffectiveCost,ListCost,BillingAccountId,SubAccountId,SubAccountName,BillingCurrency,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ChargeClass,ChargeDescription,ProviderName,PublisherName,InvoiceIssuerName,RegionId,ServiceCategory,ServiceName,SkuId,SkuPriceId,ResourceId,Tags,x_Credits";
        let tags = r#"{""goog-k8s-cluster-name"":""gke-prod-1"",""k8s-namespace"":""team-a"",""k8s-label/app"":""presto""}"#;
        let row = format!("0.512346,0.41,0.55,01A2B3-C4D5E6-F7A8B9,ferris-prod,ferris-prod,EUR,2026-11-20T10:00:00Z,2026-11-20T11:00:00Z,Usage,,N2 Instance Ram running in Frankfurt,Google Cloud,Google Cloud,Google Cloud,europe-west3,Compute,Compute Engine,CF4E-A0C7-E3BF,CF4E-A0C7-E3BF,//compute.googleapis.com/projects/ferris-prod/zones/europe-west3-a/instances/4711,\"{tags}\",\"[]\"");
        let event = &all_ok(&format!("{header}\n{row}\n"))[0];
        assert_eq!(event.provider, "gcp");
        assert_eq!(event.source, "//focus/gcp/01A2B3-C4D5E6-F7A8B9");
        assert_eq!(event.category, CostCategory::Memory, "by ChargeDescription");
        assert_eq!(event.cluster_id.as_deref(), Some("gke-prod-1"));
        assert_eq!(event.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            (event.billed_cost_micros, event.effective_cost_micros),
            (512_346, 410_000)
        );
        assert_eq!(
            event.charge_period_end - event.charge_period_start,
            3_600_000
        );
    }

    #[test]
    fn azure_gpu_vm_rows_are_gpu_and_other_vms_compute() {
        // An AKS GPU node pool (NCasT4_v3) and a general one, as the FOCUS export writes them.
        let gpu_pool = azure_vm_row("12.624", "", AKS_TAGS)
            .replace("D4s v5,Usage-Based", "NC4as T4 v3,Usage-Based")
            .replace(",Virtual Machines,D4s v5", ",Virtual Machines,NC4as T4 v3");
        let spot = gpu_pool.replace("NC4as T4 v3", "NC8as T4 v3 Spot");
        let text = format!(
            "{AZURE_HEADER}\n{gpu_pool}\n{spot}\n{}\n",
            azure_vm_row("4.608", "", AKS_TAGS)
        );
        let categories: Vec<CostCategory> = all_ok(&text).iter().map(|e| e.category).collect();
        assert_eq!(
            categories,
            [CostCategory::Gpu, CostCategory::Gpu, CostCategory::Compute]
        );
    }

    #[test]
    fn without_charge_description_the_meter_name_is_matched() {
        let header = "BillingAccountId,ProviderName,ServiceName,ChargeDescription,SkuMeter,x_SkuMeterName,SkuId,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,BillingCurrency";
        let row = |description: &str, meter: &str, x_meter: &str| {
            format!("{ACCOUNT},Microsoft,Virtual Machines,{description},{meter},{x_meter},DZH318Z0BQ4L,2026-11-20,2026-11-21,1,1,EUR")
        };
        let rows = [
            row("", "NC6s v3", ""),           // FOCUS 1.1+: SkuMeter
            row("", "", "ND96asr v4"),        // Azure FOCUS 1.0: x_SkuMeterName
            row("NVadsA10 v5", "D4s v5", ""), // ChargeDescription first
            row("D4s v5", "NC6s v3", ""),     // ... either way
            row("", "", ""),                  // SkuId, an opaque id: the service's rule
        ];
        let events = all_ok(&format!("{header}\n{}\n", rows.join("\n")));
        let categories: Vec<CostCategory> = events.iter().map(|e| e.category).collect();
        assert_eq!(
            categories,
            [
                CostCategory::Gpu,
                CostCategory::Gpu,
                CostCategory::Gpu,
                CostCategory::Compute,
                CostCategory::Compute
            ]
        );
    }

    #[test]
    fn a_gcp_focus_view_gpu_row_is_gpu() {
        let header = "BillingAccountId,ProviderName,ServiceName,ChargeDescription,SkuId,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,BillingCurrency";
        let row = |sku: &str| {
            format!("01A2B3-C4D5E6-F7A8B9,Google Cloud,Compute Engine,{sku},039F-D0DA-4055,2026-11-20T10:00:00Z,2026-11-20T11:00:00Z,0.35,0.35,USD")
        };
        let text = format!(
            "{header}\n{}\n{}\n",
            row("Nvidia Tesla T4 GPU running in Americas"),
            row("N1 Predefined Instance Core running in Americas")
        );
        let categories: Vec<CostCategory> = all_ok(&text).iter().map(|e| e.category).collect();
        assert_eq!(categories, [CostCategory::Gpu, CostCategory::Compute]);
    }

    #[test]
    fn a_correction_is_a_line_of_its_own() {
        let text = format!(
            "{AZURE_HEADER}\n{}\n{}\n",
            azure_vm_row("4.608", "", AKS_TAGS),
            azure_vm_row("-0.5", "Correction", AKS_TAGS)
        );
        let events = all_ok(&text);
        assert_ne!(events[0].id, events[1].id);
        let lines = consolidate(events).expect("sums");
        let total: Micros = lines.iter().map(|e| e.effective_cost_micros).sum();
        assert_eq!((lines.len(), total), (2, 4_108_000));
    }

    #[test]
    fn re_exports_replace_and_parts_of_a_line_add_up() {
        let row = azure_vm_row("4.608", "", AKS_TAGS);
        let first = all_ok(&format!("{AZURE_HEADER}\n{row}\n{row}\n"));
        assert_eq!(first[0].id, first[1].id);
        let later = ExportOptions {
            revision: Some(EXPORTED_AT + 1),
            ..options()
        };
        let again = read(
            &format!("{AZURE_HEADER}\n{}\n", azure_vm_row("5", "", AKS_TAGS)),
            &later,
        );
        let again = again
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .expect("maps");
        assert_eq!(again[0].id, first[0].id);
        let lines = consolidate(first.iter().cloned()).expect("sums");
        assert_eq!(lines[0].effective_cost_micros, 9_216_000);
        let lines = consolidate(first.into_iter().chain(again)).expect("sums");
        assert_eq!(
            (lines.len(), lines[0].effective_cost_micros),
            (1, 5_000_000)
        );
    }

    #[test]
    fn date_formats() {
        let header = "BillingAccountId,ProviderName,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,BillingCurrency";
        for (start, end) in [
            ("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"),
            (
                "2026-11-20T00:00:00.0000000Z",
                "2026-11-21T00:00:00.0000000Z",
            ),
            ("2026-11-20", "2026-11-21"),
            ("2026-11-20T01:00:00+01:00", "2026-11-21 00:00:00 UTC"),
        ] {
            let events = all_ok(&format!("{header}\nacct,Microsoft,{start},{end},1,1,usd\n"));
            assert_eq!(
                (events[0].charge_period_start, events[0].charge_period_end),
                (DAY, DAY + DAY_MS),
                "{start}"
            );
            assert_eq!(events[0].billing_currency, "USD");
        }
    }

    #[test]
    fn tags_in_every_shape() {
        assert_eq!(tags(None), Ok(BTreeMap::new()));
        assert_eq!(tags(Some("{}")), Ok(BTreeMap::new()));
        assert_eq!(tags(Some("null")), Ok(BTreeMap::new()));
        let legacy = tags(Some(r#""env": "prod","k8s-namespace": "team-a""#)).expect("legacy");
        assert_eq!(legacy["k8s-namespace"], "team-a");
        let typed = tags(Some(r#"{"replicas":3,"spot":true}"#)).expect("typed");
        assert_eq!(
            (typed["replicas"].as_str(), typed["spot"].as_str()),
            ("3", "true")
        );
        assert!(tags(Some("env=prod")).is_err());
        let mixed: BTreeMap<String, String> =
            [("Kubernetes-Namespace".to_owned(), "ml".to_owned())].into();
        assert_eq!(first_tag(&mixed, NAMESPACE_TAGS), Some("ml"));
    }

    #[test]
    fn provider_names() {
        assert_eq!(provider_of("Microsoft"), "azure");
        assert_eq!(provider_of("Google Cloud"), "gcp");
        assert_eq!(provider_of("Amazon Web Services"), "aws");
        assert_eq!(
            provider_of("Oracle Cloud Infrastructure"),
            "oraclecloudinfrastructure"
        );
    }

    #[test]
    fn malformed_rows_name_line_and_column_and_the_rest_parses() {
        let good = azure_vm_row("1.5", "", "{}");
        let rows = [
            good.clone(),
            good.replacen(",1.5,", ",1,5,", 1),
            good.replace("1.5", "1.5.0"),
            good.replacen("EUR", "€", 1),
            good.replace(
                "2026-11-21T00:00:00.0000000Z",
                "2026-11-20T00:00:00.0000000Z",
            ),
            good.replace("2026-11-20T00:00:00.0000000Z", "20.11.2026"),
            good.replacen(ACCOUNT, "", 1),
            good.replace("\"{}\"", "\"env=prod\""),
            good.clone(),
        ];
        let events = read(
            &format!("{AZURE_HEADER}\n{}\n", rows.join("\n")),
            &options(),
        );
        assert_eq!(events.len(), rows.len());
        let expected = [
            None,
            Some("fields where the header has"),
            Some("BilledCost"),
            Some("BillingCurrency"),
            Some("ChargePeriodEnd"),
            Some("ChargePeriodStart"),
            Some("BillingAccountId"),
            Some("Tags"),
            None,
        ];
        for (i, (event, expected)) in events.iter().zip(expected).enumerate() {
            match (event, expected) {
                (Ok(_), None) => {}
                (Err(e), Some(text)) => {
                    assert_eq!(e.line, i as u64 + 2);
                    assert!(e.message.contains(text), "{e}");
                }
                _ => panic!("row {i}: {event:?}"),
            }
        }
    }

    #[test]
    fn rows_breaking_the_standards_limits_are_errors_and_name_their_line() {
        let good = azure_vm_row("1.5", "", AKS_TAGS);
        let id = all_ok(&format!("{AZURE_HEADER}\n{good}\n"))[0].id.clone();
        let rows = [
            azure_vm_row("1.5", "", r#"{""team"":""a\u0000b""}"#),
            good.replace(
                "2026-11-21T00:00:00.0000000Z",
                "2027-01-19T00:00:00.0000000Z",
            ),
            azure_vm_row("1000000000000", "", AKS_TAGS),
            good.replacen(",1.5,", ",x,", 1),
            good.replace("2026-11-20T00:00:00.0000000Z", "20.11.2026"),
            good.replacen(",1.5,Microsoft,Microsoft,", ",1.5,,Microsoft,", 1),
        ];
        let events = read(
            &format!("{AZURE_HEADER}\n{}\n", rows.join("\n")),
            &options(),
        );
        let errors: Vec<&RowError> = events
            .iter()
            .map(|e| e.as_ref().expect_err("every row is bad"))
            .collect();
        let expected = [
            "labels[\"team\"] has a control character",
            "the charge period spans",
            "billed_cost_micros 1000000000000000000 micro-units",
            "BilledCost",
            "ChargePeriodStart",
            "ProviderName",
        ];
        for (i, (error, text)) in errors.iter().zip(expected).enumerate() {
            assert_eq!(error.line, i as u64 + 2);
            assert!(error.message.contains(text), "{text}: {error}");
        }
        let source = format!("//focus/azure/{ACCOUNT}");
        assert_eq!(
            errors[3].scope,
            LineScope::Line {
                source: source.clone(),
                id
            }
        );
        assert_eq!(errors[4].scope, LineScope::Source(source));
        assert_eq!(errors[5].scope, LineScope::Unknown);
    }

    #[test]
    fn a_file_without_focus_columns_is_one_error() {
        let events = read("Date,Cost\n2026-11-20,1\n", &options());
        assert_eq!(events.len(), 1);
        let error = events[0].as_ref().expect_err("not FOCUS");
        assert_eq!(error.line, 1);
        assert!(error.message.contains("BilledCost"), "{error}");
        assert!(read("", &options()).iter().all(|r| r.is_err()));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_input_never_panics(text in "(\\PC|\n){0,300}") {
            let _ = read(&format!("{AZURE_HEADER}\n{text}"), &options());
            let _ = read(&text, &options());
        }
    }
}
