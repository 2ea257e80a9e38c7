//! Reading the ledger's schema files from disk (`ledger.schemas`, and the
//! schemas a golden case file names): the codec parses text, this finds it.

use std::path::Path;

use crate::avro::{SchemaError, SchemaFile};

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
