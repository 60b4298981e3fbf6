//! Schema evolution under the standard's BACKWARD_TRANSITIVE rule, against the registry stand-in
//! over HTTP: old and new readers read each other's data; breaking changes are refused.

mod common;

use std::sync::OnceLock;

use apache_avro::Schema;
use serde::{Deserialize, Serialize};
use usage_tracker::standard::registry::{RegistryClient, RegistryError};
use usage_tracker::standard::schemas::value_subject;
use usage_tracker::standard::wire::{RecordDecoder, RecordEncoder};
use usage_tracker::standard::{
    CostCategory, Measurement, RecordCostStatus, StandardRecord, UsageEvent, WindowStatus,
    WorkloadSubject,
};

mod v2 {
    use super::*;

    /// v2 of UsageEvent as a newer producer would have it: one optional field more. (Avro's serde
    /// support matches record names, hence the same struct name in its own module.)
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct UsageEvent {
        pub specversion: String,
        pub id: String,
        pub source: String,
        #[serde(rename = "type")]
        pub event_type: String,
        pub time: i64,
        pub start: i64,
        pub end: i64,
        pub subject: WorkloadSubject,
        pub measurements: Vec<Measurement>,
        pub priority_class: Option<String>,
    }
}
use v2::UsageEvent as UsageEventV2;

mod v1 {
    use super::*;
    use usage_tracker::standard::{CostCategory, RecordCostStatus, ResourceUsage, WindowStatus};

    /// UsageRecord as schema version 1 had it (schemas/history/usage_record.v1.avsc).
    #[derive(Debug, Clone, Serialize)]
    pub struct UsageRecord {
        pub cluster_id: String,
        pub cluster_name: Option<String>,
        pub namespace: String,
        pub window_start: i64,
        pub window_end: i64,
        pub window_status: WindowStatus,
        pub revision: i64,
        pub resources: Vec<ResourceUsage>,
        pub costs: Vec<AllocatedCost>,
        pub cost_total_micros: i64,
        pub currency: Option<String>,
        pub cost_status: RecordCostStatus,
    }

    /// AllocatedCost of schema version 1.
    #[derive(Debug, Clone, Serialize)]
    pub struct AllocatedCost {
        pub origin_source: String,
        pub origin_id: String,
        pub category: CostCategory,
        pub allocated_ratio: f64,
        pub allocated_cost_micros: i64,
    }
}

fn v2_schema_json() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut schema: serde_json::Value = serde_json::from_str(UsageEvent::SCHEMA_JSON).unwrap();
        schema["fields"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "name": "priority_class", "type": ["null", "string"], "default": null,
                "doc": "Kubernetes PriorityClass of the pod."
            }));
        schema.to_string()
    })
}

/// v3: drops the required `source` field and turns quantities into strings.
fn v3_schema_json() -> String {
    let mut schema: serde_json::Value = serde_json::from_str(UsageEvent::SCHEMA_JSON).unwrap();
    let fields = schema["fields"].as_array_mut().unwrap();
    fields.retain(|f| f["name"] != "source");
    let measurement = fields
        .iter_mut()
        .find(|f| f["name"] == "measurements")
        .unwrap();
    for field in measurement["type"]["items"]["fields"]
        .as_array_mut()
        .unwrap()
    {
        if field["name"] == "quantity" {
            field["type"] = "string".into();
        }
    }
    schema.to_string()
}

impl StandardRecord for UsageEventV2 {
    const SCHEMA_JSON: &'static str = "see v2_schema_json()";
    const FULL_NAME: &'static str = "io.ferrisdx.usage.UsageEvent";
    const DEFAULT_TOPIC: &'static str = "usage.events.v1";

    fn schema() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::parse_str(v2_schema_json()).unwrap())
    }
}

/// The CLI under test, run as a child process (async, so the in-process registry keeps serving).
fn tracker() -> tokio::process::Command {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"))
}

fn as_v2(v1: &UsageEvent, priority_class: Option<&str>) -> UsageEventV2 {
    UsageEventV2 {
        specversion: v1.specversion.clone(),
        id: v1.id.clone(),
        source: v1.source.clone(),
        event_type: v1.event_type.clone(),
        time: v1.time,
        start: v1.start,
        end: v1.end,
        subject: v1.subject.clone(),
        measurements: v1.measurements.clone(),
        priority_class: priority_class.map(str::to_owned),
    }
}

