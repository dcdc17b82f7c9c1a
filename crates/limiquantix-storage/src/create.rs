//! Creating disks: qcow2 overlays on a backing image, and blank qcow2/raw disks.
//!
//! Overlays are made by `qemu-img create -f qcow2 -F <fmt> -b <backing> <file> <size>`, with the
//! backing format detected natively (never probed by QEMU) and the backing path absolute. The
//! process runs under tokio; header reads run in `spawn_blocking`. An existing file is never
//! overwritten.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::error::StorageError;
use crate::format::{DetectedFormat, detect_format};
use crate::qcow2::Qcow2Header;
use limiquantix_vm::model::DiskFormat;

/// Runs blocking storage work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Task(e.to_string()))?
}

fn refuse_existing(path: &Path) -> Result<(), StorageError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(StorageError::AlreadyExists {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// `qemu-img create -q -f qcow2 [-F <fmt> -b <backing>] <file> <size>`.
async fn qemu_img_create(
    program: &Path,
    file: &Path,
    size_bytes: u64,
    backing: Option<(&Path, &str)>,
) -> Result<(), StorageError> {
    let mut cmd = Command::new(program);
    cmd.args(["create", "-q", "-f", "qcow2"]);
    if let Some((path, fmt)) = backing {
        cmd.args(["-F", fmt, "-b"]).arg(path);
    }
    cmd.arg(file).arg(size_bytes.to_string());
    run_qemu_img(program, cmd).await
}

/// Runs a `qemu-img` command; a failure carries its error output.
pub(crate) async fn run_qemu_img(program: &Path, mut cmd: Command) -> Result<(), StorageError> {
    let out = cmd
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| StorageError::Spawn {
            program: program.to_owned(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(StorageError::QemuImg {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Creates `overlay`, a qcow2 file backed by `backing` (qcow2 or raw, format detected from its
/// header), with virtual size `size_bytes`, which must be at least the backing's virtual size.
/// Returns the new overlay's header, read back and checked.
pub async fn create_overlay(
    qemu_img_bin: &Path,
    backing: &Path,
    overlay: &Path,
    size_bytes: u64,
) -> Result<Qcow2Header, StorageError> {
    if !backing.is_absolute() {
        return Err(StorageError::BackingNotAbsolute {
            path: backing.to_owned(),
        });
    }
    let (b, o) = (backing.to_owned(), overlay.to_owned());
    let detected = blocking(move || {
        refuse_existing(&o)?;
        detect_format(&b)
    })
    .await?;
    if detected.virtual_size() > size_bytes {
        return Err(StorageError::OverlayTooSmall {
            backing: backing.to_owned(),
            backing_size: detected.virtual_size(),
            requested: size_bytes,
        });
    }
    let fmt = detected.format().qemu_name();
    qemu_img_create(qemu_img_bin, overlay, size_bytes, Some((backing, fmt))).await?;
    let o = overlay.to_owned();
    let header = blocking(move || match detect_format(&o)? {
        DetectedFormat::Qcow2(h) => Ok(h),
        DetectedFormat::Raw { .. } => Err(StorageError::Unreadable {
            path: o,
            problem: "qemu-img did not write a qcow2 file".into(),
        }),
    })
    .await?;
    let ok = header.virtual_size == size_bytes
        && header.backing_file.as_deref() == Some(backing.as_os_str().as_encoded_bytes())
        && header.backing_format.as_deref() == Some(fmt);
    if !ok {
        return Err(StorageError::Unreadable {
            path: overlay.to_owned(),
            problem: format!("the new overlay's header does not match the request: {header:?}"),
        });
    }
    tracing::debug!(overlay = %overlay.display(), backing = %backing.display(), fmt, size_bytes, "created overlay");
    Ok(header)
}

/// Creates an empty disk: qcow2 through `qemu-img`, raw natively as a sparse file.
pub async fn create_blank(
    qemu_img_bin: &Path,
    path: &Path,
    format: DiskFormat,
    size_bytes: u64,
) -> Result<(), StorageError> {
    let p: PathBuf = path.to_owned();
    match format {
        DiskFormat::Raw => {
            blocking(move || {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&p)
                    .map_err(|source| match source.kind() {
                        std::io::ErrorKind::AlreadyExists => {
                            StorageError::AlreadyExists { path: p.clone() }
                        }
                        _ => StorageError::Io {
                            path: p.clone(),
                            source,
                        },
                    })?;
                f.set_len(size_bytes)
                    .and_then(|()| f.sync_all())
                    .map_err(|source| StorageError::Io { path: p, source })
            })
            .await
        }
        DiskFormat::Qcow2 => {
            blocking(move || refuse_existing(&p)).await?;
            qemu_img_create(qemu_img_bin, path, size_bytes, None).await
        }
    }
}
