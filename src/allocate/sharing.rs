//! Shared cost: the cost of platform namespaces (and, if asked, of idle capacity) moved to the
//! namespaces the platform serves. Pure, no I/O.
//!
//! Sharing runs after [`super::CostAllocator::allocate`], charge by charge: every share of a
//! charge held by a shared namespace (or by [`IDLE`]) is split over the receiving namespaces of
//! the same cluster window and moved to them, each moved part naming where it came from
//! (`shared_from`). Money is moved, never created or lost: per charge, the shares after sharing
//! sum to the same amount as before, to the micro-unit (largest remainder, ties to the receiver
//! first by name), and their ratios still sum to 1.

use std::collections::{BTreeMap, BTreeSet};

use super::money::split_proportionally;
use super::{NamespaceShare, IDLE, UNALLOCATED};

/// How a shared share is divided among the receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SplitRule {
    /// In proportion to each receiver's own share of the same charge (evenly when no receiver
    /// has any).
    #[default]
    Proportional,
    /// Equal parts.
    Even,
    /// By configured weights; a receiver without a weight gets none (evenly when all are zero).
    Weighted,
}

/// Which cost is shared, and with whom.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharingPolicy {
    /// Namespaces whose cost is shared (globs such as `kube-*`).
    pub namespaces: Vec<glob::Pattern>,
    /// Whether the cost of idle capacity ([`IDLE`]) is shared too.
    pub share_idle: bool,
    /// How each shared share is divided.
    pub split: SplitRule,
    /// Receiver weights for [`SplitRule::Weighted`].
    pub weights: BTreeMap<String, u64>,
    /// Who receives (globs); empty: every namespace that is not shared.
    pub receivers: Vec<glob::Pattern>,
    /// Workloads shared wherever they run: a workload with any of these labels is shared.
    pub labels: Vec<SharedLabel>,
}

/// A pod label that marks a workload as shared wherever it runs. The key matches as written and
/// de-dotted (`app_kubernetes_io/part-of`), as Elastic writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLabel {
    key: String,
    dedotted: String,
    value: String,
}

impl SharedLabel {
    /// The label `key = value`.
    pub fn new(key: &str, value: &str) -> Self {
        Self {
            key: key.to_owned(),
            dedotted: key.replace('.', "_"),
            value: value.to_owned(),
        }
    }
}

/// Suffix of the share name under which the allocator sees a namespace's workloads that are
/// shared wherever they run (`<namespace>/shared-workloads`): a `/` never occurs in a namespace,
/// so it is no namespace's name. Moved parts name it in `shared_from`.
pub const SHARED_WORKLOADS: &str = "/shared-workloads";

impl SharingPolicy {
    /// Whether anything is shared at all.
    pub fn is_active(&self) -> bool {
        self.share_idle || !self.namespaces.is_empty() || !self.labels.is_empty()
    }

    /// Whether `namespace`'s cost is shared out.
    pub fn is_shared(&self, namespace: &str) -> bool {
        match namespace {
            IDLE => self.share_idle,
            UNALLOCATED => false,
            _ if namespace.ends_with(SHARED_WORKLOADS) => true,
            _ => self.namespaces.iter().any(|p| p.matches(namespace)),
        }
    }

    /// Whether a workload with these labels is shared wherever it runs.
    pub fn is_shared_workload(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().any(|l| {
            labels
                .get(&l.key)
                .or_else(|| labels.get(&l.dedotted))
                .is_some_and(|v| *v == l.value)
        })
    }

    /// The namespace a share name belongs to: itself, or the namespace of its shared workloads.
    pub fn namespace_of(name: &str) -> &str {
        name.strip_suffix(SHARED_WORKLOADS).unwrap_or(name)
    }

    /// Whether `namespace` receives shared cost.
    pub fn is_receiver(&self, namespace: &str) -> bool {
        namespace != IDLE
            && namespace != UNALLOCATED
            && !self.is_shared(namespace)
            && (self.receivers.is_empty() || self.receivers.iter().any(|p| p.matches(namespace)))
    }

