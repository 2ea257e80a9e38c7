//! Field paths into a JSON object: exact dotted paths (`customer.email`)
//! for reading and writing one field, and patterns (`_meta`, `*.debug_*`,
//! `**.password`) for dropping every field they match.

use serde_json::{Map, Value};

/// A dotted path to one field (`customer.email`), split once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    segments: Vec<String>,
}

impl FieldPath {
    /// Parses a dotted path; every segment must be non-empty and free of
    /// wildcards (those belong to [`FieldPattern`]).
    pub fn parse(path: &str) -> Result<Self, String> {
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(format!("`{path}` is not a dotted field path"));
        }
        if path.contains('*') {
            return Err(format!(
                "`{path}`: wildcards are only allowed in `drop` patterns"
            ));
        }
        Ok(Self { segments })
    }

    /// The path's segments, in order.
    pub(crate) fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The value at this path, when every segment is present.
    pub fn get<'v>(&self, object: &'v Map<String, Value>) -> Option<&'v Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut node = object;
        for segment in parents {
            node = node.get(segment)?.as_object()?;
        }
        node.get(last)
    }

    /// The value at this path, when present and not null.
    pub fn get_present<'v>(&self, object: &'v Map<String, Value>) -> Option<&'v Value> {
        self.get(object).filter(|v| !v.is_null())
    }

    /// Removes the value at this path; absent paths are left alone.
    pub fn remove(&self, object: &mut Map<String, Value>) -> Option<Value> {
        let (last, parents) = self.segments.split_last()?;
        let mut node = object;
        for segment in parents {
            node = node.get_mut(segment)?.as_object_mut()?;
        }
        node.remove(last)
    }

    /// Replaces the value here (a string, or any other value as its JSON
    /// text) by `f` of its text; missing and null values are left alone.
    pub fn replace_text(
        &self,
        object: &mut Map<String, Value>,
        f: impl Fn(&str) -> String,
    ) -> Result<(), String> {
        let Some(value) = self.get_present(object) else {
            return Ok(());
        };
        let replaced = match value {
            Value::String(s) => f(s),
            other => f(&other.to_string()),
        };
        self.insert(object, Value::String(replaced))
    }

    /// Writes `value` at this path, creating missing parent objects. Fails
    /// when a parent exists but is not an object: overwriting it would
    /// silently lose data.
    pub fn insert(&self, object: &mut Map<String, Value>, value: Value) -> Result<(), String> {
        let (last, parents) = self.segments.split_last().expect("paths are non-empty");
        let mut node = object;
        for (depth, segment) in parents.iter().enumerate() {
            let child = node
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            node = match child {
                Value::Object(map) => map,
                other => {
                    return Err(format!(
                        "cannot write `{self}`: `{}` is {}, not an object",
                        self.segments[..=depth].join("."),
                        crate::json::json_kind(other)
                    ));
                }
            };
        }
        node.insert(last.clone(), value);
        Ok(())
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.segments.join("."))
    }
}

/// A drop pattern: dotted segments where `*` inside a segment matches any
/// run of characters (`debug_*`), and a `**` segment matches any number of
/// levels, none included (`**.password` drops `password` at every depth).
/// Patterns descend into arrays element by element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldPattern {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Exact(String),
    Glob(Glob),
    AnyDepth,
}

impl Segment {
    fn matches(&self, key: &str) -> bool {
        match self {
            Segment::Exact(name) => name == key,
            Segment::Glob(glob) => glob.matches(key),
            Segment::AnyDepth => true,
        }
    }
}

/// A segment with `*` in it, split at its stars once at start-up: a drop
/// pattern is matched against every key it walks past.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Glob {
    /// Before the first star.
    prefix: String,
    /// Between stars, in order.
    middle: Vec<String>,
    /// After the last star.
    suffix: String,
}

impl Glob {
    /// `glob` must hold a star.
    fn new(glob: &str) -> Self {
        let (prefix, rest) = glob.split_once('*').unwrap_or((glob, ""));
        let (middle, suffix) = rest.rsplit_once('*').unwrap_or(("", rest));
        Self {
            prefix: prefix.to_owned(),
            middle: middle
                .split('*')
                .filter(|part| !part.is_empty())
                .map(str::to_owned)
                .collect(),
            suffix: suffix.to_owned(),
        }
    }

