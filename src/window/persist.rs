//! Window state as checkpoints persist it (JSON in `tracker_windows.state`), and back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::store::{ClusterWindow, DedupHasher, NamespaceWindow, WindowStore};
use crate::measure::{Capacity, Quantity, ResourceTotals};
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
        .map(|(name, w)| {
            let totals = w
                .totals
                .0
                .iter()
                .map(|t| [t.used, t.requested, t.limit].map(|q| q.micros().to_string()))
                .collect();
            let state = persisted::NamespaceState {
                totals,
                revision: w.revision,
                content_digest: w.content_digest.to_string(),
                cost_micros: w.cost_micros,
            };
            (name.to_string(), state)
        })
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

fn import_cluster(state: persisted::ClusterState) -> Result<ClusterWindow, String> {
    let q = |s: &str| {
        s.parse::<i128>()
            .map(Quantity::from_micros)
            .map_err(|e| format!("quantity {s:?}: {e}"))
    };
    let mut capacity = Capacity::default();
    for (slot, text) in capacity.0.iter_mut().zip(&state.capacity) {
        *slot = q(text)?;
    }
    let mut namespaces = HashMap::new();
    for (name, ns) in state.namespaces {
        let mut totals = ResourceTotals::default();
        for (slot, [used, requested, limit]) in totals.0.iter_mut().zip(&ns.totals) {
            slot.used = q(used)?;
            slot.requested = q(requested)?;
            slot.limit = q(limit)?;
        }
        let content_digest = ns
            .content_digest
            .parse()
            .map_err(|e| format!("digest: {e}"))?;
        namespaces.insert(
            Arc::from(name),
            NamespaceWindow {
                totals,
                revision: ns.revision,
                content_digest,
                cost_micros: ns.cost_micros,
            },
        );
    }
    Ok(ClusterWindow {
        cluster_name: state.cluster_name.map(Arc::from),
        capacity,
        namespaces,
        closed: state.closed,
        changed: false,
    })
}
