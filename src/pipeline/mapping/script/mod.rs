//! Rhai transforms: a script file defining `fn transform(record)`, run in
//! one sandboxed engine built once for the whole chain.
//!
//! The sandbox: no file, network, environment or module access (Rhai has
//! none unless registered; `import` is compiled out and `eval` disabled),
//! no clock and no randomness (so replaying a record gives the same
//! events), strict variables, and limits per call on operations, string,
//! array and map sizes and call depth, plus expression depth at compile
//! time. A script that exceeds a limit on a record rejects that record,
//! naming the limit; it never hangs or crashes the worker.

mod config;
mod convert;
mod engine;

use std::collections::HashSet;

use rhai::{AST, CallFnOptions, Dynamic, Engine, EvalAltResult, Map, Scope};
use serde_json::Value;

use super::{Draft, MappingError};
use crate::pipeline::record::LegacyRecord;
use crate::pipeline::trace::{Decision, FieldChanges, Trace};
pub(crate) use config::ScriptsConfig;
use convert::{to_json, to_rhai_map};
pub(super) use engine::ScriptEngine;

/// The function every script defines.
const ENTRY: &str = "transform";

/// The constant a script may declare to run for some event types only.
const EVENT_TYPES: &str = "EVENT_TYPES";

/// The fields a script may return in an event map; anything else is a
/// mistake worth a rejection rather than silence.
const RETURNED_FIELDS: &[&str] = &[
    "payload",
    "event_type",
    "key",
    "occurred_at",
    "correlation_id",
    // Read-only context handed in; returning it unchanged is fine.
    "headers",
    "record_key",
    "source",
];

/// A compiled script transform.
#[derive(Debug, Clone)]
pub(super) struct Script {
    name: String,
    engine: ScriptEngine,
    ast: AST,
    /// The event types the script declares it is for; `None`: all.
    only: Option<HashSet<String>>,
}

/// The script's `const EVENT_TYPES = ["…", …]`, read by running its
/// top-level statements once, at compile time (calls skip them).
fn declared_event_types(
    engine: &Engine,
    ast: &AST,
) -> Result<Option<HashSet<String>>, ScriptError> {
    let mut scope = Scope::new();
    engine
        .run_ast_with_scope(&mut scope, ast)
        .map_err(|e| ScriptError {
            line: e.position().line(),
            message: format!("top-level statements: {e}"),
        })?;
    let Some(declared) = scope.get(EVENT_TYPES) else {
        return Ok(None);
    };
    let invalid = || ScriptError {
        line: None,
        message: format!("{EVENT_TYPES} must be an array of event type names (PascalCase)"),
    };
    let types = declared.clone().into_array().map_err(|_| invalid())?;
    types
        .into_iter()
        .map(|t| {
            t.into_string()
                .ok()
                .filter(|name| crate::avro::is_event_type(name))
                .ok_or_else(invalid)
        })
        .collect::<Result<_, _>>()
        .map(Some)
}

/// A script that does not compile: the line when known, and why.
#[derive(Debug)]
pub(super) struct ScriptError {
    pub line: Option<usize>,
    pub message: String,
}

impl Script {
    pub(super) fn compile(
        engine: &ScriptEngine,
        name: &str,
        text: &str,
    ) -> Result<Self, ScriptError> {
        let mut ast = engine.engine.compile(text).map_err(|e| ScriptError {
            line: e.position().line(),
            message: match e.err_type() {
                rhai::ParseErrorType::ExprTooDeep => format!(
                    "expression nested deeper than scripts.max_expr_depth ({})",
                    engine.limits.max_expr_depth
                ),
                other => other.to_string(),
            },
        })?;
        ast.set_source(name);
        if !ast
            .iter_functions()
            .any(|f| f.name == ENTRY && f.params.len() == 1)
        {
            return Err(ScriptError {
                line: None,
                message: format!("defines no `fn {ENTRY}(record)`"),
            });
        }
        let only = declared_event_types(&engine.engine, &ast)?;
        Ok(Self {
            name: name.to_owned(),
            engine: engine.clone(),
            ast,
            only,
        })
    }

    /// Whether the script runs for this event: every event, unless the
    /// script declares `const EVENT_TYPES = [...]`. Events of other types
    /// pass through untouched, without the cost of a call.
    pub(super) fn applies_to(&self, draft: &Draft) -> bool {
        self.only
            .as_ref()
            .is_none_or(|types| draft.event_type.as_ref().is_some_and(|t| types.contains(t)))
    }

