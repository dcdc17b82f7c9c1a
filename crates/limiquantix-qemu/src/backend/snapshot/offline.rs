//! Snapshots of the image files of a VM without a QEMU: `qemu-img snapshot -c|-a|-d`, and the
//! names in each image read natively (`limiquantix_storage::volume::read_snapshot_names`).

use std::path::Path;

use super::disks::{SnapDisk, refused};
use crate::backend::core::{Result, blocking};
use limiquantix_storage::volume::read_snapshot_names;

/// `qemu-img snapshot -c` (create), `-a` (apply) or `-d` (delete) of `tag` on each disk.
pub(super) async fn apply_all(
    qemu_img: &Path,
    flag: &str,
    tag: &str,
    disks: &[SnapDisk],
) -> Result<()> {
    for d in disks {
        run(qemu_img, flag, tag, d).await?;
    }
    Ok(())
}

/// `qemu-img snapshot <flag> <tag> <file>`.
pub(super) async fn run(qemu_img: &Path, flag: &str, tag: &str, disk: &SnapDisk) -> Result<()> {
    let out = tokio::process::Command::new(qemu_img)
        .args(["snapshot", "-q", flag, tag])
        .arg(&disk.file)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| refused(format!("cannot run {}: {e}", qemu_img.display())))?;
    if out.status.success() {
        return Ok(());
    }
    Err(refused(format!(
        "qemu-img snapshot {flag} {tag} on disk {:?} failed: {}",
        disk.id,
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// The snapshot names in each disk's image, in order.
pub(super) async fn tags(disks: &[SnapDisk]) -> Result<Vec<Vec<String>>> {
    let files: Vec<_> = disks.iter().map(|d| d.file.clone()).collect();
    blocking(move || files.iter().map(|f| Ok(read_snapshot_names(f)?)).collect()).await
}
