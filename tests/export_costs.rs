//! `usage-tracker export-costs` as an operator meets it.
//!
//! Without a broker (`--dry-run` prints the CostEvents): a malformed row, or one breaking the
//! standard's limits, is reported with its file and line and nothing goes out (exit 1);
//! `--partial` lets the complete lines through; the rows of a line that sum beyond an `i64` are an
//! error naming the line; exporting a file twice gives the same lines; GPU SKUs become `gpu` lines.
//!
//! With the local stack (`scripts/stack.sh up && . target/stack/env`): what is actually on the
//! cost topic afterwards, read back from it, and the rate card reading the usage topic (GPU
//! capacity priced as `gpu` lines).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use registry_standin::RunningRegistry;
use serde_json::Value;
use usage_tracker::kafka::TopicSpec;
use usage_tracker::standard::wire::RecordDecoder;
use usage_tracker::standard::{CostEvent, Measurement, MeasurementKind, UsageEvent};

/// 2026-11-02T00:00:00Z, the day of the rows.
const NOV_2: i64 = 1_793_577_600_000;
const HOUR: i64 = 3_600_000;

const HEADER: &str = "billing_account_id,service.id,service.description,sku.id,sku.description,usage_start_time,usage_end_time,project.id,labels,cost,currency,credits";

/// One GCP row: an hour of cores of cluster `gke-1`, from `hour` on 2026-11-02.
fn row(hour: u32, cost: &str) -> String {
    let labels = r#""[{""key"":""goog-k8s-cluster-name"",""value"":""gke-1""}]""#;
    format!(
        "01A2B3-C4D5E6-F7A8B9,6F81-5844-456A,Compute Engine,CF4E-A0C7-E3BF,N2 Instance Core running in Frankfurt,\
         2026-11-02 {hour:02}:00:00 UTC,2026-11-02 {:02}:00:00 UTC,proj-1,{labels},{cost},EUR,[]",
        hour + 1
    )
}

fn scenario_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/scenarios/single-user-gcp/usage-tracker.toml")
}

/// `export-costs gcp --dry-run` of `file` with `args`.
fn export(args: &[&str], file: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"))
        .args(["export-costs", "gcp", "--dry-run", "--config"])
        .arg(scenario_config())
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn bill_named(dir: &Path, name: &str, rows: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{HEADER}\n{}\n", rows.join("\n"))).unwrap();
    path
}

fn bill(dir: &Path, rows: &[String]) -> PathBuf {
    bill_named(dir, "bill.csv", rows)
}

/// The id of the line `row` belongs to (a dry run of that row alone).
fn id_of(dir: &Path, row: &str) -> String {
    let path = bill_named(dir, "one-row.csv", &[row.to_owned()]);
    let output = export(&[], &path);
    assert!(output.status.success(), "{}", stderr(&output));
    lines(&output)[0]["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_malformed_row_stops_the_export_and_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = bill(
        dir.path(),
        &[row(0, "0.25"), row(1, "not-a-number"), row(2, "0.5")],
    );
    let output = export(&[], &path);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "no line goes out");
    assert!(
        stderr.contains(&format!("{}: line 3: cost: ", path.display())),
        "the bad row (line 3, after the header) is named with its column: {stderr}"
    );
    assert!(
        stderr.contains("3 rows read, 1 rejected; 2 bill lines, 0 published")
            && stderr.contains("nothing published"),
        "{stderr}"
    );
    // --strict is a deprecated no-op: the same outcome.
    let strict = export(&["--strict"], &path);
    assert_eq!(strict.status.code(), Some(1));
    assert!(strict.stdout.is_empty());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("deprecated"));
}

