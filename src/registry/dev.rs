//! `recast dev-registry`: an in-memory schema registry serving the subset
//! of the Confluent Schema Registry REST API that recast and common
//! clients use, for local runs and tests. Not for production: it forgets
//! everything when it stops. Production points at a real registry
//! (Confluent Schema Registry, Karapace, Redpanda, Apicurio's compatible
//! API).
//!
//! Paths, status codes, error bodies (`{"error_code", "message"}`) and the
//! content type follow Confluent's API reference. Compatibility is
//! enforced with Avro's schema resolution rules (apache-avro's checker):
//! `BACKWARD` (the default), `FORWARD`, `FULL`, their `_TRANSITIVE`
//! forms, and `NONE`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::CONTENT_TYPE;
use crate::http::Response;

/// The compatibility levels Confluent defines.
const LEVELS: &[&str] = &[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
];

/// Largest request body accepted (a schema is a few kilobytes).
const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

/// A running in-memory registry.
#[derive(Debug)]
pub struct DevRegistry {
    address: SocketAddr,
}

impl DevRegistry {
    /// Serves on `address` (port 0 picks a free one) from a thread of its own.
    pub fn start(address: &str) -> std::io::Result<Self> {
        let state = Mutex::new(State::default());
        let address = crate::http::serve(
            address,
            "recast-dev-registry",
            MAX_BODY_BYTES,
            move |request| {
                let mut state = state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let (status, value) = match &request.body {
                    Ok(body) => route(&mut state, request.method, request.url, body),
                    Err(why) => error(400, 400, why.as_str()),
                };
                Response {
                    status,
                    content_type: CONTENT_TYPE,
                    body: value.to_string().into(),
                }
            },
        )?;
        Ok(Self { address })
    }

    /// The base URL clients use.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

#[derive(Default)]
struct State {
    /// Every distinct schema, id = index + 1 (ids are global, as in
    /// Confluent's registry: one schema under two subjects has one id).
    schemas: Vec<Registered>,
    /// Each subject's versions (ids), oldest first.
    subjects: BTreeMap<String, Vec<u32>>,
    global_level: Option<String>,
    subject_levels: BTreeMap<String, String>,
}

/// A schema as registered: its text, kept as sent, its JSON for
/// comparisons, and its parsed form for compatibility checks.
struct Registered {
    text: String,
    json: Value,
    schema: Schema,
}

/// An answer: status and JSON body.
type Reply = (u16, Value);

fn error(status: u16, code: u32, message: impl Into<String>) -> Reply {
    (
        status,
        json!({ "error_code": code, "message": message.into() }),
    )
}

fn subject_not_found(subject: &str) -> Reply {
    error(404, 40401, format!("Subject '{subject}' not found."))
}

fn route(state: &mut State, method: &str, url: &str, body: &str) -> Reply {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let verbose = query.split('&').any(|p| p == "verbose=true");
    match (method, segments.as_slice()) {
        ("GET", [""]) => (200, json!({})),
        ("GET", ["subjects"]) => (200, json!(state.subjects.keys().collect::<Vec<_>>())),
        ("GET", ["subjects", subject, "versions"]) => match state.subjects.get(*subject) {
            Some(versions) => (200, json!((1..=versions.len()).collect::<Vec<_>>())),
            None => subject_not_found(subject),
        },
        ("GET", ["subjects", subject, "versions", version]) => {
            match state.version(subject, version) {
                Ok((number, id)) => (200, state.describe(subject, number, id)),
                Err(reply) => reply,
            }
        }
        ("POST", ["subjects", subject, "versions"]) => match parse_schema(body) {
            Ok(registered) => state.register(subject, registered),
            Err(reply) => reply,
        },
        ("POST", ["subjects", subject]) => match parse_schema(body) {
            Ok(registered) => state.lookup(subject, &registered.json),
            Err(reply) => reply,
        },
        ("POST", ["compatibility", "subjects", subject, "versions", version]) => {
            match parse_schema(body) {
                Ok(registered) => state.check(subject, version, &registered.schema, verbose),
                Err(reply) => reply,
            }
        }
        ("GET", ["schemas", "ids", id]) => match id
            .parse::<u32>()
            .ok()
            .and_then(|id| state.schemas.get((id as usize).wrapping_sub(1)))
        {
            Some(registered) => (200, json!({ "schema": registered.text })),
            None => error(404, 40403, "Schema not found"),
        },
        ("GET", ["config"]) => (200, json!({ "compatibilityLevel": state.global() })),
        ("PUT", ["config"]) => match parse_level(body) {
            Ok(level) => {
                state.global_level = Some(level.clone());
                (200, json!({ "compatibility": level }))
            }
            Err(reply) => reply,
        },
        ("GET", ["config", subject]) => match state.subject_levels.get(*subject) {
            Some(level) => (200, json!({ "compatibilityLevel": level })),
            None => error(
                404,
                40408,
                format!("Subject '{subject}' does not have subject-level compatibility configured"),
            ),
        },
        ("PUT", ["config", subject]) => match parse_level(body) {
            Ok(level) => {
                state
                    .subject_levels
                    .insert((*subject).to_owned(), level.clone());
                (200, json!({ "compatibility": level }))
            }
            Err(reply) => reply,
        },
        _ => error(404, 404, "HTTP 404 Not Found"),
    }
}

impl State {
    fn global(&self) -> &str {
        self.global_level.as_deref().unwrap_or("BACKWARD")
    }

    fn level(&self, subject: &str) -> &str {
        self.subject_levels
            .get(subject)
            .map_or_else(|| self.global(), String::as_str)
    }

