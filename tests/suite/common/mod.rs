//! Shared harness of the integration tests: a real Kafka-protocol broker on
//! loopback (started once per test run, stopped when it exits), an
//! in-process schema registry, uniquely named topics and groups, the
//! `recast` binary as a child process, and the ledger read back through the
//! log-level committed reader and decoded through the registry.

mod assertions;
mod broker;
mod http;
pub(crate) mod kustomize;
mod ledger;
mod scenario;
mod traffic;

pub(crate) use assertions::*;
pub(crate) use broker::*;
pub(crate) use http::*;
pub(crate) use ledger::*;
pub(crate) use scenario::*;
pub(crate) use traffic::*;
