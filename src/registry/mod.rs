//! The schema registry: a client for the part of the Confluent Schema
//! Registry REST API recast uses (compatibility checks, registration,
//! schemas by id), and an in-memory registry serving the same API for
//! local runs and tests ([`dev`]).
//!
//! Start-up checks each event schema against its subject's latest version
//! before registering it, so an incompatible change stops recast with the
//! registry's reasons instead of a bare 409.

mod config;
pub(crate) mod dev;
mod tls;

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::json;

use crate::avro::{LedgerSchemas, WriterSchemas};
use crate::pipeline::SchemaIds;
pub use config::RegistryConfig;
pub(crate) use tls::TlsFiles;

/// The media type of the registry API (Confluent's v1).
pub(crate) const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Confluent's error code for an unknown subject.
const SUBJECT_NOT_FOUND: i64 = 40401;
/// Confluent's error code for an unknown version (no latest yet).
const VERSION_NOT_FOUND: i64 = 40402;
/// Confluent's error code for an unknown schema id.
const SCHEMA_NOT_FOUND: i64 = 40403;

/// Longest pause between retries of a transient failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A registry answer recast cannot go on with.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer, or only transient failures, for `registry.retry_for`.
    #[error("schema registry {url} unavailable for {waited:?}: {last}")]
    Unavailable {
        url: String,
        waited: Duration,
        last: String,
    },
    /// The registry refused a request: not worth retrying.
    #[error("schema registry refused {request}: HTTP {status}, error {code}: {message}")]
    Refused {
        request: String,
        status: u16,
        code: i64,
        message: String,
    },
    /// The TLS handshake failed: the registry's certificate is not
    /// trusted, or it wants a client certificate. Not retried: it would
    /// fail the same way.
    #[error(
        "schema registry {url}: TLS failed: {message} (a private CA goes in registry.ca_file, a client certificate in registry.certificate_file and key_file)"
    )]
    Tls { url: String, message: String },
    /// A schema the subject's compatibility rules refuse.
    #[error(
        "{subject}: schema is incompatible with the subject's latest version ({file}): {reasons}"
    )]
    Incompatible {
        subject: String,
        file: String,
        reasons: String,
    },
}

/// What the registry says of a schema against its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compatibility {
    Compatible,
    /// The subject has no version yet: anything can be registered.
    NewSubject,
    /// Refused, with the registry's reasons.
    Incompatible(Vec<String>),
}

/// A client of one registry.
#[derive(Debug, Clone)]
pub struct Registry {
    url: String,
    agent: ureq::Agent,
    authorization: Option<String>,
    retry_for: Duration,
}

/// Why a request got no answer.
#[derive(Debug)]
enum Failure {
    /// Worth another try: no connection, a reset, a garbled answer.
    Transient(String),
    /// The TLS handshake failed.
    Tls(String),
}

impl Failure {
    fn of(error: &ureq::Error) -> Self {
        match error {
            // rustls reports a failed handshake as invalid data.
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                Failure::Tls(io.to_string())
            }
            ureq::Error::Tls(_) => Failure::Tls(error.to_string()),
            _ => Failure::Transient(error.to_string()),
        }
    }
}

/// A registry error body: `{"error_code": 40401, "message": "…"}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error_code: i64,
    message: String,
}

