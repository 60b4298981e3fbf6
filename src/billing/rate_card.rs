//! On-prem cost from a rate card: prices per core-hour and GiB-hour per node pool, per GiB-hour
//! per storage class, and fixed monthly costs, applied to the capacity the cluster reported.
//!
//! An on-prem cluster has no bill, so the rate card is its bill: the exporter turns the node
//! capacity seen on the usage topic (`capacity` measurements of `state_node`) into one
//! [`CostEvent`] per (hour, node pool, resource), storage usage into one per (hour, storage
//! class), and each fixed cost into one per calendar month (the part inside the export period).
//! The tracker then shares them out like any bill. Ids depend only on the cluster, pool and hour,
//! so re-exporting a period replaces its lines instead of adding to them.
//!
//! ```
//! use usage_tracker::billing::rate_card::RateCardBill;
//!
//! let card: RateCardBill = toml::from_str(r#"
//!     currency = "EUR"
//!     billing_account = "dc-frankfurt"
//!     cluster_id = "onprem-1"
//!     pool_label = "node-pool"
//!     [[node_pools]]
//!     pool = "*"
//!     cpu_core_hour = "0.021"
//!     memory_gib_hour = "0.0028"
//! "#).unwrap();
//! assert_eq!(card.node_pools[0].cpu_core_hour.pico_per_unit_hour(), 21_000_000_000);
//! ```

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{line_id, ExportOptions};
use crate::measure::Quantity;
use crate::standard::{
    CostCategory, CostEvent, CostStatus, EpochMillis, MeasurementKind, UsageEvent, COST_EVENT_TYPE,
    SPEC_VERSION,
};

const HOUR_MS: i64 = 3_600_000;
const GIB: i128 = 1 << 30;
/// Prices are kept in 10^-12 currency units per unit-hour: exact for any decimal price with up
/// to 12 places (a GiB-second of storage is far below a micro-unit).
const PICO_PER_UNIT: i128 = 1_000_000_000_000;
const PICO_PER_MICRO: i128 = 1_000_000;
/// [`Quantity`] keeps millionths of a unit.
const QUANTITY_SCALE: i128 = 1_000_000;

/// A price per unit-hour (or per month for fixed costs), written as a decimal string
/// (`"0.021"`) in currency units, kept exactly.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Price(i128);

impl Price {
    /// The price in 10^-12 currency units.
    pub fn pico_per_unit_hour(self) -> i128 {
        self.0
    }

    /// Parses a non-negative decimal with at most 12 decimal places.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let fraction_ok = fraction.is_none_or(|f| digits(f) && f.len() <= 12);
        if !digits(whole) || !fraction_ok {
            return Err(format!(
                "{text:?} is not a non-negative decimal with at most 12 decimal places"
            ));
        }
        let whole: i128 = whole
            .parse()
            .map_err(|_| format!("{text:?} is too large"))?;
        let fraction_value: i128 = fraction.map_or(0, |f| {
            f.parse::<i128>().expect("digits") * 10i128.pow(12 - f.len() as u32)
        });
        whole
            .checked_mul(PICO_PER_UNIT)
            .and_then(|w| w.checked_add(fraction_value))
            .map(Price)
            .ok_or_else(|| format!("{text:?} is too large"))
    }
}

impl fmt::Debug for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fraction = format!("{:012}", self.0 % PICO_PER_UNIT);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            write!(f, "{}", self.0 / PICO_PER_UNIT)
        } else {
            write!(f, "{}.{fraction}", self.0 / PICO_PER_UNIT)
        }
    }
}

