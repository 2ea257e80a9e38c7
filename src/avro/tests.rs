//! The encoder checked against apache-avro's decoder, and the shipped
//! schemas loaded as recast loads them.

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::encode::{Names, encode_value};
use super::*;

fn schema_files() -> Vec<SchemaFile> {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    crate::config::read_schema_files(base, &["schemas/header.avsc".into(), "schemas/cart".into()])
        .unwrap()
}

fn shipped() -> LedgerSchemas {
    LedgerSchemas::load(&schema_files()).unwrap()
}

/// Encodes `value` with `schema` (JSON text) and decodes it with apache-avro.
fn round_trip(schema: &str, value: &Value) -> Result<Avro, FitError> {
    let schema = apache_avro::Schema::parse_str(schema).unwrap();
    let mut out = Vec::new();
    encode_value(&schema, value, &Names::new(), &mut out)?;
    let mut reader = out.as_slice();
    let decoded = GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut reader)
        .unwrap();
    assert!(reader.is_empty(), "bytes left after the datum");
    Ok(decoded)
}

fn fit_error(schema: &str, value: &Value) -> String {
    round_trip(schema, value).unwrap_err().to_string()
}

#[test]
fn the_shipped_schemas_cover_the_cart_events() {
    let schemas = shipped();
    let types: Vec<&str> = schemas.event_types().collect();
    assert_eq!(
        types,
        [
            "AddedToCart",
            "CheckedOut",
            "CouponApplied",
            "QuantityUpdated",
            "RemovedFromCart"
        ]
    );
    let added = schemas.get("AddedToCart").unwrap();
    assert_eq!(
        added.subject("ledger-cart"),
        "ledger-cart-shop.cart.AddedToCart"
    );
    // Self-contained: the header and the customer are inlined, docs kept.
    let text: Value = serde_json::from_str(&added.text).unwrap();
    assert_eq!(text["fields"][0]["type"]["name"], "EventHeader");
    assert_eq!(text["fields"][3]["type"]["name"], "Customer");
    assert!(added.text.contains("timestamp-millis"));
    assert!(added.text.contains("HMAC-SHA256"));
}

#[test]
fn a_payload_is_written_in_schema_order_and_reads_back() {
    let schemas = shipped();
    let payload = json!({
        "sku": "SKU-1", "qty": 2, "ts": 1_764_000_000_137_i64, "requestId": "r-1",
        "cartId": "cart-1", "customer": {"id": "c-1", "email": "ab12"}
    });
    let mut out = Vec::new();
    schemas
        .get("AddedToCart")
        .unwrap()
        .encode_payload(payload.as_object().unwrap(), &mut out)
        .unwrap();
    // The payload fields alone, read back with a record of just them.
    let body = r#"{"type":"record","name":"Body","fields":[
        {"name":"cartId","type":"string"},{"name":"requestId","type":"string"},
        {"name":"customer","type":{"type":"record","name":"C","fields":[
            {"name":"id","type":"string"},{"name":"email","type":["null","string"]}]}},
        {"name":"ts","type":"long"},{"name":"sku","type":"string"},{"name":"qty","type":"int"}]}"#;
    let schema = apache_avro::Schema::parse_str(body).unwrap();
    let decoded = GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut out.as_slice())
        .unwrap();
    let Avro::Record(fields) = decoded else {
        panic!("{decoded:?}")
    };
    assert_eq!(fields[0], ("cartId".into(), Avro::String("cart-1".into())));
    assert_eq!(fields[3], ("ts".into(), Avro::Long(1_764_000_000_137)));
    assert_eq!(fields[5], ("qty".into(), Avro::Int(2)));
}

#[test]
fn a_payload_that_does_not_fit_names_the_field_and_why() {
    let schemas = shipped();
    let added = schemas.get("AddedToCart").unwrap();
    let fits = |payload: Value| {
        added
            .encode_payload(payload.as_object().unwrap(), &mut Vec::new())
            .map_err(|e| e.to_string())
    };
    let good = json!({"cartId": "c", "requestId": "r", "customer": {"id": "c-1"},
                      "ts": 1, "sku": "S", "qty": 1});
    assert_eq!(fits(good.clone()), Ok(()));
    let with = |key: &str, value: Value| {
        let mut p = good.clone();
        p[key] = value;
        fits(p)
    };
    assert_eq!(
        with("qty", json!("two")).unwrap_err(),
        "field `qty`: expected int, got string \"two\""
    );
    assert_eq!(
        with("qty", json!(3_000_000_000_i64)).unwrap_err(),
        "field `qty`: 3000000000 is outside the range of an Avro int"
    );
    assert_eq!(
        with("customer", json!({"id": 7})).unwrap_err(),
        "field `customer.id`: expected string, got number 7"
    );
    assert_eq!(
        with("debug", json!(true)).unwrap_err(),
        "field `debug`: not a field of shop.cart.AddedToCart; drop it in the mapping or add it to the schema"
    );
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("sku");
    assert_eq!(
        fits(missing).unwrap_err(),
        "field `sku`: missing, and the schema gives no default"
    );
    assert_eq!(
        with("sku", Value::Null).unwrap_err(),
        "field `sku`: expected string, got null"
    );
}

