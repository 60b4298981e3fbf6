//! On-prem cost from a rate card: prices per core-hour, GiB-hour and GPU-hour per node pool, per
//! GiB-hour per storage class, and fixed monthly costs, applied to the capacity the cluster
//! reported.
//!
//! An on-prem cluster has no bill, so the rate card is its bill: the exporter turns the node
//! capacity seen on the usage topic (`capacity` measurements of `state_node`: cpu, memory, gpu)
//! into one [`CostEvent`] per (hour, node pool, resource), storage usage into one per (hour,
//! storage class), and each fixed cost into one per calendar month (the part inside the export
//! period).
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
    /// Per GPU and hour of allocatable GPUs (`gpu` capacity in `gpu_seconds`); category `gpu`.
    #[serde(default)]
    pub gpu_hour: Price,
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
    /// An extension resource (`x-<vendor>-<name>`) to apportion it by instead of its category:
    /// a Presto licence by query seconds, a managed JupyterHub by server hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<String>,
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
    Gpu,
    Storage,
}

impl Priced {
    /// What a measurement prices, if anything: node capacity of cpu, memory and gpu, storage
    /// claimed.
    fn of(resource: &str, kind: MeasurementKind) -> Option<Priced> {
        match (resource, kind) {
            ("cpu", MeasurementKind::Capacity) => Some(Priced::Cpu),
            ("memory", MeasurementKind::Capacity) => Some(Priced::Memory),
            ("gpu", MeasurementKind::Capacity) => Some(Priced::Gpu),
            ("storage", MeasurementKind::Request) => Some(Priced::Storage),
            _ => None,
        }
    }

    fn resource(self) -> Resource {
        match self {
            Priced::Cpu => Resource::Cpu,
            Priced::Memory => Resource::Memory,
            Priced::Gpu => Resource::Gpu,
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
    /// `cpu`, `memory`, `gpu` or `storage`.
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
        for fixed in &self.fixed {
            if let Some(meter) = fixed
                .meter
                .as_deref()
                .filter(|m| !crate::ingest::is_meter(m))
            {
                return Err(format!(
                    "fixed cost {:?}: meter {meter:?} is not an extension resource x-<vendor>-<name>",
                    fixed.name
                ));
            }
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
                Priced::Gpu => (
                    "gpu",
                    CostCategory::Gpu,
                    self.pool(group).map(|p| p.gpu_hour),
                    1,
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
                    .map(|amount| CostEvent {
                        meter: fixed.meter.clone(),
                        ..self.line(
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
            meter: None,
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
mod tests;
