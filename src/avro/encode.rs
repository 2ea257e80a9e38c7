//! Avro binary encoding of a mapped payload, guided by its event type's
//! schema: JSON values → the bytes of an Avro datum.
//!
//! The payload is checked as it is written, so a value that does not fit
//! its schema is caught with the field it is in and why, and the event is
//! rejected whole. The rules for JSON values (README, "Schemas and the
//! registry"):
//! integers for `int`/`long` (an integral float such as `2.0` too),
//! any number for `float`/`double`, strings for `string`, `bytes`
//! (UTF-8), `enum` (a symbol) and `fixed` (exactly its size); arrays,
//! objects for `map` and `record` (every field present unless it has a
//! default, no field the record lacks); `null` only where the schema
//! allows it. Logical types: `timestamp-*` and `date` take epoch integers
//! or RFC 3339 text, `uuid` a UUID string, `decimal` a number or decimal
//! string with no more fractional digits than its scale.

use std::collections::HashMap;
use std::fmt;

use apache_avro::schema::{
    DecimalSchema, InnerDecimalSchema, Name, RecordField, RecordSchema, Schema, UnionSchema,
    UuidSchema,
};
use serde_json::{Map, Number, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use crate::json::json_kind;

/// Deepest nesting of values the encoder follows: a script can build a
/// payload nested deeper than any legacy JSON could be.
const MAX_DEPTH: usize = 128;

/// Named types of a schema by full name, for `Schema::Ref`s (a named type
/// used a second time is written as a reference to its first definition).
pub(crate) type Names = HashMap<Name, Schema>;

/// Why a payload does not fit its schema: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct FitError {
    /// Dotted path into the payload (`customer.email`, `items[2].sku`).
    pub field: String,
    pub reason: String,
}

/// Where in the payload the encoder is: built on the stack as it
/// descends, rendered only for an error. Carries its depth, so the depth
/// check costs nothing per value.
#[derive(Clone, Copy)]
struct At<'a> {
    depth: usize,
    step: Step<'a>,
}

