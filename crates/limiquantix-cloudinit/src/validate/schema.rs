//! cloud-init's own JSON schema for cloud-config, found where cloud-init is installed.
//!
//! The schema ships with cloud-init (`cloudinit/config/schemas/schema-cloud-config-v1.json`)
//! and is never copied into this repository. It is located at run time (see
//! [`locate_schema`]), read once per path and cached; a check compiles only the sub-schemas of
//! the document's top-level keys ([`super::reduce`]). Schema errors block; `deprecated`
//! keys and top-level keys the schema does not know are warnings.

use std::collections::HashMap;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use regex::Regex;
use serde_json::Value;

use super::raw_index::RawIndex;
use super::reduce::{Reduced, reduce};
use crate::yaml11::Loaded;

pub use super::locate::{SCHEMA_RELATIVE_PATH, locate_schema};

/// A cloud-config schema, compiled on demand: the whole of it the first time
/// [`Schema::check_full`] runs, or per document only the sub-schemas of its top-level keys
/// ([`Schema::check`], see [`super::reduce`]), cached by key set. A schema of the reducible
/// shape is not even parsed whole until a full check asks for it ([`RawIndex`]).
pub struct Schema {
    text: String,
    raw: OnceLock<Result<Value, String>>,
    index: Option<RawIndex>,
    full: OnceLock<Result<Arc<jsonschema::Validator>, String>>,
    reduced: Mutex<HashMap<Vec<String>, Arc<Part>>>,
    top_level: BTreeSet<String>,
}

/// The reduced schema of one key set and its validator (`None`: nothing can fail).
struct Part {
    schema: Option<Value>,
    validator: Option<Arc<jsonschema::Validator>>,
}

/// Most reduced validators one schema keeps (a daemon sees few distinct key sets).
const REDUCED_CACHE: usize = 64;

/// One finding of the schema check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Dotted path of the value (`users.0.name`), empty for the root.
    pub path: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What was found.
    pub message: String,
}

/// Result of checking a document against the schema.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Schema violations (block).
    pub errors: Vec<Finding>,
    /// Deprecated and unknown keys (warn).
    pub warnings: Vec<Finding>,
}

static CACHE: Mutex<BTreeMap<PathBuf, Arc<Schema>>> = Mutex::new(BTreeMap::new());

