use super::*;
use crate::billing::consolidate;
use crate::standard::CostCategory;

const ACCOUNT: &str = "01A2B3-C4D5E6-F7A8B9";
const EXPORTED_AT: EpochMillis = 1_795_200_000_000;
/// 2026-11-20T10:00:00Z
const TEN: EpochMillis = 1_795_168_800_000;
const HOUR: EpochMillis = 3_600_000;

fn options() -> ExportOptions {
    ExportOptions {
        exported_at: EXPORTED_AT,
        cluster_ids: [("gke-prod-1".to_owned(), "prod-1-uid".to_owned())].into(),
        ..ExportOptions::default()
    }
}

/// A detailed-table row of a GKE node's cores, as `bq extract` writes it.
fn gke_core_row(cost: &str, export_time: &str) -> String {
    format!(
        r#"{{"billing_account_id":"{ACCOUNT}","service":{{"id":"6F81-5844-456A","description":"Compute Engine"}},"sku":{{"id":"BB77-5FDA-5A3F","description":"N2 Instance Core running in Frankfurt"}},"usage_start_time":"2026-11-20 10:00:00 UTC","usage_end_time":"2026-11-20 11:00:00 UTC","project":{{"id":"ferris-prod","number":"123456789012","name":"ferris-prod","labels":[],"ancestry_numbers":"/123456/"}},"labels":[{{"key":"goog-k8s-cluster-name","value":"gke-prod-1"}},{{"key":"goog-k8s-cluster-location","value":"europe-west3"}},{{"key":"k8s-namespace","value":"team-a"}},{{"key":"k8s-label/app","value":"jupyterhub"}}],"system_labels":[{{"key":"compute.googleapis.com/machine_spec","value":"n2-standard-8"}}],"location":{{"location":"europe-west3","country":"DE","region":"europe-west3","zone":"europe-west3-a"}},"resource":{{"name":"gke-prod-1-pool-1-9f2c","global_name":"//compute.googleapis.com/projects/ferris-prod/zones/europe-west3-a/instances/4711"}},"export_time":"{export_time}","cost":{cost},"cost_at_list":0.3,"currency":"EUR","currency_conversion_rate":0.92,"usage":{{"amount":28800.0,"unit":"seconds","amount_in_pricing_units":8.0,"pricing_unit":"hour"}},"credits":[{{"name":"Sustained Usage Discount","amount":-0.051742,"full_name":null,"id":"","type":"SUSTAINED_USAGE_DISCOUNT"}},{{"name":"Free Trial","amount":-0.1,"type":"FREE_TIER"}}],"invoice":{{"month":"202611"}},"cost_type":"regular","adjustment_info":null,"tags":[],"price":{{"effective_price":0.0323,"tier_start_amount":0,"unit":"hour"}}}}"#
    )
}

fn read(
    text: &str,
    format: GcpFormat,
    options: &ExportOptions,
) -> Vec<Result<CostEvent, RowError>> {
    read_gcp(text.as_bytes(), format, options)
        .map(|row| row.map(|(_, event)| event))
        .collect()
}

fn only(text: &str, format: GcpFormat) -> CostEvent {
    let mut events = read(text, format, &options());
    assert_eq!(events.len(), 1);
    events.remove(0).expect("the row maps")
}

#[test]
fn a_json_row_maps_every_field() {
    let event = only(
        &gke_core_row("0.258712", "2026-11-20 14:03:12.345678 UTC"),
        GcpFormat::JsonLines,
    );
    assert_eq!(event.specversion, SPEC_VERSION);
    assert_eq!(event.event_type, COST_EVENT_TYPE);
    assert_eq!(
        event.source,
        format!("//cloud.google.com/billing/{ACCOUNT}")
    );
    assert!(event.id.starts_with("gcp-"));
    assert_eq!(event.provider, "gcp");
    assert_eq!(event.billing_account_id, ACCOUNT);
    assert_eq!(event.sub_account_id.as_deref(), Some("ferris-prod"));
    assert_eq!(event.cluster_id.as_deref(), Some("prod-1-uid"));
    assert_eq!(event.namespace.as_deref(), Some("team-a"));
    assert_eq!(
        (event.charge_period_start, event.charge_period_end),
        (TEN, TEN + HOUR)
    );
    assert_eq!(event.billed_cost_micros, 258_712);
    assert_eq!(event.effective_cost_micros, 258_712 - 51_742 - 100_000);
    assert_eq!(event.billing_currency, "EUR");
    assert_eq!(event.category, CostCategory::Compute);
    assert_eq!(event.cost_status, CostStatus::Final);
    assert_eq!(event.service_name.as_deref(), Some("Compute Engine"));
    assert_eq!(event.sku_id.as_deref(), Some("BB77-5FDA-5A3F"));
    assert_eq!(event.resource_id.as_deref(), Some("gke-prod-1-pool-1-9f2c"));
    assert_eq!(event.labels.len(), 4);
    assert_eq!(event.labels["k8s-label/app"], "jupyterhub");
    assert_eq!(event.time, EXPORTED_AT);
    assert_eq!(event.revision, EXPORTED_AT, "one revision per export");
}

