//! Legacy values in Avro: Confluent-framed values are decoded with the
//! writer schema the registry holds under their id. This cache is pure:
//! the worker asks it which ids of a batch are unknown
//! ([`WriterSchemas::unknown_ids`]), fetches those from the registry and
//! teaches them ([`WriterSchemas::learn`]) before running the batch, so
//! the decode stage itself stays free of I/O; each id is fetched once.

use std::collections::BTreeSet;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::Name;
use serde_json::{Map, Value};

use super::split_frame;

/// What is known of one schema id: the schema, or why records written
/// with it cannot be decoded.
type Known = Result<Arc<Schema>, String>;

/// Ids remembered at most: a topic has a handful of writer schemas, but
/// garbage that happens to start with byte 0 brings a new "id" each time.
const MAX_REMEMBERED_IDS: u64 = 10_000;

/// Writer schemas by registry id, shared by clones.
#[derive(Debug, Clone)]
pub struct WriterSchemas {
    by_id: moka::sync::Cache<u32, Known>,
}

impl Default for WriterSchemas {
    fn default() -> Self {
        Self::new()
    }
}

impl WriterSchemas {
    pub fn new() -> Self {
        Self {
            by_id: moka::sync::Cache::new(MAX_REMEMBERED_IDS),
        }
    }

    /// The schema ids of the framed values among `values` not known yet.
    pub fn unknown_ids<'a>(
        &self,
        values: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> BTreeSet<u32> {
        values
            .into_iter()
            .filter_map(|v| split_frame(v?))
            .map(|(id, _)| id)
            .filter(|id| !self.by_id.contains_key(id))
            .collect()
    }

    /// Remembers what the registry holds under `id`: the schema's text, or
    /// `None` when it has no such id (its records are then rejected).
    pub fn learn(&self, id: u32, text: Option<&str>) {
        let known = match text {
            None => Err(format!("schema id {id} is not in the registry")),
            Some(text) => parse_writer_schema(id, text),
        };
        if let Err(reason) = &known {
            tracing::warn!(id, %reason, "legacy records written with this schema are rejected");
        }
        self.by_id.insert(id, known);
    }

    /// Decodes a framed legacy value into the JSON object the mapping reads.
    pub fn decode(&self, id: u32, mut datum: &[u8]) -> Result<Map<String, Value>, String> {
        let schema = match self.by_id.get(&id) {
            Some(Ok(schema)) => schema,
            Some(Err(reason)) => return Err(reason),
            None => return Err(format!("schema id {id} was not fetched")),
        };
        let value = GenericDatumReader::builder(&schema)
            .build()
            .and_then(|reader| reader.read_value(&mut datum))
            .map_err(|e| format!("invalid Avro datum for schema id {id}: {e}"))?;
        if !datum.is_empty() {
            return Err(format!(
                "{} bytes after the Avro datum of schema id {id}",
                datum.len()
            ));
        }
        match Value::try_from(value) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(other) => Err(format!(
                "Avro value of schema id {id} is {}, not a record",
                crate::json::json_kind(&other)
            )),
            Err(e) => Err(format!(
                "Avro value of schema id {id} has no JSON form: {e}"
            )),
        }
    }
}

/// A writer schema recast can decode with: it parses, and it is not
/// recursive (a recursive schema lets a small value nest deep enough to
/// exhaust the decoder's stack).
fn parse_writer_schema(id: u32, text: &str) -> Known {
    let schema = Schema::parse_str(text)
        .map_err(|e| format!("schema id {id} is not a valid Avro schema: {e}"))?;
    if let Some(name) = recursion(&schema, &mut Vec::new()) {
        return Err(format!(
            "schema id {id} is recursive (through {}): not supported for legacy records",
            name.fullname(None)
        ));
    }
    Ok(Arc::new(schema))
}

/// A named type that refers to itself, if any.
fn recursion<'s>(schema: &'s Schema, enclosing: &mut Vec<&'s Name>) -> Option<&'s Name> {
    match schema {
        Schema::Ref { name } => enclosing.contains(&name).then_some(name),
        Schema::Record(record) => {
            enclosing.push(&record.name);
            let found = record
                .fields
                .iter()
                .find_map(|f| recursion(&f.schema, enclosing));
            enclosing.pop();
            found
        }
        Schema::Array(array) => recursion(&array.items, enclosing),
        Schema::Map(map) => recursion(&map.types, enclosing),
        Schema::Union(union) => union
            .variants()
            .iter()
            .find_map(|v| recursion(v, enclosing)),
        _ => None,
    }
}
