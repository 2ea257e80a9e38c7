//! Changing the mapping without a restart: `SIGHUP` has the worker read
//! its mapping again, check it off the record path and swap it in between
//! two transactions; a mapping that fails a check is refused while the
//! running one goes on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::Value;

use crate::common::{
    Expect, Scenario, assert_exactly_once, event_json, generate, generate_with_retries, kill_hard,
    lines, terminate, wait_until,
};

const CATCH_UP: Duration = Duration::from_secs(240);
const SWAPPED: &str = "mapping swapped";
const REFUSED: &str = "new mapping refused";

/// The scenario's own copy of the shipped cart mapping and its schemas,
/// for the test to edit; with the shipped golden cases when `with_cases`.
fn own_mapping(s: &Scenario, with_cases: bool) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = s.dir.join("mapping");
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    for file in ["cart.toml", "cart-amounts.rhai"] {
        std::fs::copy(root.join("transforms").join(file), dir.join(file)).unwrap();
    }
    for entry in std::fs::read_dir(root.join("schemas/cart")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.join("schemas").join(path.file_name().unwrap())).unwrap();
    }
    if with_cases {
        std::fs::create_dir_all(dir.join("tests")).unwrap();
        std::fs::copy(
            root.join("transforms/tests/cart.toml"),
            dir.join("tests/cart.toml"),
        )
        .unwrap();
    }
    dir
}

/// A configuration running the mapping in `dir`.
fn config(s: &Scenario, dir: &Path, batch: &str) -> PathBuf {
    config_with(s, dir, batch, &[])
}