#[test]
fn the_gpus_of_a_gke_gpu_node_are_gpu_and_its_cores_compute() {
    // A g2-standard-8 node: one L4 GPU, its cores and ram, and a committed T4 elsewhere.
    let node = |sku_id: &str, sku: &str| {
        gke_core_row("0.7", "2026-11-20 14:03:12 UTC")
            .replace("BB77-5FDA-5A3F", sku_id)
            .replace("N2 Instance Core running in Frankfurt", sku)
            .replace("n2-standard-8", "g2-standard-8")
    };
    let cases = [
        (
            node("CF9A-2EC6-1D42", "Nvidia L4 GPU running in Frankfurt"),
            CostCategory::Gpu,
        ),
        (
            node(
                "7E2B-0A11-9C3D",
                "NVIDIA L4 GPU attached to Spot Preemptible VMs running in Europe",
            ),
            CostCategory::Gpu,
        ),
        (
            node(
                "A360-7A19-4436",
                "Commitment v1: Nvidia Tesla T4 GPU running in Americas for 3 Years",
            ),
            CostCategory::Gpu,
        ),
        (
            node("0C5E-2B1A-77F1", "G2 Instance Core running in Frankfurt"),
            CostCategory::Compute,
        ),
        (
            node("5D1F-0B0E-1B2C", "G2 Instance Ram running in Frankfurt"),
            CostCategory::Memory,
        ),
    ];
    for (row, category) in cases {
        let event = only(&row, GcpFormat::JsonLines);
        assert_eq!(event.category, category, "{row}");
        assert_eq!(event.namespace.as_deref(), Some("team-a"));
    }
}

#[test]
fn a_standard_table_row_with_nulls_and_rfc3339_times() {
    let row = r#"{"billing_account_id":"01A2B3-C4D5E6-F7A8B9","service":{"id":"95FF-2EF5-5EA1","description":"Cloud Storage"},"sku":{"id":"E5F0-6A5D-7BAD","description":"Standard Storage Frankfurt"},"usage_start_time":"2026-11-20T10:00:00Z","usage_end_time":"2026-11-20T11:00:00.000Z","project":null,"labels":null,"location":{"location":"europe-west3","region":null},"cost":1.2e-05,"currency":"eur","credits":null,"cost_type":null}"#;
    let event = only(row, GcpFormat::JsonLines);
    assert_eq!(event.sub_account_id, None);
    assert_eq!((event.cluster_id, event.namespace), (None, None));
    assert_eq!(event.billed_cost_micros, 12);
    assert_eq!(event.effective_cost_micros, 12);
    assert_eq!(event.billing_currency, "EUR");
    assert_eq!(event.category, CostCategory::Storage);
    assert_eq!(
        (event.resource_id, event.sku_id.as_deref()),
        (None, Some("E5F0-6A5D-7BAD"))
    );
    assert_eq!(event.revision, EXPORTED_AT);
}

const CSV_HEADER: &str = "cost,currency,billing_account_id,service.id,service.description,sku.id,sku.description,project.id,location.region,resource.name,resource.global_name,usage_start_time,usage_end_time,cost_type,labels,credits,export_time";

fn csv_core_row(cost: &str, export_time: &str) -> String {
    let labels = r#"[{""key"":""goog-k8s-cluster-name"",""value"":""gke-prod-1""},{""key"":""goog-k8s-cluster-location"",""value"":""europe-west3""},{""key"":""k8s-namespace"",""value"":""team-a""},{""key"":""k8s-label/app"",""value"":""jupyterhub""}]"#;
    let credits = r#"[{""name"":""Sustained Usage Discount"",""amount"":-0.051742,""type"":""SUSTAINED_USAGE_DISCOUNT""},{""name"":""Free Trial"",""amount"":-0.1,""type"":""FREE_TIER""}]"#;
    format!("{cost},EUR,{ACCOUNT},6F81-5844-456A,Compute Engine,BB77-5FDA-5A3F,N2 Instance Core running in Frankfurt,ferris-prod,europe-west3,gke-prod-1-pool-1-9f2c,//compute.googleapis.com/projects/ferris-prod/zones/europe-west3-a/instances/4711,2026-11-20 10:00:00 UTC,2026-11-20 11:00:00 UTC,regular,\"{labels}\",\"{credits}\",{export_time}")
}

