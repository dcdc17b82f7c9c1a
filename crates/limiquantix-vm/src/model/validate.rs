//! Whole-definition validation with field paths in the errors.

use std::collections::BTreeSet;
use std::path::{Component, Path};

use super::definition::{MachineType, SCHEMA_VERSION, VmDefinition};
use super::device::{CdromRole, DiskBus, DiskFormat, DiskSource, IoLimits, NicNetwork};
use super::id::{check_device_id, check_vm_name};

/// A definition field that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ModelError {
    /// Path of the offending field, e.g. `disks[1].source.size_bytes`.
    pub field: String,
    /// What is wrong and what is allowed.
    pub problem: String,
}

fn err(field: impl Into<String>, problem: impl Into<String>) -> ModelError {
    ModelError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// Largest disk a definition may ask for, and a disk may grow to: 64 TiB.
pub const MAX_DISK_BYTES: u64 = 64 << 40;
/// Ports on the one AHCI controller shared by SATA disks and CD-ROMs.
pub(crate) const AHCI_PORTS: usize = 6;

impl VmDefinition {
    /// Checks the whole definition. The error names the first offending field.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(err(
                "schema_version",
                format!(
                    "version {} is not supported (this build reads version {SCHEMA_VERSION})",
                    self.schema_version
                ),
            ));
        }
        check_vm_name(&self.name).map_err(|p| err("name", p))?;
        self.validate_labels()?;
        self.validate_resources()?;
        self.validate_direct_kernel()?;
        let mut ids = BTreeSet::new();
        let mut boot_indices = BTreeSet::new();
        let mut ahci = self.validate_disks(&mut ids, &mut boot_indices)?;
        self.validate_cdroms(&mut ids, &mut boot_indices)?;
        ahci += self.cdroms.len();
        if ahci > AHCI_PORTS {
            return Err(err(
                "cdroms",
                format!(
                    "SATA disks and CD-ROMs share {AHCI_PORTS} AHCI ports; this definition needs {ahci}"
                ),
            ));
        }
        self.validate_nics(&mut ids)?;
        self.validate_api_ids(&ids)?;
        self.validate_disk_dirs()?;
        self.validate_console()?;
        if let Some(d) = &self.spec_digest
            && (d.is_empty()
                || d.len() > 128
                || !d
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b":+/=_-".contains(&c)))
        {
            return Err(err(
                "spec_digest",
                "must be 1 to 128 characters of letters, digits and ':+/=_-'",
            ));
        }
        Ok(())
    }

    /// Checks the disks; returns how many AHCI ports they take.
    fn validate_disks(
        &self,
        ids: &mut BTreeSet<String>,
        boot_indices: &mut BTreeSet<u16>,
    ) -> Result<usize, ModelError> {
        let mut ahci = 0usize;
        for (i, d) in self.disks.iter().enumerate() {
            let f = format!("disks[{i}]");
            device_id(&f, &d.id, ids)?;
            match &d.source {
                DiskSource::Path { path } => check_path(&format!("{f}.source.path"), path)?,
                DiskSource::Overlay {
                    backing,
                    size_bytes,
                } => {
                    check_path(&format!("{f}.source.backing"), backing)?;
                    check_size(&format!("{f}.source.size_bytes"), *size_bytes)?;
                    if d.format != DiskFormat::Qcow2 {
                        return Err(err(
                            format!("{f}.format"),
                            "an overlay disk is always qcow2; set format to qcow2",
                        ));
                    }
                }
                DiskSource::Blank { size_bytes } => {
                    check_size(&format!("{f}.source.size_bytes"), *size_bytes)?
                }
            }
            match d.bus {
                DiskBus::Ide if self.effective_machine() != MachineType::Pc => {
                    return Err(err(
                        format!("{f}.bus"),
                        "bus ide exists only on machine type pc; use sata, virtio or scsi on q35",
                    ));
                }
                DiskBus::Sata => ahci += 1,
                _ => {}
            }
            if d.bus == DiskBus::Ide
                && self.disks[..i].iter().filter(|o| o.bus == d.bus).count() >= 4
            {
                return Err(err(format!("{f}.bus"), "at most 4 IDE disks fit on pc"));
            }
            if d.readonly && matches!(d.bus, DiskBus::Sata | DiskBus::Ide) {
                return Err(err(
                    format!("{f}.readonly"),
                    "SATA and IDE hard disks cannot be read-only in QEMU; use bus virtio or scsi",
                ));
            }
            boot_index(&format!("{f}.boot_index"), d.boot_index, boot_indices)?;
            if let Some(l) = &d.limits {
                check_limits(&format!("{f}.limits"), l)?;
            }
        }
        Ok(ahci)
    }

    fn validate_cdroms(
        &self,
        ids: &mut BTreeSet<String>,
        boot_indices: &mut BTreeSet<u16>,
    ) -> Result<(), ModelError> {
        let mut seeds = 0;
        for (i, c) in self.cdroms.iter().enumerate() {
            let f = format!("cdroms[{i}]");
            device_id(&f, &c.id, ids)?;
            if let Some(p) = &c.path {
                check_path(&format!("{f}.path"), p)?;
            }
            if c.role == CdromRole::Seed {
                seeds += 1;
                if seeds > 1 {
                    return Err(err(format!("{f}.role"), "only one CD-ROM can be the seed"));
                }
                if c.bootable || c.boot_index.is_some() {
                    return Err(err(
                        format!("{f}.bootable"),
                        "a seed CD-ROM is never bootable and has no boot_index (it would be \
                     tried before the disk)",
                    ));
                }
                if c.path.is_none() {
                    return Err(err(format!("{f}.path"), "a seed CD-ROM needs its ISO path"));
                }
            }
            if c.boot_index.is_some() && !c.bootable {
                return Err(err(
                    format!("{f}.boot_index"),
                    "boot_index is set but bootable is false",
                ));
            }
            boot_index(&format!("{f}.boot_index"), c.boot_index, boot_indices)?;
        }
        Ok(())
    }

    /// Caller ids: of existing devices, 1 to 64 printable characters, unique, and never another
    /// device's id.
    fn validate_api_ids(&self, devices: &BTreeSet<String>) -> Result<(), ModelError> {
        let mut seen = BTreeSet::new();
        for (device, api_id) in &self.api_ids {
            let f = format!("api_ids.{device}");
            if !devices.contains(device) {
                return Err(err(f, "names no disk, CD-ROM or NIC of this VM"));
            }
            let printable = api_id.chars().all(|c| !c.is_control());
            if !(1..=64).contains(&api_id.chars().count()) || !printable {
                return Err(err(
                    f,
                    format!("{api_id:?} is not an id: 1 to 64 printable characters"),
                ));
            }
            if !seen.insert(api_id.as_str()) || (devices.contains(api_id) && api_id != device) {
                return Err(err(
                    f,
                    format!("{api_id:?} is already the id of another device"),
                ));
            }
        }
        Ok(())
    }

    /// Disk directories: of disks the backend creates, absolute and normalized.
    fn validate_disk_dirs(&self) -> Result<(), ModelError> {
        for (disk, dir) in &self.disk_dirs {
            let f = format!("disk_dirs.{disk}");
            match self.disks.iter().find(|d| &d.id == disk) {
                Some(d) if d.is_created() => check_path(&f, dir)?,
                Some(_) => {
                    return Err(err(
                        f,
                        "only an overlay or a blank disk is created in a directory",
                    ));
                }
                None => return Err(err(f, "names no disk of this VM")),
            }
        }
        for (disk, volume) in &self.disk_volumes {
            let f = format!("disk_volumes.{disk}");
            if !self.disk_dirs.contains_key(disk) {
                return Err(err(
                    f,
                    "only a disk created in a pool (disk_dirs) has a volume id",
                ));
            }
            if !super::id::is_plain_name(volume) {
                return Err(err(
                    f,
                    "a volume id is 1 to 64 letters, digits, '.', '_' and '-', not starting with '.'",
                ));
            }
        }
        Ok(())
    }

    fn validate_labels(&self) -> Result<(), ModelError> {
        for (k, v) in &self.labels {
            let f = format!("labels[{k:?}]");
            if k.is_empty() || k.len() > 63 || k.chars().any(char::is_control) {
                return Err(err(
                    f,
                    "label keys are 1 to 63 bytes without control characters",
                ));
            }
            if v.len() > 255 || v.chars().any(char::is_control) {
                return Err(err(
                    f,
                    "label values are up to 255 bytes without control characters",
                ));
            }
        }
        Ok(())
    }

    fn validate_direct_kernel(&self) -> Result<(), ModelError> {
        let Some(k) = &self.direct_kernel else {
            return Ok(());
        };
        check_path("direct_kernel.kernel", &k.kernel)?;
        if let Some(initrd) = &k.initrd {
            check_path("direct_kernel.initrd", initrd)?;
        }
        if k.cmdline.len() > 4096 || k.cmdline.chars().any(char::is_control) {
            return Err(err(
                "direct_kernel.cmdline",
                "must be at most 4096 bytes without control characters".to_owned(),
            ));
        }
        Ok(())
    }

    fn validate_resources(&self) -> Result<(), ModelError> {
        let c = &self.cpu;
        for (name, v, max) in [
            ("cpu.sockets", c.sockets, 16),
            ("cpu.cores", c.cores, 128),
            ("cpu.threads", c.threads, 2),
        ] {
            if !(1..=max).contains(&v) {
                return Err(err(name, format!("{v} is out of range (1 to {max})")));
            }
        }
        if c.vcpus() > 255 {
            return Err(err(
                "cpu",
                format!(
                    "{} vCPUs (sockets x cores x threads) is more than 255",
                    c.vcpus()
                ),
            ));
        }
        let max_mib = 4 << 20;
        if !(16..=max_mib).contains(&self.memory.mib) {
            return Err(err(
                "memory.mib",
                format!(
                    "{} MiB is out of range (16 to {max_mib} MiB)",
                    self.memory.mib
                ),
            ));
        }
        if self.memory.hugepages && !self.memory.mib.is_multiple_of(2) {
            return Err(err(
                "memory.mib",
                "with hugepages, memory must be a multiple of 2 MiB",
            ));
        }
        Ok(())
    }

    fn validate_nics(&self, ids: &mut BTreeSet<String>) -> Result<(), ModelError> {
        let mut macs = BTreeSet::new();
        let mut forwards = BTreeSet::new();
        for (i, n) in self.nics.iter().enumerate() {
            let f = format!("nics[{i}]");
            device_id(&f, &n.id, ids)?;
            if let Some(mac) = self.nic_mac(i)
                && !macs.insert(mac)
            {
                return Err(err(format!("{f}.mac"), format!("{mac} is used twice")));
            }
            match &n.network {
                NicNetwork::User { port_forwards } => {
                    for (j, p) in port_forwards.iter().enumerate() {
                        let pf = format!("{f}.network.port_forwards[{j}]");
                        if p.host_port == 0 || p.guest_port == 0 {
                            return Err(err(pf, "ports are 1 to 65535"));
                        }
                        if !forwards.insert((p.protocol, p.host_addr, p.host_port)) {
                            return Err(err(
                                format!("{pf}.host_port"),
                                format!(
                                    "{} {}:{} is forwarded twice",
                                    p.protocol.as_str(),
                                    p.host_addr,
                                    p.host_port
                                ),
                            ));
                        }
                    }
                }
                NicNetwork::Tap { ifname } => check_ifname(&format!("{f}.network.ifname"), ifname)?,
                NicNetwork::Bridge { name } => check_ifname(&format!("{f}.network.name"), name)?,
            }
        }
        Ok(())
    }

    fn validate_console(&self) -> Result<(), ModelError> {
        if let Some(d) = self.console.vnc_display
            && d > 99
        {
            return Err(err(
                "console.vnc_display",
                format!("{d} is out of range (0 to 99)"),
            ));
        }
        if let Some(p) = &self.console.vnc_password
            && (p.is_empty() || p.len() > 8 || !p.bytes().all(|c| c.is_ascii_graphic()))
        {
            // The password itself is never echoed.
            return Err(err(
                "console.vnc_password",
                "must be 1 to 8 printable ASCII characters without spaces (VNC's limit)",
            ));
        }
        Ok(())
    }
}

