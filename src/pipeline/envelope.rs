//! Envelope stage: an event body → a ledger event with the common header,
//! encoded for the ledger: Avro in the Confluent wire format, or JSON.
//!
//! Every field of the header but `recorded_at` is a function of the legacy
//! record and the mapping, so replaying a record after an abort or a crash
//! writes the same event again, with the same `event_id`.

use serde::Serialize;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use uuid::Uuid;

use crate::avro::{EventSchema, FitError, write_bytes, write_frame, write_long};
use crate::pipeline::digits::Decimal;
use crate::pipeline::mapping::EventBody;
use crate::pipeline::record::Position;
use crate::pipeline::timestamp::format_millis;

/// Namespace of every `event_id` (a version 5 UUID). Fixed forever: changing it would
/// give replayed records new ids.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1c_44f4_83a5_4f7e_9d0c_2f0e_5a8b_7c31);

/// The deterministic id of the `index`-th event made from the legacy record
/// at `position`.
pub fn event_id(position: Position<'_>, index: usize) -> Uuid {
    // `topic/partition/offset/index`, written digit by digit: the general
    // formatter cost as much as the SHA-1 of the name.
    let mut name = Vec::with_capacity(position.topic.len() + 3 * 20 + 3);
    name.extend_from_slice(position.topic.as_bytes());
    name.push(b'/');
    name.extend_from_slice(Decimal::new(i64::from(position.partition)).as_bytes());
    name.push(b'/');
    name.extend_from_slice(Decimal::new(position.offset).as_bytes());
    name.push(b'/');
    name.extend_from_slice(Decimal::new(index as i64).as_bytes());
    // A name-based (version 5) UUID, RFC 9562: the SHA-1 of namespace and
    // name. Hashed here rather than by `Uuid::new_v5`, whose SHA-1 is
    // portable code only: this one uses the CPU's SHA extensions, where
    // the name's hash cost as much as the rest of the header.
    let mut sha1 = Sha1::new();
    sha1.update(EVENT_ID_NAMESPACE.as_bytes());
    sha1.update(&name);
    let digest = sha1.finalize();
    let bytes: [u8; 16] = digest[..16].try_into().expect("a SHA-1 has 20 bytes");
    uuid::Builder::from_sha1_bytes(bytes).into_uuid()
}

/// The common header of every ledger event (`schemas/header.avsc`).
#[derive(Debug)]
pub struct Header<'a> {
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub occurred_at_ms: i64,
    pub recorded_at_ms: i64,
    pub source: Source<'a>,
    pub correlation_id: Option<&'a str>,
    pub mapping_version: &'a str,
}

/// The header as JSON writes it: times in RFC 3339.
#[derive(Serialize)]
struct HeaderJson<'a> {
    event_id: Uuid,
    event_type: &'a str,
    occurred_at: String,
    recorded_at: String,
    source: &'a Source<'a>,
    correlation_id: Option<&'a str>,
    mapping_version: &'a str,
}

/// Where the event came from.
#[derive(Debug, Serialize)]
pub struct Source<'a> {
    pub system: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

#[derive(Serialize)]
struct LedgerEventJson<'a> {
    header: HeaderJson<'a>,
    payload: &'a Map<String, Value>,
}

/// What the envelope needs besides the event body.
#[derive(Debug, Clone, Copy)]
pub struct EnvelopeContext<'a> {
    pub system: &'a str,
    pub mapping_version: &'a str,
    pub position: Position<'a>,
    /// The legacy record's Kafka timestamp: the event time when the record
    /// carries none of its own.
    pub kafka_timestamp_ms: Option<i64>,
    pub recorded_at_ms: i64,
}

/// Builds the header of the `index`-th event of a legacy record.
pub fn header<'a>(body: &'a EventBody, index: usize, ctx: &EnvelopeContext<'a>) -> Header<'a> {
    let occurred_at_ms = body
        .occurred_at_ms
        .or(ctx.kafka_timestamp_ms)
        .unwrap_or(ctx.recorded_at_ms);
    Header {
        event_id: event_id(ctx.position, index),
        event_type: &body.event_type,
        occurred_at_ms,
        recorded_at_ms: ctx.recorded_at_ms,
        source: Source {
            system: ctx.system,
            topic: ctx.position.topic,
            partition: ctx.position.partition,
            offset: ctx.position.offset,
        },
        correlation_id: body.correlation_id.as_deref(),
        mapping_version: ctx.mapping_version,
    }
}

