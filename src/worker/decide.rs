//! Deciding a batch's records ahead of writing them: each record runs the
//! record path (or, refused by the broker before, becomes its dead letter),
//! a chunk at a time, and the loop's thread then writes the chunk. With
//! `batch.threads = 2` the deciding runs on a thread of its own, a chunk
//! ahead of the writing.
//!
//! Deciding ahead is sound because nothing a write learns changes how a
//! later record of the same attempt is decided: a write learns which
//! records the broker refused, and those are records already sent (the
//! attempt then aborts, and its retry is decided afresh). So the refusals
//! known as the batch began are the ones every decision reads.

use std::sync::mpsc;

use crate::pipeline::dedupe::Memory;
use crate::pipeline::record::{LegacyRecord, Position};
use crate::pipeline::trace::Trace;
use crate::pipeline::{Pipeline, RecordOutcome, Rejection, Stage};
use crate::telemetry::tap::Tap;
use crate::worker::State;
use crate::worker::redrive::Redriven;
use crate::worker::refusals::{Refusal, Refusals};
use crate::worker::sink::TxnError;

/// How many records are decided before the loop's thread writes them.
/// Sending a chunk in one burst, rather than one record between two runs
/// of the record path, keeps each one's code hot in the instruction cache
/// and lets the producer's queue fill without its I/O thread contending
/// for it on every record; with a deciding thread, it is what the two
/// hand over.
pub(super) const CHUNK: usize = 256;

/// A record of the batch, decided and not yet written.
pub(super) struct Decided<'m> {
    /// Its position in the batch.
    pub slot: usize,
    /// Whether it goes to the broker alone (see `Refusals`).
    pub alone: bool,
    pub decision: Decision<'m>,
    /// What its decisions were, for the live tap.
    pub trace: Trace,
}

/// What a decided record comes to.
pub(super) enum Decision<'m> {
    /// Written as `outcome` says. `ran_as` is the legacy record it ran as
    /// when that is not the record read: the one inside the dead letter a
    /// re-drive read.
    Write {
        ran_as: Option<LegacyRecord<'m>>,
        outcome: RecordOutcome,
        redriven_from: Option<Position<'m>>,
    },
    /// A dead letter a re-drive passes over, and why.
    Skip(&'static str),
}

/// What deciding a batch's records reads, shareable with a deciding thread.
pub(super) struct Decider<'w> {
    pub pipeline: &'w Pipeline,
    pub tap: Option<&'w Tap>,
    pub dead_letter_topic: &'w str,
    /// What the failed attempts of the batch taught, as this one began.
    pub refusals: &'w Refusals,
    /// `recorded_at` of the events of the batch.
    pub recorded_at_ms: i64,
}

impl Decider<'_> {
    /// Decides `records`, whose first is the batch's record in `first_slot`.
    pub(super) fn decide_chunk<'m>(
        &self,
        first_slot: usize,
        records: &[LegacyRecord<'m>],
        state: &mut State,
    ) -> Result<Vec<Decided<'m>>, TxnError> {
        records
            .iter()
            .enumerate()
            .map(|(i, read)| self.decide(first_slot + i, read, state))
            .collect()
    }

    /// Decides the whole batch on a thread of its own, a chunk ahead of
    /// `write`, which the calling thread runs over the chunks as they come.
    /// A failed write ends the deciding after the chunk in hand.
    pub(super) fn decide_aside<'m>(
        &self,
        records: &[LegacyRecord<'m>],
        state: &mut State,
        write: impl FnOnce(&mut dyn Iterator<Item = Chunk<'m>>) -> Result<(), TxnError>,
    ) -> Result<(), TxnError> {
        std::thread::scope(|scope| {
            // One chunk in hand on each side bounds what is decided ahead.
            let (decided, chunks) = mpsc::sync_channel(1);
            scope.spawn(move || {
                for (number, chunk) in records.chunks(CHUNK).enumerate() {
                    let chunk = self.decide_chunk(number * CHUNK, chunk, state);
                    let failed = chunk.is_err();
                    if decided.send(chunk).is_err() || failed {
                        break;
                    }
                }
            });
            write(&mut chunks.into_iter())
        })
    }

    /// What the batch's record in `slot` comes to: the record path's
    /// outcome, or the dead letter of a record the broker refused before.
    fn decide<'m>(
        &self,
        slot: usize,
        read: &LegacyRecord<'m>,
        state: &mut State,
    ) -> Result<Decided<'m>, TxnError> {
        let at = (read.position.partition, read.position.offset);
        let alone = self.refusals.must_go_alone(at);
        if let Some(refusal) = self.refusals.confirmed(at) {
            let rejection = self.refused_rejection(refusal, read.position)?;
            return Ok(Decided {
                slot,
                alone,
                decision: Decision::Write {
                    ran_as: state.original(read),
                    outcome: RecordOutcome::Rejected(rejection),
                    redriven_from: None,
                },
                trace: Trace::off(),
            });
        }
        let mut trace = self.tap.map_or(Trace::off(), Tap::trace);
        let (pipeline, at_ms) = (self.pipeline, self.recorded_at_ms);
        let decision = match state {
            State::Legacy(window) => {
                let window = window.as_mut().map(|w| w as &mut dyn Memory);
                Decision::Write {
                    ran_as: None,
                    outcome: pipeline.run_traced(read, window, at_ms, &mut trace),
                    redriven_from: None,
                }
            }
            State::DeadLetters(redrive) => {
                match redrive.decide(pipeline, read, at_ms, &mut trace) {
                    Redriven::Skipped(why) => Decision::Skip(why),
                    Redriven::Ran { record, outcome } => Decision::Write {
                        ran_as: Some(record),
                        outcome,
                        redriven_from: Some(read.position),
                    },
                }
            }
        };
        Ok(Decided {
            slot,
            alone,
            decision,
            trace,
        })
    }

    /// The rejection of a record the broker refused, as its dead letter
    /// says it.
    fn refused_rejection(
        &self,
        refusal: &Refusal,
        position: Position<'_>,
    ) -> Result<Rejection, TxnError> {
        if refusal.topic == self.dead_letter_topic {
            return Err(refused_dead_letter(
                refusal,
                position.partition,
                position.offset,
            ));
        }
        Ok(Rejection {
            stage: Stage::Sink,
            reason: format!(
                "the broker refused it for `{}`: {}",
                refusal.topic, refusal.reason
            ),
        })
    }
}

/// Decided chunks as the writing takes them.
pub(super) type Chunk<'m> = Result<Vec<Decided<'m>>, TxnError>;

/// A dead letter the broker refused: nothing can take it, so the worker
/// stops rather than lose the record.
pub(super) fn refused_dead_letter(refusal: &Refusal, partition: i32, offset: i64) -> TxnError {
    TxnError::Refused(format!(
        "the broker refused the dead letter of partition {partition} offset {offset} \
         for `{}` ({}); the dead-letter topic must take every record recast writes \
         (check its max.message.bytes, policies and broker-side schema validation)",
        refusal.topic, refusal.reason
    ))
}
