//! `recast infer`: what a sample of a legacy topic holds, as the first
//! draft of its mapping needs it — the command field and every spelling of
//! every command with the event type proposed for it, per event type the
//! inventory of its fields (types, presence, examples, time forms), and
//! what must not reach a ledger: technical noise, personal data (found by
//! the values' shape, not only by field names), fields whose type varies.
//!
//! Personal data never leaves in clear: examples of a field that held any
//! are shown by their shape only (`aaa@aaaaaaa.aaa`).

mod cases;
mod classify;
mod commands;
mod draft;
mod fields;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::config::Config;
use crate::tools::legacy_file::LegacyLine;
pub(crate) use commands::Command;
use commands::{Commands, guess_field};
use fields::Inventory;

/// What to infer with.
#[derive(Debug, Clone, Default)]
pub struct InferOptions {
    /// The field the command is in; guessed when not given.
    pub command_field: Option<String>,
}

/// What a sample holds.
#[derive(Debug, Default)]
pub struct Inference {
    pub records: u64,
    /// Records that did not decode, by reason.
    pub undecodable: BTreeMap<String, u64>,
    pub command_field: Option<String>,
    /// Decoded records without a string in the command field.
    pub without_command: u64,
    pub(crate) commands: Vec<Command>,
    /// Per proposed event type, the inventory of its records.
    pub(crate) types: BTreeMap<String, Inventory>,
    /// Every decoded record's fields, whatever its command.
    pub(crate) all: Inventory,
    /// The field whose value is the record key, and how often it is.
    pub ledger_key: Option<(String, f64)>,
    /// The field that tells when it happened, and its forms.
    pub event_time: Option<(String, Vec<&'static str>)>,
    /// The field that identifies the request, for correlation and dedupe.
    pub correlation_id: Option<String>,
    /// The decoded records (record key, value), for drafting.
    decoded: Vec<(Option<String>, Map<String, Value>)>,
    /// The records of the sample the golden cases are drafted from.
    representatives: Vec<(String, LegacyLine)>,
}

/// Reads the sample and infers what it holds.
pub fn infer(
    config: &Config,
    lines: impl IntoIterator<Item = LegacyLine>,
    options: &InferOptions,
) -> Inference {
    let json = config.json_decoder();
    let mut inference = Inference::default();
    let mut decoded: Vec<(Option<String>, Map<String, Value>)> = Vec::new();
    let lines: Vec<LegacyLine> = lines.into_iter().collect();
    for line in lines.iter().cloned() {
        inference.records += 1;
        match json.decode(line.value.as_deref().map(str::as_bytes)) {
            Ok(object) => decoded.push((line.key, object)),
            Err(e) => {
                *inference
                    .undecodable
                    .entry(reason_kind(&e.to_string()))
                    .or_default() += 1;
            }
        }
    }
    let objects: Vec<Map<String, Value>> = decoded.iter().map(|(_, o)| o.clone()).collect();
    inference.command_field = options
        .command_field
        .clone()
        .or_else(|| guess_field(&objects));
    let mut commands = Commands::default();
    let mut spelled: Vec<Option<String>> = Vec::with_capacity(decoded.len());
    for (_, object) in &decoded {
        inference.all.add(object);
        let command = inference
            .command_field
            .as_ref()
            .and_then(|field| object.get(field))
            .and_then(Value::as_str);
        match command {
            Some(command) => commands.see(command),
            None => inference.without_command += 1,
        }
        spelled.push(command.map(str::to_owned));
    }
    inference.commands = commands.into_commands();
    let type_of = |spelling: &str| {
        let normalised = crate::pipeline::mapping::normalise(spelling);
        inference
            .commands
            .iter()
            .find(|c| c.normalised == normalised)
            .and_then(|c| c.event_type.clone())
    };
    let mut types: BTreeMap<String, Inventory> = BTreeMap::new();
    for ((_, object), spelling) in decoded.iter().zip(&spelled) {
        if let Some(event_type) = spelling.as_deref().and_then(type_of) {
            types.entry(event_type).or_default().add(object);
        }
    }
    inference.types = types;
    inference.ledger_key = ledger_key(&decoded, inference.command_field.as_deref());
    inference.event_time = event_time(&inference.all);
    inference.correlation_id = correlation_id(&inference.all);
    inference.decoded = decoded;
    inference.representatives =
        cases::representatives(&lines, config, inference.command_field.as_deref());
    inference
}

/// What `write_draft` wrote, relative to its directory.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    #[error("writing {path}: {error}")]
    Write {
        path: std::path::PathBuf,
        error: std::io::Error,
    },
    /// A draft that does not compile is recast's bug; the text shows where.
    #[error("the drafted transform does not compile: {0}")]
    Transform(String),
    #[error("the drafted configuration does not load: {0}")]
    Config(String),
}

