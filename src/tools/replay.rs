//! `recast replay`: the whole mapping (decode → transforms → dedupe →
//! envelope) over a file of legacy records, offline, writing the events as
//! JSON lines (`{"key": …, "value": {header, payload}}`) and summing up what
//! happened: events per type, filtered, duplicates, rejections by reason,
//! and the legacy fields that reached no event.
//!
//! A file is replayed as one legacy partition, in order, with offsets
//! counted from 0, so the dedupe window sees what it would on a partition
//! holding these records. Records read from a topic (`replay_topic`) keep
//! their positions, each partition with its own window.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};

use crate::config::Config;
use crate::pipeline::record::{LegacyRecord, Position};
use crate::pipeline::trace::Trace;
use crate::pipeline::{Counts, RecordOutcome, Stage};
use crate::tools::legacy_file::{LineError, read};
use crate::tools::log_reader::CommittedRecord;
use crate::tools::offline::Offline;

/// How often, in records, the progress callback is called.
const PROGRESS_EVERY: u64 = 4096;

/// What a replay found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The records by outcome, counted as the worker counts them.
    pub counts: Counts,
    /// Rejected records per stage and reason.
    pub reasons: BTreeMap<(Stage, String), u64>,
    /// Legacy field paths that reached none of their record's events, with
    /// the number of records they were stripped from.
    pub stripped: BTreeMap<String, u64>,
    /// Commands whose event type was derived, not named by a table.
    pub derived: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The line error is shown, not chained: it names the line itself.
    #[error("input {0}")]
    Input(LineError),
    #[error("writing events")]
    Output(#[from] std::io::Error),
}

impl From<LineError> for ReplayError {
    fn from(error: LineError) -> Self {
        Self::Input(error)
    }
}

/// Replays every record of `input`, writing events to `output`;
/// `progress` is told the number of records done now and then.
pub fn replay(
    config: &Config,
    input: impl BufRead,
    output: &mut impl Write,
    recorded_at_ms: i64,
    mut progress: impl FnMut(u64),
) -> Result<Summary, ReplayError> {
    let mut offline = Offline::new(config);
    let mut summary = Summary::default();
    let mut trace = Trace::field_paths();
    for line in read(input) {
        let line = line?;
        let outcome = offline.run_traced(&line, recorded_at_ms, &mut trace);
        summary.add(outcome, &mut trace, output)?;
        if summary.counts.records.is_multiple_of(PROGRESS_EVERY) {
            progress(summary.counts.records);
        }
    }
    output.flush()?;
    summary.stripped = stripped(&mut trace);
    Ok(summary)
}

/// Which committed records of a topic to replay, per partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    All,
    /// From this offset on.
    FromOffset(i64),
    /// Written at or after this time (epoch milliseconds).
    FromTime(i64),
    /// The last N.
    Last(usize),
}

/// Replays committed records of a topic (read at log level, as `recast
/// inspect` reads it), each at its own position; `records` is what
/// `read_committed` returned.
pub fn replay_topic(
    config: &Config,
    records: &[CommittedRecord],
    range: Range,
    output: &mut impl Write,
    recorded_at_ms: i64,
) -> Result<Summary, ReplayError> {
    let mut offline = Offline::new(config);
    let mut summary = Summary::default();
    let mut trace = Trace::field_paths();
    for record in selected(records, range) {
        let topic = &config.raw.topics.legacy;
        let legacy = LegacyRecord {
            position: Position {
                topic,
                partition: record.partition,
                offset: record.offset,
            },
            timestamp_ms: Some(record.timestamp_ms),
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: record
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_deref()))
                .collect(),
        };
        let outcome = offline.run_record(&legacy, recorded_at_ms, &mut trace);
        summary.add(outcome, &mut trace, output)?;
    }
    output.flush()?;
    summary.stripped = stripped(&mut trace);
    Ok(summary)
}

/// The legacy field paths `trace` counted as stripped.
fn stripped(trace: &mut Trace) -> BTreeMap<String, u64> {
    trace
        .noted_field_paths()
        .map(|paths| paths.stripped())
        .unwrap_or_default()
}

/// The records of `range`, per partition in offset order.
pub fn selected(records: &[CommittedRecord], range: Range) -> Vec<&CommittedRecord> {
    let mut by_partition: BTreeMap<i32, Vec<&CommittedRecord>> = BTreeMap::new();
    for record in records {
        by_partition
            .entry(record.partition)
            .or_default()
            .push(record);
    }
    by_partition
        .into_values()
        .flat_map(|mut partition| {
            partition.sort_by_key(|r| r.offset);
            let from = match range {
                Range::All => 0,
                Range::FromOffset(offset) => partition.partition_point(|r| r.offset < offset),
                Range::FromTime(ms) => partition
                    .iter()
                    .position(|r| r.timestamp_ms >= ms)
                    .unwrap_or(partition.len()),
                Range::Last(n) => partition.len().saturating_sub(n),
            };
            partition.split_off(from)
        })
        .collect()
}

