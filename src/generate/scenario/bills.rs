//! The bills of the scenarios: a GCP billing export (JSON lines or CSV) and an Azure FOCUS
//! export, priced from the clusters' nodes and volumes.

use super::*;

/// GCP list prices per hour the generated bills use (EUR).
const GCP_CORE_HOUR: f64 = 0.031_611;
const GCP_GIB_HOUR: f64 = 0.004_237;
const GCP_PD_GIB_HOUR: f64 = 0.000_054_8;
const GKE_FEE_HOUR: f64 = 0.1;

/// One GCP billing export row.
struct GcpRow<'a> {
    cluster: &'a Cluster,
    service: (&'a str, &'a str),
    sku: (&'a str, &'a str),
    hour: EpochMillis,
    cost: f64,
    credits: Vec<(&'a str, f64)>,
    namespace: Option<&'a str>,
    export_delay_h: i64,
}

pub(super) fn gcp_bill(
    clusters: &[&Cluster],
    start: EpochMillis,
    hours: u32,
    csv: bool,
) -> BillFile {
    let mut rows = Vec::new();
    for cluster in clusters {
        let cores: f64 = cluster.nodes.iter().map(|n| n.cores).sum();
        let memory: f64 = cluster.nodes.iter().map(|n| n.memory_gib).sum();
        for h in 0..i64::from(hours) {
            let hour = start + h * HOUR_MS;
            let compute = (cores * GCP_CORE_HOUR * 1e6).round() / 1e6;
            rows.push(GcpRow {
                cluster,
                service: ("6F81-5844-456A", "Compute Engine"),
                sku: ("CF4E-A0C7-E3BF", "N2 Instance Core running in Frankfurt"),
                hour,
                cost: compute,
                credits: vec![(
                    "SUSTAINED_USAGE_DISCOUNT",
                    -(compute * 0.2 * 1e6).round() / 1e6,
                )],
                namespace: None,
                export_delay_h: 2,
            });
            rows.push(GcpRow {
                cluster,
                service: ("6F81-5844-456A", "Compute Engine"),
                sku: ("F268-6CE7-AC00", "N2 Instance Ram running in Frankfurt"),
                hour,
                cost: (memory * GCP_GIB_HOUR * 1e6).round() / 1e6,
                credits: Vec::new(),
                namespace: None,
                export_delay_h: 2,
            });
            rows.push(GcpRow {
                cluster,
                service: ("CCD8-9BF1-090E", "Kubernetes Engine"),
                sku: ("B561-BFBD-1264", "Regional Kubernetes Clusters"),
                hour,
                cost: GKE_FEE_HOUR,
                credits: Vec::new(),
                namespace: None,
                export_delay_h: 2,
            });
            // GKE cost allocation labels persistent disks with the namespace of their claim.
            for w in cluster.workloads.iter().filter(|w| w.volume_gib > 0.0) {
                let gib = w.volume_gib * f64::from(w.replicas);
                rows.push(GcpRow {
                    cluster,
                    service: ("6F81-5844-456A", "Compute Engine"),
                    sku: ("D973-5D65-BAB2", "Balanced PD Capacity in Frankfurt"),
                    hour,
                    cost: (gib * GCP_PD_GIB_HOUR * 1e6).round() / 1e6,
                    credits: Vec::new(),
                    namespace: Some(w.namespace),
                    export_delay_h: 2,
                });
            }
        }
        // Late usage: more of the first hour's compute, exported a day later as a further row
        // of the same line (the export appends; the rows add up).
        if let Some(first) = rows.iter().position(|r| std::ptr::eq(r.cluster, *cluster)) {
            let original = &rows[first];
            let late = GcpRow {
                cluster,
                service: original.service,
                sku: original.sku,
                hour: original.hour,
                cost: (original.cost * 0.03 * 1e6).round() / 1e6,
                credits: original
                    .credits
                    .iter()
                    .map(|(n, a)| (*n, (a * 0.03 * 1e6).round() / 1e6))
                    .collect(),
                namespace: None,
                export_delay_h: 26,
            };
            rows.push(late);
        }
    }
    let contents = if csv {
        gcp_csv(&rows)
    } else {
        rows.iter()
            .map(|r| gcp_json(r).to_string() + "\n")
            .collect()
    };
    BillFile {
        name: if csv {
            "gcp-billing-export.csv"
        } else {
            "gcp-billing-export.jsonl"
        }
        .into(),
        exporter: "gcp",
        contents,
    }
}

fn gcp_labels(row: &GcpRow<'_>) -> Vec<(String, String)> {
    let mut labels = vec![
        (
            "goog-k8s-cluster-name".to_owned(),
            row.cluster.name.to_owned(),
        ),
        (
            "goog-k8s-cluster-location".to_owned(),
            "europe-west3".to_owned(),
        ),
    ];
    if let Some(ns) = row.namespace {
        labels.push(("k8s-namespace".into(), ns.into()));
    }
    labels
}

/// BigQuery's JSON timestamp format.
fn bq_time(t: EpochMillis) -> String {
    rfc3339(t).replace('T', " ").replace(".000Z", " UTC")
}

