//! Field-shaping steps: drop, keep, rename, copy, set, default, cast,
//! `split_field`, hash, mask; each optionally guarded by a `when` condition.
//! A step that cannot do its work on a record (a cast that does not parse,
//! a path blocked by a non-object) rejects the record with the reason.

use serde_json::{Map, Number, Value};

use super::Draft;
use super::condition::{Condition, toml_to_json};
use super::path::{FieldPath, FieldPattern};
use super::privacy::{HashKey, mask};
use super::spec::{CastType, StepSpec};
use crate::pipeline::record::LegacyRecord;

/// A compiled step.
#[derive(Debug, Clone)]
pub(super) struct Step {
    when: Option<Condition>,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Drop(Vec<FieldPattern>),
    Keep(Vec<FieldPath>),
    Rename(Vec<(FieldPath, FieldPath)>),
    Copy(Vec<(FieldPath, FieldPath)>),
    Set(Vec<(FieldPath, Value)>),
    Default(Vec<(FieldPath, Value)>),
    Cast(Vec<(FieldPath, CastType)>),
    SplitField {
        field: FieldPath,
        separator: String,
        into: Vec<FieldPath>,
    },
    Hash {
        fields: Vec<FieldPath>,
        key: HashKey,
    },
    Mask(Vec<(FieldPath, usize)>),
}

impl Step {
    /// Compiles one step. `hash_key` is the deployment's secret, needed by
    /// `hash` steps only.
    pub(super) fn compile(spec: &StepSpec, hash_key: Option<&HashKey>) -> Result<Self, String> {
        let mut ops = Vec::new();
        if let Some(patterns) = &spec.drop {
            ops.push(Op::Drop(all(patterns, |p| FieldPattern::parse(p))?));
        }
        if let Some(paths) = &spec.keep {
            ops.push(Op::Keep(all(paths, |p| FieldPath::parse(p))?));
        }
        if let Some(moves) = &spec.rename {
            ops.push(Op::Rename(pairs(moves, |to| FieldPath::parse(to))?));
        }
        if let Some(copies) = &spec.copy {
            ops.push(Op::Copy(pairs(copies, |to| FieldPath::parse(to))?));
        }
        if let Some(values) = &spec.set {
            ops.push(Op::Set(pairs(values, |v| Ok(toml_to_json(v.clone())))?));
        }
        if let Some(values) = &spec.default {
            ops.push(Op::Default(pairs(values, |v| Ok(toml_to_json(v.clone())))?));
        }
        if let Some(casts) = &spec.cast {
            ops.push(Op::Cast(pairs(casts, |t| Ok(*t))?));
        }
        if let Some(split) = &spec.split_field {
            if split.separator.is_empty() {
                return Err("split_field: `separator` must not be empty".into());
            }
            if split.into.is_empty() {
                return Err("split_field: `into` names no field".into());
            }
            ops.push(Op::SplitField {
                field: FieldPath::parse(&split.field)?,
                separator: split.separator.clone(),
                into: all(&split.into, |p| FieldPath::parse(p))?,
            });
        }
        if let Some(fields) = &spec.hash {
            let key = hash_key.ok_or(
                "`hash` needs a secret key: set mapping.hash_key (RECAST_MAPPING__HASH_KEY)",
            )?;
            ops.push(Op::Hash {
                fields: all(fields, |p| FieldPath::parse(p))?,
                key: key.clone(),
            });
        }
        if let Some(masks) = &spec.mask {
            ops.push(Op::Mask(pairs(masks, |n| Ok(*n))?));
        }
        let op = match ops.len() {
            1 => ops.pop().expect("one"),
            0 => return Err(format!("a step needs one operation: {OPERATIONS}")),
            _ => {
                return Err(format!(
                    "a step has one operation; split this one into {} steps",
                    ops.len()
                ));
            }
        };
        let when = spec.when.as_ref().map(Condition::compile).transpose()?;
        Ok(Self { when, op })
    }

    /// The top-level fields this step drops whatever the record holds: a
    /// `drop` without `when`, its patterns that are one name.
    pub(super) fn drops_always(&self) -> impl Iterator<Item = &str> {
        let patterns = match (&self.when, &self.op) {
            (None, Op::Drop(patterns)) => patterns.as_slice(),
            _ => &[],
        };
        patterns.iter().filter_map(FieldPattern::field_name)
    }

