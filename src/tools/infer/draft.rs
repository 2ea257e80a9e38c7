//! The draft `recast infer --out` writes: a transform file whose every
//! choice carries its evidence as a comment, and one Avro schema per event
//! type, typed from what the drafted transform makes of the sample (so
//! every sampled event the draft maps fits its schema).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::Inference;
use super::fields::{Field, Inventory};
use crate::pipeline::mapping::{Mapped, Mapping, ScriptsConfig, TransformFile};
use crate::pipeline::record::{LegacyRecord, Position};
use crate::pipeline::trace::Trace;

/// The drafted transform file.
pub(crate) fn transform(inference: &Inference, source: &str) -> String {
    let mut out = format!(
        "# Drafted by `recast infer` from {} records of {source}.\n\
         # Every choice below says what it was based on: review each one.\n\n",
        inference.records
    );
    command_table(inference, &mut out);
    event_fields(inference, &mut out);
    let drops = noise_paths(&inference.all);
    let mut dropped: Vec<String> = inference.command_field.iter().cloned().collect();
    dropped.extend(drops.iter().map(|(path, _)| path.clone()));
    if !dropped.is_empty() {
        out.push_str("\n# Technical context, not part of the fact:\n");
        if let Some(field) = &inference.command_field {
            let _ = writeln!(out, "#   {field}: the command, now the event type");
        }
        for (path, why) in &drops {
            let _ = writeln!(out, "#   {path}: {why}");
        }
        let _ = writeln!(out, "[[steps]]\ndrop = {}", toml_list(&dropped));
    }
    privacy_steps(&inference.all, &mut out);
    out
}

fn command_table(inference: &Inference, out: &mut String) {
    let Some(field) = &inference.command_field else {
        out.push_str("# No command field was found: name it with --command-field.\n");
        return;
    };
    let spellings = inference
        .commands
        .iter()
        .map(|c| c.spellings.len())
        .sum::<usize>();
    let _ = writeln!(
        out,
        "[command]\n# {} commands in {spellings} spellings; spellings are normalised before lookup.\nfield = {}",
        inference.commands.len(),
        Value::from(field.as_str())
    );
    let heartbeats: Vec<String> = inference
        .commands
        .iter()
        .filter(|c| c.is_heartbeat())
        .map(|c| c.usual_spelling().to_owned())
        .collect();
    if !heartbeats.is_empty() {
        let _ = writeln!(
            out,
            "# Liveness noise, not facts: counted as filtered.\nignore = {}",
            toml_list(&heartbeats)
        );
    }
    out.push_str("# A command nobody mapped yet goes to the dead-letter topic.\nunknown = \"reject\"\n\n[command.events]\n");
    for command in &inference.commands {
        let Some(event_type) = &command.event_type else {
            continue;
        };
        let seen: Vec<String> = command
            .spellings
            .iter()
            .map(|(s, n)| format!("{s} ({n})"))
            .collect();
        let _ = writeln!(out, "# {}", seen.join(", "));
        let _ = writeln!(
            out,
            "{} = {}",
            toml_key(command.usual_spelling()),
            Value::from(event_type.as_str())
        );
    }
}

fn event_fields(inference: &Inference, out: &mut String) {
    let mut lines = String::new();
    if let Some((key, share)) = &inference.ledger_key {
        let example = inference
            .all
            .fields
            .get(key)
            .map(|f| f.examples.join(", "))
            .unwrap_or_default();
        let _ = writeln!(
            lines,
            "# The record key in {:.0}% of keyed records, values like {example}.\nkey = {}",
            share * 100.0,
            Value::from(key.as_str())
        );
    }
    if let Some((time, forms)) = &inference.event_time {
        let _ = writeln!(
            lines,
            "# {} in every record.\noccurred_at = {}",
            forms.join(", "),
            Value::from(time.as_str())
        );
    }
    if let Some(id) = &inference.correlation_id {
        let _ = writeln!(
            lines,
            "# Different in nearly every record: the request.\ncorrelation_id = {}",
            Value::from(id.as_str())
        );
    }
    if !lines.is_empty() {
        let _ = write!(out, "\n[event]\n{lines}");
    }
}

