//! How `recast run` fails: a bad configuration, an unreachable broker, a
//! missing topic, and a fenced instance each end the process with a clear
//! message and a non-zero exit code, never a panic or a hang.

use crate::common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{Scenario, brokers};

fn recast(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recast"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_bad_configuration_exits_2_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recast.toml");
    let text = recast::EMBEDDED_DEFAULT.replace("linger = \"100ms\"", "linger = \"soon\"");
    std::fs::write(&path, text).unwrap();
    let output = recast(&["--config", path.to_str().unwrap(), "run"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("recast.toml:"), "{err}");
    assert!(err.contains("batch.linger"), "{err}");

    let output = recast(&["run"], &[("RECAST_KAFKA__BROKRS", "x:1")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("kafka.brokrs"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_accepts_the_shipped_configurations() {
    // The local one against a registry; the production example offline,
    // with its secrets from the environment.
    let secrets = [
        ("RECAST_MAPPING__HASH_KEY", "a-secret-of-at-least-16-bytes"),
        ("RECAST_REGISTRY__PASSWORD", "registry-password"),
    ];
    let local = [("RECAST_REGISTRY__URL", common::registry())];
    for (path, env, args) in [
        ("deploy/local/recast.toml", &local[..], &["check"][..]),
        (
            "deploy/recast.example.toml",
            &secrets[..],
            &["check", "--offline"][..],
        ),
    ] {
        let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
        let output = recast(&[&["--config", &full][..], args].concat(), env);
        assert!(output.status.success(), "{path}: {}", stderr(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("transforms/cart.toml"), "{path}: {stdout}");
        assert!(
            stdout.contains("schema shop.cart.AddedToCart"),
            "{path}: {stdout}"
        );
        assert!(stdout.contains("golden cases run"), "{path}: {stdout}");
    }
    // Against the registry, each subject is named with its state.
    let full = format!("{}/deploy/local/recast.toml", env!("CARGO_MANIFEST_DIR"));
    let output = recast(&["--config", &full, "check"], &local);
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains("ledger-cart-shop.cart.CheckedOut: new subject")
    );
    // Without the hash key, `hash` steps cannot run: refused, naming the step's line.
    let full = format!("{}/deploy/recast.example.toml", env!("CARGO_MANIFEST_DIR"));
    let output = recast(&["--config", &full, "check", "--offline"], &secrets[1..]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("transforms/cart.toml:34: `hash` needs a secret key"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_unreachable_broker_exits_1_within_the_connect_timeout() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let brokers = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let output = recast(
        &["run"],
        &[
            ("RECAST_KAFKA__BROKERS", &brokers),
            ("RECAST_KAFKA__CONNECT_TIMEOUT", "3s"),
            ("RECAST_HTTP__LISTEN", "127.0.0.1:0"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let err = stderr(&output);
    assert!(
        err.contains(&format!("cannot reach the brokers {brokers} within 3s")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_topic_exits_1_naming_it() {
    let s = Scenario::new("missing", 1);
    let config = s.config(&[]);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&s.ledger, "no-such-ledger");
    std::fs::write(&config, text).unwrap();
    let output = recast(&["--config", config.to_str().unwrap(), "run"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("topic `no-such-ledger` (topics.ledger) does not exist"),
        "{err}"
    );
    let _ = brokers();
}

#[test]
fn a_fenced_instance_stops_with_a_clear_message() {
    let s = Scenario::new("fenced", 1);
    let config = s.config(&[("batch.max_records", "50")]);
    let records = common::generate(400, "fenced-a");
    s.produce(&records.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>());
    let mut first = s.spawn_worker(&config, "same", &[]);
    assert!(
        s.wait_caught_up(1, Duration::from_secs(120)),
        "{}",
        s.worker_log("same")
    );

    // A second process with the same instance id initialises the same
    // transactional.id: the first is fenced at its next transaction.
    let log = s.dir.join("worker-same-2.log");
    let mut second = Command::new(env!("CARGO_BIN_EXE_recast"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("RECAST_KAFKA__INSTANCE_ID", "same")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let more = common::generate(400, "fenced-b");
    s.produce(&more.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>());

    let exited = common::wait_until(Duration::from_secs(60), || {
        first.try_wait().unwrap().is_some()
    });
    assert!(
        exited,
        "the fenced instance kept running: {}",
        s.worker_log("same")
    );
    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let first_log = s.worker_log("same");
    assert!(first_log.contains("transactional.id"), "{first_log}");
    assert!(
        first_log.contains("fenced") || first_log.contains("Fenced"),
        "{first_log}"
    );

    // The survivor carries on, and nothing is lost or doubled.
    assert!(
        s.wait_caught_up(1, Duration::from_secs(120)),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(common::terminate(&mut second), Some(0));
    let all: Vec<_> = records
        .iter()
        .chain(&more)
        .map(|(_, e)| e.clone())
        .collect();
    common::assert_exactly_once(&s, &all);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_recast"))
        .args(["--log-format", "json", "check", "--offline"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(output.status.success());
    let err = stderr(&output);
    assert!(!err.is_empty());
    for line in err.lines() {
        let object: serde_json::Value = serde_json::from_str(line).expect(line);
        assert!(object["level"].is_string(), "{line}");
    }
}

#[test]
fn load_reports_the_records_it_could_not_write() {
    let s = Scenario::new("load", 1);
    let config = s.config(&[]);
    // The middle record is over the producer's message.max.bytes (1 MB by
    // default): refused; the others are written.
    let big = "x".repeat(2 * 1024 * 1024);
    let lines = [
        r#"{"key": "a", "value": "{\"n\": 1}"}"#.to_owned(),
        format!(r#"{{"key": "b", "value": "{big}"}}"#),
        r#"{"key": "c", "value": "{\"n\": 3}"}"#.to_owned(),
    ];
    let input = s.dir.join("load-input.jsonl");
    std::fs::write(&input, lines.join("\n")).unwrap();
    let output = recast(
        &[
            "--config",
            config.to_str().unwrap(),
            "load",
            "--input",
            input.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("1 of 3 records were not written"), "{err}");
    assert_eq!(s.legacy_end_offsets().iter().sum::<i64>(), 2);
}