    /// The operation's name, as transform files spell it.
    pub(super) fn op_name(&self) -> &'static str {
        match &self.op {
            Op::Drop(_) => "drop",
            Op::Keep(_) => "keep",
            Op::Rename(_) => "rename",
            Op::Copy(_) => "copy",
            Op::Set(_) => "set",
            Op::Default(_) => "default",
            Op::Cast(_) => "cast",
            Op::SplitField { .. } => "split_field",
            Op::Hash { .. } => "hash",
            Op::Mask(_) => "mask",
        }
    }

    /// Applies the step to an event being built from `record`; whether it
    /// ran (its `when` held).
    pub(super) fn apply(
        &self,
        draft: &mut Draft,
        record: &LegacyRecord<'_>,
    ) -> Result<bool, String> {
        if let Some(condition) = &self.when
            && !condition.holds(draft, record)
        {
            return Ok(false);
        }
        let payload = &mut draft.payload;
        match &self.op {
            Op::Drop(patterns) => {
                for pattern in patterns {
                    pattern.remove_from(payload);
                }
            }
            Op::Keep(paths) => {
                let mut kept = Map::new();
                for path in paths {
                    if let Some(value) = path.remove(payload) {
                        path.insert(&mut kept, value)?;
                    }
                }
                *payload = kept;
            }
            Op::Rename(moves) => {
                for (from, to) in moves {
                    if let Some(value) = from.remove(payload) {
                        to.insert(payload, value)?;
                    }
                }
            }
            Op::Copy(copies) => {
                for (from, to) in copies {
                    if let Some(value) = from.get(payload).cloned() {
                        to.insert(payload, value)?;
                    }
                }
            }
            Op::Set(values) => {
                for (path, value) in values {
                    path.insert(payload, value.clone())?;
                }
            }
            Op::Default(values) => {
                for (path, value) in values {
                    if path.get_present(payload).is_none() {
                        path.insert(payload, value.clone())?;
                    }
                }
            }
            Op::Cast(casts) => {
                for (path, to) in casts {
                    if let Some(value) = path.get_present(payload) {
                        let cast = cast(value, *to).ok_or_else(|| {
                            format!(
                                "cannot cast `{path}` ({}) to {}",
                                describe(value),
                                cast_name(*to)
                            )
                        })?;
                        path.insert(payload, cast)?;
                    }
                }
            }
            Op::SplitField {
                field,
                separator,
                into,
            } => split_field(payload, field, separator, into)?,
            Op::Hash { fields, key } => {
                for path in fields {
                    path.replace_text(payload, |text| key.hash_hex(text.as_bytes()))?;
                }
            }
            Op::Mask(masks) => {
                for (path, keep_last) in masks {
                    path.replace_text(payload, |text| mask(text, *keep_last))?;
                }
            }
        }
        Ok(true)
    }
}

fn split_field(
    payload: &mut Map<String, Value>,
    field: &FieldPath,
    separator: &str,
    into: &[FieldPath],
) -> Result<(), String> {
    let Some(value) = field.get_present(payload) else {
        return Ok(());
    };
    let Value::String(text) = value else {
        return Err(format!(
            "cannot split `{field}`: it is {}, not a string",
            crate::json::json_kind(value)
        ));
    };
    let parts: Vec<String> = text
        .splitn(into.len(), separator)
        .map(str::to_owned)
        .collect();
    field.remove(payload);
    for (path, part) in into.iter().zip(parts) {
        path.insert(payload, Value::String(part))?;
    }
    Ok(())
}

const OPERATIONS: &str = "drop, keep, rename, copy, set, default, cast, split_field, hash or mask";

fn all<T, U>(items: &[T], f: impl Fn(&T) -> Result<U, String>) -> Result<Vec<U>, String> {
    items.iter().map(f).collect()
}

/// `{ "path" = x }` tables: the key is a field path, the value compiled by `f`.
fn pairs<V, U>(
    table: &std::collections::BTreeMap<String, V>,
    f: impl Fn(&V) -> Result<U, String>,
) -> Result<Vec<(FieldPath, U)>, String> {
    table
        .iter()
        .map(|(path, value)| Ok((FieldPath::parse(path)?, f(value)?)))
        .collect()
}

