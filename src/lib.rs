//! recast: a consume-transform-produce worker that turns a legacy Kafka
//! command topic into a clean event ledger, exactly once.
//!
//! Data flow (DESIGN.md): [`source`] → [`decode`] → [`mapping`] →
//! [`dedupe`] → [`envelope`] → [`sink`], with rejections to the [`dead_letter`] topic and
//! the source offsets committed in the same transaction by [`worker`]. The
//! per-record core is [`pipeline`]: pure, synchronous, benchmarked. Without
//! a broker, [`offline`] runs it for `recast test` ([`golden`]) and
//! `recast replay` ([`replay`]).

pub mod admin;
pub mod avro;
pub mod check;
pub mod config;
pub mod dead_letter;
pub mod decode;
pub mod dedupe;
pub mod envelope;
pub mod golden;
pub mod http;
pub mod kafka;
pub mod legacy;
pub mod legacy_file;
pub mod loader;
pub mod log_reader;
pub mod mapping;
pub mod metrics;
pub mod offline;
pub mod pipeline;
pub mod registry;
pub mod replay;
pub mod restore;
pub mod sink;
pub mod source;
pub mod timestamp;
pub mod worker;