/// Writes the draft into `dir`: `recast.toml` (the configuration to try
/// it with), `transforms/<name>.toml`, its golden cases in
/// `transforms/tests/<name>.toml`, and `schemas/` (the common header and
/// one `.avsc` per event type under `namespace`).
pub fn write_draft(
    inference: &Inference,
    config: &Config,
    dir: &std::path::Path,
    source: &str,
    namespace: &str,
) -> Result<Written, DraftError> {
    let name = config.raw.topics.legacy.clone();
    let transform = draft::transform(inference, source);
    let inventories =
        draft::mapped_inventories(&transform, &inference.decoded).map_err(DraftError::Transform)?;
    let mut written = Written::default();
    let mut write = |relative: std::path::PathBuf, text: &str| {
        let path = dir.join(&relative);
        let made = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        made.map_err(|error| DraftError::Write { path, error })?;
        written.files.push(relative);
        Ok::<_, DraftError>(())
    };
    write(format!("transforms/{name}.toml").into(), &transform)?;
    write(
        "schemas/header.avsc".into(),
        include_str!("../../../schemas/header.avsc"),
    )?;
    for (event_type, inventory) in &inventories {
        let schema = draft::schema(event_type, namespace, inventory);
        let text = serde_json::to_string_pretty(&schema).expect("JSON") + "\n";
        write(format!("schemas/{event_type}.avsc").into(), &text)?;
    }
    write(
        "recast.toml".into(),
        &draft_config(inference, config, &name),
    )?;
    let drafted = Config::load(Some(&dir.join("recast.toml")), Vec::new())
        .map_err(|e| DraftError::Config(e.to_string()))?;
    let cases =
        cases::case_file(&drafted, &inference.representatives).map_err(DraftError::Transform)?;
    write(format!("transforms/tests/{name}.toml").into(), &cases)?;
    Ok(written)
}

/// The configuration that runs the draft: the running one's broker and
/// topics, the drafted transform and schemas, a JSON ledger and, when a
/// request id was found, dedupe by it.
fn draft_config(inference: &Inference, config: &Config, name: &str) -> String {
    let raw = &config.raw;
    let text = |s: &str| Value::from(s).to_string();
    let mut out = String::from(
        "# Drafted by `recast infer`: try the draft with `recast replay` and\n\
         # `recast check --offline` before merging it into the real configuration.\n",
    );
    let _ = writeln!(out, "\n[kafka]\nbrokers = {}", text(&raw.kafka.brokers));
    let _ = writeln!(out, "group_id = {}", text(&raw.kafka.group_id));
    let _ = writeln!(out, "\n[source]\nsystem = {}", text(&raw.source.system));
    let _ = writeln!(out, "\n[topics]\nlegacy = {}", text(&raw.topics.legacy));
    let _ = writeln!(out, "ledger = {}", text(&raw.topics.ledger));
    let _ = writeln!(out, "dead_letter = {}", text(&raw.topics.dead_letter));
    let _ = writeln!(
        out,
        "\n[mapping]\ntransforms = [{}]\n\
         # Replace with the deployment's secret (RECAST_MAPPING__HASH_KEY).\n\
         hash_key = \"drafted-placeholder-not-a-secret\"",
        text(&format!("transforms/{name}.toml"))
    );
    out.push_str("\n[ledger]\nformat = \"json\"\nschemas = [\"schemas\"]\n");
    if let Some(id) = &inference.correlation_id {
        let _ = writeln!(
            out,
            "\n[dedupe]\n# Retries repeat the request id.\nkey = \"fields\"\nfields = [{}]\ncapacity = 100000",
            text(id)
        );
    }
    out
}

/// A decode error's kind, without the record-specific detail (`invalid
/// JSON at line 1 column 37: …` counts as `invalid JSON`).
fn reason_kind(reason: &str) -> String {
    reason
        .split(" at line")
        .next()
        .unwrap_or(reason)
        .split(':')
        .next()
        .unwrap_or(reason)
        .to_owned()
}

/// The top-level field whose value equals the record key in most keyed
/// records (at least 90% of them): what the ledger is keyed by.
fn ledger_key(
    decoded: &[(Option<String>, Map<String, Value>)],
    command: Option<&str>,
) -> Option<(String, f64)> {
    let keyed: Vec<_> = decoded
        .iter()
        .filter_map(|(k, o)| Some((k.as_deref()?, o)))
        .collect();
    let mut matches: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, object) in &keyed {
        for (name, value) in *object {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if text == *key && Some(name.as_str()) != command {
                *matches.entry(name).or_default() += 1;
            }
        }
    }
    let total = keyed.len().max(1);
    matches
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .filter(|(_, n)| n * 10 >= total * 9)
        .map(|(name, n)| (name.to_owned(), n as f64 / total as f64))
}

