use super::*;
use crate::measure::Quantity;
use proptest::prelude::*;

/// One unit (core-second, byte-second, byte) in micro-units.
const UNIT: i128 = 1_000_000;

/// Totals with `(resource, used, requested)` in whole units.
fn totals(entries: &[(Resource, i128, i128)]) -> ResourceTotals {
    let mut totals = ResourceTotals::default();
    for &(resource, used, requested) in entries {
        let t = totals.get_mut(resource);
        t.used = Quantity::from_micros(used * UNIT);
        t.requested = Quantity::from_micros(requested * UNIT);
    }
    totals
}

/// Capacity with `(resource, units)`.
fn capacity(entries: &[(Resource, i128)]) -> Capacity {
    let mut capacity = Capacity::default();
    for &(resource, units) in entries {
        capacity.0[resource.index()] = Quantity::from_micros(units * UNIT);
    }
    capacity
}

fn charge(id: &str, category: CostCategory, amount: Micros) -> Charge {
    Charge {
        origin_source: "test://bill".into(),
        origin_id: id.into(),
        category,
        status: CostStatus::Final,
        currency: "EUR".into(),
        namespace: None,
        amount,
        meter: None,
    }
}

fn allocate(
    policy: AllocationPolicy,
    namespaces: &[(&str, &ResourceTotals)],
    capacity: &Capacity,
    charges: &[Charge],
) -> Vec<NamespaceShare> {
    let window = ClusterWindow {
        namespaces,
        capacity,
        meters: &[],
    };
    CostAllocator::new(policy).allocate(&window, charges)
}

fn micros(shares: &[NamespaceShare]) -> Vec<(&str, Micros)> {
    shares
        .iter()
        .map(|s| (s.namespace.as_str(), s.cost.allocated_cost_micros))
        .collect()
}

fn ratios(shares: &[NamespaceShare]) -> Vec<(&str, f64)> {
    shares
        .iter()
        .map(|s| (s.namespace.as_str(), s.cost.allocated_ratio))
        .collect()
}

fn pro_rata() -> AllocationPolicy {
    AllocationPolicy {
        idle: IdleCost::ShareProRata,
        ..AllocationPolicy::default()
    }
}

#[test]
fn the_default_policy_weighs_cpu_and_memory_equally_and_keeps_idle_apart() {
    let policy = AllocationPolicy::default();
    assert_eq!(
        policy.other_weights,
        vec![(Resource::Cpu, 1), (Resource::Memory, 1)]
    );
    assert_eq!(policy.idle, IdleCost::Separate);
    assert_eq!(CostAllocator::new(pro_rata()).policy(), &pro_rata());
}

#[test]
fn a_tagged_charge_goes_whole_to_its_namespace() {
    let busy = totals(&[(Resource::Cpu, 5, 5)]);
    let tagged = Charge {
        namespace: Some("ghost".into()),
        ..charge("line-7", CostCategory::Compute, 500)
    };
    let shares = allocate(
        AllocationPolicy::default(),
        &[("busy", &busy)],
        &capacity(&[]),
        &[tagged],
    );
    assert_eq!(
        shares,
        vec![NamespaceShare {
            namespace: "ghost".into(),
            cost: AllocatedCost {
                origin_source: "test://bill".into(),
                origin_id: "line-7".into(),
                category: CostCategory::Compute,
                allocated_ratio: 1.0,
                allocated_cost_micros: 500,
                shared_from: None,
                meter: None,
            },
        }]
    );
}

#[test]
fn unallocated_capacity_is_charged_to_idle() {
    // cpu capacity 10; a allocates max(req 2, used 1) = 2, b max(0, 3) = 3, idle 10 - 5 = 5.
    // 1000 micros -> idle 500, a 200, b 300; "__idle__" sorts before "a".
    let a = totals(&[(Resource::Cpu, 1, 2)]);
    let b = totals(&[(Resource::Cpu, 3, 0)]);
    let cap = capacity(&[(Resource::Cpu, 10)]);
    let shares = allocate(
        AllocationPolicy::default(),
        &[("a", &a), ("b", &b)],
        &cap,
        &[charge("c", CostCategory::Compute, 1000)],
    );
    assert_eq!(micros(&shares), vec![(IDLE, 500), ("a", 200), ("b", 300)]);
    assert_eq!(ratios(&shares), vec![(IDLE, 0.5), ("a", 0.2), ("b", 0.3)]);
}

#[test]
fn pro_rata_idle_is_shared_by_the_namespaces() {
    // Same usage as above without the idle weight: 2:3 of 1000 -> 400, 600.
    let a = totals(&[(Resource::Cpu, 1, 2)]);
    let b = totals(&[(Resource::Cpu, 3, 0)]);
    let cap = capacity(&[(Resource::Cpu, 10)]);
    let shares = allocate(
        pro_rata(),
        &[("a", &a), ("b", &b)],
        &cap,
        &[charge("c", CostCategory::Compute, 1000)],
    );
    assert_eq!(micros(&shares), vec![("a", 400), ("b", 600)]);
    assert_eq!(ratios(&shares), vec![("a", 0.4), ("b", 0.6)]);
}

