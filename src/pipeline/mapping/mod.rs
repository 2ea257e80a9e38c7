//! Mapping stage: the ordered chain of transforms (declarative
//! `transforms/*.toml` files and Rhai `*.rhai` scripts) that turns one
//! decoded legacy record into zero, one or several event bodies, or
//! rejects it.
//!
//! Compiled once at start-up (files parsed, paths split, regexes built,
//! command tables normalised, scripts compiled); applying it is a pure
//! function of the record. Every transform of the chain runs on every event being built,
//! in order; a record whose events are all filtered is filtered, and one
//! rejection rejects the whole record, so a record is never half-written.

mod command;
mod condition;
pub(crate) mod path;
mod privacy;
mod script;
mod spec;
mod step;
mod transform;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub(crate) use command::{derive_event_type, normalise};
pub(crate) use condition::toml_to_json;
pub(crate) use path::FieldPath;
use privacy::HashKey;
pub(crate) use privacy::Protection;
pub(crate) use script::ScriptsConfig;
use script::{Script, ScriptEngine};
use spec::TransformSpec;
use transform::Transform;

use crate::pipeline::record::LegacyRecord;
use crate::pipeline::trace::{Decision, Trace};

/// An event being built as it passes through the chain.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Draft {
    pub event_type: Option<String>,
    /// The command the event type was derived from, when no table named it.
    pub derived_from: Option<String>,
    pub key: Option<String>,
    pub occurred_at_ms: Option<i64>,
    pub correlation_id: Option<String>,
    pub payload: Map<String, Value>,
}

impl Draft {
    pub(crate) fn new(payload: Map<String, Value>) -> Self {
        Self {
            event_type: None,
            derived_from: None,
            key: None,
            occurred_at_ms: None,
            correlation_id: None,
            payload,
        }
    }

    /// The header fields alone, for the events a split makes.
    fn without_payload(&self) -> Self {
        Self {
            event_type: self.event_type.clone(),
            derived_from: self.derived_from.clone(),
            key: self.key.clone(),
            occurred_at_ms: self.occurred_at_ms,
            correlation_id: self.correlation_id.clone(),
            payload: Map::new(),
        }
    }

    /// The finished event: it must have a type and a ledger key (the
    /// legacy record key when no transform chose a field).
    fn finish(self, record: &LegacyRecord<'_>) -> Result<EventBody, MappingError> {
        let event_type = self
            .event_type
            .ok_or_else(|| MappingError::new("no transform named an event type"))?;
        let key = match self.key {
            Some(key) => key,
            None => record
                .key
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_owned)
                .ok_or_else(|| {
                    MappingError::new(
                        "no ledger key: no transform sets event.key and the record has no UTF-8 key",
                    )
                })?,
        };
        Ok(EventBody {
            event_type,
            derived_from: self.derived_from,
            key,
            occurred_at_ms: self.occurred_at_ms,
            correlation_id: self.correlation_id,
            payload: self.payload,
        })
    }
}

/// Why the mapping rejected a record: the reason written to the
/// dead-letter record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct MappingError {
    pub reason: String,
}

impl MappingError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// What the mapping makes of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// The record is a fact: its events, ready for the envelope.
    Events(Vec<EventBody>),
    /// The record is noise (a heartbeat, a dropped command): counted, not
    /// written.
    Filtered,
}

/// A mapped event before its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct EventBody {
    pub event_type: String,
    /// The command `event_type` was derived from (`unknown = "derive"`).
    pub derived_from: Option<String>,
    /// The ledger record key.
    pub key: String,
    /// When the fact happened, in epoch milliseconds, if the record says.
    pub occurred_at_ms: Option<i64>,
    pub correlation_id: Option<String>,
    /// The clean payload: the legacy object without its technical context.
    pub payload: Map<String, Value>,
}

/// A transform file's name and text.
#[derive(Debug, Clone)]
pub struct TransformFile {
    /// The path as the configuration names it (shown in errors).
    pub path: String,
    pub text: String,
}

impl TransformFile {
    /// The JSON Schema of a declarative transform file (`recast transforms
    /// schema`); Rhai scripts have none.
    pub fn json_schema() -> Value {
        crate::json::schema_of::<spec::TransformSpec>("recast declarative transform")
    }
}

/// A file that cannot be used (a transform, a golden case file): the
/// file, the line when known, and the reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct FileError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// The 1-based line of byte `offset` in `text`: what TOML error spans
/// become in messages, for configurations, transforms and case files alike.
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// One transform of the chain: a declarative file or a Rhai script.
#[derive(Debug, Clone)]
enum Link {
    Declarative(Box<Transform>),
    Script(Box<Script>),
}

impl Link {
    fn apply(
        &self,
        draft: Draft,
        record: &LegacyRecord<'_>,
        out: &mut Vec<Draft>,
        trace: &mut Trace,
    ) -> Result<(), MappingError> {
        match self {
            Link::Declarative(transform) => transform.apply(draft, record, out, trace),
            Link::Script(script) if !script.applies_to(&draft) => {
                trace.note(|| Decision::ScriptNotCalled {
                    event_type: draft.event_type.clone(),
                });
                out.push(draft);
                Ok(())
            }
            Link::Script(script) => script.apply(&draft, record, out, trace),
        }
    }
}

/// A compiled mapping: the chain of transforms.
#[derive(Debug, Clone)]
pub struct Mapping {
    links: Vec<Link>,
    /// Each link's file, as the configuration names it (for traces).
    files: Vec<String>,
    version: String,
}

