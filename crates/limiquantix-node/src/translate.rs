//! Translation between the wire types of `limiquantix.node.v1` and the hypervisor's model.
//!
//! [`prepare_definition`] turns a CreateVM request into a validated [`VmDefinition`]: every
//! field is checked here with its wire name (`spec.disks[0].size_gib`), every host path goes
//! through [`Confinement`], and images are opened to check their format and backing chain.
//! It touches the filesystem: call from blocking context. The opposite direction
//! ([`status_response`]) builds `VMStatusResponse` from a backend entry.

use crate::confine::Confinement;
use crate::error::ApiError;
use limiquantix_proto::v1 as pb;
use limiquantix_storage::{DetectedFormat, detect_format};
use limiquantix_vm::model::{
    self as m, CdromRole, CdromSpec, DiskSource, IoLimits, MacAddr, NicNetwork, PortForward,
    Protocol, VmDefinition, VmId,
};
use limiquantix_vm::readiness::BootPhase;
use limiquantix_vm::{VmEntry, VmState};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Device id of the seed CD-ROM the daemon adds.
pub const SEED_CDROM_ID: &str = "seed";
/// Deepest backing chain accepted under a disk image.
const MAX_BACKING_DEPTH: usize = 16;
/// Bytes in a GiB.
const GIB: u64 = 1 << 30;

/// What the checks need besides the request.
pub struct Context<'a> {
    /// Allowed roots of host paths.
    pub confinement: &'a Confinement,
    /// Configured pools: id → directory.
    pub pools: &'a BTreeMap<String, PathBuf>,
}

/// Parses a request's `vm_id` field.
pub fn parse_vm_id(field: &str, value: &str) -> Result<VmId, ApiError> {
    VmId::parse(value).map_err(|e| ApiError::invalid(field, e.to_string()))
}

fn enum_value<E: TryFrom<i32>>(field: &str, value: i32, allowed: &str) -> Result<E, ApiError> {
    E::try_from(value).map_err(|_| {
        ApiError::invalid(
            field,
            format!("{value} is not a known value (allowed: {allowed})"),
        )
    })
}

/// Checks that an image file is qcow2 or raw and that its whole backing chain stays inside the
/// allowed roots. Returns what was detected.
fn check_image(
    field: &str,
    path: &Path,
    confinement: &Confinement,
) -> Result<DetectedFormat, ApiError> {
    let mut current = path.to_path_buf();
    let mut first = None;
    for _ in 0..=MAX_BACKING_DEPTH {
        let detected =
            detect_format(&current).map_err(|e| ApiError::invalid(field, e.to_string()))?;
        let backing = match &detected {
            DetectedFormat::Qcow2(h) if h.crypt_method != 0 => {
                return Err(ApiError::invalid(
                    field,
                    format!(
                        "{} is an encrypted qcow2 image; encrypted images are not supported",
                        current.display()
                    ),
                ));
            }
            DetectedFormat::Qcow2(h) => match (&h.backing_file, h.backing_path()) {
                (None, _) => None,
                (Some(_), None) => {
                    return Err(ApiError::invalid(
                        field,
                        format!(
                            "{} names a backing file that is not UTF-8",
                            current.display()
                        ),
                    ));
                }
                (Some(_), Some(b)) => Some(match current.parent() {
                    Some(dir) if b.is_relative() => dir.join(b),
                    _ => b.to_path_buf(),
                }),
            },
            DetectedFormat::Raw { .. } => None,
        };
        if first.is_none() {
            first = Some(detected);
        }
        match backing {
            None => return Ok(first.unwrap_or(DetectedFormat::Raw { size: 0 })),
            Some(b) => {
                let field = format!("{field} (backing file of {})", current.display());
                current = confinement.check(&field, &b.display().to_string())?;
            }
        }
    }
    Err(ApiError::invalid(
        field,
        format!("the backing chain is deeper than {MAX_BACKING_DEPTH} images"),
    ))
}

