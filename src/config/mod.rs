//! Configuration: `recast.toml` (or the embedded default), overridden by
//! `RECAST_<SECTION>__<KEY>` environment variables, parsed into documented
//! structs and validated as a whole before anything connects. One file per
//! job: the file format (`file.rs`), its defaults, the environment overlay
//! (`env.rs`), validation, the files a configuration names (`assets.rs`)
//! and errors. Each stage's own section (`[dedupe]`, `[scripts]`,
//! `[registry]`) lives with the stage; this module assembles them and
//! turns the whole into a [`Config`] that owns the built parts.

mod assets;
mod defaults;
mod effective;
mod env;
mod error;
mod file;
mod reload;
mod validate;

use std::path::Path;

use crate::avro::{LedgerSchemas, WriterSchemas};
use crate::pipeline::decode::Decoder;
use crate::pipeline::dedupe::{DedupeConfig, KeySource};
use crate::pipeline::mapping::{Mapping, Protection, TransformFile};
use crate::pipeline::{Encoding, Pipeline, Stages};
use crate::registry::Registry;
pub use assets::EMBEDDED_DEFAULT;
pub(crate) use assets::read_schema_files;
use assets::{read_registry_tls, read_schemas, read_transforms};
use effective::Sources;
use env::{apply_env, set};
use error::parse_error;
pub use error::{ConfigError, Origin};
pub(crate) use file::{LedgerFormat, LegacyFormat, RawConfig};

/// The ledger's format, carrying what it needs: an Avro ledger always has
/// its schemas and a registry to register them with.
#[derive(Debug, Clone)]
pub enum LedgerOutput {
    Avro {
        schemas: LedgerSchemas,
        registry: Registry,
    },
    /// JSON events, checked against the schemas when there are any.
    Json { schemas: Option<LedgerSchemas> },
}

impl LedgerOutput {
    /// The event schemas, when there are any.
    pub fn schemas(&self) -> Option<&LedgerSchemas> {
        match self {
            Self::Avro { schemas, .. } => Some(schemas),
            Self::Json { schemas } => schemas.as_ref(),
        }
    }
}

/// A configuration that passed validation, with the values derived from it.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    pub origin: Origin,
    /// `kafka.instance_id`, or the host name.
    pub instance_id: String,
    /// The files of `mapping.transforms`, in order.
    pub transforms: Vec<TransformFile>,
    /// The compiled mapping.
    pub mapping: Mapping,
    /// What the ledger is written as, with what that needs.
    pub ledger: LedgerOutput,
    /// What identifies a request, compiled from `[dedupe]`.
    pub dedupe_key: Option<KeySource>,
    /// The fields dead letters hash, from `dead_letter.protect`.
    pub(crate) protection: Option<Protection>,
    /// Where each value came from, for `recast config`.
    sources: Sources,
}

