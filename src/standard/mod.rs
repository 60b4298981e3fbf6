//! The Usage Tracking Standard in Rust: the records, their schemas, the Confluent wire format and
//! the schema registry.

pub mod diff;
pub mod fast;
pub mod limits;
pub mod records;
pub mod registry;
pub mod schemas;
pub mod wire;

pub use records::*;
pub use schemas::{topics, StandardRecord};