#[test]
fn a_csv_row_maps_like_the_same_json_row() {
    let csv = format!(
        "{CSV_HEADER}\n{}\n",
        csv_core_row("0.258712", "2026-11-20T14:03:12.345678Z")
    );
    let from_csv = only(&csv, GcpFormat::Csv);
    let from_json = only(
        &gke_core_row("0.258712", "2026-11-20 14:03:12.345678 UTC"),
        GcpFormat::JsonLines,
    );
    assert_eq!(from_csv, from_json);
}

#[test]
fn csv_with_few_columns_in_any_order_and_underscored_names() {
    let csv = "currency,cost,usage_end_time,usage_start_time,sku_description,service_description,billing_account_id\n\
               USD,4.35,2026-11-20 11:00:00 UTC,2026-11-20 10:00:00 UTC,Network Inter Zone Egress,Compute Engine,0X0X0X-0X0X0X-0X0X0X\n";
    let event = only(csv, GcpFormat::Csv);
    assert_eq!(event.billed_cost_micros, 4_350_000);
    assert_eq!(event.category, CostCategory::Network);
    assert_eq!(event.labels, BTreeMap::new());
    assert_eq!((event.sub_account_id, event.sku_id), (None, None));
}

#[test]
fn late_rows_of_a_line_add_up_and_a_later_export_replaces_the_line() {
    let first = gke_core_row("0.258712", "2026-11-20 14:03:12 UTC");
    let late = gke_core_row("0.012", "2026-11-21 02:00:00 UTC");
    let export = |rows: &str, at: i64| -> Vec<CostEvent> {
        let options = ExportOptions {
            exported_at: at,
            ..options()
        };
        let events: Vec<CostEvent> = read(rows, GcpFormat::JsonLines, &options)
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("rows map");
        consolidate(events).expect("sums")
    };
    let lines = export(&format!("{late}\n{first}\n"), EXPORTED_AT);
    assert_eq!(lines.len(), 1, "amounts and export_time are not identity");
    assert_eq!(lines[0].billed_cost_micros, 258_712 + 12_000);
    assert_eq!(lines[0].effective_cost_micros, 270_712 - 2 * 151_742);
    let again = export(&format!("{first}\n"), EXPORTED_AT + 1);
    assert_eq!(again[0].id, lines[0].id);
    assert!(
        again[0].revision > lines[0].revision,
        "the later export wins"
    );
}

#[test]
fn re_exporting_gives_the_same_ids_and_other_lines_other_ids() {
    let row = gke_core_row("0.258712", "2026-11-20 14:03:12 UTC");
    let again = only(&row, GcpFormat::JsonLines);
    assert_eq!(only(&row, GcpFormat::JsonLines), again);
    let other_hour = row.replace("11:00:00 UTC", "12:00:00 UTC");
    assert_ne!(only(&other_hour, GcpFormat::JsonLines).id, again.id);
    let other_namespace = row.replace(r#""value":"team-a""#, r#""value":"team-b""#);
    assert_ne!(only(&other_namespace, GcpFormat::JsonLines).id, again.id);
    let other_cost_type = row.replace(r#""cost_type":"regular""#, r#""cost_type":"adjustment""#);
    assert_ne!(only(&other_cost_type, GcpFormat::JsonLines).id, again.id);
}

#[test]
fn a_malformed_row_is_reported_with_its_line_and_the_rest_parses() {
    let good = gke_core_row("0.258712", "2026-11-20 14:03:12 UTC");
    let text = format!("{good}\n\n{{\"billing_account_id\": \"x\", \n{good}\n");
    let events = read(&text, GcpFormat::JsonLines, &options());
    assert_eq!(events.len(), 3);
    assert!(events[0].is_ok() && events[2].is_ok());
    let error = events[1].as_ref().expect_err("broken JSON");
    assert_eq!(error.line, 3);
    assert!(
        error
            .message
            .contains("not a valid billing export JSON row"),
        "{error}"
    );

    let csv = format!(
        "{CSV_HEADER}\n{}\n0.1,EUR\n{}\n",
        csv_core_row("0.1", ""),
        csv_core_row("0.2", "")
    );
    let events = read(&csv, GcpFormat::Csv, &options());
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].as_ref().map_err(|e| e.line), Err(3));
    assert_eq!(
        events[2].as_ref().map(|e| e.billed_cost_micros),
        Ok(200_000)
    );
}

