//! Unit tests of the rate card: exact prices, capacity priced per pool and hour, fixed costs
//! per calendar month, withheld hours, refused amounts, and the hybrid scenario's card.

use super::*;
use crate::standard::{Measurement, WorkloadSubject, USAGE_EVENT_TYPE};

const NOV_2026: EpochMillis = 1_793_491_200_000; // 2026-11-01T00:00:00Z

fn card() -> RateCardBill {
    toml::from_str(
        r#"
        currency = "EUR"
        billing_account = "dc-1"
        cluster_id = "onprem"
        pool_label = "pool"
        [[node_pools]]
        pool = "gpu"
        cpu_core_hour = "0.05"
        memory_gib_hour = "0.01"
        gpu_hour = "0.9"
        [[node_pools]]
        pool = "*"
        cpu_core_hour = "0.02"
        memory_gib_hour = "0.0025"
        [[storage_classes]]
        storage_class = "*"
        gib_hour = "0.0001"
        [[fixed]]
        name = "support"
        monthly = "720"
        category = "license"
        "#,
    )
    .unwrap()
}

fn node(id: &str, pool: &str, start: EpochMillis, end: EpochMillis, cores: f64) -> UsageEvent {
    let seconds = (end - start) as f64 / 1000.0;
    UsageEvent {
        specversion: SPEC_VERSION.into(),
        id: id.into(),
        source: "//test".into(),
        event_type: USAGE_EVENT_TYPE.into(),
        time: end,
        start,
        end,
        subject: WorkloadSubject {
            cluster_id: "onprem".into(),
            node_name: Some(id.into()),
            labels: [("pool".to_owned(), pool.to_owned())].into(),
            ..Default::default()
        },
        measurements: vec![
            Measurement {
                resource: "cpu".into(),
                kind: MeasurementKind::Capacity,
                quantity: cores * seconds,
                unit: "core_seconds".into(),
            },
            Measurement {
                resource: "memory".into(),
                kind: MeasurementKind::Capacity,
                quantity: 4.0 * (1u64 << 30) as f64 * seconds,
                unit: "byte_seconds".into(),
            },
        ],
    }
}

/// `node` with `gpus` of GPU capacity too.
fn gpu_node(id: &str, pool: &str, start: EpochMillis, end: EpochMillis, gpus: f64) -> UsageEvent {
    let mut event = node(id, pool, start, end, 8.0);
    event.measurements.push(Measurement {
        resource: "gpu".into(),
        kind: MeasurementKind::Capacity,
        quantity: gpus * (end - start) as f64 / 1000.0,
        unit: "gpu_seconds".into(),
    });
    event
}

/// The export runs on 2026-12-01.
const NOW: EpochMillis = NOV_2026 + 30 * 86_400_000;

fn options() -> ExportOptions {
    ExportOptions {
        exported_at: NOW,
        ..Default::default()
    }
}

#[test]
fn prices_parse_exactly_and_print_back() {
    assert_eq!(Price::parse("0.021").unwrap().0, 21_000_000_000);
    assert_eq!(Price::parse("12").unwrap().0, 12 * PICO_PER_UNIT);
    assert_eq!(Price::parse("0.000000000001").unwrap().0, 1);
    assert_eq!(Price::parse("1.50").unwrap().to_string(), "1.5");
    for bad in ["", "-1", "1e3", "0.0000000000001", "1.", ".5", "abc"] {
        assert!(Price::parse(bad).is_err(), "{bad:?} must not parse");
    }
}

