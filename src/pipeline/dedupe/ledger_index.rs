//! Re-drive's dedupe memory: what the ledger already holds, per source
//! partition — the source offsets that have events there and the dedupe
//! keys of those events.
//!
//! The live worker's window cannot answer for re-drive. It looks back
//! from each record, so a retry that landed *after* the record it repeats
//! is not its duplicate; but a re-driven dead letter is older than the
//! retries the live worker already wrote. Here a key counts in both
//! directions: once an event for a request is in the ledger, for this
//! source partition, another is a duplicate wherever it sits in the
//! legacy log. A source offset with events counts the same way, so one
//! legacy record never gets its events twice, even without `[dedupe]`.
//!
//! The shell fills it from the ledger's event headers (`insert`); what
//! the open transaction adds is staged and joins only if it commits.

use std::collections::{HashMap, HashSet};

use super::{DedupeKey, Memory, Verdict};

/// What the ledger holds, by source partition.
#[derive(Debug, Default)]
pub(crate) struct LedgerIndex {
    committed: HashMap<i32, Held>,
    staged: HashMap<i32, Held>,
}

/// One source partition's share of the ledger.
#[derive(Debug, Default)]
struct Held {
    /// Dedupe keys, with the source offset whose event carried each.
    keys: HashMap<DedupeKey, i64>,
    /// Source offsets that have events.
    offsets: HashSet<i64>,
}

impl Held {
    fn absorb(&mut self, other: Held) {
        self.keys.extend(other.keys);
        self.offsets.extend(other.offsets);
    }
}

impl LedgerIndex {
    /// Adds a committed event of the ledger: from `offset` of source
    /// `partition`, keyed `key` when it had one.
    pub(crate) fn insert(&mut self, partition: i32, offset: i64, key: Option<DedupeKey>) {
        let held = self.committed.entry(partition).or_default();
        held.offsets.insert(offset);
        if let Some(key) = key {
            held.keys.entry(key).or_insert(offset);
        }
    }

    /// Whether the ledger (or the open transaction) has events of the
    /// legacy record at `offset` of `partition`.
    pub(crate) fn holds(&self, partition: i32, offset: i64) -> bool {
        [&self.committed, &self.staged].iter().any(|held| {
            held.get(&partition)
                .is_some_and(|h| h.offsets.contains(&offset))
        })
    }

    /// The open transaction writes events of the legacy record at
    /// `offset` of `partition`.
    pub(crate) fn stage_offset(&mut self, partition: i32, offset: i64) {
        self.staged
            .entry(partition)
            .or_default()
            .offsets
            .insert(offset);
    }

    /// The open transaction committed: what it wrote is in the ledger.
    pub(crate) fn commit(&mut self) {
        for (partition, held) in self.staged.drain() {
            self.committed.entry(partition).or_default().absorb(held);
        }
    }

    /// The open transaction aborted: nothing it wrote is in the ledger.
    pub(crate) fn abort(&mut self) {
        self.staged.clear();
    }

    /// Source offsets with events, over every partition.
    pub(crate) fn len(&self) -> usize {
        self.committed.values().map(|h| h.offsets.len()).sum()
    }
}

impl Memory for LedgerIndex {
    fn verdict(
        &self,
        partition: i32,
        key: DedupeKey,
        _offset: i64,
        _timestamp_ms: Option<i64>,
    ) -> Verdict {
        [&self.staged, &self.committed]
            .iter()
            .find_map(|held| held.get(&partition)?.keys.get(&key).copied())
            .map_or(Verdict::New, |of_offset| Verdict::Duplicate { of_offset })
    }

    fn record(&mut self, partition: i32, key: DedupeKey, offset: i64, _timestamp_ms: Option<i64>) {
        self.staged
            .entry(partition)
            .or_default()
            .keys
            .entry(key)
            .or_insert(offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_the_ledger_makes_earlier_and_later_records_duplicates() {
        let mut index = LedgerIndex::default();
        index.insert(0, 50, Some(7));
        for offset in [10, 90] {
            assert_eq!(
                index.verdict(0, 7, offset, None),
                Verdict::Duplicate { of_offset: 50 }
            );
        }
        // Scope is the source partition.
        assert_eq!(index.verdict(1, 7, 10, None), Verdict::New);
        assert!(index.holds(0, 50));
        assert!(!index.holds(0, 10));
    }

    #[test]
    fn what_a_transaction_adds_counts_at_once_and_stays_only_if_it_commits() {
        let mut index = LedgerIndex::default();
        index.record(2, 9, 5, None);
        index.stage_offset(2, 5);
        assert_eq!(
            index.verdict(2, 9, 6, None),
            Verdict::Duplicate { of_offset: 5 }
        );
        assert!(index.holds(2, 5));
        index.abort();
        assert_eq!(index.verdict(2, 9, 6, None), Verdict::New);
        assert!(!index.holds(2, 5));
        index.record(2, 9, 5, None);
        index.stage_offset(2, 5);
        index.commit();
        index.abort();
        assert!(index.holds(2, 5));
        assert_eq!(index.len(), 1);
    }
}