fn cast(value: &Value, to: CastType) -> Option<Value> {
    match (to, value) {
        (CastType::String, Value::String(_))
        | (CastType::Number, Value::Number(_))
        | (CastType::Bool, Value::Bool(_)) => Some(value.clone()),
        (CastType::String, Value::Number(_) | Value::Bool(_)) => {
            Some(Value::String(value.to_string()))
        }
        (CastType::Number, Value::String(s)) => {
            let s = s.trim();
            s.parse::<i64>().map(Value::from).ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
            })
        }
        (CastType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Some(value.clone()),
        (CastType::Integer, Value::Number(n)) => n.as_f64().and_then(integral),
        (CastType::Integer, Value::String(s)) => {
            let s = s.trim();
            s.parse::<i64>()
                .map(Value::from)
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(integral))
        }
        (CastType::Bool, Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(Value::Bool(true)),
            "false" | "no" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        (CastType::Bool, Value::Number(n)) => match n.as_f64() {
            Some(1.0) => Some(Value::Bool(true)),
            Some(0.0) => Some(Value::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}

/// A float that is a whole number within i64's range, as an integer.
fn integral(f: f64) -> Option<Value> {
    #[allow(clippy::float_cmp)] // exactness is the point
    let whole = f.is_finite() && f.trunc() == f && f.abs() < 9.0e15;
    whole.then(|| Value::from(f as i64))
}

fn cast_name(to: CastType) -> &'static str {
    match to {
        CastType::String => "string",
        CastType::Number => "number",
        CastType::Integer => "integer",
        CastType::Bool => "bool",
    }
}

/// A short description of a value for a rejection reason: its kind and at
/// most 32 characters of it.
fn describe(value: &Value) -> String {
    let text = value.to_string();
    let short: String = text.chars().take(32).collect();
    let ellipsis = if short.len() < text.len() { "…" } else { "" };
    format!("{} {short}{ellipsis}", crate::json::json_kind(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(step: &str, payload: Value) -> Result<Value, String> {
        let spec: StepSpec = toml::from_str(step).map_err(|e| e.to_string())?;
        let step = Step::compile(&spec, Some(&HashKey::new(b"test-key")))?;
        let Value::Object(payload) = payload else {
            panic!("payloads are objects")
        };
        let mut draft = Draft::new(payload);
        let record = crate::pipeline::mapping::test_record(None, Vec::new());
        step.apply(&mut draft, &record)?;
        Ok(Value::Object(draft.payload))
    }

    #[test]
    fn shaping_steps_move_copy_set_and_keep_fields() {
        let p = json!({"sku": "S", "qty": 2, "item": {"price": 3}, "x": 1});
        assert_eq!(
            run(
                r#"rename = { sku = "item.sku", "item.price" = "price" }"#,
                p.clone()
            )
            .unwrap(),
            json!({"qty": 2, "item": {"sku": "S"}, "price": 3, "x": 1})
        );
        assert_eq!(
            run(r#"copy = { sku = "meta.sku" }"#, p.clone()).unwrap()["meta"],
            json!({"sku": "S"})
        );
        assert_eq!(
            run(r#"set = { currency = "EUR", qty = 5 }"#, p.clone()).unwrap()["qty"],
            json!(5)
        );
        let defaulted = run(r#"default = { currency = "EUR", qty = 5 }"#, p.clone()).unwrap();
        assert_eq!(
            (&defaulted["currency"], &defaulted["qty"]),
            (&json!("EUR"), &json!(2))
        );
        assert_eq!(
            run(r#"keep = ["sku", "item.price"]"#, p.clone()).unwrap(),
            json!({"sku": "S", "item": {"price": 3}})
        );
        assert_eq!(
            run(r#"drop = ["x", "item"]"#, p).unwrap(),
            json!({"sku": "S", "qty": 2})
        );
    }

    #[test]
    fn casts_convert_or_reject() {
        let p = json!({"a": "12", "b": "1.5", "c": 3.0, "d": "yes", "e": 7, "f": "x"});
        let out = run(
            r#"cast = { a = "number", b = "number", c = "integer", d = "bool", e = "string" }"#,
            p.clone(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"a": 12, "b": 1.5, "c": 3, "d": true, "e": "7", "f": "x"})
        );
        assert_eq!(
            run(r#"cast = { f = "integer" }"#, p.clone()).unwrap_err(),
            "cannot cast `f` (a string \"x\") to integer"
        );
        assert_eq!(
            run(r#"cast = { b = "integer" }"#, p).unwrap_err(),
            "cannot cast `b` (a string \"1.5\") to integer"
        );
    }

    #[test]
    fn split_field_fills_its_parts_in_order() {
        let p = json!({"name": "Ada King Lovelace"});
        assert_eq!(
            run(
                r#"split_field = { field = "name", separator = " ", into = ["first", "last"] }"#,
                p
            )
            .unwrap(),
            json!({"first": "Ada", "last": "King Lovelace"})
        );
        assert!(
            run(
                r#"split_field = { field = "n", separator = " ", into = ["a"] }"#,
                json!({"n": 1})
            )
            .unwrap_err()
            .contains("not a string")
        );
    }

    #[test]
    fn privacy_steps_hash_and_mask() {
        let p = json!({"email": "a@example.com", "card": "4111111111111111"});
        let out = run(r#"hash = ["email"]"#, p.clone()).unwrap();
        assert_eq!(
            out["email"],
            json!(HashKey::new(b"test-key").hash_hex(b"a@example.com"))
        );
        assert_eq!(
            run("mask = { card = 4 }", p).unwrap()["card"],
            json!("************1111")
        );
        let spec: StepSpec = toml::from_str(r#"hash = ["email"]"#).unwrap();
        assert!(
            Step::compile(&spec, None)
                .unwrap_err()
                .contains("mapping.hash_key")
        );
    }

    #[test]
    fn when_guards_a_step() {
        let step = r#"when = { field = "kind", equals = "b2b" }
drop = ["email"]"#;
        assert_eq!(
            run(step, json!({"kind": "b2c", "email": "e"})).unwrap()["email"],
            "e"
        );
        assert!(
            run(step, json!({"kind": "b2b", "email": "e"}))
                .unwrap()
                .get("email")
                .is_none()
        );
    }

    #[test]
    fn a_step_has_exactly_one_operation() {
        assert!(
            run("", json!({}))
                .unwrap_err()
                .contains("needs one operation")
        );
        assert!(
            run("drop = [\"a\"]\nkeep = [\"b\"]", json!({}))
                .unwrap_err()
                .contains("split this one into 2 steps")
        );
        assert!(
            run("explode = 1", json!({}))
                .unwrap_err()
                .contains("unknown field `explode`")
        );
    }
}
