//! Re-driving dead letters after a mapping fix: the legacy service starts
//! sending a field the ledger schema lacks (`customer.name`), recast
//! rightly dead-letters those records, the mapping is fixed (the field
//! dropped), and `recast redrive` brings every one of them into the
//! ledger exactly once — through `kill -9`, a second instance joining and
//! the live worker running beside it — while the records the fix does not
//! cure are dead-lettered again under the new mapping version.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use crate::common::{Scenario, event_json, group_offsets, kill_hard, terminate, wait_until};
use recast::legacy_file::LegacyLine;
use recast::log_reader::{CommittedRecord, TopicLog};
use recast::{Config, Filters, RedriveOptions, Stage};

const PARTITIONS: i32 = 2;
const REQUESTS: usize = 3000;
const CATCH_UP: Duration = Duration::from_secs(240);

/// What the legacy service sent for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Fits the schema.
    Plain,
    /// Carries `customer.name`: dead-lettered until the fix.
    Named,
    /// Named, retried later, named again: two dead letters, one event.
    NamedRetriedNamed,
    /// Named, retried later without the name: the live worker writes the
    /// retry; re-driving the first is a duplicate.
    NamedRetriedPlain,
    /// Fits, retried later with the name: the retry's dead letter is a
    /// duplicate of the live event before it.
    PlainRetriedNamed,
    /// `qty` as a string: no mapping fix for that; rejected again.
    StillBad,
}

fn case(i: usize) -> Case {
    match i % 30 {
        3 => Case::NamedRetriedNamed,
        13 => Case::NamedRetriedPlain,
        23 => Case::Named,
        8 => Case::PlainRetriedNamed,
        17 => Case::StillBad,
        _ => Case::Plain,
    }
}

fn request_id(tag: &str, i: usize) -> String {
    format!("req-{tag}-{i}")
}

/// One attempt at request `i`; retries differ in technical context only
/// (and in the name, where the case says so).
fn attempt(tag: &str, i: usize, attempt: u32, named: bool, bad_qty: bool) -> LegacyLine {
    let cart = format!("cart-{tag}-{}", i % 40);
    let name = if named {
        r#", "name": "Zoë Ünïcode-Łukasz""#
    } else {
        ""
    };
    let qty = if bad_qty { r#""2""# } else { "2" };
    let value = format!(
        r#"{{"command": "ADD_TO_CART", "requestId": "{}", "cartId": "{cart}", "customer": {{"id": "c-{i}"{name}}}, "ts": {}, "sku": "SKU-{i}", "qty": {qty}, "_meta": {{"host": "cart-web-{attempt}", "retry": {attempt}}}}}"#,
        request_id(tag, i),
        1_764_000_000_000 + i as u64,
    );
    LegacyLine {
        key: Some(cart),
        value: Some(value),
        headers: BTreeMap::new(),
        timestamp: None,
    }
}

/// Every request once, then the retries, as a legacy service retrying
/// late would send them.
fn traffic(tag: &str, requests: usize) -> Vec<LegacyLine> {
    let mut lines = Vec::new();
    for i in 0..requests {
        let named = matches!(
            case(i),
            Case::Named | Case::NamedRetriedNamed | Case::NamedRetriedPlain
        );
        lines.push(attempt(tag, i, 0, named, case(i) == Case::StillBad));
    }
    for i in 0..requests {
        match case(i) {
            Case::NamedRetriedNamed | Case::PlainRetriedNamed => {
                lines.push(attempt(tag, i, 1, true, false));
            }
            Case::NamedRetriedPlain => lines.push(attempt(tag, i, 1, false, false)),
            _ => {}
        }
    }
    lines
}

/// The fixed mapping: the shipped one, dropping `customer.name`.
fn fixed_mapping(s: &Scenario) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = s.dir.join("fixed");
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = std::fs::read_to_string(root.join("transforms/cart.toml")).unwrap();
    std::fs::write(
        dir.join("cart.toml"),
        format!("{shipped}\n# Not reviewed for the ledger: personal data.\n[[steps]]\ndrop = [\"customer.name\"]\n"),
    )
    .unwrap();
    std::fs::copy(
        root.join("transforms/cart-amounts.rhai"),
        dir.join("cart-amounts.rhai"),
    )
    .unwrap();
    let quoted = |path: PathBuf| format!("{:?}", path.display().to_string());
    let transforms = format!(
        "[{}, {}]",
        quoted(dir.join("cart.toml")),
        quoted(dir.join("cart-amounts.rhai"))
    );
    // Small transactions, so a kill lands mid-way; static members, so a
    // killed instance restarted with its id takes its partitions back at
    // once.
    s.config(&[
        ("mapping.transforms", transforms.as_str()),
        ("batch.max_records", "2"),
        ("kafka.static_membership", "true"),
    ])
}

