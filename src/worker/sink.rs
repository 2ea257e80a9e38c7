//! Sink: the transactional producer that writes events to the ledger and
//! rejections to the dead-letter topic, and commits the source offsets in
//! the same transaction (KIP-447: one producer per instance, fenced through
//! the consumer group's generation).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, TopicPartitionList};

use crate::config::Config;
use crate::registry::RegistryError;
use crate::worker::kafka::{StartupError, client_config};

/// Why a transaction failed, by how it must be handled: the abortable
/// variants abort it and retry the batch, a failed producer that was not
/// fenced is replaced (see [`TxnError::needs_new_producer`]), the others
/// stop the worker (the orchestrator restarts the process).
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// The client library says the transaction can be aborted and retried.
    /// (The Kafka error is shown, not chained: its message already carries
    /// its cause.)
    #[error("{what}: {error}")]
    Abortable {
        what: &'static str,
        error: KafkaError,
    },
    /// recast aborts the transaction itself, for the reason given.
    #[error("{0}")]
    Abort(String),
    /// The producer is unusable: fenced by a newer instance with the same
    /// `transactional.id`, or failed in a state the client library can no
    /// longer reason about (a broker that lost track of its sequence
    /// numbers, …).
    #[error("{what} failed for transactional.id `{transactional_id}`: {reason}{}", fencing_hint(*.code))]
    Fatal {
        what: &'static str,
        transactional_id: String,
        code: RDKafkaErrorCode,
        reason: String,
    },
    /// Writer schemas of the batch could not be fetched: not the records'
    /// fault, and retrying would spin.
    #[error("fetching the batch's writer schemas")]
    Registry(#[from] RegistryError),
    /// The producer refused a record recast sized within its limits: a
    /// configuration that contradicts itself.
    #[error("{0}")]
    Refused(String),
}

impl TxnError {
    /// Whether aborting and retrying the batch can help.
    pub fn is_abortable(&self) -> bool {
        matches!(self, Self::Abortable { .. } | Self::Abort(_))
    }

    /// Whether a new producer with the same `transactional.id` can go on:
    /// this one failed fatally, but not because another instance took its
    /// place (which a new producer would fence in turn).
    pub fn needs_new_producer(&self) -> bool {
        matches!(self, Self::Fatal { code, .. } if !is_fencing(*code))
    }
}

/// What a Kafka error calls for, decided once with the client library's
/// own classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The producer is unusable.
    Fatal,
    /// Retry the same call (a commit that timed out, for instance).
    Retry,
    /// Abort the transaction and retry the batch.
    Abort,
}

fn class(error: &KafkaError) -> Class {
    match error {
        KafkaError::Transaction(e) if e.is_fatal() => Class::Fatal,
        KafkaError::Transaction(e) if e.txn_requires_abort() => Class::Abort,
        KafkaError::Transaction(e) if e.is_retriable() => Class::Retry,
        // Anything else (a produce error, a timeout outside a transactional
        // call) leaves the transaction in doubt: abort it.
        _ => Class::Abort,
    }
}

/// A produce that failed before reaching the broker.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The record exceeds `limits.max_output_bytes` (or the producer's own
    /// `message.max.bytes`).
    TooLarge,
    Txn(TxnError),
}

/// A record the broker refused for what it is (its size, its timestamp, a
/// topic's policy or broker-side schema validation), as its delivery
/// report said. Retrying the same record fails the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The record's slot in the batch (see [`Sink::send`]).
    pub slot: usize,
    pub topic: String,
    /// The broker's error, as the client library words it.
    pub reason: String,
}

/// Whether a delivery error is about the record itself, not the cluster's
/// state: only those can be dead-lettered without losing anything. A
/// whole produce request fails together, so every record that shared it
/// reports the same error; [`crate::worker::refusals`] finds which record
/// it was.
fn refuses_the_record(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidTimestamp
                | RDKafkaErrorCode::PolicyViolation
        )
    )
}

/// The producer's context: keeps the delivery reports that refused a
/// record, by slot. The reports are served by `poll` on the worker's own
/// thread; the lock only satisfies the client library's `Sync` bound.
#[derive(Default)]
pub(crate) struct Deliveries {
    refused: Mutex<Vec<Refused>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, slot: usize) {
        if let Err((error, message)) = result
            && refuses_the_record(error)
        {
            self.refused.lock().expect("deliveries lock").push(Refused {
                slot,
                topic: message.topic().to_owned(),
                reason: error.to_string(),
            });
        }
    }
}

