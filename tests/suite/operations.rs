//! Operating recast: `/metrics` during an end-to-end run matches the known
//! input and its outcomes add up, `/readyz` turns ready once the group is
//! joined (a spare without a partition too), and every documented metric
//! name is exported.

use crate::common;

use std::time::Duration;

use common::{Scenario, get, listening, metric_value, terminate, wait_until};

#[test]
fn metrics_match_the_input_and_add_up() {
    let s = Scenario::new("ops", 4);
    let sample_lines: Vec<_> = common::sample().into_iter().map(|(l, _)| l).collect();
    s.produce(&sample_lines);
    let mut worker = s.spawn_worker(&s.config(&[]), "w1", &[]);
    let address = listening(&s, "w1");
    assert_eq!(get(&address, "/healthz").0, 200);
    assert!(
        wait_until(Duration::from_secs(30), || get(&address, "/readyz").0
            == 200),
        "never ready: {}",
        get(&address, "/readyz").1
    );
    assert!(
        s.wait_caught_up(4, Duration::from_secs(120)),
        "{}",
        s.worker_log("w1")
    );
    let (status, body) = get(&address, "/metrics");
    assert_eq!(status, 200);
    let t = format!("topic=\"{}\"", s.legacy);
    let outcome = |o: &str| {
        metric_value(
            &body,
            &format!("recast_records_total{{outcome=\"{o}\",{t}}}"),
        )
    };
    let consumed = metric_value(&body, &format!("recast_records_consumed_total{{{t}}}"));
    assert_eq!(consumed, 300);
    assert_eq!(outcome("event"), 243);
    assert_eq!(outcome("filtered"), 13);
    assert_eq!(outcome("duplicate"), 35);
    assert_eq!(outcome("rejected"), 9);
    assert_eq!(
        consumed,
        outcome("event") + outcome("filtered") + outcome("duplicate") + outcome("rejected")
    );
    let stage = |st: &str| {
        metric_value(
            &body,
            &format!("recast_records_rejected_total{{stage=\"{st}\",{t}}}"),
        )
    };
    assert_eq!((stage("decode"), stage("mapping")), (8, 1));
    let produced: u64 = [
        "AddedToCart",
        "CheckedOut",
        "CouponApplied",
        "QuantityUpdated",
        "RemovedFromCart",
    ]
    .iter()
    .map(|e| {
        metric_value(
            &body,
            &format!("recast_events_produced_total{{event_type=\"{e}\",{t}}}"),
        )
    })
    .sum();
    assert_eq!(produced, 243);
    assert_eq!(produced as usize, s.ledger().committed.len());
    assert_lag_reaches_zero(&address, &s.legacy, 4);
    let body = get(&address, "/metrics").1;
    for name in recast::METRIC_NAMES {
        assert!(
            body.contains(&format!("\n{name}")),
            "{name} not exported:\n{body}"
        );
    }
    assert_eq!(get(&address, "/nowhere").0, 404);
    assert_eq!(terminate(&mut worker), Some(0));
}

/// A legacy topic written in transactions ends in commit markers, offsets
/// without a record: caught up, recast's lag (what the KEDA autoscaler
/// reads) is 0 there too, not one per partition forever.
#[test]
fn lag_is_zero_once_caught_up_on_a_transactional_legacy_topic() {
    let s = Scenario::new("ops-txn", 3);
    let records = common::generate(600, "txn");
    let events = records
        .iter()
        .filter(|(_, e)| matches!(e, common::Expect::Event { .. }))
        .count();
    s.produce_in_a_transaction(&common::lines(&records));
    let mut worker = s.spawn_worker(&s.config(&[]), "w1", &[]);
    let address = listening(&s, "w1");
    assert!(
        wait_until(Duration::from_secs(120), || s.ledger().committed.len()
            == events),
        "{}",
        s.worker_log("w1")
    );
    assert_lag_reaches_zero(&address, &s.legacy, 3);
    assert_eq!(terminate(&mut worker), Some(0));
}

/// Lag is measured every few seconds; once caught up it is 0 on every
/// partition.
fn assert_lag_reaches_zero(address: &str, topic: &str, partitions: i32) {
    let lag = |p: i32| format!("recast_consumer_lag{{partition=\"{p}\",topic=\"{topic}\"}} 0");
    assert!(
        wait_until(Duration::from_secs(20), || {
            let body = get(address, "/metrics").1;
            (0..partitions).all(|p| body.contains(&lag(p)))
        }),
        "{}",
        get(address, "/metrics").1
    );
}

#[test]
fn an_instance_beyond_the_partition_count_is_a_ready_spare() {
    let s = Scenario::new("spare", 1);
    let config = s.config(&[]);
    let mut workers: Vec<_> = ["w1", "w2"]
        .iter()
        .map(|id| s.spawn_worker(&config, id, &[]))
        .collect();
    let addresses: Vec<String> = ["w1", "w2"].iter().map(|id| listening(&s, id)).collect();
    // Absent until the instance has joined the group.
    let series = format!("recast_partitions_assigned{{topic=\"{}\"}}", s.legacy);
    let held = |address: &str| {
        get(address, "/metrics")
            .1
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(60), || {
            addresses.iter().all(|a| get(a, "/readyz").0 == 200)
                && addresses.iter().map(|a| held(a)).sum::<u64>() == 1
        }),
        "not every instance ready with the one partition held once: {:?}",
        addresses
            .iter()
            .map(|a| get(a, "/readyz").1)
            .collect::<Vec<_>>()
    );
    for worker in &mut workers {
        assert_eq!(terminate(worker), Some(0));
    }
}
