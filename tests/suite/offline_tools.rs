//! The tools that try a mapping before it touches the ledger, run as the
//! operator runs them: `recast replay` over the sample, `recast test` on the
//! shipped golden cases and on failing ones, and `recast check` on an
//! invalid transform file. No broker.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn recast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recast"))
        .args(args)
        .current_dir(MANIFEST_DIR)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A configuration (the embedded default) whose chain is `transform`,
/// written with it into `dir`.
fn config_with_transform(dir: &Path, transform: &str) -> PathBuf {
    std::fs::write(dir.join("custom.toml"), transform).unwrap();
    // Its events have no schemas: a JSON ledger without them.
    let config = recast::EMBEDDED_DEFAULT
        .replace(
            "transforms = [\"../../transforms/cart.toml\", \"../../transforms/cart-amounts.rhai\"]",
            "transforms = [\"custom.toml\"]",
        )
        .replace("format = \"avro\"", "format = \"json\"")
        .replace(
            "schemas = [\"../../schemas/header.avsc\", \"../../schemas/cart\"]",
            "",
        );
    assert!(config.contains("transforms = [\"custom.toml\"]"));
    assert!(!config.contains("../../schemas"));
    let path = dir.join("recast.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn replay_turns_the_sample_into_what_its_expectations_say() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let output = recast(&[
        "replay",
        "--input",
        "tests/data/legacy-cart.jsonl",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let sample = common::sample();
    let summary = text(&output.stderr);
    assert!(
        summary.contains(
            "300 records: 243 became 243 events, 13 filtered, 35 duplicates, 9 rejected ("
        ),
        "{summary}"
    );
    assert!(
        summary.contains("mapping: unknown command `DELETE_EVERYTHING`"),
        "{summary}"
    );

    // Each event comes from a sample record expected to be that event (its
    // source offset is the record's line), and each request lands once.
    let mut landed: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let header = &event["value"]["header"];
        let offset = header["source"]["offset"].as_u64().unwrap() as usize;
        let expect = &sample[offset].1;
        assert_eq!(expect["kind"], "event", "offset {offset}: {line}");
        assert_eq!(
            header["event_type"], expect["event_type"],
            "offset {offset}"
        );
        assert_eq!(header["correlation_id"], expect["id"], "offset {offset}");
        let payload = &event["value"]["payload"];
        for stripped in ["command", "_meta", "debug_trace"] {
            assert!(payload.get(stripped).is_none(), "{stripped} in {line}");
        }
        let email = payload["customer"]["email"].as_str().unwrap();
        assert!(!email.contains('@') && email.len() == 64, "{email}");
        *landed
            .entry(header["correlation_id"].as_str().unwrap().into())
            .or_default() += 1;
    }
    let requests = sample.iter().filter(|(_, e)| e["kind"] == "event").count();
    assert_eq!(landed.len(), requests);
    assert!(landed.values().all(|n| *n == 1), "a request landed twice");
}

