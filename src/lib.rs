//! recast: a consume-transform-produce worker that turns a legacy Kafka
//! command topic into a clean event ledger, exactly once.
//!
//! The crate map, in data-flow order (README, "How it works"). The pure
//! core — values in, values out, no I/O, no clock — is `pipeline/`,
//! `avro/` and `json.rs`; `.ci/check-imports` keeps it so.
//!
//! | stage | where | what it does |
//! |---|---|---|
//! | configuration | `config/` | `recast.toml` → a validated [`Config`] owning the built parts |
//! | source | `worker/source.rs` | the legacy topic's consumer: batches, rebalances |
//! | decode | `pipeline/decode.rs` | legacy bytes (JSON, Confluent-framed Avro) → a JSON object |
//! | transform chain | `pipeline/mapping/` | declarative files and Rhai scripts → event bodies, or a rejection |
//! | dedupe | `pipeline/dedupe/` | canonical keys, the per-partition window, re-drive's ledger index |
//! | envelope + encode | `pipeline/envelope.rs`, `avro/` | the common header, Avro (schema check) or JSON |
//! | the one record path | `pipeline/mod.rs` | [`Pipeline::run`]: every stage above, for every caller |
//! | dead letters | `pipeline/dead_letter.rs` | the headers a rejected record carries, and reading them back |
//! | event headers | `pipeline/event_headers.rs` | where each ledger event came from, as Kafka headers |
//! | sink | `worker/sink.rs` | the transactional producer |
//! | the transaction loop | `worker/mod.rs` | poll, run, produce, send offsets, commit |
//! | deciding a batch | `worker/decide.rs` | runs a batch's records a chunk at a time ahead of their writes, on the loop's thread or its own (`batch.threads`) |
//! | window restore | `worker/restore.rs` | re-runs a partition's last records to rebuild its window |
//! | mapping reload | `worker/reload.rs` | re-reads and checks a mapping off the record path; the loop swaps it in |
//! | re-drive | `worker/redrive/` | the loop over the dead-letter topic: which dead letters to run, the ledger's index |
//! | decision traces | `pipeline/trace.rs`, `tools/explain.rs`, `worker/explain.rs`, `telemetry/tap.rs` | why each record went where it went: recorded by `Pipeline::run`, for `recast explain` and the live tap |
//! | schema registry | `registry/` | the client, and the in-memory dev registry |
//! | telemetry | `telemetry/` | metrics, the operations listener, rate-limited rejection logs |
//! | HTTP | `http.rs` | the one small server both listeners run on |
//! | the other subcommands | `tools/` | check, test, replay, explain, inspect, load, create-topics, the log reader |
//!
//! The modules are private; what the binary, the benches and the
//! integration tests use is re-exported below.

mod avro;
mod config;
mod http;
mod json;
mod pipeline;
mod registry;
mod telemetry;
mod tools;
mod worker;

// Configuration.
pub use config::{Config, ConfigError, EMBEDDED_DEFAULT, LedgerOutput, Origin};

// The one record path, and the stages the benches drive one by one.
pub use avro::{WriterSchemas, split_frame};
pub use pipeline::decode::Decoder;
pub use pipeline::dedupe::{DedupeWindow, Memory};
pub use pipeline::envelope;
pub use pipeline::mapping::{Mapped, Mapping, TransformFile};
pub use pipeline::record::{LegacyRecord, Position};
pub use pipeline::timestamp::format_millis;
pub use pipeline::trace::{Decision, Trace};
pub use pipeline::{
    Counts, Encoding, LedgerEvent, Pipeline, RecordOutcome, Rejection, SchemaIds, Stage,
};

// The worker (`recast run`).
pub use worker::explain::{ExplainError, OnTopic, explain_on_broker};
pub use worker::kafka::client_config;
pub use worker::redrive::{DryRun, Filters, IndexError, RedriveOptions, dry_run};
pub use worker::restore::{RestoreError, restore};
pub use worker::sink::TxnError;
pub use worker::source::ConsumerFatal;
pub use worker::{RunOptions, Totals, WorkerError, run, run_redrive};

// The schema registry.
pub use registry::dev::DevRegistry;
pub use registry::{Registry, RegistryConfig};

// Telemetry.
pub use telemetry::metrics::NAMES as METRIC_NAMES;

// The other subcommands.
pub use tools::offline::Offline;
pub use tools::{
    check, create_topics, explain, golden, infer, inspect, legacy_file, load, log_reader, replay,
    tap,
};