impl Registry {
    pub fn new(config: &RegistryConfig) -> Self {
        let tls = config.tls.tls_config();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(concat!("recast/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let authorization = match (&config.username, &config.password, &config.token) {
            (Some(user), Some(password), _) => {
                Some(format!("Basic {}", basic_credentials(user, password)))
            }
            (_, _, Some(token)) => Some(format!("Bearer {token}")),
            _ => None,
        };
        Self {
            url: config.url.trim_end_matches('/').to_owned(),
            agent,
            authorization,
            retry_for: config.retry_for,
        }
    }

    /// Whether `schema` may be registered under `subject`, by the
    /// subject's compatibility rules.
    pub fn check_compatibility(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<Compatibility, RegistryError> {
        let path = format!(
            "/compatibility/subjects/{}/versions/latest?verbose=true",
            encode_path(subject)
        );
        match self.request(&path, Some(&schema_body(schema))) {
            Ok(body) => {
                if body["is_compatible"].as_bool() == Some(true) {
                    return Ok(Compatibility::Compatible);
                }
                let reasons = body["messages"]
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .map(|r| r.as_str().map_or_else(|| r.to_string(), str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Compatibility::Incompatible(reasons))
            }
            Err(RegistryError::Refused { code, .. })
                if code == SUBJECT_NOT_FOUND || code == VERSION_NOT_FOUND =>
            {
                Ok(Compatibility::NewSubject)
            }
            Err(e) => Err(e),
        }
    }

    /// Registers `schema` under `subject` (a no-op when it is already
    /// there) and returns its id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let path = format!("/subjects/{}/versions", encode_path(subject));
        let body = self.request(&path, Some(&schema_body(schema)))?;
        self.id_in(&body, &path)
    }

    /// Fetches the writer schemas of the framed values among `values` that
    /// `schemas` does not know yet. Fails only when the registry cannot
    /// answer (after its retries); an id it does not have is remembered as
    /// such, and its records are rejected.
    pub fn fetch_writer_schemas<'a>(
        &self,
        schemas: &WriterSchemas,
        values: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> Result<(), RegistryError> {
        for id in schemas.unknown_ids(values) {
            schemas.learn(id, self.schema_by_id(id)?.as_deref());
        }
        Ok(())
    }

    /// The schema text registered under `id`; `None` when there is none.
    pub fn schema_by_id(&self, id: u32) -> Result<Option<String>, RegistryError> {
        match self.request(&format!("/schemas/ids/{id}"), None) {
            Ok(body) => Ok(body["schema"].as_str().map(str::to_owned)),
            Err(RegistryError::Refused { code, .. }) if code == SCHEMA_NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Checks and registers every event schema under its
    /// `TopicRecordNameStrategy` subject; the ids by event type.
    pub fn register_all(
        &self,
        schemas: &LedgerSchemas,
        ledger_topic: &str,
    ) -> Result<SchemaIds, RegistryError> {
        let mut ids = std::collections::HashMap::new();
        for schema in schemas.iter() {
            let subject = schema.subject(ledger_topic);
            if let Compatibility::Incompatible(reasons) =
                self.check_compatibility(&subject, &schema.text)?
            {
                return Err(RegistryError::Incompatible {
                    subject,
                    file: schema.file.clone(),
                    reasons: reasons.join("; "),
                });
            }
            let id = self.register(&subject, &schema.text)?;
            tracing::info!(%subject, id, "schema registered");
            ids.insert(schema.event_type().to_owned(), id);
        }
        Ok(std::sync::Arc::new(ids))
    }

    /// The ids the event schemas are registered under, looked up without
    /// registering anything (`recast explain`); `None` when one is not
    /// registered yet (the worker registers them when it starts).
    pub fn lookup_all(
        &self,
        schemas: &LedgerSchemas,
        ledger_topic: &str,
    ) -> Result<Option<SchemaIds>, RegistryError> {
        let mut ids = std::collections::HashMap::new();
        for schema in schemas.iter() {
            let path = format!("/subjects/{}", encode_path(&schema.subject(ledger_topic)));
            match self.request(&path, Some(&schema_body(&schema.text))) {
                Ok(body) => {
                    ids.insert(schema.event_type().to_owned(), self.id_in(&body, &path)?);
                }
                Err(RegistryError::Refused { code, .. })
                    if code == SUBJECT_NOT_FOUND || code == SCHEMA_NOT_FOUND =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Some(std::sync::Arc::new(ids)))
    }

    fn id_in(&self, body: &serde_json::Value, path: &str) -> Result<u32, RegistryError> {
        body["id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| RegistryError::Refused {
                request: format!("POST {}{path}", self.url),
                status: 200,
                code: 0,
                message: format!("answer without a schema id: {body}"),
            })
    }

    /// One request, retried with backoff while failures are transient
    /// (no connection, 5xx, 429) and `retry_for` has not passed.
    fn request(&self, path: &str, body: Option<&str>) -> Result<serde_json::Value, RegistryError> {
        let url = format!("{}{path}", self.url);
        let method = if body.is_some() { "POST" } else { "GET" };
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            let last = match self.send(&url, body) {
                Ok(Answer::Success(value)) => return Ok(value),
                Ok(Answer::Refused {
                    status,
                    code,
                    message,
                }) if !(status >= 500 || status == 429) => {
                    return Err(RegistryError::Refused {
                        request: format!("{method} {url}"),
                        status,
                        code,
                        message,
                    });
                }
                Ok(Answer::Refused {
                    status, message, ..
                }) => format!("HTTP {status}: {message}"),
                Err(Failure::Transient(transport)) => transport,
                Err(Failure::Tls(message)) => {
                    return Err(RegistryError::Tls {
                        url: self.url.clone(),
                        message,
                    });
                }
            };
            if started.elapsed() + backoff > self.retry_for {
                return Err(RegistryError::Unavailable {
                    url: self.url.clone(),
                    waited: started.elapsed(),
                    last,
                });
            }
            tracing::warn!(%url, error = %last, retry_in = ?backoff, "schema registry request failed");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let request = request.header("Accept", CONTENT_TYPE);
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// POSTs `body`, or GETs without one.
    fn send(&self, url: &str, body: Option<&str>) -> Result<Answer, Failure> {
        let response = match body {
            Some(body) => self
                .authorized(self.agent.post(url))
                .header("Content-Type", CONTENT_TYPE)
                .send(body),
            None => self.authorized(self.agent.get(url)).call(),
        };
        let mut response = response.map_err(|e| Failure::of(&e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::Transient(format!("reading the answer: {e}")))?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text)
                .map(Answer::Success)
                .map_err(|e| Failure::Transient(format!("answer is not JSON ({e}): {text}")));
        }
        Ok(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(error) => Answer::Refused {
                status,
                code: error.error_code,
                message: error.message,
            },
            Err(_) => Answer::Refused {
                status,
                code: 0,
                message: text,
            },
        })
    }
}

enum Answer {
    Success(serde_json::Value),
    Refused {
        status: u16,
        code: i64,
        message: String,
    },
}

/// The body of register and compatibility requests.
fn schema_body(schema: &str) -> String {
    json!({ "schemaType": "AVRO", "schema": schema }).to_string()
}

/// Everything but RFC 3986's unreserved characters is percent-encoded in
/// a path segment: subjects may hold any character a topic or record name
/// can.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A subject as one URL path segment.
fn encode_path(segment: &str) -> String {
    utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

/// Basic authentication credentials: `user:password`, base64 with padding.
fn basic_credentials(user: &str, password: &str) -> String {
    BASE64_STANDARD.encode(format!("{user}:{password}"))
}

#[cfg(test)]
mod tests;
