//! The one record path: `Pipeline::run` decides what becomes of a legacy
//! record through every stage — decode → mapping → dedupe → envelope +
//! encode (the schema check) → output size limit — and what the dedupe
//! window remembers of it (the rule is on `run`). The worker, `recast
//! test`, `recast replay` and the dedupe-window restore all call it and
//! nothing else, so they decide alike; the offline tools differ only in
//! writing JSON events, whose size the limit is then checked on. `recast
//! explain` and the live tap run the same function with a decision trace
//! on (`trace.rs`), so a trace says what the path did, not what a second
//! reading of the mapping thinks it did.
//!
//! No I/O and no clock: the caller passes `recorded_at`, so the same record
//! always gives the same outcome. The worker runs it inside a transaction;
//! tests and benches run it directly.

pub(crate) mod dead_letter;
pub(crate) mod decode;
pub(crate) mod dedupe;
pub(crate) mod digits;
pub mod envelope;
pub(crate) mod event_headers;
pub(crate) mod field_paths;
pub(crate) mod mapping;
mod outcome;
pub(crate) mod record;
pub(crate) mod timestamp;
pub(crate) mod trace;

use std::collections::HashMap;
use std::sync::Arc;

use crate::avro::{LedgerSchemas, WriterSchemas};
use crate::pipeline::decode::Decoder;
use crate::pipeline::dedupe::{DedupeKey, KeySource, Memory, Verdict};
use crate::pipeline::envelope::{EnvelopeContext, Header, encode_avro, encode_json, header};
use crate::pipeline::mapping::{EventBody, Mapped, Mapping};
use crate::pipeline::record::LegacyRecord;
use crate::pipeline::trace::{Decision, Trace};
pub use outcome::{Counts, LedgerEvent, RecordOutcome, Rejection, Stage};

/// The registry's id of each event type's schema, from registering them.
pub type SchemaIds = Arc<HashMap<String, u32>>;

/// How events are encoded for the ledger.
#[derive(Debug, Clone)]
pub enum Encoding {
    /// JSON; checked against the schemas when there are any, so offline
    /// runs reject what the Avro ledger would.
    Json(Option<LedgerSchemas>),
    /// Confluent-framed Avro with the registered schema ids.
    Avro(LedgerSchemas, SchemaIds),
}

/// What the core is built from: every stage already compiled.
#[derive(Debug, Clone)]
pub struct Stages {
    pub decoder: Decoder,
    pub mapping: Mapping,
    /// What identifies a request, when retries are dropped.
    pub dedupe: Option<KeySource>,
    /// The legacy system's name, in every event's header.
    pub system: String,
    /// The ledger topic: schema subjects are named after it.
    pub ledger_topic: String,
    /// Largest event (key and value) recast may write.
    pub max_output_bytes: usize,
    pub encoding: Encoding,
}

/// The compiled per-record core.
#[derive(Debug, Clone)]
pub struct Pipeline {
    stages: Stages,
    /// Top-level fields the mapping drops unread: decoding leaves them
    /// out, unless a trace wants the whole record.
    unread: Vec<String>,
}

impl Pipeline {
    pub fn new(stages: Stages) -> Self {
        let unread = stages.mapping.fields_dropped_unread();
        Self { stages, unread }
    }

    /// The writer schemas Avro legacy values are decoded with, when they
    /// are: the shell fetches a batch's unknown ones before running it.
    pub fn writer_schemas(&self) -> Option<&WriterSchemas> {
        self.stages.decoder.writer_schemas()
    }

    pub fn mapping_version(&self) -> &str {
        self.stages.mapping.version()
    }

    /// Decides what becomes of one legacy record, remembering in `window`
    /// what later records need to know.
    ///
    /// Which records the window remembers is the rule that keeps it exact:
    /// a record is judged on its own first — decoded, mapped, and every one
    /// of its events enveloped, checked against its schema and the output
    /// size limit, retries included. Only a record that passes (every event
    /// could be written) is remembered: each event's key is recorded at the
    /// record's offset. A rejected record leaves no trace, so a corrected
    /// retry of it still lands; a filtered record has no events. Of a
    /// remembered record, the events whose key the window already held
    /// are dropped as duplicates. What is remembered thus depends on the
    /// record alone, never on a verdict, and re-running this function over
    /// a partition's last `capacity` offsets rebuilds the window exactly.
    /// The price: a retry is encoded before it is dropped.
    pub fn run(
        &self,
        record: &LegacyRecord<'_>,
        window: Option<&mut dyn Memory>,
        recorded_at_ms: i64,
    ) -> RecordOutcome {
        self.run_traced(record, window, recorded_at_ms, &mut Trace::off())
    }