impl Schema {
    /// Loads and compiles the schema at `path`, or returns the cached copy.
    pub fn load(path: &Path) -> Result<Arc<Schema>, String> {
        if let Some(schema) = CACHE.lock().map_err(|e| e.to_string())?.get(path) {
            return Ok(schema.clone());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let index = super::outline_cache::index_of(&text);
        let schema = Arc::new(
            Self::with_index(text, index)
                .map_err(|e| format!("parsing {}: {e}", path.display()))?,
        );
        CACHE
            .lock()
            .map_err(|e| e.to_string())?
            .insert(path.to_owned(), schema.clone());
        Ok(schema)
    }

    /// Takes a schema document; it is compiled when a check needs it (a schema that does not
    /// compile fails that check).
    pub fn compile(raw: Value) -> Result<Schema, String> {
        Self::from_text(raw.to_string())
    }

    /// Takes a schema's JSON text (which must parse).
    pub fn from_text(text: String) -> Result<Schema, String> {
        let index = RawIndex::parse(&text);
        Self::with_index(text, index)
    }

    /// [`Schema::from_text`] with the outline already read.
    fn with_index(text: String, index: Option<RawIndex>) -> Result<Schema, String> {
        let raw = OnceLock::new();
        let top_level = match &index {
            Some(index) => index.property_names().map(String::from).collect(),
            None => {
                let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                let mut top_level = BTreeSet::new();
                collect_properties(&value, &value, &mut top_level, 0);
                let _ = raw.set(Ok(value));
                top_level
            }
        };
        Ok(Schema {
            text,
            raw,
            index,
            full: OnceLock::new(),
            reduced: Mutex::default(),
            top_level,
        })
    }

    /// Checks a loaded cloud-config document against the sub-schemas of its top-level keys
    /// when the schema allows it (the same findings as [`Schema::check_full`]), else the whole.
    pub fn check(&self, doc: &Loaded) -> Result<Report, String> {
        match self.part(&doc.value)? {
            Some(part) => Ok(self.report(part.validator.as_deref(), part.schema.as_ref(), doc)),
            None => self.check_full(doc),
        }
    }

    /// Checks a loaded cloud-config document against the whole schema.
    pub fn check_full(&self, doc: &Loaded) -> Result<Report, String> {
        let raw = self
            .raw
            .get_or_init(|| serde_json::from_str(&self.text).map_err(|e| e.to_string()))
            .as_ref()?;
        let full = self.full.get_or_init(|| compile(raw)).clone()?;
        Ok(self.report(Some(&full), Some(raw), doc))
    }

    /// The reduced schema of the document's key set; `None` when the schema or the document
    /// cannot be reduced.
    fn part(&self, value: &Value) -> Result<Option<Arc<Part>>, String> {
        let (Some(index), Value::Object(map)) = (&self.index, value) else {
            return Ok(None);
        };
        let keys: Vec<String> = map
            .keys()
            .filter(|k| self.top_level.contains(*k))
            .cloned()
            .collect();
        if let Some(part) = self.reduced.lock().map_err(|e| e.to_string())?.get(&keys) {
            return Ok(Some(part.clone()));
        }
        let set: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
        let part = match reduce(index, &set) {
            None => return Ok(None),
            Some(Reduced::Nothing) => Part {
                schema: None,
                validator: None,
            },
            Some(Reduced::Schema(schema)) => Part {
                validator: Some(compile(&schema)?),
                schema: Some(schema),
            },
        };
        let part = Arc::new(part);
        let mut cache = self.reduced.lock().map_err(|e| e.to_string())?;
        if cache.len() >= REDUCED_CACHE {
            cache.clear();
        }
        cache.insert(keys, part.clone());
        Ok(Some(part))
    }

    /// The findings: the validator's errors, unknown top-level keys, deprecated values.
    fn report(
        &self,
        validator: Option<&jsonschema::Validator>,
        root: Option<&Value>,
        doc: &Loaded,
    ) -> Report {
        let mut report = Report::default();
        for error in validator
            .into_iter()
            .flat_map(|v| v.iter_errors(&doc.value))
        {
            let error = most_specific(&error);
            let path = dotted(&error.instance_path().to_string());
            report.errors.push(Finding {
                line: doc.line_of(&path),
                message: error.to_string(),
                path,
            });
        }
        if let Value::Object(map) = &doc.value {
            for key in map.keys() {
                if !self.top_level.contains(key) {
                    report.warnings.push(Finding {
                        path: key.clone(),
                        line: doc.line_of(key),
                        message: format!(
                            "unknown top-level key {key:?}: cloud-init ignores it (check the spelling)"
                        ),
                    });
                }
            }
        }
        let mut deprecated = Vec::new();
        if let Some(root) = root {
            walk_deprecated(root, root, &doc.value, "", &mut deprecated, 0);
        }
        deprecated.sort();
        deprecated.dedup();
        for (path, description) in deprecated {
            report.warnings.push(Finding {
                line: doc.line_of(&path),
                message: format!("deprecated: {description}"),
                path,
            });
        }
        report
    }
}

fn compile(schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
    jsonschema::validator_for(schema)
        .map(Arc::new)
        .map_err(|e| format!("compiling the schema: {e}"))
}

/// For a `oneOf`/`anyOf` failure, the error inside the branch the value was most likely meant
/// for: branches failing on the value's own type are skipped, and the deepest error wins (so
/// `users.0.lock_passwd` is reported rather than `users.0`).
fn most_specific<'a, 'b>(
    error: &'b jsonschema::ValidationError<'a>,
) -> &'b jsonschema::ValidationError<'a> {
    use jsonschema::error::ValidationErrorKind;
    let context = match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            context
        }
        _ => return error,
    };
    let here = error.instance_path().as_str();
    let best = context
        .iter()
        .flatten()
        .filter(|e| {
            !(e.instance_path().as_str() == here
                && matches!(e.kind(), ValidationErrorKind::Type { .. }))
        })
        .max_by_key(|e| e.instance_path().as_str().matches('/').count());
    match best {
        Some(inner) if inner.instance_path().as_str().len() > here.len() => most_specific(inner),
        _ => error,
    }
}

