//! `recast explain`: why a legacy record went where it went — the
//! decision trace `Pipeline::run` records (`pipeline/trace.rs`), as JSON
//! lines for machines or as text for people.
//!
//! Records of a file are explained here, taken in order as `recast
//! replay` takes them (one partition, offsets from 0, a dedupe window over
//! the lines before), so a duplicate's verdict names the earlier line's
//! offset. Records on the broker are explained by `worker/explain.rs`,
//! which rebuilds the partition's window first; both render with
//! [`render`], as does `recast tap`.

use std::fmt::Write as _;
use std::io::BufRead;

use serde_json::{Map, Value};

use crate::config::Config;
use crate::pipeline::trace::Trace;
use crate::tools::legacy_file::{LineError, read_numbered};
use crate::tools::offline::Offline;

/// Which records of a file to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// The record on this 1-based line (the ones before still fill the
    /// dedupe window).
    One(usize),
    All,
}

/// The traces of the chosen records of `input`, each with its `line`.
pub fn explain_file(
    config: &Config,
    input: impl BufRead,
    lines: Lines,
    recorded_at_ms: i64,
) -> Result<Vec<Map<String, Value>>, LineError> {
    let mut offline = Offline::new(config);
    let mut explained = Vec::new();
    for read in read_numbered(input) {
        let (number, line) = read?;
        let wanted = match lines {
            Lines::One(n) if number > n => break,
            Lines::One(n) => number == n,
            Lines::All => true,
        };
        let mut trace = if wanted { Trace::on() } else { Trace::off() };
        let position = offline.next_position();
        let (topic, partition, offset) = (
            position.topic.to_owned(),
            position.partition,
            position.offset,
        );
        offline.run_traced(&line, recorded_at_ms, &mut trace);
        if wanted {
            let record = line.record(crate::pipeline::record::Position {
                topic: &topic,
                partition,
                offset,
            });
            let mut traced = trace.into_json(&record, offline.mapping_version());
            if let Some(Value::Object(record)) = traced.get_mut("record") {
                record.insert("line".into(), number.into());
            }
            explained.push(traced);
        }
    }
    if let Lines::One(n) = lines
        && explained.is_empty()
    {
        return Err(LineError {
            line: n,
            message: "no legacy record on this line".into(),
        });
    }
    Ok(explained)
}

