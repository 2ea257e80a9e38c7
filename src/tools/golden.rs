//! `recast test`: golden cases next to the transforms. A case file
//! (`transforms/tests/*.toml`) lists legacy records and what must become
//! of each; its cases run in order through one pipeline and one dedupe
//! window, so a case can be the retry of an earlier one.
//!
//! `hash` steps use [`TEST_HASH_KEY`] here, not the deployment's secret,
//! so expected hashes are the same on every machine and the secret never
//! needs to be where the cases are.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::avro::{LedgerSchemas, SchemaError};
use crate::config::{Config, Origin};
use crate::config::{LedgerOutput, read_schema_files};
use crate::pipeline::mapping::{FileError, Mapping, TransformFile};
use crate::pipeline::{Counts, RecordOutcome, Stage};
use crate::tools::legacy_file::LegacyLine;
use crate::tools::offline::Offline;

/// The key `hash` steps use under `recast test`.
pub const TEST_HASH_KEY: &str = "recast-golden-test-key";

/// `recorded_at` of every event under test: cases must not depend on it.
const RECORDED_AT_MS: i64 = 0;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    /// The chain these cases test, relative to the case file. Default: the
    /// configuration's `mapping.transforms`.
    #[serde(default)]
    transforms: Option<Vec<String>>,
    /// The schemas their events must fit, relative to the case file.
    /// Default: the configuration's `ledger.schemas`.
    #[serde(default)]
    schemas: Option<Vec<String>>,
    case: Vec<Case>,
}

/// One legacy record and what must become of it.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    key: Option<String>,
    /// The raw value (a string, so malformed values can be tested), or a
    /// table written as JSON.
    #[schemars(with = "Option<serde_json::Value>")]
    value: Option<toml::Value>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[schemars(with = "ExpectSpec")]
    expect: Expect,
}

/// What must become of a case's record.
#[derive(Debug, Deserialize)]
#[serde(try_from = "ExpectSpec")]
enum Expect {
    Events(Vec<ExpectedEvent>),
    Filtered,
    Duplicate,
    Rejected(ExpectedRejection),
}

/// `expect` as written: exactly one of the fields.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExpectSpec {
    #[serde(default)]
    events: Option<Vec<ExpectedEvent>>,
    #[serde(default)]
    filtered: bool,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    rejected: Option<ExpectedRejection>,
}

/// The fields given are compared; `payload`, when given, whole.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExpectedEvent {
    event_type: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    occurred_at: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    payload: Option<toml::Table>,
}

impl TryFrom<ExpectSpec> for Expect {
    type Error = &'static str;