    /// Runs the script on one event being built, pushing what it returns
    /// onto `out`: nothing for `()` or an empty array.
    pub(super) fn apply(
        &self,
        draft: &Draft,
        record: &LegacyRecord<'_>,
        out: &mut Vec<Draft>,
        trace: &mut Trace,
    ) -> Result<(), MappingError> {
        if !trace.is_on() {
            return self.call(&self.engine.engine, draft, record, out);
        }
        let before = out.len();
        let result = self.call(self.engine.counting(), draft, record, out);
        let operations = engine::operations_used();
        let returned = out.get(before..).unwrap_or_default();
        trace.note(|| Decision::Script {
            result: match (&result, returned.len()) {
                (Err(e), _) => format!("rejected: {}", e.reason),
                (Ok(()), 0) => "returned nothing: filtered".into(),
                (Ok(()), 1) => "returned 1 event".into(),
                (Ok(()), n) => format!("returned {n} events"),
            },
            operations,
            // Of one event, what the script changed in it.
            changes: match returned {
                [one] => FieldChanges::between(&draft.payload, &one.payload),
                _ => FieldChanges::default(),
            },
        });
        result
    }

    fn call(
        &self,
        engine: &Engine,
        draft: &Draft,
        record: &LegacyRecord<'_>,
        out: &mut Vec<Draft>,
    ) -> Result<(), MappingError> {
        let input = Self::input(draft, record);
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        let returned: Dynamic = engine
            .call_fn_with_options(options, &mut Scope::new(), &self.ast, ENTRY, (input,))
            .map_err(|e| self.rejection(&e))?;
        if returned.is_unit() {
            return Ok(());
        }
        if returned.is_array() {
            let items = returned.into_array().expect("checked to be an array");
            for (i, item) in items.into_iter().enumerate() {
                out.push(self.output(item, draft, &format!("element {i} of the array"))?);
            }
            return Ok(());
        }
        out.push(self.output(returned, draft, "the value")?);
        Ok(())
    }

    /// The record as the script sees it.
    fn input(draft: &Draft, record: &LegacyRecord<'_>) -> Dynamic {
        let mut map = Map::new();
        let payload = Dynamic::from_map(to_rhai_map(&draft.payload));
        let text = |bytes: &[u8]| Dynamic::from(String::from_utf8_lossy(bytes).into_owned());
        let optional = |value: Option<Dynamic>| value.unwrap_or(Dynamic::UNIT);
        map.insert("payload".into(), payload);
        map.insert(
            "event_type".into(),
            optional(draft.event_type.clone().map(Dynamic::from)),
        );
        map.insert("key".into(), optional(draft.key.clone().map(Dynamic::from)));
        map.insert(
            "occurred_at".into(),
            optional(draft.occurred_at_ms.map(Dynamic::from)),
        );
        map.insert(
            "correlation_id".into(),
            optional(draft.correlation_id.clone().map(Dynamic::from)),
        );
        map.insert("record_key".into(), optional(record.key.map(text)));
        let headers: Map = record
            .headers
            .iter()
            .map(|(name, value)| ((*name).into(), optional(value.map(text))))
            .collect();
        map.insert("headers".into(), Dynamic::from_map(headers));
        let mut source = Map::new();
        source.insert(
            "topic".into(),
            Dynamic::from(record.position.topic.to_owned()),
        );
        source.insert(
            "partition".into(),
            Dynamic::from(i64::from(record.position.partition)),
        );
        source.insert("offset".into(), Dynamic::from(record.position.offset));
        source.insert(
            "timestamp".into(),
            optional(record.timestamp_ms.map(Dynamic::from)),
        );
        map.insert("source".into(), Dynamic::from_map(source));
        Dynamic::from_map(map)
    }