#[tokio::test]
async fn old_and_new_readers_read_each_other_and_breaking_changes_are_refused() {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let admin = RegistryClient::new(endpoint.clone()).unwrap();
    let topic = common::unique("evolution");
    let subject = value_subject(&topic);
    admin
        .set_compatibility_level(&subject, "BACKWARD_TRANSITIVE")
        .await
        .unwrap();

    // v1 producer, then v2 producer on the same topic.
    let v1_event = common::pod_sample(
        "project-a",
        "jupyter-0",
        1_700_000_010_000,
        0.25,
        512.0 * 1024.0 * 1024.0,
    );
    let v2_event = as_v2(
        &common::pod_sample("project-b", "presto-0", 1_700_000_020_000, 2.0, 1e9),
        Some("high"),
    );
    let v1_bytes = RecordEncoder::<UsageEvent>::new(endpoint.sr_settings().unwrap(), &topic)
        .encode(&v1_event)
        .await
        .unwrap();
    let v2_bytes = RecordEncoder::<UsageEventV2>::new(endpoint.sr_settings().unwrap(), &topic)
        .encode(&v2_event)
        .await
        .unwrap();
    assert_eq!(
        admin.versions(&subject).await.unwrap(),
        vec![1, 2],
        "v2 registered as a new version"
    );
    assert_ne!(
        v1_bytes[1..5],
        v2_bytes[1..5],
        "each message carries its own schema id"
    );

    // Old reader (the tracker's v1 type) reads v2 data: the new field is skipped.
    let old_reader = RecordDecoder::<UsageEvent>::new(endpoint.sr_settings().unwrap());
    let read_v2_as_v1 = old_reader.decode(&v2_bytes).await.unwrap();
    assert_eq!(read_v2_as_v1.id, v2_event.id);
    assert_eq!(read_v2_as_v1.measurements, v2_event.measurements);
    assert_eq!(old_reader.decode(&v1_bytes).await.unwrap(), v1_event);

    // New reader reads v1 data: the missing field takes its default.
    let new_reader = RecordDecoder::<UsageEventV2>::new(endpoint.sr_settings().unwrap());
    assert_eq!(
        new_reader.decode(&v1_bytes).await.unwrap(),
        as_v2(&v1_event, None)
    );
    assert_eq!(new_reader.decode(&v2_bytes).await.unwrap(), v2_event);

    // v3 breaks v1 and v2: the registry refuses it with 409 ...
    let refused = admin
        .register(&subject, &v3_schema_json())
        .await
        .unwrap_err();
    match refused {
        RegistryError::Api {
            status,
            error_code,
            ref message,
        } => {
            assert_eq!((status, error_code), (409, 409), "{message}");
            assert!(message.contains("incompatible"), "{message}");
        }
        other => panic!("expected a 409 from the registry, got {other}"),
    }
    assert_eq!(
        admin.versions(&subject).await.unwrap(),
        vec![1, 2],
        "nothing was registered"
    );

    // ... and `schemas check` fails with a readable report.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("usage_event.avsc"), v3_schema_json()).unwrap();
    let output = tracker()
        .args([
            "schemas",
            "check",
            "--schema-registry-url",
            &registry.url(),
            "--usage-events-topic",
            &topic,
        ])
        .arg("--schema-dir")
        .arg(dir.path())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "FAIL {subject}: not compatible under BACKWARD_TRANSITIVE"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("incompatible with version 1"), "{stdout}");
    assert!(stdout.contains("incompatible with version 2"), "{stdout}");
    assert!(stdout.contains("- UsageEvent.source: string"), "{stdout}");
    assert!(
        stdout.contains("~ UsageEvent.measurements[].quantity: double -> string"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- UsageEvent.priority_class: null | string"),
        "{stdout}"
    );
}

