//! The whole record path under the shipped mapping (the embedded default,
//! JSON ledger checked against the shipped schemas), on arbitrary values:
//! every record gets an outcome, never a panic; and a record that made
//! events, run again later, is a duplicate of itself.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recast::{Config, DedupeWindow, LegacyRecord, Memory, Pipeline, Position, RecordOutcome};

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        Config::load(None, Vec::new())
            .expect("the embedded default")
            .offline_pipeline()
    })
}

fn record(value: &[u8], offset: i64) -> LegacyRecord<'_> {
    LegacyRecord {
        position: Position {
            topic: "legacy-cart",
            partition: 0,
            offset,
        },
        timestamp_ms: Some(1_764_000_000_000),
        key: Some(b"cart-1"),
        value: Some(value),
        headers: Vec::new(),
    }
}

fuzz_target!(|value: &[u8]| {
    let mut window = DedupeWindow::new(100, None);
    let first = pipeline().run(&record(value, 1), Some(&mut window as &mut dyn Memory), 0);
    window.commit();
    let again = pipeline().run(&record(value, 2), Some(&mut window as &mut dyn Memory), 0);
    if let RecordOutcome::Events(events) = &first
        && events.iter().all(|e| e.dedupe_key.is_some())
    {
        assert_eq!(
            again,
            RecordOutcome::Duplicate { of_offset: 1 },
            "{first:?}"
        );
    }
});
