//! One declarative transform file, compiled: its sections in the order
//! they run (filter, reject/require, command, split, event, steps, per-type
//! steps), applied to one event being built.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use serde_json::{Map, Value};
use toml::Spanned;

use super::command::{derive_event_type, normalise};
use super::condition::Condition;
use super::path::FieldPath;
use super::privacy::HashKey;
use super::spec::{CommandSpec, StepSpec, TransformSpec, UnknownCommand};
use super::step::Step;
use super::{Draft, MappingError};
use crate::avro::is_event_type;
use crate::json::json_kind;
use crate::pipeline::record::LegacyRecord;
use crate::pipeline::trace::{Decision, FieldChanges, Trace};

/// A compiled transform file.
#[derive(Debug, Clone)]
pub(super) struct Transform {
    filters: Vec<Condition>,
    rejects: Vec<(Condition, String)>,
    required: Vec<FieldPath>,
    command: Option<CommandTable>,
    split: Option<Split>,
    key: Option<FieldPath>,
    occurred_at: Option<FieldPath>,
    correlation_id: Option<FieldPath>,
    steps: Vec<Step>,
    per_type: HashMap<String, Vec<Step>>,
}

#[derive(Debug, Clone)]
struct CommandTable {
    source: CommandSource,
    /// Normalised command → event type.
    events: HashMap<String, String>,
    /// Normalised commands that are filtered.
    ignore: HashSet<String>,
    unknown: UnknownCommand,
}

#[derive(Debug, Clone)]
enum CommandSource {
    Field(FieldPath),
    Header(String),
    RecordKey,
}

impl std::fmt::Display for CommandSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandSource::Field(path) => write!(f, "field `{path}`"),
            CommandSource::Header(name) => write!(f, "header `{name}`"),
            CommandSource::RecordKey => f.write_str("the record key"),
        }
    }
}

#[derive(Debug, Clone)]
struct Split {
    field: FieldPath,
    into: Option<FieldPath>,
}

/// A problem in a transform file, with where it is (a byte range of the
/// file) when known.
#[derive(Debug)]
pub(super) struct SpecError {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl SpecError {
    fn at<T>(spanned: &Spanned<T>, message: impl Into<String>) -> Self {
        Self {
            span: Some(spanned.span()),
            message: message.into(),
        }
    }
}

/// A field path of the file, its position kept for the error.
fn path(value: &Spanned<String>, what: &str) -> Result<FieldPath, SpecError> {
    FieldPath::parse(value.get_ref()).map_err(|e| SpecError::at(value, format!("{what}: {e}")))
}

fn steps(specs: &[Spanned<StepSpec>], hash_key: Option<&HashKey>) -> Result<Vec<Step>, SpecError> {
    specs
        .iter()
        .map(|spec| Step::compile(spec.get_ref(), hash_key).map_err(|e| SpecError::at(spec, e)))
        .collect()
}

impl Transform {
    pub(super) fn compile(
        spec: &TransformSpec,
        hash_key: Option<&HashKey>,
    ) -> Result<Self, SpecError> {
        let filters = spec
            .filter
            .iter()
            .map(|f| Condition::compile(f.when.get_ref()).map_err(|e| SpecError::at(&f.when, e)))
            .collect::<Result<_, _>>()?;
        let rejects = spec
            .reject
            .iter()
            .map(|r| {
                let condition =
                    Condition::compile(r.when.get_ref()).map_err(|e| SpecError::at(&r.when, e))?;
                if r.reason.trim().is_empty() {
                    return Err(SpecError::at(&r.when, "a reject rule needs a `reason`"));
                }
                Ok((condition, r.reason.clone()))
            })
            .collect::<Result<_, _>>()?;
        let required = spec
            .require
            .iter()
            .map(|p| path(p, "require"))
            .collect::<Result<_, _>>()?;
        let command = spec.command.as_ref().map(compile_command).transpose()?;
        let split = spec
            .split
            .as_ref()
            .map(|s| {
                Ok::<_, SpecError>(Split {
                    field: path(&s.field, "split.field")?,
                    into: s.into.as_ref().map(|p| path(p, "split.into")).transpose()?,
                })
            })
            .transpose()?;
        let event = spec.event.as_ref();
        let event_path = |pick: fn(&super::spec::EventSpec) -> Option<&Spanned<String>>,
                          what: &str| {
            event.and_then(pick).map(|p| path(p, what)).transpose()
        };
        let per_type = spec
            .types
            .iter()
            .map(|(name, type_spec)| {
                if !is_event_type(name) {
                    return Err(SpecError::at(
                        type_spec,
                        format!(
                            "types.{name}: not an event type name (PascalCase letters and digits)"
                        ),
                    ));
                }
                Ok((name.clone(), steps(&type_spec.get_ref().steps, hash_key)?))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            filters,
            rejects,
            required,
            command,
            split,
            key: event_path(|e| e.key.as_ref(), "event.key")?,
            occurred_at: event_path(|e| e.occurred_at.as_ref(), "event.occurred_at")?,
            correlation_id: event_path(|e| e.correlation_id.as_ref(), "event.correlation_id")?,
            steps: steps(&spec.steps, hash_key)?,
            per_type,
        })
    }

