//! Apportioning the charges of one cluster window to its namespaces.
//!
//! Every untagged charge is split by the usage its category names (OpenCost's
//! `allocated = max(request, usage)`, network by bytes actually moved). Capacity that no namespace
//! allocated is charged to [`IDLE`] or shared pro-rata ([`IdleCost`]), and a charge with nothing at
//! all to split by goes to [`UNALLOCATED`]. Amounts are exact: the shares of a charge always sum
//! to its amount, to the micro-unit.

use std::collections::BTreeMap;
use std::slice;
use std::sync::Arc;

use super::money::split_proportionally;
use super::SharingPolicy;
use crate::measure::{Capacity, MeterTotals, Resource, ResourceTotals};
use crate::standard::records::{AllocatedCost, CostCategory, CostStatus, Micros};

/// Reserved namespace for the cost of capacity that no namespace allocated.
pub const IDLE: &str = "__idle__";
/// Reserved namespace for cost with no usage and no capacity in its scope.
pub const UNALLOCATED: &str = "__unallocated__";

/// One charge's amount inside one window (already apportioned by time).
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// `CostEvent::source` of the origin charge.
    pub origin_source: String,
    /// `CostEvent::id` of the origin charge.
    pub origin_id: String,
    /// Which usage the charge is split by.
    pub category: CostCategory,
    /// Estimated or final.
    pub status: CostStatus,
    /// ISO 4217 currency of `amount`.
    pub currency: String,
    /// Set when the bill is tagged with a namespace: all of it goes there.
    pub namespace: Option<String>,
    /// The in-window amount, micro-units; negative for credits.
    pub amount: Micros,
    /// Extension resource the charge is apportioned by, instead of its category.
    pub meter: Option<String>,
}

/// Usage of one cluster in one window.
#[derive(Debug, Clone, Copy)]
pub struct ClusterWindow<'a> {
    /// (namespace, totals), each namespace once. Should a name repeat, its totals are added.
    pub namespaces: &'a [(&'a str, &'a ResourceTotals)],
    /// Cluster capacity (node allocatable x time); zero when unknown.
    pub capacity: &'a Capacity,
    /// Extension usage of the namespaces that have any (for charges that name a meter).
    pub meters: &'a [(&'a str, &'a BTreeMap<Arc<str>, MeterTotals>)],
}

/// What happens to the cost of capacity that no namespace allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdleCost {
    /// Charged to its own [`IDLE`] share.
    #[default]
    Separate,
    /// Shared by the namespaces in proportion to what they allocated.
    ShareProRata,
}

/// How charges are split.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocationPolicy {
    /// How license/other costs are weighted across resources; default [(Cpu, 1), (Memory, 1)]
    /// (= 0.5/0.5).
    pub other_weights: Vec<(Resource, u32)>,
    /// Idle capacity cost as its own `__idle__` share (default) or shared pro-rata.
    pub idle: IdleCost,
    /// Platform (and idle) cost moved to the namespaces it serves, after the split.
    pub sharing: SharingPolicy,
}

impl Default for AllocationPolicy {
    fn default() -> Self {
        Self {
            other_weights: vec![(Resource::Cpu, 1), (Resource::Memory, 1)],
            idle: IdleCost::Separate,
            sharing: SharingPolicy::default(),
        }
    }
}

/// A namespace's (or __idle__'s / __unallocated__'s) share of one charge.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceShare {
    /// Kubernetes namespace, [`IDLE`] or [`UNALLOCATED`].
    pub namespace: String,
    /// The share, in FOCUS split cost allocation terms.
    pub cost: AllocatedCost,
}

/// Splits charges over the namespaces of a cluster window by an [`AllocationPolicy`].
///
/// ```
/// use usage_tracker::allocate::{AllocationPolicy, Charge, ClusterWindow, CostAllocator};
/// use usage_tracker::measure::{Capacity, Quantity, Resource, ResourceTotals};
/// use usage_tracker::standard::records::{CostCategory, CostStatus};
///
/// let mut a = ResourceTotals::default();
/// a.get_mut(Resource::Cpu).used = Quantity::from_units(3.0).unwrap();
/// let mut b = ResourceTotals::default();
/// b.get_mut(Resource::Cpu).requested = Quantity::from_units(1.0).unwrap();
/// let namespaces = [("a", &a), ("b", &b)];
/// let window = ClusterWindow { namespaces: &namespaces, capacity: &Capacity::default(), meters: &[] };
/// let charge = Charge {
///     origin_source: "gcp".into(),
///     origin_id: "line-1".into(),
///     category: CostCategory::Compute,
///     status: CostStatus::Final,
///     currency: "EUR".into(),
///     namespace: None,
///     amount: 1_000_000,
///     meter: None,
/// };
/// let shares = CostAllocator::new(AllocationPolicy::default()).allocate(&window, &[charge]);
/// let micros: Vec<_> =
///     shares.iter().map(|s| (s.namespace.as_str(), s.cost.allocated_cost_micros)).collect();
/// assert_eq!(micros, vec![("a", 750_000), ("b", 250_000)]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct CostAllocator {
    policy: AllocationPolicy,
}

