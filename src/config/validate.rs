//! Validation: the checks that look at several fields at once (serde has
//! already checked each field alone).

use std::time::Duration;

use super::error::{ConfigError, Origin};
use super::file::{LedgerFormat, LegacyFormat, RawConfig};
use crate::pipeline::mapping::FieldPath;

/// Shorter `mapping.hash_key`s are refused: a hash is only as secret as its key.
const MIN_HASH_KEY_BYTES: usize = 16;

/// librdkafka properties recast sets itself: overriding them would break
/// exactly-once, so `kafka.properties` may not name them.
const OWNED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "transactional.id",
    "enable.idempotence",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "isolation.level",
    "transaction.timeout.ms",
    "partition.assignment.strategy",
    "group.protocol",
    "group.instance.id",
];

impl RawConfig {
    /// Checks fields against each other; serde has already checked each alone.
    /// Every problem found, none when valid.
    pub(crate) fn problems(&self, origin: &Origin) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.clone(),
            key: key.to_owned(),
            message,
        };
        let non_empty = [
            ("kafka.brokers", &self.kafka.brokers),
            ("kafka.group_id", &self.kafka.group_id),
            ("topics.legacy", &self.topics.legacy),
            ("topics.ledger", &self.topics.ledger),
            ("topics.dead_letter", &self.topics.dead_letter),
            ("source.system", &self.source.system),
        ];
        for (key, value) in non_empty {
            if value.trim().is_empty() {
                problems.push(invalid(key, "must not be empty".into()));
            }
        }
        if let Some(id) = &self.kafka.instance_id
            && id.trim().is_empty()
        {
            problems.push(invalid("kafka.instance_id", "must not be empty".into()));
        }
        let t = &self.topics;
        if t.legacy == t.ledger || t.legacy == t.dead_letter || t.ledger == t.dead_letter {
            problems.push(invalid(
                "topics",
                "legacy, ledger and dead_letter must be three different topics".into(),
            ));
        }
        problems.extend(
            self.batch_problems()
                .into_iter()
                .map(|(key, message)| invalid(key, message)),
        );
        for key in self.kafka.properties.keys() {
            if OWNED_PROPERTIES.contains(&key.as_str()) {
                problems.push(invalid(
                    &format!("kafka.properties.\"{key}\""),
                    "is set by recast itself (exactly-once depends on it); remove it".into(),
                ));
            }
        }
        if self.http.enabled && self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(invalid(
                "http.listen",
                format!("`{}` is not an ip:port address", self.http.listen),
            ));
        }
        self.validate_ledger(origin, &mut problems);
        if self.mapping.transforms.is_empty() {
            problems.push(invalid(
                "mapping.transforms",
                "names no transform file; add at least one".into(),
            ));
        }
        if self
            .mapping
            .hash_key
            .as_ref()
            .is_some_and(|k| k.len() < MIN_HASH_KEY_BYTES)
        {
            problems.push(invalid(
                "mapping.hash_key",
                format!("too short to be secret: use at least {MIN_HASH_KEY_BYTES} bytes"),
            ));
        }
        if !self.dead_letter.protect.is_empty() && self.mapping.hash_key.is_none() {
            problems.push(invalid(
                "dead_letter.protect",
                "hashes with mapping.hash_key, which is not set".into(),
            ));
        }
        for path in &self.dead_letter.protect {
            if let Err(message) = FieldPath::parse(path) {
                problems.push(invalid("dead_letter.protect", message));
            }
        }
        problems
    }

    /// The batch settings' problems, by key.
    fn batch_problems(&self) -> Vec<(&'static str, String)> {
        let b = &self.batch;
        let mut problems = Vec::new();
        if b.transaction_timeout < Duration::from_secs(1) {
            problems.push(("batch.transaction_timeout", "must be at least 1s".into()));
        }
        // Processing and committing a batch happen after the linger: leave
        // at least as much time for them as the linger itself.
        if b.linger.saturating_mul(2) > b.transaction_timeout {
            problems.push((
                "batch.linger",
                format!(
                    "{} leaves too little of batch.transaction_timeout ({}) to process and commit; keep it under half",
                    humantime::format_duration(b.linger),
                    humantime::format_duration(b.transaction_timeout)
                ),
            ));
        }
        if b.threads.get() > 2 {
            problems.push((
                "batch.threads",
                format!(
                    "{} is more than 2: a batch runs its record path on one thread, beside or on the loop's own",
                    b.threads
                ),
            ));
        }
        problems
    }
}

impl RawConfig {
    /// The ledger format's needs: Avro needs schemas and a registry.
    fn validate_ledger(&self, origin: &Origin, problems: &mut Vec<ConfigError>) {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            origin: origin.clone(),
            key: key.to_owned(),
            message: message.to_owned(),
        };
        if self.ledger.format == LedgerFormat::Avro {
            if self.ledger.schemas.is_empty() {
                problems.push(invalid(
                    "ledger.schemas",
                    "format = \"avro\" needs the event schemas (e.g. [\"schemas/header.avsc\", \"schemas/cart\"])",
                ));
            }
            if self.registry.is_none() {
                problems.push(invalid(
                    "registry",
                    "format = \"avro\" needs a schema registry: add [registry] url = \"…\" (or set ledger.format = \"json\")",
                ));
            }
        }
        if self.source.format != LegacyFormat::Json && self.registry.is_none() {
            problems.push(invalid(
                "source.format",
                "Avro legacy values are decoded with schemas from a registry: add [registry] url = \"…\"",
            ));
        }
        if let Some(registry) = &self.registry {
            if !(registry.url.starts_with("http://") || registry.url.starts_with("https://")) {
                problems.push(invalid(
                    "registry.url",
                    &format!("`{}` is not an http:// or https:// URL", registry.url),
                ));
            }
            match (&registry.username, &registry.password, &registry.token) {
                (Some(_), None, _) | (None, Some(_), _) => {
                    problems.push(invalid(
                        "registry.username",
                        "basic authentication needs both username and password",
                    ));
                }
                (Some(_), Some(_), Some(_)) => {
                    problems.push(invalid(
                        "registry.token",
                        "use either a token or username and password, not both",
                    ));
                }
                _ => {}
            }
        }
    }
}
