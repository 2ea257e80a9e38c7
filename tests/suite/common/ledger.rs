//! Reading the ledger back: events decoded with the schemas the registry
//! holds, not with recast's own encoder.

use std::sync::OnceLock;

use serde_json::Value;

use super::broker::registry;
use recast::log_reader::TopicLog;

/// The `header.correlation_id` of every event, in log order.
pub(crate) fn correlation_ids(ledger: &TopicLog) -> Vec<String> {
    ledger
        .committed
        .iter()
        .map(|r| {
            event_json(r)["header"]["correlation_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// A ledger event as JSON, `{"header": {…}, "payload": {…}}` with times in
/// RFC 3339, whichever format it was written in: a Confluent-framed Avro
/// value is decoded by apache-avro with the schema the registry holds
/// under its id (not with recast's own schema files or encoder).
pub(crate) fn event_json(record: &recast::log_reader::CommittedRecord) -> Value {
    let value = record.value.as_deref().expect("event has a value");
    let Some((id, mut datum)) = recast::split_frame(value) else {
        return serde_json::from_slice(value).expect("event is JSON");
    };
    let schema = registered_schema(id);
    let decoded = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut datum)
        .unwrap_or_else(|e| panic!("event is not a datum of schema {id}: {e}"));
    assert!(datum.is_empty(), "bytes after the datum of schema {id}");
    let Value::Object(mut fields) = Value::try_from(decoded).expect("datum as JSON") else {
        panic!("event is not a record")
    };
    let mut header = fields.remove("header").expect("event has a header");
    for time in ["occurred_at", "recorded_at"] {
        let ms = header[time].as_i64().expect("header times are longs");
        header[time] = recast::format_millis(ms).into();
    }
    serde_json::json!({ "header": header, "payload": fields })
}

/// The schema registered under `id`, fetched once.
fn registered_schema(id: u32) -> apache_avro::Schema {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<u32, apache_avro::Schema>>> =
        OnceLock::new();
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
    cache
        .entry(id)
        .or_insert_with(|| {
            let url = format!("{}/schemas/ids/{id}", registry());
            let text = ureq::get(&url)
                .call()
                .expect("registry answers")
                .body_mut()
                .read_to_string()
                .expect("registry answers");
            let body: Value = serde_json::from_str(&text).expect("registry answers JSON");
            apache_avro::Schema::parse_str(body["schema"].as_str().expect("a schema"))
                .expect("the registered schema parses")
        })
        .clone()
}
