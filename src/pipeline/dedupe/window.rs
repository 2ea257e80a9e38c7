//! The dedupe window: per input partition, the keys remembered from the
//! last `capacity` offsets, committed with their transaction.
//!
//! Eviction is by offset, not by count: a key leaves the window when it
//! was last remembered `capacity` or more offsets before the newest
//! committed one. A count-bounded cache would not do: a record split into
//! several keyed events puts more than one key on an offset, a full cache
//! then evicts keys still inside the window, and which ones depends on the
//! cache's history — so a rebuilt window would answer differently from the
//! live one. By offset, the window holds exactly the keys of its last
//! `capacity` offsets, whatever came before.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use super::{DedupeKey, Memory};

/// A key as the window stores it: two words, so that it packs with an
/// offset into 24 bytes (a `u128` is 16-byte aligned, which pads an
/// offset beside it to 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoredKey([u64; 2]);

impl From<DedupeKey> for StoredKey {
    fn from(key: DedupeKey) -> Self {
        Self([(key >> 64) as u64, key as u64])
    }
}

/// Both words, and not the array's length as `[u64; 2]` would hash: the
/// map's hasher stays the standard keyed one, so a legacy producer that
/// grinds SHA-256 outputs still cannot aim keys at one bucket.
impl Hash for StoredKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
        state.write_u64(self.0[1]);
    }
}

/// Where and when a key was last seen, in the open transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    offset: i64,
    /// Record timestamp in epoch milliseconds; `NO_TIMESTAMP` when absent.
    timestamp_ms: i64,
}

const NO_TIMESTAMP: i64 = i64::MIN;

impl Seen {
    fn new(offset: i64, timestamp_ms: Option<i64>) -> Self {
        Self {
            offset,
            timestamp_ms: timestamp_ms.unwrap_or(NO_TIMESTAMP),
        }
    }
}

/// The verdict on one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    New,
    /// A retry of the event from this earlier offset.
    Duplicate {
        of_offset: i64,
    },
}

/// The dedupe windows of every partition this instance holds.
#[derive(Debug)]
pub struct DedupeWindow {
    capacity: u64,
    ttl_ms: Option<i64>,
    partitions: HashMap<i32, PartitionWindow>,
}

/// One partition's window. A committed key costs 24 bytes in `committed`
/// and 24 in `by_offset`; record times are kept once per offset, and only
/// with a time-to-live, which is all that reads them.
#[derive(Debug, Default)]
struct PartitionWindow {
    /// Keys of committed transactions, and the offset each was last
    /// remembered at.
    committed: HashMap<StoredKey, i64>,
    /// Every committed remembrance in offset order, for eviction: an entry
    /// whose key was remembered again later is stale and just dropped.
    by_offset: VecDeque<(i64, StoredKey)>,
    /// The record time of each committed offset that had one, in offset
    /// order: kept with a time-to-live only.
    times: VecDeque<(i64, i64)>,
    /// Keys of the open transaction: they count for duplicates inside it,
    /// and join `committed` only if it commits.
    staged: HashMap<StoredKey, Seen>,
}

impl PartitionWindow {
    /// Joins the open transaction's keys to the committed ones, then
    /// evicts what no later offset can reach.
    fn commit(&mut self, capacity: u64, keep_times: bool) {
        let mut staged: Vec<(StoredKey, Seen)> = self.staged.drain().collect();
        staged.sort_unstable_by_key(|(_, seen)| seen.offset);
        for (key, seen) in staged {
            self.committed.insert(key, seen.offset);
            self.by_offset.push_back((seen.offset, key));
            let timed = keep_times && seen.timestamp_ms != NO_TIMESTAMP;
            if timed && self.times.back().is_none_or(|&(at, _)| at < seen.offset) {
                self.times.push_back((seen.offset, seen.timestamp_ms));
            }
        }
        let Some(&(newest, _)) = self.by_offset.back() else {
            return;
        };
        // A record after `newest` is at least one offset later: keys from
        // `newest - capacity` or before are out of its reach.
        let horizon = newest.saturating_sub(i64::try_from(capacity).unwrap_or(i64::MAX));
        while let Some(&(offset, key)) = self.by_offset.front() {
            if offset > horizon {
                break;
            }
            self.by_offset.pop_front();
            if self.committed.get(&key) == Some(&offset) {
                self.committed.remove(&key);
            }
        }
        while self.times.front().is_some_and(|&(at, _)| at <= horizon) {
            self.times.pop_front();
        }
    }

