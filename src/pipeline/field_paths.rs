//! Which legacy fields reached none of a record's events, for `recast
//! replay`: the record path notes the leaves of the decoded record and of
//! each event's payload (through the trace), and a record whose events
//! were written counts the legacy leaves that no payload has.
//!
//! A leaf is every value that is not a non-empty object, named by its
//! dotted path. Paths are interned as nodes of a tree of their
//! dot-separated segments, so a key holding a dot names the same path as
//! the nesting it spells (`{"a.b": 1}` and `{"a": {"b": 1}}` both have
//! `a.b`), and a path is compared as one number. A replay meets the same
//! few dozen paths in every record: walking them costs a lookup per key,
//! with no string built per record. A node's children are kept sorted, as
//! an object's keys come, so the lookup of a key first tries the child
//! after the previous key's, which is the one in a record shaped like the
//! last.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The interned paths, the leaves of the record being run, and the count
/// of records each path was stripped from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldPaths {
    /// Node 0 is the root, the empty path.
    nodes: Vec<Node>,
    /// The leaves of the record being run, once each.
    legacy: Vec<u32>,
    /// Numbers the records, so a node's marks say which record set them.
    record: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    parent: u32,
    segment: Box<str>,
    /// Sorted by segment.
    children: Vec<(Box<str>, u32)>,
    /// The last record with this path as a legacy leaf.
    in_legacy: u64,
    /// The last record with this path as a leaf of an event's payload.
    in_event: u64,
    /// Records this path was stripped from.
    stripped: u64,
}

impl Node {
    fn new(parent: u32, segment: &str) -> Self {
        Self {
            parent,
            segment: segment.into(),
            children: Vec::new(),
            in_legacy: 0,
            in_event: 0,
            stripped: 0,
        }
    }
}

impl Default for FieldPaths {
    fn default() -> Self {
        Self {
            nodes: vec![Node::new(0, "")],
            legacy: Vec::new(),
            record: 0,
        }
    }
}

impl FieldPaths {
    /// Starts a record with its decoded value.
    pub(crate) fn note_record(&mut self, object: &Map<String, Value>) {
        self.record += 1;
        self.legacy.clear();
        self.walk(0, object, Side::Legacy);
    }

    /// Notes the payload of one of the record's events.
    pub(crate) fn note_event(&mut self, payload: &Map<String, Value>) {
        self.walk(0, payload, Side::Event);
    }

    /// Counts the record's legacy leaves that none of its events has: call
    /// once for a record whose events were written.
    pub(crate) fn count_stripped(&mut self) {
        for &leaf in &self.legacy {
            let node = &mut self.nodes[leaf as usize];
            if node.in_event != self.record {
                node.stripped += 1;
            }
        }
    }

    /// Every path stripped from at least one record, with the number of
    /// records.
    pub(crate) fn stripped(&self) -> BTreeMap<String, u64> {
        (0..self.nodes.len())
            .filter(|&id| self.nodes[id].stripped > 0)
            .map(|id| (self.path(id), self.nodes[id].stripped))
            .collect()
    }

    fn walk(&mut self, node: u32, object: &Map<String, Value>, side: Side) {
        // Where the next key is expected among `node`'s children.
        let mut next = 0;
        for (key, value) in object {
            let child = if key.as_bytes().contains(&b'.') {
                key.split('.')
                    .fold(node, |parent, segment| self.child(parent, segment, &mut 0))
            } else {
                self.child(node, key, &mut next)
            };
            match value {
                Value::Object(inner) if !inner.is_empty() => self.walk(child, inner, side),
                _ => self.leaf(child, side),
            }
        }
    }

