//! The dotted paths of a JSON object's leaves (every value that is not a
//! non-empty object), read straight from the text: `recast replay`
//! compares a legacy record's paths with its events' to name what was
//! stripped, and building `serde_json::Value`s of both only to walk them
//! cost as much as the mapping itself.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Adds the leaf paths of the object `json` to `out`, under `field` of it
/// when given (`Some("payload")`: only what is under its `payload`).
/// Nothing is added when `json` is not a JSON object.
pub(crate) fn collect(json: &[u8], field: Option<&str>, out: &mut BTreeSet<String>) {
    let mut de = serde_json::Deserializer::from_slice(json);
    let mut path = String::new();
    let seed = Leaves {
        path: &mut path,
        out,
        top: true,
    };
    // A value that is not JSON has no paths; what was read before the
    // error is kept, as a partial walk of a broken record would be.
    let _ = match field {
        None => de.deserialize_any(seed),
        Some(field) => de.deserialize_any(Under { field, seed }),
    };
}

/// Walks one value at `path`.
struct Leaves<'a> {
    path: &'a mut String,
    out: &'a mut BTreeSet<String>,
    /// The document itself: only an object has paths.
    top: bool,
}

impl Leaves<'_> {
    fn leaf(self) {
        if !self.top && !self.out.contains(self.path.as_str()) {
            self.out.insert(self.path.clone());
        }
    }
}

impl<'de> DeserializeSeed<'de> for Leaves<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

macro_rules! leaf_on {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method<E>(self, _: $ty) -> Result<(), E> {
            self.leaf();
            Ok(())
        })*
    };
}

impl<'de> Visitor<'de> for Leaves<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    leaf_on!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str);

    fn visit_unit<E>(self) -> Result<(), E> {
        self.leaf();
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.leaf();
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let parent = self.path.len();
        let mut empty = true;
        while let Some(key) = map.next_key_seed(Key)? {
            empty = false;
            if !self.top {
                self.path.push('.');
            }
            self.path.push_str(&key);
            map.next_value_seed(Leaves {
                path: &mut *self.path,
                out: &mut *self.out,
                top: false,
            })?;
            self.path.truncate(parent);
        }
        if empty {
            self.leaf();
        }
        Ok(())
    }
}

/// An object's key, borrowed from the text unless it has escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

/// Walks only the object under `field` of the document.
struct Under<'a> {
    field: &'a str,
    seed: Leaves<'a>,
}

impl<'de> Visitor<'de> for Under<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with `{}`", self.field)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seed = Some(self.seed);
        while let Some(key) = map.next_key_seed(Key)? {
            match seed.take_if(|_| key == self.field) {
                Some(seed) => map.next_value_seed(seed)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;
    use serde_json::{Map, Value};

    /// The paths as a walk over parsed values finds them.
    fn oracle(prefix: &str, object: &Map<String, Value>, out: &mut BTreeSet<String>) {
        for (key, value) in object {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Object(child) if !child.is_empty() => oracle(&path, child, out),
                _ => {
                    out.insert(path);
                }
            }
        }
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z\\\\\"é]{0,4}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-c.]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_text_walk_finds_what_a_value_walk_finds(value in json()) {
            let text = serde_json::to_vec(&value).unwrap();
            let mut walked = BTreeSet::new();
            collect(&text, None, &mut walked);
            let mut expected = BTreeSet::new();
            if let Value::Object(object) = &value {
                oracle("", object, &mut expected);
            }
            prop_assert_eq!(&walked, &expected);
            let event = serde_json::json!({"header": {"x": 1}, "payload": value});
            let mut under = BTreeSet::new();
            collect(&serde_json::to_vec(&event).unwrap(), Some("payload"), &mut under);
            prop_assert_eq!(under, expected);
        }
    }

    #[test]
    fn what_is_not_an_object_has_no_paths() {
        for text in ["[1, 2]", "\"a\"", "7", "not json", ""] {
            let mut out = BTreeSet::new();
            collect(text.as_bytes(), None, &mut out);
            assert!(out.is_empty(), "{text}: {out:?}");
        }
    }
}