impl Serialize for Price {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Price {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Price::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Prices of the nodes of one pool (or node type).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolPrice {
    /// Value of the node's `pool_label`, or `*` for every node no other entry names.
    pub pool: String,
    /// Per core and hour of allocatable cpu.
    #[serde(default)]
    pub cpu_core_hour: Price,
    /// Per GiB and hour of allocatable memory.
    #[serde(default)]
    pub memory_gib_hour: Price,
}

/// The price of one storage class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoragePrice {
    /// Value of the claim's `storage_class_label`, or `*` for the rest.
    pub storage_class: String,
    /// Per GiB and hour of storage claimed (persistent volume claims).
    pub gib_hour: Price,
}

/// A cost that does not depend on usage (licences, support, hardware amortisation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedCost {
    /// What it is; part of the line id.
    pub name: String,
    /// Amount per calendar month, spread over the month by time.
    pub monthly: Price,
    /// How the tracker apportions it (`license`, `other`, or a resource category).
    #[serde(default = "other")]
    pub category: CostCategory,
}

fn other() -> CostCategory {
    CostCategory::Other
}

fn onprem() -> String {
    "onprem".into()
}

/// A rate card file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateCardBill {
    /// ISO 4217.
    pub currency: String,
    /// `CostEvent.provider`.
    #[serde(default = "onprem")]
    pub provider: String,
    /// `CostEvent.billing_account_id`: the data centre or cost centre paying.
    pub billing_account: String,
    /// The cluster the card prices (its `cluster_id` on the usage topic).
    pub cluster_id: String,
    /// Node label naming a node's pool or type; unset: every node is in pool `*`.
    #[serde(default)]
    pub pool_label: Option<String>,
    /// Volume label naming its storage class; unset: every volume is in class `*`.
    #[serde(default)]
    pub storage_class_label: Option<String>,
    /// Prices per pool.
    #[serde(default)]
    pub node_pools: Vec<PoolPrice>,
    /// Prices per storage class.
    #[serde(default)]
    pub storage_classes: Vec<StoragePrice>,
    /// Fixed monthly costs.
    #[serde(default)]
    pub fixed: Vec<FixedCost>,
}

/// What was priced, keyed by hour start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Priced {
    Cpu,
    Memory,
    Storage,
}

/// Capacity and storage seen on the usage topic, summed per hour and pool or class.
#[derive(Debug, Default)]
pub struct ObservedCapacity {
    totals: BTreeMap<(EpochMillis, Priced, String), Quantity>,
    seen: HashSet<(String, String)>,
    /// Events counted (after dedup) and events of other clusters.
    pub counted: u64,
    /// Duplicates ignored (same `source` and `id`).
    pub duplicates: u64,
}

impl ObservedCapacity {
    /// Adds what `event` says about the card's cluster: node capacity and storage usage, split
    /// across the hours its interval covers. Other clusters and kinds are ignored.
    pub fn add(&mut self, card: &RateCardBill, event: &UsageEvent) {
        if event.subject.cluster_id != card.cluster_id || event.end <= event.start {
            return;
        }
        if !self.seen.insert((event.source.clone(), event.id.clone())) {
            self.duplicates += 1;
            return;
        }
        self.counted += 1;
        let label = |key: &Option<String>| {
            key.as_ref()
                .and_then(|k| event.subject.labels.get(k))
                .cloned()
                .unwrap_or_else(|| "*".into())
        };
        for m in &event.measurements {
            let priced = match (m.resource.as_str(), m.kind) {
                ("cpu", MeasurementKind::Capacity) => Priced::Cpu,
                ("memory", MeasurementKind::Capacity) => Priced::Memory,
                ("storage", MeasurementKind::Request) => Priced::Storage,
                _ => continue,
            };
            let Some(quantity) = Quantity::from_units(m.quantity) else {
                continue;
            };
            let group = match priced {
                Priced::Storage => label(&card.storage_class_label),
                _ => label(&card.pool_label),
            };
            for (hour, part) in split_by_hour(event.start, event.end, quantity) {
                *self
                    .totals
                    .entry((hour, priced, group.clone()))
                    .or_default() += part;
            }
        }
    }
}

