//! The file format: `recast.toml` as documented structs. Every field's
//! doc comment is what an operator reads; unknown keys are refused.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::defaults;
use crate::pipeline::dead_letter::Undecodable;
use crate::pipeline::decode::DuplicateKeys;
use crate::pipeline::dedupe::DedupeConfig;
use crate::pipeline::mapping::ScriptsConfig;
use crate::registry::RegistryConfig;

/// The whole `recast.toml`.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
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
    /// What dead letters keep of customer data.
    #[serde(default)]
    pub dead_letter: DeadLetterConfig,
    /// Dropping the retries of a request. Absent: no dedupe.
    #[serde(default)]
    pub dedupe: Option<DedupeConfig>,
    /// Deliberate failures for rehearsing recovery. Leave empty in production.
    #[serde(default)]
    pub chaos: ChaosConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
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
    #[schemars(with = "String")]
    pub connect_timeout: Duration,
    /// librdkafka properties passed to both consumer and producer, for
    /// security settings (`security.protocol`, `sasl.*`, `ssl.*`) and tuning.
    /// Properties recast owns (transactions, offsets, isolation) are rejected.
    /// Values may be strings, numbers or booleans.
    #[serde(default, deserialize_with = "scalar_strings")]
    #[schemars(with = "BTreeMap<String, Scalar>")]
    pub properties: BTreeMap<String, String>,
}

/// Dead letters are the legacy record unchanged, so by default they hold
/// its customer data in clear. `protect` replaces those fields by their
/// keyed hash (`mapping.hash_key`, the `hash` step's), at the price of
/// re-drive, which needs the original (then only at the source position).
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Field paths of JSON legacy values to hash in dead letters.
    #[serde(default)]
    pub protect: Vec<String>,
    /// With `protect`, what a dead letter keeps of a value that is not a
    /// JSON object: `keep` it, or `omit` key and value (sizes in a header).
    #[serde(default)]
    pub undecodable: Undecodable,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicsConfig {
    /// The legacy topic this instance consumes.
    pub legacy: String,
    /// The ledger topic events are written to.
    pub ledger: String,
    /// The dead-letter topic rejected records are written to, unchanged.
    pub dead_letter: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
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
    #[schemars(with = "String")]
    pub linger: Duration,
    /// The broker aborts a transaction left open longer than this (a crashed
    /// worker's). Must exceed `linger` plus the time to process a batch.
    #[serde(default = "defaults::transaction_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub transaction_timeout: Duration,
    /// Threads a batch runs on: 1, the loop's own (the record path, then
    /// the writes, a chunk of records at a time); 2, the record path on a
    /// thread of its own, a chunk ahead of the loop's thread writing.
    #[serde(default = "defaults::threads")]
    pub threads: NonZeroUsize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_records: defaults::max_records(),
            linger: defaults::linger(),
            transaction_timeout: defaults::transaction_timeout(),
            threads: defaults::threads(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
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
    /// A JSON object with the same key twice: `reject` it (default) or let
    /// the `last_wins`, for producers known to repeat keys.
    #[serde(default)]
    pub duplicate_keys: DuplicateKeys,
}

/// How legacy values are encoded.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LegacyFormat {
    #[default]
    Json,
    Avro,
    Auto,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// The transform files, applied in this order to every record. Relative
    /// paths are relative to this configuration file.
    pub transforms: Vec<String>,
    /// The secret key of `hash` steps. Keep it out of the file: set
    /// `RECAST_MAPPING__HASH_KEY`. Changing it changes every hash written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<String>,
    /// Reload the mapping when a file it is made of changes (a `ConfigMap`
    /// update, an edit), as `SIGHUP` does. Read at start.
    #[serde(default)]
    pub watch: bool,
}

/// How ledger values are encoded.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
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

#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve the operations endpoints at all.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Address to listen on (`host:port`; port 0 picks a free one and logs it).
    #[serde(default = "defaults::http_listen")]
    pub listen: String,
    /// Serve `GET /tap`: a sample of the live decision traces, to whoever
    /// can reach the listener. Off by default: traces show record
    /// contents that the mapping would strip.
    #[serde(default)]
    pub tap: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: defaults::http_listen(),
            tap: false,
        }
    }
}

/// Failure injection for recovery drills and tests. Every field is off by
/// default; do not set any in production.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChaosConfig {
    /// Transactions (counted from 1 per process, retries included) to abort
    /// after all their records were produced and their offsets sent,
    /// instead of committing them.
    #[serde(default)]
    pub abort_transactions: Vec<u64>,
    /// Transactions whose producer is reported failed (a fatal, non-fencing
    /// error) once their offsets are sent, before the commit: the worker
    /// must replace the producer, whose open transaction is then aborted.
    #[serde(default)]
    pub fail_producer_before_commit: Vec<u64>,
    /// Transactions whose producer is reported failed right after their
    /// commit went through: the worker cannot tell whether it did, and must
    /// resume from the committed offsets, not from the batch.
    #[serde(default)]
    pub fail_producer_after_commit: Vec<u64>,
}

/// A librdkafka property's value as written.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum Scalar {
    String(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

/// Reads a table of scalars (strings, numbers, booleans) as strings: all
/// librdkafka properties are strings, but `"linger.ms" = 5` should work.
fn scalar_strings<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
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