/// Where each request's one event must come from: the legacy record's
/// (partition, offset), found in the legacy topic by request id and
/// attempt.
fn expected_sources(s: &Scenario, tag: &str, requests: usize) -> HashMap<String, (i32, i64)> {
    let attempts = attempts(s);
    (0..requests)
        .filter(|i| case(*i) != Case::StillBad)
        .map(|i| {
            let id = request_id(tag, i);
            let retry = u64::from(case(i) == Case::NamedRetriedPlain);
            let at = attempts[&(id.clone(), retry)];
            (id, at)
        })
        .collect()
}

/// Every legacy record's position, by request id and attempt.
fn attempts(s: &Scenario) -> HashMap<(String, u64), (i32, i64)> {
    let legacy = recast::log_reader::read_committed(
        crate::common::brokers(),
        &s.legacy,
        crate::common::TIMEOUT,
    )
    .expect("read legacy");
    legacy
        .committed
        .iter()
        .map(|record| {
            let value: serde_json::Value =
                serde_json::from_slice(record.value.as_deref().unwrap()).unwrap();
            let id = value["requestId"].as_str().unwrap().to_owned();
            let retry = value["_meta"]["retry"].as_u64().unwrap();
            ((id, retry), (record.partition, record.offset))
        })
        .collect()
}

fn header(record: &CommittedRecord, name: &str) -> Option<String> {
    record.header(name)
}

/// The dead letters a mapping version wrote.
fn dead_letters_of<'a>(log: &'a TopicLog, version: &str) -> Vec<&'a CommittedRecord> {
    log.committed
        .iter()
        .filter(|r| header(r, "recast.mapping.version").as_deref() == Some(version))
        .collect()
}

/// Events in the ledger that a re-drive wrote.
fn redriven_so_far(s: &Scenario) -> u64 {
    s.ledger()
        .committed
        .iter()
        .filter(|r| header(r, "recast.redrive.from").is_some())
        .count() as u64
}

fn redrive_offsets(s: &Scenario, group: &str) -> i64 {
    group_offsets(group, &s.dead_letter, PARTITIONS)
        .iter()
        .map(|o| (*o).max(0))
        .sum()
}

/// Waits for a re-drive started with `--stop-when-idle` to finish on its
/// own, successfully.
fn finishes(s: &Scenario, mut redrive: Child, instance: &str) {
    let log = || s.worker_log(&format!("redrive-{instance}"));
    assert!(
        wait_until(CATCH_UP, || redrive.try_wait().unwrap().is_some()),
        "re-drive {instance} did not finish: {}",
        log()
    );
    assert_eq!(redrive.wait().unwrap().code(), Some(0), "{}", log());
}

/// How many requests of the traffic are of these cases.
fn count(cases: &[Case]) -> usize {
    (0..REQUESTS).filter(|i| cases.contains(&case(*i))).count()
}

/// The dry run of the fix, checked against what the traffic calls for.
fn dry_run(fixed: &Config, group: &str) -> recast::DryRun {
    let dry = recast::dry_run(
        fixed,
        &RedriveOptions {
            group: group.to_owned(),
            filters: Filters::default(),
            lookback: Duration::from_secs(3600),
            stop_when_idle: None,
        },
    )
    .expect("dry run");
    let redriven = count(&[Case::Named, Case::NamedRetriedNamed]);
    assert_eq!(
        dry.counts.events,
        BTreeMap::from([("AddedToCart".to_owned(), redriven as u64)]),
        "{dry}"
    );
    let duplicates = count(&[
        Case::NamedRetriedNamed,
        Case::NamedRetriedPlain,
        Case::PlainRetriedNamed,
    ]);
    assert_eq!(dry.counts.duplicates, duplicates as u64, "{dry}");
    assert_eq!(
        dry.counts.rejected_total(),
        count(&[Case::StillBad]) as u64,
        "{dry}"
    );
    dry
}

/// Three hard kills of a re-drive mid-way, then it and a second instance
/// finish the work.
fn redrive_through_kills(s: &Scenario, fixed: &Path, group: &str, redriven: u64) {
    for _ in 0..3 {
        let progress = redrive_offsets(s, group);
        let mut redrive = s.spawn_redrive(fixed, "a", &["--stop-when-idle", "10s"]);
        assert!(
            wait_until(CATCH_UP, || redrive_offsets(s, group) > progress),
            "no re-drive progress: {}",
            s.worker_log("redrive-a")
        );
        std::thread::sleep(Duration::from_millis(100));
        kill_hard(&mut redrive);
    }
    let written = redriven_so_far(s);
    assert!(
        written > 0 && written < redriven,
        "the kills came after {written} of {redriven} re-driven events"
    );
    let a = s.spawn_redrive(fixed, "a", &["--stop-when-idle", "8s"]);
    let b = s.spawn_redrive(fixed, "b", &["--stop-when-idle", "8s"]);
    finishes(s, a, "a");
    finishes(s, b, "b");
}

