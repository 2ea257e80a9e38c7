//! The one hardened Rhai engine every script of a chain runs in, with the
//! helpers scripts may call: the declarative language's operations and
//! logging, and nothing that reaches outside the record.

use std::sync::{Arc, OnceLock};

use rhai::{Dynamic, Engine, EvalAltResult, Map};

use super::ScriptsConfig;
use super::convert::to_json;
use crate::pipeline::mapping::FieldPath;
use crate::pipeline::mapping::command::{derive_event_type, normalise, words};
use crate::pipeline::mapping::privacy::{HashKey, mask};

/// The engine shared by every script of a chain.
#[derive(Clone)]
pub(crate) struct ScriptEngine {
    pub(super) engine: Arc<Engine>,
    /// The same engine, counting the operations of each call into
    /// [`operations_used`], for traces: a callback per operation is a
    /// cost the untraced record path does not pay. Built on the first
    /// traced call, so a worker that is never tapped never builds it.
    counting: Arc<OnceLock<Engine>>,
    hash_key: Option<HashKey>,
    pub(super) limits: ScriptsConfig,
}

thread_local! {
    static OPERATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The operations the last call on the counting engine took, on this
/// thread; reset to 0 by reading.
pub(super) fn operations_used() -> u64 {
    OPERATIONS.with(|ops| ops.replace(0))
}

impl std::fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptEngine")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ScriptEngine {
    /// Builds the hardened engine with the helpers registered.
    pub(crate) fn new(limits: &ScriptsConfig, hash_key: Option<HashKey>) -> Self {
        Self {
            engine: Arc::new(hardened(limits, hash_key.clone())),
            counting: Arc::new(OnceLock::new()),
            hash_key,
            limits: limits.clone(),
        }
    }

    /// The counting engine, for a traced call.
    pub(super) fn counting(&self) -> &Engine {
        self.counting.get_or_init(|| {
            let mut counting = hardened(&self.limits, self.hash_key.clone());
            counting.on_progress(|operations| {
                OPERATIONS.with(|ops| ops.set(operations));
                None
            });
            counting
        })
    }
}

/// An engine with every limit set and the helpers registered.
fn hardened(limits: &ScriptsConfig, hash_key: Option<HashKey>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.max_operations.get())
        .set_max_string_size(limits.max_string_bytes.get())
        .set_max_array_size(limits.max_array_len.get())
        .set_max_map_size(limits.max_map_len.get())
        .set_max_call_levels(limits.max_call_depth.get())
        .set_max_expr_depths(limits.max_expr_depth.get(), limits.max_expr_depth.get())
        .set_strict_variables(true)
        .disable_symbol("eval");
    engine.on_print(|text| tracing::info!(target: "recast::script", "{text}"));
    engine.on_debug(|text, source, position| {
            tracing::debug!(target: "recast::script", script = source.unwrap_or_default(), %position, "{text}");
        });
    register_helpers(&mut engine, hash_key);
    engine
}

fn register_helpers(engine: &mut Engine, hash_key: Option<HashKey>) {
    engine.register_fn(
        "past_tense",
        |command: &str| -> Result<String, Box<EvalAltResult>> {
            derive_event_type(command).ok_or_else(|| {
                format!("`{command}` has no letters or digits to name an event by").into()
            })
        },
    );
    engine.register_fn("normalise", |command: &str| normalise(command));
    engine.register_fn("words", |command: &str| -> rhai::Array {
        words(command).into_iter().map(Dynamic::from).collect()
    });
    engine.register_fn(
        "parse_time",
        |value: Dynamic| -> Result<i64, Box<EvalAltResult>> {
            let json = to_json(&value)?;
            crate::pipeline::timestamp::epoch_millis(&json).map_err(Into::into)
        },
    );
    engine.register_fn("mask", |text: &str, keep_last: i64| {
        mask(text, usize::try_from(keep_last).unwrap_or(0))
    });
    engine.register_fn(
        "hash",
        move |value: Dynamic| -> Result<String, Box<EvalAltResult>> {
            let key = hash_key.as_ref().ok_or(
                "hash() needs a secret key: set mapping.hash_key (RECAST_MAPPING__HASH_KEY)",
            )?;
            let text = match value.clone().into_immutable_string() {
                Ok(s) => s.to_string(),
                Err(_) => to_json(&value)?.to_string(),
            };
            Ok(key.hash_hex(text.as_bytes()))
        },
    );
    // Paths are the transform files' dotted paths, parsed the same way
    // (an empty segment or a wildcard is an error, not a silent miss).
    engine.register_fn(
        "get_path",
        |map: &mut Map, path: &str| -> Result<Dynamic, Box<EvalAltResult>> {
            let path = FieldPath::parse(path)?;
            Ok(get_path(map, path.segments()).unwrap_or(Dynamic::UNIT))
        },
    );
    engine.register_fn(
        "set_path",
        |map: &mut Map, path: &str, value: Dynamic| -> Result<(), Box<EvalAltResult>> {
            let parsed = FieldPath::parse(path)?;
            set_path(map, parsed.segments(), value)
                .map_err(|blocked| format!("cannot set `{path}`: `{blocked}` is not a map").into())
        },
    );
    engine.register_fn(
        "remove_path",
        |map: &mut Map, path: &str| -> Result<Dynamic, Box<EvalAltResult>> {
            let path = FieldPath::parse(path)?;
            Ok(remove_path(map, path.segments()).unwrap_or(Dynamic::UNIT))
        },
    );
    engine.register_fn("log_info", |ctx: rhai::NativeCallContext, message: &str| {
        tracing::info!(target: "recast::script", script = ctx.call_source().unwrap_or_default(), "{message}");
    });
    engine.register_fn("log_warn", |ctx: rhai::NativeCallContext, message: &str| {
        tracing::warn!(target: "recast::script", script = ctx.call_source().unwrap_or_default(), "{message}");
    });
}

fn get_path(map: &Map, segments: &[String]) -> Option<Dynamic> {
    let (first, rest) = segments.split_first()?;
    let value = map.get(first.as_str())?;
    if rest.is_empty() {
        return Some(value.clone());
    }
    let child = value.read_lock::<Map>()?;
    get_path(&child, rest)
}

/// Sets the value, creating maps on the way; the segment that holds
/// something other than a map when one is in the way.
fn set_path<'p>(map: &mut Map, segments: &'p [String], value: Dynamic) -> Result<(), &'p str> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        map.insert(first.into(), value);
        return Ok(());
    }
    let child = map
        .entry(first.into())
        .or_insert_with(|| Dynamic::from_map(Map::new()));
    let mut child = child.write_lock::<Map>().ok_or(first.as_str())?;
    set_path(&mut child, rest, value)
}

fn remove_path(map: &mut Map, segments: &[String]) -> Option<Dynamic> {
    let (first, rest) = segments.split_first()?;
    if rest.is_empty() {
        return map.remove(first.as_str());
    }
    let mut child = map.get_mut(first.as_str())?.write_lock::<Map>()?;
    remove_path(&mut child, rest)
}
