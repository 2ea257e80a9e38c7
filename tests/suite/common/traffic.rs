//! Legacy traffic: the shipped sample, and generated traffic shaped like
//! it, each record with its expected outcome.

use serde_json::Value;

use super::broker::repo;
use recast::legacy_file::LegacyLine;

/// The sample legacy traffic with its expected outcomes.
pub(crate) fn sample() -> Vec<(LegacyLine, Value)> {
    let text = std::fs::read_to_string(repo().join("tests/data/legacy-cart.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                serde_json::from_value(v.clone()).unwrap(),
                v["expect"].clone(),
            )
        })
        .collect()
}

/// What a correct worker does with a generated legacy record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expect {
    /// One ledger event of this type, keyed by `key`, correlated by `request_id`.
    Event {
        event_type: &'static str,
        request_id: String,
        key: String,
    },
    /// Noise: neither in the ledger nor in the dead-letter topic.
    Filtered,
    /// A retry of an earlier request: dropped by the dedupe window.
    Duplicate,
    /// One dead letter with this (unique) key and a reason starting so.
    Reject { key: String, reason: &'static str },
}

const COMMANDS: [(&str, &str); 15] = [
    ("ADD_TO_CART", "AddedToCart"),
    ("AddToCart", "AddedToCart"),
    ("add.to.cart", "AddedToCart"),
    ("REMOVE_FROM_CART", "RemovedFromCart"),
    ("remove-from-cart", "RemovedFromCart"),
    ("RemoveFromCart", "RemovedFromCart"),
    ("UPDATE_QUANTITY", "QuantityUpdated"),
    ("update.quantity", "QuantityUpdated"),
    ("UpdateQuantity", "QuantityUpdated"),
    ("APPLY_COUPON", "CouponApplied"),
    ("ApplyCoupon", "CouponApplied"),
    ("apply.coupon", "CouponApplied"),
    ("CHECKOUT", "CheckedOut"),
    ("Checkout", "CheckedOut"),
    ("checkout", "CheckedOut"),
];

/// `n` legacy records shaped like the sample (technical context, three
/// spellings per command, heartbeats, malformed records), each with its
/// expected outcome. Request ids are unique, so each event is findable.
pub(crate) fn generate(n: usize, tag: &str) -> Vec<(LegacyLine, Expect)> {
    let line = |key: Option<String>, value: String| LegacyLine {
        key,
        value: Some(value),
        headers: std::collections::BTreeMap::new(),
        timestamp: None,
    };
    (0..n)
        .map(|i| {
            if i % 50 == 7 {
                let v = format!(
                    r#"{{"command": "HEARTBEAT", "_meta": {{"host": "cart-web-{}", "retry": 0}}}}"#,
                    i % 40
                );
                return (line(None, v), Expect::Filtered);
            }
            if i % 97 == 3 {
                let key = format!("bad-{tag}-{i}");
                let (value, reason) = match (i / 97) % 5 {
                    0 => (
                        format!(r#"{{"command": "ADD_TO_CART", "requestId": "{i}", "cartId": "#),
                        "invalid JSON",
                    ),
                    1 => (
                        format!(r#"{{"command": "DELETE_EVERYTHING", "cartId": "cart-{i}"}}"#),
                        "unknown command `DELETE_EVERYTHING`",
                    ),
                    2 => (format!("\u{0}\u{1}binary-{i}"), "invalid JSON"),
                    3 => (String::new(), "empty value"),
                    _ => (
                        format!(r#"{{"command": "checkout", "requestId": "x-{i}"}}"#),
                        "no ledger key at `cartId`",
                    ),
                };
                return (line(Some(key.clone()), value), Expect::Reject { key, reason });
            }
            let (command, event_type) = COMMANDS[(i * 7 + i / 13) % COMMANDS.len()];
            let cart = format!("cart-{}", (i * 31) % 211);
            let request_id = format!("{tag}-{i}");
            // What each command carries besides the common fields.
            let details = match event_type {
                "CouponApplied" => format!(r#""coupon": "WINTER-{}""#, i % 17),
                "CheckedOut" => format!(r#""total": {}.{:02}"#, i % 500, i % 100),
                _ => format!(r#""sku": "SKU-{}", "qty": {}"#, i % 9000, 1 + i % 5),
            };
            let value = format!(
                r#"{{"command": "{command}", "requestId": "{request_id}", "cartId": "{cart}", "customer": {{"id": "c-{i}", "email": "user{i}@example.com"}}, "ts": {ts}, {details}, "_meta": {{"host": "cart-web-{host}", "thread": "http-nio-8080-exec-{i}", "retry": {retry}, "sql": "UPDATE cart SET v=v+1 WHERE id=?"}}, "debug_trace": "{i:032x}"}}"#,
                ts = 1_764_000_000_000_i64 + i as i64,
                host = i % 40,
                retry = i % 4,
            );
            (
                line(Some(cart.clone()), value),
                Expect::Event {
                    event_type,
                    request_id,
                    key: cart,
                },
            )
        })
        .collect()
}

/// How many originals end generated traffic with no retry among them. The
/// test broker does not move the group's offsets for a transaction that
/// writes nothing (README, "The test broker"): traffic that ended in a run
/// of retries could end a partition on a batch of duplicates only, and a
/// test waiting for the group to catch up would wait forever. The last
/// fifty originals (one heartbeat among them) leave every partition's last
/// record one that writes.
const RETRY_FREE_TAIL: usize = 50;

/// `generate`'s traffic with retries mixed in, as legacy producers send
/// them: every fifth request again, up to ~250 records later (across batch
/// boundaries), with new technical context; none among the last
/// [`RETRY_FREE_TAIL`] records.
pub(crate) fn generate_with_retries(n: usize, tag: &str) -> Vec<(LegacyLine, Expect)> {
    let mut records = generate(n, tag);
    let last_retry_position = n.saturating_sub(RETRY_FREE_TAIL);
    let mut retries: Vec<(usize, (LegacyLine, Expect))> = records
        .iter()
        .enumerate()
        .filter(|(i, (_, e))| i % 5 == 0 && matches!(e, Expect::Event { .. }))
        .map(|(i, (line, _))| {
            let mut retry = line.clone();
            retry.value = retry.value.map(|v| {
                v.replace("\"retry\": ", "\"retry\": 1")
                    .replace("cart-web-", "cart-web-retry-")
            });
            (i + 1 + (i % 7) * 40, (retry, Expect::Duplicate))
        })
        .filter(|(position, _)| *position <= last_retry_position)
        .collect();
    // Insert from the highest position down: each insertion then leaves
    // every original where the retries still to insert expect it.
    retries.sort_by_key(|(position, _)| std::cmp::Reverse(*position));
    for (position, retry) in retries {
        records.insert(position, retry);
    }
    records
}

#[test]
fn generated_traffic_ends_on_originals() {
    for n in [1_000, 20_000] {
        let traffic = generate_with_retries(n, "tail");
        let tail = &traffic[traffic.len() - RETRY_FREE_TAIL..];
        assert!(
            tail.iter().all(|(_, e)| !matches!(e, Expect::Duplicate)),
            "a retry among the last {RETRY_FREE_TAIL} of {n}"
        );
    }
}

/// The legacy lines of generated traffic.
pub(crate) fn lines(records: &[(LegacyLine, Expect)]) -> Vec<LegacyLine> {
    records.iter().map(|(l, _)| l.clone()).collect()
}

/// What generated traffic expects.
pub(crate) fn expects(records: &[(LegacyLine, Expect)]) -> Vec<Expect> {
    records.iter().map(|(_, e)| e.clone()).collect()
}
