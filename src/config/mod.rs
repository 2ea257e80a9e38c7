//! Configuration: `recast.toml` (or the embedded default), overridden by
//! `RECAST_<SECTION>__<KEY>` environment variables, parsed into documented
//! structs and validated as a whole before anything connects.
//!
//! The raw structs below are the user documentation: every field's doc
//! comment is what an operator reads. [`Config::load`] turns them into a
//! [`Config`] that has passed [`RawConfig::validate`].

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod schema_files;

use crate::avro::{LedgerSchemas, SchemaError, SchemaFile, WriterSchemas};
use crate::pipeline::decode::Decoder;
use crate::pipeline::dedupe::{DedupeConfig, KeySource};
use crate::pipeline::mapping::{FileError, Mapping, ScriptsConfig, TransformFile, line_at};
use crate::pipeline::{Encoding, Pipeline, Stages};
use crate::registry::{Registry, RegistryConfig};
pub(crate) use schema_files::read_schema_files;

/// The configuration the quickstart runs with: a local broker on port 9092
/// and the cart sample's mapping. Also the commented reference for every key.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../deploy/local/recast.toml");

/// Where the embedded default sits in the repository: its relative
/// transform paths resolve from here, as they would from the file.
const EMBEDDED_DIR: &str = "deploy/local";

/// The transform files the embedded default may name, compiled in so the
/// binary runs the quickstart from any directory.
const EMBEDDED_TRANSFORMS: &[(&str, &str)] = &[
    (
        "transforms/cart.toml",
        include_str!("../../transforms/cart.toml"),
    ),
    (
        "transforms/cart-amounts.rhai",
        include_str!("../../transforms/cart-amounts.rhai"),
    ),
];

/// The schema files the embedded default may name, compiled in like its
/// transforms.
const EMBEDDED_SCHEMAS: &[(&str, &str)] = &[
    (
        "schemas/header.avsc",
        include_str!("../../schemas/header.avsc"),
    ),
    (
        "schemas/cart/AddedToCart.avsc",
        include_str!("../../schemas/cart/AddedToCart.avsc"),
    ),
    (
        "schemas/cart/CheckedOut.avsc",
        include_str!("../../schemas/cart/CheckedOut.avsc"),
    ),
    (
        "schemas/cart/CouponApplied.avsc",
        include_str!("../../schemas/cart/CouponApplied.avsc"),
    ),
    (
        "schemas/cart/Customer.avsc",
        include_str!("../../schemas/cart/Customer.avsc"),
    ),
    (
        "schemas/cart/QuantityUpdated.avsc",
        include_str!("../../schemas/cart/QuantityUpdated.avsc"),
    ),
    (
        "schemas/cart/RemovedFromCart.avsc",
        include_str!("../../schemas/cart/RemovedFromCart.avsc"),
    ),
];

/// Shorter `mapping.hash_key`s are refused: a hash is only as secret as its key.
const MIN_HASH_KEY_BYTES: usize = 16;

/// Environment variables starting with this prefix and containing `__`
/// override configuration keys: `RECAST_BATCH__MAX_RECORDS=500` sets
/// `batch.max_records`.
const ENV_PREFIX: &str = "RECAST_";

/// Where a configuration came from, for error messages.
#[derive(Debug, Clone)]
pub enum Origin {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Embedded => f.write_str("<embedded default>"),
        }
    }
}

/// The line of a configuration error, when known (shown as `:N`).
#[derive(Debug, Clone, Copy)]
pub struct LineRef(pub Option<usize>);

impl std::fmt::Display for LineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

