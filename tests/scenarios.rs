//! The three deployments end to end, each through the real broker, the registry stand-in and
//! Postgres, with the commands an operator runs:
//!
//! `generate --scenario` (files) -> the documents published as an Elastic Agent would ->
//! `elastic --until-caught-up` -> the exporters' extension-meter UsageEvents (hybrid: Presto
//! query seconds, JupyterHub server hours) published to the usage topic -> `export-costs
//! gcp|focus|rate-card` -> `run --until-caught-up` -> `report`.
//!
//! The expected figures are computed here from the generated files alone (ECS documents, bill
//! rows, the rate card), with none of the tracker's code: usage per namespace, each cluster's
//! cost conserved to the micro-unit, Databricks left out, on-prem and GCP kept apart, and the
//! compute bill shared by allocated cpu.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sqlx::Row;
use usage_tracker::standard::UsageEvent;

use registry_standin::RunningRegistry;

const START: &str = "2026-11-02T00:00:00Z";
const START_MS: i64 = 1_793_577_600_000;
const HOURS: i64 = 3;
const PERIOD_S: i64 = 300;
const H: i64 = 3_600_000;
const SEED: u64 = 7;

fn command(
    registry: &RunningRegistry,
    config: &Path,
    database_url: &str,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_usage-tracker"));
    command
        .args(["--log", "warn"])
        .env("USAGE_TRACKER_CONFIG", config)
        .env("SCHEMA_REGISTRY_URL", registry.url())
        .env("DATABASE_URL", database_url)
        .kill_on_drop(true);
    command
}