/// `quantity` over `[start, end)` split across the hours it covers, by time.
fn split_by_hour(start: EpochMillis, end: EpochMillis, quantity: Quantity) -> Vec<(i64, Quantity)> {
    let span = i128::from(end - start);
    let mut parts = Vec::new();
    let mut hour = start.div_euclid(HOUR_MS) * HOUR_MS;
    let mut given = 0i128;
    while hour < end {
        let overlap = (end.min(hour + HOUR_MS) - start.max(hour)) as i128;
        let next = hour + HOUR_MS;
        // The last piece takes the rest so the parts always sum to the whole.
        let part = if next >= end {
            quantity.micros() - given
        } else {
            quantity.micros() * overlap / span
        };
        given += part;
        parts.push((hour, Quantity::from_micros(part)));
        hour = next;
    }
    parts
}

/// Why a card cannot price what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpriced {
    /// `cpu`, `memory` or `storage`.
    pub resource: &'static str,
    /// The pool or storage class with no price (and no `*` entry).
    pub group: String,
}

impl RateCardBill {
    /// Checks the card; a message per problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "currency {:?} is not an ISO 4217 code",
                self.currency
            ));
        }
        if self.cluster_id.is_empty() || self.billing_account.is_empty() {
            return Err("cluster_id and billing_account must not be empty".into());
        }
        Ok(())
    }

    fn pool(&self, pool: &str) -> Option<&PoolPrice> {
        let find = |name: &str| self.node_pools.iter().find(|p| p.pool == name);
        find(pool).or_else(|| find("*"))
    }

    fn storage(&self, class: &str) -> Option<&StoragePrice> {
        let find = |name: &str| {
            self.storage_classes
                .iter()
                .find(|p| p.storage_class == name)
        };
        find(class).or_else(|| find("*"))
    }

    /// The bill for `[from, to)`: usage lines for every hour with capacity seen, fixed lines
    /// for every calendar month overlapping the period. Also returns what had no price.
    pub fn bill(
        &self,
        seen: &ObservedCapacity,
        from: EpochMillis,
        to: EpochMillis,
        options: &ExportOptions,
    ) -> (Vec<CostEvent>, Vec<Unpriced>) {
        let mut events = Vec::new();
        let mut unpriced: Vec<Unpriced> = Vec::new();
        for ((hour, priced, group), quantity) in &seen.totals {
            if *hour < from || *hour >= to {
                continue;
            }
            let (resource, category, price, divisor) = match priced {
                Priced::Cpu => (
                    "cpu",
                    CostCategory::Compute,
                    self.pool(group).map(|p| p.cpu_core_hour),
                    1,
                ),
                Priced::Memory => (
                    "memory",
                    CostCategory::Memory,
                    self.pool(group).map(|p| p.memory_gib_hour),
                    GIB,
                ),
                Priced::Storage => (
                    "storage",
                    CostCategory::Storage,
                    self.storage(group).map(|p| p.gib_hour),
                    GIB,
                ),
            };
            let Some(price) = price else {
                let missing = Unpriced {
                    resource,
                    group: group.clone(),
                };
                if !unpriced.contains(&missing) {
                    unpriced.push(missing);
                }
                continue;
            };
            // unit-seconds (in millionths) x price per unit-hour (in pico) -> micro-units.
            let amount = round_div(
                quantity.micros() * price.pico_per_unit_hour(),
                QUANTITY_SCALE * 3600 * divisor * PICO_PER_MICRO,
            );
            let hour_text = hour.to_string();
            events.push(self.line(
                line_id(
                    "rate-card",
                    &[&self.cluster_id, resource, group, &hour_text],
                ),
                (*hour, hour + HOUR_MS),
                amount,
                category,
                Some(format!("{resource} {group}")),
                options,
            ));
        }
        for fixed in &self.fixed {
            for (month_start, month_end) in months(from, to) {
                let (start, end) = (month_start.max(from), month_end.min(to));
                let amount = round_div(
                    fixed.monthly.pico_per_unit_hour() * i128::from(end - start),
                    i128::from(month_end - month_start) * PICO_PER_MICRO,
                );
                let start_text = start.to_string();
                events.push(self.line(
                    line_id(
                        "rate-card",
                        &[&self.cluster_id, "fixed", &fixed.name, &start_text],
                    ),
                    (start, end),
                    amount,
                    fixed.category,
                    Some(fixed.name.clone()),
                    options,
                ));
            }
        }
        (events, unpriced)
    }

    fn line(
        &self,
        id: String,
        (start, end): (EpochMillis, EpochMillis),
        amount: i128,
        category: CostCategory,
        sku: Option<String>,
        options: &ExportOptions,
    ) -> CostEvent {
        let amount = i64::try_from(amount).unwrap_or(i64::MAX);
        CostEvent {
            specversion: SPEC_VERSION.into(),
            id,
            source: format!("//usage-tracker/rate-card/{}", self.billing_account),
            event_type: COST_EVENT_TYPE.into(),
            time: options.exported_at,
            revision: options.revision.unwrap_or(options.exported_at),
            provider: self.provider.clone(),
            billing_account_id: self.billing_account.clone(),
            sub_account_id: None,
            cluster_id: Some(self.cluster_id.clone()),
            namespace: None,
            charge_period_start: start,
            charge_period_end: end,
            billed_cost_micros: amount,
            effective_cost_micros: amount,
            billing_currency: self.currency.clone(),
            category,
            cost_status: CostStatus::Final,
            service_name: Some("rate card".into()),
            sku_id: sku,
            resource_id: None,
            labels: BTreeMap::new(),
        }
    }
}