/// The outermost noise paths, as drop patterns, with why: an object whose
/// every field is noise is dropped whole.
fn noise_paths(all: &Inventory) -> Vec<(String, &'static str)> {
    let is_container = |f: &Field| f.kinds.contains_key("object") || f.kinds.contains_key("array");
    let mut noisy: BTreeMap<String, &'static str> = BTreeMap::new();
    for (path, field) in &all.fields {
        let why = if is_container(field) {
            let prefixes = [format!("{path}."), format!("{path}[]")];
            let leaves: Vec<&Field> = all
                .fields
                .iter()
                .filter(|(p, f)| {
                    prefixes.iter().any(|pre| p.starts_with(pre.as_str())) && !is_container(f)
                })
                .map(|(_, f)| f)
                .collect();
            let first = leaves.first().and_then(|f| f.noise);
            first.filter(|_| leaves.iter().all(|f| f.noise.is_some()))
        } else {
            field.noise
        };
        if let Some(why) = why {
            noisy.insert(path.replace("[]", ""), why);
        }
    }
    noisy
        .iter()
        .filter(|(path, _)| {
            !noisy
                .keys()
                .any(|other| path.starts_with(&format!("{other}.")))
        })
        .map(|(path, why)| (path.clone(), *why))
        .collect()
}

/// `hash` for personal data that must stay joinable, `mask` for card
/// numbers (the last 4 digits kept).
fn privacy_steps(all: &Inventory, out: &mut String) {
    let personal: Vec<(&String, &Field)> = all
        .fields
        .iter()
        .filter(|(_, f)| f.personal.is_some() && f.noise.is_none())
        .collect();
    let (in_arrays, fields): (Vec<_>, Vec<_>) =
        personal.into_iter().partition(|(p, _)| p.contains("[]"));
    let (cards, hashed): (Vec<_>, Vec<_>) = fields
        .into_iter()
        .partition(|(_, f)| f.personal == Some("a card number"));
    if !hashed.is_empty() {
        out.push_str("\n# Personal data, by the shape of its values: a keyed hash (mapping.hash_key)\n# keeps it countable and joinable, never readable.\n");
        for (path, field) in &hashed {
            let _ = writeln!(out, "#   {path}: {}", field.personal.unwrap_or_default());
        }
        let paths: Vec<String> = hashed.iter().map(|(p, _)| (*p).clone()).collect();
        let _ = writeln!(out, "[[steps]]\nhash = {}", toml_list(&paths));
    }
    if !cards.is_empty() {
        out.push_str("\n# Card numbers: only the last 4 digits stay.\n[[steps]]\nmask = { ");
        let masks: Vec<String> = cards
            .iter()
            .map(|(p, _)| format!("{} = 4", toml_key(p)))
            .collect();
        let _ = writeln!(out, "{} }}", masks.join(", "));
    }
    for (path, field) in in_arrays {
        let _ = writeln!(
            out,
            "\n# REVIEW: `{path}` holds {} inside an array, which steps cannot reach:\n# drop it, or handle it in a script.",
            field.personal.unwrap_or_default()
        );
    }
}

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        Value::from(key).to_string()
    }
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| Value::from(i.as_str()).to_string())
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// What the drafted transform makes of the sample, per event type: the
/// inventories the schemas are typed from. `None` when the draft does not
/// compile (a bug of the draft, shown to the operator).
pub(crate) fn mapped_inventories(
    transform: &str,
    decoded: &[(Option<String>, Map<String, Value>)],
) -> Result<BTreeMap<String, Inventory>, String> {
    let file = TransformFile {
        path: "drafted transform".into(),
        text: transform.to_owned(),
    };
    // Hashes are hex whatever the key: any key types the schemas right.
    let mapping = Mapping::compile(
        &[file],
        Some("recast-infer-drafting-key"),
        &ScriptsConfig::default(),
    )
    .map_err(|e| e.to_string())?;
    let mut inventories: BTreeMap<String, Inventory> = BTreeMap::new();
    for (offset, (key, object)) in decoded.iter().enumerate() {
        let record = LegacyRecord {
            position: Position {
                topic: "sample",
                partition: 0,
                offset: offset as i64,
            },
            timestamp_ms: None,
            key: key.as_deref().map(str::as_bytes),
            value: None,
            headers: Vec::new(),
        };
        if let Ok(Mapped::Events(bodies)) =
            mapping.apply(object.clone(), &record, &mut Trace::off())
        {
            for body in bodies {
                inventories
                    .entry(body.event_type.clone())
                    .or_default()
                    .add(&body.payload);
            }
        }
    }
    Ok(inventories)
}

