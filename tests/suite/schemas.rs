//! The JSON Schemas recast prints for editors (`recast config schema`,
//! `recast transforms schema`, `recast test --schema`) accept every file
//! the repository ships and refuse what recast refuses: an unknown key, a
//! value of the wrong type.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn printed(args: &[&str]) -> jsonschema::Validator {
    let out = Command::new(env!("CARGO_BIN_EXE_recast"))
        .args(args)
        // Schemas need no configuration: a broken one must not matter.
        .env("RECAST_BATCH__MAX_RECORDS", "not a number")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "recast {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let schema: Value = serde_json::from_slice(&out.stdout).expect("a JSON document");
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{args:?}"
    );
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// A TOML file as the JSON value an editor's TOML support checks.
fn as_json(text: &str) -> Value {
    serde_json::to_value(text.parse::<toml::Table>().unwrap()).unwrap()
}

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

fn assert_valid(validator: &jsonschema::Validator, name: &str, text: &str) {
    let errors: Vec<String> = validator
        .iter_errors(&as_json(text))
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}");
}

/// `text` with `from` replaced, which must be there.
fn edited(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the file");
    text.replace(from, to)
}

fn toml_files(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no TOML files in {dir}");
    files
}

#[test]
fn the_config_schema_takes_every_shipped_configuration() {
    let schema = printed(&["config", "schema"]);
    for path in [
        "deploy/local/recast.toml",
        "deploy/recast.example.toml",
        "deploy/kubernetes/base/recast.toml",
    ] {
        assert_valid(&schema, path, &repo(path));
    }
    assert_valid(&schema, "the embedded default", recast::EMBEDDED_DEFAULT);
    let wrong = edited(
        &repo("deploy/local/recast.toml"),
        "max_records =",
        "max_record =",
    );
    assert!(!schema.is_valid(&as_json(&wrong)), "a misspelt key passes");
    let wrong = repo("deploy/local/recast.toml")
        .replace("[kafka]\n", "[kafka]\nstatic_membership_ = true\n");
    assert!(!schema.is_valid(&as_json(&wrong)), "an unknown key passes");
    let wrong = edited(
        &repo("deploy/local/recast.toml"),
        "legacy = \"legacy-cart\"",
        "legacy = 7",
    );
    assert!(
        !schema.is_valid(&as_json(&wrong)),
        "a number for a topic passes"
    );
}

#[test]
fn the_transform_schema_takes_every_shipped_transform() {
    let schema = printed(&["transforms", "schema"]);
    for (path, text) in toml_files("transforms") {
        assert_valid(&schema, &path, &text);
    }
    let wrong = "[command]\nfield = \"type\"\n[command.events]\nADD = \"Added\"\n[[steps]]\nrenam = { a = \"b\" }\n";
    assert!(!schema.is_valid(&as_json(wrong)), "a misspelt step passes");
    let wrong = "[[steps]]\ncast = { amount = \"money\" }\n";
    assert!(
        !schema.is_valid(&as_json(wrong)),
        "an unknown cast type passes"
    );
}

#[test]
fn the_case_schema_takes_every_shipped_case_file() {
    let schema = printed(&["test", "--schema"]);
    for (path, text) in toml_files("transforms/tests") {
        assert_valid(&schema, &path, &text);
    }
    let wrong = "[[case]]\nname = \"x\"\nvalue = \"{}\"\nexpect = { filtred = true }\n";
    assert!(
        !schema.is_valid(&as_json(wrong)),
        "a misspelt expectation passes"
    );
    let wrong = "[[case]]\nvalue = \"{}\"\nexpect = { filtered = true }\n";
    assert!(
        !schema.is_valid(&as_json(wrong)),
        "a case without a name passes"
    );
}
