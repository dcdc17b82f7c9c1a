//! The image library: cloud images and ISOs in the daemon's images directory.
//!
//! A flat directory of files; an image's name is its file name. Imports (from a local path or an
//! http(s) URL) land in `<images>/.partial/<name>.part`, are checked (sha256 when given, format
//! from the header) and only then become visible with a no-clobber link into place, so a failed or
//! refused import leaves nothing in the library. An interrupted download keeps its partial file
//! and resumes with an HTTP `Range` request. [`jobs`] runs URL imports in the background as
//! download jobs. No gRPC here: the image service mounts this on the API.

mod error;
mod format;
mod import;
pub mod jobs;
mod library;
mod name;

pub use error::ImageError;
pub use format::{Foreign, HEADER_LEN, ImageFormat, Packed, check_importable, detect};
pub use import::{
    CancelOutcome, ChunkStream, ImportCancel, ImportOutcome, ImportProgress, ImportRequest,
    ImportSource,
};
pub use library::{HttpOptions, ImageEntry, ImageLibrary, PARTIAL_DIR};
pub use name::{KNOWN_EXTENSIONS, MAX_NAME_LEN, derive_name, stem, validate_name};

#[cfg(test)]
mod tests;
