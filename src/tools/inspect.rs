//! `recast inspect`: the committed records of a topic, read at log level
//! (transaction markers applied, as `read_committed` defines them), Avro
//! values decoded through the registry, and a summary.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;

use crate::avro::WriterSchemas;
use crate::config::{Config, LegacyFormat};
use crate::pipeline::dead_letter;
use crate::registry::RegistryError;
use crate::tools::log_reader::{CommittedRecord, LogReadError, read_committed};

/// Why a topic could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("reading {topic}")]
    Read {
        topic: String,
        #[source]
        source: LogReadError,
    },
    #[error("fetching the schemas of Avro values")]
    Registry(#[from] RegistryError),
    #[error("writing")]
    Output(#[from] std::io::Error),
}

/// Prints the committed records of `topic` (`ledger`, `dead-letter`,
/// `legacy`, or any topic name), at most `limit` of them, and a summary.
pub fn inspect(
    config: &Config,
    topic: &str,
    limit: Option<usize>,
    out: &mut impl Write,
) -> Result<(), InspectError> {
    let topics = &config.raw.topics;
    let (name, role) = match topic {
        "ledger" => (topics.ledger.as_str(), "ledger"),
        "dead-letter" => (topics.dead_letter.as_str(), "dead-letter"),
        "legacy" => (topics.legacy.as_str(), "legacy"),
        other => (other, "topic"),
    };
    let log = read_committed(
        &config.raw.kafka.brokers,
        name,
        config.raw.kafka.connect_timeout,
    )
    .map_err(|source| InspectError::Read {
        topic: name.to_owned(),
        source,
    })?;
    // Avro values are shown decoded, with their schemas from the registry:
    // the ledger's, and legacy values (dead letters too) where they are Avro.
    let may_be_avro =
        role != "dead-letter" && role != "legacy" || config.raw.source.format != LegacyFormat::Json;
    let registry = config.registry().filter(|_| may_be_avro);
    let avro = registry.as_ref().map(|_| WriterSchemas::new());
    if let (Some(registry), Some(avro)) = (&registry, &avro) {
        registry.fetch_writer_schemas(avro, log.committed.iter().map(|r| r.value.as_deref()))?;
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (i, record) in log.committed.iter().enumerate() {
        let decoded = decode_avro(record, avro.as_ref());
        let label = summary_label(role, record, decoded.as_ref());
        *counts.entry(label.clone()).or_default() += 1;
        if limit.is_none_or(|l| i < l) {
            writeln!(out, "{}", describe(role, record, decoded.as_ref(), &label))?;
        }
    }
    writeln!(
        out,
        "{name}: {} committed records ({} aborted, {} in open transactions)",
        log.committed.len(),
        log.aborted,
        log.open
    )?;
    for (label, count) in counts {
        writeln!(out, "  {count:>6}  {label}")?;
    }
    Ok(())
}

/// A Confluent-framed Avro value as JSON, with its schema id; `None` for
/// other values and undecodable ones (shown as they are). A ledger event
/// is shown as the JSON ledger writes it: header (times in RFC 3339), then
/// payload.
fn decode_avro(record: &CommittedRecord, avro: Option<&WriterSchemas>) -> Option<(u32, Value)> {
    let (id, datum) = crate::avro::split_frame(record.value.as_deref()?)?;
    let mut object = avro?.decode(id, datum).ok()?;
    let Some(mut header) = object.remove("header") else {
        return Some((id, Value::Object(object)));
    };
    for time in ["occurred_at", "recorded_at"] {
        if let Some(ms) = header[time].as_i64() {
            header[time] = crate::pipeline::timestamp::format_millis(ms).into();
        }
    }
    Some((
        id,
        serde_json::json!({ "header": header, "payload": object }),
    ))
}

fn summary_label(role: &str, record: &CommittedRecord, decoded: Option<&(u32, Value)>) -> String {
    match role {
        "ledger" => decoded
            .map(|(_, v)| v.clone())
            .or_else(|| serde_json::from_slice::<Value>(record.value.as_deref()?).ok())
            .and_then(|v| v["header"]["event_type"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "(not an event)".into()),
        "dead-letter" => format!(
            "{}: {}",
            record.header(dead_letter::STAGE).unwrap_or_default(),
            record.header(dead_letter::REASON).unwrap_or_default()
        ),
        _ => "records".into(),
    }
}

fn describe(
    role: &str,
    record: &CommittedRecord,
    decoded: Option<&(u32, Value)>,
    label: &str,
) -> String {
    // Control characters are escaped so that binary garbage cannot garble
    // the terminal.
    let text = |b: &Option<bytes::Bytes>| {
        b.as_deref().map_or_else(
            || "null".to_owned(),
            |b| {
                String::from_utf8_lossy(b)
                    .chars()
                    .map(|c| {
                        if c.is_control() {
                            c.escape_default().to_string()
                        } else {
                            c.to_string()
                        }
                    })
                    .collect()
            },
        )
    };
    let value = match decoded {
        Some((id, json)) => format!("avro(schema {id}) {json}"),
        None => text(&record.value),
    };
    let shown: String = value.chars().take(300).collect();
    let more = if shown.len() < value.len() { "…" } else { "" };
    match role {
        "dead-letter" => format!(
            "[{}@{}] key={} reason=\"{label}\" value={shown}{more}",
            record.partition,
            record.offset,
            text(&record.key)
        ),
        _ => format!(
            "[{}@{}] key={} {shown}{more}",
            record.partition,
            record.offset,
            text(&record.key)
        ),
    }
}