/// How long a commit, abort or offsets call may take before it is retried
/// or treated as failed.
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Retriable commit errors are retried this many times before aborting.
const COMMIT_RETRIES: usize = 3;
/// How long the sink sleeps when no delivery report is ready: short next
/// to a commit's round trips (milliseconds), long enough not to spin.
const REPORT_WAIT: Duration = Duration::from_micros(200);

/// The transactional producer, a `BaseProducer` polled by the worker's own
/// thread (see [`Sink::commit`] for why).
pub(crate) struct Sink {
    producer: BaseProducer<Deliveries>,
    transactional_id: String,
    /// `limits.max_output_bytes`: larger records are refused before they
    /// reach the broker, where a refusal would fail every retry of the
    /// transaction.
    max_output_bytes: usize,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

impl Sink {
    /// Creates the producer and initialises transactions, which fences any
    /// older producer with the same `transactional.id` and aborts the
    /// transaction it left open.
    pub(crate) fn connect(config: &Config, transactional_id: &str) -> Result<Self, StartupError> {
        let raw = &config.raw;
        let transactional_id = transactional_id.to_owned();
        let mut client = client_config(config);
        client
            .set("transactional.id", &transactional_id)
            .set("enable.idempotence", "true")
            .set(
                "transaction.timeout.ms",
                raw.batch.transaction_timeout.as_millis().to_string(),
            );
        let message_max_bytes = (raw.limits.max_output_bytes.get() + 64 * 1024).to_string();
        for (key, default) in [
            // Java's partitioner: ledger keys land where any client expects.
            ("partitioner", "murmur2_random"),
            // A batch is produced in one burst and then committed: waiting
            // longer to fill produce requests only delays the commit.
            ("linger.ms", "5"),
            // Room for a record of limits.max_output_bytes plus framing.
            ("message.max.bytes", &message_max_bytes),
        ] {
            if !raw.kafka.properties.contains_key(key) {
                client.set(key, default);
            }
        }
        let producer: BaseProducer<Deliveries> = client
            .create_with_context(Deliveries::default())
            .map_err(|source| StartupError::Client {
                what: "producer",
                source: Box::new(source),
            })?;
        producer
            .init_transactions(raw.kafka.connect_timeout)
            .map_err(|source| StartupError::Client {
                what: "transactional producer (init_transactions)",
                source: Box::new(source),
            })?;
        Ok(Self {
            producer,
            transactional_id,
            max_output_bytes: raw.limits.max_output_bytes.get(),
        })
    }

    pub(crate) fn begin(&self) -> Result<(), TxnError> {
        self.producer
            .begin_transaction()
            .map_err(|e| self.classify("begin transaction", e))
    }

    /// The most bytes (key, value and headers) one record may have.
    pub(crate) fn max_output_bytes(&self) -> usize {
        self.max_output_bytes
    }