#[tokio::test]
async fn schemas_register_is_idempotent_and_check_passes_for_the_registered_schemas() {
    let registry = common::registry().await;
    let url = registry.url();
    let run = |args: &'static [&'static str]| {
        let output = tracker()
            .args(args)
            .args(["--schema-registry-url", &url])
            .output();
        async move {
            let output = output.await.unwrap();
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
            )
        }
    };
    let (code, check_before) = run(&["schemas", "check"]).await;
    assert_eq!(code, Some(0), "{check_before}");
    assert!(check_before
        .contains("ok   usage.events.v1-value: new subject, would be registered as version 1"));

    let (code, first) = run(&["schemas", "register"]).await;
    assert_eq!(code, Some(0), "{first}");
    let (code, second) = run(&["schemas", "register"]).await;
    assert_eq!(code, Some(0), "{second}");
    assert_eq!(first, second, "registering twice changes nothing");
    let rows: Vec<Vec<&str>> = first
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        vec![
            vec!["usage.events.v1-value", "1", "1"],
            vec!["cost.events.v1-value", "1", "2"],
            vec!["usage.records.v1-value", "1", "3"],
        ]
    );

    let admin = RegistryClient::new(common::endpoint(&registry)).unwrap();
    assert_eq!(
        admin
            .compatibility_level("usage.events.v1-value")
            .await
            .unwrap(),
        "BACKWARD_TRANSITIVE"
    );
    let (code, check_after) = run(&["schemas", "check"]).await;
    assert_eq!(code, Some(0), "{check_after}");
    assert!(
        check_after.contains("ok   cost.events.v1-value: already registered as version 1 (id 2)"),
        "{check_after}"
    );
}

