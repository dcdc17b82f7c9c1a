//! Growing an image file: `qemu-img resize -q -f <fmt> <file> <size>`, never with `--shrink`
//! (without it qemu-img refuses to make an image smaller), the format always explicit. The size
//! is read back from the image afterwards.

use std::path::Path;

use tokio::process::Command;

use crate::create::{blocking, run_qemu_img};
use crate::error::StorageError;
use crate::format::detect_format;
use limiquantix_vm::model::DiskFormat;

/// Grows image `path`, of format `format`, to the virtual size `size_bytes` (a multiple of
/// 512). A qcow2 image with a backing file keeps it; the backing is not touched. The image must
/// not be open in a running QEMU (qemu-img takes its lock and fails if it cannot).
pub async fn grow_image(
    qemu_img_bin: &Path,
    path: &Path,
    format: DiskFormat,
    size_bytes: u64,
) -> Result<(), StorageError> {
    let mut cmd = Command::new(qemu_img_bin);
    cmd.args(["resize", "-q", "-f", format.qemu_name()])
        .arg(path)
        .arg(size_bytes.to_string());
    run_qemu_img(qemu_img_bin, cmd).await?;
    let p = path.to_owned();
    let found = blocking(move || detect_format(&p)).await?;
    if found.format() != format || found.virtual_size() != size_bytes {
        return Err(StorageError::Unreadable {
            path: path.to_owned(),
            problem: format!(
                "after growing it to {size_bytes} bytes of {}, the image is {} bytes of {}",
                format.qemu_name(),
                found.virtual_size(),
                found.format().qemu_name()
            ),
        });
    }
    tracing::debug!(image = %path.display(), size_bytes, "grew image");
    Ok(())
}
