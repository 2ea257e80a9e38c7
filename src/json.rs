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

/// The JSON Schema (draft 2020-12) of a file read into `T`, generated from
/// `T`'s own serde attributes and doc comments: editors complete and check
/// a file against it (for TOML, with a `#:schema <file>` first line).
pub(crate) fn schema_of<T: schemars::JsonSchema>(title: &str) -> Value {
    let mut schema = schemars::schema_for!(T).to_value();
    schema["title"] = Value::from(title);
    schema
}
