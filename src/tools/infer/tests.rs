//! `recast infer` on the shipped sample, on generated traffic of a
//! service it has never seen, and the property that no sampled personal
//! value is ever written.

use proptest::prelude::*;

use super::*;

fn sample() -> Vec<LegacyLine> {
    let text = include_str!("../../../tests/data/legacy-cart.jsonl");
    crate::tools::legacy_file::parse(text).unwrap()
}

#[test]
fn the_cart_sample_gives_the_shipped_mapping_in_substance() {
    let config = Config::load(None, Vec::new()).unwrap();
    let inference = infer(&config, sample(), &InferOptions::default());
    assert_eq!(inference.records, 300);
    assert_eq!(inference.command_field.as_deref(), Some("command"));
    let types: Vec<(&str, Option<&str>)> = inference
        .commands
        .iter()
        .map(|c| (c.normalised.as_str(), c.event_type.as_deref()))
        .collect();
    for expected in [
        ("addtocart", Some("AddedToCart")),
        ("removefromcart", Some("RemovedFromCart")),
        ("updatequantity", Some("UpdatedQuantity")),
        ("applycoupon", Some("AppliedCoupon")),
        ("checkout", Some("CheckedOut")),
        ("heartbeat", None),
    ] {
        assert!(types.contains(&expected), "{expected:?} in {types:?}");
    }
    let add = &inference.types["AddedToCart"];
    assert!(add.fields["_meta.host"].noise.is_some());
    assert!(add.fields["_meta.sql"].noise.is_some());
    assert!(add.fields["debug_trace"].noise.is_some());
    assert_eq!(
        add.fields["customer.email"].personal,
        Some("an e-mail address")
    );
    assert!(add.fields["sku"].noise.is_none() && add.fields["sku"].personal.is_none());
    assert_eq!(
        inference.ledger_key.as_ref().map(|(k, _)| k.as_str()),
        Some("cartId")
    );
    assert_eq!(
        inference.event_time.as_ref().map(|(t, _)| t.as_str()),
        Some("ts")
    );
    assert_eq!(inference.correlation_id.as_deref(), Some("requestId"));
    let report = inference.to_string();
    assert!(!report.contains("@example.com"), "{report}");
    assert!(report.contains("AddedToCart"), "{report}");
}

#[test]
fn the_draft_loads_checks_and_maps_the_whole_sample() {
    let config = Config::load(None, Vec::new()).unwrap();
    let lines = sample();
    let inference = infer(&config, lines.clone(), &InferOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let written = write_draft(&inference, &config, dir.path(), "the sample", "shop.cart").unwrap();
    assert!(
        written
            .files
            .iter()
            .any(|f| f.ends_with("AddedToCart.avsc"))
    );
    for file in &written.files {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(
            !text.contains("@example.com"),
            "{}: a sampled address",
            file.display()
        );
    }
    let drafted = Config::load(Some(&dir.path().join("recast.toml")), Vec::new()).unwrap();
    let report = crate::tools::check::check(&drafted, &[], None);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let text: String = lines
        .iter()
        .map(|l| serde_json::to_string(l).unwrap() + "\n")
        .collect();
    let summary =
        crate::tools::replay::replay(&drafted, text.as_bytes(), &mut std::io::sink(), 0, |_| {})
            .unwrap();
    // Every sampled record accounted for: the malformed ones rejected at
    // decode, nothing rejected by the schemas drafted from the events.
    assert_eq!(summary.counts.records, 300);
    assert_eq!(summary.counts.filtered, 13);
    assert_eq!(summary.counts.duplicates, 35);
    assert_eq!(summary.counts.rejected_total(), 8);
    assert!(
        summary
            .reasons
            .keys()
            .all(|(stage, _)| *stage == crate::pipeline::Stage::Decode)
    );
    assert_eq!(summary.counts.events["AddedToCart"], 45);
    for stripped in ["_meta.host", "_meta.sql", "debug_trace", "command"] {
        assert!(
            summary.stripped.contains_key(stripped),
            "{stripped} reaches the ledger"
        );
    }
    let cases = crate::tools::golden::case_files(&[dir.path().join("transforms/tests")]).unwrap();
    let tested = crate::tools::golden::run(&drafted, &cases).unwrap();
    assert_eq!((tested.passed, tested.failed), (19, 0), "{}", tested.text);
}

/// A card number: 15 digits and their Luhn check digit.
fn card(digits: &[u32]) -> String {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                (d * 2) % 10 + d * 2 / 10
            } else {
                d
            }
        })
        .sum();
    let check = (10 - sum % 10) % 10;
    let mut text: String = digits
        .iter()
        .map(|d| char::from_digit(*d, 10).unwrap())
        .collect();
    text.push(char::from_digit(check, 10).unwrap());
    text
}

