//! Records of the groups inside a namespace (`[aggregation]`): a team's, a user's, a workload's
//! part of the namespace record. Pure.
//!
//! Usage is what the group's workloads used. Each cost entry of the namespace record (own share
//! or shared-in part of one bill line) is split over the groups of one dimension by the usage its
//! category names, the way the allocator split the bill line over namespaces (license and other
//! costs by the policy's resource weights); an entry with no such usage in any group (a bill
//! tagged with the namespace, say) is split evenly. Largest remainder, so for each dimension the
//! groups' costs sum exactly to the namespace record's, entry by entry.

use std::collections::BTreeMap;
use std::slice;
use std::sync::Arc;

use crate::allocate::money::split_proportionally;
use crate::allocate::{basis, usage_weight};
use crate::measure::{MeterTotals, Resource, ResourceTotals};
use crate::standard::{AllocatedCost, Micros, UsageRecord};
use crate::window::{GroupKey, WindowStore};

/// One group's usage in a window.
#[derive(Debug, Clone, Copy)]
pub(super) struct Group<'a> {
    /// (dimension, value).
    pub key: &'a GroupKey,
    /// Standard resources.
    pub totals: &'a ResourceTotals,
    /// Extension resources.
    pub meters: &'a BTreeMap<Arc<str>, MeterTotals>,
}