async fn succeed(mut command: tokio::process::Command, what: &str) -> String {
    let output = command.output().await.unwrap();
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A scenario's files and the names of the topics this run uses.
struct Run {
    dir: tempfile::TempDir,
    config: PathBuf,
    registry: RunningRegistry,
    database_url: String,
    /// Scenario topic -> this run's topic.
    topics: BTreeMap<String, String>,
    /// This run's usage events and dead-letter topics.
    usage_topic: String,
    dead_letters: String,
}

impl Run {
    fn files(&self) -> PathBuf {
        self.dir.path().join("scenario")
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = command(&self.registry, &self.config, &self.database_url);
        c.args(args);
        c
    }
}

/// Generates the scenario's files and writes its configuration with this run's own topics,
/// groups and HTTP port (the local stack's client settings added).
async fn prepare(name: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let registry = common::registry().await;
    let database_url = common::fresh_database().await;
    let scenario_config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/scenarios")
        .join(name)
        .join("usage-tracker.toml");
    let mut config: toml::Table =
        toml::from_str(&std::fs::read_to_string(&scenario_config).unwrap()).unwrap();

    let prefix = format!("{}.", common::unique("scenario"));
    let mut topics = BTreeMap::new();
    let elastic = config.entry("elastic").or_insert(toml::Table::new().into());
    let elastic = elastic.as_table_mut().unwrap();
    let scenario_topics: Vec<String> = elastic["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    for topic in &scenario_topics {
        topics.insert(topic.clone(), format!("{prefix}{topic}"));
    }
    elastic.insert(
        "topics".into(),
        topics
            .values()
            .cloned()
            .map(toml::Value::from)
            .collect::<Vec<_>>()
            .into(),
    );
    if let Some(ids) = elastic
        .get_mut("cluster_ids")
        .and_then(|v| v.as_table_mut())
    {
        let renamed: toml::Table = ids
            .iter()
            .map(|(topic, cluster)| (topics[topic].clone(), cluster.clone()))
            .collect();
        *ids = renamed;
    }
    elastic.insert("group_id".into(), common::unique("elastic").into());
    elastic.insert("batch_timeout".into(), "100ms".into());
    let (usage_topic, dead_letters) = (common::unique("usage"), common::unique("dlq"));
    let stack: toml::Table = toml::from_str(&format!(
        r#"
        [http]
        listen = "127.0.0.1:0"
        [kafka]
        group_id = "{}"
        [kafka.consumer_properties]
        "session.timeout.ms" = "6000"
        [pipeline]
        checkpoint_interval = "1s"
        [topics]
        partitions = 2
        usage_events = "{}"
        cost_events = "{}"
        usage_records = "{}"
        dead_letters = "{}"
        "#,
        common::unique("tracker"),
        usage_topic,
        common::unique("cost"),
        common::unique("records"),
        dead_letters,
    ))
    .unwrap();
    for (section, table) in stack {
        assert!(
            config.insert(section, table).is_none(),
            "scenario configs leave connections to the environment"
        );
    }
    let config_path = dir.path().join("usage-tracker.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();

    // The agents: generate publishes each topic's documents as their Kafka output would.
    let mut generate = command(&registry, &config_path, &database_url);
    generate
        .args([
            "generate",
            "--scenario",
            name,
            "--start",
            START,
            "--topic-prefix",
            &prefix,
        ])
        .args([
            "--hours",
            &HOURS.to_string(),
            "--period",
            &PERIOD_S.to_string(),
            "--seed",
            &SEED.to_string(),
        ])
        .arg("--out")
        .arg(dir.path().join("scenario"));
    succeed(generate, "generate").await;
    Run {
        dir,
        config: config_path,
        registry,
        database_url,
        topics,
        usage_topic,
        dead_letters,
    }
}

/// The scenario's extension-meter UsageEvents, as its exporters publish them: straight to the
/// usage topic, keyed by cluster id. (`generate` does not write them to a file yet, and there
/// is no `publish` command: they are generated here with the library, with the same arguments.)
async fn publish_extension_events(run: &Run, name: &str) -> Vec<UsageEvent> {
    let input = usage_tracker::generate::scenario::generate(
        name,
        START_MS,
        HOURS as u32,
        PERIOD_S as u32,
        SEED,
    )
    .unwrap();
    if !input.usage_events.is_empty() {
        common::publish_records(
            &common::kafka(),
            &run.registry,
            &run.usage_topic,
            &input.usage_events,
            |e| e.subject.cluster_id.clone(),
        )
        .await;
    }
    input.usage_events
}

/// Every step an operator runs, in order. Returns the report (JSON).
async fn run_pipeline(run: &Run, name: &str) -> Value {
    succeed(run.command(&["elastic", "--until-caught-up"]), "elastic").await;
    let extension_events = publish_extension_events(run, name).await;

    for bill in std::fs::read_dir(run.files()).unwrap() {
        let path = bill.unwrap().path();
        let exporter = match path.file_name().unwrap().to_str().unwrap() {
            n if n.starts_with("gcp-") => "gcp",
            n if n.starts_with("azure-focus") => "focus",
            _ => continue,
        };
        let mut export = run.command(&["export-costs", exporter]);
        export.arg(&path);
        succeed(export, "export-costs").await;
    }
    let card = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/scenarios")
        .join(name)
        .join("rate-card.toml");
    if card.exists() {
        let end = humantime::format_rfc3339(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis((START_MS + HOURS * H) as u64),
        )
        .to_string();
        let mut export = run.command(&["export-costs", "rate-card", "--from", START, "--to", &end]);
        export.arg("--card").arg(&card);
        succeed(export, "export-costs rate-card").await;
    }
    succeed(run.command(&["run", "--until-caught-up"]), "run").await;
    // Extension meters are valid input the tracker does not account yet: none is dead-lettered
    // (nothing else is either).
    let letters = common::all_messages(&common::kafka(), &run.dead_letters).await;
    assert!(
        letters.is_empty(),
        "{} dead letters (of {} extension events published)",
        letters.len(),
        extension_events.len()
    );
    let report = succeed(
        run.command(&[
            "report",
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-03",
            "--format",
            "json",
        ]),
        "report",
    )
    .await;
    serde_json::from_str(&report).unwrap()
}

/// Usage of one (cluster, namespace), summed over the period, from the records in Postgres.
#[derive(Debug, Default, Clone, PartialEq)]
struct Usage {
    cpu_used: f64,
    cpu_requested: f64,
    memory_used: f64,
    memory_requested: f64,
    storage_requested: f64,
    network_rx: f64,
    network_tx: f64,
}

/// What Postgres holds, per (cluster, namespace).
#[derive(Debug, Default)]
struct Books {
    usage: BTreeMap<(String, String), Usage>,
    cost: BTreeMap<(String, String), i64>,
    compute_cost: BTreeMap<(String, String), i64>,
    windows: BTreeSet<i64>,
}

async fn books(database_url: &str) -> Books {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT cluster_id, namespace, (extract(epoch from window_start) * 1000)::bigint,
                resources::text, costs::text, (cost_total * 1000000)::bigint
         FROM usage_records WHERE group_by = ''",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mut books = Books::default();
    for row in rows {
        let key: (String, String) = (row.get(0), row.get(1));
        books.windows.insert(row.get(2));
        let resources: Value = serde_json::from_str(row.get::<&str, _>(3)).unwrap();
        let usage = books.usage.entry(key.clone()).or_default();
        for r in resources.as_array().unwrap() {
            let (used, requested) = (
                r["used"].as_f64().unwrap(),
                r["requested"].as_f64().unwrap(),
            );
            match r["resource"].as_str().unwrap() {
                "cpu" => {
                    (usage.cpu_used, usage.cpu_requested) =
                        (usage.cpu_used + used, usage.cpu_requested + requested)
                }
                "memory" => {
                    (usage.memory_used, usage.memory_requested) =
                        (usage.memory_used + used, usage.memory_requested + requested)
                }
                "storage" => usage.storage_requested += requested,
                "network_rx" => usage.network_rx += used,
                "network_tx" => usage.network_tx += used,
                _ => {}
            }
        }
        let costs: Value = serde_json::from_str(row.get::<&str, _>(4)).unwrap();
        for c in costs.as_array().unwrap() {
            if c["category"] == "compute" {
                // The split before sharing: a part moved by [sharing] counts for its source.
                let owner = match c["shared_from"].as_str() {
                    Some(source) => (key.0.clone(), source.to_owned()),
                    None => key.clone(),
                };
                *books.compute_cost.entry(owner).or_default() +=
                    c["allocated_cost_micros"].as_i64().unwrap();
            }
        }
        *books.cost.entry(key).or_default() += row.get::<i64, _>(5);
    }
    books
}

/// Per (cluster, namespace, window): usage read straight from the documents.
#[derive(Debug, Default)]
struct Expected {
    usage: BTreeMap<(String, String), Usage>,
    /// (cluster, window) -> namespace -> allocated core-seconds (max(requested, used)).
    cpu_allocated: BTreeMap<(String, i64), BTreeMap<String, f64>>,
    /// (cluster, window, pool) -> core-seconds and byte-seconds of node capacity.
    capacity: BTreeMap<(String, i64, String), (f64, f64)>,
    /// (cluster, window) -> storage claimed, byte-seconds.
    storage: BTreeMap<(String, i64), f64>,
}

fn expected_usage(run: &Run, cluster_of_topic: &BTreeMap<String, String>) -> Expected {
    let mut e = Expected::default();
    let mut window_usage: BTreeMap<(String, String, i64), Usage> = BTreeMap::new();
    // Pod uid -> (cluster, namespace, first and last cumulative rx and tx).
    type Readings = (String, String, (f64, f64), (f64, f64));
    let mut counters: BTreeMap<String, Readings> = BTreeMap::new();
    for scenario_topic in run.topics.keys() {
        let docs = std::fs::read_to_string(
            run.files()
                .join("documents")
                .join(format!("{scenario_topic}.ndjson")),
        )
        .unwrap();
        for line in docs.lines() {
            let doc: Value = serde_json::from_str(line).unwrap();
            let cluster = doc["orchestrator"]["cluster"]["name"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| cluster_of_topic[scenario_topic].clone());
            let t = humantime::parse_rfc3339(doc["@timestamp"].as_str().unwrap()).unwrap();
            let t = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
            let period = doc["metricset"]["period"].as_f64().unwrap() / 1000.0;
            let window = (t - 1).div_euclid(H) * H;
            let k = &doc["kubernetes"];
            let f = |v: &Value| v.as_f64().unwrap_or(0.0);
            match doc["metricset"]["name"].as_str().unwrap() {
                "state_node" => {
                    let pool = k["labels"]["node-pool"].as_str().unwrap().to_owned();
                    let c = e.capacity.entry((cluster, window, pool)).or_default();
                    c.0 += f(&k["node"]["cpu"]["allocatable"]["cores"]) * period;
                    c.1 += f(&k["node"]["memory"]["allocatable"]["bytes"]) * period;
                }
                metricset => {
                    let ns = k["namespace"].as_str().unwrap().to_owned();
                    let u = window_usage
                        .entry((cluster.clone(), ns, window))
                        .or_default();
                    let c = &k["container"];
                    match metricset {
                        "container" => {
                            u.cpu_used += f(&c["cpu"]["usage"]["nanocores"]) / 1e9 * period;
                            u.memory_used += f(&c["memory"]["workingset"]["bytes"]) * period;
                        }
                        "state_container" => {
                            u.cpu_requested += f(&c["cpu"]["request"]["cores"]) * period;
                            u.memory_requested += f(&c["memory"]["request"]["bytes"]) * period;
                        }
                        "pod" => {
                            let reading = (
                                f(&k["pod"]["network"]["rx"]["bytes"]),
                                f(&k["pod"]["network"]["tx"]["bytes"]),
                            );
                            let uid = k["pod"]["uid"].as_str().unwrap().to_owned();
                            let entry = counters.entry(uid).or_insert((
                                cluster.clone(),
                                k["namespace"].as_str().unwrap().to_owned(),
                                reading,
                                reading,
                            ));
                            entry.3 = reading;
                        }
                        "state_persistentvolumeclaim" => {
                            let bytes =
                                f(&k["persistentvolumeclaim"]["request_storage"]["bytes"]) * period;
                            u.storage_requested += bytes;
                            *e.storage.entry((cluster.clone(), window)).or_default() += bytes;
                        }
                        other => panic!("unexpected metricset {other}"),
                    }
                }
            }
        }
    }
    // Cumulative counters: what a pod sent and received is its last reading minus its first.
    for (_, (cluster, ns, first, last)) in counters {
        let total = e.usage.entry((cluster, ns)).or_default();
        total.network_rx += last.0 - first.0;
        total.network_tx += last.1 - first.1;
    }
    for ((cluster, ns, window), u) in window_usage {
        e.cpu_allocated
            .entry((cluster.clone(), window))
            .or_default()
            .insert(ns.clone(), u.cpu_requested.max(u.cpu_used));
        let total = e.usage.entry((cluster, ns)).or_default();
        total.cpu_used += u.cpu_used;
        total.cpu_requested += u.cpu_requested;
        total.memory_used += u.memory_used;
        total.memory_requested += u.memory_requested;
        total.storage_requested += u.storage_requested;
    }
    e
}

/// Exact micro-units of a decimal number as the bill writes it.
fn micros(v: &Value) -> i64 {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let negative = text.starts_with('-');
    let text = text.trim_start_matches('-');
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let fraction = format!("{fraction:0<6}");
    assert!(
        fraction[6..].bytes().all(|b| b == b'0'),
        "more than 6 decimals: {text}"
    );
    let value = whole.parse::<i64>().unwrap() * 1_000_000 + fraction[..6].parse::<i64>().unwrap();
    if negative {
        -value
    } else {
        value
    }
}

/// A GCP bill line as the test reads it: cluster, hour, compute?, effective micro-units.
struct GcpLine {
    cluster: String,
    hour: i64,
    compute: bool,
    effective: i64,
}

/// GCP export rows (JSON lines or CSV).
fn gcp_lines(path: &Path) -> Vec<GcpLine> {
    let text = std::fs::read_to_string(path).unwrap();
    let rows: Vec<Value> = if path.extension().unwrap() == "csv" {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let headers = reader.headers().unwrap().clone();
        reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                let get = |name: &str| {
                    r.get(headers.iter().position(|h| h == name).unwrap())
                        .unwrap()
                };
                serde_json::json!({
                    "sku": {"id": get("sku.id"), "description": get("sku.description")},
                    "usage_start_time": get("usage_start_time"),
                    "export_time": get("export_time"),
                    "labels": serde_json::from_str::<Value>(get("labels")).unwrap(),
                    "credits": serde_json::from_str::<Value>(get("credits")).unwrap(),
                    "cost": Value::String(get("cost").to_owned()),
                })
            })
            .collect()
    } else {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    // Every row counts: the export appends (late usage is a further row of the same line).
    rows.into_iter()
        .map(|row| {
            let label = |k: &str| {
                row["labels"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|l| l["key"] == k)
                    .map(|l| l["value"].as_str().unwrap().to_owned())
            };
            let start = row["usage_start_time"]
                .as_str()
                .unwrap()
                .replace(" UTC", "Z")
                .replace(' ', "T");
            let hour = humantime::parse_rfc3339(&start)
                .unwrap()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let credits: i64 = row["credits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| micros(&c["amount"]))
                .sum();
            GcpLine {
                cluster: label("goog-k8s-cluster-name").unwrap(),
                hour,
                compute: row["sku"]["description"]
                    .as_str()
                    .unwrap()
                    .contains("Instance Core"),
                effective: micros(&row["cost"]) + credits,
            }
        })
        .collect()
}

fn sum_by_cluster(books: &Books) -> BTreeMap<String, i64> {
    let mut totals = BTreeMap::new();
    for ((cluster, _), micros) in &books.cost {
        *totals.entry(cluster.clone()).or_default() += micros;
    }
    totals
}

fn assert_usage_matches(books: &Books, expected: &Expected) {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0);
    for (key, want) in &expected.usage {
        let got = books
            .usage
            .get(key)
            .unwrap_or_else(|| panic!("no records for {key:?}"));
        for (what, g, w) in [
            ("cpu used", got.cpu_used, want.cpu_used),
            ("cpu requested", got.cpu_requested, want.cpu_requested),
            ("memory used", got.memory_used, want.memory_used),
            (
                "memory requested",
                got.memory_requested,
                want.memory_requested,
            ),
            (
                "storage requested",
                got.storage_requested,
                want.storage_requested,
            ),
        ] {
            assert!(close(g, w), "{key:?} {what}: tracker {g}, documents {w}");
        }
    }
}

/// The compute bill of each GCP hour, shared by allocated cpu: a namespace gets
/// `bill x allocated / max(capacity, sum of allocated)` (`idle = "separate"`) or
/// `bill x allocated / sum of allocated` (`idle = "share"`), to the micro-unit per window.
fn assert_compute_shares(books: &Books, expected: &Expected, lines: &[GcpLine], idle_shared: bool) {
    let mut bill: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.compute) {
        *bill.entry((line.cluster.clone(), line.hour)).or_default() += line.effective;
    }
    let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut windows: BTreeMap<String, i64> = BTreeMap::new();
    for ((cluster, hour), amount) in &bill {
        let allocated = &expected.cpu_allocated[&(cluster.clone(), *hour)];
        let sum: f64 = allocated.values().sum();
        let capacity: f64 = expected
            .capacity
            .iter()
            .filter(|((c, w, _), _)| c == cluster && w == hour)
            .map(|(_, (cpu, _))| cpu)
            .sum();
        let basis = if idle_shared { sum } else { capacity.max(sum) };
        for (ns, a) in allocated {
            *want.entry((cluster.clone(), ns.clone())).or_default() += *amount as f64 * a / basis;
        }
        *windows.entry(cluster.clone()).or_default() += 1;
    }
    for ((cluster, ns), w) in &want {
        let got = books
            .compute_cost
            .get(&(cluster.clone(), ns.clone()))
            .copied()
            .unwrap_or(0);
        assert!(
            (got as f64 - w).abs() <= windows[cluster] as f64 + 1.0,
            "{cluster}/{ns}: compute cost {got}, expected {w:.1} micro-units"
        );
    }
}