    /// [`Pipeline::run`], noting every decision in `trace` when it is on,
    /// the outcome last: `recast explain` and the live tap.
    pub fn run_traced(
        &self,
        record: &LegacyRecord<'_>,
        window: Option<&mut dyn Memory>,
        recorded_at_ms: i64,
        trace: &mut Trace,
    ) -> RecordOutcome {
        let outcome = self.decide(record, window, recorded_at_ms, trace);
        trace.note(|| outcome_decision(&outcome));
        outcome
    }

    /// The record path itself.
    fn decide(
        &self,
        record: &LegacyRecord<'_>,
        window: Option<&mut dyn Memory>,
        recorded_at_ms: i64,
        trace: &mut Trace,
    ) -> RecordOutcome {
        let bodies = match self.map(record, trace) {
            Ok(Some(bodies)) => bodies,
            Ok(None) => return RecordOutcome::Filtered,
            Err(rejection) => return RecordOutcome::Rejected(rejection),
        };
        let position = record.position;
        let keys: Vec<Option<DedupeKey>> = bodies
            .iter()
            .map(|body| self.dedupe_key(body, record))
            .collect();
        let verdicts: Vec<Verdict> = match window.as_deref() {
            Some(window) => keys
                .iter()
                .map(|key| match key {
                    Some(key) => window.verdict(
                        position.partition,
                        *key,
                        position.offset,
                        record.timestamp_ms,
                    ),
                    None => Verdict::New,
                })
                .collect(),
            None => vec![Verdict::New; keys.len()],
        };
        if trace.is_on() {
            self.note_dedupe(&bodies, &keys, &verdicts, record, trace);
        }
        let events = match self.envelope(bodies, &keys, record, recorded_at_ms, trace) {
            Ok(events) => events,
            Err(rejection) => return RecordOutcome::Rejected(rejection),
        };
        if let Some(window) = window {
            for key in keys.iter().flatten() {
                window.record(
                    position.partition,
                    *key,
                    position.offset,
                    record.timestamp_ms,
                );
            }
        }
        let mut last_duplicate = None;
        let fresh: Vec<LedgerEvent> = events
            .into_iter()
            .zip(verdicts)
            .filter_map(|(event, verdict)| match verdict {
                Verdict::New => Some(event),
                Verdict::Duplicate { of_offset } => {
                    last_duplicate = Some(of_offset);
                    None
                }
            })
            .collect();
        match (fresh.is_empty(), last_duplicate) {
            (true, Some(of_offset)) => RecordOutcome::Duplicate { of_offset },
            _ => RecordOutcome::Events(fresh),
        }
    }

    /// Envelope + encode, and the output size limit, for every event of a
    /// record: one that does not fit its schema or is larger than recast may
    /// write rejects the whole record, so a record is never half-written.
    fn envelope(
        &self,
        bodies: Vec<EventBody>,
        keys: &[Option<DedupeKey>],
        record: &LegacyRecord<'_>,
        recorded_at_ms: i64,
        trace: &mut Trace,
    ) -> Result<Vec<LedgerEvent>, Rejection> {
        let ctx = EnvelopeContext {
            system: &self.stages.system,
            mapping_version: self.stages.mapping.version(),
            position: record.position,
            kafka_timestamp_ms: record.timestamp_ms,
            recorded_at_ms,
        };
        let mut events = Vec::with_capacity(bodies.len());
        for (index, (body, dedupe_key)) in bodies.into_iter().zip(keys).enumerate() {
            trace.note_event_fields(&body.payload);
            let header = header(&body, index, &ctx);
            trace.note(|| Decision::Header {
                event: index,
                header: header.to_json(),
            });
            let encoded = self.encode(&header, &body);
            if trace.is_on() {
                self.note_schema(index, &body, encoded.is_ok(), trace);
            }
            let value = encoded.map_err(|reason| Rejection {
                stage: Stage::Schema,
                reason,
            })?;
            let size = body.key.len() + value.len();
            trace.note(|| Decision::Size {
                event: index,
                bytes: size,
                limit: self.stages.max_output_bytes,
            });
            if size > self.stages.max_output_bytes {
                return Err(Rejection {
                    stage: Stage::Encode,
                    reason: format!(
                        "event of {size} bytes exceeds limits.max_output_bytes ({})",
                        self.stages.max_output_bytes
                    ),
                });
            }
            events.push(LedgerEvent {
                key: body.key,
                value,
                event_type: body.event_type,
                derived_from: body.derived_from,
                dedupe_key: *dedupe_key,
            });
        }
        Ok(events)
    }

