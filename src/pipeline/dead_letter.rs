//! Dead-letter records: a rejected legacy record, unchanged, plus headers
//! that say which stage rejected it, why, and where it came from.
//!
//! The original headers come first and keep their order; recast's own
//! headers follow, all prefixed `recast.` so they never collide. Re-drive
//! reads a dead letter back as the legacy record it was ([`read`]).
//!
//! With `dead_letter.protect`, the value is not quite unchanged: the
//! protected fields of a JSON value are replaced by their keyed hash
//! ([`protect`]), and the dead letter says so. Re-drive cannot run it:
//! the original is then only at the source position.

use serde_json::{Map, Value};

use crate::pipeline::Rejection;
use crate::pipeline::mapping::Protection;
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
/// Set when `dead_letter.protect` replaced fields of the value: which.
pub(crate) const PROTECTED: &str = "recast.protected";

/// What a protected dead letter keeps of a value that is not a JSON
/// object, where no field can be found to protect
/// (`dead_letter.undecodable`).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Undecodable {
    /// The value as it came: whatever personal data it holds stays in it.
    #[default]
    Keep,
    /// No key and no value, their sizes in `recast.value.omitted`.
    Omit,
}

/// A rejected record's value as its dead letter carries it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Protected {
    /// Unchanged: no protected field in it (or nothing asks for it).
    AsItCame,
    /// Written out again with these fields replaced by their hash.
    Rewritten { value: Vec<u8>, fields: String },
    /// Not a JSON object, and `undecodable = "omit"`.
    Omitted,
}

/// Protects a rejected record's value as `dead_letter.protect` says. A
/// JSON object is written out again (compact) only when it has a
/// protected field.
pub(crate) fn protect(
    value: Option<&[u8]>,
    protection: &Protection,
    undecodable: Undecodable,
) -> Protected {
    let object = value.and_then(|v| serde_json::from_slice::<Map<String, Value>>(v).ok());
    let Some(mut object) = object else {
        return match undecodable {
            Undecodable::Keep => Protected::AsItCame,
            Undecodable::Omit => Protected::Omitted,
        };
    };
    let fields = protection.apply(&mut object).join(",");
    if fields.is_empty() {
        return Protected::AsItCame;
    }
    let value = serde_json::to_vec(&object).expect("a JSON object writes out");
    Protected::Rewritten { value, fields }
}

/// The header of a protected dead letter.
pub(crate) fn protected(fields: &str) -> (&'static str, String) {
    (PROTECTED, fields.to_owned())
}

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

/// The header that stands for a key and value left out, and `why`.
pub(crate) fn value_omitted(
    value_bytes: usize,
    key_bytes: usize,
    why: &str,
) -> (&'static str, String) {
    (
        VALUE_OMITTED,
        format!(
            "value of {value_bytes} bytes and key of {key_bytes} bytes left out: {why}; \
             read them at the source position"
        ),
    )
}

/// Why a dead letter was written without key and value.
pub(crate) const TOO_LARGE: &str = "too large for the dead-letter topic";
pub(crate) const NOT_PROTECTABLE: &str =
    "not a JSON object, whose fields dead_letter.protect could hash (undecodable = \"omit\")";

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
    #[error(
        "its key and value were left out (too large for the dead-letter topic, or not JSON under dead_letter.protect)"
    )]
    ValueOmitted,
    /// `dead_letter.protect` replaced these fields by their hash.
    #[error(
        "its fields {0} were replaced by their hash (dead_letter.protect): the original is only at the source position"
    )]
    Protected(String),
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
    if let Some(fields) = dead_letter.header(PROTECTED) {
        return Err(Unreadable::Protected(
            String::from_utf8_lossy(fields).into_owned(),
        ));
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
    use hmac::{KeyInit, Mac};

    use super::*;
    use crate::pipeline::Stage;

    fn protection() -> Protection {
        Protection::new(b"test-key", &["customer.email".into(), "card".into()]).unwrap()
    }

    #[test]
    fn protected_fields_are_replaced_by_the_hash_a_hash_step_writes() {
        let value =
            br#"{"command": "CHECKOUT", "customer": {"id": "c-1", "email": "a@example.com"}}"#;
        let Protected::Rewritten { value, fields } =
            protect(Some(value), &protection(), Undecodable::Keep)
        else {
            panic!("not rewritten")
        };
        assert_eq!(fields, "customer.email");
        let object: Value = serde_json::from_slice(&value).unwrap();
        // HMAC-SHA256 under the key, in hex: what a `hash` step writes.
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"test-key").unwrap();
        mac.update(b"a@example.com");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(object["customer"]["email"], expected.as_str());
        assert_eq!(object["customer"]["id"], "c-1");
        assert_eq!(object["command"], "CHECKOUT");
    }

    #[test]
    fn what_has_no_protected_field_or_is_not_json_is_kept_or_omitted_as_asked() {
        let p = protection();
        let plain = br#"{"command": "CHECKOUT"}"#;
        assert_eq!(
            protect(Some(plain), &p, Undecodable::Omit),
            Protected::AsItCame
        );
        for garbage in [Some(&b"\x00binary"[..]), Some(b"[1, 2]"), None] {
            assert_eq!(protect(garbage, &p, Undecodable::Keep), Protected::AsItCame);
            assert_eq!(protect(garbage, &p, Undecodable::Omit), Protected::Omitted);
        }
    }

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

        // A protected one is not the record it was: re-drive refuses it.
        let mut headers = written.headers.clone();
        headers.push((PROTECTED, Some(b"customer.email")));
        let protected = LegacyRecord { headers, ..written };
        assert_eq!(
            read(&protected).unwrap_err(),
            Unreadable::Protected("customer.email".into())
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
