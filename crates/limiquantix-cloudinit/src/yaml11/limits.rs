//! Bounds on what one document may cost: nesting depth and the values aliases copy.

use serde_json::Value;

use super::document::{YamlError, err};

/// Deepest nesting of collections accepted (PyYAML itself fails a little deeper, on Python's
/// recursion limit).
pub const MAX_DEPTH: usize = 256;

/// Most values that aliases may copy in one document (guards against "billion laughs").
pub const MAX_NODES: usize = 1_000_000;

/// Refuses a collection that would open at `depth` (the number already open) past [`MAX_DEPTH`].
pub(super) fn check_depth(depth: usize, line: usize) -> Result<(), YamlError> {
    if depth >= MAX_DEPTH {
        return err(
            line,
            format!("collections nest deeper than {MAX_DEPTH} levels"),
        );
    }
    Ok(())
}

/// Counts the values an alias copies into `expanded`, refusing past [`MAX_NODES`].
pub(super) fn add_expansion(
    expanded: &mut usize,
    value: &Value,
    line: usize,
) -> Result<(), YamlError> {
    *expanded += count_nodes(value, MAX_NODES);
    if *expanded > MAX_NODES {
        return err(
            line,
            format!("aliases expand to more than {MAX_NODES} values"),
        );
    }
    Ok(())
}

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
