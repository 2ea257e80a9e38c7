//! The pure pipeline over the whole sample, no broker: every record's
//! outcome is what its `expect` field says.

mod common;

use recast::config::Config;
use recast::legacy::Position;
use recast::pipeline::{Outcome, Pipeline};
use serde_json::Value;

#[test]
fn every_sample_record_gets_its_expected_outcome() {
    let pipeline = Pipeline::new(&Config::load(None, Vec::new()).unwrap());
    let sample = common::sample();
    let mut event_types = std::collections::HashMap::new();
    for (_, expect) in &sample {
        if expect["kind"] == "event" {
            event_types.insert(
                expect["id"].as_str().unwrap(),
                expect["event_type"].as_str().unwrap(),
            );
        }
    }
    for (offset, (line, expect)) in sample.iter().enumerate() {
        let record = line.record(Position {
            topic: "legacy-cart",
            partition: 0,
            offset: offset as i64,
        });
        let outcome = pipeline.process(&record, 1_764_000_100_000);
        let context = format!("line {}: {:?} → {outcome:?}", offset + 1, line.value);
        match (expect["kind"].as_str().unwrap(), &outcome) {
            ("event" | "duplicate", Outcome::Events(events)) => {
                let id = expect
                    .get("id")
                    .or(expect.get("of"))
                    .and_then(Value::as_str)
                    .unwrap();
                assert_eq!(events.len(), 1, "{context}");
                let event: Value = serde_json::from_slice(&events[0].value).unwrap();
                assert_eq!(event["header"]["event_type"], event_types[id], "{context}");
                assert_eq!(event["header"]["correlation_id"], id, "{context}");
                let payload = &event["payload"];
                assert!(
                    payload.get("_meta").is_none() && payload.get("debug_trace").is_none(),
                    "{context}"
                );
                assert!(payload["customer"].get("email").is_none(), "{context}");
            }
            ("filtered", Outcome::Filtered) | ("reject", Outcome::Rejected(_)) => {}
            _ => panic!("{context}: expected {expect}"),
        }
    }
}
