//! Hostile legacy records: each goes to the dead-letter topic with a reason,
//! and the worker keeps running.

use crate::common;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use common::{Scenario, TIMEOUT, brokers};

struct Bad {
    key: Option<&'static str>,
    value: Option<Vec<u8>>,
    /// Expected reason prefix; `None` for a record that must become an event.
    reason: Option<&'static str>,
}

/// A dead letter with this reason prefix.
fn rejected(key: &'static str, value: Option<&[u8]>, reason: &'static str) -> Bad {
    Bad {
        key: Some(key),
        value: value.map(<[u8]>::to_vec),
        reason: Some(reason),
    }
}

/// A valid command: must become an event.
fn valid(key: Option<&'static str>, cart: &str, id: &str) -> Bad {
    let value = format!(
        r#"{{"command": "AddToCart", "requestId": "{id}", "cartId": "{cart}", "customer": {{"id": "c-1"}}, "ts": 1764000000000, "sku": "S", "qty": 1}}"#
    );
    Bad {
        key,
        value: Some(value.into_bytes()),
        reason: None,
    }
}

fn cases() -> Vec<Bad> {
    let huge = vec![b'x'; 1 << 20];
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(500), "]".repeat(500));
    vec![
        rejected(
            "truncated",
            Some(br#"{"command": "ADD_TO_CART", "cartId": "#),
            "invalid JSON",
        ),
        rejected(
            "garbage",
            Some(b"\x00\x01binary\xff\xfe"),
            "value is not UTF-8",
        ),
        rejected("empty", Some(b""), "empty value"),
        rejected("tombstone", None, "no value (tombstone)"),
        rejected(
            "huge",
            Some(&huge),
            "value of 1048576 bytes exceeds limits.max_value_bytes",
        ),
        rejected(
            "unknown",
            Some(br#"{"command": "DELETE_EVERYTHING", "cartId": "c"}"#),
            "unknown command `DELETE_EVERYTHING`",
        ),
        rejected("deep", Some(deep.as_bytes()), "JSON nested deeper"),
        rejected(
            "twice",
            Some(br#"{"command": "CHECKOUT", "cartId": "c", "command": "ADD_TO_CART"}"#),
            "invalid JSON at line 1 column 48: duplicate key `command`",
        ),
        rejected(
            "array",
            Some(b"[1, 2, 3]"),
            "JSON value is an array, not an object",
        ),
        rejected(
            "no-command",
            Some(br#"{"cartId": "c"}"#),
            "no command at `command`",
        ),
        rejected(
            "bad-time",
            Some(br#"{"command": "checkout", "cartId": "c", "ts": "last tuesday"}"#),
            "event time at `ts`",
        ),
        // Mapped, but not what the event's schema says: never half-right
        // in the ledger.
        rejected(
            "misfit",
            Some(
                br#"{"command": "AddToCart", "requestId": "r-misfit", "cartId": "c", "customer": {"id": "c-1"}, "ts": 1, "sku": "S", "qty": "many"}"#,
            ),
            "shop.cart.AddedToCart: field `qty`: expected int, got string \"many\"",
        ),
        // A null key is fine: the ledger key comes from the payload.
        valid(None, "cart-null-key", "r-null-key"),
        // And the worker is still running after all of the above.
        valid(Some("cart-after"), "cart-after", "r-after"),
    ]
}

/// Writes the cases as raw bytes, each with an original header to keep.
fn produce(topic: &str, cases: &[Bad]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", "2000000")
        .create()
        .unwrap();
    for case in cases {
        let headers = OwnedHeaders::new().insert(Header {
            key: "origin",
            value: Some("legacy-app"),
        });
        let mut record = BaseRecord::<str, [u8]>::to(topic).headers(headers);
        if let Some(key) = case.key {
            record = record.key(key);
        }
        if let Some(value) = &case.value {
            record = record.payload(value.as_slice());
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(TIMEOUT).unwrap();
}

#[test]
fn every_bad_record_is_dead_lettered_with_a_reason() {
    let s = Scenario::new("bad", 1);
    let cases = cases();
    produce(&s.legacy, &cases);
    s.run_until_drained(&s.config(&[]), "w1", 1);

    let dead = s.dead_letters();
    let rejected: Vec<&Bad> = cases.iter().filter(|c| c.reason.is_some()).collect();
    assert_eq!(dead.committed.len(), rejected.len());
    for (record, case) in dead.committed.iter().zip(&rejected) {
        let key = record
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned());
        let reason = record.header("recast.reason").unwrap();
        assert!(
            reason.starts_with(case.reason.unwrap()),
            "{key:?}: {reason}"
        );
        assert_eq!(
            record.header("origin").as_deref(),
            Some("legacy-app"),
            "original headers kept"
        );
        assert_eq!(
            record.header("recast.source.topic").as_deref(),
            Some(s.legacy.as_str())
        );
        if case.key == Some("huge") {
            // Too large for the dead-letter topic: kept, countable, findable.
            assert!(record.value.is_none());
            let omitted = record.header("recast.value.omitted").unwrap();
            assert!(
                omitted.starts_with("value of 1048576 bytes and key of 4 bytes"),
                "{omitted}"
            );
            assert_eq!(record.header("recast.source.offset").as_deref(), Some("4"));
        } else {
            assert_eq!(key.as_deref(), case.key, "key unchanged");
            assert_eq!(
                record.value.as_deref(),
                case.value.as_deref(),
                "value unchanged"
            );
        }
    }
    assert_eq!(
        common::correlation_ids(&s.ledger()),
        ["r-null-key", "r-after"]
    );
}

#[test]
fn an_event_above_the_output_limit_is_dead_lettered_not_retried_forever() {
    // A broker refusing an oversized record would fail every retry of its
    // transaction; recast refuses it first, against limits.max_output_bytes.
    let s = Scenario::new("output-limit", 1);
    let sku = "n".repeat(5_000);
    let big = format!(
        r#"{{"command": "AddToCart", "requestId": "r-big", "cartId": "cart-big", "customer": {{"id": "c-1"}}, "ts": 1764000000000, "sku": "{sku}", "qty": 1}}"#
    );
    let cases = vec![
        Bad {
            key: Some("cart-big"),
            value: Some(big.into_bytes()),
            reason: Some("event of"),
        },
        valid(Some("cart-small"), "cart-small", "r-small"),
    ];
    produce(&s.legacy, &cases);
    let config = s.config(&[("limits.max_output_bytes", "4000")]);
    s.run_until_drained(&config, "w1", 1);

    let dead = s.dead_letters();
    assert_eq!(dead.committed.len(), 1);
    let record = &dead.committed[0];
    assert_eq!(record.header("recast.stage").as_deref(), Some("encode"));
    let reason = record.header("recast.reason").unwrap();
    assert!(
        reason.ends_with("exceeds limits.max_output_bytes (4000)"),
        "{reason}"
    );
    // The dead letter itself would exceed the limit with its value.
    assert!(record.value.is_none());
    assert!(record.header("recast.value.omitted").is_some());
    assert_eq!(common::correlation_ids(&s.ledger()), ["r-small"]);
}

/// A Rhai transform that turns hostile on command: each attack must hit its
/// sandbox limit, reject only its own record, and leave the worker running.
const HOSTILE_SCRIPT: &str = r#"
fn transform(record) {
    switch record.payload.attack {
        "loop" => { loop { } },
        "string" => { let s = "x"; loop { s += s; } },
        "recursion" => deeper(0),
        "array" => { let a = []; loop { a.push(0); } },
        "map" => { let m = #{}; let i = 0; loop { let one = #{}; one[`k${i}`] = i; m += one; i += 1; } },
        _ => record
    }
}

fn deeper(n) { deeper(n + 1) }
"#;

#[test]
fn a_script_over_a_sandbox_limit_rejects_only_its_record() {
    let s = Scenario::new("sandbox", 1);
    let script = s.dir.join("hostile.rhai");
    std::fs::write(&script, HOSTILE_SCRIPT).unwrap();
    let attack = |attack: &str| {
        format!(
            r#"{{"command": "AddToCart", "requestId": "r-{attack}", "cartId": "c", "attack": "{attack}"}}"#
        )
        .into_bytes()
    };
    let limits = [
        ("loop", "exceeded scripts.max_operations (100000)"),
        ("string", "exceeded scripts.max_string_bytes (1048576)"),
        ("recursion", "exceeded scripts.max_call_depth (32)"),
        ("array", "exceeded scripts.max_array_len (1000)"),
        ("map", "exceeded scripts.max_map_len (1000)"),
    ];
    let mut cases: Vec<Bad> = limits
        .iter()
        .map(|(name, _)| Bad {
            key: Some("c"),
            value: Some(attack(name)),
            reason: None,
        })
        .collect();
    cases.push(valid(Some("cart-after"), "cart-after", "r-after"));
    produce(&s.legacy, &cases);
    let chain = format!(
        r#"["{}/transforms/cart.toml", "{}"]"#,
        env!("CARGO_MANIFEST_DIR"),
        script.display()
    );
    let config = s.config(&[
        ("mapping.transforms", &chain),
        // Collections hit their own limit before the operations limit.
        ("scripts.max_array_len", "1000"),
        ("scripts.max_map_len", "1000"),
    ]);
    s.run_until_drained(&config, "w1", 1);

    let dead = s.dead_letters();
    assert_eq!(dead.committed.len(), limits.len());
    for (record, (attack, limit)) in dead.committed.iter().zip(limits) {
        let reason = record.header("recast.reason").unwrap();
        assert_eq!(
            reason,
            format!("script {}: {limit}", script.display()),
            "{attack}"
        );
        assert_eq!(record.header("recast.stage").as_deref(), Some("mapping"));
    }
    assert_eq!(common::correlation_ids(&s.ledger()), ["r-after"]);
}

#[test]
fn protected_dead_letters_hold_no_customer_data_in_clear_and_are_not_re_driven() {
    let s = Scenario::new("protect", 1);
    let email = "jane.doe@example.com";
    let cases = vec![
        rejected(
            "unknown",
            Some(format!(r#"{{"command": "DELETE_EVERYTHING", "cartId": "c", "customer": {{"id": "c-1", "email": "{email}"}}}}"#).as_bytes()),
            "unknown command `DELETE_EVERYTHING`",
        ),
        rejected("garbage", Some(format!("\u{0}{email}\u{1}").as_bytes()), "invalid JSON"),
    ];
    produce(&s.legacy, &cases);
    let config = s.config(&[
        ("dead_letter.protect", r#"["customer.email"]"#),
        ("dead_letter.undecodable", r#""omit""#),
    ]);
    s.run_until_drained(&config, "w1", 1);

    let dead = s.dead_letters();
    assert_eq!(dead.committed.len(), 2);
    for record in &dead.committed {
        let clear = |bytes: &Option<bytes::Bytes>| {
            bytes
                .as_deref()
                .is_some_and(|b| String::from_utf8_lossy(b).contains(email))
        };
        assert!(!clear(&record.value) && !clear(&record.key), "{record:?}");
    }
    let json = &dead.committed[0];
    assert_eq!(
        json.header("recast.protected").as_deref(),
        Some("customer.email")
    );
    let value: serde_json::Value = serde_json::from_slice(json.value.as_deref().unwrap()).unwrap();
    let hashed = value["customer"]["email"].as_str().unwrap();
    assert!(
        hashed.len() == 64 && hashed.chars().all(|c| c.is_ascii_hexdigit()),
        "{value}"
    );
    assert_eq!(value["command"], "DELETE_EVERYTHING", "the rest as it came");
    let garbage = &dead.committed[1];
    assert!(garbage.value.is_none() && garbage.key.is_none());
    let omitted = garbage.header("recast.value.omitted").unwrap();
    assert!(omitted.contains("not a JSON object"), "{omitted}");

    // Re-drive needs the original: explain says why it would pass them over.
    for (offset, why) in [(0, "replaced by their hash"), (1, "were left out")] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_recast"))
            .arg("--config")
            .arg(&config)
            .args(["explain", "--topic", "dead-letter", "--partition", "0"])
            .args(["--offset", &offset.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains(why), "offset {offset}: {text}");
    }
}
