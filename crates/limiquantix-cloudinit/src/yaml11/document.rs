//! A loaded document and the loader's error.

use std::collections::BTreeMap;

use serde_json::Value;

/// A loaded document: its value and the 1-based line of each value, by dotted path
/// (`users.0.name`; the root is `""`).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The document as PyYAML reads it, converted to JSON (`Value::Null` for an empty stream).
    pub value: Value,
    /// Line of each value by path.
    pub lines: BTreeMap<String, usize>,
}

impl Loaded {
    /// The line of the value at `path`, or of its closest ancestor that has one.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            path = path.rsplit_once('.')?.0;
        }
    }
}

/// Why a document does not load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// An error at `line`.
pub(super) fn err<T>(line: usize, message: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError {
        line: Some(line),
        message: message.into(),
    })
}
