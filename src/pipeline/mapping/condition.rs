//! Conditions of `filter`, `reject` and `when`: a small expression form
//! (equals / in / exists / matches on a field, header or the record key,
//! combined with all / any / not), compiled once: paths split, regexes
//! built.

use regex::Regex;
use serde_json::Value;

use super::Draft;
use super::path::FieldPath;
use super::spec::ConditionSpec;
use crate::pipeline::record::LegacyRecord;

/// A compiled condition.
#[derive(Debug, Clone)]
pub(super) enum Condition {
    Test(Subject, Test),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

/// What a test looks at.
#[derive(Debug, Clone)]
pub(super) enum Subject {
    Field(FieldPath),
    Header(String),
    RecordKey,
}

#[derive(Debug, Clone)]
pub(super) enum Test {
    Equals(Value),
    In(Vec<Value>),
    Exists(bool),
    Matches(Regex),
}

impl Condition {
    pub(super) fn compile(spec: &ConditionSpec) -> Result<Self, String> {
        let combinators = [
            spec.all.as_ref().map(|c| ("all", c.as_slice())),
            spec.any.as_ref().map(|c| ("any", c.as_slice())),
            spec.not
                .as_deref()
                .map(|c| ("not", std::slice::from_ref(c))),
        ];
        let subjects = [
            spec.field.as_ref().map(|_| "field"),
            spec.header.as_ref().map(|_| "header"),
            spec.record_key.then_some("record_key"),
        ];
        let tests = [
            spec.equals.as_ref().map(|_| "equals"),
            spec.one_of.as_ref().map(|_| "in"),
            spec.exists.map(|_| "exists"),
            spec.matches.as_ref().map(|_| "matches"),
        ];
        let named = |keys: &[Option<&'static str>]| -> Vec<&'static str> {
            keys.iter().flatten().copied().collect()
        };
        let (combinators_given, subjects, tests) = (
            combinators.iter().flatten().count(),
            named(&subjects),
            named(&tests),
        );
        if combinators_given > 0 {
            if combinators_given > 1 || !subjects.is_empty() || !tests.is_empty() {
                return Err("a condition with `all`, `any` or `not` may have nothing else".into());
            }
            let (name, parts) = combinators.into_iter().flatten().next().expect("one");
            let compiled = parts
                .iter()
                .map(Condition::compile)
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(match name {
                "all" => Condition::All(compiled),
                "any" => Condition::Any(compiled),
                _ => Condition::Not(Box::new(compiled.into_iter().next().expect("one"))),
            });
        }
        let subject = match subjects.as_slice() {
            ["field"] => Subject::Field(FieldPath::parse(spec.field.as_deref().expect("given"))?),
            ["header"] => Subject::Header(spec.header.clone().expect("given")),
            ["record_key"] => Subject::RecordKey,
            [] => return Err("a condition needs `field`, `header` or `record_key`".into()),
            more => {
                return Err(format!(
                    "a condition has one subject; this one has {}",
                    more.join(", ")
                ));
            }
        };
        let test = match tests.as_slice() {
            ["equals"] => Test::Equals(toml_to_json(spec.equals.clone().expect("given"))),
            ["in"] => Test::In(
                spec.one_of
                    .clone()
                    .expect("given")
                    .into_iter()
                    .map(toml_to_json)
                    .collect(),
            ),
            ["exists"] => Test::Exists(spec.exists.expect("given")),
            ["matches"] => {
                let pattern = spec.matches.as_deref().expect("given");
                Test::Matches(Regex::new(pattern).map_err(|e| {
                    // The library's message draws the pattern over several
                    // lines; its last line is the reason.
                    let message = e.to_string();
                    let reason = message.lines().last().unwrap_or_default();
                    format!(
                        "`matches` is not a valid regex (`{pattern}`): {}",
                        reason.trim_start_matches("error: ")
                    )
                })?)
            }
            [] => {
                return Err(
                    "a condition needs a test: `equals`, `in`, `exists` or `matches`".into(),
                );
            }
            more => {
                return Err(format!(
                    "a condition has one test; this one has {}",
                    more.join(", ")
                ));
            }
        };
        Ok(Condition::Test(subject, test))
    }

    /// Whether the condition holds for an event being built from `record`.
    /// The fields this condition reads, pushed onto `read`.
    pub(super) fn fields<'a>(&'a self, read: &mut Vec<&'a FieldPath>) {
        match self {
            Condition::All(parts) | Condition::Any(parts) => {
                for part in parts {
                    part.fields(read);
                }
            }
            Condition::Not(inner) => inner.fields(read),
            Condition::Test(Subject::Field(path), _) => read.push(path),
            Condition::Test(Subject::Header(_) | Subject::RecordKey, _) => {}
        }
    }

