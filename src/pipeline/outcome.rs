//! What becomes of a legacy record — one vocabulary for every caller of
//! the record path — and how outcomes are counted, the same way for the
//! worker's metrics, `recast replay`'s summary and `recast test`'s report.

use std::collections::BTreeMap;

/// The stage that rejected a record, written to the dead-letter headers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Decode,
    Mapping,
    /// An event has no schema, or does not fit its schema.
    Schema,
    /// The encoded event could not be written (larger than the producer
    /// may send).
    Encode,
    /// The broker refused the record's event (its delivery report said
    /// so); decided by the worker, never by the pipeline.
    Sink,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Mapping => "mapping",
            Stage::Schema => "schema",
            Stage::Encode => "encode",
            Stage::Sink => "sink",
        }
    }
}

/// A record that goes to the dead-letter topic, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub stage: Stage,
    pub reason: String,
}

/// One encoded event, ready for the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEvent {
    pub key: String,
    pub value: Vec<u8>,
    pub event_type: String,
    /// The command the event type was derived from, when no table named it.
    pub derived_from: Option<String>,
    /// The request's dedupe key, when `[dedupe]` gave the event one.
    pub dedupe_key: Option<u128>,
}

/// What becomes of one legacy record: the one answer every caller of
/// [`Pipeline::run`](super::Pipeline::run) gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// These events go to the ledger, in order: the record's events that
    /// are not retries.
    Events(Vec<LedgerEvent>),
    /// Every event is a retry of one from this earlier offset (the last
    /// remembered).
    Duplicate { of_offset: i64 },
    /// The mapping made no event of it (an ignored command, a filter).
    Filtered,
    /// The record goes to the dead-letter topic, whole.
    Rejected(Rejection),
}

/// Legacy records by outcome. Every record counts once, so the outcomes
/// add up: `records = with_events + duplicates + filtered + rejected +
/// skipped`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub records: u64,
    /// Records that produced at least one event.
    pub with_events: u64,
    /// Events written, per event type.
    pub events: BTreeMap<String, u64>,
    /// Records all of whose events were retries.
    pub duplicates: u64,
    pub filtered: u64,
    /// Rejected records, per rejecting stage.
    pub rejected: BTreeMap<Stage, u64>,
    /// Records not run at all, by why: the dead letters re-drive passes
    /// over (see `recast redrive`). Always empty elsewhere.
    pub skipped: BTreeMap<&'static str, u64>,
}

impl Counts {
    /// Counts one record's outcome.
    pub fn count(&mut self, outcome: &RecordOutcome) {
        self.records += 1;
        match outcome {
            RecordOutcome::Events(events) => {
                self.with_events += 1;
                for event in events {
                    // Most events are of a type already counted: no key
                    // allocation for those.
                    match self.events.get_mut(&event.event_type) {
                        Some(n) => *n += 1,
                        None => {
                            self.events.insert(event.event_type.clone(), 1);
                        }
                    }
                }
            }
            RecordOutcome::Duplicate { .. } => self.duplicates += 1,
            RecordOutcome::Filtered => self.filtered += 1,
            RecordOutcome::Rejected(rejection) => {
                *self.rejected.entry(rejection.stage).or_default() += 1;
            }
        }
    }

    /// Counts one record passed over without running it.
    pub fn skip(&mut self, why: &'static str) {
        self.records += 1;
        *self.skipped.entry(why).or_default() += 1;
    }

    /// Adds another count to this one (a committed batch to the totals).
    pub fn add(&mut self, other: &Counts) {
        self.records += other.records;
        self.with_events += other.with_events;
        for (event_type, n) in &other.events {
            *self.events.entry(event_type.clone()).or_default() += n;
        }
        self.duplicates += other.duplicates;
        self.filtered += other.filtered;
        for (stage, n) in &other.rejected {
            *self.rejected.entry(*stage).or_default() += n;
        }
        for (why, n) in &other.skipped {
            *self.skipped.entry(why).or_default() += n;
        }
    }

    pub fn events_total(&self) -> u64 {
        self.events.values().sum()
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// One line: `N records: W became E events, F filtered, D duplicates, R
/// rejected (stage n, …)`.
impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records: {} became {} events, {} filtered, {} duplicates, {} rejected",
            self.records,
            self.with_events,
            self.events_total(),
            self.filtered,
            self.duplicates,
            self.rejected_total()
        )?;
        if !self.rejected.is_empty() {
            let by_stage: Vec<String> = self
                .rejected
                .iter()
                .map(|(stage, n)| format!("{} {n}", stage.as_str()))
                .collect();
            write!(f, " ({})", by_stage.join(", "))?;
        }
        if !self.skipped.is_empty() {
            let by_why: Vec<String> = self
                .skipped
                .iter()
                .map(|(why, n)| format!("{why} {n}"))
                .collect();
            write!(
                f,
                ", {} skipped ({})",
                self.skipped_total(),
                by_why.join(", ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str) -> LedgerEvent {
        LedgerEvent {
            key: "k".into(),
            value: Vec::new(),
            event_type: event_type.into(),
            derived_from: None,
            dedupe_key: None,
        }
    }

    #[test]
    fn every_record_counts_once_and_the_outcomes_add_up() {
        let mut counts = Counts::default();
        for outcome in [
            RecordOutcome::Events(vec![event("A"), event("B"), event("A")]),
            RecordOutcome::Events(vec![event("A")]),
            RecordOutcome::Duplicate { of_offset: 0 },
            RecordOutcome::Filtered,
            RecordOutcome::Rejected(Rejection {
                stage: Stage::Schema,
                reason: "r".into(),
            }),
        ] {
            counts.count(&outcome);
        }
        let mut twice = counts.clone();
        twice.add(&counts);
        assert_eq!(counts.records, 5);
        assert_eq!(
            counts.with_events + counts.duplicates + counts.filtered + counts.rejected_total(),
            counts.records
        );
        assert_eq!(counts.events["A"], 3);
        assert_eq!(twice.events_total(), 8);
        assert_eq!(
            counts.to_string(),
            "5 records: 2 became 4 events, 1 filtered, 1 duplicates, 1 rejected (schema 1)"
        );
        counts.skip("same mapping");
        assert_eq!(
            counts.with_events
                + counts.duplicates
                + counts.filtered
                + counts.rejected_total()
                + counts.skipped_total(),
            counts.records
        );
        assert!(counts.to_string().ends_with(", 1 skipped (same mapping 1)"));
    }
}
