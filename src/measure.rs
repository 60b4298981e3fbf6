//! Resources, exact quantities and per-resource totals: the vocabulary shared by windowing and
//! cost allocation. Pure values, no I/O.

use std::ops::{Add, AddAssign, Sub};
use std::sync::Arc;

use crate::standard::limits::MAX_QUANTITY_UNITS;

/// A resource the standard accounts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// CPU, in core-seconds.
    Cpu = 0,
    /// Memory, in byte-seconds.
    Memory = 1,
    /// Persistent storage, in byte-seconds.
    Storage = 2,
    /// Received network bytes.
    NetworkRx = 3,
    /// Transmitted network bytes.
    NetworkTx = 4,
    /// GPU, in gpu-seconds.
    Gpu = 5,
}

impl Resource {
    /// Every resource, in index order.
    pub const ALL: [Resource; 6] = [
        Resource::Cpu,
        Resource::Memory,
        Resource::Storage,
        Resource::NetworkRx,
        Resource::NetworkTx,
        Resource::Gpu,
    ];

    /// Name on the wire (`Measurement.resource`).
    pub fn name(self) -> &'static str {
        match self {
            Resource::Cpu => "cpu",
            Resource::Memory => "memory",
            Resource::Storage => "storage",
            Resource::NetworkRx => "network_rx",
            Resource::NetworkTx => "network_tx",
            Resource::Gpu => "gpu",
        }
    }

    /// The one unit the standard allows for this resource.
    pub fn unit(self) -> &'static str {
        match self {
            Resource::Cpu => "core_seconds",
            Resource::Memory | Resource::Storage => "byte_seconds",
            Resource::NetworkRx | Resource::NetworkTx => "bytes",
            Resource::Gpu => "gpu_seconds",
        }
    }

    /// The resource with this wire name.
    ///
    /// ```
    /// use usage_tracker::measure::Resource;
    /// assert_eq!(Resource::parse("memory"), Some(Resource::Memory));
    /// assert_eq!(Resource::parse("x-acme-licenses"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Resource> {
        // A match compiles to length and byte compares, not a scan of every name.
        match name {
            "cpu" => Some(Resource::Cpu),
            "memory" => Some(Resource::Memory),
            "storage" => Some(Resource::Storage),
            "network_rx" => Some(Resource::NetworkRx),
            "network_tx" => Some(Resource::NetworkTx),
            "gpu" => Some(Resource::Gpu),
            _ => None,
        }
    }

    /// Position in per-resource arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// An exact, non-negative amount of a resource in millionths of its unit.
///
/// Sums of quantities do not depend on the order they are added in, unlike `f64` sums, so a
/// replay after a crash gives bit-identical figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i128);

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity(0);
    const SCALE: f64 = 1e6;

    /// The quantity closest to `value` units; `None` for NaN, infinite or negative values and
    /// for values above the standard's [`MAX_QUANTITY_UNITS`], so the conversion never
    /// saturates and sums of quantities stay far inside `i128`.
    pub fn from_units(value: f64) -> Option<Quantity> {
        (value.is_finite() && (0.0..=MAX_QUANTITY_UNITS).contains(&value))
            .then(|| Quantity((value * Self::SCALE).round() as i128))
    }

    /// Raw millionths.
    pub fn from_micros(micros: i128) -> Quantity {
        Quantity(micros)
    }

    /// Raw millionths.
    pub fn micros(self) -> i128 {
        self.0
    }

    /// In units, for output.
    pub fn units(self) -> f64 {
        self.0 as f64 / Self::SCALE
    }

    /// `self * numerator / denominator`, rounded down; the remainder is the caller's to place.
    pub fn scale(self, numerator: i128, denominator: i128) -> Quantity {
        Quantity(self.0 * numerator / denominator)
    }

    /// `max(self - other, 0)`.
    pub fn saturating_sub(self, other: Quantity) -> Quantity {
        Quantity((self.0 - other.0).max(0))
    }
}

impl Add for Quantity {
    type Output = Quantity;
    fn add(self, rhs: Quantity) -> Quantity {
        Quantity(self.0 + rhs.0)
    }
}

impl AddAssign for Quantity {
    fn add_assign(&mut self, rhs: Quantity) {
        self.0 += rhs.0;
    }
}

impl Sub for Quantity {
    type Output = Quantity;
    fn sub(self, rhs: Quantity) -> Quantity {
        Quantity(self.0 - rhs.0)
    }
}

/// Used, requested and limit of one resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Sum of usage.
    pub used: Quantity,
    /// Sum of requests.
    pub requested: Quantity,
    /// Sum of limits.
    pub limit: Quantity,
}

impl Totals {
    /// `max(requested, used)`: what was kept from others (the OpenCost rule).
    pub fn allocated(&self) -> Quantity {
        self.requested.max(self.used)
    }

    /// `max(requested - used, 0)`: reserved but not used.
    pub fn unused(&self) -> Quantity {
        self.requested.saturating_sub(self.used)
    }

    /// Whether nothing was measured.
    pub fn is_zero(&self) -> bool {
        *self == Totals::default()
    }
}

/// [`Totals`] for every [`Resource`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceTotals(pub [Totals; 6]);

impl ResourceTotals {
    /// Totals of one resource.
    pub fn get(&self, resource: Resource) -> &Totals {
        &self.0[resource.index()]
    }

    /// Mutable totals of one resource.
    pub fn get_mut(&mut self, resource: Resource) -> &mut Totals {
        &mut self.0[resource.index()]
    }
}

/// Capacity (allocatable x time) of every [`Resource`] in a cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capacity(pub [Quantity; 6]);

impl Capacity {
    /// Capacity of one resource.
    pub fn get(&self, resource: Resource) -> Quantity {
        self.0[resource.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocated_is_the_larger_of_request_and_usage() {
        let q = |v| Quantity::from_units(v).unwrap();
        let over = Totals {
            used: q(3.0),
            requested: q(2.0),
            limit: q(4.0),
        };
        let under = Totals {
            used: q(1.0),
            requested: q(2.0),
            limit: q(4.0),
        };
        assert_eq!((over.allocated(), over.unused()), (q(3.0), Quantity::ZERO));
        assert_eq!((under.allocated(), under.unused()), (q(2.0), q(1.0)));
    }

    #[test]
    fn every_resource_parses_from_its_name() {
        for r in Resource::ALL {
            assert_eq!(Resource::parse(r.name()), Some(r));
        }
        assert_eq!(Resource::parse("CPU"), None);
        assert_eq!(Resource::parse(""), None);
    }

    #[test]
    fn quantities_reject_what_is_not_a_measurement() {
        assert_eq!(Quantity::from_units(f64::NAN), None);
        assert_eq!(Quantity::from_units(-1.0), None);
        assert_eq!(Quantity::from_units(f64::INFINITY), None);
        assert_eq!(Quantity::from_units(1e300), None);
        assert!(Quantity::from_units(MAX_QUANTITY_UNITS).is_some());
        assert_eq!(Quantity::from_units(2.5).unwrap().micros(), 2_500_000);
    }
}

/// Totals of one extension resource (`x-<vendor>-<name>`), in its own unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeterTotals {
    /// The unit all its measurements share.
    pub unit: Arc<str>,
    /// Used, requested, limit.
    pub totals: Totals,
}