impl CostAllocator {
    /// An allocator applying `policy`.
    pub fn new(policy: AllocationPolicy) -> Self {
        Self { policy }
    }

    /// The policy this allocator applies.
    pub fn policy(&self) -> &AllocationPolicy {
        &self.policy
    }

    /// Every charge split over namespaces, __idle__ and __unallocated__. For every charge, the
    /// shares' allocated_cost_micros sum exactly to charge.amount and allocated_ratio sums to 1
    /// (within f64 rounding). Output order deterministic: by charge order, then namespace name.
    ///
    /// The result does not depend on the order of `window.namespaces`.
    pub fn allocate(&self, window: &ClusterWindow<'_>, charges: &[Charge]) -> Vec<NamespaceShare> {
        charges
            .iter()
            .flat_map(|charge| self.allocate_charge(window, charge))
            .collect()
    }

    /// The shares of one charge, by namespace name.
    fn allocate_charge(&self, window: &ClusterWindow<'_>, charge: &Charge) -> Vec<NamespaceShare> {
        let tallies = match &charge.namespace {
            Some(namespace) => BTreeMap::from([(namespace.as_str(), Tally::whole(charge.amount))]),
            None => self.split_untagged(window, charge),
        };
        tallies
            .into_iter()
            .filter(|(_, tally)| tally.micros != 0 || tally.weighted)
            .map(|(namespace, tally)| share(charge, namespace, &tally))
            .collect()
    }

    /// Tallies of a charge split by usage, with their final ratios.
    fn split_untagged<'n>(
        &self,
        window: &ClusterWindow<'n>,
        charge: &Charge,
    ) -> BTreeMap<&'n str, Tally> {
        if let Some(meter) = &charge.meter {
            return split_by_meter(window, charge.amount, meter);
        }
        let parts = self.parts(charge.category, charge.amount);
        if parts.is_empty() {
            return BTreeMap::from([(UNALLOCATED, Tally::whole(charge.amount))]);
        }
        let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
        for part in &parts {
            for portion in split_part(window, part, self.policy.idle) {
                tallies
                    .entry(portion.namespace)
                    .or_default()
                    .add(part, &portion);
            }
        }
        if parts.len() > 1 && charge.amount != 0 {
            for tally in tallies.values_mut() {
                tally.ratio = tally.micros as f64 / charge.amount as f64;
            }
        }
        tallies
    }

    /// The charge split by the usage bases its category names; empty when there are none.
    fn parts(&self, category: CostCategory, amount: Micros) -> Vec<Part<'_>> {
        match basis(category) {
            Some(resources) => vec![Part {
                resources,
                amount,
                fraction: 1.0,
            }],
            None => self.policy_parts(amount),
        }
    }

    /// `amount` split over `policy.other_weights`, zero-weight entries left out.
    fn policy_parts(&self, amount: Micros) -> Vec<Part<'_>> {
        let entries = &self.policy.other_weights;
        let weights: Vec<u128> = entries.iter().map(|&(_, w)| u128::from(w)).collect();
        let total: u128 = weights.iter().sum();
        let amounts = split_proportionally(amount, &weights);
        entries
            .iter()
            .zip(amounts)
            .filter(|((_, weight), _)| *weight > 0)
            .map(|((resource, weight), amount)| Part {
                resources: slice::from_ref(resource),
                amount,
                fraction: f64::from(*weight) / total as f64,
            })
            .collect()
    }
}

/// The resources a category is split by; `None` for the policy-weighted categories.
pub(crate) fn basis(category: CostCategory) -> Option<&'static [Resource]> {
    match category {
        CostCategory::Compute => Some(&[Resource::Cpu]),
        CostCategory::Memory => Some(&[Resource::Memory]),
        CostCategory::Storage => Some(&[Resource::Storage]),
        CostCategory::Network => Some(&[Resource::NetworkRx, Resource::NetworkTx]),
        CostCategory::Gpu => Some(&[Resource::Gpu]),
        CostCategory::License | CostCategory::Other => None,
    }
}

/// A slice of a charge split by one usage basis.
struct Part<'p> {
    /// Whose usage, summed, weighs a namespace.
    resources: &'p [Resource],
    /// Micro-units of this slice.
    amount: Micros,
    /// This slice's share of the charge (its policy weight over the sum of policy weights).
    fraction: f64,
}

/// One receiver's portion of a [`Part`].
struct Portion<'n> {
    namespace: &'n str,
    micros: Micros,
    /// Weight over total weight within the part.
    share: f64,
    /// Whether the receiver had any weight in the part.
    weighted: bool,
}

/// A receiver's accumulated share of one charge.
#[derive(Debug, Default)]
struct Tally {
    micros: Micros,
    ratio: f64,
    weighted: bool,
}

