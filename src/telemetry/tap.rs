//! The live tap (`GET /tap`, `[http] tap = true`): decision traces of the
//! records the running worker decides, streamed to whoever asks.
//!
//! The loop never waits for a client. While a tap is open it traces a
//! sample of its records — at most [`TRACES_PER_TICK`] per
//! [`TICK`] — holds each transaction's traces until the transaction ends,
//! marks them `committed` or `aborted`, and offers each to every open tap
//! whose filter it passes. A tap that is not reading has a bounded queue;
//! what does not fit is dropped and counted
//! (`recast_tap_dropped_total`). With no tap open, the loop pays one
//! atomic load per record.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::pipeline::record::LegacyRecord;
use crate::pipeline::trace::Trace;
use crate::telemetry::metrics::Metrics;

/// The sampling period: the loop traces at most [`TRACES_PER_TICK`]
/// records in each, spreading a second's sample over the second.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// Traces per tick: 200 per second, a cost the loop does not feel.
pub(crate) const TRACES_PER_TICK: u32 = 20;
/// Traces queued per tap before they are dropped.
const QUEUE: usize = 256;
/// The most traces one request may ask for.
pub(crate) const MAX_LIMIT: usize = 10_000;

/// Which traces a tap wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TapFilter {
    /// `events`, `duplicate`, `filtered` or `rejected`.
    pub outcome: Option<String>,
    /// Only records with an event of this type.
    pub event_type: Option<String>,
}

impl TapFilter {
    fn passes(&self, outcome: &Value) -> bool {
        let outcome_is = |name: &str| outcome.get("outcome").and_then(Value::as_str) == Some(name);
        self.outcome.as_deref().is_none_or(outcome_is)
            && self.event_type.as_deref().is_none_or(|wanted| {
                outcome
                    .get("event_types")
                    .and_then(Value::as_array)
                    .is_some_and(|types| types.iter().any(|t| t.as_str() == Some(wanted)))
            })
    }
}

struct Subscriber {
    filter: TapFilter,
    remaining: usize,
    lines: SyncSender<String>,
    /// Set when the client's stream is dropped, whatever its filter.
    gone: Arc<AtomicBool>,
}

/// One client's traces, as JSON lines.
#[derive(Debug)]
pub(crate) struct TapStream {
    lines: Receiver<String>,
    gone: Arc<AtomicBool>,
}

impl TapStream {
    /// The next trace; `None` once the tap has sent its limit, or when
    /// none arrived for `idle`.
    pub(crate) fn next(&self, idle: Duration) -> Option<String> {
        self.lines.recv_timeout(idle).ok()
    }
}

impl Drop for TapStream {
    fn drop(&mut self) {
        self.gone.store(true, Ordering::Relaxed);
    }
}