#[test]
fn unions_take_the_branch_of_the_value() {
    let schema = r#"["null", "long", "string"]"#;
    assert_eq!(
        round_trip(schema, &json!(null)).unwrap(),
        Avro::Union(0, Box::new(Avro::Null))
    );
    assert_eq!(
        round_trip(schema, &json!(5)).unwrap(),
        Avro::Union(1, Box::new(Avro::Long(5)))
    );
    assert_eq!(
        round_trip(schema, &json!("x")).unwrap(),
        Avro::Union(2, Box::new(Avro::String("x".into())))
    );
    assert_eq!(
        fit_error(schema, &json!([1])),
        "field ``: expected null or long or string, got an array"
    );
    // An int branch too small for the number gives way to a later long one.
    let widening = r#"["int", "long"]"#;
    assert_eq!(
        round_trip(widening, &json!(5_000_000_000_i64)).unwrap(),
        Avro::Union(1, Box::new(Avro::Long(5_000_000_000)))
    );
}

#[test]
fn defaults_fill_missing_fields() {
    let schema = r#"{"type":"record","name":"R","fields":[
        {"name":"a","type":["null","string"],"default":null},
        {"name":"b","type":"int","default":7},
        {"name":"c","type":{"type":"array","items":"string"},"default":[]}]}"#;
    assert_eq!(
        round_trip(schema, &json!({})).unwrap(),
        Avro::Record(vec![
            ("a".into(), Avro::Union(0, Box::new(Avro::Null))),
            ("b".into(), Avro::Int(7)),
            ("c".into(), Avro::Array(vec![])),
        ])
    );
}

#[test]
fn logical_types_take_their_json_forms() {
    let ts = r#"{"type":"long","logicalType":"timestamp-millis"}"#;
    assert_eq!(
        round_trip(ts, &json!("2025-11-24T16:00:00.137Z")).unwrap(),
        Avro::TimestampMillis(1_764_000_000_137)
    );
    assert_eq!(
        round_trip(ts, &json!(1_764_000_000_137_i64)).unwrap(),
        Avro::TimestampMillis(1_764_000_000_137)
    );
    assert_eq!(
        fit_error(ts, &json!("yesterday")),
        "field ``: `yesterday` is not an RFC 3339 time"
    );
    let date = r#"{"type":"int","logicalType":"date"}"#;
    assert_eq!(
        round_trip(date, &json!("1970-01-11")).unwrap(),
        Avro::Date(10)
    );
    let uuid = r#"{"type":"string","logicalType":"uuid"}"#;
    let id = "318f74a0-4767-55c9-9e9f-6b580379b8da";
    assert_eq!(
        round_trip(uuid, &json!(id)).unwrap(),
        Avro::Uuid(id.parse().unwrap())
    );
    assert_eq!(
        fit_error(uuid, &json!("nope")),
        "field ``: `nope` is not a UUID"
    );
    let e = r#"{"type":"enum","name":"Colour","symbols":["RED","GREEN"]}"#;
    assert_eq!(
        round_trip(e, &json!("GREEN")).unwrap(),
        Avro::Enum(1, "GREEN".into())
    );
    assert_eq!(
        fit_error(e, &json!("BLUE")),
        "field ``: `BLUE` is not a symbol of Colour (RED, GREEN)"
    );
}

