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
//! [`ObservedCapacity`] folds the usage events in one at a time as they are read, so memory is
//! bounded by the (hour, pool or class) aggregates of the period and a 16-byte dedup key per
//! counted event of the card's cluster inside the period, not by the topic. All money arithmetic
//! is checked: a line whose amount leaves the range is refused with an error, never saturated.
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

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{check_event, line_id, rfc3339, ExportOptions};
use crate::ingest::dedup_key;
use crate::measure::{Quantity, Resource};
use crate::standard::limits::{self, MAX_USAGE_INTERVAL_MS};
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
        let too_large = || format!("{text:?} is too large");
        // At most 12 digits (checked above), so the padding is 0..=12 places.
        let fraction_value: i128 = match fraction {
            None => 0,
            Some(f) => {
                let padding = u32::try_from(12 - f.len()).map_err(|_| too_large())?;
                f.parse::<i128>()
                    .ok()
                    .and_then(|digits| digits.checked_mul(10i128.checked_pow(padding)?))
                    .ok_or_else(too_large)?
            }
        };
        whole
            .checked_mul(PICO_PER_UNIT)
            .and_then(|w| w.checked_add(fraction_value))
            .map(Price)
            .ok_or_else(too_large)
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

impl Priced {
    /// What a measurement prices, if anything: node capacity of cpu and memory, storage claimed.
    fn of(resource: &str, kind: MeasurementKind) -> Option<Priced> {
        match (resource, kind) {
            ("cpu", MeasurementKind::Capacity) => Some(Priced::Cpu),
            ("memory", MeasurementKind::Capacity) => Some(Priced::Memory),
            ("storage", MeasurementKind::Request) => Some(Priced::Storage),
            _ => None,
        }
    }

    fn resource(self) -> Resource {
        match self {
            Priced::Cpu => Resource::Cpu,
            Priced::Memory => Resource::Memory,
            Priced::Storage => Resource::Storage,
        }
    }
}

/// Capacity and storage of the card's cluster seen on the usage topic during `[from, to)`,
/// summed per hour and pool or class, folded in one event at a time.
#[derive(Debug)]
pub struct ObservedCapacity {
    from: EpochMillis,
    to: EpochMillis,
    totals: BTreeMap<(EpochMillis, Priced, String), Quantity>,
    /// Dedup keys (xxh3-128 of source and id) of the events counted.
    seen: HashSet<u128>,
    /// Hours of the period a rejected event of the card's cluster covers: their lines would be
    /// incomplete.
    incomplete_hours: BTreeSet<EpochMillis>,
    /// A rejected message that may be of the card's cluster, hours unknown: every usage line
    /// would be incomplete.
    incomplete_all: bool,
    /// Events counted (after dedup): of the card's cluster, with capacity or storage in the period.
    pub counted: u64,
    /// Duplicates ignored (same `source` and `id`).
    pub duplicates: u64,
    /// Events of other clusters, or with nothing priced in the period, ignored.
    pub ignored: u64,
}

impl ObservedCapacity {
    /// Nothing seen yet, for the period `[from, to)` (hours starting in it are priced).
    pub fn new(from: EpochMillis, to: EpochMillis) -> Self {
        Self {
            from,
            to,
            totals: BTreeMap::new(),
            seen: HashSet::new(),
            incomplete_hours: BTreeSet::new(),
            incomplete_all: false,
            counted: 0,
            duplicates: 0,
            ignored: 0,
        }
    }