    /// The node of `segment` under `parent`, tried first at `next` among
    /// its children; `next` is left after it.
    fn child(&mut self, parent: u32, segment: &str, next: &mut usize) -> u32 {
        let children = &self.nodes[parent as usize].children;
        if let Some((name, id)) = children.get(*next)
            && **name == *segment
        {
            *next += 1;
            return *id;
        }
        let at = match children.binary_search_by(|(name, _)| (**name).cmp(segment)) {
            Ok(at) => {
                *next = at + 1;
                return children[at].1;
            }
            Err(at) => at,
        };
        let id = u32::try_from(self.nodes.len()).expect("fewer than 2³² distinct field paths");
        self.nodes.push(Node::new(parent, segment));
        self.nodes[parent as usize]
            .children
            .insert(at, (segment.into(), id));
        *next = at + 1;
        id
    }

    fn leaf(&mut self, id: u32, side: Side) {
        let node = &mut self.nodes[id as usize];
        match side {
            Side::Legacy if node.in_legacy != self.record => {
                node.in_legacy = self.record;
                self.legacy.push(id);
            }
            Side::Legacy => {}
            Side::Event => node.in_event = self.record,
        }
    }

    fn path(&self, mut id: usize) -> String {
        let mut segments = Vec::new();
        while id != 0 {
            let node = &self.nodes[id];
            segments.push(&*node.segment);
            id = node.parent as usize;
        }
        segments.reverse();
        segments.join(".")
    }
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Legacy,
    Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use serde_json::json;

    /// The leaf paths as plain strings: keys joined with dots, so an empty
    /// key still adds one (`{"": {"": 1}}` has `.`).
    fn leaves(prefix: Option<&str>, object: &Map<String, Value>, out: &mut BTreeSet<String>) {
        for (key, value) in object {
            let path = match prefix {
                None => key.clone(),
                Some(prefix) => format!("{prefix}.{key}"),
            };
            match value {
                Value::Object(child) if !child.is_empty() => leaves(Some(&path), child, out),
                _ => {
                    out.insert(path);
                }
            }
        }
    }

    fn object() -> impl Strategy<Value = Map<String, Value>> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z\\\\\"é]{0,4}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                prop::collection::btree_map("[a-c.]{0,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        prop::collection::btree_map("[a-c.]{0,2}", value, 0..5)
            .prop_map(|m| m.into_iter().collect())
    }

    /// One record through `paths`, counted as written.
    fn run(paths: &mut FieldPaths, legacy: &Map<String, Value>, events: &[Map<String, Value>]) {
        paths.note_record(legacy);
        for payload in events {
            paths.note_event(payload);
        }
        paths.count_stripped();
    }

    proptest! {
        #[test]
        fn counts_the_legacy_leaves_no_event_has_as_strings_would(
            records in prop::collection::vec((object(), prop::collection::vec(object(), 0..3)), 1..6),
        ) {
            let mut paths = FieldPaths::default();
            let mut expected: BTreeMap<String, u64> = BTreeMap::new();
            for (legacy, events) in &records {
                run(&mut paths, legacy, events);
                let mut kept = BTreeSet::new();
                for payload in events {
                    leaves(None, payload, &mut kept);
                }
                let mut legacy_leaves = BTreeSet::new();
                leaves(None, legacy, &mut legacy_leaves);
                for path in legacy_leaves.difference(&kept) {
                    *expected.entry(path.clone()).or_default() += 1;
                }
            }
            prop_assert_eq!(paths.stripped(), expected);
        }
    }

    #[test]
    fn names_nested_fields_and_counts_records() {
        let legacy = json!({"a": 1, "_meta": {"host": "h", "tags": {}}, "list": [1]});
        let event = json!({"a": 1, "list": [2]});
        let mut paths = FieldPaths::default();
        for _ in 0..2 {
            run(
                &mut paths,
                legacy.as_object().unwrap(),
                &[event.as_object().unwrap().clone()],
            );
        }
        let stripped = paths.stripped();
        assert_eq!(
            stripped,
            BTreeMap::from([("_meta.host".into(), 2), ("_meta.tags".into(), 2)])
        );
    }

    #[test]
    fn a_record_not_counted_strips_nothing() {
        let mut paths = FieldPaths::default();
        paths.note_record(json!({"a": 1}).as_object().unwrap());
        assert!(paths.stripped().is_empty());
    }
}
