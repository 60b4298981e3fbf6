//! Usage state per (cluster, namespace, window), and the records it turns into.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::measure::{Capacity, MeterTotals, Quantity, Resource, ResourceTotals, Totals};
use crate::standard::{EpochMillis, MeasurementKind, ResourceUsage, WindowStatus};

use super::WindowConfig;

/// A validated usage observation, ready to be windowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Stable 128-bit digest of (source, id): the dedup key.
    pub dedup_key: u128,
    /// Cluster identity.
    pub cluster_id: Arc<str>,
    /// Cluster display name.
    pub cluster_name: Option<Arc<str>>,
    /// Namespace; `None` for cluster capacity.
    pub namespace: Option<Arc<str>>,
    /// Interval start, inclusive.
    pub start: EpochMillis,
    /// Interval end, exclusive.
    pub end: EpochMillis,
    /// Known resources only; capacity only when `namespace` is `None`.
    pub quantities: Vec<(Resource, MeasurementKind, Quantity)>,
    /// The groups of the namespace the sample also counts in, one per configured dimension
    /// (`[aggregation]`); empty when none is configured.
    pub groups: Vec<GroupKey>,
    /// Extension resources (`x-<vendor>-<name>`, any meter) with their units; namespaced
    /// usage, requests and limits only.
    pub meters: Vec<MeterQuantity>,
    /// From a workload whose cost is shared wherever it runs (`[sharing] labels`): counted in
    /// its namespace, and apart as the namespace's shared part.
    pub shared: bool,
}

/// A group of workloads inside a namespace: (`label:<key>` or `workload`, value).
pub type GroupKey = (Arc<str>, Arc<str>);

/// Extension resources' totals, by name.
pub type Meters = BTreeMap<Arc<str>, MeterTotals>;

/// One extension measurement: (meter, unit, kind, quantity).
pub type MeterQuantity = (Arc<str>, Arc<str>, MeasurementKind, Quantity);

/// The most extension resources one cluster window holds (standard §3.8): each is a column of
/// every record, so a producer inventing names cannot grow the state without bound.
pub const MAX_METERS_PER_CLUSTER_WINDOW: usize = 64;

/// Why a sample's extension measurements cannot be counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeterRefusal {
    /// A meter already counted in the cluster window in another unit.
    UnitMismatch,
    /// The cluster window holds [`MAX_METERS_PER_CLUSTER_WINDOW`] meters already.
    TooMany,
}

/// What happened to a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Counted.
    Applied,
    /// Counted, into windows that had closed already (they get a new revision).
    AppliedLate,
    /// Same (source, id) seen before: not counted again.
    Duplicate,
    /// Older than the retention horizon: goes to the dead-letter topic.
    TooLate,
    /// Its extension measurements break a rule of the cluster window: dead-lettered whole.
    MeterRefused(MeterRefusal),
}

/// A new revision of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision {
    /// The revision number, from 1.
    pub revision: i64,
    /// Cost of the previous revision (0 before the first).
    pub previous_cost_micros: i64,
}

