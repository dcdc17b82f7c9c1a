//! What a new VM boots from: an image of the node's library or a path on the node, as an
//! overlay disk on a disk image, or as a bootable CD-ROM for an ISO.

use anyhow::{Context as _, bail};
use limiquantix_proto::v1::{CdromSpec, DiskSpec};

use super::inputs::expand_home;
use crate::ctx::Ctx;
use crate::daemon::CallExt as _;

/// Disk size of a VM installed from an ISO when --disk-size is not given.
const ISO_DISK_GIB: u64 = 20;

/// What the image argument designates.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ImageChoice {
    /// A disk image: the VM disk is an overlay on it.
    Disk(String),
    /// An ISO: attached as a bootable CD-ROM with a blank disk.
    Iso(String),
}

/// What `--image` designates: a path on the node (containing `/`), or an image of the node's
/// library by name or id. ISOs are told by their extension (paths) or their format (library).
pub(crate) async fn choose_image(ctx: &Ctx, image: &str) -> anyhow::Result<ImageChoice> {
    let is_iso = |p: &str| p.to_ascii_lowercase().ends_with(".iso");
    if image.contains('/') {
        let path = std::path::absolute(expand_home(image))
            .with_context(|| format!("--image {image}: not a usable path"))?;
        let path = path.display().to_string();
        return Ok(if is_iso(&path) {
            ImageChoice::Iso(path)
        } else {
            ImageChoice::Disk(path)
        });
    }
    let images = ctx
        .daemon
        .node()
        .list_images(())
        .await
        .or_fail(&ctx.daemon)?
        .images;
    let exact = images.iter().find(|i| i.name == image);
    let by_id: Vec<_> = images.iter().filter(|i| i.image_id == image).collect();
    let found = match (exact, by_id.as_slice()) {
        (Some(i), _) => i,
        (None, [i]) => *i,
        (None, []) => bail!(
            "no image {image:?} in the node's library: lqctl image list shows them, lqctl image import FILE|URL adds one"
        ),
        (None, many) => bail!(
            "image {image:?} is ambiguous ({}): use the full name",
            many.iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Ok(if found.format == "iso" {
        ImageChoice::Iso(found.path.clone())
    } else {
        ImageChoice::Disk(found.path.clone())
    })
}

/// The disks and CD-ROMs of the VM: a boot disk that is an overlay on a disk image (its size
/// `disk_size`, or the image's); for an ISO, a blank disk of `disk_size` (or [`ISO_DISK_GIB`])
/// and the ISO as a bootable CD-ROM.
pub(super) fn storage(
    image: ImageChoice,
    disk_size: Option<u64>,
) -> (Vec<DiskSpec>, Vec<CdromSpec>) {
    match image {
        ImageChoice::Disk(backing_file) => (
            vec![DiskSpec {
                id: "disk-0".into(),
                backing_file,
                size_gib: disk_size.unwrap_or(0),
                bootable: true,
                ..Default::default()
            }],
            vec![],
        ),
        ImageChoice::Iso(iso_path) => (
            vec![DiskSpec {
                id: "disk-0".into(),
                size_gib: disk_size.unwrap_or(ISO_DISK_GIB),
                ..Default::default()
            }],
            vec![CdromSpec {
                id: "cdrom-0".into(),
                iso_path,
                bootable: true,
            }],
        ),
    }
}
