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
pub use store::{Admission, ClusterWindowView, GroupKey, Revision, Sample, WindowKey, WindowStore};
pub use watermark::Watermarks;
