//! `recast check`: everything that can be validated before recast runs.
//! Loading the configuration has already compiled the transforms and
//! parsed the schemas; this adds what spans them: every event type the
//! mapping names has a schema, every golden case's events fit theirs, and,
//! with a registry, every schema is compatible with its subject's latest
//! version.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::config::Config;
use crate::registry::{Compatibility, Registry};
use crate::tools::golden;

/// What `recast check` found: lines describing what was checked, and one
/// line per problem.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub text: String,
    pub problems: Vec<String>,
}

/// Checks `config`, the golden `case_files` and, when given, the schemas
/// against `registry`.
pub fn check(config: &Config, case_files: &[PathBuf], registry: Option<&Registry>) -> CheckReport {
    let mut report = CheckReport::default();
    let _ = writeln!(report.text, "{}: configuration is valid", config.origin);
    for file in &config.transforms {
        let _ = writeln!(report.text, "  transform {}", file.path);
    }
    let _ = writeln!(
        report.text,
        "  mapping version {}",
        config.mapping.version()
    );
    if let Some(schemas) = config.ledger.schemas() {
        for schema in schemas.iter() {
            let _ = writeln!(
                report.text,
                "  schema {} ({})",
                schema.full_name(),
                schema.file
            );
        }
        for event_type in config.mapping.named_event_types() {
            if schemas.get(event_type).is_none() {
                report.problems.push(format!(
                    "event type `{event_type}` is named by the mapping but has no schema in ledger.schemas"
                ));
            }
        }
    }
    if !case_files.is_empty() {
        match golden::run(config, case_files) {
            Ok(cases) => {
                let _ = writeln!(
                    report.text,
                    "  {} golden cases run",
                    cases.passed + cases.failed
                );
                report.problems.extend(cases.misfits);
            }
            Err(e) => report.problems.push(e.to_string()),
        }
    }
    if let (Some(registry), Some(schemas)) = (registry, config.ledger.schemas()) {
        let ledger = &config.raw.topics.ledger;
        for schema in schemas.iter() {
            let subject = schema.subject(ledger);
            match registry.check_compatibility(&subject, &schema.text) {
                Ok(Compatibility::Compatible) => {
                    let _ = writeln!(report.text, "  {subject}: compatible");
                }
                Ok(Compatibility::NewSubject) => {
                    let _ = writeln!(report.text, "  {subject}: new subject");
                }
                Ok(Compatibility::Incompatible(reasons)) => report.problems.push(format!(
                    "{}: incompatible with the latest version of {subject}: {}",
                    schema.file,
                    reasons.join("; ")
                )),
                Err(e) => {
                    report.problems.push(e.to_string());
                    break;
                }
            }
        }
    }
    report
}
