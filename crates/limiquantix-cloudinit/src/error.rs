//! Errors and warnings of the seed engine.

use std::fmt;

use thiserror::Error;

use crate::image::ImageError;

/// A problem in something a user gave us, found before anything is written.
///
/// Its message names the file (`user-data`, `meta-data`, `network-config`, `vendor-data`, or a
/// field such as `hostname`), the line and/or path inside it when known, what is wrong, and what
/// is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ValidationError {
    /// The file or field the problem is in.
    pub file: String,
    /// 1-based line number inside the file, when known.
    pub line: Option<usize>,
    /// Path to the offending value inside the document (`users.0.name`), when known.
    pub path: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// What is allowed instead.
    pub allowed: String,
}

impl ValidationError {
    /// A problem in `file` with no location inside it.
    pub fn new(
        file: impl Into<String>,
        problem: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line: None,
            path: None,
            problem: problem.into(),
            allowed: allowed.into(),
        }
    }

    /// Sets the 1-based line number.
    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    /// Sets the path inside the document.
    pub fn at_path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.path = (!path.is_empty()).then_some(path);
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_location(f, &self.file, self.line, self.path.as_deref())?;
        write!(f, ": {} (allowed: {})", self.problem, self.allowed)
    }
}

/// Something suspicious that does not block the seed (a deprecated or unknown key, a skipped
/// check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationWarning {
    /// The file or field the warning is about.
    pub file: String,
    /// 1-based line number inside the file, when known.
    pub line: Option<usize>,
    /// Path to the value inside the document, when known.
    pub path: Option<String>,
    /// What was noticed.
    pub message: String,
}

impl fmt::Display for ValidationWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_location(f, &self.file, self.line, self.path.as_deref())?;
        write!(f, ": {}", self.message)
    }
}

fn write_location(
    f: &mut fmt::Formatter<'_>,
    file: &str,
    line: Option<usize>,
    path: Option<&str>,
) -> fmt::Result {
    f.write_str(file)?;
    if let Some(line) = line {
        write!(f, " line {line}")?;
    }
    if let Some(path) = path {
        write!(f, " at {path}")?;
    }
    Ok(())
}

/// Why a seed could not be built or written.
#[derive(Debug, Error)]
pub enum SeedError {
    /// User input is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The image writer refused the file set.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// YAML emission failed (a bug: our models always serialize).
    #[error("emitting YAML failed: {0}")]
    Emit(String),
    /// No randomness for a password salt.
    #[error("getting random bytes for a password salt failed: {0}")]
    Random(String),
    /// Writing the seed file failed.
    #[error("writing {path} failed: {source}")]
    Io {
        /// The file being written.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_file_location_and_what_is_allowed() {
        let e = ValidationError::new("user-data", "`users` must be a list", "a list of users")
            .at_line(Some(3))
            .at_path("users");
        assert_eq!(
            e.to_string(),
            "user-data line 3 at users: `users` must be a list (allowed: a list of users)"
        );
    }
}
