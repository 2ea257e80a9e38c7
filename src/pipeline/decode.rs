//! Decode stage: the raw value of a legacy record → a JSON object.
//!
//! Everything hostile is caught here, before any mapping runs: missing or
//! empty values, oversized values, bytes that are not UTF-8, truncated or
//! otherwise invalid JSON, nesting deep enough to hurt, and JSON that is not
//! an object. Each becomes a [`DecodeError`] whose message is the reason
//! written to the dead-letter topic.
//!
//! JSON is read strictly: an object with the same key twice is rejected
//! (`source.duplicate_keys = "last_wins"` takes the last, for producers
//! known to repeat keys); a byte-order mark, `NaN` and `Infinity`, and
//! escapes of lone surrogates are invalid JSON. Numbers beyond `u64` and
//! `i64` are read as the nearest `f64`, as every JSON parser does.
//!
//! With `source.format = "avro"` or `"auto"`, a value in the Confluent wire
//! format (magic byte 0, which no JSON text starts with) is Avro: decoded
//! with its writer schema from the registry.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::avro::{WriterSchemas, split_frame};
use crate::json::json_kind;

/// Why a legacy value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("no value (tombstone)")]
    Missing,
    #[error("empty value")]
    Empty,
    #[error("value of {size} bytes exceeds limits.max_value_bytes ({limit})")]
    Oversized { size: usize, limit: usize },
    #[error("value is not UTF-8 (invalid byte at {valid_up_to})")]
    NotUtf8 { valid_up_to: usize },
    #[error("JSON nested deeper than limits.max_json_depth ({limit})")]
    TooDeep { limit: usize },
    #[error("invalid JSON at line {line} column {column}: {message}")]
    InvalidJson {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("JSON value is {found}, not an object")]
    NotAnObject { found: &'static str },
    #[error("{0}")]
    Avro(String),
    #[error("not a Confluent-framed Avro value (source.format = \"avro\")")]
    NotAvro,
}

/// What an object with the same key twice means.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateKeys {
    /// The record is rejected: a ledger of facts does not guess which
    /// value was meant.
    #[default]
    Reject,
    /// The last value wins (what most JSON parsers do).
    LastWins,
}

/// The decode stage, with its limits.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_value_bytes: usize,
    max_depth: usize,
    duplicate_keys: DuplicateKeys,
    /// Set when legacy values may be Avro.
    writer_schemas: Option<WriterSchemas>,
    /// Whether values may be JSON.
    json: bool,
}

impl Decoder {
    pub fn new(max_value_bytes: usize, max_depth: usize) -> Self {
        Self {
            max_value_bytes,
            max_depth,
            duplicate_keys: DuplicateKeys::Reject,
            writer_schemas: None,
            json: true,
        }
    }

    /// Reads objects with the same key twice as `duplicate_keys` says.
    #[must_use]
    pub fn with_duplicate_keys(self, duplicate_keys: DuplicateKeys) -> Self {
        Self {
            duplicate_keys,
            ..self
        }
    }

    /// Decodes Confluent-framed values as Avro with these writer schemas;
    /// others as JSON only when `json_too`.
    #[must_use]
    pub fn reading_avro(self, writer_schemas: WriterSchemas, json_too: bool) -> Self {
        Self {
            writer_schemas: Some(writer_schemas),
            json: json_too,
            ..self
        }
    }

    /// The writer schemas of Avro values, when read.
    pub fn writer_schemas(&self) -> Option<&WriterSchemas> {
        self.writer_schemas.as_ref()
    }

    /// Decodes one legacy value into a JSON object.
    pub fn decode(&self, value: Option<&[u8]>) -> Result<Map<String, Value>, DecodeError> {
        self.decode_without(value, &[])
    }

