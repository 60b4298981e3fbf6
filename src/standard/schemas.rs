//! The Avro schemas of the standard, compiled into the binary from `schemas/*.avsc`.

use std::sync::OnceLock;

use apache_avro::Schema;
use serde::{de::DeserializeOwned, Serialize};

use super::fast::{self, FastDecoder};
use super::records::{CostEvent, UsageEvent, UsageRecord};

/// A record type of the Usage Tracking Standard, tied to its Avro schema.
pub trait StandardRecord: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The `.avsc` text, as registered in the schema registry.
    const SCHEMA_JSON: &'static str;
    /// Full Avro name, e.g. `io.ferrisdx.usage.UsageEvent`.
    const FULL_NAME: &'static str;
    /// Topic the record travels on by default.
    const DEFAULT_TOPIC: &'static str;

    /// The parsed schema, parsed once per process.
    fn schema() -> &'static Schema;

    /// A hand-written decoder for one exact writer schema, used instead of apache-avro's generic
    /// deserializer for messages whose writer schema has its canonical form. `None` (the
    /// default): every message goes through apache-avro.
    fn fast_decoder() -> Option<FastDecoder<Self>> {
        None
    }
}

macro_rules! standard_record {
    ($ty:ty, $file:literal, $name:literal, $topic:expr $(, fast: $fast:expr)?) => {
        impl StandardRecord for $ty {
            const SCHEMA_JSON: &'static str = include_str!(concat!("../../schemas/", $file));
            const FULL_NAME: &'static str = concat!("io.ferrisdx.usage.", $name);
            const DEFAULT_TOPIC: &'static str = $topic;

            fn schema() -> &'static Schema {
                static SCHEMA: OnceLock<Schema> = OnceLock::new();
                SCHEMA.get_or_init(|| {
                    Schema::parse_str(Self::SCHEMA_JSON).expect(concat!(
                        "schemas/",
                        $file,
                        " is valid Avro (checked by tests)"
                    ))
                })
            }

            $(
                fn fast_decoder() -> Option<FastDecoder<Self>> {
                    Some($fast)
                }
            )?
        }
    };
}

standard_record!(
    UsageEvent,
    "usage_event.avsc",
    "UsageEvent",
    topics::USAGE_EVENTS,
    fast: FastDecoder {
        canonical_form: fast::USAGE_EVENT_CANONICAL_FORM,
        decode: fast::decode_usage_event,
    }
);
standard_record!(
    CostEvent,
    "cost_event.avsc",
    "CostEvent",
    topics::COST_EVENTS
);
standard_record!(
    UsageRecord,
    "usage_record.avsc",
    "UsageRecord",
    topics::USAGE_RECORDS
);

/// Default topic names of the standard.
pub mod topics {
    /// Avro [`UsageEvent`](crate::standard::UsageEvent)s from every producer.
    pub const USAGE_EVENTS: &str = "usage.events.v1";
    /// Avro [`CostEvent`](crate::standard::CostEvent)s from billing exporters.
    pub const COST_EVENTS: &str = "cost.events.v1";
    /// Avro [`UsageRecord`](crate::standard::UsageRecord)s emitted by the tracker.
    pub const USAGE_RECORDS: &str = "usage.records.v1";
    /// Messages that could not be processed, unchanged, with the reason in headers.
    pub const DEAD_LETTERS: &str = "usage.dlq.v1";
}

/// Compatibility level the standard requires of its subjects.
pub const COMPATIBILITY_LEVEL: &str = "BACKWARD_TRANSITIVE";

/// Subject of a topic's value schema under the TopicNameStrategy: `<topic>-value`.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// One local schema and the subject it is registered under.
#[derive(Debug, Clone)]
pub struct LocalSchema {
    /// Registry subject (`<topic>-value`).
    pub subject: String,
    /// Full Avro name of the record.
    pub full_name: &'static str,
    /// The `.avsc` text.
    pub schema_json: &'static str,
}

impl LocalSchema {
    /// The schema of `T` on `topic`.
    pub fn of<T: StandardRecord>(topic: &str) -> Self {
        Self {
            subject: value_subject(topic),
            full_name: T::FULL_NAME,
            schema_json: T::SCHEMA_JSON,
        }
    }
}

/// The three schemas of the standard on the given topics.
pub fn standard_schemas(
    usage_events: &str,
    cost_events: &str,
    usage_records: &str,
) -> Vec<LocalSchema> {
    vec![
        LocalSchema::of::<UsageEvent>(usage_events),
        LocalSchema::of::<CostEvent>(cost_events),
        LocalSchema::of::<UsageRecord>(usage_records),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_parses_and_names_itself() {
        assert_eq!(
            UsageEvent::schema().name().unwrap().fullname(None),
            UsageEvent::FULL_NAME
        );
        assert_eq!(
            CostEvent::schema().name().unwrap().fullname(None),
            CostEvent::FULL_NAME
        );
        assert_eq!(
            UsageRecord::schema().name().unwrap().fullname(None),
            UsageRecord::FULL_NAME
        );
    }

    #[test]
    fn subjects_follow_the_topic_name_strategy() {
        assert_eq!(value_subject(topics::USAGE_EVENTS), "usage.events.v1-value");
        let subjects: Vec<_> = standard_schemas("a", "b", "c")
            .into_iter()
            .map(|s| s.subject)
            .collect();
        assert_eq!(subjects, ["a-value", "b-value", "c-value"]);
    }
}