    fn try_from(spec: ExpectSpec) -> Result<Self, Self::Error> {
        match spec {
            ExpectSpec {
                events: Some(events),
                filtered: false,
                duplicate: false,
                rejected: None,
            } => Ok(Self::Events(events)),
            ExpectSpec {
                events: None,
                filtered: true,
                duplicate: false,
                rejected: None,
            } => Ok(Self::Filtered),
            ExpectSpec {
                events: None,
                filtered: false,
                duplicate: true,
                rejected: None,
            } => Ok(Self::Duplicate),
            ExpectSpec {
                events: None,
                filtered: false,
                duplicate: false,
                rejected: Some(rejected),
            } => Ok(Self::Rejected(rejected)),
            _ => Err(
                "`expect` needs exactly one of `events`, `filtered = true`, `duplicate = true`, `rejected`",
            ),
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ExpectedRejection {
    stage: Stage,
    reason: String,
}

/// What `recast test` found.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    /// What became of the cases' records, counted as the worker counts.
    pub counts: Counts,
    /// The readable report: a line per case, the differences of failures,
    /// derived event types.
    pub text: String,
    /// The failed cases, `file: name`.
    pub failures: Vec<String>,
    /// Cases expecting events that came out not fitting their schemas:
    /// `file: case "name": reason`, for `recast check`.
    pub misfits: Vec<String>,
}

/// The JSON Schema of a golden case file (`recast test --schema`).
pub fn case_file_schema() -> serde_json::Value {
    crate::json::schema_of::<CaseFile>("recast golden cases")
}

/// Where a configuration's golden cases are: `tests/` beside its first
/// transform file, or the shipped `transforms/tests` for the embedded
/// default.
pub fn default_cases_dir(config: &Config) -> PathBuf {
    match (&config.origin, config.transforms.first()) {
        (Origin::File(_), Some(first)) => Path::new(&first.path)
            .parent()
            .unwrap_or(Path::new(""))
            .join("tests"),
        _ => PathBuf::from("transforms/tests"),
    }
}

/// The case files at `paths` (files, or directories of `*.toml`), sorted.
pub fn case_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FileError> {
    let mut files = Vec::new();
    for path in paths {
        let unreadable = |e: std::io::Error| FileError {
            file: path.display().to_string(),
            line: None,
            message: e.to_string(),
        };
        if path.is_dir() {
            for entry in std::fs::read_dir(path).map_err(unreadable)? {
                let entry = entry.map_err(unreadable)?.path();
                if entry.extension().is_some_and(|e| e == "toml") {
                    files.push(entry);
                }
            }
        } else {
            std::fs::metadata(path).map_err(unreadable)?;
            files.push(path.clone());
        }
    }
    files.sort();
    Ok(files)
}

/// Runs every case of `files` against the mapping each names, or the
/// configuration's.
pub fn run(config: &Config, files: &[PathBuf]) -> Result<Report, FileError> {
    let mut report = Report::default();
    for file in files {
        run_file(config, file, &mut report)?;
    }
    Ok(report)
}

/// `config` with the mapping of the case file's `transforms` (or its
/// own), compiled with the test hash key, and its `schemas` (or its own).
fn config_under_test(
    config: &Config,
    case_file: &Path,
    cases: &CaseFile,
) -> Result<Config, FileError> {
    let mut config = config.clone();
    let dir = case_file.parent().unwrap_or(Path::new(""));
    if let Some(names) = &cases.schemas {
        let as_file_error = |e: SchemaError| FileError {
            file: e.file,
            line: None,
            message: e.message,
        };
        let files = read_schema_files(dir, names).map_err(as_file_error)?;
        // Golden cases run offline: the ledger is JSON, checked against
        // the case file's schemas.
        let schemas = LedgerSchemas::load(&files).map_err(as_file_error)?;
        config.ledger = LedgerOutput::Json {
            schemas: Some(schemas),
        };
    }
    if let Some(names) = &cases.transforms {
        config.transforms = names
            .iter()
            .map(|name| {
                let path = dir.join(name);
                std::fs::read_to_string(&path)
                    .map(|text| TransformFile {
                        path: path.display().to_string(),
                        text,
                    })
                    .map_err(|e| FileError {
                        file: path.display().to_string(),
                        line: None,
                        message: e.to_string(),
                    })
            })
            .collect::<Result<_, _>>()?;
    }
    config.mapping =
        Mapping::compile(&config.transforms, Some(TEST_HASH_KEY), &config.raw.scripts)?;
    Ok(config)
}

fn run_file(config: &Config, path: &Path, report: &mut Report) -> Result<(), FileError> {
    let name = path.display().to_string();
    let error = |line: Option<usize>, message: String| FileError {
        file: name.clone(),
        line,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(None, e.to_string()))?;
    run_text(config, path, &text, report)
}

/// Runs the cases of `text`, a case file at `path` (its `transforms` and
/// `schemas` are read relative to it).
pub fn run_text(
    config: &Config,
    path: &Path,
    text: &str,
    report: &mut Report,
) -> Result<(), FileError> {
    let name = path.display().to_string();
    let error = |line: Option<usize>, message: String| FileError {
        file: name.clone(),
        line,
        message,
    };
    let cases: CaseFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| crate::pipeline::mapping::line_at(text, s.start));
        error(line, e.message().to_owned())
    })?;
    let config = config_under_test(config, path, &cases)?;
    let mut offline = Offline::new(&config);
    for case in &cases.case {
        let line = LegacyLine {
            key: case.key.clone(),
            value: case.value.as_ref().map(|v| match v {
                toml::Value::String(s) => s.clone(),
                other => crate::pipeline::mapping::toml_to_json(other.clone()).to_string(),
            }),
            headers: case.headers.clone(),
            timestamp: case.timestamp,
        };
        let outcome = offline.run(&line, RECORDED_AT_MS);
        report.counts.count(&outcome);
        if let (RecordOutcome::Rejected(r), Expect::Events(_)) = (&outcome, &case.expect)
            && r.stage == Stage::Schema
        {
            report
                .misfits
                .push(format!("{name}: case \"{}\": {}", case.name, r.reason));
        }
        let problems = compare(&case.expect, &outcome);
        if problems.is_empty() {
            report.passed += 1;
            let _ = writeln!(report.text, "ok     {name}: {}", case.name);
        } else {
            report.failed += 1;
            report.failures.push(format!("{name}: {}", case.name));
            let _ = writeln!(report.text, "FAILED {name}: {}", case.name);
            for problem in problems {
                let _ = writeln!(report.text, "         {problem}");
            }
        }
        if let RecordOutcome::Events(events) = &outcome {
            for event in events {
                if let Some(command) = &event.derived_from {
                    let _ = writeln!(
                        report.text,
                        "         derived: command `{command}` → event type `{}`",
                        event.event_type
                    );
                }
            }
        }
    }
    Ok(())
}