impl Tally {
    /// All of `amount`.
    fn whole(amount: Micros) -> Self {
        Self {
            micros: amount,
            ratio: 1.0,
            weighted: true,
        }
    }

    /// Adds a portion of `part`, its ratio weighted by the part's fraction of the charge.
    fn add(&mut self, part: &Part<'_>, portion: &Portion<'_>) {
        self.micros += portion.micros;
        self.ratio += part.fraction * portion.share;
        self.weighted |= portion.weighted;
    }
}

/// `part` split over the namespaces by their usage, plus idle capacity or `__unallocated__`.
fn split_part<'n>(window: &ClusterWindow<'n>, part: &Part<'_>, idle: IdleCost) -> Vec<Portion<'n>> {
    let mut receivers: Vec<(&'n str, u128)> = namespace_weights(window.namespaces, part.resources)
        .into_iter()
        .collect();
    let allocated: u128 = receivers.iter().map(|&(_, w)| w).sum();
    if idle == IdleCost::Separate {
        let capacity = capacity_of(window.capacity, part.resources);
        receivers.push((IDLE, capacity.saturating_sub(allocated)));
    }
    let weights: Vec<u128> = receivers.iter().map(|&(_, w)| w).collect();
    let total: u128 = weights.iter().sum();
    if total == 0 {
        let unallocated = Portion {
            namespace: UNALLOCATED,
            micros: part.amount,
            share: 1.0,
            weighted: true,
        };
        return vec![unallocated];
    }
    let amounts = split_proportionally(part.amount, &weights);
    receivers
        .into_iter()
        .zip(amounts)
        .map(|((namespace, weight), micros)| Portion {
            namespace,
            micros,
            share: weight as f64 / total as f64,
            weighted: weight > 0,
        })
        .collect()
}

/// A charge that names an extension resource, split by each namespace's allocated quantity of
/// it; `__unallocated__` when nobody has any (extensions have no capacity, hence no idle).
fn split_by_meter<'n>(
    window: &ClusterWindow<'n>,
    amount: Micros,
    meter: &str,
) -> BTreeMap<&'n str, Tally> {
    let mut weights: BTreeMap<&'n str, u128> = BTreeMap::new();
    for &(namespace, meters) in window.meters {
        let weight = meters
            .get(meter)
            .map_or(0, |m| non_negative(m.totals.allocated().micros()));
        *weights.entry(namespace).or_default() += weight;
    }
    weights.retain(|_, w| *w > 0);
    let total: u128 = weights.values().sum();
    if total == 0 {
        return BTreeMap::from([(UNALLOCATED, Tally::whole(amount))]);
    }
    let amounts = split_proportionally(amount, &weights.values().copied().collect::<Vec<_>>());
    weights
        .into_iter()
        .zip(amounts)
        .map(|((namespace, weight), micros)| {
            let tally = Tally {
                micros,
                ratio: weight as f64 / total as f64,
                weighted: true,
            };
            (namespace, tally)
        })
        .collect()
}

/// Each namespace's weight for `resources`, by name (so the split ignores input order).
fn namespace_weights<'n>(
    namespaces: &[(&'n str, &ResourceTotals)],
    resources: &[Resource],
) -> BTreeMap<&'n str, u128> {
    let mut weights = BTreeMap::new();
    for &(namespace, totals) in namespaces {
        let weight: u128 = resources.iter().map(|&r| usage_weight(totals, r)).sum();
        *weights.entry(namespace).or_default() += weight;
    }
    weights
}

/// What a namespace kept of `resource`: bytes moved for network, `max(request, usage)` otherwise.
pub(crate) fn usage_weight(totals: &ResourceTotals, resource: Resource) -> u128 {
    let totals = totals.get(resource);
    let quantity = match resource {
        Resource::NetworkRx | Resource::NetworkTx => totals.used,
        _ => totals.allocated(),
    };
    non_negative(quantity.micros())
}

/// Cluster capacity of `resources`, summed; zero when unknown.
fn capacity_of(capacity: &Capacity, resources: &[Resource]) -> u128 {
    resources
        .iter()
        .map(|&r| non_negative(capacity.get(r).micros()))
        .sum()
}

/// `micros` as a weight; a (malformed) negative quantity weighs nothing.
fn non_negative(micros: i128) -> u128 {
    u128::try_from(micros).unwrap_or(0)
}

/// The [`NamespaceShare`] of `charge` for `namespace`.
fn share(charge: &Charge, namespace: &str, tally: &Tally) -> NamespaceShare {
    NamespaceShare {
        namespace: namespace.to_owned(),
        cost: AllocatedCost {
            origin_source: charge.origin_source.clone(),
            origin_id: charge.origin_id.clone(),
            category: charge.category,
            allocated_ratio: tally.ratio,
            allocated_cost_micros: tally.micros,
            shared_from: None,
            meter: charge.meter.clone(),
        },
    }
}

#[cfg(test)]
mod tests;
