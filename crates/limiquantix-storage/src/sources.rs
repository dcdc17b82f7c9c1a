//! Checking a definition's image files before QEMU sees them.
//!
//! QEMU's own errors for a wrong format or a missing file are obscure and come late. This check
//! names the definition field instead: every disk given by path exists and has the declared
//! format; a qcow2 image that has a backing file records the backing's format (otherwise QEMU
//! would probe it); every overlay backing is qcow2 or raw; every media CD-ROM's ISO exists (the
//! seed is written by the backend itself, so it is not checked).

use std::path::Path;

use crate::error::StorageError;
use crate::format::is_image_file;
use crate::format::{DetectedFormat, detect_format};
use limiquantix_vm::model::{CdromRole, DiskSource, VmDefinition};

/// Checks the image files a definition refers to (blocking I/O). Disks the backend creates are
/// checked through their backing image only.
pub fn check_sources(def: &VmDefinition) -> Result<(), StorageError> {
    for (i, d) in def.disks.iter().enumerate() {
        match &d.source {
            DiskSource::Path { path } => {
                let field = format!("disks[{i}].source.path");
                let found = detect(&field, path)?;
                if found.format() != d.format {
                    return Err(StorageError::FormatMismatch {
                        field: format!("disks[{i}].format"),
                        path: path.clone(),
                        declared: d.format.qemu_name(),
                        detected: found.format().qemu_name(),
                    });
                }
                if let DetectedFormat::Qcow2(h) = &found
                    && h.backing_file.is_some()
                    && h.backing_format.is_none()
                {
                    return Err(StorageError::BackingFormatMissing {
                        field,
                        path: path.clone(),
                    });
                }
            }
            DiskSource::Overlay { backing, .. } => {
                detect(&format!("disks[{i}].source.backing"), backing)?;
            }
            DiskSource::Blank { .. } => {}
        }
    }
    for (i, c) in def.cdroms.iter().enumerate() {
        if let Some(p) = &c.path
            && c.role == CdromRole::Media
            && !std::fs::metadata(p).is_ok_and(|m| is_image_file(&m))
        {
            return Err(StorageError::Missing {
                field: format!("cdroms[{i}].path"),
                path: p.clone(),
            });
        }
    }
    Ok(())
}

fn detect(field: &str, path: &Path) -> Result<DetectedFormat, StorageError> {
    if std::fs::metadata(path).is_err() {
        return Err(StorageError::Missing {
            field: field.to_owned(),
            path: path.to_owned(),
        });
    }
    detect_format(path)
}