    pub(super) fn holds(&self, draft: &Draft, record: &LegacyRecord<'_>) -> bool {
        match self {
            Condition::All(parts) => parts.iter().all(|c| c.holds(draft, record)),
            Condition::Any(parts) => parts.iter().any(|c| c.holds(draft, record)),
            Condition::Not(inner) => !inner.holds(draft, record),
            Condition::Test(subject, test) => {
                let owned;
                let value = match subject {
                    Subject::Field(path) => path.get(&draft.payload),
                    Subject::Header(name) => {
                        owned = record.header(name).map(|v| Value::String(lossy(v)));
                        owned.as_ref()
                    }
                    Subject::RecordKey => {
                        owned = record.key.map(|k| Value::String(lossy(k)));
                        owned.as_ref()
                    }
                };
                test.holds(value)
            }
        }
    }
}

/// A condition as traces show it, e.g. `command equals "HEARTBEAT"` or
/// ``any(header `x` exists, …)``.
impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |f: &mut std::fmt::Formatter<'_>, name: &str, parts: &[Condition]| {
            write!(f, "{name}(")?;
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{part}")?;
            }
            f.write_str(")")
        };
        match self {
            Condition::All(parts) => list(f, "all", parts),
            Condition::Any(parts) => list(f, "any", parts),
            Condition::Not(inner) => write!(f, "not({inner})"),
            Condition::Test(subject, test) => {
                match subject {
                    Subject::Field(path) => write!(f, "{path}")?,
                    Subject::Header(name) => write!(f, "header `{name}`")?,
                    Subject::RecordKey => f.write_str("record_key")?,
                }
                match test {
                    Test::Equals(value) => write!(f, " equals {value}"),
                    Test::In(values) => write!(f, " in {}", Value::Array(values.clone())),
                    Test::Exists(true) => f.write_str(" exists"),
                    Test::Exists(false) => f.write_str(" does not exist"),
                    Test::Matches(regex) => write!(f, " matches /{}/", regex.as_str()),
                }
            }
        }
    }
}

impl Test {
    fn holds(&self, value: Option<&Value>) -> bool {
        match self {
            Test::Exists(wanted) => value.is_some_and(|v| !v.is_null()) == *wanted,
            Test::Equals(expected) => value.is_some_and(|v| same(v, expected)),
            Test::In(options) => value.is_some_and(|v| options.iter().any(|o| same(v, o))),
            Test::Matches(regex) => match value {
                Some(Value::String(s)) => regex.is_match(s),
                Some(v @ (Value::Number(_) | Value::Bool(_))) => regex.is_match(&v.to_string()),
                _ => false,
            },
        }
    }
}

/// JSON equality where numbers compare by value: `1` in a condition
/// matches `1.0` in a record.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A TOML value as JSON; dates become their RFC 3339 text.
pub(crate) fn toml_to_json(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s),
        toml::Value::Integer(i) => Value::from(i),
        toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.into_iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Value::Object(
            table
                .into_iter()
                .map(|(k, v)| (k, toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn condition(toml: &str) -> Result<Condition, String> {
        let spec: ConditionSpec = toml::from_str(toml).map_err(|e| e.to_string())?;
        Condition::compile(&spec)
    }

    fn holds(toml: &str, payload: Value) -> bool {
        let Value::Object(payload) = payload else {
            panic!("payloads are objects")
        };
        let draft = Draft::new(payload);
        let record = crate::pipeline::mapping::test_record(
            Some(b"cart-1"),
            vec![("x-kind", Some(b"probe"))],
        );
        condition(toml).unwrap().holds(&draft, &record)
    }

    #[test]
    fn tests_look_at_fields_headers_and_the_key() {
        let p = json!({"status": "health", "n": 1.0, "tags": null, "host": "web-12"});
        assert!(holds(
            r#"field = "status"
equals = "health""#,
            p.clone()
        ));
        assert!(holds("field = \"n\"\nequals = 1", p.clone()));
        assert!(holds(
            r#"field = "status"
in = ["ok", "health"]"#,
            p.clone()
        ));
        assert!(!holds("field = \"tags\"\nexists = true", p.clone()));
        assert!(holds("field = \"missing\"\nexists = false", p.clone()));
        assert!(holds(
            r#"field = "host"
matches = "^web-\\d+$""#,
            p.clone()
        ));
        assert!(holds(
            r#"header = "x-kind"
equals = "probe""#,
            p.clone()
        ));
        assert!(holds(
            r#"record_key = true
matches = "^cart-""#,
            p.clone()
        ));
        assert!(holds(
            r#"any = [{ field = "status", equals = "x" }, { not = { field = "host", exists = false } }]"#,
            p.clone()
        ));
        assert!(!holds(
            r#"all = [{ field = "status", equals = "health" }, { field = "n", equals = 2 }]"#,
            p
        ));
    }

    #[test]
    fn malformed_conditions_say_what_is_wrong() {
        for (toml, error) in [
            ("field = \"a\"", "a condition needs a test"),
            (
                "equals = 1",
                "a condition needs `field`, `header` or `record_key`",
            ),
            (
                "field = \"a\"\nheader = \"h\"\nexists = true",
                "one subject",
            ),
            ("field = \"a\"\nexists = true\nequals = 1", "one test"),
            (
                "field = \"a\"\nmatches = \"(\"",
                "`matches` is not a valid regex",
            ),
            ("field = \"a..b\"\nexists = true", "not a dotted field path"),
            ("all = []\nfield = \"a\"", "may have nothing else"),
            ("feild = \"a\"", "unknown field `feild`"),
        ] {
            let err = condition(toml).unwrap_err();
            assert!(err.contains(error), "{toml}: {err}");
        }
    }
}
