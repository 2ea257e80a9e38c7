//! Broker stalls: the broker stops answering (`SIGSTOP`, as in a long GC
//! pause or a network partition), then resumes (`SIGCONT`). The worker must
//! neither exit nor hang, `/readyz` must say it is stalled while it lasts,
//! and exactly-once must hold across it. The broker is the test's own: the
//! shared one must not stop under other tests.

use std::time::{Duration, Instant};

use crate::common;

use common::{
    Expect, OwnBroker, Scenario, assert_exactly_once, generate_with_retries, get, lines, listening,
    own_broker, terminate, wait_until,
};

/// `kill -<signal>` to the broker.
fn signal(broker: &OwnBroker, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &broker.pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {}", broker.pid);
}

/// Stops the broker for `pause`, polling `/readyz` meanwhile; resumes it
/// and returns the not-ready answers seen.
fn stall(broker: &OwnBroker, address: &str, pause: Duration) -> Vec<String> {
    signal(broker, "-STOP");
    let until = Instant::now() + pause;
    let mut not_ready = Vec::new();
    while Instant::now() < until {
        let (status, body) = get(address, "/readyz");
        if status != 200 {
            not_ready.push(body);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    signal(broker, "-CONT");
    not_ready
}

/// Runs a worker over enough traffic to be busy, stalls the broker for
/// `pause` once it has committed something, and checks the outcome.
/// `session_timeout_ms` is the consumer's `session.timeout.ms`.
fn busy_worker_through_a_stall(name: &str, pause: Duration, session_timeout_ms: u32) {
    let broker = own_broker(&[]);
    let s = Scenario::on(&broker.address, name, 2);
    let traffic = generate_with_retries(20_000, name);
    s.produce(&lines(&traffic));
    let properties = format!(
        r#"{{ "max.in.flight.requests.per.connection" = 1, "session.timeout.ms" = {session_timeout_ms} }}"#
    );
    let config = s.config(&[
        ("batch.max_records", "200"),
        // `/readyz` turns 503 after this long without progress.
        ("batch.transaction_timeout", "\"8s\""),
        ("kafka.properties", &properties),
    ]);
    let mut worker = s.spawn_worker(&config, "a", &[]);
    let address = listening(&s, "a");
    assert!(
        wait_until(Duration::from_secs(120), || s
            .committed_offsets(2)
            .iter()
            .any(|o| *o > 0)),
        "{}",
        s.worker_log("a")
    );
    let not_ready = stall(broker, &address, pause);
    assert!(
        not_ready.iter().any(|b| b.contains("no progress")),
        "/readyz stayed 200 through a {pause:?} stall: {not_ready:?}"
    );
    assert!(
        s.wait_caught_up(2, Duration::from_secs(240)),
        "not caught up after the stall: committed {:?} of {:?}; lag {:?}; readyz {:?}\n{}",
        s.committed_offsets(2),
        s.legacy_end_offsets(),
        get(&address, "/metrics")
            .1
            .lines()
            .filter(|l| l.starts_with("recast_consumer_lag"))
            .collect::<Vec<_>>(),
        get(&address, "/readyz"),
        s.worker_log("a")
    );
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker exited: {}",
        s.worker_log("a")
    );
    assert!(
        wait_until(Duration::from_secs(30), || get(&address, "/readyz").0
            == 200),
        "not ready again after the stall: {}",
        get(&address, "/readyz").1
    );

    // Idle now: a stall must show as well, though there is nothing to do.
    let not_ready = stall(broker, &address, pause);
    assert!(
        not_ready.iter().any(|b| b.contains("no progress")),
        "an idle worker stayed ready through a {pause:?} stall: {not_ready:?}"
    );
    assert!(
        wait_until(Duration::from_secs(30), || get(&address, "/readyz").0
            == 200),
        "not ready again after the idle stall: {}",
        get(&address, "/readyz").1
    );
    assert_eq!(terminate(&mut worker), Some(0), "{}", s.worker_log("a"));
    let expected: Vec<Expect> = traffic.into_iter().map(|(_, e)| e).collect();
    assert_exactly_once(&s, &expected);
}

#[test]
fn exactly_once_holds_through_a_broker_stall_longer_than_a_batch() {
    busy_worker_through_a_stall("stall", Duration::from_secs(12), 45_000);
}

#[test]
fn exactly_once_holds_through_a_broker_stall_longer_than_the_session_timeout() {
    busy_worker_through_a_stall("stall-session", Duration::from_secs(15), 6_000);
}