/// The taps open on one worker, and the traces of its open transaction.
pub(crate) struct Tap {
    open: AtomicUsize,
    subscribers: Mutex<Vec<Subscriber>>,
    staged: Mutex<Vec<Map<String, Value>>>,
    sampler: Mutex<Sampler>,
    metrics: Metrics,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("open", &self.open.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Tap {
    pub(crate) fn new(metrics: Metrics) -> Self {
        Self {
            open: AtomicUsize::new(0),
            subscribers: Mutex::new(Vec::new()),
            staged: Mutex::new(Vec::new()),
            sampler: Mutex::new(Sampler::new(Instant::now())),
            metrics,
        }
    }

    /// Opens a tap for the next `limit` traces that pass `filter`; they
    /// arrive as JSON lines on the receiver, which is closed after the
    /// last.
    pub(crate) fn subscribe(&self, filter: TapFilter, limit: usize) -> TapStream {
        let (lines, receiver) = sync_channel(QUEUE);
        let gone = Arc::new(AtomicBool::new(false));
        let mut subscribers = lock(&self.subscribers);
        subscribers.push(Subscriber {
            filter,
            remaining: limit.clamp(1, MAX_LIMIT),
            lines,
            gone: gone.clone(),
        });
        self.opened(subscribers.len());
        TapStream {
            lines: receiver,
            gone,
        }
    }

    /// A trace for the next record: on while a tap is open and the sample
    /// has room, off (allocating nothing) otherwise.
    pub(crate) fn trace(&self) -> Trace {
        if self.open.load(Ordering::Relaxed) > 0 && lock(&self.sampler).take(Instant::now()) {
            Trace::on()
        } else {
            Trace::off()
        }
    }

    /// Holds a record's trace until its transaction ends.
    pub(crate) fn stage(&self, record: &LegacyRecord<'_>, mapping_version: &str, trace: Trace) {
        if trace.is_on() {
            lock(&self.staged).push(trace.into_json(record, mapping_version));
        }
    }

    /// The open transaction ended: its traces go to the taps they pass,
    /// marked with how it ended.
    pub(crate) fn settle(&self, committed: bool) {
        let staged = std::mem::take(&mut *lock(&self.staged));
        if staged.is_empty() {
            return;
        }
        let mut subscribers = lock(&self.subscribers);
        for mut traced in staged {
            let ended = if committed { "committed" } else { "aborted" };
            traced.insert("transaction".into(), ended.into());
            let outcome = traced
                .get("decisions")
                .and_then(Value::as_array)
                .and_then(|d| d.last())
                .cloned()
                .unwrap_or_default();
            let line = Value::Object(traced).to_string();
            for subscriber in subscribers.iter_mut() {
                if subscriber.remaining == 0 || !subscriber.filter.passes(&outcome) {
                    continue;
                }
                match subscriber.lines.try_send(line.clone()) {
                    Ok(()) => subscriber.remaining -= 1,
                    Err(TrySendError::Full(_)) => self.metrics.tap_dropped(),
                    // The client went away: close its tap.
                    Err(TrySendError::Disconnected(_)) => subscriber.remaining = 0,
                }
            }
        }
        subscribers.retain(|s| s.remaining > 0 && !s.gone.load(Ordering::Relaxed));
        self.opened(subscribers.len());
    }

    fn opened(&self, open: usize) {
        self.open.store(open, Ordering::Relaxed);
        self.metrics.taps_open(open);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// At most [`TRACES_PER_TICK`] traces per [`TICK`].
#[derive(Debug)]
struct Sampler {
    tick_started: Instant,
    taken: u32,
}

impl Sampler {
    fn new(now: Instant) -> Self {
        Self {
            tick_started: now,
            taken: 0,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if now.duration_since(self.tick_started) >= TICK {
            self.tick_started = now;
            self.taken = 0;
        }
        if self.taken < TRACES_PER_TICK {
            self.taken += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::record::Position;
    use crate::pipeline::trace::Decision;

    fn record(offset: i64) -> LegacyRecord<'static> {
        LegacyRecord {
            position: Position {
                topic: "legacy-cart",
                partition: 0,
                offset,
            },
            timestamp_ms: None,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    fn traced(outcome: &'static str) -> Trace {
        let mut trace = Trace::on();
        trace.note(|| Decision::Outcome {
            outcome,
            stage: None,
            reason: None,
            event_types: vec!["AddedToCart".into()],
            of_offset: None,
        });
        trace
    }

    #[test]
    fn taps_get_what_passes_their_filter_up_to_their_limit_marked_by_how_it_ended() {
        let tap = Tap::new(Metrics::new("legacy-cart"));
        assert!(!tap.trace().is_on(), "no tap open: no trace");
        let rejected = tap.subscribe(
            TapFilter {
                outcome: Some("rejected".into()),
                event_type: None,
            },
            2,
        );
        let typed = tap.subscribe(
            TapFilter {
                outcome: None,
                event_type: Some("AddedToCart".into()),
            },
            10,
        );
        assert!(tap.trace().is_on());
        for (offset, outcome) in [(1, "events"), (2, "rejected"), (3, "rejected")] {
            tap.stage(&record(offset), "v1", traced(outcome));
        }
        tap.settle(false);
        tap.stage(&record(4), "v1", traced("rejected"));
        tap.settle(true);
        let idle = Duration::from_millis(10);
        let lines: Vec<Value> = std::iter::from_fn(|| rejected.next(idle))
            .map(|l| serde_json::from_str(&l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "the limit");
        assert_eq!(lines[0]["record"]["offset"], 2);
        assert_eq!(lines[0]["transaction"], "aborted");
        assert_eq!(lines[1]["record"]["offset"], 3);
        assert_eq!(std::iter::from_fn(|| typed.next(idle)).count(), 4);
        assert_eq!(lock(&tap.subscribers).len(), 1, "the full tap is closed");
        drop(typed);
        tap.stage(&record(5), "v1", traced("filtered"));
        tap.settle(true);
        assert!(!tap.trace().is_on(), "a gone client closes its tap");
    }

    #[test]
    fn a_tap_that_does_not_read_loses_traces_not_the_loop() {
        let metrics = Metrics::new("legacy-cart");
        let tap = Tap::new(metrics.clone());
        let _slow = tap.subscribe(TapFilter::default(), MAX_LIMIT);
        for offset in 0..(QUEUE as i64 + 10) {
            tap.stage(&record(offset), "v1", traced("events"));
        }
        tap.settle(true);
        assert!(
            metrics
                .render()
                .contains("recast_tap_dropped_total{topic=\"legacy-cart\"} 10")
        );
    }

    #[test]
    fn the_sample_is_bounded_per_tick() {
        let start = Instant::now();
        let mut sampler = Sampler::new(start);
        let taken = (0..100).filter(|_| sampler.take(start)).count();
        assert_eq!(taken, TRACES_PER_TICK as usize);
        assert!(sampler.take(start + TICK));
    }
}
