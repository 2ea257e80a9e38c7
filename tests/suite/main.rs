//! The integration suite: one test binary, so one broker and one schema
//! registry serve every test of a `cargo test` run. Tests run the real
//! `recast` binary as an operator would: against the broker on loopback,
//! reading what it wrote back at log level (`read_committed` applied to
//! the transaction markers), or offline over files.

mod common;

mod avro_input;
mod bad_input;
mod cli;
mod dedupe;
mod deploy;
mod exactly_once;
mod explain;
mod independent_decode;
mod log_reader;
mod offline_tools;
mod operations;
mod process;
mod redrive;
mod refused;
mod registry;
mod reload;
mod schemas;
mod stalls;
