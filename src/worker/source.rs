//! Source: the consumer of the legacy topic. Polls batches, rewinds after an
//! abort, and keeps revoked partitions' records out of the open batch.
//!
//! Offsets are never committed by the consumer itself: auto-commit and the
//! offset store are off, and offsets travel inside the sink's transaction.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::config::Config;
use crate::pipeline::record::{LegacyRecord, Position};
use crate::worker::kafka::{StartupError, client_config};

/// How long one poll may block while no batch is open, so shutdown and
/// idle checks stay responsive.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How often librdkafka reports statistics, consumer lag among them.
const LAG_STATISTICS_MS: &str = "5000";

/// Tracks the group's rebalances for the worker loop.
#[derive(Debug, Default)]
pub(crate) struct SourceContext {
    /// Partitions revoked since the batch being polled last looked.
    revoked: Mutex<Vec<i32>>,
    /// Assignment changes since the worker last looked, in order.
    /// Set by each rebalance, cleared by the worker.
    changes: Mutex<Vec<Change>>,
    /// Records behind, per partition, from the latest statistics.
    lag: Mutex<BTreeMap<i32, i64>>,
}

/// A change of this instance's share of the legacy topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
}

impl ClientContext for SourceContext {
    /// librdkafka's statistics carry each partition's last stable offset
    /// and the application's position, from the fetches it makes anyway: no
    /// extra requests. (Its own `consumer_lag` is measured from offsets the
    /// consumer committed itself, which recast never does: the producer
    /// commits them in its transactions.)
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut lag = self.lag.lock().expect("lag lock");
        lag.clear();
        for topic in statistics.topics.values() {
            for (partition, stats) in &topic.partitions {
                if *partition >= 0 && stats.ls_offset >= 0 && stats.app_offset >= 0 {
                    lag.insert(*partition, (stats.ls_offset - stats.app_offset).max(0));
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // The worker never polls with a transaction open (see worker/mod.rs), so
        // the transaction is already finished when a revocation arrives: all
        // that is left to do is forget the revoked partitions' buffered
        // records, which their next owner reads again from the committed
        // offset.
        let change = match rebalance {
            Rebalance::Revoke(tpl) => {
                let partitions = partitions(tpl);
                tracing::info!(?partitions, "partitions revoked");
                self.revoked
                    .lock()
                    .expect("revoked list lock")
                    .extend(&partitions);
                Change::Revoked(partitions)
            }
            Rebalance::Assign(tpl) => {
                let partitions = partitions(tpl);
                tracing::info!(?partitions, "partitions assigned");
                Change::Assigned(partitions)
            }
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance error");
                return;
            }
        };
        self.changes.lock().expect("changes lock").push(change);
    }
}

/// The consumer cannot go on (for example, fenced as a static member by
/// another instance with the same id).
#[derive(Debug, thiserror::Error)]
#[error("consumer fatal error ({code}): {reason}")]
pub struct ConsumerFatal {
    pub code: RDKafkaErrorCode,
    pub reason: String,
}

/// A batch of legacy records, in poll order (offset order per partition).
pub(crate) type Batch<'c> = Vec<BorrowedMessage<'c>>;

/// What a loop consumes, and as which group.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub topic: String,
    pub group: String,
}