/// The records of `groups` (all of one dimension, each value once) of `namespace`'s record.
/// `own` are the namespace's shares before sharing: a shared namespace's groups keep their part
/// of them as `own_cost_micros`, as the namespace does, though its `costs` moved out.
pub(super) fn group_records(
    namespace: &UsageRecord,
    own: &[AllocatedCost],
    groups: &[Group<'_>],
    other_weights: &[(Resource, u32)],
) -> Vec<UsageRecord> {
    let mut own_micros: Vec<Micros> = vec![0; groups.len()];
    for entry in own {
        for (slot, (micros, _)) in
            own_micros
                .iter_mut()
                .zip(split_entry(entry, groups, other_weights))
        {
            *slot += micros;
        }
    }
    let mut costs: Vec<Vec<AllocatedCost>> = vec![Vec::new(); groups.len()];
    for entry in &namespace.costs {
        for (i, (micros, ratio)) in split_entry(entry, groups, other_weights)
            .into_iter()
            .enumerate()
        {
            if micros != 0 || ratio != 0.0 {
                costs[i].push(AllocatedCost {
                    allocated_cost_micros: micros,
                    allocated_ratio: ratio,
                    ..entry.clone()
                });
            }
        }
    }
    groups
        .iter()
        .zip(costs)
        .zip(own_micros)
        .map(|((group, costs), own_micros)| {
            let (by, value) = group.key;
            let sum = |keep: fn(&AllocatedCost) -> bool| -> Micros {
                costs
                    .iter()
                    .filter(|c| keep(c))
                    .map(|c| c.allocated_cost_micros)
                    .sum()
            };
            UsageRecord {
                group_by: Some(by.to_string()),
                group_value: Some(value.to_string()),
                resources: {
                    let mut lines = WindowStore::resource_usage(group.totals);
                    lines.extend(WindowStore::meter_usage(group.meters));
                    lines
                },
                cost_total_micros: sum(|_| true),
                own_cost_micros: Some(own_micros),
                shared_cost_micros: Some(sum(|c| {
                    c.shared_from
                        .as_deref()
                        .is_some_and(|f| f != crate::allocate::IDLE)
                })),
                idle_cost_micros: Some(sum(|c| {
                    c.shared_from.as_deref() == Some(crate::allocate::IDLE)
                })),
                costs,
                ..namespace.clone()
            }
        })
        .collect()
}

/// One cost entry's (micros, ratio) per group.
fn split_entry(
    entry: &AllocatedCost,
    groups: &[Group<'_>],
    other_weights: &[(Resource, u32)],
) -> Vec<(Micros, f64)> {
    if let Some(meter) = &entry.meter {
        let weights: Vec<u128> = groups
            .iter()
            .map(|g| {
                g.meters.get(meter.as_str()).map_or(0, |m| {
                    u128::try_from(m.totals.allocated().micros()).unwrap_or(0)
                })
            })
            .collect();
        return split_by(entry, entry.allocated_cost_micros, 1.0, &weights);
    }
    // (resources, policy weight) of each part of the entry.
    let parts: Vec<(&[Resource], u32)> = match basis(entry.category) {
        Some(resources) => vec![(resources, 1)],
        None => other_weights
            .iter()
            .filter(|(_, w)| *w > 0)
            .map(|(r, w)| (slice::from_ref(r), *w))
            .collect(),
    };
    let parts = if parts.is_empty() {
        vec![(&[][..], 1)] // No weights at all: one even part.
    } else {
        parts
    };
    let part_weights: Vec<u128> = parts.iter().map(|&(_, w)| u128::from(w)).collect();
    let part_total: u128 = part_weights.iter().sum();
    let amounts = split_proportionally(entry.allocated_cost_micros, &part_weights);
    let mut out = vec![(0, 0.0); groups.len()];
    for ((resources, weight), amount) in parts.iter().zip(amounts) {
        let weights: Vec<u128> = groups
            .iter()
            .map(|g| resources.iter().map(|&r| usage_weight(g.totals, r)).sum())
            .collect();
        let fraction = f64::from(*weight) / part_total as f64;
        for (slot, part) in out
            .iter_mut()
            .zip(split_by(entry, amount, fraction, &weights))
        {
            slot.0 += part.0;
            slot.1 += part.1;
        }
    }
    out
}

/// `amount` (a `fraction` of `entry`) split by `weights`, evenly when they are all zero:
/// (micros, ratio) per group.
fn split_by(
    entry: &AllocatedCost,
    amount: Micros,
    fraction: f64,
    weights: &[u128],
) -> Vec<(Micros, f64)> {
    let even;
    let weights = if weights.iter().all(|&w| w == 0) {
        even = vec![1; weights.len()];
        &even
    } else {
        weights
    };
    let total: u128 = weights.iter().sum();
    split_proportionally(amount, weights)
        .into_iter()
        .zip(weights)
        .map(|(micros, w)| {
            (
                micros,
                entry.allocated_ratio * fraction * (*w as f64 / total as f64),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::measure::Quantity;
    use crate::standard::{CostCategory, RecordCostStatus, WindowStatus};
    use proptest::prelude::*;

    fn entry(category: CostCategory, micros: Micros, from: Option<&str>) -> AllocatedCost {
        AllocatedCost {
            origin_source: "test://bill".into(),
            origin_id: format!("{category:?}"),
            category,
            allocated_ratio: 0.5,
            allocated_cost_micros: micros,
            shared_from: from.map(str::to_owned),
            meter: None,
        }
    }

    fn namespace(costs: Vec<AllocatedCost>) -> UsageRecord {
        UsageRecord {
            cluster_id: "c".into(),
            cluster_name: None,
            namespace: "jupyter".into(),
            window_start: 0,
            window_end: 3_600_000,
            window_status: WindowStatus::Closed,
            revision: 0,
            resources: Vec::new(),
            cost_total_micros: costs.iter().map(|c| c.allocated_cost_micros).sum(),
            costs,
            currency: Some("EUR".into()),
            cost_status: RecordCostStatus::Final,
            group_by: None,
            group_value: None,
            own_cost_micros: None,
            shared_cost_micros: None,
            idle_cost_micros: None,
            shared: false,
        }
    }

    /// Totals with (resource, used, requested) in whole units.
    fn totals(entries: &[(Resource, i128, i128)]) -> ResourceTotals {
        let mut totals = ResourceTotals::default();
        for &(resource, used, requested) in entries {
            let t = totals.get_mut(resource);
            t.used = Quantity::from_micros(used * 1_000_000);
            t.requested = Quantity::from_micros(requested * 1_000_000);
        }
        totals
    }

    const NO_METERS: &BTreeMap<Arc<str>, MeterTotals> = &BTreeMap::new();

    /// The record's own entries: its shares before sharing, when it received but gave nothing.
    fn own(record: &UsageRecord) -> Vec<AllocatedCost> {
        record
            .costs
            .iter()
            .filter(|c| c.shared_from.is_none())
            .cloned()
            .collect()
    }

    fn group<'a>(key: &'a GroupKey, totals: &'a ResourceTotals) -> Group<'a> {
        Group {
            key,
            totals,
            meters: NO_METERS,
        }
    }

    fn key(value: &str) -> GroupKey {
        (
            Arc::from("label:hub.jupyter.org/username"),
            Arc::from(value),
        )
    }

    #[test]
    fn each_entry_follows_its_category_and_the_groups_sum_to_the_namespace() {
        // cpu: alice max(1, 2) = 2, bob 1 -> compute 1000: 667, 333 (remainder .67 > .33).
        // memory: only bob -> memory 90 all to bob.
        // shared-in compute from argocd 10 split 2:1 -> 7, 3.
        // other 101 split cpu 1 : memory 1 -> 51 cpu (2:1 -> 34, 17), 50 memory (bob).
        let alice = totals(&[(Resource::Cpu, 1, 2)]);
        let bob = totals(&[(Resource::Cpu, 1, 0), (Resource::Memory, 4, 4)]);
        let (ka, kb) = (key("alice"), key("bob"));
        let record = namespace(vec![
            entry(CostCategory::Compute, 1000, None),
            entry(CostCategory::Memory, 90, None),
            entry(CostCategory::Compute, 10, Some("argocd")),
            entry(CostCategory::Other, 101, None),
        ]);
        let weights = [(Resource::Cpu, 1), (Resource::Memory, 1)];
        let groups = group_records(
            &record,
            &own(&record),
            &[group(&ka, &alice), group(&kb, &bob)],
            &weights,
        );
        let micros: Vec<Vec<Micros>> = groups
            .iter()
            .map(|g| g.costs.iter().map(|c| c.allocated_cost_micros).collect())
            .collect();
        assert_eq!(micros, vec![vec![667, 7, 34], vec![333, 90, 3, 67]]);
        assert_eq!(groups[0].own_cost_micros, Some(701));
        assert_eq!(groups[0].shared_cost_micros, Some(7));
        assert_eq!(groups[1].cost_total_micros, 493);
        assert_eq!(
            groups.iter().map(|g| g.cost_total_micros).sum::<Micros>(),
            record.cost_total_micros
        );
        assert_eq!(groups[1].group_value.as_deref(), Some("bob"));
        assert_eq!(groups[1].resources.len(), 2);
    }

    #[test]
    fn an_entry_nobody_used_is_split_evenly() {
        let (ka, kb) = (key("a"), key("b"));
        let empty = totals(&[]);
        let record = namespace(vec![entry(CostCategory::Storage, 5, None)]);
        let groups = group_records(
            &record,
            &own(&record),
            &[group(&ka, &empty), group(&kb, &empty)],
            &[],
        );
        let micros: Vec<Micros> = groups.iter().map(|g| g.cost_total_micros).collect();
        assert_eq!(micros, vec![3, 2]);
    }

    fn category() -> impl Strategy<Value = CostCategory> {
        prop::sample::select(vec![
            CostCategory::Compute,
            CostCategory::Memory,
            CostCategory::Storage,
            CostCategory::Network,
            CostCategory::License,
            CostCategory::Other,
            CostCategory::Gpu,
        ])
    }

    proptest! {
        #[test]
        fn groups_sum_to_the_namespace_entry_by_entry(
            entries in prop::collection::vec((category(), -1_000_000_000i64..1_000_000_000), 0..6),
            usage in prop::collection::vec(
                prop::collection::vec((prop::sample::select(Resource::ALL.to_vec()), 0i128..1000, 0i128..1000), 0..4),
                1..5),
            weights in prop::collection::vec((prop::sample::select(Resource::ALL.to_vec()), 0u32..3), 0..3),
        ) {
            let record = namespace(entries.iter().map(|&(c, m)| entry(c, m, None)).collect());
            let keys: Vec<GroupKey> = (0..usage.len()).map(|i| key(&format!("u{i}"))).collect();
            let totals: Vec<ResourceTotals> = usage.iter().map(|u| totals(u)).collect();
            let groups: Vec<Group<'_>> = keys.iter().zip(&totals).map(|(k, t)| group(k, t)).collect();
            let out = group_records(&record, &own(&record), &groups, &weights);
            prop_assert_eq!(out.len(), groups.len());
            for (i, e) in record.costs.iter().enumerate() {
                let _ = i;
                let parts: Vec<&AllocatedCost> = out
                    .iter()
                    .flat_map(|g| g.costs.iter())
                    .filter(|c| c.origin_id == e.origin_id && c.category == e.category)
                    .collect();
                let same: Vec<&AllocatedCost> =
                    record.costs.iter().filter(|c| c.origin_id == e.origin_id).collect();
                let expected: Micros = same.iter().map(|c| c.allocated_cost_micros).sum();
                prop_assert_eq!(parts.iter().map(|c| c.allocated_cost_micros).sum::<Micros>(), expected);
            }
            prop_assert_eq!(
                out.iter().map(|g| g.cost_total_micros).sum::<Micros>(),
                record.cost_total_micros
            );
        }
    }
}