/// The differences between what a case expects and what happened.
fn compare(expect: &Expect, outcome: &RecordOutcome) -> Vec<String> {
    let mismatch = |wanted: &str| vec![format!("expected {wanted}, got {}", describe(outcome))];
    match (expect, outcome) {
        (Expect::Filtered, RecordOutcome::Filtered)
        | (Expect::Duplicate, RecordOutcome::Duplicate { .. }) => Vec::new(),
        (Expect::Filtered, _) => mismatch("filtered"),
        (Expect::Duplicate, _) => mismatch("a duplicate"),
        (Expect::Rejected(wanted), RecordOutcome::Rejected(got)) => {
            let mut problems = Vec::new();
            if wanted.stage != got.stage {
                problems.push(format!(
                    "rejection stage: expected `{}`, got `{}`",
                    wanted.stage.as_str(),
                    got.stage.as_str()
                ));
            }
            if wanted.reason != got.reason {
                problems.push(format!(
                    "rejection reason: expected {:?}, got {:?}",
                    wanted.reason, got.reason
                ));
            }
            problems
        }
        (Expect::Rejected(_), _) => mismatch("a rejection"),
        (Expect::Events(wanted), RecordOutcome::Events(got)) => compare_events(wanted, got),
        (Expect::Events(_), _) => mismatch("events"),
    }
}

fn compare_events(wanted: &[ExpectedEvent], got: &[crate::pipeline::LedgerEvent]) -> Vec<String> {
    let mut problems = Vec::new();
    if wanted.len() != got.len() {
        problems.push(format!(
            "expected {} event(s), got {}: {}",
            wanted.len(),
            got.len(),
            got.iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return problems;
    }
    for (i, (wanted, got)) in wanted.iter().zip(got).enumerate() {
        let event: Value = serde_json::from_slice(&got.value).expect("recast encodes JSON");
        let header = &event["header"];
        let mut field = |name: &str, wanted: Option<&str>, got: Option<&str>| {
            if let Some(wanted) = wanted
                && Some(wanted) != got
            {
                problems.push(format!(
                    "events[{i}].{name}: expected {wanted:?}, got {}",
                    got.map_or("nothing".into(), |g| format!("{g:?}"))
                ));
            }
        };
        field(
            "event_type",
            Some(&wanted.event_type),
            Some(&got.event_type),
        );
        field("key", wanted.key.as_deref(), Some(&got.key));
        field(
            "occurred_at",
            wanted.occurred_at.as_deref(),
            header["occurred_at"].as_str(),
        );
        field(
            "correlation_id",
            wanted.correlation_id.as_deref(),
            header["correlation_id"].as_str(),
        );
        if let Some(payload) = &wanted.payload {
            let wanted =
                crate::pipeline::mapping::toml_to_json(toml::Value::Table(payload.clone()));
            diff(
                &format!("events[{i}].payload"),
                &wanted,
                &event["payload"],
                &mut problems,
            );
        }
    }
    problems
}

/// Field-level differences between two JSON values, one line each.
fn diff(path: &str, wanted: &Value, got: &Value, out: &mut Vec<String>) {
    match (wanted, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (key, w_value) in w {
                let child = format!("{path}.{key}");
                match g.get(key) {
                    Some(g_value) => diff(&child, w_value, g_value, out),
                    None => out.push(format!("{child}: expected {w_value}, missing")),
                }
            }
            for (key, g_value) in g {
                if !w.contains_key(key) {
                    out.push(format!("{path}.{key}: not expected, got {g_value}"));
                }
            }
        }
        _ if wanted != got => out.push(format!("{path}: expected {wanted}, got {got}")),
        _ => {}
    }
}

fn describe(outcome: &RecordOutcome) -> String {
    match outcome {
        RecordOutcome::Events(events) => format!(
            "events: {}",
            events
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        RecordOutcome::Duplicate { of_offset } => {
            format!("a duplicate (of the record at offset {of_offset})")
        }
        RecordOutcome::Filtered => "filtered".into(),
        RecordOutcome::Rejected(r) => {
            format!("rejected at {}: {}", r.stage.as_str(), r.reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_cases(text: &str) -> Result<Report, FileError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cases.toml");
        std::fs::write(&path, text).unwrap();
        run(&Config::load(None, Vec::new()).unwrap(), &[path])
    }

    #[test]
    fn an_expectation_is_exactly_one_outcome() {
        let err = run_cases(
            "[[case]]\nname = \"two\"\nvalue = \"{}\"\n[case.expect]\nfiltered = true\nduplicate = true\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("needs exactly one of"), "{err}");
        assert_eq!(err.line, Some(4), "{err}");
    }

    #[test]
    fn a_rejection_names_a_known_stage() {
        let err = run_cases(
            "[[case]]\nname = \"s\"\nvalue = \"{}\"\nexpect.rejected = { stage = \"parsing\", reason = \"r\" }\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `parsing`"),
            "{err}"
        );
        let report = run_cases(
            "[[case]]\nname = \"s\"\nvalue = \"{}\"\nexpect.rejected = { stage = \"mapping\", reason = \"no command at `command`\" }\n",
        )
        .unwrap();
        assert_eq!((report.passed, report.failed), (1, 0), "{}", report.text);
    }
}
