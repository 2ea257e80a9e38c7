//! Confluent-framed Avro legacy values under a fixed writer schema (every
//! kind of Avro type): any datum gets an object or a reason, never a panic
//! or an allocation the datum's size does not justify.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recast::{Decoder, WriterSchemas};

const SCHEMA_ID: u32 = 7;

fn decoder() -> &'static Decoder {
    static DECODER: OnceLock<Decoder> = OnceLock::new();
    DECODER.get_or_init(|| {
        let schemas = WriterSchemas::new();
        schemas.learn(SCHEMA_ID, Some(include_str!("../schemas/legacy.avsc")));
        Decoder::new(1 << 20, 64).reading_avro(schemas, false)
    })
}

fuzz_target!(|datum: &[u8]| {
    let mut framed = vec![0];
    framed.extend_from_slice(&SCHEMA_ID.to_be_bytes());
    framed.extend_from_slice(datum);
    let _ = decoder().decode(Some(&framed));
});
