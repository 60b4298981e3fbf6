//! Where records go: Kafka (`usage.records.v1`, dead letters) and PostgreSQL.

pub mod kafka;
pub mod outbox;
pub mod postgres;
pub mod recompute;