fn device_id(field: &str, id: &str, ids: &mut BTreeSet<String>) -> Result<(), ModelError> {
    check_device_id(id).map_err(|p| err(format!("{field}.id"), p))?;
    if !ids.insert(id.to_owned()) {
        return Err(err(
            format!("{field}.id"),
            format!("{id:?} is already used by another disk, CD-ROM or NIC"),
        ));
    }
    Ok(())
}

fn boot_index(field: &str, bi: Option<u16>, seen: &mut BTreeSet<u16>) -> Result<(), ModelError> {
    match bi {
        Some(0) => Err(err(field, "boot positions start at 1")),
        Some(b) if !seen.insert(b) => Err(err(
            field,
            format!("{b} is already the boot position of another device"),
        )),
        _ => Ok(()),
    }
}

/// Host paths must be absolute, normalized (no `.` or `..`), valid UTF-8 (QEMU's JSON options
/// carry them) and free of NUL and control characters.
pub fn check_path(field: &str, p: &Path) -> Result<(), ModelError> {
    let Some(s) = p.to_str() else {
        return Err(err(
            field,
            format!(
                "{} is not valid UTF-8; QEMU's JSON options need UTF-8 paths",
                p.display()
            ),
        ));
    };
    if !p.is_absolute() {
        return Err(err(field, format!("{s:?} must be an absolute path")));
    }
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        || s.contains("/./")
        || s.ends_with("/.")
    {
        return Err(err(
            field,
            format!("{s:?} must be normalized (no '.' or '..' components)"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(err(
            field,
            format!("{s:?} contains a control character (newline, NUL, ...)"),
        ));
    }
    if s.len() > 4095 {
        return Err(err(field, "paths are at most 4095 bytes"));
    }
    Ok(())
}

fn check_size(field: &str, size: u64) -> Result<(), ModelError> {
    if size == 0 || !size.is_multiple_of(512) || size > MAX_DISK_BYTES {
        return Err(err(
            field,
            format!(
                "{size} bytes is not allowed: sizes are positive multiples of 512 up to 64 TiB"
            ),
        ));
    }
    Ok(())
}

fn check_limits(field: &str, l: &IoLimits) -> Result<(), ModelError> {
    if l.iops_total.is_some() && (l.iops_read.is_some() || l.iops_write.is_some()) {
        return Err(err(
            field,
            "iops_total cannot be combined with iops_read or iops_write",
        ));
    }
    if l.bps_total.is_some() && (l.bps_read.is_some() || l.bps_write.is_some()) {
        return Err(err(
            field,
            "bps_total cannot be combined with bps_read or bps_write",
        ));
    }
    if let Some((k, _)) = l.entries().into_iter().find(|(_, v)| *v == 0) {
        return Err(err(
            format!("{field}.{}", k.replace('-', "_")),
            "must be positive (leave it out for no limit)",
        ));
    }
    Ok(())
}

fn check_ifname(field: &str, name: &str) -> Result<(), ModelError> {
    let ok = (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(err(
            field,
            format!(
                "{name:?} is not an interface name: 1 to 15 characters of letters, digits and '_.-'"
            ),
        ))
    }
}