/// `/users/0/name` -> `users.0.name`.
fn dotted(pointer: &str) -> String {
    pointer
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Follows a local `$ref` (`#/$defs/name`).
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    for _ in 0..16 {
        match node.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(target) => node = target,
                None => return node,
            },
            None => return node,
        }
    }
    node
}

/// Top-level property names, through `$ref` and `allOf`/`anyOf`/`oneOf`.
fn collect_properties(root: &Value, node: &Value, out: &mut BTreeSet<String>, depth: usize) {
    if depth > 16 {
        return;
    }
    let node = resolve(root, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        out.extend(props.keys().cloned());
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        for sub in node
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            collect_properties(root, sub, out, depth + 1);
        }
    }
}

/// Whether `instance` plausibly takes `branch` of a `oneOf`/`anyOf`: its `type` and `enum`
/// (when present) admit the instance.
fn branch_applies(root: &Value, branch: &Value, instance: &Value) -> bool {
    let branch = resolve(root, branch);
    let type_ok = match branch.get("type") {
        None => true,
        Some(Value::String(t)) => type_matches(t, instance),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .any(|t| type_matches(t, instance)),
        Some(_) => true,
    };
    let enum_ok = branch
        .get("enum")
        .and_then(Value::as_array)
        .is_none_or(|values| values.contains(instance));
    type_ok && enum_ok
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// Collects `(path, description)` of every value that a `deprecated: true` schema node applies
/// to.
fn walk_deprecated(
    root: &Value,
    node: &Value,
    instance: &Value,
    path: &str,
    out: &mut Vec<(String, String)>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    let node = resolve(root, node);
    if node.get("deprecated").and_then(Value::as_bool) == Some(true) {
        let description = node
            .get("deprecated_description")
            .or_else(|| node.get("description"))
            .and_then(Value::as_str)
            .unwrap_or("this key or value form is deprecated");
        out.push((path.to_owned(), description.to_owned()));
    }
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    for sub in node
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        walk_deprecated(root, sub, instance, path, out, depth + 1);
    }
    for combinator in ["anyOf", "oneOf"] {
        for sub in node
            .get(combinator)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if branch_applies(root, sub, instance) {
                walk_deprecated(root, sub, instance, path, out, depth + 1);
            }
        }
    }
    match instance {
        Value::Object(map) => {
            let props = node.get("properties").and_then(Value::as_object);
            let patterns = node.get("patternProperties").and_then(Value::as_object);
            for (key, value) in map {
                if let Some(sub) = props.and_then(|p| p.get(key)) {
                    walk_deprecated(root, sub, value, &join(key), out, depth + 1);
                    continue;
                }
                for (pattern, sub) in patterns.into_iter().flatten() {
                    if Regex::new(pattern).is_ok_and(|re| re.is_match(key)) {
                        walk_deprecated(root, sub, value, &join(key), out, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(items_schema) = node.get("items").filter(|i| i.is_object()) {
                for (i, item) in items.iter().enumerate() {
                    walk_deprecated(
                        root,
                        items_schema,
                        item,
                        &join(&i.to_string()),
                        out,
                        depth + 1,
                    );
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::compile(json!({
            "$defs": {
                "user": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "uid": {"oneOf": [
                        {"type": "integer"},
                        {"type": "string", "deprecated": true, "description": "use an integer"}
                    ]}
                }}
            },
            "allOf": [
                {"type": "object", "properties": {
                    "users": {"type": "array", "items": {"$ref": "#/$defs/user"}},
                    "old_key": {"type": "boolean", "deprecated": true, "description": "gone soon"}
                }}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn errors_deprecations_and_unknown_keys() {
        let doc = crate::yaml11::load(
            "users:\n  - name: 5\n    uid: '1000'\n  - uid: 1001\nold_key: yes\nmystery: 1\n",
        )
        .unwrap();
        let report = schema().check(&doc).unwrap();
        assert_eq!(report, schema().check_full(&doc).unwrap());
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert_eq!(report.errors[0].path, "users.0.name");
        assert_eq!(report.errors[0].line, Some(2));
        let warned: Vec<&str> = report.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(warned, ["mystery", "old_key", "users.0.uid"], "{report:?}");
    }
}
