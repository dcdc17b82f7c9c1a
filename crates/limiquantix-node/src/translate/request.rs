//! CreateVM request → definition: the request as a whole (name, CPU, memory, labels) and the
//! order in which its parts are checked; each device family is checked in its own module.

use super::boot::{apply_boot_order, firmware, guest_os};
use super::cdrom::cdrom;
use super::console::{console, default_console};
use super::disk::disk;
use super::nic::nic;
use crate::confine::Confinement;
use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_storage::volume::VolumeId;
use limiquantix_vm::model::{self as m, VmDefinition, VmId};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the checks need besides the request.
pub struct Context<'a> {
    /// Allowed roots of host paths.
    pub confinement: &'a Confinement,
    /// Configured pools: id → directory.
    pub pools: &'a BTreeMap<String, PathBuf>,
    /// The node's management address: where the VNC display of a VM without a console spec
    /// listens (loopback when the node has none).
    pub console_address: Option<std::net::Ipv4Addr>,
    /// The networks a control plane names: its network id → a host bridge.
    pub networks: &'a BTreeMap<String, String>,
    /// The bridge of a NIC on a network the table does not name (`None`: user-mode NAT).
    pub default_network: Option<&'a str>,
}

/// A CreateVM request checked field by field and turned into a definition. The definition as
/// a whole is validated once, by the caller, after the seed CD-ROM is added
/// ([`VmDefinition::into_valid`]).
#[derive(Debug)]
pub struct Prepared {
    /// The definition, without the seed CD-ROM (the provisioning step adds it); not validated
    /// as a whole yet.
    pub definition: VmDefinition,
    /// Whether a disk is an overlay on a backing image (a cloud image).
    pub has_backing_file: bool,
}

/// Checks a CreateVM request and builds the definition of VM `id` (blocking I/O).
pub fn prepare_definition(
    req: &pb::CreateVmOnNodeRequest,
    id: VmId,
    ctx: &Context<'_>,
) -> Result<Prepared, ApiError> {
    m::check_vm_name(&req.name).map_err(|p| ApiError::invalid("name", p))?;
    let spec = req
        .spec
        .as_ref()
        .ok_or_else(|| ApiError::invalid("spec", "required"))?;

    let mut def = VmDefinition::new(id, req.name.clone(), spec.memory_mib);
    def.cpu = cpu_topology(spec)?;
    if !(16..=4 << 20).contains(&spec.memory_mib) {
        return Err(ApiError::invalid(
            "spec.memory_mib",
            format!("{} is out of range (16 MiB to 4 TiB)", spec.memory_mib),
        ));
    }
    def.memory.hugepages = spec.memory_hugepages;
    def.firmware = firmware(spec.firmware)?;
    def.guest_os = guest_os(&spec.guest_os);
    def.labels = req.labels.clone();

    let has_backing_file = add_devices(&mut def, spec, ctx)?;
    Ok(Prepared {
        definition: def,
        has_backing_file,
    })
}

/// The vCPU topology. `cpu_cores` is the **total** vCPU count (what the LimiQuantix control
/// plane sends: cores × sockets), split evenly over `cpu_sockets` and `cpu_threads_per_core`
/// (0 means 1 for each).
fn cpu_topology(spec: &pb::VmSpec) -> Result<m::CpuTopology, ApiError> {
    let one = |field: &str, v: u32, max: u32| {
        let v = v.max(1);
        if v > max {
            Err(ApiError::invalid(
                field,
                format!("{v} is out of range (1 to {max}; 0 means 1)"),
            ))
        } else {
            Ok(v)
        }
    };
    let sockets = one("spec.cpu_sockets", spec.cpu_sockets, 16)?;
    let threads = one("spec.cpu_threads_per_core", spec.cpu_threads_per_core, 2)?;
    let total = spec.cpu_cores.max(1);
    let per_socket = sockets * threads;
    if !total.is_multiple_of(per_socket) {
        return Err(ApiError::invalid(
            "spec.cpu_cores",
            format!(
                "{total} vCPUs (cpu_cores is the total) cannot be split evenly over {sockets} \
                 socket(s) of {threads} thread(s) per core; use a multiple of {per_socket}"
            ),
        ));
    }
    Ok(m::CpuTopology {
        sockets,
        cores: one("spec.cpu_cores / cpu_sockets", total / per_socket, 128)?,
        threads,
    })
}

/// Adds the request's disks, CD-ROMs, NICs and console to `def`, then orders booting. Returns
/// whether a disk is an overlay on a backing image.
fn add_devices(
    def: &mut VmDefinition,
    spec: &pb::VmSpec,
    ctx: &Context<'_>,
) -> Result<bool, ApiError> {
    let mut has_backing_file = false;
    let mut flagged = Vec::new();
    for (i, d) in spec.disks.iter().enumerate() {
        let (disk, found) = disk(i, d, ctx.confinement, ctx.pools)?;
        has_backing_file |= matches!(disk.source, m::DiskSource::Overlay { .. });
        flagged.push(d.bootable);
        if let Some(api_id) = found.api_id {
            def.api_ids.insert(disk.id.clone(), api_id);
        }
        if let Some(dir) = found.dir {
            // In a pool the disk is a volume named by the caller's id (a control plane's
            // UUID), else by the VM and device ids, so volumes of two VMs never collide.
            let volume = def
                .api_ids
                .get(&disk.id)
                .filter(|a| VolumeId::parse("", a).is_ok())
                .cloned()
                .unwrap_or_else(|| format!("{}-{}", def.id, disk.id));
            def.disk_volumes.insert(disk.id.clone(), volume);
            def.disk_dirs.insert(disk.id.clone(), dir);
        }
        def.disks.push(disk);
    }
    for (i, c) in spec.cdroms.iter().enumerate() {
        def.cdroms.push(cdrom(i, c, ctx.confinement)?);
    }
    for (i, n) in spec.nics.iter().enumerate() {
        let (nic, api_id) = nic(i, n, ctx.networks, ctx.default_network)?;
        if let Some(api_id) = api_id {
            def.api_ids.insert(nic.id.clone(), api_id);
        }
        def.nics.push(nic);
    }
    def.console = match &spec.console {
        Some(c) => console(c)?,
        None => default_console(ctx.console_address),
    };
    apply_boot_order(def, spec, &flagged)?;
    Ok(has_backing_file)
}
