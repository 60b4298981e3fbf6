//! The limits the Usage Tracking Standard sets on every field (docs/usage-tracking-standard.md
//! §3.8). A message that breaks one is refused at the door with a [`LimitError`] that names the
//! field, so that no producer can put a value into the accounts that a sink cannot store, a sum
//! cannot hold, or a window walk cannot finish. Pure, no I/O, no clock (callers pass `now`).
//!
//! Why these bounds make every sum safe:
//! - a quantity is at most [`MAX_QUANTITY_UNITS`] = 10^21 units, 10^27 micro-units in an `i128`
//!   (max 1.7 × 10^38): a window would need 10^11 distinct events at the limit to overflow, far
//!   more than memory holds; a quantity times an overlap in ms (at most
//!   [`MAX_USAGE_INTERVAL_MS`] < 10^8) stays below 10^35;
//! - an amount is at most [`MAX_AMOUNT_MICROS`] = 10^17 micro-units in magnitude, and the bill
//!   lines of one cluster window together at most [`MAX_WINDOW_COST_MICROS`] = 10^18 (checked by
//!   the ledger), so every allocated share and every record total fits an `i64` (9.2 × 10^18).

use thiserror::Error;

use super::{CostEvent, EpochMillis, UsageEvent, WorkloadSubject};

/// 2000-01-01T00:00:00Z: nothing older is usage or a bill of this platform.
pub const MIN_TIME_MS: EpochMillis = 946_684_800_000;
/// 2100-01-01T00:00:00Z: the end of the range any timestamp may take.
pub const MAX_TIME_MS: EpochMillis = 4_102_444_800_000;
/// The longest interval one `UsageEvent` may cover (one day).
pub const MAX_USAGE_INTERVAL_MS: i64 = 24 * 3_600_000;
/// The longest charge period of one bill line (31 days: a calendar month).
pub const MAX_CHARGE_PERIOD_MS: i64 = 31 * 24 * 3_600_000;
/// How far ahead of the tracker's clock a charge period may start (31 days: this month's
/// fixed costs are billed ahead, nothing else is).
pub const MAX_CHARGE_LEAD_MS: i64 = 31 * 24 * 3_600_000;
/// The largest quantity of one measurement, in its unit (10^21: 11 PiB of memory for a day).
pub const MAX_QUANTITY_UNITS: f64 = 1e21;
/// The largest magnitude of one amount, in micro-units (10^11 currency units).
pub const MAX_AMOUNT_MICROS: i64 = 100_000_000_000_000_000;
/// The largest sum of the magnitudes of one cluster window's bill-line pieces, in micro-units.
pub const MAX_WINDOW_COST_MICROS: u128 = 1_000_000_000_000_000_000;
/// Bill lines whose charge periods overlap one cluster window (each becomes an entry of every
/// record of the window, which must stay a Kafka message of reasonable size).
pub const MAX_LINES_PER_WINDOW: u32 = 1000;
/// The longest `source` plus `id` of all bill lines overlapping one cluster window, together:
/// each is quoted in every record of the window, which must stay well below the 1 MB that
/// brokers take by default.
pub const MAX_WINDOW_LINE_ID_BYTES: usize = 256 * 1024;
/// Measurements in one `UsageEvent`.
pub const MAX_MEASUREMENTS: usize = 64;
/// Labels on one subject or bill line.
pub const MAX_LABELS: usize = 128;

/// Longest ids and sources (`UsageEvent.id`, `CostEvent.id`, `source`).
pub const MAX_ID_LEN: usize = 1024;
/// Longest Kubernetes object name (DNS subdomain) and cluster id.
pub const MAX_NAME_LEN: usize = 253;
/// Longest namespace (a DNS label).
pub const MAX_NAMESPACE_LEN: usize = 63;
/// Longest label key (a 253-byte prefix, `/`, a 63-byte name).
pub const MAX_LABEL_KEY_LEN: usize = 317;
/// Longest label value (Azure tags allow 256).
pub const MAX_LABEL_VALUE_LEN: usize = 256;
/// Longest short token: resource, unit, type, spec version, provider.
pub const MAX_TOKEN_LEN: usize = 128;
/// Longest cloud resource id (Azure ids nest deeply).
pub const MAX_RESOURCE_ID_LEN: usize = 2048;

