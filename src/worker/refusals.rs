//! Records the broker refuses (a topic's `max.message.bytes`, a timestamp
//! out of range, a policy, broker-side schema validation): found from their
//! delivery reports and dead-lettered, stage `sink`, on a retry of their
//! batch, so that one refused record never stops a partition.
//!
//! A produce request fails as a whole, so every record that shared one
//! with the refused record reports the same error. Each becomes a
//! *suspect*: on every retry of the batch a suspect is sent alone, with
//! nothing else in flight. A suspect refused alone is *confirmed*; the
//! attempt aborts there, and on the next one the confirmed record goes to
//! the dead-letter topic instead, with the broker's reason. A dead letter
//! the broker refuses has nowhere else to go: the worker stops and says
//! why.
//!
//! Positions are the batch's own (the legacy record, or in a re-drive the
//! dead letter), which a retry polls again: what was learned holds until
//! the batch commits.

use std::collections::BTreeMap;

use rdkafka::Message;

use crate::worker::sink::Refused;
use crate::worker::source::Batch;

/// A record's place in its partition: partition, offset.
type At = (i32, i64);

/// Why the broker refused a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub topic: String,
    pub reason: String,
}

/// A batch's positions by slot: the slot is the record's index in it.
pub(crate) fn slots<'b>(batch: &'b Batch<'_>) -> impl Fn(usize) -> Option<At> + 'b {
    |slot| batch.get(slot).map(|m| (m.partition(), m.offset()))
}

/// What the failed attempts of the open batches taught.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refusals {
    suspects: BTreeMap<At, Refusal>,
    confirmed: BTreeMap<At, Refusal>,
    /// Whether anything was learned since [`Refusals::take_news`].
    news: bool,
}

impl Refusals {
    /// Learns from refused deliveries of a batch's records; `at` gives a
    /// slot's position (see [`slots`]). `alone` is the slot of the record
    /// that was in flight by itself, whose refusal is therefore its own.
    /// Returns whether anything new was learned: then a retry is not a
    /// repeat of the failed attempt, and needs no back-off.
    pub(crate) fn learn(
        &mut self,
        refused: Vec<Refused>,
        alone: Option<usize>,
        at: impl Fn(usize) -> Option<At>,
    ) -> bool {
        let mut learned = false;
        for Refused {
            slot,
            topic,
            reason,
        } in refused
        {
            let Some(at) = at(slot) else {
                continue;
            };
            let refusal = Refusal { topic, reason };
            if alone == Some(slot) {
                self.suspects.remove(&at);
                learned |= self.confirmed.insert(at, refusal.clone()).as_ref() != Some(&refusal);
            } else if !self.confirmed.contains_key(&at) && !self.suspects.contains_key(&at) {
                self.suspects.insert(at, refusal);
                learned = true;
            }
        }
        self.news |= learned;
        learned
    }

    /// Whether the failed attempt taught anything new (then its retry is
    /// not a repeat of it, and needs no back-off); forgets it was asked.
    pub(crate) fn take_news(&mut self) -> bool {
        std::mem::take(&mut self.news)
    }

    /// Whether the record at `at` must be sent alone.
    pub(crate) fn must_go_alone(&self, at: At) -> bool {
        self.suspects.contains_key(&at) || self.confirmed.contains_key(&at)
    }

    /// Why the broker refused the record at `at`, when that is known.
    pub(crate) fn confirmed(&self, at: At) -> Option<&Refusal> {
        self.confirmed.get(&at)
    }

    /// The batch committed up to `next` (per partition, the offset after
    /// its last record): what was learned about those records is done.
    pub(crate) fn committed(&mut self, next: &BTreeMap<i32, i64>) {
        let done = |&(partition, offset): &At| next.get(&partition).is_some_and(|n| offset < *n);
        self.suspects.retain(|at, _| !done(at));
        self.confirmed.retain(|at, _| !done(at));
        self.news = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(slot: usize, topic: &str) -> Refused {
        Refused {
            slot,
            topic: topic.into(),
            reason: "Message production error: InvalidRecord (Broker: Invalid record)".into(),
        }
    }

    /// Slot `i` is offset `10 + i` of partition 0.
    fn at(slot: usize) -> Option<At> {
        (slot < 5).then(|| (0, 10 + slot as i64))
    }

    #[test]
    fn records_that_shared_a_refused_request_are_suspects_until_one_is_refused_alone() {
        let mut refusals = Refusals::default();
        assert!(refusals.learn(vec![refused(1, "ledger"), refused(2, "ledger")], None, at));
        assert!(refusals.take_news() && !refusals.take_news());
        assert!(refusals.must_go_alone((0, 11)) && refusals.must_go_alone((0, 12)));
        assert!(!refusals.must_go_alone((0, 10)));
        assert_eq!(
            refusals.confirmed((0, 11)),
            None,
            "a suspect is not yet known"
        );
        // The same failure again teaches nothing: the retry backs off.
        assert!(!refusals.learn(vec![refused(1, "ledger")], None, at));

        // Sent alone, slot 2 is refused: it is confirmed; slot 1 stays a
        // suspect (it goes alone again on the next retry).
        assert!(refusals.learn(vec![refused(2, "ledger")], Some(2), at));
        assert_eq!(
            refusals.confirmed((0, 12)).map(|r| r.topic.as_str()),
            Some("ledger")
        );
        assert!(refusals.must_go_alone((0, 11)));
        assert_eq!(refusals.confirmed((0, 11)), None);
    }

    #[test]
    fn a_refusal_of_the_dead_letter_replaces_the_refusal_of_the_event() {
        let mut refusals = Refusals::default();
        refusals.learn(vec![refused(0, "ledger")], Some(0), at);
        assert!(refusals.learn(vec![refused(0, "dlq")], Some(0), at));
        assert_eq!(
            refusals.confirmed((0, 10)).map(|r| r.topic.as_str()),
            Some("dlq")
        );
        assert!(!refusals.learn(vec![refused(0, "dlq")], Some(0), at));
    }

    #[test]
    fn a_commit_forgets_the_records_it_covered_and_only_those() {
        let mut refusals = Refusals::default();
        refusals.learn(vec![refused(0, "ledger"), refused(3, "ledger")], None, at);
        refusals.learn(vec![refused(0, "ledger")], Some(0), at);
        refusals.committed(&BTreeMap::from([(0, 12)]));
        assert!(!refusals.must_go_alone((0, 10)), "committed: done");
        assert!(
            refusals.must_go_alone((0, 13)),
            "after the commit: still a suspect"
        );
        // Slots outside the batch are ignored.
        assert!(!refusals.learn(vec![refused(7, "ledger")], None, at));
    }
}