/// The consumer of the loop's input: the legacy topic for `recast run`,
/// the dead-letter topic for `recast redrive`.
pub(crate) struct Source {
    consumer: BaseConsumer<SourceContext>,
    topic: String,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Creates the consumer and joins the group.
    pub(crate) fn connect(
        config: &Config,
        subscription: &Subscription,
    ) -> Result<Self, StartupError> {
        let raw = &config.raw;
        let mut client = client_config(config);
        client
            .set("group.id", &subscription.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("group.protocol", "classic")
            .set("statistics.interval.ms", LAG_STATISTICS_MS);
        if raw.kafka.static_membership {
            client.set("group.instance.id", &config.instance_id);
        }
        if !raw.kafka.properties.contains_key("auto.offset.reset") {
            // A new group starts at the beginning of its topic: the ledger
            // should hold the legacy history, not only what comes next (and
            // a re-drive every dead letter).
            client.set("auto.offset.reset", "earliest");
        }
        let consumer: BaseConsumer<SourceContext> = client
            .create_with_context(SourceContext::default())
            .map_err(|source| StartupError::Client {
                what: "consumer",
                source: Box::new(source),
            })?;
        consumer
            .subscribe(&[&subscription.topic])
            .map_err(|source| StartupError::Client {
                what: "subscription",
                source: Box::new(source),
            })?;
        Ok(Self {
            consumer,
            topic: subscription.topic.clone(),
        })
    }

    pub(crate) fn consumer(&self) -> &BaseConsumer<SourceContext> {
        &self.consumer
    }

    /// Polls up to `max_records`, waiting at most `linger` after the first
    /// record. Returns an empty batch when nothing arrived within one idle
    /// poll or when `stop` was raised before the first record.
    pub(crate) fn poll_batch(
        &self,
        max_records: usize,
        linger: Duration,
        stop: &AtomicBool,
    ) -> Result<Batch<'_>, ConsumerFatal> {
        let mut batch: Batch<'_> = Vec::new();
        let mut deadline: Option<Instant> = None;
        while batch.len() < max_records {
            let timeout = match deadline {
                None if stop.load(Ordering::Relaxed) => break,
                None => IDLE_POLL,
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => break,
                },
            };
            let polled = self.consumer.poll(timeout);
            let idle = polled.is_none() && deadline.is_none();
            match polled {
                Some(Ok(message)) => {
                    deadline.get_or_insert_with(|| Instant::now() + linger);
                    batch.push(message);
                }
                Some(Err(e)) => {
                    if let Some((code, reason)) = self.consumer.client().fatal_error() {
                        return Err(ConsumerFatal { code, reason });
                    }
                    // Transport errors and the like: librdkafka retries them.
                    tracing::warn!(error = %e, "consumer error");
                }
                None => {}
            }
            // After every poll, and after the push: revocations served by
            // this poll apply to the records polled before them, the one it
            // returned included, and never linger into a later batch (where
            // a partition assigned again would lose records to them).
            self.drop_revoked(&mut batch);
            if idle {
                break;
            }
        }
        Ok(batch)
    }

    /// Removes the records of partitions revoked since the last poll.
    fn drop_revoked(&self, batch: &mut Batch<'_>) {
        let revoked: Vec<i32> = std::mem::take(
            &mut *self
                .consumer
                .context()
                .revoked
                .lock()
                .expect("revoked lock"),
        );
        if !revoked.is_empty() {
            batch.retain(|m| !revoked.contains(&m.partition()));
        }
    }

    /// The partitions of the legacy topic this instance holds.
    pub(crate) fn assigned_partitions(&self) -> Vec<i32> {
        self.consumer
            .assignment()
            .map(|tpl| partitions(&tpl))
            .unwrap_or_default()
    }

    /// Whether the cluster answers a request now: an empty poll alone does
    /// not tell a quiet topic from a broker that stopped answering.
    pub(crate) fn cluster_answers(&self, timeout: Duration) -> bool {
        self.consumer
            .fetch_metadata(Some(&self.topic), timeout)
            .is_ok()
    }

    /// How many partitions of the legacy topic this instance holds.
    pub(crate) fn assignment_count(&self) -> usize {
        self.consumer.assignment().map_or(0, |tpl| tpl.count())
    }

    /// Each partition's lag behind its last stable offset, as of the latest
    /// statistics, for the partitions this instance holds.
    pub(crate) fn lag(&self) -> BTreeMap<i32, i64> {
        let assigned = self.assigned_partitions();
        let lag = self.consumer.context().lag.lock().expect("lag lock");
        lag.iter()
            .filter(|(p, _)| assigned.contains(p))
            .map(|(p, l)| (*p, *l))
            .collect()
    }

    /// The assignment changes since the last call, in order.
    pub(crate) fn take_changes(&self) -> Vec<Change> {
        std::mem::take(
            &mut *self
                .consumer
                .context()
                .changes
                .lock()
                .expect("changes lock"),
        )
    }

    /// The offsets to commit for a batch: per partition, one past its last
    /// record.
    pub(crate) fn next_offsets(&self, batch: &Batch<'_>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in next_offsets(batch) {
            tpl.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                .expect("a concrete offset is always valid");
        }
        tpl
    }

    /// Moves every partition of an aborted batch back to the batch's first
    /// record. That is the committed offset: the batch was polled from the
    /// committed position, since every earlier batch was either committed
    /// or rewound in the same way.
    pub(crate) fn rewind(&self, first_offsets: &BTreeMap<i32, i64>) -> Result<(), KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for (partition, offset) in first_offsets {
            tpl.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))
                .expect("a concrete offset is always valid");
        }
        let result = self
            .consumer
            .seek_partitions(tpl, Duration::from_secs(10))?;
        for element in result.elements() {
            if let Err(e) = element.error() {
                tracing::warn!(partition = element.partition(), error = %e, "rewind failed");
                return Err(e);
            }
        }
        Ok(())
    }

    /// Moves every assigned partition back to its committed offset: after
    /// a transaction whose outcome is unknown, that offset is the only
    /// position known to follow the ledger. A partition with no committed
    /// offset has read nothing outside the failed batch (every earlier
    /// batch of it committed an offset), so it goes back to the batch's
    /// first record, in `batch_first`.
    /// Returns the offsets it moved to.
    pub(crate) fn rewind_to_committed(
        &self,
        batch_first: &BTreeMap<i32, i64>,
        timeout: Duration,
    ) -> Result<BTreeMap<i32, i64>, KafkaError> {
        let committed = self
            .consumer
            .committed_offsets(self.consumer.assignment()?, timeout)?;
        let mut offsets = BTreeMap::new();
        for element in committed.elements() {
            let partition = element.partition();
            match element.offset() {
                Offset::Offset(offset) => {
                    offsets.insert(partition, offset);
                }
                _ => {
                    if let Some(first) = batch_first.get(&partition) {
                        offsets.insert(partition, *first);
                    }
                }
            }
        }
        self.rewind(&offsets)?;
        Ok(offsets)
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements()
        .iter()
        .map(rdkafka::topic_partition_list::TopicPartitionListElem::partition)
        .collect()
}

/// A consumed Kafka record as the pure stages see it.
pub(crate) fn legacy_record<'m>(message: &'m BorrowedMessage<'_>) -> LegacyRecord<'m> {
    LegacyRecord {
        position: Position {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
        },
        timestamp_ms: message.timestamp().to_millis(),
        key: message.key(),
        value: message.payload(),
        headers: message
            .headers()
            .map(|headers| headers.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default(),
    }
}

/// Each partition's next offset after a batch: one past its last record.
pub(crate) fn next_offsets(batch: &Batch<'_>) -> BTreeMap<i32, i64> {
    let mut next = BTreeMap::new();
    for message in batch {
        next.insert(message.partition(), message.offset() + 1);
    }
    next
}

/// Each partition's first offset in a batch: where to rewind to.
pub(crate) fn first_offsets(batch: &Batch<'_>) -> BTreeMap<i32, i64> {
    let mut first = BTreeMap::new();
    for message in batch {
        first.entry(message.partition()).or_insert(message.offset());
    }
    first
}