/// Which rule a message broke, and where. The display is the dead letter's `dlq.error`.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LimitError {
    /// A control character (NUL, ESC, DEL, C1 ...) in a string.
    #[error("{field} has a control character U+{code:04X} at byte {at}")]
    ControlCharacter {
        /// The field.
        field: String,
        /// The code point.
        code: u32,
        /// Its byte offset.
        at: usize,
    },
    /// A string longer than its field allows.
    #[error("{field} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// The field.
        field: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More items than a list allows.
    #[error("{field} has {count} entries; at most {max} are allowed")]
    TooMany {
        /// The field.
        field: &'static str,
        /// Entries.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A timestamp outside 2000-01-01 .. 2100-01-01.
    #[error(
        "{field} {value} ms is outside {MIN_TIME_MS}..{MAX_TIME_MS} (2000-01-01 to 2100-01-01)"
    )]
    TimeOutOfRange {
        /// The field.
        field: &'static str,
        /// The value.
        value: EpochMillis,
    },
    /// An interval longer than the standard allows.
    #[error("{what} spans {length} ms; at most {max} ms are allowed")]
    IntervalTooLong {
        /// Which interval.
        what: &'static str,
        /// Its length.
        length: i64,
        /// The limit.
        max: i64,
    },
    /// A quantity beyond [`MAX_QUANTITY_UNITS`].
    #[error("{resource} quantity {value} is larger than {MAX_QUANTITY_UNITS}")]
    QuantityTooLarge {
        /// The measurement's resource.
        resource: String,
        /// The value.
        value: f64,
    },
    /// An amount beyond [`MAX_AMOUNT_MICROS`].
    #[error("{field} {value} micro-units is beyond ±{MAX_AMOUNT_MICROS}")]
    AmountOutOfRange {
        /// The field.
        field: &'static str,
        /// The value.
        value: i64,
    },
}

impl LimitError {
    /// Whether the error is about a string (`invalid_string`) rather than a number or time
    /// (`out_of_range`).
    pub fn is_string(&self) -> bool {
        matches!(
            self,
            LimitError::ControlCharacter { .. } | LimitError::TooLong { .. }
        )
    }
}

/// Checks a string field: no control character, at most `max` bytes.
///
/// ```
/// use usage_tracker::standard::limits::check_text;
/// assert!(check_text("namespace", "project-a", 63).is_ok());
/// assert!(check_text("namespace", "project\0a", 63).is_err());
/// assert!(check_text("namespace", &"a".repeat(64), 63).is_err());
/// ```
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), LimitError> {
    check_text_named(value, max, || field.to_owned())
}

/// [`check_text`] with the field's name built only when the value breaks a rule (label names
/// quote their key: no allocation per label on the hot path).
fn check_text_named(
    value: &str,
    max: usize,
    field: impl FnOnce() -> String,
) -> Result<(), LimitError> {
    if value.len() > max {
        return Err(LimitError::TooLong {
            field: field(),
            len: value.len(),
            max,
        });
    }
    // Control characters are rare: scan bytes for the ASCII ones first (C1 controls are
    // two-byte sequences starting 0xC2, so a value without that byte has none).
    let bytes = value.as_bytes();
    if bytes.iter().any(|&b| b < 0x20 || b == 0x7f || b == 0xc2) {
        if let Some((at, c)) = value.char_indices().find(|(_, c)| c.is_control()) {
            return Err(LimitError::ControlCharacter {
                field: field(),
                code: c as u32,
                at,
            });
        }
    }
    Ok(())
}

fn check_optional(field: &str, value: &Option<String>, max: usize) -> Result<(), LimitError> {
    value
        .as_deref()
        .map_or(Ok(()), |v| check_text(field, v, max))
}