#[derive(Clone, Copy)]
enum Step<'a> {
    Root,
    Field(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl<'a> At<'a> {
    const ROOT: At<'static> = At {
        depth: 0,
        step: Step::Root,
    };

    fn field(&'a self, name: &'a str) -> Self {
        At {
            depth: self.depth + 1,
            step: Step::Field(self, name),
        }
    }

    fn index(&'a self, index: usize) -> Self {
        At {
            depth: self.depth + 1,
            step: Step::Index(self, index),
        }
    }

    fn error(&self, reason: impl Into<String>) -> FitError {
        FitError {
            field: self.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Step::Root => Ok(()),
            Step::Field(parent, name) if matches!(parent.step, Step::Root) => f.write_str(name),
            Step::Field(parent, name) => write!(f, "{parent}.{name}"),
            Step::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Writes the fields of `fields` from `object`, in schema order: the body
/// of a record whose leading fields (the header) the caller wrote.
pub(super) fn encode_fields(
    record_name: &Name,
    fields: &[RecordField],
    object: &Map<String, Value>,
    names: &Names,
    out: &mut Vec<u8>,
) -> Result<(), FitError> {
    Encoder { names }.fields(record_name, fields, object, &At::ROOT, out)
}

/// Writes one value of `schema` (a whole datum): what the encoder's tests
/// check against apache-avro's decoder for any schema.
#[cfg(test)]
pub(crate) fn encode_value(
    schema: &Schema,
    value: &Value,
    names: &Names,
    out: &mut Vec<u8>,
) -> Result<(), FitError> {
    Encoder { names }.value(schema, value, &At::ROOT, out)
}

struct Encoder<'n> {
    names: &'n Names,
}

impl Encoder<'_> {
    fn fields(
        &self,
        record_name: &Name,
        fields: &[RecordField],
        object: &Map<String, Value>,
        at: &At<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), FitError> {
        let mut present = 0;
        for field in fields {
            let here = at.field(&field.name);
            match (object.get(&field.name), &field.default) {
                (Some(value), _) => {
                    present += 1;
                    self.value(&field.schema, value, &here, out)?;
                }
                (None, Some(default)) => self.default(&field.schema, default, &here, out)?,
                (None, None) => return Err(here.error("missing, and the schema gives no default")),
            }
        }
        if present < object.len() {
            // Some key is not a field: find it (the slow path, for the error only).
            if let Some(extra) = object
                .keys()
                .find(|key| !fields.iter().any(|f| &f.name == *key))
            {
                return Err(at.field(extra).error(format!(
                    "not a field of {}; drop it in the mapping or add it to the schema",
                    record_name.fullname(None)
                )));
            }
        }
        Ok(())
    }

    /// A field's default: for a union, the first branch's value (Avro spec).
    fn default(
        &self,
        schema: &Schema,
        default: &Value,
        at: &At<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), FitError> {
        match schema {
            Schema::Union(union) => {
                let first = union
                    .variants()
                    .first()
                    .ok_or_else(|| at.error("union with no branches"))?;
                write_long(0, out);
                self.value(first, default, at, out)
            }
            _ => self.value(schema, default, at, out),
        }
    }

    #[allow(clippy::too_many_lines)] // one arm per Avro type reads best as one match
    fn value(
        &self,
        schema: &Schema,
        value: &Value,
        at: &At<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), FitError> {
        if at.depth > MAX_DEPTH {
            return Err(at.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let mismatch = || {
            at.error(format!(
                "expected {}, got {}",
                describe(schema),
                shown(value)
            ))
        };
        match (schema, value) {
            (Schema::Ref { name }, _) => {
                let target = self
                    .names
                    .get(name)
                    .ok_or_else(|| at.error(format!("unknown type {}", name.fullname(None))))?;
                self.value(target, value, at, out)
            }
            (Schema::Union(union), _) => self.union(union, value, at, out),
            (Schema::Null, Value::Null) => Ok(()),
            (Schema::Boolean, Value::Bool(b)) => {
                out.push(u8::from(*b));
                Ok(())
            }
            (Schema::Int | Schema::TimeMillis, Value::Number(n)) => {
                let i = integer(n).ok_or_else(mismatch)?;
                let i = i32::try_from(i)
                    .map_err(|_| at.error(format!("{i} is outside the range of an Avro int")))?;
                write_long(i64::from(i), out);
                Ok(())
            }
            (_, Value::Number(n))
                if matches!(schema, Schema::Long | Schema::TimeMicros) || is_timestamp(schema) =>
            {
                write_long(integer(n).ok_or_else(mismatch)?, out);
                Ok(())
            }
            (_, Value::String(text)) if is_timestamp(schema) => {
                let nanos = OffsetDateTime::parse(text, &Rfc3339)
                    .map_err(|_| at.error(format!("`{text}` is not an RFC 3339 time")))?
                    .unix_timestamp_nanos();
                let per_unit = match schema {
                    Schema::TimestampMillis | Schema::LocalTimestampMillis => 1_000_000,
                    Schema::TimestampMicros | Schema::LocalTimestampMicros => 1_000,
                    _ => 1,
                };
                let units = i64::try_from(nanos.div_euclid(per_unit))
                    .map_err(|_| at.error(format!("`{text}` is out of range")))?;
                write_long(units, out);
                Ok(())
            }
            (Schema::Date, Value::Number(n)) => {
                let days = integer(n).and_then(|d| i32::try_from(d).ok());
                write_long(i64::from(days.ok_or_else(mismatch)?), out);
                Ok(())
            }
            (Schema::Date, Value::String(text)) => {
                let format = time::macros::format_description!("[year]-[month]-[day]");
                let date = Date::parse(text, &format)
                    .map_err(|_| at.error(format!("`{text}` is not a date (YYYY-MM-DD)")))?;
                let days =
                    date.to_julian_day() - time::macros::date!(1970 - 01 - 01).to_julian_day();
                write_long(i64::from(days), out);
                Ok(())
            }
            (Schema::Float, Value::Number(n)) => {
                let f = n.as_f64().ok_or_else(mismatch)?;
                out.extend_from_slice(&(f as f32).to_le_bytes());
                Ok(())
            }
            (Schema::Double, Value::Number(n)) => {
                let f = n.as_f64().ok_or_else(mismatch)?;
                out.extend_from_slice(&f.to_le_bytes());
                Ok(())
            }
            (Schema::String | Schema::Bytes, Value::String(s)) => {
                write_bytes(s.as_bytes(), out);
                Ok(())
            }
            (Schema::Uuid(kind), Value::String(s)) => {
                let uuid = uuid::Uuid::parse_str(s)
                    .map_err(|_| at.error(format!("`{s}` is not a UUID")))?;
                match kind {
                    UuidSchema::String => write_bytes(s.as_bytes(), out),
                    UuidSchema::Bytes => write_bytes(uuid.as_bytes(), out),
                    UuidSchema::Fixed(_) => out.extend_from_slice(uuid.as_bytes()),
                }
                Ok(())
            }
            (Schema::Enum(e), Value::String(s)) => {
                let index = e
                    .symbols
                    .iter()
                    .position(|symbol| symbol == s)
                    .ok_or_else(|| {
                        at.error(format!(
                            "`{s}` is not a symbol of {} ({})",
                            e.name.fullname(None),
                            e.symbols.join(", ")
                        ))
                    })?;
                write_long(index as i64, out);
                Ok(())
            }
            (Schema::Fixed(fixed), Value::String(s)) => {
                if s.len() != fixed.size {
                    return Err(at.error(format!(
                        "{} bytes, but {} is fixed at {}",
                        s.len(),
                        fixed.name.fullname(None),
                        fixed.size
                    )));
                }
                out.extend_from_slice(s.as_bytes());
                Ok(())
            }
            (Schema::Decimal(decimal), Value::Number(_) | Value::String(_)) => {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let unscaled = unscaled(&text, decimal).map_err(|reason| at.error(reason))?;
                write_decimal(unscaled, &decimal.inner, out).map_err(|reason| at.error(reason))
            }
            (Schema::Array(array), Value::Array(items)) => {
                if !items.is_empty() {
                    write_long(items.len() as i64, out);
                    for (index, item) in items.iter().enumerate() {
                        self.value(&array.items, item, &at.index(index), out)?;
                    }
                }
                write_long(0, out);
                Ok(())
            }
            (Schema::Map(map), Value::Object(entries)) => {
                if !entries.is_empty() {
                    write_long(entries.len() as i64, out);
                    for (key, item) in entries {
                        write_bytes(key.as_bytes(), out);
                        self.value(&map.types, item, &at.field(key), out)?;
                    }
                }
                write_long(0, out);
                Ok(())
            }
            (Schema::Record(RecordSchema { name, fields, .. }), Value::Object(object)) => {
                self.fields(name, fields, object, at, out)
            }
            (Schema::BigDecimal | Schema::Duration(_), _) => Err(at.error(format!(
                "{} values cannot be written from JSON",
                describe(schema)
            ))),
            _ => Err(mismatch()),
        }
    }

    /// A union: the branch the JSON value's kind selects; where several
    /// could take it (`["int", "string", "long"]` and a large number), the
    /// first that does.
    fn union(
        &self,
        union: &UnionSchema,
        value: &Value,
        at: &At<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), FitError> {
        let candidates: Vec<(usize, &Schema)> = union
            .variants()
            .iter()
            .enumerate()
            .filter(|(_, branch)| self.takes(branch, value))
            .collect();
        let mut first_error = None;
        for (index, branch) in &candidates {
            let mark = out.len();
            write_long(*index as i64, out);
            match self.value(branch, value, at, out) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    out.truncate(mark);
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| {
            let branches: Vec<String> = union.variants().iter().map(describe).collect();
            at.error(format!(
                "expected {}, got {}",
                branches.join(" or "),
                shown(value)
            ))
        }))
    }

    /// Whether a JSON value's kind suits a union branch (its content is
    /// checked when written).
    fn takes(&self, schema: &Schema, value: &Value) -> bool {
        match (schema, value) {
            (Schema::Ref { name }, _) => self.names.get(name).is_some_and(|s| self.takes(s, value)),
            (_, Value::Number(_) | Value::String(_)) if is_timestamp(schema) => true,
            (Schema::Null, Value::Null)
            | (Schema::Boolean, Value::Bool(_))
            | (
                Schema::Int
                | Schema::Long
                | Schema::Float
                | Schema::Double
                | Schema::Date
                | Schema::TimeMillis
                | Schema::TimeMicros
                | Schema::Decimal(_),
                Value::Number(_),
            )
            | (
                Schema::String
                | Schema::Bytes
                | Schema::Uuid(_)
                | Schema::Enum(_)
                | Schema::Fixed(_)
                | Schema::Date
                | Schema::Decimal(_),
                Value::String(_),
            )
            | (Schema::Array(_), Value::Array(_))
            | (Schema::Map(_) | Schema::Record(_), Value::Object(_)) => true,
            _ => false,
        }
    }
}

/// The logical types written as a `long` count of time units since the
/// epoch: they take an integer count or RFC 3339 text.
fn is_timestamp(schema: &Schema) -> bool {
    matches!(
        schema,
        Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
    )
}

/// An integer JSON number, or an integral float such as `2.0`.
fn integer(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // i64::MAX as f64 rounds up to 2^63, which is out of range: `<` excludes it.
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
}

/// A decimal text (`-12.5`, `1e3`) as the unscaled integer of `decimal`:
/// exact, or an error when it has more fractional digits than the scale
/// or more digits than the precision.
fn unscaled(text: &str, decimal: &DecimalSchema) -> Result<i128, String> {
    let invalid = || format!("`{text}` is not a decimal number");
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (
            &text[..at],
            text[at + 1..].parse::<i32>().map_err(|_| invalid())?,
        ),
        None => (text, 0),
    };
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    // value = all_digits × 10^(exponent − fraction digits); scale it by 10^scale.
    let all_digits = format!("{whole}{fraction}");
    let shift = i64::from(exponent) - fraction.len() as i64 + decimal.scale as i64;
    let significant = all_digits.trim_start_matches('0');
    let kept = if shift >= 0 {
        format!("{significant}{}", "0".repeat(shift as usize))
    } else {
        let cut = (-shift) as usize;
        let (kept, dropped) = significant.split_at(significant.len().saturating_sub(cut));
        if dropped.bytes().any(|b| b != b'0') {
            return Err(format!(
                "`{text}` has more than {} decimal places",
                decimal.scale
            ));
        }
        kept.to_owned()
    };
    let kept = kept.trim_start_matches('0');
    if kept.len() > decimal.precision {
        return Err(format!(
            "`{text}` has more than {} significant digits",
            decimal.precision
        ));
    }
    let magnitude: i128 = if kept.is_empty() {
        0
    } else {
        kept.parse().map_err(|_| invalid())?
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// A decimal's unscaled value as big-endian two's complement: the fewest
/// bytes for `bytes`, sign-extended to the size for `fixed`.
fn write_decimal(
    unscaled: i128,
    inner: &InnerDecimalSchema,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let full = unscaled.to_be_bytes();
    let sign = if unscaled < 0 { 0xff } else { 0x00 };
    // Drop leading sign bytes while the next byte keeps the sign bit.
    let mut start = 0;
    while start < full.len() - 1 && full[start] == sign && (full[start + 1] & 0x80) == (sign & 0x80)
    {
        start += 1;
    }
    let minimal = &full[start..];
    match inner {
        InnerDecimalSchema::Bytes => write_bytes(minimal, out),
        InnerDecimalSchema::Fixed(fixed) => {
            if minimal.len() > fixed.size {
                return Err(format!(
                    "does not fit the {} bytes of {}",
                    fixed.size,
                    fixed.name.fullname(None)
                ));
            }
            out.extend(std::iter::repeat_n(sign, fixed.size - minimal.len()));
            out.extend_from_slice(minimal);
        }
    }
    Ok(())
}

/// Avro `long`/`int`: zigzag, then a base-128 varint.
pub(crate) fn write_long(value: i64, out: &mut Vec<u8>) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Avro `bytes`/`string`: the length, then the bytes.
pub(crate) fn write_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    write_long(bytes.len() as i64, out);
    out.extend_from_slice(bytes);
}

/// A schema as an error names it.
fn describe(schema: &Schema) -> String {
    match schema {
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed {}", f.name.fullname(None)),
        Schema::Ref { name } => name.fullname(None),
        Schema::Array(_) => "an array".into(),
        Schema::Map(_) => "a map (object)".into(),
        Schema::Union(u) => u
            .variants()
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join(" or "),
        Schema::Decimal(d) => format!("decimal({}, {})", d.precision, d.scale),
        Schema::Uuid(_) => "a UUID".into(),
        Schema::Date => "a date".into(),
        Schema::TimeMillis | Schema::TimeMicros => "a time of day".into(),
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int => "int".into(),
        Schema::Long => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes => "bytes".into(),
        Schema::String => "string".into(),
        Schema::BigDecimal => "big-decimal".into(),
        Schema::Duration(_) => "duration".into(),
        // What is left: the six kinds of `is_timestamp`.
        _ => "a timestamp".into(),
    }
}

/// A JSON value as an error shows it: its kind, and short values themselves.
fn shown(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("string \"{s}\""),
        other => json_kind(other).into(),
    }
}
