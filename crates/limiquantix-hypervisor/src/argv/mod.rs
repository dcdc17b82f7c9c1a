//! The typed QEMU command line.
//!
//! [`QemuCommand::build`] turns a validated [`VmDefinition`] into `qemu-system-x86_64` arguments.
//! Everything that names a host path or a user-chosen string goes through JSON (`-blockdev`,
//! `-device`, `-netdev`, `-object`), so a comma, quote or `=` in it stays data. The few options
//! QEMU 7.2 parses only as `key=value` lists (`-chardev`, `-name`) get the backend's own paths,
//! escaped by doubling commas (see `chardev.rs`). `-pidfile` takes its path as a whole argument.
//!
//! Boot safety ([`boot`]): the boot disk gets `bootindex=1`, `-boot strict=on` keeps the firmware
//! to the listed devices, the seed CD-ROM is on AHCI and never in boot order, NICs carry no option
//! ROM unless network boot is on, and a VM with nothing bootable is refused.

mod blockdev;
pub mod boot;
mod chardev;
mod device;
mod netdev;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::accel::AccelKind;
use crate::model::{CdromRole, DiskBus, DiskFormat, DiskSource, Firmware, GuestOs, ModelError};
use crate::model::{MacAddr, VmDefinition};
use crate::paths::RuntimePaths;

pub use boot::{BootDevice, BootEntry, boot_order};

/// Host facts the command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// The accelerator in use (already resolved, see [`crate::accel::Accel::resolve`]).
    pub accel: AccelKind,
    /// hugetlbfs mount used when a VM asks for huge pages.
    pub hugepages_dir: PathBuf,
}

impl HostConfig {
    /// Defaults: the given accelerator, huge pages from `/dev/hugepages`.
    pub fn new(accel: AccelKind) -> Self {
        Self {
            accel,
            hugepages_dir: PathBuf::from("/dev/hugepages"),
        }
    }
}

/// The firmware a launch uses (see `firmware::prepare`, which resolves `auto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedFirmware {
    /// SeaBIOS (QEMU's built-in default).
    Bios,
    /// OVMF: read-only code and the VM's own writable variable store.
    Uefi {
        /// OVMF code image (opened read-only).
        code: PathBuf,
        /// The VM's copy of the variable store.
        vars: PathBuf,
    },
}

/// Why a command line cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The definition (or a runtime path) is not acceptable.
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// Nothing in the definition can boot; QEMU would end in "No bootable device".
    #[error(
        "nothing to boot: {reason}. Give the VM a disk with an operating system (a path or an \
         overlay on an image), a bootable CD-ROM with an ISO, or turn on boot.network_boot"
    )]
    NothingBootable {
        /// What is missing, in words.
        reason: String,
    },
    /// The resolved firmware contradicts the definition.
    #[error("firmware: the definition asks for {wanted:?} but the launch resolved {resolved}")]
    FirmwareMismatch {
        /// The definition's firmware.
        wanted: Firmware,
        /// What was passed to the builder.
        resolved: &'static str,
    },
}

/// A built QEMU command line (program not included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuCommand {
    args: Vec<OsString>,
    boot_order: Vec<BootEntry>,
}

/// Longest Unix socket path (`sun_path` is 108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

