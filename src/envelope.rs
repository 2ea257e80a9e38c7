//! Envelope stage: an event body → a ledger event with the common header,
//! encoded for the ledger (JSON).
//!
//! Every field of the header but `recorded_at` is a function of the legacy
//! record and the mapping, so replaying a record after an abort or a crash
//! writes the same event again, with the same `event_id`.

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::legacy::Position;
use crate::mapping::EventBody;
use crate::timestamp::format_millis;

/// Namespace of every `event_id` (a version 5 UUID). Fixed forever: changing it would
/// give replayed records new ids.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1c_44f4_83a5_4f7e_9d0c_2f0e_5a8b_7c31);

/// The deterministic id of the `index`-th event made from the legacy record
/// at `position`.
pub fn event_id(position: Position<'_>, index: usize) -> Uuid {
    let name = format!(
        "{}/{}/{}/{}",
        position.topic, position.partition, position.offset, index
    );
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

/// The common header of every ledger event.
#[derive(Debug, Serialize)]
pub struct Header<'a> {
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub occurred_at: String,
    pub recorded_at: String,
    pub source: Source<'a>,
    pub correlation_id: Option<&'a str>,
    pub mapping_version: &'a str,
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
    header: &'a Header<'a>,
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
        occurred_at: format_millis(occurred_at_ms),
        recorded_at: format_millis(ctx.recorded_at_ms),
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

/// Encodes a ledger event as JSON: `{"header": {…}, "payload": {…}}`.
pub fn encode_json(header: &Header<'_>, payload: &Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(&LedgerEventJson { header, payload })
        .expect("JSON maps with string keys always serialise")
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
        assert_eq!(h.occurred_at, "1970-01-01T00:00:01.000Z");
        let timed = EventBody {
            occurred_at_ms: Some(500),
            ..body.clone()
        };
        assert_eq!(
            header(&timed, 0, &ctx).occurred_at,
            "1970-01-01T00:00:00.500Z"
        );
        let json: Value = serde_json::from_slice(&encode_json(&h, &body.payload)).unwrap();
        assert_eq!(
            json["header"]["source"],
            json!({"system": "cart-service", "topic": "legacy-cart", "partition": 2, "offset": 3})
        );
        assert_eq!(json["header"]["correlation_id"], "r-1");
        assert_eq!(json["header"]["recorded_at"], "1970-01-01T00:00:02.000Z");
    }
}
