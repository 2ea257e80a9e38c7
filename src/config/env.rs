//! The environment overlay: `RECAST_<SECTION>__<KEY>` variables override
//! keys of the file before it is read into structs.

use super::error::{ConfigError, Origin};

/// Environment variables starting with this prefix and containing `__`
/// override configuration keys: `RECAST_BATCH__MAX_RECORDS=500` sets
/// `batch.max_records`.
const ENV_PREFIX: &str = "RECAST_";

/// Applies the `RECAST_<SECTION>__<KEY>` overrides; returns whether any applied.
pub(super) fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    origin: &Origin,
) -> Result<bool, ConfigError> {
    let mut applied = false;
    for (var, value) in env {
        let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
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
        let env_error = |message: String| ConfigError::Env {
            origin: origin.clone(),
            var: var.clone(),
            message,
        };
        if path.iter().any(String::is_empty) {
            return Err(env_error("empty key segment".into()));
        }
        // A value that parses as a TOML value (number, boolean, quoted
        // string, array) is taken as one; anything else is a plain string.
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let (last, parents) = path.split_last().expect("at least one segment");
        let mut node = &mut *table;
        for segment in parents {
            node = node
                .entry(segment.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| env_error(format!("`{segment}` is not a table")))?;
        }
        node.insert(last.clone(), parsed);
        applied = true;
    }
    Ok(applied)
}