/// For every namespace window and `group_by`, the groups' cost sums exactly to the namespace
/// record's, and their used cpu to its used cpu (to the rounding of the `double`s).
async fn assert_groups_sum_to_their_namespace(database_url: &str) {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT g.cluster_id, g.namespace, g.window_start::text, g.group_by,
                (sum(g.cost_total) * 1000000)::bigint, (min(n.cost_total) * 1000000)::bigint,
                sum(g.cpu_used_core_seconds), min(n.cpu_used_core_seconds)
         FROM usage_records g
         JOIN usage_records n ON n.cluster_id = g.cluster_id AND n.namespace = g.namespace
                             AND n.window_start = g.window_start AND n.group_by = ''
         WHERE g.group_by <> ''
         GROUP BY 1, 2, 3, 4",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(
        !rows.is_empty(),
        "the scenario aggregates by a label: group records expected"
    );
    for r in rows {
        let (groups, namespace): (i64, i64) = (r.get(4), r.get(5));
        let (cpu_groups, cpu): (f64, f64) = (r.get(6), r.get(7));
        let at = || {
            format!(
                "{}/{} {} {}",
                r.get::<String, _>(0),
                r.get::<String, _>(1),
                r.get::<String, _>(2),
                r.get::<String, _>(3)
            )
        };
        assert_eq!(groups, namespace, "{}: groups' cost", at());
        assert!(
            (cpu_groups - cpu).abs() <= 1e-6 * cpu.max(1.0),
            "{}: cpu {cpu_groups} vs {cpu}",
            at()
        );
    }
}