#[test]
fn capacity_is_priced_per_pool_and_hour() {
    let card = card();
    let h = NOV_2026;
    let mut seen = ObservedCapacity::new(h, h + 2 * 3_600_000);
    // Two hours of an 8-core general node, sampled every 30 min, plus one hour of a GPU
    // node; one sample straddles the hour boundary; one is delivered twice.
    for (i, start) in [h, h + 1_800_000, h + 3_600_000, h + 5_400_000]
        .into_iter()
        .enumerate()
    {
        seen.add(
            &card,
            &node(&format!("n1-{i}"), "general", start, start + 1_800_000, 8.0),
        )
        .unwrap();
    }
    seen.add(
        &card,
        &node("g-0", "gpu", h + 2_700_000, h + 4_500_000, 2.0),
    )
    .unwrap();
    seen.add(
        &card,
        &node("g-0", "gpu", h + 2_700_000, h + 4_500_000, 2.0),
    )
    .unwrap();
    assert_eq!((seen.counted, seen.duplicates), (5, 1));

    let bill = card.bill(&seen, &options());
    assert!(bill.unpriced.is_empty() && bill.refused.is_empty() && bill.withheld.is_empty());
    let lines = bill.lines;
    let amounts: BTreeMap<(EpochMillis, String), i64> = lines
        .iter()
        .filter(|l| l.category != CostCategory::License)
        .map(|l| {
            (
                (l.charge_period_start, l.sku_id.clone().unwrap()),
                l.effective_cost_micros,
            )
        })
        .collect();
    let expected: BTreeMap<(EpochMillis, String), i64> = [
        // "*" prices the general pool: 8 cores x 0.02 = 0.16/h; 4 GiB x 0.0025 = 0.01/h.
        ((h, "cpu general"), 160_000),
        ((h, "memory general"), 10_000),
        ((h + 3_600_000, "cpu general"), 160_000),
        ((h + 3_600_000, "memory general"), 10_000),
        // GPU node: 15 min in hour 1 and 15 min in hour 2 at 2 x 0.05 and 4 x 0.01 per hour.
        ((h, "cpu gpu"), 25_000),
        ((h, "memory gpu"), 10_000),
        ((h + 3_600_000, "cpu gpu"), 25_000),
        ((h + 3_600_000, "memory gpu"), 10_000),
    ]
    .into_iter()
    .map(|((t, s), a)| ((t, s.to_owned()), a))
    .collect();
    assert_eq!(amounts, expected);
    // 720 a month for 2 hours of a 30-day month = 2.
    let fixed: Vec<_> = lines
        .iter()
        .filter(|l| l.category == CostCategory::License)
        .map(|l| l.effective_cost_micros)
        .collect();
    assert_eq!(fixed, vec![2_000_000]);
}

#[test]
fn re_exports_have_the_same_ids_and_hours_outside_the_period_are_left_out() {
    let card = card();
    let mut seen = ObservedCapacity::new(NOV_2026, NOV_2026 + HOUR_MS);
    seen.add(
        &card,
        &node("a", "general", NOV_2026, NOV_2026 + HOUR_MS, 1.0),
    )
    .unwrap();
    seen.add(
        &card,
        &node(
            "b",
            "general",
            NOV_2026 + HOUR_MS,
            NOV_2026 + 2 * HOUR_MS,
            1.0,
        ),
    )
    .unwrap();
    assert_eq!(
        (seen.counted, seen.ignored),
        (1, 1),
        "b is outside the period"
    );
    let first = card.bill(&seen, &options()).lines;
    let again = card.bill(&seen, &options()).lines;
    assert_eq!(first, again);
    assert!(first
        .iter()
        .all(|l| l.charge_period_start < NOV_2026 + HOUR_MS));
    let ids: HashSet<_> = first.iter().map(|l| &l.id).collect();
    assert_eq!(ids.len(), first.len(), "ids are unique");
}

#[test]
fn a_pool_without_price_is_reported() {
    let mut card = card();
    card.node_pools.retain(|p| p.pool != "*");
    let mut seen = ObservedCapacity::new(NOV_2026, NOV_2026 + HOUR_MS);
    seen.add(
        &card,
        &node("a", "general", NOV_2026, NOV_2026 + HOUR_MS, 1.0),
    )
    .unwrap();
    let bill = card.bill(&seen, &options());
    assert_eq!(bill.lines.len(), 1, "only the fixed cost");
    assert_eq!(
        bill.unpriced,
        vec![
            Unpriced {
                resource: "cpu",
                group: "general".into()
            },
            Unpriced {
                resource: "memory",
                group: "general".into()
            }
        ]
    );
}

