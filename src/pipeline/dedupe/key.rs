//! Dedupe keys: what identifies a request, canonicalised and hashed to 128
//! bits.

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

use crate::pipeline::mapping::FieldPath;

/// A canonical, hashed dedupe key.
pub(crate) type DedupeKey = u128;

/// What identifies a request.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// These fields of the mapped payload, together.
    Fields(Vec<FieldPath>),
    /// The legacy record's Kafka key.
    RecordKey,
    /// The whole mapped payload (technical context already dropped).
    Payload,
}

impl KeySource {
    /// The key of one event; `None` when the record carries nothing to
    /// identify it by (every field missing, or no record key): such events
    /// are never treated as duplicates, since guessing would drop facts.
    pub fn key(
        &self,
        payload: &Map<String, Value>,
        record_key: Option<&[u8]>,
    ) -> Option<DedupeKey> {
        let mut hasher = Sha256::new();
        match self {
            Self::Fields(paths) => {
                let values: Vec<Option<&Value>> = paths.iter().map(|p| p.get(payload)).collect();
                if values.iter().all(Option::is_none) {
                    return None;
                }
                for value in values {
                    canonical(&mut hasher, value);
                }
            }
            Self::RecordKey => {
                let key = record_key?;
                hasher.update([TAG_BYTES]);
                hasher.update((key.len() as u64).to_be_bytes());
                hasher.update(key);
            }
            Self::Payload => canonical_object(&mut hasher, payload),
        }
        let digest = hasher.finalize();
        Some(u128::from_be_bytes(
            digest[..16].try_into().expect("16 bytes"),
        ))
    }

    /// What the key is made of, as traces show it: the fields with their
    /// canonical values (object keys sorted, integral numbers as integers,
    /// `missing` for an absent field), the record key, or the payload.
    pub(crate) fn identity(
        &self,
        payload: &Map<String, Value>,
        record_key: Option<&[u8]>,
    ) -> String {
        match self {
            Self::Fields(paths) => {
                let fields: Vec<String> = paths
                    .iter()
                    .map(|p| match p.get(payload) {
                        Some(value) => format!("{p}={}", canonical_json(value)),
                        None => format!("{p} missing"),
                    })
                    .collect();
                format!("fields({})", fields.join(", "))
            }
            Self::RecordKey => match record_key {
                Some(key) => format!(
                    "record key {}",
                    Value::String(String::from_utf8_lossy(key).into_owned())
                ),
                None => "record key missing".into(),
            },
            Self::Payload => format!(
                "payload {}",
                canonical_json(&Value::Object(payload.clone()))
            ),
        }
    }
}

/// A value as its canonical form hashes it, as JSON text: object keys
/// sorted (`Map` is ordered by key), integral floats as integers.
fn canonical_json(value: &Value) -> Value {
    match value {
        Value::Number(n) if n.as_i64().is_none() && n.as_u64().is_none() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                Value::from(f as i64)
            } else {
                value.clone()
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical_json).collect()),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| (k.clone(), canonical_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

const TAG_MISSING: u8 = 0;
const TAG_NULL: u8 = 1;
const TAG_FALSE: u8 = 2;
const TAG_TRUE: u8 = 3;
const TAG_INTEGER: u8 = 4;
const TAG_FLOAT: u8 = 5;
const TAG_STRING: u8 = 6;
const TAG_ARRAY: u8 = 7;
const TAG_OBJECT: u8 = 8;
const TAG_BYTES: u8 = 9;

/// Feeds a value's canonical form to the hasher: a type tag, then a
/// length-prefixed body, so no two different values share an encoding.
fn canonical(hasher: &mut Sha256, value: Option<&Value>) {
    match value {
        None => hasher.update([TAG_MISSING]),
        Some(Value::Null) => hasher.update([TAG_NULL]),
        Some(Value::Bool(false)) => hasher.update([TAG_FALSE]),
        Some(Value::Bool(true)) => hasher.update([TAG_TRUE]),
        Some(Value::Number(n)) => canonical_number(hasher, n),
        Some(Value::String(s)) => {
            hasher.update([TAG_STRING]);
            hasher.update((s.len() as u64).to_be_bytes());
            hasher.update(s.as_bytes());
        }
        Some(Value::Array(items)) => {
            hasher.update([TAG_ARRAY]);
            hasher.update((items.len() as u64).to_be_bytes());
            for item in items {
                canonical(hasher, Some(item));
            }
        }
        Some(Value::Object(object)) => canonical_object(hasher, object),
    }
}

/// Objects hash with their keys in sorted order: key order carries no
/// meaning in JSON, and legacy producers reorder keys between retries.
fn canonical_object(hasher: &mut Sha256, object: &Map<String, Value>) {
    hasher.update([TAG_OBJECT]);
    hasher.update((object.len() as u64).to_be_bytes());
    let mut entries: Vec<(&String, &Value)> = object.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (key, value) in entries {
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key.as_bytes());
        canonical(hasher, Some(value));
    }
}

