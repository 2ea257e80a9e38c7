//! Which field names the command, and the commands seen: every spelling,
//! the one command it normalises to (as the `[command]` table looks them
//! up), and the past-tense event type derived from it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::pipeline::mapping::{derive_event_type, normalise};

/// Field names commands are usually found under, best first.
const LIKELY: &[&str] = &[
    "command",
    "cmd",
    "action",
    "type",
    "op",
    "operation",
    "event",
    "kind",
];

/// Commands that are liveness noise, not facts (normalised).
const HEARTBEATS: &[&str] = &["heartbeat", "ping", "healthcheck", "keepalive", "noop"];

/// The command field among `records`' top-level fields: a string present in
/// nearly every record, with few distinct values that look like command
/// names; a usual name breaks ties.
pub(crate) fn guess_field(records: &[Map<String, Value>]) -> Option<String> {
    let mut seen: BTreeMap<&str, (usize, BTreeSet<&str>)> = BTreeMap::new();
    for record in records {
        for (name, value) in record {
            if let Value::String(text) = value {
                let entry = seen.entry(name).or_default();
                entry.0 += 1;
                if entry.1.len() <= 64 {
                    entry.1.insert(text);
                }
            }
        }
    }
    let total = records.len().max(1);
    seen.into_iter()
        .filter(|(_, (present, values))| {
            *present * 10 >= total * 9
                && values.len() <= 64.min(total / 2).max(1)
                && values.iter().all(|v| looks_like_command(v))
        })
        .min_by_key(|(name, (present, values))| {
            let likely = LIKELY
                .iter()
                .position(|l| name.eq_ignore_ascii_case(l))
                .unwrap_or(LIKELY.len());
            (likely, total - present, values.len())
        })
        .map(|(name, _)| name.to_owned())
}

/// A name of letters and digits joined by `_`, `.`, `-` or case changes,
/// not free text.
fn looks_like_command(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 48
        && text.chars().next().is_some_and(char::is_alphabetic)
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// One command and how it is spelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub normalised: String,
    /// Each spelling with its count.
    pub spellings: BTreeMap<String, u64>,
    /// The derived event type; `None` for a heartbeat (to be ignored) or
    /// a name with no letters.
    pub event_type: Option<String>,
}

impl Command {
    pub(crate) fn is_heartbeat(&self) -> bool {
        HEARTBEATS.contains(&self.normalised.as_str())
    }

    /// The most frequent spelling: the one the table lists.
    pub(crate) fn usual_spelling(&self) -> &str {
        self.spellings
            .iter()
            .max_by_key(|(spelling, count)| (**count, std::cmp::Reverse(spelling.as_str())))
            .map_or("", |(spelling, _)| spelling)
    }
}

/// Groups spellings by the command they normalise to.
#[derive(Debug, Default)]
pub(crate) struct Commands {
    by_normalised: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Commands {
    pub(crate) fn see(&mut self, spelling: &str) {
        *self
            .by_normalised
            .entry(normalise(spelling))
            .or_default()
            .entry(spelling.to_owned())
            .or_default() += 1;
    }

    pub(crate) fn into_commands(self) -> Vec<Command> {
        self.by_normalised
            .into_iter()
            .map(|(normalised, spellings)| {
                let mut command = Command {
                    normalised,
                    spellings,
                    event_type: None,
                };
                if !command.is_heartbeat() {
                    command.event_type = derive_event_type(command.usual_spelling());
                }
                command
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects(values: &[Value]) -> Vec<Map<String, Value>> {
        values
            .iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    }

    #[test]
    fn the_command_field_is_the_short_low_cardinality_name_field() {
        let records: Vec<Value> = (0..40)
            .map(|i| {
                let command = ["ADD_TO_CART", "AddToCart", "CHECKOUT", "HEARTBEAT"][i % 4];
                json!({
                    "command": command,
                    "requestId": format!("r-{i}"),
                    "status": "NEW",
                    "note": "free text, with spaces",
                })
            })
            .collect();
        assert_eq!(guess_field(&objects(&records)).as_deref(), Some("command"));
        let renamed: Vec<Value> = (0..40)
            .map(|i| json!({"op": if i % 2 == 0 { "INSERT" } else { "UPDATE" }, "id": format!("o-{i}")}))
            .collect();
        assert_eq!(guess_field(&objects(&renamed)).as_deref(), Some("op"));
        assert_eq!(guess_field(&[]), None);
    }

    #[test]
    fn spellings_group_into_commands_with_derived_event_types() {
        let mut commands = Commands::default();
        for spelling in [
            "ADD_TO_CART",
            "AddToCart",
            "AddToCart",
            "add.to.cart",
            "HEARTBEAT",
        ] {
            commands.see(spelling);
        }
        let commands = commands.into_commands();
        assert_eq!(commands.len(), 2);
        let add = &commands[0];
        assert_eq!(add.normalised, "addtocart");
        assert_eq!(add.spellings.values().sum::<u64>(), 4);
        assert_eq!(add.usual_spelling(), "AddToCart");
        assert_eq!(add.event_type.as_deref(), Some("AddedToCart"));
        assert!(commands[1].is_heartbeat());
        assert_eq!(commands[1].event_type, None);
    }
}
