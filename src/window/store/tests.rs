use proptest::prelude::*;

use super::*;

/// `apply` as it was before the single-look-up rewrite (per quantity and window), kept to
/// check that the rewrite counts exactly the same.
fn reference_apply(store: &mut WindowStore, sample: &Sample) -> Admission {
    let first_window = store.config.spec.start_of(sample.start);
    if store.is_expired(first_window) {
        return Admission::TooLate;
    }
    if !store
        .seen
        .entry(first_window)
        .or_insert_with(|| HashSet::with_hasher(DedupHasher::new()))
        .insert(sample.dedup_key)
    {
        return Admission::Duplicate;
    }
    store.unsaved_seen.push((first_window, sample.dedup_key));
    let pieces = store.config.spec.pieces(sample.start, sample.end);
    let duration = (sample.end - sample.start).max(0) as i128;
    let mut late = false;
    for &(resource, kind, quantity) in &sample.quantities {
        let mut left = quantity;
        for (i, &(window_start, overlap)) in pieces.iter().enumerate() {
            let share = if i + 1 == pieces.len() {
                left
            } else {
                quantity.scale(overlap as i128, duration)
            };
            left = left - share;
            let cluster = store.cluster_window_mut(&sample.cluster_id, window_start);
            if sample.cluster_name.is_some() {
                cluster.cluster_name.clone_from(&sample.cluster_name);
            }
            cluster.changed = true;
            match (&sample.namespace, kind) {
                (None, MeasurementKind::Capacity) => cluster.capacity.0[resource.index()] += share,
                (None, _) | (Some(_), MeasurementKind::Capacity) => {}
                (Some(namespace), kind) => {
                    let totals = cluster
                        .namespaces
                        .entry(namespace.clone())
                        .or_default()
                        .totals
                        .get_mut(resource);
                    match kind {
                        MeasurementKind::Usage => totals.used += share,
                        MeasurementKind::Request => totals.requested += share,
                        MeasurementKind::Limit => totals.limit += share,
                        MeasurementKind::Capacity => unreachable!(),
                    }
                }
            }
            late |= cluster.closed;
        }
    }
    if late {
        Admission::AppliedLate
    } else {
        Admission::Applied
    }
}

const H: i64 = 3_600_000;
const KINDS: [MeasurementKind; 4] = [
    MeasurementKind::Usage,
    MeasurementKind::Request,
    MeasurementKind::Limit,
    MeasurementKind::Capacity,
];

fn sample() -> impl Strategy<Value = Sample> {
    (
        0u8..40,
        0u8..2,
        prop::option::of(0u8..2),
        prop::option::of(0u8..3),
        (0i64..(6 * H), -H..(4 * H)),
        prop::collection::vec((0usize..6, 0usize..4, 0i128..10_000_000_000), 0..5),
    )
        .prop_map(
            |(key, cluster, name, namespace, (start, len), quantities)| Sample {
                dedup_key: u128::from(key),
                cluster_id: Arc::from(["c1", "c2"][cluster as usize]),
                cluster_name: name.map(|n| Arc::from(["one", "two"][n as usize])),
                namespace: namespace.map(|n| Arc::from(["a", "b", "c"][n as usize])),
                start,
                end: start + len,
                quantities: quantities
                    .into_iter()
                    .map(|(r, k, q)| (Resource::ALL[r], KINDS[k], Quantity::from_micros(q)))
                    .collect(),
                groups: Vec::new(),
                meters: Vec::new(),
                shared: false,
            },
        )
}