fn size_bytes(field: &str, gib: u64) -> Result<u64, ApiError> {
    gib.checked_mul(GIB)
        .ok_or_else(|| ApiError::invalid(field, format!("{gib} GiB is too large")))
}

fn disk(i: usize, d: &pb::DiskSpec, ctx: &Context<'_>) -> Result<(m::DiskSpec, bool), ApiError> {
    let f = format!("spec.disks[{i}]");
    let id = if d.id.is_empty() {
        format!("disk{i}")
    } else {
        d.id.clone()
    };
    m::check_device_id(&id).map_err(|p| ApiError::invalid(format!("{f}.id"), p))?;
    let bus = match enum_value::<pb::DiskBus>(
        &format!("{f}.bus"),
        d.bus,
        "0 VIRTIO, 1 SCSI, 2 SATA, 3 IDE",
    )? {
        pb::DiskBus::Virtio => m::DiskBus::Virtio,
        pb::DiskBus::Scsi => m::DiskBus::Scsi,
        pb::DiskBus::Sata => m::DiskBus::Sata,
        pb::DiskBus::Ide => m::DiskBus::Ide,
    };
    let requested =
        enum_value::<pb::DiskFormat>(&format!("{f}.format"), d.format, "0 QCOW2, 1 RAW")?;
    if !d.pool_id.is_empty() {
        let Some(pool_dir) = ctx.pools.get(&d.pool_id) else {
            return Err(ApiError::invalid(
                format!("{f}.pool_id"),
                format!(
                    "no pool {:?} on this node (configured: {})",
                    d.pool_id,
                    ctx.pools.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        if d.path.is_empty() {
            return Err(ApiError::invalid(
                format!("{f}.pool_id"),
                "disks the daemon creates live in the VM directory; pool_id is accepted only \
                 with path, naming the pool the path is in",
            ));
        }
        let pool = Confinement::new(pool_dir, []);
        pool.check(&format!("{f}.path"), &d.path)?;
    }
    let mut has_backing = false;
    let (source, format) = match (d.path.is_empty(), d.backing_file.is_empty()) {
        (false, false) => {
            return Err(ApiError::invalid(
                f,
                "set either path (use an existing image) or backing_file (create an overlay), not both",
            ));
        }
        (false, true) => {
            let path = ctx.confinement.check(&format!("{f}.path"), &d.path)?;
            let detected = check_image(&format!("{f}.path"), &path, ctx.confinement)?;
            // Format 0 (QCOW2) is also the wire default, so it means "as detected". RAW is
            // honoured as asked (reading a qcow2 file raw is safe; the reverse is not).
            let format = match (requested, detected.format()) {
                (pb::DiskFormat::Raw, _) => m::DiskFormat::Raw,
                (_, fmt) => fmt,
            };
            if d.size_gib != 0 {
                return Err(ApiError::invalid(
                    format!("{f}.size_gib"),
                    "an existing image (path) keeps its size; leave size_gib 0",
                ));
            }
            (DiskSource::Path { path }, format)
        }
        (true, false) => {
            has_backing = true;
            let backing = ctx
                .confinement
                .check(&format!("{f}.backing_file"), &d.backing_file)?;
            let detected = check_image(&format!("{f}.backing_file"), &backing, ctx.confinement)?;
            if requested == pb::DiskFormat::Raw {
                return Err(ApiError::invalid(
                    format!("{f}.format"),
                    "a disk on a backing_file is a qcow2 overlay; set format QCOW2",
                ));
            }
            let virtual_size = detected.virtual_size();
            let size = if d.size_gib == 0 {
                virtual_size
            } else {
                size_bytes(&format!("{f}.size_gib"), d.size_gib)?
            };
            if size < virtual_size {
                return Err(ApiError::invalid(
                    format!("{f}.size_gib"),
                    format!(
                        "{} GiB is smaller than the backing image ({virtual_size} bytes, {:.2} GiB); \
                         give at least {} GiB or 0 for the image's size",
                        d.size_gib,
                        virtual_size as f64 / GIB as f64,
                        virtual_size.div_ceil(GIB)
                    ),
                ));
            }
            (
                DiskSource::Overlay {
                    backing,
                    size_bytes: size,
                },
                m::DiskFormat::Qcow2,
            )
        }
        (true, true) => {
            if d.size_gib == 0 {
                return Err(ApiError::invalid(
                    format!("{f}.size_gib"),
                    "a blank disk needs a size (1 GiB or more), or give path or backing_file",
                ));
            }
            let size = size_bytes(&format!("{f}.size_gib"), d.size_gib)?;
            let format = match requested {
                pb::DiskFormat::Qcow2 => m::DiskFormat::Qcow2,
                pb::DiskFormat::Raw => m::DiskFormat::Raw,
            };
            (DiskSource::Blank { size_bytes: size }, format)
        }
    };
    let limits = (d.iops_limit != 0 || d.throughput_mbps != 0).then(|| IoLimits {
        iops_total: (d.iops_limit != 0).then_some(d.iops_limit),
        bps_total: (d.throughput_mbps != 0).then(|| d.throughput_mbps.saturating_mul(1_000_000)),
        ..IoLimits::default()
    });
    Ok((
        m::DiskSpec {
            id,
            source,
            bus,
            format,
            readonly: d.readonly,
            boot_index: None,
            limits,
        },
        has_backing,
    ))
}

fn cdrom(i: usize, c: &pb::CdromSpec, ctx: &Context<'_>) -> Result<CdromSpec, ApiError> {
    let f = format!("spec.cdroms[{i}]");
    let id = if c.id.is_empty() {
        format!("cdrom{i}")
    } else {
        c.id.clone()
    };
    if id == SEED_CDROM_ID {
        return Err(ApiError::invalid(
            format!("{f}.id"),
            format!("{SEED_CDROM_ID:?} is reserved for the cloud-init seed drive"),
        ));
    }
    m::check_device_id(&id).map_err(|p| ApiError::invalid(format!("{f}.id"), p))?;
    let path = if c.iso_path.is_empty() {
        None
    } else {
        Some(
            ctx.confinement
                .check(&format!("{f}.iso_path"), &c.iso_path)?,
        )
    };
    Ok(CdromSpec {
        id,
        path,
        bootable: c.bootable,
        role: CdromRole::Media,
        boot_index: None,
    })
}

fn nic(i: usize, n: &pb::NicSpec) -> Result<m::NicSpec, ApiError> {
    let f = format!("spec.nics[{i}]");
    let id = if n.id.is_empty() {
        format!("nic{i}")
    } else {
        n.id.clone()
    };
    m::check_device_id(&id).map_err(|p| ApiError::invalid(format!("{f}.id"), p))?;
    let mac = if n.mac_address.is_empty() {
        None
    } else {
        Some(
            MacAddr::parse(&n.mac_address)
                .map_err(|e| ApiError::invalid(format!("{f}.mac_address"), e.to_string()))?,
        )
    };
    let model = match enum_value::<pb::NicModel>(
        &format!("{f}.model"),
        n.model,
        "0 VIRTIO, 1 E1000, 2 RTL8139",
    )? {
        pb::NicModel::Virtio => m::NicModel::Virtio,
        pb::NicModel::E1000 => m::NicModel::E1000,
        pb::NicModel::Rtl8139 => m::NicModel::Rtl8139,
    };
    if n.bandwidth_mbps != 0 {
        return Err(ApiError::invalid(
            format!("{f}.bandwidth_mbps"),
            "bandwidth limits are not supported on this node; leave it 0",
        ));
    }
    let mut port_forwards = Vec::new();
    for (j, p) in n.port_forwards.iter().enumerate() {
        let pf = format!("{f}.port_forwards[{j}]");
        let protocol = match p.protocol.as_str() {
            "" | "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            other => {
                return Err(ApiError::invalid(
                    format!("{pf}.protocol"),
                    format!("{other:?} is not a protocol (allowed: tcp, udp)"),
                ));
            }
        };
        let host_addr = if p.host_address.is_empty() {
            std::net::Ipv4Addr::LOCALHOST
        } else {
            p.host_address.parse().map_err(|_| {
                ApiError::invalid(
                    format!("{pf}.host_address"),
                    format!("{:?} is not an IPv4 address", p.host_address),
                )
            })?
        };
        let port = |name: &str, v: u32| {
            u16::try_from(v).ok().filter(|&v| v != 0).ok_or_else(|| {
                ApiError::invalid(
                    format!("{pf}.{name}"),
                    format!("{v} is not a port (1 to 65535)"),
                )
            })
        };
        port_forwards.push(PortForward {
            protocol,
            host_addr,
            host_port: port("host_port", p.host_port)?,
            guest_port: port("guest_port", p.guest_port)?,
        });
    }
    let network = if !n.bridge.is_empty() {
        if !n.network.is_empty() || !port_forwards.is_empty() {
            return Err(ApiError::invalid(
                format!("{f}.bridge"),
                "a bridged NIC takes neither network nor port_forwards",
            ));
        }
        NicNetwork::Bridge {
            name: n.bridge.clone(),
        }
    } else if let Some(ifname) = n.network.strip_prefix("tap:") {
        if !port_forwards.is_empty() {
            return Err(ApiError::invalid(
                format!("{f}.port_forwards"),
                "port forwards exist only on user-mode networking",
            ));
        }
        NicNetwork::Tap {
            ifname: ifname.into(),
        }
    } else if n.network.is_empty() || n.network == "user" {
        NicNetwork::User { port_forwards }
    } else {
        return Err(ApiError::invalid(
            format!("{f}.network"),
            format!(
                "{:?} is not a network of this node (allowed: empty or \"user\" for user-mode \
                 networking, \"tap:IFNAME\", or set bridge)",
                n.network
            ),
        ));
    };
    Ok(m::NicSpec {
        id,
        mac,
        model,
        network,
    })
}

fn console(c: &pb::ConsoleSpec) -> Result<m::ConsoleSpec, ApiError> {
    if c.spice_enabled || c.spice_port != 0 {
        return Err(ApiError::invalid(
            "spec.console.spice_enabled",
            "SPICE is not supported on this node; use VNC",
        ));
    }
    let vnc_display = match c.vnc_port {
        0 => None,
        p @ 5900..=5999 => Some((p - 5900) as u16),
        p => {
            return Err(ApiError::invalid(
                "spec.console.vnc_port",
                format!("{p} is not allowed (0 for any free display, or 5900 to 5999)"),
            ));
        }
    };
    Ok(m::ConsoleSpec {
        vnc: c.vnc_enabled,
        vnc_display,
        vnc_password: (!c.vnc_password.is_empty()).then(|| c.vnc_password.clone()),
        ..m::ConsoleSpec::default()
    })
}

fn guest_os(s: &str) -> m::GuestOs {
    let s = s.to_ascii_lowercase();
    if s.starts_with("windows") {
        m::GuestOs::Windows
    } else if s.is_empty()
        || [
            "linux",
            "generic_linux",
            "debian",
            "ubuntu",
            "rhel",
            "centos",
            "rocky",
            "alma",
            "fedora",
            "suse",
            "opensuse",
            "arch",
            "alpine",
        ]
        .contains(&s.as_str())
    {
        m::GuestOs::Linux
    } else {
        m::GuestOs::Other
    }
}

/// Puts explicit boot positions on the devices when the request orders them: `boot_order`
/// starting with CDROM puts bootable CD-ROMs first; disks flagged `bootable` come before the
/// other disks. Without either, the model's automatic order applies (disks with content first,
/// then blank disks, then bootable CD-ROMs; network last and only when asked).
fn apply_boot_order(
    def: &mut VmDefinition,
    spec: &pb::VmSpec,
    flagged: &[bool],
) -> Result<(), ApiError> {
    let mut order = Vec::new();
    for (i, v) in spec.boot_order.iter().enumerate() {
        let dev = enum_value::<pb::BootDevice>(
            &format!("spec.boot_order[{i}]"),
            *v,
            "0 DISK, 1 CDROM, 2 NETWORK",
        )?;
        if !order.contains(&dev) {
            order.push(dev);
        }
    }
    def.boot.network_boot = order.contains(&pb::BootDevice::Network);
    let cdrom_first = order.first() == Some(&pb::BootDevice::Cdrom);
    let any_flagged = flagged.iter().any(|&b| b);
    if !cdrom_first && !any_flagged {
        return Ok(());
    }
    let mut next = 1u16;
    let number_cdroms = |def: &mut VmDefinition, next: &mut u16| {
        for c in def.cdroms.iter_mut().filter(|c| c.bootable) {
            c.boot_index = Some(*next);
            *next += 1;
        }
    };
    if cdrom_first {
        number_cdroms(def, &mut next);
    }
    let disk_order: Vec<usize> = if any_flagged {
        (0..def.disks.len()).filter(|&i| flagged[i]).collect()
    } else {
        (0..def.disks.len())
            .filter(|&i| def.disks[i].has_content())
            .collect()
    };
    for i in disk_order {
        def.disks[i].boot_index = Some(next);
        next += 1;
    }
    if !cdrom_first {
        number_cdroms(def, &mut next);
    }
    Ok(())
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
    let mut def = VmDefinition::new(id, req.name.clone(), spec.memory_mib);
    def.cpu = m::CpuTopology {
        sockets: one("spec.cpu_sockets", spec.cpu_sockets, 16)?,
        cores: one("spec.cpu_cores", spec.cpu_cores, 128)?,
        threads: one("spec.cpu_threads_per_core", spec.cpu_threads_per_core, 2)?,
    };
    if !(16..=4 << 20).contains(&spec.memory_mib) {
        return Err(ApiError::invalid(
            "spec.memory_mib",
            format!("{} is out of range (16 MiB to 4 TiB)", spec.memory_mib),
        ));
    }
    def.memory.hugepages = spec.memory_hugepages;
    def.firmware =
        match enum_value::<pb::Firmware>("spec.firmware", spec.firmware, "0 BIOS, 1 UEFI, 2 AUTO")?
        {
            pb::Firmware::Bios => m::Firmware::Bios,
            pb::Firmware::Uefi => m::Firmware::Uefi,
            pb::Firmware::Auto => m::Firmware::Auto,
        };
    def.guest_os = guest_os(&spec.guest_os);
    def.labels = req.labels.clone();

    let mut has_backing_file = false;
    let mut flagged = Vec::new();
    for (i, d) in spec.disks.iter().enumerate() {
        let (disk, backing) = disk(i, d, ctx)?;
        has_backing_file |= backing;
        flagged.push(d.bootable);
        def.disks.push(disk);
    }
    for (i, c) in spec.cdroms.iter().enumerate() {
        def.cdroms.push(cdrom(i, c, ctx)?);
    }
    for (i, n) in spec.nics.iter().enumerate() {
        def.nics.push(nic(i, n)?);
    }
    if let Some(c) = &spec.console {
        def.console = console(c)?;
    }
    apply_boot_order(&mut def, spec, &flagged)?;
    Ok(Prepared {
        definition: def,
        has_backing_file,
    })
}

/// Maps a model validation error to the wire field names where they differ.
pub fn model_error(e: m::ModelError) -> ApiError {
    let field = match e.field.as_str() {
        "name" => "name".to_string(),
        f if f.starts_with("labels") => f.to_string(),
        "cpu.sockets" => "spec.cpu_sockets".into(),
        "cpu.cores" => "spec.cpu_cores".into(),
        "cpu.threads" => "spec.cpu_threads_per_core".into(),
        "memory.mib" => "spec.memory_mib".into(),
        f => format!("spec.{f}"),
    };
    ApiError::invalid(field, e.problem)
}

/// The wire power state of a backend state.
pub fn power_state(s: VmState) -> pb::PowerState {
    match s {
        VmState::Stopped => pb::PowerState::Stopped,
        VmState::Running | VmState::Stopping => pb::PowerState::Running,
        VmState::Paused => pb::PowerState::Paused,
        VmState::Crashed => pb::PowerState::Crashed,
        VmState::Starting => pb::PowerState::Unknown,
    }
}

/// The wire form of a disk; `file` is where its data lives on the host.
fn wire_disk(d: &m::DiskSpec, file: Option<&PathBuf>) -> pb::DiskSpec {
    let created_path = file.filter(|_| d.is_created());
    let (path, backing, size) = match &d.source {
        DiskSource::Path { path } => (path.display().to_string(), String::new(), 0),
        DiskSource::Overlay {
            backing,
            size_bytes,
        } => (
            created_path
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            backing.display().to_string(),
            *size_bytes,
        ),
        DiskSource::Blank { size_bytes } => (
            created_path
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            String::new(),
            *size_bytes,
        ),
    };
    pb::DiskSpec {
        id: d.id.clone(),
        path,
        size_gib: size.div_ceil(GIB),
        bus: match d.bus {
            m::DiskBus::Virtio => pb::DiskBus::Virtio,
            m::DiskBus::Scsi => pb::DiskBus::Scsi,
            m::DiskBus::Sata => pb::DiskBus::Sata,
            m::DiskBus::Ide => pb::DiskBus::Ide,
        } as i32,
        format: match d.format {
            m::DiskFormat::Qcow2 => pb::DiskFormat::Qcow2,
            m::DiskFormat::Raw => pb::DiskFormat::Raw,
        } as i32,
        readonly: d.readonly,
        bootable: d.boot_index == Some(1),
        iops_limit: d.limits.and_then(|l| l.iops_total).unwrap_or(0),
        throughput_mbps: d.limits.and_then(|l| l.bps_total).unwrap_or(0) / 1_000_000,
        backing_file: backing,
        pool_id: String::new(),
    }
}

/// The wire enum of a boot phase.
pub fn wire_boot_phase(p: &BootPhase) -> pb::BootPhase {
    match p {
        BootPhase::QemuStarted => pb::BootPhase::QemuStarted,
        BootPhase::Firmware => pb::BootPhase::Firmware,
        BootPhase::KernelRunning => pb::BootPhase::KernelRunning,
        BootPhase::CloudInitRunning { .. } => pb::BootPhase::CloudInitRunning,
        BootPhase::Ready => pb::BootPhase::Ready,
        BootPhase::Failed { .. } => pb::BootPhase::Failed,
    }
}

/// The wire form of a boot phase.
pub fn boot_progress(p: &BootPhase) -> pb::BootProgress {
    pb::BootProgress {
        phase: wire_boot_phase(p) as i32,
        cloud_init_stage: match p {
            BootPhase::CloudInitRunning { stage } => stage.to_string(),
            _ => String::new(),
        },
        failure: match p {
            BootPhase::Failed { reason } => reason.to_string(),
            _ => String::new(),
        },
        description: p.to_string(),
    }
}

/// The wire status of a VM.
pub fn status_response(entry: &VmEntry) -> pb::VmStatusResponse {
    let def = &entry.definition;
    pb::VmStatusResponse {
        vm_id: def.id.as_str().to_string(),
        name: def.name.clone(),
        state: power_state(entry.status.state) as i32,
        resource_usage: Some(pb::ResourceUsage {
            memory_total_bytes: def.memory.mib * 1024 * 1024,
            ..Default::default()
        }),
        started_at: entry.status.started_at.map(prost_types::Timestamp::from),
        guest_agent: None,
        boot: entry.status.boot.as_ref().map(boot_progress),
        vcpus: def.cpu.vcpus(),
        disks: def
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| wire_disk(d, entry.disk_files.get(i)))
            .collect(),
        labels: def.labels.clone(),
    }
}

#[cfg(test)]
mod tests;
