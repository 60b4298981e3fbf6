//! Window state as checkpoints persist it (JSON in `tracker_windows.state`), and back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::store::{ClusterWindow, DedupHasher, NamespaceWindow, WindowStore};
use crate::measure::{Capacity, MeterTotals, Quantity, ResourceTotals, Totals};
use crate::standard::EpochMillis;

/// The window state as persisted in checkpoints.
pub mod persisted {
    use std::collections::BTreeMap;

    /// One namespace window, flattened.
    #[allow(missing_docs)]
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct NamespaceState {
        /// [used, requested, limit] micro-quantities per resource, as decimal strings (i128).
        pub totals: Vec<[String; 3]>,
        pub revision: i64,
        pub content_digest: String,
        #[serde(default)]
        pub cost_micros: i64,
        /// Groups of the namespace's workloads (`[aggregation]`), each with its own state.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub groups: Vec<GroupState>,
        /// Extension resources: (name, unit, [used, requested, limit]).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub meters: Vec<(String, String, [String; 3])>,
        /// The part of `totals` from workloads shared wherever they run, like `totals`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub shared: Vec<[String; 3]>,
    }

    /// One group of a namespace.
    #[allow(missing_docs)]
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct GroupState {
        pub by: String,
        pub value: String,
        #[serde(flatten)]
        pub state: NamespaceState,
    }

    /// One cluster window, flattened.
    #[allow(missing_docs)]
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct ClusterState {
        pub cluster_name: Option<String>,
        pub capacity: Vec<String>,
        pub closed: bool,
        pub namespaces: BTreeMap<String, NamespaceState>,
    }
}

impl WindowStore {
    /// Cluster windows changed since their last emission, as persisted state.
    pub fn export_changed(&self) -> Vec<(Arc<str>, EpochMillis, persisted::ClusterState)> {
        let mut out = Vec::new();
        for (&start, clusters) in &self.windows {
            for (id, c) in clusters.iter().filter(|(_, c)| c.changed) {
                out.push((id.clone(), start, export_cluster(c)));
            }
        }
        out
    }

    /// Restores persisted state (at start-up).
    pub fn import(
        &mut self,
        cluster_id: &str,
        window_start: EpochMillis,
        state: persisted::ClusterState,
    ) -> Result<(), String> {
        let id: Arc<str> = Arc::from(cluster_id);
        let cluster = self.cluster_window_mut(&id, window_start);
        *cluster = import_cluster(state)?;
        Ok(())
    }

    /// Restores dedup keys and the watermark (at start-up).
    pub fn import_seen(&mut self, window_start: EpochMillis, key: u128) {
        self.seen
            .entry(window_start)
            .or_insert_with(|| HashSet::with_hasher(DedupHasher::new()))
            .insert(key);
    }

    /// Restores the watermark (at start-up).
    pub fn import_watermark(&mut self, watermark: Option<EpochMillis>) {
        self.watermark = watermark;
    }
}

fn export_cluster(c: &ClusterWindow) -> persisted::ClusterState {
    let namespaces = c
        .namespaces
        .iter()
        .map(|(name, w)| (name.to_string(), export_namespace(w)))
        .collect();
    persisted::ClusterState {
        cluster_name: c.cluster_name.as_deref().map(str::to_owned),
        capacity: c
            .capacity
            .0
            .iter()
            .map(|q| q.micros().to_string())
            .collect(),
        closed: c.closed,
        namespaces,
    }
}

fn export_namespace(w: &NamespaceWindow) -> persisted::NamespaceState {
    let totals = export_totals(&w.totals);
    let mut groups: Vec<persisted::GroupState> = w
        .groups
        .iter()
        .map(|((by, value), g)| persisted::GroupState {
            by: by.to_string(),
            value: value.to_string(),
            state: export_namespace(g),
        })
        .collect();
    groups.sort_by(|a, b| (&a.by, &a.value).cmp(&(&b.by, &b.value)));
    let meters = w
        .meters
        .iter()
        .map(|(name, m)| {
            let t = &m.totals;
            (
                name.to_string(),
                m.unit.to_string(),
                [t.used, t.requested, t.limit].map(|q| q.micros().to_string()),
            )
        })
        .collect();
    let shared = if w.shared == ResourceTotals::default() {
        Vec::new()
    } else {
        export_totals(&w.shared)
    };
    persisted::NamespaceState {
        totals,
        revision: w.revision,
        content_digest: w.content_digest.to_string(),
        cost_micros: w.cost_micros,
        groups,
        meters,
        shared,
    }
}

fn export_totals(totals: &ResourceTotals) -> Vec<[String; 3]> {
    totals
        .0
        .iter()
        .map(|t| [t.used, t.requested, t.limit].map(|q| q.micros().to_string()))
        .collect()
}

fn quantity(text: &str) -> Result<Quantity, String> {
    text.parse::<i128>()
        .map(Quantity::from_micros)
        .map_err(|e| format!("quantity {text:?}: {e}"))
}

fn import_cluster(state: persisted::ClusterState) -> Result<ClusterWindow, String> {
    let mut capacity = Capacity::default();
    for (slot, text) in capacity.0.iter_mut().zip(&state.capacity) {
        *slot = quantity(text)?;
    }
    let namespaces = state
        .namespaces
        .into_iter()
        .map(|(name, ns)| Ok((Arc::from(name), import_namespace(ns)?)))
        .collect::<Result<HashMap<_, _>, String>>()?;
    let meter_units = namespaces
        .values()
        .flat_map(|n: &NamespaceWindow| n.meters.iter())
        .map(|(name, m)| (name.clone(), m.unit.clone()))
        .collect();
    Ok(ClusterWindow {
        cluster_name: state.cluster_name.map(Arc::from),
        capacity,
        namespaces,
        meter_units,
        closed: state.closed,
        changed: false,
    })
}

fn import_totals(text: &[[String; 3]]) -> Result<ResourceTotals, String> {
    let mut totals = ResourceTotals::default();
    for (slot, [used, requested, limit]) in totals.0.iter_mut().zip(text) {
        slot.used = quantity(used)?;
        slot.requested = quantity(requested)?;
        slot.limit = quantity(limit)?;
    }
    Ok(totals)
}

fn import_namespace(ns: persisted::NamespaceState) -> Result<NamespaceWindow, String> {
    let totals = import_totals(&ns.totals)?;
    let shared = import_totals(&ns.shared)?;
    let content_digest = ns
        .content_digest
        .parse()
        .map_err(|e| format!("digest: {e}"))?;
    let groups = ns
        .groups
        .into_iter()
        .map(|g| {
            let key = (Arc::from(g.by), Arc::from(g.value));
            Ok((key, import_namespace(g.state)?))
        })
        .collect::<Result<HashMap<_, _>, String>>()?;
    let meters = ns
        .meters
        .into_iter()
        .map(|(name, unit, [used, requested, limit])| {
            let totals = Totals {
                used: quantity(&used)?,
                requested: quantity(&requested)?,
                limit: quantity(&limit)?,
            };
            let unit = Arc::from(unit);
            Ok((Arc::from(name), MeterTotals { unit, totals }))
        })
        .collect::<Result<_, String>>()?;
    Ok(NamespaceWindow {
        totals,
        groups,
        meters,
        shared,
        revision: ns.revision,
        content_digest,
        cost_micros: ns.cost_micros,
    })
}
