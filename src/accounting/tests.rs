use super::*;
use crate::allocate::AllocationPolicy;
use crate::standard::{CostCategory, CostStatus, MeasurementKind, WindowStatus};
use crate::window::WindowConfig;
use proptest::prelude::*;

const H: i64 = 3_600_000;

fn accountant(rate_card: Option<RateCard>) -> Accountant {
    let config = WindowConfig::default();
    Accountant::new(
        WindowStore::new(config),
        CostLedger::new(config.spec),
        CostAllocator::new(AllocationPolicy::default()),
        rate_card,
    )
}

fn sample(
    key: u128,
    namespace: Option<&str>,
    start: i64,
    end: i64,
    q: &[(MeasurementKind, f64)],
) -> Sample {
    Sample {
        dedup_key: key,
        cluster_id: Arc::from("c"),
        cluster_name: None,
        namespace: namespace.map(Arc::from),
        start,
        end,
        quantities: q
            .iter()
            .map(|&(kind, units)| (Resource::Cpu, kind, Quantity::from_units(units).unwrap()))
            .collect(),
        groups: Vec::new(),
        meters: Vec::new(),
        shared: false,
    }
}

fn bill(revision: i64, amount: i64) -> CostLine {
    CostLine {
        source: "//bill".into(),
        id: "compute-w0".into(),
        revision,
        cluster_id: "c".into(),
        namespace: None,
        category: CostCategory::Compute,
        status: CostStatus::Final,
        currency: "EUR".into(),
        start: 0,
        end: H,
        amount,
        meter: None,
    }
}

fn find<'a>(records: &'a [UsageRecord], namespace: &str) -> &'a UsageRecord {
    records
        .iter()
        .find(|r| r.namespace == namespace)
        .unwrap_or_else(|| panic!("no {namespace} in {records:?}"))
}

