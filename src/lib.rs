//! usage-tracker: per-namespace infrastructure usage and cost accounting for Kubernetes data
//! platforms.
//!
//! Data flows `ingest -> window -> allocate -> sink`; [`standard`] is the contract on Kafka.

#![warn(missing_docs)]

pub mod accounting;
pub mod allocate;
pub mod billing;
pub mod cli;
pub mod config;
pub mod elastic;
pub mod fault;
pub mod generate;
pub mod http;
pub mod ingest;
pub mod kafka;
pub mod measure;
pub mod metrics;
pub mod pipeline;
pub mod report;
pub mod retry;
pub mod sink;
pub mod standard;
pub mod time;
pub mod window;