#[test]
fn partial_lets_the_complete_lines_through_and_withholds_the_incomplete_one() {
    let dir = tempfile::tempdir().unwrap();
    // Line of hour 0 has two rows (late usage adds up); one of them is malformed.
    let path = bill(
        dir.path(),
        &[
            row(0, "0.25"),
            row(1, "0.5"),
            row(0, "1.0.0"),
            row(2, "0.75"),
        ],
    );
    let output = export(&["--partial"], &path);
    let stderr = stderr(&output);
    assert!(output.status.success(), "{stderr}");
    let incomplete = id_of(dir.path(), &row(0, "0.25"));
    // Printed in id order; by hour: 1 and 2, not 0.
    let printed: BTreeMap<i64, i64> = lines(&output)
        .iter()
        .map(|l| {
            (
                l["charge_period_start"].as_i64().unwrap(),
                l["effective_cost_micros"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        printed,
        [(NOV_2 + HOUR, 500_000), (NOV_2 + 2 * HOUR, 750_000)].into(),
    );
    assert!(
        stderr.contains(&format!("withheld: bill line {incomplete}"))
            && stderr.contains(&format!("{}: line 4", path.display())),
        "{stderr}"
    );
    assert!(
        stderr.contains("4 rows read, 1 rejected; 3 bill lines, 1 withheld"),
        "{stderr}"
    );

    // A row that is not even a CSV record could belong to any line: nothing goes out.
    let garbled = bill_named(
        dir.path(),
        "garbled.csv",
        &[row(0, "0.25"), row(1, "0,5"), row(2, "0.75")],
    );
    let output = export(&["--partial"], &garbled);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("could belong to any line"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn rows_breaking_the_standards_limits_are_rejected_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let nul_label = row(0, "0.1").replace(
        r#"""gke-1""}]""#,
        r#"""gke-1""},{""key"":""team"",""value"":""a\u0000b""}]""#,
    );
    let sixty_days = row(1, "0.1").replace("2026-11-02 02:00:00 UTC", "2027-01-01 01:00:00 UTC");
    let rows = [
        nul_label,
        sixty_days,
        row(2, "100000000000000"), // 10^14 EUR: 10^20 micros, not even an i64
        row(3, "1000000000000"),   // 10^12 EUR: 10^18 micros, beyond the standard's 10^17
        row(4, "0.5"),
    ];
    let path = bill(dir.path(), &rows);
    let output = export(&[], &path);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    let file = path.display();
    for expected in [
        format!("{file}: line 2: labels[\"team\"] has a control character U+0000"),
        format!("{file}: line 3: the charge period spans"),
        format!("{file}: line 4: cost: "),
        format!("{file}: line 5: billed_cost_micros 1000000000000000000 micro-units is beyond"),
    ] {
        assert!(stderr.contains(&expected), "{expected}\n{stderr}");
    }
    // Only the valid row's line goes out with --partial.
    let partial = export(&["--partial"], &path);
    assert!(partial.status.success());
    let printed = lines(&partial);
    assert_eq!(printed.len(), 1);
    assert_eq!(printed[0]["effective_cost_micros"], 500_000);
}

#[test]
fn rows_of_one_line_summing_beyond_an_i64_are_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    // Each row is within the standard (just under 10^17 micros); 93 of them pass i64::MAX.
    let big = row(0, "99999999999.999999");
    let mut rows = vec![big.clone(); 93];
    rows.push(row(1, "0.5"));
    let path = bill(dir.path(), &rows);
    let id = id_of(dir.path(), &big);
    let output = export(&[], &path);
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains(&format!(
            "{}: line 2: bill line {id} (93 rows): billed_cost_micros: the sum of the line's rows leaves the i64 range at its row 93",
            path.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("0 rejected; 2 bill lines, 1 refused"),
        "{stderr}"
    );
    let partial = export(&["--partial"], &path);
    let printed = lines(&partial);
    assert_eq!(printed.len(), 1, "only the other line");
    assert_eq!(printed[0]["effective_cost_micros"], 500_000);
}

#[test]
fn exporting_again_gives_the_same_lines_and_a_later_export_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = bill(dir.path(), &[row(0, "0.25"), row(1, "0.5")]);
    // `time` says when the export ran; everything else must be equal.
    let without_time = |mut lines: Vec<Value>| {
        lines.iter_mut().for_each(|l| {
            l.as_object_mut().unwrap().remove("time");
        });
        lines
    };
    let first = without_time(lines(&export(&["--revision", "1"], &path)));
    let again = without_time(lines(&export(&["--revision", "1"], &path)));
    assert_eq!(first, again, "same ids, same amounts, same revision");
    let corrected = bill(dir.path(), &[row(0, "0.2"), row(1, "0.5")]);
    let later = lines(&export(&[], &corrected));
    let ids = |l: &[Value]| l.iter().map(|e| e["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&later), ids(&first), "a corrected bill keeps the ids");
    assert!(
        later.iter().all(|l| l["revision"].as_i64().unwrap() > 1),
        "and replaces by revision"
    );
    assert_eq!(
        later[0]["effective_cost_micros"].as_i64().unwrap()
            + later[1]["effective_cost_micros"].as_i64().unwrap(),
        700_000
    );
}

#[test]
fn a_line_without_a_cluster_takes_the_cluster_of_its_cost_scope() {
    let dir = tempfile::tempdir().unwrap();
    let untagged = "01A2B3-C4D5E6-F7A8B9,95FF-2EF5-5EA1,Cloud Storage,E5F0-6A5D-7BAD,Standard Storage Frankfurt,\
        2026-11-02 00:00:00 UTC,2026-11-02 01:00:00 UTC,ferrisdx-alice,[],0.1,EUR,[]";
    let path = bill(dir.path(), &[untagged.to_owned()]);
    let lines = lines(&export(&[], &path));
    // deploy/scenarios/single-user-gcp: [[cost_scopes]] ferrisdx-alice -> gke-single.
    assert_eq!(lines[0]["cluster_id"], "gke-single");
    assert_eq!(lines[0]["category"], "storage");
}

#[test]
fn gpu_skus_are_exported_as_gpu_lines_and_cores_as_compute() {
    let dir = tempfile::tempdir().unwrap();
    let sku = |sku_id: &str, description: &str| {
        row(0, "0.35").replace(
            "CF4E-A0C7-E3BF,N2 Instance Core running in Frankfurt",
            &format!("{sku_id},{description}"),
        )
    };
    let rows = [
        sku("039F-D0DA-4055", "Nvidia Tesla T4 GPU running in Americas"),
        sku(
            "7E2B-0A11-9C3D",
            "NVIDIA L4 GPU attached to Spot Preemptible VMs running in Europe",
        ),
        sku(
            "A360-7A19-4436",
            "Commitment v1: Nvidia Tesla A100 GPU running in Americas for 1 Year",
        ),
        sku(
            "2E27-4F75-95CD",
            "N1 Predefined Instance Core running in Americas",
        ),
        sku(
            "6C71-A1A9-4DBC",
            "N1 Predefined Instance Ram running in Americas",
        ),
    ];
    let output = export(&[], &bill(dir.path(), &rows));
    assert!(output.status.success(), "{}", stderr(&output));
    let mut categories: Vec<(String, String)> = lines(&output)
        .iter()
        .map(|l| {
            (
                l["sku_id"].as_str().unwrap().to_owned(),
                l["category"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    categories.sort();
    let expected: Vec<(String, String)> = [
        ("039F-D0DA-4055", "gpu"),
        ("2E27-4F75-95CD", "compute"),
        ("6C71-A1A9-4DBC", "memory"),
        ("7E2B-0A11-9C3D", "gpu"),
        ("A360-7A19-4436", "gpu"),
    ]
    .iter()
    .map(|(id, c)| ((*id).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(categories, expected);
}

// ---- against the local stack ----

/// This test's own topics and registry.
struct Stack {
    dir: tempfile::TempDir,
    registry: RunningRegistry,
    config: PathBuf,
    cost_topic: String,
    usage_topic: String,
}

impl Stack {
    async fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let registry = common::registry().await;
        let cost_topic = common::unique(&format!("{name}-cost"));
        let usage_topic = common::unique(&format!("{name}-usage"));
        let config = common::tracker_config(
            dir.path(),
            name,
            1,
            "1s",
            &[("cost_events", &cost_topic), ("usage_events", &usage_topic)],
        );
        common::kafka()
            .ensure_topics(&[
                TopicSpec::new(&cost_topic, 1, 1),
                TopicSpec::new(&usage_topic, 1, 1),
            ])
            .await
            .unwrap();
        Self {
            dir,
            registry,
            config,
            cost_topic,
            usage_topic,
        }
    }

    /// `usage-tracker export-costs ARGS` against the stack (publishing unless told otherwise).
    async fn export(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"))
            .args(["--log", "warn", "export-costs"])
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("SCHEMA_REGISTRY_URL", self.registry.url())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap()
    }

    /// Every CostEvent on the cost topic, in order, read to its end (the exporter waited for
    /// every acknowledgement before it exited).
    async fn published(&self) -> Vec<CostEvent> {
        let kafka = common::kafka();
        let topic = self.cost_topic.clone();
        let payloads = tokio::task::spawn_blocking(move || {
            let mut payloads = Vec::new();
            kafka
                .read_each(&topic, |message| {
                    payloads.extend(message.payload);
                    true
                })
                .unwrap();
            payloads
        })
        .await
        .unwrap();
        let decoder = RecordDecoder::<CostEvent>::new(
            common::endpoint(&self.registry).sr_settings().unwrap(),
        );
        let mut events = Vec::new();
        for payload in &payloads {
            events.push(decoder.decode(payload).await.unwrap());
        }
        events
    }
}

/// Charge period start -> effective cost of events (each hour is one line here).
fn by_hour(events: &[CostEvent]) -> BTreeMap<i64, i64> {
    events
        .iter()
        .map(|e| (e.charge_period_start, e.effective_cost_micros))
        .collect()
}

/// (id, effective cost) of events.
fn amounts(events: &[CostEvent]) -> Vec<(String, i64)> {
    events
        .iter()
        .map(|e| (e.id.clone(), e.effective_cost_micros))
        .collect()
}

#[tokio::test]
async fn a_bill_with_a_bad_row_publishes_nothing_and_partial_publishes_exactly_the_complete_lines()
{
    let stack = Stack::new("export-partial").await;
    let dir = stack.dir.path();
    let good = bill_named(
        dir,
        "good.csv",
        &[
            row(0, "0.25"),
            row(0, "0.05"),
            row(1, "0.5"),
            row(2, "0.75"),
        ],
    );
    let output = stack
        .export(&["gcp", "--revision", "1", good.to_str().unwrap()])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let complete = stack.published().await;
    assert_eq!(
        by_hour(&complete),
        [
            (NOV_2, 300_000),
            (NOV_2 + HOUR, 500_000),
            (NOV_2 + 2 * HOUR, 750_000)
        ]
        .into(),
        "hour 0 has two rows"
    );
    let hour_0 = id_of(dir, &row(0, "0.25"));

    // The next export of the period: hour 0 has a row that cannot be read, hour 1 is re-priced.
    let next = bill_named(
        dir,
        "next.csv",
        &[
            row(0, "0.25"),
            row(0, "0.0.5"),
            row(1, "0.6"),
            row(2, "0.75"),
        ],
    );
    let next_args = ["gcp", "--revision", "2", next.to_str().unwrap()];
    let refused = stack.export(&next_args).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(&format!("{}: line 3: cost: ", next.display())),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        amounts(&stack.published().await),
        amounts(&complete),
        "nothing was published"
    );

    let mut partial_args = next_args.to_vec();
    partial_args.push("--partial");
    let partial = stack.export(&partial_args).await;
    assert!(partial.status.success(), "{}", stderr(&partial));
    let after = stack.published().await;
    assert_eq!(after[..3], complete[..], "the earlier export is untouched");
    let added = &after[3..];
    assert!(
        added.iter().all(|e| e.revision == 2 && e.id != hour_0),
        "only complete lines of revision 2: {added:?}"
    );
    assert_eq!(
        by_hour(added),
        [(NOV_2 + HOUR, 600_000), (NOV_2 + 2 * HOUR, 750_000)].into(),
        "exactly the complete lines: hours 1 and 2"
    );
    // So the latest revision of hour 0 is still the complete one: 0.30, not 0.25.
    let hour_0_amounts: Vec<i64> = after
        .iter()
        .filter(|e| e.id == hour_0)
        .map(|e| e.effective_cost_micros)
        .collect();
    assert_eq!(hour_0_amounts, [300_000]);
}

/// A UsageEvent of the rate card's cluster: `cores` of node capacity over one hour from `start`.
fn node_hour(id: &str, cluster: &str, start: i64, cores: f64) -> UsageEvent {
    common::usage(
        id,
        cluster,
        None,
        start,
        start + HOUR,
        &[(MeasurementKind::Capacity, cores * 3600.0)],
    )
}

#[tokio::test]
async fn the_rate_card_refuses_on_an_undecodable_message_of_its_cluster_and_partial_withholds_its_lines(
) {
    let stack = Stack::new("export-rate-card").await;
    let kafka = common::kafka();
    let cluster = common::unique("onprem");
    let card = stack.dir.path().join("card.toml");
    std::fs::write(
        &card,
        format!(
            "currency = \"EUR\"\nbilling_account = \"dc-test\"\ncluster_id = \"{cluster}\"\n\
             [[node_pools]]\npool = \"*\"\ncpu_core_hour = \"0.02\"\n\
             [[fixed]]\nname = \"support\"\nmonthly = \"720\"\n"
        ),
    )
    .unwrap();
    let events: Vec<UsageEvent> = (0..3)
        .map(|h| node_hour(&format!("n-{h}"), &cluster, NOV_2 + h * HOUR, 8.0))
        .chain([node_hour("other", "elsewhere", NOV_2, 4.0)])
        .collect();
    common::publish_records(&kafka, &stack.registry, &stack.usage_topic, &events, |e| {
        e.subject.cluster_id.clone()
    })
    .await;
    // Garbage from another cluster's producer is not this card's business.
    common::publish(
        &kafka,
        &stack.usage_topic,
        &[("elsewhere".to_owned(), b"not avro".to_vec())],
    )
    .await;
    let args = [
        "rate-card",
        "--dry-run",
        "--from",
        "2026-11-02T00:00:00Z",
        "--to",
        "2026-11-02T03:00:00Z",
        "--card",
        card.to_str().unwrap(),
    ];
    let output = stack.export(&args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let all = lines(&output);
    let amounts: Vec<i64> = all
        .iter()
        .map(|l| l["effective_cost_micros"].as_i64().unwrap())
        .collect();
    // 3 hours of 8 cores at 0.02, and 3 hours of 720 a month (30 days).
    assert_eq!(amounts, [160_000, 160_000, 160_000, 3_000_000], "{all:?}");

    // Garbage keyed to the card's cluster may have held its capacity.
    common::publish(
        &kafka,
        &stack.usage_topic,
        &[(cluster.clone(), b"not avro either".to_vec())],
    )
    .await;
    let refused = stack.export(&args).await;
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(refused.stdout.is_empty());
    assert!(
        stderr(&refused).contains(&format!(
            "{}: partition 0 offset 5: cannot be decoded",
            stack.usage_topic
        )),
        "{}",
        stderr(&refused)
    );
    let mut partial_args = args.to_vec();
    partial_args.push("--partial");
    let partial = stack.export(&partial_args).await;
    assert!(partial.status.success(), "{}", stderr(&partial));
    let printed = lines(&partial);
    assert_eq!(printed.len(), 1, "only the fixed cost: {printed:?}");
    assert_eq!(printed[0]["sku_id"], "support");
    assert!(
        stderr(&partial).contains("3 withheld"),
        "{}",
        stderr(&partial)
    );
}

#[tokio::test]
async fn the_rate_card_prices_gpu_capacity_as_gpu_lines() {
    let stack = Stack::new("export-rate-card-gpu").await;
    let kafka = common::kafka();
    let cluster = common::unique("onprem-gpu");
    let card = stack.dir.path().join("card.toml");
    std::fs::write(
        &card,
        format!(
            "currency = \"EUR\"\nbilling_account = \"dc-test\"\ncluster_id = \"{cluster}\"\n\
             [[node_pools]]\npool = \"*\"\ncpu_core_hour = \"0.02\"\ngpu_hour = \"1.45\"\n"
        ),
    )
    .unwrap();
    // Two hours of a node with 8 cores and 2 GPUs.
    let events: Vec<UsageEvent> = (0..2)
        .map(|h| {
            let mut event = node_hour(&format!("g-{h}"), &cluster, NOV_2 + h * HOUR, 8.0);
            event.measurements.push(Measurement {
                resource: "gpu".into(),
                kind: MeasurementKind::Capacity,
                quantity: 2.0 * 3600.0,
                unit: "gpu_seconds".into(),
            });
            event
        })
        .collect();
    common::publish_records(&kafka, &stack.registry, &stack.usage_topic, &events, |e| {
        e.subject.cluster_id.clone()
    })
    .await;
    let output = stack
        .export(&[
            "rate-card",
            "--dry-run",
            "--from",
            "2026-11-02T00:00:00Z",
            "--to",
            "2026-11-02T02:00:00Z",
            "--card",
            card.to_str().unwrap(),
        ])
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let mut printed: Vec<(String, i64, i64)> = lines(&output)
        .iter()
        .map(|l| {
            (
                l["category"].as_str().unwrap().to_owned(),
                l["charge_period_start"].as_i64().unwrap(),
                l["effective_cost_micros"].as_i64().unwrap(),
            )
        })
        .collect();
    printed.sort();
    // 8 cores x 0.02 and 2 GPUs x 1.45 an hour.
    let expected: Vec<(String, i64, i64)> = [
        ("compute", NOV_2, 160_000),
        ("compute", NOV_2 + HOUR, 160_000),
        ("gpu", NOV_2, 2_900_000),
        ("gpu", NOV_2 + HOUR, 2_900_000),
    ]
    .iter()
    .map(|(c, t, a)| ((*c).to_owned(), *t, *a))
    .collect();
    assert_eq!(printed, expected);
}
