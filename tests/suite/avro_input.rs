//! Legacy topics that carry Confluent-framed Avro (`source.format =
//! "auto"`): values are decoded with the writer schema the registry holds
//! under their id, and a value whose schema the registry lacks, or whose
//! datum is broken, is dead-lettered with the reason while JSON records
//! keep flowing beside them.

use crate::common;

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use recast::Registry;

use common::{Scenario, TIMEOUT, brokers, event_json, registry};

/// How the legacy cart service would describe its commands in Avro.
const LEGACY_SCHEMA: &str = r#"{
  "type": "record", "name": "CartCommand", "namespace": "legacy.cart",
  "fields": [
    {"name": "command", "type": "string"},
    {"name": "requestId", "type": "string"},
    {"name": "cartId", "type": "string"},
    {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
      {"name": "id", "type": "string"},
      {"name": "email", "type": ["null", "string"], "default": null}]}},
    {"name": "ts", "type": "long"},
    {"name": "sku", "type": "string"},
    {"name": "qty", "type": "int"},
    {"name": "_meta", "type": {"type": "record", "name": "Meta", "fields": [
      {"name": "host", "type": "string"}]}}
  ]
}"#;

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut value = vec![0];
    value.extend_from_slice(&id.to_be_bytes());
    value.extend_from_slice(datum);
    value
}

/// An `ADD_TO_CART` command as the legacy service writes it in Avro.
fn legacy_command(schema: &Schema) -> Vec<u8> {
    let command = Avro::Record(vec![
        ("command".into(), Avro::String("ADD_TO_CART".into())),
        ("requestId".into(), Avro::String("r-avro".into())),
        ("cartId".into(), Avro::String("cart-avro".into())),
        (
            "customer".into(),
            Avro::Record(vec![
                ("id".into(), Avro::String("c-1".into())),
                (
                    "email".into(),
                    Avro::Union(1, Box::new(Avro::String("a@example.com".into()))),
                ),
            ]),
        ),
        ("ts".into(), Avro::Long(1_764_000_000_137)),
        ("sku".into(), Avro::String("SKU-1".into())),
        ("qty".into(), Avro::Int(3)),
        (
            "_meta".into(),
            Avro::Record(vec![("host".into(), Avro::String("cart-web-1".into()))]),
        ),
    ]);
    GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(command)
        .unwrap()
}

/// Writes raw values, keyed, to `topic`.
fn produce(topic: &str, records: &[(&str, Vec<u8>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    for (key, value) in records {
        producer
            .send(BaseRecord::to(topic).key(*key).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(TIMEOUT).unwrap();
}

#[test]
fn avro_legacy_records_are_decoded_through_the_registry() {
    let s = Scenario::new("avro-input", 1);
    let client = Registry::new(&recast::RegistryConfig {
        timeout: TIMEOUT,
        retry_for: TIMEOUT,
        ..recast::RegistryConfig::at(registry())
    });
    let id = client
        .register(&format!("{}-value", s.legacy), LEGACY_SCHEMA)
        .unwrap();
    let datum = legacy_command(&Schema::parse_str(LEGACY_SCHEMA).unwrap());

    let json = br#"{"command": "ADD_TO_CART", "requestId": "r-json", "cartId": "cart-json", "customer": {"id": "c-2"}, "ts": 1764000000000, "sku": "S", "qty": 1}"#;
    let records: Vec<(&str, Vec<u8>)> = vec![
        ("avro", framed(id, &datum)),
        ("unknown-id", framed(987_654, &datum)),
        ("truncated", framed(id, &datum[..datum.len() / 2])),
        ("json", json.to_vec()),
    ];
    produce(&s.legacy, &records);
    let config = s.config(&[("source.format", "\"auto\"")]);
    s.run_until_drained(&config, "avro-in", 1);

    let ledger = s.ledger();
    let events: Vec<_> = ledger.committed.iter().map(event_json).collect();
    assert_eq!(events.len(), 2, "{events:?}");
    let avro = &events[0];
    assert_eq!(avro["header"]["event_type"], "AddedToCart");
    assert_eq!(avro["header"]["correlation_id"], "r-avro");
    assert_eq!(avro["header"]["occurred_at"], "2025-11-24T16:00:00.137Z");
    assert_eq!(avro["payload"]["qty"], 3);
    assert_eq!(avro["payload"]["cartId"], "cart-avro");
    let email = avro["payload"]["customer"]["email"].as_str().unwrap();
    assert_eq!(email.len(), 64, "e-mail hashed: {email}");
    assert_eq!(events[1]["header"]["correlation_id"], "r-json");

    let dead = s.dead_letters();
    let reasons: Vec<(String, String, String)> = dead
        .committed
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(r.key.as_deref().unwrap()).into_owned(),
                r.header("recast.stage").unwrap(),
                r.header("recast.reason").unwrap(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(
        reasons[0],
        (
            "unknown-id".into(),
            "decode".into(),
            "schema id 987654 is not in the registry".into()
        )
    );
    assert_eq!(
        (reasons[1].0.as_str(), reasons[1].1.as_str()),
        ("truncated", "decode")
    );
    assert!(
        reasons[1]
            .2
            .starts_with(&format!("invalid Avro datum for schema id {id}")),
        "{}",
        reasons[1].2
    );
    // Dead letters keep the legacy value byte for byte.
    assert_eq!(dead.committed[0].value.as_deref(), Some(&records[1].1[..]));
}
