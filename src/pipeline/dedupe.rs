//! Dedupe stage: drops the retries of a request through a window over the
//! input partition, so the ledger holds each request once.
//!
//! The window is a function of the input log, which is what keeps it exact
//! across restarts, rebalances and aborts. An event is a duplicate when an
//! event with the same key was *remembered* from one of the previous
//! `capacity` offsets of the same partition (and, with a time-to-live, at
//! most `ttl` earlier by record timestamp). Which occurrences are
//! remembered is decided by `Pipeline::run`, from the record alone and never
//! from a verdict (see its docs): so re-running the pipeline over the last
//! `capacity` offsets before the committed offset (`restore.rs`) rebuilds
//! the window the running worker had. Each remembered occurrence refreshes
//! its key, so a chain of retries stays one event. Memory is bounded by a
//! moka cache of `capacity` entries per partition with LRU eviction: keys
//! join it in offset order, so the least recently inserted key is the one
//! seen furthest back, and the offset check makes lazy evictions harmless.
//!
//! Keys are canonicalised (type-tagged, object keys sorted) and hashed to
//! 128 bits with SHA-256, so an entry costs the same whatever the payload,
//! and crafted records cannot collide with another request's key.

use std::collections::HashMap;
use std::time::Duration;

use moka::policy::EvictionPolicy;
use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use crate::config::{DedupeConfig, DedupeKeyKind};
use crate::pipeline::mapping::FieldPath;

/// A canonical, hashed dedupe key.
pub type DedupeKey = u128;

/// What identifies a request.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// These fields of the mapped payload, together.
    Fields(Vec<FieldPath>),
    /// The legacy record's Kafka key.
    RecordKey,
    /// The whole mapped payload (technical context already dropped).
    Payload,
}

impl KeySource {
    pub fn compile(config: &DedupeConfig) -> Self {
        match config.key {
            DedupeKeyKind::Fields => Self::Fields(
                config
                    .fields
                    .iter()
                    .map(|f| FieldPath::parse(f).expect("checked by DedupeConfig::validate"))
                    .collect(),
            ),
            DedupeKeyKind::RecordKey => Self::RecordKey,
            DedupeKeyKind::Payload => Self::Payload,
        }
    }

    /// The key of one event; `None` when the record carries nothing to
    /// identify it by (every field missing, or no record key): such events
    /// are never treated as duplicates, since guessing would drop facts.
    pub fn key(
        &self,
        payload: &Map<String, Value>,
        record_key: Option<&[u8]>,
    ) -> Option<DedupeKey> {
        let mut hasher = Sha256::new();
        match self {
            Self::Fields(paths) => {
                let values: Vec<Option<&Value>> = paths.iter().map(|p| p.get(payload)).collect();
                if values.iter().all(Option::is_none) {
                    return None;
                }
                for value in values {
                    canonical(&mut hasher, value);
                }
            }
            Self::RecordKey => {
                let key = record_key?;
                hasher.update([TAG_BYTES]);
                hasher.update((key.len() as u64).to_be_bytes());
                hasher.update(key);
            }
            Self::Payload => canonical_object(&mut hasher, payload),
        }
        let digest = hasher.finalize();
        Some(u128::from_be_bytes(
            digest[..16].try_into().expect("16 bytes"),
        ))
    }
}

const TAG_MISSING: u8 = 0;
const TAG_NULL: u8 = 1;
const TAG_FALSE: u8 = 2;
const TAG_TRUE: u8 = 3;
const TAG_INTEGER: u8 = 4;
const TAG_FLOAT: u8 = 5;
const TAG_STRING: u8 = 6;
const TAG_ARRAY: u8 = 7;
const TAG_OBJECT: u8 = 8;
const TAG_BYTES: u8 = 9;