/// Checks a timestamp against 2000-01-01 .. 2100-01-01.
pub fn check_time(field: &'static str, value: EpochMillis) -> Result<(), LimitError> {
    if (MIN_TIME_MS..=MAX_TIME_MS).contains(&value) {
        Ok(())
    } else {
        Err(LimitError::TimeOutOfRange { field, value })
    }
}

/// Checks an amount against ±[`MAX_AMOUNT_MICROS`].
pub fn check_amount(field: &'static str, value: i64) -> Result<(), LimitError> {
    if value.unsigned_abs() <= MAX_AMOUNT_MICROS.unsigned_abs() {
        Ok(())
    } else {
        Err(LimitError::AmountOutOfRange { field, value })
    }
}

fn check_labels(
    field: &'static str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<(), LimitError> {
    if labels.len() > MAX_LABELS {
        return Err(LimitError::TooMany {
            field,
            count: labels.len(),
            max: MAX_LABELS,
        });
    }
    for (key, value) in labels {
        check_text_named(key, MAX_LABEL_KEY_LEN, || format!("{field} key"))?;
        check_text_named(value, MAX_LABEL_VALUE_LEN, || format!("{field}[{key:?}]"))?;
    }
    Ok(())
}

/// Checks every string and the labels of a subject (part of [`check_usage_event`]; for readings
/// that become events later, such as pod network counters).
pub fn check_subject(s: &WorkloadSubject) -> Result<(), LimitError> {
    check_text("subject.cluster_id", &s.cluster_id, MAX_NAME_LEN)?;
    check_optional("subject.cluster_name", &s.cluster_name, MAX_NAME_LEN)?;
    check_optional("subject.namespace", &s.namespace, MAX_NAMESPACE_LEN)?;
    check_optional("subject.pod_name", &s.pod_name, MAX_NAME_LEN)?;
    check_optional("subject.pod_uid", &s.pod_uid, MAX_NAME_LEN)?;
    check_optional("subject.container_name", &s.container_name, MAX_NAME_LEN)?;
    check_optional("subject.node_name", &s.node_name, MAX_NAME_LEN)?;
    check_optional("subject.workload_kind", &s.workload_kind, MAX_NAME_LEN)?;
    check_optional("subject.workload_name", &s.workload_name, MAX_NAME_LEN)?;
    check_labels("subject.labels", &s.labels)
}

/// Checks every string, time, interval and number of a `UsageEvent` against the standard's
/// limits (the clock-dependent rule, `end` not ahead of now, is the caller's).
pub fn check_usage_event(event: &UsageEvent) -> Result<(), LimitError> {
    check_text("specversion", &event.specversion, MAX_TOKEN_LEN)?;
    check_text("id", &event.id, MAX_ID_LEN)?;
    check_text("source", &event.source, MAX_ID_LEN)?;
    check_text("type", &event.event_type, MAX_TOKEN_LEN)?;
    check_time("time", event.time)?;
    check_time("start", event.start)?;
    check_time("end", event.end)?;
    let length = event.end.saturating_sub(event.start);
    if length > MAX_USAGE_INTERVAL_MS {
        return Err(LimitError::IntervalTooLong {
            what: "the usage interval [start, end)",
            length,
            max: MAX_USAGE_INTERVAL_MS,
        });
    }
    check_subject(&event.subject)?;
    if event.measurements.len() > MAX_MEASUREMENTS {
        return Err(LimitError::TooMany {
            field: "measurements",
            count: event.measurements.len(),
            max: MAX_MEASUREMENTS,
        });
    }
    for m in &event.measurements {
        check_text("measurements.resource", &m.resource, MAX_TOKEN_LEN)?;
        check_text("measurements.unit", &m.unit, MAX_TOKEN_LEN)?;
        // NaN, infinite and negative quantities are the caller's (`invalid_event`); only the
        // size of a finite one is a limit.
        if m.quantity.is_finite() && m.quantity > MAX_QUANTITY_UNITS {
            return Err(LimitError::QuantityTooLarge {
                resource: m.resource.clone(),
                value: m.quantity,
            });
        }
    }
    Ok(())
}