#[test]
fn bad_values_name_their_column() {
    let base = csv_core_row("0.1", "2026-11-20 14:00:00 UTC");
    let cases = [
        (base.replacen("0.1,", "NaN,", 1), "cost"),
        (base.replacen("0.1,", "inf,", 1), "cost"),
        (base.replacen("0.1,", ",", 1), "missing column cost"),
        (base.replacen(",EUR,", ",EURO,", 1), "currency"),
        (base.replacen(",EUR,", ",,", 1), "missing column currency"),
        (
            base.replacen(ACCOUNT, "", 1),
            "missing column billing_account_id",
        ),
        (
            base.replacen("Compute Engine", "", 1),
            "missing column service.description",
        ),
        (
            base.replacen("N2 Instance Core running in Frankfurt", "", 1),
            "missing column sku.description",
        ),
        (
            base.replacen("2026-11-20 10:00:00 UTC", "yesterday", 1),
            "usage_start_time",
        ),
        (
            base.replacen("2026-11-20 11:00:00 UTC", "2026-11-20 10:00:00 UTC", 1),
            "usage_end_time",
        ),
        (
            base.replacen("2026-11-20 14:00:00 UTC", "soon", 1),
            "export_time",
        ),
        (base.replacen("\"[{\"\"key", "\"{\"\"key", 1), "labels"),
    ];
    for (row, column) in cases {
        let events = read(
            &format!("{CSV_HEADER}\n{row}\n"),
            GcpFormat::Csv,
            &options(),
        );
        let error = events[0].as_ref().expect_err(column);
        assert_eq!(error.line, 2);
        assert!(error.message.contains(column), "{column}: {error}");
    }
}

#[test]
fn rows_breaking_the_standards_limits_are_errors_naming_the_field() {
    let base = csv_core_row("0.1", "2026-11-20 14:00:00 UTC");
    let cases = [
        // A NUL in a label value.
        (
            base.replacen(
                r#"""value"":""jupyterhub"""#,
                r#"""value"":""jupyter\u0000hub"""#,
                1,
            ),
            "labels[\"k8s-label/app\"] has a control character",
        ),
        // A charge period of 60 days.
        (
            base.replacen("2026-11-20 11:00:00 UTC", "2027-01-19 10:00:00 UTC", 1),
            "the charge period spans",
        ),
        // 10^12 currency units = 10^18 micros: an i64, beyond the standard's 10^17.
        (
            base.replacen("0.1,", "1000000000000,", 1),
            "billed_cost_micros 1000000000000000000 micro-units",
        ),
        // 10^14 currency units = 10^20 micros: not even an i64.
        (base.replacen("0.1,", "100000000000000,", 1), "cost:"),
        // A namespace longer than a DNS label.
        (
            base.replacen("team-a", &"n".repeat(64), 1),
            "namespace is 64 bytes long",
        ),
        // A period starting 40 days after the export runs.
        (
            base.replacen("2026-11-20 10:00:00 UTC", "2026-12-30 10:00:00 UTC", 1)
                .replacen("2026-11-20 11:00:00 UTC", "2026-12-30 11:00:00 UTC", 1),
            "charge_period_start",
        ),
    ];
    for (row, expected) in cases {
        let events = read(
            &format!("{CSV_HEADER}\n{row}\n"),
            GcpFormat::Csv,
            &options(),
        );
        let error = events[0].as_ref().expect_err(expected);
        assert_eq!(error.line, 2);
        assert!(error.message.contains(expected), "{expected}: {error}");
    }
}

