//! Event-time windows per (cluster, namespace): tumbling, UTC-aligned, with watermarks,
//! deduplication, late data and the bill lines that fall into them. Pure, no I/O.

mod cost_ledger;
mod persist;
mod spec;
mod store;
mod watermark;

pub use cost_ledger::{CostLedger, CostLine, LedgerChange, LedgerRefusal};
pub use persist::persisted::ClusterState as PersistedWindow;
pub use spec::{WindowConfig, WindowSpec};
pub use store::{
    Admission, ClusterWindowView, GroupKey, MeterQuantity, MeterRefusal, Meters, Revision, Sample,
    WindowKey, WindowStore, MAX_METERS_PER_CLUSTER_WINDOW,
};
pub use watermark::Watermarks;
