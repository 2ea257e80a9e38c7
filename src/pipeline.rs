//! The pure per-record core: decode → mapping → dedupe key → envelope +
//! encode. (The dedupe decision itself needs the window's state and is
//! taken by the worker; the key is computed here.)
//!
//! No I/O and no clock: the caller passes `recorded_at`, so the same record
//! always gives the same outcome. The worker runs it inside a transaction;
//! tests and benches run it directly.

use std::collections::HashMap;
use std::sync::Arc;

use crate::avro::{LedgerSchemas, WriterSchemas};
use crate::config::Config;
use crate::decode::Decoder;
use crate::dedupe::{DedupeKey, DedupeWindow, KeySource, Verdict};
use crate::envelope::{EnvelopeContext, Header, encode_avro, encode_json, header};
use crate::legacy::LegacyRecord;
use crate::mapping::{EventBody, Mapped, Mapping};
use crate::registry::RegistryError;

/// The stage that rejected a record, written to the dead-letter headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Mapping,
    /// An event has no schema, or does not fit its schema.
    Schema,
    /// The encoded event could not be written (larger than the producer
    /// may send).
    Encode,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Mapping => "mapping",
            Stage::Schema => "schema",
            Stage::Encode => "encode",
        }
    }
}

/// A record that goes to the dead-letter topic, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub stage: Stage,
    pub reason: String,
}

/// One encoded event, ready for the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEvent {
    pub key: String,
    pub value: Vec<u8>,
    pub event_type: String,
    /// The command the event type was derived from, when no table named it.
    pub derived_from: Option<String>,
    /// What identifies the request, when dedupe is configured.
    pub dedupe_key: Option<DedupeKey>,
}

/// What becomes of one legacy record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Events(Vec<LedgerEvent>),
    Filtered,
    Rejected(Rejection),
}

/// What is written for a record's events once the dedupe window has seen
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// These events (the record's events that are not retries), in order.
    Write(Vec<LedgerEvent>),
    /// Every event is a retry of one from this earlier offset (the last seen).
    Duplicate { of_offset: i64 },
    /// An event is larger than recast may write: the whole record goes to
    /// the dead-letter topic, so a record is never half-written.
    Rejected(Rejection),
}

/// The registry's id of each event type's schema, from registering them.
pub type SchemaIds = Arc<HashMap<String, u32>>;

/// How events are encoded for the ledger.
#[derive(Debug, Clone)]
enum Encoding {
    /// JSON; checked against the schemas when there are any, so offline
    /// runs reject what the Avro ledger would.
    Json(Option<LedgerSchemas>),
    /// Confluent-framed Avro with the registered schema ids.
    Avro(LedgerSchemas, SchemaIds),
}

/// The compiled per-record core.
#[derive(Debug, Clone)]
pub struct Pipeline {
    decoder: Decoder,
    mapping: Mapping,
    dedupe: Option<KeySource>,
    system: String,
    max_output_bytes: usize,
    encoding: Encoding,
}

impl Pipeline {
    /// The core writing JSON events (checked against the configured
    /// schemas, if any): the ledger's JSON format, and the offline tools.
    pub fn new(config: &Config) -> Self {
        Self::with_encoding(config, Encoding::Json(config.schemas.clone()))
    }

    /// The core writing Avro events with the schema ids the registry gave.
    pub fn avro(config: &Config, schemas: LedgerSchemas, ids: SchemaIds) -> Self {
        Self::with_encoding(config, Encoding::Avro(schemas, ids))
    }

    /// The core decoding Confluent-framed Avro legacy values, with writer
    /// schemas from the registry, and other values as JSON when `json_too`.
    #[must_use]
    pub fn reading_avro(self, writer_schemas: WriterSchemas, json_too: bool) -> Self {
        Self {
            decoder: self.decoder.reading_avro(writer_schemas, json_too),
            ..self
        }
    }

    /// Fetches the writer schemas of the Avro values among `values` that
    /// are not known yet: run before the core sees them.
    pub fn prefetch_writer_schemas<'a>(
        &self,
        values: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> Result<(), RegistryError> {
        match self.decoder.writer_schemas() {
            Some(schemas) => schemas.prefetch(values),
            None => Ok(()),
        }
    }

    fn with_encoding(config: &Config, encoding: Encoding) -> Self {
        let raw = &config.raw;
        Self {
            decoder: Decoder::new(
                raw.limits.max_value_bytes.get(),
                raw.limits.max_json_depth.get(),
            ),
            mapping: config.mapping.clone(),
            dedupe: raw.dedupe.as_ref().map(KeySource::compile),
            system: raw.source.system.clone(),
            max_output_bytes: raw.limits.max_output_bytes.get(),
            encoding,
        }
    }

    pub fn mapping_version(&self) -> &str {
        self.mapping.version()
    }