/// Identity of one usage record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WindowKey {
    /// Cluster identity.
    pub cluster_id: Arc<str>,
    /// Namespace (or `__idle__` / `__unallocated__`).
    pub namespace: Arc<str>,
    /// Window start.
    pub window_start: EpochMillis,
    /// `None` for the namespace record, else the group's record.
    pub group: Option<GroupKey>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NamespaceWindow {
    pub(crate) totals: ResourceTotals,
    /// Usage per group of the namespace's workloads; empty for groups themselves.
    pub(crate) groups: HashMap<GroupKey, NamespaceWindow>,
    /// Extension resources, by name.
    pub(crate) meters: BTreeMap<Arc<str>, MeterTotals>,
    /// The part of `totals` from workloads shared wherever they run.
    pub(crate) shared: ResourceTotals,
    /// Last emitted revision and a digest of its content.
    pub(crate) revision: i64,
    pub(crate) content_digest: u64,
    /// Cost of the last emitted revision, for net cost metrics.
    pub(crate) cost_micros: i64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterWindow {
    pub(crate) cluster_name: Option<Arc<str>>,
    pub(crate) capacity: Capacity,
    pub(crate) namespaces: HashMap<Arc<str>, NamespaceWindow>,
    /// The unit of every extension resource counted in the window.
    pub(crate) meter_units: BTreeMap<Arc<str>, Arc<str>>,
    pub(crate) closed: bool,
    /// Usage, capacity, bills or status changed since the last emission.
    pub(crate) changed: bool,
}

/// Hashes dedup keys for the `seen` sets. They are xxh3-128 digests already, so SipHash over
/// them again (std's default, ~20 % of `apply`) buys nothing; a multiply-fold of the two halves
/// with per-set random keys spreads them as well, and the random keys keep bucket positions
/// unpredictable across processes.
#[derive(Debug, Clone, Copy)]
pub(super) struct DedupHasher {
    keys: (u64, u64),
}

impl DedupHasher {
    pub(super) fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // Randomness from std's RandomState (seeded per process, varied per instance).
        let random = std::collections::hash_map::RandomState::new();
        let mut a = random.build_hasher();
        a.write_u8(1);
        let mut b = random.build_hasher();
        b.write_u8(2);
        Self {
            keys: (a.finish(), b.finish() | 1),
        }
    }
}

impl std::hash::BuildHasher for DedupHasher {
    type Hasher = DedupKeyHasher;

    fn build_hasher(&self) -> DedupKeyHasher {
        DedupKeyHasher {
            keys: self.keys,
            state: 0,
        }
    }
}

/// The [`std::hash::Hasher`] of [`DedupHasher`].
#[derive(Debug)]
pub(super) struct DedupKeyHasher {
    keys: (u64, u64),
    state: u64,
}

