//! Seeing every decision on the broker: `recast explain` of a record on
//! the legacy or the dead-letter topic says what the worker (or a
//! re-drive) did with it, and the live tap streams the running worker's
//! decisions, marked by how their transaction ended.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Scenario, brokers, event_json, get, listening, metric_value, terminate, wait_until};
use recast::legacy_file::LegacyLine;
use recast::log_reader::{CommittedRecord, read_committed};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);

/// `recast explain --format json` of one record on the broker.
fn explain(config: &Path, topic: &str, partition: i32, offset: i64) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_recast"))
        .arg("--config")
        .arg(config)
        .args(["explain", "--topic", topic, "--format", "json"])
        .args(["--partition", &partition.to_string()])
        .args(["--offset", &offset.to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{topic}/{partition}@{offset}: {stderr}"
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

fn decisions(trace: &Value) -> &Vec<Value> {
    trace["decisions"].as_array().unwrap()
}

fn outcome(trace: &Value) -> &Value {
    decisions(trace).last().unwrap()
}

fn source(record: &CommittedRecord) -> (i32, i64) {
    let number = |name: &str| record.header(name).unwrap().parse().unwrap();
    let partition: i64 = number("recast.source.partition");
    (partition as i32, number("recast.source.offset"))
}

/// What the worker wrote from each source position.
type ByPosition<T> = HashMap<(i32, i64), T>;

/// The ledger, and by source position the event types and the dead
/// letters (stage, reason) the worker wrote.
fn what_the_worker_did(
    s: &Scenario,
) -> (
    recast::log_reader::TopicLog,
    ByPosition<Vec<String>>,
    ByPosition<(String, String)>,
) {
    let ledger = s.ledger();
    let mut events: HashMap<(i32, i64), Vec<String>> = HashMap::new();
    for event in &ledger.committed {
        let event_type = event_json(event)["header"]["event_type"]
            .as_str()
            .unwrap()
            .to_owned();
        events.entry(source(event)).or_default().push(event_type);
    }
    let dead_letters = s.dead_letters();
    let rejected: HashMap<(i32, i64), (String, String)> = dead_letters
        .committed
        .iter()
        .map(|d| {
            let stage = d.header("recast.stage").unwrap();
            (source(d), (stage, d.header("recast.reason").unwrap()))
        })
        .collect();
    (ledger, events, rejected)
}

#[test]
fn explain_on_the_broker_agrees_with_what_the_worker_did() {
    let s = Scenario::new("explain", 2);
    let lines: Vec<_> = common::sample().into_iter().map(|(l, _)| l).collect();
    s.produce(&lines);
    let config = s.config(&[]);
    s.run_until_drained(&config, "w1", 2);

    let (ledger, events, rejected) = what_the_worker_did(&s);
    let legacy = read_committed(brokers(), &s.legacy, TIMEOUT).unwrap();
    assert_eq!(legacy.committed.len(), 300);

    // Every record without events, and some with, explained on the broker.
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    let mut with_events = 0;
    for record in &legacy.committed {
        let position = (record.partition, record.offset);
        if events.contains_key(&position) {
            with_events += 1;
            if with_events % 25 != 1 {
                continue;
            }
        }
        let trace = explain(&config, "legacy", record.partition, record.offset);
        assert_eq!(trace["record"]["offset"], record.offset);
        let said = outcome(&trace);
        let kind = said["outcome"].as_str().unwrap().to_owned();
        *outcomes.entry(kind.clone()).or_default() += 1;
        let at = format!("{position:?}: {said}");
        match kind.as_str() {
            "events" => assert_eq!(
                said["event_types"],
                serde_json::json!(events[&position]),
                "{at}"
            ),
            "rejected" => {
                let (stage, reason) = &rejected[&position];
                assert_eq!(
                    (&said["stage"], &said["reason"]),
                    (&stage.as_str().into(), &reason.as_str().into()),
                    "{at}"
                );
            }
            "duplicate" => {
                // The earlier occurrence is on this partition, and the request's
                // key is in the ledger from there or before.
                let of = said["of_offset"].as_i64().unwrap();
                assert!(of < record.offset, "{at}");
                let key = decisions(&trace)
                    .iter()
                    .find(|d| d["step"] == "dedupe")
                    .and_then(|d| d["key"].as_str())
                    .unwrap()
                    .to_owned();
                assert!(
                    ledger.committed.iter().any(|e| {
                        let (p, o) = source(e);
                        p == record.partition
                            && o <= of
                            && e.header("recast.dedupe.key").as_deref() == Some(&key)
                    }),
                    "{at}: no earlier event of key {key}"
                );
                assert!(
                    !events.contains_key(&position) && !rejected.contains_key(&position),
                    "{at}"
                );
            }
            "filtered" => assert!(
                !events.contains_key(&position) && !rejected.contains_key(&position),
                "{at}"
            ),
            other => panic!("{at}: outcome {other}"),
        }
    }
    // The sample's records without events: 13 filtered, 35 duplicates, 9
    // rejected (`recast replay` of the file says the same).
    assert_eq!(outcomes.get("filtered"), Some(&13), "{outcomes:?}");
    assert_eq!(outcomes.get("duplicate"), Some(&35), "{outcomes:?}");
    assert_eq!(outcomes.get("rejected"), Some(&9), "{outcomes:?}");
    assert!(outcomes["events"] >= 5, "{outcomes:?}");

    dead_letters_explain_as_a_redrive_would_decide_them(&s, &config);
}

/// Under the mapping that rejected them a re-drive passes dead letters
/// over; under another mapping that fixes nothing they would be rejected
/// again, for the same reason.
fn dead_letters_explain_as_a_redrive_would_decide_them(s: &Scenario, config: &Path) {
    let dead_letters = s.dead_letters();
    let changed_dir = s.dir.join("changed");
    std::fs::create_dir_all(&changed_dir).unwrap();
    let noop = changed_dir.join("noop.toml");
    std::fs::write(&noop, "[[steps]]\ndrop = [\"no_such_field\"]\n").unwrap();
    let transforms = format!(
        "[\"{}/transforms/cart.toml\", \"{}/transforms/cart-amounts.rhai\", \"{}\"]",
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_MANIFEST_DIR"),
        noop.display()
    );
    let changed = s.config(&[("mapping.transforms", &transforms)]);
    for letter in &dead_letters.committed {
        let same = explain(config, "dead-letter", letter.partition, letter.offset);
        let steps: Vec<&str> = decisions(&same)
            .iter()
            .map(|d| d["step"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["dead_letter", "passed_over"], "{same}");
        assert_eq!(decisions(&same)[1]["why"], "same mapping");
        let again = explain(&changed, "dead-letter", letter.partition, letter.offset);
        let said = outcome(&again);
        assert_eq!(said["outcome"], "rejected", "{again}");
        assert_eq!(
            said["reason"].as_str(),
            letter.header("recast.reason").as_deref(),
            "{again}"
        );
    }
}

/// Legacy records where every fourth is a command nobody mapped.
fn traffic(n: usize, tag: &str) -> Vec<LegacyLine> {
    (0..n)
        .map(|i| {
            let command = if i % 4 == 3 { "SHARE_CART" } else { "CHECKOUT" };
            LegacyLine {
                key: Some(format!("cart-{tag}-{i}")),
                value: Some(format!(
                    r#"{{"command": "{command}", "requestId": "{tag}-{i}", "cartId": "cart-{tag}-{i}", "customer": {{"id": "c-{i}"}}, "ts": 1764000000000}}"#
                )),
                headers: std::collections::BTreeMap::new(),
                timestamp: None,
            }
        })
        .collect()
}

/// Runs `recast tap` until it has its traces, while `produce` runs once
/// the tap is open.
fn tap(s: &Scenario, address: &str, args: &[&str], produce: impl FnOnce()) -> Vec<Value> {
    let mut client = Command::new(env!("CARGO_BIN_EXE_recast"))
        .args([
            "tap",
            "--url",
            &format!("http://{address}"),
            "--format",
            "json",
            "--idle",
            "20s",
        ])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let open = format!("recast_taps_open{{topic=\"{}\"}}", s.legacy);
    assert!(
        wait_until(TIMEOUT, || metric_value(&get(address, "/metrics").1, &open)
            == 1),
        "the tap never opened"
    );
    produce();
    let traces: Vec<Value> = std::io::BufReader::new(client.stdout.take().unwrap())
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(client.wait().unwrap().success());
    traces
}

#[test]
fn the_tap_streams_live_decisions_marked_by_how_their_transaction_ended() {
    let s = Scenario::new("tap", 1);
    let config = s.config(&[
        ("http.tap", "true"),
        ("batch.max_records", "40"),
        // The first transaction aborts; its records are decided again.
        ("chaos.abort_transactions", "[1]"),
    ]);
    let mut worker = s.spawn_worker(&config, "w1", &[]);
    let address = listening(&s, "w1");
    assert!(
        wait_until(TIMEOUT, || get(&address, "/readyz").0 == 200),
        "never ready"
    );

    let traces = tap(&s, &address, &["--limit", "30"], || {
        s.produce(&traffic(200, "a"));
    });
    assert_eq!(traces.len(), 30);
    let offsets = |ended: &str| -> HashSet<i64> {
        traces
            .iter()
            .filter(|t| t["transaction"] == ended)
            .map(|t| t["record"]["offset"].as_i64().unwrap())
            .collect()
    };
    let (aborted, committed) = (offsets("aborted"), offsets("committed"));
    assert!(
        !aborted.is_empty(),
        "the aborted transaction's traces are marked"
    );
    assert!(!committed.is_empty());

    // The tap sees only what happens while it is open.
    assert!(
        s.wait_caught_up(1, Duration::from_secs(120)),
        "{}",
        s.worker_log("w1")
    );
    let rejected = tap(
        &s,
        &address,
        &["--limit", "3", "--outcome", "rejected"],
        || {
            s.produce(&traffic(40, "b"));
        },
    );
    assert_eq!(rejected.len(), 3);
    for trace in &rejected {
        assert_eq!(outcome(trace)["outcome"], "rejected", "{trace}");
        assert_eq!(outcome(trace)["reason"], "unknown command `SHARE_CART`");
        let key = trace["record"]["key"].as_str().unwrap();
        assert!(key.starts_with("cart-b-"), "{trace}");
        assert!(
            trace["record"]["key"]
                .as_str()
                .unwrap()
                .starts_with("cart-b-"),
            "{trace}"
        );
    }
    assert!(
        s.wait_caught_up(1, Duration::from_secs(120)),
        "{}",
        s.worker_log("w1")
    );
    assert_eq!(terminate(&mut worker), Some(0));

    // The aborted transaction's records were decided again: each is in
    // the ledger or the dead-letter topic once.
    let ledger = s.ledger();
    let dead_letters = s.dead_letters();
    for offset in &aborted {
        let written = ledger
            .committed
            .iter()
            .chain(&dead_letters.committed)
            .filter(|r| source(r) == (0, *offset))
            .count();
        assert_eq!(written, 1, "offset {offset}");
    }
    traced_events_are_in_the_ledger(&traces, &ledger);
}

/// A committed trace's events are the ones in the ledger.
fn traced_events_are_in_the_ledger(traces: &[Value], ledger: &recast::log_reader::TopicLog) {
    let ledger: HashSet<String> = ledger
        .committed
        .iter()
        .map(|e| {
            event_json(e)["header"]["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let traced_ids: Vec<String> = traces
        .iter()
        .filter(|t| t["transaction"] == "committed" && outcome(t)["outcome"] == "events")
        .flat_map(|t| {
            decisions(t)
                .iter()
                .filter(|d| d["step"] == "header")
                .map(|d| d["header"]["event_id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!traced_ids.is_empty());
    for id in traced_ids {
        assert!(
            ledger.contains(&id),
            "{id} traced as committed, not in the ledger"
        );
    }
}
