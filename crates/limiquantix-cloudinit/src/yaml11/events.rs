//! The event loop: builds the JSON value (and the line of every value) from the parser's events,
//! with anchors, aliases and `<<` merge keys.

use std::collections::BTreeMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Value};

use super::document::{Loaded, YamlError, err};
use super::limits::{add_expansion, check_depth};
use super::scalar::{check_collection_tag, scalar};

enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        path: String,
    },
    Map {
        entries: Map<String, Value>,
        merges: Vec<Map<String, Value>>,
        pending_key: Option<Key>,
        anchor: usize,
        path: String,
    },
}

enum Key {
    Plain(String),
    Merge,
}

/// Loads `text` the way PyYAML `safe_load` does.
pub fn load(text: &str) -> Result<Loaded, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut loader = Loader::default();
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| YamlError {
            line: Some(e.marker().line()),
            message: e.info().to_owned(),
        })?;
        loader.event(event, span.start.line())?;
    }
    Ok(Loaded {
        value: loader.root.unwrap_or(Value::Null),
        lines: loader.lines,
    })
}

/// State of a load in progress.
#[derive(Default)]
struct Loader {
    /// Collections open, innermost last.
    stack: Vec<Frame>,
    /// Anchored values by anchor id.
    anchors: BTreeMap<usize, Value>,
    /// Values copied by aliases so far.
    expanded: usize,
    /// Line of each value by path.
    lines: BTreeMap<String, usize>,
    /// The document's value, once complete.
    root: Option<Value>,
    /// Documents seen.
    documents: usize,
}

impl Loader {
    /// Handles one parser event found at `line`.
    fn event(&mut self, event: Event<'_>, line: usize) -> Result<(), YamlError> {
        let (value, anchor) = match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return err(line, "expected a single document in the stream, found more");
                }
                return Ok(());
            }
            Event::Scalar(text, style, anchor, tag) => {
                if self.takes_merge_key(&text, style, tag.as_deref()) {
                    return Ok(());
                }
                (scalar(&text, style, tag.as_deref(), line)?, anchor)
            }
            Event::Alias(id) => (self.alias(id, line)?, 0),
            Event::SequenceStart(anchor, tag) => {
                let path = self.open(tag.as_deref(), "seq", line)?;
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    path,
                });
                return Ok(());
            }
            Event::MappingStart(anchor, tag) => {
                let path = self.open(tag.as_deref(), "map", line)?;
                self.stack.push(Frame::Map {
                    entries: Map::new(),
                    merges: Vec::new(),
                    pending_key: None,
                    anchor,
                    path,
                });
                return Ok(());
            }
            Event::SequenceEnd | Event::MappingEnd => match self.close() {
                Some(closed) => closed,
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        self.place(value, anchor, line)
    }

    /// A plain `<<` in key position is a merge key: notes it and says so.
    fn takes_merge_key(&mut self, text: &str, style: ScalarStyle, tag: Option<&Tag>) -> bool {
        if let Some(Frame::Map {
            pending_key: pending @ None,
            ..
        }) = self.stack.last_mut()
            && style == ScalarStyle::Plain
            && tag.is_none()
            && text == "<<"
        {
            *pending = Some(Key::Merge);
            return true;
        }
        false
    }

    /// The value an alias stands for.
    fn alias(&mut self, id: usize, line: usize) -> Result<Value, YamlError> {
        match self.anchors.get(&id) {
            Some(v) => {
                add_expansion(&mut self.expanded, v, line)?;
                Ok(v.clone())
            }
            None => err(line, "found an undefined alias"),
        }
    }

    /// Checks a collection about to start and records its line; returns its path.
    fn open(&mut self, tag: Option<&Tag>, kind: &str, line: usize) -> Result<String, YamlError> {
        check_depth(self.stack.len(), line)?;
        check_collection_tag(tag, kind, line)?;
        let path = child_path(&self.stack);
        self.lines.entry(path.clone()).or_insert(line);
        Ok(path)
    }

    /// Ends the innermost collection: its value (merges applied) and anchor.
    fn close(&mut self) -> Option<(Value, usize)> {
        match self.stack.pop()? {
            Frame::Seq { items, anchor, .. } => Some((Value::Array(items), anchor)),
            Frame::Map {
                mut entries,
                merges,
                anchor,
                ..
            } => {
                for merged in merges {
                    for (k, v) in merged {
                        entries.entry(k).or_insert(v);
                    }
                }
                Some((Value::Object(entries), anchor))
            }
        }
    }

    /// Puts a complete value into its parent (or makes it the document).
    fn place(&mut self, value: Value, anchor: usize, line: usize) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, path, .. }) => {
                self.lines
                    .entry(join(path, &items.len().to_string()))
                    .or_insert(line);
                items.push(value);
            }
            Some(Frame::Map {
                entries,
                merges,
                pending_key,
                path,
                ..
            }) => match pending_key.take() {
                None => {
                    let key = key_string(value, line)?;
                    self.lines.insert(join(path, &key), line);
                    *pending_key = Some(Key::Plain(key));
                }
                Some(Key::Plain(key)) => {
                    entries.insert(key, value);
                }
                Some(Key::Merge) => merge_sources(value, merges, line)?,
            },
        }
        Ok(())
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Path of a collection about to start, from its parent's state.
fn child_path(stack: &[Frame]) -> String {
    match stack.last() {
        None => String::new(),
        Some(Frame::Seq { items, path, .. }) => join(path, &items.len().to_string()),
        Some(Frame::Map {
            pending_key, path, ..
        }) => match pending_key {
            Some(Key::Plain(key)) => join(path, key),
            _ => path.clone(),
        },
    }
}

fn merge_sources(
    value: Value,
    merges: &mut Vec<Map<String, Value>>,
    line: usize,
) -> Result<(), YamlError> {
    match value {
        Value::Object(map) => merges.push(map),
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(map) => merges.push(map),
                    _ => {
                        return err(
                            line,
                            "expected a mapping for merging, but found something else",
                        );
                    }
                }
            }
        }
        _ => {
            return err(
                line,
                "expected a mapping or list of mappings for merging (`<<`)",
            );
        }
    }
    Ok(())
}

/// A mapping key as a string, as Python's `json.dumps` writes a scalar key.
fn key_string(value: Value, line: usize) -> Result<String, YamlError> {
    match value {
        Value::String(s) => Ok(s),
        Value::Bool(true) => Ok("true".into()),
        Value::Bool(false) => Ok("false".into()),
        Value::Null => Ok("null".into()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Array(_) | Value::Object(_) => err(
            line,
            "found an unhashable key (a list or mapping used as a key)",
        ),
    }
}
