//! A hand-written decoder of the Avro binary encoding of [`UsageEvent`], for the hot path.
//!
//! apache-avro's generic serde deserializer costs ~4 µs per event (per-field dispatch, and every
//! string read into a zero-filled `Vec` first). This decoder walks the bytes of exactly one writer
//! schema, [`USAGE_EVENT_CANONICAL_FORM`], and copies each string once into its `String`.
//! [`wire::RecordDecoder`](super::wire::RecordDecoder) uses it only for writer ids whose parsed
//! canonical form equals that one (checked once per id); any other writer schema (an evolved
//! producer) goes through apache-avro's schema resolution.
//!
//! It accepts and rejects the same bodies as apache-avro 0.22's `read_deser` for that schema
//! (property-tested in this module): varints of at most 10 bytes, strings with a non-negative
//! length within the allocation limit and valid UTF-8, union and enum indexes in range,
//! array and map blocks with negative counts followed by a byte size, and bytes after the record
//! are ignored. Bounds are checked on every read; the one `unsafe` turns bytes already checked to
//! be ASCII into a `str`.

use std::collections::BTreeMap;

use super::records::{Measurement, MeasurementKind, UsageEvent, WorkloadSubject};

/// Parsing canonical form of the writer schema [`decode_usage_event`] is written for: a copy of
/// `schemas/usage_event.avsc` as of this decoder. A test fails when the `.avsc` changes, so the
/// decoder is updated with it; until then a changed schema just takes the generic path.
pub const USAGE_EVENT_CANONICAL_FORM: &str = concat!(
    r#"{"name":"io.ferrisdx.usage.UsageEvent","type":"record","fields":["#,
    r#"{"name":"specversion","type":"string"},"#,
    r#"{"name":"id","type":"string"},"#,
    r#"{"name":"source","type":"string"},"#,
    r#"{"name":"type","type":"string"},"#,
    // apache-avro 0.22 keeps `{"type":"long"}` for a long with a (stripped) logical type.
    r#"{"name":"time","type":{"type":"long"}},"#,
    r#"{"name":"start","type":{"type":"long"}},"#,
    r#"{"name":"end","type":{"type":"long"}},"#,
    r#"{"name":"subject","type":{"name":"io.ferrisdx.usage.WorkloadSubject","type":"record","fields":["#,
    r#"{"name":"cluster_id","type":"string"},"#,
    r#"{"name":"cluster_name","type":["null","string"]},"#,
    r#"{"name":"namespace","type":["null","string"]},"#,
    r#"{"name":"pod_name","type":["null","string"]},"#,
    r#"{"name":"pod_uid","type":["null","string"]},"#,
    r#"{"name":"container_name","type":["null","string"]},"#,
    r#"{"name":"node_name","type":["null","string"]},"#,
    r#"{"name":"workload_kind","type":["null","string"]},"#,
    r#"{"name":"workload_name","type":["null","string"]},"#,
    r#"{"name":"labels","type":{"type":"map","values":"string"}}]}},"#,
    r#"{"name":"measurements","type":{"type":"array","items":{"name":"io.ferrisdx.usage.Measurement","type":"record","fields":["#,
    r#"{"name":"resource","type":"string"},"#,
    r#"{"name":"kind","type":{"name":"io.ferrisdx.usage.MeasurementKind","type":"enum","symbols":["usage","request","limit","capacity"]}},"#,
    r#"{"name":"quantity","type":"double"},"#,
    r#"{"name":"unit","type":"string"}]}}}]}"#,
);

/// Why a body could not be decoded: what was expected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset} of the avro body")]
pub struct MalformedBody {
    /// Byte offset in the Avro body (after the 5-byte Confluent header).
    pub offset: usize,
    /// What was wrong there.
    pub what: &'static str,
}

