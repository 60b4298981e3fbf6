//! Hostile and careless input end to end (real broker, registry stand-in, Postgres): a corpus of
//! malformed messages on both input topics, each followed by valid ones. The tracker finishes,
//! every valid event is accounted exactly once (figures computed here, independently), and every
//! bad message is in the dead-letter topic with its reason, counted per reason.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::message::Headers;
use rdkafka::Message;
use sqlx::Row;
use usage_tracker::allocate::AllocationPolicy;
use usage_tracker::ingest::Exclusions;
use usage_tracker::kafka::TopicSpec;
use usage_tracker::pipeline::{self, PipelineConfig, RunSummary, Topics};
use usage_tracker::standard::wire::RecordEncoder;
use usage_tracker::standard::{CostCategory, CostEvent, Measurement, MeasurementKind, UsageEvent};
use usage_tracker::window::WindowConfig;

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;
const MIB: usize = 1 << 20;
/// Valid usage events that follow each bad one: 1 core-second of namespace `a` each.
const NEIGHBOURS: usize = 2;
const FLOOD: usize = 300;

/// One message of the corpus: its key (unique, to find it in the dead-letter topic), its
/// payload, and the reason it must be dead-lettered with (`None`: valid, but not accounted).
struct Case {
    key: String,
    payload: Option<Vec<u8>>,
    reason: Option<&'static str>,
}

/// A row's cpu used, cpu allocated, cost total in micros and currency.
type Figures = (f64, f64, i64, Option<String>);

fn now_ms() -> i64 {
    usage_tracker::time::now_ms()
}

/// A valid cpu usage sample of namespace `a` in cluster `c1`.
fn sample(id: &str, start: i64, core_seconds: f64) -> UsageEvent {
    common::usage(
        id,
        "c1",
        Some("a"),
        start,
        start + 1_000,
        &[(MeasurementKind::Usage, core_seconds)],
    )
}

/// The bad usage events, built from a valid one by one change each, with their reason.
fn bad_usage_events(w: i64, now: i64) -> Vec<(&'static str, UsageEvent, &'static str)> {
    let base = || sample("bad", w + 5_000, 1.0);
    let with = |change: &dyn Fn(&mut UsageEvent)| {
        let mut e = base();
        change(&mut e);
        e
    };
    let unit = |resource: &str, unit: &str, quantity: f64| Measurement {
        resource: resource.into(),
        kind: MeasurementKind::Usage,
        quantity,
        unit: unit.into(),
    };
    vec![
        (
            "nul-namespace",
            with(&|e| e.subject.namespace = Some("a\0b".into())),
            "invalid_string",
        ),
        (
            "nul-cluster",
            with(&|e| e.subject.cluster_id = "c1\0".into()),
            "invalid_string",
        ),
        (
            "escape-in-pod",
            with(&|e| e.subject.pod_name = Some("\u{1b}[2Jpod".into())),
            "invalid_string",
        ),
        (
            "newline-in-label",
            with(&|e| {
                e.subject.labels.insert("team".into(), "x\ny".into());
            }),
            "invalid_string",
        ),
        (
            "c1-control-in-source",
            with(&|e| e.source = "//agent\u{85}".into()),
            "invalid_string",
        ),
        (
            "mib-namespace",
            with(&|e| e.subject.namespace = Some("n".repeat(MIB))),
            "invalid_string",
        ),
        (
            "mib-id",
            with(&|e| e.id = "i".repeat(MIB)),
            "invalid_string",
        ),
        (
            "long-label-key",
            with(&|e| {
                e.subject.labels.insert("k".repeat(400), "v".into());
            }),
            "invalid_string",
        ),
        (
            "too-many-labels",
            with(&|e| {
                e.subject.labels = (0..200).map(|i| (format!("l{i}"), "v".into())).collect();
            }),
            "out_of_range",
        ),
        (
            "quantity-1e300",
            with(&|e| e.measurements[0].quantity = 1e300),
            "out_of_range",
        ),
        (
            "quantity-f64-max",
            with(&|e| e.measurements[0].quantity = f64::MAX),
            "out_of_range",
        ),
        (
            "quantity-nan",
            with(&|e| e.measurements[0].quantity = f64::NAN),
            "invalid_event",
        ),
        (
            "quantity-negative",
            with(&|e| e.measurements[0].quantity = -1.0),
            "invalid_event",
        ),
        (
            "quantity-infinite",
            with(&|e| e.measurements[0].quantity = f64::INFINITY),
            "invalid_event",
        ),
        (
            "epoch-zero",
            with(&|e| {
                e.start = 0;
                e.end = 1_000;
            }),
            "out_of_range",
        ),
        (
            "year-40000",
            with(&|e| {
                e.start = 40_000 * 365 * DAY;
                e.end = e.start + 1_000;
            }),
            "out_of_range",
        ),
        (
            "an-hour-ahead",
            with(&|e| {
                e.start = now + H;
                e.end = now + H + 1_000;
            }),
            "future_timestamp",
        ),
        (
            "two-day-interval",
            with(&|e| e.start = e.end - 2 * DAY),
            "out_of_range",
        ),
        (
            "end-before-start",
            with(&|e| e.end = e.start - 1),
            "invalid_event",
        ),
        ("empty-id", with(&|e| e.id.clear()), "invalid_event"),
        (
            "no-namespace",
            with(&|e| e.subject.namespace = None),
            "no_namespace",
        ),
        (
            "wrong-unit",
            with(&|e| e.measurements[0].unit = "millicores".into()),
            "invalid_event",
        ),
        (
            "too-many-measurements",
            with(&|e| e.measurements = vec![unit("cpu", "core_seconds", 0.0); 65]),
            "out_of_range",
        ),
    ]
}

