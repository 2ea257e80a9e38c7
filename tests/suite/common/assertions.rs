//! The exactly-once contract, asserted on what the broker holds.

use serde_json::Value;

use super::ledger::event_json;
use super::scenario::Scenario;
use super::traffic::Expect;
use recast::log_reader::TopicLog;

/// Asserts the exactly-once contract for generated traffic: every expected
/// event is in the committed ledger exactly once, clean and with its
/// header; every reject is in the dead-letter topic exactly once with its
/// reason; nothing else is in either; per-key order follows the legacy log.
pub(crate) fn assert_exactly_once(s: &Scenario, expected: &[Expect]) {
    let ledger = s.ledger();
    assert_events_once(s, &ledger, expected);
    assert_key_order(&ledger);
    assert_rejects_once(s, expected);
}

fn assert_events_once(s: &Scenario, ledger: &TopicLog, expected: &[Expect]) {
    use std::collections::HashMap;
    let mut by_request: HashMap<String, Vec<(Value, String)>> = HashMap::new();
    for record in &ledger.committed {
        let event = event_json(record);
        let key = String::from_utf8(record.key.clone().expect("ledger key").to_vec()).unwrap();
        let id = event["header"]["correlation_id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        by_request.entry(id).or_default().push((event, key));
    }
    let events: Vec<_> = expected
        .iter()
        .filter_map(|e| match e {
            Expect::Event {
                event_type,
                request_id,
                key,
            } => Some((event_type, request_id, key)),
            _ => None,
        })
        .collect();
    let mut missing = Vec::new();
    for (event_type, request_id, key) in &events {
        match by_request.get(*request_id).map(Vec::as_slice) {
            Some([(event, ledger_key)]) => {
                assert_eq!(event["header"]["event_type"], **event_type, "{request_id}");
                assert_eq!(ledger_key, *key, "{request_id}");
                assert_eq!(event["header"]["source"]["topic"], s.legacy.as_str());
                let payload = &event["payload"];
                for noise in ["_meta", "debug_trace", "command"] {
                    assert!(payload.get(noise).is_none(), "{noise} left in {payload}");
                }
                // Protected: a keyed hash, never the address.
                let email = payload["customer"]["email"].as_str().unwrap_or_default();
                assert!(
                    email.len() == 64 && email.chars().all(|c| c.is_ascii_hexdigit()),
                    "e-mail not hashed in {payload}"
                );
            }
            None => missing.push((*request_id).clone()),
            Some(many) => panic!("{request_id} is in the ledger {} times", many.len()),
        }
    }
    assert!(
        missing.is_empty(),
        "{} expected events missing from the ledger, e.g. {:?} (the ledger: {} committed, {} aborted, {} in open transactions)",
        missing.len(),
        &missing[..missing.len().min(5)],
        ledger.committed.len(),
        ledger.aborted,
        ledger.open
    );
    assert_eq!(
        ledger.committed.len(),
        events.len(),
        "unexpected extra ledger events"
    );
}

/// A key's events follow the legacy offsets of its records.
fn assert_key_order(ledger: &TopicLog) {
    let mut last: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    for record in &ledger.committed {
        let event = event_json(record);
        let key = String::from_utf8(record.key.clone().unwrap().to_vec()).unwrap();
        let offset = event["header"]["source"]["offset"].as_i64().unwrap();
        if let Some(previous) = last.insert(key.clone(), offset) {
            assert!(
                previous < offset,
                "key {key}: offset {offset} after {previous}"
            );
        }
    }
}

fn assert_rejects_once(s: &Scenario, expected: &[Expect]) {
    use std::collections::HashMap;
    let dead = s.dead_letters();
    let mut dead_by_key: HashMap<String, Vec<&recast::log_reader::CommittedRecord>> =
        HashMap::new();
    for record in &dead.committed {
        let key = record
            .key
            .as_ref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        dead_by_key.entry(key).or_default().push(record);
    }
    let rejects: Vec<_> = expected
        .iter()
        .filter_map(|e| match e {
            Expect::Reject { key, reason } => Some((key, reason)),
            _ => None,
        })
        .collect();
    for (key, reason) in &rejects {
        match dead_by_key.get(*key).map(Vec::as_slice) {
            Some([record]) => {
                let got = record.header("recast.reason").unwrap_or_default();
                assert!(
                    got.starts_with(**reason),
                    "{key}: reason `{got}`, expected `{reason}…`"
                );
                assert_eq!(
                    record.header("recast.source.topic").as_deref(),
                    Some(s.legacy.as_str())
                );
                assert!(record.header("recast.source.offset").is_some());
                assert!(record.header("recast.stage").is_some());
            }
            None => panic!("reject {key} missing from the dead-letter topic"),
            Some(many) => panic!(
                "reject {key} is in the dead-letter topic {} times",
                many.len()
            ),
        }
    }
    assert_eq!(
        dead.committed.len(),
        rejects.len(),
        "unexpected extra dead letters"
    );
}
