//! The dedupe window end to end: retries of a request reach the ledger
//! once, in a single run, across `kill -9` and restart, and across a
//! rebalance; the window's count and time-to-live bounds hold exactly.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    Expect, Scenario, assert_exactly_once, expects, generate_with_retries, lines, terminate,
};
use recast::legacy_file::LegacyLine;

const CATCH_UP: Duration = Duration::from_secs(240);

#[test]
fn retries_across_batch_boundaries_land_once() {
    let s = Scenario::new("retries", 4);
    let records = generate_with_retries(10_000, "retries");
    let retries = records
        .iter()
        .filter(|(_, e)| *e == Expect::Duplicate)
        .count();
    assert!(retries > 1_500, "the stream has {retries} retries");
    s.produce(&lines(&records));
    s.run_until_drained(&s.config(&[("batch.max_records", "100")]), "w1", 4);
    assert_exactly_once(&s, &expects(&records));
}

#[test]
fn retries_after_a_kill_9_and_restart_land_once() {
    let s = Scenario::new("dedupe-crash", 4);
    let records = generate_with_retries(30_000, "dedupe-crash");
    // The first part is processed (and killed during); the rest holds
    // retries of requests committed before the crash.
    let (first, rest) = records.split_at(20_000);
    s.produce(&lines(first));
    let config = s.config(&[
        ("kafka.static_membership", "true"),
        ("batch.max_records", "100"),
    ]);
    for pause in [50, 250, 150] {
        s.kill_mid_run(&config, "crashy", 4, Duration::from_millis(pause));
    }
    s.produce(&lines(rest));
    s.run_until_drained(&config, "crashy", 4);
    let log = s.worker_log("crashy");
    assert!(log.contains("dedupe window restored"), "{log}");
    assert_exactly_once(&s, &expects(&records));
}

#[test]
fn retries_during_a_rebalance_land_once() {
    let s = Scenario::new("dedupe-rebalance", 4);
    let records = generate_with_retries(24_000, "dedupe-rebalance");
    let config = s.config(&[("batch.max_records", "200")]);
    let producer = {
        let (s, lines) = (s.clone(), lines(&records));
        std::thread::spawn(move || {
            for part in lines.chunks(1_000) {
                s.produce(part);
                std::thread::sleep(Duration::from_millis(400));
            }
        })
    };
    let mut first = s.spawn_worker(&config, "first", &[]);
    assert!(common::wait_until(CATCH_UP, || s
        .committed_offsets(4)
        .iter()
        .any(|o| *o > 0)));
    let mut second = s.spawn_worker(&config, "second", &[]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !producer.is_finished(),
        "traffic ended before the rebalance"
    );
    assert_eq!(terminate(&mut first), Some(0), "{}", s.worker_log("first"));
    producer.join().unwrap();
    assert!(s.wait_caught_up(4, CATCH_UP), "{}", s.worker_log("second"));
    assert_eq!(terminate(&mut second), Some(0));
    assert!(s.worker_log("second").contains("dedupe window restored"));
    assert_exactly_once(&s, &expects(&records));
}

/// A cart command with this request id, Kafka timestamp and filler.
fn command(request: &str, timestamp: i64) -> LegacyLine {
    LegacyLine {
        key: Some("cart-1".into()),
        value: Some(format!(
            r#"{{"command": "AddToCart", "requestId": "{request}", "cartId": "cart-1", "customer": {{"id": "c-1"}}, "ts": 1764000000000, "sku": "S", "qty": 1}}"#
        )),
        headers: std::collections::BTreeMap::new(),
        timestamp: Some(timestamp),
    }
}

