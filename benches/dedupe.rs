//! The dedupe window: check+commit and lookup throughput with 1M entries in
//! one partition's window, the memory a full window holds (printed: a
//! size, not a time), and the time to rebuild a 100,000-entry window from
//! the broker (started like the integration tests' broker).

// The integration suite's harness: the bench uses its broker, scenarios
// and traffic, not the rest.
#[path = "../tests/suite/common/mod.rs"]
#[allow(dead_code, unused_imports)]
mod common;
mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use recast::restore;
use recast::{Config, EMBEDDED_DEFAULT, Origin};
use recast::{DedupeWindow, Memory};

const ENTRIES: u64 = 1_000_000;
const OPS: u64 = 10_000;

fn full_window() -> DedupeWindow {
    let mut window = DedupeWindow::new(ENTRIES, None);
    for i in 0..ENTRIES {
        window.record(
            0,
            u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            i as i64,
            None,
        );
    }
    window.commit();
    window
}

fn window(c: &mut Criterion) {
    let mut group = c.benchmark_group("dedupe_window");
    group.throughput(Throughput::Elements(OPS));
    group.sample_size(20);
    let mut window = full_window();
    let mut next = ENTRIES;
    group.bench_function("check_new_and_commit_1M", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                let key = u128::from(next).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                black_box(window.verdict(0, key, next as i64, None));
                window.record(0, key, next as i64, None);
                next += 1;
            }
            window.commit();
        });
    });
    group.bench_function("check_duplicate_1M", |b| {
        b.iter_batched(
            || next,
            |at| {
                for i in 0..OPS {
                    // Keys seen within the last ENTRIES offsets.
                    let seen = at - 1 - i * 37 % (ENTRIES / 2);
                    let key = u128::from(seen).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    black_box(window.verdict(0, key, at as i64, None));
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// Resident memory per key of full windows of 100,000 and 1,000,000
/// offsets, one key each, committed every 5,000 keys as the default batch
/// commits them: what the process gained in resident pages while filling
/// one (the tables are large enough to be mapped pages of their own),
/// divided by the keys held.
fn memory(_: &mut Criterion) {
    for entries in [100_000, ENTRIES] {
        let before = resident_bytes();
        let window = {
            let mut window = DedupeWindow::new(entries, None);
            for i in 0..entries {
                let key = u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                window.record(0, key, i as i64, None);
                if i % 5_000 == 4_999 {
                    window.commit();
                }
            }
            window.commit();
            window
        };
        let grown = resident_bytes().saturating_sub(before);
        println!(
            "dedupe_window/memory_{entries}: {} keys, {:.1} MiB resident, {} bytes per key",
            window.len(0),
            grown as f64 / f64::from(1 << 20),
            grown / window.len(0)
        );
        drop(window);
    }
}

/// The process's resident set (`/proc/self/statm`, pages of 4 KiB).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn restore_from_broker(c: &mut Criterion) {
    const RECORDS: usize = 100_000;
    let s = common::Scenario::new("restore-bench", 1);
    let records = common::generate(RECORDS, "restore-bench");
    let lines: Vec<_> = records.iter().map(|(l, _)| l.clone()).collect();
    s.produce(&lines);
    let env = vec![
        (
            "RECAST_KAFKA__BROKERS".to_owned(),
            common::brokers().to_owned(),
        ),
        ("RECAST_KAFKA__GROUP_ID".to_owned(), s.group.clone()),
        ("RECAST_TOPICS__LEGACY".to_owned(), s.legacy.clone()),
        ("RECAST_TOPICS__LEDGER".to_owned(), s.ledger.clone()),
        (
            "RECAST_TOPICS__DEAD_LETTER".to_owned(),
            s.dead_letter.clone(),
        ),
    ];
    let config = Config::parse(EMBEDDED_DEFAULT, Origin::Embedded, env).expect("config");
    // The worker's pipeline: Avro events (schema ids as the registry would
    // give them), since the restore runs the whole record path.
    let pipeline = config.pipeline(support::avro_encoding(&config).0);
    // The group has committed the whole partition: a restore re-reads the
    // last `capacity` (100,000) records.
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::brokers())
        .set("group.id", &s.group)
        .create()
        .expect("group consumer");
    let mut committed = TopicPartitionList::new();
    committed
        .add_partition_offset(&s.legacy, 0, Offset::Offset(RECORDS as i64))
        .expect("offset");
    group.commit(&committed, CommitMode::Sync).expect("commit");

    let mut bench = c.benchmark_group("dedupe_restore");
    bench.sample_size(10);
    bench.measurement_time(Duration::from_secs(20));
    bench.throughput(Throughput::Elements(RECORDS as u64));
    bench.bench_function("restore_100k_from_broker", |b| {
        b.iter(|| {
            let mut window = DedupeWindow::new(100_000, None);
            let restored =
                restore(&config, &group, None, &pipeline, &mut window, &[0]).expect("restore");
            assert!(restored[0].records > 90_000, "{restored:?}");
        });
    });
    bench.finish();
}

criterion_group!(benches, memory, window, restore_from_broker);
criterion_main!(benches);