impl Config {
    /// Reads `path` (or the embedded default when `None`), applies the
    /// environment overrides in `env` and validates the result.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (origin, text) = match path {
            Some(path) => {
                let origin = Origin::File(path.to_owned());
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    origin: origin.clone(),
                    source,
                })?;
                (origin, text)
            }
            None => (Origin::Embedded, EMBEDDED_DEFAULT.to_owned()),
        };
        Self::parse(&text, origin, env)
    }

    /// Parses configuration text; see [`Config::load`].
    pub fn parse(
        text: &str,
        origin: Origin,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (mut raw, sources) = read_raw(text, &origin, env)?;
        // The dedupe key is compiled with the checks, so its problems are
        // reported with all the others.
        let mut problems = raw.problems(&origin);
        let dedupe_key = match raw.dedupe.as_ref().map(DedupeConfig::compile).transpose() {
            Ok(key) => key,
            Err((key, message)) => {
                problems.push(ConfigError::Invalid {
                    origin: origin.clone(),
                    key: format!("dedupe.{key}"),
                    message,
                });
                None
            }
        };
        ConfigError::all(problems)?;
        let instance_id = match &raw.kafka.instance_id {
            Some(id) => id.clone(),
            None => hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .ok_or_else(|| ConfigError::Invalid {
                    origin: origin.clone(),
                    key: "kafka.instance_id".into(),
                    message: "not set and the host name cannot be read; set it".into(),
                })?,
        };
        if let Some(registry) = raw.registry.as_mut() {
            registry.tls = read_registry_tls(registry, &origin)?;
        }
        let transforms = read_transforms(&raw.mapping, &origin)?;
        let mapping = Mapping::compile(&transforms, raw.mapping.hash_key.as_deref(), &raw.scripts)?;
        let schemas = match raw.ledger.schemas.as_slice() {
            [] => None,
            names => Some(LedgerSchemas::load(&read_schemas(names, &origin)?)?),
        };
        let ledger = match (raw.ledger.format, schemas, &raw.registry) {
            (LedgerFormat::Avro, Some(schemas), Some(registry)) => LedgerOutput::Avro {
                schemas,
                registry: Registry::new(registry),
            },
            (LedgerFormat::Avro, ..) => {
                // Validation refused this already; say so again rather
                // than assume it.
                return Err(ConfigError::Invalid {
                    origin,
                    key: "ledger.format".into(),
                    message: "\"avro\" needs ledger.schemas and a [registry]".into(),
                });
            }
            (LedgerFormat::Json, schemas, _) => LedgerOutput::Json { schemas },
        };
        let protection = match (&raw.dead_letter.protect[..], &raw.mapping.hash_key) {
            ([], _) | (_, None) => None,
            (paths, Some(key)) => {
                Some(Protection::new(key.as_bytes(), paths).map_err(|message| {
                    ConfigError::Invalid {
                        origin: origin.clone(),
                        key: "dead_letter.protect".into(),
                        message,
                    }
                })?)
            }
        };
        Ok(Self {
            raw,
            origin,
            instance_id,
            transforms,
            mapping,
            ledger,
            dedupe_key,
            protection,
            sources,
        })
    }

    /// The JSON Schema of a configuration file (`recast config schema`).
    pub fn json_schema() -> serde_json::Value {
        crate::json::schema_of::<RawConfig>("recast configuration")
    }

    /// The configuration as it runs, each value with its origin and the
    /// secrets redacted (`recast config`).
    pub fn effective(&self) -> String {
        effective::render(&self.raw, &self.sources, &self.origin)
    }

    /// The one record path of the worker: legacy values read as
    /// `source.format` says, events written as `encoding` says.
    pub fn pipeline(&self, encoding: Encoding) -> Pipeline {
        let decoder = match self.raw.source.format {
            LegacyFormat::Json => self.json_decoder(),
            format => self
                .json_decoder()
                .reading_avro(WriterSchemas::new(), format == LegacyFormat::Auto),
        };
        self.build(decoder, encoding)
    }

    /// The record path of the offline tools, over JSON-lines files: values
    /// are JSON text whatever `source.format` says, and events are JSON,
    /// checked against the configured schemas when there are any, so they
    /// reject what the Avro ledger would.
    pub fn offline_pipeline(&self) -> Pipeline {
        let schemas = self.ledger.schemas().cloned();
        self.build(self.json_decoder(), Encoding::Json(schemas))
    }

    pub(crate) fn json_decoder(&self) -> Decoder {
        let limits = &self.raw.limits;
        Decoder::new(limits.max_value_bytes.get(), limits.max_json_depth.get())
            .with_duplicate_keys(self.raw.source.duplicate_keys)
    }

    fn build(&self, decoder: Decoder, encoding: Encoding) -> Pipeline {
        Pipeline::new(Stages {
            decoder,
            mapping: self.mapping.clone(),
            dedupe: self.dedupe_key.clone(),
            system: self.raw.source.system.clone(),
            ledger_topic: self.raw.topics.ledger.clone(),
            max_output_bytes: self.raw.limits.max_output_bytes.get(),
            encoding,
        })
    }

    /// A client of the configured schema registry.
    pub fn registry(&self) -> Option<Registry> {
        self.raw.registry.as_ref().map(Registry::new)
    }
}

