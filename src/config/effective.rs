//! `recast config`: the configuration recast would run with, every value
//! with where it came from (the file, an environment variable, or the
//! default), secrets redacted — what an operator checks before trusting
//! a deployment.

use std::fmt::Write;

use super::error::Origin;
use super::file::RawConfig;

/// Where the values of a configuration came from.
#[derive(Debug, Clone, Default)]
pub(super) struct Sources {
    /// The file as written, before any override.
    pub(super) file: toml::Table,
    /// Each overridden key (`batch.max_records`) and its variable.
    pub(super) overrides: Vec<(String, String)>,
}

/// Shown instead of a secret's value.
const REDACTED: &str = "<redacted>";

/// Keys whose values are secrets wherever they are set.
const SECRETS: &[&str] = &["mapping.hash_key", "registry.password", "registry.token"];

/// Words that make a librdkafka property a secret (`sasl.password`,
/// `ssl.key.password`, `sasl.oauthbearer.client.secret`, `ssl.key.pem`, …).
const SECRET_WORDS: &[&str] = &["password", "secret", "pem", "jaas", "token"];

fn is_secret(key: &str) -> bool {
    SECRETS.contains(&key)
        || key
            .strip_prefix("kafka.properties.")
            .is_some_and(|name| SECRET_WORDS.iter().any(|word| name.contains(word)))
}

/// The effective configuration as TOML, one comment per value naming its
/// origin.
pub(super) fn render(raw: &RawConfig, sources: &Sources, origin: &Origin) -> String {
    let table = toml::Table::try_from(raw).expect("the configuration serialises");
    let mut out = String::new();
    section(&mut out, "", &table, sources, origin);
    out
}

fn section(out: &mut String, path: &str, table: &toml::Table, sources: &Sources, origin: &Origin) {
    let mut nested = Vec::new();
    for (name, value) in table {
        let key = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        if let toml::Value::Table(inner) = value {
            nested.push((key, inner));
            continue;
        }
        let shown = if is_secret(&key) {
            toml::Value::from(REDACTED).to_string()
        } else {
            value.to_string()
        };
        let from = match sources.overrides.iter().rev().find(|(k, _)| *k == key) {
            Some((_, var)) => format!("env {var}"),
            None if in_file(&sources.file, &key) => origin.to_string(),
            None => "default".to_owned(),
        };
        let _ = writeln!(out, "{} = {shown}  # {from}", bare_or_quoted(name));
    }
    for (key, inner) in nested {
        let header: Vec<String> = split(&key).iter().map(|s| bare_or_quoted(s)).collect();
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "[{}]", header.join("."));
        section(out, &key, inner, sources, origin);
    }
}

/// Whether the file sets `key`. Property names hold dots, so the path is
/// walked table by table, not split blindly.
fn in_file(file: &toml::Table, key: &str) -> bool {
    let mut node = file;
    let mut rest = key;
    loop {
        if node.contains_key(rest) {
            return true;
        }
        let Some((head, tail)) = rest.split_once('.') else {
            return false;
        };
        match node.get(head) {
            Some(toml::Value::Table(inner)) => {
                node = inner;
                rest = tail;
            }
            _ => return false,
        }
    }
}

/// A section path's segments: `kafka.properties` → two; a property's
/// own dots stay inside its segment.
fn split(key: &str) -> Vec<&str> {
    match key.strip_prefix("kafka.properties.") {
        Some(name) => vec!["kafka", "properties", name],
        None => key.split('.').collect(),
    }
}

fn bare_or_quoted(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        name.to_owned()
    } else {
        toml::Value::from(name).to_string()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, EMBEDDED_DEFAULT, Origin};

    #[test]
    fn every_value_names_its_origin_and_secrets_are_redacted() {
        let env = vec![
            ("RECAST_BATCH__MAX_RECORDS".to_owned(), "17".to_owned()),
            (
                "RECAST_KAFKA__PROPERTIES__SASL_PASSWORD".to_owned(),
                "hunter2-very-secret".to_owned(),
            ),
            ("RECAST_REGISTRY__USERNAME".to_owned(), "recast".to_owned()),
            (
                "RECAST_REGISTRY__PASSWORD".to_owned(),
                "registry-secret".to_owned(),
            ),
        ];
        let config = Config::parse(EMBEDDED_DEFAULT, Origin::Embedded, env).unwrap();
        let text = config.effective();
        for secret in [
            "hunter2-very-secret",
            "registry-secret",
            "local-development-only-key",
        ] {
            assert!(!text.contains(secret), "{secret} shown:\n{text}");
        }
        for line in [
            "max_records = 17  # env RECAST_BATCH__MAX_RECORDS",
            "\"sasl.password\" = \"<redacted>\"  # env RECAST_KAFKA__PROPERTIES__SASL_PASSWORD",
            "hash_key = \"<redacted>\"  # <embedded default>",
            "group_id = \"recast-cart\"  # <embedded default>",
            "[kafka.properties]",
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with("duplicate_keys = ") && l.ends_with("# default")),
            "{text}"
        );
        // What it prints is a configuration recast reads (secrets aside).
        let stripped: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains(super::REDACTED))
            .collect();
        let stripped = stripped.join("\n");
        assert!(stripped.parse::<toml::Table>().is_ok(), "{stripped}");
    }
}
