//! The pure per-record core: decode → mapping → dedupe key → envelope +
//! encode. (The dedupe decision itself needs the window's state and is
//! taken by the worker; the key is computed here.)
//!
//! No I/O and no clock: the caller passes `recorded_at`, so the same record
//! always gives the same outcome. The worker runs it inside a transaction;
//! tests and benches run it directly.

use crate::config::Config;
use crate::decode::Decoder;
use crate::dedupe::{DedupeKey, DedupeWindow, KeySource, Verdict};
use crate::envelope::{EnvelopeContext, encode_json, header};
use crate::legacy::LegacyRecord;
use crate::mapping::{EventBody, Mapped, Mapping};

/// The stage that rejected a record, written to the dead-letter headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Decode,
    Mapping,
    /// The encoded event could not be written (larger than the producer
    /// may send).
    Encode,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Mapping => "mapping",
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

/// The compiled per-record core.
#[derive(Debug, Clone)]
pub struct Pipeline {
    decoder: Decoder,
    mapping: Mapping,
    dedupe: Option<KeySource>,
    system: String,
    max_output_bytes: usize,
}

impl Pipeline {
    pub fn new(config: &Config) -> Self {
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
        let events = bodies
            .into_iter()
            .enumerate()
            .map(|(index, body)| {
                let value = encode_json(&header(&body, index, &ctx), &body.payload);
                let dedupe_key = self.dedupe_key(&body, record);
                LedgerEvent {
                    key: body.key,
                    value,
                    event_type: body.event_type,
                    derived_from: body.derived_from,
                    dedupe_key,
                }
            })
            .collect();
        Outcome::Events(events)
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

    #[test]
    fn a_command_becomes_one_clean_event() {
        let value = br#"{"command":"add.to.cart","requestId":"r","cartId":"cart-1","sku":"S","qty":2,"_meta":{"host":"h"}}"#;
        let Outcome::Events(events) = pipeline().process(&record(value), 1_800_000_000_000) else {
            panic!("not an event")
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].key, "cart-1");
        let json: Value = serde_json::from_slice(&events[0].value).unwrap();
        assert_eq!(json["header"]["event_type"], "AddedToCart");
        assert_eq!(json["header"]["occurred_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["payload"]["qty"], 2);
        assert!(json["payload"].get("_meta").is_none());
    }

    #[test]
    fn the_same_record_gives_the_same_event_id() {
        let value = br#"{"command":"CHECKOUT","cartId":"cart-1"}"#;
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
