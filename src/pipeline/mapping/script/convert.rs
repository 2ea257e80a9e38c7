//! Records crossing into Rhai and back: JSON values as Rhai values and
//! the reverse, converted directly.

use rhai::{Dynamic, Map};
use serde_json::Value;

/// JSON as Rhai values, directly: the generic serde path cost a third of
/// a script call.
fn to_rhai(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => n.as_i64().map_or_else(
            || Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
            Dynamic::from_int,
        ),
        Value::String(s) => Dynamic::from(rhai::ImmutableString::from(s.as_str())),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_rhai).collect()),
        Value::Object(object) => Dynamic::from_map(to_rhai_map(object)),
    }
}

pub(super) fn to_rhai_map(object: &serde_json::Map<String, Value>) -> Map {
    // Keys arrive sorted: inserting them one by one appends to the tree,
    // cheaper than collecting, which sorts a buffer first.
    let mut map = Map::new();
    for (key, value) in object {
        map.insert(key.as_str().into(), to_rhai(value));
    }
    map
}

/// A Rhai value as JSON; values JSON cannot hold (functions, NaN, …) are
/// refused with what they are.
pub(super) fn to_json(value: &Dynamic) -> Result<Value, String> {
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} is not a number JSON can hold"));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        return Ok(Value::String(s.to_string()));
    }
    if let Some(items) = value.read_lock::<rhai::Array>() {
        return items
            .iter()
            .map(to_json)
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    if let Some(map) = value.read_lock::<Map>() {
        let mut object = serde_json::Map::new();
        for (key, value) in map.iter() {
            object.insert(key.to_string(), to_json(value)?);
        }
        return Ok(Value::Object(object));
    }
    Err(format!(
        "a {} cannot be written to an event",
        value.type_name()
    ))
}