#[test]
fn credits_split_like_charges() {
    let a = totals(&[(Resource::Cpu, 1, 2)]);
    let b = totals(&[(Resource::Cpu, 3, 0)]);
    let cap = capacity(&[(Resource::Cpu, 10)]);
    let shares = allocate(
        AllocationPolicy::default(),
        &[("a", &a), ("b", &b)],
        &cap,
        &[charge("c", CostCategory::Compute, -1000)],
    );
    assert_eq!(
        micros(&shares),
        vec![(IDLE, -500), ("a", -200), ("b", -300)]
    );
    assert_eq!(ratios(&shares), vec![(IDLE, 0.5), ("a", 0.2), ("b", 0.3)]);
}

#[test]
fn without_usage_or_capacity_everything_is_unallocated() {
    // "quiet" has memory but no storage: it is not emitted for a storage charge.
    let quiet = totals(&[(Resource::Memory, 4, 4)]);
    let shares = allocate(
        AllocationPolicy::default(),
        &[("quiet", &quiet)],
        &capacity(&[(Resource::Cpu, 10)]),
        &[charge("s", CostCategory::Storage, 1234)],
    );
    assert_eq!(micros(&shares), vec![(UNALLOCATED, 1234)]);
    assert_eq!(ratios(&shares), vec![(UNALLOCATED, 1.0)]);
    // No namespaces at all, and a zero amount: still one share with ratio 1.
    let shares = allocate(
        AllocationPolicy::default(),
        &[],
        &capacity(&[]),
        &[charge("z", CostCategory::Compute, 0)],
    );
    assert_eq!(ratios(&shares), vec![(UNALLOCATED, 1.0)]);
}

#[test]
fn capacity_without_usage_is_idle_or_unallocated_by_policy() {
    let cap = capacity(&[(Resource::Cpu, 10)]);
    let compute = [charge("c", CostCategory::Compute, 99)];
    assert_eq!(
        micros(&allocate(AllocationPolicy::default(), &[], &cap, &compute)),
        vec![(IDLE, 99)]
    );
    // Pro rata there is nobody to share with.
    assert_eq!(
        micros(&allocate(pro_rata(), &[], &cap, &compute)),
        vec![(UNALLOCATED, 99)]
    );
}

#[test]
fn other_costs_split_half_by_cpu_and_half_by_memory() {
    // cpu: a max(0, used 3) = 3, b max(req 1, 0) = 1; memory: only b (5). No capacity.
    // 1001 -> cpu 501 (the tie on .5 goes to the first entry), memory 500.
    // cpu 501 * 3/4 = 375.75 -> 375 + the leftover unit (remainder .75 > .25) = 376,
    //     501 * 1/4 = 125.25 -> 125.
    // memory 500 all to b.
    // a = 376, b = 125 + 500 = 625; ratios by micros: 376/1001, 625/1001.
    let a = totals(&[(Resource::Cpu, 3, 0)]);
    let b = totals(&[(Resource::Cpu, 0, 1), (Resource::Memory, 5, 2)]);
    let shares = allocate(
        AllocationPolicy::default(),
        &[("a", &a), ("b", &b)],
        &capacity(&[]),
        &[charge("o", CostCategory::Other, 1001)],
    );
    assert_eq!(micros(&shares), vec![("a", 376), ("b", 625)]);
    assert_eq!(
        ratios(&shares),
        vec![("a", 376.0 / 1001.0), ("b", 625.0 / 1001.0)]
    );
}

#[test]
fn license_costs_merge_idle_over_both_resources() {
    // cpu capacity 8, memory capacity unknown (0). 1000 -> cpu 500, memory 500.
    // cpu weights a 3, b 1, idle 8 - 4 = 4: 187.5, 62.5, 250 -> 187, 62, 250 with one unit
    //     left; remainders .5, .5, 0 tie -> lowest index, a: 188, 62, 250.
    // memory weights a 0, b 5, idle max(0 - 5, 0) = 0: b 500.
    // a 188, b 562, idle 250.
    let a = totals(&[(Resource::Cpu, 3, 0)]);
    let b = totals(&[(Resource::Cpu, 0, 1), (Resource::Memory, 5, 2)]);
    let shares = allocate(
        AllocationPolicy::default(),
        &[("b", &b), ("a", &a)],
        &capacity(&[(Resource::Cpu, 8)]),
        &[charge("l", CostCategory::License, 1000)],
    );
    assert_eq!(micros(&shares), vec![(IDLE, 250), ("a", 188), ("b", 562)]);
    assert_eq!(
        ratios(&shares),
        vec![(IDLE, 0.25), ("a", 0.188), ("b", 0.562)]
    );
}