fn bad_cost_events(w: i64, now: i64) -> Vec<(&'static str, CostEvent, &'static str)> {
    let base = || {
        common::cost(
            "bad",
            "gcp",
            "c1",
            None,
            (w, w + H),
            1_000_000,
            CostCategory::Compute,
        )
    };
    let with = |change: &dyn Fn(&mut CostEvent)| {
        let mut e = base();
        change(&mut e);
        e
    };
    vec![
        (
            "cost-nul-source",
            with(&|e| e.source = "//bill\0".into()),
            "invalid_string",
        ),
        (
            "cost-nul-sku",
            with(&|e| e.sku_id = Some("sku\0".into())),
            "invalid_string",
        ),
        (
            "cost-mib-account",
            with(&|e| e.billing_account_id = "a".repeat(MIB)),
            "invalid_string",
        ),
        (
            // The bill that once made the tracker allocate one piece per window until killed.
            "cost-year-40000",
            with(&|e| e.charge_period_end = 40_000 * 365 * DAY),
            "out_of_range",
        ),
        (
            "cost-60-days",
            with(&|e| e.charge_period_start = e.charge_period_end - 60 * DAY),
            "out_of_range",
        ),
        (
            "cost-next-year",
            with(&|e| {
                e.charge_period_start = now + 365 * DAY;
                e.charge_period_end = e.charge_period_start + H;
            }),
            "future_timestamp",
        ),
        (
            "cost-i64-max",
            with(&|e| e.effective_cost_micros = i64::MAX),
            "out_of_range",
        ),
        (
            "cost-lowercase-currency",
            with(&|e| e.billing_currency = "eur".into()),
            "invalid_event",
        ),
        (
            "cost-empty-period",
            with(&|e| e.charge_period_end = e.charge_period_start),
            "invalid_event",
        ),
        (
            "cost-usd-in-a-eur-window",
            with(&|e| {
                e.id = "usd".into();
                e.billing_currency = "USD".into();
            }),
            "currency_mismatch",
        ),
        (
            "cost-past-retention",
            with(&|e| {
                e.id = "old".into();
                e.charge_period_start = w - 30 * DAY;
                e.charge_period_end = w - 30 * DAY + H;
            }),
            "too_late",
        ),
    ]
}