#[test]
fn fixed_costs_are_split_by_calendar_month() {
    let card = card();
    let dec = month_start(2026, 12);
    let lines = card
        .bill(
            &ObservedCapacity::new(dec - 86_400_000, dec + 86_400_000),
            &options(),
        )
        .lines;
    // One day of November (30 days) and one of December (31 days) at 720 a month.
    let amounts: Vec<_> = lines.iter().map(|l| l.effective_cost_micros).collect();
    assert_eq!(amounts, vec![24_000_000, 23_225_806]);
}

#[test]
fn a_rejected_event_of_the_cluster_withholds_its_hours_only() {
    let card = card();
    let h = NOV_2026;
    let mut seen = ObservedCapacity::new(h, h + 3 * HOUR_MS);
    for (i, hour) in [h, h + HOUR_MS, h + 2 * HOUR_MS].into_iter().enumerate() {
        seen.add(
            &card,
            &node(&format!("n-{i}"), "general", hour, hour + HOUR_MS, 4.0),
        )
        .unwrap();
    }
    // Bad events of the card's cluster in the second hour: each names what is wrong.
    let mut nan = node("bad-1", "general", h + HOUR_MS, h + HOUR_MS + 60_000, 1.0);
    nan.measurements[0].quantity = f64::NAN;
    let mut unit = node("bad-2", "general", h + HOUR_MS, h + HOUR_MS + 60_000, 1.0);
    unit.measurements[1].unit = "bytes".into();
    let mut nul = node("bad-3", "gen\0eral", h + HOUR_MS, h + HOUR_MS + 60_000, 1.0);
    nul.subject.node_name = Some("n\0".into());
    for (event, field) in [
        (nan, "quantity NaN"),
        (unit, "memory must be in byte_seconds"),
        (nul, "subject.node_name"),
    ] {
        let error = seen.add(&card, &event).unwrap_err();
        assert!(error.contains(field), "{field}: {error}");
    }
    // Outside the period, a bad event does not matter either.
    let mut later = node("bad-4", "general", h + 5 * HOUR_MS, h + 6 * HOUR_MS, 1.0);
    later.measurements[0].quantity = -1.0;
    assert_eq!(seen.add(&card, &later), Ok(()));
    // Another cluster's bad event is not the card's business.
    let mut other = node("x", "general", h, h + HOUR_MS, f64::NAN);
    other.subject.cluster_id = "elsewhere".into();
    assert_eq!(seen.add(&card, &other), Ok(()));

    let bill = card.bill(&seen, &options());
    let hours: BTreeSet<EpochMillis> = bill
        .lines
        .iter()
        .filter(|l| l.category != CostCategory::License)
        .map(|l| l.charge_period_start)
        .collect();
    assert_eq!(hours, [h, h + 2 * HOUR_MS].into());
    assert_eq!(bill.withheld.len(), 2, "cpu and memory of the second hour");
    assert!(bill
        .withheld
        .iter()
        .all(|w| w.what.contains("2026-11-01T01:00:00")));
}

#[test]
fn an_undecodable_message_withholds_usage_lines_unless_keyed_to_another_cluster() {
    let card = card();
    let mut seen = ObservedCapacity::new(NOV_2026, NOV_2026 + HOUR_MS);
    seen.add(
        &card,
        &node("a", "general", NOV_2026, NOV_2026 + HOUR_MS, 1.0),
    )
    .unwrap();
    assert!(!seen.undecodable(&card, Some(b"elsewhere")));
    assert_eq!(card.bill(&seen, &options()).withheld.len(), 0);
    assert!(seen.undecodable(&card, Some(b"onprem")));
    let bill = card.bill(&seen, &options());
    assert_eq!(bill.withheld.len(), 2);
    assert_eq!(
        bill.lines.len(),
        1,
        "the fixed cost does not depend on usage"
    );
    assert_eq!(bill.lines[0].category, CostCategory::License);
}

