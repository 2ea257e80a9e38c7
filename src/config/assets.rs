//! The files a configuration names — transforms and schemas — read from
//! disk relative to the configuration file, or, for the embedded default,
//! from the binary itself.

use std::path::{Path, PathBuf};

use super::error::{ConfigError, Origin};
use super::file::MappingConfig;
use crate::avro::{SchemaError, SchemaFile};
use crate::pipeline::mapping::TransformFile;
use crate::registry::{RegistryConfig, TlsFiles};

/// The configuration the quickstart runs with: a local broker on port 9092
/// and the cart sample's mapping. Also the commented reference for every key.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../deploy/local/recast.toml");

/// Where the embedded default sits in the repository: its relative
/// transform paths resolve from here, as they would from the file.
const EMBEDDED_DIR: &str = "deploy/local";

/// The transform files the embedded default may name, compiled in so the
/// binary runs the quickstart from any directory.
const EMBEDDED_TRANSFORMS: &[(&str, &str)] = &[
    (
        "transforms/cart.toml",
        include_str!("../../transforms/cart.toml"),
    ),
    (
        "transforms/cart-amounts.rhai",
        include_str!("../../transforms/cart-amounts.rhai"),
    ),
];

/// The schema files the embedded default may name, compiled in like its
/// transforms.
const EMBEDDED_SCHEMAS: &[(&str, &str)] = &[
    (
        "schemas/header.avsc",
        include_str!("../../schemas/header.avsc"),
    ),
    (
        "schemas/cart/AddedToCart.avsc",
        include_str!("../../schemas/cart/AddedToCart.avsc"),
    ),
    (
        "schemas/cart/CheckedOut.avsc",
        include_str!("../../schemas/cart/CheckedOut.avsc"),
    ),
    (
        "schemas/cart/CouponApplied.avsc",
        include_str!("../../schemas/cart/CouponApplied.avsc"),
    ),
    (
        "schemas/cart/Customer.avsc",
        include_str!("../../schemas/cart/Customer.avsc"),
    ),
    (
        "schemas/cart/QuantityUpdated.avsc",
        include_str!("../../schemas/cart/QuantityUpdated.avsc"),
    ),
    (
        "schemas/cart/RemovedFromCart.avsc",
        include_str!("../../schemas/cart/RemovedFromCart.avsc"),
    ),
];

/// Reads the transform files of the chain: from disk, relative to the
/// configuration file, or from the binary for the embedded default.
pub(super) fn read_transforms(
    mapping: &MappingConfig,
    origin: &Origin,
) -> Result<Vec<TransformFile>, ConfigError> {
    mapping
        .transforms
        .iter()
        .map(|name| match origin {
            Origin::File(config) => {
                let path = config.parent().unwrap_or(Path::new("")).join(name);
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    origin: Origin::File(path.clone()),
                    source,
                })?;
                Ok(TransformFile {
                    path: path.display().to_string(),
                    text,
                })
            }
            Origin::Embedded => {
                let wanted = lexical(&Path::new(EMBEDDED_DIR).join(name));
                EMBEDDED_TRANSFORMS
                    .iter()
                    .find(|(path, _)| Path::new(path) == wanted)
                    .map(|(path, text)| TransformFile {
                        path: format!("{path} (embedded)"),
                        text: (*text).to_owned(),
                    })
                    .ok_or_else(|| ConfigError::Invalid {
                        origin: origin.clone(),
                        key: "mapping.transforms".into(),
                        message: format!(
                            "`{name}` is not a transform compiled into recast; pass --config to read files from disk"
                        ),
                    })
            }
        })
        .collect()
}

/// Reads the registry's CA and client certificate files: relative to the
/// configuration file, or to the working directory for the embedded
/// default (which names none; an override may).
pub(super) fn read_registry_tls(
    registry: &RegistryConfig,
    origin: &Origin,
) -> Result<TlsFiles, ConfigError> {
    let base = match origin {
        Origin::File(config) => config.parent().unwrap_or(Path::new("")),
        Origin::Embedded => Path::new(""),
    };
    TlsFiles::read(registry, base).map_err(|(key, message)| ConfigError::Invalid {
        origin: origin.clone(),
        key: format!("registry.{key}"),
        message,
    })
}

/// Reads the schema files of `ledger.schemas`: from disk, relative to the
/// configuration file, or from the binary for the embedded default.
pub(super) fn read_schemas(
    names: &[String],
    origin: &Origin,
) -> Result<Vec<SchemaFile>, ConfigError> {
    match origin {
        Origin::File(config) => Ok(read_schema_files(
            config.parent().unwrap_or(Path::new("")),
            names,
        )?),
        Origin::Embedded => {
            let mut files = Vec::new();
            for name in names {
                let wanted = lexical(&Path::new(EMBEDDED_DIR).join(name));
                let before = files.len();
                files.extend(
                    EMBEDDED_SCHEMAS
                        .iter()
                        .filter(|(path, _)| {
                            let path = Path::new(path);
                            path == wanted || path.parent() == Some(&wanted)
                        })
                        .map(|(path, text)| SchemaFile {
                            path: format!("{path} (embedded)"),
                            text: (*text).to_owned(),
                        }),
                );
                if files.len() == before {
                    return Err(ConfigError::Invalid {
                        origin: origin.clone(),
                        key: "ledger.schemas".into(),
                        message: format!(
                            "`{name}` is not a schema compiled into recast; pass --config to read files from disk"
                        ),
                    });
                }
            }
            Ok(files)
        }
    }
}

/// `path` with `.` and `..` resolved without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Reads schema files: each of `names`, relative to `base`, is an `.avsc`
/// file or a directory whose `*.avsc` files are read in name order.
pub(crate) fn read_schema_files(
    base: &Path,
    names: &[String],
) -> Result<Vec<SchemaFile>, SchemaError> {
    let mut files = Vec::new();
    for name in names {
        let path = base.join(name);
        let error = |path: &Path, e: std::io::Error| SchemaError {
            file: path.display().to_string(),
            message: format!("cannot read: {e}"),
        };
        let paths = if path.is_dir() {
            let mut found = Vec::new();
            for entry in std::fs::read_dir(&path).map_err(|e| error(&path, e))? {
                let entry = entry.map_err(|e| error(&path, e))?.path();
                if entry.extension().is_some_and(|e| e == "avsc") {
                    found.push(entry);
                }
            }
            if found.is_empty() {
                return Err(SchemaError {
                    file: path.display().to_string(),
                    message: "holds no schema files (*.avsc)".into(),
                });
            }
            found.sort();
            found
        } else {
            vec![path]
        };
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| error(&path, e))?;
            files.push(SchemaFile {
                path: path.display().to_string(),
                text,
            });
        }
    }
    Ok(files)
}
