//! The log-level committed reader, verified against the broker: it must
//! show committed and non-transactional records, drop aborted ones, and
//! hide a transaction that is still open.

use crate::common;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use common::{Scenario, TIMEOUT, brokers};
use recast::log_reader::read_committed;

fn transactional(id: &str) -> BaseProducer {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("transactional.id", id)
        .create()
        .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    producer
}

fn send(producer: &BaseProducer, topic: &str, values: &[&str]) {
    for v in values {
        producer
            .send(
                BaseRecord::<str, str>::to(topic)
                    .key("k")
                    .payload(*v)
                    .partition(0),
            )
            .unwrap();
    }
    producer.flush(TIMEOUT).unwrap();
}

fn values(log: &recast::log_reader::TopicLog) -> Vec<String> {
    log.committed
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

#[test]
fn committed_aborted_and_open_transactions() {
    let s = Scenario::new("reader", 1);
    let topic = &s.ledger;
    let committer = transactional(&common::unique("committer"));
    let aborter = transactional(&common::unique("aborter"));
    let plain: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();

    send(&plain, topic, &["plain-1"]);

    // Two producers' transactions interleave on one partition: the markers
    // must be matched per producer, not by position.
    committer.begin_transaction().unwrap();
    aborter.begin_transaction().unwrap();
    send(&committer, topic, &["committed-1"]);
    send(&aborter, topic, &["aborted-1"]);
    send(&committer, topic, &["committed-2"]);
    send(&aborter, topic, &["aborted-2"]);
    aborter.abort_transaction(TIMEOUT).unwrap();
    committer.commit_transaction(TIMEOUT).unwrap();

    send(&plain, topic, &["plain-2"]);

    // An open transaction: written to the log, never finished.
    let open = transactional(&common::unique("open"));
    open.begin_transaction().unwrap();
    send(&open, topic, &["open-1", "open-2"]);

    let log = read_committed(brokers(), topic, TIMEOUT).unwrap();
    assert_eq!(
        values(&log),
        ["plain-1", "committed-1", "committed-2", "plain-2"]
    );
    assert_eq!(log.aborted, 2);
    assert_eq!(log.open, 2);

    // Committing the open one makes it visible; nothing else changes.
    open.commit_transaction(TIMEOUT).unwrap();
    let log = read_committed(brokers(), topic, TIMEOUT).unwrap();
    assert_eq!(
        values(&log),
        [
            "plain-1",
            "committed-1",
            "committed-2",
            "plain-2",
            "open-1",
            "open-2"
        ]
    );
    assert_eq!((log.aborted, log.open), (2, 0));
}

#[test]
fn a_reinitialised_producer_rolls_back_its_open_transaction() {
    // How a crashed worker's transaction is cleaned up: the restarted
    // instance initialises the same transactional.id.
    let s = Scenario::new("reinit", 1);
    let id = common::unique("reinit");
    let first = transactional(&id);
    first.begin_transaction().unwrap();
    send(&first, &s.ledger, &["lost"]);
    let second = transactional(&id);
    second.begin_transaction().unwrap();
    send(&second, &s.ledger, &["kept"]);
    second.commit_transaction(TIMEOUT).unwrap();
    let log = read_committed(brokers(), &s.ledger, Duration::from_secs(10)).unwrap();
    assert_eq!(values(&log), ["kept"]);
    assert_eq!((log.aborted, log.open), (1, 0));
}

#[test]
fn an_empty_topic_reads_empty() {
    let s = Scenario::new("empty", 2);
    let log = read_committed(brokers(), &s.ledger, TIMEOUT).unwrap();
    assert!(log.committed.is_empty());
    assert_eq!(log.end_offsets.len(), 2);
}
