//! A YAML loader with the semantics cloud-init uses: PyYAML `safe_load` (YAML 1.1).
//!
//! The parser is `saphyr-parser` (YAML 1.2 syntax); this module resolves plain scalars with
//! PyYAML's YAML 1.1 rules (`yes`/`no`/`on`/`off` are booleans, `0755` is octal, `1:30` is
//! sexagesimal, `2001-12-14` a timestamp, `<<` a merge key, `=` a value that `safe_load`
//! refuses), refuses tags `safe_load` has no constructor for, and refuses streams with more
//! than one document. The result is JSON (for the schema validator) plus the line of every
//! value, so errors can point at a line.
//!
//! Timestamps, `.inf`/`.nan` and `!!binary` become strings: JSON has no such types.
//!
//! Limits: collections nest at most [`MAX_DEPTH`] levels (PyYAML itself fails not much deeper)
//! and aliases may copy at most [`MAX_NODES`] values, so a small "billion laughs" document
//! cannot exhaust memory.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};

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

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError {
        line: Some(line),
        message: message.into(),
    })
}

/// Deepest nesting of collections accepted (PyYAML itself fails a little deeper, on Python's
/// recursion limit).
pub const MAX_DEPTH: usize = 256;

/// Most values that aliases may copy in one document (guards against "billion laughs").
pub const MAX_NODES: usize = 1_000_000;

/// Number of values in `v`, counting stops a little past `limit`.
fn count_nodes(v: &Value, limit: usize) -> usize {
    let mut count = 0;
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        count += 1;
        if count > limit {
            break;
        }
        match v {
            Value::Array(items) => todo.extend(items),
            Value::Object(map) => todo.extend(map.values()),
            _ => {}
        }
    }
    count
}

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
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: BTreeMap<usize, Value> = BTreeMap::new();
    let mut expanded = 0usize;
    let mut lines = BTreeMap::new();
    let mut root: Option<Value> = None;
    let mut documents = 0;
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|e| YamlError {
            line: Some(e.marker().line()),
            message: e.info().to_owned(),
        })?;
        let line = span.start.line();
        let (value, anchor) = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return err(line, "expected a single document in the stream, found more");
                }
                continue;
            }
            Event::Scalar(text, style, anchor, tag) => {
                // A plain `<<` in key position is a merge key.
                if let Some(Frame::Map {
                    pending_key: pending @ None,
                    ..
                }) = stack.last_mut()
                    && style == ScalarStyle::Plain
                    && tag.is_none()
                    && text == "<<"
                {
                    *pending = Some(Key::Merge);
                    continue;
                }
                (scalar(&text, style, tag.as_deref(), line)?, anchor)
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(v) => {
                    expanded += count_nodes(v, MAX_NODES);
                    if expanded > MAX_NODES {
                        return err(
                            line,
                            format!("aliases expand to more than {MAX_NODES} values"),
                        );
                    }
                    (v.clone(), 0)
                }
                None => return err(line, "found an undefined alias"),
            },
            Event::SequenceStart(anchor, tag) => {
                if stack.len() >= MAX_DEPTH {
                    return err(
                        line,
                        format!("collections nest deeper than {MAX_DEPTH} levels"),
                    );
                }
                check_collection_tag(tag.as_deref(), "seq", line)?;
                let path = child_path(&stack);
                lines.entry(path.clone()).or_insert(line);
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    path,
                });
                continue;
            }
            Event::MappingStart(anchor, tag) => {
                if stack.len() >= MAX_DEPTH {
                    return err(
                        line,
                        format!("collections nest deeper than {MAX_DEPTH} levels"),
                    );
                }
                check_collection_tag(tag.as_deref(), "map", line)?;
                let path = child_path(&stack);
                lines.entry(path.clone()).or_insert(line);
                stack.push(Frame::Map {
                    entries: Map::new(),
                    merges: Vec::new(),
                    pending_key: None,
                    anchor,
                    path,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                Some(Frame::Map {
                    mut entries,
                    merges,
                    anchor,
                    ..
                }) => {
                    for merged in merges {
                        for (k, v) in merged {
                            entries.entry(k).or_insert(v);
                        }
                    }
                    (Value::Object(entries), anchor)
                }
                None => continue,
            },
            _ => continue,
        };
        if anchor != 0 {
            anchors.insert(anchor, value.clone());
        }
        match stack.last_mut() {
            None => root = Some(value),
            Some(Frame::Seq { items, path, .. }) => {
                lines
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
                    lines.insert(join(path, &key), line);
                    *pending_key = Some(Key::Plain(key));
                }
                Some(Key::Plain(key)) => {
                    entries.insert(key, value);
                }
                Some(Key::Merge) => merge_sources(value, merges, line)?,
            },
        }
    }
    Ok(Loaded {
        value: root.unwrap_or(Value::Null),
        lines,
    })
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