#[tokio::test]
async fn undecodable_messages_are_told_apart() {
    let registry = common::registry().await;
    let decoder =
        RecordDecoder::<UsageEvent>::new(common::endpoint(&registry).sr_settings().unwrap());
    let not_framed = decoder.decode(br#"{"kubernetes":{}}"#).await.unwrap_err();
    assert!(
        not_framed
            .to_string()
            .starts_with("not Confluent wire format"),
        "{not_framed}"
    );
    let unknown_id = decoder.decode(&[0, 0, 0, 0, 42, 2]).await.unwrap_err();
    assert!(
        unknown_id.to_string().contains("schema registry"),
        "{unknown_id}"
    );
}

/// The registry stand-in behind HTTP basic auth (`user`, `password`): any other request gets 401.
/// Returns its URL and its state.
async fn registry_with_basic_auth(
    user: &str,
    password: &str,
) -> (String, registry_standin::Registry) {
    use axum::response::IntoResponse;
    // The header a client with these credentials sends.
    let expected = reqwest::Client::new()
        .get("http://registry/")
        .basic_auth(user, Some(password))
        .build()
        .unwrap()
        .headers()[reqwest::header::AUTHORIZATION]
        .as_bytes()
        .to_vec();
    let state = registry_standin::Registry::default();
    let app = registry_standin::router(state.clone()).layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let authorised = request
                .headers()
                .get("authorization")
                .is_some_and(|v| v.as_bytes() == expected.as_slice());
            async move {
                if authorised {
                    next.run(request).await
                } else {
                    axum::http::StatusCode::UNAUTHORIZED.into_response()
                }
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

#[tokio::test]
async fn schemas_take_the_registry_and_its_credentials_from_the_configuration_file() {
    let (url, state) = registry_with_basic_auth("tracker", "s3cret").await;
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("registry-password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let config = dir.path().join("tracker.toml");
    std::fs::write(
        &config,
        format!(
            "[registry]\nurl = \"{url}\"\nusername = \"tracker\"\npassword_file = {:?}\n\n\
             [topics]\nusage_events = \"custom.usage\"\n",
            password.display().to_string()
        ),
    )
    .unwrap();
    let schemas = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = common::tracker_without_configuration_env();
        command.arg("schemas").args(args).envs(env.iter().copied());
        async move {
            let output = command.output().await.unwrap();
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
    };
    let config_arg = config.to_str().unwrap();

    // `--config`: the URL, the user and the password file of [registry], the topics of [topics].
    let (code, stdout, stderr) = schemas(&["register", "--config", config_arg], &[]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        state.subjects(),
        vec![
            "cost.events.v1-value".to_string(),
            "custom.usage-value".to_string(),
            "usage.records.v1-value".to_string(),
        ]
    );
    assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"));

    // USAGE_TRACKER_CONFIG does the same for `check`.
    let (code, stdout, stderr) = schemas(&["check"], &[("USAGE_TRACKER_CONFIG", config_arg)]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("ok   custom.usage-value: already registered as version 1"),
        "{stdout}"
    );

    // The gate is real: the same file without credentials is refused.
    let anonymous = dir.path().join("anonymous.toml");
    std::fs::write(&anonymous, format!("[registry]\nurl = \"{url}\"\n")).unwrap();
    let (code, stdout, stderr) =
        schemas(&["check", "--config", anonymous.to_str().unwrap()], &[]).await;
    assert_ne!(code, Some(0), "{stdout}");
    assert!(stderr.contains("401"), "{stderr}");

    // Flags and their variables win over the file: another user is refused ...
    let (code, _, stderr) = schemas(
        &["check", "--config", config_arg],
        &[("SCHEMA_REGISTRY_USERNAME", "someone-else")],
    )
    .await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("401"), "{stderr}");
    // ... and another registry is the one used.
    let open = common::registry().await;
    let (code, stdout, stderr) = schemas(
        &[
            "register",
            "--config",
            config_arg,
            "--schema-registry-url",
            &open.url(),
            "--usage-events-topic",
            "flag.usage",
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(open
        .registry()
        .subjects()
        .contains(&"flag.usage-value".to_string()));
    assert_eq!(
        state.subjects().len(),
        3,
        "nothing more on the configured registry"
    );
}

/// Schema version 2 of UsageRecord and CostEvent (cost sharing, groups, meters, the gpu
/// category) evolves v1 as BACKWARD_TRANSITIVE asks: with v1 registered (from
/// `schemas/history/`), `schemas check` accepts the built-in v2 and `schemas register` makes it
/// version 2; v1 data reads with the v2 reader, the new fields at their defaults.
#[tokio::test]
async fn version_2_of_records_and_bills_is_compatible_with_the_registered_version_1() {
    let registry = common::registry().await;
    let url = registry.url();
    let history = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/history");
    let run = |args: Vec<String>| {
        let output = tracker()
            .args(&args)
            .args(["--schema-registry-url", &url])
            .output();
        async move {
            let output = output.await.unwrap();
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned()
                    + &String::from_utf8_lossy(&output.stderr),
            )
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (code, v1) = run(args(&["schemas", "register", "--schema-dir", history])).await;
    assert_eq!(code, Some(0), "{v1}");
    let (code, check) = run(args(&["schemas", "check"])).await;
    assert_eq!(code, Some(0), "{check}");
    let (code, v2) = run(args(&["schemas", "register"])).await;
    assert_eq!(code, Some(0), "{v2}");
    let versions: Vec<(String, String)> = v2
        .lines()
        .skip(1)
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[0].to_owned(), cells[1].to_owned())
        })
        .collect();
    assert!(
        versions.contains(&("usage.records.v1-value".into(), "2".into()))
            && versions.contains(&("cost.events.v1-value".into(), "2".into())),
        "{v2}"
    );

    // A v1 record, written by a v1 tracker, read by this one.
    let v1_schema = Schema::parse_str(
        &std::fs::read_to_string(format!("{history}/usage_record.v1.avsc")).unwrap(),
    )
    .unwrap();
    let v1_record = v1::UsageRecord {
        cluster_id: "c".into(),
        cluster_name: None,
        namespace: "n".into(),
        window_start: 0,
        window_end: 3_600_000,
        window_status: WindowStatus::Closed,
        revision: 3,
        resources: vec![],
        costs: vec![v1::AllocatedCost {
            origin_source: "//bill".into(),
            origin_id: "l".into(),
            category: CostCategory::Compute,
            allocated_ratio: 1.0,
            allocated_cost_micros: 5,
        }],
        cost_total_micros: 5,
        currency: Some("EUR".into()),
        cost_status: RecordCostStatus::Final,
    };
    let bytes = apache_avro::writer::datum::GenericDatumWriter::builder(&v1_schema)
        .build()
        .unwrap()
        .write_ser_to_vec(&v1_record)
        .unwrap();
    let value = apache_avro::reader::datum::GenericDatumReader::builder(&v1_schema)
        .reader_schema(usage_tracker::standard::UsageRecord::schema())
        .build()
        .unwrap()
        .read_value(&mut bytes.as_slice())
        .unwrap();
    let record: usage_tracker::standard::UsageRecord = apache_avro::from_value(&value).unwrap();
    assert_eq!((record.revision, record.cost_total_micros), (3, 5));
    assert_eq!(
        (record.group_by, record.own_cost_micros, record.shared),
        (None, None, false)
    );
    assert_eq!(record.costs[0].shared_from, None);
}
