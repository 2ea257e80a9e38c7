//! Dead-letter logging that scales: per stage and reason, the first few
//! rejections are logged in full, the rest counted and summed up once per
//! interval ("N more like this"). At 10% rejections and 100,000 records/s
//! a line per dead letter would be 10,000 lines/s; this is a handful.
//!
//! Reasons that carry a record's own values (`expected int, got string
//! "2"`) are distinct reasons: the number of them tracked is bounded, and
//! those beyond it are counted together per stage.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::pipeline::{Rejection, Stage};

/// Rejections logged in full per stage and reason, per interval.
const FIRST_FEW: u32 = 5;
/// How often the suppressed ones are summed up.
pub(crate) const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);
/// Distinct reasons tracked at once; beyond, counted per stage only.
const MAX_REASONS: usize = 1024;
/// The reason the untracked ones are counted under.
const OTHER_REASONS: &str = "(other reasons)";

/// Whether to log a rejection in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Note {
    Log,
    /// Counted for the next summary.
    Suppressed,
}

/// The rejections of the current interval, per stage and reason.
#[derive(Debug)]
pub(crate) struct RejectionLog {
    tallies: BTreeMap<(Stage, String), Tally>,
    since: Instant,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    logged: u32,
    suppressed: u64,
}

impl RejectionLog {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            tallies: BTreeMap::new(),
            since: now,
        }
    }

    /// Notes one rejection; says whether to log it in full.
    pub(crate) fn note(&mut self, rejection: &Rejection) -> Note {
        let key = (rejection.stage, rejection.reason.clone());
        let key = if self.tallies.contains_key(&key) || self.tallies.len() < MAX_REASONS {
            key
        } else {
            (rejection.stage, OTHER_REASONS.to_owned())
        };
        let tally = self.tallies.entry(key).or_default();
        if tally.logged < FIRST_FEW {
            tally.logged += 1;
            Note::Log
        } else {
            tally.suppressed += 1;
            Note::Suppressed
        }
    }

    /// Once per interval: the (stage, reason, count) of the rejections not
    /// logged since the last summary, largest first. Starts a new interval.
    pub(crate) fn summary(&mut self, now: Instant) -> Option<Vec<(Stage, String, u64)>> {
        if now.duration_since(self.since) < SUMMARY_INTERVAL {
            return None;
        }
        self.since = now;
        let mut more: Vec<(Stage, String, u64)> = std::mem::take(&mut self.tallies)
            .into_iter()
            .filter(|(_, t)| t.suppressed > 0)
            .map(|((stage, reason), t)| (stage, reason, t.suppressed))
            .collect();
        more.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
        Some(more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(reason: &str) -> Rejection {
        Rejection {
            stage: Stage::Schema,
            reason: reason.into(),
        }
    }

    #[test]
    fn the_first_few_are_logged_and_the_rest_summed_up_per_interval() {
        let start = Instant::now();
        let mut log = RejectionLog::new(start);
        let notes: Vec<Note> = (0..8).map(|_| log.note(&rejection("qty"))).collect();
        assert_eq!(notes.iter().filter(|n| **n == Note::Log).count(), 5);
        assert_eq!(log.note(&rejection("sku")), Note::Log);
        assert_eq!(log.summary(start + Duration::from_secs(1)), None);
        let due = start + SUMMARY_INTERVAL;
        assert_eq!(
            log.summary(due),
            Some(vec![(Stage::Schema, "qty".to_owned(), 3)])
        );
        // A new interval logs the first few again.
        assert_eq!(log.note(&rejection("qty")), Note::Log);
        assert_eq!(log.summary(due + SUMMARY_INTERVAL), Some(Vec::new()));
    }

    #[test]
    fn distinct_reasons_are_bounded() {
        let mut log = RejectionLog::new(Instant::now());
        for i in 0..MAX_REASONS + 50 {
            log.note(&rejection(&format!("value {i}")));
        }
        assert_eq!(log.tallies.len(), MAX_REASONS + 1);
        assert_eq!(
            log.tallies[&(Stage::Schema, OTHER_REASONS.to_owned())].logged,
            FIRST_FEW
        );
    }
}
