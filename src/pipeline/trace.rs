//! The decision trace: what `Pipeline::run` decided for one record, in
//! the order it decided it, for `recast explain` and the live tap. It is
//! recorded by the record path itself, never by a second implementation,
//! so a trace cannot disagree with what the worker did.
//!
//! Off (as the worker runs), a trace is a flag and an empty `Vec`: nothing
//! is allocated, and every note is one branch; the closure that would
//! build a decision is never called.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::pipeline::field_paths::FieldPaths;
use crate::pipeline::record::LegacyRecord;

/// The decisions made for one record.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    #[serde(skip)]
    on: bool,
    pub decisions: Vec<Decision>,
    /// The field paths of the records run, when asked for: `recast replay`.
    #[serde(skip)]
    field_paths: Option<Box<FieldPaths>>,
}

impl Trace {
    /// A trace that records nothing: what the worker runs with.
    pub const fn off() -> Self {
        Self {
            on: false,
            decisions: Vec::new(),
            field_paths: None,
        }
    }

    /// A trace that records no decision but notes the field paths of every
    /// record run with it, to name what reached no event.
    pub(crate) fn field_paths() -> Self {
        Self {
            field_paths: Some(Box::default()),
            ..Self::off()
        }
    }

    /// A trace that records every decision.
    pub fn on() -> Self {
        Self {
            on: true,
            decisions: Vec::with_capacity(16),
            field_paths: None,
        }
    }

    #[inline]
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Whether this trace reads the decoded record as it came: a record's
    /// explanation and its field paths name fields the mapping drops.
    #[inline]
    pub(crate) fn reads_whole_record(&self) -> bool {
        self.on || self.field_paths.is_some()
    }

    /// Records the decision `decision` builds, when on.
    #[inline]
    pub fn note(&mut self, decision: impl FnOnce() -> Decision) {
        if self.on {
            self.decisions.push(decision());
        }
    }

    /// Notes the decoded record's field paths, when asked for.
    #[inline]
    pub(crate) fn note_record_fields(&mut self, object: &Map<String, Value>) {
        if let Some(paths) = &mut self.field_paths {
            paths.note_record(object);
        }
    }

    /// Notes an event payload's field paths, when asked for.
    #[inline]
    pub(crate) fn note_event_fields(&mut self, payload: &Map<String, Value>) {
        if let Some(paths) = &mut self.field_paths {
            paths.note_event(payload);
        }
    }

    /// The field paths noted, when asked for.
    pub(crate) fn noted_field_paths(&mut self) -> Option<&mut FieldPaths> {
        self.field_paths.as_deref_mut()
    }

    /// The trace of `record` as `recast explain` and the tap write it:
    /// `{"record": {…}, "mapping_version": …, "decisions": […]}`.
    pub fn into_json(self, record: &LegacyRecord<'_>, mapping_version: &str) -> Map<String, Value> {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let mut traced = Map::new();
        traced.insert(
            "record".into(),
            json!({
                "topic": record.position.topic,
                "partition": record.position.partition,
                "offset": record.position.offset,
                "key": record.key.map(text),
                "timestamp": record.timestamp_ms,
            }),
        );
        traced.insert("mapping_version".into(), mapping_version.into());
        traced.insert(
            "decisions".into(),
            serde_json::to_value(self.decisions).expect("decisions always serialise"),
        );
        traced
    }
}

