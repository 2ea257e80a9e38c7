//! The environment overlay: `RECAST_<SECTION>__<KEY>` variables override
//! keys of the file before it is read into structs.
//!
//! A variable ending `_FILE` takes the value from the file it names, the
//! way mounted secrets are handed over. A value is taken verbatim, as a
//! string: a password `1e5` or `true` stays that text. Only where the key
//! is not a string (a number, a boolean, a list) is the value read as a
//! TOML value instead — decided by the structs themselves, when they
//! refuse the string (see `read_raw` in `config/mod.rs`).

use super::error::{ConfigError, Origin};

/// Environment variables starting with this prefix and containing `__`
/// override configuration keys: `RECAST_BATCH__MAX_RECORDS=500` sets
/// `batch.max_records`.
const ENV_PREFIX: &str = "RECAST_";

/// A variable ending so names a file that holds the value (a mounted
/// secret): `RECAST_REGISTRY__PASSWORD_FILE=/run/secrets/registry` sets
/// `registry.password` to the file's text, less its final line break.
const FILE_SUFFIX: &str = "_FILE";

/// One variable that overrides a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Override {
    pub var: String,
    /// The key's segments.
    pub path: Vec<String>,
    pub value: String,
}

impl Override {
    /// The key as `serde_path_to_error` names it: `batch.max_records`.
    pub(super) fn key(&self) -> String {
        self.path.join(".")
    }

    /// The value as a TOML value, when it is one other than a string.
    pub(super) fn typed(&self) -> Option<toml::Value> {
        format!("v = {}", self.value)
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .filter(|v| !v.is_str())
    }
}

/// Applies the `RECAST_<SECTION>__<KEY>` overrides, every value as a
/// string; returns them.
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    origin: &Origin,
) -> Result<Vec<Override>, ConfigError> {
    let mut applied = Vec::new();
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let (rest, value) = match rest.strip_suffix(FILE_SUFFIX) {
            Some(key) => match std::fs::read_to_string(&value) {
                Ok(text) => (key, text.trim_end_matches(['\n', '\r']).to_owned()),
                Err(e) => {
                    return Err(ConfigError::Env {
                        origin: origin.clone(),
                        var,
                        message: format!("cannot read {value}: {e}"),
                    });
                }
            },
            None => (rest, value),
        };
        let mut path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        // librdkafka property names are dotted, and shells do not allow dots
        // in variable names: RECAST_KAFKA__PROPERTIES__SASL_PASSWORD sets
        // `sasl.password`.
        if let [kafka, properties, name] = path.as_mut_slice()
            && kafka == "kafka"
            && properties == "properties"
        {
            *name = name.replace('_', ".");
        }
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                origin: origin.clone(),
                var,
                message: "empty key segment".into(),
            });
        }
        let over = Override { var, path, value };
        set(
            table,
            &over,
            toml::Value::String(over.value.clone()),
            origin,
        )?;
        applied.push(over);
    }
    Ok(applied)
}

/// Sets the key `over` names to `value`.
pub(super) fn set(
    table: &mut toml::Table,
    over: &Override,
    value: toml::Value,
    origin: &Origin,
) -> Result<(), ConfigError> {
    let (last, parents) = over.path.split_last().expect("at least one segment");
    let mut node = table;
    for segment in parents {
        node = node
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| ConfigError::Env {
                origin: origin.clone(),
                var: over.var.clone(),
                message: format!("`{segment}` is not a table"),
            })?;
    }
    node.insert(last.clone(), value);
    Ok(())
}
