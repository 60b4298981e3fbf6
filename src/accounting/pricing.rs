//! Rate cards: estimated cost for windows whose bill has not arrived yet.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::allocate::Charge;
use crate::measure::{Capacity, MeterTotals, Quantity, Resource, ResourceTotals};
use crate::standard::limits::check_amount;
use crate::standard::{CostCategory, CostStatus, Micros};

/// Prices per unit-hour, in micro-units of `currency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateCard {
    /// ISO 4217.
    pub currency: String,
    /// Price of one core for one hour.
    #[serde(default)]
    pub cpu_core_hour_micros: Micros,
    /// Price of one GiB of memory for one hour.
    #[serde(default)]
    pub memory_gib_hour_micros: Micros,
    /// Price of one GiB of storage for one hour.
    #[serde(default)]
    pub storage_gib_hour_micros: Micros,
    /// Price of one GPU for one hour.
    #[serde(default)]
    pub gpu_hour_micros: Micros,
    /// Prices of extension resources (`x-<vendor>-<name>`), per unit of their own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meters: BTreeMap<String, MeterPrice>,
}

/// The price of one extension resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterPrice {
    /// The unit the price is for; usage counted in another unit is not priced.
    pub unit: String,
    /// Price of one unit, in micro-units of the card's currency.
    pub unit_micros: Micros,
}

const GIB: i128 = 1 << 30;
const SECONDS_PER_HOUR: i128 = 3600;
const QUANTITY_SCALE: i128 = 1_000_000;

impl RateCard {
    /// Estimated charges for one cluster window: each priced resource at its capacity when known,
    /// else at what the namespaces allocated; each priced meter at what the namespaces allocated
    /// of it (in the card's unit).
    pub fn estimate(
        &self,
        namespaces: &[(&str, &ResourceTotals)],
        capacity: &Capacity,
        meters: &[(&str, &BTreeMap<Arc<str>, MeterTotals>)],
    ) -> Vec<Charge> {
        let mut charges: Vec<Charge> = [
            (
                Resource::Cpu,
                CostCategory::Compute,
                self.cpu_core_hour_micros,
                1,
            ),
            (
                Resource::Memory,
                CostCategory::Memory,
                self.memory_gib_hour_micros,
                GIB,
            ),
            (
                Resource::Storage,
                CostCategory::Storage,
                self.storage_gib_hour_micros,
                GIB,
            ),
            (Resource::Gpu, CostCategory::Gpu, self.gpu_hour_micros, 1),
        ]
        .into_iter()
        .filter(|(_, _, price, _)| *price != 0)
        .filter_map(|(resource, category, price, unit_divisor)| {
            let allocated: Quantity = namespaces.iter().fold(Quantity::ZERO, |sum, (_, t)| {
                sum + t.get(resource).allocated()
            });
            let basis = capacity.get(resource).max(allocated);
            let amount = self.price(price, basis, SECONDS_PER_HOUR * unit_divisor)?;
            Some(Charge {
                origin_source: "rate-card".into(),
                origin_id: format!("rate-card/{}", resource.name()),
                category,
                status: CostStatus::Estimated,
                currency: self.currency.clone(),
                namespace: None,
                amount,
                meter: None,
            })
        })
        .collect();
        for (meter, price) in &self.meters {
            let allocated = meters
                .iter()
                .filter_map(|(_, m)| m.get(meter.as_str()))
                .filter(|m| *m.unit == *price.unit)
                .fold(Quantity::ZERO, |sum, m| sum + m.totals.allocated());
            if let Some(amount) = self.price(price.unit_micros, allocated, 1) {
                charges.push(Charge {
                    origin_source: "rate-card".into(),
                    origin_id: format!("rate-card/{meter}"),
                    category: CostCategory::Other,
                    status: CostStatus::Estimated,
                    currency: self.currency.clone(),
                    namespace: None,
                    amount,
                    meter: Some(meter.clone()),
                });
            }
        }
        charges
    }

    /// `price` per `divisor` units of `basis`, rounded down; `None` when zero or out of range.
    fn price(&self, price: Micros, basis: Quantity, divisor: i128) -> Option<Micros> {
        // Checked: usage is producers' input. An estimate that does not fit the standard's
        // amount range is left out (the window shows unpriced for it), never wrapped.
        let amount = i128::from(price)
            .checked_mul(basis.micros())?
            .checked_div(QUANTITY_SCALE * divisor)?;
        Micros::try_from(amount)
            .ok()
            .filter(|a| check_amount("estimate", *a).is_ok() && *a != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_priced_per_unit_hour() {
        let card = RateCard {
            currency: "EUR".into(),
            cpu_core_hour_micros: 40_000,
            memory_gib_hour_micros: 5_000,
            storage_gib_hour_micros: 0,
            gpu_hour_micros: 0,
            meters: BTreeMap::new(),
        };
        let mut capacity = Capacity::default();
        // 4 cores and 16 GiB for one hour.
        capacity.0[Resource::Cpu.index()] = Quantity::from_units(4.0 * 3600.0).unwrap();
        capacity.0[Resource::Memory.index()] =
            Quantity::from_units(16.0 * 3600.0 * (1u64 << 30) as f64).unwrap();
        let charges = card.estimate(&[], &capacity, &[]);
        let amounts: Vec<_> = charges.iter().map(|c| (c.category, c.amount)).collect();
        assert_eq!(
            amounts,
            vec![
                (CostCategory::Compute, 160_000),
                (CostCategory::Memory, 80_000)
            ]
        );
        assert!(charges.iter().all(|c| c.status == CostStatus::Estimated));
    }
}
