//! Small helpers over JSON values, shared by the pipeline's stages and the
//! Avro codec (below both, so neither depends on the other through it).

use serde_json::Value;

/// The JSON type name of a value, for messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
