//! What the option builders share: the argument accumulator and the checks on paths that go
//! into arguments.

use std::ffi::OsString;
use std::path::Path;

use serde_json::Value;

use limiquantix_vm::model::ModelError;

/// Longest Unix socket path (`sun_path` is 108 bytes with the terminating NUL).
pub(super) const MAX_SOCKET_PATH: usize = 107;

/// A path that goes into JSON must be UTF-8, absolute and normalized.
pub(super) fn utf8<'a>(field: &str, p: &'a Path) -> Result<&'a str, ModelError> {
    limiquantix_vm::model::check_path(field, p)?;
    Ok(p.to_str().unwrap_or_default())
}

/// A socket path must fit `sun_path`.
pub(super) fn socket<'a>(field: &str, p: &'a Path) -> Result<&'a std::ffi::OsStr, ModelError> {
    let len = p.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ModelError {
            field: field.to_owned(),
            problem: format!(
                "{} is {len} bytes; Unix socket paths are at most {MAX_SOCKET_PATH} \
                 (use a shorter run directory)",
                p.display()
            ),
        });
    }
    Ok(p.as_os_str())
}

/// Argument accumulator.
#[derive(Default)]
pub(super) struct Argv(pub(super) Vec<OsString>);

impl Argv {
    /// Adds a bare option (`-S`).
    pub(super) fn flag(&mut self, name: &str) {
        self.0.push(name.into());
    }

    /// Adds an option and its value as two arguments.
    pub(super) fn opt(&mut self, name: &str, value: impl Into<OsString>) {
        self.0.push(name.into());
        self.0.push(value.into());
    }

    /// Adds an option whose value is a JSON object.
    pub(super) fn json(&mut self, name: &str, value: Value) {
        self.opt(name, value.to_string());
    }
}