    /// The shares after sharing. `shares` are one cluster window's, as the allocator returns
    /// them (grouped by charge, at most one per namespace and charge); `present` names every
    /// namespace of the window (those with usage but no share can receive an even or weighted
    /// part). Shares of a charge keep their order; moved parts follow them, by receiver, then
    /// source. When no namespace of the window receives, nothing moves.
    pub fn share(&self, shares: Vec<NamespaceShare>, present: &[&str]) -> Vec<NamespaceShare> {
        if !self.is_active() {
            return shares;
        }
        let mut receivers: BTreeSet<&str> = present
            .iter()
            .copied()
            .filter(|n| self.is_receiver(n))
            .collect();
        receivers.extend(
            shares
                .iter()
                .map(|s| s.namespace.as_str())
                .filter(|n| self.is_receiver(n)),
        );
        let receivers: Vec<String> = receivers.into_iter().map(str::to_owned).collect();
        if receivers.is_empty() {
            return shares;
        }
        let mut out = Vec::with_capacity(shares.len() + receivers.len());
        for charge in by_charge(shares) {
            self.share_charge(charge, &receivers, &mut out);
        }
        out
    }

    /// One charge's shares, sharing applied, appended to `out`.
    fn share_charge(
        &self,
        charge: Vec<NamespaceShare>,
        receivers: &[String],
        out: &mut Vec<NamespaceShare>,
    ) {
        let (mut sources, kept): (Vec<NamespaceShare>, Vec<NamespaceShare>) = charge
            .into_iter()
            .partition(|s| s.cost.shared_from.is_none() && self.is_shared(&s.namespace));
        let weights = self.weights(&kept, receivers);
        // Shared namespaces by name, idle last.
        sources.sort_by(|a, b| {
            (a.namespace == IDLE, &a.namespace).cmp(&(b.namespace == IDLE, &b.namespace))
        });
        let mut moved: Vec<NamespaceShare> = Vec::new();
        let total: u128 = weights.iter().sum();
        for source in sources {
            let parts = split_proportionally(source.cost.allocated_cost_micros, &weights);
            for ((receiver, &weight), micros) in receivers.iter().zip(&weights).zip(parts) {
                if weight == 0 {
                    continue;
                }
                let mut cost = source.cost.clone();
                cost.allocated_cost_micros = micros;
                cost.allocated_ratio = source.cost.allocated_ratio * weight as f64 / total as f64;
                cost.shared_from = Some(source.namespace.clone());
                moved.push(NamespaceShare {
                    namespace: receiver.clone(),
                    cost,
                });
            }
        }
        moved.sort_by(|a, b| {
            (
                &a.namespace,
                a.cost.shared_from.as_deref() == Some(IDLE),
                &a.cost.shared_from,
            )
                .cmp(&(
                    &b.namespace,
                    b.cost.shared_from.as_deref() == Some(IDLE),
                    &b.cost.shared_from,
                ))
        });
        out.extend(kept);
        out.extend(moved);
    }

    /// Each receiver's weight for one charge, in receiver order; never all zero.
    fn weights(&self, kept: &[NamespaceShare], receivers: &[String]) -> Vec<u128> {
        let weights: Vec<u128> = match self.split {
            SplitRule::Even => vec![1; receivers.len()],
            SplitRule::Proportional => receivers
                .iter()
                .map(|r| {
                    kept.iter()
                        .filter(|s| &s.namespace == r)
                        .map(|s| u128::from(s.cost.allocated_cost_micros.unsigned_abs()))
                        .sum()
                })
                .collect(),
            SplitRule::Weighted => receivers
                .iter()
                .map(|r| u128::from(self.weights.get(r).copied().unwrap_or(0)))
                .collect(),
        };
        if weights.iter().all(|&w| w == 0) {
            vec![1; receivers.len()]
        } else {
            weights
        }
    }
}

