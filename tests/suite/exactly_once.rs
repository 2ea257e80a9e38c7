//! The exactly-once spine end to end: the `recast` binary against the
//! broker, the ledger read back with the log-level committed reader.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use common::{Expect, Scenario, assert_exactly_once, expects, generate, lines, terminate};

const CATCH_UP: Duration = Duration::from_secs(240);

#[test]
fn the_sample_lands_as_its_expectations_say() {
    let s = Scenario::new("sample", 4);
    let sample = common::sample();
    let input: Vec<_> = sample.iter().map(|(l, _)| l.clone()).collect();
    s.produce(&input);
    s.run_until_drained(&s.config(&[]), "w1", 4);

    // Every request exactly once: its retries (new technical context,
    // same requestId) are dropped by the dedupe window.
    let expected: HashMap<&str, &str> = sample
        .iter()
        .filter(|(_, e)| e["kind"] == "event")
        .map(|(_, e)| (e["id"].as_str().unwrap(), e["event_type"].as_str().unwrap()))
        .collect();
    let ledger = s.ledger();
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for record in &ledger.committed {
        let event = common::event_json(record);
        let id = event["header"]["correlation_id"]
            .as_str()
            .unwrap()
            .to_owned();
        seen.entry(id)
            .or_default()
            .push(event["header"]["event_type"].as_str().unwrap().to_owned());
        assert_eq!(event["header"]["source"]["system"], "cart-service");
        assert!(event["payload"].get("_meta").is_none());
        assert!(event["payload"].get("debug_trace").is_none());
        // The chain's script turned money into integer cents.
        if event["header"]["event_type"] == "CheckedOut" {
            assert!(event["payload"].get("total").is_none(), "{event}");
            assert!(event["payload"]["totalCents"].is_u64(), "{event}");
        }
        // The customer's e-mail is protected: a keyed hash, never the address.
        let email = event["payload"]["customer"]["email"].as_str().unwrap();
        assert!(
            email.len() == 64 && email.chars().all(|c| c.is_ascii_hexdigit()),
            "{email}"
        );
    }
    assert_eq!(seen.len(), expected.len());
    for (id, event_type) in expected {
        assert_eq!(seen[id], [event_type], "{id}");
    }

    // Rejections: every malformed or unknown record, with its reason.
    let rejects: Vec<&str> = sample
        .iter()
        .filter(|(_, e)| e["kind"] == "reject")
        .map(|(l, _)| l.value.as_deref().unwrap())
        .collect();
    let dead = s.dead_letters();
    let mut dead_values: Vec<String> = dead
        .committed
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let mut want: Vec<String> = rejects.iter().map(|v| (*v).to_owned()).collect();
    dead_values.sort();
    want.sort();
    assert_eq!(dead_values, want);
    for record in &dead.committed {
        let reason = record.header("recast.reason").unwrap();
        let value =
            String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).into_owned();
        let expected_reason = if value.is_empty() {
            "empty value"
        } else if value.contains("DELETE_EVERYTHING") {
            "unknown command `DELETE_EVERYTHING`"
        } else {
            "invalid JSON"
        };
        assert!(reason.starts_with(expected_reason), "{value:?}: {reason}");
    }
    // Heartbeats and retries are neither events nor dead letters.
    let skipped = sample
        .iter()
        .filter(|(_, e)| e["kind"] == "filtered" || e["kind"] == "duplicate")
        .count();
    assert_eq!(
        ledger.committed.len() + dead.committed.len() + skipped,
        sample.len()
    );
}