#[test]
fn platform_and_idle_cost_move_to_projects_and_split_by_user() {
    use MeasurementKind::*;
    let config = WindowConfig::default();
    let policy = AllocationPolicy {
        sharing: crate::allocate::SharingPolicy {
            namespaces: vec![glob::Pattern::new("argo*").unwrap()],
            share_idle: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut books = Accountant::new(
        WindowStore::new(config),
        CostLedger::new(config.spec),
        CostAllocator::new(policy),
        None,
    );
    let user = |mut s: Sample, name: Option<&str>| {
        let value = name.unwrap_or(crate::standard::UNLABELLED);
        s.groups = vec![(Arc::from("label:user"), Arc::from(value))];
        s
    };
    // cpu capacity 10 core-hours; argocd 1, project-a 3 (alice 2, bob 1), project-b 1.
    books.usage(&sample(1, None, 0, H, &[(Capacity, 36_000.0)]));
    books.usage(&user(
        sample(2, Some("argocd"), 0, H, &[(Usage, 3600.0)]),
        None,
    ));
    books.usage(&user(
        sample(3, Some("project-a"), 0, H, &[(Usage, 7200.0)]),
        Some("alice"),
    ));
    books.usage(&user(
        sample(4, Some("project-a"), 0, H, &[(Usage, 3600.0)]),
        Some("bob"),
    ));
    books.usage(&user(
        sample(5, Some("project-b"), 0, H, &[(Usage, 3600.0)]),
        None,
    ));
    assert_eq!(books.cost(bill(1, 1_000_000)), CostAdmission::Applied);
    let records = books.take_checkpoint().records;

    // Own: idle 500 000, argocd 100 000, a 300 000, b 100 000. Shared proportionally to
    // the receivers' own cost, 3:1: argocd -> 75 000 + 25 000, idle -> 375 000 + 125 000.
    let figures = |namespace: &str, value: Option<&str>| {
        let r = records
            .iter()
            .find(|r| r.namespace == namespace && r.group_value.as_deref() == value)
            .unwrap_or_else(|| panic!("no {namespace} {value:?}"));
        (
            r.cost_total_micros,
            r.own_cost_micros,
            r.shared_cost_micros,
            r.idle_cost_micros,
            r.shared,
        )
    };
    assert_eq!(
        figures(IDLE, None),
        (0, Some(500_000), Some(0), Some(0), true)
    );
    assert_eq!(
        figures("argocd", None),
        (0, Some(100_000), Some(0), Some(0), true)
    );
    assert_eq!(
        figures("project-a", None),
        (750_000, Some(300_000), Some(75_000), Some(375_000), false)
    );
    assert_eq!(
        figures("project-b", None),
        (250_000, Some(100_000), Some(25_000), Some(125_000), false)
    );
    // Per user, each entry split by cpu 2:1.
    assert_eq!(
        figures("project-a", Some("alice")),
        (500_000, Some(200_000), Some(50_000), Some(250_000), false)
    );
    assert_eq!(
        figures("project-a", Some("bob")),
        (250_000, Some(100_000), Some(25_000), Some(125_000), false)
    );
    assert_eq!(
        figures("project-b", Some(crate::standard::UNLABELLED)).0,
        250_000
    );
    // A shared namespace's groups keep their part of its own cost, as it does.
    assert_eq!(
        figures("argocd", Some(crate::standard::UNLABELLED)),
        (0, Some(100_000), Some(0), Some(0), true)
    );
    // Every euro once: over namespace records the bill sums exactly.
    let namespaces: Micros = records
        .iter()
        .filter(|r| r.group_by.is_none())
        .map(|r| r.cost_total_micros)
        .sum();
    assert_eq!(namespaces, 1_000_000);
    let moved = find(&records, "project-a")
        .costs
        .iter()
        .map(|c| (c.shared_from.as_deref(), c.allocated_cost_micros))
        .collect::<Vec<_>>();
    assert_eq!(
        moved,
        vec![
            (None, 300_000),
            (Some("argocd"), 75_000),
            (Some(IDLE), 375_000)
        ]
    );
}

#[test]
fn a_workload_shared_wherever_it_runs_moves_its_cost_out_of_its_namespace() {
    use MeasurementKind::*;
    let config = WindowConfig::default();
    let policy = AllocationPolicy {
        sharing: crate::allocate::SharingPolicy {
            labels: vec![crate::allocate::SharedLabel::new(
                "app.kubernetes.io/part-of",
                "ferrisdx-platform",
            )],
            ..Default::default()
        },
        ..Default::default()
    };
    let mut books = Accountant::new(
        WindowStore::new(config),
        CostLedger::new(config.spec),
        CostAllocator::new(policy),
        None,
    );
    // project-a runs 3 cores of its own and a 1-core platform agent; project-b 1 core.
    books.usage(&sample(
        1,
        Some("project-a"),
        0,
        H,
        &[(Usage, 3.0 * 3600.0)],
    ));
    let mut agent = sample(2, Some("project-a"), 0, H, &[(Usage, 3600.0)]);
    agent.shared = true;
    books.usage(&agent);
    books.usage(&sample(3, Some("project-b"), 0, H, &[(Usage, 3600.0)]));
    assert_eq!(books.cost(bill(1, 500_000)), CostAdmission::Applied);
    let records = books.take_checkpoint().records;
    // Own: a 300 000, the agent 100 000, b 100 000. The agent's 100 000 moves 3:1.
    let a = find(&records, "project-a");
    assert_eq!(a.own_cost_micros, Some(400_000));
    assert_eq!(
        (a.cost_total_micros, a.shared_cost_micros),
        (375_000, Some(75_000))
    );
    assert_eq!(
        a.resources[0].used,
        4.0 * 3600.0,
        "the agent's usage stays visible"
    );
    let b = find(&records, "project-b");
    assert_eq!(
        (b.cost_total_micros, b.shared_cost_micros),
        (125_000, Some(25_000))
    );
    assert_eq!(
        b.costs[1].shared_from.as_deref(),
        Some("project-a/shared-workloads")
    );
    assert!(records.iter().all(|r| !r.namespace.contains('/')));
}

#[test]
fn any_meter_is_counted_priced_and_split_by_its_own_usage() {
    use MeasurementKind::*;
    let card = RateCard {
        currency: "EUR".into(),
        cpu_core_hour_micros: 0,
        memory_gib_hour_micros: 0,
        storage_gib_hour_micros: 0,
        gpu_hour_micros: 0,
        meters: BTreeMap::from([(
            "x-ferrisdx-presto_query_seconds".to_owned(),
            pricing::MeterPrice {
                unit: "seconds".into(),
                unit_micros: 20,
            },
        )]),
    };
    let mut books = accountant(Some(card));
    let presto = |key: u128, namespace: &str, user: &str, seconds: f64| {
        let mut s = sample(key, Some(namespace), 0, H, &[]);
        s.quantities.clear();
        s.meters = vec![(
            Arc::from("x-ferrisdx-presto_query_seconds"),
            Arc::from("seconds"),
            Usage,
            Quantity::from_units(seconds).unwrap(),
        )];
        s.groups = vec![(Arc::from("label:user"), Arc::from(user))];
        s
    };
    books.usage(&presto(1, "project-a", "alice", 300.0));
    books.usage(&presto(2, "project-a", "bob", 100.0));
    books.usage(&presto(3, "project-b", "carol", 600.0));
    // Another unit for the same meter in the same cluster window is refused whole.
    let mut minutes = presto(4, "project-b", "carol", 1.0);
    minutes.meters[0].1 = Arc::from("minutes");
    assert_eq!(
        books.usage(&minutes),
        Admission::MeterRefused(crate::window::MeterRefusal::UnitMismatch)
    );
    // 1000 seconds x 20 micros = 20 000, split 400:600.
    let records = books.take_checkpoint().records;
    let find_group = |namespace: &str, user: Option<&str>| {
        records
            .iter()
            .find(|r| r.namespace == namespace && r.group_value.as_deref() == user)
            .unwrap()
    };
    let a = find_group("project-a", None);
    assert_eq!(a.cost_total_micros, 8_000);
    assert_eq!(a.resources[0].resource, "x-ferrisdx-presto_query_seconds");
    assert_eq!(
        (a.resources[0].unit.as_str(), a.resources[0].used),
        ("seconds", 400.0)
    );
    assert_eq!(
        a.costs[0].meter.as_deref(),
        Some("x-ferrisdx-presto_query_seconds")
    );
    assert_eq!(find_group("project-b", None).cost_total_micros, 12_000);
    assert_eq!(
        find_group("project-a", Some("alice")).cost_total_micros,
        6_000
    );
    assert_eq!(
        find_group("project-a", Some("bob")).cost_total_micros,
        2_000
    );

    // A bill line naming the meter replaces the estimate, apportioned the same way.
    let line = CostLine {
        id: "presto-license".into(),
        category: CostCategory::License,
        meter: Some("x-ferrisdx-presto_query_seconds".into()),
        ..bill(1, 1_000_001)
    };
    assert_eq!(books.cost(line), CostAdmission::Applied);
    let records = books.take_checkpoint().records;
    let a = find(&records, "project-a");
    assert_eq!(a.costs.len(), 1);
    assert_eq!(a.costs[0].origin_id, "presto-license");
    // 1 000 001 x 0.4 = 400 000.4, x 0.6 = 600 000.6: the leftover unit to the larger rest.
    assert_eq!(a.cost_total_micros, 400_000);
    assert_eq!(find(&records, "project-b").cost_total_micros, 600_001);
}

#[test]
fn estimates_become_final_revisions_and_corrections_replace() {
    use MeasurementKind::*;
    let card = RateCard {
        currency: "EUR".into(),
        cpu_core_hour_micros: 36_000,
        memory_gib_hour_micros: 0,
        storage_gib_hour_micros: 0,
        gpu_hour_micros: 0,
        meters: BTreeMap::new(),
    };
    let mut books = accountant(Some(card));
    assert_eq!(
        books.usage(&sample(1, None, 0, H, &[(Capacity, 7200.0)])),
        Admission::Applied
    );
    assert_eq!(
        books.usage(&sample(
            2,
            Some("a"),
            0,
            H,
            &[(Usage, 3600.0), (Request, 1800.0)]
        )),
        Admission::Applied
    );
    assert_eq!(
        books.usage(&sample(2, Some("a"), 0, H, &[(Usage, 3600.0)])),
        Admission::Duplicate
    );

    // Rate card: 2 core-hours of capacity at 0.036 EUR, half of it allocated to `a`.
    let first = books.take_checkpoint().records;
    let a = find(&first, "a");
    assert_eq!(
        (a.revision, a.window_status, a.cost_status),
        (1, WindowStatus::Open, RecordCostStatus::Estimated)
    );
    assert_eq!(
        (a.cost_total_micros, find(&first, IDLE).cost_total_micros),
        (36_000, 36_000)
    );
    assert!(
        books.take_checkpoint().records.is_empty(),
        "nothing changed, nothing emitted"
    );

    books.advance_to(H + 1);
    let closed = books.take_checkpoint().records;
    assert_eq!(
        (
            find(&closed, "a").revision,
            find(&closed, "a").window_status
        ),
        (2, WindowStatus::Closed)
    );

    // The real bill replaces the estimate ...
    assert_eq!(books.cost(bill(1, 100_000)), CostAdmission::Applied);
    let billed = books.take_checkpoint().records;
    let a = find(&billed, "a");
    assert_eq!(
        (a.revision, a.cost_status, a.cost_total_micros),
        (3, RecordCostStatus::Final, 50_000)
    );
    assert_eq!(
        a.costs.len(),
        1,
        "no estimate left once the category is billed"
    );

    // ... a correction replaces the bill, a replay changes nothing.
    assert_eq!(books.cost(bill(2, 80_000)), CostAdmission::Applied);
    assert_eq!(
        find(&books.take_checkpoint().records, "a").cost_total_micros,
        40_000
    );
    assert_eq!(books.cost(bill(2, 80_000)), CostAdmission::Unchanged);
    assert!(books.take_checkpoint().records.is_empty());

    // Late usage for the closed window is merged into new revisions of what it changes:
    // `b` takes a quarter of the capacity from idle; `a`'s share is unchanged, so `a` is not
    // emitted again.
    assert_eq!(
        books.usage(&sample(3, Some("b"), 0, H, &[(Usage, 1800.0)])),
        Admission::AppliedLate
    );
    let late = books.take_checkpoint().records;
    assert!(late.iter().all(|r| r.namespace != "a"), "{late:?}");
    assert_eq!(
        (
            find(&late, "b").revision,
            find(&late, "b").cost_total_micros
        ),
        (1, 20_000)
    );
    assert_eq!(
        (
            find(&late, IDLE).revision,
            find(&late, IDLE).cost_total_micros
        ),
        (5, 20_000)
    );

    // Past retention it is too late.
    books.advance_to(H + WindowConfig::default().retention_ms + 1);
    assert_eq!(
        books.usage(&sample(4, Some("b"), 0, H, &[(Usage, 1.0)])),
        Admission::TooLate
    );
    assert_eq!(
        books.cost(bill(3, 1)),
        CostAdmission::TooLate {
            expired: 1,
            windows: 1
        }
    );
}

/// Final figures of every record, without revisions.
fn figures(checkpoints: Vec<Checkpoint>) -> BTreeMap<(String, i64), (String, i64)> {
    let mut latest = BTreeMap::new();
    for checkpoint in checkpoints {
        for record in checkpoint.records {
            let resources = serde_json::to_string(&record.resources).unwrap();
            latest.insert(
                (record.namespace, record.window_start),
                (resources, record.cost_total_micros),
            );
        }
        for record in checkpoint.withdrawn {
            latest.remove(&(record.namespace, record.window_start));
        }
    }
    latest
}

use std::collections::BTreeMap;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The same input in any order, cut into checkpoints anywhere, with resends, gives the
    /// same final records; and every bill is allocated to the micro.
    #[test]
    fn order_batching_and_duplicates_do_not_change_the_result(
        events in prop::collection::vec((0u8..4, 0i64..(3 * H), 1i64..(2 * H), 0u32..5000, 0u32..5000), 1..40),
        bills in prop::collection::vec((0i64..(3 * H), 1i64..(3 * H), -5_000i64..5_000_000), 0..4),
        seed in any::<u64>(),
        cuts in prop::collection::vec(any::<bool>(), 40),
    ) {
        use MeasurementKind::*;
        let samples: Vec<Sample> = events
            .iter()
            .enumerate()
            .map(|(i, &(ns, start, len, used, requested))| {
                let namespace = ["a", "b", "c", "d"][ns as usize];
                sample(i as u128, Some(namespace), start, start + len, &[(Usage, f64::from(used)), (Request, f64::from(requested))])
            })
            .chain([sample(999, None, 0, 4 * H, &[(Capacity, 4.0 * 4.0 * 3600.0)])])
            .collect();
        let lines: Vec<CostLine> = bills
            .iter()
            .enumerate()
            .map(|(i, &(start, len, amount))| CostLine { id: format!("line-{i}"), start, end: start + len, amount, ..bill(1, 0) })
            .collect();

        let run = |order: &[usize], cut: &dyn Fn(usize) -> bool| {
            let mut books = accountant(None);
            let mut checkpoints = Vec::new();
            for (step, &i) in order.iter().enumerate() {
                books.usage(&samples[i]);
                if cut(step) {
                    checkpoints.push(books.take_checkpoint());
                }
            }
            for line in &lines {
                books.cost(line.clone());
            }
            books.advance_to(10 * H);
            checkpoints.push(books.take_checkpoint());
            figures(checkpoints)
        };
        let in_order: Vec<usize> = (0..samples.len()).collect();
        let mut shuffled = in_order.clone();
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        // Every event sent twice.
        let twice: Vec<usize> = shuffled.iter().chain(in_order.iter()).copied().collect();

        let reference = run(&in_order, &|_| false);
        prop_assert_eq!(&run(&shuffled, &|step| cuts[step % cuts.len()]), &reference);
        prop_assert_eq!(&run(&twice, &|step| step % 3 == 0), &reference);

        let allocated: i64 = reference.values().map(|v| v.1).sum();
        let billed: i64 = lines.iter().map(|l| l.amount).sum();
        prop_assert_eq!(allocated, billed);
    }
}
