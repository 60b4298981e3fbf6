//! Benchmarks of the claims in docs/performance.md: the per-message hot path (Avro decode,
//! ingest validation, windowing), ECS JSON normalisation (`usage-tracker elastic`), checkpoint
//! emission (allocation + records), and the state held per open (cluster, namespace, window) key.
//!
//! ```sh
//! cargo bench --bench core -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The state-size measurement is printed before the timed benchmarks (only under `cargo bench`,
//! i.e. when `--bench` is passed, and not with `--profile-time`), because it reads the process's
//! resident set and must run on a heap that the benchmarks have not grown yet.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput};
use usage_tracker::accounting::Accountant;
use usage_tracker::allocate::{AllocationPolicy, CostAllocator};
use usage_tracker::config::Settings;
use usage_tracker::generate::scenario;
use usage_tracker::ingest::ecs::{check_event, Clock, EcsNormaliser, EcsOutcome, NetworkCounters};
use usage_tracker::ingest::{self, Exclusions, Intake};
use usage_tracker::measure::{Quantity, Resource, ResourceTotals};
use usage_tracker::standard::registry::RegistryEndpoint;
use usage_tracker::standard::wire::{RecordDecoder, RecordEncoder};
use usage_tracker::standard::{
    CostCategory, CostStatus, EpochMillis, Measurement, MeasurementKind, StandardRecord,
    UsageEvent, WorkloadSubject, SPEC_VERSION, USAGE_EVENT_TYPE,
};
use usage_tracker::window::{CostLedger, CostLine, Sample, WindowConfig, WindowStore};

const HOUR_MS: i64 = 3_600_000;
/// 2026-01-01T00:00:00Z, hour-aligned.
const BASE: EpochMillis = 1_767_225_600_000;
/// Processing time: one hour after the last window of the data set ends.
const NOW: EpochMillis = BASE + 25 * HOUR_MS;
const GIB: f64 = 1_073_741_824.0;
/// The converter's clock in the ECS benchmark (after every generated document).
const ECS_CLOCK: Clock = Clock {
    now: NOW,
    future_skew_ms: 900_000,
};

const CLUSTERS: [&str; 3] = ["gke-prod-eu-west1", "aks-prod-westeurope", "onprem-dc1"];
const NAMESPACES: usize = 50;
const WINDOWS: usize = 24;
/// Messages per timed batch of the hot path.
const BATCH: usize = 10_000;
/// Sample period of the producers (Elastic Agent's default is 10 s).
const PERIOD_MS: i64 = 10_000;

const PLATFORM: [&str; 9] = [
    "argocd",
    "consul",
    "minio",
    "kafka",
    "postgres",
    "keycloak",
    "vault",
    "ferris-ui",
    "monitoring",
];

fn namespace_name(i: usize) -> String {
    match PLATFORM.get(i) {
        Some(name) => (*name).to_owned(),
        None => format!("project-{:02}", i - PLATFORM.len()),
    }
}

fn measurement(resource: &str, kind: MeasurementKind, quantity: f64, unit: &str) -> Measurement {
    Measurement {
        resource: resource.into(),
        kind,
        quantity,
        unit: unit.into(),
    }
}

