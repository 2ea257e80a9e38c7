//! The ledger's wire format, checked by a decoder recast did not write:
//! Confluent's Python client (`SchemaRegistryClient` + `AvroDeserializer`,
//! over fastavro, from `PyPI`) decodes every event of an end-to-end run of
//! the sample through the same registry, and each decoded event must be
//! the one expected.

use crate::common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use recast::Config;
use recast::Offline;
use recast::Position;
use recast::RecordOutcome;
use recast::legacy_file::LegacyLine;

use common::{Scenario, registry, sample};

/// The Python interpreter with the decoder's packages, installed (once per
/// machine) by `tests/independent/install.sh`.
fn python() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/install.sh");
    let output = Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/independent/install.sh");
    assert!(
        output.status.success(),
        "installing the Python decoder failed"
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The committed ledger decoded by the Python client, a JSON object per event.
fn decode_in_python(s: &Scenario) -> Vec<Value> {
    let mut input = String::new();
    for record in &s.ledger().committed {
        let key = String::from_utf8(record.key.clone().expect("ledger key").to_vec()).unwrap();
        let value = hex(record.value.as_deref().expect("event value"));
        let _ = writeln!(input, "{}", json!({ "key": key, "value": value }));
    }
    // From a file: a pipe written while the decoder's output is unread
    // would fill both ways.
    let values = s.dir.join("ledger-values.jsonl");
    std::fs::write(&values, input).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/decode_ledger.py");
    let output = Command::new(python())
        .arg(script)
        .arg(registry())
        .arg(&s.ledger)
        .stdin(std::fs::File::open(&values).unwrap())
        .output()
        .expect("run the Python decoder");
    assert!(
        output.status.success(),
        "the Python decoder failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What each event must be, by request id: its ledger key and the event
/// recast's offline mapping makes of the same record (as JSON), checked
/// against the sample's expectations.
fn expected_events(
    config: &Path,
    sample: &[(LegacyLine, Value)],
) -> HashMap<String, (String, Value)> {
    let config = Config::load(Some(config), Vec::new()).unwrap();
    let mut offline = Offline::new(&config);
    let mut expected = HashMap::new();
    for (line, expect) in sample {
        if let RecordOutcome::Events(events) = offline.run(line, 0) {
            for event in events {
                let json: Value = serde_json::from_slice(&event.value).unwrap();
                let id = json["header"]["correlation_id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                assert_eq!(json["header"]["event_type"], expect["event_type"]);
                assert_eq!(id, expect["id"].as_str().unwrap());
                expected.insert(id, (event.key, json));
            }
        }
    }
    let sample_events = sample.iter().filter(|(_, e)| e["kind"] == "event").count();
    assert_eq!(expected.len(), sample_events);
    expected
}

#[test]
fn an_independent_client_decodes_every_event_through_the_registry() {
    let s = Scenario::new("independent", 2);
    let sample = sample();
    s.produce(
        &sample
            .iter()
            .map(|(line, _)| line.clone())
            .collect::<Vec<_>>(),
    );
    let config_path = s.config(&[]);
    s.run_until_drained(&config_path, "independent-1", 2);

    let decoded = decode_in_python(&s);
    let mut expected = expected_events(&config_path, &sample);
    assert_eq!(decoded.len(), expected.len(), "ledger events decoded");

    for line in decoded {
        let mut event = line["event"].clone();
        let header = event
            .as_object_mut()
            .unwrap()
            .remove("header")
            .expect("a header");
        let id = header["correlation_id"].as_str().expect("a correlation id");
        let (key, want) = expected
            .remove(id)
            .unwrap_or_else(|| panic!("{id} decoded twice or never expected"));
        let event_type = want["header"]["event_type"].as_str().unwrap();
        assert_eq!(line["key"], key.as_str(), "{id}");
        assert_eq!(line["record"], format!("shop.cart.{event_type}"), "{id}");
        assert_eq!(line["subject_latest_id"], line["schema_id"], "{id}");
        assert_eq!(header["event_type"], event_type, "{id}");
        assert_eq!(
            recast::format_millis(header["occurred_at"].as_i64().unwrap()),
            want["header"]["occurred_at"].as_str().unwrap(),
            "{id}"
        );
        assert!(header["recorded_at"].as_i64().unwrap() > 1_700_000_000_000);
        assert_eq!(
            header["mapping_version"], want["header"]["mapping_version"],
            "{id}"
        );
        assert_eq!(header["source"]["system"], "cart-service");
        assert_eq!(header["source"]["topic"], s.legacy.as_str());
        let position = Position {
            topic: &s.legacy,
            partition: i32::try_from(header["source"]["partition"].as_i64().unwrap()).unwrap(),
            offset: header["source"]["offset"].as_i64().unwrap(),
        };
        assert_eq!(
            header["event_id"],
            recast::envelope::event_id(position, 0).to_string(),
            "{id}"
        );
        assert_eq!(event, want["payload"], "{id}");
    }
    assert!(expected.is_empty(), "never decoded: {:?}", expected.keys());
}
