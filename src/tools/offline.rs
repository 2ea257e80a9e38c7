//! The pipeline without a broker, for `recast test` and `recast replay`:
//! records of a file are taken in order as one legacy partition (records
//! read from a topic keep their own positions), with the dedupe window
//! committed after each record, as the worker would commit them one
//! transaction each.

use crate::config::Config;
use crate::pipeline::dedupe::{DedupeWindow, Memory};
use crate::pipeline::record::{LegacyRecord, Position};
use crate::pipeline::trace::Trace;
use crate::pipeline::{Pipeline, RecordOutcome};
use crate::tools::legacy_file::LegacyLine;

/// A pipeline and a dedupe window over one simulated partition.
#[derive(Debug)]
pub struct Offline {
    pipeline: Pipeline,
    window: Option<DedupeWindow>,
    topic: String,
    next_offset: i64,
}

impl Offline {
    pub fn new(config: &Config) -> Self {
        Self {
            pipeline: config.offline_pipeline(),
            window: config
                .raw
                .dedupe
                .as_ref()
                .map(|d| DedupeWindow::new(d.capacity.get(), d.ttl)),
            topic: config.raw.topics.legacy.clone(),
            next_offset: 0,
        }
    }

    /// Runs the next record.
    pub fn run(&mut self, line: &LegacyLine, recorded_at_ms: i64) -> RecordOutcome {
        self.run_traced(line, recorded_at_ms, &mut Trace::off())
    }

    /// Runs the next record, noting its decisions in `trace`.
    pub fn run_traced(
        &mut self,
        line: &LegacyLine,
        recorded_at_ms: i64,
        trace: &mut Trace,
    ) -> RecordOutcome {
        let position = Position {
            topic: &self.topic,
            partition: 0,
            offset: self.next_offset,
        };
        self.next_offset += 1;
        decide(
            &self.pipeline,
            &mut self.window,
            &line.record(position),
            recorded_at_ms,
            trace,
        )
    }

    /// The position the next record of a file gets.
    pub fn next_position(&self) -> Position<'_> {
        Position {
            topic: &self.topic,
            partition: 0,
            offset: self.next_offset,
        }
    }

    pub fn mapping_version(&self) -> &str {
        self.pipeline.mapping_version()
    }

    /// Runs a record read from a topic, at its own position: each
    /// partition has its own window, in offset order.
    pub fn run_record(
        &mut self,
        record: &LegacyRecord<'_>,
        recorded_at_ms: i64,
        trace: &mut Trace,
    ) -> RecordOutcome {
        decide(
            &self.pipeline,
            &mut self.window,
            record,
            recorded_at_ms,
            trace,
        )
    }
}

/// One record, as one transaction of its own.
fn decide(
    pipeline: &Pipeline,
    window: &mut Option<DedupeWindow>,
    record: &LegacyRecord<'_>,
    recorded_at_ms: i64,
    trace: &mut Trace,
) -> RecordOutcome {
    let outcome = pipeline.run_traced(
        record,
        window.as_mut().map(|w| w as &mut dyn Memory),
        recorded_at_ms,
        trace,
    );
    if let Some(window) = window {
        window.commit();
    }
    outcome
}