/// A decoder written for one exact writer schema of a record (see
/// [`StandardRecord::fast_decoder`](super::StandardRecord::fast_decoder)).
#[derive(Debug, Clone, Copy)]
pub struct FastDecoder<T> {
    /// Parsing canonical form of the writer schema `decode` is written for.
    pub canonical_form: &'static str,
    /// Decodes an Avro body written with that schema.
    pub decode: fn(&[u8]) -> Result<T, MalformedBody>,
}

/// Smallest encoding of one `Measurement`: two empty strings, an enum index, a double.
const MIN_MEASUREMENT_BYTES: usize = 1 + 1 + 8 + 1;

/// Decodes an Avro body written with [`USAGE_EVENT_CANONICAL_FORM`]. Bytes after the record are
/// ignored, as apache-avro does.
///
/// ```
/// use usage_tracker::standard::fast::decode_usage_event;
/// assert!(decode_usage_event(&[]).is_err());
/// ```
pub fn decode_usage_event(body: &[u8]) -> Result<UsageEvent, MalformedBody> {
    let mut r = Reader::new(body);
    let specversion = r.string()?;
    let id = r.string()?;
    let source = r.string()?;
    let event_type = r.string()?;
    let time = r.long()?;
    let start = r.long()?;
    let end = r.long()?;
    let subject = WorkloadSubject {
        cluster_id: r.string()?,
        cluster_name: r.optional_string()?,
        namespace: r.optional_string()?,
        pod_name: r.optional_string()?,
        pod_uid: r.optional_string()?,
        container_name: r.optional_string()?,
        node_name: r.optional_string()?,
        workload_kind: r.optional_string()?,
        workload_name: r.optional_string()?,
        labels: r.labels()?,
    };
    let measurements = r.measurements()?;
    Ok(UsageEvent {
        specversion,
        id,
        source,
        event_type,
        time,
        start,
        end,
        subject,
        measurements,
    })
}

/// A cursor over an Avro body; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// apache-avro's limit on one string's length (512 MiB unless configured), so that the two
    /// paths reject the same bodies.
    max_len: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            max_len: apache_avro::util::max_allocation_bytes(
                apache_avro::util::DEFAULT_MAX_ALLOCATION_BYTES,
            ),
        }
    }

    fn error(&self, what: &'static str) -> MalformedBody {
        MalformedBody {
            offset: self.pos,
            what,
        }
    }

    /// A zigzag varint `long`. Like apache-avro: at most 10 bytes, bits beyond 64 dropped.
    #[inline]
    fn long(&mut self) -> Result<i64, MalformedBody> {
        // One byte covers -64..=63: every union index, enum index, block count and short length.
        if let Some(&b) = self.bytes.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(unzigzag(u64::from(b)));
            }
        }
        let mut z = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.bytes.get(self.pos) else {
                return Err(self.error("truncated varint"));
            };
            self.pos += 1;
            z |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(unzigzag(z));
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }

    /// The next `len` bytes.
    #[inline]
    fn take(&mut self, len: usize) -> Result<&'a [u8], MalformedBody> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.error("truncated"))?;
        let bytes = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str, MalformedBody> {
        let len = self.long()?;
        let len = usize::try_from(len).map_err(|_| self.error("negative string length"))?;
        if len > self.max_len {
            return Err(self.error("string longer than the allocation limit"));
        }
        let bytes = self.take(len)?;
        if bytes.is_ascii() {
            // The usual case, checked a word at a time; `from_utf8` goes byte by byte over short
            // unaligned strings and was a fifth of this decoder's instructions.
            // SAFETY: ASCII bytes are valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes).map_err(|_| self.error("string is not UTF-8"))
    }

    #[inline]
    fn string(&mut self) -> Result<String, MalformedBody> {
        self.str().map(str::to_owned)
    }

    /// `["null", "string"]`.
    #[inline]
    fn optional_string(&mut self) -> Result<Option<String>, MalformedBody> {
        match self.long()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(self.error("union index out of range")),
        }
    }

    fn double(&mut self) -> Result<f64, MalformedBody> {
        let bytes: [u8; 8] = self.take(8)?.try_into().expect("took 8 bytes");
        Ok(f64::from_le_bytes(bytes))
    }

    /// Item count of the next array or map block; 0 ends the array or map. A negative count is
    /// followed by the block's size in bytes, which is not needed to read every item.
    #[inline]
    fn block(&mut self) -> Result<u64, MalformedBody> {
        let count = self.long()?;
        if count < 0 {
            self.long()?;
        }
        Ok(count.unsigned_abs())
    }

    /// `{"type": "map", "values": "string"}`. A repeated key keeps its last value, as serde's
    /// `BTreeMap` does.
    fn labels(&mut self) -> Result<BTreeMap<String, String>, MalformedBody> {
        let mut labels = BTreeMap::new();
        loop {
            let count = self.block()?;
            if count == 0 {
                return Ok(labels);
            }
            // Every entry reads at least one byte, so a huge count fails at the end of the body.
            for _ in 0..count {
                let key = self.string()?;
                let value = self.string()?;
                labels.insert(key, value);
            }
        }
    }

    fn measurements(&mut self) -> Result<Vec<Measurement>, MalformedBody> {
        let mut measurements = Vec::new();
        loop {
            let count = self.block()?;
            if count == 0 {
                return Ok(measurements);
            }
            // Reserve no more than the rest of the body can hold, whatever the count says.
            let fits = (self.bytes.len() - self.pos) / MIN_MEASUREMENT_BYTES;
            measurements.reserve(usize::try_from(count).unwrap_or(usize::MAX).min(fits));
            for _ in 0..count {
                let resource = self.string()?;
                let kind = match self.long()? {
                    0 => MeasurementKind::Usage,
                    1 => MeasurementKind::Request,
                    2 => MeasurementKind::Limit,
                    3 => MeasurementKind::Capacity,
                    _ => return Err(self.error("enum index out of range")),
                };
                let quantity = self.double()?;
                let unit = self.string()?;
                measurements.push(Measurement {
                    resource,
                    kind,
                    quantity,
                    unit,
                });
            }
        }
    }
}