    /// Whether `text` matches, a star matching any run of characters.
    fn matches(&self, text: &str) -> bool {
        let Some(mut rest) = text.strip_prefix(self.prefix.as_str()) else {
            return false;
        };
        for part in &self.middle {
            match rest.find(part.as_str()) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.ends_with(self.suffix.as_str())
    }
}

impl FieldPattern {
    pub(crate) fn parse(pattern: &str) -> Result<Self, String> {
        let segments = pattern
            .split('.')
            .map(|s| match s {
                "" => Err(format!("`{pattern}` has an empty segment")),
                "**" => Ok(Segment::AnyDepth),
                s if s.contains("**") => Err(format!(
                    "`{pattern}`: `**` must be a whole segment (`a.**.b`)"
                )),
                s if s.contains('*') => Ok(Segment::Glob(Glob::new(s))),
                s => Ok(Segment::Exact(s.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if segments.last() == Some(&Segment::AnyDepth) {
            return Err(format!(
                "`{pattern}` ends in `**`, which names no field; use `*` to drop every field"
            ));
        }
        Ok(Self { segments })
    }

    /// The top-level field this pattern names, when it is one name.
    pub(crate) fn field_name(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [Segment::Exact(name)] => Some(name),
            _ => None,
        }
    }

    /// Removes every field this pattern matches; returns how many.
    pub(crate) fn remove_from(&self, object: &mut Map<String, Value>) -> usize {
        remove_matching(object, &self.segments)
    }
}

fn remove_matching(object: &mut Map<String, Value>, segments: &[Segment]) -> usize {
    let Some((first, rest)) = segments.split_first() else {
        return 0;
    };
    let mut removed = 0;
    if *first == Segment::AnyDepth {
        // `**` matching zero levels here, then one more level below.
        removed += remove_matching(object, rest);
        for child in object.values_mut() {
            removed += descend(child, segments);
        }
        return removed;
    }
    if rest.is_empty() {
        // One lookup for a name. For a glob, a read-only scan first: most
        // objects hold no key it matches, and reading costs less than
        // `retain`'s removing walk.
        if let Segment::Exact(name) = first {
            return usize::from(object.remove(name).is_some());
        }
        if !object.keys().any(|key| first.matches(key)) {
            return 0;
        }
        let before = object.len();
        object.retain(|key, _| !first.matches(key));
        return before - object.len();
    }
    for (key, child) in object.iter_mut() {
        if first.matches(key) {
            removed += descend(child, rest);
        }
    }
    removed
}

fn descend(value: &mut Value, segments: &[Segment]) -> usize {
    match value {
        Value::Object(map) => remove_matching(map, segments),
        Value::Array(items) => items.iter_mut().map(|item| descend(item, segments)).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        let Value::Object(map) = value else {
            panic!("an object")
        };
        map
    }

    #[test]
    fn paths_read_write_and_remove_nested_fields() {
        let mut o = object(json!({"customer": {"id": "c-1"}, "name": "n"}));
        let path = FieldPath::parse("customer.email").unwrap();
        path.insert(&mut o, json!("a@b")).unwrap();
        assert_eq!(path.get(&o), Some(&json!("a@b")));
        FieldPath::parse("item.sku")
            .unwrap()
            .insert(&mut o, json!("S"))
            .unwrap();
        assert_eq!(o["item"], json!({"sku": "S"}));
        assert_eq!(path.remove(&mut o), Some(json!("a@b")));
        assert_eq!(o["customer"], json!({"id": "c-1"}));
        let err = FieldPath::parse("name.first")
            .unwrap()
            .insert(&mut o, json!(1))
            .unwrap_err();
        assert_eq!(
            err,
            "cannot write `name.first`: `name` is a string, not an object"
        );
    }

    #[test]
    fn bad_paths_are_refused() {
        assert!(FieldPath::parse("a..b").is_err());
        assert!(FieldPath::parse("").is_err());
        assert!(FieldPath::parse("a.*").is_err());
        assert!(FieldPattern::parse("a.**").is_err());
        assert!(FieldPattern::parse("a**b").is_err());
    }

    #[test]
    fn patterns_drop_what_they_match_at_their_depth() {
        let mut o = object(json!({
            "debug_top": 1,
            "a": {"debug_x": 1, "keep": 2, "b": {"debug_y": 3}},
            "items": [{"debug_z": 1, "sku": "S"}, {"sku": "T"}],
        }));
        let removed = FieldPattern::parse("*.debug_*")
            .unwrap()
            .remove_from(&mut o);
        assert_eq!(removed, 2);
        assert_eq!(
            Value::Object(o),
            json!({"debug_top": 1, "a": {"keep": 2, "b": {"debug_y": 3}},
                   "items": [{"sku": "S"}, {"sku": "T"}]})
        );
    }

    #[test]
    fn any_depth_patterns_reach_every_level() {
        let mut o = object(json!({
            "password": "p", "a": {"password": "q", "b": [{"password": "r", "x": 1}]}
        }));
        let removed = FieldPattern::parse("**.password")
            .unwrap()
            .remove_from(&mut o);
        assert_eq!(removed, 3);
        assert_eq!(Value::Object(o), json!({"a": {"b": [{"x": 1}]}}));
    }

    #[test]
    fn globs_match_anywhere_in_a_segment() {
        for (glob, text, expected) in [
            ("debug_*", "debug_trace", true),
            ("debug_*", "debug_", true),
            ("debug_*", "xdebug_", false),
            ("*_id", "cart_id", true),
            ("*_id", "cart_idx", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("*", "anything", true),
            ("**", "", true),
            ("a**b", "ab", true),
            ("a*bc*bc", "abcbc", true),
            ("a*bc*bc", "abc", false),
            ("é*ü", "éxü", true),
        ] {
            assert_eq!(Glob::new(glob).matches(text), expected, "{glob} ~ {text}");
        }
    }
}