    /// One returned event map as a draft.
    fn output(&self, value: Dynamic, before: &Draft, what: &str) -> Result<Draft, MappingError> {
        let reject =
            |message: String| MappingError::new(format!("script {}: {message}", self.name));
        let type_name = value.type_name();
        let Some(map) = value.try_cast::<Map>() else {
            return Err(reject(format!(
                "{what} returned is {type_name}; return a map, an array of maps, or ()"
            )));
        };
        if let Some(unknown) = map.keys().find(|k| !RETURNED_FIELDS.contains(&k.as_str())) {
            return Err(reject(format!(
                "{what} returned has an unknown field `{unknown}` (known: payload, event_type, key, occurred_at, correlation_id)"
            )));
        }
        let string = |field: &str| -> Result<Option<String>, MappingError> {
            match map.get(field) {
                None => Ok(None),
                Some(v) if v.is_unit() => Ok(None),
                Some(v) => match v.clone().into_immutable_string() {
                    Ok(s) => Ok(Some(s.to_string())),
                    Err(found) => Err(reject(format!("`{field}` is {found}, not a string"))),
                },
            }
        };
        let payload = match map.get("payload") {
            Some(p) => match to_json(p) {
                Ok(Value::Object(payload)) => payload,
                Ok(_) => return Err(reject(format!("`payload` of {what} returned is not a map"))),
                Err(e) => return Err(reject(format!("`payload`: {e}"))),
            },
            None => return Err(reject(format!("{what} returned has no `payload`"))),
        };
        let occurred_at_ms = match map.get("occurred_at") {
            None => before.occurred_at_ms,
            Some(v) if v.is_unit() => None,
            Some(v) => {
                let json = to_json(v).map_err(reject)?;
                Some(
                    crate::pipeline::timestamp::epoch_millis(&json)
                        .map_err(|e| reject(format!("`occurred_at`: {e}")))?,
                )
            }
        };
        let event_type = string("event_type")?;
        let derived_from = if event_type == before.event_type {
            before.derived_from.clone()
        } else {
            None
        };
        Ok(Draft {
            event_type,
            derived_from,
            key: string("key")?,
            occurred_at_ms,
            correlation_id: string("correlation_id")?,
            payload,
        })
    }

    /// Why the script's failure on a record rejects it.
    fn rejection(&self, error: &EvalAltResult) -> MappingError {
        let limits = &self.engine.limits;
        let name = &self.name;
        let message = match error.unwrap_inner() {
            EvalAltResult::ErrorRuntime(thrown, _) => {
                match thrown.clone().into_immutable_string() {
                    Ok(reason) => return MappingError::new(reason.to_string()),
                    Err(_) => format!("threw {thrown}"),
                }
            }
            EvalAltResult::ErrorTooManyOperations(_) => format!(
                "exceeded scripts.max_operations ({})",
                limits.max_operations
            ),
            EvalAltResult::ErrorStackOverflow(_) => format!(
                "exceeded scripts.max_call_depth ({})",
                limits.max_call_depth
            ),
            EvalAltResult::ErrorDataTooLarge(what, _) => match what.as_str() {
                "Length of string" => format!(
                    "exceeded scripts.max_string_bytes ({})",
                    limits.max_string_bytes
                ),
                "Size of object map" => {
                    format!("exceeded scripts.max_map_len ({})", limits.max_map_len)
                }
                _ => format!("exceeded scripts.max_array_len ({})", limits.max_array_len),
            },
            other => match other.position().line() {
                Some(line) => format!("line {line}: {other}"),
                None => other.to_string(),
            },
        };
        MappingError::new(format!("script {name}: {message}"))
    }
}

#[cfg(test)]
mod tests {
    use std::num::{NonZeroU64, NonZeroUsize};

    use serde_json::json;

    use super::ScriptsConfig;
    use crate::pipeline::mapping::{Mapped, Mapping, TransformFile};

    fn compile_with(script: &str, limits: &ScriptsConfig) -> Result<Mapping, String> {
        let files = [TransformFile {
            path: "t.rhai".into(),
            text: script.into(),
        }];
        Mapping::compile(&files, Some("test-key-of-16-bytes"), limits).map_err(|e| e.to_string())
    }

    fn compile(script: &str) -> Mapping {
        compile_with(script, &ScriptsConfig::default()).unwrap()
    }

    fn run(mapping: &Mapping, payload: serde_json::Value) -> Result<Mapped, String> {
        let serde_json::Value::Object(payload) = payload else {
            panic!("payloads are objects")
        };
        let record = crate::pipeline::mapping::test_record(Some(b"k-1"), vec![("x-h", Some(b"v"))]);
        mapping
            .apply(payload, &record, &mut crate::pipeline::trace::Trace::off())
            .map_err(|e| e.reason)
    }

