//! Watermarks: how far event time has progressed, per input partition.

use std::collections::BTreeMap;

use crate::standard::EpochMillis;

/// Per-partition event-time progress. The watermark is the minimum over partitions that are not
/// idle of (max event time - allowed lateness), and never goes back.
#[derive(Debug, Clone, Default)]
pub struct Watermarks {
    partitions: BTreeMap<(String, i32), PartitionClock>,
    watermark: Option<EpochMillis>,
    /// The latest charge period start seen (capped at processing time), and when the first bill
    /// line was seen: the clock of a slot that carries only bill lines.
    cost_frontier: Option<(EpochMillis, EpochMillis)>,
}

#[derive(Debug, Clone, Copy)]
struct PartitionClock {
    max_event_time: EpochMillis,
    last_seen_at: EpochMillis,
}

impl Watermarks {
    /// Restores the clock of a partition from a checkpoint.
    pub fn restore(
        &mut self,
        topic: &str,
        partition: i32,
        max_event_time: EpochMillis,
        now: EpochMillis,
    ) {
        self.partitions.insert(
            (topic.to_owned(), partition),
            PartitionClock {
                max_event_time,
                last_seen_at: now,
            },
        );
    }

    /// Records an event time seen on a partition at processing time `now`.
    pub fn observe(
        &mut self,
        topic: &str,
        partition: i32,
        event_time: EpochMillis,
        now: EpochMillis,
    ) {
        match self.partitions.get_mut(&(topic.to_owned(), partition)) {
            Some(clock) => {
                clock.max_event_time = clock.max_event_time.max(event_time);
                clock.last_seen_at = now;
            }
            None => self.restore(topic, partition, event_time, now),
        }
    }

    /// Records a bill line's charge period start, seen at processing time `now`. A slot whose
    /// partitions carry no usage at all (bill lines of `account:` pseudo-clusters, say) has no
    /// other event time: once it has seen only bills for the idle timeout, their starts move its
    /// watermark, so its windows close and its state is evicted like any other's.
    pub fn observe_cost(&mut self, start: EpochMillis, now: EpochMillis) {
        let start = start.min(now);
        self.cost_frontier = Some(match self.cost_frontier {
            Some((frontier, since)) => (frontier.max(start), since),
            None => (start, now),
        });
    }

    /// Moves every partition's last-seen time on by `ms`: processing time during which this
    /// process could not read (a retry loop) does not count towards the idle timeout.
    pub fn forgive(&mut self, ms: i64) {
        for clock in self.partitions.values_mut() {
            clock.last_seen_at = clock.last_seen_at.saturating_add(ms);
        }
    }

    /// Max event time seen per partition, for checkpoints.
    pub fn max_event_times(&self) -> impl Iterator<Item = (&str, i32, EpochMillis)> {
        self.partitions
            .iter()
            .map(|((t, p), c)| (t.as_str(), *p, c.max_event_time))
    }

    /// Advances and returns the watermark at processing time `now`.
    pub fn advance(
        &mut self,
        now: EpochMillis,
        allowed_lateness_ms: i64,
        idle_timeout_ms: i64,
    ) -> Option<EpochMillis> {
        let active = self
            .partitions
            .values()
            .filter(|c| now - c.last_seen_at < idle_timeout_ms)
            .map(|c| c.max_event_time)
            .min();
        // Every partition idle: event time has stopped, so processing time carries the
        // watermark on (minus the idle timeout), and no window stays open forever.
        let progress = active
            .or_else(|| {
                let freshest = self.partitions.values().map(|c| c.max_event_time).max()?;
                Some(freshest.max(now - idle_timeout_ms))
            })
            .or_else(|| {
                // No usage clock at all: only bills, for longer than the idle timeout.
                let (frontier, since) = self.cost_frontier?;
                (now - since >= idle_timeout_ms).then_some(frontier)
            });
        if let Some(candidate) = progress.map(|t| t - allowed_lateness_ms) {
            self.watermark = Some(self.watermark.map_or(candidate, |w| w.max(candidate)));
        }
        self.watermark
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_active_partition_holds_the_watermark() {
        let mut w = Watermarks::default();
        w.observe("usage", 0, 10_000, 0);
        w.observe("usage", 1, 50_000, 0);
        assert_eq!(w.advance(1, 1_000, 60_000), Some(9_000));
    }

    #[test]
    fn an_idle_partition_stops_holding_windows_open() {
        let mut w = Watermarks::default();
        w.observe("usage", 0, 10_000, 0);
        w.observe("usage", 1, 50_000, 70_000);
        assert_eq!(w.advance(70_001, 1_000, 60_000), Some(49_000));
    }

    #[test]
    fn when_every_partition_is_idle_processing_time_moves_the_watermark() {
        let mut w = Watermarks::default();
        w.observe("usage", 0, 10_000, 0);
        assert_eq!(
            w.advance(30_000, 1_000, 60_000),
            Some(9_000),
            "not idle yet"
        );
        assert_eq!(w.advance(600_000, 1_000, 60_000), Some(539_000));
    }

    #[test]
    fn a_stall_of_the_process_is_not_idleness_of_the_input() {
        let mut w = Watermarks::default();
        w.observe("usage", 0, 10_000, 0);
        // The process spent ten minutes retrying a database outage, reading nothing.
        w.forgive(600_000);
        assert_eq!(
            w.advance(600_001, 1_000, 60_000),
            Some(9_000),
            "the backlog's event time still holds the watermark"
        );
    }

    #[test]
    fn a_slot_with_only_bills_follows_their_charge_periods_after_the_idle_timeout() {
        let mut w = Watermarks::default();
        w.observe_cost(500_000, 1_000_000);
        w.observe_cost(400_000, 1_000_000);
        assert_eq!(
            w.advance(1_030_000, 1_000, 60_000),
            None,
            "usage may still come: a restart reads bills before usage"
        );
        assert_eq!(w.advance(1_060_000, 1_000, 60_000), Some(499_000));
        // A bill dated ahead of the clock moves it no further than the clock.
        w.observe_cost(9_000_000, 1_070_000);
        assert_eq!(w.advance(1_070_000, 1_000, 60_000), Some(1_069_000));
        // Once usage is seen, the bills no longer drive it (and it never goes back).
        w.observe("usage", 0, 2_000_000, 1_080_000);
        assert_eq!(w.advance(1_080_000, 1_000, 60_000), Some(1_999_000));
    }

    #[test]
    fn the_watermark_never_goes_back() {
        let mut w = Watermarks::default();
        w.observe("usage", 0, 50_000, 0);
        assert_eq!(w.advance(0, 0, 60_000), Some(50_000));
        w.observe("usage", 1, 10_000, 0);
        assert_eq!(w.advance(0, 0, 60_000), Some(50_000));
    }
}