    /// [`Decoder::decode`], leaving the top-level fields named in `unread`
    /// out of the object: the mapping drops them before anything reads
    /// them, so building them would be wasted work. They are still read as
    /// strictly as the rest (the same value is rejected, with the same
    /// reason), and a JSON value in the Avro wire format keeps them.
    pub fn decode_without(
        &self,
        value: Option<&[u8]>,
        unread: &[String],
    ) -> Result<Map<String, Value>, DecodeError> {
        let bytes = value.ok_or(DecodeError::Missing)?;
        if bytes.len() > self.max_value_bytes {
            return Err(DecodeError::Oversized {
                size: bytes.len(),
                limit: self.max_value_bytes,
            });
        }
        if let Some(schemas) = &self.writer_schemas {
            match split_frame(bytes) {
                Some((id, datum)) => return schemas.decode(id, datum).map_err(DecodeError::Avro),
                None if !self.json => return Err(DecodeError::NotAvro),
                None => {}
            }
        }
        let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        if text.trim().is_empty() {
            return Err(DecodeError::Empty);
        }
        // serde_json has its own recursion limit (128), but a lower, explicit
        // one keeps later stages' recursive walks cheap and bounded too.
        if nests_deeper_than(text.as_bytes(), self.max_depth) {
            return Err(DecodeError::TooDeep {
                limit: self.max_depth,
            });
        }
        let parsed = match (self.duplicate_keys, unread) {
            (DuplicateKeys::Reject, []) => serde_json::from_str(text).map(|Strict(value)| value),
            (DuplicateKeys::LastWins, []) => serde_json::from_str(text),
            (duplicate_keys, unread) => {
                let mut parser = serde_json::Deserializer::from_str(text);
                TopLevel {
                    unread,
                    duplicate_keys,
                }
                .deserialize(&mut parser)
                .and_then(|value| parser.end().map(|()| value))
            }
        };
        match parsed {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(DecodeError::NotAnObject {
                found: json_kind(&other),
            }),
            Err(e) => Err(DecodeError::InvalidJson {
                line: e.line(),
                column: e.column(),
                message: e
                    .to_string()
                    .split(" at line")
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            }),
        }
    }
}