/// The usage topic's corpus, in publishing order, and the valid events' total core-seconds.
async fn usage_corpus(
    w: i64,
    now: i64,
    usage: &RecordEncoder<UsageEvent>,
    cost: &RecordEncoder<CostEvent>,
) -> (Vec<Case>, f64) {
    // The registry assigns the schema id on the first encoding; later ones are cached.
    let good = usage.encode(&sample("template", w, 1.0)).await.unwrap();
    let schema_id = good[1..5].to_vec();
    let mut bad: Vec<(String, Option<Vec<u8>>, &'static str)> = Vec::new();
    for (key, event, reason) in bad_usage_events(w, now) {
        bad.push((
            key.into(),
            Some(usage.encode(&event).await.unwrap()),
            reason,
        ));
    }
    // Broken framing and bodies.
    let mut utf8 = sample("bad-utf8", w, 1.0);
    utf8.subject.namespace = Some("zzzz".into());
    let mut invalid_utf8 = usage.encode(&utf8).await.unwrap();
    let at = invalid_utf8
        .windows(4)
        .position(|w| w == b"zzzz")
        .expect("the namespace is in the body");
    invalid_utf8[at..at + 4].copy_from_slice(&[0xff, 0xfe, 0xfd, 0xfc]);
    let framed = |body: &[u8]| [&[0u8][..], &schema_id, body].concat();
    let cost_record = cost
        .encode(&common::cost(
            "x",
            "gcp",
            "c1",
            None,
            (w, w + H),
            1,
            CostCategory::Compute,
        ))
        .await
        .unwrap();
    let framing: Vec<(&str, Option<Vec<u8>>, &str)> = vec![
        (
            "wrong-magic-byte",
            Some([&[1u8][..], &good[1..]].concat()),
            "not_avro",
        ),
        ("null-payload", None, "not_avro"),
        ("three-bytes", Some(vec![0, 0, 0]), "not_avro"),
        (
            "json-document",
            Some(br#"{"kubernetes":{"namespace":"a"}}"#.to_vec()),
            "not_avro",
        ),
        (
            "truncated-body",
            Some(good[..good.len() / 2].to_vec()),
            "incompatible_schema",
        ),
        (
            "unknown-schema-id",
            Some([&[0u8, 0x7f, 0xff, 0xff, 0xff][..], &good[5..]].concat()),
            "unknown_schema",
        ),
        (
            "another-records-schema-id",
            Some(cost_record),
            "incompatible_schema",
        ),
        ("invalid-utf8", Some(invalid_utf8), "incompatible_schema"),
        (
            "endless-varint",
            Some(framed(&[0xff; 20])),
            "incompatible_schema",
        ),
        (
            "huge-string-length",
            Some(framed(&[0x02, 0xfe, 0xff, 0xff, 0xff, 0x0f])),
            "incompatible_schema",
        ),
    ];
    bad.extend(framing.into_iter().map(|(k, p, r)| (k.to_string(), p, r)));
    // Each bad message is followed by valid neighbours.
    let mut cases = Vec::new();
    let mut valid = 0usize;
    for (key, payload, reason) in bad {
        cases.push(Case {
            key,
            payload,
            reason: Some(reason),
        });
        push_neighbours(&mut cases, &mut valid, w, usage).await;
    }
    // Valid but not accounted: only a resource outside the standard's names and the x-
    // extension form (reserved; skipped). Counted, not dead-lettered.
    let mut extension = sample("extension-only", w, 1.0);
    extension.measurements[0].resource = "acme_licenses".into();
    extension.measurements[0].unit = "licenses".into();
    cases.push(Case {
        key: "extension-only".into(),
        payload: Some(usage.encode(&extension).await.unwrap()),
        reason: None,
    });
    // Any meter: one in seconds is accounted; the same meter in hours in that cluster window is
    // refused whole (invalid_event), and so is an event that would bring a 65th meter
    // (out_of_range). Each is followed by valid neighbours.
    let meter = |id: &str, names: &[String], unit: &str| {
        let mut e = sample(id, w + 7_000, 1.0);
        e.measurements = names
            .iter()
            .map(|name| Measurement {
                resource: name.clone(),
                kind: MeasurementKind::Usage,
                quantity: 1.0,
                unit: unit.into(),
            })
            .collect();
        e
    };
    let queries = vec!["x-acme-queries".to_owned()];
    let many: Vec<String> = (0..64).map(|i| format!("x-acme-meter{i}")).collect();
    for (key, event, reason) in [
        (
            "meter-seconds",
            meter("meter-seconds", &queries, "seconds"),
            None,
        ),
        (
            "meter-hours",
            meter("meter-hours", &queries, "hours"),
            Some("invalid_event"),
        ),
        (
            "meter-65th",
            meter("meter-65th", &many, "units"),
            Some("out_of_range"),
        ),
    ] {
        cases.push(Case {
            key: key.into(),
            payload: Some(usage.encode(&event).await.unwrap()),
            reason,
        });
        push_neighbours(&mut cases, &mut valid, w, usage).await;
    }
    // A duplicate flood: one event, many times; counted once.
    let flood = usage
        .encode(&sample("flooded", w + 999_000, 1.0))
        .await
        .unwrap();
    for i in 0..FLOOD {
        cases.push(Case {
            key: format!("flood-{i}"),
            payload: Some(flood.clone()),
            reason: None,
        });
    }
    push_neighbours(&mut cases, &mut valid, w, usage).await;
    // Capacity of the cluster: 4 cores for the hour.
    let capacity = common::usage(
        "node-1",
        "c1",
        None,
        w,
        w + H,
        &[(MeasurementKind::Capacity, 4.0 * 3600.0)],
    );
    cases.push(Case {
        key: "capacity".into(),
        payload: Some(usage.encode(&capacity).await.unwrap()),
        reason: None,
    });
    (cases, valid as f64 + 1.0)
}

/// Appends [`NEIGHBOURS`] valid samples of namespace `a`, numbered on from `valid`.
async fn push_neighbours(
    cases: &mut Vec<Case>,
    valid: &mut usize,
    w: i64,
    usage: &RecordEncoder<UsageEvent>,
) {
    for _ in 0..NEIGHBOURS {
        let e = sample(&format!("ok-{valid}"), w + (*valid as i64) * 1_000, 1.0);
        cases.push(Case {
            key: format!("ok-{valid}"),
            payload: Some(usage.encode(&e).await.unwrap()),
            reason: None,
        });
        *valid += 1;
    }
}

async fn publish(kafka: &usage_tracker::kafka::KafkaConnection, topic: &str, cases: &[Case]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    // A careless producer may send up to what its broker allows; ours allows 3 MB.
    let producer: FutureProducer = kafka
        .producer_config()
        .set("linger.ms", "20")
        .set("message.max.bytes", "3000000")
        .create()
        .unwrap();
    let sends = cases.iter().map(|case| {
        let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(&case.key);
        if let Some(payload) = &case.payload {
            record = record.payload(payload.as_slice());
        }
        producer.send(record, Duration::from_secs(30))
    });
    for result in futures::future::join_all(sends).await {
        result.map_err(|(e, _)| e).unwrap();
    }
}

/// Dead letters by key: (reason, error detail, original payload).
async fn dead_letters(
    kafka: &usage_tracker::kafka::KafkaConnection,
    topic: &str,
    count: usize,
) -> BTreeMap<String, (String, String, Option<Vec<u8>>)> {
    let consumer = common::consumer(kafka, topic).await;
    let mut letters = BTreeMap::new();
    while letters.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} dead letters", letters.len()))
            .unwrap();
        let header = |name: &str| {
            let headers = message.headers().expect("dead letters have headers");
            let value = headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .unwrap_or_else(|| panic!("no {name} header"));
            String::from_utf8(value.to_vec()).unwrap()
        };
        let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
        letters.insert(
            key,
            (
                header("dlq.reason"),
                header("dlq.error"),
                message.payload().map(<[u8]>::to_vec),
            ),
        );
    }
    letters
}