    /// An event's ledger value; the reason when it has no schema or does
    /// not fit it.
    fn encode(&self, header: &Header<'_>, body: &EventBody) -> Result<Vec<u8>, String> {
        let (schemas, ids) = match &self.stages.encoding {
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

    /// Decode and mapping: the event bodies, `None` when filtered.
    fn map(
        &self,
        record: &LegacyRecord<'_>,
        trace: &mut Trace,
    ) -> Result<Option<Vec<EventBody>>, Rejection> {
        let unread: &[String] = if trace.reads_whole_record() {
            &[]
        } else {
            &self.unread
        };
        let object = self
            .stages
            .decoder
            .decode_without(record.value, unread)
            .map_err(|e| rejection(Stage::Decode, &e))?;
        trace.note_record_fields(&object);
        trace.note(|| {
            let bytes = record.value.unwrap_or_default();
            let writer_schema_id = self
                .stages
                .decoder
                .writer_schemas()
                .and_then(|_| crate::avro::split_frame(bytes))
                .map(|(id, _)| id);
            Decision::Decode {
                format: if writer_schema_id.is_some() {
                    "avro"
                } else {
                    "json"
                },
                bytes: bytes.len(),
                writer_schema_id,
                fields: object.len(),
            }
        });
        match self.stages.mapping.apply(object, record, trace) {
            Ok(Mapped::Events(bodies)) => Ok(Some(bodies)),
            Ok(Mapped::Filtered) => Ok(None),
            Err(e) => Err(rejection(Stage::Mapping, &e)),
        }
    }

    fn dedupe_key(&self, body: &EventBody, record: &LegacyRecord<'_>) -> Option<DedupeKey> {
        self.stages
            .dedupe
            .as_ref()
            .and_then(|source| source.key(&body.payload, record.key))
    }
}

/// The traces' explanations of the dedupe and schema stages, apart from
/// the record path so that it reads as it runs.
impl Pipeline {
    fn note_dedupe(
        &self,
        bodies: &[EventBody],
        keys: &[Option<DedupeKey>],
        verdicts: &[Verdict],
        record: &LegacyRecord<'_>,
        trace: &mut Trace,
    ) {
        let Some(source) = &self.stages.dedupe else {
            return;
        };
        for (event, ((body, key), verdict)) in bodies.iter().zip(keys).zip(verdicts).enumerate() {
            trace.note(|| Decision::Dedupe {
                event,
                identity: source.identity(&body.payload, record.key),
                key: key.map(|k| format!("{k:032x}")),
                verdict: match (key, verdict) {
                    (None, _) => "no key: never a duplicate",
                    (_, Verdict::New) => "new",
                    (_, Verdict::Duplicate { .. }) => "duplicate",
                },
                of_offset: match verdict {
                    Verdict::Duplicate { of_offset } => Some(*of_offset),
                    Verdict::New => None,
                },
            });
        }
    }

    fn note_schema(&self, event: usize, body: &EventBody, fits: bool, trace: &mut Trace) {
        let (schemas, ids) = match &self.stages.encoding {
            Encoding::Json(None) => return,
            Encoding::Json(Some(schemas)) => (schemas, None),
            Encoding::Avro(schemas, ids) => (schemas, Some(ids)),
        };
        let Some(schema) = schemas.get(&body.event_type) else {
            return;
        };
        trace.note(|| Decision::Schema {
            event,
            schema: schema.full_name(),
            subject: schema.subject(&self.stages.ledger_topic),
            id: ids.and_then(|ids| ids.get(&body.event_type).copied()),
            fits,
        });
    }
}

/// The trace's last decision: where the record went.
fn outcome_decision(outcome: &RecordOutcome) -> Decision {
    let (name, stage, reason, event_types, of_offset) = match outcome {
        RecordOutcome::Events(events) => (
            "events",
            None,
            None,
            events.iter().map(|e| e.event_type.clone()).collect(),
            None,
        ),
        RecordOutcome::Duplicate { of_offset } => {
            ("duplicate", None, None, Vec::new(), Some(*of_offset))
        }
        RecordOutcome::Filtered => ("filtered", None, None, Vec::new(), None),
        RecordOutcome::Rejected(r) => (
            "rejected",
            Some(r.stage.as_str()),
            Some(r.reason.clone()),
            Vec::new(),
            None,
        ),
    };
    Decision::Outcome {
        outcome: name,
        stage,
        reason,
        event_types,
        of_offset,
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
    use crate::config::Config;
    use crate::pipeline::dedupe::DedupeWindow;
    use crate::pipeline::record::Position;
    use serde_json::Value;

    fn pipeline() -> Pipeline {
        Config::load(None, Vec::new()).unwrap().offline_pipeline()
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
        let RecordOutcome::Events(events) = pipeline().run(&record(ADD), None, 1_800_000_000_000)
        else {
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

    /// The worker decodes without the fields the mapping drops unread; a
    /// trace reads the whole record. Both decide every record alike.
    #[test]
    fn a_record_comes_to_the_same_outcome_decoded_with_or_without_its_dropped_fields() {
        let p = pipeline();
        assert_eq!(p.unread, ["_meta", "debug_trace"]);
        let sample =
            crate::tools::legacy_file::parse(include_str!("../../tests/data/legacy-cart.jsonl"))
                .unwrap();
        let crafted = [
            r#"{"command":"CHECKOUT","cartId":"c","customer":{"id":"c"},"ts":1,"_meta":{"a":1,"a":2}}"#,
            r#"{"command":"CHECKOUT","cartId":"c","customer":{"id":"c"},"ts":1,"_meta":1,"_meta":2}"#,
            r#"{"command":"CHECKOUT","cartId":"c","customer":{"id":"c"},"ts":1,"_meta":["\ud800"]}"#,
            r#"{"command":"CHECKOUT","cartId":"c","customer":{"id":"c"},"ts":1,"_meta":{"#,
            r#"{"command":"CHECKOUT","cartId":"c","customer":{"id":"c"},"ts":1,"debug_trace":"x"}"#,
        ];
        let values = sample
            .iter()
            .filter_map(|line| line.value.clone())
            .chain(crafted.map(str::to_owned));
        let mut rejected = 0;
        for value in values {
            let untraced = p.run(&record(value.as_bytes()), None, 1_800_000_000_000);
            let traced = p.run_traced(
                &record(value.as_bytes()),
                None,
                1_800_000_000_000,
                &mut Trace::on(),
            );
            assert_eq!(untraced, traced, "{value}");
            rejected += usize::from(matches!(untraced, RecordOutcome::Rejected(_)));
        }
        assert!(rejected >= 4, "the crafted records are rejected");
    }

    #[test]
    fn an_event_that_does_not_fit_its_schema_is_rejected_naming_the_field() {
        let value = br#"{"command":"ADD_TO_CART","requestId":"r","cartId":"cart-1","customer":{"id":"c-1"},"ts":1,"sku":"S","qty":"2"}"#;
        let RecordOutcome::Rejected(r) = pipeline().run(&record(value), None, 0) else {
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
        let schemas = config.ledger.schemas().cloned().unwrap();
        let ids: SchemaIds = Arc::new(
            schemas
                .event_types()
                .zip(100..)
                .map(|(t, id)| (t.to_owned(), id))
                .collect(),
        );
        let pipeline = config.pipeline(Encoding::Avro(schemas.clone(), ids.clone()));
        let RecordOutcome::Events(events) = pipeline.run(&record(ADD), None, 1_800_000_000_000)
        else {
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
            .map(|now| match p.run(&record(value), None, *now) {
                RecordOutcome::Events(e) => {
                    serde_json::from_slice::<Value>(&e[0].value).unwrap()["header"]["event_id"]
                        .clone()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids[0], ids[1]);
    }

    fn checkout(request: &str, extra: &str, offset: i64) -> (String, i64) {
        (
            format!(
                r#"{{"command":"CHECKOUT","cartId":"cart-1","requestId":"{request}","customer":{{"id":"c"{extra}}},"ts":1}}"#
            ),
            offset,
        )
    }

    fn run_in(
        p: &Pipeline,
        window: &mut DedupeWindow,
        (value, offset): &(String, i64),
    ) -> RecordOutcome {
        let mut record = record(value.as_bytes());
        record.position.offset = *offset;
        let outcome = p.run(&record, Some(window), 0);
        window.commit();
        outcome
    }

    #[test]
    fn a_rejected_record_is_not_remembered_so_its_corrected_retry_lands() {
        let p = pipeline();
        let mut window = DedupeWindow::new(100, None);
        let rejected = run_in(&p, &mut window, &checkout("r", r#","name":"Ada""#, 1));
        assert!(matches!(
            rejected,
            RecordOutcome::Rejected(Rejection {
                stage: Stage::Schema,
                ..
            })
        ));
        let retry = run_in(&p, &mut window, &checkout("r", "", 2));
        assert!(matches!(retry, RecordOutcome::Events(_)), "{retry:?}");
        let again = run_in(&p, &mut window, &checkout("r", "", 3));
        assert_eq!(again, RecordOutcome::Duplicate { of_offset: 2 });
    }

    #[test]
    fn a_broken_retry_of_a_landed_record_is_rejected_not_dropped() {
        // A record is judged on its own before the window is asked: a
        // retry that could not be written is a dead letter, never hidden.
        let p = pipeline();
        let mut window = DedupeWindow::new(100, None);
        assert!(matches!(
            run_in(&p, &mut window, &checkout("r", "", 1)),
            RecordOutcome::Events(_)
        ));
        let broken = run_in(&p, &mut window, &checkout("r", r#","name":"Ada""#, 2));
        assert!(matches!(
            broken,
            RecordOutcome::Rejected(Rejection {
                stage: Stage::Schema,
                ..
            })
        ));
        // …and it did not refresh the key: the window still counts from 1.
        assert_eq!(
            run_in(&p, &mut window, &checkout("r", "", 3)),
            RecordOutcome::Duplicate { of_offset: 1 }
        );
    }

    #[test]
    fn rejections_name_their_stage() {
        let p = pipeline();
        let RecordOutcome::Rejected(r) = p.run(&record(b"{\"command\": "), None, 0) else {
            panic!()
        };
        assert_eq!(r.stage, Stage::Decode);
        let RecordOutcome::Rejected(r) =
            p.run(&record(br#"{"command":"DELETE_EVERYTHING"}"#), None, 0)
        else {
            panic!()
        };
        assert_eq!(r.stage, Stage::Mapping);
        assert_eq!(r.reason, "unknown command `DELETE_EVERYTHING`");
    }
}

/// The window restore is the same function as the live path: a window
/// rebuilt from a partition's last `capacity` offsets before any cut gives
/// every later record the outcome the live window gives it.
#[cfg(test)]
mod restore_agrees {
    use super::*;
    use crate::config::{Config, Origin};
    use crate::pipeline::dedupe::DedupeWindow;
    use crate::pipeline::record::Position;
    use proptest::prelude::*;

    /// A mapping with every outcome: events, splits into several keyed
    /// events, a filtered command, rejections at decode, mapping, schema
    /// and size.
    const TRANSFORM: &str = r#"
        [command]
        field = "command"
        ignore = ["PING"]
        unknown = "reject"
        [command.events]
        ADD_ITEMS = "ItemsAdded"
        [split]
        field = "items"
        [event]
        key = "cart"
        [[steps]]
        drop = ["command"]
    "#;

    const SCHEMA: &str = r#"{
        "type": "record", "name": "ItemsAdded", "namespace": "prop",
        "fields": [
            {"name": "header", "type": "recast.EventHeader"},
            {"name": "cart", "type": "string"},
            {"name": "requestId", "type": "string"},
            {"name": "sku", "type": "string"},
            {"name": "qty", "type": "int"},
            {"name": "note", "type": ["null", "string"], "default": null}
        ]
    }"#;

    /// The same mapping, with the request id hashed: the next version of
    /// it, whose dedupe keys all differ from the first's.
    fn hashing_request_ids() -> String {
        format!("{TRANSFORM}\n[[steps]]\nhash = [\"requestId\"]\n")
    }

    fn pipeline_and_window(
        dir: &std::path::Path,
        capacity: u64,
        transform: &str,
    ) -> (Pipeline, DedupeWindow) {
        std::fs::write(dir.join("prop.toml"), transform).unwrap();
        std::fs::write(dir.join("ItemsAdded.avsc"), SCHEMA).unwrap();
        let header = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/header.avsc");
        let text = format!(
            r#"
            [kafka]
            brokers = "127.0.0.1:1"
            group_id = "prop"
            instance_id = "prop-1"
            [topics]
            legacy = "legacy"
            ledger = "ledger"
            dead_letter = "dead-letter"
            [limits]
            max_output_bytes = 700
            [source]
            system = "prop"
            [mapping]
            transforms = ["prop.toml"]
            hash_key = "a key of sixteen bytes or more"
            [ledger]
            format = "json"
            schemas = [{header:?}, "ItemsAdded.avsc"]
            [dedupe]
            key = "fields"
            fields = ["requestId", "sku"]
            capacity = {capacity}
            ttl = "10s"
            "#
        );
        let config =
            Config::parse(&text, Origin::File(dir.join("recast.toml")), Vec::new()).unwrap();
        let window = DedupeWindow::new(capacity, config.raw.dedupe.as_ref().unwrap().ttl);
        (config.offline_pipeline(), window)
    }

    /// One generated legacy record: its value and the seconds since the
    /// previous one.
    #[derive(Debug, Clone)]
    struct Generated {
        value: String,
        gap_s: i64,
    }

    fn generated() -> impl Strategy<Value = Generated> {
        // Few request ids and skus, so retries (same request, same or
        // changed content) are frequent.
        let item =
            (0..3u8, 0..3i32, proptest::bool::weighted(0.05)).prop_map(|(sku, qty, bad_qty)| {
                if bad_qty {
                    format!(r#"{{"sku":"s{sku}","qty":"{qty}"}}"#)
                } else {
                    format!(r#"{{"sku":"s{sku}","qty":{qty}}}"#)
                }
            });
        let add = (
            0..6u8,
            prop_oneof![1 => proptest::collection::vec(item.clone(), 0..1), 12 => proptest::collection::vec(item, 1..4)],
            prop_oneof![16 => Just(None), 1 => Just(Some("x".repeat(800))), 2 => Just(Some("n".to_owned()))],
            proptest::bool::weighted(0.08),
        )
            .prop_map(|(request, items, note, extra_field)| {
                let note = note.map_or(String::new(), |n| format!(r#","note":"{n}""#));
                let extra = if extra_field { r#","unreviewed":1"# } else { "" };
                format!(
                    r#"{{"command":"ADD_ITEMS","requestId":"r{request}","cart":"c","items":[{}]{note}{extra}}}"#,
                    items.join(",")
                )
            });
        let value = prop_oneof![
            12 => add,
            1 => Just(r#"{"command":"PING"}"#.to_owned()),
            1 => Just(r#"{"command":"DROP_TABLE"}"#.to_owned()),
            1 => Just(r#"{"command": "#.to_owned()),
        ];
        (value, prop_oneof![6 => 0..2i64, 1 => 8..14i64])
            .prop_map(|(value, gap_s)| Generated { value, gap_s })
    }

    /// `recorded_at` of every run, the restore's included, as in the worker.
    const NOW: i64 = 1_800_000_000_000;

    fn record(value: &[u8], offset: i64, timestamp_ms: i64) -> LegacyRecord<'_> {
        LegacyRecord {
            position: Position {
                topic: "legacy",
                partition: 0,
                offset,
            },
            timestamp_ms: Some(timestamp_ms),
            key: None,
            value: Some(value),
            headers: Vec::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn a_window_rebuilt_at_any_cut_answers_like_the_live_one(
            stream in proptest::collection::vec(generated(), 1..120),
            cut in any::<proptest::sample::Index>(),
            capacity in 1..20u64,
            batch in 1..8usize,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (pipeline, mut live) = pipeline_and_window(dir.path(), capacity, TRANSFORM);
            let records = timestamped(&stream);
            let cut = cut.index(records.len());
            // The live worker: every record in order, committed in batches.
            let mut live_outcomes = Vec::new();
            for (i, (offset, ts, value)) in records.iter().enumerate() {
                live_outcomes.push(pipeline.run(&record(value, *offset, *ts), Some(&mut live), NOW));
                if (i + 1) % batch == 0 {
                    live.commit();
                }
            }
            // A restart at `cut` (a committed offset): rebuild from the last
            // `capacity` offsets before it, then go on.
            let (_, mut restored) = pipeline_and_window(dir.path(), capacity, TRANSFORM);
            let from = cut.saturating_sub(capacity as usize);
            for (offset, ts, value) in &records[from..cut] {
                let _ = pipeline.run(&record(value, *offset, *ts), Some(&mut restored), NOW);
            }
            restored.commit();
            for (i, (offset, ts, value)) in records.iter().enumerate().skip(cut) {
                let outcome = pipeline.run(&record(value, *offset, *ts), Some(&mut restored), NOW);
                restored.commit();
                prop_assert_eq!(&outcome, &live_outcomes[i], "offset {}", offset);
            }
        }

        /// A reload swaps the mapping at `swap` and rebuilds the window
        /// under the new one (worker/mod.rs, `reloaded`); a restart at any
        /// later cut runs the new mapping only, and must agree.
        #[test]
        fn a_window_rebuilt_after_a_mapping_swap_answers_like_the_live_one(
            stream in proptest::collection::vec(generated(), 1..120),
            swap in any::<proptest::sample::Index>(),
            cut in any::<proptest::sample::Index>(),
            capacity in 1..20u64,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (old, mut live) = pipeline_and_window(dir.path(), capacity, TRANSFORM);
            let (new, _) = pipeline_and_window(dir.path(), capacity, &hashing_request_ids());
            let records = timestamped(&stream);
            let swap = swap.index(records.len());
            let cut = swap + cut.index(records.len() - swap + 1);
            let rebuilt = |until: usize| {
                let mut window = DedupeWindow::new(capacity, Some(std::time::Duration::from_secs(10)));
                for (offset, ts, value) in &records[until.saturating_sub(capacity as usize)..until] {
                    let _ = new.run(&record(value, *offset, *ts), Some(&mut window), NOW);
                }
                window.commit();
                window
            };
            let mut live_outcomes = Vec::new();
            for (offset, ts, value) in &records[..swap] {
                live_outcomes.push(old.run(&record(value, *offset, *ts), Some(&mut live), NOW));
                live.commit();
            }
            live = rebuilt(swap);
            for (offset, ts, value) in &records[swap..] {
                live_outcomes.push(new.run(&record(value, *offset, *ts), Some(&mut live), NOW));
                live.commit();
            }
            let mut restored = rebuilt(cut);
            for (i, (offset, ts, value)) in records.iter().enumerate().skip(cut) {
                let outcome = new.run(&record(value, *offset, *ts), Some(&mut restored), NOW);
                restored.commit();
                prop_assert_eq!(&outcome, &live_outcomes[i], "offset {}", offset);
            }
        }
    }

    /// Offsets from 0 and record times from the generated gaps.
    fn timestamped(stream: &[Generated]) -> Vec<(i64, i64, &[u8])> {
        let mut at = 1_700_000_000_000i64;
        stream
            .iter()
            .enumerate()
            .map(|(offset, g)| {
                at += g.gap_s * 1000;
                (offset as i64, at, g.value.as_bytes())
            })
            .collect()
    }
}