#[test]
fn retries_just_inside_and_just_outside_the_window() {
    let s = Scenario::new("window", 1);
    let t0 = 1_764_000_000_000_i64;
    let mut lines = Vec::new();
    let mut filler = 0;
    let mut fill = |lines: &mut Vec<LegacyLine>, n: usize| {
        for _ in 0..n {
            filler += 1;
            lines.push(command(&format!("filler-{filler}"), t0));
        }
    };
    // Count: capacity 20 offsets. A retry 20 offsets later is inside…
    lines.push(command("inside-count", t0)); // offset 0
    fill(&mut lines, 19);
    lines.push(command("inside-count", t0)); // offset 20
    // …21 offsets later is outside.
    lines.push(command("outside-count", t0)); // offset 21
    fill(&mut lines, 20);
    lines.push(command("outside-count", t0)); // offset 42
    // Time: ttl 60 s on record timestamps, whatever the wall clock.
    lines.push(command("inside-ttl", t0));
    lines.push(command("inside-ttl", t0 + 60_000));
    lines.push(command("outside-ttl", t0));
    lines.push(command("outside-ttl", t0 + 60_001));
    s.produce(&lines);
    let config = s.config(&[("dedupe.capacity", "20"), ("dedupe.ttl", "\"60s\"")]);
    s.run_until_drained(&config, "w1", 1);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in common::correlation_ids(&s.ledger()) {
        *counts.entry(id).or_default() += 1;
    }
    assert_eq!(counts["inside-count"], 1);
    assert_eq!(counts["outside-count"], 2);
    assert_eq!(counts["inside-ttl"], 1);
    assert_eq!(counts["outside-ttl"], 2);
}

/// A checkout, optionally carrying a field its schema lacks.
fn checkout(request: &str, unreviewed_field: bool) -> LegacyLine {
    let name = if unreviewed_field {
        r#", "name": "Ada Lovelace""#
    } else {
        ""
    };
    LegacyLine {
        key: Some("cart-9".into()),
        value: Some(format!(
            r#"{{"command": "CHECKOUT", "requestId": "{request}", "cartId": "cart-9", "customer": {{"id": "c-9"{name}}}, "ts": 1764000000000, "total": 12.5}}"#
        )),
        headers: std::collections::BTreeMap::new(),
        timestamp: Some(1_764_000_000_000),
    }
}

/// What a topic holds, in order, minus what differs between two scenarios:
/// `recorded_at`, and the legacy topic's name (and so the event id).
fn contents(log: &recast::log_reader::TopicLog, events: bool) -> Vec<serde_json::Value> {
    log.committed
        .iter()
        .map(|record| {
            if events {
                let mut event = common::event_json(record);
                for field in ["recorded_at", "event_id"] {
                    event["header"][field] = serde_json::Value::Null;
                }
                event["header"]["source"]["topic"] = serde_json::Value::Null;
                event
            } else {
                serde_json::json!({
                    "offset": record.header("recast.source.offset"),
                    "stage": record.header("recast.stage"),
                    "reason": record.header("recast.reason"),
                    "value": record.value.as_deref().map(String::from_utf8_lossy),
                })
            }
        })
        .collect()
}

/// A record rejected at the schema stage is not remembered by the window,
/// so its corrected retry lands — and a restart between the two (which
/// rebuilds the window from the log) changes nothing.
#[test]
fn a_corrected_retry_of_a_rejected_record_lands_with_or_without_a_restart() {
    let rejected = [checkout("req-a", true), command("filler-1", 1)];
    let retried = [checkout("req-a", false), checkout("req-a", false)];
    let mut runs = Vec::new();
    for restart in [false, true] {
        let s = Scenario::new(
            if restart {
                "retry-restart"
            } else {
                "retry-live"
            },
            1,
        );
        let config = s.config(&[]);
        if restart {
            s.produce(&rejected);
            s.run_until_drained(&config, "w1", 1);
            s.produce(&retried);
            let log = s.run_until_drained(&config, "w1", 1);
            assert!(log.contains("dedupe window restored"), "{log}");
        } else {
            s.produce(&[rejected.as_slice(), retried.as_slice()].concat());
            s.run_until_drained(&config, "w1", 1);
        }
        let ledger = contents(&s.ledger(), true);
        let dead_letters = contents(&s.dead_letters(), false);
        // The filler and the first corrected retry; the second retry is a
        // duplicate of the first.
        let types: Vec<&str> = ledger
            .iter()
            .map(|e| e["header"]["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["AddedToCart", "CheckedOut"], "restart: {restart}");
        assert_eq!(ledger[1]["header"]["source"]["offset"], 2);
        assert_eq!(dead_letters.len(), 1, "{dead_letters:?}");
        assert_eq!(dead_letters[0]["stage"], "schema");
        assert_eq!(dead_letters[0]["offset"], "0");
        runs.push((ledger, dead_letters));
    }
    assert_eq!(runs[0], runs[1], "the restart changed the outcome");
}