/// The non-specific tag `!`: a plain string (or a collection of its own kind).
fn is_non_specific(tag: &Tag) -> bool {
    (tag.handle.is_empty() && tag.suffix == "!") || (tag.handle == "!" && tag.suffix.is_empty())
}

fn check_collection_tag(tag: Option<&Tag>, expected: &str, line: usize) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if is_non_specific(t) => Ok(()),
        Some(t) if t.is_yaml_core_schema() && t.suffix == expected => Ok(()),
        Some(t) => err(
            line,
            format!("could not determine a constructor for the tag '{t}'"),
        ),
    }
}

fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    line: usize,
) -> Result<Value, YamlError> {
    // PyYAML resolves a plain scalar tagged `!` as if it had no tag.
    if let Some(tag) = tag.filter(|t| !is_non_specific(t)) {
        if !tag.is_yaml_core_schema() {
            return err(
                line,
                format!("could not determine a constructor for the tag '{tag}'"),
            );
        }
        let resolved = resolve_plain(text);
        let fits = |kind: &str| kind_of(&resolved) == Some(kind);
        return match tag.suffix.as_str() {
            "str" | "binary" | "timestamp" => Ok(Value::String(text.to_owned())),
            "int" | "float" | "bool" | "null" if fits(&tag.suffix) => Ok(resolved),
            "float" if fits("int") => Ok(resolved
                .as_f64()
                .and_then(Number::from_f64)
                .map_or(resolved, Value::Number)),
            suffix @ ("int" | "float" | "bool" | "null") => {
                err(line, format!("{text:?} is not a valid !!{suffix} value"))
            }
            _ => err(
                line,
                format!("could not determine a constructor for the tag '{tag}'"),
            ),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Value::String(text.to_owned()));
    }
    if text == "=" {
        return err(
            line,
            "could not determine a constructor for the tag 'tag:yaml.org,2002:value' \
             (a plain `=`; quote it)",
        );
    }
    Ok(resolve_plain(text))
}

fn kind_of(value: &Value) -> Option<&'static str> {
    match value {
        Value::Null => Some("null"),
        Value::Bool(_) => Some("bool"),
        Value::Number(n) if n.is_f64() => Some("float"),
        Value::Number(_) => Some("int"),
        _ => None,
    }
}

static BOOL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
        .expect("valid regex")
});
static INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
    .expect("valid regex")
});
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
    .expect("valid regex")
});
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
    )
    .expect("valid regex")
});

/// Resolves a plain scalar with PyYAML's implicit resolvers.
fn resolve_plain(text: &str) -> Value {
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if BOOL.is_match(text) {
        return Value::Bool(matches!(
            text,
            "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON"
        ));
    }
    if INT.is_match(text) {
        if let Some(n) = parse_int(text) {
            return n;
        }
    } else if FLOAT.is_match(text) {
        return parse_float(text);
    }
    // Timestamps stay strings: JSON has no date type.
    Value::String(text.to_owned())
}