    /// A subject's version (`latest` or a number) and its schema id.
    fn version(&self, subject: &str, version: &str) -> Result<(usize, u32), Reply> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| subject_not_found(subject))?;
        let number = match version {
            "latest" | "-1" => versions.len(),
            n => n
                .parse::<usize>()
                .map_err(|_| error(422, 42202, format!("Invalid version {n}")))?,
        };
        match number.checked_sub(1).and_then(|i| versions.get(i)) {
            Some(id) => Ok((number, *id)),
            None => Err(error(404, 40402, format!("Version {version} not found."))),
        }
    }

    fn describe(&self, subject: &str, version: usize, id: u32) -> Value {
        json!({
            "subject": subject,
            "version": version,
            "id": id,
            "schema": self.schemas[id as usize - 1].text,
        })
    }

    fn register(&mut self, subject: &str, new: Registered) -> Reply {
        let existing = self.schemas.iter().position(|known| known.json == new.json);
        if let Some(index) = existing {
            let id = index as u32 + 1;
            if self.subjects.get(subject).is_some_and(|v| v.contains(&id)) {
                return (200, json!({ "id": id }));
            }
        }
        let problems = self.incompatibilities(subject, &new.schema);
        if !problems.is_empty() {
            return error(
                409,
                409,
                format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                    problems.join(", ")
                ),
            );
        }
        let id = if let Some(index) = existing {
            index as u32 + 1
        } else {
            self.schemas.push(new);
            self.schemas.len() as u32
        };
        self.subjects
            .entry(subject.to_owned())
            .or_default()
            .push(id);
        (200, json!({ "id": id }))
    }

    fn lookup(&self, subject: &str, json: &Value) -> Reply {
        let Some(versions) = self.subjects.get(subject) else {
            return subject_not_found(subject);
        };
        versions
            .iter()
            .enumerate()
            .find(|(_, id)| self.schemas[**id as usize - 1].json == *json)
            .map_or_else(
                || error(404, 40403, "Schema not found"),
                |(index, id)| (200, self.describe(subject, index + 1, *id)),
            )
    }

    fn check(&self, subject: &str, version: &str, schema: &Schema, verbose: bool) -> Reply {
        let problems = if version == "latest" && self.level(subject).ends_with("_TRANSITIVE") {
            // Against latest under a transitive level still means all of them.
            if !self.subjects.contains_key(subject) {
                return subject_not_found(subject);
            }
            self.incompatibilities(subject, schema)
        } else {
            let (_, id) = match self.version(subject, version) {
                Ok(found) => found,
                Err(reply) => return reply,
            };
            let against = &self.schemas[id as usize - 1].schema;
            incompatibilities(self.level(subject), against, schema)
        };
        let mut body = json!({ "is_compatible": problems.is_empty() });
        if verbose {
            body["messages"] = json!(problems);
        }
        (200, body)
    }

    /// Why `schema` may not follow the subject's versions under its level
    /// (the latest one, or all of them for a transitive level).
    fn incompatibilities(&self, subject: &str, schema: &Schema) -> Vec<String> {
        let level = self.level(subject);
        let Some(versions) = self.subjects.get(subject) else {
            return Vec::new();
        };
        let against: Vec<u32> = if level.ends_with("_TRANSITIVE") {
            versions.clone()
        } else {
            versions.last().copied().into_iter().collect()
        };
        against
            .iter()
            .flat_map(|id| incompatibilities(level, &self.schemas[*id as usize - 1].schema, schema))
            .collect()
    }
}

/// Why `new` may not follow `old` under `level`.
fn incompatibilities(level: &str, old: &Schema, new: &Schema) -> Vec<String> {
    let backward = || {
        SchemaCompatibility::can_read(old, new).err().map(|e| {
            format!("BACKWARD: the new schema cannot read data written with the old one: {e}")
        })
    };
    let forward = || {
        SchemaCompatibility::can_read(new, old).err().map(|e| {
            format!("FORWARD: the old schema cannot read data written with the new one: {e}")
        })
    };
    match level.trim_end_matches("_TRANSITIVE") {
        "BACKWARD" => backward().into_iter().collect(),
        "FORWARD" => forward().into_iter().collect(),
        "FULL" => backward().into_iter().chain(forward()).collect(),
        _ => Vec::new(),
    }
}

/// The schema of a register, lookup or compatibility request.
fn parse_schema(body: &str) -> Result<Registered, Reply> {
    let request: Value = serde_json::from_str(body)
        .map_err(|e| error(400, 400, format!("Unrecognized request body: {e}")))?;
    match request.get("schemaType").and_then(Value::as_str) {
        None | Some("AVRO") => {}
        Some(other) => {
            return Err(error(
                422,
                42201,
                format!("Invalid schema type {other}: this registry holds Avro schemas only"),
            ));
        }
    }
    let text = request["schema"]
        .as_str()
        .ok_or_else(|| error(422, 42201, "Invalid schema: no `schema` string"))?;
    let json: Value = serde_json::from_str(text)
        .map_err(|e| error(422, 42201, format!("Invalid schema: {e}")))?;
    let schema =
        Schema::parse(&json).map_err(|e| error(422, 42201, format!("Invalid schema: {e}")))?;
    Ok(Registered {
        text: text.to_owned(),
        json,
        schema,
    })
}

fn parse_level(body: &str) -> Result<String, Reply> {
    let request: Value = serde_json::from_str(body)
        .map_err(|e| error(400, 400, format!("Unrecognized request body: {e}")))?;
    let level = request["compatibility"].as_str().unwrap_or("");
    if LEVELS.contains(&level) {
        Ok(level.to_owned())
    } else {
        Err(error(
            422,
            42203,
            format!(
                "Invalid compatibility level `{level}`: one of {}",
                LEVELS.join(", ")
            ),
        ))
    }
}

fn percent_decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}