fn personal_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            "[a-z]{3,8}",
            "[a-z]{3,8}",
            prop::sample::select(vec!["com", "org", "de"])
        )
            .prop_map(|(user, domain, tld)| format!("{user}@{domain}.{tld}")),
        prop::collection::vec(0u32..10, 15).prop_map(|d| card(&d)),
        (1u8..=254, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
        ("[1-9][0-9]{2}", "[0-9]{7}").prop_map(|(area, number)| format!("+49 {area} {number}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Whatever field personal data is in, neither the report nor the
    /// draft carries a sampled value of it.
    #[test]
    fn no_sampled_personal_value_is_ever_written(
        values in prop::collection::vec(personal_value(), 4..12),
        fields in prop::collection::vec(prop::sample::select(vec!["contact", "payer.ref", "origin", "note", "x"]), 4..12),
    ) {
        let config = Config::load(None, Vec::new()).unwrap();
        let lines: Vec<LegacyLine> = values
            .iter()
            .zip(fields.iter().cycle())
            .enumerate()
            .map(|(i, (value, field))| {
                let mut payload = serde_json::json!({"command": "PAY_ORDER", "orderId": format!("o-{i}"), "ts": 1_764_000_000_000_i64 + i as i64});
                let (parent, leaf) = field.split_once('.').map_or((None, *field), |(p, l)| (Some(p), l));
                match parent {
                    Some(parent) => payload[parent] = serde_json::json!({ leaf: value }),
                    None => payload[leaf] = value.clone().into(),
                }
                LegacyLine {
                    key: Some(format!("o-{i}")),
                    value: Some(payload.to_string()),
                    headers: std::collections::BTreeMap::new(),
                    timestamp: None,
                }
            })
            .collect();
        let inference = infer(&config, lines, &InferOptions::default());
        let mut written = inference.to_string();
        let dir = tempfile::tempdir().unwrap();
        let files = write_draft(&inference, &config, dir.path(), "generated", "pay").unwrap();
        for file in &files.files {
            written.push_str(&std::fs::read_to_string(dir.path().join(file)).unwrap());
        }
        for value in &values {
            prop_assert!(!written.contains(value.as_str()), "{value} written in clear");
        }
    }
}

/// Legacy traffic of a payments service recast was not built for: its
/// own command field (`type`) and spellings, a liveness command, tracing
/// context and retry counters, personal data in fields named anything
/// (`pan`, `contact`, `tel`, `origin`, `holderName`), an amount sent as a
/// number or a string, RFC 3339 times, retries that reuse the idempotency
/// key, and truncated records.
fn payments(n: usize) -> Vec<LegacyLine> {
    let spellings = [
        "AUTHORIZE_PAYMENT",
        "authorize.payment",
        "AuthorizePayment",
        "CAPTURE_PAYMENT",
        "capture-payment",
        "REFUND_PAYMENT",
        "refundPayment",
    ];
    (0..n)
        .map(|i| {
            let line = |key: Option<String>, value: String| LegacyLine {
                key,
                value: Some(value),
                headers: std::collections::BTreeMap::new(),
                timestamp: None,
            };
            if i % 37 == 5 {
                return line(None, format!(r#"{{"type": "PING", "node": "pay-{}"}}"#, i % 4));
            }
            let payment = format!("pay-{}", i % 97);
            if i % 53 == 7 {
                return line(Some(payment), r#"{"type": "CAPTURE_PAYMENT", "paymentId": "#.into());
            }
            // Every tenth record retries the one before it.
            let request = if i % 10 == 9 { i - 1 } else { i };
            let amount = if i % 5 == 0 {
                serde_json::json!(format!("{}.50", 10 + i % 90))
            } else {
                serde_json::json!(10.5 + (i % 90) as f64)
            };
            let value = serde_json::json!({
                "type": spellings[(request * 3) % spellings.len()],
                "paymentId": payment,
                "idempotencyKey": format!("idem-{request}"),
                "amount": amount,
                "currency": "EUR",
                "created": format!("2026-11-{:02}T10:{:02}:{:02}Z", 1 + request % 28, request % 60, (request * 7) % 60),
                "card": {"pan": card(&[4, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, (request % 10) as u32, 6, 7]), "holderName": "Grace Hopper"},
                "payer": {"contact": format!("payer{request}@mail.example.org"), "tel": "+44 20 7946 0958", "origin": format!("10.1.{}.{}", request % 250, 1 + request % 200)},
                "trace": {"span": format!("{:016x}", request * 7919), "pod": "pay-7f9c"},
                "retry_count": i % 3,
            });
            line(Some(payment), value.to_string())
        })
        .collect()
}

#[test]
fn a_service_never_seen_gets_a_draft_that_strips_noise_protects_personal_data_and_fits() {
    let config = Config::load(None, Vec::new()).unwrap();
    let lines = payments(600);
    let inference = infer(&config, lines.clone(), &InferOptions::default());
    assert_eq!(inference.command_field.as_deref(), Some("type"));
    let commands: Vec<(&str, Option<&str>, usize)> = inference
        .commands
        .iter()
        .map(|c| {
            (
                c.normalised.as_str(),
                c.event_type.as_deref(),
                c.spellings.len(),
            )
        })
        .collect();
    assert_eq!(
        commands,
        [
            ("authorizepayment", Some("AuthorizedPayment"), 3),
            ("capturepayment", Some("CapturedPayment"), 2),
            ("ping", None, 1),
            ("refundpayment", Some("RefundedPayment"), 2),
        ]
    );
    assert_eq!(
        inference.ledger_key.as_ref().map(|(k, _)| k.as_str()),
        Some("paymentId")
    );
    assert_eq!(
        inference.event_time,
        Some(("created".to_owned(), vec!["RFC 3339"]))
    );
    assert_eq!(inference.correlation_id.as_deref(), Some("idempotencyKey"));
    assert!(inference.all.fields["amount"].varies());

    let dir = tempfile::tempdir().unwrap();
    let written = write_draft(&inference, &config, dir.path(), "payments", "pay").unwrap();
    let transform =
        std::fs::read_to_string(dir.path().join("transforms/legacy-cart.toml")).unwrap();
    assert!(
        transform.contains(r#"drop = ["type", "node", "retry_count", "trace"]"#),
        "{transform}"
    );
    assert!(
        transform.contains(
            r#"hash = ["card.holderName", "payer.contact", "payer.origin", "payer.tel"]"#
        ),
        "{transform}"
    );
    assert!(
        transform.contains(r#"mask = { "card.pan" = 4 }"#),
        "{transform}"
    );
    assert!(transform.contains("ignore = [\"PING\"]"), "{transform}");
    for file in &written.files {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        for line in &lines {
            let value: Value = match serde_json::from_str(line.value.as_deref().unwrap()) {
                Ok(value) => value,
                Err(_) => continue,
            };
            for personal in ["/payer/contact", "/payer/origin", "/card/pan"] {
                if let Some(sampled) = value.pointer(personal).and_then(Value::as_str) {
                    assert!(!text.contains(sampled), "{}: {sampled}", file.display());
                }
            }
        }
    }

    let drafted = Config::load(Some(&dir.path().join("recast.toml")), Vec::new()).unwrap();
    let report = crate::tools::check::check(&drafted, &[], None);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let text: String = lines
        .iter()
        .map(|l| serde_json::to_string(l).unwrap() + "\n")
        .collect();
    let summary =
        crate::tools::replay::replay(&drafted, text.as_bytes(), &mut std::io::sink(), 0, |_| {})
            .unwrap();
    // Only the truncated records are rejected: every mapped event fits the
    // schemas drafted from the events, the varying amount included.
    let truncated = (0..600).filter(|i| i % 53 == 7 && i % 37 != 5).count() as u64;
    assert_eq!(
        summary.counts.rejected_total(),
        truncated,
        "{:?}",
        summary.reasons
    );
    assert!(
        summary
            .reasons
            .keys()
            .all(|(stage, _)| *stage == crate::pipeline::Stage::Decode)
    );
    assert!(summary.counts.duplicates > 0);
    for stripped in ["trace.span", "trace.pod", "retry_count", "type"] {
        assert!(
            summary.stripped.contains_key(stripped),
            "{stripped} reaches the ledger"
        );
    }
    let cases = crate::tools::golden::case_files(&[dir.path().join("transforms/tests")]).unwrap();
    let tested = crate::tools::golden::run(&drafted, &cases).unwrap();
    assert!(tested.passed >= 8 && tested.failed == 0, "{}", tested.text);
}