    /// Where and when `key` was last remembered, staged or committed.
    fn seen(&self, key: StoredKey) -> Option<Seen> {
        if let Some(&seen) = self.staged.get(&key) {
            return Some(seen);
        }
        let offset = *self.committed.get(&key)?;
        let timestamp_ms = self
            .times
            .binary_search_by_key(&offset, |&(at, _)| at)
            .map_or(NO_TIMESTAMP, |i| self.times[i].1);
        Some(Seen {
            offset,
            timestamp_ms,
        })
    }
}

impl DedupeWindow {
    pub fn new(capacity: u64, ttl: Option<Duration>) -> Self {
        Self {
            capacity,
            ttl_ms: ttl.map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
            partitions: HashMap::new(),
        }
    }

    /// The number of offsets a partition's window looks back.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn partition(&mut self, partition: i32) -> &mut PartitionWindow {
        self.partitions.entry(partition).or_default()
    }

    /// The open transaction committed: its keys join the windows.
    pub fn commit(&mut self) {
        let keep_times = self.ttl_ms.is_some();
        for window in self.partitions.values_mut() {
            window.commit(self.capacity, keep_times);
        }
    }

    /// The open transaction aborted: its keys never happened.
    pub fn abort(&mut self) {
        for window in self.partitions.values_mut() {
            window.staged.clear();
        }
    }

    /// Forgets a partition (revoked, or about to be rebuilt).
    pub fn drop_partition(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// The partitions with a window.
    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.keys().copied().collect()
    }

    /// Committed keys held for `partition`.
    pub fn len(&self, partition: i32) -> u64 {
        self.partitions
            .get(&partition)
            .map_or(0, |w| w.committed.len() as u64)
    }
}

impl Memory for DedupeWindow {
    /// Whether the event keyed `key` from `offset` is a retry of one the
    /// window remembers. Only looks: what the record's fate is decides
    /// whether this occurrence is remembered ([`Memory::record`]).
    fn verdict(
        &self,
        partition: i32,
        key: DedupeKey,
        offset: i64,
        timestamp_ms: Option<i64>,
    ) -> Verdict {
        let Some(window) = self.partitions.get(&partition) else {
            return Verdict::New;
        };
        match window.seen(key.into()) {
            Some(seen) if within(seen, offset, timestamp_ms, self.capacity, self.ttl_ms) => {
                Verdict::Duplicate {
                    of_offset: seen.offset,
                }
            }
            _ => Verdict::New,
        }
    }

    /// Remembers that the event keyed `key` came from `offset`, in the open
    /// transaction: later retries within the window are its duplicates.
    fn record(&mut self, partition: i32, key: DedupeKey, offset: i64, timestamp_ms: Option<i64>) {
        self.partition(partition)
            .staged
            .insert(key.into(), Seen::new(offset, timestamp_ms));
    }
}

