//! Growing volumes, internal snapshots, and the `-blockdev` description of a volume.

use super::id::check_volume_name;
use super::snapshots::read_snapshot_names;
use crate::create::{blocking, run_qemu_img};
use crate::error::StorageError;
use crate::format::detect_format;
use crate::resize::grow_image;
use limiquantix_vm::model::DiskFormat;
use std::path::Path;
use tokio::process::Command;

/// Runs `qemu-img` with `args`; its error output becomes the error.
pub(super) async fn qemu_img(
    program: &Path,
    args: &[&std::ffi::OsStr],
) -> Result<(), StorageError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_qemu_img(program, cmd).await
}

/// The format and virtual size of the image at `path`, read natively off the runtime.
pub(super) async fn probe(path: &Path) -> Result<(DiskFormat, u64), StorageError> {
    let p = path.to_owned();
    blocking(move || detect_format(&p).map(|d| (d.format(), d.virtual_size()))).await
}

/// Grows the image at `path` (not in use by a running VM) to `new_size` bytes with
/// `qemu-img resize -f <format>`; never shrinks (a smaller size is [`StorageError::Shrink`]),
/// and the same size is a no-op. Returns the previous virtual size.
pub async fn resize_image(
    qemu_img_bin: &Path,
    path: &Path,
    new_size: u64,
) -> Result<u64, StorageError> {
    if new_size == 0 || !new_size.is_multiple_of(512) {
        return Err(StorageError::BadSize(new_size));
    }
    let (format, current) = probe(path).await?;
    if new_size < current {
        return Err(StorageError::Shrink {
            path: path.to_owned(),
            current,
            requested: new_size,
        });
    }
    if new_size > current {
        grow_image(qemu_img_bin, path, format, new_size).await?;
        tracing::info!(file = %path.display(), from = current, to = new_size, "volume grown");
    }
    Ok(current)
}

/// Takes internal snapshot `name` of the qcow2 image at `path` (not in use by a running VM)
/// with `qemu-img snapshot -c`. A raw image is refused ([`StorageError::RawSnapshot`]), and so
/// is a name the image already has.
pub async fn create_snapshot(
    qemu_img_bin: &Path,
    path: &Path,
    name: &str,
) -> Result<(), StorageError> {
    check_volume_name("snapshot_id", name)?;
    let (format, _) = probe(path).await?;
    if format == DiskFormat::Raw {
        return Err(StorageError::RawSnapshot {
            path: path.to_owned(),
        });
    }
    let p = path.to_owned();
    let names = blocking(move || read_snapshot_names(&p)).await?;
    if names.iter().any(|n| n == name) {
        return Err(StorageError::Snapshot {
            path: path.to_owned(),
            problem: format!("snapshot {name:?} exists already"),
        });
    }
    qemu_img(
        qemu_img_bin,
        &[
            "snapshot".as_ref(),
            "-q".as_ref(),
            "-c".as_ref(),
            name.as_ref(),
            path.as_os_str(),
        ],
    )
    .await
}

/// The QEMU `-blockdev` JSON of a volume's format node (with its `file` child inline), as the
/// backend would attach it: `{"driver":"qcow2","node-name":…,"file":{"driver":"file","filename":…}}`.
pub fn blockdev_json(path: &Path, format: DiskFormat, node_name: &str) -> String {
    serde_json::json!({
        "driver": format.qemu_name(),
        "node-name": node_name,
        "discard": "unmap",
        "file": {
            "driver": "file",
            "filename": path.to_string_lossy(),
            "discard": "unmap",
        },
    })
    .to_string()
}
