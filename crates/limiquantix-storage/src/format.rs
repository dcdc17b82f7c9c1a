//! Image format detection by magic.
//!
//! QEMU is never asked to guess: the backend detects the format here and always passes it
//! explicitly (`driver: qcow2`, `qemu-img -F`). Only qcow2 and raw are accepted; other formats
//! QEMU knows are recognised (by the one magic table, [`crate::magic`]) and refused with the
//! conversion command.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;

use crate::error::StorageError;
use crate::magic::{self, HEADER_LEN, ImageFormat};
use crate::qcow2::{Qcow2Header, read_up_to};
use limiquantix_vm::model::DiskFormat;

/// What [`detect_format`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectedFormat {
    /// A qcow2 image, with its header.
    Qcow2(Qcow2Header),
    /// No known magic: a raw image (ISO images are raw too).
    Raw {
        /// File size in bytes (the virtual size).
        size: u64,
    },
}

impl DetectedFormat {
    /// The format, as the model names it.
    pub fn format(&self) -> DiskFormat {
        match self {
            Self::Qcow2(_) => DiskFormat::Qcow2,
            Self::Raw { .. } => DiskFormat::Raw,
        }
    }

    /// Guest-visible size in bytes.
    pub fn virtual_size(&self) -> u64 {
        match self {
            Self::Qcow2(h) => h.virtual_size,
            Self::Raw { size } => *size,
        }
    }
}

/// Detects an image's format from its first bytes (blocking I/O).
pub fn detect_format(path: &Path) -> Result<DetectedFormat, StorageError> {
    let io = |source| StorageError::Io {
        path: path.to_owned(),
        source,
    };
    // Only regular files and block devices: opening a FIFO would block, a directory is no image.
    if !is_image_file(&std::fs::metadata(path).map_err(io)?) {
        return Err(StorageError::NotAnImage {
            path: path.to_owned(),
        });
    }
    let mut f = File::open(path).map_err(io)?;
    if !is_image_file(&f.metadata().map_err(io)?) {
        return Err(StorageError::NotAnImage {
            path: path.to_owned(),
        });
    }
    let mut head = vec![0u8; HEADER_LEN];
    let n = read_up_to(&mut f, &mut head).map_err(io)?;
    match magic::detect(&head[..n]) {
        ImageFormat::Qcow2 => Ok(DetectedFormat::Qcow2(Qcow2Header::read(path)?)),
        // An ISO image is a raw image to QEMU.
        ImageFormat::Raw | ImageFormat::Iso => {
            let size = f.seek(SeekFrom::End(0)).map_err(io)?;
            Ok(DetectedFormat::Raw { size })
        }
        refused @ (ImageFormat::Foreign(_) | ImageFormat::Packed(_)) => {
            Err(StorageError::UnsupportedFormat {
                path: path.to_owned(),
                format: refused.as_str(),
            })
        }
    }
}

/// Whether a file can hold an image: a regular file or a block device.
pub(super) fn is_image_file(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.is_file() || meta.file_type().is_block_device()
}

impl Qcow2Header {
    /// Reads and parses the header of the image at `path` (blocking I/O).
    pub fn read(path: &Path) -> Result<Self, StorageError> {
        let buf = Qcow2Header::read_header_bytes(path).map_err(|source| StorageError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&buf).map_err(|source| StorageError::Qcow2 {
            path: path.to_owned(),
            source,
        })
    }
}