impl QemuCommand {
    /// Builds the arguments for `def`. Validates the definition, computes the boot order, and
    /// refuses a VM with nothing bootable.
    pub fn build(
        def: &VmDefinition,
        paths: &RuntimePaths,
        host: &HostConfig,
        firmware: &ResolvedFirmware,
    ) -> Result<Self, BootError> {
        def.validate()?;
        let order = boot_order(def)?;
        let bootindex = |kind: BootDevice, id: &str| {
            order
                .iter()
                .find(|e| e.kind == kind && e.id == id)
                .map(|e| e.index)
        };
        match (def.firmware, firmware) {
            (Firmware::Bios, ResolvedFirmware::Uefi { .. }) => {
                return Err(BootError::FirmwareMismatch {
                    wanted: def.firmware,
                    resolved: "uefi",
                });
            }
            (Firmware::Uefi, ResolvedFirmware::Bios) => {
                return Err(BootError::FirmwareMismatch {
                    wanted: def.firmware,
                    resolved: "bios",
                });
            }
            _ => {}
        }
        let mut a = Argv::default();
        a.flag("-nodefaults");
        a.flag("-no-user-config");
        a.opt(
            "-name",
            chardev::with_value("guest=", def.name.as_ref(), ""),
        );
        a.opt("-uuid", def.id.as_str());
        a.opt("-msg", "timestamp=on");

        // Machine, accelerator, CPU, memory.
        let machine = def.effective_machine();
        let mut machine_opt = format!("type={}", machine.qemu_name());
        if matches!(firmware, ResolvedFirmware::Uefi { .. }) {
            machine_opt.push_str(",pflash0=fw-code,pflash1=fw-vars");
        }
        if def.memory.hugepages {
            machine_opt.push_str(",memory-backend=ram0");
        }
        a.opt("-machine", machine_opt);
        a.opt("-accel", host.accel.qemu_name());
        a.opt("-cpu", cpu_model(def.guest_os, host.accel));
        let c = def.cpu;
        a.opt(
            "-smp",
            format!(
                "cpus={},sockets={},cores={},threads={}",
                c.vcpus(),
                c.sockets,
                c.cores,
                c.threads
            ),
        );
        a.opt("-m", format!("{}M", def.memory.mib));
        if def.memory.hugepages {
            let dir = utf8("host.hugepages_dir", &host.hugepages_dir)?;
            a.json(
                "-object",
                json!({
                    "qom-type": "memory-backend-file",
                    "id": "ram0",
                    "size": def.memory.mib << 20,
                    "mem-path": dir,
                    "prealloc": true,
                }),
            );
        }
        if let ResolvedFirmware::Uefi { code, vars } = firmware {
            for v in blockdev::pflash("fw-code", utf8("firmware.code", code)?, true) {
                a.json("-blockdev", v);
            }
            for v in blockdev::pflash("fw-vars", utf8("firmware.vars", vars)?, false) {
                a.json("-blockdev", v);
            }
        }
        a.opt(
            "-rtc",
            if def.guest_os.rtc_localtime() {
                "base=localtime,driftfix=slew"
            } else {
                "base=utc"
            },
        );
        if def.guest_os == GuestOs::Windows && host.accel == AccelKind::Kvm {
            a.opt("-global", "kvm-pit.lost_tick_policy=delay");
        }
        a.opt("-boot", "strict=on");
        if let Some(k) = &def.direct_kernel {
            // Each value is a whole argument that QEMU takes verbatim (no option parsing).
            a.opt("-kernel", k.kernel.as_os_str());
            if let Some(initrd) = &k.initrd {
                a.opt("-initrd", initrd.as_os_str());
            }
            a.opt("-append", k.cmdline.as_str());
        }

        // Storage controllers, disks, CD-ROMs.
        let mut slots = device::Slots::default();
        if def.disks.iter().any(|d| d.bus == DiskBus::Scsi) {
            a.json(
                "-device",
                json!({ "driver": "virtio-scsi-pci", "id": device::SCSI }),
            );
        }
        if !def.cdroms.is_empty() || def.disks.iter().any(|d| d.bus == DiskBus::Sata) {
            a.json(
                "-device",
                json!({ "driver": "ich9-ahci", "id": device::AHCI }),
            );
        }
        for (i, d) in def.disks.iter().enumerate() {
            let path = match &d.source {
                DiskSource::Path { path } => path.clone(),
                _ => paths.disk_file(i, d.format),
            };
            let nodes = blockdev::image(
                &d.id,
                utf8(&format!("disks[{i}] file"), &path)?,
                d.format,
                d.readonly,
                d.limits.as_ref(),
            );
            for o in nodes.objects {
                a.json("-object", o);
            }
            for n in nodes.nodes {
                a.json("-blockdev", n);
            }
            let bi = bootindex(BootDevice::Disk, &d.id);
            a.json("-device", device::disk(d, &nodes.top, bi, &mut slots));
        }
        // SATA disks took the first AHCI ports; CD-ROMs follow, the seed last.
        let mut cdroms: Vec<_> = def.cdroms.iter().collect();
        cdroms.sort_by_key(|c| c.role == CdromRole::Seed);
        for c in cdroms {
            let drive = match &c.path {
                Some(p) => {
                    let idx = def.cdroms.iter().position(|o| o.id == c.id).unwrap_or(0);
                    let nodes = blockdev::image(
                        &c.id,
                        utf8(&format!("cdroms[{idx}].path"), p)?,
                        DiskFormat::Raw,
                        true,
                        None,
                    );
                    for n in nodes.nodes {
                        a.json("-blockdev", n);
                    }
                    Some(nodes.top)
                }
                None => None,
            };
            let bi = bootindex(BootDevice::Cdrom, &c.id);
            a.json(
                "-device",
                device::cdrom(&c.id, drive.as_deref(), bi, &mut slots),
            );
        }

        // Network.
        for (i, n) in def.nics.iter().enumerate() {
            a.json("-netdev", netdev::netdev(n));
            let mac = n.mac.unwrap_or_else(|| MacAddr::derive(&def.id, i));
            let bi = bootindex(BootDevice::Nic, &n.id);
            a.json("-device", netdev::nic_device(n, mac, bi));
        }

        // Control channels, guest agent, serial log, pidfile.
        let (qmp_path, qga_path) = (paths.qmp_socket(), paths.qga_socket());
        let qmp = socket("paths.qmp_socket", &qmp_path)?;
        a.opt(
            "-chardev",
            chardev::with_value("socket,id=qmp,path=", qmp, ",server=on,wait=off"),
        );
        a.opt("-mon", "chardev=qmp,mode=control");
        let qga = socket("paths.qga_socket", &qga_path)?;
        a.opt(
            "-chardev",
            chardev::with_value("socket,id=qga,path=", qga, ",server=on,wait=off"),
        );
        a.json(
            "-device",
            json!({ "driver": "virtio-serial-pci", "id": "vserial0" }),
        );
        a.json(
            "-device",
            json!({
                "driver": "virtserialport",
                "id": "qga-port",
                "bus": "vserial0.0",
                "chardev": "qga",
                "name": "org.qemu.guest_agent.0",
            }),
        );
        a.opt(
            "-chardev",
            chardev::with_value(
                "file,id=serial0,path=",
                paths.serial_log().as_os_str(),
                ",append=on",
            ),
        );
        a.json(
            "-device",
            json!({ "driver": "isa-serial", "id": "serial0-port", "chardev": "serial0" }),
        );

        // Display: a video device, no local window, VNC on the configured address.
        a.json(
            "-device",
            json!({ "driver": def.guest_os.video_device(), "id": "video0" }),
        );
        a.opt("-display", "none");
        if def.console.vnc {
            let con = &def.console;
            let mut vnc = match con.vnc_display {
                Some(d) => format!("{}:{d}", con.vnc_listen),
                None => format!("{}:0,to=99", con.vnc_listen),
            };
            if con.vnc_password.is_some() {
                vnc.push_str(",password=on");
            }
            a.opt("-vnc", vnc);
        }
        a.opt("-pidfile", paths.pidfile().into_os_string());
        Ok(Self {
            args: a.0,
            boot_order: order,
        })
    }