fn gcp_json(row: &GcpRow<'_>) -> Value {
    json!({
        "billing_account_id": "01A2B3-C4D5E6-F7A8B9",
        "service": {"id": row.service.0, "description": row.service.1},
        "sku": {"id": row.sku.0, "description": row.sku.1},
        "usage_start_time": bq_time(row.hour),
        "usage_end_time": bq_time(row.hour + HOUR_MS),
        "project": {"id": row.cluster.account, "number": "123456789012", "name": row.cluster.account, "labels": []},
        "labels": gcp_labels(row).into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        "system_labels": [],
        "location": {"location": "europe-west3", "country": "DE", "region": "europe-west3", "zone": null},
        "export_time": bq_time(row.hour + (1 + row.export_delay_h) * HOUR_MS),
        "cost": row.cost,
        "currency": "EUR",
        "currency_conversion_rate": 1.0,
        "usage": {"amount": 3600.0, "unit": "seconds", "amount_in_pricing_units": 1.0, "pricing_unit": "hour"},
        "credits": row.credits.iter().map(|(name, amount)| json!({"name": name, "amount": amount, "full_name": null, "id": name, "type": name})).collect::<Vec<_>>(),
        "invoice": {"month": "202611"},
        "cost_type": "regular",
        "adjustment_info": null,
    })
}

fn gcp_csv(rows: &[GcpRow<'_>]) -> String {
    let mut out = String::from(
        "billing_account_id,service.id,service.description,sku.id,sku.description,usage_start_time,usage_end_time,project.id,labels,location.region,export_time,cost,currency,credits,cost_type\n",
    );
    for row in rows {
        let labels: Vec<Value> = gcp_labels(row)
            .into_iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let credits: Vec<Value> = row
            .credits
            .iter()
            .map(|(name, amount)| json!({"name": name, "amount": amount, "type": name}))
            .collect();
        let quote = |s: String| format!("\"{}\"", s.replace('"', "\"\""));
        let _ = writeln!(
            out,
            "01A2B3-C4D5E6-F7A8B9,{},{},{},{},{},{},{},{},europe-west3,{},{},EUR,{},regular",
            row.service.0,
            row.service.1,
            row.sku.0,
            row.sku.1,
            bq_time(row.hour),
            bq_time(row.hour + HOUR_MS),
            row.cluster.account,
            quote(Value::from(labels).to_string()),
            bq_time(row.hour + (1 + row.export_delay_h) * HOUR_MS),
            row.cost,
            quote(Value::from(credits).to_string()),
        );
    }
    out
}

/// Azure FOCUS export: the Databricks cluster's VMs and DBUs, per hour.
pub(super) fn focus_bill(clusters: &[&Cluster], start: EpochMillis, hours: u32) -> BillFile {
    let mut out = String::from(
        "BilledCost,EffectiveCost,ListCost,BillingAccountId,BillingAccountName,SubAccountId,SubAccountName,BillingCurrency,BillingPeriodStart,ChargePeriodStart,ChargePeriodEnd,ChargeCategory,ChargeClass,ChargeDescription,ProviderName,PublisherName,ResourceId,ResourceName,RegionId,ServiceCategory,ServiceName,SkuId,SkuPriceId,Tags\n",
    );
    for cluster in clusters {
        for h in 0..i64::from(hours) {
            let hour = start + h * HOUR_MS;
            let period = |t: EpochMillis| rfc3339(t).replace(".000Z", "Z");
            let tags = quote_csv(&json!({"ClusterName": cluster.name, "Vendor": "Databricks", "DatabricksEnvironment": "team"}).to_string());
            for (i, node) in cluster.nodes.iter().enumerate() {
                let cost = 0.293;
                let _ = writeln!(
                    out,
                    "{cost},{cost},{cost},8611537,Contoso Ltd,{acct},team-analytics,EUR,2026-11-01T00:00:00Z,{},{},Usage,,DS3 v2 VM hour,Microsoft,Microsoft,/subscriptions/{acct}/resourceGroups/databricks-rg/providers/Microsoft.Compute/virtualMachines/{},{},westeurope,Compute,Virtual Machines,DZH318Z0BQ4Z,DZH318Z0BQ4Z/00{i},{tags}",
                    period(hour),
                    period(hour + HOUR_MS),
                    node.name,
                    node.name,
                    acct = cluster.account,
                );
            }
            let dbu = 0.55 * cluster.nodes.len() as f64;
            let _ = writeln!(
                out,
                "{dbu},{dbu},{dbu},8611537,Contoso Ltd,{acct},team-analytics,EUR,2026-11-01T00:00:00Z,{},{},Usage,,Premium All-purpose Compute DBU,Microsoft,Databricks,/subscriptions/{acct}/resourceGroups/databricks-rg/providers/Microsoft.Databricks/workspaces/team-analytics,team-analytics,westeurope,Analytics,Azure Databricks,DZH318Z0BWQ6,DZH318Z0BWQ6/001,{tags}",
                period(hour),
                period(hour + HOUR_MS),
                acct = cluster.account,
            );
        }
    }
    BillFile {
        name: "azure-focus-export.csv".into(),
        exporter: "focus",
        contents: out,
    }
}

fn quote_csv(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}
