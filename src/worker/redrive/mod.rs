//! `recast redrive`: after a mapping fix, the dead letters run again, as
//! the legacy records they were, through the same loop and the same
//! `Pipeline::run` as `recast run` — consuming the dead-letter topic as
//! their own group, committing its offsets in the transactions that write
//! their events (the operator's guide: `docs/redrive.md`).
//!
//! What this module adds to the loop is the choice of which dead letters
//! to run and what the ledger already holds:
//!
//! - A dead letter the running mapping rejected is passed over: it would
//!   be rejected again. A record rejected again is written to the
//!   dead-letter topic with the running mapping's version, so only the
//!   next mapping re-drives it: the re-drive cannot loop.
//! - The ledger is indexed from its events' headers (`event_headers`):
//!   per source partition, the source offsets with events and their
//!   dedupe keys, over `--lookback`. A dead letter whose source offset has
//!   events is passed over; one whose request's key is there is a
//!   duplicate, whichever came first in the legacy log.
//! - Events a re-drive wrote count once the dead letter they came from is
//!   behind the re-drive group's committed offset: a killed re-drive's
//!   unfinished transaction never hides the dead letters it would have
//!   written, on a broker that shows aborted records too.

mod dry_run;
mod index;

use std::time::Duration;

use regex::Regex;

use crate::config::Config;
use crate::pipeline::dead_letter::{self, DeadLetter};
use crate::pipeline::dedupe::LedgerIndex;
use crate::pipeline::record::LegacyRecord;
use crate::pipeline::trace::{Decision, Trace};
use crate::pipeline::{Pipeline, RecordOutcome, Stage};
pub use dry_run::{DryRun, dry_run};
pub use index::IndexError;
use index::LedgerFollower;

/// Which dead letters to re-drive; every one when empty.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only these rejecting stages (`decode`, `mapping`, `schema`, `encode`, `sink`).
    pub stages: Vec<String>,
    /// Only reasons this matches.
    pub reason: Option<Regex>,
    /// Only dead letters these mapping versions rejected.
    pub rejected_by: Vec<String>,
}

impl Filters {
    fn select(&self, dead_letter: &DeadLetter<'_>) -> bool {
        (self.stages.is_empty() || self.stages.iter().any(|s| s == dead_letter.stage))
            && self
                .reason
                .as_ref()
                .is_none_or(|r| r.is_match(dead_letter.reason))
            && (self.rejected_by.is_empty()
                || self
                    .rejected_by
                    .iter()
                    .any(|v| v == dead_letter.mapping_version))
    }
}

/// How `recast redrive` runs.
#[derive(Debug, Clone)]
pub struct RedriveOptions {
    /// The re-drive's consumer group of the dead-letter topic.
    pub group: String,
    pub filters: Filters,
    /// How far back, by record time, the ledger is indexed.
    pub lookback: Duration,
    /// Stop (exit 0) once no dead letter has arrived for this long.
    pub stop_when_idle: Option<Duration>,
}

impl RedriveOptions {
    /// The default group: the worker's, suffixed.
    pub fn default_group(config: &Config) -> String {
        format!("{}-redrive", config.raw.kafka.group_id)
    }
}

/// Why a dead letter is passed over (`Counts::skipped`).
pub(crate) mod skip {
    pub(crate) const UNREADABLE: &str = "unreadable";
    pub(crate) const OTHER_TOPIC: &str = "other legacy topic";
    pub(crate) const SAME_MAPPING: &str = "same mapping";
    pub(crate) const NOT_SELECTED: &str = "not selected";
    pub(crate) const IN_LEDGER: &str = "already in the ledger";
}

/// What became of one dead letter.
#[derive(Debug)]
pub(crate) enum Redriven<'a> {
    Skipped(&'static str),
    /// Run as `record`, the legacy record it was.
    Ran {
        record: LegacyRecord<'a>,
        outcome: RecordOutcome,
    },
}

/// The re-drive's state between transactions.
pub(crate) struct Redrive {
    filters: Filters,
    legacy_topic: String,
    dead_letter_topic: String,
    pub(crate) index: LedgerIndex,
    follower: LedgerFollower,
}

impl std::fmt::Debug for Redrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redrive")
            .field("filters", &self.filters)
            .field("index", &self.index.len())
            .finish_non_exhaustive()
    }
}

impl Redrive {
    /// Starts following the ledger from `lookback` ago (nothing is read
    /// until [`Redrive::catch_up`]).
    pub(crate) fn new(config: &Config, options: &RedriveOptions) -> Result<Self, IndexError> {
        Ok(Self {
            filters: options.filters.clone(),
            legacy_topic: config.raw.topics.legacy.clone(),
            dead_letter_topic: config.raw.topics.dead_letter.clone(),
            index: LedgerIndex::default(),
            follower: LedgerFollower::start(config, &options.group, options.lookback)?,
        })
    }

