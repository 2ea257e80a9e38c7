//! `recast redrive --dry-run`: every dead letter the re-drive group has
//! not committed yet, decided exactly as a re-drive decides it (the same
//! `Redrive::decide`, the same index of the ledger), and nothing written:
//! no event, no dead letter, no offset, no schema.
//!
//! Events are checked against the ledger's schemas as `recast replay`
//! checks them, without registering anything.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::{Redrive, RedriveOptions, Redriven};
use crate::config::Config;
use crate::pipeline::trace::Trace;
use crate::pipeline::{Counts, RecordOutcome, Stage};
use crate::worker::kafka::{
    EndAware, EndAwareConsumer, StartupError, check_cluster, client_config,
};
use crate::worker::source::legacy_record;
use crate::worker::{WorkerError, now_ms};

/// What a re-drive would do now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DryRun {
    /// The dead letters by outcome, as the re-drive would count them.
    pub counts: Counts,
    /// The dead letters that would be rejected again, per stage and reason.
    pub reasons: BTreeMap<(Stage, String), u64>,
}

/// Decides every dead letter past the re-drive group's committed offsets
/// (the whole topic for a new group), up to the end of the topic as of the
/// start.
pub fn dry_run(config: &Config, options: &RedriveOptions) -> Result<DryRun, WorkerError> {
    check_cluster(config)?;
    let timeout = config.raw.kafka.connect_timeout;
    let read_error = |source: KafkaError| {
        WorkerError::Startup(StartupError::Client {
            what: "dead-letter reader",
            source: Box::new(source),
        })
    };
    let consumer: EndAwareConsumer = client_config(config)
        // The re-drive's group, for its committed offsets: never joined,
        // never committed to.
        .set("group.id", &options.group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create_with_context(EndAware)
        .map_err(read_error)?;
    let mut ends = assign_uncommitted(&consumer, config, timeout).map_err(read_error)?;
    let pipeline = config.offline_pipeline();
    let registry = config.registry();
    let mut redrive = Redrive::new(config, options)?;
    redrive.catch_up(&consumer, timeout)?;
    let mut summary = DryRun::default();
    let recorded_at_ms = now_ms();
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        let message = match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => message,
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                ends.remove(&partition);
                continue;
            }
            Some(Err(e)) => return Err(read_error(e)),
            None if last_progress.elapsed() > timeout => {
                return Err(WorkerError::Stalled {
                    partition: ends.keys().next().copied().unwrap_or_default(),
                    timeout,
                });
            }
            None => continue,
        };
        last_progress = Instant::now();
        let read = legacy_record(&message);
        if ends.get(&read.position.partition) <= Some(&read.position.offset) {
            ends.remove(&read.position.partition);
            continue;
        }
        if let (Some(registry), Some(schemas)) = (&registry, pipeline.writer_schemas()) {
            // A writer schema that cannot be fetched rejects at decode,
            // as the re-drive would not: stop rather than mislead.
            registry
                .fetch_writer_schemas(schemas, [read.value])
                .map_err(|e| WorkerError::Startup(StartupError::Registry(e)))?;
        }
        match redrive.decide(&pipeline, &read, recorded_at_ms, &mut Trace::off()) {
            Redriven::Skipped(why) => summary.counts.skip(why),
            Redriven::Ran { outcome, .. } => {
                if let RecordOutcome::Rejected(rejection) = &outcome {
                    *summary
                        .reasons
                        .entry((rejection.stage, rejection.reason.clone()))
                        .or_default() += 1;
                }
                summary.counts.count(&outcome);
            }
        }
        // One transaction per dead letter: the decisions are the same
        // whatever the batches, since the open one counts too.
        redrive.index.commit();
    }
    Ok(summary)
}

/// Assigns every dead-letter partition from the group's committed offset
/// (the log start without one); returns each partition's end as of now,
/// leaving out those with nothing to read.
fn assign_uncommitted(
    consumer: &EndAwareConsumer,
    config: &Config,
    timeout: Duration,
) -> Result<HashMap<i32, i64>, KafkaError> {
    let topic = &config.raw.topics.dead_letter;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for partition in t.partitions() {
            tpl.add_partition(topic, partition.id());
        }
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    let mut ends = HashMap::new();
    let mut from = TopicPartitionList::new();
    for element in committed.elements() {
        let partition = element.partition();
        let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
        let start = match element.offset() {
            Offset::Offset(offset) => offset.max(low),
            _ => low,
        };
        if start < high {
            ends.insert(partition, high);
            from.add_partition_offset(topic, partition, Offset::Offset(start))?;
        }
    }
    consumer.assign(&from)?;
    Ok(ends)
}

impl std::fmt::Display for DryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "dry run, nothing written: {}", self.counts)?;
        if !self.counts.events.is_empty() {
            writeln!(f, "would write, by event type:")?;
            for (event_type, count) in &self.counts.events {
                writeln!(f, "  {count:>8}  {event_type}")?;
            }
        }
        if self.counts.duplicates > 0 {
            writeln!(
                f,
                "  {:>8}  duplicates (their request is in the ledger)",
                self.counts.duplicates
            )?;
        }
        if !self.reasons.is_empty() {
            writeln!(f, "would reject again, by reason:")?;
            for ((stage, reason), count) in &self.reasons {
                writeln!(f, "  {count:>8}  {}: {reason}", stage.as_str())?;
            }
        }
        if !self.counts.skipped.is_empty() {
            writeln!(f, "would pass over:")?;
            for (why, count) in &self.counts.skipped {
                writeln!(f, "  {count:>8}  {why}")?;
            }
        }
        Ok(())
    }
}