/// The hybrid demo's promise: platform and idle cost reach the projects, JupyterHub users have
/// accounts of their own, and the Presto licence follows the query seconds.
async fn assert_hybrid_sharing_users_and_meters(database_url: &str) {
    let i = |sql: &str| {
        let sql = sql.to_owned();
        async move { common::query_i64(database_url, &sql).await }
    };
    // Platform namespaces keep their usage and own cost, but are charged nothing; idle too.
    assert_eq!(
        i("SELECT count(*) FROM usage_records WHERE group_by = '' AND shared AND cost_total <> 0")
            .await,
        0
    );
    assert!(
        i("SELECT count(*) FROM usage_records WHERE group_by = '' AND shared AND namespace = 'argocd' AND own_cost > 0").await > 0
    );
    let project = |column: &str| {
        format!(
            "SELECT (sum({column}) * 1000000)::bigint FROM usage_records
             WHERE group_by = '' AND cluster_id = 'onprem-dc1' AND namespace = 'project-analytics'"
        )
    };
    for column in ["shared_cost", "idle_cost", "own_cost"] {
        assert!(i(&project(column)).await > 0, "project-analytics {column}");
    }
    // Per user in the JupyterHub namespace, on both clusters.
    let users = i(
        "SELECT count(DISTINCT (cluster_id, group_value)) FROM usage_records
                   WHERE namespace = 'jupyterhub' AND group_by = 'label:hub.jupyter.org/username'
                     AND group_value <> '__unlabelled__' AND cost_total > 0",
    )
    .await;
    assert_eq!(
        users, 6,
        "alice, bob, carol on-prem; bob, dave, erin on GKE"
    );
    // The Presto licence, a bill line naming the meter, only where queries ran.
    let presto = i(
        "SELECT count(*) FROM usage_records, jsonb_array_elements(costs) c
                    WHERE group_by = '' AND c->>'meter' = 'x-presto-query-seconds'
                      AND namespace <> 'project-analytics' AND namespace <> '__unallocated__'",
    )
    .await;
    assert_eq!(presto, 0, "the Presto licence goes by query seconds");
    assert!(
        i(
            "SELECT count(*) FROM usage_records, jsonb_array_elements(costs) c
           WHERE group_by = '' AND namespace = 'project-analytics'
             AND c->>'meter' = 'x-presto-query-seconds'"
        )
        .await
            > 0
    );
}

