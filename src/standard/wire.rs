//! Confluent wire format: `0x00`, a 4-byte big-endian schema id, then the Avro body.
//!
//! Encoding goes through `schema_registry_converter`, which registers (or finds) our compiled-in
//! schema under the topic's subject once and caches its id. Decoding fetches the writer schema of
//! each id once (again through `schema_registry_converter`'s cache) and prepares a reader for it:
//! schema resolution from the writer's schema to ours is worked out once per writer id, never per
//! message, so old and new producers are both read.

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
    /// Whether trying again later may succeed (the registry was unreachable).
    pub fn is_retriable(&self) -> bool {
        matches!(self, WireError::Registry(e) if e.retriable)
    }
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
type CachedReader = Result<Arc<PreparedReader>, Arc<str>>;

/// Decodes Confluent-framed messages written with any registered schema that can be read as `T`.
pub struct RecordDecoder<T> {
    registry: AvroDecoder,
    readers: RwLock<HashMap<u32, CachedReader>>,
    _record: PhantomData<fn() -> T>,
}

impl<T: StandardRecord> RecordDecoder<T> {
    /// A decoder fetching writer schemas from `registry`.
    pub fn new(registry: SrSettings) -> Self {
        Self {
            registry: AvroDecoder::new(registry),
            readers: RwLock::new(HashMap::new()),
            _record: PhantomData,
        }
    }

    /// Decodes one message, fetching its writer schema on first sight of its id.
    pub async fn decode(&self, payload: &[u8]) -> Result<T, WireError> {
        let (schema_id, body) = split_frame(payload)?;
        let reader = match self.cached_reader(schema_id) {
            Some(reader) => reader,
            None => self.prepare(schema_id).await?,
        };
        match reader {
            Ok(reader) => reader.read(schema_id, body),
            Err(reason) => Err(WireError::Incompatible {
                schema_id,
                reader: T::FULL_NAME,
                reason: reason.to_string(),
            }),
        }
    }

    /// Decodes a message whose schema id was seen before, without touching the network.
    /// Returns `None` when the id is new; use [`RecordDecoder::decode`] for that.
    pub fn decode_cached(&self, payload: &[u8]) -> Option<Result<T, WireError>> {
        let (schema_id, body) = match split_frame(payload) {
            Ok(split) => split,
            Err(e) => return Some(Err(e)),
        };
        let reader = self.cached_reader(schema_id)?;
        Some(match reader {
            Ok(reader) => reader.read(schema_id, body),
            Err(reason) => Err(WireError::Incompatible {
                schema_id,
                reader: T::FULL_NAME,
                reason: reason.to_string(),
            }),
        })
    }

    fn cached_reader(&self, schema_id: u32) -> Option<CachedReader> {
        self.readers
            .read()
            .expect("reader cache lock")
            .get(&schema_id)
            .cloned()
    }

    /// Fetches the writer schema and works out how to read it as `T`. Registry failures are
    /// returned (and not cached: the registry may come back or learn the id); the verdict on
    /// compatibility is cached.
    async fn prepare(&self, schema_id: u32) -> Result<CachedReader, WireError> {
        let writer = self.registry.get_schema(schema_id).await?.parsed.clone();
        let prepared = PreparedReader::new(writer, T::schema())
            .map(Arc::new)
            .map_err(Arc::from);
        self.readers
            .write()
            .expect("reader cache lock")
            .insert(schema_id, prepared.clone());
        Ok(prepared)
    }
}

/// A reader for one writer schema, resolved once.
struct PreparedReader {
    datum: GenericDatumReader<'static>,
    /// Writer and reader schema differ: decode to a value and resolve it.
    resolves: bool,
}

impl PreparedReader {
    fn new(writer: Schema, reader: &'static Schema) -> Result<Self, String> {
        SchemaCompatibility::can_read(&writer, reader).map_err(|e| e.to_string())?;
        let same = writer.canonical_form() == reader.canonical_form();
        // Leaked on purpose: one schema per writer id ever seen, kept for the process lifetime
        // (the registry client caches them the same way), so the resolved reader can borrow it.
        let writer: &'static Schema = Box::leak(Box::new(writer));
        let builder = GenericDatumReader::builder(writer);
        let datum = if same {
            builder.build()
        } else {
            builder.reader_schema(reader).build()
        }
        .map_err(|e| e.to_string())?;
        Ok(Self {
            datum,
            resolves: !same,
        })
    }

    fn read<T: StandardRecord>(&self, schema_id: u32, mut body: &[u8]) -> Result<T, WireError> {
        let avro = |source| WireError::Avro {
            schema_id,
            source: Box::new(source),
        };
        if self.resolves {
            let value = self.datum.read_value(&mut body).map_err(avro)?;
            apache_avro::from_value(&value).map_err(avro)
        } else {
            self.datum.read_deser(&mut body).map_err(avro)
        }
    }
}