/// A configuration that cannot be used. Always names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: Origin,
        source: std::io::Error,
    },
    #[error("{origin}{line}: {key}: {message}")]
    Parse {
        origin: Origin,
        /// `:N` when the line is known, else empty.
        line: LineRef,
        key: String,
        message: String,
    },
    #[error("{origin}: environment variable {var}: {message}")]
    Env {
        origin: Origin,
        var: String,
        message: String,
    },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: Origin,
        key: String,
        message: String,
    },
    #[error("{0}")]
    Transform(#[from] FileError),
    #[error("{0}")]
    Schema(#[from] SchemaError),
}

/// The whole `recast.toml`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Connection to the Kafka cluster and the worker's identity in it.
    pub kafka: KafkaConfig,
    /// The three topics one worker connects.
    pub topics: TopicsConfig,
    /// How records are grouped into transactions.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Limits that keep hostile records from hurting the worker.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// What goes into the `source` part of every event header.
    pub source: SourceConfig,
    /// How a legacy record becomes an event.
    pub mapping: MappingConfig,
    /// How events are written to the ledger: format and schemas.
    #[serde(default)]
    pub ledger: LedgerConfig,
    /// The schema registry the ledger's Avro schemas are registered with.
    #[serde(default)]
    pub registry: Option<RegistryConfig>,
    /// The operations listener: `/metrics`, `/healthz`, `/readyz`.
    #[serde(default)]
    pub http: HttpConfig,
    /// The sandbox of Rhai transforms: limits per record.
    #[serde(default)]
    pub scripts: ScriptsConfig,
    /// Dropping the retries of a request. Absent: no dedupe.
    #[serde(default)]
    pub dedupe: Option<DedupeConfig>,
    /// Deliberate failures for rehearsing recovery. Leave empty in production.
    #[serde(default)]
    pub chaos: ChaosConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated (`host:port,host:port`).
    pub brokers: String,
    /// Consumer group shared by every instance reading this legacy topic.
    pub group_id: String,
    /// This instance's stable identity; the producer's `transactional.id` is
    /// `<group_id>-<instance_id>`. Restart a crashed instance with the same id
    /// so its open transaction is rolled back at once. Default: the host name
    /// (a pod name in Kubernetes).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Join the group as a static member (`group.instance.id` =
    /// `instance_id`): a crashed instance restarted with the same id takes
    /// its partitions back at once, with no rebalance. Use it where instance
    /// ids are stable (`StatefulSet`, systemd). The cost: a stopped instance's
    /// partitions wait for `session.timeout.ms` before moving to the others.
    #[serde(default)]
    pub static_membership: bool,
    /// How long start-up waits for the cluster before giving up.
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// librdkafka properties passed to both consumer and producer, for
    /// security settings (`security.protocol`, `sasl.*`, `ssl.*`) and tuning.
    /// Properties recast owns (transactions, offsets, isolation) are rejected.
    /// Values may be strings, numbers or booleans.
    #[serde(default, deserialize_with = "scalar_strings")]
    pub properties: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// The legacy topic this instance consumes.
    pub legacy: String,
    /// The ledger topic events are written to.
    pub ledger: String,
    /// The dead-letter topic rejected records are written to, unchanged.
    pub dead_letter: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most records in one transaction. Larger batches amortise the commit
    /// cost (tens of milliseconds) over more records; smaller ones lower
    /// end-to-end latency and the work redone after an abort.
    #[serde(default = "defaults::max_records")]
    pub max_records: NonZeroUsize,
    /// Longest wait, from a batch's first record, for more records before the
    /// batch is committed. Upper bound on the latency recast adds.
    #[serde(default = "defaults::linger", with = "humantime_serde")]
    pub linger: Duration,
    /// The broker aborts a transaction left open longer than this (a crashed
    /// worker's). Must exceed `linger` plus the time to process a batch.
    #[serde(default = "defaults::transaction_timeout", with = "humantime_serde")]
    pub transaction_timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: defaults::max_records(),
            linger: defaults::linger(),
            transaction_timeout: defaults::transaction_timeout(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
// The field names are the configuration keys users write.
#[allow(clippy::struct_field_names)]
pub struct LimitsConfig {
    /// Legacy record values larger than this are rejected before decoding.
    #[serde(default = "defaults::max_value_bytes")]
    pub max_value_bytes: NonZeroUsize,
    /// JSON nesting deeper than this is rejected (guards the decoder's stack).
    #[serde(default = "defaults::max_json_depth")]
    pub max_json_depth: NonZeroUsize,
    /// Largest record (key, value and headers) recast writes. Set it at or
    /// below the `max.message.bytes` of the ledger and dead-letter topics:
    /// an event above it goes to the dead-letter topic, and a dead letter
    /// above it is written without its key and value. A record the broker
    /// refused instead would fail its transaction on every retry.
    #[serde(default = "defaults::max_output_bytes")]
    pub max_output_bytes: NonZeroUsize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_value_bytes: defaults::max_value_bytes(),
            max_json_depth: defaults::max_json_depth(),
            max_output_bytes: defaults::max_output_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name of the legacy system, written to `header.source.system`.
    pub system: String,
    /// What legacy values are: `json` (default), `avro` (Confluent-framed,
    /// decoded with the writer schema the `[registry]` holds under the
    /// frame's id), or `auto` (Avro when framed, else JSON: for topics
    /// part-way through a migration).
    #[serde(default)]
    pub format: LegacyFormat,
}

/// How legacy values are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LegacyFormat {
    #[default]
    Json,
    Avro,
    Auto,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// The transform files, applied in this order to every record. Relative
    /// paths are relative to this configuration file.
    pub transforms: Vec<String>,
    /// The secret key of `hash` steps. Keep it out of the file: set
    /// `RECAST_MAPPING__HASH_KEY`. Changing it changes every hash written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<String>,
}

/// How ledger values are encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LedgerFormat {
    /// Avro binary in the Confluent wire format (magic byte 0, 4-byte
    /// schema id, datum), every event type's schema registered with the
    /// `[registry]`: the ledger standard.
    #[default]
    Avro,
    /// `{"header": {…}, "payload": {…}}` JSON, for teams without a schema
    /// registry. With `schemas` set, events are still checked against them.
    Json,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// `avro` (default) or `json`.
    #[serde(default)]
    pub format: LedgerFormat,
    /// The Avro schemas: `.avsc` files, and directories whose `*.avsc`
    /// files are all read, relative to this file. Together they hold the
    /// common header (`recast.EventHeader`), one record per event type
    /// (named as the event type) and any types those share. Required with
    /// `avro`. An event whose type has no schema, or whose payload does not
    /// fit it, goes to the dead-letter topic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve the operations endpoints at all.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Address to listen on (`host:port`; port 0 picks a free one and logs it).
    #[serde(default = "defaults::http_listen")]
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: defaults::http_listen(),
        }
    }
}

