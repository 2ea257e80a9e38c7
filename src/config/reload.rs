//! What a mapping reload may change (README, "Changing a mapping without a
//! restart"): the `[mapping]` and `[scripts]` sections and
//! `ledger.schemas`, with the files they name. Everything else (brokers,
//! topics, batches, dedupe, limits) is fixed for the life of the process.

use super::{Config, LedgerOutput};

/// The sections and keys a reload takes from the files.
const RELOADED: &[&str] = &["mapping", "scripts", "ledger.schemas"];

impl Config {
    /// This configuration with the mapping of `newer`: its transforms,
    /// scripts limits, hash key and event schemas. Everything else stays
    /// as it is here (see [`Config::unreloaded_changes`]).
    #[must_use]
    pub fn with_mapping_of(&self, newer: Config) -> Config {
        let mut config = self.clone();
        config.raw.mapping = newer.raw.mapping;
        config.raw.scripts = newer.raw.scripts;
        config.transforms = newer.transforms;
        config.mapping = newer.mapping;
        config.ledger = match (&self.ledger, newer.ledger) {
            (LedgerOutput::Avro { registry, .. }, LedgerOutput::Avro { schemas, .. }) => {
                config.raw.ledger.schemas = newer.raw.ledger.schemas;
                LedgerOutput::Avro {
                    schemas,
                    registry: registry.clone(),
                }
            }
            (LedgerOutput::Json { .. }, LedgerOutput::Json { schemas }) => {
                config.raw.ledger.schemas = newer.raw.ledger.schemas;
                LedgerOutput::Json { schemas }
            }
            // A change of ledger.format is not reloaded: the schemas go
            // with the format they were written for.
            _ => self.ledger.clone(),
        };
        config
    }

    /// The keys `newer` sets differently from this configuration that a
    /// reload does not apply (`kafka`, `batch.max_records`, …), sorted.
    pub fn unreloaded_changes(&self, newer: &Config) -> Vec<String> {
        let flat = |config: &Config| {
            let value = toml::Value::try_from(&config.raw).unwrap_or(toml::Value::Boolean(false));
            let mut keys = Vec::new();
            flatten("", &value, &mut keys);
            keys.retain(|(key, _)| {
                !RELOADED
                    .iter()
                    .any(|r| key == r || key.starts_with(&format!("{r}.")))
            });
            keys
        };
        let (old, new) = (flat(self), flat(newer));
        let mut changed: Vec<String> = old
            .iter()
            .filter(|entry| !new.contains(entry))
            .chain(new.iter().filter(|entry| !old.contains(entry)))
            .map(|(key, _)| key.clone())
            .collect();
        changed.sort();
        changed.dedup();
        changed
    }
}

/// Every leaf of a TOML value as a dotted key and its value.
fn flatten(prefix: &str, value: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Origin};

    fn config(extra: &str) -> Config {
        let text = format!(
            r#"
            [kafka]
            brokers = "127.0.0.1:1"
            group_id = "g"
            instance_id = "i"
            [topics]
            legacy = "legacy"
            ledger = "ledger"
            dead_letter = "dlq"
            [source]
            system = "s"
            [ledger]
            format = "json"
            {extra}
            "#
        );
        // The embedded default's transforms, named from the crate root.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/recast.toml");
        let text = text.replace(
            "[ledger]",
            "[mapping]\ntransforms = [\"transforms/cart.toml\"]\nhash_key = \"a key of sixteen bytes or more\"\n[ledger]",
        );
        Config::parse(&text, Origin::File(root.into()), Vec::new()).unwrap()
    }

    #[test]
    fn changes_outside_the_mapping_are_named_and_not_taken() {
        let running = config("");
        let newer = config("[batch]\nmax_records = 7\n[scripts]\nmax_operations = 1234");
        assert_eq!(
            running.unreloaded_changes(&newer),
            vec!["batch.max_records".to_owned()]
        );
        let swapped = running.with_mapping_of(newer);
        assert_eq!(swapped.raw.scripts.max_operations.get(), 1234);
        assert_ne!(swapped.raw.batch.max_records.get(), 7);
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        assert!(config("").unreloaded_changes(&config("")).is_empty());
    }
}
