//! Growing a disk ([`crate::VmBackend::resize_disk`]): the checks every backend makes before and
//! after it reads the disk's current size, so every backend refuses the same requests with the
//! same words, and the size a definition records for the disks a backend created.

use crate::error::BackendError;
use crate::model::{DiskSource, DiskSpec, MAX_DISK_BYTES, VmDefinition, VmId};

/// Why a disk resize is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResizeError {
    /// The definition has no disk with this device id.
    #[error("VM {vm_id} has no disk {disk_id:?}")]
    NoSuchDisk {
        /// The VM.
        vm_id: VmId,
        /// The device id asked for.
        disk_id: String,
    },
    /// The disk is attached read-only.
    #[error(
        "disk {disk_id:?} of VM {vm_id} is attached read-only; a read-only disk is not resized"
    )]
    ReadOnly {
        /// The VM.
        vm_id: VmId,
        /// The disk.
        disk_id: String,
    },
    /// The new size is zero, not a multiple of 512 or over 64 TiB.
    #[error(
        "new_size_bytes: {requested} bytes is not allowed: sizes are positive multiples of 512 \
         up to 64 TiB"
    )]
    BadSize {
        /// The size asked for.
        requested: u64,
    },
    /// The new size is smaller than the disk's current virtual size.
    #[error(
        "new_size_bytes: {requested} bytes is smaller than the current size of disk {disk_id:?} \
         ({current} bytes); disks only grow: ask for at least {current} bytes"
    )]
    Shrink {
        /// The disk.
        disk_id: String,
        /// Its current virtual size.
        current: u64,
        /// The size asked for.
        requested: u64,
    },
}

impl From<ResizeError> for BackendError {
    /// An unknown disk is [`BackendError::DeviceNotFound`], a read-only one
    /// [`BackendError::Precondition`], a size that is not acceptable [`BackendError::Invalid`].
    fn from(e: ResizeError) -> Self {
        let text = e.to_string();
        match e {
            ResizeError::NoSuchDisk { vm_id, disk_id } => BackendError::DeviceNotFound {
                vm_id,
                kind: "disk",
                device_id: disk_id,
            },
            ResizeError::ReadOnly { .. } => BackendError::Precondition(text),
            ResizeError::BadSize { .. } | ResizeError::Shrink { .. } => BackendError::Invalid(text),
        }
    }
}

/// The checks before any I/O: disk `disk_id` of `def` exists and is writable, and
/// `new_size_bytes` is a size a disk may have. Returns the disk's index and spec.
pub fn resizable_disk<'a>(
    def: &'a VmDefinition,
    disk_id: &str,
    new_size_bytes: u64,
) -> Result<(usize, &'a DiskSpec), ResizeError> {
    let (index, disk) = def
        .disks
        .iter()
        .enumerate()
        .find(|(_, d)| d.id == disk_id)
        .ok_or_else(|| ResizeError::NoSuchDisk {
            vm_id: def.id.clone(),
            disk_id: disk_id.to_owned(),
        })?;
    if disk.readonly {
        return Err(ResizeError::ReadOnly {
            vm_id: def.id.clone(),
            disk_id: disk_id.to_owned(),
        });
    }
    if new_size_bytes == 0 || !new_size_bytes.is_multiple_of(512) || new_size_bytes > MAX_DISK_BYTES
    {
        return Err(ResizeError::BadSize {
            requested: new_size_bytes,
        });
    }
    Ok((index, disk))
}

/// The check against the disk's current virtual size: `Ok(true)` when the disk must grow,
/// `Ok(false)` when it already has the size asked for, an error when the new size is smaller.
pub fn check_grow(disk_id: &str, current: u64, requested: u64) -> Result<bool, ResizeError> {
    if requested < current {
        return Err(ResizeError::Shrink {
            disk_id: disk_id.to_owned(),
            current,
            requested,
        });
    }
    Ok(requested > current)
}