#[test]
fn twenty_thousand_records_over_four_partitions() {
    let s = Scenario::new("bulk", 4);
    let records = generate(20_000, "bulk");
    s.produce(&lines(&records));
    s.run_until_drained(&s.config(&[]), "w1", 4);
    assert_exactly_once(&s, &expects(&records));
    assert_eq!(s.committed_offsets(4), s.legacy_end_offsets());
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let s = Scenario::new("crash", 4);
    let records = generate(50_000, "crash");
    s.produce(&lines(&records));
    // Batches of several chunks: a transaction has records on the broker
    // from its first chunk's writes to its commit, most of its time, so
    // kills land mid-transaction. (A batch of one chunk has none while
    // that chunk is decided, which in a debug build is most of it.)
    let config = s.config(&[
        ("kafka.static_membership", "true"),
        ("batch.max_records", "1000"),
    ]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for _ in 0..5 {
        let pause = Duration::from_millis(rng.random_range(0..300));
        s.kill_mid_run(&config, "crashy", 4, pause);
    }
    let end = s.legacy_end_offsets();
    assert_ne!(
        s.committed_offsets(4),
        end,
        "the kills all came after the end"
    );
    let mut worker = s.spawn_worker(&config, "crashy", &[]);
    assert!(s.wait_caught_up(4, CATCH_UP), "{}", s.worker_log("crashy"));
    assert_eq!(
        terminate(&mut worker),
        Some(0),
        "{}",
        s.worker_log("crashy")
    );
    let ledger = s.ledger();
    assert!(ledger.aborted > 0, "no kill interrupted a transaction");
    assert_exactly_once(&s, &expects(&records));
}

/// Writes `records` to the legacy topic in chunks, `pause` apart, from a
/// thread: live traffic while instances come and go.
fn produce_live(
    s: &Scenario,
    records: &[(recast::legacy_file::LegacyLine, Expect)],
    chunk: usize,
    pause: Duration,
) -> std::thread::JoinHandle<()> {
    let (s, lines) = (s.clone(), lines(records));
    std::thread::spawn(move || {
        for part in lines.chunks(chunk) {
            s.produce(part);
            std::thread::sleep(pause);
        }
    })
}

#[test]
fn a_second_instance_takes_over_when_the_first_stops() {
    let s = Scenario::new("handover", 4);
    let records = generate(30_000, "handover");
    let config = s.config(&[("batch.max_records", "200")]);
    // 30 chunks 250 ms apart: traffic flows for about 8 seconds.
    let producer = produce_live(&s, &records, 1_000, Duration::from_millis(250));
    let mut first = s.spawn_worker(&config, "first", &[]);
    assert!(
        common::wait_until(CATCH_UP, || s.committed_offsets(4).iter().any(|o| *o > 0)),
        "{}",
        s.worker_log("first")
    );
    let mut second = s.spawn_worker(&config, "second", &[]);
    // Both share the group until the first stops, mid-stream.
    std::thread::sleep(Duration::from_secs(3));
    assert!(!producer.is_finished(), "traffic ended before the handover");
    assert_eq!(terminate(&mut first), Some(0), "{}", s.worker_log("first"));
    producer.join().unwrap();
    assert!(s.wait_caught_up(4, CATCH_UP), "{}", s.worker_log("second"));
    assert_eq!(
        terminate(&mut second),
        Some(0),
        "{}",
        s.worker_log("second")
    );
    let taken: std::collections::BTreeSet<String> = s
        .worker_log("second")
        .lines()
        .filter_map(|l| l.split("partitions assigned partitions=[").nth(1))
        .flat_map(|l| {
            l.trim_end_matches(']')
                .split(", ")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|p| !p.is_empty())
        .collect();
    assert_eq!(
        taken.len(),
        4,
        "the second instance never held every partition: {}",
        s.worker_log("second")
    );
    assert_exactly_once(&s, &expects(&records));
}

#[test]
fn an_aborted_transaction_is_invisible_and_its_records_land_once() {
    let s = Scenario::new("abort", 2);
    let records = generate(3_000, "abort");
    s.produce(&lines(&records));
    let config = s.config(&[
        ("batch.max_records", "300"),
        ("chaos.abort_transactions", "[2, 3, 7]"),
    ]);
    s.run_until_drained(&config, "w1", 2);
    let log = s.worker_log("w1");
    assert_eq!(log.matches("aborting transaction").count(), 3, "{log}");
    assert!(
        s.ledger().aborted > 0,
        "the aborted transactions wrote nothing"
    );
    assert_exactly_once(&s, &expects(&records));
}

/// `batch.threads = 2`: the record path runs a chunk ahead of the writes,
/// on its own thread. Retries of a request that straddle chunks, and
/// aborted transactions whose keys were decided ahead, still land once.
#[test]
fn a_batch_decided_on_a_thread_of_its_own_lands_exactly_once() {
    let s = Scenario::new("threads", 4);
    let records = generate(4_000, "threads");
    s.produce(&lines(&records));
    // Batches of two chunks: the writing takes one while the next is
    // decided.
    let config = s.config(&[
        ("batch.threads", "2"),
        ("batch.max_records", "400"),
        ("chaos.abort_transactions", "[2, 5]"),
    ]);
    s.run_until_drained(&config, "w1", 4);
    let log = s.worker_log("w1");
    assert_eq!(log.matches("aborting transaction").count(), 2, "{log}");
    assert_exactly_once(&s, &expects(&records));
    assert_eq!(s.committed_offsets(4), s.legacy_end_offsets());
}

/// A producer that fails fatally without being fenced is replaced in the
/// process. Before the commit, the new producer's initialisation aborts the
/// open transaction and the batch is written again; after the commit, the
/// batch is not read again: the worker resumes from the committed offsets,
/// not from the batch (the dead letters, which no window dedupes, would
/// show a batch written twice). Counts follow the ledger either way.
#[test]
fn a_failed_producer_is_replaced_and_every_record_lands_once() {
    let s = Scenario::new("renew", 2);
    let records = generate(3_000, "renew");
    s.produce(&lines(&records));
    let config = s.config(&[
        ("batch.max_records", "300"),
        ("chaos.fail_producer_before_commit", "[2]"),
        ("chaos.fail_producer_after_commit", "[5]"),
    ]);
    let log = s.run_until_drained(&config, "w1", 2);
    assert_eq!(
        log.matches("the producer failed; replacing it").count(),
        2,
        "{log}"
    );
    // The transaction that failed after its commit counts as committed
    // (its records once), the one that failed before it as aborted.
    assert!(log.contains("worker stopped consumed=3000 "), "{log}");
    assert!(log.contains(" aborted=1"), "{log}");
    let ledger = s.ledger();
    assert!(
        ledger.aborted > 0,
        "the transaction open when the producer failed was not aborted"
    );
    assert_eq!(ledger.open, 0, "a transaction was left open");
    assert_exactly_once(&s, &expects(&records));
}
