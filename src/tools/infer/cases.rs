//! The golden cases a draft starts with: representative records of the
//! sample — the first of each command spelling, of each kind of record
//! that does not decode, one without a command — with every value that
//! looks like personal data replaced by a synthetic one of the same shape,
//! and what the draft makes of each as the expectation (cases run in
//! order under `recast test`'s hash key, so the file passes as written and
//! pins the draft's behaviour from then on).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::classify;
use crate::config::Config;
use crate::pipeline::mapping::{Mapping, normalise};
use crate::pipeline::{LedgerEvent, RecordOutcome};
use crate::tools::golden::TEST_HASH_KEY;
use crate::tools::legacy_file::LegacyLine;
use crate::tools::offline::Offline;

/// The records to make cases of, each with why it was chosen.
pub(crate) fn representatives(
    lines: &[LegacyLine],
    config: &Config,
    command_field: Option<&str>,
) -> Vec<(String, LegacyLine)> {
    let json = config.json_decoder();
    let mut chosen = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for line in lines {
        let why = match json.decode(line.value.as_deref().map(str::as_bytes)) {
            Err(e) => {
                let kind = super::reason_kind(&e.to_string());
                seen.insert(format!("undecodable {kind}"))
                    .then(|| format!("a value that does not decode: {kind}"))
            }
            Ok(object) => match command_field
                .and_then(|f| object.get(f))
                .and_then(Value::as_str)
            {
                Some(spelling) => seen
                    .insert(format!("spelling {spelling}"))
                    .then(|| format!("`{spelling}` ({})", normalise(spelling))),
                None => seen
                    .insert("no command".into())
                    .then(|| "a record without a command".to_owned()),
            },
        };
        if let Some(why) = why {
            chosen.push((why, synthetic(line)));
        }
    }
    chosen
}

/// The line with every value that looks like personal data replaced by
/// its shape; a value that does not decode is replaced whole by its shape
/// (it may hold anything).
fn synthetic(line: &LegacyLine) -> LegacyLine {
    let value = line
        .value
        .as_deref()
        .map(|text| match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mut object)) => {
                mask_personal("", &mut object);
                Value::Object(object).to_string()
            }
            _ => classify::redact(text),
        });
    LegacyLine {
        value,
        ..line.clone()
    }
}

fn mask_personal(prefix: &str, object: &mut Map<String, Value>) {
    for (key, value) in object.iter_mut() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => mask_personal(&path, inner),
            Value::Array(items) => {
                for item in items {
                    match item {
                        Value::Object(inner) => mask_personal(&format!("{path}[]"), inner),
                        other => mask_value(&path, other),
                    }
                }
            }
            other => mask_value(&path, other),
        }
    }
}

fn mask_value(path: &str, value: &mut Value) {
    if classify::personal(path, value).is_some() {
        let text = match &*value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        *value = Value::String(classify::redact(&text));
    }
}

/// The case file: each representative, in order, expecting what the
/// drafted configuration (under the test hash key) makes of it.
pub(crate) fn case_file(
    drafted: &Config,
    chosen: &[(String, LegacyLine)],
) -> Result<String, String> {
    let mut config = drafted.clone();
    config.mapping = Mapping::compile(&config.transforms, Some(TEST_HASH_KEY), &config.raw.scripts)
        .map_err(|e| e.to_string())?;
    let mut offline = Offline::new(&config);
    let mut out = String::from(
        "# Drafted by `recast infer`: a record of the sample per command spelling and per\n\
         # kind of malformed value, personal values replaced by their shape, expecting what\n\
         # the draft does with them. Review each expectation; `recast test` runs them.\n",
    );
    for (why, line) in chosen {
        let outcome = offline.run(line, 0);
        let _ = write!(
            out,
            "\n[[case]]\nname = {}\n",
            toml_string(&format!("{why}: {}", describe(&outcome)))
        );
        if let Some(key) = &line.key {
            let _ = writeln!(out, "key = {}", toml_string(key));
        }
        if let Some(timestamp) = line.timestamp {
            let _ = writeln!(out, "timestamp = {timestamp}");
        }
        let _ = writeln!(
            out,
            "value = {}",
            toml_string(line.value.as_deref().unwrap_or_default())
        );
        expectation(&outcome, &mut out);
    }
    Ok(out)
}

fn describe(outcome: &RecordOutcome) -> String {
    match outcome {
        RecordOutcome::Events(events) => {
            let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
            format!("becomes {}", types.join(", "))
        }
        RecordOutcome::Duplicate { .. } => "a duplicate".into(),
        RecordOutcome::Filtered => "filtered".into(),
        RecordOutcome::Rejected(r) => format!("rejected at {}", r.stage.as_str()),
    }
}

fn expectation(outcome: &RecordOutcome, out: &mut String) {
    match outcome {
        RecordOutcome::Filtered => out.push_str("expect = { filtered = true }\n"),
        RecordOutcome::Duplicate { .. } => out.push_str("expect = { duplicate = true }\n"),
        RecordOutcome::Rejected(r) => {
            let _ = writeln!(
                out,
                "expect = {{ rejected = {{ stage = \"{}\", reason = {} }} }}",
                r.stage.as_str(),
                toml_string(&r.reason)
            );
        }
        RecordOutcome::Events(events) => {
            for event in events {
                expected_event(event, out);
            }
        }
    }
}

fn expected_event(event: &LedgerEvent, out: &mut String) {
    let _ = write!(
        out,
        "[[case.expect.events]]\nevent_type = {}\nkey = {}\n",
        toml_string(&event.event_type),
        toml_string(&event.key)
    );
    let Ok(json) = serde_json::from_slice::<Value>(&event.value) else {
        return;
    };
    let header = &json["header"];
    for field in ["occurred_at", "correlation_id"] {
        if let Some(text) = header[field].as_str() {
            let _ = writeln!(out, "{field} = {}", toml_string(text));
        }
    }
    // TOML has no null: a payload holding one is not pinned whole.
    if let Ok(toml::Value::Table(payload)) = toml::Value::try_from(&json["payload"]) {
        let inline = toml::Value::Table(payload).to_string();
        let _ = writeln!(out, "payload = {inline}");
    }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
