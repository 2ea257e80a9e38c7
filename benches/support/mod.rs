//! What the benches share: the worker's Avro ledger encoding, without a
//! registry.

use std::sync::Arc;

use recast::{Config, Encoding, SchemaIds};

/// The Avro encoding of `config`'s schemas, with schema ids numbered as a
/// fresh registry would give them, and those ids.
pub(crate) fn avro_encoding(config: &Config) -> (Encoding, SchemaIds) {
    let schemas = config
        .ledger
        .schemas()
        .cloned()
        .expect("the embedded default has schemas");
    let ids: SchemaIds = Arc::new(
        schemas
            .event_types()
            .zip(1..)
            .map(|(t, id)| (t.to_owned(), id))
            .collect(),
    );
    (Encoding::Avro(schemas, ids.clone()), ids)
}