#[inline]
fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

#[cfg(test)]
mod tests {
    use apache_avro::reader::datum::GenericDatumReader;
    use proptest::prelude::*;

    use super::*;
    use crate::standard::StandardRecord;

    /// apache-avro's path for a writer schema equal to ours (`wire::PreparedReader` without
    /// resolution).
    fn generic(body: &[u8]) -> Result<UsageEvent, apache_avro::Error> {
        let reader = GenericDatumReader::builder(UsageEvent::schema())
            .build()
            .expect("reader");
        reader.read_deser(&mut &body[..])
    }

    /// Equality that also holds for NaN quantities with the same bits.
    fn same(a: &UsageEvent, b: &UsageEvent) -> bool {
        let bits = |e: &UsageEvent| -> Vec<u64> {
            e.measurements
                .iter()
                .map(|m| m.quantity.to_bits())
                .collect()
        };
        let without_quantities = |e: &UsageEvent| {
            let mut e = e.clone();
            e.measurements.iter_mut().for_each(|m| m.quantity = 0.0);
            e
        };
        bits(a) == bits(b) && without_quantities(a) == without_quantities(b)
    }

    /// How a test encoding cuts arrays and maps into blocks: items per block (0 = one block of
    /// everything) and whether counts are written negative with a byte size.
    #[derive(Debug, Clone, Copy)]
    struct Blocking {
        per_block: usize,
        negative: bool,
    }

    fn zigzag(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        zigzag(out, s.len() as i64);
        out.extend_from_slice(s.as_bytes());
    }

    fn optional(out: &mut Vec<u8>, s: &Option<String>) {
        match s {
            None => zigzag(out, 0),
            Some(s) => {
                zigzag(out, 1);
                string(out, s);
            }
        }
    }

