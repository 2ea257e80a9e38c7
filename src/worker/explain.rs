//! `recast explain --topic legacy|dead-letter --partition P --offset O`:
//! the decision trace of one committed record on the broker, decided as
//! the worker or a re-drive decides it.
//!
//! - A legacy record is decided with its partition's dedupe window rebuilt
//!   from the `capacity` offsets before it, by the restore's own read-back
//!   (`restore.rs`), so its dedupe verdict is the one the worker gave.
//! - A dead letter is decided as a re-drive would decide it now: under the
//!   configured mapping, against the index of what the ledger holds
//!   (`redrive/`), passed over when a re-drive would pass it over.
//!
//! Events are encoded as the worker encodes them: Avro with the registered
//! schema ids when the ledger is Avro and every schema is registered (looked
//! up, never registered), so size verdicts agree; JSON checked against the
//! schemas otherwise. Nothing is written to the broker or the registry.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Map, Value};

use crate::config::{Config, LedgerOutput};
use crate::pipeline::dedupe::{DedupeWindow, Memory};
use crate::pipeline::trace::Trace;
use crate::pipeline::{Encoding, Pipeline};
use crate::registry::{Registry, RegistryError};
use crate::worker::kafka::{EndAware, EndAwareConsumer, check_cluster, client_config};
use crate::worker::redrive::{IndexError, Redrive, RedriveOptions};
use crate::worker::restore::{RestoreError, Restored, read_back};
use crate::worker::source::legacy_record;
use crate::worker::{StartupError, now_ms};