/// Colours for a terminal, or none.
#[derive(Debug, Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn paint(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// A trace as text: a title line, then one line per decision, the outcome
/// last. `colour` adds terminal colours.
pub fn render(traced: &Value, colour: bool) -> String {
    let paint = Paint(colour);
    let record = &traced["record"];
    let mut title = format!(
        "{}/{}@{}",
        text(&record["topic"]),
        record["partition"],
        record["offset"]
    );
    if let Some(line) = record.get("line") {
        let _ = write!(title, " (line {line})");
    }
    if !record["key"].is_null() {
        let _ = write!(title, "  key {}", record["key"]);
    }
    let _ = write!(title, "  mapping {}", text(&traced["mapping_version"]));
    if let Some(ended) = traced.get("transaction") {
        let _ = write!(title, "  transaction {}", text(ended));
    }
    let mut out = paint.paint("1", &title);
    out.push('\n');
    for decision in traced["decisions"].as_array().into_iter().flatten() {
        let (label, line) = describe(decision, paint);
        let _ = writeln!(out, "  {label:<11} {line}");
    }
    out
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn list(value: &Value) -> String {
    value
        .as_array()
        .map(|items| items.iter().map(text).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// The fields a decision says were removed, added or changed.
fn changes(d: &Value) -> Option<String> {
    let changes: Vec<String> = ["removed", "added", "changed"]
        .iter()
        .filter(|what| d[**what].is_array())
        .map(|what| format!("{what} {}", list(&d[*what])))
        .collect();
    (!changes.is_empty()).then(|| changes.join("; "))
}

/// One decision's label and line.
fn describe(d: &Value, paint: Paint) -> (String, String) {
    let step = text(&d["step"]);
    let line = match step.as_str() {
        "dead_letter" => format!(
            "of {}, rejected by mapping {} at {}: {}",
            text(&d["source"]),
            text(&d["rejected_by"]),
            text(&d["stage"]),
            text(&d["reason"])
        ),
        "passed_over" => paint.paint(
            "33",
            &format!("a re-drive passes it over: {}", text(&d["why"])),
        ),
        "decode" => {
            let mut line = format!(
                "{}, {} bytes, {} fields",
                text(&d["format"]),
                d["bytes"],
                d["fields"]
            );
            if let Some(id) = d.get("writer_schema_id") {
                let _ = write!(line, ", writer schema {id}");
            }
            line
        }
        "transform" => format!("{}, event {}", text(&d["file"]), d["event"]),
        "shape" => return (text(&d["at"]), shape(d)),
        "outcome" => return ("→".into(), outcome(d, paint)),
        "header" | "dedupe" | "schema" | "size" => encoding(&step, d),
        _ => mapping(&step, d),
    };
    let label = match step.as_str() {
        "event_fields" => "[event]".to_owned(),
        "script_not_called" => "script".to_owned(),
        other => other.replace('_', " "),
    };
    (label, line)
}

/// The decisions of the transform chain.
fn mapping(step: &str, d: &Value) -> String {
    let held = |held: &Value| if held == true { "held" } else { "did not hold" };
    match step {
        "filter" => format!(
            "[[filter]] {}: {} {}",
            d["rule"],
            text(&d["when"]),
            held(&d["held"])
        ),
        "reject" => {
            let mut line = format!(
                "[[reject]] {}: {} {}",
                d["rule"],
                text(&d["when"]),
                held(&d["held"])
            );
            if d["held"] == true {
                let _ = write!(line, " → {}", text(&d["reason"]));
            }
            line
        }
        "require" => format!(
            "`{}` {}",
            text(&d["field"]),
            if d["present"] == true {
                "present"
            } else {
                "missing"
            }
        ),
        "command" => format!(
            "{}: {} → {} → {}",
            text(&d["from"]),
            d["raw"],
            text(&d["normalised"]),
            text(&d["result"])
        ),
        "split" => format!("on `{}` into {} events", text(&d["field"]), d["into"]),
        "event_fields" => ["key", "occurred_at_ms", "correlation_id"]
            .iter()
            .filter_map(|f| d.get(*f).map(|v| format!("{f} {v}")))
            .collect::<Vec<_>>()
            .join(", "),
        "script" => {
            let mut line = format!("{} ({} operations)", text(&d["result"]), d["operations"]);
            if let Some(changes) = changes(d) {
                let _ = write!(line, ": {changes}");
            }
            line
        }
        "script_not_called" => format!("not called: EVENT_TYPES leaves out {}", d["event_type"]),
        _ => d.to_string(),
    }
}

fn shape(d: &Value) -> String {
    let what = match (d["applied"] == true, changes(d)) {
        (false, _) => "skipped (its `when` did not hold)".to_owned(),
        (true, None) => "changed nothing".to_owned(),
        (true, Some(changes)) => changes,
    };
    format!("{}: {what}", text(&d["op"]))
}

/// The decisions of dedupe, the envelope and the encoding, per event.
fn encoding(step: &str, d: &Value) -> String {
    let mut line = format!("event {}: ", d["event"]);
    match step {
        "header" => {
            let h = &d["header"];
            let _ = write!(
                line,
                "{}, event_id {}, occurred_at {}",
                text(&h["event_type"]),
                text(&h["event_id"]),
                text(&h["occurred_at"])
            );
        }
        "dedupe" => {
            line.push_str(&text(&d["identity"]));
            if let Some(key) = d.get("key") {
                let _ = write!(line, " key {}", text(key));
            }
            let _ = write!(line, " → {}", text(&d["verdict"]));
            if let Some(of) = d.get("of_offset") {
                let _ = write!(line, " of offset {of}");
            }
        }
        "schema" => {
            let _ = write!(
                line,
                "{}, subject {}",
                text(&d["schema"]),
                text(&d["subject"])
            );
            if let Some(id) = d.get("id") {
                let _ = write!(line, ", id {id}");
            }
            line.push_str(if d["fits"] == true {
                ": fits"
            } else {
                ": does not fit"
            });
        }
        _ => {
            let _ = write!(line, "{} bytes, limit {}", d["bytes"], d["limit"]);
        }
    }
    line
}

fn outcome(d: &Value, paint: Paint) -> String {
    match text(&d["outcome"]).as_str() {
        "events" => paint.paint("32", &format!("events: {}", list(&d["event_types"]))),
        "duplicate" => paint.paint(
            "33",
            &format!("duplicate of offset {}: nothing written", d["of_offset"]),
        ),
        "filtered" => paint.paint("33", "filtered: nothing written"),
        "rejected" => paint.paint(
            "31",
            &format!(
                "rejected at {}: {} → the dead-letter topic",
                text(&d["stage"]),
                text(&d["reason"])
            ),
        ),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// When the golden traces' records were recorded.
    const RECORDED_AT_MS: i64 = 1_800_000_000_000;

    fn golden_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/explain")
    }

    /// The traces of every record of `name.jsonl`, checked against
    /// `name.expected.jsonl` (`RECAST_BLESS=1` rewrites it, for review).
    fn golden(config: &Config, name: &str) -> Vec<Value> {
        let dir = golden_dir();
        let input = std::fs::File::open(dir.join(format!("{name}.jsonl"))).unwrap();
        let traces: Vec<Value> = explain_file(
            config,
            std::io::BufReader::new(input),
            Lines::All,
            RECORDED_AT_MS,
        )
        .unwrap()
        .into_iter()
        .map(|trace| portable(config, &Value::Object(trace)))
        .collect();
        let expected_path = dir.join(format!("{name}.expected.jsonl"));
        if std::env::var_os("RECAST_BLESS").is_some() {
            let lines: Vec<String> = traces.iter().map(Value::to_string).collect();
            std::fs::write(&expected_path, lines.join("\n") + "\n").unwrap();
        }
        let expected: Vec<Value> = std::fs::read_to_string(&expected_path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(traces.len(), expected.len(), "{name}: records");
        for (got, want) in traces.iter().zip(&expected) {
            assert_eq!(
                got, want,
                "{name}, line {}: the trace changed; if on purpose, rerun with RECAST_BLESS=1 and review the diff",
                got["record"]["line"]
            );
        }
        traces
    }

    /// A trace as it reads in any checkout: a configuration file's
    /// transform paths, and so the mapping version hashed from them, name
    /// the directory the repository is in.
    fn portable(config: &Config, trace: &Value) -> Value {
        let text = trace
            .to_string()
            .replace(env!("CARGO_MANIFEST_DIR"), "<repository>")
            .replace(config.mapping.version(), "<mapping version>");
        serde_json::from_str(&text).unwrap()
    }

    fn decisions<'a>(trace: &'a Value, step: &str) -> Vec<&'a Value> {
        trace["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["step"] == step)
            .collect()
    }

    fn outcome(trace: &Value) -> &Value {
        trace["decisions"].as_array().unwrap().last().unwrap()
    }

    #[test]
    fn the_cart_chain_explains_every_outcome_and_stage() {
        let config = Config::load(None, Vec::new()).unwrap();
        let t = golden(&config, "cart");
        let outcomes: Vec<(&str, &str)> = t
            .iter()
            .map(|t| {
                let o = outcome(t);
                (
                    o["outcome"].as_str().unwrap(),
                    o["stage"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            outcomes,
            [
                ("filtered", ""),
                ("events", ""),
                ("duplicate", ""),
                ("rejected", "mapping"),
                ("events", ""),
                ("rejected", "mapping"),
                ("rejected", "schema"),
                ("rejected", "decode"),
                ("rejected", "mapping"),
            ]
        );
        let command = decisions(&t[0], "command")[0];
        assert_eq!(command["raw"], "HEARTBEAT");
        assert_eq!(command["result"], "ignored");
        let shaped = decisions(&t[1], "shape");
        assert_eq!(
            shaped[0]["removed"],
            serde_json::json!(["_meta", "command", "debug_trace"])
        );
        assert_eq!(shaped[1]["op"], "hash");
        assert_eq!(shaped[1]["changed"], serde_json::json!(["customer.email"]));
        // The retry spells the command and orders the keys differently: the
        // same request all the same, a duplicate of the first offset.
        let dedupe = decisions(&t[2], "dedupe")[0];
        assert_eq!(dedupe["identity"], "fields(requestId=\"r-1\")");
        assert_eq!(dedupe["key"], decisions(&t[1], "dedupe")[0]["key"]);
        assert_eq!(
            (&dedupe["verdict"], &dedupe["of_offset"]),
            (&"duplicate".into(), &1.into())
        );
        assert_eq!(
            decisions(&t[3], "command")[0]["result"],
            "unknown: rejected"
        );
        assert_eq!(decisions(&t[4], "script")[0]["result"], "returned 1 event");
        assert!(
            decisions(&t[4], "script")[0]["operations"]
                .as_u64()
                .unwrap()
                > 0
        );
        assert_eq!(
            decisions(&t[1], "script_not_called")[0]["event_type"],
            "AddedToCart"
        );
        assert_eq!(outcome(&t[5])["reason"], "negative total -5.0");
        let schema = decisions(&t[6], "schema")[0];
        assert_eq!(
            (&schema["schema"], &schema["subject"], &schema["fits"]),
            (
                &"shop.cart.AddedToCart".into(),
                &"ledger-cart-shop.cart.AddedToCart".into(),
                &false.into()
            )
        );
        assert!(decisions(&t[7], "decode").is_empty(), "nothing decoded");
        assert_eq!(decisions(&t[8], "event_fields").len(), 0, "no key to read");
    }

    #[test]
    fn the_orders_script_explains_events_splits_throws_and_filters() {
        let config =
            Config::load(Some(&golden_dir().join("orders.recast.toml")), Vec::new()).unwrap();
        let t = golden(&config, "orders");
        assert_eq!(
            outcome(&t[0])["event_types"],
            serde_json::json!(["OrderPlaced"])
        );
        assert_eq!(decisions(&t[1], "script")[0]["result"], "returned 2 events");
        assert_eq!(decisions(&t[1], "header").len(), 2);
        assert_eq!(
            outcome(&t[2])["reason"],
            "orders are never deleted: a DELETE is a repair for a person to review"
        );
        assert_eq!(
            decisions(&t[2], "script")[0]["result"]
                .as_str()
                .unwrap()
                .split(':')
                .next(),
            Some("rejected")
        );
        for filtered in &t[3..] {
            assert_eq!(outcome(filtered)["outcome"], "filtered");
            assert_eq!(
                decisions(filtered, "script")[0]["result"],
                "returned nothing: filtered"
            );
        }
    }

    #[test]
    fn one_line_is_explained_with_the_window_of_the_lines_before() {
        let config = Config::load(None, Vec::new()).unwrap();
        let input = std::fs::read(golden_dir().join("cart.jsonl")).unwrap();
        let only = explain_file(&config, &input[..], Lines::One(3), RECORDED_AT_MS).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0]["record"]["line"], 3);
        assert_eq!(outcome(&Value::Object(only[0].clone()))["of_offset"], 1);
        let err = explain_file(&config, &input[..], Lines::One(99), RECORDED_AT_MS).unwrap_err();
        assert_eq!(err.line, 99);
    }

    #[test]
    fn text_output_reads_as_the_decisions_made() {
        let config = Config::load(None, Vec::new()).unwrap();
        let input = std::fs::read(golden_dir().join("cart.jsonl")).unwrap();
        let traces = explain_file(&config, &input[..], Lines::All, RECORDED_AT_MS).unwrap();
        let text = |i: usize| render(&Value::Object(traces[i].clone()), false);
        let duplicate = text(2);
        assert!(
            duplicate.starts_with("legacy-cart/0@2 (line 3)  key \"cart-1\"  mapping "),
            "{duplicate}"
        );
        assert!(
            duplicate
                .contains("command     field `command`: \"ADD_TO_CART\" → addtocart → AddedToCart"),
            "{duplicate}"
        );
        assert!(duplicate.contains("→ duplicate of offset 1"), "{duplicate}");
        assert!(
            duplicate.contains("steps[0]    drop: removed _meta, command\n"),
            "{duplicate}"
        );
        let rejected = text(6);
        assert!(rejected.contains(": does not fit"), "{rejected}");
        assert!(
            rejected.trim_end().ends_with("→ the dead-letter topic"),
            "{rejected}"
        );
        assert!(!rejected.contains('\x1b'), "no colour unless asked");
        assert!(render(&Value::Object(traces[6].clone()), true).contains("\x1b[31m"));
    }
}