    /// Writes items in blocks as `blocking` says, then the terminating 0.
    fn blocks<T>(
        out: &mut Vec<u8>,
        items: &[T],
        blocking: Blocking,
        write: impl Fn(&mut Vec<u8>, &T),
    ) {
        let per_block = if blocking.per_block == 0 {
            items.len().max(1)
        } else {
            blocking.per_block
        };
        for chunk in items.chunks(per_block) {
            let mut block = Vec::new();
            chunk.iter().for_each(|item| write(&mut block, item));
            if blocking.negative {
                zigzag(out, -(chunk.len() as i64));
                zigzag(out, block.len() as i64);
            } else {
                zigzag(out, chunk.len() as i64);
            }
            out.extend_from_slice(&block);
        }
        zigzag(out, 0);
    }

    /// An encoding of `event` written from the Avro specification, independently of both
    /// decoders; with a single positive block it is byte-identical to apache-avro's.
    fn encode(event: &UsageEvent, blocking: Blocking) -> Vec<u8> {
        let mut out = Vec::new();
        for s in [
            &event.specversion,
            &event.id,
            &event.source,
            &event.event_type,
        ] {
            string(&mut out, s);
        }
        for t in [event.time, event.start, event.end] {
            zigzag(&mut out, t);
        }
        let s = &event.subject;
        string(&mut out, &s.cluster_id);
        for o in [
            &s.cluster_name,
            &s.namespace,
            &s.pod_name,
            &s.pod_uid,
            &s.container_name,
            &s.node_name,
            &s.workload_kind,
            &s.workload_name,
        ] {
            optional(&mut out, o);
        }
        let labels: Vec<_> = s.labels.iter().collect();
        blocks(&mut out, &labels, blocking, |out, (k, v)| {
            string(out, k);
            string(out, v);
        });
        blocks(&mut out, &event.measurements, blocking, |out, m| {
            string(out, &m.resource);
            zigzag(out, m.kind as i64);
            out.extend_from_slice(&m.quantity.to_le_bytes());
            string(out, &m.unit);
        });
        out
    }

    fn sample_event() -> UsageEvent {
        UsageEvent {
            specversion: "1.0".into(),
            id: "pod/a/p-1/1767225610000".into(),
            source: "//elastic-agent/c1/node-0".into(),
            event_type: "io.ferrisdx.usage.v1".into(),
            time: 1_767_225_610_000,
            start: 1_767_225_600_000,
            end: 1_767_225_610_000,
            subject: WorkloadSubject {
                cluster_id: "c1".into(),
                cluster_name: Some("prod (eu)".into()),
                namespace: Some("a".into()),
                pod_name: Some("p-1".into()),
                labels: BTreeMap::from([
                    ("app".to_owned(), "web".to_owned()),
                    ("team".to_owned(), "ä-team".to_owned()),
                ]),
                ..Default::default()
            },
            measurements: vec![
                Measurement {
                    resource: "cpu".into(),
                    kind: MeasurementKind::Usage,
                    quantity: 1.25,
                    unit: "core_seconds".into(),
                },
                Measurement {
                    resource: "memory".into(),
                    kind: MeasurementKind::Capacity,
                    quantity: 1e12,
                    unit: "byte_seconds".into(),
                },
            ],
        }
    }

    #[test]
    fn written_for_the_compiled_in_schema() {
        assert_eq!(
            UsageEvent::schema().canonical_form(),
            USAGE_EVENT_CANONICAL_FORM,
            "schemas/usage_event.avsc changed: update standard::fast to read it, then this copy"
        );
    }

    #[test]
    fn reads_what_apache_avro_writes() {
        let event = sample_event();
        let bytes = apache_avro::writer::datum::GenericDatumWriter::builder(UsageEvent::schema())
            .build()
            .unwrap()
            .write_ser_to_vec(&event)
            .unwrap();
        assert_eq!(
            bytes,
            encode(
                &event,
                Blocking {
                    per_block: 0,
                    negative: false
                }
            )
        );
        assert_eq!(decode_usage_event(&bytes).unwrap(), event);
    }