impl std::hash::Hasher for DedupKeyHasher {
    fn write_u128(&mut self, key: u128) {
        let folded =
            u128::from((key as u64) ^ self.keys.0) * u128::from(((key >> 64) as u64) ^ self.keys.1);
        self.state ^= (folded as u64) ^ ((folded >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by `u128` keys; any other input still hashes soundly, if slowly.
        for chunk in bytes.chunks(16) {
            let mut buf = [0u8; 16];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u128(u128::from_le_bytes(buf) ^ chunk.len() as u128);
        }
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

/// The state of every open (and recently closed) window. Pure: processing time is passed in.
#[derive(Debug, Clone)]
pub struct WindowStore {
    config: WindowConfig,
    pub(super) windows: BTreeMap<EpochMillis, HashMap<Arc<str>, ClusterWindow>>,
    pub(super) seen: BTreeMap<EpochMillis, HashSet<u128, DedupHasher>>,
    unsaved_seen: Vec<(EpochMillis, u128)>,
    pub(super) watermark: Option<EpochMillis>,
}

/// A read-only view of one cluster window, for allocation and emission.
pub struct ClusterWindowView<'a> {
    /// Cluster identity.
    pub cluster_id: &'a Arc<str>,
    /// Window start.
    pub window_start: EpochMillis,
    /// Window end.
    pub window_end: EpochMillis,
    /// Open or closed.
    pub status: WindowStatus,
    /// Cluster display name.
    pub cluster_name: Option<&'a Arc<str>>,
    /// Capacity seen in the window.
    pub capacity: &'a Capacity,
    /// Namespaces with usage, sorted by name.
    pub namespaces: Vec<(&'a Arc<str>, &'a ResourceTotals)>,
    /// (namespace, group, usage, extension usage) of every group, sorted.
    pub groups: Vec<(&'a Arc<str>, &'a GroupKey, &'a ResourceTotals, &'a Meters)>,
    /// Extension usage of the namespaces that have any, sorted by namespace.
    pub meters: Vec<(&'a Arc<str>, &'a Meters)>,
    /// The part of each namespace's usage from workloads shared wherever they run, for those
    /// that have any, sorted by namespace.
    pub shared: Vec<(&'a Arc<str>, &'a ResourceTotals)>,
}

impl WindowStore {
    /// An empty store.
    pub fn new(config: WindowConfig) -> Self {
        Self {
            config,
            windows: BTreeMap::new(),
            seen: BTreeMap::new(),
            unsaved_seen: Vec::new(),
            watermark: None,
        }
    }

    /// The time rules in force.
    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// The watermark the store last closed windows at.
    pub fn watermark(&self) -> Option<EpochMillis> {
        self.watermark
    }

    /// Whether windows starting at `window_start` are past the retention horizon.
    pub fn is_expired(&self, window_start: EpochMillis) -> bool {
        let end = self.config.spec.end_of(window_start);
        self.watermark
            .is_some_and(|w| end + self.config.retention_ms <= w)
    }

    /// Counts a sample into the windows it overlaps, pro-rata by time.
    pub fn apply(&mut self, sample: &Sample) -> Admission {
        let spec = self.config.spec;
        let first_window = spec.start_of(sample.start);
        if self.is_expired(first_window) {
            return Admission::TooLate;
        }
        if !sample.meters.is_empty() {
            if let Err(refusal) = self.check_meters(sample, first_window) {
                return Admission::MeterRefused(refusal);
            }
        }
        if !self
            .seen
            .entry(first_window)
            .or_insert_with(|| HashSet::with_hasher(DedupHasher::new()))
            .insert(sample.dedup_key)
        {
            return Admission::Duplicate;
        }
        self.unsaved_seen.push((first_window, sample.dedup_key));
        if sample.quantities.is_empty() && sample.meters.is_empty() {
            return Admission::Applied; // Nothing to count, no window to open.
        }
        // The windows of `spec.pieces(start, end)`, walked without collecting them: almost every
        // sample lies in one window, and then each quantity goes there whole.
        let (start, end) = (sample.start, sample.end);
        let last_window = if end <= start {
            first_window
        } else {
            spec.start_of(end - 1)
        };
        let overlap = |window: EpochMillis| {
            if end <= start {
                0
            } else {
                end.min(spec.end_of(window)) - start.max(window)
            }
        };
        let duration = (end - start).max(0) as i128;
        let mut late = false;
        let mut window = first_window;
        while window < last_window {
            let window_overlap = overlap(window) as i128;
            late |= self.add(sample, window, |q| q.scale(window_overlap, duration));
            window = spec.end_of(window);
        }
        // Integer split; the last window takes the remainder so nothing is lost.
        late |= self.add(sample, last_window, |q| {
            let mut left = q;
            let mut earlier = first_window;
            while earlier < last_window {
                left = left - q.scale(overlap(earlier) as i128, duration);
                earlier = spec.end_of(earlier);
            }
            left
        });
        if late {
            Admission::AppliedLate
        } else {
            Admission::Applied
        }
    }

    /// Whether the sample's meters fit every cluster window it touches: one unit per meter,
    /// at most [`MAX_METERS_PER_CLUSTER_WINDOW`] meters.
    fn check_meters(&self, sample: &Sample, first_window: EpochMillis) -> Result<(), MeterRefusal> {
        // The sample's own meters, each once, with one unit.
        let mut meters: Vec<(&Arc<str>, &Arc<str>)> = Vec::with_capacity(sample.meters.len());
        for (meter, unit, _, _) in &sample.meters {
            match meters.iter().find(|(m, _)| *m == meter) {
                Some((_, known)) if *known != unit => return Err(MeterRefusal::UnitMismatch),
                Some(_) => {}
                None => meters.push((meter, unit)),
            }
        }
        let spec = self.config.spec;
        let last_window = spec.start_of(sample.end.max(sample.start + 1) - 1);
        let mut window = first_window;
        while window <= last_window {
            let units = self
                .windows
                .get(&window)
                .and_then(|c| c.get(&sample.cluster_id))
                .map(|c| &c.meter_units);
            let mut new = 0;
            for (meter, unit) in &meters {
                match units.and_then(|u| u.get(*meter)) {
                    Some(known) if known != *unit => return Err(MeterRefusal::UnitMismatch),
                    Some(_) => {}
                    None => new += 1,
                }
            }
            if units.map_or(0, BTreeMap::len) + new > MAX_METERS_PER_CLUSTER_WINDOW {
                return Err(MeterRefusal::TooMany);
            }
            window = spec.end_of(window);
        }
        Ok(())
    }

    /// Adds the sample's quantities, each scaled by `share`, to one window: one look-up of the
    /// window, the cluster and (if needed) the namespace. Returns whether the window had closed
    /// already.
    fn add(
        &mut self,
        sample: &Sample,
        window_start: EpochMillis,
        share: impl Fn(Quantity) -> Quantity,
    ) -> bool {
        let clusters = self.windows.entry(window_start).or_default();
        // get_mut first: no clone of the cluster id's Arc (two atomic operations) when the
        // cluster window exists, which is almost always.
        if let Some(cluster) = clusters.get_mut(&sample.cluster_id) {
            return add_to_cluster(cluster, sample, share);
        }
        let cluster = clusters.entry(sample.cluster_id.clone()).or_default();
        add_to_cluster(cluster, sample, share)
    }

    pub(super) fn cluster_window_mut(
        &mut self,
        cluster_id: &Arc<str>,
        window_start: EpochMillis,
    ) -> &mut ClusterWindow {
        self.windows
            .entry(window_start)
            .or_default()
            .entry(cluster_id.clone())
            .or_default()
    }

    /// Marks a cluster window as needing re-allocation (a bill changed), creating it if needed
    /// so that cost without usage still shows up, as `__unallocated__`.
    pub fn touch(&mut self, cluster_id: &str, window_start: EpochMillis) {
        if self.is_expired(window_start) {
            return;
        }
        let id: Arc<str> = Arc::from(cluster_id);
        let closed = self
            .watermark
            .is_some_and(|w| self.config.spec.end_of(window_start) <= w);
        let cluster = self.cluster_window_mut(&id, window_start);
        cluster.changed = true;
        cluster.closed |= closed;
    }

    /// Marks every cluster window starting in `[from, to)` as changed, so that the next
    /// emission re-drafts it under the rules in force now. Returns how many there are.
    pub fn touch_range(&mut self, from: EpochMillis, to: EpochMillis) -> usize {
        let mut touched = 0;
        for clusters in self.windows.range_mut(from..to.max(from)).map(|(_, c)| c) {
            for cluster in clusters.values_mut() {
                cluster.changed = true;
                touched += 1;
            }
        }
        touched
    }

    /// Closes the windows the watermark has passed and evicts those past retention.
    /// Returns the evicted keys (for deletion from the checkpoint store).
    pub fn advance_to(&mut self, watermark: EpochMillis) -> Vec<(Arc<str>, EpochMillis)> {
        if self.watermark.is_some_and(|w| w >= watermark) {
            return Vec::new();
        }
        self.watermark = Some(watermark);
        let spec = self.config.spec;
        for (&start, clusters) in self.windows.range_mut(..) {
            if spec.end_of(start) > watermark {
                break;
            }
            for cluster in clusters.values_mut().filter(|c| !c.closed) {
                cluster.closed = true;
                cluster.changed = true;
            }
        }
        let mut evicted = Vec::new();
        let expired: Vec<EpochMillis> = self
            .windows
            .keys()
            .copied()
            .take_while(|s| self.is_expired(*s))
            .collect();
        for start in expired {
            if let Some(clusters) = self.windows.remove(&start) {
                evicted.extend(clusters.into_keys().map(|c| (c, start)));
            }
        }
        let stale_seen: Vec<EpochMillis> = self
            .seen
            .keys()
            .copied()
            .take_while(|s| self.is_expired(*s))
            .collect();
        for start in stale_seen {
            self.seen.remove(&start);
        }
        evicted
    }

    /// Cluster windows changed since their last emission, oldest first.
    pub fn changed(&self) -> Vec<ClusterWindowView<'_>> {
        self.views()
            .filter(|(changed, _)| *changed)
            .map(|(_, v)| v)
            .collect()
    }

    fn views(&self) -> impl Iterator<Item = (bool, ClusterWindowView<'_>)> {
        let spec = self.config.spec;
        self.windows.iter().flat_map(move |(&start, clusters)| {
            let mut ids: Vec<_> = clusters.keys().collect();
            ids.sort();
            ids.into_iter().map(move |id| {
                let c = &clusters[id];
                let mut namespaces: Vec<_> =
                    c.namespaces.iter().map(|(n, w)| (n, &w.totals)).collect();
                namespaces.sort_by(|a, b| a.0.cmp(b.0));
                let mut groups: Vec<_> = c
                    .namespaces
                    .iter()
                    .flat_map(|(n, w)| {
                        w.groups
                            .iter()
                            .map(move |(g, gw)| (n, g, &gw.totals, &gw.meters))
                    })
                    .collect();
                groups.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
                let mut meters: Vec<_> = c
                    .namespaces
                    .iter()
                    .filter(|(_, w)| !w.meters.is_empty())
                    .map(|(n, w)| (n, &w.meters))
                    .collect();
                meters.sort_by(|a, b| a.0.cmp(b.0));
                let mut shared: Vec<_> = c
                    .namespaces
                    .iter()
                    .filter(|(_, w)| w.shared != ResourceTotals::default())
                    .map(|(n, w)| (n, &w.shared))
                    .collect();
                shared.sort_by(|a, b| a.0.cmp(b.0));
                let view = ClusterWindowView {
                    cluster_id: id,
                    window_start: start,
                    window_end: spec.end_of(start),
                    status: if c.closed {
                        WindowStatus::Closed
                    } else {
                        WindowStatus::Open
                    },
                    cluster_name: c.cluster_name.as_ref(),
                    capacity: &c.capacity,
                    namespaces,
                    groups,
                    meters,
                    shared,
                };
                (c.changed, view)
            })
        })
    }

    /// Decides the revision of a record with this content: unchanged content keeps its revision
    /// (and is not emitted again), changed content gets the next one.
    pub fn next_revision(
        &mut self,
        key: &WindowKey,
        content_digest: u64,
        cost_micros: i64,
    ) -> Option<Revision> {
        let cluster = self
            .windows
            .get_mut(&key.window_start)?
            .get_mut(&key.cluster_id)?;
        let mut entry = cluster.namespaces.entry(key.namespace.clone()).or_default();
        if let Some(group) = &key.group {
            entry = entry.groups.entry(group.clone()).or_default();
        }
        if entry.revision > 0 && entry.content_digest == content_digest {
            return None;
        }
        entry.revision += 1;
        entry.content_digest = content_digest;
        let previous_cost_micros = std::mem::replace(&mut entry.cost_micros, cost_micros);
        Some(Revision {
            revision: entry.revision,
            previous_cost_micros,
        })
    }

    /// Clears the changed marks after an emission.
    pub fn mark_emitted(&mut self) {
        for cluster in self.windows.values_mut().flat_map(|c| c.values_mut()) {
            cluster.changed = false;
        }
    }

    /// Dedup keys added since the last call, for the checkpoint.
    pub fn take_unsaved_seen(&mut self) -> Vec<(EpochMillis, u128)> {
        std::mem::take(&mut self.unsaved_seen)
    }

    /// Number of (cluster, namespace, window) keys held.
    pub fn open_keys(&self) -> usize {
        self.windows
            .values()
            .flat_map(|c| c.values())
            .map(|c| c.namespaces.len())
            .sum()
    }

    /// Usage lines of extension resources with any figure, by name (after the standard ones).
    pub fn meter_usage(meters: &BTreeMap<Arc<str>, MeterTotals>) -> Vec<ResourceUsage> {
        meters
            .iter()
            .filter(|(_, m)| !m.totals.is_zero())
            .map(|(name, m)| {
                let t = &m.totals;
                ResourceUsage {
                    resource: name.to_string(),
                    unit: m.unit.to_string(),
                    used: t.used.units(),
                    requested: t.requested.units(),
                    limit: t.limit.units(),
                    allocated: t.allocated().units(),
                    unused: t.unused().units(),
                }
            })
            .collect()
    }

    /// Per-resource usage lines of a record, in resource order, for resources with any figure.
    pub fn resource_usage(totals: &ResourceTotals) -> Vec<ResourceUsage> {
        Resource::ALL
            .iter()
            .filter(|r| !totals.get(**r).is_zero())
            .map(|&r| {
                let t = totals.get(r);
                ResourceUsage {
                    resource: r.name().to_owned(),
                    unit: r.unit().to_owned(),
                    used: t.used.units(),
                    requested: t.requested.units(),
                    limit: t.limit.units(),
                    allocated: t.allocated().units(),
                    unused: t.unused().units(),
                }
            })
            .collect()
    }
}

/// [`WindowStore::add`] once the cluster window is found.
fn add_to_cluster(
    cluster: &mut ClusterWindow,
    sample: &Sample,
    share: impl Fn(Quantity) -> Quantity,
) -> bool {
    if let Some(name) = &sample.cluster_name {
        if cluster.cluster_name.as_ref() != Some(name) {
            cluster.cluster_name = Some(name.clone());
        }
    }
    cluster.changed = true;
    match &sample.namespace {
        None => {
            for &(resource, kind, q) in &sample.quantities {
                if kind == MeasurementKind::Capacity {
                    cluster.capacity.0[resource.index()] += share(q);
                }
            }
        }
        // Capacity is cluster-scoped: a namespace sample's capacity is not counted, and one of
        // capacity only opens no namespace key.
        Some(_)
            if sample.meters.is_empty()
                && sample
                    .quantities
                    .iter()
                    .all(|&(_, kind, _)| kind == MeasurementKind::Capacity) => {}
        Some(namespace) => {
            for (meter, unit, _, _) in &sample.meters {
                if !cluster.meter_units.contains_key(meter) {
                    cluster.meter_units.insert(meter.clone(), unit.clone());
                }
            }
            let window = match cluster.namespaces.get_mut(namespace) {
                Some(window) => window,
                None => cluster.namespaces.entry(namespace.clone()).or_default(),
            };
            add_to_namespace(window, sample, &share);
            for group in &sample.groups {
                let group = match window.groups.get_mut(group) {
                    Some(group) => group,
                    None => window.groups.entry(group.clone()).or_default(),
                };
                add_to_namespace(group, sample, &share);
            }
        }
    }
    cluster.closed
}

fn add_to_namespace(
    window: &mut NamespaceWindow,
    sample: &Sample,
    share: &impl Fn(Quantity) -> Quantity,
) {
    for &(resource, kind, q) in &sample.quantities {
        let q = share(q);
        add_kind(window.totals.get_mut(resource), kind, q);
        if sample.shared {
            add_kind(window.shared.get_mut(resource), kind, q);
        }
    }
    for (meter, unit, kind, q) in &sample.meters {
        let totals = match window.meters.get_mut(meter) {
            Some(totals) => totals,
            None => window
                .meters
                .entry(meter.clone())
                .or_insert_with(|| MeterTotals {
                    unit: unit.clone(),
                    totals: Totals::default(),
                }),
        };
        add_kind(&mut totals.totals, *kind, share(*q));
    }
}

fn add_kind(totals: &mut Totals, kind: MeasurementKind, q: Quantity) {
    match kind {
        MeasurementKind::Usage => totals.used += q,
        MeasurementKind::Request => totals.requested += q,
        MeasurementKind::Limit => totals.limit += q,
        MeasurementKind::Capacity => {}
    }
}

impl WindowStore {
    /// (cluster, window start) of every cluster window held.
    pub fn cluster_windows(&self) -> BTreeSet<(Arc<str>, EpochMillis)> {
        self.windows
            .iter()
            .flat_map(|(s, c)| c.keys().map(move |id| (id.clone(), *s)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