    /// The event types this transform's command table can name; `None`
    /// when it derives names for unknown commands (any name is possible).
    pub(super) fn event_types(&self) -> Option<Vec<&str>> {
        match &self.command {
            Some(table) if table.unknown == UnknownCommand::Derive => None,
            Some(table) => Some(table.events.values().map(String::as_str).collect()),
            None => Some(Vec::new()),
        }
    }

    /// The event types this transform has `types.<EventType>` steps for.
    pub(super) fn typed_steps(&self) -> impl Iterator<Item = &str> {
        self.per_type.keys().map(String::as_str)
    }

    /// Whether this transform names event types.
    pub(super) fn recognises_commands(&self) -> bool {
        self.command.is_some()
    }

    /// The top-level fields the first step drops before anything of this
    /// transform reads them, so that decoding may leave them out. Every
    /// section `apply` runs before the steps is listed here, including the
    /// paths it writes (`split.into` meets a dropped field as a parent), so
    /// a section added there must be added here too; a record decoded
    /// either way comes to the same outcome (`tests.rs` runs both).
    pub(super) fn fields_dropped_unread(&self) -> Vec<String> {
        let Some(first) = self.steps.first() else {
            return Vec::new();
        };
        let mut read: Vec<&FieldPath> = Vec::new();
        for condition in self
            .filters
            .iter()
            .chain(self.rejects.iter().map(|(c, _)| c))
        {
            condition.fields(&mut read);
        }
        read.extend(&self.required);
        if let Some(CommandTable {
            source: CommandSource::Field(path),
            ..
        }) = &self.command
        {
            read.push(path);
        }
        if let Some(split) = &self.split {
            read.push(&split.field);
            read.extend(&split.into);
        }
        read.extend(
            [&self.key, &self.occurred_at, &self.correlation_id]
                .into_iter()
                .flatten(),
        );
        first
            .drops_always()
            .filter(|name| !read.iter().any(|path| path.segments()[0] == *name))
            .map(str::to_owned)
            .collect()
    }

    /// Runs this transform on one event being built, pushing what it
    /// becomes onto `out`: nothing when filtered, several drafts when split.
    pub(super) fn apply(
        &self,
        mut draft: Draft,
        record: &LegacyRecord<'_>,
        out: &mut Vec<Draft>,
        trace: &mut Trace,
    ) -> Result<(), MappingError> {
        for (rule, condition) in self.filters.iter().enumerate() {
            let held = condition.holds(&draft, record);
            trace.note(|| Decision::Filter {
                rule,
                when: condition.to_string(),
                held,
            });
            if held {
                return Ok(());
            }
        }
        for (rule, (condition, reason)) in self.rejects.iter().enumerate() {
            let held = condition.holds(&draft, record);
            trace.note(|| Decision::Reject {
                rule,
                when: condition.to_string(),
                held,
                reason: reason.clone(),
            });
            if held {
                return Err(MappingError::new(reason.clone()));
            }
        }
        for field in &self.required {
            let present = field.get_present(&draft.payload).is_some();
            trace.note(|| Decision::Require {
                field: field.to_string(),
                present,
            });
            if !present {
                return Err(MappingError::new(format!(
                    "missing required field `{field}`"
                )));
            }
        }
        if let Some(table) = &self.command {
            match table.resolve(&draft, record, trace)? {
                Some((event_type, derived_from)) => {
                    draft.event_type = Some(event_type);
                    draft.derived_from = derived_from;
                }
                None => return Ok(()),
            }
        }
        let drafts = match &self.split {
            Some(split) => {
                let drafts = split.apply(draft)?;
                trace.note(|| Decision::Split {
                    field: split.field.to_string(),
                    into: drafts.len(),
                });
                drafts
            }
            None => vec![draft],
        };
        for mut draft in drafts {
            self.read_header_fields(&mut draft)?;
            if self.key.is_some() || self.occurred_at.is_some() || self.correlation_id.is_some() {
                trace.note(|| Decision::EventFields {
                    key: draft.key.clone(),
                    occurred_at_ms: draft.occurred_at_ms,
                    correlation_id: draft.correlation_id.clone(),
                });
            }
            let typed = draft.event_type.as_ref().and_then(|t| {
                self.per_type
                    .get_key_value(t)
                    .map(|(t, steps)| (t.as_str(), steps))
            });
            let labelled = self
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (None, i, s))
                .chain(typed.into_iter().flat_map(|(t, steps)| {
                    steps.iter().enumerate().map(move |(i, s)| (Some(t), i, s))
                }));
            for (event_type, i, step) in labelled {
                let before = trace.is_on().then(|| draft.payload.clone());
                let applied = step.apply(&mut draft, record).map_err(MappingError::new)?;
                trace.note(|| Decision::Shape {
                    at: match event_type {
                        Some(t) => format!("types.{t}.steps[{i}]"),
                        None => format!("steps[{i}]"),
                    },
                    op: step.op_name(),
                    applied,
                    changes: before
                        .map(|before| FieldChanges::between(&before, &draft.payload))
                        .unwrap_or_default(),
                });
            }
            out.push(draft);
        }
        Ok(())
    }