/// Failure injection for recovery drills and tests. Every field is off by
/// default; do not set any in production.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChaosConfig {
    /// Transactions (counted from 1 per process, retries included) to abort
    /// after all their records were produced and their offsets sent,
    /// instead of committing them.
    #[serde(default)]
    pub abort_transactions: Vec<u64>,
}

/// Reads a table of scalars (strings, numbers, booleans) as strings: all
/// librdkafka properties are strings, but `"linger.ms" = 5` should work.
fn scalar_strings<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        String(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }
    let table = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(table
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Scalar::String(s) => s,
                Scalar::Integer(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (key, text)
        })
        .collect())
}

mod defaults {
    use std::num::NonZeroUsize;
    use std::time::Duration;

    pub(super) fn connect_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub(super) fn max_records() -> NonZeroUsize {
        NonZeroUsize::new(5_000).expect("non-zero")
    }
    pub(super) fn linger() -> Duration {
        Duration::from_millis(200)
    }
    pub(super) fn transaction_timeout() -> Duration {
        Duration::from_mins(1)
    }
    pub(super) fn max_value_bytes() -> NonZeroUsize {
        NonZeroUsize::new(900 * 1024).expect("non-zero")
    }
    pub(super) fn yes() -> bool {
        true
    }
    pub(super) fn http_listen() -> String {
        "0.0.0.0:9464".into()
    }
    pub(super) fn max_output_bytes() -> NonZeroUsize {
        // Kafka's default max.message.bytes (1048588) less headroom for
        // the record batch framing.
        NonZeroUsize::new(1_000_000).expect("non-zero")
    }
    pub(super) fn max_json_depth() -> NonZeroUsize {
        NonZeroUsize::new(64).expect("non-zero")
    }
}

/// librdkafka properties recast sets itself: overriding them would break
/// exactly-once, so `kafka.properties` may not name them.
const OWNED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "transactional.id",
    "enable.idempotence",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "isolation.level",
    "transaction.timeout.ms",
    "partition.assignment.strategy",
    "group.protocol",
    "group.instance.id",
];

/// A configuration that passed validation, with the values derived from it.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    pub origin: Origin,
    /// `kafka.instance_id`, or the host name.
    pub instance_id: String,
    /// The files of `mapping.transforms`, in order.
    pub transforms: Vec<TransformFile>,
    /// The compiled mapping.
    pub mapping: Mapping,
    /// The event schemas of `ledger.schemas`, when set.
    pub schemas: Option<LedgerSchemas>,
    /// What identifies a request, compiled from `[dedupe]`.
    pub dedupe_key: Option<KeySource>,
}

