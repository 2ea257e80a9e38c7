//! The legacy record: one Kafka record of the legacy topic, as the pure
//! stages see it (borrowed from the consumer's buffer, no copies).

/// Where a legacy record sits in its topic; names it in every header and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for Position<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// One record header: its name and value (`None` for a null value).
pub(crate) type Header<'a> = (&'a str, Option<&'a [u8]>);

/// One record of the legacy topic.
#[derive(Debug, Clone)]
pub struct LegacyRecord<'a> {
    pub position: Position<'a>,
    /// The Kafka timestamp, in milliseconds since the epoch, when the record
    /// has one.
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<Header<'a>>,
}

impl<'a> LegacyRecord<'a> {
    /// The value of the header `name`; the last one when it repeats.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
    }
}
