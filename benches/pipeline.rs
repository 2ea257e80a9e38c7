//! Throughput of the pure per-record core (decode → mapping → envelope →
//! encode) on the sample legacy records — writing Confluent-framed Avro as
//! the worker does, and JSON without schemas; with a decision trace, as
//! `recast explain` and the live tap run it — and of each stage alone:
//! decode, the envelope and encoding (Avro, JSON), the mapping as shipped (`cart.toml` then `cart-amounts.rhai`), the
//! declarative file alone, the same mapping written as a Rhai script
//! (`benches/cart.rhai`), and a chain that uses most of the declarative
//! language (conditions with regexes, casts, renames, masks, per-type
//! steps).

mod support;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use serde_json::{Map, Value};
use std::hint::black_box;

use recast::Config;
use recast::Decoder;
use recast::envelope::{EnvelopeContext, encode_avro, encode_json, header};
use recast::legacy_file::{LegacyLine, parse};
use recast::{Encoding, SchemaIds};
use recast::{LegacyRecord, Position};
use recast::{Mapped, Mapping, Trace, TransformFile};

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

    let (avro, ids) = support::avro_encoding(&config);
    let avro = config.pipeline(avro);
    let json = config.pipeline(Encoding::Json(None));
    for (name, pipeline) in [("run_sample_avro", &avro), ("run_sample_json", &json)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for record in &records {
                    black_box(pipeline.run(record, None, 1_764_000_100_000));
                }
            });
        });
    }
    // What `recast explain` and the live tap pay per traced record; the
    // worker runs with the trace off (`run_sample_avro`).
    group.bench_function("run_sample_avro_traced", |b| {
        b.iter(|| {
            for record in &records {
                let mut trace = Trace::on();
                black_box(avro.run_traced(record, None, 1_764_000_100_000, &mut trace));
                black_box(trace);
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

    let objects: Vec<_> = records
        .iter()
        .filter_map(|r| decoder.decode(r.value).ok().map(|object| (r, object)))
        .collect();
    group.throughput(Throughput::Elements(objects.len() as u64));
    bench_encoding(&mut group, &config, &objects, &ids);
    let rich = rich_mapping(&config);
    let declarative = only(&config, &config.transforms[..1]);
    let script = only(
        &config,
        &[TransformFile {
            path: "cart.rhai".into(),
            text: include_str!("cart.rhai").into(),
        }],
    );
    for (name, mapping) in [
        ("mapping", &config.mapping),
        ("mapping_declarative", &declarative),
        ("mapping_script", &script),
        ("mapping_rich", &rich),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || objects.clone(),
                |batch| {
                    for (record, object) in batch {
                        let _ = black_box(mapping.apply(object, record, &mut recast::Trace::off()));
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// The envelope and the encoding alone, per mapped event: Avro (the
/// schema check is the encoding) and JSON.
fn bench_encoding(
    group: &mut BenchmarkGroup<'_, WallTime>,
    config: &Config,
    objects: &[(&LegacyRecord<'_>, Map<String, Value>)],
    ids: &SchemaIds,
) {
    let schemas = config
        .ledger
        .schemas()
        .expect("the embedded default has schemas");
    let bodies: Vec<_> = objects
        .iter()
        .filter_map(|(record, object)| {
            match config
                .mapping
                .apply(object.clone(), record, &mut recast::Trace::off())
            {
                Ok(Mapped::Events(mut bodies)) => Some((*record, bodies.remove(0))),
                _ => None,
            }
        })
        .collect();
    let version = config.mapping.version();
    group.bench_function("envelope_encode_avro", |b| {
        b.iter(|| {
            for (record, body) in &bodies {
                let ctx = envelope(record, version);
                let schema = schemas.get(&body.event_type).expect("a schema");
                let mut out = Vec::with_capacity(256);
                let id = ids[&body.event_type];
                let _ = encode_avro(&header(body, 0, &ctx), &body.payload, schema, id, &mut out);
                black_box(out);
            }
        });
    });
    group.bench_function("envelope_encode_json", |b| {
        b.iter(|| {
            for (record, body) in &bodies {
                let ctx = envelope(record, version);
                black_box(encode_json(&header(body, 0, &ctx), &body.payload));
            }
        });
    });
}

/// The envelope of a sample record's event.
fn envelope<'a>(record: &LegacyRecord<'a>, mapping_version: &'a str) -> EnvelopeContext<'a> {
    EnvelopeContext {
        system: "cart-service",
        mapping_version,
        position: record.position,
        kafka_timestamp_ms: record.timestamp_ms,
        recorded_at_ms: 1_764_000_100_000,
    }
}

/// A mapping of just these files.
fn only(config: &Config, files: &[TransformFile]) -> Mapping {
    Mapping::compile(files, Some("bench-key-of-16-bytes"), &config.raw.scripts)
        .expect("bench mapping compiles")
}

/// The shipped cart transform followed by a second file exercising the
/// rest of the language on every record.
fn rich_mapping(config: &Config) -> Mapping {
    let extra = r#"
[[filter]]
when = { any = [{ field = "_meta.host", matches = "^health-" }, { header = "x-probe", exists = true }] }
[[reject]]
when = { field = "qty", matches = "^-" }
reason = "negative quantity"
[[steps]]
rename = { sku = "item.sku", qty = "item.quantity" }
[[steps]]
cast = { "item.quantity" = "integer" }
[[steps]]
default = { currency = "EUR" }
[[steps]]
mask = { "customer.id" = 2 }
[[steps]]
when = { field = "coupon", exists = true }
set = { discounted = true }
[types.CheckedOut]
steps = [{ cast = { total = "string" } }]
"#;
    let mut files = config.transforms.clone();
    files.push(TransformFile {
        path: "rich.toml".into(),
        text: extra.into(),
    });
    Mapping::compile(&files, Some("bench-key-of-16-bytes"), &config.raw.scripts)
        .expect("rich mapping compiles")
}

criterion_group!(benches, bench);
criterion_main!(benches);
