//! The schema reduced to what one document can meet: the top-level keys it has, and the `$defs`
//! their sub-schemas reference.
//!
//! cloud-init's cloud-config schema is `{"$schema", "$defs", "allOf": [...]}` where every
//! `allOf` member is (a `$ref` to) an object schema with nothing but `type: "object"`,
//! `properties` and `additionalProperties: true`. For an object document such a member can only
//! fail on the properties the document has, and each of those is checked on its own; so the
//! members cut down to the document's keys, with the definitions they reach, give the same
//! errors in the same order as the whole schema, and compiling them costs a fraction. Any other
//! shape of schema (a member with other keywords, other root keywords) has no
//! [`RawIndex`], and a non-local `$ref` makes [`reduce`] answer `None`: the whole schema is
//! used then. `tests/schema_reduced.rs` compares both checks over cloud-init's installed schema.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::raw_index::RawIndex;

/// The schema a document with these top-level keys is checked against.
#[derive(Debug, Clone, PartialEq)]
pub enum Reduced {
    /// No member constrains any of the keys: an object document has nothing to fail.
    Nothing,
    /// The members cut down to the keys, with the definitions they reference.
    Schema(Value),
}

/// The part of the schema outlined by `index` that checks a document with top-level `keys`;
/// `None` when a `$ref` it reaches is not to a local definition (then check against the whole
/// schema).
pub fn reduce(index: &RawIndex, keys: &BTreeSet<&str>) -> Option<Reduced> {
    let mut kept = Vec::new();
    for member in &index.members {
        let mut wanted = Map::new();
        for (key, span) in &member.properties {
            if keys.contains(key.as_str()) {
                wanted.insert(key.clone(), serde_json::from_str(index.raw(span)).ok()?);
            }
        }
        if wanted.is_empty() {
            continue;
        }
        let mut cut = member.keywords.clone();
        cut.insert("properties".into(), Value::Object(wanted));
        kept.push(Value::Object(cut));
    }
    if kept.is_empty() {
        return Some(Reduced::Nothing);
    }
    let mut out: Map<String, Value> = index.annotations.iter().cloned().collect();
    let reached = referenced_defs(&kept, index)?;
    if !reached.is_empty() {
        out.insert("$defs".into(), Value::Object(reached.into_iter().collect()));
    }
    out.insert("allOf".into(), Value::Array(kept));
    Some(Reduced::Schema(Value::Object(out)))
}

/// `#/$defs/NAME` or `#/$defs/NAME/...` → `NAME`.
pub(super) fn def_name(reference: &str) -> Option<&str> {
    let rest = reference.strip_prefix("#/$defs/")?;
    Some(rest.split('/').next().unwrap_or(rest)).filter(|n| !n.is_empty() && !n.contains('~'))
}

/// Every definition the values reach through `$ref`, transitively, parsed; `None` when a `$ref`
/// is not to a local definition that exists.
fn referenced_defs(values: &[Value], index: &RawIndex) -> Option<BTreeMap<String, Value>> {
    let mut reached = BTreeMap::new();
    let mut pending: Vec<Value> = values.to_vec();
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                if let Some(r) = map.get("$ref") {
                    let name = def_name(r.as_str()?)?;
                    if !reached.contains_key(name) {
                        let def: Value = serde_json::from_str(index.def(name)?).ok()?;
                        reached.insert(name.to_owned(), def.clone());
                        pending.push(def);
                    }
                }
                pending.extend(map.into_iter().map(|(_, v)| v));
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    Some(reached)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "$defs": {
                "a": {"type": "object", "properties": {"x": {"$ref": "#/$defs/int"}, "y": {}}},
                "b": {"properties": {"z": {"type": "string"}}, "additionalProperties": true},
                "int": {"type": "integer"},
                "unused": {"type": "string"}
            },
            "allOf": [{"$ref": "#/$defs/a"}, {"$ref": "#/$defs/b"}]
        })
    }

    #[test]
    fn keeps_the_members_and_definitions_the_keys_reach() {
        let keys = BTreeSet::from(["x", "other"]);
        let index = RawIndex::parse(&schema().to_string()).unwrap();
        let Some(Reduced::Schema(s)) = reduce(&index, &keys) else {
            panic!("not reduced");
        };
        assert_eq!(
            s,
            json!({
                "$schema": "http://json-schema.org/draft-04/schema#",
                "$defs": {"int": {"type": "integer"}},
                "allOf": [{"type": "object", "properties": {"x": {"$ref": "#/$defs/int"}}}]
            })
        );
        assert_eq!(
            reduce(&index, &BTreeSet::from(["other"])),
            Some(Reduced::Nothing)
        );
    }

    #[test]
    fn other_shapes_are_not_reduced() {
        let keys = BTreeSet::from(["x"]);
        for change in [
            json!({"required": ["x"]}),
            json!({"additionalProperties": false}),
            json!({"type": "array"}),
            json!({"patternProperties": {"^q": {}}}),
        ] {
            let mut s = schema();
            for (k, v) in change.as_object().unwrap() {
                s["$defs"]["a"][k] = v.clone();
            }
            assert!(RawIndex::parse(&s.to_string()).is_none(), "{change}");
        }
        let mut s = schema();
        s["$defs"]["a"]["properties"]["x"] = json!({"$ref": "other.json#/x"});
        let index = RawIndex::parse(&s.to_string()).unwrap();
        assert_eq!(reduce(&index, &keys), None);
        let mut s = schema();
        s["anyOf"] = json!([{}]);
        assert!(RawIndex::parse(&s.to_string()).is_none());
    }
}