#[test]
fn amounts_out_of_range_are_refused_never_saturated() {
    let h = NOV_2026;
    let priced = |price: &str| {
        let mut card = card();
        card.fixed.clear();
        card.node_pools[1].cpu_core_hour = Price::parse(price).unwrap();
        let mut seen = ObservedCapacity::new(h, h + HOUR_MS);
        seen.add(&card, &node("a", "general", h, h + HOUR_MS, 8.0))
            .unwrap();
        card.bill(&seen, &options())
    };
    // 8 cores x 10^11 an hour = 8 x 10^17 micros: an i64, beyond the standard's 10^17.
    let bill = priced("100000000000");
    let cpu = bill
        .refused
        .iter()
        .find(|r| r.what.starts_with("cpu"))
        .unwrap();
    assert!(
        cpu.message
            .contains("billed_cost_micros 800000000000000000"),
        "{}",
        cpu.message
    );
    // 8 x 10^13 an hour: not an i64 of micros.
    let bill = priced("10000000000000");
    let cpu = bill
        .refused
        .iter()
        .find(|r| r.what.starts_with("cpu"))
        .unwrap();
    assert!(cpu.message.contains("do not fit an i64"), "{}", cpu.message);
    // 8 x 10^24 an hour: the product of quantity and price leaves the i128 range.
    let bill = priced("1000000000000000000000000");
    let cpu = bill
        .refused
        .iter()
        .find(|r| r.what.starts_with("cpu"))
        .unwrap();
    assert!(cpu.message.contains("overflows"), "{}", cpu.message);
    assert!(bill
        .lines
        .iter()
        .all(|l| l.category == CostCategory::Memory));
}

#[test]
fn fixed_costs_too_far_ahead_are_refused() {
    let card = card();
    let feb = month_start(2027, 2);
    let bill = card.bill(&ObservedCapacity::new(feb, feb + HOUR_MS), &options());
    assert!(bill.lines.is_empty());
    assert!(
        bill.refused[0].message.contains("charge_period_start"),
        "{:?}",
        bill.refused
    );
    assert!(RateCardBill::check_period(feb, feb).is_err());
    assert!(RateCardBill::check_period(0, feb).is_err());
    assert!(RateCardBill::check_period(feb, feb + 1).is_ok());
}

#[test]
fn money_helpers_round_once_and_refuse_overflow() {
    assert_eq!(round_div(5, 10), Some(1));
    assert_eq!(round_div(-5, 10), Some(-1));
    assert_eq!(round_div(4, 10), Some(0));
    assert_eq!(round_div(1, 0), None);
    assert_eq!(round_div(i128::MAX, 4), None);
    assert_eq!(to_micros(3, 7, 2), Ok(11));
    assert!(to_micros(i128::MAX, 2, 1).is_err());
    assert!(to_micros(i128::from(i64::MAX) + 1, 1, 1).is_err());
    assert!(Price::parse(&"9".repeat(40)).is_err());
    assert_eq!(
        split_by_hour(
            NOV_2026 + 1_800_000,
            NOV_2026 + 5_400_000,
            Quantity::from_micros(7)
        )
        .unwrap()
        .iter()
        .map(|(_, q)| q.micros())
        .sum::<i128>(),
        7
    );
}

#[test]
fn the_hybrid_scenarios_rate_card_is_valid() {
    let card: RateCardBill = toml::from_str(include_str!(
        "../../../deploy/scenarios/hybrid-onprem-gcp/rate-card.toml"
    ))
    .unwrap();
    card.validate().unwrap();
    assert_eq!(card.cluster_id, "onprem-dc1");
    let pools: Vec<&str> = card.node_pools.iter().map(|p| p.pool.as_str()).collect();
    assert_eq!(pools, ["standard", "highmem"]);
}

#[test]
fn calendar_arithmetic_matches_known_dates() {
    assert_eq!(month_start(1970, 1), 0);
    assert_eq!(month_start(2026, 11), NOV_2026);
    assert_eq!(year_month(NOV_2026), (2026, 11));
    assert_eq!(year_month(NOV_2026 - 1), (2026, 10));
    assert_eq!(
        year_month(month_start(2024, 2) + 28 * 86_400_000),
        (2024, 2)
    );
    assert_eq!(months(NOV_2026, NOV_2026 + 1).len(), 1);
}

