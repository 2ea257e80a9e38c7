//! The yardstick for recast's end-to-end cost: a bare exactly-once pipe
//! that copies legacy records to a ledger topic unchanged, with recast's
//! transaction shape and client settings (same batch size and linger, the
//! same producer settings, delivery reports served as recast's sink
//! serves them before the commit, offsets committed in the transaction)
//! and nothing else: no decode, mapping, dedupe or encoding.
//! `deploy/local/throughput.sh` runs it and recast on identical topics and
//! compares their CPU per record.
//!
//! Settings come from the environment, as recast's overrides do:
//! `PIPE_BROKERS`, `PIPE_LEGACY`, `PIPE_LEDGER`, `PIPE_GROUP`,
//! `PIPE_MAX_RECORDS` (5000), `PIPE_LINGER_MS` (200), `PIPE_IDLE_MS`
//! (1000: stop once nothing arrived for that long). Prints the records
//! copied and the transactions committed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

fn setting(name: &str, default: Option<&str>) -> String {
    std::env::var(name)
        .ok()
        .or_else(|| default.map(str::to_owned))
        .unwrap_or_else(|| panic!("{name} is not set"))
}

fn number(name: &str, default: &str) -> u64 {
    setting(name, Some(default))
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Serves the delivery reports that are ready, or sleeps 200 µs when none
/// is: what recast's sink does (`Sink::serve_reports`, which says why).
fn serve_reports(producer: &BaseProducer) {
    let in_flight = producer.in_flight_count();
    producer.poll(Duration::ZERO);
    if producer.in_flight_count() == in_flight {
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn main() {
    let brokers = setting("PIPE_BROKERS", Some("127.0.0.1:9092"));
    let (legacy, ledger) = (setting("PIPE_LEGACY", None), setting("PIPE_LEDGER", None));
    let group = setting("PIPE_GROUP", None);
    let max_records = number("PIPE_MAX_RECORDS", "5000") as usize;
    let linger = Duration::from_millis(number("PIPE_LINGER_MS", "200"));
    let idle = Duration::from_millis(number("PIPE_IDLE_MS", "1000"));

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&legacy]).expect("subscribe");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("transactional.id", format!("{group}-pipe"))
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    producer
        .init_transactions(TIMEOUT)
        .expect("init transactions");

    let (mut copied, mut transactions) = (0_usize, 0_usize);
    // Idle time counts from the first record: joining the group comes first.
    let mut last_record: Option<Instant> = None;
    let idle_for = |last: Option<Instant>| last.is_some_and(|t| t.elapsed() >= idle);
    let mut batch = Vec::with_capacity(max_records);
    while !idle_for(last_record) {
        let started = Instant::now();
        while batch.len() < max_records && started.elapsed() < linger {
            match consumer.poll(Duration::from_millis(10)) {
                Some(Ok(message)) => batch.push(message.detach()),
                Some(Err(e)) => panic!("consume: {e}"),
                None if batch.is_empty() && idle_for(last_record) => break,
                None => {}
            }
        }
        if batch.is_empty() {
            continue;
        }
        last_record = Some(Instant::now());
        producer.begin_transaction().expect("begin");
        let mut next = BTreeMap::new();
        for message in &batch {
            let mut record = BaseRecord::<[u8], [u8]>::to(&ledger);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(value) = message.payload() {
                record = record.payload(value);
            }
            let mut record = Some(record);
            while let Some(pending) = record.take() {
                if let Err((e, back)) = producer.send(pending) {
                    assert!(
                        e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        "produce: {e}"
                    );
                    serve_reports(&producer);
                    record = Some(back);
                }
            }
            next.insert(message.partition(), message.offset() + 1);
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, offset) in next {
            offsets
                .add_partition_offset(&legacy, partition, Offset::Offset(offset))
                .expect("a concrete offset");
        }
        let metadata = consumer.group_metadata().expect("group metadata");
        producer
            .send_offsets_to_transaction(&offsets, &metadata, TIMEOUT)
            .expect("send offsets");
        // recast's sink does the same, rather than the commit's flush.
        while producer.in_flight_count() > 0 {
            serve_reports(&producer);
        }
        producer.commit_transaction(TIMEOUT).expect("commit");
        copied += batch.len();
        transactions += 1;
        batch.clear();
    }
    println!("{copied} records copied in {transactions} transactions");
}
