//! Checks every document goes through: size, UTF-8, YAML loading, and naming a JSON kind.

use serde_json::Value;

use crate::error::ValidationError;
use crate::yaml11::{self, Loaded};

/// Largest single seed file we accept: 16 MiB. cloud-init reads seeds into memory, and a seed
/// larger than this is a mistake (images and packages belong elsewhere).
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Largest total of all seed files: 32 MiB.
pub const MAX_SEED_BYTES: usize = 32 * 1024 * 1024;

/// A file of `len` bytes must fit [`MAX_FILE_BYTES`].
pub(crate) fn check_size(file: &str, len: usize) -> Result<(), ValidationError> {
    if len > MAX_FILE_BYTES {
        return Err(ValidationError::new(
            file,
            format!("the file is {len} bytes"),
            format!("at most {MAX_FILE_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The text of a file that must be UTF-8.
pub(crate) fn utf8<'a>(file: &str, data: &'a [u8]) -> Result<&'a str, ValidationError> {
    std::str::from_utf8(data).map_err(|e| {
        let line = data[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        ValidationError::new(
            file,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            "UTF-8 text",
        )
        .at_line(Some(line))
    })
}

/// Loads YAML as PyYAML `safe_load` does.
pub(crate) fn load(file: &str, text: &str) -> Result<Loaded, ValidationError> {
    yaml11::load(text).map_err(|e| {
        ValidationError::new(
            file,
            format!("YAML does not parse: {}", e.message),
            "YAML that PyYAML safe_load reads (YAML 1.1); quote strings such as `=`",
        )
        .at_line(e.line)
    })
}

/// A JSON value's kind, for messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}
