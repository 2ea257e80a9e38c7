//! Records the broker refuses. A broker of the test's own validates what is
//! produced to a topic against a JSON Schema (nisshi's `--schema-registry`,
//! like a broker-side schema validation policy): a record it refuses fails
//! its whole produce request and so its transaction, on every retry.
//! recast must find the record, dead-letter it (stage `sink`) and go on; a
//! dead letter it cannot write must stop the worker with the reason.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common;

use common::{Expect, Scenario, assert_exactly_once, generate, lines, own_broker, unique};

/// A broker validating the topics that `schemas` (a directory) holds a
/// `<topic>.json` for; schemas may be added after it starts.
fn validating_broker(schemas: &Path) -> &'static str {
    std::fs::create_dir_all(schemas).unwrap();
    // nisshi reads a `file://` URL's path relative to its working
    // directory, which is this process's.
    let cwd = std::env::current_dir().unwrap();
    let relative = schemas
        .strip_prefix(&cwd)
        .expect("the schemas under the working directory");
    &own_broker(&[&format!(
        "--schema-registry file://./{}/",
        relative.display()
    )])
    .address
}

fn schemas_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique("broker-schemas"))
}

#[test]
fn a_record_the_broker_refuses_is_dead_lettered_and_its_partitions_go_on() {
    refused_records_are_dead_lettered(1);
}

/// The same with the record path on its own thread (`batch.threads`): a
/// refusal learned while writing a chunk is learned before the retry
/// decides anything.
#[test]
fn refused_records_are_dead_lettered_with_the_batch_decided_on_its_own_thread() {
    refused_records_are_dead_lettered(2);
}

fn refused_records_are_dead_lettered(threads: usize) {
    let schemas = schemas_dir();
    let brokers = validating_broker(&schemas);
    let s = Scenario::on(brokers, "refused", 2);
    // Fewer than 211 records: every cart key is unique (see `generate`).
    let mut traffic = generate(200, "rf");
    let refused = ["rf-10", "rf-11", "rf-150"];
    let policy = serde_json::json!({
        "properties": {"value": {"not": {
            "required": ["header"],
            "properties": {"header": {
                "required": ["correlation_id"],
                "properties": {"correlation_id": {"enum": refused}},
            }},
        }}},
    });
    std::fs::write(
        schemas.join(format!("{}.json", s.ledger)),
        policy.to_string(),
    )
    .unwrap();
    let reason: &'static str =
        Box::leak(format!("the broker refused it for `{}`: ", s.ledger).into_boxed_str());
    for (_, expect) in &mut traffic {
        if let Expect::Event {
            request_id, key, ..
        } = expect
            && refused.contains(&request_id.as_str())
        {
            *expect = Expect::Reject {
                key: key.clone(),
                reason,
            };
        }
    }
    s.produce(&lines(&traffic));
    let threads = threads.to_string();
    let config = s.config(&[
        ("ledger.format", "\"json\""),
        ("batch.max_records", "40"),
        ("batch.threads", &threads),
    ]);
    let log = s.run_until_drained(&config, "a", 2);

    let expected: Vec<Expect> = traffic.into_iter().map(|(_, e)| e).collect();
    assert_exactly_once(&s, &expected);
    let dead = s.dead_letters();
    let sink: Vec<_> = dead
        .committed
        .iter()
        .filter(|r| r.header("recast.stage").as_deref() == Some("sink"))
        .collect();
    assert_eq!(sink.len(), refused.len(), "{log}");
    for record in sink {
        let why = record.header("recast.reason").unwrap();
        assert!(
            why.contains("InvalidRecord"),
            "the broker's own reason: {why}"
        );
    }
    assert!(
        log.contains("the retry dead-letters that record"),
        "the log says what happened: {log}"
    );
}

#[test]
fn a_dead_letter_the_broker_refuses_stops_the_worker_with_the_reason() {
    let schemas = schemas_dir();
    let brokers = validating_broker(&schemas);
    let s = Scenario::on(brokers, "refused-dlq", 1);
    // The dead-letter topic takes nothing.
    std::fs::write(
        schemas.join(format!("{}.json", s.dead_letter)),
        r#"{"properties": {"value": false}}"#,
    )
    .unwrap();
    // Offset 3 is invalid JSON: a dead letter.
    let traffic = generate(20, "rd");
    assert!(matches!(traffic[3].1, Expect::Reject { .. }));
    s.produce(&lines(&traffic));
    let config = s.config(&[("ledger.format", "\"json\""), ("batch.max_records", "10")]);
    let mut worker = s.spawn_worker(&config, "a", &[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not stop: {}",
            s.worker_log("a")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = s.worker_log("a");
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "the broker refused the dead letter of partition 0 offset 3 for `{}`",
            s.dead_letter
        )),
        "{log}"
    );
    // Nothing of the batch holding it was committed.
    assert!(s.committed_offsets(1)[0] < 4, "{log}");
    assert!(s.dead_letters().committed.is_empty());
    assert!(
        s.ledger()
            .committed
            .iter()
            .all(|r| { common::event_json(r)["header"]["source"]["offset"].as_i64() < Some(3) }),
        "{log}"
    );
}
