//! Avro for the ledger: the event schemas of `schemas/`, the encoder that
//! writes a mapped payload as a datum of its event type's schema, and the
//! Confluent wire format around it.

mod encode;
mod schemas;
mod writer_schemas;

pub(crate) use encode::{FitError, write_bytes, write_long};
pub(crate) use schemas::{EventSchema, LedgerSchemas, SchemaError, SchemaFile, is_event_type};
pub use writer_schemas::WriterSchemas;

/// First byte of a Confluent-framed value.
pub(crate) const MAGIC: u8 = 0;

/// Starts a Confluent-framed value: magic byte 0, then the schema id as
/// a 4-byte big-endian integer. The Avro datum follows.
pub(crate) fn write_frame(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// The schema id and datum of a Confluent-framed value, if it is one.
pub fn split_frame(value: &[u8]) -> Option<(u32, &[u8])> {
    match value {
        [MAGIC, a, b, c, d, datum @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
