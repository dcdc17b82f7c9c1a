//! A reducible schema's outline, read without building its tree: the root's annotations, each
//! `$defs` entry and each `allOf` member's properties kept as raw JSON text, parsed only when a
//! document's keys need them (the whole tree of cloud-init's schema costs a fresh process more
//! than everything else a seed needs).

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

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

/// A JSON object's entries in document order, each value as its byte range in the schema text
/// (borrowed while the outline is read: nothing is copied).
pub(super) type RawEntries = Vec<(String, Range<usize>)>;

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
    /// The schema's text, which the ranges index.
    text: Arc<str>,
    /// The root's annotations (`$schema` first among them), parsed.
    pub(super) annotations: Vec<(String, Value)>,
    /// `$defs`, raw.
    pub(super) defs: BTreeMap<String, Range<usize>>,
    /// The members, each resolved through its `$ref`.
    pub(super) members: Vec<Member>,
}

impl RawIndex {
    /// The outline of `text`, or `None` when the schema is not of the reducible shape.
    pub fn parse(text: &str) -> Option<RawIndex> {
        let root = entries(text, 0..text.len())?;
        let mut annotations = Vec::new();
        let (mut defs, mut all_of) = (BTreeMap::new(), None);
        for (key, span) in root {
            let raw = &text[span.clone()];
            match key.as_str() {
                "$defs" => defs = entries(text, span)?.into_iter().collect(),
                "allOf" => all_of = Some(items(text, span)?),
                k if ROOT_ANNOTATIONS.contains(&k) => {
                    annotations.push((key, serde_json::from_str(raw).ok()?));
                }
                _ => return None,
            }
        }
        let mut members = Vec::new();
        for span in all_of? {
            let mut member = entries(text, span)?;
            if member.iter().any(|(k, _)| k == "$ref") {
                let [(_, reference)] = member.as_slice() else {
                    return None;
                };
                let reference: String = serde_json::from_str(&text[reference.clone()]).ok()?;
                let def = defs.get(super::reduce::def_name(&reference)?)?;
                member = entries(text, def.clone())?;
            }
            members.push(Member::new(text, member)?);
        }
        Some(RawIndex {
            text: Arc::from(text),
            annotations,
            defs,
            members,
        })
    }

    /// An outline read back (see [`super::outline_cache`]); `None` when a range does not lie on
    /// character boundaries of `text`.
    pub(super) fn from_parts(
        text: &str,
        annotations: Vec<(String, Value)>,
        defs: BTreeMap<String, Range<usize>>,
        members: Vec<Member>,
    ) -> Option<RawIndex> {
        let fits = |r: &Range<usize>| {
            r.start <= r.end && text.is_char_boundary(r.start) && text.is_char_boundary(r.end)
        };
        let spans = defs.values().chain(
            members
                .iter()
                .flat_map(|m| m.properties.iter().map(|(_, r)| r)),
        );
        if !spans.into_iter().all(fits) {
            return None;
        }
        Some(RawIndex {
            text: Arc::from(text),
            annotations,
            defs,
            members,
        })
    }

    /// The raw JSON text at `span`.
    pub(super) fn raw(&self, span: &Range<usize>) -> &str {
        &self.text[span.clone()]
    }

    /// The raw JSON text of definition `name`.
    pub(super) fn def(&self, name: &str) -> Option<&str> {
        self.defs.get(name).map(|span| self.raw(span))
    }

    /// Every property name of every member.
    pub fn property_names(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .flat_map(|m| m.properties.iter().map(|(k, _)| k.as_str()))
    }
}

impl Member {
    fn new(text: &str, entries: RawEntries) -> Option<Member> {
        let mut keywords = Map::new();
        let mut properties = Vec::new();
        for (key, span) in entries {
            if !MEMBER_KEYWORDS.contains(&key.as_str()) {
                return None;
            }
            if key == "properties" {
                properties = self::entries(text, span)?;
                continue;
            }
            let value: Value = serde_json::from_str(&text[span]).ok()?;
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

/// Where `raw` (borrowed from `text`) lies in `text`.
fn span_in(text: &str, raw: &RawValue) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
    start..start + raw.get().len()
}

/// The entries of the JSON object at `span` of `text` in document order; `None` when it is not
/// an object.
pub(super) fn entries(text: &str, span: Range<usize>) -> Option<RawEntries> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(&text[span]);
    let out = de.deserialize_map(Entries).ok()?;
    de.end().ok()?;
    Some(
        out.into_iter()
            .map(|(k, raw)| (k, span_in(text, raw)))
            .collect(),
    )
}

/// The items of the JSON array at `span` of `text`, as ranges.
fn items(text: &str, span: Range<usize>) -> Option<Vec<Range<usize>>> {
    let items: Vec<&RawValue> = serde_json::from_str(&text[span]).ok()?;
    Some(items.into_iter().map(|raw| span_in(text, raw)).collect())
}