    #[test]
    fn reads_negative_block_counts_and_many_blocks() {
        let event = sample_event();
        for per_block in [0, 1, 2] {
            let bytes = encode(
                &event,
                Blocking {
                    per_block,
                    negative: true,
                },
            );
            assert_eq!(decode_usage_event(&bytes).unwrap(), event, "{per_block}");
            assert_eq!(generic(&bytes).unwrap(), event, "{per_block}");
        }
    }

    #[test]
    fn ignores_bytes_after_the_record_like_apache_avro() {
        let event = sample_event();
        let mut bytes = encode(
            &event,
            Blocking {
                per_block: 0,
                negative: false,
            },
        );
        bytes.extend_from_slice(b"\xff\xfftrailing");
        assert_eq!(decode_usage_event(&bytes).unwrap(), event);
        assert_eq!(generic(&bytes).unwrap(), event);
    }

    #[test]
    fn varints_follow_apache_avro() {
        let long = |bytes: &[u8]| Reader::new(bytes).long();
        assert_eq!(long(&[0x00]), Ok(0));
        assert_eq!(long(&[0x01]), Ok(-1));
        assert_eq!(long(&[0x80, 0x01]), Ok(64));
        let mut max = Vec::new();
        zigzag(&mut max, i64::MAX);
        assert_eq!(max.len(), 10);
        assert_eq!(long(&max), Ok(i64::MAX));
        let mut min = Vec::new();
        zigzag(&mut min, i64::MIN);
        assert_eq!(long(&min), Ok(i64::MIN));
        // A 10th byte's bits beyond 64 are dropped, an 11th byte is an error.
        assert_eq!(
            long(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            Ok(i64::MAX)
        );
        assert!(long(&[0xff; 11]).is_err());
        assert!(long(&[0x80, 0x80]).is_err());
        assert!(long(&[]).is_err());
    }

    #[test]
    fn malformed_bodies_are_errors_from_both_paths() {
        let good = encode(
            &sample_event(),
            Blocking {
                per_block: 0,
                negative: false,
            },
        );
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("negative string length", vec![0x01]),
            ("string past the end", vec![0x08, b'1']),
            ("invalid UTF-8", vec![0x02, 0xff]),
        ];
        // cluster_name's union index is the byte after cluster_id ("c1").
        let union_at = good
            .windows(3)
            .position(|w| w == [0x04, b'c', b'1'])
            .unwrap()
            + 3;
        let mut bad_union = good.clone();
        bad_union[union_at] = 0x04; // index 2
        cases.push(("union index 2", bad_union));
        let mut negative_union = good.clone();
        negative_union[union_at] = 0x01; // index -1
        cases.push(("union index -1", negative_union));
        // The first measurement's kind follows its resource "cpu".
        let kind_at = good
            .windows(4)
            .position(|w| w == [0x06, b'c', b'p', b'u'])
            .unwrap()
            + 4;
        let mut bad_kind = good.clone();
        bad_kind[kind_at] = 0x08; // index 4
        cases.push(("enum index 4", bad_kind));
        for cut in 0..good.len() {
            cases.push(("truncated", good[..cut].to_vec()));
        }
        for (what, bytes) in cases {
            assert!(decode_usage_event(&bytes).is_err(), "fast path: {what}");
            assert!(generic(&bytes).is_err(), "apache-avro: {what}");
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            "[a-z0-9./_-]{1,12}",
            any::<String>(),
            Just("x".repeat(200)), // a length of two varint bytes
        ]
    }