impl Summary {
    /// Counts one record's outcome and writes its events; `trace` noted
    /// the record's field paths, counted as stripped when events were
    /// written.
    fn add(
        &mut self,
        outcome: RecordOutcome,
        trace: &mut Trace,
        output: &mut impl Write,
    ) -> Result<(), ReplayError> {
        self.counts.count(&outcome);
        match outcome {
            RecordOutcome::Events(events) => {
                if let Some(paths) = trace.noted_field_paths() {
                    paths.count_stripped();
                }
                for event in &events {
                    output.write_all(b"{\"key\":")?;
                    serde_json::to_writer(&mut *output, &event.key)
                        .map_err(std::io::Error::from)?;
                    output.write_all(b",\"value\":")?;
                    output.write_all(&event.value)?;
                    output.write_all(b"}\n")?;
                    if let Some(command) = &event.derived_from {
                        self.derived
                            .insert(command.clone(), event.event_type.clone());
                    }
                }
            }
            RecordOutcome::Duplicate { .. } | RecordOutcome::Filtered => {}
            RecordOutcome::Rejected(r) => {
                *self.reasons.entry((r.stage, r.reason)).or_default() += 1;
            }
        }
        Ok(())
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.counts)?;
        if !self.counts.events.is_empty() {
            writeln!(f, "events by type:")?;
            for (event_type, count) in &self.counts.events {
                writeln!(f, "  {count:>8}  {event_type}")?;
            }
        }
        if !self.derived.is_empty() {
            writeln!(f, "event types derived from unmapped commands:")?;
            for (command, event_type) in &self.derived {
                writeln!(f, "            {command} → {event_type}")?;
            }
        }
        if !self.reasons.is_empty() {
            writeln!(f, "rejected by reason:")?;
            for ((stage, reason), count) in &self.reasons {
                writeln!(f, "  {count:>8}  {}: {reason}", stage.as_str())?;
            }
        }
        if !self.stripped.is_empty() {
            writeln!(f, "legacy fields stripped (records):")?;
            for (path, count) in &self.stripped {
                writeln!(f, "  {count:>8}  {path}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    #[test]
    fn replays_a_small_file_and_sums_it_up() {
        let config = Config::load(None, Vec::new()).unwrap();
        let input = [
            r#"{"key": "c", "value": "{\"command\": \"ADD_TO_CART\", \"requestId\": \"r1\", \"cartId\": \"c\", \"customer\": {\"id\": \"u\"}, \"ts\": 1, \"sku\": \"S\", \"qty\": 1, \"_meta\": {\"host\": \"h\"}}"}"#,
            r#"{"key": "c", "value": "{\"command\": \"add.to.cart\", \"requestId\": \"r1\", \"cartId\": \"c\", \"customer\": {\"id\": \"u\"}, \"ts\": 1, \"sku\": \"S\", \"qty\": 1, \"_meta\": {\"host\": \"i\"}}"}"#,
            r#"{"key": null, "value": "{\"command\": \"HEARTBEAT\"}"}"#,
            "",
            r#"{"key": "c", "value": "{\"command\": \"SELL_CART\", \"cartId\": \"c\"}"}"#,
        ]
        .join("\n");
        let mut out = Vec::new();
        let summary = replay(&config, input.as_bytes(), &mut out, 0, |_| {}).unwrap();
        assert_eq!(summary.counts.records, 4);
        assert_eq!(
            summary.counts.events,
            BTreeMap::from([("AddedToCart".into(), 1)])
        );
        assert_eq!((summary.counts.filtered, summary.counts.duplicates), (1, 1));
        assert_eq!(
            summary.reasons,
            BTreeMap::from([((Stage::Mapping, "unknown command `SELL_CART`".into()), 1)])
        );
        assert_eq!(
            summary.stripped,
            BTreeMap::from([("_meta.host".into(), 1), ("command".into(), 1)])
        );
        let lines: Vec<Value> = std::str::from_utf8(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["key"], "c");
        assert_eq!(lines[0]["value"]["header"]["event_type"], "AddedToCart");
        assert!(summary.to_string().starts_with(
            "4 records: 1 became 1 events, 1 filtered, 1 duplicates, 1 rejected (mapping 1)\n"
        ));
    }

    #[test]
    fn a_line_that_is_not_a_record_is_an_error_naming_it() {
        let config = Config::load(None, Vec::new()).unwrap();
        let err = replay(
            &config,
            "{}\nnot json\n".as_bytes(),
            &mut Vec::new(),
            0,
            |_| {},
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("input line 2:"), "{err}");
    }
}