/// Shares grouped by origin charge, in order of first appearance.
fn by_charge(shares: Vec<NamespaceShare>) -> Vec<Vec<NamespaceShare>> {
    let mut groups: Vec<Vec<NamespaceShare>> = Vec::new();
    for share in shares {
        match groups.last_mut() {
            Some(group)
                if group[0].cost.origin_source == share.cost.origin_source
                    && group[0].cost.origin_id == share.cost.origin_id =>
            {
                group.push(share)
            }
            _ => groups.push(vec![share]),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standard::{AllocatedCost, CostCategory};
    use proptest::prelude::*;

    fn share(charge: &str, namespace: &str, micros: i64, ratio: f64) -> NamespaceShare {
        NamespaceShare {
            namespace: namespace.into(),
            cost: AllocatedCost {
                origin_source: "test://bill".into(),
                origin_id: charge.into(),
                category: CostCategory::Compute,
                allocated_ratio: ratio,
                allocated_cost_micros: micros,
                shared_from: None,
                meter: None,
            },
        }
    }

    fn policy(namespaces: &[&str], share_idle: bool, split: SplitRule) -> SharingPolicy {
        SharingPolicy {
            namespaces: namespaces
                .iter()
                .map(|p| glob::Pattern::new(p).unwrap())
                .collect(),
            share_idle,
            split,
            ..Default::default()
        }
    }

    /// (namespace, shared_from, micros) of every share.
    fn flat(shares: &[NamespaceShare]) -> Vec<(String, Option<String>, i64)> {
        shares
            .iter()
            .map(|s| {
                (
                    s.namespace.clone(),
                    s.cost.shared_from.clone(),
                    s.cost.allocated_cost_micros,
                )
            })
            .collect()
    }

    fn row(namespace: &str, from: Option<&str>, micros: i64) -> (String, Option<String>, i64) {
        (namespace.into(), from.map(str::to_owned), micros)
    }

    /// A charge of 1000: idle 500, argocd 100, project-a 300, project-b 100.
    fn window() -> Vec<NamespaceShare> {
        vec![
            share("c", IDLE, 500, 0.5),
            share("c", "argocd", 100, 0.1),
            share("c", "project-a", 300, 0.3),
            share("c", "project-b", 100, 0.1),
        ]
    }

    #[test]
    fn proportional_follows_each_receivers_own_share() {
        // argocd 100 split 3:1 -> 75, 25; idle 500 split 3:1 -> 375, 125.
        let shares = policy(&["argocd"], true, SplitRule::Proportional)
            .share(window(), &["argocd", "project-a", "project-b"]);
        assert_eq!(
            flat(&shares),
            vec![
                row("project-a", None, 300),
                row("project-b", None, 100),
                row("project-a", Some("argocd"), 75),
                row("project-a", Some(IDLE), 375),
                row("project-b", Some("argocd"), 25),
                row("project-b", Some(IDLE), 125),
            ]
        );
        let ratio: f64 = shares.iter().map(|s| s.cost.allocated_ratio).sum();
        assert!((ratio - 1.0).abs() < 1e-12);
    }

    #[test]
    fn even_split_reaches_receivers_without_a_share_and_rounds_by_largest_remainder() {
        // argocd 100 over a, b, c evenly: 33.33 each, the leftover unit to the first by name.
        let shares = policy(&["argo*"], false, SplitRule::Even)
            .share(window(), &["argocd", "project-a", "project-b", "project-c"]);
        assert_eq!(
            flat(&shares),
            vec![
                row(IDLE, None, 500),
                row("project-a", None, 300),
                row("project-b", None, 100),
                row("project-a", Some("argocd"), 34),
                row("project-b", Some("argocd"), 33),
                row("project-c", Some("argocd"), 33),
            ]
        );
    }

    #[test]
    fn weighted_split_uses_the_weights_and_receivers_filter() {
        // Receivers project-*: weights a 3, b 1 (c has none): argocd 100 -> 75, 25.
        let mut policy = policy(&["argocd"], false, SplitRule::Weighted);
        policy.weights = BTreeMap::from([("project-a".into(), 3), ("project-b".into(), 1)]);
        policy.receivers = vec![glob::Pattern::new("project-*").unwrap()];
        let shares = policy.share(window(), &["argocd", "other", "project-a", "project-b"]);
        assert_eq!(
            flat(&shares),
            vec![
                row(IDLE, None, 500),
                row("project-a", None, 300),
                row("project-b", None, 100),
                row("project-a", Some("argocd"), 75),
                row("project-b", Some("argocd"), 25),
            ]
        );
    }

    #[test]
    fn without_receivers_nothing_moves() {
        let shares = policy(&["*"], true, SplitRule::Even).share(window(), &["argocd"]);
        assert_eq!(shares, window());
    }

    #[test]
    fn unallocated_is_never_shared_nor_receives() {
        let shares = vec![share("c", UNALLOCATED, 7, 1.0)];
        let out = policy(&["*"], true, SplitRule::Even).share(shares.clone(), &["project-a"]);
        assert_eq!(out, shares);
    }

    fn split_rule() -> impl Strategy<Value = SplitRule> {
        prop::sample::select(vec![
            SplitRule::Proportional,
            SplitRule::Even,
            SplitRule::Weighted,
        ])
    }

    proptest! {
        #[test]
        fn sharing_conserves_every_charge_exactly(
            charges in prop::collection::vec(
                (any::<i32>(), prop::collection::btree_map(
                    prop::sample::select(vec![IDLE, UNALLOCATED, "argocd", "kube-x", "p-a", "p-b", "q"]),
                    0u32..1000, 1..7)),
                1..4),
            shared in prop::collection::vec(prop::sample::select(vec!["argocd", "kube-*", "p-*", "q"]), 0..3),
            share_idle in any::<bool>(),
            split in split_rule(),
            weights in prop::collection::btree_map(prop::sample::select(vec!["p-a", "p-b", "q"]), 0u64..5, 0..3),
            receivers in prop::collection::vec(prop::sample::select(vec!["p-*", "q", "argocd"]), 0..2),
            present in prop::collection::vec(prop::sample::select(vec!["p-a", "p-c", "q", "argocd"]), 0..4),
        ) {
            // Each charge split over its namespaces by the drawn weights, sign of the amount.
            let mut shares = Vec::new();
            for (i, (amount, by)) in charges.iter().enumerate() {
                let names: Vec<&str> = by.keys().copied().collect();
                let weights: Vec<u128> = by.values().map(|&w| u128::from(w) + 1).collect();
                let total: u128 = weights.iter().sum();
                let parts = split_proportionally(i64::from(*amount), &weights);
                for ((name, micros), w) in names.iter().zip(parts).zip(&weights) {
                    shares.push(share(&format!("c{i}"), name, micros, *w as f64 / total as f64));
                }
            }
            let mut policy = policy(&shared, share_idle, split);
            policy.weights = weights.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            policy.receivers = receivers.iter().map(|p| glob::Pattern::new(p).unwrap()).collect();
            let out = policy.share(shares.clone(), &present);
            for (i, (amount, _)) in charges.iter().enumerate() {
                let id = format!("c{i}");
                let mine: Vec<_> = out.iter().filter(|s| s.cost.origin_id == id).collect();
                let sum: i64 = mine.iter().map(|s| s.cost.allocated_cost_micros).sum();
                prop_assert_eq!(sum, i64::from(*amount));
                let ratio: f64 = mine.iter().map(|s| s.cost.allocated_ratio).sum();
                prop_assert!((ratio - 1.0).abs() < 1e-9, "ratios sum to {}", ratio);
                let moved_out = mine.iter().any(|s| s.cost.shared_from.is_some());
                for s in &mine {
                    // A shared namespace keeps nothing once something moved; moved parts land on
                    // receivers only.
                    if moved_out {
                        prop_assert!(!policy.is_shared(&s.namespace) || s.namespace == UNALLOCATED);
                    }
                    if s.cost.shared_from.is_some() {
                        prop_assert!(policy.is_receiver(&s.namespace));
                    }
                }
            }
        }
    }
}