#[test]
fn decimals_are_exact_or_refused() {
    let money = r#"{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}"#;
    let unscaled = |value: Value| match round_trip(money, &value).unwrap() {
        Avro::Decimal(d) => {
            let bytes: Vec<u8> = (&d).try_into().unwrap();
            let mut full = if bytes[0] & 0x80 == 0 {
                [0u8; 16]
            } else {
                [0xff; 16]
            };
            full[16 - bytes.len()..].copy_from_slice(&bytes);
            i128::from_be_bytes(full)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(unscaled(json!(438.39)), 43839);
    assert_eq!(unscaled(json!("-0.5")), -50);
    assert_eq!(unscaled(json!(12)), 1200);
    assert_eq!(unscaled(json!("1.5e2")), 15000);
    assert_eq!(unscaled(json!("128")), 12800);
    assert_eq!(unscaled(json!("-1.28")), -128);
    assert_eq!(
        fit_error(money, &json!(0.125)),
        "field ``: `0.125` has more than 2 decimal places"
    );
    assert_eq!(
        fit_error(money, &json!("12345678901.00")),
        "field ``: `12345678901.00` has more than 12 significant digits"
    );
    assert_eq!(
        fit_error(money, &json!("1,5")),
        "field ``: `1,5` is not a decimal number"
    );
    let fixed = r#"{"type":"fixed","name":"Money","size":2,"logicalType":"decimal","precision":4,"scale":0}"#;
    assert!(round_trip(fixed, &json!(-300)).is_ok());
}

/// The shipped schemas with `from` replaced by `to` in the header.
fn with_header_edited(from: &str, to: &str) -> Result<LedgerSchemas, SchemaError> {
    let mut files = schema_files();
    let header = files
        .iter_mut()
        .find(|f| f.path.ends_with("header.avsc"))
        .unwrap();
    assert!(header.text.contains(from));
    header.text = header.text.replace(from, to);
    LedgerSchemas::load(&files)
}

#[test]
fn a_header_other_than_recasts_is_refused() {
    let error = with_header_edited("\"mapping_version\"", "\"mapping_hash\"").unwrap_err();
    assert!(
        error
            .message
            .contains("differs from the header recast writes"),
        "{error}"
    );
    // Docs alone may change.
    assert!(with_header_edited("When recast wrote", "When the worker wrote").is_ok());
}

#[test]
fn schema_files_with_problems_are_named() {
    let mut files = schema_files();
    files.push(SchemaFile {
        path: "schemas/Broken.avsc".into(),
        text: r#"{"type":"record","name":"Broken","namespace":"shop.cart","fields":[
            {"name":"header","type":"recast.EventHeader"},
            {"name":"who","type":"shop.cart.Nobody"}]}"#
            .into(),
    });
    let error = LedgerSchemas::load(&files).unwrap_err().to_string();
    assert_eq!(
        error,
        "schemas/Broken.avsc: unknown type `shop.cart.Nobody` (no schema file defines shop.cart.Nobody)"
    );
    files.pop();
    files.push(SchemaFile {
        path: "schemas/bad.avsc".into(),
        text: "{\"type\": \"record\",\n \"name\": ".into(),
    });
    let error = LedgerSchemas::load(&files).unwrap_err().to_string();
    assert!(
        error.starts_with("schemas/bad.avsc: invalid JSON at line 2"),
        "{error}"
    );
}

proptest! {
    /// Any JSON the schema admits is written so that apache-avro reads back
    /// the same values.
    #[test]
    fn encoded_values_read_back(
        id in any::<i64>(),
        n in any::<i32>(),
        name in ".{0,20}",
        score in any::<f64>().prop_filter("finite", |f| f.is_finite()),
        tags in proptest::collection::vec("[a-z]{0,5}", 0..5),
        note in proptest::option::of("[a-z ]{0,10}"),
    ) {
        let schema = r#"{"type":"record","name":"R","fields":[
            {"name":"id","type":"long"},{"name":"n","type":"int"},
            {"name":"name","type":"string"},{"name":"score","type":"double"},
            {"name":"tags","type":{"type":"array","items":"string"}},
            {"name":"meta","type":{"type":"map","values":"int"}},
            {"name":"note","type":["null","string"]}]}"#;
        let value = json!({"id": id, "n": n, "name": name, "score": score, "tags": tags,
                           "meta": {"a": n}, "note": note});
        let decoded = round_trip(schema, &value).unwrap();
        let note = match &note {
            Some(s) => Avro::Union(1, Box::new(Avro::String(s.clone()))),
            None => Avro::Union(0, Box::new(Avro::Null)),
        };
        prop_assert_eq!(decoded, Avro::Record(vec![
            ("id".into(), Avro::Long(id)),
            ("n".into(), Avro::Int(n)),
            ("name".into(), Avro::String(name)),
            ("score".into(), Avro::Double(score)),
            ("tags".into(), Avro::Array(tags.into_iter().map(Avro::String).collect())),
            ("meta".into(), Avro::Map([("a".to_owned(), Avro::Int(n))].into_iter().collect())),
            ("note".into(), note),
        ]));
    }
}

