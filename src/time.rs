//! The one clock and time-conversion helper: times as the standard's epoch milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::standard::EpochMillis;

/// Why a time is no epoch millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Before 1970-01-01T00:00:00Z.
    #[error("a time before 1970")]
    BeforeEpoch,
    /// More milliseconds after 1970 than an [`EpochMillis`] holds.
    #[error("a time beyond the epoch-millis range")]
    OutOfRange,
    /// Neither RFC 3339 nor a date.
    #[error("not an RFC 3339 time (2026-11-01T00:00:00Z) or a date (2026-11-01)")]
    Unparsable,
}

/// An RFC 3339 time (`Z` or no offset = UTC), or a bare date meaning its start in UTC.
pub fn parse_utc_time(text: &str) -> Result<SystemTime, TimeError> {
    let bytes = text.as_bytes();
    let is_date = bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-';
    let parsed = if is_date {
        humantime::parse_rfc3339_weak(&format!("{text}T00:00:00Z"))
    } else {
        humantime::parse_rfc3339_weak(text)
    };
    parsed.map_err(|_| TimeError::Unparsable)
}

/// [`parse_utc_time`] as epoch milliseconds.
///
/// ```
/// use usage_tracker::time::parse_utc;
/// assert_eq!(parse_utc("2026-11-01"), parse_utc("2026-11-01T00:00:00Z"));
/// assert_eq!(parse_utc("2026-11-01T01:00:00Z"), Ok(1_793_494_800_000));
/// assert!(parse_utc("yesterday").is_err());
/// ```
pub fn parse_utc(text: &str) -> Result<EpochMillis, TimeError> {
    epoch_ms(parse_utc_time(text)?)
}

/// `t` in UTC epoch milliseconds.
pub fn epoch_ms(t: SystemTime) -> Result<EpochMillis, TimeError> {
    let since = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TimeError::BeforeEpoch)?;
    EpochMillis::try_from(since.as_millis()).map_err(|_| TimeError::OutOfRange)
}

/// `t` in UTC epoch milliseconds, clamped: 0 before 1970, [`EpochMillis::MAX`] beyond the range.
pub fn epoch_ms_clamped(t: SystemTime) -> EpochMillis {
    match epoch_ms(t) {
        Ok(ms) => ms,
        Err(TimeError::BeforeEpoch) => 0,
        Err(TimeError::OutOfRange | TimeError::Unparsable) => EpochMillis::MAX,
    }
}

/// Now, in UTC epoch milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> EpochMillis {
    epoch_ms_clamped(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_become_epoch_millis_or_a_typed_error() {
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(epoch_ms(at(1_709_251_200_000)), Ok(1_709_251_200_000));
        let before = UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(epoch_ms(before), Err(TimeError::BeforeEpoch));
        assert_eq!(epoch_ms_clamped(before), 0);
        let beyond = UNIX_EPOCH.checked_add(Duration::from_secs(u64::MAX / 1_000));
        if let Some(beyond) = beyond {
            assert_eq!(epoch_ms(beyond), Err(TimeError::OutOfRange));
            assert_eq!(epoch_ms_clamped(beyond), EpochMillis::MAX);
        }
        assert!(now_ms() > 1_709_251_200_000);
    }

    #[test]
    fn dates_mean_utc_midnight() {
        assert_eq!(
            epoch_ms_clamped(parse_utc_time("2024-03-01").unwrap()),
            1_709_251_200_000
        );
        assert_eq!(
            epoch_ms_clamped(parse_utc_time("2024-03-01T01:00:00Z").unwrap()),
            1_709_254_800_000
        );
        assert!(parse_utc_time("yesterday").is_err());
    }
}