/// One event type's schema, `<namespace>.<EventType>`: the header, then a
/// field per payload field seen, optional where not always present.
pub(crate) fn schema(event_type: &str, namespace: &str, inventory: &Inventory) -> Value {
    let mut fields = vec![
        json!({"name": "header", "type": "recast.EventHeader", "doc": "The common event header."}),
    ];
    fields.extend(record_fields(event_type, "", inventory, inventory.records));
    json!({
        "type": "record",
        "name": event_type,
        "namespace": namespace,
        "doc": format!("Drafted by `recast infer` from {} sampled {event_type} events: describe the fact.", inventory.records),
        "fields": fields,
    })
}

/// The fields directly under `prefix` (`""` for the top level), each in a
/// record of `parent_records` occurrences.
fn record_fields(
    type_name: &str,
    prefix: &str,
    inventory: &Inventory,
    parent_records: u64,
) -> Vec<Value> {
    let children: Vec<(&String, &Field)> = inventory
        .fields
        .iter()
        .filter(|(path, _)| {
            path.strip_prefix(prefix).is_some_and(|rest| {
                !rest.is_empty() && !rest.contains('.') && !rest.ends_with("[]")
            })
        })
        .collect();
    children
        .into_iter()
        .map(|(path, field)| {
            let name = &path[prefix.len()..];
            let nested_name = format!("{type_name}{}", pascal(name));
            let mut avro = avro_type(&nested_name, path, field, inventory);
            let optional = field.present < parent_records || field.kinds.contains_key("null");
            let mut entry = json!({"name": name});
            if optional {
                avro = match avro {
                    Value::Array(mut union) => {
                        union.insert(0, "null".into());
                        Value::Array(union)
                    }
                    single => json!(["null", single]),
                };
                entry["default"] = Value::Null;
            }
            entry["type"] = avro;
            let mut doc = format!("Seen in {} of {parent_records}.", field.present);
            if field.varies() {
                doc.push_str(" REVIEW: its type varies between records.");
            }
            if field.kinds.contains_key("number") && looks_like_money(name) {
                doc.push_str(" REVIEW: money as a binary float; integer cents (a cast or a script) are exact.");
            }
            entry["doc"] = doc.into();
            entry
        })
        .collect()
}

/// The Avro type of one field: records for objects, arrays of what their
/// elements are, a union where types vary.
fn avro_type(nested_name: &str, path: &str, field: &Field, inventory: &Inventory) -> Value {
    let mut types: Vec<Value> = Vec::new();
    for kind in field.kinds.keys().filter(|k| **k != "null") {
        let avro = match *kind {
            "object" => json!({
                "type": "record",
                "name": nested_name,
                "fields": record_fields(nested_name, &format!("{path}."), inventory, field.kinds["object"]),
            }),
            "array" => {
                json!({"type": "array", "items": element_type(nested_name, path, inventory)})
            }
            "integer"
                if field.time_forms.contains("epoch milliseconds") && field.not_times == 0 =>
            {
                json!({"type": "long", "logicalType": "timestamp-millis"})
            }
            "integer" => "long".into(),
            "number" => "double".into(),
            "boolean" => "boolean".into(),
            _ => "string".into(),
        };
        types.push(avro);
    }
    match types.len() {
        0 => "string".into(),
        1 => types.pop().expect("one"),
        _ => Value::Array(types),
    }
}

fn element_type(nested_name: &str, path: &str, inventory: &Inventory) -> Value {
    let element = format!("{path}[]");
    match inventory.fields.get(&element) {
        Some(field) => avro_type(&format!("{nested_name}Item"), &element, field, inventory),
        None if inventory
            .fields
            .keys()
            .any(|p| p.starts_with(&format!("{element}."))) =>
        {
            json!({
                "type": "record",
                "name": format!("{nested_name}Item"),
                "fields": record_fields(&format!("{nested_name}Item"), &format!("{element}."), inventory, elements(inventory, &element)),
            })
        }
        None => "string".into(),
    }
}

/// How many array elements were seen under `element` (the most any of its
/// fields was present).
fn elements(inventory: &Inventory, element: &str) -> u64 {
    inventory
        .fields
        .iter()
        .filter(|(p, _)| p.starts_with(&format!("{element}.")))
        .map(|(_, f)| f.present)
        .max()
        .unwrap_or(0)
}

fn looks_like_money(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["total", "amount", "price", "cost", "sum", "balance"]
        .iter()
        .any(|m| name.contains(m))
}

fn pascal(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}