#[test]
fn a_rejected_row_names_its_line_as_far_as_it_can_be_read() {
    let good = csv_core_row("0.1", "");
    let id = only(&format!("{CSV_HEADER}\n{good}\n"), GcpFormat::Csv).id;
    let scope = |row: &str| {
        read(
            &format!("{CSV_HEADER}\n{row}\n"),
            GcpFormat::Csv,
            &options(),
        )
        .remove(0)
        .expect_err("a bad row")
        .scope
    };
    let source = format!("//cloud.google.com/billing/{ACCOUNT}");
    assert_eq!(
        scope(&good.replacen("0.1,", "x,", 1)),
        LineScope::Line {
            source: source.clone(),
            id
        },
        "a bad amount: the line is known"
    );
    assert_eq!(
        scope(&good.replacen("2026-11-20 10:00:00 UTC", "soon", 1)),
        LineScope::Source(source.clone()),
        "a bad time: only the account"
    );
    assert_eq!(
        scope(&good.replacen("\"[{\"\"key", "\"{\"\"key", 1)),
        LineScope::Source(source.clone()),
        "bad labels: only the account"
    );
    assert_eq!(scope(&good.replacen(ACCOUNT, "", 1)), LineScope::Unknown);
    assert_eq!(scope("0.1,EUR"), LineScope::Unknown, "not a record");
    let json = |text: &str| {
        read(text, GcpFormat::JsonLines, &options())
            .remove(0)
            .expect_err("bad JSON")
            .scope
    };
    assert_eq!(
        json(r#"{"billing_account_id": "A-1", "labels": "x"}"#),
        LineScope::Source("//cloud.google.com/billing/A-1".into())
    );
    assert_eq!(
        json(r#"{"billing_account_id": "A-1", "#),
        LineScope::Unknown
    );
}

#[test]
fn a_non_finite_json_cost_is_an_error() {
    let row = gke_core_row("\"NaN\"", "2026-11-20 14:03:12 UTC");
    let error = read(&row, GcpFormat::JsonLines, &options())
        .remove(0)
        .expect_err("NaN");
    assert!(error.message.starts_with("cost:"), "{error}");
}

#[test]
fn float_costs_convert_to_exact_micros() {
    // (1.005 * 1e6) as i64 == 1_004_999: truncation would lose a micro.
    for (cost, credit, billed, effective) in [
        ("1.005", "-0.000001", 1_005_000, 1_004_999),
        ("0.30000000000000004", "-0.1", 300_000, 200_000),
        ("2.675", "-2.675", 2_675_000, 0),
        (
            "1234567.891234",
            "-0.0000005",
            1_234_567_891_234,
            1_234_567_891_233,
        ),
    ] {
        let row = format!(
            r#"{{"billing_account_id":"A","service":{{"description":"Compute Engine"}},"sku":{{"description":"E2 Instance Ram running in Belgium"}},"usage_start_time":"2026-11-20 10:00:00 UTC","usage_end_time":"2026-11-20 11:00:00 UTC","cost":{cost},"currency":"EUR","credits":[{{"amount":{credit},"type":"PROMOTION"}}]}}"#
        );
        let event = only(&row, GcpFormat::JsonLines);
        assert_eq!(event.billed_cost_micros, billed, "{cost}");
        assert_eq!(event.effective_cost_micros, effective, "{cost} {credit}");
        assert_eq!(event.category, CostCategory::Memory);
    }
}

#[test]
fn the_configured_revision_wins() {
    let options = ExportOptions {
        revision: Some(7),
        ..options()
    };
    let events = read(
        &gke_core_row("1", "2026-11-20 14:03:12 UTC"),
        GcpFormat::JsonLines,
        &options,
    );
    assert_eq!(events[0].as_ref().map(|e| e.revision), Ok(7));
}

#[test]
fn format_from_the_file_name() {
    assert_eq!(
        GcpFormat::from_path(Path::new("bill.jsonl")),
        Some(GcpFormat::JsonLines)
    );
    assert_eq!(
        GcpFormat::from_path(Path::new("bill.JSON")),
        Some(GcpFormat::JsonLines)
    );
    assert_eq!(
        GcpFormat::from_path(Path::new("bill.ndjson")),
        Some(GcpFormat::JsonLines)
    );
    assert_eq!(
        GcpFormat::from_path(Path::new("a/bill.csv")),
        Some(GcpFormat::Csv)
    );
    assert_eq!(GcpFormat::from_path(Path::new("bill.parquet")), None);
    assert_eq!(GcpFormat::from_path(Path::new("bill")), None);
}

proptest::proptest! {
    #[test]
    fn arbitrary_input_never_panics(text in "(\\PC|\n){0,300}") {
        let options = options();
        let json = format!("{}\n{text}", gke_core_row("1", ""));
        proptest::prop_assert!(read(&json, GcpFormat::JsonLines, &options)[0].is_ok());
        let csv = format!("{CSV_HEADER}\n{text}");
        let _ = read(&csv, GcpFormat::Csv, &options);
        let _ = read(&text, GcpFormat::Csv, &options);
    }
}