fn config_with(s: &Scenario, dir: &Path, batch: &str, extra: &[(&str, &str)]) -> PathBuf {
    let header = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/header.avsc");
    // TOML strings, quoted as Rust quotes them.
    let quoted = |path: PathBuf| format!("{:?}", path.display().to_string());
    let transforms = format!(
        "[{}, {}]",
        quoted(dir.join("cart.toml")),
        quoted(dir.join("cart-amounts.rhai"))
    );
    let schemas = format!("[{}, {}]", quoted(header), quoted(dir.join("schemas")));
    let mut overrides = vec![
        ("mapping.transforms", transforms.as_str()),
        ("ledger.schemas", schemas.as_str()),
        ("batch.max_records", batch),
    ];
    overrides.extend_from_slice(extra);
    s.config(&overrides)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// The next version of the mapping: `ADD_TO_CART` becomes
/// `ItemAddedToCart` (with a schema of its own), and the product is hashed
/// like the e-mail address.
fn next_version(dir: &Path) {
    let mapping = dir.join("cart.toml");
    edit(
        &mapping,
        r#"ADD_TO_CART = "AddedToCart""#,
        r#"ADD_TO_CART = "ItemAddedToCart""#,
    );
    edit(
        &mapping,
        r#"hash = ["customer.email"]"#,
        r#"hash = ["customer.email", "sku"]"#,
    );
    let schema = std::fs::read_to_string(dir.join("schemas/AddedToCart.avsc")).unwrap();
    std::fs::write(
        dir.join("schemas/ItemAddedToCart.avsc"),
        schema.replace(r#""name": "AddedToCart""#, r#""name": "ItemAddedToCart""#),
    )
    .unwrap();
}

fn hang_up(worker: &Child) {
    Command::new("kill")
        .args(["-HUP", &worker.id().to_string()])
        .status()
        .unwrap();
}

/// Waits until `line` is in the worker's log `count` times.
fn wait_for_log(s: &Scenario, instance: &str, line: &str, count: usize) {
    assert!(
        wait_until(Duration::from_secs(60), || {
            s.worker_log(instance).matches(line).count() >= count
        }),
        "`{line}` not logged {count} times: {}",
        s.worker_log(instance)
    );
}

/// The mapping version the worker started with, from its log.
fn started_version(log: &str) -> String {
    let line = log
        .lines()
        .find(|l| l.contains("worker started"))
        .expect("worker started");
    let at = line.find("mapping_version=").expect("mapping_version") + "mapping_version=".len();
    line[at..]
        .trim_matches('"')
        .split(['"', ' '])
        .next()
        .unwrap()
        .to_owned()
}

fn is_hash(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|v| v.len() == 64 && v.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Reloaded under live traffic: each event has the shape of the version in
/// its header, each partition switches version once (every record before
/// the switch under the old mapping, every one after under the new), every
/// request lands once, and the group never rebalanced.
#[test]
fn a_reload_swaps_the_mapping_between_two_transactions_without_a_rebalance() {
    let s = Scenario::new("reload", 2);
    let dir = own_mapping(&s, false);
    let config = config(&s, &dir, "200");
    let before = generate(4_000, "before");
    s.produce(&lines(&before));
    let mut worker = s.spawn_worker(&config, "w1", &[]);
    assert!(
        wait_until(CATCH_UP, || s.committed_offsets(2).iter().sum::<i64>() > 0),
        "{}",
        s.worker_log("w1")
    );
    next_version(&dir);
    hang_up(&worker);
    wait_for_log(&s, "w1", SWAPPED, 1);
    let after = generate(1_000, "after");
    s.produce(&lines(&after));
    assert!(s.wait_caught_up(2, CATCH_UP), "{}", s.worker_log("w1"));
    assert_eq!(terminate(&mut worker), Some(0), "{}", s.worker_log("w1"));
    let log = s.worker_log("w1");
    assert_eq!(
        log.matches("partitions assigned").count(),
        1,
        "a rebalance: {log}"
    );
    assert!(!log.contains(REFUSED), "{log}");
    let old = started_version(&log);

    let ledger = s.ledger();
    let mut requests = BTreeSet::new();
    // Per legacy partition: the last offset under the old mapping and the
    // first under the new.
    let mut last_old = [-1i64; 2];
    let mut first_new = [i64::MAX; 2];
    for record in &ledger.committed {
        let event = event_json(record);
        let header = &event["header"];
        let (partition, offset) = (
            header["source"]["partition"].as_i64().unwrap() as usize,
            header["source"]["offset"].as_i64().unwrap(),
        );
        let event_type = header["event_type"].as_str().unwrap();
        let sku = &event["payload"]["sku"];
        if header["mapping_version"] == old.as_str() {
            assert_ne!(event_type, "ItemAddedToCart", "{event}");
            assert!(sku.is_null() || !is_hash(sku), "{event}");
            last_old[partition] = last_old[partition].max(offset);
        } else {
            assert_ne!(event_type, "AddedToCart", "{event}");
            assert!(sku.is_null() || is_hash(sku), "{event}");
            first_new[partition] = first_new[partition].min(offset);
        }
        assert!(
            requests.insert(header["correlation_id"].as_str().unwrap().to_owned()),
            "twice: {event}"
        );
    }
    for partition in 0..2 {
        assert!(
            last_old[partition] < first_new[partition],
            "partition {partition}: old mapping at {} after new at {}",
            last_old[partition],
            first_new[partition]
        );
    }
    assert!(
        last_old.iter().any(|o| *o >= 0),
        "nothing under the old mapping"
    );
    assert!(
        first_new.iter().any(|o| *o < i64::MAX),
        "nothing under the new mapping"
    );
    let expected: BTreeSet<String> = before
        .iter()
        .chain(&after)
        .filter_map(|(_, e)| match e {
            Expect::Event { request_id, .. } => Some(request_id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(requests, expected);
}

/// With `mapping.watch`, editing the files is enough: no signal.
#[test]
fn a_watched_mapping_is_reloaded_when_its_files_change() {
    let s = Scenario::new("watch", 2);
    let dir = own_mapping(&s, false);
    let config = config_with(&s, &dir, "200", &[("mapping.watch", "true")]);
    s.produce(&lines(&generate(300, "watched")));
    let mut worker = s.spawn_worker(&config, "w1", &[]);
    assert!(s.wait_caught_up(2, CATCH_UP), "{}", s.worker_log("w1"));
    next_version(&dir);
    wait_for_log(&s, "w1", SWAPPED, 1);
    s.produce(&lines(&generate(300, "watched-after")));
    assert!(s.wait_caught_up(2, CATCH_UP), "{}", s.worker_log("w1"));
    assert_eq!(terminate(&mut worker), Some(0), "{}", s.worker_log("w1"));
    let types: BTreeSet<String> = s
        .ledger()
        .committed
        .iter()
        .map(|r| {
            event_json(r)["header"]["event_type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        types.contains("AddedToCart") && types.contains("ItemAddedToCart"),
        "{types:?}"
    );
}

/// A syntax error, a failing golden case and a schema the registry finds
/// incompatible: each reload is refused with its reason, and the old
/// mapping goes on writing every record.
#[test]
fn a_mapping_that_fails_a_check_is_refused_and_the_running_one_stays() {
    let s = Scenario::new("refuse", 2);
    let dir = own_mapping(&s, true);
    let config = config(&s, &dir, "200");
    let first = generate(600, "first");
    s.produce(&lines(&first));
    let mut worker = s.spawn_worker(&config, "w1", &[]);
    assert!(s.wait_caught_up(2, CATCH_UP), "{}", s.worker_log("w1"));
    let mapping = dir.join("cart.toml");
    let shipped = std::fs::read_to_string(&mapping).unwrap();

    std::fs::write(&mapping, format!("{shipped}\n[[steps]\ndrop = [")).unwrap();
    hang_up(&worker);
    wait_for_log(&s, "w1", REFUSED, 1);
    std::fs::write(&mapping, &shipped).unwrap();

    // The golden cases expect `AddedToCart`.
    next_version(&dir);
    hang_up(&worker);
    wait_for_log(&s, "w1", REFUSED, 2);
    std::fs::write(&mapping, &shipped).unwrap();
    std::fs::remove_file(dir.join("schemas/ItemAddedToCart.avsc")).unwrap();

    // A new required field: the registered AddedToCart events could not be
    // read with it. (Without golden cases, which its events would fail.)
    std::fs::remove_dir_all(dir.join("tests")).unwrap();
    edit(
        &dir.join("schemas/AddedToCart.avsc"),
        r#"{"name": "qty""#,
        r#"{"name": "warehouse", "type": "string"}, {"name": "qty""#,
    );
    hang_up(&worker);
    wait_for_log(&s, "w1", REFUSED, 3);

    let second = generate(600, "second");
    s.produce(&lines(&second));
    assert!(s.wait_caught_up(2, CATCH_UP), "{}", s.worker_log("w1"));
    assert_eq!(terminate(&mut worker), Some(0), "{}", s.worker_log("w1"));
    let log = s.worker_log("w1");
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains(REFUSED)).collect();
    assert_eq!(refusals.len(), 3, "{log}");
    assert!(refusals[0].contains("cart.toml"), "{}", refusals[0]);
    assert!(
        refusals[1].contains("golden case failed"),
        "{}",
        refusals[1]
    );
    assert!(refusals[2].contains("incompatible"), "{}", refusals[2]);
    assert!(!log.contains(SWAPPED), "{log}");
    let old = started_version(&log);
    for record in &s.ledger().committed {
        let event = event_json(record);
        assert_eq!(event["header"]["mapping_version"], old.as_str(), "{event}");
    }
    let expected: Vec<Expect> = first
        .iter()
        .chain(&second)
        .map(|(_, e)| e.clone())
        .collect();
    assert_exactly_once(&s, &expected);
}

/// What one run of the reload drill wrote, without what differs between
/// scenarios (topic names, event ids, times, and positions: records
/// without a key land on either partition): per ledger event its type,
/// mapping (`old` or `new`) and payload; per dead letter its key and
/// reason.
#[derive(Debug, PartialEq, Eq)]
struct Written {
    events: BTreeSet<(String, &'static str, String)>,
    dead_letters: BTreeSet<(String, String)>,
}

/// Traffic with retries, a reload once it is all in the ledger, then more
/// traffic holding retries of the first requests; with `kill`, the worker
/// is killed (`kill -9`) as soon as it commits some of the second part and
/// restarted with the new files.
fn reload_drill(name: &str, kill: bool) -> Written {
    let s = Scenario::new(name, 2);
    let dir = own_mapping(&s, false);
    let config = config(&s, &dir, "50");
    let first = generate_with_retries(1_500, "drill");
    s.produce(&lines(&first));
    let mut worker = s.spawn_worker(&config, "w1", &[]);
    assert!(s.wait_caught_up(2, CATCH_UP), "{}", s.worker_log("w1"));
    next_version(&dir);
    hang_up(&worker);
    wait_for_log(&s, "w1", SWAPPED, 1);
    let old = started_version(&s.worker_log("w1"));
    let new = s
        .worker_log("w1")
        .lines()
        .find_map(|l| {
            l.split_once("mapping swapped from=")?
                .1
                .split_once(" to=")?
                .1
                .split_whitespace()
                .next()
                .map(str::to_owned)
        })
        .expect("the new version");
    // Retries of the first requests, spread through new traffic: the test
    // broker loses the offsets of a transaction that writes nothing (README,
    // "The test broker"), so no batch may hold only duplicates.
    let retries = first
        .iter()
        .step_by(7)
        .filter(|(_, e)| matches!(e, Expect::Event { .. }))
        .map(|(line, _)| line.clone());
    let mut second = lines(&generate(1_500, "drill-second"));
    for (i, retry) in retries.enumerate() {
        second.insert(i * 6, retry);
    }
    let committed = s.committed_offsets(2).iter().sum::<i64>();
    s.produce(&second);
    if kill {
        assert!(
            wait_until(CATCH_UP, || s.committed_offsets(2).iter().sum::<i64>()
                > committed),
            "{}",
            s.worker_log("w1")
        );
        kill_hard(&mut worker);
        // The same instance id: its transactional.id rolls the killed
        // worker's open transaction back.
        worker = s.spawn_worker(&config, "w1", &[]);
    }
    assert!(s.wait_caught_up(2, CATCH_UP), "{}", s.worker_log("w1"));
    assert_eq!(terminate(&mut worker), Some(0));
    let events = s
        .ledger()
        .committed
        .iter()
        .map(|record| {
            let mut event = event_json(record);
            let header = event["header"].clone();
            let mapping = if header["mapping_version"] == old.as_str() {
                "old"
            } else {
                assert_eq!(header["mapping_version"], new.as_str(), "{event}");
                "new"
            };
            (
                header["event_type"].as_str().unwrap().to_owned(),
                mapping,
                event["payload"].take().to_string(),
            )
        })
        .collect();
    let dead_letters = s
        .dead_letters()
        .committed
        .iter()
        .map(|r| {
            let key = r.key.as_deref().map(String::from_utf8_lossy);
            (
                key.unwrap_or_default().into_owned(),
                r.header("recast.reason").unwrap_or_default(),
            )
        })
        .collect();
    Written {
        events,
        dead_letters,
    }
}

/// A `kill -9` right after a reload, and a restart with the new files,
/// write what the same traffic and reload write without the kill: the
/// window rebuilt at the restart, under the new mapping, is the one the
/// live swap built.
#[test]
fn a_kill_after_a_reload_and_a_restart_agree_with_the_live_run() {
    let live = reload_drill("reload-live", false);
    let killed = reload_drill("reload-killed", true);
    assert!(
        live.events.iter().any(|e| e.1 == "new") && live.events.iter().any(|e| e.1 == "old"),
        "both mappings wrote"
    );
    let only = |a: &Written, b: &Written| {
        let events: Vec<_> = a.events.difference(&b.events).take(3).collect();
        let dead_letters: Vec<_> = a.dead_letters.difference(&b.dead_letters).take(3).collect();
        format!("events {events:?}, dead letters {dead_letters:?}")
    };
    assert!(
        live == killed,
        "only live: {}; only after the kill: {}",
        only(&live, &killed),
        only(&killed, &live)
    );
}