    /// Queues one record in the open transaction. Waits while the local
    /// queue is full; every other error is classified. `slot` is the
    /// position in the batch of the record it comes from: a delivery report
    /// that refuses it names that slot (see [`Sink::take_refused`]).
    pub(crate) fn send(
        &self,
        slot: usize,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: OwnedHeaders,
    ) -> Result<(), SendError> {
        let header_bytes: usize = headers
            .iter()
            .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
            .sum();
        let size = key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len) + header_bytes;
        if size > self.max_output_bytes {
            return Err(SendError::TooLarge);
        }
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(topic, slot).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(value) = value {
            record = record.payload(value);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Serving delivery reports makes room in the queue.
                    record = back;
                    self.serve_reports();
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                    return Err(SendError::TooLarge);
                }
                Err((e, _)) => return Err(SendError::Txn(self.classify("produce", e))),
            }
        }
    }

    /// Adds the source offsets to the open transaction: they commit (or
    /// abort) together with the records.
    pub(crate) fn send_offsets(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), TxnError> {
        self.producer
            .send_offsets_to_transaction(offsets, group, TXN_CALL_TIMEOUT)
            .map_err(|e| self.classify("send offsets to transaction", e))
    }

    /// Commits the open transaction.
    ///
    /// The records still in flight are awaited first, serving their
    /// delivery reports as they come (`serve_reports`): the client
    /// library's commit flushes with 100 ms polls that always run to their
    /// end, which would add 100 ms to every commit (measured: ~115 ms per
    /// transaction before, ~10 ms after, on loopback).
    pub(crate) fn commit(&self) -> Result<(), TxnError> {
        self.await_in_flight();
        let mut attempt = 0;
        loop {
            match self.producer.commit_transaction(TXN_CALL_TIMEOUT) {
                Ok(()) => return Ok(()),
                Err(e) if class(&e) == Class::Retry && attempt < COMMIT_RETRIES => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "commit failed, retrying");
                }
                Err(e) => return Err(self.classify("commit transaction", e)),
            }
        }
    }

    /// Aborts the open transaction: nothing it wrote becomes visible.
    pub(crate) fn abort(&self) -> Result<(), TxnError> {
        // The abort waits for the delivery reports of every record sent,
        // and nothing else serves them while it blocks this thread.
        self.await_in_flight();
        self.producer
            .abort_transaction(TXN_CALL_TIMEOUT)
            .map_err(|e| self.classify("abort transaction", e))
    }

    /// The records refused since the last call, in the order their reports
    /// arrived. Complete once nothing is in flight (after an abort, or
    /// [`Sink::await_in_flight`]).
    pub(crate) fn take_refused(&self) -> Vec<Refused> {
        std::mem::take(
            &mut *self
                .producer
                .context()
                .refused
                .lock()
                .expect("deliveries lock"),
        )
    }

    /// Serves delivery reports until no record is in flight (or the call
    /// timeout passes; the commit or abort then reports what is left).
    pub(crate) fn await_in_flight(&self) {
        let deadline = Instant::now() + TXN_CALL_TIMEOUT;
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            self.serve_reports();
        }
    }

    /// Serves the delivery reports that are ready, or waits a moment when
    /// none is.
    ///
    /// The client's timed poll cannot wait without burning a core: it polls
    /// again until its deadline, with the time left rounded down to whole
    /// milliseconds, so its last millisecond (all of a 1 ms poll) is a spin
    /// of non-blocking polls. A zero-timeout poll serves one ready event
    /// and returns; the short sleep is the wait.
    fn serve_reports(&self) {
        let in_flight = self.producer.in_flight_count();
        self.producer.poll(Duration::ZERO);
        if self.producer.in_flight_count() == in_flight {
            std::thread::sleep(REPORT_WAIT);
        }
    }

    /// The failure a `chaos.fail_producer_*` drill reports: the error a
    /// broker that lost track of the producer's sequence numbers causes.
    pub(crate) fn drill_failure(&self, key: &str, sequence: u64) -> TxnError {
        TxnError::Fatal {
            what: "drill",
            transactional_id: self.transactional_id.clone(),
            code: RDKafkaErrorCode::OutOfOrderSequenceNumber,
            reason: format!("chaos.{key} names transaction {sequence}"),
        }
    }

    /// The one place a Kafka error of the producer becomes a [`TxnError`].
    fn classify(&self, what: &'static str, error: KafkaError) -> TxnError {
        let fatal = |code, reason| TxnError::Fatal {
            what,
            transactional_id: self.transactional_id.clone(),
            code,
            reason,
        };
        // A fatal producer error outranks whatever the call reported.
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return fatal(code, reason);
        }
        match (&error, class(&error)) {
            (KafkaError::Transaction(e), Class::Fatal) => fatal(e.code(), e.to_string()),
            // The client library may report a fencing as abortable (on the
            // offsets call, before it raises it as fatal): another
            // instance took over all the same, and an abort would only
            // wait out its timeout.
            (KafkaError::Transaction(e), _) if is_fencing(e.code()) => {
                fatal(e.code(), e.to_string())
            }
            _ => TxnError::Abortable { what, error },
        }
    }
}

/// Whether a fatal error code says another producer took this
/// `transactional.id` over.
fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fenced
            | RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
    )
}

/// What a fatal error code means for the operator.
fn fencing_hint(code: RDKafkaErrorCode) -> &'static str {
    if is_fencing(code) {
        "; another instance initialised the same transactional.id (a restarted or \
         duplicated instance with this kafka.instance_id): this one must stop"
    } else {
        ""
    }
}

/// Builds Kafka headers from name/value pairs (a value may be null).
pub(crate) fn owned_headers<'a>(
    pairs: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> OwnedHeaders {
    pairs
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header { key, value })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_about_the_record_itself_make_it_refused() {
        let produce = |code| KafkaError::MessageProduction(code);
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::InvalidMessage,
            RDKafkaErrorCode::InvalidTimestamp,
            RDKafkaErrorCode::PolicyViolation,
        ] {
            assert!(refuses_the_record(&produce(code)), "{code:?}");
        }
        // The cluster's state, not the record: retried with back-off.
        for code in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::PurgeQueue,
            RDKafkaErrorCode::ProducerFenced,
        ] {
            assert!(!refuses_the_record(&produce(code)), "{code:?}");
        }
    }
}
