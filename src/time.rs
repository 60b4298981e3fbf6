//! The one clock helper: processing time as the standard's epoch milliseconds.

use crate::standard::EpochMillis;

/// Now, in UTC epoch milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> EpochMillis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