/// The file with the environment's overrides, read into its structs.
///
/// An override is a string until the structs refuse one there: then it is
/// read as a TOML value (a number, a boolean, a list), so string keys
/// take their values verbatim and typed keys still parse. An error at an
/// overridden key names the variable; one at a key of the file, its line.
fn read_raw(
    text: &str,
    origin: &Origin,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(RawConfig, Sources), ConfigError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        parse_error(origin, text, e.span(), String::new(), e.message())
    })?;
    let file = table.clone();
    let overrides = apply_env(&mut table, env, origin)?;
    let sources = Sources {
        file,
        overrides: overrides.iter().map(|o| (o.key(), o.var.clone())).collect(),
    };
    let file_error = |key: String, error: &toml::de::Error, lines: &str| {
        parse_error(origin, lines, error.span(), key, error.message())
    };
    if overrides.is_empty() {
        let raw = deserialize(text).map_err(|(key, e)| file_error(key, &e, text))?;
        return Ok((raw, sources));
    }
    let mut typed: Vec<&str> = Vec::new();
    loop {
        let merged = toml::to_string(&table).map_err(|e| ConfigError::Invalid {
            origin: origin.clone(),
            key: String::new(),
            message: e.to_string(),
        })?;
        let (key, error) = match deserialize(&merged) {
            Ok(raw) => return Ok((raw, sources)),
            Err(failure) => failure,
        };
        let overridden = overrides.iter().rev().find(|o| {
            let name = o.key();
            key == name || key.starts_with(&format!("{name}."))
        });
        let Some(over) = overridden else {
            // The file's own key: its line, where the file alone fails
            // there too.
            return Err(match deserialize(text) {
                Err((file_key, e)) if file_key == key => file_error(key, &e, text),
                _ => file_error(key, &error, ""),
            });
        };
        if !typed.contains(&over.var.as_str())
            && let Some(value) = over.typed()
        {
            set(&mut table, over, value, origin)?;
            typed.push(&over.var);
            continue;
        }
        return Err(ConfigError::Env {
            origin: origin.clone(),
            var: over.var.clone(),
            message: format!("{key}: {}", error.message()),
        });
    }
}