impl Config {
    /// Reads `path` (or the embedded default when `None`), applies the
    /// environment overrides in `env` and validates the result.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (origin, text) = match path {
            Some(path) => {
                let origin = Origin::File(path.to_owned());
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    origin: origin.clone(),
                    source,
                })?;
                (origin, text)
            }
            None => (Origin::Embedded, EMBEDDED_DEFAULT.to_owned()),
        };
        Self::parse(&text, origin, env)
    }

    /// Parses configuration text; see [`Config::load`].
    pub fn parse(
        text: &str,
        origin: Origin,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            parse_error(&origin, text, e.span(), String::new(), e.message())
        })?;
        // With overrides, the merged table is deserialised (and errors name
        // the key only); without, the file itself, so errors have its lines.
        let merged = if apply_env(&mut table, env, &origin)? {
            Some(toml::to_string(&table).map_err(|e| ConfigError::Invalid {
                origin: origin.clone(),
                key: String::new(),
                message: e.to_string(),
            })?)
        } else {
            None
        };
        let source_text = merged.as_deref().unwrap_or(text);
        let deserializer = toml::Deserializer::parse(source_text)
            .map_err(|e| parse_error(&origin, source_text, e.span(), String::new(), e.message()))?;
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let line_text = if merged.is_some() { "" } else { text };
            parse_error(&origin, line_text, inner.span(), key, inner.message())
        })?;
        raw.validate(&origin)?;
        let instance_id = match &raw.kafka.instance_id {
            Some(id) => id.clone(),
            None => hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .ok_or_else(|| ConfigError::Invalid {
                    origin: origin.clone(),
                    key: "kafka.instance_id".into(),
                    message: "not set and the host name cannot be read; set it".into(),
                })?,
        };
        let dedupe_key = match &raw.dedupe {
            Some(dedupe) => {
                Some(
                    dedupe
                        .compile()
                        .map_err(|(key, message)| ConfigError::Invalid {
                            origin: origin.clone(),
                            key: format!("dedupe.{key}"),
                            message,
                        })?,
                )
            }
            None => None,
        };
        let transforms = read_transforms(&raw.mapping, &origin)?;
        let mapping = Mapping::compile(&transforms, raw.mapping.hash_key.as_deref(), &raw.scripts)?;
        let schemas = match raw.ledger.schemas.as_slice() {
            [] => None,
            names => Some(LedgerSchemas::load(&read_schemas(names, &origin)?)?),
        };
        Ok(Self {
            raw,
            origin,
            instance_id,
            transforms,
            mapping,
            schemas,
            dedupe_key,
        })
    }

    /// The one record path of the worker: legacy values read as
    /// `source.format` says, events written as `encoding` says.
    pub fn pipeline(&self, encoding: Encoding) -> Pipeline {
        let decoder = match self.raw.source.format {
            LegacyFormat::Json => self.json_decoder(),
            format => self
                .json_decoder()
                .reading_avro(WriterSchemas::new(), format == LegacyFormat::Auto),
        };
        self.build(decoder, encoding)
    }

    /// The record path of the offline tools, over JSON-lines files: values
    /// are JSON text whatever `source.format` says, and events are JSON,
    /// checked against the configured schemas when there are any, so they
    /// reject what the Avro ledger would.
    pub fn offline_pipeline(&self) -> Pipeline {
        self.build(self.json_decoder(), Encoding::Json(self.schemas.clone()))
    }

    fn json_decoder(&self) -> Decoder {
        let limits = &self.raw.limits;
        Decoder::new(limits.max_value_bytes.get(), limits.max_json_depth.get())
    }

    fn build(&self, decoder: Decoder, encoding: Encoding) -> Pipeline {
        Pipeline::new(Stages {
            decoder,
            mapping: self.mapping.clone(),
            dedupe: self.dedupe_key.clone(),
            system: self.raw.source.system.clone(),
            max_output_bytes: self.raw.limits.max_output_bytes.get(),
            encoding,
        })
    }

    /// A client of the configured schema registry.
    pub fn registry(&self) -> Option<Registry> {
        self.raw.registry.as_ref().map(Registry::new)
    }

    /// The producer's `transactional.id`: stable per instance, unique per group.
    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.raw.kafka.group_id, self.instance_id)
    }
}

