//! Re-drive's view of the ledger: each catch-up reads, `read_committed`,
//! what the ledger gained since the last one (from `--lookback` ago the
//! first time) and feeds the events' headers into the `LedgerIndex`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::Redrive;
use crate::config::Config;
use crate::pipeline::event_headers::{self, EventOrigin};
use crate::worker::kafka::{EndAware, EndAwareConsumer, client_config};

/// Why the ledger could not be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    // The Kafka error is shown, not chained: its message carries its cause.
    #[error("reading the ledger: {0}")]
    Read(KafkaError),
    #[error(
        "ledger partition {partition}: no end reached within {timeout:?} (a transaction open \
         that long holds committed readers back)"
    )]
    Stalled { partition: i32, timeout: Duration },
}

impl Redrive {
    /// Reads what the ledger gained since the last call into the index.
    /// `group` is a consumer with the re-drive's group id: its committed
    /// offsets say which re-driven events are settled.
    pub(crate) fn catch_up(
        &mut self,
        group: &BaseConsumer<impl ConsumerContext>,
        timeout: Duration,
    ) -> Result<(), IndexError> {
        let started = Instant::now();
        let committed = self.committed(group, timeout)?;
        let mut events = self.follower.catch_up(&self.legacy_topic, timeout)?;
        let before = self.index.len();
        // Events left unsettled last time are judged again with the new
        // offsets.
        events.append(&mut self.follower.unsettled);
        for origin in events {
            match origin.redriven_from {
                Some((partition, offset))
                    if committed.get(&partition).is_none_or(|next| offset >= *next) =>
                {
                    self.follower.unsettled.push(origin);
                }
                _ => self
                    .index
                    .insert(origin.partition, origin.offset, origin.dedupe_key),
            }
        }
        tracing::info!(
            source_offsets = self.index.len(),
            added = self.index.len() - before,
            unsettled = self.follower.unsettled.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ledger indexed"
        );
        Ok(())
    }

    /// The re-drive group's committed offset of every dead-letter
    /// partition that has one.
    fn committed(
        &self,
        group: &BaseConsumer<impl ConsumerContext>,
        timeout: Duration,
    ) -> Result<HashMap<i32, i64>, IndexError> {
        let metadata = group
            .fetch_metadata(Some(&self.dead_letter_topic), timeout)
            .map_err(IndexError::Read)?;
        let mut tpl = TopicPartitionList::new();
        for topic in metadata.topics() {
            for partition in topic.partitions() {
                tpl.add_partition(&self.dead_letter_topic, partition.id());
            }
        }
        let committed = group
            .committed_offsets(tpl, timeout)
            .map_err(IndexError::Read)?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(offset) => Some((e.partition(), offset)),
                _ => None,
            })
            .collect())
    }
}

/// A ledger event as the index needs it, owned.
#[derive(Debug, Clone, Copy)]
struct Indexed {
    partition: i32,
    offset: i64,
    dedupe_key: Option<u128>,
    redriven_from: Option<(i32, i64)>,
}

/// Where re-drive has read the ledger up to, per partition: each
/// catch-up reads on from there to the end.
///
/// Every catch-up has a consumer of its own. One kept assigned between
/// catch-ups would have gone on fetching in the background, and its queue
/// would hold an end-of-partition event from back then, ahead of the
/// records written since: the catch-up would stop at that stale end.
pub(super) struct LedgerFollower {
    client: ClientConfig,
    topic: String,
    /// The next offset to read, per partition.
    next: BTreeMap<i32, i64>,
    /// Re-driven events whose dead letter the group had not committed yet.
    unsettled: Vec<Indexed>,
}

impl LedgerFollower {
    /// Starts at the first event of every partition written at most
    /// `lookback` ago.
    pub(super) fn start(
        config: &Config,
        group: &str,
        lookback: Duration,
    ) -> Result<Self, IndexError> {
        let topic = config.raw.topics.ledger.clone();
        let timeout = config.raw.kafka.connect_timeout;
        let mut client = client_config(config);
        client
            // librdkafka wants a group for `assign`; this one never joins
            // and never commits.
            .set("group.id", format!("{group}-ledger-index"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest");
        let consumer: EndAwareConsumer = client
            .create_with_context(EndAware)
            .map_err(IndexError::Read)?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), timeout)
            .map_err(IndexError::Read)?;
        let since_ms = SystemTime::now()
            .checked_sub(lookback)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
        let mut times = TopicPartitionList::new();
        for partition in metadata
            .topics()
            .iter()
            .flat_map(rdkafka::metadata::MetadataTopic::partitions)
        {
            times
                .add_partition_offset(&topic, partition.id(), Offset::Offset(since_ms))
                .map_err(IndexError::Read)?;
        }
        let found = consumer
            .offsets_for_times(times, timeout)
            .map_err(IndexError::Read)?;
        let mut next = BTreeMap::new();
        for element in found.elements() {
            let partition = element.partition();
            let offset = match element.offset() {
                Offset::Offset(offset) => offset,
                // Nothing that recent: from the end as it is now.
                _ => {
                    consumer
                        .fetch_watermarks(&topic, partition, timeout)
                        .map_err(IndexError::Read)?
                        .1
                }
            };
            next.insert(partition, offset);
        }
        Ok(Self {
            client,
            topic,
            next,
            unsettled: Vec::new(),
        })
    }

    /// Reads every partition from where the last catch-up stopped to its
    /// end as of now; returns the events of `legacy_topic` it read.
    fn catch_up(
        &mut self,
        legacy_topic: &str,
        timeout: Duration,
    ) -> Result<Vec<Indexed>, IndexError> {
        let consumer: EndAwareConsumer = self
            .client
            .create_with_context(EndAware)
            .map_err(IndexError::Read)?;
        let mut from = TopicPartitionList::new();
        for (partition, offset) in &self.next {
            from.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset))
                .map_err(IndexError::Read)?;
        }
        consumer.assign(&from).map_err(IndexError::Read)?;
        let mut pending: Vec<i32> = self.next.keys().copied().collect();
        let mut read = Vec::new();
        let mut last_progress = Instant::now();
        while !pending.is_empty() {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    last_progress = Instant::now();
                    self.next.insert(message.partition(), message.offset() + 1);
                    if let Some(origin) = indexed(&message, legacy_topic) {
                        read.push(origin);
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    pending.retain(|p| *p != partition);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "while indexing the ledger"),
                None => {}
            }
            if last_progress.elapsed() > timeout {
                return Err(IndexError::Stalled {
                    partition: pending[0],
                    timeout,
                });
            }
        }
        Ok(read)
    }
}

/// The index entry of a ledger record, when it is an event of
/// `legacy_topic` with recast's headers.
fn indexed(message: &BorrowedMessage<'_>, legacy_topic: &str) -> Option<Indexed> {
    let headers: Vec<(&str, Option<&[u8]>)> = message
        .headers()
        .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
        .unwrap_or_default();
    let EventOrigin {
        source,
        dedupe_key,
        redriven_from,
    } = event_headers::origin(&headers)?;
    (source.topic == legacy_topic).then_some(Indexed {
        partition: source.partition,
        offset: source.offset,
        dedupe_key,
        redriven_from,
    })
}

#[cfg(test)]
impl LedgerFollower {
    /// A follower that has read nothing and will read nothing: for tests
    /// of the decisions alone.
    pub(super) fn unstarted() -> Self {
        Self {
            client: ClientConfig::new(),
            topic: String::new(),
            next: BTreeMap::new(),
            unsettled: Vec::new(),
        }
    }
}