#[test]
fn a_zero_merged_charge_keeps_the_weight_shares_as_ratios() {
    // a: 0.5 * 3/4 + 0.5 * 0 = 0.375; b: 0.5 * 1/4 + 0.5 * 1 = 0.625.
    let a = totals(&[(Resource::Cpu, 3, 0)]);
    let b = totals(&[(Resource::Cpu, 0, 1), (Resource::Memory, 5, 2)]);
    let shares = allocate(
        AllocationPolicy::default(),
        &[("a", &a), ("b", &b)],
        &capacity(&[]),
        &[charge("o", CostCategory::Other, 0)],
    );
    assert_eq!(micros(&shares), vec![("a", 0), ("b", 0)]);
    assert_eq!(ratios(&shares), vec![("a", 0.375), ("b", 0.625)]);
}

#[test]
fn a_policy_part_without_usage_is_unallocated() {
    // Only cpu usage: the cpu half goes to a, the memory half to __unallocated__.
    let a = totals(&[(Resource::Cpu, 1, 1)]);
    let shares = allocate(
        AllocationPolicy::default(),
        &[("a", &a)],
        &capacity(&[]),
        &[charge("o", CostCategory::Other, 1000)],
    );
    assert_eq!(micros(&shares), vec![(UNALLOCATED, 500), ("a", 500)]);
    assert_eq!(ratios(&shares), vec![(UNALLOCATED, 0.5), ("a", 0.5)]);
}

#[test]
fn policy_weights_can_be_uneven_zero_or_missing() {
    let a = totals(&[(Resource::Cpu, 1, 0), (Resource::Gpu, 0, 1)]);
    let b = totals(&[(Resource::Gpu, 3, 0)]);
    let namespaces = [("a", &a), ("b", &b)];
    let other = [charge("o", CostCategory::Other, 1000)];
    // cpu 1 : gpu 3 -> cpu 250 to a; gpu 750 split 1:3 -> a 187.5, b 562.5 -> the tie to a.
    let policy = AllocationPolicy {
        other_weights: vec![(Resource::Cpu, 1), (Resource::Gpu, 3)],
        ..Default::default()
    };
    assert_eq!(
        micros(&allocate(policy, &namespaces, &capacity(&[]), &other)),
        vec![("a", 438), ("b", 562)]
    );
    // A zero weight drops its resource: the one remaining part is a plain gpu split (ratio by
    // weight, 1/4 and 3/4), and cpu-only usage would not count.
    let policy = AllocationPolicy {
        other_weights: vec![(Resource::Cpu, 0), (Resource::Gpu, 1)],
        ..Default::default()
    };
    let shares = allocate(policy, &namespaces, &capacity(&[]), &other);
    assert_eq!(micros(&shares), vec![("a", 250), ("b", 750)]);
    assert_eq!(ratios(&shares), vec![("a", 0.25), ("b", 0.75)]);
    // Nothing to weigh by at all.
    let policy = AllocationPolicy {
        other_weights: vec![],
        ..Default::default()
    };
    assert_eq!(
        micros(&allocate(policy, &namespaces, &capacity(&[]), &other)),
        vec![(UNALLOCATED, 1000)]
    );
}

#[test]
fn network_is_split_by_bytes_moved_not_reserved() {
    // a moved 100 + 300 bytes (its large request does not count), b 600: 400, 600.
    let a = totals(&[
        (Resource::NetworkRx, 100, 10_000),
        (Resource::NetworkTx, 300, 0),
    ]);
    let b = totals(&[(Resource::NetworkRx, 600, 0)]);
    let shares = allocate(
        AllocationPolicy::default(),
        &[("a", &a), ("b", &b)],
        &capacity(&[]),
        &[charge("n", CostCategory::Network, 1000)],
    );
    assert_eq!(micros(&shares), vec![("a", 400), ("b", 600)]);
}

#[test]
fn shares_come_by_charge_then_namespace_name() {
    let a = totals(&[(Resource::Memory, 1, 1)]);
    let z = totals(&[(Resource::Memory, 1, 1)]);
    let charges = [
        charge("second", CostCategory::Memory, 3),
        Charge {
            namespace: Some("m".into()),
            ..charge("first", CostCategory::Memory, 5)
        },
    ];
    let shares = allocate(
        AllocationPolicy::default(),
        &[("z", &z), ("a", &a)],
        &capacity(&[]),
        &charges,
    );
    let order: Vec<_> = shares
        .iter()
        .map(|s| {
            (
                s.cost.origin_id.as_str(),
                s.namespace.as_str(),
                s.cost.allocated_cost_micros,
            )
        })
        .collect();
    assert_eq!(
        order,
        vec![("second", "a", 2), ("second", "z", 1), ("first", "m", 5)]
    );
}