    /// Runs one legacy record through every stage.
    pub fn process(&self, record: &LegacyRecord<'_>, recorded_at_ms: i64) -> Outcome {
        let bodies = match self.map(record) {
            Ok(Some(bodies)) => bodies,
            Ok(None) => return Outcome::Filtered,
            Err(rejection) => return Outcome::Rejected(rejection),
        };
        let ctx = EnvelopeContext {
            system: &self.system,
            mapping_version: self.mapping.version(),
            position: record.position,
            kafka_timestamp_ms: record.timestamp_ms,
            recorded_at_ms,
        };
        let mut events = Vec::with_capacity(bodies.len());
        for (index, body) in bodies.into_iter().enumerate() {
            let value = match self.encode(&header(&body, index, &ctx), &body) {
                Ok(value) => value,
                Err(reason) => {
                    return Outcome::Rejected(Rejection {
                        stage: Stage::Schema,
                        reason,
                    });
                }
            };
            let dedupe_key = self.dedupe_key(&body, record);
            events.push(LedgerEvent {
                key: body.key,
                value,
                event_type: body.event_type,
                derived_from: body.derived_from,
                dedupe_key,
            });
        }
        Outcome::Events(events)
    }

    /// An event's ledger value; the reason when it has no schema or does
    /// not fit it.
    fn encode(&self, header: &Header<'_>, body: &EventBody) -> Result<Vec<u8>, String> {
        let (schemas, ids) = match &self.encoding {
            Encoding::Json(None) => return Ok(encode_json(header, &body.payload)),
            Encoding::Json(Some(schemas)) => (schemas, None),
            Encoding::Avro(schemas, ids) => (schemas, Some(ids)),
        };
        let schema = schemas.get(&body.event_type).ok_or_else(|| {
            format!(
                "no schema for event type `{}` in ledger.schemas",
                body.event_type
            )
        })?;
        let fit_error = |e: crate::avro::FitError| format!("{}: {e}", schema.full_name());
        let mut value = Vec::with_capacity(256);
        let Some(ids) = ids else {
            // JSON checked against the schema: the Avro bytes are the check.
            schema
                .encode_payload(&body.payload, &mut value)
                .map_err(fit_error)?;
            return Ok(encode_json(header, &body.payload));
        };
        // Every schema is registered before the core runs; a missing id
        // would be recast's bug, and still no reason to write a bad event.
        let id = *ids
            .get(&body.event_type)
            .ok_or_else(|| format!("{} has no registered schema id", schema.full_name()))?;
        encode_avro(header, &body.payload, schema, id, &mut value).map_err(fit_error)?;
        Ok(value)
    }

    /// Passes a record's events through the dedupe window (every key is
    /// recorded in the window's open transaction, duplicates or not, which
    /// is what rebuilding the window from the log reproduces), then checks
    /// the survivors against `limits.max_output_bytes`.
    pub fn settle(
        &self,
        events: Vec<LedgerEvent>,
        mut window: Option<&mut DedupeWindow>,
        record: &LegacyRecord<'_>,
    ) -> Settled {
        let mut last_duplicate = None;
        let fresh: Vec<LedgerEvent> = events
            .into_iter()
            .filter(|event| {
                let verdict = match (window.as_deref_mut(), event.dedupe_key) {
                    (Some(window), Some(key)) => window.check(
                        record.position.partition,
                        key,
                        record.position.offset,
                        record.timestamp_ms,
                    ),
                    _ => Verdict::New,
                };
                if let Verdict::Duplicate { of_offset } = verdict {
                    last_duplicate = Some(of_offset);
                }
                verdict == Verdict::New
            })
            .collect();
        if let (true, Some(of_offset)) = (fresh.is_empty(), last_duplicate) {
            return Settled::Duplicate { of_offset };
        }
        if let Some(event) = fresh
            .iter()
            .find(|e| e.key.len() + e.value.len() > self.max_output_bytes)
        {
            return Settled::Rejected(Rejection {
                stage: Stage::Encode,
                reason: format!(
                    "event of {} bytes exceeds limits.max_output_bytes ({})",
                    event.key.len() + event.value.len(),
                    self.max_output_bytes
                ),
            });
        }
        Settled::Write(fresh)
    }