#[test]
fn gpu_capacity_is_priced_per_gpu_hour_with_category_gpu() {
    let card = card();
    let h = NOV_2026;
    let mut seen = ObservedCapacity::new(h, h + 2 * HOUR_MS);
    // Two A100s for the first hour and a half; a general node that reports one GPU.
    seen.add(&card, &gpu_node("g-0", "gpu", h, h + 5_400_000, 2.0))
        .unwrap();
    seen.add(&card, &gpu_node("n-0", "general", h, h + HOUR_MS, 1.0))
        .unwrap();
    let bill = card.bill(&seen, &options());
    assert!(bill.unpriced.is_empty() && bill.refused.is_empty() && bill.withheld.is_empty());
    let gpu: BTreeMap<(EpochMillis, String), i64> = bill
        .lines
        .iter()
        .filter(|l| l.category == CostCategory::Gpu)
        .map(|l| {
            (
                (l.charge_period_start, l.sku_id.clone().unwrap()),
                l.effective_cost_micros,
            )
        })
        .collect();
    let expected: BTreeMap<(EpochMillis, String), i64> = [
        // 2 GPUs x 0.9 an hour; the second hour has half an hour of them.
        ((h, "gpu gpu"), 1_800_000),
        ((h + HOUR_MS, "gpu gpu"), 900_000),
        // "*" has no gpu_hour: priced at 0, like an unset cpu_core_hour.
        ((h, "gpu general"), 0),
    ]
    .into_iter()
    .map(|((t, s), a)| ((t, s.to_owned()), a))
    .collect();
    assert_eq!(gpu, expected);
    // The cpu and memory of the GPU node are still compute and memory.
    assert!(bill
        .lines
        .iter()
        .any(|l| l.sku_id.as_deref() == Some("cpu gpu") && l.category == CostCategory::Compute));
    let ids: HashSet<_> = bill.lines.iter().map(|l| &l.id).collect();
    assert_eq!(
        ids.len(),
        bill.lines.len(),
        "gpu lines have ids of their own"
    );
}

#[test]
fn gpu_capacity_of_an_unlisted_pool_or_in_another_unit_is_reported() {
    let mut card = card();
    card.node_pools.retain(|p| p.pool != "*");
    let h = NOV_2026;
    let mut seen = ObservedCapacity::new(h, h + HOUR_MS);
    seen.add(&card, &gpu_node("n-0", "general", h, h + HOUR_MS, 1.0))
        .unwrap();
    let unpriced: Vec<&str> = card
        .bill(&seen, &options())
        .unpriced
        .iter()
        .map(|u| u.resource)
        .collect();
    assert_eq!(unpriced, ["cpu", "memory", "gpu"]);

    let mut hours = gpu_node("g-1", "gpu", h, h + HOUR_MS, 1.0);
    hours.measurements[2].unit = "gpu_hours".into();
    let error = seen.add(&card, &hours).unwrap_err();
    assert!(error.contains("gpu must be in gpu_seconds"), "{error}");
}

#[test]
fn a_card_prices_gpu_hours_from_toml() {
    let card: RateCardBill = toml::from_str(
        r#"
        currency = "EUR"
        billing_account = "dc-1"
        cluster_id = "onprem"
        [[node_pools]]
        pool = "gpu-a100"
        cpu_core_hour = "0.0185"
        memory_gib_hour = "0.0026"
        gpu_hour = "1.45"
        "#,
    )
    .unwrap();
    assert_eq!(card.node_pools[0].gpu_hour.to_string(), "1.45");
    assert!(toml::from_str::<RateCardBill>(
        "currency = \"EUR\"\nbilling_account = \"a\"\ncluster_id = \"c\"\n[[node_pools]]\npool = \"*\"\ngpu_hour_micros = 1\n"
    )
    .is_err(), "unknown keys are errors");
    // A fixed cost can be apportioned by gpu too.
    let fixed: FixedCost =
        toml::from_str("name = \"dgx-support\"\nmonthly = \"900\"\ncategory = \"gpu\"\n").unwrap();
    assert_eq!(fixed.category, CostCategory::Gpu);
}