/// Message `j` of the data set: a pod sample shaped like `generate::pod_sample` (2 to 5
/// measurements, 2 or 3 labels), spread over 3 clusters x 50 namespaces x 24 hourly windows,
/// every id unique.
fn pod_event(j: usize) -> UsageEvent {
    let cluster = CLUSTERS[j % CLUSTERS.len()];
    let ns = namespace_name((j / CLUSTERS.len()) % NAMESPACES);
    let window = (j / (CLUSTERS.len() * NAMESPACES)) % WINDOWS;
    let end = BASE + window as i64 * HOUR_MS + PERIOD_MS * (1 + (j % 359) as i64);
    let replica = j % 7;
    let hash = (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 44;
    let pod = format!("{ns}-worker-7d9f8c6b5-{hash:05x}");
    let p = PERIOD_MS as f64 / 1000.0;
    let cores = 0.05 + 0.01 * (j % 50) as f64;
    let memory = (0.25 + 0.05 * (j % 20) as f64) * GIB;
    let all = [
        measurement("cpu", MeasurementKind::Usage, cores * p, "core_seconds"),
        measurement("memory", MeasurementKind::Usage, memory * p, "byte_seconds"),
        measurement("cpu", MeasurementKind::Request, 0.5 * p, "core_seconds"),
        measurement("memory", MeasurementKind::Request, GIB * p, "byte_seconds"),
        measurement("cpu", MeasurementKind::Limit, 1.0 * p, "core_seconds"),
    ];
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), format!("{ns}-worker")),
        ("app.kubernetes.io/part-of".to_owned(), ns.clone()),
    ]);
    if j.is_multiple_of(2) {
        labels.insert("team".to_owned(), format!("team-{}", j % 5));
    }
    UsageEvent {
        specversion: SPEC_VERSION.into(),
        id: format!("pod/{ns}/{pod}/{end}/{j}"),
        source: format!("//elastic-agent/{cluster}/node-{replica}"),
        event_type: USAGE_EVENT_TYPE.into(),
        time: end,
        start: end - PERIOD_MS,
        end,
        subject: WorkloadSubject {
            cluster_id: cluster.into(),
            cluster_name: Some(format!("{cluster} (production)")),
            namespace: Some(ns.clone()),
            pod_name: Some(pod.clone()),
            pod_uid: Some(format!("3f2b8c1e-{hash:05x}-4d1a-9b7e-{j:012x}")),
            container_name: None,
            node_name: Some(format!("{cluster}-pool-1-node-{replica}")),
            workload_kind: Some("Deployment".into()),
            workload_name: Some(format!("{ns}-worker")),
            labels,
        },
        measurements: all[..2 + j % 4].to_vec(),
    }
}

/// Validated sample of an event, panicking on anything but acceptance.
fn accept(event: &UsageEvent) -> Sample {
    let config = WindowConfig::default();
    match ingest::usage_sample(event, &Exclusions::default(), NOW, config.future_skew_ms) {
        Ok(Intake::Accepted(sample)) => sample,
        other => panic!("benchmark event not accepted: {other:?}"),
    }
}

/// Encoded messages, their decoded events and samples, and a warm decoder.
struct HotPath {
    payloads: Vec<Vec<u8>>,
    events: Vec<UsageEvent>,
    samples: Vec<Sample>,
    decoder: RecordDecoder<UsageEvent>,
    /// A store already holding every (cluster, namespace, window) key of the batch, with
    /// different event ids: applying the batch measures steady state, not key creation.
    warm_store: WindowStore,
    // Kept alive for the decoder's registry client.
    _registry: registry_standin::RunningRegistry,
    _runtime: tokio::runtime::Runtime,
}

impl HotPath {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let events: Vec<UsageEvent> = (0..BATCH).map(pod_event).collect();
        let (registry, payloads, decoder) = runtime.block_on(async {
            let registry = registry_standin::spawn("127.0.0.1:0".parse().unwrap())
                .await
                .expect("registry stand-in");
            let endpoint = RegistryEndpoint::new(registry.url());
            let encoder = RecordEncoder::<UsageEvent>::new(
                endpoint.sr_settings().unwrap(),
                UsageEvent::DEFAULT_TOPIC,
            );
            let mut payloads = Vec::with_capacity(events.len());
            for event in &events {
                payloads.push(encoder.encode(event).await.expect("encode"));
            }
            let decoder = RecordDecoder::<UsageEvent>::new(endpoint.sr_settings().unwrap());
            // Fetches and caches the writer schema: from here on decode_cached hits.
            let first = decoder.decode(&payloads[0]).await.expect("decode");
            assert_eq!(first, events[0]);
            (registry, payloads, decoder)
        });
        for (payload, event) in payloads.iter().zip(&events) {
            let decoded = decoder.decode_cached(payload).expect("cached").unwrap();
            assert_eq!(&decoded, event, "round trip");
        }
        let samples: Vec<Sample> = events.iter().map(accept).collect();
        let mut warm_store = WindowStore::new(WindowConfig::default());
        for j in 0..CLUSTERS.len() * NAMESPACES * WINDOWS {
            let mut event = pod_event(j);
            event.id.push_str("/warm-up");
            warm_store.apply(&accept(&event));
        }
        warm_store.take_unsaved_seen();
        assert_eq!(
            warm_store.open_keys(),
            CLUSTERS.len() * NAMESPACES * WINDOWS
        );
        let bytes: usize = payloads.iter().map(Vec::len).sum();
        let measurements: usize = events.iter().map(|e| e.measurements.len()).sum();
        println!(
            "hot path data set: {} messages, {:.0} bytes/message on average, {:.2} measurements/message, {} open keys",
            payloads.len(),
            bytes as f64 / payloads.len() as f64,
            measurements as f64 / events.len() as f64,
            warm_store.open_keys(),
        );
        Self {
            payloads,
            events,
            samples,
            decoder,
            warm_store,
            _registry: registry,
            _runtime: runtime,
        }
    }
}

