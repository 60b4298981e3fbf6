//! Unit tests of the Elastic converter: its `[elastic]` settings, positions and dead letters the
//! broker refuses.

use rdkafka::Offset;

use super::publish::smaller;
use super::*;
use crate::ingest::ecs::{CapacitySource, UsageSource};

#[test]
fn the_elastic_section_parses_with_defaults_and_refuses_unknown_keys() {
    let settings: Settings = toml::from_str(
        r#"
        [elastic]
        topics = ["metrics-a", "metrics-b"]
        default_cluster_id = "gke-prod-1"
        cluster_ids = { "metrics-b" = "aks-prod-2" }
        default_period = "30s"
        usage_from = "pod"
        "#,
    )
    .unwrap();
    let e = &settings.elastic;
    assert_eq!(e.group_id, "usage-tracker-elastic");
    assert_eq!(e.usage_from, UsageSource::Pod);
    assert_eq!(e.capacity_from, CapacitySource::StateNode);
    let a = e.ecs_settings("metrics-a");
    assert_eq!(a.default_cluster_id.as_deref(), Some("gke-prod-1"));
    assert_eq!(a.source, "//elastic-agent/metrics-a");
    assert_eq!(a.default_period, Duration::from_secs(30));
    let b = e.ecs_settings("metrics-b");
    assert_eq!(b.default_cluster_id.as_deref(), Some("aks-prod-2"));

    let defaults = Settings::default().elastic;
    assert_eq!(defaults.topics, vec!["elastic.metrics.kubernetes"]);
    assert_eq!(defaults.default_period, Duration::from_secs(10));
    assert_eq!(defaults.usage_from, UsageSource::Container);

    for bad in [
        "[elastic]\ntopic = [\"x\"]",
        "[elastic]\nusage_from = \"node\"",
        "[elastic]\ncapacity_from = \"kubelet\"",
    ] {
        assert!(toml::from_str::<Settings>(bad).is_err(), "{bad}");
    }
}

#[test]
fn positions_commit_only_what_advanced() {
    let mut p = Positions::default();
    p.start("a", 0, 5);
    p.advance("a", 1, 3);
    p.advance("a", 1, 4);
    p.advance("a", 1, 2);
    assert_eq!(p.get("a", 1), Some(4), "never moves back");
    let tpl = p.to_commit();
    assert_eq!(tpl.count(), 1);
    assert_eq!(
        tpl.find_partition("a", 1).unwrap().offset(),
        Offset::Offset(4)
    );
    p.mark_committed();
    assert_eq!(p.to_commit().count(), 0);
    assert_eq!(p.get("a", 0), Some(5));
    // A revoked partition is neither committed nor known any more.
    p.advance("a", 1, 9);
    p.advance("a", 0, 6);
    p.forget("a", 1);
    let tpl = p.to_commit();
    assert_eq!(tpl.count(), 1);
    assert!(tpl.find_partition("a", 1).is_none());
    assert_eq!(p.get("a", 1), None);
}

#[test]
fn details_are_cut_and_refused_dead_letters_shrink() {
    assert_eq!(cut_detail("short".into()), "short");
    let cut = cut_detail(format!("x{}", "é".repeat(1000)));
    assert!(cut.starts_with(&format!("x{}", "é".repeat(511))) && cut.ends_with("... (2001 bytes)"));
    let letter = DeadLetter {
        key: Some(b"k".to_vec()),
        payload: Some(vec![b'x'; 2_000_000]),
        reason: DeadLetterReason::InvalidString,
        detail: "namespace too long".into(),
        topic: "t".into(),
        partition: 1,
        offset: 7,
    };
    let first = smaller(&letter, &"Broker: Message size too large").unwrap();
    assert_eq!(
        (first.payload.as_ref(), first.key.as_deref()),
        (None, Some(&b"k"[..]))
    );
    assert!(
        first
            .detail
            .starts_with("namespace too long; the original payload of 2000000 bytes is left out"),
        "{}",
        first.detail
    );
    assert_eq!((first.reason, first.offset), (letter.reason, letter.offset));
    let second = smaller(&first, &"again").unwrap();
    assert_eq!(second.key, None);
    assert!(smaller(&second, &"again").is_none());
}
