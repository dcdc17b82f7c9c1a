//! Errors of the image library.

use std::path::PathBuf;

/// Everything that can go wrong in the image library. Messages are one line, name what was wrong
/// and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// An image name broke the naming rules.
    #[error(
        "invalid image name {name:?}: {reason}; use 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'"
    )]
    InvalidName {
        /// The name as given.
        name: String,
        /// What rule it broke.
        reason: &'static str,
    },
    /// No name was given and none could be derived from the source.
    #[error("cannot derive an image name from {source_desc:?}; pass a name")]
    NoName {
        /// The path or URL the name was to come from.
        source_desc: String,
    },
    /// An image with this name (or the same name without its extension) exists.
    #[error("an image named {0:?} already exists; delete it first or import under another name")]
    AlreadyExists(String),
    /// No image of that name is in the library.
    #[error("no image named {0:?} in the library")]
    NotFound(String),
    /// A name without extension matched several images.
    #[error("image name {name:?} is ambiguous: it matches {matches}; use the full name")]
    Ambiguous {
        /// The name as given.
        name: String,
        /// The matching file names, comma-separated.
        matches: String,
    },
    /// The image backs a VM's disk overlay.
    #[error("image {name:?} is in use by a VM disk (backing file {path}); delete the VM first")]
    InUse {
        /// The image name.
        name: String,
        /// The image path that a VM uses.
        path: PathBuf,
    },
    /// The content is in a format the library does not accept.
    #[error("{what}; {hint}")]
    UnsupportedFormat {
        /// What was found, e.g. "the image is in VMDK format".
        what: String,
        /// How to make it acceptable.
        hint: String,
    },
    /// A sha256 argument that is not 64 hex digits.
    #[error("invalid sha256 {0:?}: expected 64 hexadecimal characters")]
    InvalidChecksum(String),
    /// The content did not match the expected sha256; nothing was kept.
    #[error("sha256 mismatch: expected {expected}, got {actual}; the file was discarded")]
    ChecksumMismatch {
        /// The sha256 the caller asked for.
        expected: String,
        /// The sha256 of what was received.
        actual: String,
    },
    /// The source is neither an existing regular file nor a usable URL.
    #[error("invalid import source {source_desc:?}: {reason}")]
    InvalidSource {
        /// The path or URL as given.
        source_desc: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The server answered with an HTTP error status.
    #[error("download of {url} failed: the server answered {status}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The transfer failed and retries were exhausted; the partial file is kept for a resume.
    #[error("download of {url} failed: {source}; run the import again to resume")]
    Transfer {
        /// The URL requested.
        url: String,
        /// The underlying HTTP client error.
        #[source]
        source: reqwest::Error,
    },
    /// The server sent a different number of bytes than it announced.
    #[error(
        "download of {url} is incomplete: got {got} of {expected} bytes; run the import again to resume"
    )]
    Incomplete {
        /// The URL requested.
        url: String,
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// An upload stream broke or ended early; nothing was kept.
    #[error("the upload was interrupted: {reason}")]
    Upload {
        /// What happened.
        reason: String,
    },
    /// The import was cancelled; its partial files were removed.
    #[error("the import of {0:?} was cancelled; nothing was kept")]
    Cancelled(String),
    /// Another import of the same name is running.
    #[error("an import of {0:?} is already in progress")]
    Busy(String),
    /// The source has no content.
    #[error("the image {0:?} is empty")]
    Empty(String),
    /// An image already in place is not the one a download would have published.
    #[error(
        "the image {name:?} exists but is not this download's: {reason}; delete it or start the download again under another name"
    )]
    Unverified {
        /// The image's name.
        name: String,
        /// Why it is not taken.
        reason: String,
    },
    /// A file system operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done ("read", "create", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// Wraps an I/O error with the operation and path it concerns.
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io { op, path, source }
    }
}
