//! What can go wrong with a disk image.

use std::path::PathBuf;

use crate::qcow2::Qcow2Error;

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file with the qcow2 magic has a bad header.
    #[error("{}: {source}", path.display())]
    Qcow2 {
        /// The file.
        path: PathBuf,
        /// What is wrong with the header.
        #[source]
        source: Qcow2Error,
    },
    /// The image is in a format the backend does not use.
    #[error(
        "{} is a {format} image; only qcow2 and raw images are supported \
         (convert it: qemu-img convert -O qcow2 <image> <image>.qcow2)",
        path.display()
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// The format recognised.
        format: &'static str,
    },
    /// The image cannot be read natively.
    #[error("{}: cannot read the image: {problem}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        problem: String,
    },
    /// An overlay was requested smaller than its backing image.
    #[error(
        "the disk size {requested} bytes is smaller than the backing image {} \
         ({backing_size} bytes); ask for at least {backing_size} bytes",
        backing.display()
    )]
    OverlayTooSmall {
        /// The backing image.
        backing: PathBuf,
        /// Its virtual size.
        backing_size: u64,
        /// The size asked for.
        requested: u64,
    },
    /// Backing paths are stored in the overlay, so they must be absolute.
    #[error("backing image {} must be an absolute path", path.display())]
    BackingNotAbsolute {
        /// The path given.
        path: PathBuf,
    },
    /// The file to create exists already; it is never overwritten.
    #[error("{} already exists; refusing to overwrite it", path.display())]
    AlreadyExists {
        /// The file.
        path: PathBuf,
    },
    /// `qemu-img` could not be started.
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The spawn error.
        #[source]
        source: std::io::Error,
    },
    /// `qemu-img` failed.
    #[error("qemu-img failed ({status}): {stderr}")]
    QemuImg {
        /// Exit status.
        status: String,
        /// Its error output.
        stderr: String,
    },
    /// The path is not a regular file or block device (a directory, FIFO, socket, ...).
    #[error("{} is not an image: only regular files and block devices are", path.display())]
    NotAnImage {
        /// The path.
        path: PathBuf,
    },
    /// A file the definition names does not exist (or is not a regular file).
    #[error("{field}: {} does not exist or is not a regular file", path.display())]
    Missing {
        /// The definition field.
        field: String,
        /// The file.
        path: PathBuf,
    },
    /// A disk's declared format is not the file's.
    #[error(
        "{field}: {} is declared {declared} but the file is {detected}; set format to {detected}",
        path.display()
    )]
    FormatMismatch {
        /// The definition field.
        field: String,
        /// The file.
        path: PathBuf,
        /// The format in the definition.
        declared: &'static str,
        /// The format found.
        detected: &'static str,
    },
    /// A qcow2 image has a backing file but does not record its format, so QEMU would guess.
    #[error(
        "{field}: {} has a backing file without a recorded format; QEMU would have to guess it. \
         Record it: qemu-img rebase -u -F <qcow2|raw> -b <backing> <image>",
        path.display()
    )]
    BackingFormatMissing {
        /// The definition field.
        field: String,
        /// The image.
        path: PathBuf,
    },
    /// A volume id or snapshot name is not acceptable.
    #[error(
        "{field}: {value:?} is not a valid name: 1 to 64 letters, digits, '.', '_' and '-', \
         not starting with '.'"
    )]
    BadName {
        /// The request field.
        field: String,
        /// The value given (at most 80 characters of it).
        value: String,
    },
    /// A resize asked for less than the image's current size; images only grow.
    #[error(
        "{}: the new size {requested} bytes is smaller than the current {current} bytes; \
         volumes only grow (shrinking would cut the guest's filesystem)",
        path.display()
    )]
    Shrink {
        /// The image.
        path: PathBuf,
        /// Its virtual size now.
        current: u64,
        /// The size asked for.
        requested: u64,
    },
    /// A size is not a whole number of 512-byte sectors (or is zero).
    #[error("size {0} bytes is not a positive multiple of 512")]
    BadSize(u64),
    /// Internal snapshots need qcow2.
    #[error(
        "{} is a raw image: snapshots need qcow2 (convert it: qemu-img convert -O qcow2)",
        path.display()
    )]
    RawSnapshot {
        /// The image.
        path: PathBuf,
    },
    /// A snapshot name is taken, or missing.
    #[error("{}: {problem}", path.display())]
    Snapshot {
        /// The image.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("storage task failed: {0}")]
    Task(String),
}