fn parse_int(text: &str) -> Option<Value> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (negative, digits) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let magnitude: i128 = if digits == "0" {
        0
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix('0') {
        i128::from_str_radix(oct, 8).ok()?
    } else if digits.contains(':') {
        digits.split(':').try_fold(0i128, |acc, part| {
            acc.checked_mul(60)?.checked_add(part.parse::<i128>().ok()?)
        })?
    } else {
        digits.parse().ok()?
    };
    let value = if negative { -magnitude } else { magnitude };
    if let Ok(v) = i64::try_from(value) {
        Some(Value::Number(v.into()))
    } else if let Ok(v) = u64::try_from(value) {
        Some(Value::Number(v.into()))
    } else {
        Some(Value::String(text.to_owned()))
    }
}

fn parse_float(text: &str) -> Value {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    if lower.ends_with(".inf") || lower.ends_with(".nan") {
        return Value::String(text.to_owned());
    }
    let (negative, digits) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let magnitude = if digits.contains(':') {
        digits.split(':').fold(0.0, |acc, part| {
            acc * 60.0 + part.parse::<f64>().unwrap_or(0.0)
        })
    } else {
        digits.parse::<f64>().unwrap_or(0.0)
    };
    let value = if negative { -magnitude } else { magnitude };
    Number::from_f64(value).map_or_else(|| Value::String(text.to_owned()), Value::Number)
}

/// Whether a plain scalar would be read as a timestamp by PyYAML.
pub fn is_timestamp(text: &str) -> bool {
    TIMESTAMP.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(text: &str) -> Value {
        load(text).unwrap().value
    }

    #[test]
    fn yaml11_scalars() {
        assert_eq!(
            v(
                "a: yes\nb: no\nc: on\nd: Off\ne: 0755\nf: 1e3\ng: 1_000\nh: 0x1F\ni: 1:30\nj: 1.5\nk: ~\nl: '0755'\nm: 0b11\nn: 2001-12-14\no: .5\np: -017\n"
            ),
            json!({"a": true, "b": false, "c": true, "d": false, "e": 493, "f": "1e3",
                   "g": 1000, "h": 31, "i": 90, "j": 1.5, "k": null, "l": "0755", "m": 3,
                   "n": "2001-12-14", "o": 0.5, "p": -15})
        );
        assert!(is_timestamp("2001-12-14"));
    }

    #[test]
    fn merges_anchors_and_tags() {
        assert_eq!(
            v("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\nlist: [*b]\ns: !!str 12\n"),
            json!({"base": {"x": 1, "y": 2}, "other": {"x": 1, "y": 3},
                   "list": [{"x": 1, "y": 2}], "s": "12"})
        );
        assert_eq!(
            v("a: &a {k: 1}\nb: &b {k: 2, j: 2}\nc:\n  <<: [*a, *b]\n"),
            json!({"a": {"k": 1}, "b": {"k": 2, "j": 2}, "c": {"k": 1, "j": 2}})
        );
    }

    #[test]
    fn errors_where_safe_load_fails() {
        for (doc, line) in [
            ("a: =\n", 1),
            ("a: 1\nb: !python/object x\n", 2),
            ("a: 1\n---\nb: 2\n", 2),
            ("? [1]\n: 2\n", 1),
            ("a: *nope\n", 1),
            ("a: [1\n", 2),
            ("a: !!int x\n", 1),
        ] {
            let e = load(doc).unwrap_err();
            assert_eq!(e.line, Some(line), "{doc:?}: {e:?}");
        }
    }

    #[test]
    fn depth_and_alias_expansion_are_bounded() {
        let deep = format!("a:\n  {}x\n", "- ".repeat(MAX_DEPTH + 1));
        assert!(load(&deep).unwrap_err().message.contains("nest deeper"));
        let ok = format!("a:\n  {}x\n", "- ".repeat(MAX_DEPTH - 2));
        assert!(load(&ok).is_ok());
        let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        assert!(load(&bomb).unwrap_err().message.contains("aliases expand"));
    }

    #[test]
    fn lines_by_path() {
        let loaded = load("#cloud-config\nusers:\n  - name: a\n    shell: /bin/sh\n").unwrap();
        assert_eq!(loaded.line_of("users.0.shell"), Some(4));
        assert_eq!(loaded.line_of("users.0.name"), Some(3));
        assert_eq!(loaded.line_of("users"), Some(2));
        assert_eq!(loaded.line_of("users.0.missing.x"), Some(3));
    }
}
