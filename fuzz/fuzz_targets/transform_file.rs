//! Transform files: any text, as a declarative file (first byte even) or a
//! Rhai script (odd), compiles or gets a reason with its line, never a
//! panic; what compiles maps the sample's records within the script
//! limits.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recast::{Config, Decoder, LegacyRecord, Mapping, Position, Trace, TransformFile};

struct Setup {
    config: Config,
    objects: Vec<serde_json::Map<String, serde_json::Value>>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let decoder = Decoder::new(1 << 20, 64);
        let objects = include_str!("../../tests/data/legacy-cart.jsonl")
            .lines()
            .take(20)
            .filter_map(|line| {
                let line: serde_json::Value = serde_json::from_str(line).ok()?;
                decoder
                    .decode(Some(line["value"].as_str()?.as_bytes()))
                    .ok()
            })
            .collect();
        Setup {
            config: Config::load(None, Vec::new()).expect("the embedded default"),
            objects,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let path = if kind % 2 == 0 {
        "fuzz.toml"
    } else {
        "fuzz.rhai"
    };
    let setup = setup();
    let file = TransformFile {
        path: path.into(),
        text: text.into(),
    };
    let Ok(mapping) = Mapping::compile(&[file], Some("fuzz"), &setup.config.raw.scripts) else {
        return;
    };
    let record = LegacyRecord {
        position: Position {
            topic: "legacy-cart",
            partition: 0,
            offset: 1,
        },
        timestamp_ms: None,
        key: Some(b"cart-1"),
        value: None,
        headers: Vec::new(),
    };
    for object in &setup.objects {
        let _ = mapping.apply(object.clone(), &record, &mut Trace::off());
    }
});