    fn usage_event() -> impl Strategy<Value = UsageEvent> {
        let measurement =
            (text(), 0u8..4, any::<f64>(), text()).prop_map(|(resource, kind, quantity, unit)| {
                Measurement {
                    resource,
                    kind: [
                        MeasurementKind::Usage,
                        MeasurementKind::Request,
                        MeasurementKind::Limit,
                        MeasurementKind::Capacity,
                    ][kind as usize],
                    quantity,
                    unit,
                }
            });
        let subject = (
            text(),
            prop::collection::vec(prop::option::of(text()), 8),
            prop::collection::btree_map(text(), text(), 0..5),
        )
            .prop_map(|(cluster_id, o, labels)| WorkloadSubject {
                cluster_id,
                cluster_name: o[0].clone(),
                namespace: o[1].clone(),
                pod_name: o[2].clone(),
                pod_uid: o[3].clone(),
                container_name: o[4].clone(),
                node_name: o[5].clone(),
                workload_kind: o[6].clone(),
                workload_name: o[7].clone(),
                labels,
            });
        (
            prop::collection::vec(text(), 4),
            any::<[i64; 3]>(),
            subject,
            prop::collection::vec(measurement, 0..6),
        )
            .prop_map(
                |(s, [time, start, end], subject, measurements)| UsageEvent {
                    specversion: s[0].clone(),
                    id: s[1].clone(),
                    source: s[2].clone(),
                    event_type: s[3].clone(),
                    time,
                    start,
                    end,
                    subject,
                    measurements,
                },
            )
    }

    fn blocking() -> impl Strategy<Value = Blocking> {
        (0usize..4, any::<bool>()).prop_map(|(per_block, negative)| Blocking {
            per_block,
            negative,
        })
    }

    /// A change to an encoded body: cut it, overwrite, insert or remove bytes.
    #[derive(Debug, Clone)]
    enum Damage {
        Truncate(prop::sample::Index),
        Overwrite(prop::sample::Index, u8),
        Insert(prop::sample::Index, Vec<u8>),
        Remove(prop::sample::Index, usize),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            any::<prop::sample::Index>().prop_map(Damage::Truncate),
            (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Damage::Overwrite(i, b)),
            (
                any::<prop::sample::Index>(),
                prop::collection::vec(any::<u8>(), 1..12)
            )
                .prop_map(|(i, b)| Damage::Insert(i, b)),
            (any::<prop::sample::Index>(), 1usize..8).prop_map(|(i, n)| Damage::Remove(i, n)),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
        match damage {
            Damage::Truncate(i) => bytes.truncate(i.index(bytes.len())),
            Damage::Overwrite(i, b) => {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            Damage::Insert(i, new) => {
                let at = i.index(bytes.len() + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Damage::Remove(i, n) => {
                let at = i.index(bytes.len());
                bytes.drain(at..(at + n).min(bytes.len()));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every UsageEvent, however its arrays and maps are blocked, reads the same on both paths.
        #[test]
        fn fast_and_generic_paths_agree_on_every_event(event in usage_event(), blocking in blocking()) {
            let bytes = encode(&event, blocking);
            let fast = decode_usage_event(&bytes).expect("fast path");
            let generic = generic(&bytes).expect("apache-avro");
            prop_assert!(same(&fast, &event), "fast path: {fast:?}");
            prop_assert!(same(&generic, &event), "apache-avro: {generic:?}");
        }

        /// Damaged bodies are errors from both paths, or read the same on both; never a panic.
        #[test]
        fn fast_and_generic_paths_agree_on_damaged_bodies(
            event in usage_event(),
            blocking in blocking(),
            damages in prop::collection::vec(damage(), 1..4),
        ) {
            let mut bytes = encode(&event, blocking);
            for d in &damages {
                if !bytes.is_empty() {
                    apply(&mut bytes, d);
                }
            }
            match (decode_usage_event(&bytes), generic(&bytes)) {
                (Ok(fast), Ok(generic)) => prop_assert!(same(&fast, &generic), "{fast:?} vs {generic:?}"),
                (Err(_), Err(_)) => {}
                (fast, generic) => prop_assert!(false, "paths disagree on {bytes:?}: fast {fast:?}, apache-avro {generic:?}"),
            }
        }
    }
}