/// Names event times are usually found under, best first.
const TIME_NAMES: &[&str] = &[
    "occurredAt",
    "occurred_at",
    "eventTime",
    "ts",
    "timestamp",
    "time",
    "at",
    "createdAt",
    "created_at",
];

/// The field whose every value is a time, present in nearly every record.
fn event_time(all: &Inventory) -> Option<(String, Vec<&'static str>)> {
    all.fields
        .iter()
        .filter(|(path, f)| {
            !f.time_forms.is_empty()
                && f.not_times == 0
                && f.noise.is_none()
                && all.share(path) >= 0.9
        })
        .min_by_key(|(path, _)| {
            TIME_NAMES
                .iter()
                .position(|n| n == path)
                .unwrap_or(TIME_NAMES.len())
        })
        .map(|(path, f)| (path.clone(), f.time_forms.iter().copied().collect()))
}

/// A top-level string field that is different in (nearly) every record and
/// named like a request id.
fn correlation_id(all: &Inventory) -> Option<String> {
    const NAMES: &[&str] = &[
        "request",
        "correlation",
        "idempotency",
        "message",
        "command",
    ];
    all.fields
        .iter()
        .filter(|(path, f)| {
            !path.contains('.')
                && f.noise.is_none()
                && f.personal.is_none()
                && f.kinds.keys().all(|k| *k == "string")
                && all.share(path) >= 0.9
                && (f.many_distinct() || f.distinct.len() as u64 == f.present)
        })
        .find(|(path, _)| {
            let name = path.to_ascii_lowercase();
            NAMES.iter().any(|n| name.contains(n))
                && (name.ends_with("id") || name.ends_with("key"))
        })
        .map(|(path, _)| path.clone())
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

impl std::fmt::Display for Inference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let undecodable: u64 = self.undecodable.values().sum();
        write!(
            f,
            "{} records: {} decoded",
            self.records,
            self.records - undecodable
        )?;
        if undecodable > 0 {
            let reasons: Vec<String> = self
                .undecodable
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            write!(f, ", {undecodable} not decodable ({})", reasons.join(", "))?;
        }
        writeln!(f)?;
        match &self.command_field {
            Some(field) => writeln!(
                f,
                "command field: `{field}` ({} records without one)",
                self.without_command
            )?,
            None => writeln!(f, "command field: none found; name it with --command-field")?,
        }
        writeln!(f, "commands:")?;
        for command in &self.commands {
            let spellings: Vec<String> = command
                .spellings
                .iter()
                .map(|(s, n)| format!("{s} ({n})"))
                .collect();
            let what = match (&command.event_type, command.is_heartbeat()) {
                (_, true) => "ignore (liveness, not a fact)".to_owned(),
                (Some(event_type), false) => event_type.clone(),
                (None, false) => "no event type: no letters to name it by".to_owned(),
            };
            writeln!(f, "  {what:<32} ← {}", spellings.join(", "))?;
        }
        if let Some((key, share)) = &self.ledger_key {
            writeln!(
                f,
                "ledger key: `{key}` (the record key in {} of keyed records)",
                percent(*share)
            )?;
        }
        if let Some((time, forms)) = &self.event_time {
            writeln!(f, "event time: `{time}` ({})", forms.join(", "))?;
        }
        if let Some(id) = &self.correlation_id {
            writeln!(
                f,
                "correlation id and dedupe key: `{id}` (different in nearly every record)"
            )?;
        }
        for (event_type, inventory) in &self.types {
            writeln!(f, "\n{event_type} ({} records):", inventory.records)?;
            for (path, field) in &inventory.fields {
                let kinds: Vec<&str> = field.kinds.keys().copied().collect();
                let mut notes = String::new();
                if Some(path) == self.command_field.as_ref() {
                    notes.push_str(" the command: becomes the event type;");
                }
                if let Some(why) = field.noise {
                    let _ = write!(notes, " drop: {why};");
                }
                if let Some(what) = field.personal {
                    let _ = write!(notes, " personal: {what};");
                }
                if field.varies() {
                    let _ = write!(notes, " type varies;");
                }
                if !field.time_forms.is_empty() && field.not_times == 0 {
                    let forms: Vec<&str> = field.time_forms.iter().copied().collect();
                    let _ = write!(notes, " time: {};", forms.join(", "));
                }
                writeln!(
                    f,
                    "  {path:<28} {:>5}  {:<16} {}{}",
                    percent(inventory.share(path)),
                    kinds.join("|"),
                    field.examples.join(", "),
                    if notes.is_empty() {
                        String::new()
                    } else {
                        format!("  ({})", notes.trim().trim_end_matches(';'))
                    }
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
