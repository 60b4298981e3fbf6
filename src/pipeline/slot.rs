//! One slot (partition `p` of both input topics) as owned by this instance: its accountant,
//! watermarks and input positions, restored from its last checkpoint. Pure, no I/O.

use std::collections::BTreeMap;

use crate::accounting::{Accountant, RateCard};
use crate::allocate::{AllocationPolicy, CostAllocator};
use crate::sink::kafka::DeadLetter;
use crate::sink::postgres::RestoredState;
use crate::standard::EpochMillis;
use crate::window::{CostLedger, Watermarks, WindowConfig, WindowStore};

/// (topic, partition).
pub(super) type PartitionKey = (String, i32);

/// One slot owned by this instance.
pub(super) struct Slot {
    /// The epoch of our claim; a commit under another is fenced.
    pub epoch: i64,
    /// Windows, bill lines, allocation.
    pub accountant: Accountant,
    /// Event-time progress of both partitions.
    pub watermarks: Watermarks,
    /// Next offset to read, per partition.
    pub positions: BTreeMap<PartitionKey, i64>,
    /// Dead letters since the last checkpoint.
    pub dead_letters: Vec<DeadLetter>,
    /// High watermarks at claim time (`--until-caught-up`).
    pub targets: BTreeMap<PartitionKey, i64>,
    /// Restored positions not yet read from: the first record read must be at that offset.
    sought: BTreeMap<PartitionKey, i64>,
}

impl Slot {
    /// The slot as its last checkpoint left it, at processing time `now`.
    pub fn restore(
        window: WindowConfig,
        policy: AllocationPolicy,
        rate_card: Option<RateCard>,
        epoch: i64,
        restored: RestoredState,
        targets: BTreeMap<PartitionKey, i64>,
        now: EpochMillis,
    ) -> anyhow::Result<Slot> {
        let positions: BTreeMap<PartitionKey, i64> = restored
            .positions
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.next_offset))
            .collect();
        let mut store = WindowStore::new(window);
        for (cluster, start, state) in restored.windows {
            store
                .import(&cluster, start, state)
                .map_err(anyhow::Error::msg)?;
        }
        for (start, key) in restored.seen {
            store.import_seen(start, key);
        }
        store.import_watermark(restored.watermark);
        let mut ledger = CostLedger::new(window.spec);
        for line in restored.cost_lines {
            ledger.upsert(line);
        }
        ledger.take_unsaved();
        let mut watermarks = Watermarks::default();
        for p in &restored.positions {
            if let Some(t) = p.max_event_time {
                watermarks.restore(&p.topic, p.partition, t, now);
            }
        }
        Ok(Slot {
            epoch,
            accountant: Accountant::new(store, ledger, CostAllocator::new(policy), rate_card),
            watermarks,
            sought: positions.clone(),
            positions,
            dead_letters: Vec::new(),
            targets,
        })
    }

    /// Whether every partition has been read up to its high watermark at claim time.
    pub fn caught_up(&self) -> bool {
        self.targets
            .iter()
            .all(|(key, end)| *end == 0 || self.positions.get(key).is_some_and(|p| p >= end))
    }

    /// Notes that a record at `offset` was read from `key`. The first one after a restore must
    /// be at the restored position; returns that position if the record lies beyond it (the
    /// broker skipped records, or retention deleted them).
    pub fn first_read_gap(&mut self, key: &PartitionKey, offset: i64) -> Option<i64> {
        if self.sought.is_empty() {
            return None; // The usual case, once both partitions have been read from.
        }
        let sought = self.sought.remove(key)?;
        (offset > sought).then_some(sought)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::postgres::PartitionPosition;

    fn slot(positions: &[(&str, i64)], targets: &[(&str, i64)]) -> Slot {
        let restored = RestoredState {
            positions: positions
                .iter()
                .map(|(topic, next)| PartitionPosition {
                    topic: topic.to_string(),
                    partition: 0,
                    next_offset: *next,
                    max_event_time: Some(1_000),
                })
                .collect(),
            ..Default::default()
        };
        let targets = targets
            .iter()
            .map(|(t, end)| ((t.to_string(), 0), *end))
            .collect();
        Slot::restore(
            WindowConfig::default(),
            AllocationPolicy::default(),
            None,
            1,
            restored,
            targets,
            2_000,
        )
        .unwrap()
    }

    #[test]
    fn a_slot_is_caught_up_when_every_partition_reached_its_target() {
        let mut s = slot(&[("usage", 5), ("cost", 2)], &[("usage", 7), ("cost", 2)]);
        assert!(!s.caught_up());
        s.positions.insert(("usage".into(), 0), 7);
        assert!(s.caught_up());
        // An empty partition (high watermark 0) needs no reading.
        let empty = slot(&[], &[("usage", 0)]);
        assert!(empty.caught_up());
        // A partition never read from is not caught up.
        let unread = slot(&[], &[("usage", 3)]);
        assert!(!unread.caught_up());
    }

    #[test]
    fn only_the_first_record_after_a_restore_is_checked_for_a_gap() {
        let mut s = slot(&[("usage", 5), ("cost", 2)], &[]);
        let usage = ("usage".to_string(), 0);
        let cost = ("cost".to_string(), 0);
        assert_eq!(s.first_read_gap(&usage, 5), None, "at the position");
        assert_eq!(s.first_read_gap(&usage, 9), None, "checked once only");
        assert_eq!(
            s.first_read_gap(&cost, 4),
            Some(2),
            "records 2 and 3 skipped"
        );
        let never = ("other".to_string(), 0);
        assert_eq!(s.first_read_gap(&never, 100), None, "no restored position");
    }

    #[test]
    fn the_watermark_clock_is_restored_from_the_positions() {
        let s = slot(&[("usage", 5)], &[]);
        assert_eq!(
            s.watermarks
                .max_event_times()
                .map(|(t, p, m)| (t.to_string(), p, m))
                .collect::<Vec<_>>(),
            vec![("usage".to_string(), 0, 1_000)]
        );
    }
}
