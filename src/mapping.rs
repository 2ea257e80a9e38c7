//! Mapping stage: a decoded legacy record → an event body with its
//! past-tense type, or a filter, or a rejection.
//!
//! Compiled once from [`MappingConfig`] (paths split, command table
//! normalised), then applied per record without allocation beyond the
//! payload it hands on.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::MappingConfig;
use crate::decode::json_kind;

/// A dotted field path (`customer.email`), split once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    pub fn parse(path: &str) -> Self {
        Self {
            segments: path.split('.').map(str::to_owned).collect(),
        }
    }

    /// The value at this path, when every segment is present.
    pub fn get<'v>(&self, object: &'v Map<String, Value>) -> Option<&'v Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut node = object;
        for segment in parents {
            node = node.get(segment)?.as_object()?;
        }
        node.get(last)
    }

    /// Removes the value at this path; absent paths are left alone.
    pub fn remove(&self, object: &mut Map<String, Value>) -> Option<Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut node = object;
        for segment in parents {
            node = node.get_mut(segment)?.as_object_mut()?;
        }
        node.remove(last)
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

/// The one spelling every variant of a command name is looked up by:
/// lower-case letters and digits only, so `ADD_TO_CART`, `AddToCart`,
/// `add.to.cart` and `add-to-cart` all become `addtocart`.
pub fn normalise_command(command: &str) -> String {
    command
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Why the mapping rejected a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("no command at `{field}`")]
    MissingCommand { field: String },
    #[error("command at `{field}` is {found}, not a string")]
    CommandNotString { field: String, found: &'static str },
    #[error("unknown command `{command}`")]
    UnknownCommand { command: String },
    #[error("no ledger key at `{field}`")]
    MissingKey { field: String },
    #[error("ledger key at `{field}` is {found}, not a string or number")]
    KeyNotScalar { field: String, found: &'static str },
    #[error("event time at `{field}`: {reason}")]
    BadTimestamp { field: String, reason: String },
}

/// What the mapping makes of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// The record is a fact: one event body, ready for the envelope.
    Event(EventBody),
    /// The record is noise (a heartbeat): counted, not written.
    Filtered { command: String },
}

/// A mapped event before its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBody {
    pub event_type: String,
    /// The ledger record key.
    pub key: String,
    /// When the fact happened, in epoch milliseconds, if the record says.
    pub occurred_at_ms: Option<i64>,
    pub correlation_id: Option<String>,
    /// The clean payload: the legacy object without its technical context.
    pub payload: Map<String, Value>,
}

/// A compiled mapping.
#[derive(Debug, Clone)]
pub struct Mapping {
    command_field: FieldPath,
    events: HashMap<String, String>,
    filtered: HashSet<String>,
    drop_fields: Vec<FieldPath>,
    key_field: FieldPath,
    occurred_at_field: Option<FieldPath>,
    correlation_field: Option<FieldPath>,
    version: String,
}

impl Mapping {
    /// Compiles a validated mapping configuration.
    pub fn compile(config: &MappingConfig) -> Self {
        let canonical = serde_json::to_vec(config).expect("mapping config serialises");
        let digest = Sha256::digest(&canonical);
        let version = digest[..8].iter().fold(String::new(), |mut hex, b| {
            use std::fmt::Write;
            write!(hex, "{b:02x}").expect("writing to a String");
            hex
        });
        Self {
            command_field: FieldPath::parse(&config.command_field),
            events: config
                .events
                .iter()
                .map(|(command, event)| (normalise_command(command), event.clone()))
                .collect(),
            filtered: config
                .filter_commands
                .iter()
                .map(|c| normalise_command(c))
                .collect(),
            drop_fields: config
                .drop_fields
                .iter()
                .map(|p| FieldPath::parse(p))
                .collect(),
            key_field: FieldPath::parse(&config.key_field),
            occurred_at_field: config.occurred_at_field.as_deref().map(FieldPath::parse),
            correlation_field: config.correlation_field.as_deref().map(FieldPath::parse),
            version,
        }
    }

    /// The mapping version written to every event header: a hash of the
    /// mapping's configuration, so a changed mapping is visible in the ledger.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Maps one decoded legacy object.
    pub fn apply(&self, mut object: Map<String, Value>) -> Result<Mapped, MappingError> {
        let field = || self.command_field.to_string();
        let command = match self.command_field.get(&object) {
            None | Some(Value::Null) => {
                return Err(MappingError::MissingCommand { field: field() });
            }
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(MappingError::CommandNotString {
                    field: field(),
                    found: json_kind(other),
                });
            }
        };
        let normalised = normalise_command(command);
        if self.filtered.contains(&normalised) {
            return Ok(Mapped::Filtered {
                command: command.clone(),
            });
        }
        let event_type = self
            .events
            .get(&normalised)
            .ok_or_else(|| MappingError::UnknownCommand {
                command: command.clone(),
            })?
            .clone();

