//! Every subcommand but `recast run`: the offline tools around the one
//! record path, and the small broker clients of the quickstart and tests.

pub mod check;
pub mod create_topics;
pub mod explain;
pub mod golden;
pub mod infer;
pub mod inspect;
pub mod legacy_file;
pub mod load;
pub mod log_reader;
pub(crate) mod offline;
pub mod replay;
pub mod tap;
