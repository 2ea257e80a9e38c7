//! Writes legacy records into the legacy topic: how the quickstart and the
//! tests put traffic on it. Not part of the worker's data path.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::legacy_file::LegacyLine;
use crate::sink::owned_headers;

/// Produces `lines` to `topic` (partitioned by key as Java clients do,
/// idempotently, acks=all) and waits until all are written.
pub fn load(
    client: &ClientConfig,
    topic: &str,
    lines: &[LegacyLine],
    timeout: Duration,
) -> Result<(), KafkaError> {
    let producer: ThreadedProducer<DefaultProducerContext> = client
        .clone()
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?;
    for line in lines {
        let headers = owned_headers(
            line.headers
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_bytes()))),
        );
        let mut record: BaseRecord<'_, str, str> = BaseRecord::to(topic).headers(headers);
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
                Err((e, _)) => return Err(e),
            }
        }
    }
    producer.flush(timeout)?;
    // Delivery failures after queueing (e.g. an unknown topic) leave
    // messages in flight past the flush.
    if producer.in_flight_count() > 0 {
        return Err(KafkaError::Flush(RDKafkaErrorCode::MessageTimedOut));
    }
    Ok(())
}