/// Feeds a value's canonical form to the hasher: a type tag, then a
/// length-prefixed body, so no two different values share an encoding.
fn canonical(hasher: &mut Sha256, value: Option<&Value>) {
    match value {
        None => hasher.update([TAG_MISSING]),
        Some(Value::Null) => hasher.update([TAG_NULL]),
        Some(Value::Bool(false)) => hasher.update([TAG_FALSE]),
        Some(Value::Bool(true)) => hasher.update([TAG_TRUE]),
        Some(Value::Number(n)) => canonical_number(hasher, n),
        Some(Value::String(s)) => {
            hasher.update([TAG_STRING]);
            hasher.update((s.len() as u64).to_be_bytes());
            hasher.update(s.as_bytes());
        }
        Some(Value::Array(items)) => {
            hasher.update([TAG_ARRAY]);
            hasher.update((items.len() as u64).to_be_bytes());
            for item in items {
                canonical(hasher, Some(item));
            }
        }
        Some(Value::Object(object)) => canonical_object(hasher, object),
    }
}

/// Objects hash with their keys in sorted order: key order carries no
/// meaning in JSON, and legacy producers reorder keys between retries.
fn canonical_object(hasher: &mut Sha256, object: &Map<String, Value>) {
    hasher.update([TAG_OBJECT]);
    hasher.update((object.len() as u64).to_be_bytes());
    let mut entries: Vec<(&String, &Value)> = object.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, value) in entries {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        canonical(hasher, Some(value));
    }
}

/// Numbers compare by value: `1`, `1.0` and `1e0` are one number; `"1"`
/// (a string) is not.
fn canonical_number(hasher: &mut Sha256, n: &Number) {
    if let Some(i) = n.as_i64() {
        hasher.update([TAG_INTEGER]);
        hasher.update(i128::from(i).to_be_bytes());
    } else if let Some(u) = n.as_u64() {
        hasher.update([TAG_INTEGER]);
        hasher.update(i128::from(u).to_be_bytes());
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        // Integral floats within i64 are the same number as the integer.
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            hasher.update([TAG_INTEGER]);
            hasher.update(i128::from(f as i64).to_be_bytes());
        } else {
            hasher.update([TAG_FLOAT]);
            hasher.update(f.to_bits().to_be_bytes());
        }
    }
}

/// Where and when a key was last seen: 16 bytes, so an entry (key and
/// value) is 32 bytes before the cache's own bookkeeping.
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