/// Reads the transform files of the chain: from disk, relative to the
/// configuration file, or from the binary for the embedded default.
fn read_transforms(
    mapping: &MappingConfig,
    origin: &Origin,
) -> Result<Vec<TransformFile>, ConfigError> {
    mapping
        .transforms
        .iter()
        .map(|name| match origin {
            Origin::File(config) => {
                let path = config.parent().unwrap_or(Path::new("")).join(name);
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    origin: Origin::File(path.clone()),
                    source,
                })?;
                Ok(TransformFile {
                    path: path.display().to_string(),
                    text,
                })
            }
            Origin::Embedded => {
                let wanted = lexical(&Path::new(EMBEDDED_DIR).join(name));
                EMBEDDED_TRANSFORMS
                    .iter()
                    .find(|(path, _)| Path::new(path) == wanted)
                    .map(|(path, text)| TransformFile {
                        path: format!("{path} (embedded)"),
                        text: (*text).to_owned(),
                    })
                    .ok_or_else(|| ConfigError::Invalid {
                        origin: origin.clone(),
                        key: "mapping.transforms".into(),
                        message: format!(
                            "`{name}` is not a transform compiled into recast; pass --config to read files from disk"
                        ),
                    })
            }
        })
        .collect()
}

/// Reads the schema files of `ledger.schemas`: from disk, relative to the
/// configuration file, or from the binary for the embedded default.
fn read_schemas(names: &[String], origin: &Origin) -> Result<Vec<SchemaFile>, ConfigError> {
    match origin {
        Origin::File(config) => Ok(read_schema_files(
            config.parent().unwrap_or(Path::new("")),
            names,
        )?),
        Origin::Embedded => {
            let mut files = Vec::new();
            for name in names {
                let wanted = lexical(&Path::new(EMBEDDED_DIR).join(name));
                let before = files.len();
                files.extend(
                    EMBEDDED_SCHEMAS
                        .iter()
                        .filter(|(path, _)| {
                            let path = Path::new(path);
                            path == wanted || path.parent() == Some(&wanted)
                        })
                        .map(|(path, text)| SchemaFile {
                            path: format!("{path} (embedded)"),
                            text: (*text).to_owned(),
                        }),
                );
                if files.len() == before {
                    return Err(ConfigError::Invalid {
                        origin: origin.clone(),
                        key: "ledger.schemas".into(),
                        message: format!(
                            "`{name}` is not a schema compiled into recast; pass --config to read files from disk"
                        ),
                    });
                }
            }
            Ok(files)
        }
    }
}

/// `path` with `.` and `..` resolved without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

impl RawConfig {
    /// Checks fields against each other; serde has already checked each alone.
    pub fn validate(&self, origin: &Origin) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.clone(),
            key: key.to_owned(),
            message,
        };
        let non_empty = [
            ("kafka.brokers", &self.kafka.brokers),
            ("kafka.group_id", &self.kafka.group_id),
            ("topics.legacy", &self.topics.legacy),
            ("topics.ledger", &self.topics.ledger),
            ("topics.dead_letter", &self.topics.dead_letter),
            ("source.system", &self.source.system),
        ];
        for (key, value) in non_empty {
            if value.trim().is_empty() {
                return Err(invalid(key, "must not be empty".into()));
            }
        }
        if let Some(id) = &self.kafka.instance_id
            && id.trim().is_empty()
        {
            return Err(invalid("kafka.instance_id", "must not be empty".into()));
        }
        let t = &self.topics;
        if t.legacy == t.ledger || t.legacy == t.dead_letter || t.ledger == t.dead_letter {
            return Err(invalid(
                "topics",
                "legacy, ledger and dead_letter must be three different topics".into(),
            ));
        }
        let b = &self.batch;
        if b.transaction_timeout < Duration::from_secs(1) {
            return Err(invalid(
                "batch.transaction_timeout",
                "must be at least 1s".into(),
            ));
        }
        // Processing and committing a batch happen after the linger: leave
        // at least as much time for them as the linger itself.
        if b.linger.saturating_mul(2) > b.transaction_timeout {
            return Err(invalid(
                "batch.linger",
                format!(
                    "{} leaves too little of batch.transaction_timeout ({}) to process and commit; keep it under half",
                    humantime::format_duration(b.linger),
                    humantime::format_duration(b.transaction_timeout)
                ),
            ));
        }
        for key in self.kafka.properties.keys() {
            if OWNED_PROPERTIES.contains(&key.as_str()) {
                return Err(invalid(
                    &format!("kafka.properties.\"{key}\""),
                    "is set by recast itself (exactly-once depends on it); remove it".into(),
                ));
            }
        }
        if self.http.enabled && self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "http.listen",
                format!("`{}` is not an ip:port address", self.http.listen),
            ));
        }
        self.validate_ledger(origin)?;
        if self.mapping.transforms.is_empty() {
            return Err(invalid(
                "mapping.transforms",
                "names no transform file; add at least one".into(),
            ));
        }
        if self
            .mapping
            .hash_key
            .as_ref()
            .is_some_and(|k| k.len() < MIN_HASH_KEY_BYTES)
        {
            return Err(invalid(
                "mapping.hash_key",
                format!("too short to be secret: use at least {MIN_HASH_KEY_BYTES} bytes"),
            ));
        }
        Ok(())
    }
}

