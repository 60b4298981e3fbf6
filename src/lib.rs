//! usage-tracker: per-namespace infrastructure usage and cost accounting for Kubernetes data
//! platforms.
//!
//! Data flows `ingest -> window -> allocate -> sink`; [`standard`] is the contract on Kafka.

pub mod cli;
pub mod kafka;
pub mod standard;