    fn rejection(script: &str, limits: &ScriptsConfig) -> String {
        run(&compile_with(script, limits).unwrap(), json!({})).unwrap_err()
    }

    #[test]
    fn a_script_names_shapes_splits_and_filters() {
        let m = compile(
            r#"
            fn transform(r) {
                let p = r.payload;
                if p.kind == "noise" { return (); }
                if p.kind == "many" {
                    return p.items.map(|i| #{ event_type: "ItemAdded", key: r.record_key, payload: #{ sku: i } });
                }
                #{
                    event_type: past_tense(p.command),
                    key: `${r.source.topic}:${r.source.offset}`,
                    occurred_at: parse_time(p.at),
                    correlation_id: r.headers["x-h"],
                    payload: #{ email: hash(p.email), card: mask(p.card, 4), words: words(p.command) },
                }
            }"#,
        );
        let Ok(Mapped::Events(events)) = run(
            &m,
            json!({"command": "SHIP_ORDER", "at": "2025-11-24T16:00:00Z", "email": "a@b", "card": "12345678"}),
        ) else {
            panic!()
        };
        let event = &events[0];
        assert_eq!(event.event_type, "ShippedOrder");
        assert_eq!(event.key, "legacy-cart:7");
        assert_eq!(event.occurred_at_ms, Some(1_763_999_999_999 + 1));
        assert_eq!(event.correlation_id.as_deref(), Some("v"));
        let hash = crate::pipeline::mapping::privacy::HashKey::new(b"test-key-of-16-bytes")
            .hash_hex(b"a@b");
        assert_eq!(
            serde_json::Value::Object(event.payload.clone()),
            json!({"email": hash, "card": "****5678", "words": ["ship", "order"]})
        );
        let Ok(Mapped::Events(items)) = run(&m, json!({"kind": "many", "items": ["A", "B"]}))
        else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].payload["sku"], "B");
        assert_eq!(items[1].key, "k-1");
        assert_eq!(run(&m, json!({"kind": "noise"})), Ok(Mapped::Filtered));
    }

    #[test]
    fn a_script_declaring_event_types_runs_for_those_alone() {
        let files = [
            TransformFile {
                path: "t.toml".into(),
                text: "[command]\nfield = \"c\"\nevents = { A = \"Aed\", B = \"Bed\" }".into(),
            },
            TransformFile {
                path: "t.rhai".into(),
                text:
                    "const EVENT_TYPES = [\"Bed\"];\nfn transform(r) { r.payload.seen = true; r }"
                        .into(),
            },
        ];
        let m = Mapping::compile(&files, None, &ScriptsConfig::default()).unwrap();
        for (command, seen) in [("A", None), ("B", Some(&json!(true)))] {
            let Ok(Mapped::Events(events)) = run(&m, json!({"c": command})) else {
                panic!()
            };
            assert_eq!(events[0].payload.get("seen"), seen, "{command}");
        }
        for declared in ["\"Bed\"", "[1]", "[\"bed\"]"] {
            let script = format!("const EVENT_TYPES = {declared};\nfn transform(r) {{ r }}");
            let error = compile_with(&script, &ScriptsConfig::default()).unwrap_err();
            assert!(
                error.contains("EVENT_TYPES must be an array"),
                "{declared}: {error}"
            );
        }
    }

    #[test]
    fn paths_can_be_read_written_and_removed() {
        let m = compile(
            r#"fn transform(r) {
                let p = r.payload;
                set_path(p, "a.b.c", get_path(p, "x.y") + 1);
                remove_path(p, "x.y");
                #{ event_type: "Done", payload: p }
            }"#,
        );
        let Ok(Mapped::Events(events)) = run(&m, json!({"x": {"y": 1, "z": 2}})) else {
            panic!()
        };
        assert_eq!(
            serde_json::Value::Object(events[0].payload.clone()),
            json!({"a": {"b": {"c": 2}}, "x": {"z": 2}})
        );
    }

    #[test]
    fn paths_are_parsed_as_transform_files_parse_them() {
        let m = compile(
            r#"fn transform(r) {
                let p = r.payload;
                switch p.kind {
                    "empty" => get_path(p, "x..y"),
                    "wildcard" => remove_path(p, "x.*"),
                    _ => set_path(p, "kind.deeper", 1),
                }
                #{ event_type: "Done", payload: p }
            }"#,
        );
        for (case, reason) in [
            ("empty", "`x..y` is not a dotted field path"),
            (
                "wildcard",
                "`x.*`: wildcards are only allowed in `drop` patterns",
            ),
            ("blocked", "cannot set `kind.deeper`: `kind` is not a map"),
        ] {
            let got = run(&m, json!({"kind": case})).unwrap_err();
            assert!(got.contains(reason), "{case}: {got}");
        }
    }

    #[test]
    fn thrown_messages_and_bad_returns_are_rejection_reasons() {
        let m = compile(
            r#"fn transform(r) {
                switch r.payload.kind {
                    "throw" => throw "no cart in this command",
                    "string" => "oops",
                    "field" => #{ event_type: "A", payload: #{}, evnt_type: "B" },
                    "payload" => #{ event_type: "A", payload: [1] },
                    _ => r.payload.missing.deeper
                }
            }"#,
        );
        for (case, reason) in [
            ("throw", "no cart in this command"),
            (
                "string",
                "script t.rhai: the value returned is string; return a map, an array of maps, or ()",
            ),
            (
                "field",
                "script t.rhai: the value returned has an unknown field `evnt_type`",
            ),
            (
                "payload",
                "script t.rhai: `payload` of the value returned is not a map",
            ),
            ("other", "script t.rhai: line 7:"),
        ] {
            let got = run(&m, json!({"kind": case})).unwrap_err();
            assert!(got.starts_with(reason), "{case}: {got}");
        }
    }

    #[test]
    fn every_limit_rejects_the_record_naming_it() {
        let generous = ScriptsConfig {
            max_operations: NonZeroU64::new(10_000_000).unwrap(),
            max_array_len: NonZeroUsize::new(100).unwrap(),
            max_map_len: NonZeroUsize::new(100).unwrap(),
            ..ScriptsConfig::default()
        };
        let default = ScriptsConfig::default();
        for (body, limits, reason) in [
            (
                "loop { }",
                &default,
                "exceeded scripts.max_operations (100000)",
            ),
            (
                r#"let s = "x"; loop { s += s; }"#,
                &default,
                "exceeded scripts.max_string_bytes (1048576)",
            ),
            (
                "deeper(0)",
                &default,
                "exceeded scripts.max_call_depth (32)",
            ),
            (
                "let a = []; loop { a.push(0); }",
                &generous,
                "exceeded scripts.max_array_len (100)",
            ),
            (
                // Growth by merging; see ScriptsConfig::max_map_len.
                "let m = #{}; let i = 0; loop { let one = #{}; one[`k${i}`] = i; m += one; i += 1; }",
                &generous,
                "exceeded scripts.max_map_len (100)",
            ),
        ] {
            let script = format!("fn transform(r) {{ {body} }}\nfn deeper(n) {{ deeper(n + 1) }}");
            assert_eq!(
                rejection(&script, limits),
                format!("script t.rhai: {reason}"),
                "{body}"
            );
        }
    }

    #[test]
    fn the_sandbox_refuses_what_scripts_must_not_do() {
        let limits = ScriptsConfig::default();
        let nested = format!(
            "fn transform(r) {{ {}1{} }}",
            "(".repeat(200),
            ")".repeat(200)
        );
        for (script, expected) in [
            ("fn transform(r) { eval(\"1\") }", "t.rhai:1:"),
            ("import \"fs\" as fs;\nfn transform(r) { r }", "t.rhai:1:"),
            (
                "fn transform(r) { undefined_variable }",
                "Undefined variable",
            ),
            (
                nested.as_str(),
                "t.rhai:1: expression nested deeper than scripts.max_expr_depth (64)",
            ),
            (
                "fn other(r) { r }",
                "t.rhai: defines no `fn transform(record)`",
            ),
        ] {
            let error = compile_with(script, &limits).unwrap_err();
            assert!(error.contains(expected), "{script}: {error}");
        }
        // No clock and no randomness: replays must give the same events.
        for call in ["timestamp()", "rand()"] {
            let m = compile(&format!("fn transform(r) {{ {call} }}"));
            let reason = run(&m, json!({})).unwrap_err();
            assert!(reason.contains("Function not found"), "{call}: {reason}");
        }
    }
}
