//! Dead-letter records: a rejected legacy record, unchanged, plus headers
//! that say which stage rejected it, why, and where it came from.
//!
//! The original headers come first and keep their order; recast's own
//! headers follow, all prefixed `recast.` so they never collide.

use crate::pipeline::Rejection;
use crate::pipeline::record::Position;

pub(crate) const STAGE: &str = "recast.stage";
pub(crate) const REASON: &str = "recast.reason";
pub(crate) const SOURCE_TOPIC: &str = "recast.source.topic";
pub(crate) const SOURCE_PARTITION: &str = "recast.source.partition";
pub(crate) const SOURCE_OFFSET: &str = "recast.source.offset";
pub(crate) const SOURCE_TIMESTAMP: &str = "recast.source.timestamp";
pub(crate) const MAPPING_VERSION: &str = "recast.mapping.version";
/// Set when the legacy record was too large to copy into the dead-letter
/// topic: the dead letter is still written, without key and value (both
/// stay readable at the source position), and this header says their sizes.
pub(crate) const VALUE_OMITTED: &str = "recast.value.omitted";

/// recast's headers for one rejected record.
pub(crate) fn headers(
    position: Position<'_>,
    timestamp_ms: Option<i64>,
    rejection: &Rejection,
    mapping_version: &str,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (STAGE, rejection.stage.as_str().to_owned()),
        (REASON, rejection.reason.clone()),
        (SOURCE_TOPIC, position.topic.to_owned()),
        (SOURCE_PARTITION, position.partition.to_string()),
        (SOURCE_OFFSET, position.offset.to_string()),
        (MAPPING_VERSION, mapping_version.to_owned()),
    ];
    if let Some(ts) = timestamp_ms {
        headers.push((SOURCE_TIMESTAMP, ts.to_string()));
    }
    headers
}

/// The header that stands for a key and value too large for the
/// dead-letter topic.
pub(crate) fn value_omitted(value_bytes: usize, key_bytes: usize) -> (&'static str, String) {
    (
        VALUE_OMITTED,
        format!(
            "value of {value_bytes} bytes and key of {key_bytes} bytes left out: too large for \
             the dead-letter topic; read them at the source position"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Stage;

    #[test]
    fn headers_name_stage_reason_and_source() {
        let position = Position {
            topic: "legacy-cart",
            partition: 3,
            offset: 99,
        };
        let rejection = Rejection {
            stage: Stage::Mapping,
            reason: "unknown command `X`".into(),
        };
        let h = headers(position, Some(5), &rejection, "v1");
        let get = |k: &str| h.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get(STAGE), Some("mapping"));
        assert_eq!(get(REASON), Some("unknown command `X`"));
        assert_eq!(get(SOURCE_TOPIC), Some("legacy-cart"));
        assert_eq!(get(SOURCE_PARTITION), Some("3"));
        assert_eq!(get(SOURCE_OFFSET), Some("99"));
        assert_eq!(get(SOURCE_TIMESTAMP), Some("5"));
        assert_eq!(get(MAPPING_VERSION), Some("v1"));
    }
}
