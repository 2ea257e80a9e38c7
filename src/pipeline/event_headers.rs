//! The Kafka headers of a ledger event: which legacy record it came from
//! and which request it stands for, readable without decoding its value.
//! Re-drive reads them to learn what the ledger already holds (see
//! `dedupe::LedgerIndex`); an event it wrote also names the dead letter it
//! came from.
//!
//! The source headers are the dead-letter topic's, so a record and its
//! events are found by the same names.

use crate::pipeline::LedgerEvent;
use crate::pipeline::dead_letter::{SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC};
use crate::pipeline::digits::{Decimal, hex128};
use crate::pipeline::record::{Header, Position};

/// The event's dedupe key, 32 hex digits, when `[dedupe]` gave it one.
pub(crate) const DEDUPE_KEY: &str = "recast.dedupe.key";
/// On events written by re-drive: the dead letter they came from,
/// `topic/partition@offset`.
pub(crate) const REDRIVEN_FROM: &str = "recast.redrive.from";

/// The headers of an event of the legacy record at `source`.
pub(crate) fn headers<'a>(
    source: Position<'a>,
    event: &LedgerEvent,
    redriven_from: Option<Position<'_>>,
) -> EventHeaders<'a> {
    EventHeaders {
        topic: source.topic,
        partition: Decimal::new(i64::from(source.partition)),
        offset: Decimal::new(source.offset),
        dedupe_key: event.dedupe_key.map(hex128),
        redriven_from: redriven_from.map(|dead_letter| dead_letter.to_string()),
    }
}

/// An event's headers, their numbers written into buffers of their own:
/// an event written by `recast run` costs no allocation for them.
#[derive(Debug)]
pub(crate) struct EventHeaders<'a> {
    topic: &'a str,
    partition: Decimal,
    offset: Decimal,
    dedupe_key: Option<[u8; 32]>,
    redriven_from: Option<String>,
}

impl EventHeaders<'_> {
    /// Names and values, in the order they are written.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        [
            Some((SOURCE_TOPIC, self.topic.as_bytes())),
            Some((SOURCE_PARTITION, self.partition.as_bytes())),
            Some((SOURCE_OFFSET, self.offset.as_bytes())),
            self.dedupe_key.as_ref().map(|hex| (DEDUPE_KEY, &hex[..])),
            self.redriven_from
                .as_deref()
                .map(|at| (REDRIVEN_FROM, at.as_bytes())),
        ]
        .into_iter()
        .flatten()
    }
}

/// Where a ledger event came from, read from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventOrigin<'a> {
    pub source: Position<'a>,
    pub dedupe_key: Option<u128>,
    /// The dead letter re-drive wrote it from: its partition and offset.
    pub redriven_from: Option<(i32, i64)>,
}

/// The origin an event's headers name; `None` for a record without them
/// (written by something else, or before recast wrote them).
pub(crate) fn origin<'a>(headers: &[Header<'a>]) -> Option<EventOrigin<'a>> {
    let text = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| std::str::from_utf8((*v)?).ok())
    };
    let source = Position {
        topic: text(SOURCE_TOPIC)?,
        partition: text(SOURCE_PARTITION)?.parse().ok()?,
        offset: text(SOURCE_OFFSET)?.parse().ok()?,
    };
    let dedupe_key = match text(DEDUPE_KEY) {
        Some(hex) => Some(u128::from_str_radix(hex, 16).ok()?),
        None => None,
    };
    let redriven_from = match text(REDRIVEN_FROM) {
        Some(at) => Some(partition_and_offset(at)?),
        None => None,
    };
    Some(EventOrigin {
        source,
        dedupe_key,
        redriven_from,
    })
}

/// `topic/partition@offset` → (partition, offset); topic names may hold
/// neither `/` nor `@`, so the last of each splits.
fn partition_and_offset(position: &str) -> Option<(i32, i64)> {
    let (rest, offset) = position.rsplit_once('@')?;
    let (_, partition) = rest.rsplit_once('/')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_headers_read_back_as_its_origin() {
        let source = Position {
            topic: "legacy-cart",
            partition: 3,
            offset: 99,
        };
        let dead_letter = Position {
            topic: "legacy-cart-dlq",
            partition: 1,
            offset: 7,
        };
        let event = LedgerEvent {
            key: "cart-1".into(),
            value: Vec::new(),
            event_type: "AddedToCart".into(),
            derived_from: None,
            dedupe_key: Some(0xfeed_0000_0000_0000_0000_0000_0000_0001),
        };
        let written = headers(source, &event, Some(dead_letter));
        let read: Vec<Header<'_>> = written.pairs().map(|(n, v)| (n, Some(v))).collect();
        assert_eq!(
            origin(&read),
            Some(EventOrigin {
                source,
                dedupe_key: event.dedupe_key,
                redriven_from: Some((1, 7)),
            })
        );
        assert_eq!(read[3].1, Some(&b"feed0000000000000000000000000001"[..]));
    }

    #[test]
    fn a_record_without_source_headers_has_no_origin() {
        assert_eq!(origin(&[("recast.source.topic", Some(b"t"))]), None);
        let garbled: Vec<Header<'_>> = vec![
            (SOURCE_TOPIC, Some(b"t")),
            (SOURCE_PARTITION, Some(b"0")),
            (SOURCE_OFFSET, Some(b"1")),
            (DEDUPE_KEY, Some(b"not hex")),
        ];
        assert_eq!(origin(&garbled), None);
    }
}