fn reasons(cases: &[Case]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for reason in cases.iter().filter_map(|c| c.reason) {
        *counts.entry(reason.to_string()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_are_dead_lettered_and_their_neighbours_accounted_exactly_once() {
    let registry = common::registry().await;
    let endpoint = common::endpoint(&registry);
    let kafka = common::kafka();
    // One partition per topic: keys are free to name the cases.
    let topics = Topics {
        usage_events: common::unique("bad-usage"),
        cost_events: common::unique("bad-cost"),
        usage_records: common::unique("bad-records"),
        dead_letters: common::unique("bad-dlq"),
        partitions: 1,
        replication: 1,
    };
    kafka
        .ensure_topics(&[
            TopicSpec::new(&topics.usage_events, 1, 1),
            TopicSpec::new(&topics.cost_events, 1, 1),
        ])
        .await
        .unwrap();
    let now = now_ms();
    let w = (now - 3 * H).div_euclid(H) * H;
    let usage_encoder =
        RecordEncoder::<UsageEvent>::new(endpoint.sr_settings().unwrap(), &topics.usage_events);
    let cost_encoder =
        RecordEncoder::<CostEvent>::new(endpoint.sr_settings().unwrap(), &topics.cost_events);

    let (usage_cases, a_core_seconds) = usage_corpus(w, now, &usage_encoder, &cost_encoder).await;
    publish(&kafka, &topics.usage_events, &usage_cases).await;

    let database_url = common::fresh_database().await;
    let config = PipelineConfig {
        kafka: kafka.clone(),
        group_id: common::unique("bad-group"),
        registry: endpoint.clone(),
        database_url: database_url.clone(),
        topics: topics.clone(),
        window: WindowConfig::default(),
        policy: AllocationPolicy::default(),
        rate_card: None,
        exclusions: Exclusions::default(),
        aggregation: Default::default(),
        cost_scopes: vec![],
        checkpoint_interval: Duration::from_millis(500),
        until_caught_up: true,
        http_listen: None,
        shutdown_timeout: Duration::from_secs(30),
    };
    let run = |config: PipelineConfig| async move {
        tokio::time::timeout(
            Duration::from_secs(180),
            pipeline::run(config, std::future::pending()),
        )
        .await
        .expect("the run finishes")
        .expect("the run succeeds")
    };

    // Run 1: usage only, so that the watermark stands before the bills arrive.
    let summary: RunSummary = run(config.clone()).await;
    assert_eq!(summary.dead_letters, reasons(&usage_cases));
    assert_eq!(summary.duplicates, FLOOD as u64 - 1);
    assert_eq!(
        summary.usage_unaccounted, 1,
        "the event of an unknown resource only"
    );

    // Run 2: the bills. A valid EUR bill for c1, the corpus around it, and, in cluster c-big,
    // ten credits at the per-line maximum that together reach the window maximum.
    let mut cost_cases = Vec::new();
    let bill = common::cost(
        "compute",
        "gcp",
        "c1",
        None,
        (w, w + H),
        10_000_000,
        CostCategory::Compute,
    );
    cost_cases.push(Case {
        key: "bill".into(),
        payload: Some(cost_encoder.encode(&bill).await.unwrap()),
        reason: None,
    });
    for (key, event, reason) in bad_cost_events(w, now) {
        cost_cases.push(Case {
            key: key.into(),
            payload: Some(cost_encoder.encode(&event).await.unwrap()),
            reason: Some(reason),
        });
    }
    let credit = |i: usize| {
        common::cost(
            &format!("credit-{i}"),
            "gcp",
            "c-big",
            None,
            (w, w + H),
            -usage_tracker::standard::limits::MAX_AMOUNT_MICROS,
            CostCategory::Compute,
        )
    };
    for i in 0..10 {
        cost_cases.push(Case {
            key: format!("credit-{i}"),
            payload: Some(cost_encoder.encode(&credit(i)).await.unwrap()),
            reason: None,
        });
    }
    cost_cases.push(Case {
        key: "credit-beyond-the-window-maximum".into(),
        payload: Some(cost_encoder.encode(&credit(10)).await.unwrap()),
        reason: Some("out_of_range"),
    });
    cost_cases.push(Case {
        key: "cost-garbage".into(),
        payload: Some(b"garbage".to_vec()),
        reason: Some("not_avro"),
    });
    publish(&kafka, &topics.cost_events, &cost_cases).await;
    let summary = run(config).await;
    assert_eq!(summary.dead_letters, reasons(&cost_cases));

    // Every bad message is in the dead-letter topic, byte for byte, with its reason.
    let expected: BTreeMap<&str, &Case> = usage_cases
        .iter()
        .chain(&cost_cases)
        .filter(|c| c.reason.is_some())
        .map(|c| (c.key.as_str(), c))
        .collect();
    assert!(expected.len() >= 30, "a corpus of {} cases", expected.len());
    let letters = dead_letters(&kafka, &topics.dead_letters, expected.len()).await;
    for (key, case) in &expected {
        let (reason, detail, payload) = letters
            .get(*key)
            .unwrap_or_else(|| panic!("{key} is not in the dead-letter topic"));
        assert_eq!(Some(reason.as_str()), case.reason, "{key}: {detail}");
        assert!(!detail.is_empty(), "{key} says why");
        let original = case.payload.as_ref().map_or(0, Vec::len) + key.len();
        if original <= usage_tracker::sink::kafka::MAX_DEAD_LETTER_BYTES {
            assert_eq!(payload, &case.payload, "{key} keeps its original bytes");
        } else {
            assert_eq!(payload, &None, "{key} is too large to copy");
        }
    }
    assert_eq!(
        letters.len(),
        expected.len(),
        "nothing valid was dead-lettered"
    );

    // The valid neighbours, exactly once: namespace a used one core-second per valid sample,
    // the rest of the 4-core hour is idle, and the 10 EUR bill splits by allocation.
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT cluster_id, namespace, cpu_used_core_seconds, cpu_allocated_core_seconds,
                (cost_total * 1000000)::bigint, currency
         FROM usage_records WHERE window_start = to_timestamp($1 / 1000.0) ORDER BY 1, 2",
    )
    .bind(w as f64)
    .fetch_all(&pool)
    .await
    .unwrap();
    let actual: BTreeMap<(String, String), Figures> = rows
        .iter()
        .map(|r| {
            (
                (r.get(0), r.get(1)),
                (r.get(2), r.get(3), r.get(4), r.get(5)),
            )
        })
        .collect();
    let capacity = 4.0 * 3600.0;
    let shares = common::split(
        10_000_000,
        &[a_core_seconds as i64, (capacity - a_core_seconds) as i64],
    );
    let eur = Some("EUR".to_string());
    let expected_rows = BTreeMap::from([
        (
            ("c-big".to_string(), "__unallocated__".to_string()),
            (
                0.0,
                0.0,
                -10 * usage_tracker::standard::limits::MAX_AMOUNT_MICROS,
                eur.clone(),
            ),
        ),
        (
            ("c1".to_string(), "__idle__".to_string()),
            (0.0, capacity - a_core_seconds, shares[1], eur.clone()),
        ),
        (
            ("c1".to_string(), "a".to_string()),
            (a_core_seconds, a_core_seconds, shares[0], eur.clone()),
        ),
    ]);
    assert_eq!(actual, expected_rows);
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM usage_records WHERE window_start <> to_timestamp($1 / 1000.0)",
    )
    .bind(w as f64)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(others, 0, "no bad message made a window of its own");
}
