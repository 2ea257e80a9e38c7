//! The mapping chain: the shipped cart transform, the language's
//! sections, and the errors of invalid files.

use super::*;
use serde_json::json;

const CART: &str = include_str!("../../../transforms/cart.toml");

fn file(path: &str, text: &str) -> TransformFile {
    TransformFile {
        path: path.into(),
        text: text.into(),
    }
}

fn compile(texts: &[&str]) -> Result<Mapping, FileError> {
    let files: Vec<TransformFile> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| file(&format!("t{i}.toml"), t))
        .collect();
    Mapping::compile(
        &files,
        Some("test-key-of-16-bytes"),
        &ScriptsConfig::default(),
    )
}

fn record(headers: Vec<crate::pipeline::record::Header<'static>>) -> LegacyRecord<'static> {
    test_record(Some(b"record-key"), headers)
}

fn apply(mapping: &Mapping, value: &Value) -> Result<Mapped, MappingError> {
    mapping.apply(
        value.as_object().unwrap().clone(),
        &record(Vec::new()),
        &mut Trace::off(),
    )
}

fn events(mapping: &Mapping, value: &Value) -> Vec<EventBody> {
    match apply(mapping, value) {
        Ok(Mapped::Events(events)) => events,
        other => panic!("{value}: {other:?}"),
    }
}

#[test]
fn every_spelling_of_a_command_maps_to_one_event_type() {
    let m = compile(&[CART]).unwrap();
    for spelling in ["ADD_TO_CART", "AddToCart", "add.to.cart", "add-to-cart"] {
        let body = &events(&m, &json!({"command": spelling, "cartId": "c1"}))[0];
        assert_eq!(body.event_type, "AddedToCart", "{spelling}");
    }
}

#[test]
fn the_cart_transform_strips_context_and_protects_the_email() {
    let input = json!({
        "command": "checkout", "requestId": "r-1", "cartId": "cart-9",
        "customer": {"id": "c-1", "email": "a@example.com"}, "ts": 1_764_000_000_548_i64,
        "total": 438.39, "_meta": {"host": "h"}, "debug_trace": "x",
        "lines": [{"sku": "S", "debug_sql": "select"}]
    });
    let body = events(&compile(&[CART]).unwrap(), &input).remove(0);
    assert_eq!(body.event_type, "CheckedOut");
    assert_eq!(body.key, "cart-9");
    assert_eq!(body.occurred_at_ms, Some(1_764_000_000_548));
    assert_eq!(body.correlation_id.as_deref(), Some("r-1"));
    let email = HashKey::new(b"test-key-of-16-bytes").hash_hex(b"a@example.com");
    assert_eq!(
        Value::Object(body.payload),
        json!({"requestId": "r-1", "cartId": "cart-9", "customer": {"id": "c-1", "email": email},
               "ts": 1_764_000_000_548_i64, "total": 438.39, "lines": [{"sku": "S"}]})
    );
}

#[test]
fn heartbeats_are_filtered_and_rejections_say_why() {
    let m = compile(&[CART]).unwrap();
    assert_eq!(
        apply(&m, &json!({"command": "heartbeat", "_meta": {}})),
        Ok(Mapped::Filtered)
    );
    for (input, reason) in [
        (json!({"cartId": "c"}), "no command at `command`"),
        (
            json!({"command": 7}),
            "command at `command` is a number, not a string",
        ),
        (
            json!({"command": "DELETE_EVERYTHING", "cartId": "c"}),
            "unknown command `DELETE_EVERYTHING`",
        ),
        (json!({"command": "checkout"}), "no ledger key at `cartId`"),
        (
            json!({"command": "checkout", "cartId": ["a"]}),
            "ledger key at `cartId` is an array, not a string or number",
        ),
        (
            json!({"command": "checkout", "cartId": "c", "ts": "yesterday"}),
            "event time at `ts`: `yesterday` is not an RFC 3339 time",
        ),
    ] {
        assert_eq!(apply(&m, &input).unwrap_err().reason, reason, "{input}");
    }
}

#[test]
fn filters_rejections_and_requirements_run_before_the_command() {
    let m = compile(&[r#"
require = ["cartId"]
[[filter]]
when = { field = "type", in = ["health", "probe"] }
[[reject]]
when = { field = "qty", matches = "^-" }
reason = "negative quantity"
[command]
field = "command"
events = { ADD = "Added" }
"#])
    .unwrap();
    assert_eq!(apply(&m, &json!({"type": "probe"})), Ok(Mapped::Filtered));
    assert_eq!(
        apply(&m, &json!({"command": "ADD"})).unwrap_err().reason,
        "missing required field `cartId`"
    );
    assert_eq!(
        apply(&m, &json!({"command": "ADD", "cartId": "c", "qty": -2}))
            .unwrap_err()
            .reason,
        "negative quantity"
    );
    // No event.key anywhere: the record key keys the ledger.
    assert_eq!(
        events(&m, &json!({"command": "ADD", "cartId": "c"}))[0].key,
        "record-key"
    );
}

#[test]
fn unknown_commands_can_be_dropped_or_named_by_derivation() {
    let drop = compile(&["[command]\nfield = \"c\"\nevents = { A = \"Aed\" }\nunknown = \"drop\""])
        .unwrap();
    assert_eq!(
        apply(&drop, &json!({"c": "SHIP_ORDER"})),
        Ok(Mapped::Filtered)
    );
    let derive = compile(&["[command]\nfield = \"c\"\nunknown = \"derive\""]).unwrap();
    let body = &events(&derive, &json!({"c": "ship.order"}))[0];
    assert_eq!(body.event_type, "ShippedOrder");
    assert_eq!(body.derived_from.as_deref(), Some("ship.order"));
}

#[test]
fn the_command_can_come_from_a_header_or_the_record_key() {
    let m =
        compile(&["[command]\nheader = \"x-command\"\nevents = { PLACE_ORDER = \"OrderPlaced\" }"])
            .unwrap();
    let with_header = record(vec![("x-command", Some(&b"place-order"[..]))]);
    let Ok(Mapped::Events(bodies)) = m.apply(Map::new(), &with_header, &mut Trace::off()) else {
        panic!()
    };
    assert_eq!(bodies[0].event_type, "OrderPlaced");
    assert_eq!(
        m.apply(Map::new(), &record(Vec::new()), &mut Trace::off())
            .unwrap_err()
            .reason,
        "no command header `x-command`"
    );
    let by_key =
        compile(&["[command]\nrecord_key = true\nevents = { RECORD_KEY = \"Keyed\" }"]).unwrap();
    assert_eq!(events(&by_key, &json!({}))[0].event_type, "Keyed");
}

#[test]
fn a_split_makes_one_event_per_element() {
    let m = compile(&[r#"
[command]
field = "command"
events = { ADD_ITEMS = "ItemAdded" }
[split]
field = "items"
[event]
key = "cartId"
[[steps]]
drop = ["command"]
[types.ItemAdded]
steps = [{ set = { source = "batch" } }]
"#])
    .unwrap();
    let bodies = events(
        &m,
        &json!({"command": "ADD_ITEMS", "cartId": "c", "items": [{"sku": "A"}, {"sku": "B", "cartId": "d"}]}),
    );
    let payloads: Vec<Value> = bodies
        .iter()
        .map(|b| Value::Object(b.payload.clone()))
        .collect();
    assert_eq!(
        payloads,
        [
            json!({"cartId": "c", "sku": "A", "source": "batch"}),
            json!({"cartId": "d", "sku": "B", "source": "batch"})
        ]
    );
    assert_eq!((bodies[0].key.as_str(), bodies[1].key.as_str()), ("c", "d"));
    for (items, reason) in [
        (json!([]), "nothing to split: `items` is empty"),
        (
            json!("x"),
            "cannot split on `items`: it is a string, not an array",
        ),
        (
            json!([1]),
            "an element of `items` is a number, not an object; set split.into to place it",
        ),
    ] {
        let input = json!({"command": "ADD_ITEMS", "cartId": "c", "items": items});
        assert_eq!(apply(&m, &input).unwrap_err().reason, reason);
    }
}

#[test]
fn a_chain_runs_its_files_in_order() {
    let strip = "[[steps]]\ndrop = [\"_meta\"]\n[[steps]]\nrename = { qty = \"quantity\" }";
    let m = compile(&[CART, strip]).unwrap();
    let body = &events(
        &m,
        &json!({"command": "ADD_TO_CART", "cartId": "c", "qty": 1}),
    )[0];
    assert_eq!(
        Value::Object(body.payload.clone()),
        json!({"cartId": "c", "quantity": 1})
    );
}

#[test]
fn version_is_a_hash_of_the_files() {
    let a = compile(&[CART]).unwrap();
    let b = compile(&[&format!("{CART}\n[[steps]]\ndrop = [\"sku\"]\n")]).unwrap();
    assert_ne!(a.version(), b.version());
    assert_eq!(a.version(), compile(&[CART]).unwrap().version());
    assert_eq!(a.version().len(), 16);
}

#[test]
fn invalid_files_are_refused_with_file_line_and_reason() {
    let head = "[command]\nfield = \"c\"\nevents = { A = \"Aed\" }\n";
    for (text, expected) in [
        (
            format!("{head}[[steps]]\nexplode = [\"x\"]\n"),
            "t0.toml:5: unknown field `explode`",
        ),
        (
            format!("{head}\n[[steps]]\ndrop = [\"a..b\"]\n"),
            "t0.toml:5: `a..b` has an empty segment",
        ),
        (
            format!("{head}[[filter]]\nwhen = {{ field = \"x\", matches = \"(\" }}\n"),
            "t0.toml:5: `matches` is not a valid regex",
        ),
        (
            format!("{head}[[filter]]\nwhen = {{ feild = \"x\", exists = true }}\n"),
            "t0.toml:5: unknown field `feild`",
        ),
        (
            format!("{head}[split]\nfield = \"a.\"\n"),
            "t0.toml:5: split.field: `a.` is not a dotted field path",
        ),
        (
            format!("{head}[event]\nkey = 3\n"),
            "t0.toml:5: invalid type: integer `3`",
        ),
        (
            format!("{head}[types.Bed]\nsteps = []\n"),
            "t0.toml: types.Bed: no command of the chain maps to `Bed`",
        ),
        (
            "[[steps]]\ndrop = [\"x\"]\n".into(),
            "t0.toml: no transform of the chain has a [command] section",
        ),
        (
            "[command]\nfield = \"c\"\nevents = { A = \"added\" }\n".into(),
            "`added` is not an event type name",
        ),
        (
            "[command]\nfield = \"c\"\nevents = { ADD_IT = \"A\", AddIt = \"B\" }\n".into(),
            "`ADD_IT` and `AddIt` are spellings of one command",
        ),
        (
            "[command]\nevents = { A = \"Aed\" }\n".into(),
            "exactly one of `field`, `header`, `record_key = true`",
        ),
        (
            format!("{head}[[steps]]\nhash = [\"email\"]\n"),
            "`hash` needs a secret key",
        ),
    ] {
        let files = [file("t0.toml", &text)];
        let hash_key = (!expected.contains("hash")).then_some("test-key-of-16-bytes");
        let error = Mapping::compile(&files, hash_key, &ScriptsConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(expected),
            "{text}\n→ {error}\nwanted: {expected}"
        );
    }
}

#[test]
fn a_trace_names_every_rule_tried_the_split_and_each_steps_changes() {
    let m = compile(&[r#"
require = ["cartId"]
[[filter]]
when = { field = "command", equals = "PING" }
[[reject]]
when = { not = { field = "items", exists = true } }
reason = "no items"
[command]
field = "command"
events = { ADD_ITEMS = "ItemAdded" }
[split]
field = "items"
[event]
key = "cartId"
[[steps]]
drop = ["command"]
[[steps]]
when = { field = "sku", equals = "B" }
set = { priority = true }
[types.ItemAdded]
steps = [{ rename = { sku = "item.sku" } }]
"#])
    .unwrap();
    let mut trace = Trace::on();
    let value =
        json!({"command": "add_items", "cartId": "c", "items": [{"sku": "A"}, {"sku": "B"}]});
    let mapped = m.apply(
        value.as_object().unwrap().clone(),
        &record(Vec::new()),
        &mut trace,
    );
    assert!(
        matches!(mapped, Ok(Mapped::Events(ref e)) if e.len() == 2),
        "{mapped:?}"
    );
    let steps: Vec<Value> = trace
        .decisions
        .iter()
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    assert_eq!(
        steps[0],
        json!({"step": "transform", "file": "t0.toml", "event": 0})
    );
    assert_eq!(
        steps[1],
        json!({"step": "filter", "rule": 0, "when": "command equals \"PING\"", "held": false})
    );
    assert_eq!(
        steps[2],
        json!({"step": "reject", "rule": 0, "when": "not(items exists)", "held": false, "reason": "no items"})
    );
    assert_eq!(
        steps[3],
        json!({"step": "require", "field": "cartId", "present": true})
    );
    assert_eq!(steps[4]["raw"], "add_items");
    assert_eq!(steps[4]["normalised"], "additems");
    assert_eq!(steps[4]["result"], "ItemAdded");
    assert_eq!(
        steps[5],
        json!({"step": "split", "field": "items", "into": 2})
    );
    // Then, per event: [event], the steps, the per-type steps.
    let at = |event: usize| -> Vec<(String, bool)> {
        let per_event = &steps[6 + event * 4..6 + event * 4 + 4];
        assert_eq!(per_event[0]["step"], "event_fields");
        per_event[1..]
            .iter()
            .map(|d| (d["at"].as_str().unwrap().to_owned(), d["applied"] == true))
            .collect()
    };
    let expected = |priority: bool| {
        vec![
            ("steps[0]".to_owned(), true),
            ("steps[1]".to_owned(), priority),
            ("types.ItemAdded.steps[0]".to_owned(), true),
        ]
    };
    assert_eq!(at(0), expected(false));
    assert_eq!(at(1), expected(true));
    assert_eq!(steps[6 + 4 + 2]["added"], json!(["priority"]));
    assert_eq!(steps[6 + 4 + 3]["removed"], json!(["sku"]));
    assert_eq!(steps[6 + 4 + 3]["added"], json!(["item"]));
    assert_eq!(steps.len(), 6 + 8);
}

#[test]
fn fields_the_first_step_drops_unread_are_named_for_the_decoder() {
    // The cart transform reads `command` before dropping it; `_meta` and
    // `debug_trace` nothing reads, and a glob is not a field name.
    let cart = compile(&[CART]).unwrap();
    assert_eq!(cart.fields_dropped_unread(), ["_meta", "debug_trace"]);

    let table = "[command]\nfield = \"command\"\n[command.events]\nPING = \"Pinged\"\n";
    // `before` comes first, where a top-level key such as `require` is one.
    let unread = |before: &str, steps: &str| {
        compile(&[&format!("{before}{table}{steps}")])
            .unwrap()
            .fields_dropped_unread()
    };
    let drop = "[[steps]]\ndrop = [\"_meta\", \"note\"]\n";
    assert_eq!(unread("", drop), ["_meta", "note"]);
    // Whatever reads a field, or writes below it, before the steps keeps it.
    for reader in [
        "[[filter]]\nwhen = { field = \"_meta.retry\", equals = 1 }\n",
        "[[reject]]\nwhen = { not = { field = \"_meta\", exists = true } }\nreason = \"r\"\n",
        "require = [\"_meta.host\"]\n",
        "[split]\nfield = \"_meta\"\n",
        "[split]\nfield = \"items\"\ninto = \"_meta.item\"\n",
        "[event]\nkey = \"_meta.id\"\n",
        "[event]\noccurred_at = \"_meta\"\n",
        "[event]\ncorrelation_id = \"_meta.request\"\n",
    ] {
        assert_eq!(unread(reader, drop), ["note"], "{reader}");
    }
    // Only a first step that always drops.
    let rename = format!("[[steps]]\nrename = {{ a = \"b\" }}\n{drop}");
    assert!(unread("", &rename).is_empty());
    let guarded = "[[steps]]\ndrop = [\"_meta\"]\nwhen = { field = \"a\", exists = true }\n";
    assert!(unread("", guarded).is_empty());
    // A script first may read anything; a later file's drops are not first.
    let script = Mapping::compile(
        &[
            file(
                "a.rhai",
                "fn transform(record) { record.event_type = \"Pinged\"; record }",
            ),
            file("b.toml", drop),
        ],
        None,
        &ScriptsConfig::default(),
    )
    .unwrap();
    assert!(script.fields_dropped_unread().is_empty());
}