/// Which topic the record is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTopic {
    Legacy,
    /// The dead-letter topic; `lookback` is how far back the ledger is
    /// read to learn what it holds, as `recast redrive --lookback`.
    DeadLetter {
        lookback: Duration,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("reading {topic}: {error}")]
    Read { topic: String, error: KafkaError },
    #[error("no committed record at {topic}/{partition}@{offset}{}", next.map(|n| format!(" (the next is at {n}: that offset holds a transaction marker or an aborted record)")).unwrap_or_default())]
    NoRecord {
        topic: String,
        partition: i32,
        offset: i64,
        next: Option<i64>,
    },
    #[error("rebuilding the dedupe window")]
    Restore(#[from] RestoreError),
    #[error("indexing what the ledger holds")]
    Index(#[from] IndexError),
    #[error("the schema registry")]
    Registry(#[from] RegistryError),
}

/// The trace of the committed record at `partition`/`offset` of the topic.
pub fn explain_on_broker(
    config: &Config,
    on: OnTopic,
    partition: i32,
    offset: i64,
) -> Result<Map<String, Value>, ExplainError> {
    check_cluster(config)?;
    let registry = config.registry();
    let pipeline = pipeline(config, registry.as_ref())?;
    let mut trace = Trace::on();
    match on {
        OnTopic::Legacy => {
            let mut window =
                window_before(config, registry.as_ref(), &pipeline, partition, offset)?;
            let consumer = reader(config, &format!("{}-explain", config.raw.kafka.group_id))?;
            let topic = &config.raw.topics.legacy;
            read_at(&consumer, config, topic, partition, offset, |message| {
                fetch_writer_schema(registry.as_ref(), &pipeline, message)?;
                let record = legacy_record(message);
                pipeline.run_traced(
                    &record,
                    window.as_mut().map(|w| w as &mut dyn Memory),
                    now_ms(),
                    &mut trace,
                );
                Ok(trace.into_json(&record, pipeline.mapping_version()))
            })
        }
        OnTopic::DeadLetter { lookback } => {
            let options = RedriveOptions {
                group: RedriveOptions::default_group(config),
                filters: crate::worker::redrive::Filters::default(),
                lookback,
                stop_when_idle: None,
            };
            // The re-drive group's committed offsets settle its own events.
            let consumer = reader(config, &options.group)?;
            let mut redrive = Redrive::new(config, &options)?;
            redrive.catch_up(&consumer, config.raw.kafka.connect_timeout)?;
            let topic = &config.raw.topics.dead_letter;
            read_at(&consumer, config, topic, partition, offset, |message| {
                fetch_writer_schema(registry.as_ref(), &pipeline, message)?;
                let read = legacy_record(message);
                redrive.decide(&pipeline, &read, now_ms(), &mut trace);
                Ok(trace.into_json(&read, pipeline.mapping_version()))
            })
        }
    }
}

/// The record path as the worker configures it, without registering.
fn pipeline(config: &Config, registry: Option<&Registry>) -> Result<Pipeline, ExplainError> {
    let encoding = match (&config.ledger, registry) {
        (LedgerOutput::Avro { schemas, .. }, Some(registry)) => {
            if let Some(ids) = registry.lookup_all(schemas, &config.raw.topics.ledger)? {
                Encoding::Avro(schemas.clone(), ids)
            } else {
                tracing::warn!(
                    "not every event schema is registered yet: events are checked as JSON, \
                     so sizes are not the Avro ones"
                );
                Encoding::Json(Some(schemas.clone()))
            }
        }
        (LedgerOutput::Avro { schemas, .. }, None) => Encoding::Json(Some(schemas.clone())),
        (LedgerOutput::Json { schemas }, _) => Encoding::Json(schemas.clone()),
    };
    Ok(config.pipeline(encoding))
}

/// The dedupe window the worker had when it reached `offset`: the records
/// of the `capacity` offsets before it, run again.
fn window_before(
    config: &Config,
    registry: Option<&Registry>,
    pipeline: &Pipeline,
    partition: i32,
    offset: i64,
) -> Result<Option<DedupeWindow>, ExplainError> {
    let Some(dedupe) = &config.raw.dedupe else {
        return Ok(None);
    };
    let mut window = DedupeWindow::new(dedupe.capacity.get(), dedupe.ttl);
    if offset > 0 {
        let capacity = i64::try_from(dedupe.capacity.get()).unwrap_or(i64::MAX);
        let mut range = [Restored {
            partition,
            from: offset.saturating_sub(capacity).max(0),
            until: offset,
            records: 0,
        }];
        read_back(config, registry, pipeline, &mut window, &mut range)?;
    }
    Ok(Some(window))
}

fn fetch_writer_schema(
    registry: Option<&Registry>,
    pipeline: &Pipeline,
    message: &BorrowedMessage<'_>,
) -> Result<(), ExplainError> {
    if let (Some(registry), Some(schemas)) = (registry, pipeline.writer_schemas()) {
        registry.fetch_writer_schemas(schemas, [message.payload()])?;
    }
    Ok(())
}

/// A `read_committed` consumer that never joins `group` nor commits to it.
fn reader(config: &Config, group: &str) -> Result<EndAwareConsumer, ExplainError> {
    client_config(config)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create_with_context(EndAware)
        .map_err(|error| {
            ExplainError::Startup(StartupError::Client {
                what: "explain reader",
                source: Box::new(error),
            })
        })
}

/// Runs `explain` on the committed record at `partition`/`offset`.
fn read_at<T>(
    consumer: &BaseConsumer<impl ConsumerContext>,
    config: &Config,
    topic: &str,
    partition: i32,
    offset: i64,
    explain: impl FnOnce(&BorrowedMessage<'_>) -> Result<T, ExplainError>,
) -> Result<T, ExplainError> {
    let read_error = |error| ExplainError::Read {
        topic: topic.to_owned(),
        error,
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .map_err(read_error)?;
    consumer.assign(&tpl).map_err(read_error)?;
    let no_record = |next| ExplainError::NoRecord {
        topic: topic.to_owned(),
        partition,
        offset,
        next,
    };
    let timeout = config.raw.kafka.connect_timeout;
    let started = Instant::now();
    while started.elapsed() < timeout {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) if message.offset() == offset => return explain(&message),
            Some(Ok(message)) if message.offset() > offset => {
                return Err(no_record(Some(message.offset())));
            }
            Some(Ok(_)) | None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => return Err(no_record(None)),
            Some(Err(error)) => return Err(read_error(error)),
        }
    }
    Err(no_record(None))
}