/// One decision of the record path. `event` numbers the events being
/// built as they enter a transform (a split or a script makes several).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Decision {
    /// A record of the dead-letter topic, read back as the legacy record
    /// it was (`source`): why it was rejected, and by which mapping.
    DeadLetter {
        source: String,
        stage: String,
        reason: String,
        rejected_by: String,
    },
    /// A re-drive would not run this dead letter, and why.
    PassedOver { why: String },
    /// The legacy value was read: `json` or `avro` (with the writer
    /// schema's registry id), its size, and how many top-level fields.
    Decode {
        format: &'static str,
        bytes: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        writer_schema_id: Option<u32>,
        fields: usize,
    },
    /// A transform of the chain starts on one event being built.
    Transform { file: String, event: usize },
    /// A `[[filter]]` rule, and whether it held (the event is then dropped).
    Filter {
        rule: usize,
        when: String,
        held: bool,
    },
    /// A `[[reject]]` rule, and whether it held (the record is then
    /// rejected with `reason`).
    Reject {
        rule: usize,
        when: String,
        held: bool,
        reason: String,
    },
    /// A `require`d field, and whether the event has it.
    Require { field: String, present: bool },
    /// The command lookup: where the command was read, as spelled, as
    /// normalised, and what it came to (an event type, `ignored`,
    /// `unknown: …`).
    Command {
        from: String,
        raw: String,
        normalised: String,
        result: String,
    },
    /// `[split]`: the event became this many.
    Split { field: String, into: usize },
    /// `[event]`: the header fields read from the payload.
    EventFields {
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        occurred_at_ms: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        correlation_id: Option<String>,
    },
    /// A shaping or privacy step (`steps[i]`, `types.T.steps[i]`): whether
    /// its `when` let it run, and the fields it changed.
    Shape {
        at: String,
        op: &'static str,
        applied: bool,
        #[serde(flatten)]
        changes: FieldChanges,
    },
    /// A script call: what it returned or threw, the Rhai operations it
    /// took (`scripts.max_operations` bounds them) and, when it returned
    /// one event, the fields it changed.
    Script {
        result: String,
        operations: u64,
        #[serde(flatten)]
        changes: FieldChanges,
    },
    /// A script that declares `EVENT_TYPES` without this event's type: it
    /// passed the event through without a call.
    ScriptNotCalled { event_type: Option<String> },
    /// The `index`-th event's common header.
    Header { event: usize, header: Value },
    /// The dedupe key: what it is made of, its canonical form and hash,
    /// and the verdict (with the offset of the earlier occurrence).
    Dedupe {
        event: usize,
        identity: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        verdict: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        of_offset: Option<i64>,
    },
    /// The event's schema, its subject and registry id (when registered),
    /// and whether the event fits it.
    Schema {
        event: usize,
        schema: String,
        subject: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u32>,
        fits: bool,
    },
    /// The encoded event's size against `limits.max_output_bytes`.
    Size {
        event: usize,
        bytes: usize,
        limit: usize,
    },
    /// Where the record went.
    Outcome {
        outcome: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        stage: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        event_types: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        of_offset: Option<i64>,
    },
}

/// The fields a step changed, as dotted paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldChanges {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

impl FieldChanges {
    /// What differs between two payloads, descending into objects (an
    /// array is one value).
    pub(crate) fn between(before: &Map<String, Value>, after: &Map<String, Value>) -> Self {
        let mut changes = Self::default();
        changes.walk("", before, after);
        changes
    }

    fn walk(&mut self, prefix: &str, before: &Map<String, Value>, after: &Map<String, Value>) {
        let path = |key: &str| {
            if prefix.is_empty() {
                key.to_owned()
            } else {
                format!("{prefix}.{key}")
            }
        };
        for (key, old) in before {
            match (old, after.get(key)) {
                (_, None) => self.removed.push(path(key)),
                (Value::Object(old), Some(Value::Object(new))) => self.walk(&path(key), old, new),
                (old, Some(new)) if old != new => self.changed.push(path(key)),
                _ => {}
            }
        }
        for key in after.keys().filter(|k| !before.contains_key(*k)) {
            self.added.push(path(key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unused_trace_allocates_nothing_and_builds_nothing() {
        let mut trace = Trace::off();
        trace.note(|| unreachable!("not called when off"));
        assert_eq!(trace.decisions.capacity(), 0);
    }

    #[test]
    fn changes_name_nested_fields_and_treat_arrays_as_values() {
        let before = json!({"a": 1, "b": {"c": 1, "d": 2}, "e": [1], "f": 0});
        let after = json!({"a": 1, "b": {"c": 2}, "e": [1, 2], "g": {"h": 1}});
        let changes =
            FieldChanges::between(before.as_object().unwrap(), after.as_object().unwrap());
        assert_eq!(changes.removed, ["b.d", "f"]);
        assert_eq!(changes.changed, ["b.c", "e"]);
        assert_eq!(changes.added, ["g"]);
    }
}
