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
//! its key, so a chain of retries stays one event. Memory is bounded by
//! evicting, at each commit, the keys no later offset can reach
//! (`window.rs`).
//!
//! Keys are canonicalised (type-tagged, object keys sorted) and hashed to
//! 128 bits with SHA-256, so an entry costs the same whatever the payload,
//! and crafted records cannot collide with another request's key.

mod config;
mod key;
mod ledger_index;
mod window;

pub(crate) use config::DedupeConfig;
pub(crate) use key::{DedupeKey, KeySource};
pub(crate) use ledger_index::LedgerIndex;
pub use window::DedupeWindow;
pub(crate) use window::Verdict;

/// What the dedupe stage asks and tells as `Pipeline::run` decides a
/// record: whether an event's key was seen before, and that it is seen
/// now. The live worker's answer is a window over the input log
/// ([`DedupeWindow`]); re-drive's is an index of what the ledger already
/// holds ([`LedgerIndex`]). What is recorded is staged with the open
/// transaction: both commit and abort with it.
pub trait Memory {
    /// Whether the event keyed `key` from `offset` of `partition` repeats
    /// one already remembered. Only looks.
    fn verdict(
        &self,
        partition: i32,
        key: DedupeKey,
        offset: i64,
        timestamp_ms: Option<i64>,
    ) -> Verdict;

    /// Remembers, in the open transaction, that the event keyed `key`
    /// came from `offset` of `partition`.
    fn record(&mut self, partition: i32, key: DedupeKey, offset: i64, timestamp_ms: Option<i64>);
}
