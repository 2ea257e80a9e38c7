//! The schema registry at the edges of a run: `recast check` and start-up
//! both catch a schema change the subject's compatibility rules refuse,
//! and a compatible change passes both.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use recast::Config;

use common::{Scenario, registry, terminate, wait_until};

fn recast(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recast"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// A copy of the shipped header and cart schemas with `AddedToCart`'s
/// fields extended by `field` (JSON); returns the `ledger.schemas` value.
fn schemas_with(dir: &Path, field: &str) -> String {
    let cart = dir.join("cart");
    std::fs::create_dir_all(&cart).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    std::fs::copy(shipped.join("header.avsc"), dir.join("header.avsc")).unwrap();
    for entry in std::fs::read_dir(shipped.join("cart")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.ends_with("AddedToCart.avsc") {
            let end = text.rfind(']').unwrap();
            text.insert_str(end, &format!(",\n    {field}\n  "));
        }
        std::fs::write(cart.join(path.file_name().unwrap()), text).unwrap();
    }
    format!(
        "[{:?}, {:?}]",
        dir.join("header.avsc").display().to_string(),
        cart.display().to_string()
    )
}

/// Registers the shipped schemas for the scenario's ledger, as a first
/// deployment would have.
fn register_shipped(config: &Path) {
    let config = Config::load(Some(config), Vec::new()).unwrap();
    config
        .registry()
        .unwrap()
        .register_all(config.ledger.schemas().unwrap(), &config.raw.topics.ledger)
        .unwrap();
}

#[test]
fn an_incompatible_schema_change_is_caught_by_check_and_at_start_up() {
    let s = Scenario::new("incompatible", 1);
    register_shipped(&s.config(&[]));

    // A new field without a default: data already in the ledger lacks it.
    let breaking = schemas_with(
        &s.dir.join("breaking"),
        r#"{"name": "channel", "type": "string"}"#,
    );
    let config = s.config(&[("ledger.schemas", &breaking)]);
    let output = recast(&config, &["check"]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let subject = format!("{}-shop.cart.AddedToCart", s.ledger);
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect();
    let incompatible: Vec<&&str> = problems
        .iter()
        .filter(|p| p.contains("incompatible"))
        .collect();
    assert_eq!(incompatible.len(), 1, "{stdout}");
    assert!(
        incompatible[0].contains(&format!(
            "AddedToCart.avsc: incompatible with the latest version of {subject}"
        )) && incompatible[0]
            .contains("Field 'channel' in reader schema must have a default value"),
        "{}",
        incompatible[0]
    );
    // The golden cases of AddedToCart no longer fit the schema either.
    assert!(
        problems.iter().any(|p| p.contains(
            "case \"`ADD_TO_CART` becomes AddedToCart\": shop.cart.AddedToCart: field `channel`: missing"
        )),
        "{stdout}"
    );

    let mut worker = s.spawn_worker(&config, "w-breaking", &[]);
    assert!(
        wait_until(Duration::from_secs(60), || matches!(
            worker.try_wait(),
            Ok(Some(_))
        )),
        "the worker started with an incompatible schema"
    );
    assert_eq!(worker.wait().unwrap().code(), Some(1));
    let log = s.worker_log("w-breaking");
    assert!(
        log.contains(&format!("cannot start: {subject}: schema is incompatible")),
        "{log}"
    );
}

#[test]
fn a_compatible_schema_change_passes_check_and_is_registered_at_start_up() {
    let s = Scenario::new("compatible", 1);
    register_shipped(&s.config(&[]));
    let evolved = schemas_with(
        &s.dir.join("evolved"),
        r#"{"name": "channel", "type": ["null", "string"], "default": null}"#,
    );
    let config = s.config(&[("ledger.schemas", &evolved)]);
    let output = recast(&config, &["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("{}-shop.cart.AddedToCart: compatible", s.ledger)),
        "{stdout}"
    );

    let mut worker = s.spawn_worker(&config, "w-evolved", &[]);
    let subject_versions = format!(
        "{}/subjects/{}-shop.cart.AddedToCart/versions",
        registry(),
        s.ledger
    );
    let versions = || {
        ureq::get(&subject_versions)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(60), || versions() == "[1,2]"),
        "versions: {} {}",
        versions(),
        s.worker_log("w-evolved")
    );
    assert_eq!(terminate(&mut worker), Some(0));
}