/// TOML text into the structs; on failure, the key and the error.
fn deserialize(text: &str) -> Result<RawConfig, (String, toml::de::Error)> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| (String::new(), e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        (key, e.into_inner())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Origin::File("t.toml".into()), Vec::new())
    }

    /// Every key of the configuration file, from its JSON Schema (so from
    /// the structs): the leaves, tables of free keys (`kafka.properties`)
    /// whole.
    fn schema_keys() -> std::collections::BTreeSet<String> {
        fn walk(
            prefix: &str,
            schema: &serde_json::Value,
            root: &serde_json::Value,
            into: &mut std::collections::BTreeSet<String>,
        ) {
            // `Option<Section>` is `anyOf: [{$ref}, {type: null}]`.
            let section = schema["$ref"]
                .as_str()
                .or_else(|| schema["anyOf"][0]["$ref"].as_str())
                .map_or(schema, |r| &root["$defs"][r.trim_start_matches("#/$defs/")]);
            match section["properties"].as_object() {
                Some(properties) => {
                    for (name, inner) in properties {
                        let key = if prefix.is_empty() {
                            name.clone()
                        } else {
                            format!("{prefix}.{name}")
                        };
                        walk(&key, inner, root, into);
                    }
                }
                None => {
                    into.insert(prefix.to_owned());
                }
            }
        }
        let schema = Config::json_schema();
        let mut keys = std::collections::BTreeSet::new();
        walk("", &schema, &schema, &mut keys);
        keys
    }

    #[test]
    fn the_readme_documents_every_configuration_key_and_no_other() {
        let known = schema_keys();
        assert!(known.contains("kafka.properties") && known.contains("dedupe.ttl"));
        let readme = include_str!("../../README.md");
        let table = readme
            .split("\n## Configuration\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap();
        let mut documented = std::collections::BTreeSet::new();
        for row in table.lines().filter(|l| l.starts_with("| `")) {
            let cell = row.split('|').nth(1).unwrap();
            for key in cell.split(" / ").map(|k| k.trim().trim_matches('`')) {
                match key.strip_suffix(".*") {
                    Some(section) => documented.extend(
                        known
                            .iter()
                            .filter(|k| k.starts_with(&format!("{section}.")))
                            .cloned(),
                    ),
                    None => {
                        documented.insert(key.to_owned());
                    }
                }
            }
        }
        assert_eq!(
            documented.difference(&known).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "documented, not a key"
        );
        assert_eq!(
            known.difference(&documented).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "a key the README's configuration table does not document"
        );
    }

    #[test]
    fn embedded_default_is_valid() {
        let config = Config::load(None, Vec::new()).expect("embedded default parses");
        assert_eq!(config.raw.topics.legacy, "legacy-cart");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = EMBEDDED_DEFAULT.replace("[batch]", "[batch]\nmax_recrods = 5");
        let line = text.lines().position(|l| l == "max_recrods = 5").unwrap() + 1;
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.starts_with(&format!("t.toml:{line}: ")), "{err}");
        assert!(err.contains("max_recrods"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }

    #[test]
    fn avro_needs_schemas_and_a_registry() {
        let start = EMBEDDED_DEFAULT.find("\n[registry]\n").unwrap();
        let end = EMBEDDED_DEFAULT.find("retry_for = \"60s\"\n").unwrap() + 17;
        let without_registry =
            format!("{}{}", &EMBEDDED_DEFAULT[..start], &EMBEDDED_DEFAULT[end..]);
        let err = parse(&without_registry).unwrap_err().to_string();
        assert!(
            err.contains("registry: format = \"avro\" needs a schema registry"),
            "{err}"
        );
        let json = without_registry.replace("format = \"avro\"", "format = \"json\"");
        let avro_input = json.replace(
            "format = \"json\"\n\n[mapping]",
            "format = \"avro\"\n\n[mapping]",
        );
        assert_ne!(avro_input, json);
        let err = parse(&avro_input).unwrap_err().to_string();
        assert!(err.contains("source.format: Avro legacy values"), "{err}");
        let no_schemas = EMBEDDED_DEFAULT.replace(
            "schemas = [\"../../schemas/header.avsc\", \"../../schemas/cart\"]",
            "",
        );
        let err = parse(&no_schemas).unwrap_err().to_string();
        assert!(
            err.contains("ledger.schemas: format = \"avro\" needs"),
            "{err}"
        );
        let basic_half =
            EMBEDDED_DEFAULT.replace("# username = \"recast\"", "username = \"recast\"");
        let err = parse(&basic_half).unwrap_err().to_string();
        assert!(err.contains("needs both username and password"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let text = EMBEDDED_DEFAULT.replace("max_records = 2000", "max_records = \"many\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("batch.max_records"), "{err}");
    }

    #[test]
    fn linger_must_leave_room_in_the_transaction() {
        let text = EMBEDDED_DEFAULT.replace("linger = \"100ms\"", "linger = \"50s\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("batch.linger"), "{err}");
    }

    #[test]
    fn a_batch_runs_on_one_or_two_threads() {
        let threads = |n: &str| {
            let env = [("RECAST_BATCH__THREADS".to_owned(), n.to_owned())];
            Config::load(None, env).map(|c| c.raw.batch.threads.get())
        };
        assert_eq!(threads("2").unwrap(), 2);
        let err = threads("3").unwrap_err().to_string();
        assert!(
            err.contains("batch.threads") && err.contains("more than 2"),
            "{err}"
        );
        assert!(threads("0").is_err());
    }

    #[test]
    fn owned_librdkafka_properties_are_refused() {
        let text = format!(
            "{EMBEDDED_DEFAULT}\n[kafka.properties]\n\"isolation.level\" = \"read_uncommitted\"\n"
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("isolation.level"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = vec![
            ("RECAST_BATCH__MAX_RECORDS".to_owned(), "17".to_owned()),
            (
                "RECAST_KAFKA__BROKERS".to_owned(),
                "10.0.0.1:9093".to_owned(),
            ),
            ("RECAST_CACHE_DIR".to_owned(), "/ignored".to_owned()),
            (
                "RECAST_KAFKA__PROPERTIES__SASL_PASSWORD".to_owned(),
                "secret".to_owned(),
            ),
            (
                "RECAST_KAFKA__PROPERTIES__LINGER_MS".to_owned(),
                "20".to_owned(),
            ),
        ];
        let config = Config::parse(EMBEDDED_DEFAULT, Origin::Embedded, env).unwrap();
        assert_eq!(config.raw.batch.max_records.get(), 17);
        assert_eq!(config.raw.kafka.brokers, "10.0.0.1:9093");
        assert_eq!(config.raw.kafka.properties["sasl.password"], "secret");
        assert_eq!(config.raw.kafka.properties["linger.ms"], "20");
    }

    #[test]
    fn environment_strings_are_taken_verbatim_and_typed_keys_still_parse() {
        let var = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let env = vec![
            var("RECAST_KAFKA__PROPERTIES__SASL_PASSWORD", "1e5"),
            var("RECAST_KAFKA__PROPERTIES__SASL_USERNAME", "true"),
            var("RECAST_MAPPING__HASH_KEY", "0x1F0x1F0x1F0x1F0x1F"),
            var("RECAST_SOURCE__SYSTEM", "\"quoted\""),
            var("RECAST_BATCH__MAX_RECORDS", "17"),
            var("RECAST_HTTP__ENABLED", "false"),
            var(
                "RECAST_LEDGER__SCHEMAS",
                r#"["../../schemas/header.avsc", "../../schemas/cart"]"#,
            ),
        ];
        let config = Config::parse(EMBEDDED_DEFAULT, Origin::Embedded, env).unwrap();
        let properties = &config.raw.kafka.properties;
        assert_eq!(properties["sasl.password"], "1e5");
        assert_eq!(properties["sasl.username"], "true");
        assert_eq!(
            config.raw.mapping.hash_key.as_deref(),
            Some("0x1F0x1F0x1F0x1F0x1F")
        );
        assert_eq!(config.raw.source.system, "\"quoted\"");
        assert_eq!(config.raw.batch.max_records.get(), 17);
        assert!(!config.raw.http.enabled);
        assert_eq!(config.raw.ledger.schemas.len(), 2);
    }

    #[test]
    fn a_value_can_come_from_a_mounted_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("sasl-password");
        std::fs::write(&secret, "s3cret 1e5\n").unwrap();
        let env = vec![(
            "RECAST_KAFKA__PROPERTIES__SASL_PASSWORD_FILE".to_owned(),
            secret.display().to_string(),
        )];
        let config = Config::parse(EMBEDDED_DEFAULT, Origin::Embedded, env).unwrap();
        assert_eq!(config.raw.kafka.properties["sasl.password"], "s3cret 1e5");
        let missing = dir.path().join("missing").display().to_string();
        let env = vec![("RECAST_MAPPING__HASH_KEY_FILE".to_owned(), missing)];
        let err = Config::parse(EMBEDDED_DEFAULT, Origin::Embedded, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("RECAST_MAPPING__HASH_KEY_FILE"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_variable_or_its_line() {
        let env = vec![("RECAST_BATCH__MAX_RECORDS".to_owned(), "many".to_owned())];
        let err = Config::parse(EMBEDDED_DEFAULT, Origin::Embedded, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("RECAST_BATCH__MAX_RECORDS"), "{err}");
        assert!(err.contains("batch.max_records"), "{err}");
        // A bad key of the file keeps its line with an override set.
        let text = EMBEDDED_DEFAULT.replace("max_records = ", "max_records = \"x\" #");
        let line = text
            .lines()
            .position(|l| l.starts_with("max_records = "))
            .unwrap()
            + 1;
        let env = vec![("RECAST_KAFKA__BROKERS".to_owned(), "b:9092".to_owned())];
        let err = Config::parse(&text, Origin::Embedded, env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(":{line}: batch.max_records")),
            "{err}"
        );
    }

    #[test]
    fn unknown_environment_key_is_an_error() {
        let env = vec![("RECAST_BATCH__MAX_RECORD".to_owned(), "17".to_owned())];
        let err = Config::parse(EMBEDDED_DEFAULT, Origin::Embedded, env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch.max_record"), "{err}");
    }

    #[test]
    fn dedupe_fields_must_fit_the_key_kind() {
        let without = EMBEDDED_DEFAULT
            .split("[dedupe]")
            .next()
            .unwrap()
            .to_owned();
        let with = |table: &str| format!("{without}\n{table}\n");
        let err = parse(&with("[dedupe]\nkey = \"fields\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dedupe.fields"), "{err}");
        let err = parse(&with("[dedupe]\nkey = \"payload\"\nfields = [\"a\"]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dedupe.fields"), "{err}");
    }

    #[test]
    fn same_topic_twice_is_refused() {
        let text = EMBEDDED_DEFAULT.replace("ledger = \"ledger-cart\"", "ledger = \"legacy-cart\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("topics"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = EMBEDDED_DEFAULT
            .replace("ledger = \"ledger-cart\"", "ledger = \"legacy-cart\"")
            .replace("linger = \"100ms\"", "linger = \"50s\"")
            .replace("system = \"cart-service\"", "system = \" \"")
            .replace("fields = [\"requestId\"]", "fields = []");
        let err = parse(&text).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 4, "{err}");
        for key in ["source.system", "topics", "batch.linger", "dedupe.fields"] {
            assert!(
                lines.iter().any(|l| l.contains(&format!(": {key}: "))),
                "{key} in {err}"
            );
        }
    }
}