fn quantity() -> impl Strategy<Value = Quantity> {
    prop_oneof![Just(0i128), 0i128..1_000, 0i128..1_000_000_000_000_000]
        .prop_map(Quantity::from_micros)
}

fn resource_totals() -> impl Strategy<Value = ResourceTotals> {
    let totals = (quantity(), quantity(), quantity()).prop_map(|(used, requested, limit)| {
        crate::measure::Totals {
            used,
            requested,
            limit,
        }
    });
    prop::array::uniform6(totals).prop_map(ResourceTotals)
}

fn cluster_capacity() -> impl Strategy<Value = Capacity> {
    prop::array::uniform6(quantity()).prop_map(Capacity)
}

fn category() -> impl Strategy<Value = CostCategory> {
    prop::sample::select(vec![
        CostCategory::Compute,
        CostCategory::Memory,
        CostCategory::Storage,
        CostCategory::Network,
        CostCategory::License,
        CostCategory::Other,
    ])
}

fn charges() -> impl Strategy<Value = Vec<Charge>> {
    let amount = prop_oneof![any::<i64>(), -1_000i64..1_000];
    let one = (category(), prop::option::weighted(0.2, "[a-e]"), amount);
    prop::collection::vec(one, 0..6).prop_map(|charges| {
        charges
            .into_iter()
            .enumerate()
            .map(|(i, (category, namespace, amount))| Charge {
                namespace,
                ..charge(&format!("c{i}"), category, amount)
            })
            .collect()
    })
}

fn policy() -> impl Strategy<Value = AllocationPolicy> {
    let entry = (prop::sample::select(Resource::ALL.to_vec()), 0u32..4);
    let idle = prop::sample::select(vec![IdleCost::Separate, IdleCost::ShareProRata]);
    (prop::collection::vec(entry, 0..4), idle).prop_map(|(other_weights, idle)| AllocationPolicy {
        other_weights,
        idle,
        ..Default::default()
    })
}

/// A namespace and its usage, owned.
type Named = (String, ResourceTotals);

/// Namespaces with unique names, in name order, and the same in a random order.
fn namespaces() -> impl Strategy<Value = (Vec<Named>, Vec<Named>)> {
    prop::collection::btree_map("[a-e]{1,2}", resource_totals(), 0..6).prop_flat_map(|map| {
        let sorted: Vec<_> = map.into_iter().collect();
        (Just(sorted.clone()), Just(sorted).prop_shuffle())
    })
}

fn run(
    policy: &AllocationPolicy,
    namespaces: &[Named],
    capacity: &Capacity,
    charges: &[Charge],
) -> Vec<NamespaceShare> {
    let borrowed: Vec<(&str, &ResourceTotals)> =
        namespaces.iter().map(|(n, t)| (n.as_str(), t)).collect();
    allocate(policy.clone(), &borrowed, capacity, charges)
}

proptest! {
    #[test]
    fn every_charge_is_conserved_exactly(
        policy in policy(),
        (namespaces, _) in namespaces(),
        capacity in cluster_capacity(),
        charges in charges(),
    ) {
        let shares = run(&policy, &namespaces, &capacity, &charges);
        for charge in &charges {
            let mine: Vec<_> =
                shares.iter().filter(|s| s.cost.origin_id == charge.origin_id).collect();
            prop_assert!(!mine.is_empty());
            let sum: i128 = mine.iter().map(|s| i128::from(s.cost.allocated_cost_micros)).sum();
            prop_assert_eq!(sum, i128::from(charge.amount));
            let ratio: f64 = mine.iter().map(|s| s.cost.allocated_ratio).sum();
            prop_assert!(
                (ratio - 1.0).abs() <= 1e-9,
                "ratios of {} sum to {}", charge.origin_id, ratio
            );
            for share in &mine {
                let micros = share.cost.allocated_cost_micros;
                prop_assert!(micros == 0 || micros.signum() == charge.amount.signum());
                prop_assert!((0.0..=1.0 + 1e-12).contains(&share.cost.allocated_ratio));
                prop_assert_eq!(share.cost.category, charge.category);
            }
            let names: Vec<_> = mine.iter().map(|s| s.namespace.as_str()).collect();
            let by_name = names.windows(2).all(|pair| pair[0] < pair[1]);
            prop_assert!(by_name, "not by name: {:?}", names);
        }
    }

    #[test]
    fn namespace_order_does_not_matter(
        policy in policy(),
        (sorted, shuffled) in namespaces(),
        capacity in cluster_capacity(),
        charges in charges(),
    ) {
        prop_assert_eq!(
            run(&policy, &sorted, &capacity, &charges),
            run(&policy, &shuffled, &capacity, &charges)
        );
    }
}