/// Checks that the ledger holds every request once, each event from the
/// legacy record it should come from, the re-driven ones written by the
/// fixed mapping and saying so; returns those by event type.
fn assert_ledger(
    s: &Scenario,
    ledger: &TopicLog,
    expected: &HashMap<String, (i32, i64)>,
    fixed_version: &str,
) -> BTreeMap<String, u64> {
    let mut seen: HashMap<String, (i32, i64)> = HashMap::new();
    let mut event_ids = HashSet::new();
    let mut redriven: BTreeMap<String, u64> = BTreeMap::new();
    for record in &ledger.committed {
        let event = event_json(record);
        let id = event["header"]["correlation_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let source = &event["header"]["source"];
        let at = (
            i32::try_from(source["partition"].as_i64().unwrap()).unwrap(),
            source["offset"].as_i64().unwrap(),
        );
        assert!(
            seen.insert(id.clone(), at).is_none(),
            "{id}: a second event"
        );
        assert!(event_ids.insert(event["header"]["event_id"].to_string()));
        if let Some(from) = header(record, "recast.redrive.from") {
            assert!(from.starts_with(&format!("{}/", s.dead_letter)), "{from}");
            *redriven
                .entry(event["header"]["event_type"].as_str().unwrap().to_owned())
                .or_default() += 1;
            assert_eq!(event["header"]["mapping_version"], fixed_version);
        }
        assert!(event["payload"]["customer"].get("name").is_none(), "{id}");
    }
    assert_eq!(&seen, expected, "every request once, from its position");
    redriven
}

/// Checks that the records no fix cures are dead letters of the fixed
/// mapping, once each; returns them by stage and reason.
fn dead_lettered_again(after: &TopicLog, fixed_version: &str) -> BTreeMap<(Stage, String), u64> {
    let again = dead_letters_of(after, fixed_version);
    let mut reasons: BTreeMap<(Stage, String), u64> = BTreeMap::new();
    let mut positions = HashSet::new();
    for record in &again {
        assert_eq!(header(record, "recast.stage").unwrap(), "schema");
        *reasons
            .entry((Stage::Schema, header(record, "recast.reason").unwrap()))
            .or_default() += 1;
        assert!(positions.insert((
            header(record, "recast.source.partition"),
            header(record, "recast.source.offset")
        )));
    }
    assert_eq!(again.len(), count(&[Case::StillBad]));
    reasons
}

#[test]
fn dead_letters_are_redriven_exactly_once_after_a_fix_through_kills_and_a_second_instance() {
    let s = Scenario::new("redrive", PARTITIONS);
    let tag = "rd";
    s.produce(&traffic(tag, REQUESTS));
    let broken = s.config(&[("batch.max_records", "200")]);
    s.run_until_drained(&broken, "live", PARTITIONS);
    let before = s.dead_letters();
    let broken_version = Config::load(Some(&broken), Vec::new())
        .unwrap()
        .mapping
        .version()
        .to_owned();
    assert_eq!(
        dead_letters_of(&before, &broken_version).len(),
        count(&[
            Case::Named,
            Case::NamedRetriedNamed,
            Case::NamedRetriedPlain,
            Case::PlainRetriedNamed,
            Case::StillBad,
        ]) + count(&[Case::NamedRetriedNamed]),
        "the broken mapping's dead letters"
    );

    // The fix, and what a re-drive would do with it.
    let fixed = fixed_mapping(&s);
    let fixed_config = Config::load(Some(&fixed), Vec::new()).unwrap();
    let fixed_version = fixed_config.mapping.version().to_owned();
    assert_ne!(fixed_version, broken_version);
    let group = RedriveOptions::default_group(&fixed_config);
    let dry = dry_run(&fixed_config, &group);
    assert_eq!(s.dead_letters(), before, "a dry run writes nothing");

    // The live worker runs the fix beside the re-drive, with new traffic.
    let mut live = s.spawn_worker(&fixed, "live", &[]);
    let later: Vec<LegacyLine> = (0..60)
        .map(|i| attempt("later", i, 0, false, false))
        .collect();
    s.produce(&later);
    redrive_through_kills(&s, &fixed, &group, dry.counts.events_total());
    assert!(
        s.wait_caught_up(PARTITIONS, CATCH_UP),
        "{}",
        s.worker_log("live")
    );
    assert_eq!(terminate(&mut live), Some(0), "{}", s.worker_log("live"));

    let ledger = s.ledger();
    let mut expected = expected_sources(&s, tag, REQUESTS);
    for ((id, _), at) in attempts(&s) {
        if id.starts_with("req-later-") {
            expected.insert(id, at);
        }
    }
    let redriven = assert_ledger(&s, &ledger, &expected, &fixed_version);
    assert_eq!(redriven, dry.counts.events, "the dry run's events");
    let after = s.dead_letters();
    assert_eq!(
        dead_lettered_again(&after, &fixed_version),
        dry.reasons,
        "the dry run's rejections"
    );

    // Nothing left to do: another re-drive writes nothing.
    let rerun = s.spawn_redrive(&fixed, "a", &["--stop-when-idle", "5s"]);
    finishes(&s, rerun, "a");
    assert_eq!(s.ledger().committed, ledger.committed);
    assert_eq!(s.dead_letters().committed, after.committed);
}
