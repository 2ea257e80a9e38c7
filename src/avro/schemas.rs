//! Ledger schemas: the `.avsc` files of `ledger.schemas` — the common
//! header, one record per event type, and any types they share — made
//! self-contained, parsed once, and found by event type.
//!
//! Each file holds one named type. An event schema is a record whose first
//! field is `header` of type `recast.EventHeader`; its name is the event
//! type. A type one file names from another (by full name) is inlined at
//! its first use, so every event schema registers as one self-contained
//! text: any consumer can read it without knowing recast's files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::schema::{Name, RecordField, RecordSchema};
use serde_json::{Map, Value};

use super::encode::{FitError, Names, encode_fields};

/// Whether `name` can be an event type: a `PascalCase` identifier, as the
/// record name of its schema.
pub(crate) fn is_event_type(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Full name of the common header record.
pub(crate) const HEADER_NAME: &str = "recast.EventHeader";

/// The header recast writes: a configured `recast.EventHeader` must have
/// the same fields and types (its docs may differ).
const BUILTIN_HEADER: &str = include_str!("../../schemas/header.avsc");

const PRIMITIVES: &[&str] = &[
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// One schema file.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    pub path: String,
    pub text: String,
}

/// A schema file that cannot be used, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {message}")]
pub struct SchemaError {
    pub file: String,
    pub message: String,
}

/// The schema of one event type.
#[derive(Debug)]
pub struct EventSchema {
    /// The file it was read from.
    pub file: String,
    /// Its record's full name (`shop.cart.AddedToCart`).
    pub name: Name,
    /// The self-contained schema: what is registered.
    pub text: String,
    pub schema: Schema,
    names: Names,
}

impl EventSchema {
    /// The event type: the record's name without its namespace.
    pub fn event_type(&self) -> &str {
        self.name.name()
    }

    /// The record's full name.
    pub fn full_name(&self) -> String {
        self.name.fullname(None)
    }

    /// The registry subject under `TopicRecordNameStrategy`.
    pub fn subject(&self, ledger_topic: &str) -> String {
        format!("{ledger_topic}-{}", self.full_name())
    }

    /// Writes a payload as the fields after the header, checking that it
    /// fits.
    pub fn encode_payload(
        &self,
        payload: &Map<String, Value>,
        out: &mut Vec<u8>,
    ) -> Result<(), FitError> {
        let Schema::Record(record) = &self.schema else {
            unreachable!("event schemas are records (checked on load)")
        };
        encode_fields(&record.name, &record.fields[1..], payload, &self.names, out)
    }
}

/// Every event type's schema.
#[derive(Debug, Clone, Default)]
pub struct LedgerSchemas {
    events: BTreeMap<String, Arc<EventSchema>>,
}

impl LedgerSchemas {
    /// Parses and checks a set of schema files (one named type each).
    pub fn load(files: &[SchemaFile]) -> Result<Self, SchemaError> {
        let mut definitions: HashMap<String, (usize, Value)> = HashMap::new();
        for (index, file) in files.iter().enumerate() {
            let error = |message: String| SchemaError {
                file: file.path.clone(),
                message,
            };
            let json: Value = serde_json::from_str(&file.text).map_err(|e| {
                error(format!(
                    "invalid JSON at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ))
            })?;
            let name = full_name(&json, None).ok_or_else(|| {
                error("must hold one named type (a record, enum or fixed with a `name`)".into())
            })?;
            if let Some((other, _)) = definitions.insert(name.clone(), (index, json)) {
                return Err(error(format!(
                    "defines {name}, which {} defines too",
                    files[other].path
                )));
            }
        }
        let header = definitions.get(HEADER_NAME).ok_or_else(|| SchemaError {
            file: files.first().map_or("schemas".into(), |f| f.path.clone()),
            message: format!(
                "no file defines the common header {HEADER_NAME} (ship schemas/header.avsc)"
            ),
        })?;
        check_header(&files[header.0].path, &definitions)?;

        let mut events = BTreeMap::new();
        let mut sorted: Vec<_> = definitions.iter().collect();
        sorted.sort_by_key(|(_, (index, _))| *index);
        for (name, (index, json)) in sorted {
            let file = &files[*index].path;
            if !is_event_record(json) {
                continue;
            }
            let event = event_schema(file, name, &definitions)?;
            if let Some(other) = events.insert(event.event_type().to_owned(), Arc::new(event)) {
                return Err(SchemaError {
                    file: file.clone(),
                    message: format!(
                        "event type {} is also defined by {}",
                        other.event_type(),
                        other.file
                    ),
                });
            }
        }
        Ok(Self { events })
    }

    /// The schema of an event type.
    pub fn get(&self, event_type: &str) -> Option<&Arc<EventSchema>> {
        self.events.get(event_type)
    }

    /// Every event schema, by event type.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<EventSchema>> {
        self.events.values()
    }

    /// The event types, sorted.
    pub fn event_types(&self) -> impl Iterator<Item = &str> {
        self.events.keys().map(String::as_str)
    }
}

/// Whether a type definition is an event record: its first field is `header`.
fn is_event_record(json: &Value) -> bool {
    json["type"] == "record" && json["fields"][0]["name"] == "header"
}

fn event_schema(
    file: &str,
    name: &str,
    definitions: &HashMap<String, (usize, Value)>,
) -> Result<EventSchema, SchemaError> {
    let error = |message: String| SchemaError {
        file: file.to_owned(),
        message,
    };
    let expanded = expand_definition(name, definitions).map_err(error)?;
    let text = expanded.to_string();
    let schema = Schema::parse_str(&text).map_err(|e| error(format!("not a valid schema: {e}")))?;
    let Schema::Record(RecordSchema {
        name: record_name,
        fields,
        ..
    }) = &schema
    else {
        unreachable!("event definitions are records")
    };
    let header_is_first = matches!(
        fields.first(),
        Some(RecordField { name, schema: Schema::Record(header), .. })
            if name == "header" && header.name.fullname(None) == HEADER_NAME
    );
    if !header_is_first {
        return Err(error(format!(
            "{name}: the `header` field must have type {HEADER_NAME}"
        )));
    }
    if !is_event_type(record_name.name()) {
        return Err(error(format!(
            "{name}: `{}` is not an event type name (PascalCase, past tense: AddedToCart)",
            record_name.name()
        )));
    }
    let mut names = Names::new();
    collect_names(&schema, &mut names);
    Ok(EventSchema {
        file: file.to_owned(),
        name: record_name.clone(),
        text,
        schema,
        names,
    })
}

/// A configured header must be laid out exactly as recast writes it:
/// compared in Parsing Canonical Form, which keeps names, types and field
/// order and drops docs.
fn check_header(
    file: &str,
    definitions: &HashMap<String, (usize, Value)>,
) -> Result<(), SchemaError> {
    let error = |message: String| SchemaError {
        file: file.to_owned(),
        message,
    };
    let configured = expand_definition(HEADER_NAME, definitions)
        .map_err(error)
        .and_then(|json| {
            Schema::parse(&json).map_err(|e| error(format!("not a valid schema: {e}")))
        })?;
    let builtin = Schema::parse_str(BUILTIN_HEADER).expect("the shipped header parses");
    if configured.canonical_form() != builtin.canonical_form() {
        return Err(error(format!(
            "{HEADER_NAME} differs from the header recast writes: only its docs may be edited \
             (the reference is the shipped schemas/header.avsc)"
        )));
    }
    Ok(())
}

/// A definition with every type it names from another file inlined at its
/// first use.
fn expand_definition(
    name: &str,
    definitions: &HashMap<String, (usize, Value)>,
) -> Result<Value, String> {
    let (_, json) = &definitions[name];
    let mut defined = HashSet::new();
    Expander { definitions }.expand(json, None, &mut defined)
}

struct Expander<'d> {
    definitions: &'d HashMap<String, (usize, Value)>,
}

impl Expander<'_> {
    fn expand(
        &self,
        json: &Value,
        namespace: Option<&str>,
        defined: &mut HashSet<String>,
    ) -> Result<Value, String> {
        match json {
            Value::String(name) if PRIMITIVES.contains(&name.as_str()) => Ok(json.clone()),
            Value::String(name) => {
                let full = qualify(name, namespace);
                if defined.contains(&full) {
                    return Ok(Value::String(full));
                }
                let (_, definition) = self
                    .definitions
                    .get(&full)
                    .or_else(|| self.definitions.get(name))
                    .ok_or_else(|| {
                        format!("unknown type `{name}` (no schema file defines {full})")
                    })?;
                let mut inlined = self.expand(definition, None, defined)?;
                // Inlined elsewhere, a name without namespace must not take
                // on the enclosing one.
                if let Value::Object(object) = &mut inlined
                    && !object.contains_key("namespace")
                {
                    object.insert("namespace".into(), Value::String(String::new()));
                }
                Ok(inlined)
            }
            Value::Array(branches) => branches
                .iter()
                .map(|b| self.expand(b, namespace, defined))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(object) => {
                let mut out = object.clone();
                let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
                let own_namespace;
                let mut namespace = namespace;
                if matches!(kind, "record" | "error" | "enum" | "fixed") {
                    let full = full_name(json, namespace)
                        .ok_or_else(|| format!("a {kind} without a name"))?;
                    own_namespace = full.rsplit_once('.').map(|(ns, _)| ns.to_owned());
                    namespace = own_namespace.as_deref();
                    defined.insert(full);
                }
                match kind {
                    "record" | "error" => {
                        let fields = object
                            .get("fields")
                            .and_then(Value::as_array)
                            .ok_or("a record without `fields`")?;
                        let mut expanded = Vec::with_capacity(fields.len());
                        for field in fields {
                            let mut field = field.clone();
                            if let Some(ty) = field.get("type") {
                                field["type"] = self.expand(ty, namespace, defined)?;
                            }
                            expanded.push(field);
                        }
                        out.insert("fields".into(), Value::Array(expanded));
                    }
                    "array" => {
                        if let Some(items) = object.get("items") {
                            out.insert("items".into(), self.expand(items, namespace, defined)?);
                        }
                    }
                    "map" => {
                        if let Some(values) = object.get("values") {
                            out.insert("values".into(), self.expand(values, namespace, defined)?);
                        }
                    }
                    _ => {
                        if let Some(inner @ (Value::Object(_) | Value::Array(_))) =
                            object.get("type")
                        {
                            out.insert("type".into(), self.expand(inner, namespace, defined)?);
                        }
                    }
                }
                Ok(Value::Object(out))
            }
            other => Err(format!("`{other}` is not a type")),
        }
    }
}

/// The full name of a named type definition.
fn full_name(json: &Value, enclosing: Option<&str>) -> Option<String> {
    let kind = json.get("type")?.as_str()?;
    if !matches!(kind, "record" | "error" | "enum" | "fixed") {
        return None;
    }
    let name = json.get("name")?.as_str()?;
    let namespace = json.get("namespace").and_then(Value::as_str).or(enclosing);
    Some(qualify(name, namespace))
}

fn qualify(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if !name.contains('.') && !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

/// Every named type of a schema, for resolving references to them.
fn collect_names(schema: &Schema, names: &mut Names) {
    match schema {
        Schema::Record(record) => {
            names.insert(record.name.clone(), schema.clone());
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.clone(), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.clone(), schema.clone());
        }
        Schema::Array(array) => collect_names(&array.items, names),
        Schema::Map(map) => collect_names(&map.types, names),
        Schema::Union(union) => {
            for branch in union.variants() {
                collect_names(branch, names);
            }
        }
        _ => {}
    }
}