        let key = match self.key_field.get(&object) {
            None | Some(Value::Null) => {
                return Err(MappingError::MissingKey {
                    field: self.key_field.to_string(),
                });
            }
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(MappingError::KeyNotScalar {
                    field: self.key_field.to_string(),
                    found: json_kind(other),
                });
            }
        };
        let occurred_at_ms = match &self.occurred_at_field {
            Some(path) => path
                .get(&object)
                .map(crate::timestamp::epoch_millis)
                .transpose()
                .map_err(|reason| MappingError::BadTimestamp {
                    field: path.to_string(),
                    reason,
                })?,
            None => None,
        };
        let correlation_id = self
            .correlation_field
            .as_ref()
            .and_then(|path| path.get(&object))
            .and_then(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        for path in &self.drop_fields {
            path.remove(&mut object);
        }
        Ok(Mapped::Event(EventBody {
            event_type,
            key,
            occurred_at_ms,
            correlation_id,
            payload: object,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    fn mapping() -> Mapping {
        Mapping::compile(&Config::load(None, Vec::new()).unwrap().raw.mapping)
    }

    fn object(value: &Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn every_spelling_of_a_command_maps_to_one_event_type() {
        let m = mapping();
        for spelling in ["ADD_TO_CART", "AddToCart", "add.to.cart", "add-to-cart"] {
            let input = object(&json!({"command": spelling, "cartId": "c1"}));
            let Mapped::Event(body) = m.apply(input).unwrap() else {
                panic!("{spelling} filtered")
            };
            assert_eq!(body.event_type, "AddedToCart", "{spelling}");
        }
    }

    #[test]
    fn technical_context_is_dropped_and_header_fields_taken() {
        let input = object(&json!({
            "command": "checkout", "requestId": "r-1", "cartId": "cart-9",
            "customer": {"id": "c-1", "email": "a@example.com"}, "ts": 1_764_000_000_548_i64,
            "total": 438.39, "_meta": {"host": "h"}, "debug_trace": "x"
        }));
        let Mapped::Event(body) = mapping().apply(input).unwrap() else {
            panic!("filtered")
        };
        assert_eq!(body.event_type, "CheckedOut");
        assert_eq!(body.key, "cart-9");
        assert_eq!(body.occurred_at_ms, Some(1_764_000_000_548));
        assert_eq!(body.correlation_id.as_deref(), Some("r-1"));
        assert_eq!(
            Value::Object(body.payload),
            json!({"requestId": "r-1", "cartId": "cart-9", "customer": {"id": "c-1"},
                   "ts": 1_764_000_000_548_i64, "total": 438.39})
        );
    }

    #[test]
    fn heartbeats_are_filtered() {
        let input = object(&json!({"command": "HEARTBEAT", "_meta": {}}));
        assert_eq!(
            mapping().apply(input).unwrap(),
            Mapped::Filtered {
                command: "HEARTBEAT".into()
            }
        );
    }

    #[test]
    fn rejections_say_why() {
        let m = mapping();
        let cases = [
            (json!({"cartId": "c"}), "no command at `command`"),
            (
                json!({"command": 7}),
                "command at `command` is a number, not a string",
            ),
            (
                json!({"command": "DELETE_EVERYTHING", "cartId": "c"}),
                "unknown command `DELETE_EVERYTHING`",
            ),
            (json!({"command": "checkout"}), "no ledger key at `cartId`"),
            (
                json!({"command": "checkout", "cartId": ["a"]}),
                "ledger key at `cartId` is an array, not a string or number",
            ),
            (
                json!({"command": "checkout", "cartId": "c", "ts": "yesterday"}),
                "event time at `ts`: `yesterday` is not an RFC 3339 time",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(m.apply(object(&input)).unwrap_err().to_string(), reason);
        }
    }

    #[test]
    fn version_changes_with_the_mapping() {
        let mut config = Config::load(None, Vec::new()).unwrap().raw.mapping;
        let before = Mapping::compile(&config).version().to_owned();
        config.drop_fields.push("sku".into());
        assert_ne!(Mapping::compile(&config).version(), before);
        assert_eq!(before.len(), 16);
    }
}