/// Numbers compare by value: `1`, `1.0` and `1e0` are one number; `"1"`
/// (a string) is not.
fn canonical_number(hasher: &mut Sha256, n: &Number) {
    if let Some(i) = n.as_i64() {
        hasher.update([TAG_INTEGER]);
        hasher.update(i128::from(i).to_be_bytes());
    } else if let Some(u) = n.as_u64() {
        hasher.update([TAG_INTEGER]);
        hasher.update(i128::from(u).to_be_bytes());
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        // Integral floats within i64 are the same number as the integer.
        if f.fract() == 0.0 && f.abs() < 9.0e15 {
            hasher.update([TAG_INTEGER]);
            hasher.update(i128::from(f as i64).to_be_bytes());
        } else {
            hasher.update([TAG_FLOAT]);
            hasher.update(f.to_bits().to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(paths: &[&str]) -> KeySource {
        KeySource::Fields(paths.iter().map(|p| FieldPath::parse(p).unwrap()).collect())
    }

    fn key(source: &KeySource, value: &Value) -> Option<DedupeKey> {
        source.key(value.as_object().unwrap(), None)
    }

    #[test]
    fn same_meaning_same_key() {
        let payload = KeySource::Payload;
        assert_eq!(
            key(&payload, &json!({"a": 1, "b": {"x": [1, 2], "y": null}})),
            key(&payload, &json!({"b": {"y": null, "x": [1, 2]}, "a": 1.0}))
        );
        let id = fields(&["requestId"]);
        assert_eq!(
            key(&id, &json!({"requestId": "r1", "_meta": {"host": "a"}})),
            key(&id, &json!({"_meta": {"host": "b"}, "requestId": "r1"}))
        );
    }

    #[test]
    fn different_meaning_different_key() {
        let payload = KeySource::Payload;
        let distinct = [
            json!({"a": 1}),
            json!({"a": "1"}),
            json!({"a": null}),
            json!({}),
            json!({"a": [1]}),
            json!({"a": 1.5}),
            json!({"a": true}),
            json!({"a": {"b": 1}}),
            json!({"ab": 1}),
            json!({"a": 1, "b": 1}),
        ];
        let keys: std::collections::HashSet<_> =
            distinct.iter().map(|v| key(&payload, v)).collect();
        assert_eq!(keys.len(), distinct.len());
        // null is not missing, across several fields too.
        let two = fields(&["a", "b"]);
        assert_ne!(
            key(&two, &json!({"a": 1, "b": null})),
            key(&two, &json!({"a": 1}))
        );
        // Values cannot slide from one field into the other.
        assert_ne!(
            key(&two, &json!({"a": "xy", "b": ""})),
            key(&two, &json!({"a": "x", "b": "y"}))
        );
    }

    fn json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            // Non-integral floats only: integral ones equal their integer.
            (-1.0e6..1.0e6f64)
                .prop_filter("non-integral", |f| f.fract() != 0.0)
                .prop_map(|f| json!(f)),
            "[a-c]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn keys_match_exactly_when_values_do(a in json(), b in json()) {
            let source = fields(&["v"]);
            let key_a = key(&source, &json!({ "v": a }));
            let key_b = key(&source, &json!({ "v": b }));
            proptest::prop_assert_eq!(a == b, key_a == key_b);
        }

        #[test]
        fn key_order_and_whitespace_do_not_matter(a in json()) {
            // Re-parse the value from text with its object keys reversed.
            fn reversed(v: &Value) -> String {
                match v {
                    Value::Object(m) => format!(
                        "{{ {} }}",
                        m.iter().rev().map(|(k, v)| format!("{:?} :  {}", k, reversed(v))).collect::<Vec<_>>().join(" , ")
                    ),
                    Value::Array(items) => format!("[ {} ]", items.iter().map(reversed).collect::<Vec<_>>().join(", ")),
                    other => other.to_string(),
                }
            }
            let again: Value = serde_json::from_str(&reversed(&a)).unwrap();
            let source = fields(&["v"]);
            proptest::prop_assert_eq!(key(&source, &json!({ "v": a })), key(&source, &json!({ "v": again })));
        }
    }

    #[test]
    fn nothing_to_identify_means_no_key() {
        assert_eq!(key(&fields(&["requestId"]), &json!({"other": 1})), None);
        assert_eq!(KeySource::RecordKey.key(&Map::new(), None), None);
        assert!(KeySource::RecordKey.key(&Map::new(), Some(b"k")).is_some());
    }
}