fn bench_hot_path(c: &mut Criterion, hot: &HotPath) {
    let exclusions = Exclusions::default();
    let skew = WindowConfig::default().future_skew_ms;
    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(BATCH as u64));

    group.bench_function("decode", |b| {
        b.iter(|| {
            for payload in &hot.payloads {
                black_box(hot.decoder.decode_cached(black_box(payload)));
            }
        })
    });

    group.bench_function("ingest", |b| {
        b.iter(|| {
            for event in &hot.events {
                black_box(ingest::usage_sample(
                    black_box(event),
                    &exclusions,
                    NOW,
                    skew,
                ))
                .ok();
            }
        })
    });

    group.bench_function("apply", |b| {
        b.iter_batched(
            || hot.warm_store.clone(),
            |mut store| {
                for sample in &hot.samples {
                    black_box(store.apply(black_box(sample)));
                }
                store
            },
            BatchSize::PerIteration,
        )
    });

    group.bench_function("decode_ingest_apply", |b| {
        b.iter_batched(
            || hot.warm_store.clone(),
            |mut store| {
                for payload in &hot.payloads {
                    let event = hot
                        .decoder
                        .decode_cached(black_box(payload))
                        .expect("cached schema")
                        .expect("decodes");
                    if let Ok(Intake::Accepted(sample)) =
                        ingest::usage_sample(&event, &exclusions, NOW, skew)
                    {
                        black_box(store.apply(&sample));
                    }
                }
                store
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// `CORE_BENCH_ONCE=<stage>`: runs one hot-path stage once over the batch, outside criterion,
/// for a load-independent instruction count of just that stage:
///
/// ```sh
/// CORE_BENCH_ONCE=decode_ingest_apply valgrind --tool=callgrind \
///     --toggle-collect='*once_decode_ingest_apply*' target/release/deps/core-<hash>
/// ```
///
/// `CORE_BENCH_ONCE=ecs_normalise` (toggle `*once_ecs_normalise*`) does the same for the ECS
/// batch of the `ecs/normalise` benchmark.
fn run_once(stage: &str) {
    if stage == "ecs_normalise" {
        let bench = ecs_bench();
        let counters = bench.primed_counters();
        drop(black_box(once_ecs_normalise(&bench, counters)));
        return;
    }
    let hot = &HotPath::new();
    let store = hot.warm_store.clone();
    match stage {
        "decode" => once_decode(hot),
        "ingest" => once_ingest(hot),
        "apply" => drop(black_box(once_apply(hot, store))),
        "decode_ingest_apply" => drop(black_box(once_decode_ingest_apply(hot, store))),
        other => panic!("CORE_BENCH_ONCE={other}: not a hot_path stage nor ecs_normalise"),
    }
}

#[inline(never)]
fn once_decode(hot: &HotPath) {
    for payload in &hot.payloads {
        black_box(hot.decoder.decode_cached(black_box(payload)));
    }
}

#[inline(never)]
fn once_ingest(hot: &HotPath) {
    let skew = WindowConfig::default().future_skew_ms;
    for event in &hot.events {
        black_box(ingest::usage_sample(
            black_box(event),
            &Exclusions::default(),
            NOW,
            skew,
        ))
        .ok();
    }
}

#[inline(never)]
fn once_apply(hot: &HotPath, mut store: WindowStore) -> WindowStore {
    for sample in &hot.samples {
        black_box(store.apply(black_box(sample)));
    }
    store
}

#[inline(never)]
fn once_decode_ingest_apply(hot: &HotPath, mut store: WindowStore) -> WindowStore {
    let skew = WindowConfig::default().future_skew_ms;
    for payload in &hot.payloads {
        let event = hot
            .decoder
            .decode_cached(black_box(payload))
            .expect("cached schema")
            .expect("decodes");
        if let Ok(Intake::Accepted(sample)) =
            ingest::usage_sample(&event, &Exclusions::default(), NOW, skew)
        {
            black_box(store.apply(&sample));
        }
    }
    store
}

/// Scenario whose ECS documents the `ecs` group normalises: an Elastic Agent cluster
/// (`gke-hybrid`) and a Metricbeat cluster without cluster metadata (`onprem-dc1`).
const ECS_SCENARIO: &str = "hybrid-onprem-gcp";
/// Its tracker configuration: `[elastic]` topics and the on-prem topic's cluster id.
const ECS_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/scenarios/hybrid-onprem-gcp/usage-tracker.toml"
);
/// Sample period of the generated documents, seconds (Elastic Agent's default).
const ECS_PERIOD_S: u32 = 10;
/// Sample times (every object of both clusters once each) in one timed batch.
const ECS_TICKS: usize = 100;

/// One `[elastic]` input as `usage-tracker elastic` builds it: a normaliser per topic.
struct EcsInput {
    topic: String,
    normaliser: EcsNormaliser,
    /// The cluster id every event of this topic must carry.
    cluster_id: &'static str,
}

/// The ECS data set: documents of both topics in time order, and each pod's reading from the
/// sample time just before the batch, so that network counters are in steady state.
struct EcsBench {
    inputs: Vec<EcsInput>,
    /// `(input, payload)`, merged by `@timestamp` across the topics, as one consumer sees them.
    documents: Vec<(usize, Vec<u8>)>,
    /// `(input, payload)` of the `pod` documents of the sample time before the batch.
    previous_pods: Vec<(usize, Vec<u8>)>,
}

/// What a pass over the ECS batch produced, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
struct EcsTally {
    /// Events of `container`, `state_container`, `state_node`, `state_persistentvolumeclaim`.
    events: usize,
    /// Network events from `pod` documents through `NetworkCounters::delta`.
    network_events: usize,
    /// `pod` documents that were a pod's first reading (a pod restarted within the batch).
    network_baselines: usize,
}

/// `metricset.name` and `@timestamp` of a generated document.
fn ecs_metricset_and_time(payload: &[u8]) -> (String, String) {
    let doc: serde_json::Value = serde_json::from_slice(payload).expect("generated JSON");
    (
        doc["metricset"]["name"]
            .as_str()
            .expect("metricset.name")
            .to_owned(),
        doc["@timestamp"].as_str().expect("@timestamp").to_owned(),
    )
}

impl EcsBench {
    fn new() -> Self {
        let settings = Settings::load_with_env(Some(std::path::Path::new(ECS_CONFIG)), [])
            .expect("scenario configuration");
        // Two hours: the batch starts at the second, when JupyterHub's user server runs and
        // the restarting pods have just been replaced.
        let input = scenario::generate(ECS_SCENARIO, BASE, 2, ECS_PERIOD_S, 1).expect("scenario");
        let mut inputs = Vec::new();
        let mut timed: Vec<(String, usize, Vec<u8>)> = Vec::new();
        for (topic, docs) in &input.documents {
            assert!(settings.elastic.topics.contains(topic), "{topic} is read");
            let cluster_id = match topic.as_str() {
                "elastic.metrics.kubernetes" => "gke-hybrid",
                "metricbeat.onprem.kubernetes" => "onprem-dc1",
                other => panic!("unexpected topic {other}"),
            };
            let index = inputs.len();
            inputs.push(EcsInput {
                topic: topic.clone(),
                normaliser: EcsNormaliser::new(settings.elastic.ecs_settings(topic))
                    .expect("ECS settings"),
                cluster_id,
            });
            for doc in docs {
                let (_, time) = ecs_metricset_and_time(doc.as_bytes());
                timed.push((time, index, doc.clone().into_bytes()));
            }
        }
        // Stable: each topic's own order is kept within a sample time.
        timed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut times: Vec<&str> = timed.iter().map(|(t, _, _)| t.as_str()).collect();
        times.dedup();
        let first = times.len() / 2; // the first sample time of the second hour
        let (before, batch) = (times[first - 1].to_owned(), times[first].to_owned());
        let last = times[first + ECS_TICKS - 1].to_owned();
        let previous_pods = timed
            .iter()
            .filter(|(t, _, doc)| *t == before && ecs_metricset_and_time(doc).0 == "pod")
            .map(|(_, i, doc)| (*i, doc.clone()))
            .collect();
        let documents: Vec<(usize, Vec<u8>)> = timed
            .into_iter()
            .filter(|(t, _, _)| *t >= batch && *t <= last)
            .map(|(_, i, doc)| (i, doc))
            .collect();
        Self {
            inputs,
            documents,
            previous_pods,
        }
    }

    /// Network counters per input holding every pod's reading from the previous sample time.
    fn primed_counters(&self) -> Vec<NetworkCounters> {
        let mut counters: Vec<NetworkCounters> = self
            .inputs
            .iter()
            .map(|_| NetworkCounters::default())
            .collect();
        for (i, doc) in &self.previous_pods {
            match self.inputs[*i].normaliser.normalise(doc) {
                Ok(EcsOutcome::PodNetwork(sample)) => {
                    let first = counters[*i].delta(0, sample, ECS_CLOCK);
                    assert_eq!(first, Ok(None), "first reading");
                }
                other => panic!("a pod document gave {other:?}"),
            }
        }
        counters
    }

    /// One pass over the batch, checking every outcome against the document's metricset and
    /// topic; panics on anything else. Not timed.
    fn checked_pass(&self) -> EcsTally {
        let mut counters = self.primed_counters();
        let mut tally = EcsTally::default();
        for (i, doc) in &self.documents {
            let input = &self.inputs[*i];
            let (metricset, _) = ecs_metricset_and_time(doc);
            let context = || {
                format!(
                    "{} {metricset}: {}",
                    input.topic,
                    String::from_utf8_lossy(doc)
                )
            };
            let event = match input.normaliser.normalise(doc) {
                Ok(EcsOutcome::Usage(event)) => {
                    let kinds: Vec<(&str, MeasurementKind)> = event
                        .measurements
                        .iter()
                        .map(|m| (m.resource.as_str(), m.kind))
                        .collect();
                    let expected: &[(&str, MeasurementKind)] = match metricset.as_str() {
                        "container" => &[
                            ("cpu", MeasurementKind::Usage),
                            ("memory", MeasurementKind::Usage),
                        ],
                        "state_container" => &[
                            ("cpu", MeasurementKind::Request),
                            ("cpu", MeasurementKind::Limit),
                            ("memory", MeasurementKind::Request),
                            ("memory", MeasurementKind::Limit),
                        ],
                        "state_node" => &[
                            ("cpu", MeasurementKind::Capacity),
                            ("memory", MeasurementKind::Capacity),
                        ],
                        "state_persistentvolumeclaim" => &[("storage", MeasurementKind::Request)],
                        _ => panic!("{}: an event", context()),
                    };
                    assert_eq!(kinds, expected, "{}", context());
                    assert_eq!(
                        event.subject.namespace.is_none(),
                        metricset == "state_node",
                        "{}",
                        context()
                    );
                    tally.events += 1;
                    event
                }
                Ok(EcsOutcome::PodNetwork(sample)) => {
                    assert_eq!(metricset, "pod", "{}", context());
                    match counters[*i]
                        .delta(0, sample, ECS_CLOCK)
                        .expect("a valid reading")
                    {
                        Some(event) => {
                            assert_eq!(event.measurements.len(), 2, "{}", context());
                            assert!(event.start < event.end, "{}", context());
                            tally.network_events += 1;
                            event
                        }
                        None => {
                            tally.network_baselines += 1;
                            continue;
                        }
                    }
                }
                other => panic!("{} gave {other:?}", context()),
            };
            assert_eq!(event.subject.cluster_id, input.cluster_id, "{}", context());
            assert_eq!(event.id.len(), 32, "{}", context());
            assert!(event.end - event.start <= i64::from(ECS_PERIOD_S) * 1000);
        }
        tally
    }
}

/// `usage-tracker elastic`'s work per document, without Kafka and metrics: normalise, check an
/// event against the standard's limits, and pass a pod's network reading through the input's
/// counters. The events are dropped (included).
fn ecs_pass(bench: &EcsBench, counters: &mut [NetworkCounters]) {
    for (i, doc) in &bench.documents {
        match bench.inputs[*i].normaliser.normalise(black_box(doc)) {
            Ok(EcsOutcome::PodNetwork(sample)) => {
                drop(black_box(counters[*i].delta(0, sample, ECS_CLOCK)))
            }
            Ok(EcsOutcome::Usage(event)) => {
                drop(black_box(check_event(&event, ECS_CLOCK)));
                drop(black_box(event))
            }
            outcome => drop(black_box(outcome)),
        }
    }
}

/// Builds the ECS data set and checks what one pass produces, before anything is timed.
fn ecs_bench() -> EcsBench {
    let bench = EcsBench::new();
    let tally = bench.checked_pass();
    let pods = bench
        .documents
        .iter()
        .filter(|(_, d)| ecs_metricset_and_time(d).0 == "pod")
        .count();
    assert_eq!(
        tally.events + tally.network_events + tally.network_baselines,
        bench.documents.len()
    );
    assert_eq!(tally.network_events + tally.network_baselines, pods);
    assert!(
        tally.network_baselines * 50 < pods,
        "network counters in steady state: {tally:?}"
    );
    assert_eq!(tally, bench.checked_pass(), "deterministic");
    let bytes: usize = bench.documents.iter().map(|(_, d)| d.len()).sum();
    let per_topic: Vec<String> = bench
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let n = bench.documents.iter().filter(|(j, _)| *j == i).count();
            format!("{} {n}", input.topic)
        })
        .collect();
    println!(
        "ecs data set: {} documents of {ECS_SCENARIO} ({}), {:.0} bytes/document on average; \
         {} events, {} network events, {} first pod readings",
        bench.documents.len(),
        per_topic.join(", "),
        bytes as f64 / bench.documents.len() as f64,
        tally.events,
        tally.network_events,
        tally.network_baselines,
    );
    bench
}

fn bench_ecs(c: &mut Criterion, bench: &EcsBench) {
    let mut group = c.benchmark_group("ecs");
    group.throughput(Throughput::Elements(bench.documents.len() as u64));
    group.bench_function("normalise", |b| {
        b.iter_batched(
            || bench.primed_counters(),
            |mut counters| {
                ecs_pass(bench, &mut counters);
                counters
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

#[inline(never)]
fn once_ecs_normalise(
    bench: &EcsBench,
    mut counters: Vec<NetworkCounters>,
) -> Vec<NetworkCounters> {
    ecs_pass(bench, &mut counters);
    counters
}

/// A node's allocatable capacity over one sample period (a cluster-scoped event).
fn capacity_sample(cluster: &str, node: usize, end: EpochMillis) -> Sample {
    let p = PERIOD_MS as f64 / 1000.0;
    let event = UsageEvent {
        specversion: SPEC_VERSION.into(),
        id: format!("node/{node}/{end}"),
        source: format!("//elastic-agent/{cluster}"),
        event_type: USAGE_EVENT_TYPE.into(),
        time: end,
        start: end - PERIOD_MS,
        end,
        subject: WorkloadSubject {
            cluster_id: cluster.into(),
            cluster_name: Some(format!("{cluster} (production)")),
            namespace: None,
            node_name: Some(format!("{cluster}-pool-1-node-{node}")),
            workload_kind: Some("Node".into()),
            ..Default::default()
        },
        measurements: vec![
            // A whole hour of a 32-core, 128 GiB node in one sample: allocation only sees the
            // window's sum, so one capacity event per node and window is enough.
            measurement(
                "cpu",
                MeasurementKind::Capacity,
                32.0 * 360.0 * p,
                "core_seconds",
            ),
            measurement(
                "memory",
                MeasurementKind::Capacity,
                128.0 * GIB * 360.0 * p,
                "byte_seconds",
            ),
        ],
    };
    accept(&event)
}

fn bill_line(cluster: &str, name: &str, category: CostCategory, amount: i64) -> CostLine {
    CostLine {
        source: "//billing/gcp-export".into(),
        id: format!("{cluster}/{name}/{BASE}"),
        revision: 1,
        cluster_id: cluster.into(),
        namespace: (category == CostCategory::Storage).then(|| namespace_name(10)),
        category,
        status: CostStatus::Final,
        currency: "EUR".into(),
        start: BASE,
        end: BASE + WINDOWS as i64 * HOUR_MS,
        amount,
        meter: None,
    }
}

/// Store and ledger of 3 clusters x 50 namespaces x 24 windows with node capacity and 4 bill
/// lines per cluster (compute, memory, a namespace-tagged storage line, a license line split by
/// policy weights), every window changed since the last checkpoint.
fn checkpoint_state() -> (WindowStore, CostLedger) {
    let config = WindowConfig::default();
    let mut accountant = Accountant::new(
        WindowStore::new(config),
        CostLedger::new(config.spec),
        CostAllocator::new(AllocationPolicy::default()),
        None,
    );
    for j in 0..CLUSTERS.len() * NAMESPACES * WINDOWS {
        let mut event = pod_event(j);
        // Every key gets usage, requests and limits.
        event.measurements = pod_event(3).measurements;
        accountant.usage(&accept(&event));
    }
    for (c, cluster) in CLUSTERS.iter().enumerate() {
        for w in 0..WINDOWS as i64 {
            for node in 0..3 {
                let end = BASE + w * HOUR_MS + PERIOD_MS * (1 + node as i64 + c as i64);
                accountant.usage(&capacity_sample(cluster, node, end));
            }
        }
        for (name, category, amount) in [
            ("compute", CostCategory::Compute, 2_231_000_000),
            ("memory", CostCategory::Memory, 1_180_000_000),
            ("bucket", CostCategory::Storage, 54_321_000),
            ("license", CostCategory::License, 480_000_000),
        ] {
            accountant.cost(bill_line(cluster, name, category, amount));
        }
    }
    let store = accountant.store().clone();
    let ledger = accountant.ledger_mut().clone();
    (store, ledger)
}

fn accountant(store: &WindowStore, ledger: &CostLedger) -> Accountant {
    Accountant::new(
        store.clone(),
        ledger.clone(),
        CostAllocator::new(AllocationPolicy::default()),
        None,
    )
}

fn bench_checkpoint(c: &mut Criterion) {
    let (all_store, all_ledger) = checkpoint_state();

    // After a first checkpoint, one new sample per (cluster, namespace) in the current
    // (last) window: the common case of a checkpoint every few seconds.
    let mut first = accountant(&all_store, &all_ledger);
    let all_records = first.take_checkpoint().records.len();
    for j in 0..CLUSTERS.len() * NAMESPACES {
        let mut event = pod_event(j + CLUSTERS.len() * NAMESPACES * (WINDOWS - 1));
        event.id.push_str("/next");
        first.usage(&accept(&event));
    }
    let hour_store = first.store().clone();
    let hour_ledger = first.ledger_mut().clone();
    let hour_records = accountant(&hour_store, &hour_ledger)
        .take_checkpoint()
        .records
        .len();
    println!(
        "checkpoint data set: {} cluster windows, {} open keys; {all_records} records when every \
         window changed, {hour_records} when only the current hour changed",
        all_store.cluster_windows().len(),
        all_store.open_keys(),
    );

    let mut group = c.benchmark_group("checkpoint");
    for (name, store, ledger, records) in [
        ("all_windows_changed", &all_store, &all_ledger, all_records),
        (
            "current_hour_changed",
            &hour_store,
            &hour_ledger,
            hour_records,
        ),
    ] {
        group.throughput(Throughput::Elements(records as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || accountant(store, ledger),
                |mut accountant| {
                    let checkpoint = accountant.take_checkpoint();
                    (accountant, checkpoint)
                },
                BatchSize::PerIteration,
            )
        });
    }
    // Parts of take_checkpoint that are public on their own, to see where the time goes.
    group.throughput(Throughput::Elements(all_records as u64));
    group.bench_function("all_windows_changed/export_changed_only", |b| {
        b.iter(|| black_box(all_store.export_changed()))
    });
    group.bench_function("all_windows_changed/changed_views_only", |b| {
        b.iter(|| black_box(all_store.changed().len()))
    });
    group.finish();
}

/// Resident set size of this process, in bytes.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A sample with cpu usage, cpu request and memory usage for one key.
fn key_sample(cluster: &Arc<str>, namespace: &str, window: usize, n: u64) -> Sample {
    let end = BASE + window as i64 * HOUR_MS + PERIOD_MS * (1 + (n % 359) as i64);
    let q = |v: f64| Quantity::from_units(v).unwrap();
    Sample {
        dedup_key: ingest::dedup_key("//state-size", &n.to_string()),
        cluster_id: cluster.clone(),
        cluster_name: None,
        namespace: Some(Arc::from(namespace)),
        start: end - PERIOD_MS,
        end,
        quantities: vec![
            (Resource::Cpu, MeasurementKind::Usage, q(1.5)),
            (Resource::Cpu, MeasurementKind::Request, q(5.0)),
            (Resource::Memory, MeasurementKind::Usage, q(1e10)),
        ],
        groups: Vec::new(),
        meters: Vec::new(),
        shared: false,
    }
}

/// Prints the window state held per open key and per deduplicated event, from the resident set.
fn report_state_size() {
    const CLUSTERS_N: usize = 3;
    const NAMESPACES_N: usize = 1_389;
    const KEYS: usize = CLUSTERS_N * NAMESPACES_N * WINDOWS; // 100 008
    const EXTRA_EVENTS: u64 = 1_000_000;
    const CHECKPOINT_EVERY: u64 = 10_000;

    let clusters: Vec<Arc<str>> = (0..CLUSTERS_N)
        .map(|c| Arc::from(format!("cluster-{c}").as_str()))
        .collect();
    let names: Vec<String> = (0..NAMESPACES_N)
        .map(|n| format!("project-{n:05}"))
        .collect();
    let mut store = WindowStore::new(WindowConfig::default());
    let key_of = |k: usize| {
        (
            k % CLUSTERS_N,
            (k / CLUSTERS_N) % NAMESPACES_N,
            k / (CLUSTERS_N * NAMESPACES_N),
        )
    };

    let before = rss_bytes();
    for k in 0..KEYS {
        let (c, n, w) = key_of(k);
        store.apply(&key_sample(&clusters[c], &names[n], w, k as u64));
        if (k as u64 + 1).is_multiple_of(CHECKPOINT_EVERY) {
            drop(store.take_unsaved_seen());
        }
    }
    drop(store.take_unsaved_seen());
    let with_keys = rss_bytes();
    assert_eq!(store.open_keys(), KEYS);

    for e in 0..EXTRA_EVENTS {
        let (c, n, w) = key_of((e as usize * 7919) % KEYS);
        store.apply(&key_sample(&clusters[c], &names[n], w, KEYS as u64 + e));
        if (e + 1) % CHECKPOINT_EVERY == 0 {
            drop(store.take_unsaved_seen());
        }
    }
    drop(store.take_unsaved_seen());
    let with_events = rss_bytes();
    assert_eq!(store.open_keys(), KEYS);
    black_box(&store);

    let per_key = (with_keys - before) as f64 / KEYS as f64;
    let per_event = (with_events - with_keys) as f64 / EXTRA_EVENTS as f64;
    let totals = std::mem::size_of::<ResourceTotals>();
    // NamespaceWindow is pub(crate): ResourceTotals plus revision, content digest and cost of
    // the last revision (3 x 8 B), 16-byte aligned (i128 inside). Kept by hand: check
    // src/window/store.rs when it changes. The resident-set figure below is the authority.
    let namespace_window = (totals + 3 * 8).next_multiple_of(16);
    let bucket = std::mem::size_of::<Arc<str>>() + namespace_window;
    println!("state size (resident set, {KEYS} keys over {CLUSTERS_N} clusters x {NAMESPACES_N} namespaces x {WINDOWS} windows):");
    println!(
        "  size_of ResourceTotals = {totals} B; NamespaceWindow = {namespace_window} B; \
         HashMap bucket (Arc<str>, NamespaceWindow) = {bucket} B + 1 control byte, \
         load factor 44-87 %"
    );
    println!(
        "  measured: {per_key:.0} B per open key (its window totals, namespace name and first \
         event's dedup key); target < 1024 B"
    );
    println!(
        "  measured: {per_event:.1} B per further deduplicated event ({EXTRA_EVENTS} events, \
         dedup keys held until the window expires)"
    );
}

fn main() {
    if let Ok(stage) = std::env::var("CORE_BENCH_ONCE") {
        run_once(&stage);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    // Only under `cargo bench`, not in `cargo test --benches` nor when profiling one benchmark.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time") {
        report_state_size();
    }
    let hot = HotPath::new();
    bench_hot_path(&mut c, &hot);
    bench_ecs(&mut c, &ecs_bench());
    bench_checkpoint(&mut c);
    c.final_summary();
}
