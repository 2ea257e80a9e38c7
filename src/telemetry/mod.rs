//! What the worker tells its operators: metrics and the operations
//! listener that serves them.

pub(crate) mod http;
pub(crate) mod metrics;