    /// Adds what `event` says about the card's cluster: node capacity and storage requests, split
    /// across the hours of the period its interval covers. Other clusters, measurements and hours
    /// are ignored. An event of the card's cluster that the tracker would refuse (the standard's
    /// limits, an interval ending before it starts, a priced quantity that is not finite and >= 0
    /// or in another unit) is an error naming the field when it touches the period (or its
    /// interval cannot be trusted), and the hours it covers become incomplete: their lines are
    /// not billed ([`RateCardBill::bill`] withholds them). One entirely outside the period is
    /// ignored.
    pub fn add(&mut self, card: &RateCardBill, event: &UsageEvent) -> Result<(), String> {
        if event.subject.cluster_id != card.cluster_id {
            self.ignored += 1;
            return Ok(());
        }
        if let Err(problem) = valid(event) {
            if self.mark_incomplete(event) {
                return Err(problem);
            }
            self.ignored += 1;
            return Ok(());
        }
        let label = |key: &Option<String>| {
            key.as_ref()
                .and_then(|k| event.subject.labels.get(k))
                .cloned()
                .unwrap_or_else(|| "*".into())
        };
        let mut parts = Vec::new();
        for m in &event.measurements {
            let Some(priced) = Priced::of(&m.resource, m.kind) else {
                continue;
            };
            let quantity = Quantity::from_units(m.quantity).ok_or("checked by valid()")?;
            let group = match priced {
                Priced::Storage => label(&card.storage_class_label),
                _ => label(&card.pool_label),
            };
            for (hour, part) in split_by_hour(event.start, event.end, quantity)? {
                if (self.from..self.to).contains(&hour) {
                    parts.push(((hour, priced, group.clone()), part));
                }
            }
        }
        if parts.is_empty() {
            self.ignored += 1;
            return Ok(());
        }
        if !self.seen.insert(dedup_key(&event.source, &event.id)) {
            self.duplicates += 1;
            return Ok(());
        }
        self.counted += 1;
        for ((hour, priced, group), part) in parts {
            let total = self.totals.entry((hour, priced, group)).or_default();
            match total.micros().checked_add(part.micros()) {
                Some(sum) => *total = Quantity::from_micros(sum),
                None => {
                    self.incomplete_hours.insert(hour);
                    return Err(format!(
                        "the {} capacity of the hour from {} overflows",
                        priced.resource().name(),
                        rfc3339(hour)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Notes a message that could not be decoded, with its Kafka key (standard §6.1: the
    /// cluster id). Returns `true` when it may be of the card's cluster (its key names it, or it
    /// has none): then every usage line is incomplete and none is billed. A message keyed to
    /// another cluster is ignored.
    pub fn undecodable(&mut self, card: &RateCardBill, key: Option<&[u8]>) -> bool {
        if key.is_some_and(|k| k != card.cluster_id.as_bytes()) {
            self.ignored += 1;
            return false;
        }
        self.incomplete_all = true;
        true
    }

    /// Marks the hours of the period a rejected event covers; all of them when its interval
    /// cannot be trusted. Returns whether it touches the period.
    fn mark_incomplete(&mut self, event: &UsageEvent) -> bool {
        let trusted = limits::check_time("start", event.start).is_ok()
            && limits::check_time("end", event.end).is_ok()
            && (0..=MAX_USAGE_INTERVAL_MS).contains(&(event.end - event.start));
        if !trusted {
            self.incomplete_all = true;
            return true;
        }
        let mut touched = false;
        let mut hour = event.start.div_euclid(HOUR_MS) * HOUR_MS;
        while hour < event.end.max(event.start + 1) {
            if (self.from..self.to).contains(&hour) {
                self.incomplete_hours.insert(hour);
                touched = true;
            }
            hour += HOUR_MS;
        }
        touched
    }

    fn is_complete(&self, hour: EpochMillis) -> bool {
        !self.incomplete_all && !self.incomplete_hours.contains(&hour)
    }
}

/// The tracker's rules for the parts of a usage event the card prices.
fn valid(event: &UsageEvent) -> Result<(), String> {
    if event.id.is_empty() || event.source.is_empty() {
        return Err("id and source must not be empty".into());
    }
    if event.end < event.start {
        return Err(format!("end {} before start {}", event.end, event.start));
    }
    limits::check_usage_event(event).map_err(|e| e.to_string())?;
    for m in &event.measurements {
        let Some(priced) = Priced::of(&m.resource, m.kind) else {
            continue;
        };
        if Quantity::from_units(m.quantity).is_none() {
            return Err(format!(
                "measurements: {} {:?} quantity {} is not finite and >= 0",
                m.resource, m.kind, m.quantity
            ));
        }
        let unit = priced.resource().unit();
        if m.unit != unit {
            return Err(format!(
                "measurements: {} must be in {unit}, not {}",
                m.resource, m.unit
            ));
        }
    }
    Ok(())
}

/// `quantity` over `[start, end)` split across the hours it covers, by time; the parts always
/// sum to the whole. Errors when the arithmetic leaves the range (not for a valid event: at most
/// 10^27 micro-units over at most a day).
fn split_by_hour(
    start: EpochMillis,
    end: EpochMillis,
    quantity: Quantity,
) -> Result<Vec<(i64, Quantity)>, String> {
    let overflow = || format!("splitting {} by hour overflows", quantity.units());
    let span = i128::from(end.checked_sub(start).ok_or_else(overflow)?);
    let mut parts = Vec::new();
    let mut hour = start.div_euclid(HOUR_MS) * HOUR_MS;
    let mut given = 0i128;
    while hour < end {
        let next = hour.checked_add(HOUR_MS).ok_or_else(overflow)?;
        let overlap = i128::from(end.min(next) - start.max(hour));
        // The last piece takes the rest so the parts always sum to the whole.
        let part = if next >= end {
            quantity.micros().checked_sub(given)
        } else {
            quantity
                .micros()
                .checked_mul(overlap)
                .and_then(|q| q.checked_div(span))
        }
        .ok_or_else(overflow)?;
        given = given.checked_add(part).ok_or_else(overflow)?;
        parts.push((hour, Quantity::from_micros(part)));
        hour = next;
    }
    Ok(parts)
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

    /// Checks an export period: both ends within the standard's times (2000 to 2100), `to`
    /// after `from`.
    pub fn check_period(from: EpochMillis, to: EpochMillis) -> Result<(), String> {
        limits::check_time("--from", from).map_err(|e| e.to_string())?;
        limits::check_time("--to", to).map_err(|e| e.to_string())?;
        if to <= from {
            return Err("--to must be after --from".into());
        }
        Ok(())
    }

    /// The bill for the period of `seen`: usage lines for every hour with capacity seen, fixed
    /// lines for every calendar month overlapping the period. Every line is checked as the
    /// tracker checks it ([`check_event`], with [`ExportOptions::exported_at`] as now); a line
    /// whose amount leaves the range or that breaks the standard's limits is refused, a usage
    /// line of an hour a rejected event covers is withheld (it would be incomplete).
    pub fn bill(&self, seen: &ObservedCapacity, options: &ExportOptions) -> Bill {
        let mut bill = Bill::default();
        let add =
            |bill: &mut Bill, what: String, line: Result<CostEvent, (String, String)>| match line
                .and_then(|event| match check_event(&event, options.exported_at) {
                    Ok(()) => Ok(event),
                    Err(message) => Err((event.id, message)),
                }) {
                Ok(event) => bill.lines.push(event),
                Err((id, message)) => bill.refused.push(CardLineError { id, what, message }),
            };
        for ((hour, priced, group), quantity) in &seen.totals {
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
                if !bill.unpriced.contains(&missing) {
                    bill.unpriced.push(missing);
                }
                continue;
            };
            let hour_text = hour.to_string();
            let id = line_id(
                "rate-card",
                &[&self.cluster_id, resource, group, &hour_text],
            );
            let what = format!("{resource} of {group:?}, hour from {}", rfc3339(*hour));
            if !seen.is_complete(*hour) {
                bill.withheld.push(WithheldLine { id, what });
                continue;
            }
            // unit-seconds (in millionths) x price per unit-hour (in pico) -> micro-units.
            let amount = checked_product(&[QUANTITY_SCALE, 3600, divisor, PICO_PER_MICRO])
                .and_then(|denominator| {
                    to_micros(quantity.micros(), price.pico_per_unit_hour(), denominator)
                });
            let line = amount
                .map(|amount| {
                    self.line(
                        id.clone(),
                        (*hour, hour + HOUR_MS),
                        amount,
                        category,
                        Some(format!("{resource} {group}")),
                        options,
                    )
                })
                .map_err(|message| (id, format!("billed_cost_micros: {message}")));
            add(&mut bill, what, line);
        }
        for fixed in &self.fixed {
            for (month_start, month_end) in months(seen.from, seen.to) {
                let (start, end) = (month_start.max(seen.from), month_end.min(seen.to));
                let start_text = start.to_string();
                let id = line_id(
                    "rate-card",
                    &[&self.cluster_id, "fixed", &fixed.name, &start_text],
                );
                let what = format!("fixed cost {:?} from {}", fixed.name, rfc3339(start));
                let month = i128::from(month_end - month_start);
                let amount = checked_product(&[month, PICO_PER_MICRO]).and_then(|denominator| {
                    to_micros(
                        fixed.monthly.pico_per_unit_hour(),
                        i128::from(end - start),
                        denominator,
                    )
                });
                let line = amount
                    .map(|amount| {
                        self.line(
                            id.clone(),
                            (start, end),
                            amount,
                            fixed.category,
                            Some(fixed.name.clone()),
                            options,
                        )
                    })
                    .map_err(|message| (id, format!("billed_cost_micros: {message}")));
                add(&mut bill, what, line);
            }
        }
        bill
    }

    fn line(
        &self,
        id: String,
        (start, end): (EpochMillis, EpochMillis),
        amount: i64,
        category: CostCategory,
        sku: Option<String>,
        options: &ExportOptions,
    ) -> CostEvent {
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

/// The rate card's bill for a period.
#[derive(Debug, Default)]
pub struct Bill {
    /// Lines to publish, checked.
    pub lines: Vec<CostEvent>,
    /// Lines that cannot be priced (an amount out of range) or break the standard's limits.
    pub refused: Vec<CardLineError>,
    /// Usage lines of hours a rejected usage event covers: they would be incomplete.
    pub withheld: Vec<WithheldLine>,
    /// Pools and classes without a price.
    pub unpriced: Vec<Unpriced>,
}

/// A rate-card line that is not published because of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardLineError {
    /// The line id.
    pub id: String,
    /// What the line prices (`cpu of "standard", hour from ...`).
    pub what: String,
    /// What is wrong, naming the field.
    pub message: String,
}

/// A rate-card line withheld because a rejected usage event covers its hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithheldLine {
    /// The line id.
    pub id: String,
    /// What the line prices.
    pub what: String,
}

/// The product of `factors`, or an error when it leaves the `i128` range.
fn checked_product(factors: &[i128]) -> Result<i128, String> {
    factors
        .iter()
        .try_fold(1i128, |product, &f| product.checked_mul(f))
        .ok_or_else(|| "the divisor overflows".to_owned())
}

/// `a * b / denominator` micro-units, rounded half away from zero once; an error (never a
/// saturated or wrapped value) when the product or the result leaves the range.
fn to_micros(a: i128, b: i128, denominator: i128) -> Result<i64, String> {
    let product = a
        .checked_mul(b)
        .ok_or_else(|| format!("{a} x {b} overflows an i128"))?;
    let rounded = round_div(product, denominator)
        .ok_or_else(|| format!("{product} / {denominator} cannot be rounded"))?;
    i64::try_from(rounded).map_err(|_| format!("{rounded} micro-units do not fit an i64"))
}

/// `a / b` rounded half away from zero; `None` when `b <= 0` or on overflow.
fn round_div(a: i128, b: i128) -> Option<i128> {
    if b <= 0 {
        return None;
    }
    let half = b / 2;
    let shifted = if a >= 0 {
        a.checked_add(half)?
    } else {
        a.checked_sub(half)?
    };
    shifted.checked_div(b)
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
fn month_start(year: i64, month: i64) -> EpochMillis {
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000
}

/// UTC (year, month) of an epoch ms (civil_from_days).
fn year_month(t: EpochMillis) -> (i64, i64) {
    let z = t.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
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

    /// The export runs on 2026-12-01.
    const NOW: EpochMillis = NOV_2026 + 30 * 86_400_000;

    fn options() -> ExportOptions {
        ExportOptions {
            exported_at: NOW,
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
        let h = NOV_2026;
        let mut seen = ObservedCapacity::new(h, h + 2 * 3_600_000);
        // Two hours of an 8-core general node, sampled every 30 min, plus one hour of a GPU
        // node; one sample straddles the hour boundary; one is delivered twice.
        for (i, start) in [h, h + 1_800_000, h + 3_600_000, h + 5_400_000]
            .into_iter()
            .enumerate()
        {
            seen.add(
                &card,
                &node(&format!("n1-{i}"), "general", start, start + 1_800_000, 8.0),
            )
            .unwrap();
        }
        seen.add(
            &card,
            &node("g-0", "gpu", h + 2_700_000, h + 4_500_000, 2.0),
        )
        .unwrap();
        seen.add(
            &card,
            &node("g-0", "gpu", h + 2_700_000, h + 4_500_000, 2.0),
        )
        .unwrap();
        assert_eq!((seen.counted, seen.duplicates), (5, 1));

        let bill = card.bill(&seen, &options());
        assert!(bill.unpriced.is_empty() && bill.refused.is_empty() && bill.withheld.is_empty());
        let lines = bill.lines;
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
        let mut seen = ObservedCapacity::new(NOV_2026, NOV_2026 + HOUR_MS);
        seen.add(
            &card,
            &node("a", "general", NOV_2026, NOV_2026 + HOUR_MS, 1.0),
        )
        .unwrap();
        seen.add(
            &card,
            &node(
                "b",
                "general",
                NOV_2026 + HOUR_MS,
                NOV_2026 + 2 * HOUR_MS,
                1.0,
            ),
        )
        .unwrap();
        assert_eq!(
            (seen.counted, seen.ignored),
            (1, 1),
            "b is outside the period"
        );
        let first = card.bill(&seen, &options()).lines;
        let again = card.bill(&seen, &options()).lines;
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
        let mut seen = ObservedCapacity::new(NOV_2026, NOV_2026 + HOUR_MS);
        seen.add(
            &card,
            &node("a", "general", NOV_2026, NOV_2026 + HOUR_MS, 1.0),
        )
        .unwrap();
        let bill = card.bill(&seen, &options());
        assert_eq!(bill.lines.len(), 1, "only the fixed cost");
        assert_eq!(
            bill.unpriced,
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
        let lines = card
            .bill(
                &ObservedCapacity::new(dec - 86_400_000, dec + 86_400_000),
                &options(),
            )
            .lines;
        // One day of November (30 days) and one of December (31 days) at 720 a month.
        let amounts: Vec<_> = lines.iter().map(|l| l.effective_cost_micros).collect();
        assert_eq!(amounts, vec![24_000_000, 23_225_806]);
    }

    #[test]
    fn a_rejected_event_of_the_cluster_withholds_its_hours_only() {
        let card = card();
        let h = NOV_2026;
        let mut seen = ObservedCapacity::new(h, h + 3 * HOUR_MS);
        for (i, hour) in [h, h + HOUR_MS, h + 2 * HOUR_MS].into_iter().enumerate() {
            seen.add(
                &card,
                &node(&format!("n-{i}"), "general", hour, hour + HOUR_MS, 4.0),
            )
            .unwrap();
        }
        // Bad events of the card's cluster in the second hour: each names what is wrong.
        let mut nan = node("bad-1", "general", h + HOUR_MS, h + HOUR_MS + 60_000, 1.0);
        nan.measurements[0].quantity = f64::NAN;
        let mut unit = node("bad-2", "general", h + HOUR_MS, h + HOUR_MS + 60_000, 1.0);
        unit.measurements[1].unit = "bytes".into();
        let mut nul = node("bad-3", "gen\0eral", h + HOUR_MS, h + HOUR_MS + 60_000, 1.0);
        nul.subject.node_name = Some("n\0".into());
        for (event, field) in [
            (nan, "quantity NaN"),
            (unit, "memory must be in byte_seconds"),
            (nul, "subject.node_name"),
        ] {
            let error = seen.add(&card, &event).unwrap_err();
            assert!(error.contains(field), "{field}: {error}");
        }
        // Outside the period, a bad event does not matter either.
        let mut later = node("bad-4", "general", h + 5 * HOUR_MS, h + 6 * HOUR_MS, 1.0);
        later.measurements[0].quantity = -1.0;
        assert_eq!(seen.add(&card, &later), Ok(()));
        // Another cluster's bad event is not the card's business.
        let mut other = node("x", "general", h, h + HOUR_MS, f64::NAN);
        other.subject.cluster_id = "elsewhere".into();
        assert_eq!(seen.add(&card, &other), Ok(()));

        let bill = card.bill(&seen, &options());
        let hours: BTreeSet<EpochMillis> = bill
            .lines
            .iter()
            .filter(|l| l.category != CostCategory::License)
            .map(|l| l.charge_period_start)
            .collect();
        assert_eq!(hours, [h, h + 2 * HOUR_MS].into());
        assert_eq!(bill.withheld.len(), 2, "cpu and memory of the second hour");
        assert!(bill
            .withheld
            .iter()
            .all(|w| w.what.contains("2026-11-01T01:00:00")));
    }

    #[test]
    fn an_undecodable_message_withholds_usage_lines_unless_keyed_to_another_cluster() {
        let card = card();
        let mut seen = ObservedCapacity::new(NOV_2026, NOV_2026 + HOUR_MS);
        seen.add(
            &card,
            &node("a", "general", NOV_2026, NOV_2026 + HOUR_MS, 1.0),
        )
        .unwrap();
        assert!(!seen.undecodable(&card, Some(b"elsewhere")));
        assert_eq!(card.bill(&seen, &options()).withheld.len(), 0);
        assert!(seen.undecodable(&card, Some(b"onprem")));
        let bill = card.bill(&seen, &options());
        assert_eq!(bill.withheld.len(), 2);
        assert_eq!(
            bill.lines.len(),
            1,
            "the fixed cost does not depend on usage"
        );
        assert_eq!(bill.lines[0].category, CostCategory::License);
    }

    #[test]
    fn amounts_out_of_range_are_refused_never_saturated() {
        let h = NOV_2026;
        let priced = |price: &str| {
            let mut card = card();
            card.fixed.clear();
            card.node_pools[1].cpu_core_hour = Price::parse(price).unwrap();
            let mut seen = ObservedCapacity::new(h, h + HOUR_MS);
            seen.add(&card, &node("a", "general", h, h + HOUR_MS, 8.0))
                .unwrap();
            card.bill(&seen, &options())
        };
        // 8 cores x 10^11 an hour = 8 x 10^17 micros: an i64, beyond the standard's 10^17.
        let bill = priced("100000000000");
        let cpu = bill
            .refused
            .iter()
            .find(|r| r.what.starts_with("cpu"))
            .unwrap();
        assert!(
            cpu.message
                .contains("billed_cost_micros 800000000000000000"),
            "{}",
            cpu.message
        );
        // 8 x 10^13 an hour: not an i64 of micros.
        let bill = priced("10000000000000");
        let cpu = bill
            .refused
            .iter()
            .find(|r| r.what.starts_with("cpu"))
            .unwrap();
        assert!(cpu.message.contains("do not fit an i64"), "{}", cpu.message);
        // 8 x 10^24 an hour: the product of quantity and price leaves the i128 range.
        let bill = priced("1000000000000000000000000");
        let cpu = bill
            .refused
            .iter()
            .find(|r| r.what.starts_with("cpu"))
            .unwrap();
        assert!(cpu.message.contains("overflows"), "{}", cpu.message);
        assert!(bill
            .lines
            .iter()
            .all(|l| l.category == CostCategory::Memory));
    }

    #[test]
    fn fixed_costs_too_far_ahead_are_refused() {
        let card = card();
        let feb = month_start(2027, 2);
        let bill = card.bill(&ObservedCapacity::new(feb, feb + HOUR_MS), &options());
        assert!(bill.lines.is_empty());
        assert!(
            bill.refused[0].message.contains("charge_period_start"),
            "{:?}",
            bill.refused
        );
        assert!(RateCardBill::check_period(feb, feb).is_err());
        assert!(RateCardBill::check_period(0, feb).is_err());
        assert!(RateCardBill::check_period(feb, feb + 1).is_ok());
    }

    #[test]
    fn money_helpers_round_once_and_refuse_overflow() {
        assert_eq!(round_div(5, 10), Some(1));
        assert_eq!(round_div(-5, 10), Some(-1));
        assert_eq!(round_div(4, 10), Some(0));
        assert_eq!(round_div(1, 0), None);
        assert_eq!(round_div(i128::MAX, 4), None);
        assert_eq!(to_micros(3, 7, 2), Ok(11));
        assert!(to_micros(i128::MAX, 2, 1).is_err());
        assert!(to_micros(i128::from(i64::MAX) + 1, 1, 1).is_err());
        assert!(Price::parse(&"9".repeat(40)).is_err());
        assert_eq!(
            split_by_hour(
                NOV_2026 + 1_800_000,
                NOV_2026 + 5_400_000,
                Quantity::from_micros(7)
            )
            .unwrap()
            .iter()
            .map(|(_, q)| q.micros())
            .sum::<i128>(),
            7
        );
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
