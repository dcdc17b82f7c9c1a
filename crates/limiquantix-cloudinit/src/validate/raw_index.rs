//! A reducible schema's outline, read without building its tree: the root's annotations, each
//! `$defs` entry and each `allOf` member's properties kept as raw JSON text, parsed only when a
//! document's keys need them (the whole tree of cloud-init's schema costs a fresh process more
//! than everything else a seed needs).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Root keywords a reducible schema may have besides `allOf` and `$defs`.
pub(super) const ROOT_ANNOTATIONS: &[&str] =
    &["$schema", "$id", "$comment", "title", "description"];

/// Keywords a reducible `allOf` member may have.
const MEMBER_KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "additionalProperties",
    "$comment",
    "title",
    "description",
];

/// A JSON object's entries in document order, values as raw text.
pub(super) type RawEntries = Vec<(String, Box<RawValue>)>;

/// One `allOf` member: its keywords but `properties`, and its properties as raw text.
#[derive(Debug)]
pub(super) struct Member {
    /// `type`, `additionalProperties` and annotations, parsed.
    pub(super) keywords: Map<String, Value>,
    /// The properties, in document order.
    pub(super) properties: RawEntries,
}

/// The outline of a schema `{annotations, "$defs", "allOf": [object schemas]}`.
#[derive(Debug)]
pub struct RawIndex {
    /// The root's annotations (`$schema` first among them), parsed.
    pub(super) annotations: Vec<(String, Value)>,
    /// `$defs`, raw.
    pub(super) defs: BTreeMap<String, Box<RawValue>>,
    /// The members, each resolved through its `$ref`.
    pub(super) members: Vec<Member>,
}

impl RawIndex {
    /// The outline of `text`, or `None` when the schema is not of the reducible shape.
    pub fn parse(text: &str) -> Option<RawIndex> {
        let root = entries(text)?;
        let mut annotations = Vec::new();
        let (mut defs, mut all_of) = (BTreeMap::new(), None);
        for (key, raw) in root {
            match key.as_str() {
                "$defs" => defs = entries(raw.get())?.into_iter().collect(),
                "allOf" => {
                    all_of = Some(serde_json::from_str::<Vec<Box<RawValue>>>(raw.get()).ok()?)
                }
                k if ROOT_ANNOTATIONS.contains(&k) => {
                    annotations.push((key, serde_json::from_str(raw.get()).ok()?));
                }
                _ => return None,
            }
        }
        let mut members = Vec::new();
        for raw in all_of? {
            let mut member = entries(raw.get())?;
            if member.iter().any(|(k, _)| k == "$ref") {
                let [(_, reference)] = member.as_slice() else {
                    return None;
                };
                let reference: String = serde_json::from_str(reference.get()).ok()?;
                member = entries(defs.get(super::reduce::def_name(&reference)?)?.get())?;
            }
            members.push(Member::new(member)?);
        }
        Some(RawIndex {
            annotations,
            defs,
            members,
        })
    }

    /// Every property name of every member.
    pub fn property_names(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .flat_map(|m| m.properties.iter().map(|(k, _)| k.as_str()))
    }
}

impl Member {
    fn new(entries: RawEntries) -> Option<Member> {
        let mut keywords = Map::new();
        let mut properties = Vec::new();
        for (key, raw) in entries {
            if !MEMBER_KEYWORDS.contains(&key.as_str()) {
                return None;
            }
            if key == "properties" {
                properties = self::entries(raw.get())?;
                continue;
            }
            let value: Value = serde_json::from_str(raw.get()).ok()?;
            let ok = match key.as_str() {
                "type" => value == "object",
                "additionalProperties" => value == Value::Bool(true),
                _ => true,
            };
            if !ok {
                return None;
            }
            keywords.insert(key, value);
        }
        Some(Member {
            keywords,
            properties,
        })
    }
}

/// The entries of a JSON object in document order; `None` when `text` is not an object.
pub(super) fn entries(text: &str) -> Option<RawEntries> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = RawEntries;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntries, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let out = de.deserialize_map(Entries).ok()?;
    de.end().ok()?;
    Some(out)
}
