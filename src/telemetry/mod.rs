//! What the worker tells its operators: metrics and the operations
//! listener that serves them.

pub mod http;
pub mod metrics;