/// `a / b` rounded half away from zero; `b > 0`.
fn round_div(a: i128, b: i128) -> i128 {
    if a >= 0 {
        (a + b / 2) / b
    } else {
        (a - b / 2) / b
    }
}

/// The UTC calendar months overlapping `[from, to)`, as `(month start, next month start)`.
fn months(from: EpochMillis, to: EpochMillis) -> Vec<(EpochMillis, EpochMillis)> {
    let mut months = Vec::new();
    if to <= from {
        return months;
    }
    let (mut year, mut month) = year_month(from);
    loop {
        let start = month_start(year, month);
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let end = month_start(next_year, next_month);
        months.push((start, end));
        if end >= to {
            return months;
        }
        (year, month) = (next_year, next_month);
    }
}

/// Epoch ms of the first instant of a UTC month (Howard Hinnant's days_from_civil).
fn month_start(year: i64, month: u32) -> EpochMillis {
    let (y, m) = if month <= 2 {
        (year - 1, i64::from(month) + 9)
    } else {
        (year, i64::from(month) - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000
}

/// UTC (year, month) of an epoch ms (civil_from_days).
fn year_month(t: EpochMillis) -> (i64, u32) {
    let z = t.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standard::{Measurement, WorkloadSubject, USAGE_EVENT_TYPE};

    const NOV_2026: EpochMillis = 1_793_491_200_000; // 2026-11-01T00:00:00Z

    fn card() -> RateCardBill {
        toml::from_str(
            r#"
            currency = "EUR"
            billing_account = "dc-1"
            cluster_id = "onprem"
            pool_label = "pool"
            [[node_pools]]
            pool = "gpu"
            cpu_core_hour = "0.05"
            memory_gib_hour = "0.01"
            [[node_pools]]
            pool = "*"
            cpu_core_hour = "0.02"
            memory_gib_hour = "0.0025"
            [[storage_classes]]
            storage_class = "*"
            gib_hour = "0.0001"
            [[fixed]]
            name = "support"
            monthly = "720"
            category = "license"
            "#,
        )
        .unwrap()
    }

    fn node(id: &str, pool: &str, start: EpochMillis, end: EpochMillis, cores: f64) -> UsageEvent {
        let seconds = (end - start) as f64 / 1000.0;
        UsageEvent {
            specversion: SPEC_VERSION.into(),
            id: id.into(),
            source: "//test".into(),
            event_type: USAGE_EVENT_TYPE.into(),
            time: end,
            start,
            end,
            subject: WorkloadSubject {
                cluster_id: "onprem".into(),
                node_name: Some(id.into()),
                labels: [("pool".to_owned(), pool.to_owned())].into(),
                ..Default::default()
            },
            measurements: vec![
                Measurement {
                    resource: "cpu".into(),
                    kind: MeasurementKind::Capacity,
                    quantity: cores * seconds,
                    unit: "core_seconds".into(),
                },
                Measurement {
                    resource: "memory".into(),
                    kind: MeasurementKind::Capacity,
                    quantity: 4.0 * (1u64 << 30) as f64 * seconds,
                    unit: "byte_seconds".into(),
                },
            ],
        }
    }

    fn options() -> ExportOptions {
        ExportOptions {
            exported_at: 42,
            ..Default::default()
        }
    }

    #[test]
    fn prices_parse_exactly_and_print_back() {
        assert_eq!(Price::parse("0.021").unwrap().0, 21_000_000_000);
        assert_eq!(Price::parse("12").unwrap().0, 12 * PICO_PER_UNIT);
        assert_eq!(Price::parse("0.000000000001").unwrap().0, 1);
        assert_eq!(Price::parse("1.50").unwrap().to_string(), "1.5");
        for bad in ["", "-1", "1e3", "0.0000000000001", "1.", ".5", "abc"] {
            assert!(Price::parse(bad).is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn capacity_is_priced_per_pool_and_hour() {
        let card = card();
        let mut seen = ObservedCapacity::default();
        // Two hours of an 8-core general node, sampled every 30 min, plus one hour of a GPU
        // node; one sample straddles the hour boundary; one is delivered twice.
        let h = NOV_2026;
        for (i, start) in [h, h + 1_800_000, h + 3_600_000, h + 5_400_000]
            .into_iter()
            .enumerate()
        {
            seen.add(
                &card,
                &node(&format!("n1-{i}"), "general", start, start + 1_800_000, 8.0),
            );
        }
        seen.add(
            &card,
            &node("g-0", "gpu", h + 2_700_000, h + 4_500_000, 2.0),
        );
        seen.add(
            &card,
            &node("g-0", "gpu", h + 2_700_000, h + 4_500_000, 2.0),
        );
        assert_eq!((seen.counted, seen.duplicates), (5, 1));

        let (lines, unpriced) = card.bill(&seen, h, h + 2 * 3_600_000, &options());
        assert!(unpriced.is_empty());
        let amounts: BTreeMap<(EpochMillis, String), i64> = lines
            .iter()
            .filter(|l| l.category != CostCategory::License)
            .map(|l| {
                (
                    (l.charge_period_start, l.sku_id.clone().unwrap()),
                    l.effective_cost_micros,
                )
            })
            .collect();
        let expected: BTreeMap<(EpochMillis, String), i64> = [
            // "*" prices the general pool: 8 cores x 0.02 = 0.16/h; 4 GiB x 0.0025 = 0.01/h.
            ((h, "cpu general"), 160_000),
            ((h, "memory general"), 10_000),
            ((h + 3_600_000, "cpu general"), 160_000),
            ((h + 3_600_000, "memory general"), 10_000),
            // GPU node: 15 min in hour 1 and 15 min in hour 2 at 2 x 0.05 and 4 x 0.01 per hour.
            ((h, "cpu gpu"), 25_000),
            ((h, "memory gpu"), 10_000),
            ((h + 3_600_000, "cpu gpu"), 25_000),
            ((h + 3_600_000, "memory gpu"), 10_000),
        ]
        .into_iter()
        .map(|((t, s), a)| ((t, s.to_owned()), a))
        .collect();
        assert_eq!(amounts, expected);
        // 720 a month for 2 hours of a 30-day month = 2.
        let fixed: Vec<_> = lines
            .iter()
            .filter(|l| l.category == CostCategory::License)
            .map(|l| l.effective_cost_micros)
            .collect();
        assert_eq!(fixed, vec![2_000_000]);
    }

    #[test]
    fn re_exports_have_the_same_ids_and_hours_outside_the_period_are_left_out() {
        let card = card();
        let mut seen = ObservedCapacity::default();
        seen.add(
            &card,
            &node("a", "general", NOV_2026, NOV_2026 + HOUR_MS, 1.0),
        );
        seen.add(
            &card,
            &node(
                "b",
                "general",
                NOV_2026 + HOUR_MS,
                NOV_2026 + 2 * HOUR_MS,
                1.0,
            ),
        );
        let first = card.bill(&seen, NOV_2026, NOV_2026 + HOUR_MS, &options()).0;
        let again = card.bill(&seen, NOV_2026, NOV_2026 + HOUR_MS, &options()).0;
        assert_eq!(first, again);
        assert!(first
            .iter()
            .all(|l| l.charge_period_start < NOV_2026 + HOUR_MS));
        let ids: HashSet<_> = first.iter().map(|l| &l.id).collect();
        assert_eq!(ids.len(), first.len(), "ids are unique");
    }

    #[test]
    fn a_pool_without_price_is_reported() {
        let mut card = card();
        card.node_pools.retain(|p| p.pool != "*");
        let mut seen = ObservedCapacity::default();
        seen.add(
            &card,
            &node("a", "general", NOV_2026, NOV_2026 + HOUR_MS, 1.0),
        );
        let (lines, unpriced) = card.bill(&seen, NOV_2026, NOV_2026 + HOUR_MS, &options());
        assert_eq!(lines.len(), 1, "only the fixed cost");
        assert_eq!(
            unpriced,
            vec![
                Unpriced {
                    resource: "cpu",
                    group: "general".into()
                },
                Unpriced {
                    resource: "memory",
                    group: "general".into()
                }
            ]
        );
    }

    #[test]
    fn fixed_costs_are_split_by_calendar_month() {
        let card = card();
        let dec = month_start(2026, 12);
        let (lines, _) = card.bill(
            &ObservedCapacity::default(),
            dec - 86_400_000,
            dec + 86_400_000,
            &options(),
        );
        // One day of November (30 days) and one of December (31 days) at 720 a month.
        let amounts: Vec<_> = lines.iter().map(|l| l.effective_cost_micros).collect();
        assert_eq!(amounts, vec![24_000_000, 23_225_806]);
    }

    #[test]
    fn the_hybrid_scenarios_rate_card_is_valid() {
        let card: RateCardBill = toml::from_str(include_str!(
            "../../deploy/scenarios/hybrid-onprem-gcp/rate-card.toml"
        ))
        .unwrap();
        card.validate().unwrap();
        assert_eq!(card.cluster_id, "onprem-dc1");
        let pools: Vec<&str> = card.node_pools.iter().map(|p| p.pool.as_str()).collect();
        assert_eq!(pools, ["standard", "highmem"]);
    }

    #[test]
    fn calendar_arithmetic_matches_known_dates() {
        assert_eq!(month_start(1970, 1), 0);
        assert_eq!(month_start(2026, 11), NOV_2026);
        assert_eq!(year_month(NOV_2026), (2026, 11));
        assert_eq!(year_month(NOV_2026 - 1), (2026, 10));
        assert_eq!(
            year_month(month_start(2024, 2) + 28 * 86_400_000),
            (2024, 2)
        );
        assert_eq!(months(NOV_2026, NOV_2026 + 1).len(), 1);
    }
}