/// Checks every string, time, period and amount of a `CostEvent` against the standard's limits
/// (the clock-dependent rule, a period not starting far ahead of now, is the caller's).
pub fn check_cost_event(event: &CostEvent) -> Result<(), LimitError> {
    check_text("specversion", &event.specversion, MAX_TOKEN_LEN)?;
    check_text("id", &event.id, MAX_ID_LEN)?;
    check_text("source", &event.source, MAX_ID_LEN)?;
    check_text("type", &event.event_type, MAX_TOKEN_LEN)?;
    check_text("provider", &event.provider, MAX_TOKEN_LEN)?;
    check_text(
        "billing_account_id",
        &event.billing_account_id,
        MAX_NAME_LEN,
    )?;
    check_optional("sub_account_id", &event.sub_account_id, MAX_NAME_LEN)?;
    check_optional("cluster_id", &event.cluster_id, MAX_NAME_LEN)?;
    check_optional("namespace", &event.namespace, MAX_NAMESPACE_LEN)?;
    check_optional("service_name", &event.service_name, MAX_NAME_LEN)?;
    check_optional("sku_id", &event.sku_id, MAX_NAME_LEN)?;
    check_optional("resource_id", &event.resource_id, MAX_RESOURCE_ID_LEN)?;
    check_labels("labels", &event.labels)?;
    check_time("time", event.time)?;
    check_time("charge_period_start", event.charge_period_start)?;
    check_time("charge_period_end", event.charge_period_end)?;
    let length = event
        .charge_period_end
        .saturating_sub(event.charge_period_start);
    if length > MAX_CHARGE_PERIOD_MS {
        return Err(LimitError::IntervalTooLong {
            what: "the charge period",
            length,
            max: MAX_CHARGE_PERIOD_MS,
        });
    }
    check_amount("billed_cost_micros", event.billed_cost_micros)?;
    check_amount("effective_cost_micros", event.effective_cost_micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standard::{CostCategory, CostStatus, Measurement, MeasurementKind};
    use proptest::prelude::*;

    const T: i64 = 1_767_225_600_000; // 2026-01-01

    fn usage() -> UsageEvent {
        UsageEvent {
            specversion: "1.0".into(),
            id: "e1".into(),
            source: "//test".into(),
            event_type: "io.ferrisdx.usage.v1".into(),
            time: T,
            start: T,
            end: T + 10_000,
            subject: WorkloadSubject {
                cluster_id: "c".into(),
                namespace: Some("a".into()),
                ..Default::default()
            },
            measurements: vec![Measurement {
                resource: "cpu".into(),
                kind: MeasurementKind::Usage,
                quantity: 1.0,
                unit: "core_seconds".into(),
            }],
        }
    }

    fn cost() -> CostEvent {
        CostEvent {
            specversion: "1.0".into(),
            id: "l1".into(),
            source: "//bill".into(),
            event_type: "io.ferrisdx.cost.v1".into(),
            time: T,
            revision: 1,
            provider: "gcp".into(),
            billing_account_id: "acct".into(),
            sub_account_id: None,
            cluster_id: Some("c".into()),
            namespace: None,
            charge_period_start: T,
            charge_period_end: T + 3_600_000,
            billed_cost_micros: 1,
            effective_cost_micros: 1,
            billing_currency: "EUR".into(),
            category: CostCategory::Compute,
            cost_status: CostStatus::Final,
            service_name: None,
            sku_id: None,
            resource_id: None,
            labels: Default::default(),
            meter: None,
        }
    }

    #[test]
    fn a_valid_event_passes() {
        assert_eq!(check_usage_event(&usage()), Ok(()));
        assert_eq!(check_cost_event(&cost()), Ok(()));
    }

    #[test]
    fn control_characters_are_refused_wherever_they_are() {
        for bad in [
            "a\0b",
            "\u{1b}[31m",
            "x\u{7f}",
            "x\u{85}y",
            "line\nbreak",
            "tab\t",
        ] {
            let mut e = usage();
            e.subject.namespace = Some(bad.into());
            let error = check_usage_event(&e).unwrap_err();
            assert!(error.is_string(), "{bad:?}: {error}");
            assert!(error.to_string().contains("subject.namespace"), "{error}");
            let mut e = usage();
            e.subject.labels.insert("team".into(), bad.into());
            assert!(check_usage_event(&e).unwrap_err().is_string(), "{bad:?}");
        }
        // Non-ASCII that is not a control character is fine (C2 A0 is a no-break space).
        let mut e = usage();
        e.subject.cluster_name = Some("prod-\u{a0}-zürich-東京".into());
        assert_eq!(check_usage_event(&e), Ok(()));
    }

    #[test]
    fn lengths_are_bounded_per_field() {
        let mut e = usage();
        e.subject.namespace = Some("n".repeat(63));
        assert_eq!(check_usage_event(&e), Ok(()));
        e.subject.namespace = Some("n".repeat(64));
        assert!(matches!(
            check_usage_event(&e),
            Err(LimitError::TooLong { max: 63, .. })
        ));
        let mut e = usage();
        e.subject.cluster_id = "c".repeat(1 << 20);
        assert!(matches!(
            check_usage_event(&e),
            Err(LimitError::TooLong { max: 253, .. })
        ));
        let mut c = cost();
        c.resource_id = Some("r".repeat(MAX_RESOURCE_ID_LEN + 1));
        assert!(check_cost_event(&c).unwrap_err().is_string());
    }

    #[test]
    fn times_intervals_and_numbers_are_bounded() {
        let mut e = usage();
        e.end = e.start + MAX_USAGE_INTERVAL_MS + 1;
        assert!(matches!(
            check_usage_event(&e),
            Err(LimitError::IntervalTooLong { .. })
        ));
        let mut e = usage();
        e.start = 0;
        assert!(matches!(
            check_usage_event(&e),
            Err(LimitError::TimeOutOfRange { field: "start", .. })
        ));
        let mut e = usage();
        e.measurements[0].quantity = 1e300;
        assert!(matches!(
            check_usage_event(&e),
            Err(LimitError::QuantityTooLarge { .. })
        ));
        let mut c = cost();
        c.charge_period_end = 40_000 * 365 * 86_400_000; // tens of thousands of years ahead
        assert!(matches!(
            check_cost_event(&c),
            Err(LimitError::TimeOutOfRange { .. })
        ));
        let mut c = cost();
        c.charge_period_end = c.charge_period_start + MAX_CHARGE_PERIOD_MS + 1;
        assert!(matches!(
            check_cost_event(&c),
            Err(LimitError::IntervalTooLong { .. })
        ));
        let mut c = cost();
        c.effective_cost_micros = i64::MIN;
        assert!(!check_cost_event(&c).unwrap_err().is_string());
        c.effective_cost_micros = -MAX_AMOUNT_MICROS;
        assert_eq!(check_cost_event(&c), Ok(()));
    }

    #[test]
    fn too_many_labels_or_measurements_are_refused() {
        let mut e = usage();
        e.measurements = vec![e.measurements[0].clone(); MAX_MEASUREMENTS + 1];
        assert!(matches!(
            check_usage_event(&e),
            Err(LimitError::TooMany { .. })
        ));
        let mut c = cost();
        c.labels = (0..=MAX_LABELS)
            .map(|i| (i.to_string(), "v".into()))
            .collect();
        assert!(matches!(
            check_cost_event(&c),
            Err(LimitError::TooMany { .. })
        ));
    }

    proptest! {
        /// Whatever the string, the fast byte pre-scan agrees with `char::is_control`.
        #[test]
        fn check_text_refuses_exactly_the_strings_with_control_characters(s in any::<String>()) {
            let has_control = s.chars().any(char::is_control);
            let result = check_text("f", &s, usize::MAX);
            prop_assert_eq!(result.is_err(), has_control);
        }
    }
}
