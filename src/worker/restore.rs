//! Rebuilding dedupe windows from the legacy log (the I/O shell of
//! `pipeline/dedupe/`): when partitions are assigned, re-read each one's last
//! `capacity` records before its committed offset and run them through
//! `Pipeline::run` exactly as the worker did, keeping the window and
//! discarding the outcomes. Nothing is produced.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::pipeline::dedupe::DedupeWindow;
use crate::registry::Registry;
use crate::worker::kafka::{EndAware, EndAwareConsumer, client_config};
use crate::worker::now_ms;
use crate::worker::source::legacy_record;

/// Records run between two window commits: bounds the keys staged at once.
const COMMIT_EVERY: u32 = 4096;

/// Why a window could not be rebuilt. The worker stops on it: going on
/// with an incomplete window would let retries through.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    // The Kafka error is shown, not chained: its own message already
    // carries its cause.
    #[error("reading the committed offsets of partitions {partitions:?}: {error}")]
    Committed {
        partitions: Vec<i32>,
        error: KafkaError,
    },
    #[error("re-reading the legacy topic: {0}")]
    Read(KafkaError),
    #[error("fetching writer schemas for the legacy topic: {0}")]
    Registry(crate::registry::RegistryError),
    #[error("partition {partition}: no record at or past offset {until} within {timeout:?}")]
    Stalled {
        partition: i32,
        until: i64,
        timeout: Duration,
    },
}

/// One partition's rebuild.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub partition: i32,
    pub from: i64,
    pub until: i64,
    /// Records run again.
    pub records: u64,
}

/// Rebuilds the windows of `partitions`, whose group consumer is `group`.
pub fn restore(
    config: &Config,
    group: &BaseConsumer<impl rdkafka::consumer::ConsumerContext>,
    registry: Option<&Registry>,
    pipeline: &Pipeline,
    window: &mut DedupeWindow,
    partitions: &[i32],
) -> Result<Vec<Restored>, RestoreError> {
    let topic = &config.raw.topics.legacy;
    let timeout = config.raw.kafka.connect_timeout;
    let mut tpl = TopicPartitionList::new();
    for partition in partitions {
        tpl.add_partition(topic, *partition);
    }
    let committed =
        group
            .committed_offsets(tpl, timeout)
            .map_err(|error| RestoreError::Committed {
                partitions: partitions.to_vec(),
                error,
            })?;
    let capacity = i64::try_from(window.capacity()).unwrap_or(i64::MAX);
    let mut pending: Vec<Restored> = Vec::new();
    for &partition in partitions {
        window.drop_partition(partition);
        let until = match committed
            .find_partition(topic, partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(offset)) => offset,
            // Nothing committed yet: processing starts with an empty window.
            _ => 0,
        };
        if until > 0 {
            pending.push(Restored {
                partition,
                from: until.saturating_sub(capacity).max(0),
                until,
                records: 0,
            });
        }
    }
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    read_back(config, registry, pipeline, window, &mut pending)?;
    for r in &pending {
        tracing::info!(
            partition = r.partition,
            from = r.from,
            until = r.until,
            records = r.records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "dedupe window restored"
        );
    }
    Ok(pending)
}

/// Reads `[from, until)` of every pending partition and runs its records for
/// the window (also `recast explain`'s window before a record).
pub(crate) fn read_back(
    config: &Config,
    registry: Option<&Registry>,
    pipeline: &Pipeline,
    window: &mut DedupeWindow,
    pending: &mut [Restored],
) -> Result<(), RestoreError> {
    let topic = &config.raw.topics.legacy;
    let consumer: EndAwareConsumer = client_config(config)
        // librdkafka wants a group for `assign`; this one never joins (no
        // subscription) and never commits.
        .set("group.id", format!("{}-restore", config.raw.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // A `from` below the log start (retention) starts at the log start.
        .set("auto.offset.reset", "earliest")
        .create_with_context(EndAware)
        .map_err(RestoreError::Read)?;
    let mut tpl = TopicPartitionList::new();
    for r in pending.iter() {
        tpl.add_partition_offset(topic, r.partition, Offset::Offset(r.from))
            .map_err(RestoreError::Read)?;
    }
    consumer.assign(&tpl).map_err(RestoreError::Read)?;

    let stall_timeout = config.raw.kafka.connect_timeout;
    let mut done = vec![false; pending.len()];
    let mut last_progress = Instant::now();
    let mut since_commit = 0;
    while done.iter().any(|d| !d) {
        let index_of = |partition: i32| pending.iter().position(|r| r.partition == partition);
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                last_progress = Instant::now();
                let Some(i) = index_of(message.partition()) else {
                    continue;
                };
                let r = &mut pending[i];
                if message.offset() < r.until && !done[i] {
                    if let (Some(registry), Some(schemas)) = (registry, pipeline.writer_schemas()) {
                        registry
                            .fetch_writer_schemas(schemas, [message.payload()])
                            .map_err(RestoreError::Registry)?;
                    }
                    // The outcome was decided (and committed) when the
                    // worker ran this record; only the window is wanted.
                    // `recorded_at` as the worker passes it: it is part of
                    // each event's encoded size, which the size limit
                    // checks (any current epoch-millisecond time encodes
                    // to the same number of bytes).
                    let _ = pipeline.run(&legacy_record(&message), Some(window), now_ms());
                    r.records += 1;
                    since_commit += 1;
                    if since_commit == COMMIT_EVERY {
                        window.commit();
                        since_commit = 0;
                    }
                }
                // Offsets are not dense (transaction markers take some), so
                // reaching `until - 1` or passing it both end the range.
                if message.offset() >= r.until - 1 {
                    done[i] = true;
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                if let Some(i) = index_of(partition) {
                    done[i] = true;
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "while restoring the dedupe window"),
            None => {}
        }
        if last_progress.elapsed() > stall_timeout {
            let i = done.iter().position(|d| !d).unwrap_or(0);
            return Err(RestoreError::Stalled {
                partition: pending[i].partition,
                until: pending[i].until,
                timeout: stall_timeout,
            });
        }
    }
    window.commit();
    Ok(())
}
