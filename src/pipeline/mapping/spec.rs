//! The transform file format, as written: what serde reads from a
//! `transforms/*.toml` file before [`super::transform`] compiles it. The
//! doc comments are the language reference (README, "Mappings").
//!
//! Values that need checking beyond their type (paths, regexes) keep their
//! position in the file, so an error can name the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// One declarative transform file. Its sections run in this order for
/// every record: `filter`, `reject`/`require`, `command`, `split`, `event`,
/// `steps`, then the `types.<EventType>` steps of the record's event type.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TransformSpec {
    /// Records matching any of these are noise: counted as filtered.
    #[serde(default)]
    pub filter: Vec<FilterSpec>,
    /// Records matching any of these go to the dead-letter topic with the
    /// rule's reason.
    #[serde(default)]
    pub reject: Vec<RejectSpec>,
    /// Fields every record must have (present and not null); a record
    /// without one is rejected.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub require: Vec<Spanned<String>>,
    /// Recognising the command and naming the event.
    #[serde(default)]
    pub command: Option<CommandSpec>,
    /// One record → one event per element of an array.
    #[serde(default)]
    pub split: Option<SplitSpec>,
    /// Where the header fields of the event come from.
    #[serde(default)]
    pub event: Option<EventSpec>,
    /// Steps applied to every event, in order.
    #[serde(default)]
    #[schemars(with = "Vec<StepSpec>")]
    pub steps: Vec<Spanned<StepSpec>>,
    /// Steps applied to events of one type only, after `steps`.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, TypeSpec>")]
    pub types: BTreeMap<String, Spanned<TypeSpec>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FilterSpec {
    #[schemars(with = "ConditionSpec")]
    pub when: Spanned<ConditionSpec>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RejectSpec {
    #[schemars(with = "ConditionSpec")]
    pub when: Spanned<ConditionSpec>,
    /// Written to the dead-letter record's `recast.reason` header.
    pub reason: String,
}

/// Exactly one of `field`, `header`, `record_key` says where the command is.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandSpec {
    /// A dotted field path of the legacy JSON.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub field: Option<Spanned<String>>,
    /// A record header (its value read as UTF-8).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub header: Option<Spanned<String>>,
    /// The record key.
    #[serde(default)]
    pub record_key: bool,
    /// Command → past-tense event type. Spellings are normalised before
    /// lookup: one entry `ADD_TO_CART` matches `AddToCart`, `add.to.cart`
    /// and `add-to-cart`.
    #[serde(default)]
    pub events: BTreeMap<String, String>,
    /// Commands that are noise, not facts (heartbeats): filtered.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// What happens to a command that is neither in `events` nor `ignore`.
    #[serde(default)]
    pub unknown: UnknownCommand,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum UnknownCommand {
    /// To the dead-letter topic, with the reason "unknown command".
    #[default]
    Reject,
    /// Counted as filtered.
    Drop,
    /// Kept, under an event type derived from the command name.
    Derive,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SplitSpec {
    /// The array to split on; removed from every event.
    #[schemars(with = "String")]
    pub field: Spanned<String>,
    /// Where each element goes in its event. Without it, object elements
    /// are merged into the top level (their fields win).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub into: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EventSpec {
    /// The field whose value keys the ledger record (string or number).
    /// Without it in any transform, the legacy record key is used.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub key: Option<Spanned<String>>,
    /// The field with the time the fact happened: epoch seconds or
    /// milliseconds, or an RFC 3339 string. Absent: the Kafka timestamp.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub occurred_at: Option<Spanned<String>>,
    /// The field copied into `header.correlation_id`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub correlation_id: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TypeSpec {
    #[serde(default)]
    #[schemars(with = "Vec<StepSpec>")]
    pub steps: Vec<Spanned<StepSpec>>,
}

/// One step: exactly one operation, and optionally a condition.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StepSpec {
    /// Apply the step only to events matching this condition.
    #[serde(default)]
    pub when: Option<ConditionSpec>,
    /// Remove the fields matching these patterns (`*` within a segment,
    /// `**` for any depth).
    #[serde(default)]
    pub drop: Option<Vec<String>>,
    /// Keep only these fields.
    #[serde(default)]
    pub keep: Option<Vec<String>>,
    /// Move fields: `{ "from.path" = "to.path" }`.
    #[serde(default)]
    pub rename: Option<BTreeMap<String, String>>,
    /// Copy fields: `{ "from.path" = "to.path" }`.
    #[serde(default)]
    pub copy: Option<BTreeMap<String, String>>,
    /// Set fields to constants: `{ "path" = value }`.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub set: Option<BTreeMap<String, toml::Value>>,
    /// Set fields that are missing or null: `{ "path" = value }`.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub default: Option<BTreeMap<String, toml::Value>>,
    /// Convert fields: `{ "path" = "string" | "number" | "integer" | "bool" }`.
    #[serde(default)]
    pub cast: Option<BTreeMap<String, CastType>>,
    /// Split a string field into several.
    #[serde(default)]
    pub split_field: Option<SplitFieldSpec>,
    /// Replace fields by their keyed hash (HMAC-SHA256, hex).
    #[serde(default)]
    pub hash: Option<Vec<String>>,
    /// Replace all but the last N characters by `*`: `{ "path" = N }`.
    #[serde(default)]
    pub mask: Option<BTreeMap<String, usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum CastType {
    String,
    Number,
    Integer,
    Bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SplitFieldSpec {
    pub field: String,
    pub separator: String,
    /// The parts, in order; the last one takes the rest of the string.
    pub into: Vec<String>,
}

/// A condition: a subject (`field`, `header` or `record_key`) with one
/// test (`equals`, `in`, `exists`, `matches`), or a combination (`all`,
/// `any`, `not`).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConditionSpec {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub record_key: bool,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub equals: Option<toml::Value>,
    #[serde(default, rename = "in")]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    pub one_of: Option<Vec<toml::Value>>,
    #[serde(default)]
    pub exists: Option<bool>,
    /// A regular expression (Rust `regex` syntax), searched anywhere in
    /// the value; anchor it with `^…$` to match the whole value.
    #[serde(default)]
    pub matches: Option<String>,
    #[serde(default)]
    pub all: Option<Vec<ConditionSpec>>,
    #[serde(default)]
    pub any: Option<Vec<ConditionSpec>>,
    #[serde(default)]
    pub not: Option<Box<ConditionSpec>>,
}
