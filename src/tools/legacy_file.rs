//! Legacy records as JSON lines, the format of `recast load` (and of the
//! sample traffic): one object per line with `key` (string or null),
//! `value` (the raw record value as a string, or null for a tombstone) and
//! optional `headers` (an object of strings) and `timestamp` (epoch
//! milliseconds). Other fields, such as the
//! sample's `expect`, are ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::pipeline::record::{LegacyRecord, Position};

/// One legacy record read from a JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct LegacyLine {
    #[serde(default)]
    pub key: Option<String>,
    pub value: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The Kafka timestamp to write, in epoch milliseconds (default: now).
    #[serde(default)]
    pub timestamp: Option<i64>,
}

impl LegacyLine {
    /// This line as the legacy record at `position` would be seen by the
    /// pipeline: the offline way in, for tests, benches and replays.
    pub fn record<'a>(&'a self, position: Position<'a>) -> LegacyRecord<'a> {
        LegacyRecord {
            position,
            timestamp_ms: self.timestamp,
            key: self.key.as_deref().map(str::as_bytes),
            value: self.value.as_deref().map(str::as_bytes),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), Some(value.as_bytes())))
                .collect(),
        }
    }
}

impl LegacyLine {
    /// A committed record of a topic as a line of a sample (`recast infer
    /// --topic`): key, value and headers as text, bytes that are not UTF-8
    /// replaced.
    pub fn from_committed(record: &crate::tools::log_reader::CommittedRecord) -> Self {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        Self {
            key: record.key.as_deref().map(text),
            value: record.value.as_deref().map(text),
            headers: record
                .headers
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), text(value.as_deref()?))))
                .collect(),
            timestamp: Some(record.timestamp_ms),
        }
    }
}

/// A line that is not a legacy record.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

/// Parses JSON lines, skipping blank ones.
pub fn parse(text: &str) -> Result<Vec<LegacyLine>, LineError> {
    text.lines().enumerate().filter_map(parse_line).collect()
}

/// Reads JSON lines one at a time, skipping blank ones: for files larger
/// than memory.
pub fn read(reader: impl std::io::BufRead) -> impl Iterator<Item = Result<LegacyLine, LineError>> {
    read_numbered(reader).map(|read| read.map(|(_, line)| line))
}

/// [`read`], with each record's 1-based line number.
pub fn read_numbered(
    reader: impl std::io::BufRead,
) -> impl Iterator<Item = Result<(usize, LegacyLine), LineError>> {
    reader
        .lines()
        .enumerate()
        .filter_map(|(i, line)| match line {
            Ok(line) => parse_line((i, &line)).map(|parsed| parsed.map(|l| (i + 1, l))),
            Err(e) => Some(Err(LineError {
                line: i + 1,
                message: e.to_string(),
            })),
        })
}

fn parse_line((index, line): (usize, &str)) -> Option<Result<LegacyLine, LineError>> {
    (!line.trim().is_empty()).then(|| {
        serde_json::from_str(line).map_err(|e| LineError {
            line: index + 1,
            message: e.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sample_format() {
        let text = "{\"key\": null, \"value\": \"{}\", \"expect\": {\"kind\": \"filtered\"}}\n\n\
                    {\"key\": \"k\", \"value\": null, \"headers\": {\"h\": \"v\"}}\n";
        let lines = parse(text).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].key, None);
        assert_eq!(lines[1].value, None);
        assert_eq!(lines[1].headers["h"], "v");
    }

    #[test]
    fn names_the_bad_line() {
        let err = parse("{\"value\": \"x\"}\nnot json\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