/// A JSON value whose objects never repeat a key.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text has no NaN or infinity: every f64 it yields is finite.
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // One search of the map per key: the slot found is the one filled.
            match object.entry(key) {
                serde_json::map::Entry::Occupied(taken) => return Err(duplicate_key(taken.key())),
                serde_json::map::Entry::Vacant(slot) => {
                    let Strict(value) = map.next_value()?;
                    slot.insert(value);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// The top level of a value decoded without its `unread` fields: an
/// object is built as [`Strict`] (or, with `last_wins`, as `Value`) builds
/// it, but the value of an unread field is only checked as [`Unread`].
struct TopLevel<'u> {
    unread: &'u [String],
    duplicate_keys: DuplicateKeys,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    // Anything but an object is rejected by the caller; only its kind is
    // needed for the reason.
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        match self.duplicate_keys {
            DuplicateKeys::Reject => StrictVisitor.visit_seq(seq),
            DuplicateKeys::LastWins => {
                Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let reject = self.duplicate_keys == DuplicateKeys::Reject;
        let mut object = Map::new();
        // Which unread fields were met, a bit each, to reject one given
        // twice. Names past the 64th are simply built and dropped later.
        let mut met = 0u64;
        while let Some(Key(key)) = map.next_key()? {
            if let Some(at) = self.unread.iter().take(64).position(|name| *name == key) {
                let bit = 1 << at;
                if reject && met & bit != 0 {
                    return Err(duplicate_key(&key));
                }
                met |= bit;
                map.next_value_seed(Unread { reject })?;
                continue;
            }
            if !reject {
                object.insert(key.into_owned(), map.next_value()?);
                continue;
            }
            match object.entry(key.into_owned()) {
                serde_json::map::Entry::Occupied(taken) => return Err(duplicate_key(taken.key())),
                serde_json::map::Entry::Vacant(slot) => {
                    let Strict(value) = map.next_value()?;
                    slot.insert(value);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// A value read for its validity only: every string, number and key is
/// parsed as when kept (the parser does that before any visitor sees it),
/// and with `reject`, an object with a key twice is rejected as [`Strict`]
/// rejects it; nothing is built, and no text is copied unless escaped.
#[derive(Clone, Copy)]
struct Unread {
    reject: bool,
}

impl<'de> DeserializeSeed<'de> for Unread {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unread {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = SeenKeys::default();
        while let Some(Key(key)) = map.next_key()? {
            if self.reject {
                keys.insert(key).map_err(|key| duplicate_key(&key))?;
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// The keys of one object seen so far. A technical-context object has a
/// handful of keys, for which comparing with each costs less than a set's
/// allocation and search; an object of many keys moves to a set, so that
/// it never costs a comparison of every pair.
enum SeenKeys<'de> {
    Few(Vec<Cow<'de, str>>),
    Many(BTreeSet<Cow<'de, str>>),
}

impl Default for SeenKeys<'_> {
    fn default() -> Self {
        SeenKeys::Few(Vec::new())
    }
}

impl<'de> SeenKeys<'de> {
    const FEW: usize = 16;

    /// Notes `key`, or gives it back when it was seen already.
    fn insert(&mut self, key: Cow<'de, str>) -> Result<(), Cow<'de, str>> {
        match self {
            SeenKeys::Few(keys) if keys.contains(&key) => return Err(key),
            SeenKeys::Few(keys) if keys.len() < Self::FEW => keys.push(key),
            SeenKeys::Few(keys) => {
                let mut set: BTreeSet<_> = keys.drain(..).collect();
                set.insert(key);
                *self = SeenKeys::Many(set);
            }
            SeenKeys::Many(keys) if keys.contains(&key) => return Err(key),
            SeenKeys::Many(keys) => {
                keys.insert(key);
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the text unless it had escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor).map(Key)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

fn duplicate_key<E: de::Error>(key: &str) -> E {
    E::custom(format!(
        "duplicate key `{key}` (source.duplicate_keys = \"reject\")"
    ))
}

/// Whether JSON text nests brackets deeper than `limit`, ignoring brackets
/// inside strings. Runs before parsing, so it must not trust the text to
/// be valid.
fn nests_deeper_than(text: &[u8], limit: usize) -> bool {
    // Nesting never exceeds the number of opening brackets, and for a
    // legacy record (a few nested objects) counting them settles the
    // question without the exact scan, which costs a branchy step per byte.
    opening_brackets(text) > limit && nesting_depth(text) > limit
}

/// How many `{` and `[` bytes `text` holds. Summed into a byte-wide counter
/// per block of 255 bytes, which cannot overflow: that loop compiles to
/// vector compares, where counting into a `usize` stayed a step per byte.
fn opening_brackets(text: &[u8]) -> usize {
    text.chunks(usize::from(u8::MAX))
        .map(|block| {
            let count = block
                .iter()
                .fold(0u8, |n, &b| n + u8::from(b == b'{' || b == b'['));
            usize::from(count)
        })
        .sum()
}

/// Deepest bracket nesting of JSON text, ignoring brackets inside strings.
fn nesting_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn decoder() -> Decoder {
        Decoder::new(1024, 8)
    }

    #[test]
    fn decodes_an_object() {
        let map = decoder()
            .decode(Some(br#"{"command":"AddToCart","qty":1}"#))
            .unwrap();
        assert_eq!(map["qty"], 1);
    }

    #[test]
    fn rejects_every_kind_of_bad_value() {
        let d = decoder();
        assert_eq!(d.decode(None), Err(DecodeError::Missing));
        assert_eq!(d.decode(Some(b"")), Err(DecodeError::Empty));
        assert_eq!(d.decode(Some(b"  \n")), Err(DecodeError::Empty));
        assert_eq!(
            d.decode(Some(b"\x00\x01binary\xff")),
            Err(DecodeError::NotUtf8 { valid_up_to: 8 })
        );
        assert!(matches!(
            d.decode(Some(br#"{"command": "ADD_TO_CART", "cartId": "#)),
            Err(DecodeError::InvalidJson { line: 1, .. })
        ));
        assert!(matches!(
            d.decode(Some(b"\x00\x01binary")),
            Err(DecodeError::InvalidJson { .. })
        ));
        assert_eq!(
            d.decode(Some(b"[1,2]")),
            Err(DecodeError::NotAnObject { found: "an array" })
        );
        assert_eq!(
            d.decode(Some(&[b' '; 1025])),
            Err(DecodeError::Oversized {
                size: 1025,
                limit: 1024
            })
        );
    }

    #[test]
    fn nesting_is_bounded_but_brackets_in_strings_do_not_count() {
        let d = decoder();
        let deep = format!("{}{}", "[".repeat(9), "]".repeat(9));
        assert_eq!(
            d.decode(Some(format!("{{\"a\":{deep}}}").as_bytes())),
            Err(DecodeError::TooDeep { limit: 8 })
        );
        let quoted = r#"{"a": "[[[[[[[[[[[[\"[[[[[[["}"#;
        assert!(d.decode(Some(quoted.as_bytes())).is_ok());
    }

    proptest::proptest! {
        /// The bracket count only ever skips the exact scan when the scan
        /// would find the text within the limit.
        #[test]
        fn the_quick_depth_check_agrees_with_the_exact_scan(
            text in "[\\[\\]{}\"\\\\a ]{0,40}",
            limit in 0usize..12,
        ) {
            let bytes = text.as_bytes();
            proptest::prop_assert_eq!(
                nests_deeper_than(bytes, limit),
                nesting_depth(bytes) > limit
            );
        }

        /// The block-wise count is the plain count, across block edges too.
        #[test]
        fn opening_brackets_are_counted_exactly(
            text in proptest::collection::vec(proptest::sample::select(b"{[a]}".to_vec()), 0..1200),
        ) {
            let plain = text.iter().filter(|&&b| b == b'{' || b == b'[').count();
            proptest::prop_assert_eq!(opening_brackets(&text), plain);
        }
    }

    /// A JSON object of these fields, in order.
    fn object(fields: &[(String, String)]) -> String {
        let fields: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!(r#""{k}":{v}"#))
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    /// JSON-like text: objects whose few keys repeat, escapes (a lone
    /// surrogate among them), numbers past `u64` and `f64`, and now and
    /// then a broken byte or a cut-off end.
    fn json_text() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("c".to_owned()),
            Just("\\u0061".to_owned()),
            Just("\\ud800".to_owned()),
        ];
        let leaf = prop_oneof![
            Just("1".to_owned()),
            Just("-2.5e3".to_owned()),
            Just("18446744073709551616".to_owned()),
            Just("1e400".to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just(r#""text""#.to_owned()),
            Just(r#""esc\"aped \u00e9""#.to_owned()),
            Just(r#""\udc00""#.to_owned()),
        ];
        let nested_key = key.clone();
        let value = leaf.prop_recursive(3, 24, 4, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec((nested_key.clone(), inner), 0..4)
                    .prop_map(|fields| object(&fields)),
            ]
        });
        // Mostly objects at the top, where fields are left out.
        let top = prop_oneof![
            1 => value.clone(),
            6 => proptest::collection::vec((key, value), 0..5).prop_map(|fields| object(&fields)),
        ];
        (top, 0..8u8, any::<proptest::sample::Index>(), any::<char>()).prop_map(
            |(text, damage, at, c)| {
                let at = (0..=text.len())
                    .filter(|&i| text.is_char_boundary(i))
                    .nth(at.index(text.len() + 1) % (text.len() + 1))
                    .unwrap_or(0);
                match damage {
                    0 => text[..at].to_owned(),
                    1 => format!("{}{c}{}", &text[..at], &text[at..]),
                    _ => text,
                }
            },
        )
    }

    proptest::proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]
        /// Leaving fields out changes nothing but their absence: the same
        /// values decode, less those top-level fields, and the same values
        /// are rejected with the same reason, in both duplicate-key modes.
        #[test]
        fn decoding_without_fields_is_decoding_then_removing_them(
            text in json_text(),
            unread in proptest::sample::subsequence(vec!["a".to_owned(), "b".to_owned()], 0..=2),
            last_wins in proptest::bool::ANY,
        ) {
            let decoder = Decoder::new(1 << 16, 16).with_duplicate_keys(if last_wins {
                DuplicateKeys::LastWins
            } else {
                DuplicateKeys::Reject
            });
            let whole = decoder.decode(Some(text.as_bytes())).map(|mut object| {
                for name in &unread {
                    object.remove(name);
                }
                object
            });
            proptest::prop_assert_eq!(decoder.decode_without(Some(text.as_bytes()), &unread), whole);
        }
    }

    #[test]
    fn a_key_twice_is_rejected_unless_the_last_may_win() {
        let twice =
            br#"{"command": "CHECKOUT", "cart": {"id": 1, "id": 2}, "command": "ADD_TO_CART"}"#;
        let err = decoder().decode(Some(twice)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid JSON at line 1 column 46: duplicate key `id` (source.duplicate_keys = \"reject\")"
        );
        let last = decoder()
            .with_duplicate_keys(DuplicateKeys::LastWins)
            .decode(Some(twice))
            .unwrap();
        assert_eq!(last["command"], "ADD_TO_CART");
        // Strict reading changes nothing else.
        let text = r#"{"a": [1, -2, 3.5, 18446744073709551615, null, true, "\u00e9"], "b": {}}"#;
        assert_eq!(
            Value::Object(decoder().decode(Some(text.as_bytes())).unwrap()),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }

    #[test]
    fn a_left_out_object_of_many_keys_still_rejects_a_key_twice() {
        let unread = ["a".to_owned()];
        // Around the size where the keys seen move from a list to a set.
        for size in [1, SeenKeys::FEW - 1, SeenKeys::FEW, SeenKeys::FEW + 1, 40] {
            let keys: Vec<String> = (0..size).map(|i| format!(r#""k{i}":{i}"#)).collect();
            let once = format!(r#"{{"a":{{{}}},"b":1}}"#, keys.join(","));
            assert!(
                decoder()
                    .decode_without(Some(once.as_bytes()), &unread)
                    .is_ok()
            );
            for repeated in [0, size - 1] {
                let twice = format!(r#"{{"a":{{{},"k{repeated}":0}},"b":1}}"#, keys.join(","));
                let whole = decoder().decode(Some(twice.as_bytes())).unwrap_err();
                assert!(
                    whole
                        .to_string()
                        .contains(&format!("duplicate key `k{repeated}`"))
                );
                assert_eq!(
                    decoder().decode_without(Some(twice.as_bytes()), &unread),
                    Err(whole),
                    "{size} keys, k{repeated} twice"
                );
            }
        }
    }

    #[test]
    fn ambiguous_forms_have_an_outcome() {
        let d = decoder();
        let invalid =
            |text: &[u8]| matches!(d.decode(Some(text)), Err(DecodeError::InvalidJson { .. }));
        assert!(invalid("\u{feff}{\"a\": 1}".as_bytes()), "byte-order mark");
        assert!(invalid(br#"{"a": NaN}"#));
        assert!(invalid(br#"{"a": Infinity}"#));
        assert!(invalid(br#"{"a": "\ud800"}"#), "lone surrogate");
        // Beyond u64: the nearest f64, as JSON parsers read it.
        let big = d
            .decode(Some(br#"{"a": 123456789012345678901234567890}"#))
            .unwrap();
        assert_eq!(big["a"].as_f64(), Some(1.234_567_890_123_456_8e29));
    }

    #[test]
    fn reasons_read_well() {
        let err = decoder().decode(Some(br#"{"a": "#)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid JSON at line 1 column 6: EOF while parsing a value"
        );
    }
}