    /// Why a dead letter is not run under mapping `running`, if it is not.
    fn passed_over(&self, dead_letter: &DeadLetter<'_>, running: &str) -> Option<&'static str> {
        let source = dead_letter.record.position;
        if source.topic != self.legacy_topic {
            Some(skip::OTHER_TOPIC)
        } else if dead_letter.mapping_version == running
            && dead_letter.stage != Stage::Sink.as_str()
        {
            // The broker refused a `sink` dead letter: the fix is on the
            // broker's side, so the same mapping may run it again.
            Some(skip::SAME_MAPPING)
        } else if !self.filters.select(dead_letter) {
            Some(skip::NOT_SELECTED)
        } else if self.index.holds(source.partition, source.offset) {
            Some(skip::IN_LEDGER)
        } else {
            None
        }
    }

    /// Decides one record of the dead-letter topic: passed over, or run
    /// as the legacy record it was. Its events are staged in the index.
    pub(crate) fn decide<'a>(
        &mut self,
        pipeline: &Pipeline,
        read: &LegacyRecord<'a>,
        recorded_at_ms: i64,
        trace: &mut Trace,
    ) -> Redriven<'a> {
        let dead_letter = match dead_letter::read(read) {
            Ok(dead_letter) => dead_letter,
            Err(e) => {
                tracing::warn!(position = %read.position, reason = %e, "dead letter passed over");
                trace.note(|| Decision::PassedOver {
                    why: format!("{}: {e}", skip::UNREADABLE),
                });
                return Redriven::Skipped(skip::UNREADABLE);
            }
        };
        let source = dead_letter.record.position;
        trace.note(|| Decision::DeadLetter {
            source: source.to_string(),
            stage: dead_letter.stage.to_owned(),
            reason: dead_letter.reason.to_owned(),
            rejected_by: dead_letter.mapping_version.to_owned(),
        });
        if let Some(why) = self.passed_over(&dead_letter, pipeline.mapping_version()) {
            trace.note(|| Decision::PassedOver { why: why.into() });
            return Redriven::Skipped(why);
        }
        let record = dead_letter.record;
        let outcome = pipeline.run_traced(&record, Some(&mut self.index), recorded_at_ms, trace);
        if let RecordOutcome::Events(_) = outcome {
            self.index.stage_offset(source.partition, source.offset);
        }
        Redriven::Ran { record, outcome }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::record::Position;

    fn redrive(filters: Filters) -> Redrive {
        Redrive {
            filters,
            legacy_topic: "legacy-cart".into(),
            dead_letter_topic: "legacy-cart-dlq".into(),
            index: LedgerIndex::default(),
            follower: LedgerFollower::unstarted(),
        }
    }

    fn dead_letter(topic: &'static str, offset: i64, stage: &'static str) -> DeadLetter<'static> {
        DeadLetter {
            record: LegacyRecord {
                position: Position {
                    topic,
                    partition: 1,
                    offset,
                },
                timestamp_ms: None,
                key: None,
                value: None,
                headers: Vec::new(),
            },
            stage,
            reason: "shop.cart.AddedToCart: field `customer.name`: not a field",
            mapping_version: "old",
        }
    }

    #[test]
    fn what_would_be_rejected_again_or_is_in_the_ledger_is_passed_over() {
        let mut r = redrive(Filters::default());
        let letter = dead_letter("legacy-cart", 7, "schema");
        assert_eq!(r.passed_over(&letter, "new"), None);
        assert_eq!(r.passed_over(&letter, "old"), Some(skip::SAME_MAPPING));
        r.index.insert(1, 7, None);
        assert_eq!(r.passed_over(&letter, "new"), Some(skip::IN_LEDGER));
        let elsewhere = dead_letter("legacy-orders", 8, "schema");
        assert_eq!(r.passed_over(&elsewhere, "new"), Some(skip::OTHER_TOPIC));
    }

    #[test]
    fn a_dead_letter_the_broker_refused_runs_again_under_the_same_mapping() {
        let r = redrive(Filters::default());
        let refused = dead_letter("legacy-cart", 9, "sink");
        assert_eq!(r.passed_over(&refused, "old"), None);
    }

    #[test]
    fn filters_choose_by_stage_reason_and_the_rejecting_mapping() {
        let letter = dead_letter("legacy-cart", 7, "schema");
        let chosen = |filters: Filters| redrive(filters).passed_over(&letter, "new").is_none();
        assert!(chosen(Filters {
            stages: vec!["mapping".into(), "schema".into()],
            reason: Some(Regex::new(r"customer\.name").unwrap()),
            rejected_by: vec!["old".into()],
        }));
        for filters in [
            Filters {
                stages: vec!["decode".into()],
                ..Filters::default()
            },
            Filters {
                reason: Some(Regex::new("^unknown command").unwrap()),
                ..Filters::default()
            },
            Filters {
                rejected_by: vec!["other".into()],
                ..Filters::default()
            },
        ] {
            assert!(!chosen(filters.clone()), "{filters:?}");
        }
    }

    #[test]
    fn every_reason_to_pass_over_is_in_the_guide() {
        let guide = include_str!("../../../docs/redrive.md");
        for why in [
            skip::UNREADABLE,
            skip::OTHER_TOPIC,
            skip::SAME_MAPPING,
            skip::NOT_SELECTED,
            skip::IN_LEDGER,
        ] {
            assert!(guide.contains(&format!("| `{why}` |")), "{why}");
        }
    }
}
