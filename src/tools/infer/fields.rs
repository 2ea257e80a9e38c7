//! The field inventory of one event type: every path seen in its
//! records, with the JSON types, how often present, a few examples (masked
//! when personal), the time forms, and what the classifier makes of it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::classify;

/// Examples kept per field.
const EXAMPLES: usize = 3;
/// Distinct values counted per field before it counts as many.
const DISTINCT: usize = 64;

/// What was seen of one field path.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    /// Records the path was present in (null included).
    pub present: u64,
    /// JSON kinds seen, with counts.
    pub kinds: BTreeMap<&'static str, u64>,
    pub examples: Vec<String>,
    /// Event-time forms seen (`epoch milliseconds`, `RFC 3339`, …).
    pub time_forms: BTreeSet<&'static str>,
    /// Values that were not a time, when some were.
    pub not_times: u64,
    /// Why it is technical noise, when any value or its name says so.
    pub noise: Option<&'static str>,
    /// What personal data it holds, when any value looks like it.
    pub personal: Option<&'static str>,
    /// Distinct values, up to [`DISTINCT`].
    pub distinct: BTreeSet<String>,
}

impl Field {
    /// Whether values of more than one JSON type (null aside) were seen.
    pub(crate) fn varies(&self) -> bool {
        self.kinds.keys().filter(|k| **k != "null").count() > 1
    }

    pub(crate) fn many_distinct(&self) -> bool {
        self.distinct.len() >= DISTINCT
    }

    fn see(&mut self, path: &str, value: &Value) {
        self.present += 1;
        *self.kinds.entry(classify::kind(value)).or_default() += 1;
        if matches!(value, Value::Object(_) | Value::Array(_)) {
            return;
        }
        self.noise = self.noise.or_else(|| classify::noise(path, value));
        if self.personal.is_none() {
            self.personal = classify::personal(path, value);
            if self.personal.is_some() {
                // Earlier examples of a personal field are shown masked too.
                for shown in &mut self.examples {
                    *shown = classify::redact(shown);
                }
            }
        }
        match classify::time_form(value) {
            Some(form) => {
                self.time_forms.insert(form);
            }
            None if !value.is_null() => self.not_times += 1,
            None => {}
        }
        if self.distinct.len() < DISTINCT {
            self.distinct.insert(value.to_string());
        }
        if self.examples.len() < EXAMPLES {
            let shown = classify::example(value, self.personal.is_some());
            if !self.examples.contains(&shown) {
                self.examples.push(shown);
            }
        }
    }
}

/// Every field path of one event type's records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Inventory {
    pub records: u64,
    pub fields: BTreeMap<String, Field>,
}

impl Inventory {
    /// Adds one record's payload: objects are walked into (`a.b`), arrays
    /// of objects element by element (`items[].sku`).
    pub(crate) fn add(&mut self, payload: &Map<String, Value>) {
        self.records += 1;
        self.walk("", payload);
    }

    fn walk(&mut self, prefix: &str, object: &Map<String, Value>) {
        for (key, value) in object {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            self.fields
                .entry(path.clone())
                .or_default()
                .see(&path, value);
            match value {
                Value::Object(inner) => self.walk(&path, inner),
                Value::Array(items) => {
                    let element = format!("{path}[]");
                    for item in items {
                        match item {
                            Value::Object(inner) => self.walk(&element, inner),
                            other => self
                                .fields
                                .entry(element.clone())
                                .or_default()
                                .see(&element, other),
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// How often `path` is present, as a share of the records.
    pub(crate) fn share(&self, path: &str) -> f64 {
        let present = self.fields.get(path).map_or(0, |f| f.present);
        present as f64 / self.records.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_types_presence_and_examples_are_counted() {
        let mut inventory = Inventory::default();
        for value in [
            json!({"id": "o-1", "qty": 2, "customer": {"email": "ada@example.com"}, "items": [{"sku": "A"}, {"sku": "B"}]}),
            json!({"id": "o-2", "qty": "3", "ts": 1_764_000_000_000_i64}),
        ] {
            inventory.add(value.as_object().unwrap());
        }
        assert_eq!(inventory.records, 2);
        let qty = &inventory.fields["qty"];
        assert!(qty.varies());
        assert_eq!(qty.kinds.len(), 2);
        let email = &inventory.fields["customer.email"];
        assert_eq!(email.personal, Some("an e-mail address"));
        assert_eq!(email.examples, ["aaa@aaaaaaa.aaa"]);
        assert_eq!(inventory.fields["items[].sku"].present, 2);
        assert!((inventory.share("ts") - 0.5).abs() < 1e-9);
        assert!(
            inventory.fields["ts"]
                .time_forms
                .contains("epoch milliseconds")
        );
    }
}
