//! Capacity and cost allocation: who gets which share of every bill line. Pure, no I/O.
//!
//! Two steps, both exact to the micro-unit:
//!
//! 1. [`money::apportion_over_windows`] spreads a bill line over the event-time windows its charge
//!    period overlaps, by overlap in time.
//! 2. [`CostAllocator::allocate`] splits each in-window [`Charge`] over the namespaces of a
//!    [`ClusterWindow`] by the usage its category names (OpenCost's `max(request, usage)`),
//!    giving capacity nobody allocated to [`IDLE`] and cost with nothing to split by to
//!    [`UNALLOCATED`].
//!
//! 3. [`SharingPolicy::share`] moves the shares of shared platform namespaces (and of idle
//!    capacity, if asked) to the namespaces they serve.
//!
//! All rest on [`money::split_proportionally`] (largest remainder), so the parts of every amount
//! sum back to it exactly, as FOCUS split cost allocation and the standard (§2.4) require.

mod allocator;
pub mod money;
mod sharing;

pub(crate) use allocator::{basis, usage_weight};
pub use allocator::{
    AllocationPolicy, Charge, ClusterWindow, CostAllocator, IdleCost, NamespaceShare, IDLE,
    UNALLOCATED,
};
pub use sharing::{SharedLabel, SharingPolicy, SplitRule, SHARED_WORKLOADS};