impl Mapping {
    /// Compiles the chain: `.rhai` files are scripts, the others
    /// declarative. `hash_key` is the deployment's secret for `hash` steps
    /// and the scripts' `hash()`; `limits` bound every script.
    pub fn compile(
        files: &[TransformFile],
        hash_key: Option<&str>,
        limits: &ScriptsConfig,
    ) -> Result<Self, FileError> {
        let hash_key = hash_key.map(|k| HashKey::new(k.as_bytes()));
        let engine = ScriptEngine::new(limits, hash_key.clone());
        let mut links = Vec::with_capacity(files.len());
        for file in files {
            let error = |line: Option<usize>, message: String| FileError {
                file: file.path.clone(),
                line,
                message,
            };
            let span_line =
                |span: Option<std::ops::Range<usize>>| span.map(|s| line_at(&file.text, s.start));
            let link = if is_script(&file.path) {
                Link::Script(Box::new(
                    Script::compile(&engine, &file.path, &file.text)
                        .map_err(|e| error(e.line, e.message))?,
                ))
            } else {
                let spec: TransformSpec = toml::from_str(&file.text)
                    .map_err(|e| error(span_line(e.span()), e.message().to_owned()))?;
                Link::Declarative(Box::new(
                    Transform::compile(&spec, hash_key.as_ref())
                        .map_err(|e| error(span_line(e.span), e.message))?,
                ))
            };
            links.push(link);
        }
        check_chain(files, &links)?;
        let mut digest = Sha256::new();
        for file in files {
            digest.update(file.path.as_bytes());
            digest.update([0]);
            digest.update(file.text.as_bytes());
            digest.update([0]);
        }
        let version = hex::encode(&digest.finalize()[..8]);
        Ok(Self {
            links,
            files: files.iter().map(|f| f.path.clone()).collect(),
            version,
        })
    }

    /// The mapping version written to every event header: a hash of the
    /// transform files, so a changed mapping is visible in the ledger.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The event types the chain's command tables name. Types a script
    /// makes up, or `unknown = "derive"` derives, cannot be listed.
    pub fn named_event_types(&self) -> std::collections::BTreeSet<&str> {
        self.links
            .iter()
            .filter_map(|link| match link {
                Link::Declarative(transform) => transform.event_types(),
                Link::Script(_) => None,
            })
            .flatten()
            .collect()
    }

    /// Top-level fields the chain drops before reading them: the first
    /// transform's, when it is declarative. A script may read anything.
    pub fn fields_dropped_unread(&self) -> Vec<String> {
        match self.links.first() {
            Some(Link::Declarative(transform)) => transform.fields_dropped_unread(),
            Some(Link::Script(_)) | None => Vec::new(),
        }
    }

    /// Maps one decoded legacy object, noting each decision in `trace`.
    pub fn apply(
        &self,
        object: Map<String, Value>,
        record: &LegacyRecord<'_>,
        trace: &mut Trace,
    ) -> Result<Mapped, MappingError> {
        let mut drafts = vec![Draft::new(object)];
        for (link, file) in self.links.iter().zip(&self.files) {
            let mut next = Vec::with_capacity(drafts.len());
            for (event, draft) in drafts.into_iter().enumerate() {
                trace.note(|| Decision::Transform {
                    file: file.clone(),
                    event,
                });
                link.apply(draft, record, &mut next, trace)?;
            }
            if next.is_empty() {
                return Ok(Mapped::Filtered);
            }
            drafts = next;
        }
        drafts
            .into_iter()
            .map(|draft| draft.finish(record))
            .collect::<Result<_, _>>()
            .map(Mapped::Events)
    }
}

/// Whether a transform file is a Rhai script (by its extension).
fn is_script(path: &str) -> bool {
    std::path::Path::new(path.trim_end_matches(" (embedded)"))
        .extension()
        .is_some_and(|e| e == "rhai")
}

/// Checks that hold across files: something names the event types, and
/// every `types.<EventType>` section names a type the chain can produce
/// (a misspelt one would silently never run). Scripts may name any type.
fn check_chain(files: &[TransformFile], links: &[Link]) -> Result<(), FileError> {
    let whole_chain = |file: &TransformFile, message: String| FileError {
        file: file.path.clone(),
        line: None,
        message,
    };
    let Some(first) = files.first() else {
        return Err(FileError {
            file: "mapping.transforms".into(),
            line: None,
            message: "names no transform file".into(),
        });
    };
    let names_types = |link: &Link| match link {
        Link::Declarative(transform) => transform.recognises_commands(),
        Link::Script(_) => true,
    };
    if !links.iter().any(names_types) {
        return Err(whole_chain(
            first,
            "no transform of the chain has a [command] section or is a script, \
             so no event would have a type"
                .into(),
        ));
    }
    let known: Option<Vec<&str>> = links.iter().try_fold(Vec::new(), |mut all, link| {
        match link {
            Link::Declarative(transform) => all.extend(transform.event_types()?),
            Link::Script(_) => return None,
        }
        Some(all)
    });
    if let Some(known) = known {
        for (file, link) in files.iter().zip(links) {
            let Link::Declarative(transform) = link else {
                continue;
            };
            if let Some(unknown) = transform.typed_steps().find(|t| !known.contains(t)) {
                return Err(whole_chain(
                    file,
                    format!("types.{unknown}: no command of the chain maps to `{unknown}`"),
                ));
            }
        }
    }
    Ok(())
}

/// A legacy record at offset 7 of `legacy-cart`, for the tests of the parts.
#[cfg(test)]
fn test_record(
    key: Option<&'static [u8]>,
    headers: Vec<crate::pipeline::record::Header<'static>>,
) -> LegacyRecord<'static> {
    LegacyRecord {
        position: crate::pipeline::record::Position {
            topic: "legacy-cart",
            partition: 0,
            offset: 7,
        },
        timestamp_ms: None,
        key,
        value: None,
        headers,
    }
}

#[cfg(test)]
mod tests;