fn within(
    seen: Seen,
    offset: i64,
    timestamp_ms: Option<i64>,
    capacity: u64,
    ttl_ms: Option<i64>,
) -> bool {
    let distance = offset.saturating_sub(seen.offset);
    if distance <= 0 || distance.unsigned_abs() > capacity {
        return false;
    }
    match (ttl_ms, timestamp_ms) {
        (Some(ttl), Some(now)) if seen.timestamp_ms != NO_TIMESTAMP => {
            now.saturating_sub(seen.timestamp_ms) <= ttl
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_key_is_24_bytes_in_the_map_and_24_in_the_queue() {
        assert_eq!(size_of::<(StoredKey, i64)>(), 24);
        assert_eq!(size_of::<(i64, StoredKey)>(), 24);
    }

    #[test]
    fn a_stored_key_keeps_all_128_bits() {
        let key: DedupeKey = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        assert_eq!(
            StoredKey::from(key).0,
            [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210]
        );
        assert_ne!(StoredKey::from(key), StoredKey::from(key ^ 1));
        assert_ne!(StoredKey::from(key), StoredKey::from(key ^ (1 << 127)));
    }

    /// Looks, then remembers: what the pipeline does for a record that lands.
    fn check(
        w: &mut DedupeWindow,
        partition: i32,
        key: DedupeKey,
        offset: i64,
        ts: Option<i64>,
    ) -> Verdict {
        let verdict = w.verdict(partition, key, offset, ts);
        w.record(partition, key, offset, ts);
        verdict
    }

    #[test]
    fn the_window_counts_offsets() {
        let mut w = DedupeWindow::new(10, None);
        assert_eq!(check(&mut w, 0, 7, 100, None), Verdict::New);
        // Exactly `capacity` offsets later: still inside.
        assert_eq!(
            check(&mut w, 0, 7, 110, None),
            Verdict::Duplicate { of_offset: 100 }
        );
        // The retry refreshed the key: 11 after it is outside.
        assert_eq!(check(&mut w, 0, 7, 121, None), Verdict::New);
        // Partitions are separate windows.
        assert_eq!(check(&mut w, 1, 7, 122, None), Verdict::New);
    }

    #[test]
    fn the_window_honours_the_time_to_live_on_record_time() {
        let mut w = DedupeWindow::new(1000, Some(Duration::from_secs(60)));
        assert_eq!(check(&mut w, 0, 1, 1, Some(0)), Verdict::New);
        assert_eq!(
            check(&mut w, 0, 1, 2, Some(60_000)),
            Verdict::Duplicate { of_offset: 1 }
        );
        assert_eq!(check(&mut w, 0, 1, 3, Some(120_001)), Verdict::New);
    }

    #[test]
    fn the_time_to_live_holds_for_committed_keys_and_their_times_leave_with_them() {
        let mut w = DedupeWindow::new(3, Some(Duration::from_secs(60)));
        for (key, offset, ts) in [(1, 1, Some(0)), (2, 2, None), (3, 3, Some(30_000))] {
            check(&mut w, 0, key, offset, ts);
            w.commit();
        }
        let dup = |of_offset| Verdict::Duplicate { of_offset };
        assert_eq!(w.verdict(0, 1, 4, Some(60_000)), dup(1));
        assert_eq!(w.verdict(0, 1, 4, Some(60_001)), Verdict::New);
        // Without a time on either side, the offsets alone decide.
        assert_eq!(w.verdict(0, 2, 4, Some(i64::MAX)), dup(2));
        assert_eq!(w.verdict(0, 3, 4, None), dup(3));
        assert_eq!(w.verdict(0, 3, 4, Some(90_001)), Verdict::New);
        check(&mut w, 0, 4, 5, Some(40_000));
        w.commit();
        // Offsets 1 and 2 are out of reach: keys and times are gone.
        assert_eq!(w.len(0), 2);
        let partition = &w.partitions[&0];
        assert_eq!(partition.times, VecDeque::from([(3, 30_000), (5, 40_000)]));
    }

    #[test]
    fn without_a_time_to_live_no_times_are_kept() {
        let mut w = DedupeWindow::new(3, None);
        check(&mut w, 0, 1, 1, Some(0));
        w.commit();
        assert!(w.partitions[&0].times.is_empty());
        assert_eq!(
            w.verdict(0, 1, 2, Some(i64::MAX)),
            Verdict::Duplicate { of_offset: 1 }
        );
    }

    #[test]
    fn only_committed_keys_stay() {
        let mut w = DedupeWindow::new(100, None);
        assert_eq!(check(&mut w, 0, 1, 1, None), Verdict::New);
        assert_eq!(
            check(&mut w, 0, 1, 2, None),
            Verdict::Duplicate { of_offset: 1 }
        );
        w.abort();
        assert_eq!(check(&mut w, 0, 1, 1, None), Verdict::New);
        w.commit();
        assert_eq!(
            check(&mut w, 0, 1, 3, None),
            Verdict::Duplicate { of_offset: 1 }
        );
    }

    #[test]
    fn keys_beyond_the_window_are_evicted_however_many_an_offset_has() {
        let mut w = DedupeWindow::new(3, None);
        // Offsets 0..10, three keys each (a split record), one transaction
        // per offset.
        for offset in 0..10 {
            for k in 0..3 {
                check(&mut w, 0, u128::from(offset as u64 * 10 + k), offset, None);
            }
            w.commit();
        }
        // Offsets 7, 8 and 9 are within reach of offset 10: nine keys.
        assert_eq!(w.len(0), 9);
        assert_eq!(
            w.verdict(0, 70, 10, None),
            Verdict::Duplicate { of_offset: 7 }
        );
        assert_eq!(w.verdict(0, 60, 10, None), Verdict::New);
    }

    #[test]
    fn a_refreshed_key_outlives_its_first_offset() {
        let mut w = DedupeWindow::new(3, None);
        check(&mut w, 0, 1, 0, None);
        w.commit();
        check(&mut w, 0, 1, 2, None);
        w.commit();
        check(&mut w, 0, 2, 4, None);
        w.commit();
        // The entry from offset 0 is evicted, the refresh at 2 is not.
        assert_eq!(
            w.verdict(0, 1, 5, None),
            Verdict::Duplicate { of_offset: 2 }
        );
        assert_eq!(w.len(0), 2);
    }

    #[test]
    fn looking_does_not_remember() {
        let mut w = DedupeWindow::new(100, None);
        assert_eq!(w.verdict(0, 1, 1, None), Verdict::New);
        assert_eq!(w.verdict(0, 1, 2, None), Verdict::New);
        w.record(0, 1, 2, None);
        assert_eq!(
            w.verdict(0, 1, 3, None),
            Verdict::Duplicate { of_offset: 2 }
        );
    }
}