    /// `[event]`: read before the steps, so steps may drop these fields.
    fn read_header_fields(&self, draft: &mut Draft) -> Result<(), MappingError> {
        if let Some(path) = &self.key {
            draft.key = Some(match path.get(&draft.payload) {
                None | Some(Value::Null) => {
                    return Err(MappingError::new(format!("no ledger key at `{path}`")));
                }
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                Some(other) => {
                    return Err(MappingError::new(format!(
                        "ledger key at `{path}` is {}, not a string or number",
                        json_kind(other)
                    )));
                }
            });
        }
        if let Some(path) = &self.occurred_at
            && let Some(value) = path.get_present(&draft.payload)
        {
            draft.occurred_at_ms = Some(crate::pipeline::timestamp::epoch_millis(value).map_err(
                |reason| MappingError::new(format!("event time at `{path}`: {reason}")),
            )?);
        }
        if let Some(path) = &self.correlation_id {
            draft.correlation_id = match path.get(&draft.payload) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => draft.correlation_id.take(),
            };
        }
        Ok(())
    }
}

fn compile_command(spec: &CommandSpec) -> Result<CommandTable, SpecError> {
    let whole = |message: String| SpecError {
        span: None,
        message: format!("command: {message}"),
    };
    let source = match (&spec.field, &spec.header, spec.record_key) {
        (Some(field), None, false) => CommandSource::Field(path(field, "command.field")?),
        (None, Some(header), false) => {
            if header.get_ref().is_empty() {
                return Err(SpecError::at(header, "command.header: empty header name"));
            }
            CommandSource::Header(header.get_ref().clone())
        }
        (None, None, true) => CommandSource::RecordKey,
        _ => {
            return Err(whole(
                "say where the command is with exactly one of `field`, `header`, `record_key = true`"
                    .into(),
            ));
        }
    };
    if spec.events.is_empty() && spec.unknown != UnknownCommand::Derive {
        return Err(whole(
            "`events` maps no command; add entries, or set unknown = \"derive\"".into(),
        ));
    }
    let mut events: HashMap<String, String> = HashMap::new();
    let mut spelled: HashMap<String, &str> = HashMap::new();
    for (command, event_type) in &spec.events {
        let normalised = normalise(command);
        if normalised.is_empty() {
            return Err(whole(format!(
                "events: `{command}` has no letters or digits"
            )));
        }
        if !is_event_type(event_type) {
            return Err(whole(format!(
                "events.{command}: `{event_type}` is not an event type name (PascalCase letters and digits)"
            )));
        }
        if let Some(other) = spelled.insert(normalised.clone(), command) {
            return Err(whole(format!(
                "events: `{other}` and `{command}` are spellings of one command"
            )));
        }
        events.insert(normalised, event_type.clone());
    }
    let mut ignore = HashSet::new();
    for command in &spec.ignore {
        let normalised = normalise(command);
        if let Some(mapped) = spelled.get(&normalised) {
            return Err(whole(format!(
                "`{command}` is both ignored and mapped (as `{mapped}`)"
            )));
        }
        ignore.insert(normalised);
    }
    Ok(CommandTable {
        source,
        events,
        ignore,
        unknown: spec.unknown,
    })
}

