//! What a sampled value is: technical noise, personal data, a time. By
//! name where names are telling (`_meta`, `thread`), by the value's shape
//! where they are not: an e-mail address in a field called `contact` is
//! still an e-mail address.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// What a field name says it holds, when that is technical context.
fn noise_name(segment: &str) -> Option<&'static str> {
    let name = segment.to_ascii_lowercase();
    if segment.starts_with('_') {
        return Some("technical envelope (a `_` field)");
    }
    if let Some((_, why)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Some(why);
    }
    if name.contains("retry") || name.contains("attempt") {
        return Some("a retry counter");
    }
    if name.starts_with("debug") || name.ends_with("debug") {
        return Some("debugging output");
    }
    if name.contains("trace") && !name.contains("request") {
        return Some("tracing context");
    }
    None
}

/// Field names that are technical context, and what they hold.
const NAMES: &[(&str, &str)] = &[
    ("host", "a host name"),
    ("hostname", "a host name"),
    ("server", "a server name"),
    ("pod", "a pod name"),
    ("node", "a node name"),
    ("thread", "a thread name"),
    ("pid", "a process id"),
    ("jvm", "a runtime version"),
    ("retry", "a retry counter"),
    ("retries", "a retry counter"),
    ("attempt", "a retry counter"),
    ("sql", "SQL"),
    ("query", "SQL"),
    ("stack", "a stack trace"),
    ("stacktrace", "a stack trace"),
    ("updated_by", "a writer's service account"),
    ("version", "a row version"),
];

/// Why a field is technical context, not part of the fact. Any segment
/// of the path may say it: everything under `_meta` or `trace` is
/// technical, whatever its own name.
pub(crate) fn noise(path: &str, value: &Value) -> Option<&'static str> {
    if let Some(why) = path
        .split('.')
        .find_map(|segment| noise_name(segment.trim_end_matches("[]")))
    {
        return Some(why);
    }
    let Value::String(text) = value else {
        return None;
    };
    if SQL.is_match(text) {
        return Some("SQL");
    }
    if text.contains("\n\tat ") || text.contains("Exception: ") && text.contains(" at ") {
        return Some("a stack trace");
    }
    None
}

static SQL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(select\s.+\sfrom\s|update\s+\S+\s+set\s|insert\s+into\s|delete\s+from\s)")
        .expect("valid")
});
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$").expect("valid"));
static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\+?[0-9][0-9 ()./-]{7,18}[0-9]$").expect("valid"));
static IPV4: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$").expect("valid"));
static PERSON: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\p{Lu}[\p{Ll}'-]+( \p{Lu}[\p{Ll}'-]+){1,3}$").expect("valid"));

/// What personal data a value is, by its shape.
pub(crate) fn personal(path: &str, value: &Value) -> Option<&'static str> {
    let text = match value {
        Value::String(s) => s.trim(),
        // Card numbers sent as JSON numbers (15 digits or more: 13-digit
        // numbers are epoch milliseconds far more often than old cards).
        Value::Number(n) if n.is_u64() => {
            let digits = n.to_string();
            return (digits.len() >= 15 && card(&digits)).then_some("a card number");
        }
        _ => return None,
    };
    if EMAIL.is_match(text) {
        return Some("an e-mail address");
    }
    if card(text) {
        return Some("a card number");
    }
    if IPV4
        .captures(text)
        .is_some_and(|c| (1..=4).all(|i| c[i].parse::<u16>().is_ok_and(|n| n <= 255)))
        || text.parse::<std::net::Ipv6Addr>().is_ok()
    {
        return Some("an IP address");
    }
    let digits = text.chars().filter(char::is_ascii_digit).count();
    if PHONE.is_match(text)
        && (9..=15).contains(&digits)
        && (text.starts_with('+') || text.contains(' ') || text.starts_with('0'))
    {
        return Some("a phone number");
    }
    // A person's name has no shape of its own: capitalised words in a field
    // whose name says it holds one.
    let name = path.rsplit('.').next().unwrap_or(path).to_ascii_lowercase();
    if PERSON.is_match(text) && name.contains("name") {
        return Some("a person's name");
    }
    None
}