    /// The arguments (without the program name).
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// The arguments, owned.
    pub fn into_args(self) -> Vec<OsString> {
        self.args
    }

    /// The boot order the command line encodes, first device first.
    pub fn boot_order(&self) -> &[BootEntry] {
        &self.boot_order
    }
}

fn cpu_model(os: GuestOs, accel: AccelKind) -> &'static str {
    match (accel, os) {
        (AccelKind::Kvm, GuestOs::Windows) => {
            "host,hv_relaxed=on,hv_vapic=on,hv_spinlocks=0x1fff,hv_time=on"
        }
        (AccelKind::Kvm, _) => "host",
        (AccelKind::Tcg, _) => "max",
    }
}

/// A path that goes into JSON must be UTF-8, absolute and normalized.
fn utf8<'a>(field: &str, p: &'a Path) -> Result<&'a str, ModelError> {
    crate::model::check_path(field, p)?;
    Ok(p.to_str().unwrap_or_default())
}

/// A socket path must fit `sun_path`.
fn socket<'a>(field: &str, p: &'a Path) -> Result<&'a std::ffi::OsStr, ModelError> {
    let len = p.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(ModelError {
            field: field.to_owned(),
            problem: format!(
                "{} is {len} bytes; Unix socket paths are at most {MAX_SOCKET_PATH} \
                 (use a shorter run directory)",
                p.display()
            ),
        });
    }
    Ok(p.as_os_str())
}

/// Argument accumulator.
#[derive(Default)]
struct Argv(Vec<OsString>);

impl Argv {
    fn flag(&mut self, name: &str) {
        self.0.push(name.into());
    }

    fn opt(&mut self, name: &str, value: impl Into<OsString>) {
        self.0.push(name.into());
        self.0.push(value.into());
    }

    fn json(&mut self, name: &str, value: Value) {
        self.opt(name, value.to_string());
    }
}

#[cfg(test)]
mod tests;