    /// The dedupe keys a record's events would have, without building the
    /// events: what rebuilding a dedupe window needs.
    pub fn dedupe_keys(&self, record: &LegacyRecord<'_>) -> Vec<DedupeKey> {
        match self.map(record) {
            Ok(Some(bodies)) => bodies
                .iter()
                .filter_map(|body| self.dedupe_key(body, record))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Decode and mapping: the event bodies, `None` when filtered.
    fn map(&self, record: &LegacyRecord<'_>) -> Result<Option<Vec<EventBody>>, Rejection> {
        let object = self
            .decoder
            .decode(record.value)
            .map_err(|e| rejection(Stage::Decode, &e))?;
        match self.mapping.apply(object, record) {
            Ok(Mapped::Events(bodies)) => Ok(Some(bodies)),
            Ok(Mapped::Filtered) => Ok(None),
            Err(e) => Err(rejection(Stage::Mapping, &e)),
        }
    }

    fn dedupe_key(&self, body: &EventBody, record: &LegacyRecord<'_>) -> Option<DedupeKey> {
        self.dedupe
            .as_ref()
            .and_then(|source| source.key(&body.payload, record.key))
    }
}

fn rejection(stage: Stage, error: &dyn std::error::Error) -> Rejection {
    Rejection {
        stage,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::legacy::Position;
    use serde_json::Value;

    fn pipeline() -> Pipeline {
        Pipeline::new(&Config::load(None, Vec::new()).unwrap())
    }

    fn record(value: &[u8]) -> LegacyRecord<'_> {
        LegacyRecord {
            position: Position {
                topic: "legacy-cart",
                partition: 0,
                offset: 42,
            },
            timestamp_ms: Some(1_700_000_000_000),
            key: Some(b"cart-1"),
            value: Some(value),
            headers: Vec::new(),
        }
    }

    /// A legacy command with every field its event's schema needs.
    const ADD: &[u8] = br#"{"command":"add.to.cart","requestId":"r","cartId":"cart-1","customer":{"id":"c-1"},"ts":1764000000137,"sku":"S","qty":2,"_meta":{"host":"h"}}"#;

    #[test]
    fn a_command_becomes_one_clean_event() {
        let Outcome::Events(events) = pipeline().process(&record(ADD), 1_800_000_000_000) else {
            panic!("not an event")
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].key, "cart-1");
        let json: Value = serde_json::from_slice(&events[0].value).unwrap();
        assert_eq!(json["header"]["event_type"], "AddedToCart");
        assert_eq!(json["header"]["occurred_at"], "2025-11-24T16:00:00.137Z");
        assert_eq!(json["payload"]["qty"], 2);
        assert!(json["payload"].get("_meta").is_none());
    }

    #[test]
    fn an_event_that_does_not_fit_its_schema_is_rejected_naming_the_field() {
        let value = br#"{"command":"ADD_TO_CART","requestId":"r","cartId":"cart-1","customer":{"id":"c-1"},"ts":1,"sku":"S","qty":"2"}"#;
        let Outcome::Rejected(r) = pipeline().process(&record(value), 0) else {
            panic!("not rejected")
        };
        assert_eq!(r.stage, Stage::Schema);
        assert_eq!(
            r.reason,
            "shop.cart.AddedToCart: field `qty`: expected int, got string \"2\""
        );
    }

    #[test]
    fn avro_events_are_framed_with_their_schema_id_and_read_back_whole() {
        let config = Config::load(None, Vec::new()).unwrap();
        let schemas = config.schemas.clone().unwrap();
        let ids: SchemaIds = Arc::new(
            schemas
                .event_types()
                .zip(100..)
                .map(|(t, id)| (t.to_owned(), id))
                .collect(),
        );
        let pipeline = Pipeline::avro(&config, schemas.clone(), ids.clone());
        let Outcome::Events(events) = pipeline.process(&record(ADD), 1_800_000_000_000) else {
            panic!("not an event")
        };
        let (id, mut datum) = crate::avro::split_frame(&events[0].value).unwrap();
        assert_eq!(id, ids["AddedToCart"]);
        let schema = &schemas.get("AddedToCart").unwrap().schema;
        let decoded = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .build()
            .unwrap()
            .read_value(&mut datum)
            .unwrap();
        assert!(datum.is_empty());
        let json: Value = decoded.try_into().unwrap();
        assert_eq!(json["header"]["event_type"], "AddedToCart");
        assert_eq!(json["header"]["occurred_at"], 1_764_000_000_137_i64);
        assert_eq!(json["header"]["recorded_at"], 1_800_000_000_000_i64);
        assert_eq!(json["header"]["source"]["offset"], 42);
        assert_eq!(json["header"]["correlation_id"], "r");
        assert_eq!(
            json["header"]["mapping_version"],
            pipeline.mapping_version()
        );
        assert_eq!(json["qty"], 2);
        assert_eq!(json["customer"]["email"], Value::Null);
    }

    #[test]
    fn the_same_record_gives_the_same_event_id() {
        let value = br#"{"command":"CHECKOUT","cartId":"cart-1","requestId":"r","customer":{"id":"c"},"ts":1}"#;
        let p = pipeline();
        let ids: Vec<Value> = [1, 2]
            .iter()
            .map(|now| match p.process(&record(value), *now) {
                Outcome::Events(e) => {
                    serde_json::from_slice::<Value>(&e[0].value).unwrap()["header"]["event_id"]
                        .clone()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids[0], ids[1]);
    }

    #[test]
    fn rejections_name_their_stage() {
        let p = pipeline();
        let Outcome::Rejected(r) = p.process(&record(b"{\"command\": "), 0) else {
            panic!()
        };
        assert_eq!(r.stage, Stage::Decode);
        let Outcome::Rejected(r) = p.process(&record(br#"{"command":"DELETE_EVERYTHING"}"#), 0)
        else {
            panic!()
        };
        assert_eq!(r.stage, Stage::Mapping);
        assert_eq!(r.reason, "unknown command `DELETE_EVERYTHING`");
    }
}