#[test]
fn recast_test_passes_the_shipped_golden_cases() {
    let output = recast(&["test"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    let summary = stdout.lines().last().unwrap();
    assert!(summary.ends_with("passed, 0 failed"), "{summary}");
    let passed: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert!(passed >= 40, "{summary}");
}

#[test]
fn recast_test_shows_each_difference_of_a_failing_case() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("broken.toml");
    std::fs::write(
        &cases,
        r#"
[[case]]
name = "a wrong expectation"
key = "cart-1"
value = { command = "ADD_TO_CART", cartId = "cart-1", requestId = "r-1", customer = { id = "c-1" }, ts = 1, sku = "T", qty = 1, _meta = { host = "h" } }
[[case.expect.events]]
event_type = "ItemAdded"
payload = { cartId = "cart-1", requestId = "r-1", customer = { id = "c-1" }, ts = 1, qty = 2, sku = "S" }

[[case]]
name = "a rejection expected where an event comes"
value = '{"command": "CHECKOUT", "cartId": "c", "requestId": "r-2", "customer": {"id": "c-1"}, "ts": 1}'
expect = { rejected = { stage = "mapping", reason = "no" } }
"#,
    )
    .unwrap();
    let output = recast(&["test", cases.to_str().unwrap()]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for line in [
        "FAILED",
        "events[0].event_type: expected \"ItemAdded\", got \"AddedToCart\"",
        "events[0].payload.qty: expected 2, got 1",
        "events[0].payload.sku: expected \"S\", got \"T\"",
        "expected a rejection, got events: CheckedOut",
        "2 cases: 0 passed, 2 failed",
    ] {
        assert!(stdout.contains(line), "{line:?} not in\n{stdout}");
    }
}

#[test]
fn recast_test_shows_derived_event_types() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_transform(
        dir.path(),
        "[command]\nfield = \"command\"\nunknown = \"derive\"\n[event]\nkey = \"id\"\n",
    );
    let cases = dir.path().join("derive.toml");
    std::fs::write(
        &cases,
        r#"[[case]]
name = "an unmapped command is named by derivation"
value = { command = "SHIP_ORDER", id = "o-1" }
expect = { events = [{ event_type = "ShippedOrder", key = "o-1" }] }
"#,
    )
    .unwrap();
    let output = recast(&[
        "--config",
        config.to_str().unwrap(),
        "test",
        cases.to_str().unwrap(),
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(
        stdout.contains("derived: command `SHIP_ORDER` → event type `ShippedOrder`"),
        "{stdout}"
    );
}

#[test]
fn an_invalid_transform_fails_check_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_transform(
        dir.path(),
        r#"[command]
field = "command"
events = { PING = "Pinged" }

[[filter]]
# a health probe
when = { field = "host", matches = "^health-(" }
"#,
    );
    let output = recast(&["--config", config.to_str().unwrap(), "check"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    let expected = format!(
        "{}:7: `matches` is not a valid regex",
        dir.path().join("custom.toml").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `recast replay --topic` reads the committed records of the legacy
/// topic and decides them as the file replay does; the range options pick
/// per partition.
#[test]
fn replay_from_the_legacy_topic_agrees_with_the_file() {
    let s = common::Scenario::new("replay-topic", 1);
    let sample: Vec<_> = common::sample().into_iter().map(|(l, _)| l).collect();
    s.produce(&sample);
    let config = s.config(&[]);
    let summary = |range: &[&str]| {
        let mut args = vec![
            "--config",
            config.to_str().unwrap(),
            "replay",
            "--topic",
            "legacy",
            "--output",
            "/dev/null",
        ];
        args.extend_from_slice(range);
        let output = recast(&args);
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stderr)
    };
    let all = summary(&[]);
    assert!(
        all.contains(
            "300 records: 243 became 243 events, 13 filtered, 35 duplicates, 9 rejected ("
        ),
        "{all}"
    );
    let counted = |summary: String, n: usize| {
        assert!(
            summary
                .lines()
                .any(|l| l.starts_with(&format!("{n} records: "))),
            "{summary}"
        );
    };
    counted(summary(&["--last", "100"]), 100);
    counted(summary(&["--from-offset", "250"]), 50);
    counted(summary(&["--from-time", "2000-01-01T00:00:00Z"]), 300);
    counted(summary(&["--from-time", "2999-01-01T00:00:00Z"]), 0);
}

#[test]
fn infer_drafts_a_mapping_that_check_accepts_and_that_maps_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("draft");
    let output = recast(&[
        "infer",
        "--input",
        "tests/data/legacy-cart.jsonl",
        "--out",
        out.to_str().unwrap(),
        "--name-prefix",
        "shop.cart",
    ]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains(
            "AddedToCart                      ← ADD_TO_CART (13), AddToCart (25), add.to.cart (15)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "the draft over the sample:\n300 records: 244 became 244 events, 13 filtered, 35 duplicates, 8 rejected (decode 8)"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("@example.com"), "{stdout}");
    let config = out.join("recast.toml");
    let check = recast(&["--config", config.to_str().unwrap(), "check", "--offline"]);
    assert!(check.status.success(), "{}", text(&check.stdout));
}

#[test]
fn infer_from_the_legacy_topic_reports_what_it_reports_from_the_file() {
    let s = common::Scenario::new("infer-topic", 1);
    let sample: Vec<_> = common::sample().into_iter().map(|(l, _)| l).collect();
    s.produce(&sample);
    let config = s.config(&[]);
    let config = config.to_str().unwrap();
    let from_file = recast(&[
        "--config",
        config,
        "infer",
        "--input",
        "tests/data/legacy-cart.jsonl",
    ]);
    let from_topic = recast(&[
        "--config", config, "infer", "--topic", "legacy", "--last", "1000",
    ]);
    assert!(from_topic.status.success(), "{}", text(&from_topic.stderr));
    let report = text(&from_topic.stdout);
    assert!(report.starts_with("300 records: 292 decoded"), "{report}");
    assert_eq!(report, text(&from_file.stdout));
}