impl CommandTable {
    /// The event type for this record's command, with the command when the
    /// name was derived; `None` when the record is to be filtered.
    fn resolve(
        &self,
        draft: &Draft,
        record: &LegacyRecord<'_>,
        trace: &mut Trace,
    ) -> Result<Option<(String, Option<String>)>, MappingError> {
        let command = self.read(draft, record)?;
        let normalised = normalise(&command);
        let resolved = self.lookup(&command, &normalised);
        trace.note(|| Decision::Command {
            from: self.source.to_string(),
            raw: command,
            result: match &resolved {
                Ok(Some((event_type, None))) => event_type.clone(),
                Ok(Some((event_type, Some(_)))) => format!("unknown: derived {event_type}"),
                Ok(None) if self.ignore.contains(&normalised) => "ignored".into(),
                Ok(None) => "unknown: dropped".into(),
                Err(_) => "unknown: rejected".into(),
            },
            normalised,
        });
        resolved
    }

    /// The normalised command's event type, as `resolve` returns it.
    fn lookup(
        &self,
        command: &str,
        normalised: &str,
    ) -> Result<Option<(String, Option<String>)>, MappingError> {
        if self.ignore.contains(normalised) {
            return Ok(None);
        }
        if let Some(event_type) = self.events.get(normalised) {
            return Ok(Some((event_type.clone(), None)));
        }
        match self.unknown {
            UnknownCommand::Reject => {
                Err(MappingError::new(format!("unknown command `{command}`")))
            }
            UnknownCommand::Drop => Ok(None),
            UnknownCommand::Derive => match derive_event_type(command) {
                Some(event_type) => Ok(Some((event_type, Some(command.to_owned())))),
                None => Err(MappingError::new(format!(
                    "command `{command}` has no letters or digits to name an event by"
                ))),
            },
        }
    }

    fn read(&self, draft: &Draft, record: &LegacyRecord<'_>) -> Result<String, MappingError> {
        match &self.source {
            CommandSource::Field(path) => match path.get(&draft.payload) {
                None | Some(Value::Null) => {
                    Err(MappingError::new(format!("no command at `{path}`")))
                }
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(MappingError::new(format!(
                    "command at `{path}` is {}, not a string",
                    json_kind(other)
                ))),
            },
            CommandSource::Header(name) => {
                let bytes = record
                    .header(name)
                    .ok_or_else(|| MappingError::new(format!("no command header `{name}`")))?;
                String::from_utf8(bytes.to_vec())
                    .map_err(|_| MappingError::new(format!("command header `{name}` is not UTF-8")))
            }
            CommandSource::RecordKey => {
                let key = record
                    .key
                    .ok_or_else(|| MappingError::new("no record key to read the command from"))?;
                String::from_utf8(key.to_vec())
                    .map_err(|_| MappingError::new("the record key (the command) is not UTF-8"))
            }
        }
    }
}

impl Split {
    fn apply(&self, mut draft: Draft) -> Result<Vec<Draft>, MappingError> {
        let field = &self.field;
        let items = match field.remove(&mut draft.payload) {
            None | Some(Value::Null) => {
                return Err(MappingError::new(format!("nothing to split: no `{field}`")));
            }
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(MappingError::new(format!(
                    "nothing to split: `{field}` is empty"
                )));
            }
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(MappingError::new(format!(
                    "cannot split on `{field}`: it is {}, not an array",
                    json_kind(&other)
                )));
            }
        };
        items
            .into_iter()
            .map(|item| {
                let mut payload: Map<String, Value> = draft.payload.clone();
                match (&self.into, item) {
                    (Some(into), item) => into.insert(&mut payload, item).map_err(MappingError::new)?,
                    (None, Value::Object(fields)) => payload.extend(fields),
                    (None, other) => {
                        return Err(MappingError::new(format!(
                            "an element of `{field}` is {}, not an object; set split.into to place it",
                            json_kind(&other)
                        )));
                    }
                }
                Ok(Draft {
                    payload,
                    ..draft.without_payload()
                })
            })
            .collect()
    }
}
