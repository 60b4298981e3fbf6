//! Window size and the time rules around it.

use std::time::Duration;

use crate::standard::EpochMillis;

const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;

/// Tumbling windows aligned to UTC midnight, of a size that divides a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    size_ms: i64,
}

impl WindowSpec {
    /// Windows of `size`: whole minutes, at least one, dividing 24 h.
    ///
    /// ```
    /// use std::time::Duration;
    /// use usage_tracker::window::WindowSpec;
    /// assert!(WindowSpec::new(Duration::from_secs(3600)).is_ok());
    /// assert!(WindowSpec::new(Duration::from_secs(7 * 60)).is_err()); // 1440 min / 7 is no integer
    /// ```
    pub fn new(size: Duration) -> Result<Self, String> {
        let size_ms =
            i64::try_from(size.as_millis()).map_err(|_| "window size too large".to_string())?;
        if size_ms < MINUTE_MS || size_ms % MINUTE_MS != 0 || DAY_MS % size_ms != 0 {
            return Err(format!(
                "window size {size:?} must be whole minutes, at least 1 min, and divide 24 h"
            ));
        }
        Ok(Self { size_ms })
    }

    /// Window size in milliseconds.
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// Start of the window containing `t`.
    pub fn start_of(&self, t: EpochMillis) -> EpochMillis {
        t.div_euclid(self.size_ms) * self.size_ms
    }

    /// End (exclusive) of the window starting at `window_start`.
    pub fn end_of(&self, window_start: EpochMillis) -> EpochMillis {
        window_start + self.size_ms
    }

    /// The windows `[start, end)` overlaps and by how many ms each; a point interval
    /// (`start == end`) lies wholly in the window containing `start`.
    pub fn pieces(&self, start: EpochMillis, end: EpochMillis) -> Vec<(EpochMillis, i64)> {
        if end <= start {
            return vec![(self.start_of(start), 0)];
        }
        let mut pieces = Vec::with_capacity(1 + ((end - start) / self.size_ms) as usize);
        let mut window = self.start_of(start);
        while window < end {
            let overlap = end.min(window + self.size_ms) - start.max(window);
            pieces.push((window, overlap));
            window += self.size_ms;
        }
        pieces
    }
}

/// Time rules of the windowing stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Window size.
    pub spec: WindowSpec,
    /// Watermark = max event time seen - this.
    pub allowed_lateness_ms: i64,
    /// How long after its end a closed window still takes late data and bills (new revisions).
    pub retention_ms: i64,
    /// Events ending further than this beyond processing time are rejected.
    pub future_skew_ms: i64,
    /// A partition with no event for this long (processing time) stops holding the watermark.
    pub idle_timeout_ms: i64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            spec: WindowSpec { size_ms: 3_600_000 },
            allowed_lateness_ms: 10 * MINUTE_MS,
            retention_ms: 7 * DAY_MS,
            future_skew_ms: 15 * MINUTE_MS,
            idle_timeout_ms: 5 * MINUTE_MS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hourly() -> WindowSpec {
        WindowSpec::new(Duration::from_secs(3600)).unwrap()
    }

    #[test]
    fn every_divisor_of_a_day_down_to_a_minute_is_a_window_size() {
        for minutes in [1, 2, 5, 15, 30, 60, 120, 360, 720, 1440] {
            assert!(
                WindowSpec::new(Duration::from_secs(minutes * 60)).is_ok(),
                "{minutes}"
            );
        }
        for bad in [
            Duration::from_secs(30),
            Duration::from_secs(90),
            Duration::from_secs(7 * 3600),
        ] {
            assert!(WindowSpec::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn windows_align_to_utc_even_before_the_epoch() {
        assert_eq!(hourly().start_of(3_600_000 + 1), 3_600_000);
        assert_eq!(hourly().start_of(-1), -3_600_000);
    }

    #[test]
    fn an_interval_across_a_boundary_is_cut_by_time() {
        let h = 3_600_000;
        assert_eq!(
            hourly().pieces(h - 4_000, h + 6_000),
            vec![(0, 4_000), (h, 6_000)]
        );
        assert_eq!(hourly().pieces(h - 10_000, h), vec![(0, 10_000)]);
        assert_eq!(hourly().pieces(h, h), vec![(h, 0)]);
        assert_eq!(hourly().pieces(0, 3 * h).len(), 3);
    }
}
