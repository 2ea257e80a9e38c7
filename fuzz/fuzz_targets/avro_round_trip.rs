//! recast's Avro encoder against apache-avro's decoder: every event the
//! record path encodes (the embedded default's mapping and schemas) is a
//! datum of its schema, read to its last byte, and apache-avro writes the
//! value it read back to the very same bytes.
#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use libfuzzer_sys::fuzz_target;
use recast::{
    Config, Encoding, LegacyRecord, Pipeline, Position, RecordOutcome, SchemaIds, split_frame,
};

struct Setup {
    pipeline: Pipeline,
    schemas: BTreeMap<u32, apache_avro::Schema>,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let config = Config::load(None, Vec::new()).expect("the embedded default");
        let ledger = config.ledger.schemas().cloned().expect("shipped schemas");
        let mut schemas = BTreeMap::new();
        let mut ids = std::collections::HashMap::new();
        for (schema, id) in ledger.iter().zip(1..) {
            ids.insert(schema.event_type().to_owned(), id);
            schemas.insert(id, schema.schema.clone());
        }
        let ids: SchemaIds = Arc::new(ids);
        Setup {
            pipeline: config.pipeline(Encoding::Avro(ledger, ids)),
            schemas,
        }
    })
}

fuzz_target!(|value: &[u8]| {
    let setup = setup();
    let record = LegacyRecord {
        position: Position {
            topic: "legacy-cart",
            partition: 0,
            offset: 1,
        },
        timestamp_ms: Some(1_764_000_000_000),
        key: Some(b"cart-1"),
        value: Some(value),
        headers: Vec::new(),
    };
    let RecordOutcome::Events(events) = setup.pipeline.run(&record, None, 0) else {
        return;
    };
    for event in events {
        let (id, datum) = split_frame(&event.value).expect("a framed event");
        let schema = &setup.schemas[&id];
        let mut rest = datum;
        let read = GenericDatumReader::builder(schema)
            .build()
            .and_then(|reader| reader.read_value(&mut rest))
            .unwrap_or_else(|e| panic!("event {} is not a datum: {e}", event.event_type));
        assert!(rest.is_empty(), "{} bytes after the datum", rest.len());
        let written = GenericDatumWriter::builder(schema)
            .build()
            .and_then(|writer| writer.write_value_to_vec(read))
            .expect("apache-avro writes it");
        assert_eq!(
            written, datum,
            "apache-avro writes {} differently",
            event.event_type
        );
    }
});
