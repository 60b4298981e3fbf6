//! Confluent wire format: `0x00`, a 4-byte big-endian schema id, then the Avro body.
//!
//! Encoding goes through `schema_registry_converter`, which registers (or finds) our compiled-in
//! schema under the topic's subject once and caches its id. Decoding fetches the writer schema of
//! each id once (again through `schema_registry_converter`'s cache) and prepares a reader for it:
//! schema resolution from the writer's schema to ours is worked out once per writer id, never per
//! message, so old and new producers are both read. A writer schema that is exactly the one a
//! record's hand-written decoder was written for (`UsageEvent`: [`super::fast`]) is read by that
//! decoder instead of apache-avro's generic deserializer.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use schema_registry_converter::avro_common::get_supplied_schema;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::SubjectNameStrategy;

use super::fast::MalformedBody;
use super::schemas::StandardRecord;

/// The first byte of every Confluent-framed message.
pub const MAGIC_BYTE: u8 = 0;
const HEADER_LEN: usize = 5;

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The payload does not start with the magic byte and a schema id.
    #[error("not Confluent wire format: {0}")]
    NotFramed(&'static str),
    /// The registry could not give us the schema (unknown id, registry down ...).
    #[error("schema registry: {0}")]
    Registry(#[from] SRCError),
    /// The writer's schema cannot be read as ours.
    #[error("writer schema {schema_id} cannot be read as {reader}: {reason}")]
    Incompatible {
        /// Registry id of the writer's schema.
        schema_id: u32,
        /// Full name of our record.
        reader: &'static str,
        /// What the Avro library said.
        reason: String,
    },
    /// The body does not match its writer schema (found by the fast decoder of that schema).
    #[error("avro body of schema {schema_id}: {source}")]
    Malformed {
        /// Registry id of the writer's schema.
        schema_id: u32,
        /// Where the body breaks the schema.
        #[source]
        source: MalformedBody,
    },
    /// The body does not match its writer schema.
    #[error("avro body of schema {schema_id}: {source}")]
    Avro {
        /// Registry id of the writer's schema.
        schema_id: u32,
        /// What the Avro library said.
        #[source]
        source: Box<apache_avro::Error>,
    },
}

impl WireError {
    /// Whether trying again later may succeed: the registry was unreachable, or answered with
    /// anything but a clear "not found" (401, 403, 429, 500, 504 ... say nothing about the id).
    pub fn is_retriable(&self) -> bool {
        matches!(self, WireError::Registry(e) if registry_error_is_transient(e))
    }
}

/// `schema_registry_converter` retries only 502 and 503 and caches every other HTTP failure
/// for the id; we treat every answer but 404 as transient (and clear its cache, see
/// [`RecordDecoder::decode`]). Its errors carry the status only in their message.
fn registry_error_is_transient(error: &SRCError) -> bool {
    const HTTP_FAILED: &str = "HTTP request to schema registry failed with status ";
    error.retriable
        || error
            .error
            .strip_prefix(HTTP_FAILED)
            .is_some_and(|status| !status.starts_with("404"))
}

/// Splits a Confluent-framed payload into schema id and Avro body.
///
/// ```
/// use usage_tracker::standard::wire::split_frame;
/// assert_eq!(split_frame(&[0, 0, 0, 1, 0x2a, 6]).unwrap(), (298, &[6u8][..]));
/// assert!(split_frame(b"{\"json\":1}").is_err());
/// ```
pub fn split_frame(payload: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if payload.len() < HEADER_LEN {
        return Err(WireError::NotFramed("shorter than 5 bytes"));
    }
    if payload[0] != MAGIC_BYTE {
        return Err(WireError::NotFramed("first byte is not the magic byte 0"));
    }
    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    Ok((id, &payload[HEADER_LEN..]))
}

/// Encodes standard records of type `T` for one topic.
pub struct RecordEncoder<T> {
    encoder: AvroEncoder,
    strategy: SubjectNameStrategy,
    _record: PhantomData<fn(&T)>,
}

impl<T: StandardRecord> RecordEncoder<T> {
    /// An encoder writing `T`'s compiled-in schema under `<topic>-value`.
    pub fn new(registry: SrSettings, topic: &str) -> Self {
        let supplied = get_supplied_schema(T::schema());
        Self {
            encoder: AvroEncoder::new(registry),
            strategy: SubjectNameStrategy::TopicNameStrategyWithSchema(
                topic.to_owned(),
                false,
                supplied,
            ),
            _record: PhantomData,
        }
    }

    /// Confluent-framed Avro bytes of `record`. The first call registers or looks up the schema.
    pub async fn encode(&self, record: &T) -> Result<Vec<u8>, WireError> {
        Ok(self.encoder.encode_struct(record, &self.strategy).await?)
    }
}

/// A prepared reader, or why the writer schema cannot be read as ours.
type CachedReader<T> = Result<Arc<PreparedReader<T>>, Arc<str>>;

/// Decodes Confluent-framed messages written with any registered schema that can be read as `T`.
pub struct RecordDecoder<T> {
    registry: AvroDecoder,
    readers: RwLock<HashMap<u32, CachedReader<T>>>,
}

impl<T: StandardRecord> RecordDecoder<T> {
    /// A decoder fetching writer schemas from `registry`.
    pub fn new(registry: SrSettings) -> Self {
        Self {
            registry: AvroDecoder::new(registry),
            readers: RwLock::new(HashMap::new()),
        }
    }

    /// Decodes one message, fetching its writer schema on first sight of its id.
    pub async fn decode(&self, payload: &[u8]) -> Result<T, WireError> {
        let (schema_id, body) = split_frame(payload)?;
        if let Some(decoded) = self.read_cached(schema_id, body) {
            return decoded;
        }
        let reader = match self.prepare(schema_id).await {
            Ok(reader) => reader,
            Err(error) => {
                if error.is_retriable() {
                    // Never remember a transient answer as the id's verdict.
                    self.registry.remove_errors_from_cache();
                }
                return Err(error);
            }
        };
        read(&reader, schema_id, body)
    }

    /// Decodes a message whose schema id was seen before, without touching the network.
    /// Returns `None` when the id is new; use [`RecordDecoder::decode`] for that.
    pub fn decode_cached(&self, payload: &[u8]) -> Option<Result<T, WireError>> {
        match split_frame(payload) {
            Ok((schema_id, body)) => self.read_cached(schema_id, body),
            Err(e) => Some(Err(e)),
        }
    }

    /// Reads `body` under the cache's read lock (shared, and only contended while a new schema
    /// id is being added), without cloning the reader's `Arc`.
    fn read_cached(&self, schema_id: u32, body: &[u8]) -> Option<Result<T, WireError>> {
        let readers = self.readers.read().expect("reader cache lock");
        Some(read(readers.get(&schema_id)?, schema_id, body))
    }

    /// Fetches the writer schema and works out how to read it as `T`. Registry failures are
    /// returned (and not cached: the registry may come back or learn the id); the verdict on
    /// compatibility is cached.
    async fn prepare(&self, schema_id: u32) -> Result<CachedReader<T>, WireError> {
        let writer = self.registry.get_schema(schema_id).await?.parsed.clone();
        let prepared = PreparedReader::new(writer).map(Arc::new).map_err(Arc::from);
        self.readers
            .write()
            .expect("reader cache lock")
            .insert(schema_id, prepared.clone());
        Ok(prepared)
    }
}

fn read<T: StandardRecord>(
    reader: &CachedReader<T>,
    schema_id: u32,
    body: &[u8],
) -> Result<T, WireError> {
    match reader {
        Ok(reader) => reader.read(schema_id, body),
        Err(reason) => Err(WireError::Incompatible {
            schema_id,
            reader: T::FULL_NAME,
            reason: reason.to_string(),
        }),
    }
}

/// A reader of Avro bodies written with one writer schema, as `T`: what [`RecordDecoder`] keeps
/// per schema id, resolved once. It is public so that a body can be decoded with a given writer
/// schema without a registry (tests, the fuzz targets in `fuzz/`):
///
/// ```
/// use usage_tracker::standard::wire::PreparedReader;
/// use usage_tracker::standard::{StandardRecord, UsageEvent};
///
/// let fast = PreparedReader::<UsageEvent>::new(UsageEvent::schema().clone()).unwrap();
/// let generic =
///     PreparedReader::<UsageEvent>::without_fast_decoder(UsageEvent::schema().clone()).unwrap();
/// assert!(fast.is_fast() && !generic.is_fast());
/// assert!(fast.read(1, &[]).is_err() && generic.read(1, &[]).is_err());
/// ```
///
/// Each reader keeps its writer schema for the rest of the process (leaked, so that the resolved
/// reader can borrow it): prepare one per writer schema, not one per message.
pub enum PreparedReader<T> {
    /// The writer schema is the one `T`'s hand-written decoder was written for.
    Fast(fn(&[u8]) -> Result<T, MalformedBody>),
    /// Writer and reader schema are the same: apache-avro's deserializer, no resolution.
    Same(GenericDatumReader<'static>),
    /// Writer and reader schema differ: decode to a value and resolve it.
    Resolve(GenericDatumReader<'static>),
}

impl<T: StandardRecord> PreparedReader<T> {
    /// A reader of bodies written with `writer`, as [`RecordDecoder`] prepares it: `T`'s
    /// hand-written decoder when `writer` is exactly the schema it was written for, else
    /// apache-avro (resolving `writer` to `T`'s schema when they differ). Errors when `writer`
    /// cannot be read as `T`.
    pub fn new(writer: Schema) -> Result<Self, String> {
        Self::prepare(writer, true)
    }

    /// Like [`PreparedReader::new`], but always apache-avro's generic path, never a hand-written
    /// decoder: the reference the fast decoder is compared with.
    pub fn without_fast_decoder(writer: Schema) -> Result<Self, String> {
        Self::prepare(writer, false)
    }

    /// Whether bodies are read by `T`'s hand-written decoder.
    pub fn is_fast(&self) -> bool {
        matches!(self, Self::Fast(_))
    }

    fn prepare(writer: Schema, fast: bool) -> Result<Self, String> {
        let reader = T::schema();
        SchemaCompatibility::can_read(&writer, reader).map_err(|e| e.to_string())?;
        let writer_form = writer.canonical_form();
        if let Some(fast) = T::fast_decoder().filter(|_| fast) {
            // Compared once per writer id: the fast decoder knows exactly one schema, and must
            // also be reading into our own (it builds `T` without resolution).
            if writer_form == fast.canonical_form && writer_form == reader.canonical_form() {
                return Ok(Self::Fast(fast.decode));
            }
        }
        let same = writer_form == reader.canonical_form();
        // Leaked on purpose: one schema per writer id ever seen, kept for the process lifetime
        // (the registry client caches them the same way), so the resolved reader can borrow it.
        let writer: &'static Schema = Box::leak(Box::new(writer));
        let builder = GenericDatumReader::builder(writer);
        Ok(if same {
            Self::Same(builder.build().map_err(|e| e.to_string())?)
        } else {
            Self::Resolve(
                builder
                    .reader_schema(reader)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
        })
    }

    /// Decodes one Avro body (the bytes after the Confluent header; `schema_id` only names the
    /// writer schema in errors). Bytes after the record are ignored.
    pub fn read(&self, schema_id: u32, mut body: &[u8]) -> Result<T, WireError> {
        let avro = |source| WireError::Avro {
            schema_id,
            source: Box::new(source),
        };
        match self {
            Self::Fast(decode) => {
                decode(body).map_err(|source| WireError::Malformed { schema_id, source })
            }
            Self::Same(datum) => datum.read_deser(&mut body).map_err(avro),
            Self::Resolve(datum) => {
                let value = datum.read_value(&mut body).map_err(avro)?;
                apache_avro::from_value(&value).map_err(avro)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standard::{CostEvent, UsageEvent};

    #[test]
    fn only_a_clear_not_found_from_the_registry_is_permanent() {
        let http = |status: &str| {
            WireError::Registry(SRCError::new(
                &format!("HTTP request to schema registry failed with status {status}"),
                None,
                false,
            ))
        };
        for status in [
            "401 Unauthorized",
            "403 Forbidden",
            "429 Too Many Requests",
            "500 Internal Server Error",
            "504 Gateway Timeout",
        ] {
            assert!(http(status).is_retriable(), "{status}");
        }
        assert!(!http("404 Not Found").is_retriable());
        let unreachable = WireError::Registry(SRCError::new("connection refused", None, true));
        assert!(unreachable.is_retriable());
        let unparsable = WireError::Registry(SRCError::new("could not parse schema", None, false));
        assert!(!unparsable.is_retriable());
        assert!(!WireError::NotFramed("shorter than 5 bytes").is_retriable());
    }

    fn usage_event() -> UsageEvent {
        serde_json::from_value(serde_json::json!({
            "specversion": "1.0", "id": "e1", "source": "//test", "type": "io.ferrisdx.usage.v1",
            "time": 10_000, "start": 0, "end": 10_000,
            "subject": {
                "cluster_id": "c", "cluster_name": null, "namespace": "a", "pod_name": "p",
                "pod_uid": null, "container_name": null, "node_name": null,
                "workload_kind": null, "workload_name": null, "labels": {"app": "web"}
            },
            "measurements": [
                {"resource": "cpu", "kind": "usage", "quantity": 2.5, "unit": "core_seconds"}
            ]
        }))
        .unwrap()
    }

    fn body(schema: &Schema, value: &impl serde::Serialize) -> Vec<u8> {
        apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()
            .unwrap()
            .write_ser_to_vec(value)
            .unwrap()
    }

    #[test]
    fn our_own_writer_schema_takes_the_fast_decoder() {
        let reader = PreparedReader::<UsageEvent>::new(UsageEvent::schema().clone()).unwrap();
        assert!(matches!(reader, PreparedReader::Fast(_)));
        let event = usage_event();
        assert_eq!(
            reader.read(7, &body(UsageEvent::schema(), &event)).unwrap(),
            event
        );
        assert!(matches!(
            reader.read(7, &[0x02]),
            Err(WireError::Malformed { schema_id: 7, .. })
        ));
    }

    #[test]
    fn an_evolved_writer_schema_is_resolved_by_apache_avro() {
        let mut json: serde_json::Value = serde_json::from_str(UsageEvent::SCHEMA_JSON).unwrap();
        json["fields"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(
                {"name": "priority_class", "type": ["null", "string"], "default": null}
            ));
        let v2 = Schema::parse_str(&json.to_string()).unwrap();
        let reader = PreparedReader::<UsageEvent>::new(v2.clone()).unwrap();
        assert!(matches!(reader, PreparedReader::Resolve(_)));
        let event = usage_event();
        // v2's body is v1's followed by the new last field: union index 1, the string "high".
        let mut bytes = body(UsageEvent::schema(), &event);
        bytes.extend_from_slice(b"\x02\x08high");
        assert_eq!(reader.read(8, &bytes).unwrap(), event);
    }

    #[test]
    fn records_without_a_fast_decoder_use_apache_avro() {
        let reader = PreparedReader::<CostEvent>::new(CostEvent::schema().clone()).unwrap();
        assert!(matches!(reader, PreparedReader::Same(_)));
    }
}