impl<'a> Header<'a> {
    // Inlined: in `encode_json` it is built and serialised on the hot path.
    #[inline]
    fn json(&'a self) -> HeaderJson<'a> {
        HeaderJson {
            event_id: self.event_id,
            event_type: self.event_type,
            occurred_at: format_millis(self.occurred_at_ms),
            recorded_at: format_millis(self.recorded_at_ms),
            source: &self.source,
            correlation_id: self.correlation_id,
            mapping_version: self.mapping_version,
        }
    }

    /// The header as JSON events carry it (and traces show it).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.json()).expect("a header always serialises")
    }
}

/// Encodes a ledger event as JSON: `{"header": {…}, "payload": {…}}`.
pub fn encode_json(header: &Header<'_>, payload: &Map<String, Value>) -> Vec<u8> {
    let header = header.json();
    serde_json::to_vec(&LedgerEventJson { header, payload })
        .expect("JSON maps with string keys always serialise")
}

/// Encodes a ledger event as a Confluent-framed Avro datum of its event
/// type's schema (registered as `schema_id`): the header's fields, then
/// the payload's. A payload that does not fit the schema is an error
/// naming the field.
pub fn encode_avro(
    header: &Header<'_>,
    payload: &Map<String, Value>,
    schema: &EventSchema,
    schema_id: u32,
    out: &mut Vec<u8>,
) -> Result<(), FitError> {
    write_frame(schema_id, out);
    write_header(header, out);
    schema.encode_payload(payload, out)
}

/// The header as `recast.EventHeader` lays it out (the schema loader
/// refuses any other layout).
fn write_header(header: &Header<'_>, out: &mut Vec<u8>) {
    let mut id = Uuid::encode_buffer();
    write_bytes(
        header
            .event_id
            .hyphenated()
            .encode_lower(&mut id)
            .as_bytes(),
        out,
    );
    write_bytes(header.event_type.as_bytes(), out);
    write_long(header.occurred_at_ms, out);
    write_long(header.recorded_at_ms, out);
    write_bytes(header.source.system.as_bytes(), out);
    write_bytes(header.source.topic.as_bytes(), out);
    write_long(i64::from(header.source.partition), out);
    write_long(header.source.offset, out);
    match header.correlation_id {
        None => write_long(0, out),
        Some(id) => {
            write_long(1, out);
            write_bytes(id.as_bytes(), out);
        }
    }
    write_bytes(header.mapping_version.as_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn position(offset: i64) -> Position<'static> {
        Position {
            topic: "legacy-cart",
            partition: 2,
            offset,
        }
    }

    proptest::proptest! {
        /// The ids of every release so far: the name is the one the
        /// general formatter wrote.
        #[test]
        fn event_ids_name_the_position_as_before(
            topic in "[a-zA-Z0-9._-]{1,20}",
            partition in proptest::num::i32::ANY,
            offset in proptest::num::i64::ANY,
            index in 0usize..1000,
        ) {
            let name = format!("{topic}/{partition}/{offset}/{index}");
            let position = Position { topic: &topic, partition, offset };
            proptest::prop_assert_eq!(
                event_id(position, index),
                Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
            );
        }
    }

    #[test]
    fn event_ids_are_deterministic_and_distinct() {
        assert_eq!(event_id(position(7), 0), event_id(position(7), 0));
        assert_ne!(event_id(position(7), 0), event_id(position(8), 0));
        assert_ne!(event_id(position(7), 0), event_id(position(7), 1));
        assert_eq!(event_id(position(7), 0).get_version_num(), 5);
    }

    #[test]
    fn header_prefers_the_records_own_time() {
        let body = EventBody {
            event_type: "AddedToCart".into(),
            derived_from: None,
            key: "cart-1".into(),
            occurred_at_ms: None,
            correlation_id: Some("r-1".into()),
            payload: Map::new(),
        };
        let ctx = EnvelopeContext {
            system: "cart-service",
            mapping_version: "abc",
            position: position(3),
            kafka_timestamp_ms: Some(1_000),
            recorded_at_ms: 2_000,
        };
        let h = header(&body, 0, &ctx);
        assert_eq!(h.occurred_at_ms, 1_000);
        let timed = EventBody {
            occurred_at_ms: Some(500),
            ..body.clone()
        };
        assert_eq!(header(&timed, 0, &ctx).occurred_at_ms, 500);
        let json: Value = serde_json::from_slice(&encode_json(&h, &body.payload)).unwrap();
        assert_eq!(json["header"]["occurred_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(
            json["header"]["source"],
            json!({"system": "cart-service", "topic": "legacy-cart", "partition": 2, "offset": 3})
        );
        assert_eq!(json["header"]["correlation_id"], "r-1");
        assert_eq!(json["header"]["recorded_at"], "1970-01-01T00:00:02.000Z");
    }
}
