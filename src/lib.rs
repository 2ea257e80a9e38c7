//! recast: a consume-transform-produce worker that turns a legacy Kafka
//! command topic into a clean event ledger, exactly once.
//!
//! Data flow (DESIGN.md): [`source`] → [`decode`] → [`mapping`] →
//! [`dedupe`] → [`envelope`] → [`sink`], with rejections to the [`dead_letter`] topic and
//! the source offsets committed in the same transaction by [`worker`]. The
//! per-record core is [`pipeline`]: pure, synchronous, benchmarked. Without
//! a broker, [`offline`] runs it for `recast test` ([`golden`]) and
//! `recast replay` ([`replay`]).

pub mod avro;
pub mod config;
pub mod json;
pub mod pipeline;
pub mod registry;
pub mod telemetry;
pub mod tools;
pub mod worker;