/// 13 to 19 digits (spaces and dashes allowed) passing the Luhn check.
fn card(text: &str) -> bool {
    if !text
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
    {
        return false;
    }
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2, d * 2) {
            (1, doubled) if doubled > 9 => doubled - 9,
            (1, doubled) => doubled,
            _ => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A value's JSON type as a schema would name it: `integer` apart from
/// other numbers.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The form of an event time a value is in, if it looks like one.
pub(crate) fn time_form(value: &Value) -> Option<&'static str> {
    match value {
        Value::Number(n) => {
            let n = n.as_f64()?;
            if (1e12..1e13).contains(&n) {
                Some("epoch milliseconds")
            } else if (1e9..1e10).contains(&n) {
                Some("epoch seconds")
            } else {
                None
            }
        }
        Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .is_ok()
                .then_some("RFC 3339")
        }
        _ => None,
    }
}

/// A sampled value as the report may show it: personal data masked, long
/// text cut.
pub(crate) fn example(value: &Value, personal: bool) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if personal {
        return redact(&text);
    }
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(37).collect();
        return format!("{cut}...");
    }
    text
}

/// Every letter and digit replaced by its class (`a`, `A`, `9`): the shape
/// survives, the value does not.
pub(crate) fn redact(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                '9'
            } else if c.is_uppercase() {
                'A'
            } else if c.is_alphabetic() {
                'a'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn noise_is_found_by_name_and_by_value() {
        for (path, value) in [
            ("_meta.host", json!("cart-web-5")),
            ("thread", json!("http-nio-8080-exec-66")),
            ("debug_trace", json!("03396b91")),
            ("items[].debug_info", json!("x")),
            ("trace.span", json!("a1b2")),
            ("retry_count", json!(2)),
            ("note", json!("UPDATE cart SET v=v+1 WHERE id=?")),
            (
                "error",
                json!("java.lang.IllegalStateException: x\n\tat a.b(C.java:1)"),
            ),
        ] {
            assert!(noise(path, &value).is_some(), "{path}");
        }
        for (path, value) in [
            ("requestId", json!("r-1")),
            ("sku", json!("SKU-1")),
            ("qty", json!(2)),
        ] {
            assert_eq!(noise(path, &value), None, "{path}");
        }
    }

    #[test]
    fn personal_data_is_found_by_shape_whatever_the_field_is_called() {
        for (path, value, kind) in [
            ("contact", json!("ada@example.com"), "an e-mail address"),
            ("x", json!("4111 1111 1111 1111"), "a card number"),
            ("x", json!(4_111_111_111_111_111_u64), "a card number"),
            ("x", json!("4111111111111111"), "a card number"),
            ("origin", json!("192.168.10.7"), "an IP address"),
            ("origin", json!("2001:db8::1"), "an IP address"),
            ("tel", json!("+49 30 1234567"), "a phone number"),
            ("holderName", json!("Ada Lovelace"), "a person's name"),
        ] {
            assert_eq!(personal(path, &value), Some(kind), "{path} {value}");
        }
        for (path, value) in [
            ("sku", json!("SKU-1234")),
            ("total", json!(438.39)),
            ("ts", json!(1_764_000_000_137_i64)),
            ("ts", json!(1_764_000_000_026_i64)),
            ("x", json!("4111 1111 1111 1112")),
            ("productName", json!("blue shirt")),
            ("city", json!("New York")),
        ] {
            assert_eq!(personal(path, &value), None, "{path} {value}");
        }
    }

    #[test]
    fn times_are_told_apart_by_form() {
        assert_eq!(
            time_form(&json!(1_764_000_000_137_i64)),
            Some("epoch milliseconds")
        );
        assert_eq!(time_form(&json!(1_764_000_000)), Some("epoch seconds"));
        assert_eq!(
            time_form(&json!("2025-11-24T17:00:00+01:00")),
            Some("RFC 3339")
        );
        assert_eq!(time_form(&json!(42)), None);
        assert_eq!(time_form(&json!("cart-1")), None);
    }

    #[test]
    fn redacted_examples_keep_the_shape_only() {
        assert_eq!(redact("Ada.L+7@example.com"), "Aaa.A+9@aaaaaaa.aaa");
        assert_eq!(example(&json!("ada@example.com"), true), "aaa@aaaaaaa.aaa");
        assert_eq!(example(&json!("cart-1"), false), "cart-1");
    }
}
