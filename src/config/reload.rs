//! What a mapping reload may change (README, "Changing a mapping without a
//! restart"): the `[mapping]` and `[scripts]` sections and
//! `ledger.schemas`, with the files they name. Everything else (brokers,
//! topics, batches, dedupe, limits) is fixed for the life of the process.

use super::{Config, LedgerOutput};

/// The sections and keys a reload takes from the files.
const RELOADED: &[&str] = &["mapping", "scripts", "ledger.schemas"];
/// Read at start only, though in a reloaded section.
const READ_AT_START: &[&str] = &["mapping.watch"];

impl Config {
    /// This configuration with the mapping of `newer`: its transforms,
    /// scripts limits, hash key and event schemas. Everything else stays
    /// as it is here (see [`Config::unreloaded_changes`]).
    #[must_use]
    pub fn with_mapping_of(&self, newer: Config) -> Config {
        let mut config = self.clone();
        config.raw.mapping = newer.raw.mapping;
        config.raw.mapping.watch = self.raw.mapping.watch;
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

    /// Whether `self`, a configuration with the mapping of a newer file,
    /// would run differently from `running`: other transforms, schemas,
    /// hash key or script limits.
    pub fn mapping_differs(&self, running: &Config) -> bool {
        let schemas = |config: &Config| -> Vec<String> {
            config
                .ledger
                .schemas()
                .map(|schemas| schemas.iter().map(|s| s.text.clone()).collect())
                .unwrap_or_default()
        };
        self.mapping.version() != running.mapping.version()
            || schemas(self) != schemas(running)
            || self.raw.mapping.hash_key != running.raw.mapping.hash_key
            || leaves(&self.raw.scripts) != leaves(&running.raw.scripts)
    }

    /// The keys `newer` sets differently from this configuration that a
    /// reload does not apply (`kafka`, `batch.max_records`, …), sorted.
    pub fn unreloaded_changes(&self, newer: &Config) -> Vec<String> {
        let flat = |config: &Config| {
            let mut keys = leaves(&config.raw);
            keys.retain(|(key, _)| {
                READ_AT_START.contains(&key.as_str())
                    || !RELOADED
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

/// Every leaf of a configuration section as a dotted key and its value.
fn leaves(section: &impl serde::Serialize) -> Vec<(String, toml::Value)> {
    let mut keys = Vec::new();
    match toml::Value::try_from(section) {
        Ok(value) => flatten("", &value, &mut keys),
        // Never expected (the sections are plain data), but a failure must
        // not make two configurations look alike.
        Err(e) => keys.push((format!("(unreadable: {e})"), toml::Value::Boolean(true))),
    }
    keys
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
        // Same transforms, other script limits: a mapping that runs
        // differently.
        assert!(swapped.mapping_differs(&running));
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let running = config("");
        assert!(running.unreloaded_changes(&config("")).is_empty());
        assert!(
            !running
                .with_mapping_of(config(""))
                .mapping_differs(&running)
        );
    }

    #[test]
    fn watch_is_read_at_start() {
        let running = config("");
        let newer = config("").with_watch();
        assert_eq!(
            running.unreloaded_changes(&newer),
            vec!["mapping.watch".to_owned()]
        );
        assert!(!running.with_mapping_of(newer).raw.mapping.watch);
    }

    impl Config {
        fn with_watch(mut self) -> Self {
            self.raw.mapping.watch = true;
            self
        }
    }
}
