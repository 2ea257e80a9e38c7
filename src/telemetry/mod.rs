//! What the worker tells its operators: metrics, the operations
//! listener that serves them, and rejections logged without flooding.

pub(crate) mod http;
pub(crate) mod metrics;
pub(crate) mod rejections;
pub(crate) mod tap;