/// The virtual size the definition records for a disk the backend created (blank or overlay);
/// `None` for a disk given by path.
pub fn recorded_size(disk: &DiskSpec) -> Option<u64> {
    match disk.source {
        DiskSource::Overlay { size_bytes, .. } | DiskSource::Blank { size_bytes } => {
            Some(size_bytes)
        }
        DiskSource::Path { .. } => None,
    }
}

/// Records `size_bytes` as the virtual size of disk `index` of `def` when the backend created it
/// (a disk given by path records no size). Returns whether the definition changed.
pub fn record_size(def: &mut VmDefinition, index: usize, size_bytes: u64) -> bool {
    match def.disks.get_mut(index).map(|d| &mut d.source) {
        Some(DiskSource::Overlay { size_bytes: s, .. } | DiskSource::Blank { size_bytes: s })
            if *s != size_bytes =>
        {
            *s = size_bytes;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DiskFormat, VmId};
    use std::path::PathBuf;

    fn def() -> VmDefinition {
        let mut d = VmDefinition::new(VmId::generate(), "r", 256);
        let disk = |id: &str, source, readonly| DiskSpec {
            id: id.into(),
            source,
            bus: Default::default(),
            format: DiskFormat::Qcow2,
            readonly,
            boot_index: None,
            limits: None,
        };
        d.disks.push(disk(
            "d0",
            DiskSource::Blank {
                size_bytes: 1 << 20,
            },
            false,
        ));
        let path = DiskSource::Path {
            path: PathBuf::from("/pool/ro.qcow2"),
        };
        d.disks.push(disk("ro", path, true));
        d
    }

    #[test]
    fn only_an_existing_writable_disk_and_an_acceptable_size_pass() {
        let d = def();
        let (i, disk) = resizable_disk(&d, "d0", 2 << 20).unwrap();
        assert_eq!((i, disk.id.as_str()), (0, "d0"));
        let e = resizable_disk(&d, "nope", 2 << 20).unwrap_err();
        assert!(matches!(e, ResizeError::NoSuchDisk { .. }), "{e:?}");
        assert!(matches!(
            BackendError::from(e),
            BackendError::DeviceNotFound { kind: "disk", ref device_id, .. } if device_id == "nope"
        ));
        let e = resizable_disk(&d, "ro", 2 << 20).unwrap_err();
        assert!(matches!(
            BackendError::from(e),
            BackendError::Precondition(_)
        ));
        for bad in [0, 1000, (1 << 20) + 1, MAX_DISK_BYTES + 512] {
            let e = resizable_disk(&d, "d0", bad).unwrap_err();
            assert_eq!(e, ResizeError::BadSize { requested: bad });
            let msg = BackendError::from(e).to_string();
            assert!(msg.starts_with("new_size_bytes: "), "{msg}");
        }
        assert!(resizable_disk(&d, "d0", MAX_DISK_BYTES).is_ok());
    }

    #[test]
    fn disks_only_grow() {
        assert_eq!(check_grow("d0", 1024, 2048), Ok(true));
        assert_eq!(check_grow("d0", 1024, 1024), Ok(false));
        let e = check_grow("d0", 2048, 1024).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("new_size_bytes") && msg.contains("2048") && msg.contains("1024"),
            "{msg}"
        );
        assert!(matches!(BackendError::from(e), BackendError::Invalid(_)));
    }

    #[test]
    fn only_created_disks_record_their_size() {
        let mut d = def();
        assert_eq!(recorded_size(&d.disks[0]), Some(1 << 20));
        assert_eq!(recorded_size(&d.disks[1]), None);
        assert!(record_size(&mut d, 0, 4 << 20));
        assert!(!record_size(&mut d, 0, 4 << 20));
        assert_eq!(recorded_size(&d.disks[0]), Some(4 << 20));
        assert!(!record_size(&mut d, 1, 4 << 20));
        assert!(!record_size(&mut d, 7, 4 << 20));
    }
}
