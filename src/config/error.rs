//! What is wrong with a configuration, and where: the file (or the
//! embedded default), the line when known, the key.

use std::path::PathBuf;

use crate::avro::SchemaError;
use crate::pipeline::mapping::{FileError, line_at};

/// Where a configuration came from, for error messages.
#[derive(Debug, Clone)]
pub enum Origin {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Embedded => f.write_str("<embedded default>"),
        }
    }
}

/// The line of a configuration error, when known (shown as `:N`).
#[derive(Debug, Clone, Copy)]
pub struct LineRef(pub Option<usize>);

impl std::fmt::Display for LineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

/// A configuration that cannot be used. Always names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: Origin,
        source: std::io::Error,
    },
    #[error("{origin}{line}: {key}: {message}")]
    Parse {
        origin: Origin,
        /// `:N` when the line is known, else empty.
        line: LineRef,
        key: String,
        message: String,
    },
    #[error("{origin}: environment variable {var}: {message}")]
    Env {
        origin: Origin,
        var: String,
        message: String,
    },
    #[error("{origin}: {key}: {message}")]
    Invalid {
        origin: Origin,
        key: String,
        message: String,
    },
    /// Several problems, one per line: validation reports them all at once.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Several(Vec<ConfigError>),
    #[error(transparent)]
    Transform(#[from] FileError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
}

pub(super) fn parse_error(
    origin: &Origin,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    key: String,
    message: &str,
) -> ConfigError {
    let line = LineRef(
        span.filter(|_| !text.is_empty())
            .map(|s| line_at(text, s.start)),
    );
    let key = if key.is_empty() || key == "." {
        "(top level)".to_owned()
    } else {
        key
    };
    ConfigError::Parse {
        origin: origin.clone(),
        line,
        key,
        message: message.replace('\n', " "),
    }
}

impl ConfigError {
    /// `Ok` without problems, the problem when there is one, else all.
    pub(super) fn all(mut problems: Vec<ConfigError>) -> Result<(), ConfigError> {
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            _ => Err(ConfigError::Several(problems)),
        }
    }
}
