//! The pipeline without a broker, for `recast test` and `recast replay`:
//! records are taken in order as one legacy partition, with the dedupe
//! window committed after each record, as the worker would commit them
//! one transaction each.

use crate::config::Config;
use crate::pipeline::dedupe::{DedupeWindow, Memory};
use crate::pipeline::record::Position;
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
        let position = Position {
            topic: &self.topic,
            partition: 0,
            offset: self.next_offset,
        };
        self.next_offset += 1;
        let record = line.record(position);
        let outcome = self.pipeline.run(
            &record,
            self.window.as_mut().map(|w| w as &mut dyn Memory),
            recorded_at_ms,
        );
        if let Some(window) = &mut self.window {
            window.commit();
        }
        outcome
    }
}
