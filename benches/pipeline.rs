//! Throughput of the pure per-record core (decode → mapping → envelope →
//! JSON encode) on the sample legacy records, and of each stage alone.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use recast::config::Config;
use recast::decode::Decoder;
use recast::legacy::{LegacyRecord, Position};
use recast::legacy_file::{LegacyLine, parse};
use recast::mapping::Mapping;
use recast::pipeline::Pipeline;

fn sample() -> Vec<LegacyLine> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/legacy-cart.jsonl"
    ))
    .expect("sample file");
    parse(&text).expect("sample parses")
}

fn records(lines: &[LegacyLine]) -> Vec<LegacyRecord<'_>> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            l.record(Position {
                topic: "legacy-cart",
                partition: 0,
                offset: i as i64,
            })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let config = Config::load(None, Vec::new()).expect("embedded default");
    let lines = sample();
    let records = records(&lines);
    let n = records.len() as u64;

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(n));

    let pipeline = Pipeline::new(&config);
    group.bench_function("process_sample", |b| {
        b.iter(|| {
            for record in &records {
                black_box(pipeline.process(record, 1_764_000_100_000));
            }
        });
    });

    let decoder = Decoder::new(921_600, 64);
    group.bench_function("decode", |b| {
        b.iter(|| {
            for record in &records {
                let _ = black_box(decoder.decode(record.value));
            }
        });
    });

    let mapping = Mapping::compile(&config.raw.mapping);
    let objects: Vec<_> = records
        .iter()
        .filter_map(|r| decoder.decode(r.value).ok())
        .collect();
    group.throughput(Throughput::Elements(objects.len() as u64));
    group.bench_function("mapping", |b| {
        b.iter_batched(
            || objects.clone(),
            |batch| {
                for object in batch {
                    let _ = black_box(mapping.apply(object));
                }
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