#[derive(Debug)]
struct PartitionWindow {
    /// Keys of committed transactions.
    committed: moka::sync::Cache<DedupeKey, Seen>,
    /// Keys of the open transaction: they count for duplicates inside it,
    /// and join `committed` only if it commits.
    staged: HashMap<DedupeKey, Seen>,
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
        let capacity = self.capacity;
        self.partitions
            .entry(partition)
            .or_insert_with(|| PartitionWindow {
                committed: moka::sync::Cache::builder()
                    .max_capacity(capacity)
                    .eviction_policy(EvictionPolicy::lru())
                    .build(),
                staged: HashMap::new(),
            })
    }

    /// Whether the event keyed `key` from `offset` is a retry of one the
    /// window remembers. Only looks: what the record's fate is decides
    /// whether this occurrence is remembered ([`DedupeWindow::record`]).
    pub fn verdict(
        &self,
        partition: i32,
        key: DedupeKey,
        offset: i64,
        timestamp_ms: Option<i64>,
    ) -> Verdict {
        let Some(window) = self.partitions.get(&partition) else {
            return Verdict::New;
        };
        let previous = window
            .staged
            .get(&key)
            .copied()
            .or_else(|| window.committed.get(&key));
        match previous {
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
    pub fn record(
        &mut self,
        partition: i32,
        key: DedupeKey,
        offset: i64,
        timestamp_ms: Option<i64>,
    ) {
        self.partition(partition)
            .staged
            .insert(key, Seen::new(offset, timestamp_ms));
    }

    /// The open transaction committed: its keys join the windows, in
    /// offset order, so that the cache's least recently used entry is
    /// always the one seen furthest back.
    pub fn commit(&mut self) {
        for window in self.partitions.values_mut() {
            let mut staged: Vec<(DedupeKey, Seen)> = window.staged.drain().collect();
            staged.sort_unstable_by_key(|(_, seen)| seen.offset);
            for (key, seen) in staged {
                window.committed.insert(key, seen);
            }
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

    /// Committed entries held for `partition` (moka's estimate).
    pub fn len(&self, partition: i32) -> u64 {
        self.partitions.get(&partition).map_or(0, |w| {
            w.committed.run_pending_tasks();
            w.committed.entry_count()
        })
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
    use serde_json::json;

    fn fields(paths: &[&str]) -> KeySource {
        KeySource::Fields(paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect())
    }

    fn key(source: &KeySource, value: &Value) -> Option<DedupeKey> {
        source.key(value.as_object().unwrap(), None)
    }

    #[test]
    fn same_meaning_same_key() {
        let payload = KeySource::Payload;
        assert_eq!(
            key(&payload, &json!({"a": 1, "b": {"x": [1, 2], "y": null}})),
            key(&payload, &json!({"b": {"y": null, "x": [1, 2]}, "a": 1.0}))
        );
        let id = fields(&["requestId"]);
        assert_eq!(
            key(&id, &json!({"requestId": "r1", "_meta": {"host": "a"}})),
            key(&id, &json!({"_meta": {"host": "b"}, "requestId": "r1"}))
        );
    }

    #[test]
    fn different_meaning_different_key() {
        let payload = KeySource::Payload;
        let distinct = [
            json!({"a": 1}),
            json!({"a": "1"}),
            json!({"a": null}),
            json!({}),
            json!({"a": [1]}),
            json!({"a": 1.5}),
            json!({"a": true}),
            json!({"a": {"b": 1}}),
            json!({"ab": 1}),
            json!({"a": 1, "b": 1}),
        ];
        let keys: std::collections::HashSet<_> =
            distinct.iter().map(|v| key(&payload, v)).collect();
        assert_eq!(keys.len(), distinct.len());
        // null is not missing, across several fields too.
        let two = fields(&["a", "b"]);
        assert_ne!(
            key(&two, &json!({"a": 1, "b": null})),
            key(&two, &json!({"a": 1}))
        );
        // Values cannot slide from one field into the other.
        assert_ne!(
            key(&two, &json!({"a": "xy", "b": ""})),
            key(&two, &json!({"a": "x", "b": "y"}))
        );
    }

    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            // Non-integral floats only: integral ones equal their integer.
            (-1.0e6..1.0e6f64)
                .prop_filter("non-integral", |f| f.fract() != 0.0)
                .prop_map(|f| json!(f)),
            "[a-c]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn keys_match_exactly_when_values_do(a in json(), b in json()) {
            let source = fields(&["v"]);
            let key_a = key(&source, &json!({ "v": a }));
            let key_b = key(&source, &json!({ "v": b }));
            proptest::prop_assert_eq!(a == b, key_a == key_b);
        }

        #[test]
        fn key_order_and_whitespace_do_not_matter(a in json()) {
            // Re-parse the value from text with its object keys reversed.
            fn reversed(v: &Value) -> String {
                match v {
                    Value::Object(m) => format!(
                        "{{ {} }}",
                        m.iter().rev().map(|(k, v)| format!("{:?} :  {}", k, reversed(v))).collect::<Vec<_>>().join(" , ")
                    ),
                    Value::Array(items) => format!("[ {} ]", items.iter().map(reversed).collect::<Vec<_>>().join(", ")),
                    other => other.to_string(),
                }
            }
            let again: Value = serde_json::from_str(&reversed(&a)).unwrap();
            let source = fields(&["v"]);
            proptest::prop_assert_eq!(key(&source, &json!({ "v": a })), key(&source, &json!({ "v": again })));
        }
    }

    #[test]
    fn nothing_to_identify_means_no_key() {
        assert_eq!(key(&fields(&["requestId"]), &json!({"other": 1})), None);
        assert_eq!(KeySource::RecordKey.key(&Map::new(), None), None);
        assert!(KeySource::RecordKey.key(&Map::new(), Some(b"k")).is_some());
    }

    #[test]
    fn an_entry_is_32_bytes() {
        assert_eq!(size_of::<DedupeKey>() + size_of::<Seen>(), 32);
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