/// The report's per-cluster totals, in micro-units, must be what the records hold.
fn assert_report_totals(report: &Value, books: &Books) {
    let totals: BTreeMap<String, i64> = report["cluster_totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["cluster_id"].as_str().unwrap().to_owned(),
                micros(&r["cost"]),
            )
        })
        .collect();
    assert_eq!(totals, sum_by_cluster(books), "report totals");
}

fn report_namespaces(report: &Value) -> BTreeSet<(String, String)> {
    report["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("report without rows: {report}"))
        .iter()
        .map(|r| {
            (
                r["cluster_id"].as_str().unwrap().to_owned(),
                r["namespace"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn single_user_gcp() {
    let run = prepare("single-user-gcp").await;
    let report = run_pipeline(&run, "single-user-gcp").await;
    let books = books(&run.database_url).await;
    assert_report_totals(&report, &books);
    assert_groups_sum_to_their_namespace(&run.database_url).await;
    let expected = expected_usage(&run, &BTreeMap::new());
    assert_eq!(books.windows.len(), HOURS as usize);
    assert_usage_matches(&books, &expected);

    let lines = gcp_lines(&run.files().join("gcp-billing-export.jsonl"));
    let bill: i64 = lines.iter().map(|l| l.effective).sum();
    assert_eq!(
        sum_by_cluster(&books),
        BTreeMap::from([("gke-single".to_owned(), bill)]),
        "cost conserved"
    );
    assert_compute_shares(&books, &expected, &lines, false);
    let namespaces = report_namespaces(&report);
    for ns in [
        "argocd",
        "consul",
        "minio",
        "kafka",
        "postgres",
        "keycloak",
        "vault",
        "ferris-ui",
        "project-alice",
        "__idle__",
    ] {
        assert!(
            namespaces.contains(&("gke-single".into(), ns.into())),
            "report lacks {ns}: {namespaces:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn team_databricks_is_left_out() {
    let run = prepare("team-databricks").await;
    let report = run_pipeline(&run, "team-databricks").await;
    let books = books(&run.database_url).await;
    assert_report_totals(&report, &books);
    assert_groups_sum_to_their_namespace(&run.database_url).await;
    let mut expected = expected_usage(&run, &BTreeMap::new());
    assert!(
        expected.usage.keys().any(|(c, _)| c == "azure-databricks"),
        "the input has Databricks usage"
    );
    expected.usage.retain(|(c, _), _| c != "azure-databricks");
    assert_usage_matches(&books, &expected);
    assert!(
        books
            .usage
            .keys()
            .all(|(c, ns)| c == "gke-team" && ns != "databricks"),
        "only the team's cluster is accounted: {:?}",
        books.usage.keys().collect::<Vec<_>>()
    );

    let lines = gcp_lines(&run.files().join("gcp-billing-export.csv"));
    let gcp: i64 = lines.iter().map(|l| l.effective).sum();
    let azure = std::fs::read_to_string(run.files().join("azure-focus-export.csv")).unwrap();
    assert!(azure.lines().count() > 1, "the Azure bill is not empty");
    assert_eq!(
        sum_by_cluster(&books),
        BTreeMap::from([("gke-team".to_owned(), gcp)]),
        "GCP cost only, conserved"
    );
    assert_compute_shares(&books, &expected, &lines, true);
    // The forgotten sandbox reserves a core and uses nothing: it still pays for its request.
    assert!(books.compute_cost[&("gke-team".to_owned(), "project-sandbox".to_owned())] > 0);
    assert!(!report_namespaces(&report)
        .iter()
        .any(|(c, _)| c == "azure-databricks"));
}

#[tokio::test(flavor = "multi_thread")]
async fn hybrid_onprem_and_gcp_stay_apart() {
    let run = prepare("hybrid-onprem-gcp").await;
    let report = run_pipeline(&run, "hybrid-onprem-gcp").await;
    let books = books(&run.database_url).await;
    assert_report_totals(&report, &books);
    assert_groups_sum_to_their_namespace(&run.database_url).await;
    let clusters = BTreeMap::from([(
        "metricbeat.onprem.kubernetes".to_owned(),
        "onprem-dc1".to_owned(),
    )]);
    let expected = expected_usage(&run, &clusters);
    assert_usage_matches(&books, &expected);
    for cluster in ["onprem-dc1", "gke-hybrid"] {
        for ns in ["project-ide", "jupyterhub", "project-analytics"] {
            assert!(
                books.usage.contains_key(&(cluster.into(), ns.into())),
                "{cluster}/{ns} missing"
            );
        }
    }

    // GKE: its GCP bill, conserved.
    let lines = gcp_lines(&run.files().join("gcp-billing-export.jsonl"));
    let gcp: i64 = lines.iter().map(|l| l.effective).sum();
    // On-prem: the rate card applied to the capacity in the documents, computed here.
    let card: toml::Table = toml::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("deploy/scenarios/hybrid-onprem-gcp/rate-card.toml"),
        )
        .unwrap(),
    )
    .unwrap();
    let price = |pool: &str, key: &str| -> i128 {
        let p = card["node_pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pool"].as_str() == Some(pool))
            .unwrap();
        pico(p[key].as_str().unwrap())
    };
    let round_div = |a: i128, b: i128| (a + b / 2) / b;
    let mut onprem: i128 = 0;
    for ((cluster, _, pool), (cpu, memory)) in &expected.capacity {
        if cluster == "onprem-dc1" {
            // core-seconds x pico per core-hour / 3600 -> pico; / 10^6 -> micro-units.
            onprem += round_div(
                *cpu as i128 * price(pool, "cpu_core_hour"),
                3600 * 1_000_000,
            );
            onprem += round_div(
                *memory as i128 * price(pool, "memory_gib_hour"),
                3600 * (1 << 30) * 1_000_000,
            );
        }
    }
    let storage_price = pico(
        card["storage_classes"].as_array().unwrap()[0]["gib_hour"]
            .as_str()
            .unwrap(),
    );
    for ((cluster, _), bytes) in &expected.storage {
        if cluster == "onprem-dc1" {
            onprem += round_div(*bytes as i128 * storage_price, 3600 * (1 << 30) * 1_000_000);
        }
    }
    // Fixed monthly costs, for 3 hours of a 30-day month.
    for fixed in card["fixed"].as_array().unwrap() {
        onprem += round_div(
            pico(fixed["monthly"].as_str().unwrap()) * HOURS as i128,
            30 * 24 * 1_000_000,
        );
    }
    assert_eq!(
        sum_by_cluster(&books),
        BTreeMap::from([
            ("gke-hybrid".to_owned(), gcp),
            ("onprem-dc1".to_owned(), onprem as i64)
        ]),
        "each cluster carries exactly its own bill"
    );
    assert_compute_shares(&books, &expected, &lines, false);
    assert_hybrid_sharing_users_and_meters(&run.database_url).await;
    let namespaces = report_namespaces(&report);
    assert!(namespaces.contains(&("onprem-dc1".into(), "jupyterhub".into())));
    assert!(namespaces.contains(&("gke-hybrid".into(), "jupyterhub".into())));

    // The usage topic: the pods' labels came through Elastic (de-dotted keys), the exporters'
    // events with the original keys; both name the same users and teams.
    let events = usage_events(&run).await;
    let label = |e: &UsageEvent, key: &str| e.subject.labels.get(key).cloned().unwrap_or_default();
    let mut from_pods = BTreeSet::new();
    let mut from_exporter = BTreeSet::new();
    let mut extension = 0;
    for e in &events {
        let ns = e.subject.namespace.clone().unwrap_or_default();
        if e.source.starts_with("//elastic-agent/") {
            if e.subject.pod_name.is_some() {
                assert!(
                    !label(e, "app_kubernetes_io/name").is_empty(),
                    "{:?}",
                    e.subject
                );
                if ns.starts_with("project-") {
                    assert!(!label(e, "team").is_empty(), "{:?}", e.subject);
                }
            }
            if label(e, "component") == "singleuser-server" {
                from_pods.insert((
                    e.subject.cluster_id.clone(),
                    label(e, "hub_jupyter_org/username"),
                    label(e, "team"),
                ));
            }
        } else {
            extension += 1;
            if e.measurements[0].resource == "x-jupyterhub-server-hours" {
                from_exporter.insert((
                    e.subject.cluster_id.clone(),
                    label(e, "hub.jupyter.org/username"),
                    label(e, "team"),
                ));
            }
        }
    }
    let users: BTreeSet<(String, String, String)> = [
        ("gke-hybrid", "bob", "data-eng"),
        ("gke-hybrid", "dave", "ml"),
        ("gke-hybrid", "erin", "data-eng"),
        ("onprem-dc1", "alice", "analytics"),
        ("onprem-dc1", "bob", "data-eng"),
        ("onprem-dc1", "carol", "ml"),
    ]
    .iter()
    .map(|(c, u, t)| (c.to_string(), u.to_string(), t.to_string()))
    .collect();
    assert_eq!(from_pods, users);
    assert_eq!(from_exporter, users);
    let published = usage_tracker::generate::scenario::generate(
        "hybrid-onprem-gcp",
        START_MS,
        HOURS as u32,
        PERIOD_S as u32,
        SEED,
    )
    .unwrap()
    .usage_events
    .len();
    assert!(published > 0);
    assert_eq!(
        extension, published,
        "every extension event is on the usage topic"
    );
}

/// Every UsageEvent on the run's usage topic.
async fn usage_events(run: &Run) -> Vec<UsageEvent> {
    let decoder = usage_tracker::standard::wire::RecordDecoder::<UsageEvent>::new(
        common::endpoint(&run.registry).sr_settings().unwrap(),
    );
    let mut events = Vec::new();
    for (_, payload) in common::all_messages(&common::kafka(), &run.usage_topic).await {
        events.push(decoder.decode(&payload.unwrap()).await.unwrap());
    }
    events
}

/// A decimal price in 10^-12 currency units.
fn pico(text: &str) -> i128 {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    whole.parse::<i128>().unwrap() * 1_000_000_000_000
        + format!("{fraction:0<12}").parse::<i128>().unwrap()
}
