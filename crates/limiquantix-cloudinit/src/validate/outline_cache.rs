//! The schema's outline kept between processes: `lqctl seed` is a fresh process each time, and
//! reading the outline of cloud-init's 134 KB schema was most of its schema check. When a
//! directory is set ([`set_dir`]), the outline ([`RawIndex`]: byte ranges into the schema text)
//! is stored there in a file named after a hash of the schema's whole text, so a changed schema
//! is never read with an old outline; a missing, unreadable or foreign file is ignored and the
//! outline read from the text again. The daemon reads the schema once and sets no directory.

use std::collections::BTreeMap;
use std::hash::Hasher as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::raw_index::{Member, RawIndex};

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// Keeps outlines in `dir` (created private to the user when first written) for the rest of
/// the process; the first call wins.
pub fn set_dir(dir: PathBuf) {
    let _ = DIR.set(dir);
}

/// A stored member: its keywords, its properties' names and ranges.
type StoredMember = (Map<String, Value>, Vec<(String, Range<usize>)>);

/// What the cache file holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// The text's length, checked on reading.
    len: usize,
    annotations: Vec<(String, Value)>,
    defs: BTreeMap<String, Range<usize>>,
    members: Vec<StoredMember>,
}

/// The outline of schema `text`: from the cache directory when it has it, else read from the
/// text (and stored there).
pub(super) fn index_of(text: &str) -> Option<RawIndex> {
    let Some(dir) = DIR.get() else {
        return RawIndex::parse(text);
    };
    let file = dir.join(format!("schema-outline-{:016x}.json", fingerprint(text)));
    if let Some(index) = read(&file, text) {
        return Some(index);
    }
    let index = RawIndex::parse(text)?;
    write(dir, &file, text.len(), &index);
    Some(index)
}

/// A 64-bit hash of the whole text (SipHash with fixed keys: the same across processes of one
/// build; another build may miss the cache once).
fn fingerprint(text: &str) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    h.write(text.as_bytes());
    h.finish()
}

fn read(file: &Path, text: &str) -> Option<RawIndex> {
    let bytes = std::fs::read(file).ok()?;
    let stored: Stored = serde_json::from_slice(&bytes).ok()?;
    if stored.len != text.len() {
        return None;
    }
    let members = stored
        .members
        .into_iter()
        .map(|(keywords, properties)| Member {
            keywords,
            properties,
        })
        .collect();
    RawIndex::from_parts(text, stored.annotations, stored.defs, members)
}

/// Stores the outline (best effort: a cache that cannot be written is not an error).
fn write(dir: &Path, file: &Path, len: usize, index: &RawIndex) {
    let stored = Stored {
        len,
        annotations: index.annotations.clone(),
        defs: index.defs.clone(),
        members: index
            .members
            .iter()
            .map(|m| (m.keywords.clone(), m.properties.clone()))
            .collect(),
    };
    let Ok(bytes) = serde_json::to_vec(&stored) else {
        return;
    };
    if limiquantix_fs::create_private_dir(dir).is_ok() {
        let _ = limiquantix_fs::write_atomic(file, &bytes, 0o600);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::reduce::reduce;
    use std::collections::BTreeSet;

    fn schema() -> String {
        serde_json::json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "$defs": {
                "size": { "type": "integer", "minimum": 1 },
                "cc_disk": { "type": "object", "properties": {
                    "disk": { "$ref": "#/$defs/size" }, "label": { "type": "string" },
                }, "additionalProperties": true },
            },
            "allOf": [{ "$ref": "#/$defs/cc_disk" }],
        })
        .to_string()
    }

    #[test]
    fn a_stored_outline_reads_back_the_same_and_a_bad_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let text = schema();
        let index = RawIndex::parse(&text).unwrap();
        let file = dir.path().join("outline.json");
        write(dir.path(), &file, text.len(), &index);
        let back = read(&file, &text).unwrap();
        let keys: BTreeSet<&str> = ["disk"].into();
        assert_eq!(reduce(&back, &keys), reduce(&index, &keys));
        // Another text of another length, or ranges off the text: not used.
        assert!(read(&file, &format!("{text} ")).is_none());
        let mut stored: Stored = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        stored.defs.insert("size".into(), 0..text.len() + 10);
        std::fs::write(&file, serde_json::to_vec(&stored).unwrap()).unwrap();
        assert!(read(&file, &text).is_none());
        std::fs::write(&file, b"not json").unwrap();
        assert!(read(&file, &text).is_none());
        assert_ne!(fingerprint(&text), fingerprint(&format!("{text} ")));
    }
}
