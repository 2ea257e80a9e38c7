//! Dead-letter records: a rejected legacy record, unchanged, plus headers
//! that say which stage rejected it, why, and where it came from.
//!
//! The original headers come first and keep their order; recast's own
//! headers follow, all prefixed `recast.` so they never collide. Re-drive
//! reads a dead letter back as the legacy record it was ([`read`]).

use crate::pipeline::Rejection;
use crate::pipeline::record::{LegacyRecord, Position};

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

/// recast's headers all start so; the legacy record's never should.
const PREFIX: &str = "recast.";

/// A dead letter read back: the legacy record it was, and what rejected it.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetter<'a> {
    /// At its original position, with its original key, value, headers
    /// (recast's own left out) and timestamp.
    pub record: LegacyRecord<'a>,
    pub stage: &'a str,
    pub reason: &'a str,
    /// The mapping that rejected it.
    pub mapping_version: &'a str,
}

/// Why a record of the dead-letter topic cannot be run again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unreadable {
    #[error("header `{0}` is missing or not text: not a dead letter recast wrote")]
    Missing(&'static str),
    #[error("header `{name}` is `{value}`, not a number")]
    NotANumber { name: &'static str, value: String },
    /// Written without key and value (too large): only the legacy topic
    /// still has them.
    #[error("its key and value were left out (too large for the dead-letter topic)")]
    ValueOmitted,
}

/// Reads a record of the dead-letter topic back as the legacy record it
/// was: position and timestamp from recast's headers, everything else
/// as written.
pub(crate) fn read<'a>(dead_letter: &LegacyRecord<'a>) -> Result<DeadLetter<'a>, Unreadable> {
    fn number<T: std::str::FromStr>(name: &'static str, value: &str) -> Result<T, Unreadable> {
        value.parse().map_err(|_| Unreadable::NotANumber {
            name,
            value: value.to_owned(),
        })
    }
    let text = |name: &'static str| {
        dead_letter
            .header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .ok_or(Unreadable::Missing(name))
    };
    if dead_letter.header(VALUE_OMITTED).is_some() {
        return Err(Unreadable::ValueOmitted);
    }
    let position = Position {
        topic: text(SOURCE_TOPIC)?,
        partition: number(SOURCE_PARTITION, text(SOURCE_PARTITION)?)?,
        offset: number(SOURCE_OFFSET, text(SOURCE_OFFSET)?)?,
    };
    let timestamp_ms = match text(SOURCE_TIMESTAMP) {
        Ok(ts) => Some(number(SOURCE_TIMESTAMP, ts)?),
        Err(_) => None,
    };
    Ok(DeadLetter {
        record: LegacyRecord {
            position,
            timestamp_ms,
            key: dead_letter.key,
            value: dead_letter.value,
            headers: dead_letter
                .headers
                .iter()
                .filter(|(name, _)| !name.starts_with(PREFIX))
                .copied()
                .collect(),
        },
        stage: text(STAGE)?,
        reason: text(REASON)?,
        mapping_version: text(MAPPING_VERSION)?,
    })
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

    #[test]
    fn a_dead_letter_reads_back_as_the_legacy_record_it_was() {
        let source = Position {
            topic: "legacy-cart",
            partition: 3,
            offset: 99,
        };
        let rejection = Rejection {
            stage: Stage::Schema,
            reason: "field `customer.name`".into(),
        };
        let ours = headers(source, Some(1_700), &rejection, "v1");
        let mut all: Vec<(&str, Option<&[u8]>)> = vec![("trace", Some(b"t-1")), ("empty", None)];
        all.extend(ours.iter().map(|(n, v)| (*n, Some(v.as_bytes()))));
        let written = LegacyRecord {
            position: Position {
                topic: "legacy-cart-dlq",
                partition: 0,
                offset: 5,
            },
            timestamp_ms: Some(9_999),
            key: Some(b"cart-1"),
            value: Some(b"{}"),
            headers: all,
        };
        let back = read(&written).unwrap();
        assert_eq!(back.record.position, source);
        assert_eq!(back.record.timestamp_ms, Some(1_700));
        assert_eq!(back.record.key, Some(&b"cart-1"[..]));
        assert_eq!(back.record.value, Some(&b"{}"[..]));
        assert_eq!(
            back.record.headers,
            vec![("trace", Some(&b"t-1"[..])), ("empty", None)]
        );
        assert_eq!(
            (back.stage, back.reason, back.mapping_version),
            ("schema", "field `customer.name`", "v1")
        );
    }

    #[test]
    fn a_record_recast_did_not_write_or_cut_short_is_unreadable() {
        let record = |headers| LegacyRecord {
            position: Position {
                topic: "dlq",
                partition: 0,
                offset: 0,
            },
            timestamp_ms: None,
            key: None,
            value: None,
            headers,
        };
        assert_eq!(
            read(&record(Vec::new())).unwrap_err(),
            Unreadable::Missing(SOURCE_TOPIC)
        );
        let bad = vec![
            (SOURCE_TOPIC, Some(&b"t"[..])),
            (SOURCE_PARTITION, Some(&b"x"[..])),
        ];
        assert!(matches!(
            read(&record(bad)).unwrap_err(),
            Unreadable::NotANumber {
                name: SOURCE_PARTITION,
                ..
            }
        ));
        let omitted = vec![(VALUE_OMITTED, Some(&b"value of 9 bytes"[..]))];
        assert_eq!(
            read(&record(omitted)).unwrap_err(),
            Unreadable::ValueOmitted
        );
    }
}