#[test]
fn legacy_avro_values_decode_with_their_writer_schema() {
    use crate::registry::{Registry, dev::DevRegistry};
    let dev = DevRegistry::start("127.0.0.1:0").unwrap();
    let registry = Registry::new(&crate::registry::RegistryConfig {
        timeout: std::time::Duration::from_secs(5),
        retry_for: std::time::Duration::from_secs(5),
        ..crate::registry::RegistryConfig::at(&dev.url())
    });
    let command = r#"{"type":"record","name":"Cmd","fields":[
        {"name":"command","type":"string"},{"name":"qty","type":"int"},
        {"name":"note","type":["null","string"],"default":null}]}"#;
    let list = r#"{"type":"record","name":"Node","fields":[
        {"name":"next","type":["null","Node"]}]}"#;
    let command_id = registry.register("legacy-value", command).unwrap();
    let list_id = registry.register("list-value", list).unwrap();

    let schema = apache_avro::Schema::parse_str(command).unwrap();
    let mut datum = Vec::new();
    encode_value(
        &schema,
        &json!({"command": "ADD_TO_CART", "qty": 2, "note": "x"}),
        &Names::new(),
        &mut datum,
    )
    .unwrap();
    let framed = |id: u32, datum: &[u8]| {
        let mut v = Vec::new();
        write_frame(id, &mut v);
        v.extend_from_slice(datum);
        v
    };
    let good = framed(command_id, &datum);
    let unknown = framed(4242, &datum);
    let recursive = framed(list_id, &[0]);
    let schemas = WriterSchemas::new();
    registry
        .fetch_writer_schemas(
            &schemas,
            [
                Some(&good[..]),
                Some(&unknown[..]),
                Some(&recursive[..]),
                None,
            ],
        )
        .unwrap();

    let decoded = schemas.decode(command_id, &datum).unwrap();
    assert_eq!(
        Value::Object(decoded),
        json!({"command": "ADD_TO_CART", "qty": 2, "note": "x"})
    );
    assert_eq!(
        schemas.decode(4242, &datum).unwrap_err(),
        "schema id 4242 is not in the registry"
    );
    assert!(
        schemas
            .decode(list_id, &[0])
            .unwrap_err()
            .contains("is recursive (through Node)")
    );
    let truncated = schemas.decode(command_id, &datum[..3]).unwrap_err();
    assert!(
        truncated.starts_with("invalid Avro datum for schema id"),
        "{truncated}"
    );
    let mut trailing = datum.clone();
    trailing.push(7);
    assert_eq!(
        schemas.decode(command_id, &trailing).unwrap_err(),
        format!("1 bytes after the Avro datum of schema id {command_id}")
    );
}

/// The Avro legacy value the fuzz target `decode_avro` starts from
/// (`fuzz/seeds/decode_avro/`), written by apache-avro under the target's
/// writer schema (`fuzz/schemas/legacy.avsc`); `RECAST_BLESS=1` rewrites it.
#[test]
fn the_avro_fuzz_seed_is_a_legacy_command_recast_reads() {
    let text = include_str!("../../fuzz/schemas/legacy.avsc");
    let schema = apache_avro::Schema::parse_str(text).unwrap();
    let s = |v: &str| Avro::String(v.into());
    let command = Avro::Record(vec![
        ("command".into(), s("ADD_TO_CART")),
        ("requestId".into(), s("r-1")),
        ("cartId".into(), s("cart-1")),
        (
            "customer".into(),
            Avro::Record(vec![
                ("id".into(), s("c-1")),
                (
                    "email".into(),
                    Avro::Union(1, Box::new(s("user@example.com"))),
                ),
            ]),
        ),
        ("ts".into(), Avro::TimestampMillis(1_764_000_000_000)),
        ("sku".into(), s("SKU-1")),
        ("qty".into(), Avro::Int(2)),
        ("price".into(), Avro::Union(1, Box::new(Avro::Double(9.5)))),
        ("channel".into(), Avro::Enum(1, "APP".into())),
        ("tags".into(), Avro::Array(vec![s("gift"), s("é✓")])),
        (
            "attributes".into(),
            Avro::Map([("n".to_owned(), Avro::Union(1, Box::new(Avro::Long(-3))))].into()),
        ),
        ("digest".into(), Avro::Fixed(4, vec![1, 2, 3, 4])),
        ("blob".into(), Avro::Bytes(vec![0, 255])),
        (
            "_meta".into(),
            Avro::Record(vec![
                ("host".into(), s("web-1")),
                ("retry".into(), Avro::Int(1)),
            ]),
        ),
    ]);
    let datum = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_to_vec(command)
        .unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/seeds/decode_avro/command.bin"
    );
    if std::env::var_os("RECAST_BLESS").is_some() {
        std::fs::write(path, &datum).unwrap();
    }
    assert_eq!(
        std::fs::read(path).unwrap(),
        datum,
        "rerun with RECAST_BLESS=1"
    );

    let schemas = WriterSchemas::new();
    schemas.learn(7, Some(text));
    let mut framed = vec![0, 0, 0, 0, 7];
    framed.extend_from_slice(&datum);
    let decoder = crate::pipeline::decode::Decoder::new(1 << 20, 64).reading_avro(schemas, false);
    let object = decoder.decode(Some(&framed)).unwrap();
    assert_eq!(object["customer"]["email"], "user@example.com");
    assert_eq!(object["channel"], "APP");
    assert_eq!(object["qty"], 2);
}