impl RawConfig {
    /// The ledger format's needs: Avro needs schemas and a registry.
    fn validate_ledger(&self, origin: &Origin) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            origin: origin.clone(),
            key: key.to_owned(),
            message: message.to_owned(),
        };
        if self.ledger.format == LedgerFormat::Avro {
            if self.ledger.schemas.is_empty() {
                return Err(invalid(
                    "ledger.schemas",
                    "format = \"avro\" needs the event schemas (e.g. [\"schemas/header.avsc\", \"schemas/cart\"])",
                ));
            }
            if self.registry.is_none() {
                return Err(invalid(
                    "registry",
                    "format = \"avro\" needs a schema registry: add [registry] url = \"…\" (or set ledger.format = \"json\")",
                ));
            }
        }
        if self.source.format != LegacyFormat::Json && self.registry.is_none() {
            return Err(invalid(
                "source.format",
                "Avro legacy values are decoded with schemas from a registry: add [registry] url = \"…\"",
            ));
        }
        if let Some(registry) = &self.registry {
            if !(registry.url.starts_with("http://") || registry.url.starts_with("https://")) {
                return Err(invalid(
                    "registry.url",
                    &format!("`{}` is not an http:// or https:// URL", registry.url),
                ));
            }
            match (&registry.username, &registry.password, &registry.token) {
                (Some(_), None, _) | (None, Some(_), _) => {
                    return Err(invalid(
                        "registry.username",
                        "basic authentication needs both username and password",
                    ));
                }
                (Some(_), Some(_), Some(_)) => {
                    return Err(invalid(
                        "registry.token",
                        "use either a token or username and password, not both",
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Applies the `RECAST_<SECTION>__<KEY>` overrides; returns whether any applied.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    origin: &Origin,
) -> Result<bool, ConfigError> {
    let mut applied = false;
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let mut path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        // librdkafka property names are dotted, and shells do not allow dots
        // in variable names: RECAST_KAFKA__PROPERTIES__SASL_PASSWORD sets
        // `sasl.password`.
        if let [kafka, properties, name] = path.as_mut_slice()
            && kafka == "kafka"
            && properties == "properties"
        {
            *name = name.replace('_', ".");
        }
        let env_error = |message: String| ConfigError::Env {
            origin: origin.clone(),
            var: var.clone(),
            message,
        };
        if path.iter().any(String::is_empty) {
            return Err(env_error("empty key segment".into()));
        }
        // A value that parses as a TOML value (number, boolean, quoted
        // string, array) is taken as one; anything else is a plain string.
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let (last, parents) = path.split_last().expect("at least one segment");
        let mut node = &mut *table;
        for segment in parents {
            node = node
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| env_error(format!("`{segment}` is not a table")))?;
        }
        node.insert(last.clone(), parsed);
        applied = true;
    }
    Ok(applied)
}

fn parse_error(
    origin: &Origin,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    key: String,
    message: &str,
) -> ConfigError {
    let line = LineRef(
        span.filter(|_| !text.is_empty())
            .map(|s| line_at(text, s.start)),
    );
    let key = if key.is_empty() || key == "." {
        "(top level)".to_owned()
    } else {
        key
    };
    ConfigError::Parse {
        origin: origin.clone(),
        line,
        key,
        message: message.replace('\n', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Origin::File("t.toml".into()), Vec::new())
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::load(None, Vec::new()).expect("embedded default parses");
        assert_eq!(config.raw.topics.legacy, "legacy-cart");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = EMBEDDED_DEFAULT.replace("[batch]", "[batch]\nmax_recrods = 5");
        let line = text.lines().position(|l| l == "max_recrods = 5").unwrap() + 1;
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with(&format!("t.toml:{line}: ")), "{err}");
        assert!(err.contains("max_recrods"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn avro_needs_schemas_and_a_registry() {
        let start = EMBEDDED_DEFAULT.find("\n[registry]\n").unwrap();
        let end = EMBEDDED_DEFAULT.find("retry_for = \"60s\"\n").unwrap() + 17;
        let without_registry =
            format!("{}{}", &EMBEDDED_DEFAULT[..start], &EMBEDDED_DEFAULT[end..]);
        let err = parse(&without_registry).unwrap_err().to_string();
        assert!(
            err.contains("registry: format = \"avro\" needs a schema registry"),
            "{err}"
        );
        let json = without_registry.replace("format = \"avro\"", "format = \"json\"");
        let avro_input = json.replace(
            "format = \"json\"\n\n[mapping]",
            "format = \"avro\"\n\n[mapping]",
        );
        assert_ne!(avro_input, json);
        let err = parse(&avro_input).unwrap_err().to_string();
        assert!(err.contains("source.format: Avro legacy values"), "{err}");
        let no_schemas = EMBEDDED_DEFAULT.replace(
            "schemas = [\"../../schemas/header.avsc\", \"../../schemas/cart\"]",
            "",
        );
        let err = parse(&no_schemas).unwrap_err().to_string();
        assert!(
            err.contains("ledger.schemas: format = \"avro\" needs"),
            "{err}"
        );
        let basic_half =
            EMBEDDED_DEFAULT.replace("# username = \"recast\"", "username = \"recast\"");
        let err = parse(&basic_half).unwrap_err().to_string();
        assert!(err.contains("needs both username and password"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let text = EMBEDDED_DEFAULT.replace("max_records = 2000", "max_records = \"many\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("batch.max_records"), "{err}");
    }

    #[test]
    fn linger_must_leave_room_in_the_transaction() {
        let text = EMBEDDED_DEFAULT.replace("linger = \"100ms\"", "linger = \"50s\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("batch.linger"), "{err}");
    }

    #[test]
    fn owned_librdkafka_properties_are_refused() {
        let text = format!(
            "{EMBEDDED_DEFAULT}\n[kafka.properties]\n\"isolation.level\" = \"read_uncommitted\"\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("isolation.level"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = vec![
            ("RECAST_BATCH__MAX_RECORDS".to_owned(), "17".to_owned()),
            (
                "RECAST_KAFKA__BROKERS".to_owned(),
                "10.0.0.1:9093".to_owned(),
            ),
            ("RECAST_CACHE_DIR".to_owned(), "/ignored".to_owned()),
            (
                "RECAST_KAFKA__PROPERTIES__SASL_PASSWORD".to_owned(),
                "secret".to_owned(),
            ),
            (
                "RECAST_KAFKA__PROPERTIES__LINGER_MS".to_owned(),
                "20".to_owned(),
            ),
        ];
        let config = Config::parse(EMBEDDED_DEFAULT, Origin::Embedded, env).unwrap();
        assert_eq!(config.raw.batch.max_records.get(), 17);
        assert_eq!(config.raw.kafka.brokers, "10.0.0.1:9093");
        assert_eq!(config.raw.kafka.properties["sasl.password"], "secret");
        assert_eq!(config.raw.kafka.properties["linger.ms"], "20");
    }

    #[test]
    fn unknown_environment_key_is_an_error() {
        let env = vec![("RECAST_BATCH__MAX_RECORD".to_owned(), "17".to_owned())];
        let err = Config::parse(EMBEDDED_DEFAULT, Origin::Embedded, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch.max_record"), "{err}");
    }

    #[test]
    fn dedupe_fields_must_fit_the_key_kind() {
        let without = EMBEDDED_DEFAULT
            .split("[dedupe]")
            .next()
            .unwrap()
            .to_owned();
        let with = |table: &str| format!("{without}\n{table}\n");
        let err = parse(&with("[dedupe]\nkey = \"fields\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dedupe.fields"), "{err}");
        let err = parse(&with("[dedupe]\nkey = \"payload\"\nfields = [\"a\"]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dedupe.fields"), "{err}");
    }

    #[test]
    fn same_topic_twice_is_refused() {
        let text = EMBEDDED_DEFAULT.replace("ledger = \"ledger-cart\"", "ledger = \"legacy-cart\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("topics"), "{err}");
    }
}
