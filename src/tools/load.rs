//! Writes legacy records into the legacy topic: how the quickstart and the
//! tests put traffic on it. Not part of the worker's data path.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};

use crate::tools::legacy_file::LegacyLine;

/// Records that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The broker refused some records (or they timed out); the others
    /// were written.
    #[error("{} of {total} records were not written; the first error: {}", failed.len(), failed[0].1)]
    Undelivered {
        /// Indexes into the lines given, in ascending order, with why.
        failed: Vec<(usize, KafkaError)>,
        total: usize,
    },
}

/// Collects the delivery reports that carry an error: without it, a
/// record the broker refused would vanish without a word.
#[derive(Debug, Default)]
struct Deliveries {
    failed: Mutex<Vec<(usize, KafkaError)>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, index: Self::DeliveryOpaque) {
        if let Err((error, _)) = result {
            self.failed
                .lock()
                .expect("deliveries lock")
                .push((*index, error.clone()));
        }
    }
}

/// Produces `lines` to `topic` (partitioned by key as Java clients do,
/// idempotently, acks=all) and waits until all are written.
pub fn load(
    client: &ClientConfig,
    topic: &str,
    lines: &[LegacyLine],
    timeout: Duration,
) -> Result<(), LoadError> {
    let producer: ThreadedProducer<Deliveries> = client
        .clone()
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create_with_context(Deliveries::default())?;
    for (index, line) in lines.iter().enumerate() {
        let headers = line
            .headers
            .iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                })
            });
        let mut record: BaseRecord<'_, str, str, Box<usize>> =
            BaseRecord::with_opaque_to(topic, Box::new(index)).headers(headers);
        if let Some(key) = &line.key {
            record = record.key(key);
        }
        if let Some(value) = &line.value {
            record = record.payload(value);
        }
        if let Some(timestamp) = line.timestamp {
            record = record.timestamp(timestamp);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, back)) => {
                    // Refused before queueing (a fatal producer error, for
                    // one): counted like a failed delivery.
                    producer
                        .context()
                        .failed
                        .lock()
                        .expect("deliveries lock")
                        .push((*back.delivery_opaque, e));
                    break;
                }
            }
        }
    }
    producer.flush(timeout)?;
    // Delivery failures after queueing (e.g. an unknown topic) leave
    // messages in flight past the flush.
    if producer.in_flight_count() > 0 {
        return Err(KafkaError::Flush(RDKafkaErrorCode::MessageTimedOut).into());
    }
    let mut failed =
        std::mem::take(&mut *producer.context().failed.lock().expect("deliveries lock"));
    failed.sort_by_key(|(index, _)| *index);
    if failed.is_empty() {
        Ok(())
    } else {
        Err(LoadError::Undelivered {
            failed,
            total: lines.len(),
        })
    }
}
