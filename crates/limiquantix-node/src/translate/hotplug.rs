//! AttachDisk and AttachNIC requests → model devices, through the same checks as CreateVM's
//! disks and NICs (`disk`, `nic`): paths confined, volumes resolved, a disk created in a pool
//! named as a volume. A device without an id, or with a caller's id that is no device id of
//! ours (`disk-<unixnano>`), gets the first free `disk<n>`/`nic<n>`.

use super::disk::disk_at;
use super::nic::nic_at;
use super::request::Context;
use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_storage::volume::VolumeId;
use limiquantix_vm::hotplug::DiskPlacement;
use limiquantix_vm::model::{self as m, VmDefinition};

/// The first `n` for which `{prefix}{n}` is no device id of `def`.
fn free_index(def: &VmDefinition, prefix: &str) -> usize {
    let taken = |id: &str| {
        def.disks.iter().any(|d| d.id == id)
            || def.cdroms.iter().any(|c| c.id == id)
            || def.nics.iter().any(|n| n.id == id)
    };
    (0..).find(|n| !taken(&format!("{prefix}{n}"))).unwrap_or(0)
}

/// AttachDisk's `disk` as a model disk for VM `def`, and where its file goes (blocking I/O).
pub fn attach_disk(
    d: &pb::DiskSpec,
    def: &VmDefinition,
    ctx: &Context<'_>,
) -> Result<(m::DiskSpec, DiskPlacement), ApiError> {
    let i = free_index(def, "disk");
    let (disk, found) = disk_at("disk", i, d, ctx.confinement, ctx.pools)?;
    let volume = found.dir.as_ref().map(|_| {
        found
            .api_id
            .clone()
            .filter(|a| VolumeId::parse("", a).is_ok())
            .unwrap_or_else(|| format!("{}-{}", def.id, disk.id))
    });
    let placement = DiskPlacement {
        api_id: found.api_id,
        dir: found.dir,
        volume,
    };
    Ok((disk, placement))
}

/// AttachNIC's `nic` as a model NIC for VM `def`, and the caller's id for it.
pub fn attach_nic(
    n: &pb::NicSpec,
    def: &VmDefinition,
    ctx: &Context<'_>,
) -> Result<(m::NicSpec, Option<String>), ApiError> {
    let i = free_index(def, "nic");
    nic_at("nic", i, n, ctx.networks, ctx.default_network)
}
