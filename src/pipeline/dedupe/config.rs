//! The `[dedupe]` section: what identifies a request, and how far back the
//! window looks. Compiled once into a [`KeySource`].

use std::num::NonZeroU64;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::KeySource;
use crate::pipeline::mapping::FieldPath;

/// What identifies a request for the dedupe window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DedupeKeyKind {
    /// The `fields` of the mapped payload, together.
    Fields,
    /// The legacy record's Kafka key.
    RecordKey,
    /// The whole mapped payload, after technical context is dropped.
    Payload,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// `fields`, `record_key` or `payload`.
    pub key: DedupeKeyKind,
    /// With `key = "fields"`: dotted paths of the mapped payload that
    /// identify a request (e.g. `["requestId"]`). Events with none of them
    /// are never treated as duplicates.
    #[serde(default)]
    pub fields: Vec<String>,
    /// How far back the window looks, in records (offsets) of one input
    /// partition. The keys of those records are what is kept in memory
    /// (one per record, more for records split into several events; about
    /// 80 bytes each, the tables' slack included), and those records are
    /// what is re-read to rebuild a partition's window on assignment.
    #[serde(default = "default_capacity")]
    pub capacity: NonZeroU64,
    /// Optionally also bound the window in time, measured on record
    /// timestamps (not the wall clock), so a replay decides the same.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>")]
    pub ttl: Option<Duration>,
}

fn default_capacity() -> NonZeroU64 {
    NonZeroU64::new(100_000).expect("non-zero")
}

impl DedupeConfig {
    /// The key source these settings describe; the key (under `dedupe.`)
    /// and the problem when they describe none.
    pub fn compile(&self) -> Result<KeySource, (&'static str, String)> {
        match self.key {
            DedupeKeyKind::Fields if self.fields.is_empty() => Err((
                "fields",
                "key = \"fields\" needs at least one field path".into(),
            )),
            DedupeKeyKind::Fields => self
                .fields
                .iter()
                .map(|f| FieldPath::parse(f))
                .collect::<Result<_, _>>()
                .map(KeySource::Fields)
                .map_err(|message| ("fields", message)),
            _ if !self.fields.is_empty() => {
                Err(("fields", "only used with key = \"fields\"".into()))
            }
            DedupeKeyKind::RecordKey => Ok(KeySource::RecordKey),
            DedupeKeyKind::Payload => Ok(KeySource::Payload),
        }
    }
}
