//! Default values of the configuration keys that have one.

use std::num::NonZeroUsize;
use std::time::Duration;

pub(super) fn connect_timeout() -> Duration {
    Duration::from_secs(10)
}
pub(super) fn max_records() -> NonZeroUsize {
    NonZeroUsize::new(5_000).expect("non-zero")
}
pub(super) fn threads() -> NonZeroUsize {
    NonZeroUsize::MIN
}
pub(super) fn linger() -> Duration {
    Duration::from_millis(200)
}
pub(super) fn transaction_timeout() -> Duration {
    Duration::from_mins(1)
}
pub(super) fn max_value_bytes() -> NonZeroUsize {
    NonZeroUsize::new(900 * 1024).expect("non-zero")
}
pub(super) fn yes() -> bool {
    true
}
pub(super) fn http_listen() -> String {
    "0.0.0.0:9464".into()
}
pub(super) fn max_output_bytes() -> NonZeroUsize {
    // Kafka's default max.message.bytes (1048588) less headroom for
    // the record batch framing.
    NonZeroUsize::new(1_000_000).expect("non-zero")
}
pub(super) fn max_json_depth() -> NonZeroUsize {
    NonZeroUsize::new(64).expect("non-zero")
}