#[test]
fn a_cluster_window_holds_a_bounded_number_of_meters() {
    let mut store = WindowStore::new(WindowConfig::default());
    let meter = |key: u128, name: String| Sample {
        dedup_key: key,
        cluster_id: Arc::from("c"),
        cluster_name: None,
        namespace: Some(Arc::from("n")),
        start: 0,
        end: 2 * H, // Two windows: both must have room.
        quantities: Vec::new(),
        groups: Vec::new(),
        shared: false,
        meters: vec![(
            Arc::from(name),
            Arc::from("units"),
            MeasurementKind::Usage,
            Quantity::from_micros(1),
        )],
    };
    for i in 0..MAX_METERS_PER_CLUSTER_WINDOW {
        assert_eq!(
            store.apply(&meter(i as u128, format!("x-a-{i}"))),
            Admission::Applied
        );
    }
    let one_more = meter(1000, "x-a-more".into());
    assert_eq!(
        store.apply(&one_more),
        Admission::MeterRefused(MeterRefusal::TooMany)
    );
    // Refused whole: not even marked as seen, nothing counted.
    assert!(store.seen.values().all(|s| !s.contains(&1000)));
    assert_eq!(
        store.apply(&meter(1001, "x-a-0".into())),
        Admission::Applied
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Same admissions and the same state as the per-quantity reference, for samples over
    /// several windows, points, capacity with and without namespace, duplicates, and windows
    /// closed or expired by a watermark half-way.
    #[test]
    fn apply_counts_like_the_reference(
        samples in prop::collection::vec(sample(), 1..30),
        watermark_at in 0usize..30,
        watermark in 0i64..(12 * H),
    ) {
        let config = WindowConfig {
            retention_ms: 2 * H,
            ..WindowConfig::default()
        };
        let mut fast = WindowStore::new(config);
        let mut reference = WindowStore::new(config);
        for (i, sample) in samples.iter().enumerate() {
            if i == watermark_at {
                let mut a = fast.advance_to(watermark);
                let mut b = reference.advance_to(watermark);
                a.sort();
                b.sort();
                prop_assert_eq!(a, b);
            }
            prop_assert_eq!(fast.apply(sample), reference_apply(&mut reference, sample));
        }
        // Sorted: the cluster maps iterate in their own random orders.
        let export = |store: &WindowStore| {
            let mut e = store.export_changed();
            e.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            e
        };
        prop_assert_eq!(export(&fast), export(&reference));
        prop_assert_eq!(fast.cluster_windows(), reference.cluster_windows());
        prop_assert_eq!(fast.open_keys(), reference.open_keys());
        prop_assert_eq!(fast.take_unsaved_seen(), reference.take_unsaved_seen());
    }

    /// Every group dimension of a namespace sums exactly to the namespace, and the state
    /// with its groups survives a checkpoint round trip.
    #[test]
    fn groups_sum_exactly_to_their_namespace(samples in prop::collection::vec(sample(), 1..30)) {
        let mut store = WindowStore::new(WindowConfig::default());
        for mut sample in samples {
            let key = sample.dedup_key as usize;
            sample.groups = vec![
                (Arc::from("label:team"), Arc::from(["x", "y", "z"][key % 3])),
                (Arc::from("workload"), Arc::from(["d/a", "d/b"][key % 2])),
            ];
            store.apply(&sample);
        }
        for clusters in store.windows.values() {
            for namespace in clusters.values().flat_map(|c| c.namespaces.values()) {
                for dimension in ["label:team", "workload"] {
                    let mut sum = ResourceTotals::default();
                    for ((by, _), group) in &namespace.groups {
                        if by.as_ref() == dimension {
                            for r in Resource::ALL {
                                let (s, g) = (sum.get_mut(r), group.totals.get(r));
                                s.used += g.used;
                                s.requested += g.requested;
                                s.limit += g.limit;
                            }
                        }
                    }
                    prop_assert_eq!(&sum, &namespace.totals);
                }
            }
        }
        let exported = store.export_changed();
        let mut restored = WindowStore::new(WindowConfig::default());
        for (cluster, start, state) in exported.clone() {
            restored.import(&cluster, start, state).unwrap();
        }
        for cluster in restored.windows.values_mut().flat_map(|c| c.values_mut()) {
            cluster.changed = true;
        }
        let sorted = |mut e: Vec<(Arc<str>, EpochMillis, crate::window::PersistedWindow)>| {
            e.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
            e
        };
        prop_assert_eq!(sorted(restored.export_changed()), sorted(exported));
    }
}
